//! `depthkv generate`: stream a completion, with the full or a pruned cache.

use super::args::ModelArgs;
use super::strategy::{AllocArgs, SelectArgs};
use super::values;
use crate::engine::evict::Evictor;
use crate::engine::Detokenizer;
use crate::engine::{GenParams, KvPrecision};
use crate::prune::{apply, StrategyKind};
use crate::userio::{read_bounded, sanitize_multiline, MAX_PROMPT_BYTES};
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
    #[arg(long, default_value_t = 64, value_parser = values::tokens_or_zero)]
    pub max_new: usize,
    /// Sampling temperature in [0, 100]; 0 is greedy.
    #[arg(long, default_value_t = 0.0, value_parser = values::temperature, allow_negative_numbers = true)]
    pub temperature: f64,
    /// Nucleus sampling threshold in (0, 1] (needs --temperature above 0).
    #[arg(long, value_parser = values::top_p, allow_negative_numbers = true)]
    pub top_p: Option<f64>,
    /// Seed for sampling: the same seed gives the same text.
    #[arg(long, default_value_t = 299792458)]
    pub seed: u64,
    /// Fraction of the prompt's KV cache kept, summed over layers, in (0, 1] (1 = no pruning).
    #[arg(long, default_value_t = 1.0, value_parser = values::budget, allow_negative_numbers = true)]
    pub budget: f64,
    /// How the budget is split across layers (`manual`: a profile's fractions;
    /// `adaptive`: from the prompt's own attention).
    #[arg(long, value_enum, default_value_t = StrategyKind::DepthKv)]
    pub strategy: StrategyKind,
    #[command(flatten)]
    pub alloc: AllocArgs,
    #[command(flatten)]
    pub select: SelectArgs,
    /// Store the kept tokens quantized (int8, int4) or in the activation dtype.
    #[arg(long, value_enum, default_value_t = KvPrecision::Native)]
    pub kv_precision: KvPrecision,
    /// Budget as KV memory instead of a fraction (e.g. `64MiB`): the tokens
    /// that fit at --kv-precision, split by --strategy.
    #[arg(long, value_parser = values::byte_size, conflicts_with = "budget")]
    pub kv_bytes: Option<usize>,
    /// Keep every layer at its budget while generating too, evicting the slots
    /// with the least accumulated attention (H2O style). Off by default.
    #[arg(long)]
    pub decode_evict: bool,
    /// Print one JSON object at the end instead of streaming text.
    #[arg(long)]
    pub json: bool,
}

pub fn run(a: GenerateArgs) -> anyhow::Result<()> {
    let budget = a.budget;
    if a.top_p.is_some() && a.temperature == 0.0 {
        anyhow::bail!("--top-p only applies when sampling: give --temperature above 0 as well");
    }
    let prompt = match (&a.prompt, &a.prompt_file) {
        (Some(p), _) => p.clone(),
        (None, Some(f)) => read_bounded(f, MAX_PROMPT_BYTES)?,
        (None, None) => anyhow::bail!("give --prompt or --prompt-file"),
    };
    let select = a.select.config();
    let pruning = budget < 1.0 || a.kv_bytes.is_some() || a.kv_precision != KvPrecision::Native;
    let profile = if pruning { a.alloc.read_profile_for(&[a.strategy])? } else { None };
    let strategy = if pruning { Some(a.alloc.strategy(a.strategy, profile.as_ref())?) } else { None };
    let engine = a.model.load()?;
    if let Some(p) = &profile {
        a.alloc.check_profile(p, &engine)?;
    }
    let chat = !a.raw && engine.codec.has_chat();
    let tokens = engine.encode(&prompt, chat)?;
    let budget = match a.kv_bytes {
        Some(bytes) => {
            let c = engine.config();
            let per_slot = a.kv_precision.bytes_per_slot(c.n_kv_heads, c.head_dim, engine.model.dtype());
            apply::fraction_for_bytes(bytes, tokens.len(), c.n_layers, per_slot)
        }
        None => budget,
    };
    if pruning {
        apply::check_reachable(budget, tokens.len(), &engine.config().kv_ceilings(tokens.len()), &select)?;
    }
    let pre = engine.prefill(&tokens, select.prefill_options())?;
    let full_bytes = pre.cache.bytes();
    let (cache, budgets) = match &strategy {
        None => (pre.cache.clone(), vec![tokens.len(); engine.config().n_layers]),
        Some(s) => {
            let budgets = apply::budgets_for_prefill(s, budget, &pre, &select)?;
            (apply::prune_as(&pre, &budgets, &select, a.max_new, a.kv_precision)?.0, budgets)
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
            print!("{}", sanitize_multiline(&detok.push(&engine.codec, t)));
            let _ = std::io::stdout().flush();
        }
    }
    if !a.json {
        print!("{}", sanitize_multiline(&detok.flush(&engine.codec)));
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
            "kv_precision": a.kv_precision.name(),
            "budget": budget,
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
