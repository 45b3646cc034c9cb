//! The workbench restores the terminal when it is killed with SIGTERM or its
//! window closes (SIGHUP). Driven under a pseudo-terminal made by `script`
//! (util-linux), so it runs in CI without a terminal; skipped with a message
//! where `script` is missing.

use crate::common;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const ENTER_ALT_SCREEN: &str = "\u{1b}[?1049h";
const LEAVE_ALT_SCREEN: &str = "\u{1b}[?1049l";
const MOUSE_OFF: &str = "\u{1b}[?1000l";

fn has_script() -> bool {
    Command::new("script").arg("--version").output().is_ok_and(|o| o.status.success())
}

fn wait_for(what: &str, limit: Duration, mut done: impl FnMut() -> bool) {
    let start = Instant::now();
    while !done() {
        assert!(start.elapsed() < limit, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Starts the TUI in a pty, sends `signal` once it is streaming, and returns
/// the terminal transcript and `stty -a` as the shell sees it afterwards.
fn kill_tui_with(signal: &str) -> (String, String) {
    let model = common::default_model_path();
    let dir = std::env::temp_dir().join(format!("depthkv-signal-{signal}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let (pid_file, log, stty) = (dir.join("pid"), dir.join("typescript"), dir.join("stty"));
    let inner = format!(
        "stty cols 120 rows 40; sh -c 'echo $$ > {pid}; exec {bin} tui --device cpu --model {model}'; stty -a > {stty}",
        pid = pid_file.display(),
        bin = env!("CARGO_BIN_EXE_depthkv"),
        model = model.display(),
        stty = stty.display()
    );
    // stdin stays open (a pipe we hold) so `script` keeps the session alive.
    let mut child = Command::new("script")
        .args(["-q", "-f", "-e", "-c", &inner])
        .arg(&log)
        .env("TERM", "xterm-256color")
        .env("RUST_BACKTRACE", "0")
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start script");
    let read_log = || std::fs::read(&log).map(|b| String::from_utf8_lossy(&b).into_owned()).unwrap_or_default();
    wait_for("the TUI to take the screen", Duration::from_secs(120), || read_log().contains(ENTER_ALT_SCREEN));
    // Let the engine load and start streaming, so the signal lands mid-run.
    std::thread::sleep(Duration::from_secs(3));
    let pid = std::fs::read_to_string(&pid_file).unwrap().trim().to_string();
    let status = Command::new("kill").args([&format!("-{signal}"), &pid]).status().unwrap();
    assert!(status.success(), "kill -{signal} {pid} failed");
    wait_for("the session to end", Duration::from_secs(60), || child.try_wait().unwrap().is_some());
    drop(child.stdin.take());
    let modes = std::fs::read_to_string(&stty).unwrap_or_default();
    let transcript = read_log();
    let _ = std::fs::remove_dir_all(&dir);
    (transcript, modes)
}

fn check_restored(signal: &str) {
    if !has_script() {
        eprintln!("skipped: `script` (util-linux) is not installed, so no pseudo-terminal can be made");
        return;
    }
    let (transcript, modes) = kill_tui_with(signal);
    let after = &transcript[transcript.rfind(ENTER_ALT_SCREEN).unwrap()..];
    assert!(after.contains(LEAVE_ALT_SCREEN), "SIG{signal}: the alternate screen was not left");
    assert!(after.contains(MOUSE_OFF), "SIG{signal}: mouse capture was not turned off");
    assert!(after.contains(&format!("stopped by SIG{signal}")), "SIG{signal}: no message: {after:?}");
    // Cooked mode again: line editing and echo on (raw mode turns both off).
    let words: Vec<&str> = modes.split_whitespace().collect();
    assert!(words.contains(&"icanon") && words.contains(&"echo"), "SIG{signal} left raw mode: {modes}");
}

#[test]
fn sigterm_restores_the_terminal() {
    check_restored("TERM");
}

#[test]
fn sighup_restores_the_terminal() {
    check_restored("HUP");
}
