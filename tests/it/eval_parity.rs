//! kvpress-exact selection on the real default model, checked against an
//! independent transcription of kvpress 0.5.5's SnapKVPress.score + topk, and
//! the per-prompt records `eval` writes for pairing runs across tools.

use crate::common;

use depthkv::engine::PrefillOptions;
use depthkv::eval::formats::EvalItem;
use depthkv::eval::methods::kvpress_parity_methods;
use depthkv::eval::metrics::score_answers;
use depthkv::eval::prompts::PromptItem;
use depthkv::eval::runner::{evaluate, EvalConfig};
use depthkv::prune::{apply, kvpress_n_kept, Scorer, SelectConfig};

const PROMPT: &str = "The keeper of the lighthouse at Esk Point kept a logbook for forty years. In it he wrote \
    the weather of every morning, the ships that passed, the birds that rested on the gallery rail and the \
    price of lamp oil at the market in Kelford. On the inside cover he wrote the door code, 7316, so that \
    his daughter could find it. The log tells of storms that broke the lower windows, of a whale that \
    stranded on the spit one winter, and of the long summer when no ship came at all. What is the door code?";

/// kvpress: per query head, mean attention of the window queries over the
/// prefix, avg-pooled (zero padding counted), mean over the KV group, the window
/// padded with max + 1, then the top `n` positions.
fn kvpress_reference(window_sum: &[f32], len: usize, window: usize, kernel: usize, n: usize) -> Vec<u32> {
    let prefix = len - window;
    let half = kernel / 2;
    let mut pooled: Vec<f64> = (0..prefix)
        .map(|i| {
            let lo = i.saturating_sub(half);
            let hi = (i + half).min(prefix - 1);
            (lo..=hi).map(|j| window_sum[j] as f64).sum::<f64>() / kernel as f64
        })
        .collect();
    let top = pooled.iter().cloned().fold(f64::MIN, f64::max) + 1.0;
    pooled.extend(std::iter::repeat_n(top, window));
    let mut idx: Vec<usize> = (0..len).collect();
    idx.sort_by(|&a, &b| pooled[b].total_cmp(&pooled[a]).then(a.cmp(&b)));
    let mut kept: Vec<u32> = idx[..n].iter().map(|&i| i as u32).collect();
    kept.sort_unstable();
    kept
}

#[test]
fn kvpress_snapkv_selection_matches_the_reference_on_the_real_model() {
    let engine = common::default_engine();
    let tokens = engine.encode(PROMPT, true).unwrap();
    let (window, kernel) = (16, 7);
    let pre = engine.prefill(&tokens, PrefillOptions { window, ..Default::default() }).unwrap();
    let l = tokens.len();
    let cfg = SelectConfig::kvpress(Scorer::SnapKv, window, kernel);
    // Budgets that hold the window: below it kvpress picks among the window's
    // tied max + 1 scores in torch.topk's unspecified order.
    for keep in [0.2, 0.4, 0.7] {
        let n = kvpress_n_kept(l, keep);
        assert!(n > window);
        let budgets = vec![n; engine.config().n_layers];
        let plan = apply::plan(&pre, &budgets, &cfg);
        let (mut same, mut total) = (0usize, 0usize);
        for (layer, heads) in plan.iter().enumerate() {
            for (h, kept) in heads.iter().enumerate() {
                let want = kvpress_reference(&pre.stats.window[layer][h], l, window, kernel, n);
                assert_eq!(kept.len(), n);
                same += kept.iter().filter(|p| want.binary_search(p).is_ok()).count();
                total += n;
            }
        }
        // Identical up to float ties between neighbouring pooled scores.
        assert!(same as f64 >= 0.99 * total as f64, "keep {keep}: {same} of {total} positions agree");
    }
    // Our default forces the first 4 positions; kvpress's does not.
    let ours =
        apply::plan(&pre, &vec![kvpress_n_kept(l, 0.1); 30], &SelectConfig { window, kernel, ..Default::default() });
    assert!(ours.iter().flatten().all(|k| k[..4] == [0, 1, 2, 3]));
}

#[test]
fn eval_records_every_prompt_method_and_budget() {
    let engine = common::default_engine();
    let item = PromptItem {
        id: "lighthouse".into(),
        prompt: PROMPT.into(),
        reference: None,
        answers: Some(vec!["7316".into()]),
        chat: None,
    };
    let cfg = EvalConfig {
        budgets: vec![0.3],
        methods: kvpress_parity_methods(16, 7),
        continuation_tokens: 8,
        answer_tokens: 8,
        prefill: PrefillOptions { window: 16, ..Default::default() },
        select: SelectConfig { window: 16, ..Default::default() },
        permutations: 50,
        record_tokens: true,
        record_kept: true,
        ..Default::default()
    };
    let report = evaluate(engine, &[EvalItem::new(item)], &cfg, &mut |_, _| true).unwrap();
    let rec = &report.per_prompt[0];
    let l = rec.prompt_tokens;
    assert_eq!(rec.tokens.as_ref().unwrap().len(), l);
    assert_eq!(rec.continuation.len(), 8);
    let names: Vec<&str> = rec.runs.iter().map(|r| r.method.as_str()).collect();
    assert_eq!(names, ["full", "snapkv", "snapkv-kvpress", "streaming-kvpress", "pyramid", "pyramid-kvpress"]);
    for r in &rec.runs[1..] {
        let kept = r.kept.as_ref().expect("kept positions recorded");
        assert_eq!(kept.len(), engine.config().n_layers);
        if r.method.ends_with("kvpress") && r.method != "pyramid-kvpress" {
            assert!(kept.iter().flatten().all(|h| h.len() == kvpress_n_kept(l, 0.3)), "{}", r.method);
        }
        let (answer, scores) = (r.answer.as_ref().unwrap(), r.scores.unwrap());
        assert_eq!(scores, score_answers(answer, &["7316".into()]));
        assert_eq!(r.task_score, Some(scores.contains));
        assert!(r.kl_to_full >= 0.0 && (0.0..=1.0).contains(&r.top1_agreement));
    }
    let streaming = &rec.runs[3].kept.as_ref().unwrap()[0][0];
    assert_eq!(&streaming[..4], &[0, 1, 2, 3]);
    assert_eq!(*streaming.last().unwrap() as usize, l - 1);
    assert_eq!(rec.runs[0].kl_to_full, 0.0);
    // The report round-trips with its per-prompt part (floats to within JSON parsing).
    let back: depthkv::eval::EvalReport = serde_json::from_str(&report.to_json()).unwrap();
    let (a, b) = (&back.per_prompt[0], &report.per_prompt[0]);
    assert_eq!((&a.tokens, &a.continuation, a.runs.len()), (&b.tokens, &b.continuation, b.runs.len()));
    for (x, y) in a.runs.iter().zip(&b.runs) {
        assert_eq!((&x.method, &x.kept, &x.answer), (&y.method, &y.kept, &y.answer));
        assert!((x.kl_to_full - y.kl_to_full).abs() < 1e-12);
    }
}
