//! Benchmark layouts (LongBench, RULER, kvpress columns) on small files written
//! for these tests, and the answer prefix placed after the real chat template.

use crate::common;

use depthkv::eval::formats::{load_eval_items, PromptFormat};
use depthkv::eval::metrics::TaskMetric;
use std::path::PathBuf;

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/formats").join(name)
}

#[test]
fn longbench_rows_become_questions_after_the_context() {
    let items = load_eval_items(&fixture("longbench.jsonl"), PromptFormat::Auto).unwrap();
    let ids: Vec<&str> = items.iter().map(|e| e.item.id.as_str()).collect();
    assert_eq!(ids, ["lb-qa-1", "lb-sum-1", "lb-cls-1"]);
    let metrics: Vec<TaskMetric> = items.iter().map(|e| e.metric).collect();
    assert_eq!(metrics, [TaskMetric::F1, TaskMetric::RougeL, TaskMetric::Contains]);
    let qa = &items[0].item.prompt;
    let (context_at, question_at) =
        (qa.find("Ravenbrook is a small town").unwrap(), qa.find("Question: Which river").unwrap());
    assert!(context_at < question_at, "the question follows the context");
    assert!(items[2].item.prompt.contains("Human being, Numeric value, Location, Entity"));
    assert_eq!(items[0].item.answers.as_deref().unwrap(), ["the river Teska", "Teska"]);
}

#[test]
fn ruler_and_kvpress_rows_keep_their_answer_prefix() {
    let ruler = load_eval_items(&fixture("ruler.jsonl"), PromptFormat::Auto).unwrap();
    assert_eq!(ruler[0].metric, TaskMetric::ContainsAll);
    assert_eq!(ruler[0].item.id, "ruler-0");
    assert!(ruler[0].answer_prefix.as_deref().unwrap().starts_with(" The special magic numbers"));
    assert_eq!(ruler[1].answer_prefix, None);
    let kv = load_eval_items(&fixture("kvpress.jsonl"), PromptFormat::Kvpress).unwrap();
    assert_eq!(kv.len(), 2);
    assert!(kv[0].item.prompt.ends_with("Nobody else knew it.\nWhat is the door code of the lighthouse?"));
    assert_eq!(kv[0].answer_prefix.as_deref(), Some("Answer: "));
    // A file in the wrong layout is reported line by line, not half loaded.
    let err = load_eval_items(&fixture("ruler.jsonl"), PromptFormat::Kvpress).unwrap_err().to_string();
    assert!(err.contains("2 problems") && err.contains("missing \"context\""), "{err}");
}

#[test]
fn answer_prefix_follows_the_real_chat_template() {
    let engine = common::default_engine();
    let kv = load_eval_items(&fixture("kvpress.jsonl"), PromptFormat::Kvpress).unwrap();
    let user = kv[0].item.prompt.clone();
    let e = kv[0].clone().with_prefix_rendered(true, &|u| engine.codec.chat.apply(u));
    assert_eq!(e.item.chat, Some(false));
    let with_prefix = engine.encode(&e.item.prompt, false).unwrap();
    let plain_chat = engine.encode(&user, true).unwrap();
    // Same tokens as the chat prompt, then the prefix: no stray BOS, nothing in between.
    assert_eq!(&with_prefix[..plain_chat.len()], plain_chat.as_slice());
    let tail = engine.decode(&with_prefix[plain_chat.len()..]);
    assert_eq!(tail.trim(), "Answer:");
}
