//! Budgets on a model whose layers are not alike: the Gemma 2 fixture
//! (4 layers, local and global alternating, window 16) on its 96-token
//! reference prompt. Local layers hold at most their window; the unpruned
//! total is the sum of the ceilings.

use crate::families::{dir, max_diff, model};
use depthkv::engine::model::Logits;
use depthkv::engine::parity::{Format, Reference};
use depthkv::engine::{Engine, LoadOptions, PrefillOptions, Prefilled};
use depthkv::prune::{apply, SelectConfig, Strategy, PYRAMID_BETA};
use depthkv::session::contract::{self, Client};
use depthkv::session::protocol::{EngineHandle, GenParams};
use depthkv::session::worker;
use depthkv::ui::budget::{Budgets, Shape};

const WINDOW: usize = 16;

/// Few sinks and a short observation window, so a 16-token window leaves
/// room to prune.
fn select() -> SelectConfig {
    SelectConfig { sinks: 2, window: 4, ..SelectConfig::default() }
}

fn prefilled() -> (depthkv::engine::model::Model, Prefilled) {
    let m = model("gemma2", Format::Safetensors);
    let r = Reference::load(&dir("gemma2")).unwrap();
    let (cache, stats, first_logits) =
        m.prefill(&r.prompt, PrefillOptions { chunk: 32, ..select().prefill_options() }).unwrap();
    let kv_ceilings = m.config.kv_ceilings(r.prompt.len());
    let pre = Prefilled { tokens: r.prompt.clone(), cache, stats, first_logits, seconds: 0.0, kv_ceilings };
    (m, pre)
}

#[test]
fn local_layers_are_capped_at_their_window() {
    let (_, pre) = prefilled();
    let l = pre.tokens.len();
    assert_eq!(pre.kv_ceilings, vec![WINDOW, l, WINDOW, l]);
    let strategies =
        [Strategy::Uniform, Strategy::Pyramid { beta: PYRAMID_BETA }, Strategy::Adaptive { weights: None, mix: 0.2 }];
    for budget in [0.2, 0.5, 0.9] {
        for s in &strategies {
            let b = apply::budgets_for_prefill(s, budget, &pre, &select()).unwrap();
            let unpruned: usize = pre.kv_ceilings.iter().sum();
            assert_eq!(b.iter().sum::<usize>(), (budget * unpruned as f64).round() as usize, "{s:?} {budget}");
            assert!(b.iter().zip(&pre.kv_ceilings).all(|(b, c)| b <= c), "{s:?} {budget}: {b:?}");
            // A local layer chooses among the positions it can still see.
            for (li, heads) in apply::plan(&pre, &b, &select()).iter().enumerate() {
                let first = (l - pre.kv_ceilings[li]) as u32;
                assert!(heads.iter().all(|h| h.len() == b[li] && h[0] >= first), "{s:?} layer {li}: {heads:?}");
            }
        }
    }
    // Half the unpruned total: the equal share (28) exceeds the window, so
    // what the local layers cannot hold flows to the global ones.
    let b = apply::budgets_for_prefill(&Strategy::Uniform, 0.5, &pre, &select()).unwrap();
    assert_eq!(b, vec![WINDOW, 40, WINDOW, 40]);
}

/// Keeping every layer's ceiling prunes local layers to their window, in
/// memory, yet decodes as the unpruned cache does: the window mask already
/// hid every dropped slot.
#[test]
fn keeping_every_ceiling_decodes_as_the_full_cache() {
    let (m, pre) = prefilled();
    let (mut pruned, occ) = apply::prune(&pre, &pre.kv_ceilings, &select(), 8).unwrap();
    let l = pre.tokens.len() as u32;
    assert!(occ.kept[0].iter().all(|h| *h == ((l - WINDOW as u32)..l).collect::<Vec<_>>()));
    assert!(occ.kept[1].iter().all(|h| h.len() == l as usize));
    assert!(pruned.bytes() < pre.cache.bytes(), "local layers hold only their window");
    let mut full = pre.cache.clone();
    for tok in [5u32, 17, 230, 9, 41] {
        let a = m.forward(&mut pruned, &[tok], Logits::Last).unwrap();
        let b = m.forward(&mut full, &[tok], Logits::Last).unwrap();
        let d = max_diff(&a, &b);
        assert!(d < 1e-4, "pruned to the windows vs full differ by {d}");
    }
}

fn windowed_session() -> EngineHandle {
    let opts = LoadOptions { model: Some(dir("gemma2").display().to_string()), ..LoadOptions::default() };
    let engine = Engine::load(&opts, &mut |_| {}).unwrap();
    let (cmd_tx, cmd_rx) = std::sync::mpsc::channel();
    let (ev_tx, ev_rx) = tokio::sync::mpsc::unbounded_channel();
    std::thread::spawn(move || worker::serve(engine, select(), cmd_rx, ev_tx));
    EngineHandle { commands: cmd_tx, events: ev_rx }
}

/// The session on a windowed model: its snapshot carries the ceilings, the
/// contract holds (incl. refusing a local layer above its window), and the
/// full variant keeps every ceiling.
#[test]
fn windowed_session_keeps_the_contract() {
    let mut client = Client::connect(windowed_session()).unwrap();
    let prompt = "Night notes: the east door code is 5902; the red scarf is in the box under the desk. Code?";
    if let Err(e) = contract::check_all(&mut client, prompt, &GenParams::greedy(6)) {
        panic!("the session on gemma2 breaks the protocol contract: {e}");
    }
    let l = client.prompt_len;
    assert!(l > WINDOW, "the prompt must be longer than the window ({l} tokens)");
    assert_eq!(client.kv_ceilings, vec![WINDOW, l, WINDOW, l]);
    let uniform = client.uniform(0.5);
    assert_eq!(uniform[0], WINDOW / 2);
    // Floors: a local layer keeps its observation window without sinks it cannot
    // see, a global one sinks + window; the workbench's splits use exactly these.
    let sel = select();
    assert_eq!(client.layer_floors, vec![sel.window, sel.sinks + sel.window, sel.window, sel.sinks + sel.window]);
    let mut split = Budgets::new(0.0, Shape::Uniform);
    split.configure(4, l, &client.layer_floors, &client.kv_ceilings).unwrap();
    let engine_bounds = apply::bounds(&sel, l, &client.kv_ceilings);
    assert_eq!(split.bounds(), engine_bounds);
    assert_eq!(split.layers, engine_bounds.lo(), "at budget 0 the workbench asks for the engine's floors");
    client.shutdown();
}

/// The smallest budget, in steps of 1e-4, that covers the fixture's floors on an `l`-token
/// prompt: local layers (ceiling WINDOW) keep the window, global ones sinks + window.
fn smallest_on_fixture(l: usize) -> f64 {
    let sel = select();
    let floors = 2 * sel.window.min(WINDOW) + 2 * (sel.sinks + sel.window).min(l);
    let unpruned = 2 * WINDOW.min(l) + 2 * l;
    // The first step whose rounded share of the unpruned total covers the floors.
    let steps = (0..=10_000u32).find(|&k| ((k as f64 / 1e4) * unpruned as f64).round() as usize >= floors).unwrap();
    steps as f64 / 1e4
}

/// The smallest reachable budget on the windowed fixture: local layers keep their window
/// without sinks, global layers sinks + window, measured against the sum of the ceilings.
/// (Ignoring the ceilings, the answer would be (sinks + window) / prompt = 0.0625.)
#[test]
fn refusal_names_the_smallest_reachable_budget() {
    let (_, pre) = prefilled();
    let (l, sel) = (pre.tokens.len(), select());
    assert_eq!(pre.kv_ceilings, vec![WINDOW, l, WINDOW, l]);
    let floors = 2 * sel.window + 2 * (sel.sinks + sel.window);
    let smallest = smallest_on_fixture(l);
    let e = apply::check_reachable(1e-6, l, &pre.kv_ceilings, &sel).unwrap_err().to_string();
    assert!(e.contains(&format!("the valid range there is [{smallest:.4}, 1]")), "{e}");
    assert!(e.contains("2 sliding-window layers keep the window alone"), "{e}");
    assert!(apply::check_reachable(smallest - 1e-4, l, &pre.kv_ceilings, &sel).is_err());
    // At that budget every strategy meets the floors exactly where it must, and plan keeps it.
    apply::check_reachable(smallest, l, &pre.kv_ceilings, &sel).unwrap();
    for s in
        [Strategy::Uniform, Strategy::Pyramid { beta: PYRAMID_BETA }, Strategy::Adaptive { weights: None, mix: 0.2 }]
    {
        let b = apply::budgets_for_prefill(&s, smallest, &pre, &sel).unwrap();
        assert_eq!(b.iter().sum::<usize>(), floors, "{s:?}: {b:?}");
        assert_eq!(b, vec![sel.window, sel.sinks + sel.window, sel.window, sel.sinks + sel.window], "{s:?}");
        let kept = apply::plan(&pre, &b, &sel);
        assert!(kept.iter().zip(&b).all(|(heads, &n)| heads.iter().all(|h| h.len() == n)), "{s:?}");
    }
}

/// The same refusal from `depthkv generate` on the fixture, before any forward pass.
#[test]
fn generate_refuses_with_the_smallest_reachable_budget() {
    let prompt = "Night notes: the east door code is 5902; the red scarf is in the box under the desk. Code?";
    let model = dir("gemma2").display().to_string();
    let opts = LoadOptions { model: Some(model.clone()), ..LoadOptions::default() };
    let l = Engine::load(&opts, &mut |_| {}).unwrap().encode(prompt, false).unwrap().len();
    assert!(l > WINDOW, "the prompt must be longer than the window ({l} tokens)");
    let (sinks, window) = (select().sinks.to_string(), select().window.to_string());
    let args = [
        "generate",
        "--model",
        &model,
        "--raw",
        "--prompt",
        prompt,
        "--max-new",
        "2",
        "--budget",
        "1e-6",
        "--strategy",
        "uniform",
    ];
    let args = [&args[..], &["--sinks", &sinks, "--window", &window]].concat();
    let smallest = smallest_on_fixture(l);
    crate::cli::fails_with(&args, &format!("the valid range there is [{smallest:.4}, 1]"));
    crate::cli::fails_with(&args, "2 sliding-window layers keep the window alone");
    // The budget it names runs.
    let named = format!("{smallest:.4}");
    let at_smallest: Vec<&str> = args.iter().map(|&a| if a == "1e-6" { named.as_str() } else { a }).collect();
    let out = crate::cli::depthkv(&at_smallest);
    assert!(out.status.success(), "{at_smallest:?}: {}", String::from_utf8_lossy(&out.stderr));
}
