//! The command-line front end (clap). Every subcommand drives the headless
//! engine directly; `depthkv` with no subcommand opens the TUI.

mod args;
mod bench_cmd;
mod calibrate;
mod eval_cmd;
mod fetch_model;
mod generate;
mod parity;
mod perf_plot;
mod profile_cmd;
mod progress;
pub mod strategy;
mod tasks_cmd;
mod tui_cmd;
pub mod values;

use clap::{Parser, Subcommand};
use std::process::ExitCode;

pub use args::ModelArgs;

#[derive(Parser, Debug)]
#[command(
    name = "depthkv",
    version,
    args_conflicts_with_subcommands = true,
    about = "Layer-dependent KV-cache pruning workbench",
    long_about = "depthkv measures how much each layer of a language model suffers when its KV cache is pruned, \
splits one fixed KV budget across layers by that sensitivity (DepthKV), and compares the result with \
uniform pruning and the full cache. With no subcommand it opens the terminal workbench."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Cmd>,
    /// With no subcommand: the workbench's options (see `depthkv tui --help`).
    #[command(flatten)]
    pub tui: tui_cmd::TuiArgs,
}

#[derive(Subcommand, Debug)]
pub enum Cmd {
    /// Open the workbench TUI (also what `depthkv` with no subcommand does).
    Tui(tui_cmd::TuiArgs),
    /// Generate text for a prompt, streaming tokens, optionally with a pruned KV cache.
    Generate(generate::GenerateArgs),
    /// Measure each layer's sensitivity to pruning and write a profile.
    Calibrate(calibrate::CalibrateArgs),
    /// Compare full, uniform, pyramid and depthkv at several budgets on a prompt set.
    Eval(eval_cmd::EvalArgs),
    /// Generate long-context task prompts.
    #[command(subcommand)]
    Tasks(tasks_cmd::TasksCmd),
    /// Inspect or export profiles.
    #[command(subcommand)]
    Profile(profile_cmd::ProfileCmd),
    /// Measure prefill/decode speed and memory: ours vs candle's stock model, full vs pruned.
    Bench(bench_cmd::BenchArgs),
    /// Plot prefill and decode tokens/s against context: ours beside transformers and llama.cpp.
    PerfPlot(perf_plot::PerfPlotArgs),
    /// Compare our logits with transformers' on family fixtures (tests/fixtures/families), as JSON.
    Parity(parity::ParityArgs),
    /// Install the default model (SmolLM2-135M-Instruct, GGUF Q4_1) into the data directory.
    FetchModel,
}

/// Runs the command line; errors are printed once, as one message.
pub fn main() -> ExitCode {
    match run(Cli::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {}", crate::userio::sanitize_multiline(&describe_error(&e)));
            ExitCode::FAILURE
        }
    }
}

/// The error and its causes as one line of text, each cause added only when
/// the message before does not already say it (our errors often embed their
/// source, and printing both repeats it).
pub fn describe_error(e: &anyhow::Error) -> String {
    let mut out = String::new();
    for cause in e.chain() {
        let text = cause.to_string();
        if out.contains(&text) {
            continue;
        }
        if !out.is_empty() {
            out.push_str(": ");
        }
        out.push_str(&text);
    }
    out
}

fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Some(Cmd::Generate(a)) => generate::run(a),
        Some(Cmd::Calibrate(a)) => calibrate::run(a),
        Some(Cmd::Eval(a)) => eval_cmd::run(a),
        Some(Cmd::Tasks(c)) => tasks_cmd::run(c),
        Some(Cmd::Profile(c)) => profile_cmd::run(c),
        Some(Cmd::Bench(a)) => bench_cmd::run(a),
        Some(Cmd::FetchModel) => fetch_model::run(),
        Some(Cmd::Parity(a)) => parity::run(a),
        Some(Cmd::PerfPlot(a)) => perf_plot::run(a),
        Some(Cmd::Tui(a)) => tui_cmd::run(a),
        None => tui_cmd::run(cli.tui),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn causes_already_in_the_message_are_not_repeated() {
        let io = std::io::Error::new(std::io::ErrorKind::NotFound, "No such file");
        let inner = anyhow::Error::new(io).context("p.json: No such file");
        assert_eq!(describe_error(&inner), "p.json: No such file");
        let outer = inner.context("loading the model");
        assert_eq!(describe_error(&outer), "loading the model: p.json: No such file");
    }
}
