//! Site names, origins and H3 cells, as clients send them: parsing never panics, and what
//! parses prints back as it was given.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    if let Ok(name) = text.parse::<hubdir_core::SiteName>() {
        assert_eq!(name.to_string(), text);
        assert!(text.starts_with(&format!("sites/{}/", name.origin())));
    }
    if let Ok(origin) = text.parse::<hubdir_core::Origin>() {
        assert_eq!(origin.as_str(), text);
    }
    if let Ok(cell) = text.parse::<h3o::CellIndex>() {
        let (low, high) = hubdir_geo::descendant_range(cell);
        assert!(low <= high);
    }
    if let Ok(cell) = text.parse::<hubdir_core::H3Cell>() {
        assert_eq!(cell.to_string(), text);
    }
    // Each echoed character escapes to at most 10 bytes (`\u{10ffff}`).
    let shown = hubdir_core::echo(text);
    assert!(shown.len() <= 10 * hubdir_core::limits::ECHO_CHARS + 64, "{} bytes", shown.len());
});
