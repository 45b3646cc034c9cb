//! Decode-phase eviction (H2O style, off by default): while generating, each
//! layer stays within its budget by dropping the slots that have received
//! the least attention since decoding began. The first `sinks` positions and
//! the most recent `window` slots are never dropped. Eviction runs once a
//! layer is `batch` slots over budget, so the host reads scores rarely.

use super::cache::KvCache;
use super::error::Result;
use candle_core::Tensor;

pub struct Evictor {
    budgets: Vec<usize>,
    sinks: u32,
    window: usize,
    batch: usize,
    /// Per layer, attention accumulated by each live slot, `[kv_heads, len]`.
    scores: Vec<Option<Tensor>>,
    /// Slots dropped so far, all layers.
    pub evicted: usize,
}

impl Evictor {
    pub fn new(budgets: Vec<usize>, sinks: usize, window: usize, batch: usize) -> Self {
        let n = budgets.len();
        Self { budgets, sinks: sinks as u32, window, batch: batch.max(1), scores: vec![None; n], evicted: 0 }
    }

    /// Adds one step's attention (`seen[layer]`: `[kv_heads, len]`) and evicts
    /// where a layer has grown `batch` past its budget.
    pub fn observe(&mut self, cache: &mut KvCache, seen: Vec<Tensor>) -> Result<()> {
        for (l, att) in seen.into_iter().enumerate() {
            let acc = match self.scores[l].take() {
                Some(prev) => {
                    let grow = att.dim(1)? - prev.dim(1)?;
                    (prev.pad_with_zeros(1, 0, grow)? + att)?
                }
                None => att,
            };
            let len = cache.layers()[l].len();
            let budget = self.budgets[l].max(self.window + 1);
            if len < budget + self.batch {
                self.scores[l] = Some(acc);
                continue;
            }
            let scores = acc.to_vec2::<f32>()?;
            let layer = &cache.layers()[l];
            let keep: Vec<Vec<u32>> =
                scores.iter().enumerate().map(|(h, row)| self.keep_for_head(row, layer.positions(h), budget)).collect();
            let kept_scores: Vec<f32> =
                keep.iter().zip(&scores).flat_map(|(k, row)| k.iter().map(|&s| row[s as usize])).collect();
            *cache.layer_mut(l) = layer.gather(&keep, self.batch + 1)?;
            self.scores[l] = Some(Tensor::from_vec(kept_scores, (keep.len(), budget), acc.device())?);
            self.evicted += len - budget;
        }
        Ok(())
    }

    /// Slots one head keeps: protected ones first, then the highest scores.
    fn keep_for_head(&self, scores: &[f32], positions: &[u32], budget: usize) -> Vec<u32> {
        let len = scores.len();
        let recent = len.saturating_sub(self.window);
        let protected = |s: usize| s >= recent || positions[s] < self.sinks;
        let mut keep: Vec<u32> = (0..len).filter(|&s| protected(s)).map(|s| s as u32).collect();
        if keep.len() > budget {
            // More protected slots than budget: keep the most recent ones.
            keep.drain(..keep.len() - budget);
        } else {
            let mut rest: Vec<usize> = (0..len).filter(|&s| !protected(s)).collect();
            rest.sort_by(|&a, &b| scores[b].total_cmp(&scores[a]).then(a.cmp(&b)));
            keep.extend(rest.into_iter().take(budget - keep.len()).map(|s| s as u32));
        }
        keep.sort_unstable();
        keep
    }
}
