//! Page tokens as clients send them back: anything but a token this node issued for these
//! filters is refused, never a panic, and an issued one round-trips.
#![no_main]

use hubdir_node::page_token::{PageTokens, fingerprint};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let tokens = PageTokens::new([9; 32]);
    let filters = fingerprint(&["ZW", "PUBLIC_LIBRARY"]);
    let Ok(text) = std::str::from_utf8(data) else { return };
    // A forged token passes only by forging HMAC-SHA256: the fuzzer never will.
    assert!(text.is_empty() || tokens.decode(text, &filters).is_err(), "{text:?} was accepted");
    // Keys are site names and search positions, far under 1 KB: those always round-trip.
    if text.len() <= 1024 {
        let issued = tokens.encode(text, &filters);
        assert_eq!(tokens.decode(&issued, &filters).unwrap().as_deref(), Some(text));
    }
});
