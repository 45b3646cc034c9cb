//! `depthkv perf-plot`: prefill and decode tokens/s against context, ours
//! (full and pruned) beside the peers, from the JSON files of one GPU session
//! (`depthkv bench --json`, scripts/gpu/transformers_speed.py, llama-bench -o json).

use crate::eval::plot::{plot_panels, push_point, LegendCorner, Panel};
use clap::Args;
use serde_json::Value;
use std::path::{Path, PathBuf};

#[derive(Args, Debug)]
pub struct PerfPlotArgs {
    /// `depthkv bench --json` outputs (one per model or device).
    #[arg(long, required = true)]
    pub ours: Vec<PathBuf>,
    /// scripts/gpu/transformers_speed.py outputs.
    #[arg(long)]
    pub transformers: Vec<PathBuf>,
    /// scripts/gpu/llamacpp.sh outputs (llama-bench JSON, prefill and decode).
    #[arg(long)]
    pub llamacpp: Vec<PathBuf>,
    /// The chart, .png or .svg.
    #[arg(short, long)]
    pub output: PathBuf,
    /// Replace the output if it exists.
    #[arg(long)]
    pub overwrite: bool,
}

type Series = Vec<(String, Vec<(f64, f64)>)>;

fn push(series: &mut Series, name: String, x: f64, y: Option<f64>) {
    if let Some(y) = y.filter(|y| y.is_finite()) {
        push_point(series, name, x, y);
    }
}

fn read(path: &Path) -> anyhow::Result<Value> {
    let text = std::fs::read_to_string(path).map_err(|e| anyhow::anyhow!("reading {}: {e}", path.display()))?;
    serde_json::from_str(&text).map_err(|e| anyhow::anyhow!("{} is not JSON: {e}", path.display()))
}

/// Adds our bench rows: full-cache prefill and decode, pruned decode.
fn add_ours(v: &Value, prefill: &mut Series, decode: &mut Series) {
    let tag = v["model"].as_str().unwrap_or("model");
    for r in v["contexts"].as_array().into_iter().flatten() {
        let Some(x) = r["context"].as_f64() else { continue };
        push(prefill, format!("ours, {tag}"), x, r["ours"]["prefill_tps"]["median"].as_f64());
        push(decode, format!("ours full, {tag}"), x, r["ours"]["decode_tps"]["median"].as_f64());
        for p in r["pruned"].as_array().into_iter().flatten() {
            let name = format!("ours {} {}, {tag}", p["strategy"].as_str().unwrap_or("?"), p["budget"]);
            push(decode, name, x, p["decode_tps"]["median"].as_f64());
        }
    }
}

fn add_transformers(v: &Value, prefill: &mut Series, decode: &mut Series) {
    for r in v["results"].as_array().into_iter().flatten() {
        let Some(x) = r["context"].as_f64() else { continue };
        push(prefill, "transformers (sdpa)".into(), x, r["prefill_tps"]["median"].as_f64());
        push(decode, "transformers (sdpa)".into(), x, r["decode_tps"]["median"].as_f64());
    }
}

/// llama-bench rows: `n_prompt` > 0 is prefill at that length, `n_gen` > 0
/// decode at depth `n_depth`.
fn add_llamacpp(v: &Value, prefill: &mut Series, decode: &mut Series) {
    let rows = ["prefill", "decode"].iter().flat_map(|k| v[*k].as_array().into_iter().flatten());
    for r in rows {
        let tps = r["avg_ts"].as_f64();
        let (p, g, d) = (r["n_prompt"].as_f64(), r["n_gen"].as_f64(), r["n_depth"].as_f64().unwrap_or(0.0));
        match (p, g) {
            (Some(p), Some(0.0)) if p > 0.0 => push(prefill, "llama.cpp".into(), p, tps),
            (_, Some(g)) if g > 0.0 => push(decode, "llama.cpp".into(), d + g, tps),
            _ => {}
        }
    }
}

pub fn run(a: PerfPlotArgs) -> anyhow::Result<()> {
    crate::profile::check_target(&a.output, a.overwrite)?;
    let (mut prefill, mut decode) = (Series::new(), Series::new());
    for p in &a.ours {
        add_ours(&read(p)?, &mut prefill, &mut decode);
    }
    for p in &a.transformers {
        add_transformers(&read(p)?, &mut prefill, &mut decode);
    }
    for p in &a.llamacpp {
        add_llamacpp(&read(p)?, &mut prefill, &mut decode);
    }
    for s in prefill.iter_mut().chain(decode.iter_mut()) {
        s.1.sort_by(|a, b| a.0.total_cmp(&b.0));
    }
    if prefill.is_empty() && decode.is_empty() {
        anyhow::bail!("no figures found in the given files");
    }
    let panels = [
        Panel {
            title: "prefill",
            x_label: "context (tokens)",
            y_label: "tokens/s",
            series: &prefill,
            legend: LegendCorner::UpperRight,
        },
        Panel {
            title: "decode",
            x_label: "context (tokens)",
            y_label: "tokens/s",
            series: &decode,
            legend: LegendCorner::UpperRight,
        },
    ];
    plot_panels("speed against context", &panels, &a.output)?;
    eprintln!("wrote {}", a.output.display());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn reads_each_tool_s_figures() {
        let (mut p, mut d) = (Series::new(), Series::new());
        let ours = json!({"model": "m", "contexts": [{"context": 8192, "ours": {"prefill_tps": {"median": 10.0},
            "decode_tps": {"median": 2.0}}, "pruned": [{"strategy": "uniform", "budget": 0.2, "decode_tps": {"median": 3.0}}]}]});
        add_ours(&ours, &mut p, &mut d);
        let hf =
            json!({"results": [{"context": 8192, "prefill_tps": {"median": 20.0}, "decode_tps": {"median": 1.0}}]});
        add_transformers(&hf, &mut p, &mut d);
        let lc = json!({"prefill": [{"n_prompt": 512, "n_gen": 0, "n_depth": 0, "avg_ts": 50.0}],
            "decode": [{"n_prompt": 0, "n_gen": 128, "n_depth": 1024, "avg_ts": 7.0}]});
        add_llamacpp(&lc, &mut p, &mut d);
        assert_eq!(p.len(), 3);
        assert_eq!(d.len(), 4);
        assert_eq!(d.iter().find(|s| s.0 == "llama.cpp").unwrap().1, vec![(1152.0, 7.0)]);
        assert_eq!(d.iter().find(|s| s.0 == "ours uniform 0.2, m").unwrap().1, vec![(8192.0, 3.0)]);
    }
}
