//! The in-memory view of `__consumer_offsets` and the writes that keep it.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;

use bytes::{Bytes, BytesMut};
use kafka_protocol::indexmap::IndexMap;
use kafka_protocol::records::{
    Compression, Record, RecordBatchDecoder, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
};

use super::codec::{CommittedOffset, OffsetsKey, partition_for};
use crate::error::{Error, Result};
use crate::topic::Topic;

/// Kafka's name of the offsets topic.
pub(crate) const OFFSETS_TOPIC: &str = "__consumer_offsets";

type GroupOffsets = BTreeMap<(String, i32), CommittedOffset>;

/// Committed offsets of every group.
#[derive(Debug, Default)]
pub(crate) struct OffsetStore {
    groups: Mutex<HashMap<String, GroupOffsets>>,
    /// The last group metadata record of each group (GroupMetadataValue bytes).
    group_metadata: Mutex<HashMap<String, Vec<u8>>>,
}

impl OffsetStore {
    fn apply(&self, key: &OffsetsKey, value: Option<&[u8]>) {
        let (group, topic, partition) = match key {
            OffsetsKey::Offset {
                group,
                topic,
                partition,
            } => (group, topic, partition),
            OffsetsKey::Group { group } => {
                let mut metadata = self
                    .group_metadata
                    .lock()
                    .unwrap_or_else(|p| p.into_inner());
                match value {
                    Some(bytes) => metadata.insert(group.clone(), bytes.to_vec()),
                    None => metadata.remove(group),
                };
                return;
            }
        };
        let mut groups = self.groups.lock().unwrap_or_else(|p| p.into_inner());
        match value.and_then(CommittedOffset::decode) {
            Some(offset) => {
                groups
                    .entry(group.clone())
                    .or_default()
                    .insert((topic.clone(), *partition), offset);
            }
            None => {
                if let Some(offsets) = groups.get_mut(group) {
                    offsets.remove(&(topic.clone(), *partition));
                    if offsets.is_empty() {
                        groups.remove(group);
                    }
                }
            }
        }
    }

    /// Rebuilds the view from the offsets topic's log.
    pub(crate) fn load(&self, topic: &Topic) -> Result<()> {
        let mut records = 0usize;
        for partition in topic.partitions() {
            let mut offset = partition.offsets().log_start;
            loop {
                let read = partition.read(offset, 16 << 20, true)?;
                if read.records.is_empty() {
                    break;
                }
                let mut bytes = read.records.clone();
                let sets = RecordBatchDecoder::decode_all(&mut bytes).map_err(|e| {
                    Error::CorruptMetadata {
                        path: OFFSETS_TOPIC.into(),
                        reason: format!("partition {}: {e}", partition.index()),
                    }
                })?;
                let mut next = offset;
                for record in sets.iter().flat_map(|s| s.records.iter()) {
                    next = next.max(record.offset + 1);
                    if record.offset < offset || record.control {
                        continue;
                    }
                    if let Some(key) = record.key.as_deref().and_then(OffsetsKey::decode) {
                        self.apply(&key, record.value.as_deref());
                        records += 1;
                    }
                }
                let last = fjord_protocol::batch::Batches::new(&read.records)
                    .filter_map(|b| b.ok())
                    .map(|(h, _)| h.last_offset() + 1)
                    .max()
                    .unwrap_or(next);
                offset = last.max(next);
            }
        }
        tracing::info!(
            records,
            groups = self.groups.lock().unwrap_or_else(|p| p.into_inner()).len(),
            "loaded committed offsets"
        );
        Ok(())
    }

    /// Writes offsets (or, for `None`, tombstones) of `group` to its partition of the offsets
    /// topic, then updates the view. Nothing is visible before the write succeeded.
    pub(crate) fn write(
        &self,
        topic: &Topic,
        group: &str,
        entries: Vec<((String, i32), Option<CommittedOffset>)>,
        now_ms: i64,
    ) -> Result<()> {
        let records = entries
            .into_iter()
            .map(|((t, p), v)| {
                (
                    OffsetsKey::Offset {
                        group: group.to_string(),
                        topic: t,
                        partition: p,
                    },
                    v.map(|v| v.encode()),
                )
            })
            .collect();
        self.write_records(topic, group, records, now_ms)
    }

    /// Writes a group's metadata record (`None`: a tombstone).
    pub(crate) fn write_group(
        &self,
        topic: &Topic,
        group: &str,
        value: Option<Vec<u8>>,
        now_ms: i64,
    ) -> Result<()> {
        self.write_records(
            topic,
            group,
            vec![(
                OffsetsKey::Group {
                    group: group.to_string(),
                },
                value,
            )],
            now_ms,
        )
    }

    /// The stored metadata records of every group, for loading the coordinator.
    pub(crate) fn group_metadata(&self) -> Vec<(String, Vec<u8>)> {
        let metadata = self
            .group_metadata
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        metadata
            .iter()
            .map(|(g, v)| (g.clone(), v.clone()))
            .collect()
    }

    fn write_records(
        &self,
        topic: &Topic,
        group: &str,
        keyed: Vec<(OffsetsKey, Option<Vec<u8>>)>,
        now_ms: i64,
    ) -> Result<()> {
        if keyed.is_empty() {
            return Ok(());
        }
        let index = partition_for(group, topic.partition_count());
        let partition = topic
            .partition(index)
            .ok_or_else(|| Error::UnknownTopicOrPartition {
                topic: OFFSETS_TOPIC.into(),
                partition: index,
            })?;
        let records: Vec<Record> = keyed
            .iter()
            .enumerate()
            .map(|(i, (key, value))| Record {
                transactional: false,
                control: false,
                delete_horizon: false,
                partition_leader_epoch: -1,
                producer_id: -1,
                producer_epoch: -1,
                timestamp_type: TimestampType::Creation,
                offset: i as i64,
                sequence: i as i32,
                timestamp: now_ms,
                key: Some(Bytes::from(key.encode())),
                value: value.as_ref().map(|v| Bytes::from(v.clone())),
                headers: IndexMap::new(),
            })
            .collect();
        let mut buf = BytesMut::new();
        let options = RecordEncodeOptions {
            version: 2,
            compression: Compression::None,
        };
        RecordBatchEncoder::encode(&mut buf, records.iter(), &options).map_err(|e| {
            Error::CorruptMetadata {
                path: OFFSETS_TOPIC.into(),
                reason: format!("cannot encode offset commit: {e}"),
            }
        })?;
        let config = topic.config();
        partition.append(&buf, config.log(), now_ms)?;
        for (key, value) in &keyed {
            self.apply(key, value.as_deref());
        }
        Ok(())
    }

    /// The committed offset of one partition.
    pub(crate) fn get(&self, group: &str, topic: &str, partition: i32) -> Option<CommittedOffset> {
        let groups = self.groups.lock().unwrap_or_else(|p| p.into_inner());
        groups
            .get(group)
            .and_then(|o| o.get(&(topic.to_string(), partition)))
            .cloned()
    }

    /// Every committed offset of a group.
    pub(crate) fn group(&self, group: &str) -> GroupOffsets {
        self.groups
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(group)
            .cloned()
            .unwrap_or_default()
    }

    /// Groups with committed offsets, sorted.
    pub(crate) fn groups(&self) -> Vec<String> {
        let mut names: Vec<String> = self
            .groups
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .keys()
            .cloned()
            .collect();
        names.sort();
        names
    }

    /// Offsets of `group` committed before `cutoff_ms` (ms since the epoch).
    pub(crate) fn expired(&self, group: &str, cutoff_ms: i64) -> Vec<(String, i32)> {
        let groups = self.groups.lock().unwrap_or_else(|p| p.into_inner());
        groups
            .get(group)
            .map(|o| {
                o.iter()
                    .filter(|(_, v)| v.commit_timestamp < cutoff_ms)
                    .map(|(k, _)| k.clone())
                    .collect()
            })
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offsets_older_than_the_cutoff_are_expired() {
        let store = OffsetStore::default();
        for (partition, ts) in [(0, 1_000), (1, 5_000)] {
            let key = OffsetsKey::Offset {
                group: "g".into(),
                topic: "t".into(),
                partition,
            };
            let value = CommittedOffset {
                offset: 1,
                leader_epoch: -1,
                metadata: String::new(),
                commit_timestamp: ts,
            };
            store.apply(&key, Some(&value.encode()));
        }
        assert_eq!(store.expired("g", 2_000), vec![("t".to_string(), 0)]);
        assert_eq!(store.expired("g", 10_000).len(), 2);
        assert!(store.expired("other", 10_000).is_empty());
    }
}
