use std::collections::BTreeMap;
use std::io::Write;

/// Why one row was not imported.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RowError {
    /// 1-based data row.
    pub row: u64,
    /// 1-based line in the file.
    pub line: u64,
    /// The site id the row would have had, when known.
    pub site_id: String,
    /// The site field (or source column) at fault.
    pub field: String,
    /// Machine-readable, e.g. `MISSING_COORDINATES`, `OUT_OF_RANGE`, `INVALID_BYTES`.
    pub reason: String,
    pub message: String,
}

/// Validates a mapped row: the site, or the problems already found plus every validation
/// violation of a field not reported yet (an unmapped kind is not also "missing"; a refused
/// position is not also "required").
pub(crate) fn validated(
    input: hubdir_core::SiteInput,
    mut errors: Vec<RowError>,
    record: &crate::Record,
    site_id: &str,
) -> Result<hubdir_core::Site, Vec<RowError>> {
    match input.validate() {
        Ok(site) if errors.is_empty() => Ok(site),
        Ok(_) => Err(errors),
        Err(violations) => {
            for v in violations.0 {
                let reported = errors.iter().any(|e| e.field.starts_with(&v.field) || v.field.starts_with(&e.field));
                if !reported {
                    errors.push(RowError {
                        row: record.row,
                        line: record.line,
                        site_id: site_id.to_owned(),
                        field: v.field,
                        reason: v.reason.code().to_owned(),
                        message: v.description,
                    });
                }
            }
            Err(errors)
        }
    }
}

/// What an import did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Summary {
    pub read: u64,
    pub created: u64,
    pub updated: u64,
    pub unchanged: u64,
    /// Rejected rows by the reason of their first error.
    pub rejected: BTreeMap<String, u64>,
}

impl Summary {
    pub fn rejected_total(&self) -> u64 {
        self.rejected.values().sum()
    }

    /// Counts a rejected row under the reason of its first error.
    pub fn reject(&mut self, errors: &[RowError]) {
        let reason = errors.first().map_or("UNKNOWN", |e| e.reason.as_str());
        *self.rejected.entry(reason.to_owned()).or_default() += 1;
    }

    /// A few lines for people.
    pub fn render(&self) -> String {
        let mut out = format!(
            "read {}, imported {} (created {}, updated {}), unchanged {}, rejected {}",
            self.read,
            self.created + self.updated,
            self.created,
            self.updated,
            self.unchanged,
            self.rejected_total()
        );
        for (reason, count) in &self.rejected {
            out.push_str(&format!("\n  rejected {count:>7}  {reason}"));
        }
        out
    }
}

/// Writes every error as CSV: `row,line,site_id,field,reason,message`.
pub fn write_errors<W: Write>(out: W, errors: &[RowError]) -> std::io::Result<()> {
    let mut writer = csv::Writer::from_writer(out);
    writer.write_record(["row", "line", "site_id", "field", "reason", "message"])?;
    for e in errors {
        writer.write_record([&e.row.to_string(), &e.line.to_string(), &e.site_id, &e.field, &e.reason, &e.message])?;
    }
    writer.flush()
}
