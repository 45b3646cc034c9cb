//! The KV cache, kept outside the layers so it can be read, scored and pruned.
//!
//! Per layer, K and V are `[1, kv_heads, capacity, head_dim]` buffers of which
//! the first `len` slots are live. Every KV head of a layer holds the same
//! number of tokens, but each head may keep different prompt positions; the
//! original position of every slot is remembered, so RoPE stays true after
//! pruning. Layers may hold different numbers of tokens.

use super::error::{EngineError, Result};
use candle_core::{Device, Tensor};

/// Extra slots allocated whenever a buffer has to grow, so decode appends
/// are in-place copies rather than a concatenation per token.
const GROW_SLOTS: usize = 128;

#[derive(Debug)]
pub struct LayerCache {
    k: Tensor,
    v: Tensor,
    len: usize,
    /// `positions[head][slot]`: original token position of each live slot.
    positions: Vec<Vec<u32>>,
}

impl Clone for LayerCache {
    /// A clone shares the live slots with its source. Its capacity is treated
    /// as exactly `len`, so its first append copies into a fresh buffer and
    /// neither side ever writes into what the other can read.
    fn clone(&self) -> Self {
        Self {
            k: self.k.narrow(2, 0, self.len).expect("narrow within len"),
            v: self.v.narrow(2, 0, self.len).expect("narrow within len"),
            len: self.len,
            positions: self.positions.clone(),
        }
    }
}

impl LayerCache {
    fn empty(kv_heads: usize, head_dim: usize, dtype: candle_core::DType, device: &Device) -> Result<Self> {
        Ok(Self {
            k: Tensor::zeros((1, kv_heads, 0, head_dim), dtype, device)?,
            v: Tensor::zeros((1, kv_heads, 0, head_dim), dtype, device)?,
            len: 0,
            positions: vec![Vec::new(); kv_heads],
        })
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    fn capacity(&self) -> usize {
        self.k.dim(2).unwrap_or(0)
    }

    pub fn kv_heads(&self) -> usize {
        self.positions.len()
    }

    /// Original positions kept by one KV head, in slot order.
    pub fn positions(&self, head: usize) -> &[u32] {
        &self.positions[head]
    }

    /// Live keys and values, `[1, kv_heads, len, head_dim]` (views, no copy).
    pub fn kv(&self) -> Result<(Tensor, Tensor)> {
        Ok((self.k.narrow(2, 0, self.len)?, self.v.narrow(2, 0, self.len)?))
    }

    /// Appends `n` new slots (`k`, `v`: `[1, kv_heads, n, head_dim]`) for the
    /// positions `first_pos..first_pos + n`, growing the buffer if needed.
    pub fn append(&mut self, k: &Tensor, v: &Tensor, first_pos: usize) -> Result<()> {
        let n = k.dim(2)?;
        if self.len + n > self.capacity() {
            self.reallocate(self.len + n + GROW_SLOTS)?;
        }
        self.k.slice_set(&k.contiguous()?, 2, self.len)?;
        self.v.slice_set(&v.contiguous()?, 2, self.len)?;
        self.len += n;
        for p in &mut self.positions {
            p.extend((first_pos..first_pos + n).map(|x| x as u32));
        }
        Ok(())
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
        let (_, h, _, d) = self.k.dims4()?;
        let (dtype, device) = (self.k.dtype(), self.k.device().clone());
        let k = Tensor::zeros((1, h, capacity, d), dtype, &device)?;
        let v = Tensor::zeros((1, h, capacity, d), dtype, &device)?;
        if self.len > 0 {
            k.slice_set(&self.k.narrow(2, 0, self.len)?.contiguous()?, 2, 0)?;
            v.slice_set(&self.v.narrow(2, 0, self.len)?.contiguous()?, 2, 0)?;
        }
        self.k = k;
        self.v = v;
        Ok(())
    }

    /// Keeps, for each head, the slots listed in `keep[head]` (slot indices,
    /// the same count for every head) in a freshly allocated buffer with room
    /// for `reserve` more tokens. The old buffer is released when no clone holds it.
    pub fn gather(&self, keep: &[Vec<u32>], reserve: usize) -> Result<LayerCache> {
        let heads = self.kv_heads();
        if keep.len() != heads {
            return Err(EngineError::BadSelection(format!("{} heads given, layer has {heads}", keep.len())));
        }
        let count = keep[0].len();
        if keep.iter().any(|k| k.len() != count) {
            return Err(EngineError::BadSelection("every head of a layer must keep the same number of slots".into()));
        }
        if let Some(bad) = keep.iter().flatten().find(|&&s| s as usize >= self.len) {
            return Err(EngineError::BadSelection(format!("slot {bad} is past the layer's {} slots", self.len)));
        }
        let cap = self.capacity();
        let flat: Vec<u32> =
            keep.iter().enumerate().flat_map(|(h, slots)| slots.iter().map(move |&s| (h * cap) as u32 + s)).collect();
        let (_, _, _, d) = self.k.dims4()?;
        let device = self.k.device().clone();
        let idx = Tensor::from_vec(flat, count * heads, &device)?;
        let pick = |t: &Tensor| -> Result<Tensor> {
            Ok(t.reshape((heads * cap, d))?.index_select(&idx, 0)?.reshape((1, heads, count, d))?)
        };
        let mut out = LayerCache {
            k: pick(&self.k.contiguous()?)?,
            v: pick(&self.v.contiguous()?)?,
            len: count,
            positions: keep
                .iter()
                .enumerate()
                .map(|(h, slots)| slots.iter().map(|&s| self.positions[h][s as usize]).collect())
                .collect(),
        };
        if reserve > 0 {
            out.reallocate(count + reserve)?;
        }
        Ok(out)
    }
}

/// The whole cache plus the position the next token will take.
#[derive(Debug, Clone)]
pub struct KvCache {
    layers: Vec<LayerCache>,
    next_pos: usize,
    bytes_per_slot: usize,
}

impl KvCache {
    pub fn new(
        n_layers: usize,
        kv_heads: usize,
        head_dim: usize,
        dtype: candle_core::DType,
        device: &Device,
    ) -> Result<Self> {
        let layers =
            (0..n_layers).map(|_| LayerCache::empty(kv_heads, head_dim, dtype, device)).collect::<Result<_>>()?;
        Ok(Self { layers, next_pos: 0, bytes_per_slot: 2 * kv_heads * head_dim * dtype.size_in_bytes() })
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

    /// Bytes of K and V held in live slots, all layers.
    pub fn bytes(&self) -> usize {
        self.layers.iter().map(|l| l.len).sum::<usize>() * self.bytes_per_slot
    }

    /// Bytes one slot costs in one layer (K and V, every KV head).
    pub fn bytes_per_slot(&self) -> usize {
        self.bytes_per_slot
    }

    /// Prunes with `keep[layer][head]` = slot indices to keep (sorted, same
    /// count within a layer); `None` for a layer keeps it whole (shared, no copy).
    pub fn pruned(&self, keep: &[Option<Vec<Vec<u32>>>], reserve: usize) -> Result<KvCache> {
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
                Some(k) => layer.gather(k, reserve),
                None => Ok(layer.clone()),
            })
            .collect::<Result<_>>()?;
        Ok(KvCache { layers, next_pos: self.next_pos, bytes_per_slot: self.bytes_per_slot })
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
        assert!(a.gather(&[vec![0], vec![1, 2]], 0).is_err(), "heads must keep equal counts");
        assert!(a.gather(&[vec![0], vec![3]], 0).is_err(), "slot out of range");
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
