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

/// What a mapping does with a row whose only faults are in optional fields
/// (`[checks] on_invalid_optional`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OnInvalidOptional {
    /// The row is rejected, as any row with a fault.
    #[default]
    RejectRow,
    /// The site is kept without the refused fields, and each dropped field is reported as
    /// `FIELD_DROPPED`. Coordinates and required fields always reject the row.
    DropField,
}

/// The reason a dropped optional field is reported under.
pub const FIELD_DROPPED: &str = "FIELD_DROPPED";

/// Fields a row may be kept without: those that only add detail to a help point. The name,
/// kind, operator (which authorisation checks), country, position, time zone, services,
/// status and free access never are.
fn droppable(field: &str) -> bool {
    const OPTIONAL: [&str; 9] = [
        "address.",
        "service_notes",
        "languages",
        "accessibility",
        "opening_hours",
        "contact.",
        "phone",
        "email",
        "website",
    ];
    OPTIONAL.iter().any(|prefix| field.starts_with(prefix))
}

/// `input` without what made `field` refused.
fn drop_field(input: &mut hubdir_core::SiteInput, field: &str) {
    let field = field.strip_prefix("contact.").unwrap_or(field);
    match field.split('[').next().unwrap_or_default() {
        "address.lines" => input.address.lines.clear(),
        "address.locality" => input.address.locality.clear(),
        "address.region" => input.address.region.clear(),
        "address.postal_code" => input.address.postal_code.clear(),
        "service_notes" => input.service_notes.clear(),
        "languages" => {
            let mut kept = Vec::new();
            input.languages.retain(|text| match hubdir_core::LanguageTag::parse(text) {
                Some(tag) if !kept.contains(&tag) => {
                    kept.push(tag);
                    true
                }
                _ => false,
            });
            input.languages.truncate(hubdir_core::limits::LANGUAGES);
        }
        // Unknown values never reach the input; a repeated one is the only other fault.
        "accessibility" => {
            input.accessibility.sort();
            input.accessibility.dedup();
        }
        "opening_hours" => input.opening_hours.clear(),
        "phone" => input.contact.phone.clear(),
        "email" => input.contact.email.clear(),
        "website" => input.contact.website.clear(),
        _ => {}
    }
}

/// As [`validated`], and with [`OnInvalidOptional::DropField`] a row whose every fault is in
/// a droppable field is kept without those fields: the site and the `FIELD_DROPPED` notes.
pub(crate) fn validated_with(
    input: hubdir_core::SiteInput,
    errors: Vec<RowError>,
    record: &crate::Record,
    site_id: &str,
    policy: OnInvalidOptional,
) -> Result<(hubdir_core::Site, Vec<RowError>), Vec<RowError>> {
    let errors = match validated(input.clone(), errors, record, site_id) {
        Ok(site) => return Ok((site, Vec::new())),
        Err(errors) => errors,
    };
    if policy == OnInvalidOptional::RejectRow || !errors.iter().all(|e| droppable(&e.field)) {
        return Err(errors);
    }
    let mut input = input;
    for e in &errors {
        drop_field(&mut input, &e.field);
    }
    match input.validate() {
        Ok(site) => {
            let notes = errors
                .into_iter()
                .map(|e| RowError {
                    message: format!("{}: {}; the site is kept without it", e.reason, e.message),
                    reason: FIELD_DROPPED.to_owned(),
                    ..e
                })
                .collect();
            Ok((site, notes))
        }
        Err(_) => Err(errors),
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
    /// Rows kept without a refused optional field (`on_invalid_optional = "drop_field"`).
    pub kept_without_fields: u64,
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
        if self.kept_without_fields > 0 {
            out.push_str(&format!(
                "\n  kept {:>11}  without a refused optional field ({FIELD_DROPPED} in the report)",
                self.kept_without_fields
            ));
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
