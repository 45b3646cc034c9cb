//! The KV cache, kept outside the layers so it can be read, scored and pruned.
//!
//! Per layer, K and V are `[1, kv_heads, capacity, head_dim]` buffers of which
//! the first `len` slots are live. Every KV head of a layer holds the same
//! number of tokens, but each head may keep different prompt positions; the
//! original position of every slot is remembered, so RoPE stays true after
//! pruning. Layers may hold different numbers of tokens.
//!
//! Heads of a layer may also keep different numbers of prompt tokens (layer ×
//! head budgets): the shorter heads are padded to the longest, and an additive
//! bias of -inf on the padding slots takes them out of attention. Padding
//! slots report the position [`PADDING`].

use super::error::{EngineError, Result};
use super::kvcodec::KvPrecision;
use candle_core::{DType, Device, Tensor};

/// Extra slots allocated whenever a buffer has to grow, so decode appends
/// are in-place copies rather than a concatenation per token.
const GROW_SLOTS: usize = 128;

/// Position reported for a padding slot (never attended).
pub const PADDING: u32 = u32::MAX;

#[derive(Debug)]
pub struct LayerCache {
    /// K and V as stored (`precision`'s buffers), each `[1, kv_heads,
    /// capacity, width]`: the token slot is always dimension 2.
    bufs: Vec<Tensor>,
    precision: KvPrecision,
    /// The activation dtype K and V are read back in.
    native: DType,
    len: usize,
    /// `positions[head][slot]`: original token position of each live slot.
    positions: Vec<Vec<u32>>,
    /// `[1, kv_heads, 1, capacity]`: 0 for real slots, -inf for padding;
    /// `None` when no head is padded.
    bias: Option<Tensor>,
}

impl Clone for LayerCache {
    /// A clone shares the live slots with its source. Its capacity is treated
    /// as exactly `len`, so its first append copies into a fresh buffer and
    /// neither side ever writes into what the other can read.
    fn clone(&self) -> Self {
        Self {
            bufs: self.bufs.iter().map(|b| b.narrow(2, 0, self.len).expect("narrow within len")).collect(),
            precision: self.precision,
            native: self.native,
            len: self.len,
            positions: self.positions.clone(),
            bias: self.bias.as_ref().map(|b| b.narrow(3, 0, self.len).expect("narrow within len")),
        }
    }
}

impl LayerCache {
    fn empty(kv_heads: usize, head_dim: usize, dtype: DType, device: &Device) -> Result<Self> {
        let z = Tensor::zeros((1, kv_heads, 0, head_dim), dtype, device)?;
        Ok(Self {
            bufs: KvPrecision::Native.encode(&z, &z)?,
            precision: KvPrecision::Native,
            native: dtype,
            len: 0,
            positions: vec![Vec::new(); kv_heads],
            bias: None,
        })
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    fn capacity(&self) -> usize {
        self.bufs[0].dim(2).unwrap_or(0)
    }

    /// How this layer stores K and V.
    pub fn precision(&self) -> KvPrecision {
        self.precision
    }

    /// Bytes one slot of this layer costs (K and V, every KV head).
    pub fn bytes_per_slot(&self) -> usize {
        let d = self.bufs[0].dim(3).unwrap_or(0);
        let head_dim = if self.precision == KvPrecision::Int4 { 2 * d } else { d };
        self.precision.bytes_per_slot(self.kv_heads(), head_dim, self.native)
    }

    pub fn kv_heads(&self) -> usize {
        self.positions.len()
    }

    /// Original positions kept by one KV head, in slot order.
    pub fn positions(&self, head: usize) -> &[u32] {
        &self.positions[head]
    }

    /// Additive attention bias over the live slots, `[1, kv_heads, 1, len]`
    /// (-inf on padding), when some head is padded.
    pub fn bias(&self) -> Result<Option<Tensor>> {
        Ok(match &self.bias {
            Some(b) => Some(b.narrow(3, 0, self.len)?),
            None => None,
        })
    }

    /// Prompt tokens really held per head (padding not counted).
    pub fn head_lens(&self) -> Vec<usize> {
        self.positions.iter().map(|p| p.iter().filter(|&&x| x != PADDING).count()).collect()
    }

    /// Live keys and values, `[1, kv_heads, len, head_dim]`: views for a
    /// native layer, dequantized copies for a quantized one.
    pub fn kv(&self) -> Result<(Tensor, Tensor)> {
        let live: Vec<Tensor> =
            self.bufs.iter().map(|b| b.narrow(2, 0, self.len)).collect::<candle_core::Result<_>>()?;
        self.precision.decode(&live, self.native)
    }

    /// Appends `n` new slots (`k`, `v`: `[1, kv_heads, n, head_dim]`) for the
    /// positions `first_pos..first_pos + n`, growing the buffer if needed.
    pub fn append(&mut self, k: &Tensor, v: &Tensor, first_pos: usize) -> Result<()> {
        let encoded = self.precision.encode(k, v)?;
        self.extend(k.dim(2)?, first_pos, |bufs, slot| {
            for (buf, new) in bufs.iter().zip(encoded) {
                buf.slice_set(&new, 2, slot)?;
            }
            Ok(())
        })
    }

    /// Appends `n` slots written by `write(k_buf, v_buf, first_slot)` straight
    /// into the whole `[1, kv_heads, capacity, head_dim]` buffers (a fused
    /// kernel instead of `append`'s copies). `None`, nothing done, when this
    /// layer does not store K and V as they are computed (quantized KV).
    pub fn append_with<T>(
        &mut self,
        n: usize,
        first_pos: usize,
        write: impl FnOnce(&Tensor, &Tensor, usize) -> Result<T>,
    ) -> Result<Option<T>> {
        if self.precision != KvPrecision::Native {
            return Ok(None);
        }
        self.extend(n, first_pos, |bufs, slot| write(&bufs[0], &bufs[1], slot)).map(Some)
    }

    /// Grows the buffers for `n` more slots, lets `write` fill them (given the
    /// buffers and the first new slot) and records their positions.
    fn extend<T>(
        &mut self,
        n: usize,
        first_pos: usize,
        write: impl FnOnce(&[Tensor], usize) -> Result<T>,
    ) -> Result<T> {
        if self.len + n > self.capacity() {
            self.reallocate(self.len + n + GROW_SLOTS)?;
        }
        let out = write(&self.bufs, self.len)?;
        self.len += n;
        for p in &mut self.positions {
            p.extend((first_pos..first_pos + n).map(|x| x as u32));
        }
        Ok(out)
    }

    /// Makes room for `slots` more tokens without further reallocation.
    pub fn reserve(&mut self, slots: usize) -> Result<()> {
        if self.len + slots > self.capacity() {
            self.reallocate(self.len + slots)?;
        }
        Ok(())
    }

    /// Moves the live slots into a new buffer of `capacity` slots.
    fn reallocate(&mut self, capacity: usize) -> Result<()> {
        let device = self.bufs[0].device().clone();
        let h = self.kv_heads();
        for buf in &mut self.bufs {
            let (_, heads, _, w) = buf.dims4()?;
            let grown = Tensor::zeros((1, heads, capacity, w), buf.dtype(), &device)?;
            if self.len > 0 {
                grown.slice_set(&buf.narrow(2, 0, self.len)?.contiguous()?, 2, 0)?;
            }
            *buf = grown;
        }
        let dtype = self.native;
        if let Some(old) = &self.bias {
            let bias = Tensor::zeros((1, h, 1, capacity), dtype, &device)?;
            if self.len > 0 {
                bias.slice_set(&old.narrow(3, 0, self.len)?.contiguous()?, 3, 0)?;
            }
            self.bias = Some(bias);
        }
        Ok(())
    }

    /// Keeps, for each head, the slots listed in `keep[head]` (slot indices)
    /// in a freshly allocated buffer with room for `reserve` more tokens.
    /// Heads keeping fewer slots than the longest are padded (masked out).
    /// The old buffer is released when no clone holds it.
    pub fn gather(&self, keep: &[Vec<u32>], reserve: usize) -> Result<LayerCache> {
        self.gather_as(keep, reserve, self.precision)
    }

    /// As [`gather`](Self::gather), storing the kept slots at `precision`
    /// (re-encoded when it differs from this layer's).
    pub fn gather_as(&self, keep: &[Vec<u32>], reserve: usize, precision: KvPrecision) -> Result<LayerCache> {
        let heads = self.kv_heads();
        if keep.len() != heads {
            return Err(EngineError::BadSelection(format!("{} heads given, layer has {heads}", keep.len())));
        }
        let count = keep.iter().map(Vec::len).max().unwrap_or(0);
        if keep.iter().any(Vec::is_empty) && count > 0 {
            return Err(EngineError::BadSelection("every head of a layer must keep at least one slot".into()));
        }
        if let Some(bad) = keep.iter().flatten().find(|&&s| s as usize >= self.len) {
            return Err(EngineError::BadSelection(format!("slot {bad} is past the layer's {} slots", self.len)));
        }
        let padded = keep.iter().any(|k| k.len() < count);
        let cap = self.capacity();
        // A padding slot copies the head's first kept slot; the bias hides it.
        let slot = |h: usize, i: usize| keep[h].get(i).copied().unwrap_or(keep[h][0]);
        let flat: Vec<u32> = (0..heads).flat_map(|h| (0..count).map(move |i| (h * cap) as u32 + slot(h, i))).collect();
        let device = self.bufs[0].device().clone();
        let idx = Tensor::from_vec(flat, count * heads, &device)?;
        let pick = |t: &Tensor| -> Result<Tensor> {
            let w = t.dim(3)?;
            Ok(t.contiguous()?.reshape((heads * cap, w))?.index_select(&idx, 0)?.reshape((1, heads, count, w))?)
        };
        let mut bufs = self.bufs.iter().map(pick).collect::<Result<Vec<_>>>()?;
        if precision != self.precision {
            let (k, v) = self.precision.decode(&bufs, self.native)?;
            bufs = precision.encode(&k, &v)?;
        }
        let mut out = LayerCache {
            bufs,
            precision,
            native: self.native,
            len: count,
            positions: keep
                .iter()
                .enumerate()
                .map(|(h, slots)| {
                    let mut p: Vec<u32> = slots.iter().map(|&s| self.positions[h][s as usize]).collect();
                    p.resize(count, PADDING);
                    p
                })
                .collect(),
            bias: None,
        };
        if padded || self.bias.is_some() {
            out.bias = Some(padding_bias(&out.positions, self.native, &device)?);
        }
        if reserve > 0 {
            out.reallocate(count + reserve)?;
        }
        Ok(out)
    }
}

/// `[1, heads, 1, slots]`: -inf where a slot is padding, else 0.
fn padding_bias(positions: &[Vec<u32>], dtype: DType, device: &Device) -> Result<Tensor> {
    let slots = positions.first().map_or(0, Vec::len);
    let v: Vec<f32> = positions.iter().flatten().map(|&p| if p == PADDING { f32::NEG_INFINITY } else { 0.0 }).collect();
    Ok(Tensor::from_vec(v, (1, positions.len(), 1, slots), device)?.to_dtype(dtype)?)
}

/// The whole cache plus the position the next token will take.
#[derive(Debug, Clone)]
pub struct KvCache {
    layers: Vec<LayerCache>,
    next_pos: usize,
}

impl KvCache {
    pub fn new(n_layers: usize, kv_heads: usize, head_dim: usize, dtype: DType, device: &Device) -> Result<Self> {
        let layers =
            (0..n_layers).map(|_| LayerCache::empty(kv_heads, head_dim, dtype, device)).collect::<Result<_>>()?;
        Ok(Self { layers, next_pos: 0 })
    }

    pub fn layers(&self) -> &[LayerCache] {
        &self.layers
    }

    pub fn layer_mut(&mut self, i: usize) -> &mut LayerCache {
        &mut self.layers[i]
    }

    pub fn n_layers(&self) -> usize {
        self.layers.len()
    }

    /// Position (in the original sequence) of the next token to be fed.
    pub fn next_pos(&self) -> usize {
        self.next_pos
    }

    pub(crate) fn advance(&mut self, n: usize) {
        self.next_pos += n;
    }

    /// Tokens held per layer.
    pub fn lens(&self) -> Vec<usize> {
        self.layers.iter().map(|l| l.len).collect()
    }

    /// Bytes of K and V held in live slots (padding included), all layers,
    /// at each layer's storage precision.
    pub fn bytes(&self) -> usize {
        self.layers.iter().map(|l| l.len * l.bytes_per_slot()).sum()
    }

    /// Prunes with `keep[layer][head]` = slot indices to keep (sorted, same
    /// count within a layer); `None` for a layer keeps it whole (shared, no copy).
    pub fn pruned(&self, keep: &[Option<Vec<Vec<u32>>>], reserve: usize) -> Result<KvCache> {
        self.pruned_as(keep, reserve, KvPrecision::Native)
    }

    /// As [`pruned`](Self::pruned), the kept slots stored at `precision`; a
    /// quantized precision re-encodes whole layers too (`None` entries).
    pub fn pruned_as(&self, keep: &[Option<Vec<Vec<u32>>>], reserve: usize, precision: KvPrecision) -> Result<KvCache> {
        if keep.len() != self.layers.len() {
            return Err(EngineError::BadSelection(format!(
                "{} layers given, cache has {}",
                keep.len(),
                self.layers.len()
            )));
        }
        let layers = self
            .layers
            .iter()
            .zip(keep)
            .map(|(layer, k)| match k {
                Some(k) => layer.gather_as(k, reserve, precision),
                None if precision == layer.precision => Ok(layer.clone()),
                None => {
                    let all: Vec<Vec<u32>> = vec![(0..layer.len as u32).collect(); layer.kv_heads()];
                    layer.gather_as(&all, reserve, precision)
                }
            })
            .collect::<Result<_>>()?;
        Ok(KvCache { layers, next_pos: self.next_pos })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::DType;

    fn kv(vals: &[f32], heads: usize, d: usize) -> Tensor {
        let n = vals.len() / (heads * d);
        Tensor::from_vec(vals.to_vec(), (1, heads, n, d), &Device::Cpu).unwrap()
    }

    fn keys(c: &LayerCache) -> Vec<f32> {
        c.kv().unwrap().0.flatten_all().unwrap().to_vec1().unwrap()
    }

    #[test]
    fn clones_never_see_each_others_appends() {
        let mut a = LayerCache::empty(2, 1, DType::F32, &Device::Cpu).unwrap();
        a.append(&kv(&[1., 2., 3., 4.], 2, 1), &kv(&[1., 2., 3., 4.], 2, 1), 0).unwrap();
        let mut b = a.clone();
        a.append(&kv(&[9., 9.], 2, 1), &kv(&[9., 9.], 2, 1), 2).unwrap();
        b.append(&kv(&[7., 7.], 2, 1), &kv(&[7., 7.], 2, 1), 2).unwrap();
        assert_eq!(keys(&a), vec![1., 2., 9., 3., 4., 9.]);
        assert_eq!(keys(&b), vec![1., 2., 7., 3., 4., 7.]);
        assert_eq!(b.positions(1), &[0, 1, 2]);
    }

    #[test]
    fn gather_keeps_per_head_slots_and_positions() {
        let mut a = LayerCache::empty(2, 1, DType::F32, &Device::Cpu).unwrap();
        a.append(&kv(&[10., 11., 12., 20., 21., 22.], 2, 1), &kv(&[0.; 6], 2, 1), 5).unwrap();
        let g = a.gather(&[vec![0, 2], vec![1, 2]], 0).unwrap();
        assert_eq!(keys(&g), vec![10., 12., 21., 22.]);
        assert_eq!(g.positions(0), &[5, 7]);
        assert_eq!(g.positions(1), &[6, 7]);
        assert_eq!(g.capacity(), 2, "a gather without reserve holds exactly what it keeps");
        assert!(a.gather(&[vec![], vec![1, 2]], 0).is_err(), "every head keeps a slot");
        assert!(a.gather(&[vec![0], vec![3]], 0).is_err(), "slot out of range");
    }

    #[test]
    fn uneven_heads_are_padded_and_masked() {
        let mut a = LayerCache::empty(2, 1, DType::F32, &Device::Cpu).unwrap();
        a.append(&kv(&[10., 11., 12., 20., 21., 22.], 2, 1), &kv(&[0.; 6], 2, 1), 0).unwrap();
        let mut g = a.gather(&[vec![0, 1, 2], vec![2]], 4).unwrap();
        assert_eq!(g.len(), 3);
        assert_eq!(g.head_lens(), vec![3, 1]);
        assert_eq!(g.positions(1), &[2, PADDING, PADDING]);
        let bias: Vec<f32> = g.bias().unwrap().unwrap().flatten_all().unwrap().to_vec1().unwrap();
        assert_eq!(bias, vec![0., 0., 0., 0., f32::NEG_INFINITY, f32::NEG_INFINITY]);
        // Appended slots are real for every head, also after a reallocation.
        for pos in 3..8 {
            g.append(&kv(&[1., 2.], 2, 1), &kv(&[0., 0.], 2, 1), pos).unwrap();
        }
        let bias: Vec<f32> = g.bias().unwrap().unwrap().flatten_all().unwrap().to_vec1().unwrap();
        assert_eq!(bias.iter().filter(|b| b.is_infinite()).count(), 2);
        assert_eq!(bias.len(), 2 * 8);
        assert_eq!(g.head_lens(), vec![8, 6]);
        assert!(a.bias().unwrap().is_none(), "an even layer carries no bias");
    }

    #[test]
    fn bytes_count_live_slots() {
        let mut c = KvCache::new(2, 3, 4, DType::F32, &Device::Cpu).unwrap();
        let t = Tensor::zeros((1, 3, 5, 4), DType::F32, &Device::Cpu).unwrap();
        c.layer_mut(0).append(&t, &t, 0).unwrap();
        c.layer_mut(1).append(&t, &t, 0).unwrap();
        assert_eq!(c.bytes(), 2 * 5 * (2 * 3 * 4 * 4));
        let keep = vec![Some(vec![vec![0u32, 4]; 3]), None];
        let p = c.pruned(&keep, 0).unwrap();
        assert_eq!(p.lens(), vec![2, 5]);
        assert_eq!(p.bytes(), 7 * (2 * 3 * 4 * 4));
    }
}
