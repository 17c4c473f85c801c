//! Predicates: `TopicNameMatches` (`pattern`), `HasHeaderKey` (`name`), `RecordIsTombstone`.

use std::collections::BTreeMap;
use std::sync::Arc;

use regex::Regex;

use crate::data::ConnectRecord;
use crate::error::{Error, Result};

/// A condition on a record that gates a transform.
pub trait Predicate: Send + Sync {
    fn test(&self, record: &ConnectRecord) -> bool;
}

struct TopicNameMatches(Regex);
struct HasHeaderKey(String);
struct RecordIsTombstone;

impl Predicate for TopicNameMatches {
    fn test(&self, record: &ConnectRecord) -> bool {
        self.0.is_match(&record.topic)
    }
}

impl Predicate for HasHeaderKey {
    fn test(&self, record: &ConnectRecord) -> bool {
        record.headers.iter().any(|h| h.key == self.0)
    }
}

impl Predicate for RecordIsTombstone {
    fn test(&self, record: &ConnectRecord) -> bool {
        record.value.is_null()
    }
}

/// A full-match regex (Java's `Matcher.matches`).
pub(crate) fn full_match(key: &str, pattern: &str) -> Result<Regex> {
    Regex::new(&format!("^(?:{pattern})$"))
        .map_err(|e| Error::config(key, pattern, format!("Invalid regex: {e}")))
}

pub(crate) fn build(
    class: &str,
    type_key: &str,
    alias: &str,
    settings: &BTreeMap<String, String>,
) -> Result<Arc<dyn Predicate>> {
    let simple = class.rsplit('.').next().unwrap_or(class);
    let get = |k: &str| {
        settings
            .get(k)
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty())
            .ok_or_else(|| Error::MissingConfig {
                key: format!("predicates.{alias}.{k}"),
            })
    };
    Ok(match simple {
        "TopicNameMatches" => {
            let pattern = get("pattern")?;
            Arc::new(TopicNameMatches(full_match(
                &format!("predicates.{alias}.pattern"),
                &pattern,
            )?))
        }
        "HasHeaderKey" => Arc::new(HasHeaderKey(get("name")?)),
        "RecordIsTombstone" => Arc::new(RecordIsTombstone),
        _ => {
            return Err(Error::config(
                type_key,
                class,
                format!("Class {class} could not be found"),
            ));
        }
    })
}
