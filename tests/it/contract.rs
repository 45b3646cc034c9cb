//! The protocol contract (src/session/contract.rs) held against the real
//! session on the default model and against the UI's fake engine: the UI's
//! tests run on a fake that behaves like the engine it stands in for.

use crate::common;
use depthkv::prune::SelectConfig;
use depthkv::session::contract::{self, Client};
use depthkv::session::protocol::{EngineHandle, GenParams};
use depthkv::session::worker;
use depthkv::ui::fake;

/// Long enough (well over the 36-token per-layer minimum) that budgets can move.
const PROMPT: &str = "The museum's night guard wrote in her notebook every evening. Monday: the east door code \
is 5902, the west door sticks in the rain, and the fountain pump must be switched off at ten. Tuesday: a \
school group left a red scarf in the map room; it is in the lost-property box under the front desk. \
Wednesday: the heating in the sculpture hall failed at midnight and came back at four in the morning. \
Thursday: a courier left a crate of old maps in the hall, addressed to the curator, who is away until \
the ninth. Friday: the alarm panel beeped twice at three, nothing was found on the round. \
Question: what is the east door code, and where is the red scarf?";

/// A prompt the model answers at length (eviction needs more than
/// `EVICT_SLACK + 1` generated tokens to be tested).
const STORY: &str = "The lighthouse on the northern cape has stood for two hundred years. Its keeper, an old \
woman named Ilse, climbs the ninety-one steps every evening to light the lamp, writes the weather in a \
leather log, and feeds the three cats that live in the storeroom. One winter night a storm tore the roof off \
the boathouse and a small boat drifted onto the rocks below the tower. Write a long story about what Ilse \
found in the boat, what she did next, and how the village learned of it.";

fn real_session() -> EngineHandle {
    let engine = common::owned_engine();
    let (cmd_tx, cmd_rx) = std::sync::mpsc::channel();
    let (ev_tx, ev_rx) = tokio::sync::mpsc::unbounded_channel();
    std::thread::spawn(move || worker::serve(engine, SelectConfig::default(), cmd_rx, ev_tx));
    EngineHandle { commands: cmd_tx, events: ev_rx }
}

fn holds(name: &str, handle: EngineHandle, params: GenParams) {
    let mut client = Client::connect(handle).unwrap_or_else(|e| panic!("{name}: {e}"));
    if let Err(e) = contract::check_all(&mut client, PROMPT, &params) {
        panic!("{name} breaks the protocol contract: {e}");
    }
    let long = GenParams { max_new_tokens: 40, ..params };
    if let Err(e) = contract::decode_reports_follow_the_budgets(&mut client, STORY, &long) {
        panic!("{name} breaks the protocol contract while decoding: {e}");
    }
    client.shutdown();
}

#[test]
fn real_session_keeps_the_contract() {
    holds("the real session", real_session(), GenParams::greedy(6));
}

#[test]
fn fake_engine_keeps_the_contract() {
    let handle = fake::spawn_demo(12, std::time::Duration::from_millis(1));
    holds("the fake engine", handle, GenParams::greedy(6));
}
