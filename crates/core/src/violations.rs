//! Violations: what was refused, in which field, and why, as every error about input says
//! it; and the limits and echo rules that keep such errors bounded.

use std::fmt;

/// Size limits on what a site may carry.
pub mod limits {
    pub const DISPLAY_NAME_CHARS: usize = 200;
    pub const OPERATOR_CHARS: usize = 200;
    pub const ADDRESS_LINES: usize = 4;
    pub const ADDRESS_FIELD_CHARS: usize = 200;
    pub const POSTAL_CODE_CHARS: usize = 32;
    pub const SERVICE_NOTES_CHARS: usize = 1000;
    pub const LANGUAGES: usize = 16;
    pub const LANGUAGE_TAG_CHARS: usize = 35;
    pub const OPENING_HOURS_CHARS: usize = 1000;
    pub const PHONE_CHARS: usize = 64;
    pub const EMAIL_CHARS: usize = 254;
    pub const WEBSITE_CHARS: usize = 2048;
    pub const TIME_ZONE_CHARS: usize = 64;
    pub const COUNTRY_CODE_CHARS: usize = 2;
    /// The most characters of a refused value repeated in an error message.
    pub const ECHO_CHARS: usize = 40;
    /// Enum sets are bounded by their enum, but a wire message can repeat a value.
    pub const ENUM_VALUES: usize = 32;
}

/// Why a field was refused; the code is what clients see in `FieldViolation.reason`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ViolationReason {
    Required,
    OutOfRange,
    InvalidFormat,
    TooLong,
    TooMany,
    Duplicate,
    UnknownValue,
    Placeholder,
}

impl ViolationReason {
    pub fn code(self) -> &'static str {
        match self {
            ViolationReason::Required => "REQUIRED",
            ViolationReason::OutOfRange => "OUT_OF_RANGE",
            ViolationReason::InvalidFormat => "INVALID_FORMAT",
            ViolationReason::TooLong => "TOO_LONG",
            ViolationReason::TooMany => "TOO_MANY",
            ViolationReason::Duplicate => "DUPLICATE",
            ViolationReason::UnknownValue => "UNKNOWN_VALUE",
            ViolationReason::Placeholder => "PLACEHOLDER",
        }
    }
}

/// One refused field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    /// Field path as in the API, e.g. `location.latitude` or `languages[2]`.
    pub field: String,
    pub reason: ViolationReason,
    pub description: String,
}

impl Violation {
    pub fn new(field: impl Into<String>, reason: ViolationReason, description: impl Into<String>) -> Self {
        Violation { field: field.into(), reason, description: description.into() }
    }
}

/// Every refused field of one input; never empty when returned as an error.
#[derive(Debug, Clone, Default, PartialEq, Eq, thiserror::Error)]
pub struct Violations(pub Vec<Violation>);

impl Violations {
    pub fn push(&mut self, field: impl Into<String>, reason: ViolationReason, description: impl Into<String>) {
        self.0.push(Violation::new(field, reason, description));
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Prefixes every field path, e.g. with `site.` when the site is nested in a request.
    pub fn nested_in(self, prefix: &str) -> Violations {
        Violations(self.0.into_iter().map(|v| Violation { field: format!("{prefix}.{}", v.field), ..v }).collect())
    }
}

impl fmt::Display for Violations {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, v) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("; ")?;
            }
            write!(f, "{}: {}", v.field, v.description)?;
        }
        Ok(())
    }
}

/// A refused value as an error message repeats it: quoted, and cut after
/// [`limits::ECHO_CHARS`] characters, so an error never amplifies its input.
pub fn echo(value: &str) -> String {
    match value.char_indices().nth(limits::ECHO_CHARS) {
        None => format!("{value:?}"),
        Some((end, _)) => format!("{:?}... ({} bytes)", &value[..end], value.len()),
    }
}

/// The first control character of `value` (U+0000..U+001F, U+007F..U+009F), if any, with its
/// character position; `allow` lists those the field may hold (line breaks in notes).
pub fn control_char(value: &str, allow: &[char]) -> Option<(usize, char)> {
    value.chars().enumerate().find(|(_, c)| c.is_control() && !allow.contains(c))
}
