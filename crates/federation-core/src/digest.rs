//! Per-origin digests: two nodes with equal digests hold the same live sites at the same
//! versions (the encoding is the contract's, `hubdir.v1.OriginDigest`).

use sha2::{Digest, Sha256};

/// SHA-256 over live sites in byte-wise name order: for each, the name's UTF-8 length as a
/// big-endian u32, the name, then the seq of its last change as a big-endian u64.
pub fn sites_hash(versions: &[(String, u64)]) -> Vec<u8> {
    let mut hasher = Sha256::new();
    for (name, seq) in versions {
        hasher.update((name.len() as u32).to_be_bytes());
        hasher.update(name.as_bytes());
        hasher.update(seq.to_be_bytes());
    }
    hasher.finalize().to_vec()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_hash_follows_the_contract_byte_for_byte() {
        // By hand, for one site "sites/zw/1" at seq 3.
        let mut expected = Vec::new();
        expected.extend(10u32.to_be_bytes());
        expected.extend(b"sites/zw/1");
        expected.extend(3u64.to_be_bytes());
        assert_eq!(sites_hash(&[("sites/zw/1".into(), 3)]), Sha256::digest(&expected).to_vec());
        // Any difference in a name, a seq or the set changes it.
        let base = sites_hash(&[("sites/zw/1".into(), 3), ("sites/zw/2".into(), 4)]);
        assert_ne!(base, sites_hash(&[("sites/zw/1".into(), 3), ("sites/zw/2".into(), 5)]));
        assert_ne!(base, sites_hash(&[("sites/zw/1".into(), 3)]));
        assert_ne!(sites_hash(&[("ab".into(), 1), ("c".into(), 1)]), sites_hash(&[("a".into(), 1), ("bc".into(), 1)]));
    }
}
