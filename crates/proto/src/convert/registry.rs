//! `registry.proto`: what the registry answers besides sites.

use hubdir_core::Violations;

use crate::v1 as pb;

/// A row's violations as the `FieldError`s a batch answer carries for it.
pub fn field_errors(violations: &Violations) -> Vec<pb::FieldError> {
    violations
        .0
        .iter()
        .map(|v| pb::FieldError {
            field: v.field.clone(),
            reason: v.reason.code().to_owned(),
            description: v.description.clone(),
        })
        .collect()
}
