//! The command-line front end (clap). Every subcommand drives the headless
//! engine directly; `depthkv` with no subcommand opens the TUI.

mod args;
mod fetch_model;
mod generate;

use clap::{Parser, Subcommand};

pub use args::ModelArgs;

#[derive(Parser, Debug)]
#[command(
    name = "depthkv",
    version,
    about = "Layer-dependent KV-cache pruning workbench",
    long_about = "depthkv measures how much each layer of a language model suffers when its KV cache is pruned, \
splits one fixed KV budget across layers by that sensitivity (DepthKV), and compares the result with \
uniform pruning and the full cache. With no subcommand it opens the terminal workbench."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Cmd>,
}

#[derive(Subcommand, Debug)]
pub enum Cmd {
    /// Generate text for a prompt, streaming tokens, optionally with a pruned KV cache.
    Generate(generate::GenerateArgs),
    /// Install the default model (SmolLM2-135M-Instruct, GGUF Q4_1) into the data directory.
    FetchModel,
}

pub fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Some(Cmd::Generate(a)) => generate::run(a),
        Some(Cmd::FetchModel) => fetch_model::run(),
        None => anyhow::bail!("the TUI is not built yet; try `depthkv generate --prompt ...`"),
    }
}
