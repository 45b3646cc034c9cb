//! Signals that end the workbench: SIGTERM (`kill`), SIGHUP (the terminal
//! window closed) and SIGINT (`kill -INT`; Ctrl-C itself arrives as a key in
//! raw mode). Without a handler they kill the process on the spot and leave
//! the terminal in raw mode, on the alternate screen, with mouse capture on.
//! With it, the run loop notices within one tick, stops the engine and
//! restores the terminal. A second signal ends the process at once.

#[cfg(unix)]
use std::sync::atomic::AtomicBool;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use super::run::TICK;

/// The stop signals caught while the TUI runs, and which one arrived.
pub struct StopSignals {
    received: Arc<AtomicUsize>,
    #[cfg(unix)]
    ids: Vec<signal_hook::SigId>,
}

#[cfg(unix)]
const CAUGHT: [(i32, &str); 3] = [
    (signal_hook::consts::SIGTERM, "SIGTERM"),
    (signal_hook::consts::SIGHUP, "SIGHUP"),
    (signal_hook::consts::SIGINT, "SIGINT"),
];

impl StopSignals {
    /// Installs the handlers (none on platforms without these signals).
    pub fn install() -> std::io::Result<StopSignals> {
        let received = Arc::new(AtomicUsize::new(0));
        #[cfg(unix)]
        {
            use signal_hook::flag;
            let second = Arc::new(AtomicBool::new(false));
            let mut ids = Vec::new();
            for (sig, _) in CAUGHT {
                // Order matters: the exit check runs before the flag is set,
                // so only a second signal exits immediately.
                ids.push(flag::register_conditional_shutdown(sig, 128 + sig, Arc::clone(&second))?);
                ids.push(flag::register(sig, Arc::clone(&second))?);
                ids.push(flag::register_usize(sig, Arc::clone(&received), sig as usize)?);
            }
            Ok(StopSignals { received, ids })
        }
        #[cfg(not(unix))]
        Ok(StopSignals { received })
    }

    /// The name of the signal received so far, if any.
    pub fn received(&self) -> Option<&'static str> {
        let n = self.received.load(Ordering::SeqCst);
        #[cfg(unix)]
        return CAUGHT.iter().find(|(sig, _)| *sig as usize == n).map(|(_, name)| *name);
        #[cfg(not(unix))]
        return (n != 0).then_some("a stop signal");
    }

    /// Resolves with the signal's name once one arrives (checked every tick).
    pub async fn wait(&self) -> &'static str {
        loop {
            if let Some(name) = self.received() {
                return name;
            }
            tokio::time::sleep(TICK).await;
        }
    }
}

impl Drop for StopSignals {
    /// Puts the default actions back once the TUI has restored the terminal.
    fn drop(&mut self) {
        #[cfg(unix)]
        for id in self.ids.drain(..) {
            signal_hook::low_level::unregister(id);
        }
    }
}
