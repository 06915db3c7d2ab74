//! Liveness and readiness as the probes see them.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, PoisonError};

/// Why a fresh process is not ready yet.
const STARTING: &str = "starting: caches and leader election are not settled yet";

/// Liveness and readiness flags shared by the operator loop (which sets them) and the probe
/// endpoints (which read them). Starts live and not ready.
#[derive(Debug)]
pub struct Health {
    live: AtomicBool,
    /// `None` when ready, otherwise why not.
    not_ready: Mutex<Option<String>>,
}

impl Default for Health {
    fn default() -> Self {
        Self::new()
    }
}

impl Health {
    /// Live, and not ready until the operator says so.
    pub fn new() -> Self {
        Self {
            live: AtomicBool::new(true),
            not_ready: Mutex::new(Some(STARTING.to_owned())),
        }
    }

    /// Ready (`/readyz` answers 200) or not, with a generic reason; see [`Self::set_not_ready`].
    pub fn set_ready(&self, ready: bool) {
        let reason = (!ready).then(|| "not ready".to_owned());
        *self.lock() = reason;
    }

    /// Not ready, saying why (`/readyz` answers 503 with the reason).
    pub fn set_not_ready(&self, reason: impl Into<String>) {
        *self.lock() = Some(reason.into());
    }

    /// Whether the operator loop is still running (`/healthz` answers 503 once it is not, so
    /// the kubelet restarts the process).
    pub fn set_live(&self, live: bool) {
        self.live.store(live, Ordering::Relaxed);
    }

    /// Whether `/healthz` answers 200.
    pub fn is_live(&self) -> bool {
        self.live.load(Ordering::Relaxed)
    }

    /// `Ok` when ready, otherwise the reason.
    pub fn readiness(&self) -> Result<(), String> {
        match &*self.lock() {
            None => Ok(()),
            Some(reason) => Err(reason.clone()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Option<String>> {
        // The guarded value is always whole, so a panic elsewhere leaves nothing to repair.
        self.not_ready
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn starts_live_and_not_ready_and_follows_the_flags() {
        let health = Health::new();
        assert!(health.is_live());
        assert_eq!(health.readiness(), Err(STARTING.to_owned()));
        health.set_ready(true);
        assert_eq!(health.readiness(), Ok(()));
        health.set_not_ready("HR snapshot failed");
        assert_eq!(health.readiness(), Err("HR snapshot failed".to_owned()));
        health.set_ready(false);
        assert_eq!(health.readiness(), Err("not ready".to_owned()));
        health.set_live(false);
        assert!(!health.is_live());
    }
}
