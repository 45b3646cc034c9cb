//! Checks of a whole prompt set against the loaded model, before the first
//! forward pass: a prompt that is too long, or too short for a budget, is
//! found in seconds rather than after an hour of evaluation.

use crate::engine::Engine;
use crate::eval::prompts::PromptItem;
use crate::prune::{apply, SelectConfig};

/// What every prompt must allow.
#[derive(Debug, Clone, Copy)]
pub struct PromptNeeds<'a> {
    /// Apply the chat template to prompts that do not say.
    pub chat: bool,
    /// Budgets the prompt is pruned to.
    pub budgets: &'a [f64],
    pub select: &'a SelectConfig,
    /// Tokens generated or scored after the prompt (the most of any step).
    pub extra_tokens: usize,
}

/// One problem with one prompt, by id.
#[derive(Debug, Clone, PartialEq)]
pub struct PromptProblem {
    pub id: String,
    pub message: String,
}

/// Tokenizes every prompt (and reference) and returns every problem found.
pub fn check_prompts(engine: &Engine, prompts: &[PromptItem], needs: &PromptNeeds<'_>) -> Vec<PromptProblem> {
    let context = engine.config().max_context;
    let mut problems = Vec::new();
    for item in prompts {
        let mut problem = |message: String| problems.push(PromptProblem { id: item.id.clone(), message });
        let chat = item.chat.unwrap_or(needs.chat) && engine.codec.has_chat();
        let tokens = match engine.encode(&item.prompt, chat) {
            Ok(t) => t.len(),
            Err(e) => {
                problem(e.to_string());
                continue;
            }
        };
        let reference = match item.reference.as_deref().filter(|r| !r.is_empty()) {
            Some(r) => match engine.codec.encode_prompt(r, false) {
                Ok(t) => t.len(),
                Err(e) => {
                    problem(format!("reference: {e}"));
                    continue;
                }
            },
            None => 0,
        };
        let after = needs.extra_tokens.max(reference);
        if tokens + after > context {
            problem(format!(
                "{tokens} prompt tokens + {after} scored or generated tokens exceed the model's context of {context}"
            ));
        }
        let ceilings = engine.config().kv_ceilings(tokens);
        for &b in needs.budgets {
            if let Err(e) = apply::check_reachable(b, tokens, &ceilings, needs.select) {
                problem(e.to_string());
            }
        }
    }
    problems
}

/// The problems as one message, one prompt per line.
pub fn describe(problems: &[PromptProblem]) -> String {
    let mut out = format!("{} problem(s) in the prompt set, found before any evaluation:", problems.len());
    for p in problems {
        out.push_str(&format!("\n  {}: {}", crate::userio::sanitize(&p.id), p.message));
    }
    out
}
