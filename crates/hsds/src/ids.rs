//! Stable UUIDs for the HSDS objects a site maps to: the same site always has the same ids,
//! in `hubdir export --format hsds` and in the HSDS API.
//!
//! An id is made from a subject (`hubdir_core::lookup::site_subject` or `operator_subject`)
//! and the kind of object. Its first six bytes are the subject's lookup key, which the store
//! keeps beside each site, so an id finds its site with one indexed read; the other ten come
//! from SHA-256 of subject and kind. Version (5) and variant bits are set as RFC 9562 lays
//! them out, outside those six bytes.

use sha2::{Digest, Sha256};

/// The UUID of the object of `kind` made from `subject`.
pub fn uuid(subject: &str, kind: &str) -> String {
    let key = hubdir_core::lookup::key(subject).to_be_bytes();
    let digest = Sha256::digest(format!("{subject}#{kind}"));
    let mut bytes = [0u8; 16];
    bytes[..6].copy_from_slice(&key[2..]);
    bytes[6..].copy_from_slice(&digest[6..16]);
    bytes[6] = (bytes[6] & 0x0f) | 0x50;
    bytes[8] = (bytes[8] & 0x3f) | 0x80;
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    format!("{}-{}-{}-{}-{}", &hex[0..8], &hex[8..12], &hex[12..16], &hex[16..20], &hex[20..32])
}

/// The lookup key a UUID begins with, if it is a UUID in canonical form (any case).
pub fn key_of(uuid: &str) -> Option<i64> {
    let bytes = uuid.as_bytes();
    let canonical = bytes.len() == 36
        && bytes.iter().enumerate().all(|(i, b)| match i {
            8 | 13 | 18 | 23 => *b == b'-',
            _ => b.is_ascii_hexdigit(),
        });
    if !canonical {
        return None;
    }
    // The first 12 hex digits: "xxxxxxxx-xxxx".
    i64::from_str_radix(&format!("{}{}", &uuid[0..8], &uuid[9..13]), 16).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use hubdir_core::lookup;

    #[test]
    fn ids_are_stable_well_formed_and_lead_back_to_their_subject() {
        let subject = "hubdir:sites/ca-tpl/AB";
        let service = uuid(subject, "service");
        assert_eq!(service, uuid(subject, "service"));
        assert_ne!(service, uuid(subject, "location"));
        let bytes = service.as_bytes();
        assert_eq!((bytes.len(), bytes[14], bytes[8], bytes[13]), (36, b'5', b'-', b'-'));
        assert!(matches!(bytes[19], b'8' | b'9' | b'a' | b'b'), "{service}");
        // Every kind of object of one subject leads back to it.
        assert_eq!(key_of(&service), Some(lookup::key(subject)));
        assert_eq!(key_of(&uuid(subject, "service_at_location")), Some(lookup::key(subject)));
        assert_eq!(key_of(&service.to_uppercase()), Some(lookup::key(subject)));
        let not_hex = format!("g{}", &service[1..]);
        for bad in ["", "not-a-uuid", &service[1..], &service.replace('-', ""), &not_hex] {
            assert_eq!(key_of(bad), None, "{bad}");
        }
    }
}
