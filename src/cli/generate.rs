//! `depthkv generate`: stream a completion, with the full or a pruned cache.

use super::args::ModelArgs;
use super::strategy::{check_budget, AllocArgs, SelectArgs};
use crate::engine::evict::Evictor;
use crate::engine::Detokenizer;
use crate::engine::GenParams;
use crate::prune::apply;
use anyhow::Context;
use clap::Args;
use std::io::Write;

#[derive(Args, Debug)]
pub struct GenerateArgs {
    #[command(flatten)]
    pub model: ModelArgs,
    /// The prompt text.
    #[arg(long, short, required_unless_present = "prompt_file")]
    pub prompt: Option<String>,
    /// Read the prompt from a file.
    #[arg(long, conflicts_with = "prompt")]
    pub prompt_file: Option<std::path::PathBuf>,
    /// Send the prompt as is, without the model's chat template.
    #[arg(long)]
    pub raw: bool,
    /// Most new tokens to generate.
    #[arg(long, default_value_t = 64)]
    pub max_new: usize,
    /// Sampling temperature; 0 is greedy.
    #[arg(long, default_value_t = 0.0)]
    pub temperature: f64,
    /// Nucleus sampling threshold (with --temperature > 0).
    #[arg(long)]
    pub top_p: Option<f64>,
    /// Seed for sampling: the same seed gives the same text.
    #[arg(long, default_value_t = 299792458)]
    pub seed: u64,
    /// Fraction of the prompt's KV cache kept, summed over layers (1 = no pruning).
    #[arg(long, default_value_t = 1.0)]
    pub budget: f64,
    /// How the budget is split across layers: uniform, pyramid, depthkv,
    /// depthkv-softmax, depthkv-rank or manual (a profile's fractions).
    #[arg(long, default_value = "depthkv")]
    pub strategy: String,
    #[command(flatten)]
    pub alloc: AllocArgs,
    #[command(flatten)]
    pub select: SelectArgs,
    /// Keep every layer at its budget while generating too, evicting the slots
    /// with the least accumulated attention (H2O style). Off by default.
    #[arg(long)]
    pub decode_evict: bool,
    /// Print one JSON object at the end instead of streaming text.
    #[arg(long)]
    pub json: bool,
}

pub fn run(a: GenerateArgs) -> anyhow::Result<()> {
    let budget = check_budget(a.budget)?;
    let prompt = match (&a.prompt, &a.prompt_file) {
        (Some(p), _) => p.clone(),
        (None, Some(f)) => std::fs::read_to_string(f).with_context(|| format!("reading {}", f.display()))?,
        (None, None) => anyhow::bail!("give --prompt or --prompt-file"),
    };
    let select = a.select.config()?;
    let engine = a.model.load()?;
    let strategy = if budget < 1.0 { Some(a.alloc.strategy(&a.strategy, &engine)?) } else { None };
    let chat = !a.raw && engine.codec.has_chat();
    let tokens = engine.encode(&prompt, chat)?;
    let pre = engine.prefill(&tokens, select.prefill_options())?;
    let full_bytes = pre.cache.bytes();
    let (cache, budgets) = match &strategy {
        None => (pre.cache.clone(), vec![tokens.len(); engine.config().n_layers]),
        Some(s) => {
            let budgets = apply::budgets_for_prefill(s, budget, &pre, &select)?;
            (apply::prune(&pre, &budgets, &select, a.max_new)?.0, budgets)
        }
    };
    let kv_bytes = cache.bytes();
    let params = GenParams { max_new_tokens: a.max_new, temperature: a.temperature, top_p: a.top_p, seed: a.seed };
    let start = std::time::Instant::now();
    let evictor = a.decode_evict.then(|| Evictor::new(budgets.clone(), select.sinks, select.window, 16));
    let mut dec = engine.decoder_with(cache, &pre.first_logits, &params, evictor);
    let mut detok = Detokenizer::new();
    while let Some(t) = dec.step(&engine)? {
        if !a.json {
            print!("{}", detok.push(&engine.codec, t));
            let _ = std::io::stdout().flush();
        }
    }
    if !a.json {
        print!("{}", detok.flush(&engine.codec));
    }
    let out = dec.produced.clone();
    let evicted = dec.evictor.as_ref().map(|e| e.evicted);
    let secs = start.elapsed().as_secs_f64();
    let text = engine.decode(&out);
    if a.json {
        let v = serde_json::json!({
            "prompt_tokens": tokens.len(),
            "new_tokens": out.len(),
            "text": text,
            "prefill_seconds": pre.seconds,
            "decode_tokens_per_second": out.len() as f64 / secs.max(1e-9),
            "kv_bytes": kv_bytes,
            "kv_bytes_full": full_bytes,
            "layer_budgets": budgets,
            "decode_evicted_slots": evicted,
            "kv_bytes_end": dec.cache.bytes(),
        });
        println!("{}", serde_json::to_string_pretty(&v)?);
    } else {
        println!();
        eprintln!(
            "[{} prompt tokens, prefill {:.2}s; {} new tokens at {:.1} tok/s; KV {:.2} of {:.2} MiB]",
            tokens.len(),
            pre.seconds,
            out.len(),
            out.len() as f64 / secs.max(1e-9),
            kv_bytes as f64 / 1048576.0,
            full_bytes as f64 / 1048576.0
        );
    }
    Ok(())
}
