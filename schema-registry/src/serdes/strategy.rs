//! Subject name strategies (Confluent's `key.subject.name.strategy` / `value.subject.name.strategy`).

use crate::error::{Error, Result};

/// How a serializer names the subject a schema is registered under.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SubjectNameStrategy {
    /// `<topic>-key` or `<topic>-value` (the default).
    #[default]
    TopicName,
    /// The record's full name.
    RecordName,
    /// `<topic>-<record full name>`.
    TopicRecordName,
}

impl SubjectNameStrategy {
    /// The subject for a record of `topic`; `record_name` is the schema's full name (needed by
    /// the record strategies).
    pub fn subject(self, topic: &str, is_key: bool, record_name: Option<&str>) -> Result<String> {
        let named = |strategy| {
            record_name
                .map(str::to_string)
                .ok_or(Error::UnnamedSchema { strategy })
        };
        Ok(match self {
            SubjectNameStrategy::TopicName => {
                format!("{topic}-{}", if is_key { "key" } else { "value" })
            }
            SubjectNameStrategy::RecordName => named("RecordName")?,
            SubjectNameStrategy::TopicRecordName => {
                format!("{topic}-{}", named("TopicRecordName")?)
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strategies_name_subjects_as_confluent() {
        let s = SubjectNameStrategy::TopicName;
        assert_eq!(s.subject("orders", false, None).unwrap(), "orders-value");
        assert_eq!(
            s.subject("orders", true, Some("a.B")).unwrap(),
            "orders-key"
        );
        let r = SubjectNameStrategy::RecordName;
        assert_eq!(
            r.subject("orders", false, Some("com.acme.Order")).unwrap(),
            "com.acme.Order"
        );
        assert!(matches!(
            r.subject("orders", false, None),
            Err(Error::UnnamedSchema { .. })
        ));
        let tr = SubjectNameStrategy::TopicRecordName;
        assert_eq!(
            tr.subject("orders", false, Some("com.acme.Order")).unwrap(),
            "orders-com.acme.Order"
        );
    }
}
