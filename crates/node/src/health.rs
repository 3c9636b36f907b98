//! Health as the gRPC health protocol reports it, per mounted service and for the whole
//! server (`""`), plus a liveness answer (`liveness`) that never depends on the store.
//!
//! Serving status with hysteresis: NOT_SERVING until the store first answers; after that,
//! one failed check is not enough to flip (a blip must not empty a load balancer), and one
//! success is not enough to come back (a flapping database must not take traffic).

use std::collections::BTreeMap;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use hubdir_store::Store;
use opentelemetry::KeyValue;
use opentelemetry::metrics::Gauge;
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

/// The health service name whose status says only that the process is alive and answering:
/// SERVING from start to exit, whatever the store does. Orchestrators use it for liveness, so
/// that a database outage takes pods out of rotation (readiness) without restarting them.
pub const LIVENESS: &str = "liveness";

/// Services that are not ready when they are mounted: each says when it is (the discovery
/// index, once loaded). A service never named here is ready as soon as the store answers.
#[derive(Debug, Clone)]
pub struct Readiness(Arc<tokio::sync::watch::Sender<BTreeMap<&'static str, bool>>>);

impl Default for Readiness {
    fn default() -> Self {
        Readiness(Arc::new(tokio::sync::watch::Sender::new(BTreeMap::new())))
    }
}

impl Readiness {
    /// Records whether `service` is ready to answer.
    pub fn set(&self, service: &'static str, ready: bool) {
        self.set_all(&[service], ready);
    }

    /// Records whether each of `services` is ready, as one change: the health watcher sees
    /// them turn together, so the whole server (`""`) never reads a mix of the two.
    pub fn set_all(&self, services: &[&'static str], ready: bool) {
        self.0.send_if_modified(|map| {
            let mut changed = false;
            for service in services {
                changed |= map.insert(service, ready) != Some(ready);
            }
            changed
        });
    }

    fn is_ready(&self, service: &str) -> bool {
        self.0.borrow().get(service).copied().unwrap_or(true)
    }
}

/// Sets every listed service, and the whole server (`""`), to NOT_SERVING: at start and
/// on shutdown. Liveness is left as it is.
pub async fn stop_all(reporter: &HealthReporter, services: &[&'static str]) {
    reporter.set_service_status("", ServingStatus::NotServing).await;
    for name in services {
        reporter.set_service_status(*name, ServingStatus::NotServing).await;
    }
}

/// What each service reports: SERVING when the store serves and the service is ready; the
/// whole server (`""`) only when every service does.
fn statuses(store_serving: bool, readiness: &Readiness, services: &[&'static str]) -> Vec<(&'static str, bool)> {
    let mut out: Vec<(&'static str, bool)> =
        services.iter().map(|name| (*name, store_serving && readiness.is_ready(name))).collect();
    let all = out.iter().all(|(_, serving)| *serving);
    out.push(("", store_serving && all));
    out
}

/// `hubdir.changelog.head_seq{origin}`: the last seq of each origin's change log held here.
fn head_seq() -> &'static Gauge<u64> {
    static HEAD: OnceLock<Gauge<u64>> = OnceLock::new();
    HEAD.get_or_init(|| {
        opentelemetry::global::meter(hubdir_telemetry::SCOPE)
            .u64_gauge("hubdir.changelog.head_seq")
            .with_description("The last seq of each origin's change log held by this node")
            .build()
    })
}

/// Records each origin's change-log head (when metrics are collected, after each good check).
async fn record_log_heads(store: &Store) {
    match store.origin_logs().await {
        Ok(logs) => {
            for log in logs {
                head_seq().record(log.last_seq, &[KeyValue::new("origin", log.origin.to_string())]);
            }
        }
        Err(err) => tracing::debug!(error = %err, "reading the change-log heads failed"),
    }
}

/// Checks the store every `CHECK_INTERVAL`, and follows the services' readiness, reporting
/// each change through `reporter`; every service starts NOT_SERVING (`stop_all`). Runs until
/// aborted.
pub async fn watch(
    store: Arc<Store>,
    readiness: Readiness,
    reporter: HealthReporter,
    services: Vec<&'static str>,
    metrics: bool,
) {
    let mut gate = HealthGate::default();
    // What `serve` reported at start (`stop_all`): a status is set again only when it changes,
    // so a watcher never sees the same status twice in a row.
    let mut reported: BTreeMap<&'static str, bool> = services.iter().map(|name| (*name, false)).collect();
    reported.insert("", false);
    let mut ready_changes = readiness.0.subscribe();
    let mut next_check = tokio::time::Instant::now();
    let mut store_serving = false;
    loop {
        tokio::select! {
            () = tokio::time::sleep_until(next_check) => {
                // A database that does not answer at all (a black hole) fails the check too.
                let ok = match tokio::time::timeout(CHECK_INTERVAL, store.ping()).await {
                    Ok(Ok(())) => true,
                    Ok(Err(err)) => {
                        tracing::warn!(error = %err, "store health check failed");
                        false
                    }
                    Err(_) => {
                        tracing::warn!(timeout_secs = CHECK_INTERVAL.as_secs(), "store health check timed out");
                        false
                    }
                };
                if ok && metrics {
                    record_log_heads(&store).await;
                }
                store_serving = gate.observe(ok);
                next_check = tokio::time::Instant::now() + CHECK_INTERVAL;
            }
            // Never an error: `readiness`, held here, keeps the sender alive.
            _ = ready_changes.changed() => {}
        }
        for (service, serving) in statuses(store_serving, &readiness, &services) {
            if reported.insert(service, serving) != Some(serving) {
                let status = if serving { ServingStatus::Serving } else { ServingStatus::NotServing };
                reporter.set_service_status(service, status).await;
                let shown = if service.is_empty() { "(all)" } else { service };
                tracing::info!(service = shown, serving, "health status changed");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn services_set_together_change_once() {
        let readiness = Readiness::default();
        readiness.set_all(&["a", "b"], false);
        let mut changes = readiness.0.subscribe();
        readiness.set_all(&["a", "b"], true);
        assert!(changes.has_changed().unwrap());
        changes.mark_unchanged();
        assert!((readiness.is_ready("a"), readiness.is_ready("b")) == (true, true));
        // Setting what is already so is no change at all.
        readiness.set_all(&["a", "b"], true);
        assert!(!changes.has_changed().unwrap());
    }

    #[test]
    fn the_whole_server_serves_only_when_every_service_does() {
        let readiness = Readiness::default();
        let services = ["a", "b"];
        readiness.set("b", false);
        assert_eq!(statuses(true, &readiness, &services), vec![("a", true), ("b", false), ("", false)]);
        readiness.set("b", true);
        assert_eq!(statuses(true, &readiness, &services), vec![("a", true), ("b", true), ("", true)]);
        assert_eq!(statuses(false, &readiness, &services), vec![("a", false), ("b", false), ("", false)]);
    }

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
