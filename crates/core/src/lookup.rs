//! Stable 48-bit keys by which an id derived from a site's name, or from an operator's name,
//! finds it again with one indexed read. HSDS's UUIDs (`hubdir_hsds::ids`) begin with the
//! six bytes of their subject's key, so a UUID names the rows to check; the store keeps the
//! keys beside each site.

use sha2::{Digest, Sha256};

use crate::SiteName;

/// What a site's derived ids are made from.
pub fn site_subject(name: &SiteName) -> String {
    format!("hubdir:{name}")
}

/// What an operator's (an HSDS organization's) derived ids are made from.
pub fn operator_subject(operator: &str) -> String {
    format!("hubdir-operator:{operator}")
}

/// The first six bytes of SHA-256 of `subject`, big-endian: never negative, so it is the same
/// `BIGINT` on SQLite and PostgreSQL.
pub fn key(subject: &str) -> i64 {
    let digest = Sha256::digest(subject.as_bytes());
    digest[..6].iter().fold(0i64, |key, byte| (key << 8) | i64::from(*byte))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_the_digests_first_six_bytes() {
        // SHA-256("abc") = ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad
        assert_eq!(key("abc"), 0xba78_16bf_8f01);
        let name: SiteName = "sites/ca-tpl/AB".parse().unwrap();
        assert_eq!(site_subject(&name), "hubdir:sites/ca-tpl/AB");
        assert!(key(&site_subject(&name)) >= 0);
        assert_ne!(key(&operator_subject("Toronto Public Library")), key(&site_subject(&name)));
    }
}
