use std::collections::HashMap;

/// One row of a source: its position and its values by column name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// 1-based data row (the header is not a row).
    pub row: u64,
    /// 1-based line where the row starts as the CSV reader counts lines (newlines inside
    /// quoted fields do not count), or the feature index + 1 (GeoJSON).
    pub line: u64,
    pub values: HashMap<String, String>,
}

impl Record {
    /// A column's value, trimmed; empty if the column is absent.
    pub fn get(&self, column: &str) -> &str {
        self.values.get(column).map(|v| v.trim()).unwrap_or("")
    }
}
