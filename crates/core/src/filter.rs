//! What a query asks of a site besides being near: the one filter FindNearest, SearchSites,
//! ListSitesInCell and the coverage work share (`hubdir_geo` compiles it into masks).

use chrono::{DateTime, Utc};

use crate::connectivity::State;
use crate::{Accessibility, Kind, ServiceType, SiteStatus};

/// What a query asks of a site besides being near. Empty lists match everything, except
/// `statuses`, whose empty default is OPEN only.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Filter {
    /// The site's kind is one of these.
    pub kinds: Vec<Kind>,
    /// The site offers all of these.
    pub services: Vec<ServiceType>,
    /// The site helps in at least one of these languages (primary subtags, lower case).
    pub languages: Vec<String>,
    /// The site has all of these features.
    pub accessibility: Vec<Accessibility>,
    /// The site's status is one of these; empty means OPEN.
    pub statuses: Vec<SiteStatus>,
    /// Only sites whose public services are free.
    pub free_access: bool,
    /// Only sites whose opening hours say they are open at this instant, in their own time
    /// zone. Sites without opening hours are not known to be open, so they do not match.
    pub open_at: Option<DateTime<Utc>>,
    /// The site's connectivity state is one of these (a site without a fresh status is
    /// UNKNOWN); empty matches every state.
    pub connectivity_states: Vec<State>,
    /// The site's fresh status measured at least this download speed, Mbit/s.
    pub min_download_mbps: Option<f64>,
    /// The instant statuses are judged fresh at; `None` is now.
    pub as_of: Option<DateTime<Utc>>,
}

impl Filter {
    /// The site statuses the filter accepts: those asked for, or OPEN.
    pub fn statuses_or_open(&self) -> Vec<SiteStatus> {
        if self.statuses.is_empty() { vec![SiteStatus::Open] } else { self.statuses.clone() }
    }
}
