//! Serving status with hysteresis: NOT_SERVING until the store first answers; after that,
//! one failed check is not enough to flip (a blip must not empty a load balancer), and one
//! success is not enough to come back (a flapping database must not take traffic).

use std::sync::Arc;
use std::time::Duration;

use hubdir_store::Store;
use tonic_health::ServingStatus;
use tonic_health::server::HealthReporter;

/// Consecutive failed checks before a serving node reports NOT_SERVING.
pub const FAILURES_TO_STOP: u32 = 3;
/// Consecutive good checks before a failed node reports SERVING again.
pub const SUCCESSES_TO_RESUME: u32 = 2;
/// Time between store checks.
pub const CHECK_INTERVAL: Duration = Duration::from_secs(5);

/// The hysteresis state machine, free of I/O.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HealthGate {
    serving: bool,
    /// Whether the store ever answered: the first success flips at once.
    ever_served: bool,
    streak: u32,
}

impl HealthGate {
    /// Records one check; returns the serving state after it.
    pub fn observe(&mut self, store_ok: bool) -> bool {
        if store_ok == self.serving {
            self.streak = 0;
            return self.serving;
        }
        self.streak += 1;
        let needed = match (store_ok, self.ever_served) {
            (true, false) => 1,
            (true, true) => SUCCESSES_TO_RESUME,
            (false, _) => FAILURES_TO_STOP,
        };
        if self.streak >= needed {
            self.serving = store_ok;
            self.ever_served |= store_ok;
            self.streak = 0;
        }
        self.serving
    }
}

/// Sets every listed service (and the whole server, `""`) to `status`.
pub async fn set_all(reporter: &HealthReporter, services: &[&'static str], status: ServingStatus) {
    reporter.set_service_status("", status).await;
    for name in services {
        reporter.set_service_status(*name, status).await;
    }
}

/// Checks the store forever, reporting through `reporter`.
pub async fn watch_store(store: Arc<Store>, reporter: HealthReporter, services: Vec<&'static str>) {
    let mut gate = HealthGate::default();
    let mut reported: Option<bool> = None;
    loop {
        let ok = match store.ping().await {
            Ok(()) => true,
            Err(err) => {
                tracing::warn!(error = %err, "store health check failed");
                false
            }
        };
        let serving = gate.observe(ok);
        if reported != Some(serving) {
            let status = if serving { ServingStatus::Serving } else { ServingStatus::NotServing };
            set_all(&reporter, &services, status).await;
            tracing::info!(serving, "health status changed");
            reported = Some(serving);
        }
        tokio::time::sleep(CHECK_INTERVAL).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn starts_not_serving_and_flips_on_the_first_answer() {
        let mut gate = HealthGate::default();
        assert!(!gate.observe(false));
        assert!(!gate.observe(false));
        assert!(gate.observe(true));
    }

    #[test]
    fn blips_do_not_flip_and_recovery_needs_a_streak() {
        let mut gate = HealthGate::default();
        gate.observe(true);
        assert!(gate.observe(false));
        assert!(gate.observe(false));
        assert!(gate.observe(true), "two failures then a success keeps serving");
        for _ in 0..FAILURES_TO_STOP - 1 {
            assert!(gate.observe(false));
        }
        assert!(!gate.observe(false), "{FAILURES_TO_STOP} failures in a row stop serving");
        assert!(!gate.observe(true));
        assert!(!gate.observe(false), "a flapping store stays out");
        assert!(!gate.observe(true));
        assert!(gate.observe(true), "{SUCCESSES_TO_RESUME} successes in a row resume");
    }
}
