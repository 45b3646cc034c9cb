//! `depthkv tasks gen`: deterministic long-context tasks as JSONL.

use super::args::ModelArgs;
use super::values;
use crate::eval::tasks::{estimate_tokens, write_tasks_jsonl, TaskKind, TaskParams};
use crate::profile::check_target;
use clap::{Args, Subcommand};
use std::path::PathBuf;

/// Most tasks one command writes.
pub const MAX_TASKS: usize = 100_000;
/// Most prompt tokens one command writes in all (about 256 MB of text).
pub const MAX_TOTAL_TOKENS: usize = 64 << 20;

#[derive(Subcommand, Debug)]
pub enum TasksCmd {
    /// Write long-context tasks: retrieval (passkey, needle, multikey, multivalue, multiquery),
    /// tracing (vartrack), aggregation (cwe) and QA over the document (qa).
    Gen(GenArgs),
}

#[derive(Args, Debug)]
pub struct GenArgs {
    #[command(flatten)]
    pub model: ModelArgs,
    #[arg(long)]
    pub out: PathBuf,
    /// Task kinds, comma-separated: passkey, needle, multikey, vartrack, and the RULER
    /// families multivalue, multiquery, cwe (common words) and qa (scored by token F1).
    #[arg(long, value_enum, value_delimiter = ',', default_value = "passkey,needle,multikey,vartrack")]
    pub kinds: Vec<TaskKind>,
    /// Prompt lengths in tokens (measured with the model's tokenizer; at most its context).
    #[arg(long, value_delimiter = ',', default_value = "2000,4000,8000", value_parser = values::tokens)]
    pub lengths: Vec<usize>,
    /// Depths in [0, 1] where the asked fact is planted.
    #[arg(long, value_delimiter = ',', default_value = "0.1,0.5,0.9", value_parser = values::unit, allow_negative_numbers = true)]
    pub depths: Vec<f64>,
    /// Tasks per kind × length × depth.
    #[arg(long, default_value_t = 1, value_parser = values::tokens)]
    pub count: usize,
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Size prompts with a cheap estimate (chars / 4) instead of the model's tokenizer.
    #[arg(long)]
    pub estimate: bool,
    /// Replace --out if it exists.
    #[arg(long)]
    pub overwrite: bool,
}

/// Refuses a request whose output would not fit in memory, before any work.
fn check_size(a: &GenArgs) -> anyhow::Result<()> {
    let per_length = a.kinds.len().saturating_mul(a.depths.len()).saturating_mul(a.count);
    let tasks = per_length.saturating_mul(a.lengths.len());
    let tokens = a.lengths.iter().fold(0usize, |sum, &l| sum.saturating_add(l.saturating_mul(per_length)));
    if tasks > MAX_TASKS {
        anyhow::bail!("that is {tasks} tasks; one command writes at most {MAX_TASKS} (lower --count or the lists)");
    }
    if tokens > MAX_TOTAL_TOKENS {
        anyhow::bail!(
            "that is {tokens} prompt tokens in all; one command writes at most {MAX_TOTAL_TOKENS} \
             (about 256 MB; lower --lengths or --count)"
        );
    }
    Ok(())
}

pub fn run(cmd: TasksCmd) -> anyhow::Result<()> {
    let TasksCmd::Gen(a) = cmd;
    check_size(&a)?;
    check_target(&a.out, a.overwrite)?;
    let params = TaskParams {
        kinds: a.kinds.clone(),
        lengths: a.lengths.clone(),
        depths: a.depths.clone(),
        count: a.count,
        seed: a.seed,
    };
    let n = if a.estimate {
        write_tasks_jsonl(&params, &estimate_tokens, &a.out, a.overwrite)?
    } else {
        let engine = a.model.load()?;
        let context = engine.config().max_context;
        if let Some(&long) = a.lengths.iter().find(|&&l| l > context) {
            anyhow::bail!("--lengths {long} is longer than the model's context of {context} tokens");
        }
        let count =
            |t: &str| engine.codec.encode_prompt(t, false).map(|v| v.len()).unwrap_or_else(|_| estimate_tokens(t));
        write_tasks_jsonl(&params, &count, &a.out, a.overwrite)?
    };
    println!("wrote {n} tasks to {}", a.out.display());
    Ok(())
}
