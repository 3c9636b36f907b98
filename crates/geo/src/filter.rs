//! A [`Filter`] compiled to bit masks over a site's traits, checked on the index's subtrees
//! (could anything below match?) and on each site, and the exact checks the masks cannot
//! make (languages, opening hours, connectivity freshness).

use std::collections::HashMap;
use std::str::FromStr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use chrono::{DateTime, NaiveDateTime, Utc};
use chrono_tz::Tz;
use hubdir_core::connectivity::{State, StatusSummary};
use hubdir_core::{Accessibility, Filter, Kind, ServiceType, Site, SiteStatus};

fn bit<T: PartialEq>(all: &[T], value: &T) -> u32 {
    all.iter().position(|v| v == value).map_or(0, |i| 1 << i)
}

/// Where each trait lives in a site's 64-bit mask (`masked::Entry`). Kinds and statuses are
/// one-of groups; services, accessibility features, free access and "has opening hours" are
/// single bits a filter may require; languages are hashed into a 12-bit Bloom field, exact
/// only after the per-site check.
mod bits {
    pub const KIND: u32 = 0; // 9 kinds
    pub const STATUS: u32 = 12; // 3 statuses
    pub const SERVICE: u32 = 16; // 10 services
    pub const ACCESSIBILITY: u32 = 28; // 7 features
    pub const FREE_ACCESS: u64 = 1 << 36;
    pub const HAS_HOURS: u64 = 1 << 37;
    /// ONLINE, DEGRADED, OFFLINE as last reported, then "no status at all".
    pub const STATE: u32 = 40;
    pub const LANGUAGE: u32 = 48;
    pub const LANGUAGE_BUCKETS: u64 = 12;
}

fn group<T: PartialEq>(all: &[T], values: impl IntoIterator<Item = T>, shift: u32) -> u64 {
    values.into_iter().map(|v| u64::from(bit(all, &v)) << shift).fold(0, |a, b| a | b)
}

/// The Bloom bit of a primary language subtag.
fn language_bit(primary: &str) -> u64 {
    let hash = primary.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3));
    1 << (bits::LANGUAGE as u64 + hash % bits::LANGUAGE_BUCKETS)
}

/// A filter compiled to masks: `any` groups need at least one common bit (0: no
/// constraint), `all` bits must all be present. Checked the same way on a subtree's OR-mask
/// (could anything below match?) and on a site's own mask.
#[derive(Debug)]
pub(crate) struct Compiled<'f> {
    any: [u64; 4],
    all: u64,
    languages: &'f [String],
    open_at: Option<DateTime<Utc>>,
    states: &'f [State],
    min_download_mbps: Option<f64>,
    pub(crate) as_of: DateTime<Utc>,
}

const STATES: &[State] = &[State::Online, State::Degraded, State::Offline, State::Unknown];

/// The state bit of a site's last reported status (UNKNOWN: it has none).
pub(crate) fn state_bit(status: Option<&StatusSummary>) -> u64 {
    u64::from(bit(STATES, &status.map_or(State::Unknown, |s| s.state))) << bits::STATE
}

impl Compiled<'_> {
    pub(crate) fn admits(&self, mask: u64) -> bool {
        mask & self.all == self.all && self.any.iter().all(|g| *g == 0 || mask & g != 0)
    }
}

impl Compiled<'_> {
    pub(crate) fn of(filter: &Filter) -> Compiled<'_> {
        let statuses = filter.statuses_or_open();
        let mut all = group(ServiceType::ALL, filter.services.iter().copied(), bits::SERVICE)
            | group(Accessibility::ALL, filter.accessibility.iter().copied(), bits::ACCESSIBILITY);
        if filter.free_access {
            all |= bits::FREE_ACCESS;
        }
        if filter.open_at.is_some() {
            all |= bits::HAS_HOURS;
        }
        // A reported state may have expired into UNKNOWN since: asking for UNKNOWN rules out
        // no subtree. Asking for a speed rules out sites that never reported.
        let all_states = group(STATES, STATES.iter().copied(), bits::STATE);
        let mut states = if filter.connectivity_states.contains(&State::Unknown) {
            all_states
        } else {
            group(STATES, filter.connectivity_states.iter().copied(), bits::STATE)
        };
        if filter.min_download_mbps.is_some() {
            let reported = group(STATES, [State::Online, State::Degraded, State::Offline], bits::STATE);
            states = if states == 0 { reported } else { states & reported };
            if states == 0 {
                // Only UNKNOWN was asked and a speed: no site can have both.
                states = 1 << (bits::STATE + 7);
            }
        }
        Compiled {
            any: [
                group(Kind::ALL, filter.kinds.iter().copied(), bits::KIND),
                group(SiteStatus::ALL, statuses, bits::STATUS),
                filter.languages.iter().map(|l| language_bit(l)).fold(0, |a, b| a | b),
                states,
            ],
            all,
            languages: &filter.languages,
            open_at: filter.open_at,
            states: &filter.connectivity_states,
            min_download_mbps: filter.min_download_mbps,
            as_of: filter.as_of.unwrap_or_else(Utc::now),
        }
    }
}

/// What a filter checks per site beyond its mask: the exact languages and the opening hours.
#[derive(Debug)]
pub(crate) struct Traits {
    pub(crate) mask: u64,
    pub(crate) languages: Vec<String>,
    /// Parsed once per distinct text and shared by every site with the same hours.
    pub(crate) hours: Option<Arc<Hours>>,
    pub(crate) time_zone: Tz,
}

/// Parsed opening hours, shared by every site with the same text, with the last answer kept.
/// Rules are written to the minute, so an answer holds for the whole local minute it was asked
/// for: the sites of a busy area, answered within the same minute, evaluate the rules once.
/// (This holds because the rules are evaluated without a location: sunrise and sunset are
/// then fixed whole minutes. Rules evaluated with coordinates would need the seconds.)
#[derive(Debug)]
pub(crate) struct Hours {
    /// The text the rules were parsed from.
    pub(crate) text: Box<str>,
    rules: opening_hours::OpeningHours,
    /// The local minute last asked (as minutes since 1970 of the naive time) shifted left by
    /// one, with the answer in the low bit; `NOTHING_YET` before the first.
    last: AtomicU64,
}

const NOTHING_YET: u64 = u64::MAX;

impl FromStr for Hours {
    type Err = <opening_hours::OpeningHours as FromStr>::Err;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        Ok(Hours { text: text.into(), rules: text.parse()?, last: AtomicU64::new(NOTHING_YET) })
    }
}

impl Hours {
    pub(crate) fn is_open(&self, local: NaiveDateTime) -> bool {
        let minute = (local.and_utc().timestamp().div_euclid(60) as u64) << 1;
        let last = self.last.load(Ordering::Relaxed);
        if last != NOTHING_YET && last & !1 == minute {
            return last & 1 == 1;
        }
        let open = self.rules.is_open(local);
        self.last.store(minute | u64::from(open), Ordering::Relaxed);
        open
    }
}

/// Parsed opening hours by their text: most sites share a handful of schedules.
#[derive(Debug, Default)]
pub(crate) struct HoursCache(HashMap<String, Option<Arc<Hours>>>);

impl HoursCache {
    pub(crate) fn get(&mut self, text: &str) -> Option<Arc<Hours>> {
        if let Some(parsed) = self.0.get(text) {
            return parsed.clone();
        }
        // Stored hours were validated with the same grammar; one that still fails to
        // evaluate is treated as unknown (never open), not as an error.
        let parsed = text.parse::<Hours>().ok().map(Arc::new);
        self.0.insert(text.to_owned(), parsed.clone());
        parsed
    }
}

impl Traits {
    pub(crate) fn of(site: &Site, hours: &mut HoursCache) -> Traits {
        let languages: Vec<String> = site.languages.iter().map(|l| l.primary()).collect();
        let hours = site.opening_hours.as_ref().and_then(|h| hours.get(h.as_str()));
        let mut mask = group(Kind::ALL, [site.kind], bits::KIND)
            | group(SiteStatus::ALL, [site.status], bits::STATUS)
            | group(ServiceType::ALL, site.services.iter().copied(), bits::SERVICE)
            | group(Accessibility::ALL, site.accessibility.iter().copied(), bits::ACCESSIBILITY)
            | languages.iter().map(|l| language_bit(l)).fold(0, |a, b| a | b);
        if site.free_access {
            mask |= bits::FREE_ACCESS;
        }
        if hours.is_some() {
            mask |= bits::HAS_HOURS;
        }
        Traits {
            mask,
            languages,
            hours,
            // Validated on the way in: a stored zone always parses.
            time_zone: Tz::from_str(site.time_zone.as_str()).unwrap_or(Tz::UTC),
        }
    }

    /// The checks the mask cannot make exactly.
    pub(crate) fn matches_exactly(&self, status: Option<&StatusSummary>, f: &Compiled<'_>) -> bool {
        (f.languages.is_empty() || self.languages.iter().any(|l| f.languages.contains(l)))
            && f.open_at.is_none_or(|at| self.is_open(at))
            && connectivity_matches(status, f)
    }

    fn is_open(&self, at: DateTime<Utc>) -> bool {
        self.open_at(at) == Some(true)
    }

    /// Whether the site is open at `at` by its opening hours; `None` when it has none.
    pub(crate) fn open_at(&self, at: DateTime<Utc>) -> Option<bool> {
        self.hours.as_ref().map(|hours| hours.is_open(at.with_timezone(&self.time_zone).naive_local()))
    }
}

/// The state a status reads at `f.as_of` (UNKNOWN once expired, or without one) is asked
/// for, and so is its speed.
fn connectivity_matches(status: Option<&StatusSummary>, f: &Compiled<'_>) -> bool {
    let fresh = status.filter(|s| f.as_of <= s.expires_at);
    let state = fresh.map_or(State::Unknown, |s| s.state);
    (f.states.is_empty() || f.states.contains(&state))
        && f.min_download_mbps.is_none_or(|min| fresh.and_then(|s| s.download_mbps).is_some_and(|d| d >= min))
}

/// A filter ready to check sites one by one, for callers that read sites from the store
/// rather than the index (text search, cell listings): the same rules as
/// [`SiteIndex::nearest`], compiled once, with parsed opening hours kept across sites.
#[derive(Debug)]
pub struct Matcher<'f> {
    compiled: Compiled<'f>,
    hours: HoursCache,
}

impl Matcher<'_> {
    pub fn new(filter: &Filter) -> Matcher<'_> {
        Matcher { compiled: Compiled::of(filter), hours: HoursCache::default() }
    }

    /// Whether one site, with its latest connectivity status if any, matches.
    pub fn matches(&mut self, site: &Site, status: Option<&StatusSummary>) -> bool {
        let traits = Traits::of(site, &mut self.hours);
        self.compiled.admits(traits.mask | state_bit(status)) && traits.matches_exactly(status, &self.compiled)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const RULES: &[&str] =
        &["Mo-Fr 08:00-16:30", "Mo-Sa 09:00-12:30,14:00-17:59; Su off", "24/7", "Tu,Th 10:15-10:16; PH off"];

    /// Instants where the rules above change: Tuesday 24 November 2026 at 10:15 and 10:16,
    /// Friday 27 November at 16:30, Saturday 28 November at 12:30 and 17:59 (as naive local
    /// times).
    const BOUNDARIES: &[i64] = &[1_795_515_300, 1_795_515_360, 1_795_797_000, 1_795_869_000, 1_795_888_740];

    proptest! {
        /// The kept answer is always the one the rules give, whatever order the instants
        /// come in: the same minute again (any second of it), the next, another day.
        #[test]
        fn kept_answers_equal_the_rules(
            rule in 0..RULES.len(),
            near in 0..BOUNDARIES.len(),
            offset in -900i64..900,
            steps in proptest::collection::vec(-200i64..200, 1..60),
        ) {
            let hours: Hours = RULES[rule].parse().unwrap();
            let mut at = BOUNDARIES[near] + offset;
            for step in steps {
                at += step;
                let local = DateTime::from_timestamp(at, 0).unwrap().naive_utc();
                prop_assert_eq!(hours.is_open(local), hours.rules.is_open(local), "{} at {}", RULES[rule], local);
            }
        }
    }
}
