//! A publisher's file, as CSV, GeoJSON or JSON (the first byte picks), through the real
//! mappings in examples/mappings: reading and mapping never panic, every row is a site or
//! row errors, and a site that passes is valid.
#![no_main]

use std::io::Write;
use std::sync::OnceLock;

use hubdir_import::Mapping;
use libfuzzer_sys::fuzz_target;

const MAPPINGS: [&str; 3] = [
    include_str!("../../../examples/mappings/india-post.toml"),
    include_str!("../../../examples/mappings/uk-librarymap-geojson.toml"),
    include_str!("../../../examples/mappings/hsds-3.0.toml"),
];

fn mappings() -> &'static Vec<Mapping> {
    static LOADED: OnceLock<Vec<Mapping>> = OnceLock::new();
    LOADED.get_or_init(|| {
        MAPPINGS
            .iter()
            .map(|text| {
                let mut file = tempfile::NamedTempFile::new().expect("temp file");
                file.write_all(text.as_bytes()).expect("write mapping");
                Mapping::load(file.path()).expect("the example mappings load")
            })
            .collect()
    })
}

fuzz_target!(|data: &[u8]| {
    let Some((&pick, body)) = data.split_first() else { return };
    let mapping = &mappings()[usize::from(pick) % MAPPINGS.len()];
    let Ok(mut file) = tempfile::NamedTempFile::new() else { return };
    if file.write_all(body).is_err() {
        return;
    }
    let Ok(records) = hubdir_import::records(file.path(), mapping) else { return };
    for record in records.take(1000) {
        if let Ok(record) = record {
            let _ = mapping.site(&record);
        }
    }
});
