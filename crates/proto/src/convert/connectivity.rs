//! Connectivity: measurements, states, classes and status changes, domain <-> proto.

use hubdir_core::SiteName;
use hubdir_core::connectivity::{Class, Measurement, Refusal, Source, State, StatusSummary, Technology};

use super::{from_timestamp, timestamp};
use crate::v1 as pb;

/// A connectivity state as the API carries it.
pub fn state_to_proto(state: State) -> pb::ConnectivityState {
    match state {
        State::Online => pb::ConnectivityState::Online,
        State::Degraded => pb::ConnectivityState::Degraded,
        State::Offline => pb::ConnectivityState::Offline,
        State::Unknown => pb::ConnectivityState::Unknown,
    }
}

/// A state from the wire: `None` for an unknown value, `Some(None)` for UNSPECIFIED.
pub fn state_from_proto(raw: i32) -> Option<Option<State>> {
    Some(match pb::ConnectivityState::try_from(raw).ok()? {
        pb::ConnectivityState::Unspecified => None,
        pb::ConnectivityState::Online => Some(State::Online),
        pb::ConnectivityState::Degraded => Some(State::Degraded),
        pb::ConnectivityState::Offline => Some(State::Offline),
        pb::ConnectivityState::Unknown => Some(State::Unknown),
    })
}

/// A connectivity class as the API carries it.
pub fn class_to_proto(class: Class) -> pb::ConnectivityClass {
    match class {
        Class::Good => pb::ConnectivityClass::Good,
        Class::Moderate => pb::ConnectivityClass::Moderate,
        Class::Poor => pb::ConnectivityClass::Poor,
        Class::Unknown => pb::ConnectivityClass::Unknown,
    }
}

/// A class from the wire: `None` for an unknown value, `Some(None)` for UNSPECIFIED.
pub fn class_from_proto(raw: i32) -> Option<Option<Class>> {
    Some(match pb::ConnectivityClass::try_from(raw).ok()? {
        pb::ConnectivityClass::Unspecified => None,
        pb::ConnectivityClass::Good => Some(Class::Good),
        pb::ConnectivityClass::Moderate => Some(Class::Moderate),
        pb::ConnectivityClass::Poor => Some(Class::Poor),
        pb::ConnectivityClass::Unknown => Some(Class::Unknown),
    })
}

fn technology_to_proto(t: Technology) -> pb::AccessTechnology {
    match t {
        Technology::Unspecified => pb::AccessTechnology::Unspecified,
        Technology::Fibre => pb::AccessTechnology::Fibre,
        Technology::Dsl => pb::AccessTechnology::Dsl,
        Technology::Cable => pb::AccessTechnology::Cable,
        Technology::Cellular => pb::AccessTechnology::Cellular,
        Technology::Satellite => pb::AccessTechnology::Satellite,
        Technology::FixedWireless => pb::AccessTechnology::FixedWireless,
        Technology::Other => pb::AccessTechnology::Other,
    }
}

fn technology_from_proto(t: pb::AccessTechnology) -> Technology {
    match t {
        pb::AccessTechnology::Unspecified => Technology::Unspecified,
        pb::AccessTechnology::Fibre => Technology::Fibre,
        pb::AccessTechnology::Dsl => Technology::Dsl,
        pb::AccessTechnology::Cable => Technology::Cable,
        pb::AccessTechnology::Cellular => Technology::Cellular,
        pb::AccessTechnology::Satellite => Technology::Satellite,
        pb::AccessTechnology::FixedWireless => Technology::FixedWireless,
        pb::AccessTechnology::Other => Technology::Other,
    }
}

/// A measurement from the wire, or why it cannot be one (the field and what is wrong).
pub fn measurement_from_proto(m: &pb::Measurement) -> Result<Measurement, Refusal> {
    let pb::Measurement {
        site,
        observe_time,
        online,
        download_mbps,
        upload_mbps,
        latency_ms,
        jitter_ms,
        packet_loss_ratio,
        technology,
        public_wifi_access_points,
        public_computers,
        power_backup,
        source,
        idempotency_key,
    } = m;
    let invalid = |field: &str, what: &str| Refusal::Invalid(field.into(), what.into());
    let site: SiteName = site.parse().map_err(|_| invalid("site", "not a site name sites/{origin}/{site_id}"))?;
    let observed_at = observe_time
        .as_ref()
        .and_then(from_timestamp)
        .ok_or_else(|| invalid("observe_time", "required, a valid instant"))?;
    let technology = pb::AccessTechnology::try_from(*technology).map_err(|_| invalid("technology", "unknown"))?;
    let source = match pb::MeasurementSource::try_from(*source).map_err(|_| invalid("source", "unknown"))? {
        // An agent that does not say is an agent.
        pb::MeasurementSource::Unspecified | pb::MeasurementSource::Agent => Source::Agent,
        pb::MeasurementSource::OperatorReport => Source::OperatorReport,
        pb::MeasurementSource::Manual => Source::Manual,
    };
    let count = |field: &str, v: &Option<i32>| {
        v.map(|n| u32::try_from(n).map_err(|_| invalid(field, "must be 0 or more"))).transpose()
    };
    Ok(Measurement {
        site,
        observed_at,
        online: *online,
        download_mbps: *download_mbps,
        upload_mbps: *upload_mbps,
        latency_ms: *latency_ms,
        jitter_ms: *jitter_ms,
        packet_loss_ratio: *packet_loss_ratio,
        technology: technology_from_proto(technology),
        public_wifi_access_points: count("public_wifi_access_points", public_wifi_access_points)?,
        public_computers: count("public_computers", public_computers)?,
        power_backup: *power_backup,
        source,
        idempotency_key: idempotency_key.clone(),
    })
}

/// A stored measurement as the API carries it.
pub fn measurement_to_proto(m: Measurement) -> pb::Measurement {
    let Measurement {
        site,
        observed_at,
        online,
        download_mbps,
        upload_mbps,
        latency_ms,
        jitter_ms,
        packet_loss_ratio,
        technology,
        public_wifi_access_points,
        public_computers,
        power_backup,
        source,
        idempotency_key,
    } = m;
    let count = |n: Option<u32>| n.map(|n| i32::try_from(n).unwrap_or(i32::MAX));
    pb::Measurement {
        site: site.to_string(),
        observe_time: Some(timestamp(observed_at)),
        online,
        download_mbps,
        upload_mbps,
        latency_ms,
        jitter_ms,
        packet_loss_ratio,
        technology: technology_to_proto(technology).into(),
        public_wifi_access_points: count(public_wifi_access_points),
        public_computers: count(public_computers),
        power_backup,
        source: match source {
            Source::Agent => pb::MeasurementSource::Agent,
            Source::OperatorReport => pb::MeasurementSource::OperatorReport,
            Source::Manual => pb::MeasurementSource::Manual,
        }
        .into(),
        idempotency_key,
    }
}

/// A status as a change event carries it.
pub fn status_change_to_proto(s: &StatusSummary) -> pb::StatusChange {
    pb::StatusChange {
        state: state_to_proto(s.state).into(),
        class: class_to_proto(s.class).into(),
        download_mbps: s.download_mbps,
        observe_time: Some(timestamp(s.observed_at)),
        expire_time: Some(timestamp(s.expires_at)),
    }
}

/// A status from a change event; the name of the first missing or unknown field otherwise.
pub fn status_change_from_proto(s: &pb::StatusChange) -> Result<StatusSummary, &'static str> {
    let pb::StatusChange { state, class, download_mbps, observe_time, expire_time } = s;
    Ok(StatusSummary {
        state: state_from_proto(*state).flatten().ok_or("status.state")?,
        class: class_from_proto(*class).flatten().ok_or("status.class")?,
        download_mbps: *download_mbps,
        observed_at: observe_time.as_ref().and_then(from_timestamp).ok_or("status.observe_time")?,
        expires_at: expire_time.as_ref().and_then(from_timestamp).ok_or("status.expire_time")?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_measurement_and_a_status_round_trip() {
        let m = Measurement {
            site: "sites/zw/1".parse().unwrap(),
            observed_at: chrono::DateTime::from_timestamp(1_800_000_000, 5_000).unwrap(),
            online: true,
            download_mbps: Some(12.5),
            upload_mbps: None,
            latency_ms: Some(40.0),
            jitter_ms: Some(2.0),
            packet_loss_ratio: Some(0.01),
            technology: Technology::Satellite,
            public_wifi_access_points: Some(3),
            public_computers: None,
            power_backup: Some(false),
            source: Source::Manual,
            idempotency_key: "k".into(),
        };
        assert_eq!(measurement_from_proto(&measurement_to_proto(m.clone())).unwrap(), m);
        let s = StatusSummary {
            state: State::Degraded,
            class: Class::Poor,
            download_mbps: Some(0.5),
            observed_at: m.observed_at,
            expires_at: m.observed_at + chrono::Duration::hours(1),
        };
        assert_eq!(status_change_from_proto(&status_change_to_proto(&s)).unwrap(), s);
        assert_eq!(state_from_proto(99), None);
        assert_eq!(state_from_proto(0), Some(None));
        let unknown_technology = pb::Measurement { technology: 99, ..measurement_to_proto(m) };
        assert!(
            matches!(measurement_from_proto(&unknown_technology), Err(Refusal::Invalid(f, _)) if f == "technology")
        );
    }
}
