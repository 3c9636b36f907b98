//! The site and its parts.

use std::collections::BTreeSet;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::name::SiteName;

/// Declares a closed set of values with a stable storage code for each.
macro_rules! coded_enum {
    ($(#[$meta:meta])* $name:ident { $($variant:ident => $code:literal),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        #[serde(rename_all = "SCREAMING_SNAKE_CASE")]
        pub enum $name { $($variant),+ }

        impl $name {
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            /// The stable code stored in databases and change-log payloads.
            pub fn code(self) -> &'static str {
                match self { $($name::$variant => $code),+ }
            }

            pub fn from_code(code: &str) -> Option<$name> {
                match code { $($code => Some($name::$variant),)+ _ => None }
            }
        }
    };
}

coded_enum!(
    /// The kind of anchor institution.
    Kind {
        PublicLibrary => "PUBLIC_LIBRARY",
        AcademicLibrary => "ACADEMIC_LIBRARY",
        SchoolLibrary => "SCHOOL_LIBRARY",
        PostOffice => "POST_OFFICE",
        PostalAgency => "POSTAL_AGENCY",
        Telecentre => "TELECENTRE",
        CommunityCentre => "COMMUNITY_CENTRE",
        School => "SCHOOL",
        Other => "OTHER",
    }
);

coded_enum!(
    /// A service offered to the public.
    ServiceType {
        PublicInternet => "PUBLIC_INTERNET",
        FreeWifi => "FREE_WIFI",
        PublicComputers => "PUBLIC_COMPUTERS",
        DigitalSkillsTraining => "DIGITAL_SKILLS_TRAINING",
        EGovernmentHelp => "E_GOVERNMENT_HELP",
        PostalBanking => "POSTAL_BANKING",
        BillPayment => "BILL_PAYMENT",
        HealthPlatformAccess => "HEALTH_PLATFORM_ACCESS",
        PrintingAndScanning => "PRINTING_AND_SCANNING",
        MobileMoney => "MOBILE_MONEY",
    }
);

coded_enum!(
    /// An accessibility feature.
    Accessibility {
        StepFreeEntrance => "STEP_FREE_ENTRANCE",
        WheelchairAccessible => "WHEELCHAIR_ACCESSIBLE",
        AccessibleToilet => "ACCESSIBLE_TOILET",
        HearingLoop => "HEARING_LOOP",
        ScreenReader => "SCREEN_READER",
        LargePrint => "LARGE_PRINT",
        SignLanguage => "SIGN_LANGUAGE",
    }
);

coded_enum!(
    /// Whether a site is open for business.
    SiteStatus {
        Open => "OPEN",
        TemporarilyClosed => "TEMPORARILY_CLOSED",
        Closed => "CLOSED",
    }
);

/// A validated WGS84 position: finite, in range, not the (0, 0) placeholder. Deserialising
/// validates too, so a stored payload cannot smuggle in a bad position.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "RawLatLng")]
pub struct LatLng {
    latitude: f64,
    longitude: f64,
}

impl LatLng {
    pub fn latitude(self) -> f64 {
        self.latitude
    }

    pub fn longitude(self) -> f64 {
        self.longitude
    }

    /// A position, if it passes the same checks as a site's: finite, in range, not (0, 0).
    pub fn new(latitude: f64, longitude: f64) -> Option<LatLng> {
        crate::validate::lat_lng(&mut crate::Violations::default(), latitude, longitude)
    }

    /// Only for values that already passed validation (see `validate::lat_lng`).
    pub(crate) fn new_unchecked(latitude: f64, longitude: f64) -> Self {
        LatLng { latitude, longitude }
    }
}

#[derive(Deserialize)]
struct RawLatLng {
    latitude: f64,
    longitude: f64,
}

impl TryFrom<RawLatLng> for LatLng {
    type Error = crate::Violations;
    fn try_from(raw: RawLatLng) -> Result<Self, crate::Violations> {
        let mut out = crate::Violations::default();
        crate::validate::lat_lng(&mut out, raw.latitude, raw.longitude).ok_or(out)
    }
}

/// Declares a validated string newtype; the check lives in `validate`, and deserialising
/// runs it too.
macro_rules! checked_string {
    ($(#[$meta:meta])* $name:ident) => {
        $(#[$meta])*
        #[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        #[serde(try_from = "String", into = "String")]
        pub struct $name(pub(crate) String);

        impl From<$name> for String {
            fn from(value: $name) -> String {
                value.0
            }
        }

        impl $name {
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

checked_string!(
    /// ISO 3166-1 alpha-2 country code, upper case.
    CountryCode
);
checked_string!(
    /// A well-formed BCP 47 language tag.
    LanguageTag
);
checked_string!(
    /// An IANA time zone name known to the bundled tz database.
    TimeZone
);
checked_string!(
    /// Opening hours that parse as OpenStreetMap `opening_hours` syntax.
    OpeningHours
);

/// A postal address.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Address {
    pub lines: Vec<String>,
    pub locality: String,
    pub region: String,
    pub postal_code: String,
}

/// Organisational contact details.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Contact {
    pub phone: String,
    pub email: String,
    pub website: String,
}

/// A validated help point.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Site {
    pub name: SiteName,
    pub display_name: String,
    pub kind: Kind,
    pub operator: String,
    pub country: CountryCode,
    pub address: Address,
    pub location: LatLng,
    pub services: BTreeSet<ServiceType>,
    pub service_notes: String,
    pub languages: Vec<LanguageTag>,
    pub accessibility: BTreeSet<Accessibility>,
    pub opening_hours: Option<OpeningHours>,
    pub time_zone: TimeZone,
    pub contact: Contact,
    pub status: SiteStatus,
    pub free_access: bool,
}

impl Site {
    /// A content hash of every field: equal sites have equal etags, and any change gives a
    /// new one. Used as the AIP-154 etag and to recognise a replayed write as a no-op.
    pub fn content_etag(&self) -> String {
        self.json_and_etag().1
    }

    /// The site's canonical JSON (as stored and logged) and its etag, serialised once.
    pub fn json_and_etag(&self) -> (String, String) {
        // Serialising a plain struct of strings, numbers and ordered collections cannot fail.
        let json = serde_json::to_string(self).unwrap_or_default();
        let etag = Site::etag_of(json.as_bytes());
        (json, etag)
    }

    /// The etag of a site's canonical JSON: the first 12 bytes of its SHA-256, in hex. A
    /// reader of stored or logged JSON gets the etag without serialising the site again.
    pub fn etag_of(json: &[u8]) -> String {
        let digest = Sha256::digest(json);
        let mut etag = String::with_capacity(24);
        for b in &digest[..12] {
            etag.push(char::from_digit(u32::from(b >> 4), 16).unwrap_or('0'));
            etag.push(char::from_digit(u32::from(b & 0x0f), 16).unwrap_or('0'));
        }
        etag
    }
}

/// What a publisher sends, before validation. Unknown enum values from the wire are already
/// reported by the edge that decoded them; here `None` means "not given".
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SiteInput {
    pub name: String,
    pub display_name: String,
    pub kind: Option<Kind>,
    pub operator: String,
    pub country_code: String,
    pub address: Address,
    /// `None` when no location was sent at all.
    pub location: Option<(f64, f64)>,
    pub services: Vec<ServiceType>,
    pub service_notes: String,
    pub languages: Vec<String>,
    pub accessibility: Vec<Accessibility>,
    pub opening_hours: String,
    pub time_zone: String,
    pub contact: Contact,
    pub status: Option<SiteStatus>,
    pub free_access: bool,
}

/// A site as stored, with what the server computed.
#[derive(Debug, Clone, PartialEq)]
pub struct SiteRecord {
    pub site: Site,
    /// H3 cell at resolution 15 containing the location.
    pub h3_cell: crate::H3Cell,
    pub etag: String,
    pub update_time: DateTime<Utc>,
    /// The origin's change-log sequence number of the last change.
    pub origin_seq: u64,
}
