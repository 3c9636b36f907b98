//! From the wire to the store: each measurement checked, authorised for its site, classified
//! against its country's benchmark; refused ones kept in quarantine with their reason.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use hubdir_auth::Principal;
use hubdir_core::connectivity::{Measurement, Refusal, StatusSummary, Window};
use hubdir_node::config::ConnectivityConfig;
use hubdir_node::status;
use hubdir_proto::convert;
use hubdir_proto::v1::{self as pb, RefusedMeasurement};
use opentelemetry::KeyValue;

use crate::instruments;
use hubdir_store::{Quarantined, Recorded, Store, StoreError};

/// The accepted part of a batch, in order, with each item's index in the stream.
pub struct Checked {
    pub accepted: Vec<(i64, Measurement)>,
    pub refused: Vec<(i64, String, Refusal, String)>,
}

/// Checks and authorises measurements `first_index..`; `now` is the receiving clock.
pub fn check(
    batch: &[pb::Measurement],
    first_index: i64,
    principal: &Principal,
    now: DateTime<Utc>,
    window: &Window,
) -> Checked {
    let mut checked = Checked { accepted: Vec::new(), refused: Vec::new() };
    for (i, raw) in batch.iter().enumerate() {
        let index = first_index + i as i64;
        let outcome = convert::measurement_from_proto(raw).and_then(|m| {
            principal.require_agent_for(&m.site).map_err(|_| Refusal::NotPermitted)?;
            m.check(now, window)?;
            Ok(m)
        });
        match outcome {
            Ok(m) => checked.accepted.push((index, m)),
            // What is echoed back or kept is cut: a refused field may be megabytes.
            Err(refusal) => checked.refused.push((
                index,
                status::truncate(raw.site.clone(), ECHO_BYTES),
                refusal,
                status::truncate(raw.idempotency_key.clone(), ECHO_BYTES),
            )),
        }
    }
    checked
}

/// The most bytes of a refused measurement's site or key that are echoed back or kept.
const ECHO_BYTES: usize = 160;

/// Stores one batch; returns (accepted, duplicates, refused).
pub async fn record(
    store: &Store,
    config: &ConnectivityConfig,
    batch: &[pb::Measurement],
    first_index: i64,
    principal: &Principal,
    metrics: bool,
) -> Result<(i64, i64, Vec<RefusedMeasurement>), StoreError> {
    let now = Utc::now();
    let window = config.window();
    let Checked { accepted, mut refused } = check(batch, first_index, principal, now, &window);
    // The benchmark in force for each site's country, from the stored site.
    let names: Vec<String> = accepted.iter().map(|(_, m)| m.site.to_string()).collect();
    let countries = store.site_countries(&names).await?;
    let items: Vec<_> = accepted
        .iter()
        .map(|(_, m)| {
            let country = countries.get(&m.site.to_string()).map(String::as_str).unwrap_or_default();
            let summary = StatusSummary::of(m, &config.benchmark_for(country), config.ttl());
            (m.clone(), summary)
        })
        .collect();
    let outcomes = store.record_measurements(items, config.refresh()).await?;
    let (mut stored, mut duplicates) = (0, 0);
    for ((index, m), outcome) in accepted.into_iter().zip(outcomes) {
        match outcome {
            Recorded::Accepted { .. } => stored += 1,
            Recorded::Duplicate => duplicates += 1,
            Recorded::UnknownSite => refused.push((index, m.site.to_string(), Refusal::UnknownSite, m.idempotency_key)),
            Recorded::NotOwned => refused.push((index, m.site.to_string(), Refusal::NotOwnSite, m.idempotency_key)),
        }
    }
    refused.sort_by_key(|(index, ..)| *index);
    let measurements = &instruments::get().measurements;
    measurements.add(stored as u64, &[KeyValue::new("outcome", "accepted")]);
    measurements.add(duplicates as u64, &[KeyValue::new("outcome", "duplicate")]);
    for (_, _, refusal, _) in &refused {
        measurements.add(1, &[KeyValue::new("outcome", "refused"), KeyValue::new("reason", refusal.code())]);
    }
    let bodies: HashMap<i64, String> = refused
        .iter()
        .filter_map(|(index, ..)| {
            let raw = batch.get((index - first_index) as usize)?;
            Some((*index, body_json(raw)))
        })
        .collect();
    let quarantined: Vec<Quarantined> = refused
        .iter()
        .map(|(index, site, refusal, key)| Quarantined {
            principal: principal.subject.clone().unwrap_or_default(),
            // A site the sender may not report for is not filed under that site's name.
            site: if *refusal == Refusal::NotPermitted { String::new() } else { site.clone() },
            idempotency_key: key.clone(),
            reason: refusal.describe(&window),
            body: bodies.get(index).cloned().unwrap_or_default(),
            received_at: now,
        })
        .collect();
    let quarantined_any = !quarantined.is_empty();
    store.quarantine(quarantined).await?;
    if quarantined_any && metrics {
        instruments::record_quarantine_size(store).await;
    }
    let refused = refused
        .into_iter()
        .map(|(index, _, refusal, idempotency_key)| RefusedMeasurement {
            index,
            idempotency_key,
            reason: refusal.describe(&window),
        })
        .collect();
    Ok((stored, duplicates, refused))
}

/// A received measurement as JSON, for the quarantine: the fields as sent, unchecked.
fn body_json(m: &pb::Measurement) -> String {
    serde_json::json!({
        "site": m.site,
        "observe_time": m.observe_time.as_ref().map(|t| format!("{}.{:09}", t.seconds, t.nanos)),
        "online": m.online,
        "download_mbps": m.download_mbps,
        "upload_mbps": m.upload_mbps,
        "latency_ms": m.latency_ms,
        "jitter_ms": m.jitter_ms,
        "packet_loss_ratio": m.packet_loss_ratio,
        "technology": m.technology,
        "public_wifi_access_points": m.public_wifi_access_points,
        "public_computers": m.public_computers,
        "power_backup": m.power_backup,
        "source": m.source,
        "idempotency_key": m.idempotency_key,
    })
    .to_string()
}
