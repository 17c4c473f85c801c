//! `RegexRouter` (`regex`, `replacement`) and `TimestampRouter` (`topic.format`,
//! `timestamp.format`).

use regex::Regex;

use super::predicates::full_match;
use super::time::format_millis;
use super::{Settings, Transform};
use crate::data::ConnectRecord;
use crate::error::{Error, Result};

/// Renames topics that fully match `regex` to `replacement` (`$1` groups, as in Java).
pub(crate) struct RegexRouter {
    regex: Regex,
    replacement: String,
}

impl RegexRouter {
    pub(crate) fn new(s: &Settings<'_>) -> Result<Self> {
        let regex = full_match(&s.key("regex"), s.required("regex")?)?;
        let replacement =
            s.values
                .get("replacement")
                .cloned()
                .ok_or_else(|| Error::MissingConfig {
                    key: s.key("replacement"),
                })?;
        // Java's `$1` becomes `${1}` so a following letter is not read as part of the name.
        let replacement = Regex::new(r"\$(\d+)")
            .map(|r| r.replace_all(&replacement, "$${$1}").into_owned())
            .unwrap_or(replacement);
        Ok(RegexRouter { regex, replacement })
    }
}

impl Transform for RegexRouter {
    fn apply(&self, mut record: ConnectRecord) -> Result<Option<ConnectRecord>> {
        if self.regex.is_match(&record.topic) {
            record.topic = self
                .regex
                .replace(&record.topic, self.replacement.as_str())
                .into_owned();
        }
        Ok(Some(record))
    }
}

/// Appends the record's timestamp to its topic (`${topic}-${timestamp}`, `yyyyMMdd`).
pub(crate) struct TimestampRouter {
    topic_format: String,
    timestamp_format: String,
}

impl TimestampRouter {
    pub(crate) fn new(s: &Settings<'_>) -> Result<Self> {
        Ok(TimestampRouter {
            topic_format: s
                .get("topic.format")
                .unwrap_or("${topic}-${timestamp}")
                .to_string(),
            timestamp_format: s.get("timestamp.format").unwrap_or("yyyyMMdd").to_string(),
        })
    }
}

impl Transform for TimestampRouter {
    fn apply(&self, mut record: ConnectRecord) -> Result<Option<ConnectRecord>> {
        let ts = record.timestamp.ok_or_else(|| {
            Error::transform(
                "TimestampRouter",
                format!("Timestamp missing on record: {}", record.topic),
            )
        })?;
        let formatted = format_millis(ts, &self.timestamp_format);
        record.topic = self
            .topic_format
            .replace("${topic}", &record.topic)
            .replace("${timestamp}", &formatted);
        Ok(Some(record))
    }
}

#[cfg(test)]
mod tests {
    use super::super::TransformChain;
    use super::super::tests::cfg;
    use crate::data::{ConnectRecord, Value};

    #[test]
    fn regex_router_rewrites_full_matches_only() {
        let chain = TransformChain::from_config(&cfg(&[
            ("transforms", "r"),
            (
                "transforms.r.type",
                "org.apache.kafka.connect.transforms.RegexRouter",
            ),
            ("transforms.r.regex", "(.*)-raw"),
            ("transforms.r.replacement", "$1x-clean"),
        ]))
        .unwrap();
        let r = chain
            .apply(ConnectRecord::new("orders-raw", None, Value::Null))
            .unwrap()
            .unwrap();
        assert_eq!(r.topic, "ordersx-clean");
        let r = chain
            .apply(ConnectRecord::new("raw-orders", None, Value::Null))
            .unwrap()
            .unwrap();
        assert_eq!(r.topic, "raw-orders");
    }

    #[test]
    fn timestamp_router_uses_defaults() {
        let chain = TransformChain::from_config(&cfg(&[
            ("transforms", "t"),
            ("transforms.t.type", "TimestampRouter"),
        ]))
        .unwrap();
        let mut r = ConnectRecord::new("logs", None, Value::Null);
        r.timestamp = Some(1_700_000_000_000); // 2023-11-14T22:13:20Z
        assert_eq!(chain.apply(r).unwrap().unwrap().topic, "logs-20231114");
        assert!(
            chain
                .apply(ConnectRecord::new("logs", None, Value::Null))
                .is_err()
        );
    }
}
