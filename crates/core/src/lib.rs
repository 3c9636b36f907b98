//! Domain types and validation for hubdir. No I/O.
//!
//! A [`SiteInput`] is what a publisher sends, unchecked; [`SiteInput::validate`] turns it into
//! a [`Site`] or into [`Violations`] that name every offending field. A [`SiteRecord`] is a
//! site as stored: the site plus what the server computes (H3 cell, etag, time, sequence).

mod cell;
pub mod connectivity;
mod country_codes;
mod filter;
pub mod lookup;
mod name;
pub mod population;
mod reason;
pub mod search;
mod site;
mod validate;
mod violations;

pub use cell::{H3Cell, NotACell};
pub use filter::Filter;
pub use name::{NameError, Origin, SiteId, SiteName};
pub use reason::{ERROR_DOMAIN, Reason};
pub use site::{
    Accessibility, Address, Contact, CountryCode, Kind, LanguageTag, LatLng, OpeningHours, ServiceType, Site,
    SiteInput, SiteRecord, SiteStatus, TimeZone,
};
pub use violations::{Violation, ViolationReason, Violations, control_char, echo, limits};
