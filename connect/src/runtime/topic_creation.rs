//! `topic.creation.*` for source connectors (KIP-158): topics a source task writes to are
//! created, when missing, with the settings of the first group (in `topic.creation.groups`
//! order) whose `include` regexes match the topic and whose `exclude` ones do not, else of
//! `default`. Each group takes `replication.factor`, `partitions`, `include`, `exclude` and any
//! topic config (`cleanup.policy`, `compression.type`, ...). Creation is on when
//! `topic.creation.default.replication.factor` and `topic.creation.default.partitions` are set
//! and the worker's `topic.creation.enable` is true (the default).

use std::collections::BTreeMap;

use regex::Regex;

use crate::config::parse_list;
use crate::error::{Error, Result};

const PREFIX: &str = "topic.creation.";

/// One group's settings.
#[derive(Debug, Clone)]
pub(crate) struct TopicGroup {
    pub(crate) name: String,
    include: Vec<Regex>,
    exclude: Vec<Regex>,
    pub(crate) replication: i16,
    pub(crate) partitions: i32,
    pub(crate) configs: BTreeMap<String, String>,
}

/// The groups of a source connector, `default` last.
#[derive(Debug, Clone)]
pub(crate) struct TopicCreation {
    groups: Vec<TopicGroup>,
}

fn number<T: TryFrom<i64>>(values: &BTreeMap<String, String>, key: &str) -> Result<Option<T>> {
    let Some(v) = values.get(key).map(|v| v.trim()).filter(|v| !v.is_empty()) else {
        return Ok(None);
    };
    let n: i64 = v
        .parse()
        .map_err(|_| Error::config(key, v, "Not a number of type INT"))?;
    if n == 0 || n < -1 {
        return Err(Error::config(
            key,
            v,
            "Value must be -1 (the broker's default) or a positive number",
        ));
    }
    T::try_from(n)
        .map(Some)
        .map_err(|_| Error::config(key, v, "Value is out of range"))
}

fn regexes(values: &BTreeMap<String, String>, key: &str) -> Result<Vec<Regex>> {
    parse_list(values.get(key))
        .into_iter()
        .map(|r| {
            Regex::new(&format!("^(?:{r})$"))
                .map_err(|e| Error::config(key, &r, format!("not a valid regex: {e}")))
        })
        .collect()
}

impl TopicCreation {
    /// From a connector config; `None` when creation is off for it.
    pub(crate) fn from_config(values: &BTreeMap<String, String>) -> Result<Option<Self>> {
        let default_rf = format!("{PREFIX}default.replication.factor");
        let default_parts = format!("{PREFIX}default.partitions");
        let group_names = parse_list(values.get("topic.creation.groups"));
        let any = values.keys().any(|k| k.starts_with(PREFIX));
        let (rf, parts) = (
            number::<i16>(values, &default_rf)?,
            number::<i32>(values, &default_parts)?,
        );
        let (rf, parts) = match (rf, parts) {
            (Some(r), Some(p)) => (r, p),
            (None, None) if !any => return Ok(None),
            (None, _) => return Err(Error::MissingConfig { key: default_rf }),
            (_, None) => return Err(Error::MissingConfig { key: default_parts }),
        };
        let mut groups = Vec::new();
        for name in group_names.iter().filter(|g| *g != "default") {
            let key = |k: &str| format!("{PREFIX}{name}.{k}");
            let include = regexes(values, &key("include"))?;
            if include.is_empty() {
                return Err(Error::MissingConfig {
                    key: key("include"),
                });
            }
            groups.push(TopicGroup {
                name: name.clone(),
                include,
                exclude: regexes(values, &key("exclude"))?,
                replication: number(values, &key("replication.factor"))?.unwrap_or(rf),
                partitions: number(values, &key("partitions"))?.unwrap_or(parts),
                configs: topic_configs(values, name),
            });
        }
        groups.push(TopicGroup {
            name: "default".into(),
            include: Vec::new(),
            exclude: Vec::new(),
            replication: rf,
            partitions: parts,
            configs: topic_configs(values, "default"),
        });
        Ok(Some(TopicCreation { groups }))
    }

    /// The group whose settings a new topic gets.
    pub(crate) fn group_for(&self, topic: &str) -> &TopicGroup {
        self.groups
            .iter()
            .find(|g| {
                g.name == "default"
                    || (g.include.iter().any(|r| r.is_match(topic))
                        && !g.exclude.iter().any(|r| r.is_match(topic)))
            })
            .unwrap_or_else(|| &self.groups[self.groups.len() - 1])
    }
}

/// `topic.creation.{group}.*` keys that are topic configs.
fn topic_configs(values: &BTreeMap<String, String>, group: &str) -> BTreeMap<String, String> {
    let prefix = format!("{PREFIX}{group}.");
    values
        .iter()
        .filter_map(|(k, v)| k.strip_prefix(&prefix).map(|k| (k, v)))
        .filter(|(k, _)| !["include", "exclude", "replication.factor", "partitions"].contains(k))
        .map(|(k, v)| (k.to_string(), v.clone()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn values(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn the_first_matching_group_wins_then_default() {
        let c = TopicCreation::from_config(&values(&[
            ("topic.creation.groups", "compacted, inorder"),
            ("topic.creation.default.replication.factor", "-1"),
            ("topic.creation.default.partitions", "3"),
            ("topic.creation.default.compression.type", "lz4"),
            ("topic.creation.compacted.include", "db\\..*, cfg"),
            ("topic.creation.compacted.exclude", "db\\.tmp.*"),
            ("topic.creation.compacted.cleanup.policy", "compact"),
            ("topic.creation.inorder.include", ".*"),
            ("topic.creation.inorder.partitions", "1"),
        ]))
        .unwrap()
        .unwrap();
        let g = c.group_for("db.users");
        assert_eq!(
            (g.name.as_str(), g.partitions, g.replication),
            ("compacted", 3, -1)
        );
        assert_eq!(g.configs["cleanup.policy"], "compact");
        assert!(!g.configs.contains_key("include"));
        assert_eq!(c.group_for("db.tmp1").name, "inorder");
        assert_eq!(c.group_for("db.tmp1").partitions, 1);
        assert_eq!(c.group_for("cfg").name, "compacted");
        // Regexes match the whole name.
        assert_eq!(c.group_for("xcfg").name, "inorder");
    }

    #[test]
    fn off_unless_configured_and_errors_name_the_key() {
        assert!(TopicCreation::from_config(&values(&[])).unwrap().is_none());
        let err =
            TopicCreation::from_config(&values(&[("topic.creation.default.partitions", "3")]))
                .unwrap_err();
        assert!(
            err.to_string()
                .contains("topic.creation.default.replication.factor")
        );
        let err = TopicCreation::from_config(&values(&[
            ("topic.creation.default.partitions", "0"),
            ("topic.creation.default.replication.factor", "1"),
        ]))
        .unwrap_err();
        assert!(
            err.to_string()
                .contains("topic.creation.default.partitions")
        );
        let err = TopicCreation::from_config(&values(&[
            ("topic.creation.groups", "g"),
            ("topic.creation.default.partitions", "1"),
            ("topic.creation.default.replication.factor", "1"),
        ]))
        .unwrap_err();
        assert!(err.to_string().contains("topic.creation.g.include"));
        let default_only = TopicCreation::from_config(&values(&[
            ("topic.creation.default.partitions", "2"),
            ("topic.creation.default.replication.factor", "1"),
        ]))
        .unwrap()
        .unwrap();
        assert_eq!(default_only.group_for("any").partitions, 2);
    }
}
