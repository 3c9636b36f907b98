//! Resource names: `sites/{origin}/{site_id}` (AIP-122).

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// Why a resource name or one of its parts was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    #[error("must have the form sites/{{origin}}/{{site_id}}")]
    Shape,
    #[error(
        "origin must be 2..32 characters of lowercase letters, digits and '-', starting with a letter or digit and not ending with '-'"
    )]
    Origin,
    #[error("site id must be 1..64 characters of letters, digits, '-', '_' and '.', starting with a letter or digit")]
    SiteId,
}

/// The id of the node that owns a set of sites, e.g. `zw` or `fr-laposte`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Origin(String);

impl Origin {
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// `local`: the id of a node that was given none.
    pub fn local() -> Origin {
        Origin("local".to_owned())
    }
}

impl FromStr for Origin {
    type Err = NameError;
    fn from_str(s: &str) -> Result<Self, NameError> {
        let bytes = s.as_bytes();
        let valid_len = (2..=32).contains(&bytes.len());
        let valid_chars = bytes.iter().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'-');
        let valid_ends =
            bytes.first().is_some_and(u8::is_ascii_alphanumeric) && bytes.last().is_some_and(|b| *b != b'-');
        if valid_len && valid_chars && valid_ends { Ok(Origin(s.to_owned())) } else { Err(NameError::Origin) }
    }
}

impl TryFrom<String> for Origin {
    type Error = NameError;
    fn try_from(s: String) -> Result<Self, NameError> {
        s.parse()
    }
}

impl From<Origin> for String {
    fn from(o: Origin) -> String {
        o.0
    }
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A publisher-chosen site id, unique within its origin.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SiteId(String);

impl SiteId {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for SiteId {
    type Err = NameError;
    fn from_str(s: &str) -> Result<Self, NameError> {
        let bytes = s.as_bytes();
        let valid = (1..=64).contains(&bytes.len())
            && bytes[0].is_ascii_alphanumeric()
            && bytes.iter().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
        if valid { Ok(SiteId(s.to_owned())) } else { Err(NameError::SiteId) }
    }
}

impl fmt::Display for SiteId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// `sites/{origin}/{site_id}`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct SiteName {
    origin: Origin,
    site_id: SiteId,
}

impl SiteName {
    pub fn new(origin: Origin, site_id: SiteId) -> Self {
        SiteName { origin, site_id }
    }

    pub fn origin(&self) -> &Origin {
        &self.origin
    }

    pub fn site_id(&self) -> &SiteId {
        &self.site_id
    }
}

impl FromStr for SiteName {
    type Err = NameError;
    fn from_str(s: &str) -> Result<Self, NameError> {
        let mut parts = s.split('/');
        match (parts.next(), parts.next(), parts.next(), parts.next()) {
            (Some("sites"), Some(origin), Some(site_id), None) => {
                Ok(SiteName { origin: origin.parse()?, site_id: site_id.parse()? })
            }
            _ => Err(NameError::Shape),
        }
    }
}

impl TryFrom<String> for SiteName {
    type Error = NameError;
    fn try_from(s: String) -> Result<Self, NameError> {
        s.parse()
    }
}

impl From<SiteName> for String {
    fn from(n: SiteName) -> String {
        n.to_string()
    }
}

impl fmt::Display for SiteName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "sites/{}/{}", self.origin, self.site_id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn parses_a_well_formed_name() {
        let name: SiteName = "sites/fr-laposte/75001.A".parse().unwrap();
        assert_eq!(name.origin().as_str(), "fr-laposte");
        assert_eq!(name.site_id().as_str(), "75001.A");
    }

    #[test]
    fn refuses_malformed_names() {
        for bad in [
            "",
            "sites",
            "sites/zw",
            "sites/zw/",
            "site/zw/1",
            "sites/zw/1/extra",
            "sites/ZW/1",
            "sites/z/1",
            "sites/zw-/1",
            "sites/-zw/1",
            "sites/zw/-1",
            "sites/zw/a b",
            "sites/zw/ü",
        ] {
            assert!(bad.parse::<SiteName>().is_err(), "{bad:?} was accepted");
        }
    }

    proptest! {
        #[test]
        fn valid_names_round_trip(
            origin in "[a-z0-9][a-z0-9-]{0,30}[a-z0-9]",
            site_id in "[A-Za-z0-9][A-Za-z0-9._-]{0,63}",
        ) {
            let text = format!("sites/{origin}/{site_id}");
            let name: SiteName = text.parse().unwrap();
            prop_assert_eq!(name.to_string(), text);
            let json = serde_json::to_string(&name).unwrap();
            let back: SiteName = serde_json::from_str(&json).unwrap();
            prop_assert_eq!(back, name);
        }

        #[test]
        fn arbitrary_text_never_panics_and_accepted_names_round_trip(text in ".{0,80}") {
            if let Ok(name) = text.parse::<SiteName>() {
                prop_assert_eq!(name.to_string(), text);
            }
        }
    }
}
