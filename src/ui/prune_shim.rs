//! Temporary stand-in for `crate::prune` while that branch is being written.
//! Same names and signatures as the real module; the UI imports it as `prune`
//! so switching over is a one-line change in `ui/mod.rs`.

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LayerLimits {
    pub min: usize,
    pub max: usize,
}

pub const PYRAMID_BETA: f64 = 20.0;

#[derive(Clone, Debug, PartialEq)]
pub enum DepthRule {
    Proportional,
    Softmax { temperature: f64 },
    Rank,
}

#[derive(Clone, Debug, PartialEq)]
pub enum Strategy {
    Uniform,
    Pyramid {
        beta: f64,
    },
    DepthKv {
        sensitivity: Vec<f64>,
        rule: DepthRule,
        mix: f64,
        floor: f64,
    },
    Manual {
        fractions: Vec<f64>,
    },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum StrategyKind {
    Uniform,
    Pyramid,
    DepthKv,
    DepthKvSoftmax,
    DepthKvRank,
    Manual,
}

impl StrategyKind {
    pub fn name(self) -> &'static str {
        match self {
            StrategyKind::Uniform => "uniform",
            StrategyKind::Pyramid => "pyramid",
            StrategyKind::DepthKv => "depthkv",
            StrategyKind::DepthKvSoftmax => "depthkv-softmax",
            StrategyKind::DepthKvRank => "depthkv-rank",
            StrategyKind::Manual => "manual",
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum PruneError {
    Infeasible(usize),
    LayerLocked { layer: usize },
    Invalid(&'static str),
}

impl std::fmt::Display for PruneError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PruneError::Infeasible(t) => write!(f, "total of {t} slots is infeasible"),
            PruneError::LayerLocked { layer } => write!(f, "layer {layer} is locked"),
            PruneError::Invalid(w) => write!(f, "invalid {w}"),
        }
    }
}

impl std::error::Error for PruneError {}

pub fn total_slots(budget: f64, prompt_len: usize, n_layers: usize) -> usize {
    let b = if budget.is_nan() {
        0.0
    } else {
        budget.clamp(0.0, 1.0)
    };
    let cells = prompt_len * n_layers;
    ((b * cells as f64).round() as usize).min(cells)
}

pub fn feasible_total(total: usize, n_layers: usize, limits: LayerLimits) -> usize {
    total.max(n_layers * limits.min).min(n_layers * limits.max)
}

pub fn allocate(
    strategy: &Strategy,
    n: usize,
    total: usize,
    limits: LayerLimits,
) -> Result<Vec<usize>, PruneError> {
    if total < n * limits.min || total > n * limits.max {
        return Err(PruneError::Infeasible(total));
    }
    if n == 0 {
        return Ok(Vec::new());
    }
    let w: Vec<f64> = match strategy {
        Strategy::Uniform => vec![1.0; n],
        Strategy::Pyramid { beta } => {
            let top = 1.0 / beta;
            let bottom = 2.0 - top;
            (0..n)
                .map(|i| bottom + (top - bottom) * i as f64 / (n.max(2) - 1) as f64)
                .collect()
        }
        Strategy::DepthKv {
            sensitivity, mix, ..
        } => {
            if sensitivity.len() != n {
                return Err(PruneError::Invalid("sensitivity"));
            }
            let s: f64 = sensitivity.iter().map(|v| v.max(0.0)).sum();
            sensitivity
                .iter()
                .map(|v| {
                    let p = if s > 0.0 {
                        v.max(0.0) / s
                    } else {
                        1.0 / n as f64
                    };
                    (1.0 - mix) * p + mix / n as f64
                })
                .collect()
        }
        Strategy::Manual { fractions } => {
            if fractions.len() != n {
                return Err(PruneError::Invalid("fractions"));
            }
            fractions.clone()
        }
    };
    // Water-fill by bisection on lambda, then largest remainder.
    let (lo, hi) = (limits.min as f64, limits.max as f64);
    let fill = |lam: f64| -> f64 { w.iter().map(|&wi| (lam * wi).clamp(lo, hi)).sum() };
    let (mut a, mut b) = (0.0f64, 1.0f64);
    while fill(b) < total as f64 && b < 1e18 {
        b *= 2.0;
    }
    for _ in 0..200 {
        let m = 0.5 * (a + b);
        if fill(m) < total as f64 {
            a = m;
        } else {
            b = m;
        }
    }
    let x: Vec<f64> = w.iter().map(|&wi| (b * wi).clamp(lo, hi)).collect();
    let mut out: Vec<usize> = x.iter().map(|v| v.floor() as usize).collect();
    let mut rest = total as i64 - out.iter().sum::<usize>() as i64;
    let mut order: Vec<usize> = (0..n).collect();
    order.sort_by(|&i, &j| (x[j] - x[j].floor()).total_cmp(&(x[i] - x[i].floor())));
    let mut k = 0;
    while rest > 0 {
        let i = order[k % n];
        if out[i] < limits.max {
            out[i] += 1;
            rest -= 1;
        }
        k += 1;
    }
    while rest < 0 {
        let i = order[k % n];
        if out[i] > limits.min {
            out[i] -= 1;
            rest += 1;
        }
        k += 1;
    }
    Ok(out)
}

pub fn rebalance(
    budgets: &[usize],
    layer: usize,
    target: usize,
    locked: &[bool],
    limits: LayerLimits,
) -> Result<Vec<usize>, PruneError> {
    if locked[layer] {
        return Err(PruneError::LayerLocked { layer });
    }
    let n = budgets.len();
    let others: Vec<usize> = (0..n).filter(|&i| i != layer && !locked[i]).collect();
    let take: usize = others.iter().map(|&i| budgets[i] - limits.min).sum();
    let absorb: usize = others.iter().map(|&i| limits.max - budgets[i]).sum();
    let cur = budgets[layer];
    let target = target
        .clamp(limits.min, limits.max)
        .clamp(cur.saturating_sub(absorb), cur + take);
    let mut out = budgets.to_vec();
    out[layer] = target;
    let mut k = 0;
    if target > cur {
        let mut d = target - cur;
        while d > 0 {
            let i = others[k % others.len()];
            if out[i] > limits.min {
                out[i] -= 1;
                d -= 1;
            }
            k += 1;
        }
    } else {
        let mut d = cur - target;
        while d > 0 {
            let i = others[k % others.len()];
            if out[i] < limits.max {
                out[i] += 1;
                d -= 1;
            }
            k += 1;
        }
    }
    Ok(out)
}

pub fn kept_fractions(budgets: &[usize], prompt_len: usize) -> Vec<f64> {
    budgets
        .iter()
        .map(|&b| {
            if prompt_len == 0 {
                1.0
            } else {
                b as f64 / prompt_len as f64
            }
        })
        .collect()
}
