//! Readers: CSV (any delimiter, UTF-8 with or without BOM, or Windows-1252; CRLF and quoted
//! newlines) and GeoJSON FeatureCollections.

use std::collections::HashMap;
use std::fs::File;
use std::io::{BufReader, Read};
use std::path::Path;

use crate::mapping::{Encoding, Format, Mapping};
use crate::{Record, RowError};

/// The source cannot be read at all (as opposed to one bad row).
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    #[error("cannot open {path}: {source}")]
    Open { path: String, source: std::io::Error },
    #[error("cannot read the header of {path}: {message}")]
    Header { path: String, message: String },
    #[error("{path} is not a GeoJSON FeatureCollection: {message}")]
    GeoJson { path: String, message: String },
    #[error("{path} is not the JSON the mapping expects: {message}")]
    Json { path: String, message: String },
    #[error(transparent)]
    Mapping(#[from] crate::MappingError),
}

/// A row, or why it could not be read.
pub type RecordResult = Result<Record, RowError>;

/// The records of `path` as the mapping's `[source]` describes them; the mapping's columns
/// are checked against the header first.
pub fn records(path: &Path, mapping: &Mapping) -> Result<Box<dyn Iterator<Item = RecordResult>>, SourceError> {
    match mapping.source.format {
        Format::Csv => {
            let (headers, rows) = read_csv(path, mapping.source.delimiter.unwrap_or(','), mapping.source.encoding)?;
            mapping.check_columns(&headers)?;
            Ok(Box::new(rows))
        }
        Format::Geojson => Ok(Box::new(read_geojson(path)?.into_iter())),
        Format::Json => Ok(Box::new(read_json(path, &mapping.source.records)?.into_iter())),
    }
}

/// The records of a file in hubdir's own CSV format; its required columns are checked first.
pub fn hubdir_csv_records(path: &Path) -> Result<Box<dyn Iterator<Item = RecordResult>>, SourceError> {
    let (headers, rows) = read_csv(path, ',', Encoding::Utf8)?;
    let missing: Vec<String> = crate::hubdir_csv::REQUIRED
        .iter()
        .filter(|c| !headers.iter().any(|h| h == *c))
        .map(|c| (*c).to_owned())
        .collect();
    if !missing.is_empty() {
        return Err(crate::MappingError::MissingColumns(missing).into());
    }
    Ok(Box::new(rows))
}

fn unreadable(row: u64, line: u64, reason: &str, message: String) -> RowError {
    RowError { row, line, site_id: String::new(), field: String::new(), reason: reason.into(), message }
}

/// The header and an iterator over the rows of a CSV file.
pub fn read_csv(
    path: &Path,
    delimiter: char,
    encoding: Encoding,
) -> Result<(Vec<String>, impl Iterator<Item = RecordResult> + use<>), SourceError> {
    let file = File::open(path).map_err(|source| SourceError::Open { path: path.display().to_string(), source })?;
    let input: Box<dyn Read> = match encoding {
        // UTF-8 is read as bytes so that an invalid byte becomes a row error with its offset.
        Encoding::Utf8 => Box::new(BufReader::new(file)),
        Encoding::Windows1252 => Box::new(
            encoding_rs_io::DecodeReaderBytesBuilder::new().encoding(Some(encoding_rs::WINDOWS_1252)).build(file),
        ),
    };
    let mut reader = csv::ReaderBuilder::new().delimiter(delimiter as u8).flexible(false).from_reader(input);
    let headers: Vec<String> = reader
        .byte_headers()
        .map_err(|e| SourceError::Header { path: path.display().to_string(), message: e.to_string() })?
        .iter()
        .enumerate()
        .map(|(i, h)| {
            let text = String::from_utf8_lossy(h).into_owned();
            if i == 0 { text.trim_start_matches('\u{feff}').to_owned() } else { text }
        })
        .collect();
    let columns = headers.clone();
    let mut row = 0u64;
    let rows = reader.into_byte_records().map(move |result| {
        row += 1;
        let record = result.map_err(|e| {
            let line = e.position().map_or(0, |p| p.line());
            unreadable(row, line, "MALFORMED_ROW", e.to_string())
        })?;
        let position = record.position().cloned().unwrap_or_else(csv::Position::new);
        let mut values = HashMap::with_capacity(columns.len());
        for (i, (column, bytes)) in columns.iter().zip(record.iter()).enumerate() {
            match std::str::from_utf8(bytes) {
                Ok(text) => {
                    values.insert(column.clone(), text.to_owned());
                }
                Err(e) => {
                    // The record's buffer holds fields without their delimiters: add one per
                    // field before this one (exact unless earlier fields were quoted).
                    let field_start = record.range(i).map_or(0, |r| r.start as u64) + i as u64;
                    let offset = position.byte() + field_start + e.valid_up_to() as u64;
                    return Err(unreadable(
                        row,
                        position.line(),
                        "INVALID_BYTES",
                        format!(
                            "column {column:?} is not valid UTF-8 at byte offset {offset} (exact unless earlier fields of the row are quoted; is the file Windows-1252?)"
                        ),
                    ));
                }
            }
        }
        Ok(Record { row, line: position.line(), values })
    });
    Ok((headers, rows))
}

/// Every feature of a GeoJSON FeatureCollection: its properties as columns (numbers as
/// written, null as empty), plus `$latitude` and `$longitude` from a Point geometry.
pub fn read_geojson(path: &Path) -> Result<Vec<RecordResult>, SourceError> {
    let bad = |message: String| SourceError::GeoJson { path: path.display().to_string(), message };
    let json = read_json_value(path).map_err(|e| e.either(bad))?;
    let features =
        json.get("features").and_then(|f| f.as_array()).ok_or_else(|| bad("no \"features\" array".into()))?;
    Ok(features
        .iter()
        .enumerate()
        .map(|(i, feature)| {
            let n = i as u64 + 1;
            let mut values: HashMap<String, String> = feature
                .get("properties")
                .and_then(|p| p.as_object())
                .map(|props| props.iter().map(|(k, v)| (k.clone(), scalar(v))).collect())
                .unwrap_or_default();
            let geometry = feature.get("geometry").filter(|g| !g.is_null());
            if let Some(geometry) = geometry {
                if geometry.get("type").and_then(|t| t.as_str()) != Some("Point") {
                    return Err(unreadable(n, n, "NOT_A_POINT", "only Point geometries are help points".into()));
                }
                let coordinates = geometry.get("coordinates").and_then(|c| c.as_array());
                // RFC 7946: longitude first.
                if let Some([lng, lat, ..]) = coordinates.map(Vec::as_slice) {
                    values.insert("$longitude".into(), scalar(lng));
                    values.insert("$latitude".into(), scalar(lat));
                }
            }
            Ok(Record { row: n, line: n, values })
        })
        .collect())
}

/// Every object of the array at `records` (a dotted path) in a JSON document, flattened.
pub fn read_json(path: &Path, records: &str) -> Result<Vec<RecordResult>, SourceError> {
    let bad = |message: String| SourceError::Json { path: path.display().to_string(), message };
    let json = read_json_value(path).map_err(|e| e.either(bad))?;
    let list = records
        .split('.')
        .filter(|p| !p.is_empty())
        .try_fold(&json, |v, key| v.get(key))
        .and_then(|v| v.as_array())
        .ok_or_else(|| bad(format!("no array at {records:?}")))?;
    Ok(list
        .iter()
        .enumerate()
        .map(|(i, item)| {
            let n = i as u64 + 1;
            let mut values = HashMap::new();
            flatten("", item, &mut values);
            Ok(Record { row: n, line: n, values })
        })
        .collect())
}

/// Why a JSON document could not be read: the file, or its text.
enum JsonError {
    Open(SourceError),
    Text(String),
}

impl JsonError {
    fn either(self, bad: impl Fn(String) -> SourceError) -> SourceError {
        match self {
            JsonError::Open(e) => e,
            JsonError::Text(message) => bad(message),
        }
    }
}

/// A JSON document, with numbers too large for a double (`1e400`) kept as the text they were
/// written as: one such value makes one row's field invalid, not the whole file unreadable.
fn read_json_value(path: &Path) -> Result<serde_json::Value, JsonError> {
    let mut text = String::new();
    File::open(path)
        .and_then(|file| BufReader::new(file).read_to_string(&mut text))
        .map_err(|source| JsonError::Open(SourceError::Open { path: path.display().to_string(), source }))?;
    serde_json::from_str(&quote_huge_numbers(&text)).map_err(|e| JsonError::Text(e.to_string()))
}

/// `text` with every number outside strings that a double cannot hold put in quotes.
fn quote_huge_numbers(text: &str) -> std::borrow::Cow<'_, str> {
    let bytes = text.as_bytes();
    let mut out: Option<String> = None;
    let (mut i, mut copied, mut in_string) = (0, 0, false);
    while i < bytes.len() {
        let b = bytes[i];
        if in_string {
            match b {
                b'\\' => i += 1,
                b'"' => in_string = false,
                _ => {}
            }
            i += 1;
            continue;
        }
        if b == b'"' {
            in_string = true;
            i += 1;
            continue;
        }
        if b == b'-' || b.is_ascii_digit() {
            let start = i;
            while i < bytes.len() && matches!(bytes[i], b'0'..=b'9' | b'-' | b'+' | b'.' | b'e' | b'E') {
                i += 1;
            }
            let number = &text[start..i];
            if number.parse::<f64>().is_ok_and(f64::is_infinite) {
                let out = out.get_or_insert_with(|| String::with_capacity(text.len() + 16));
                out.push_str(&text[copied..start]);
                out.push('"');
                out.push_str(number);
                out.push('"');
                copied = i;
            }
            continue;
        }
        i += 1;
    }
    match out {
        None => std::borrow::Cow::Borrowed(text),
        Some(mut out) => {
            out.push_str(&text[copied..]);
            std::borrow::Cow::Owned(out)
        }
    }
}

fn flatten(prefix: &str, value: &serde_json::Value, out: &mut HashMap<String, String>) {
    let key = |k: &str| if prefix.is_empty() { k.to_owned() } else { format!("{prefix}.{k}") };
    match value {
        serde_json::Value::Object(map) => map.iter().for_each(|(k, v)| flatten(&key(k), v, out)),
        serde_json::Value::Array(items) => {
            items.iter().enumerate().for_each(|(i, v)| flatten(&key(&i.to_string()), v, out))
        }
        scalar_value => {
            out.insert(prefix.to_owned(), scalar(scalar_value));
        }
    }
}

fn scalar(value: &serde_json::Value) -> String {
    match value {
        serde_json::Value::Null => String::new(),
        serde_json::Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn file(bytes: &[u8]) -> tempfile::NamedTempFile {
        let mut f = tempfile::NamedTempFile::new().unwrap();
        f.write_all(bytes).unwrap();
        f
    }

    /// Finding 8: one `1e400` refused the whole file.
    #[test]
    fn a_number_too_large_for_a_double_spoils_one_field_not_the_file() {
        let f = file(br#"{"items": [{"lat": 1e400, "name": "a \" 1e999"}, {"lat": -2.5e-3, "name": "b"}]}"#);
        let rows: Vec<Record> = read_json(f.path(), "items").unwrap().into_iter().map(Result::unwrap).collect();
        assert_eq!(rows.len(), 2);
        assert_eq!((rows[0].get("lat"), rows[0].get("name")), ("1e400", "a \" 1e999"));
        assert_eq!(rows[1].get("lat"), "-0.0025");
        assert_eq!(quote_huge_numbers("[1, 2.5]"), "[1, 2.5]");
    }

    #[test]
    fn bom_semicolons_crlf_and_quoted_newlines() {
        let f = file("\u{feff}#id;name;note\r\n1;La Souche;\"two\r\nlines\"\r\n2;Uzer;x\r\n".as_bytes());
        let (headers, rows) = read_csv(f.path(), ';', Encoding::Utf8).unwrap();
        assert_eq!(headers, vec!["#id", "name", "note"]);
        let rows: Vec<Record> = rows.map(Result::unwrap).collect();
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[0].get("note"), "two\r\nlines");
        // Lines as the CSV reader counts them: a quoted newline does not start a line.
        assert_eq!((rows[1].row, rows[1].line), (2, 3));
    }

    #[test]
    fn windows_1252_is_decoded_and_invalid_utf8_is_a_row_error_with_its_offset() {
        let mut bytes = b"id,name\n1,Caf".to_vec();
        bytes.push(0xE9); // é in Windows-1252
        bytes.extend_from_slice(b"\n2,ok\n");
        let f = file(&bytes);
        let (_, rows) = read_csv(f.path(), ',', Encoding::Windows1252).unwrap();
        let rows: Vec<Record> = rows.map(Result::unwrap).collect();
        assert_eq!(rows[0].get("name"), "Café");

        let (_, rows) = read_csv(f.path(), ',', Encoding::Utf8).unwrap();
        let rows: Vec<RecordResult> = rows.collect();
        let err = rows[0].as_ref().unwrap_err();
        assert_eq!(err.reason, "INVALID_BYTES");
        assert!(err.message.contains("byte offset 13"), "{}", err.message);
        assert!(rows[1].is_ok(), "one bad row stopped the good ones");
    }

    #[test]
    fn a_ragged_row_is_an_error_and_the_rest_still_read() {
        let f = file(b"a,b\n1,2\n3\n4,5\n");
        let (_, rows) = read_csv(f.path(), ',', Encoding::Utf8).unwrap();
        let rows: Vec<RecordResult> = rows.collect();
        assert_eq!(rows.len(), 3);
        assert_eq!(rows[1].as_ref().unwrap_err().reason, "MALFORMED_ROW");
        assert_eq!(rows[2].as_ref().unwrap().get("b"), "5");
    }

    #[test]
    fn json_records_are_flattened_into_dotted_columns() {
        let f = file(
            br#"{"elements":[{"type":"node","lat":-17.8,"lon":31.0,"tags":{"amenity":"library","name":"Harare"}},
            {"type":"way","center":{"lat":-20.1,"lon":28.6},"tags":{"amenity":"post_office"},"nodes":[1,2]}]}"#,
        );
        let rows: Vec<Record> = read_json(f.path(), "elements").unwrap().into_iter().map(Result::unwrap).collect();
        assert_eq!(rows[0].get("tags.name"), "Harare");
        assert_eq!(rows[0].get("lat"), "-17.8");
        assert_eq!(rows[1].get("center.lon"), "28.6");
        assert_eq!(rows[1].get("nodes.1"), "2");
        assert!(matches!(read_json(f.path(), "contents"), Err(SourceError::Json { .. })));
    }

    #[test]
    fn geojson_points_properties_and_null_geometry() {
        let mut json = Vec::new();
        write!(
            json,
            r#"{{"type":"FeatureCollection","features":[
                {{"type":"Feature","geometry":{{"type":"Point","coordinates":[-79.58,43.74]}},"properties":{{"Name":"Albion","CLC":1.0,"X":null}}}},
                {{"type":"Feature","geometry":null,"properties":{{"Name":"Nowhere"}}}}]}}"#
        )
        .unwrap();
        let f = file(&json);
        let rows: Vec<Record> = read_geojson(f.path()).unwrap().into_iter().map(Result::unwrap).collect();
        assert_eq!(rows[0].get("$longitude"), "-79.58");
        assert_eq!(rows[0].get("$latitude"), "43.74");
        assert_eq!(rows[0].get("CLC"), "1.0");
        assert_eq!(rows[0].get("X"), "");
        assert_eq!(rows[1].get("$latitude"), "");
    }
}
