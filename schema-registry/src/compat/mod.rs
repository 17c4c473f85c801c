//! Compatibility levels and the checks of a new schema against a subject's versions.

pub mod avro;
pub mod json;

use serde::{Deserialize, Serialize};

use crate::schema::ParsedSchema;

/// Confluent's compatibility levels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum CompatibilityLevel {
    None,
    #[default]
    Backward,
    BackwardTransitive,
    Forward,
    ForwardTransitive,
    Full,
    FullTransitive,
}

impl CompatibilityLevel {
    pub fn as_str(self) -> &'static str {
        match self {
            CompatibilityLevel::None => "NONE",
            CompatibilityLevel::Backward => "BACKWARD",
            CompatibilityLevel::BackwardTransitive => "BACKWARD_TRANSITIVE",
            CompatibilityLevel::Forward => "FORWARD",
            CompatibilityLevel::ForwardTransitive => "FORWARD_TRANSITIVE",
            CompatibilityLevel::Full => "FULL",
            CompatibilityLevel::FullTransitive => "FULL_TRANSITIVE",
        }
    }

    /// Parses a level, case-insensitively as Confluent.
    pub fn parse(text: &str) -> Option<CompatibilityLevel> {
        Some(match text.to_ascii_uppercase().as_str() {
            "NONE" => CompatibilityLevel::None,
            "BACKWARD" => CompatibilityLevel::Backward,
            "BACKWARD_TRANSITIVE" => CompatibilityLevel::BackwardTransitive,
            "FORWARD" => CompatibilityLevel::Forward,
            "FORWARD_TRANSITIVE" => CompatibilityLevel::ForwardTransitive,
            "FULL" => CompatibilityLevel::Full,
            "FULL_TRANSITIVE" => CompatibilityLevel::FullTransitive,
            _ => return None,
        })
    }

    fn transitive(self) -> bool {
        matches!(
            self,
            CompatibilityLevel::BackwardTransitive
                | CompatibilityLevel::ForwardTransitive
                | CompatibilityLevel::FullTransitive
        )
    }

    fn backward(self) -> bool {
        matches!(
            self,
            CompatibilityLevel::Backward
                | CompatibilityLevel::BackwardTransitive
                | CompatibilityLevel::Full
                | CompatibilityLevel::FullTransitive
        )
    }

    fn forward(self) -> bool {
        matches!(
            self,
            CompatibilityLevel::Forward
                | CompatibilityLevel::ForwardTransitive
                | CompatibilityLevel::Full
                | CompatibilityLevel::FullTransitive
        )
    }
}

/// An earlier version of the subject to check against.
#[derive(Debug, Clone, Copy)]
pub struct Previous<'a> {
    pub version: i32,
    pub schema: &'a ParsedSchema,
    /// The stored text, quoted in messages.
    pub text: &'a str,
}

/// Messages describing why `new` is incompatible with one pair direction: empty if compatible.
pub fn pair_messages(reader: &ParsedSchema, writer: &ParsedSchema) -> Vec<String> {
    match (reader, writer) {
        (ParsedSchema::Avro(r), ParsedSchema::Avro(w)) => {
            avro::check(r, w).iter().map(ToString::to_string).collect()
        }
        (ParsedSchema::Json(r), ParsedSchema::Json(w)) => json::check(r.value(), w.value())
            .iter()
            .map(ToString::to_string)
            .collect(),
        _ => vec!["Incompatible because of different schema type".to_string()],
    }
}

/// Checks `new` against `previous` (oldest first) under `level`. Non-transitive levels look
/// at the latest version only. Returns Confluent's verbose messages for the newest
/// incompatible version, or nothing when compatible.
pub fn check(
    level: CompatibilityLevel,
    new: &ParsedSchema,
    previous: &[Previous<'_>],
) -> Vec<String> {
    if level == CompatibilityLevel::None {
        return Vec::new();
    }
    let candidates: Vec<&Previous<'_>> = if level.transitive() {
        previous.iter().rev().collect()
    } else {
        previous.last().into_iter().collect()
    };
    for old in candidates {
        let mut messages = Vec::new();
        if level.backward() {
            messages.extend(pair_messages(new, old.schema));
        }
        if level.forward() {
            messages.extend(pair_messages(old.schema, new));
        }
        if !messages.is_empty() {
            messages.push(format!("{{oldSchemaVersion: {}}}", old.version));
            messages.push(format!("{{oldSchema: '{}'}}", old.text));
            messages.push(format!(
                "{{validateFields: 'false', compatibility: '{}'}}",
                level.as_str()
            ));
            return messages;
        }
    }
    Vec::new()
}

#[cfg(test)]
#[path = "matrix_tests.rs"]
mod matrix_tests;
