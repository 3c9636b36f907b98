//! A site as the wire carries it (any bytes decoded as `hubdir.v1.Site`), through conversion
//! and validation: never a panic; a site that passes holds no control character, no field
//! past its limit, and converts back and forth unchanged.
#![no_main]

use hubdir_core::limits;
use libfuzzer_sys::fuzz_target;
use prost::Message;

fuzz_target!(|data: &[u8]| {
    let Ok(site) = hubdir_proto::v1::Site::decode(data) else { return };
    match hubdir_proto::convert::site_from_proto(site) {
        Ok((site, _etag)) => {
            for text in [&site.display_name, &site.operator, &site.contact.phone, &site.contact.email] {
                assert!(hubdir_core::control_char(text, &[]).is_none(), "{text:?}");
            }
            assert!(site.display_name.chars().count() <= limits::DISPLAY_NAME_CHARS);
            let again = hubdir_proto::convert::site_from_proto(hubdir_proto::convert::site_to_proto(site.clone()));
            assert_eq!(again.map(|(s, _)| s), Ok(site));
        }
        Err(violations) => {
            assert!(!violations.is_empty());
            let echoed: usize = violations.0.iter().map(|v| v.description.len()).sum();
            // Never more than a few KB of errors, whatever the input.
            assert!(echoed <= 64 * 1024, "{echoed} bytes of errors");
        }
    }
});
