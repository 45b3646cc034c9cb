//! `depthkv tasks gen`: deterministic long-context tasks as JSONL.

use super::args::ModelArgs;
use crate::eval::tasks::{estimate_tokens, write_tasks_jsonl, TaskKind, TaskParams};
use clap::{Args, Subcommand};
use std::path::PathBuf;

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
    #[arg(long, value_delimiter = ',', default_value = "passkey,needle,multikey,vartrack")]
    pub kinds: Vec<String>,
    /// Prompt lengths in tokens (measured with the model's tokenizer).
    #[arg(long, value_delimiter = ',', default_value = "2000,4000,8000")]
    pub lengths: Vec<usize>,
    /// Depths (0..1) where the asked fact is planted.
    #[arg(long, value_delimiter = ',', default_value = "0.1,0.5,0.9")]
    pub depths: Vec<f64>,
    /// Tasks per kind × length × depth.
    #[arg(long, default_value_t = 1)]
    pub count: usize,
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Size prompts with a cheap estimate (chars / 4) instead of the model's tokenizer.
    #[arg(long)]
    pub estimate: bool,
    #[arg(long)]
    pub overwrite: bool,
}

pub fn run(cmd: TasksCmd) -> anyhow::Result<()> {
    let TasksCmd::Gen(a) = cmd;
    let kinds = a.kinds.iter().map(|k| k.parse::<TaskKind>()).collect::<Result<Vec<_>, _>>()?;
    let params =
        TaskParams { kinds, lengths: a.lengths.clone(), depths: a.depths.clone(), count: a.count, seed: a.seed };
    let n = if a.estimate {
        write_tasks_jsonl(&params, &estimate_tokens, &a.out, a.overwrite)?
    } else {
        let engine = a.model.load()?;
        let count =
            |t: &str| engine.codec.encode_prompt(t, false).map(|v| v.len()).unwrap_or_else(|_| estimate_tokens(t));
        write_tasks_jsonl(&params, &count, &a.out, a.overwrite)?
    };
    println!("wrote {n} tasks to {}", a.out.display());
    Ok(())
}
