//! Connectivity measurements, their checks, and how a site's state and class follow from its
//! latest one. No I/O: the clock is an argument.

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};

use crate::SiteName;

/// How a site is connected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Technology {
    Unspecified,
    Fibre,
    Dsl,
    Cable,
    Cellular,
    Satellite,
    FixedWireless,
    Other,
}

/// Who reported a measurement.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Source {
    Agent,
    OperatorReport,
    Manual,
}

/// One measurement at a site, checked.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Measurement {
    pub site: SiteName,
    pub observed_at: DateTime<Utc>,
    pub online: bool,
    pub download_mbps: Option<f64>,
    pub upload_mbps: Option<f64>,
    pub latency_ms: Option<f64>,
    pub jitter_ms: Option<f64>,
    pub packet_loss_ratio: Option<f64>,
    pub technology: Technology,
    pub public_wifi_access_points: Option<u32>,
    pub public_computers: Option<u32>,
    pub power_backup: Option<bool>,
    pub source: Source,
    pub idempotency_key: String,
}

/// Longest idempotency key, in bytes.
pub const MAX_IDEMPOTENCY_KEY: usize = 128;

/// Why a measurement is refused. Each has a stable code, kept with the measurement in
/// quarantine and sent back to the agent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// A field is missing or out of range: `(field, what is wrong)`.
    Invalid(String, String),
    /// Observed more than the allowed skew in the future.
    FromTheFuture,
    /// Observed before the acceptance window.
    TooOld,
    /// The agent's token does not cover this site.
    NotPermitted,
    /// No such site on this node.
    UnknownSite,
    /// Another node's site: its status travels in its own origin's signed log.
    NotOwnSite,
}

impl Refusal {
    pub fn code(&self) -> &'static str {
        match self {
            Refusal::Invalid(..) => "INVALID",
            Refusal::FromTheFuture => "FROM_THE_FUTURE",
            Refusal::TooOld => "TOO_OLD",
            Refusal::NotPermitted => "NOT_PERMITTED",
            Refusal::UnknownSite => "UNKNOWN_SITE",
            Refusal::NotOwnSite => "NOT_OWN_SITE",
        }
    }

    /// The code and a sentence, as stored and returned: `TOO_OLD: ...`.
    pub fn describe(&self, window: &Window) -> String {
        let detail = match self {
            Refusal::Invalid(field, what) => format!("{field}: {what}"),
            Refusal::FromTheFuture => {
                format!("observed more than {} s in the future", window.max_future_skew.num_seconds())
            }
            Refusal::TooOld => format!("observed more than {} s ago", window.max_age.num_seconds()),
            Refusal::NotPermitted => "the token may not report for this site".into(),
            Refusal::UnknownSite => "no such site on this node".into(),
            Refusal::NotOwnSite => "another node's site: report it to the node that publishes it".into(),
        };
        format!("{}: {detail}", self.code())
    }
}

/// Which observation times are accepted, relative to the receiving clock.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Window {
    pub max_future_skew: Duration,
    pub max_age: Duration,
}

impl Default for Window {
    /// Five minutes ahead (clock skew), seven days back (an agent that was offline a week).
    fn default() -> Self {
        Window { max_future_skew: Duration::minutes(5), max_age: Duration::days(7) }
    }
}

impl Measurement {
    /// Checks ranges and the observation time against `now`.
    pub fn check(&self, now: DateTime<Utc>, window: &Window) -> Result<(), Refusal> {
        let invalid = |field: &str, what: &str| Err(Refusal::Invalid(field.into(), what.into()));
        let rate = |v: Option<f64>| v.is_some_and(|v| !v.is_finite() || !(0.0..=1_000_000.0).contains(&v));
        if self.idempotency_key.is_empty() || self.idempotency_key.len() > MAX_IDEMPOTENCY_KEY {
            return invalid("idempotency_key", "required, at most 128 bytes");
        }
        if crate::control_char(&self.idempotency_key, &[]).is_some() {
            return invalid("idempotency_key", "must not contain control characters");
        }
        if rate(self.download_mbps) {
            return invalid("download_mbps", "must be a number of Mbit/s, 0 or more");
        }
        if rate(self.upload_mbps) {
            return invalid("upload_mbps", "must be a number of Mbit/s, 0 or more");
        }
        if rate(self.latency_ms) {
            return invalid("latency_ms", "must be a number of milliseconds, 0 or more");
        }
        if rate(self.jitter_ms) {
            return invalid("jitter_ms", "must be a number of milliseconds, 0 or more");
        }
        if self.packet_loss_ratio.is_some_and(|v| !(0.0..=1.0).contains(&v)) {
            return invalid("packet_loss_ratio", "must be in [0, 1]");
        }
        if self.observed_at > now + window.max_future_skew {
            return Err(Refusal::FromTheFuture);
        }
        if self.observed_at < now - window.max_age {
            return Err(Refusal::TooOld);
        }
        Ok(())
    }
}

/// How a site's connection is right now.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum State {
    Online,
    Degraded,
    Offline,
    Unknown,
}

/// How a connection compares with the benchmark.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Class {
    Good,
    Moderate,
    Poor,
    Unknown,
}

/// Download thresholds of the connectivity benchmark, in Mbit/s.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Benchmark {
    /// At or above: good.
    pub good_mbps: f64,
    /// At or above (and below good): moderate; below: poor.
    pub moderate_mbps: f64,
}

impl Default for Benchmark {
    fn default() -> Self {
        Benchmark { good_mbps: 20.0, moderate_mbps: 1.0 }
    }
}

impl Benchmark {
    /// The class of a measurement: unknown without a download figure, poor when offline.
    pub fn classify(&self, m: &Measurement) -> Class {
        match m.download_mbps {
            _ if !m.online => Class::Poor,
            None => Class::Unknown,
            Some(d) if d >= self.good_mbps => Class::Good,
            Some(d) if d >= self.moderate_mbps => Class::Moderate,
            Some(_) => Class::Poor,
        }
    }

    /// The state a fresh measurement gives: offline when the line is down, degraded when up
    /// but poor, online otherwise.
    pub fn state(&self, m: &Measurement) -> State {
        match (m.online, self.classify(m)) {
            (false, _) => State::Offline,
            (true, Class::Poor) => State::Degraded,
            (true, _) => State::Online,
        }
    }
}

/// What the change log and the discovery index know of a site's connectivity: the state and
/// class its latest measurement gave, its speed, and when that goes stale.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct StatusSummary {
    pub state: State,
    pub class: Class,
    pub download_mbps: Option<f64>,
    pub observed_at: DateTime<Utc>,
    /// After this instant the status reads UNKNOWN.
    pub expires_at: DateTime<Utc>,
}

impl StatusSummary {
    pub fn of(m: &Measurement, benchmark: &Benchmark, ttl: Duration) -> StatusSummary {
        StatusSummary {
            state: benchmark.state(m),
            class: benchmark.classify(m),
            download_mbps: m.download_mbps,
            observed_at: m.observed_at,
            expires_at: m.observed_at + ttl,
        }
    }

    /// The state and class as of `now`: both UNKNOWN once the status has expired.
    pub fn at(&self, now: DateTime<Utc>) -> (State, Class) {
        if now > self.expires_at { (State::Unknown, Class::Unknown) } else { (self.state, self.class) }
    }

    /// Whether a change from `previous` is worth a change-log event: the state or class
    /// changed, or the previous event is older than `refresh` (so followers' TTLs do not
    /// lapse while nothing changes).
    pub fn worth_logging(&self, previous: Option<&StatusSummary>, refresh: Duration) -> bool {
        previous.is_none_or(|p| {
            p.state != self.state || p.class != self.class || self.observed_at - p.observed_at >= refresh
        })
    }
}

/// The median of `values` (the mean of the middle two for an even count); `None` if empty.
/// Sorts in place.
pub fn median(values: &mut [f64]) -> Option<f64> {
    values.sort_by(f64::total_cmp);
    let n = values.len();
    match n {
        0 => None,
        _ if n % 2 == 1 => Some(values[n / 2]),
        _ => Some((values[n / 2 - 1] + values[n / 2]) / 2.0),
    }
}

/// The nearest-rank percentile `p` (in (0, 1]) of `values`: the smallest value with at least
/// that share of values at or below it; `None` if empty. Sorts in place.
pub fn percentile(values: &mut [f64], p: f64) -> Option<f64> {
    values.sort_by(f64::total_cmp);
    let rank = ((p * values.len() as f64).ceil() as usize).max(1);
    values.get(rank - 1).copied()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn measurement(online: bool, download: Option<f64>, minutes_ago: i64, now: DateTime<Utc>) -> Measurement {
        Measurement {
            site: "sites/zw/1".parse().unwrap(),
            observed_at: now - Duration::minutes(minutes_ago),
            online,
            download_mbps: download,
            upload_mbps: None,
            latency_ms: Some(30.0),
            jitter_ms: None,
            packet_loss_ratio: Some(0.01),
            technology: Technology::Fibre,
            public_wifi_access_points: Some(2),
            public_computers: None,
            power_backup: None,
            source: Source::Agent,
            idempotency_key: "k".into(),
        }
    }

    #[test]
    fn medians_and_nearest_rank_percentiles() {
        assert_eq!(median(&mut []), None);
        assert_eq!(median(&mut [3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(median(&mut [4.0, 1.0, 3.0, 2.0]), Some(2.5));
        let mut ten: Vec<f64> = (1..=10).map(f64::from).collect();
        assert_eq!(percentile(&mut ten, 0.1), Some(1.0));
        let mut eleven: Vec<f64> = (1..=11).rev().map(f64::from).collect();
        assert_eq!(percentile(&mut eleven, 0.1), Some(2.0));
        assert_eq!(percentile(&mut [], 0.1), None);
    }

    #[test]
    fn classes_and_states_follow_the_benchmark() {
        let now = Utc::now();
        let b = Benchmark::default();
        let cases = [
            (true, Some(20.0), Class::Good, State::Online),
            (true, Some(19.99), Class::Moderate, State::Online),
            (true, Some(1.0), Class::Moderate, State::Online),
            (true, Some(0.99), Class::Poor, State::Degraded),
            (true, None, Class::Unknown, State::Online),
            (false, Some(50.0), Class::Poor, State::Offline),
        ];
        for (online, download, class, state) in cases {
            let m = measurement(online, download, 0, now);
            assert_eq!((b.classify(&m), b.state(&m)), (class, state), "{online} {download:?}");
        }
    }

    #[test]
    fn skewed_and_stale_measurements_are_refused() {
        let now = Utc::now();
        let w = Window::default();
        assert_eq!(measurement(true, None, -4, now).check(now, &w), Ok(()));
        assert_eq!(measurement(true, None, -6, now).check(now, &w), Err(Refusal::FromTheFuture));
        assert_eq!(measurement(true, None, 7 * 24 * 60 + 1, now).check(now, &w), Err(Refusal::TooOld));
        let mut m = measurement(true, Some(-1.0), 0, now);
        assert!(matches!(m.check(now, &w), Err(Refusal::Invalid(f, _)) if f == "download_mbps"));
        m.download_mbps = Some(f64::NAN);
        assert!(m.check(now, &w).is_err());
        m.download_mbps = None;
        m.packet_loss_ratio = Some(1.5);
        assert!(matches!(m.check(now, &w), Err(Refusal::Invalid(f, _)) if f == "packet_loss_ratio"));
        assert!(Refusal::TooOld.describe(&w).starts_with("TOO_OLD: "));
    }

    #[test]
    fn a_status_expires_into_unknown_and_changes_are_logged_once() {
        let now = Utc::now();
        let b = Benchmark::default();
        let ttl = Duration::hours(1);
        let s = StatusSummary::of(&measurement(true, Some(30.0), 30, now), &b, ttl);
        assert_eq!(s.at(now), (State::Online, Class::Good));
        assert_eq!(s.at(now + Duration::minutes(31)), (State::Unknown, Class::Unknown));
        let same = StatusSummary::of(&measurement(true, Some(35.0), 20, now), &b, ttl);
        let refresh = Duration::minutes(15);
        assert!(!same.worth_logging(Some(&s), refresh), "same state and class, 10 minutes later");
        let later = StatusSummary::of(&measurement(true, Some(35.0), 10, now), &b, ttl);
        assert!(later.worth_logging(Some(&s), refresh), "20 minutes later: a refresh");
        let down = StatusSummary::of(&measurement(false, None, 25, now), &b, ttl);
        assert!(down.worth_logging(Some(&s), refresh));
        assert!(s.worth_logging(None, refresh));
    }
}
