//! Kafka's record formats in `__consumer_offsets` (big-endian, Kafka's non-flexible schemas):
//!
//! - Offset commit key, version 1: `version: i16 = 1, group: string, topic: string, partition: i32`
//!   (version 0 has the same layout).
//! - Offset commit value, version 3: `version: i16 = 3, offset: i64, leader_epoch: i32,
//!   metadata: string, commit_timestamp: i64` (versions 0-2 are read too).
//! - Group metadata key, version 2: `version: i16 = 2, group: string`.
//! - Group metadata value, version 3: `version: i16 = 3, protocol_type: string, generation: i32,
//!   protocol: nullable string, leader: nullable string, current_state_timestamp: i64,
//!   members: [member_id: string, group_instance_id: nullable string, client_id: string,
//!   client_host: string, rebalance_timeout: i32, session_timeout: i32, subscription: bytes,
//!   assignment: bytes]` (arrays and bytes have `i32` lengths; versions 0-2 are read too).
//!
//! A string is `length: i16` then UTF-8 bytes. A null value (tombstone) deletes the key.

use crate::group::{GroupSnapshot, MemberSnapshot};

/// A decoded `__consumer_offsets` key.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) enum OffsetsKey {
    /// A committed offset of one partition.
    Offset {
        group: String,
        topic: String,
        partition: i32,
    },
    /// A group's membership metadata.
    Group { group: String },
}

/// A committed offset.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct CommittedOffset {
    pub(crate) offset: i64,
    pub(crate) leader_epoch: i32,
    pub(crate) metadata: String,
    pub(crate) commit_timestamp: i64,
}

fn put_string(out: &mut Vec<u8>, s: &str) {
    let bytes = s.as_bytes();
    let len = bytes.len().min(i16::MAX as usize);
    out.extend_from_slice(&(len as i16).to_be_bytes());
    out.extend_from_slice(&bytes[..len]);
}

fn put_nullable_string(out: &mut Vec<u8>, s: Option<&str>) {
    match s {
        Some(s) => put_string(out, s),
        None => out.extend_from_slice(&(-1i16).to_be_bytes()),
    }
}

fn put_bytes(out: &mut Vec<u8>, b: &[u8]) {
    out.extend_from_slice(&(b.len() as i32).to_be_bytes());
    out.extend_from_slice(b);
}

struct Reader<'a>(&'a [u8]);

impl Reader<'_> {
    fn take<const N: usize>(&mut self) -> Option<[u8; N]> {
        let (head, rest) = self.0.split_at_checked(N)?;
        self.0 = rest;
        head.try_into().ok()
    }
    fn i16(&mut self) -> Option<i16> {
        self.take().map(i16::from_be_bytes)
    }
    fn i32(&mut self) -> Option<i32> {
        self.take().map(i32::from_be_bytes)
    }
    fn i64(&mut self) -> Option<i64> {
        self.take().map(i64::from_be_bytes)
    }
    fn nullable_string(&mut self) -> Option<Option<String>> {
        let len = self.i16()?;
        if len < 0 {
            return Some(None);
        }
        let (head, rest) = self.0.split_at_checked(len as usize)?;
        self.0 = rest;
        String::from_utf8(head.to_vec()).ok().map(Some)
    }
    fn bytes(&mut self) -> Option<bytes::Bytes> {
        let len = usize::try_from(self.i32()?).ok()?;
        let (head, rest) = self.0.split_at_checked(len)?;
        self.0 = rest;
        Some(bytes::Bytes::copy_from_slice(head))
    }
    fn string(&mut self) -> Option<String> {
        let len = usize::try_from(self.i16()?).ok()?;
        let (head, rest) = self.0.split_at_checked(len)?;
        self.0 = rest;
        String::from_utf8(head.to_vec()).ok()
    }
}

impl OffsetsKey {
    pub(crate) fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        match self {
            OffsetsKey::Offset {
                group,
                topic,
                partition,
            } => {
                out.extend_from_slice(&1i16.to_be_bytes());
                put_string(&mut out, group);
                put_string(&mut out, topic);
                out.extend_from_slice(&partition.to_be_bytes());
            }
            OffsetsKey::Group { group } => {
                out.extend_from_slice(&2i16.to_be_bytes());
                put_string(&mut out, group);
            }
        }
        out
    }

    /// `None` for keys of other versions or malformed keys (they are skipped on load).
    pub(crate) fn decode(bytes: &[u8]) -> Option<Self> {
        let mut r = Reader(bytes);
        match r.i16()? {
            0 | 1 => Some(OffsetsKey::Offset {
                group: r.string()?,
                topic: r.string()?,
                partition: r.i32()?,
            }),
            2 => Some(OffsetsKey::Group { group: r.string()? }),
            _ => None,
        }
    }
}

impl CommittedOffset {
    /// Version 3 of the value.
    pub(crate) fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(32 + self.metadata.len());
        out.extend_from_slice(&3i16.to_be_bytes());
        out.extend_from_slice(&self.offset.to_be_bytes());
        out.extend_from_slice(&self.leader_epoch.to_be_bytes());
        put_string(&mut out, &self.metadata);
        out.extend_from_slice(&self.commit_timestamp.to_be_bytes());
        out
    }

    /// Versions 0-3.
    pub(crate) fn decode(bytes: &[u8]) -> Option<Self> {
        let mut r = Reader(bytes);
        let version = r.i16()?;
        let offset = r.i64()?;
        let leader_epoch = if version >= 3 { r.i32()? } else { -1 };
        let metadata = r.string()?;
        let commit_timestamp = r.i64()?;
        if version == 1 {
            r.i64()?; // expire timestamp, unused since Kafka 2.1
        }
        (0..=3).contains(&version).then_some(CommittedOffset {
            offset,
            leader_epoch,
            metadata,
            commit_timestamp,
        })
    }
}

/// Encodes a group's metadata (GroupMetadataValue version 3).
pub(crate) fn encode_group(group: &GroupSnapshot) -> Vec<u8> {
    let mut out = Vec::new();
    out.extend_from_slice(&3i16.to_be_bytes());
    put_string(&mut out, &group.protocol_type);
    out.extend_from_slice(&group.generation.to_be_bytes());
    put_nullable_string(&mut out, group.protocol_name.as_deref());
    put_nullable_string(&mut out, group.leader.as_deref());
    out.extend_from_slice(&group.current_state_timestamp_ms.to_be_bytes());
    out.extend_from_slice(&(group.members.len() as i32).to_be_bytes());
    for m in &group.members {
        put_string(&mut out, &m.member_id);
        put_nullable_string(&mut out, m.group_instance_id.as_deref());
        put_string(&mut out, &m.client_id);
        put_string(&mut out, &m.client_host);
        out.extend_from_slice(&m.rebalance_timeout_ms.to_be_bytes());
        out.extend_from_slice(&m.session_timeout_ms.to_be_bytes());
        put_bytes(&mut out, &m.subscription);
        put_bytes(&mut out, &m.assignment);
    }
    out
}

/// Decodes GroupMetadataValue versions 0-3; `None` when malformed.
pub(crate) fn decode_group(group_id: &str, bytes: &[u8]) -> Option<GroupSnapshot> {
    let mut r = Reader(bytes);
    let version = r.i16()?;
    if !(0..=3).contains(&version) {
        return None;
    }
    let protocol_type = r.string()?;
    let generation = r.i32()?;
    let protocol_name = r.nullable_string()?;
    let leader = r.nullable_string()?;
    let current_state_timestamp_ms = if version >= 2 { r.i64()? } else { -1 };
    let count = usize::try_from(r.i32()?).ok()?;
    let mut members = Vec::with_capacity(count.min(r.0.len()));
    for _ in 0..count {
        let member_id = r.string()?;
        let group_instance_id = if version >= 3 {
            r.nullable_string()?
        } else {
            None
        };
        let client_id = r.string()?;
        let client_host = r.string()?;
        let rebalance_timeout_ms = if version >= 1 { r.i32()? } else { -1 };
        let session_timeout_ms = r.i32()?;
        let rebalance_timeout_ms = if rebalance_timeout_ms < 0 {
            session_timeout_ms
        } else {
            rebalance_timeout_ms
        };
        members.push(MemberSnapshot {
            member_id,
            group_instance_id,
            client_id,
            client_host,
            rebalance_timeout_ms,
            session_timeout_ms,
            subscription: r.bytes()?,
            assignment: r.bytes()?,
        });
    }
    Some(GroupSnapshot {
        group_id: group_id.to_string(),
        protocol_type,
        generation,
        protocol_name,
        leader,
        current_state_timestamp_ms,
        members,
    })
}

/// Java's `String.hashCode` over UTF-16 code units, as Kafka uses to place a group.
pub(crate) fn java_string_hash(s: &str) -> i32 {
    s.encode_utf16()
        .fold(0i32, |h, c| h.wrapping_mul(31).wrapping_add(i32::from(c)))
}

/// The `__consumer_offsets` partition of a group: Kafka's `Utils.abs(hashCode) % partitions`,
/// where `Utils.abs` is `Math.abs` except that `Integer.MIN_VALUE` maps to 0.
pub(crate) fn partition_for(group: &str, partitions: i32) -> i32 {
    let hash = java_string_hash(group);
    let abs = if hash == i32::MIN { 0 } else { hash.abs() };
    abs % partitions.max(1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn group_placement_matches_kafka() {
        // Well-known Java values: "hello".hashCode() and the "Aa"/"BB" collision.
        assert_eq!(java_string_hash(""), 0);
        assert_eq!(java_string_hash("hello"), 99_162_322);
        assert_eq!(java_string_hash("Aa"), 2112);
        assert_eq!(java_string_hash("BB"), 2112);
        // Negative hashes are negated (Kafka's Utils.abs), and i32::MIN maps to 0.
        assert_eq!(java_string_hash("g-86aad29b"), -428_766_373);
        assert_eq!(partition_for("g-86aad29b", 50), 23);
        assert_eq!(java_string_hash("polygenelubricants"), i32::MIN);
        assert_eq!(partition_for("polygenelubricants", 50), 0);
        assert_eq!(partition_for("hello", 50), 99_162_322 % 50);
    }

    #[test]
    fn known_bytes_of_a_v1_key() {
        let key = OffsetsKey::Offset {
            group: "g".into(),
            topic: "t".into(),
            partition: 2,
        };
        assert_eq!(key.encode(), vec![0, 1, 0, 1, b'g', 0, 1, b't', 0, 0, 0, 2]);
    }

    proptest! {
        #[test]
        fn keys_and_values_round_trip(group in ".{0,30}", topic in "[a-z._-]{1,30}", partition in 0i32..1000,
                                      offset in -1i64..i64::MAX, epoch in -1i32..1000, metadata in ".{0,40}", ts in 0i64..i64::MAX) {
            let key = OffsetsKey::Offset { group: group.clone(), topic, partition };
            prop_assert_eq!(OffsetsKey::decode(&key.encode()), Some(key));
            let group_key = OffsetsKey::Group { group };
            prop_assert_eq!(OffsetsKey::decode(&group_key.encode()), Some(group_key));
            let value = CommittedOffset { offset, leader_epoch: epoch, metadata, commit_timestamp: ts };
            prop_assert_eq!(CommittedOffset::decode(&value.encode()), Some(value));
        }

        #[test]
        fn group_metadata_round_trips(generation in 0i32..1000, members in proptest::collection::vec(("[a-z0-9-]{1,20}", proptest::option::of("[a-z]{1,8}"), proptest::collection::vec(any::<u8>(), 0..20)), 0..5)) {
            let group = GroupSnapshot {
                group_id: "g".into(),
                protocol_type: "consumer".into(),
                generation,
                protocol_name: Some("range".into()),
                leader: members.first().map(|m| m.0.clone()),
                current_state_timestamp_ms: 1_700_000_000_000,
                members: members.into_iter().map(|(id, instance, bytes)| MemberSnapshot {
                    member_id: id,
                    group_instance_id: instance,
                    client_id: "c".into(),
                    client_host: "/127.0.0.1".into(),
                    rebalance_timeout_ms: 300_000,
                    session_timeout_ms: 45_000,
                    subscription: bytes.clone().into(),
                    assignment: bytes.into(),
                }).collect(),
            };
            prop_assert_eq!(decode_group("g", &encode_group(&group)), Some(group));
        }

        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
            let _ = OffsetsKey::decode(&bytes);
            let _ = CommittedOffset::decode(&bytes);
            let _ = decode_group("g", &bytes);
        }
    }
}
