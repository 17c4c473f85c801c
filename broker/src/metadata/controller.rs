//! The active controller's decisions, as pure functions from the metadata image (and a request)
//! to the records to append. Raft makes the records durable and ordered; these functions decide
//! what they are. Kafka's rules throughout:
//!
//! - Replica placement is Kafka's `AdminUtils.assignReplicasToBrokers`: leaders round-robin from a
//!   start index, followers shifted so that partitions spread, racks alternated when brokers
//!   have `broker.rack`.
//! - A fenced broker leads nothing and leaves every ISR, except that the last member stays (the
//!   partition is then leaderless until it returns, unless unclean election is allowed).
//! - Leaders are elected from the ISR in replica order; the preferred leader is the first replica.
//! - AlterPartition (a leader's ISR change) must come from the current leader at the current
//!   leader and partition epochs, keep the leader in the ISR and name only unfenced replicas.

use std::collections::{BTreeMap, BTreeSet};

use fjord_protocol::ErrorCode;
use uuid::Uuid;

use super::image::{MetadataImage, MetadataRecord, PartitionImage, Reassignment};
use crate::error::ApiError;

/// The records a decision produced.
pub(crate) type Records = Vec<MetadataRecord>;

/// Where Kafka's placement starts: normally random; tests pass fixed values.
#[derive(Debug, Clone, Copy)]
pub(crate) struct PlacementSeed {
    pub(crate) start_index: usize,
    pub(crate) replica_shift: usize,
}

/// Kafka's replica placement over the unfenced brokers.
pub(crate) fn place_replicas(
    image: &MetadataImage,
    partitions: i32,
    first_partition: i32,
    replication_factor: i16,
    seed: PlacementSeed,
) -> Result<Vec<Vec<i32>>, ApiError> {
    let brokers: Vec<(i32, Option<String>)> =
        image.unfenced().map(|b| (b.id, b.rack.clone())).collect();
    let n = brokers.len();
    let rf = usize::try_from(replication_factor).unwrap_or(0);
    if rf == 0 {
        return Err(ApiError::new(
            ErrorCode::InvalidReplicationFactor,
            "Replication factor must be larger than 0.",
        ));
    }
    if rf > n {
        return Err(ApiError::new(
            ErrorCode::InvalidReplicationFactor,
            format!(
                "Unable to replicate the partition {rf} time(s): The target replication factor \
                 of {rf} cannot be reached because only {n} broker(s) are registered."
            ),
        ));
    }
    let has_racks = brokers.iter().any(|(_, rack)| rack.is_some());
    let arranged: Vec<(i32, String)> = if has_racks {
        rack_alternated(&brokers)
    } else {
        brokers
            .into_iter()
            .map(|(id, _)| (id, String::new()))
            .collect()
    };
    let num_racks = arranged
        .iter()
        .map(|(_, r)| r)
        .collect::<BTreeSet<_>>()
        .len();
    let start = seed.start_index % n;
    let mut shift = seed.replica_shift % n;
    let mut out = Vec::with_capacity(usize::try_from(partitions).unwrap_or(0));
    for p in 0..usize::try_from(partitions).unwrap_or(0) {
        let global = p + usize::try_from(first_partition).unwrap_or(0);
        if global > 0 && global % n == 0 {
            shift += 1;
        }
        let first = (global + start) % n;
        let mut replicas = vec![arranged[first].0];
        if !has_racks {
            for j in 0..rf - 1 {
                replicas.push(arranged[replica_index(first, shift, j, n)].0);
            }
        } else {
            let mut racks: BTreeSet<&str> = BTreeSet::from([arranged[first].1.as_str()]);
            let mut k = 0;
            while replicas.len() < rf {
                let (broker, rack) = &arranged[replica_index(first, shift * num_racks, k, n)];
                k += 1;
                let rack_ok = !racks.contains(rack.as_str()) || racks.len() == num_racks;
                let broker_ok = !replicas.contains(broker) || replicas.len() == num_racks;
                if rack_ok && broker_ok && !replicas.contains(broker) {
                    replicas.push(*broker);
                    racks.insert(rack);
                }
                if k > n * n {
                    // Cannot happen with rf <= n; never loop forever on a bug.
                    break;
                }
            }
        }
        out.push(replicas);
    }
    Ok(out)
}

fn replica_index(first: usize, shift: usize, j: usize, n: usize) -> usize {
    if n == 1 {
        return first;
    }
    (first + 1 + (shift + j) % (n - 1)) % n
}

/// Brokers ordered so that consecutive ones are on different racks (Kafka's
/// `getRackAlternatedBrokerList`): one broker of each rack in turn. Brokers without a rack
/// count as one rack of their own.
fn rack_alternated(brokers: &[(i32, Option<String>)]) -> Vec<(i32, String)> {
    let mut by_rack: BTreeMap<String, Vec<i32>> = BTreeMap::new();
    for (id, rack) in brokers {
        by_rack
            .entry(rack.clone().unwrap_or_default())
            .or_default()
            .push(*id);
    }
    let mut out = Vec::with_capacity(brokers.len());
    let mut round = 0;
    while out.len() < brokers.len() {
        for (rack, ids) in &by_rack {
            if let Some(id) = ids.get(round) {
                out.push((*id, rack.clone()));
            }
        }
        round += 1;
    }
    out
}

/// CreateTopics for one topic.
pub(crate) fn create_topic(
    image: &MetadataImage,
    name: &str,
    id: Uuid,
    partitions: i32,
    replication_factor: i16,
    configs: &BTreeMap<String, String>,
    seed: PlacementSeed,
) -> Result<Records, ApiError> {
    if image.topic(name).is_some() {
        return Err(ApiError::new(
            ErrorCode::TopicAlreadyExists,
            format!("Topic '{name}' already exists."),
        ));
    }
    if partitions <= 0 {
        return Err(ApiError::new(
            ErrorCode::InvalidPartitions,
            "Number of partitions must be larger than 0.",
        ));
    }
    let assignment = place_replicas(image, partitions, 0, replication_factor, seed)?;
    let mut records = vec![MetadataRecord::Topic {
        name: name.to_string(),
        id,
    }];
    records.extend(configs.iter().map(|(k, v)| MetadataRecord::TopicConfig {
        topic_id: id,
        key: k.clone(),
        value: Some(v.clone()),
    }));
    records.extend(assignment.into_iter().enumerate().map(|(p, replicas)| {
        MetadataRecord::Partition {
            topic_id: id,
            partition: p as i32,
            leader: replicas[0],
            isr: replicas.clone(),
            replicas,
            leader_epoch: 0,
            partition_epoch: 0,
        }
    }));
    Ok(records)
}

/// CreatePartitions: grows `topic` to `total` partitions with the topic's replication factor.
pub(crate) fn create_partitions(
    image: &MetadataImage,
    topic: &str,
    total: i32,
    seed: PlacementSeed,
) -> Result<Records, ApiError> {
    let t = image.topic(topic).ok_or_else(|| {
        ApiError::new(
            ErrorCode::UnknownTopicOrPartition,
            format!("Topic '{topic}' does not exist."),
        )
    })?;
    let current = t.partitions.len() as i32;
    if total <= current {
        return Err(ApiError::new(
            ErrorCode::InvalidPartitions,
            format!(
                "Topic currently has {current} partitions, which is higher than or equal to the requested {total}."
            ),
        ));
    }
    let rf = t
        .partitions
        .values()
        .next()
        .map_or(1, |p| p.replicas.len() as i16);
    let assignment = place_replicas(image, total - current, current, rf, seed)?;
    Ok(assignment
        .into_iter()
        .enumerate()
        .map(|(i, replicas)| MetadataRecord::Partition {
            topic_id: t.id,
            partition: current + i as i32,
            leader: replicas[0],
            isr: replicas.clone(),
            replicas,
            leader_epoch: 0,
            partition_epoch: 0,
        })
        .collect())
}

/// The first replica (in assignment order) that is in the ISR and unfenced.
fn elect_from_isr(image: &MetadataImage, p: &PartitionImage, isr: &[i32]) -> Option<i32> {
    p.replicas
        .iter()
        .copied()
        .find(|r| isr.contains(r) && image.brokers.get(r).is_some_and(|b| !b.fenced))
}

/// A broker is fenced (missed heartbeats, controlled shutdown): it leaves every ISR it can leave
/// and gives up leadership; leaders are re-elected from the ISR, or from any live replica when
/// `unclean` (the topic's `unclean.leader.election.enable`) says so.
pub(crate) fn fence_broker(
    image: &MetadataImage,
    id: i32,
    unclean: impl Fn(&str) -> bool,
) -> Result<Records, ApiError> {
    let broker = image.brokers.get(&id).ok_or_else(|| {
        ApiError::new(
            ErrorCode::BrokerIdNotRegistered,
            format!("Broker {id} is not registered."),
        )
    })?;
    let mut records = vec![MetadataRecord::FenceBroker {
        id,
        epoch: broker.epoch,
    }];
    // Decide against the image as it will be once the broker is fenced.
    let mut after = image.clone();
    if let Some(b) = after.brokers.get_mut(&id) {
        b.fenced = true;
    }
    for topic in image.topics.values() {
        for (&index, p) in &topic.partitions {
            if !p.replicas.contains(&id) {
                continue;
            }
            let mut isr = p.isr.clone();
            if isr.len() > 1 {
                isr.retain(|r| *r != id);
            }
            let mut leader = p.leader;
            if p.leader == id {
                leader = elect_from_isr(&after, p, &isr).unwrap_or(-1);
                if leader == -1
                    && unclean(&topic.name)
                    && let Some(live) = p
                        .replicas
                        .iter()
                        .copied()
                        .find(|r| after.brokers.get(r).is_some_and(|b| !b.fenced))
                {
                    leader = live;
                    isr = vec![live];
                }
            }
            if isr != p.isr || leader != p.leader {
                records.push(MetadataRecord::PartitionChange {
                    topic_id: topic.id,
                    partition: index,
                    leader: (leader != p.leader).then_some(leader),
                    isr: (isr != p.isr).then_some(isr),
                    replicas: None,
                });
            }
        }
    }
    Ok(records)
}

/// A broker caught up after (re)registering: it may serve again, and leaderless partitions
/// whose ISR holds it get it as leader.
pub(crate) fn unfence_broker(image: &MetadataImage, id: i32) -> Result<Records, ApiError> {
    let broker = image.brokers.get(&id).ok_or_else(|| {
        ApiError::new(
            ErrorCode::BrokerIdNotRegistered,
            format!("Broker {id} is not registered."),
        )
    })?;
    let mut records = vec![MetadataRecord::UnfenceBroker {
        id,
        epoch: broker.epoch,
    }];
    for topic in image.topics.values() {
        for (&index, p) in &topic.partitions {
            if p.leader == -1 && p.isr.contains(&id) {
                records.push(MetadataRecord::PartitionChange {
                    topic_id: topic.id,
                    partition: index,
                    leader: Some(id),
                    isr: None,
                    replicas: None,
                });
            }
        }
    }
    Ok(records)
}

/// A leader's AlterPartition request for one partition.
#[derive(Debug, Clone)]
pub(crate) struct AlterIsr {
    pub(crate) broker: i32,
    pub(crate) topic_id: Uuid,
    pub(crate) partition: i32,
    pub(crate) leader_epoch: i32,
    pub(crate) partition_epoch: i32,
    pub(crate) new_isr: Vec<i32>,
}

/// Validates an ISR change the way Kafka's controller does and returns the change record.
pub(crate) fn alter_partition(image: &MetadataImage, req: &AlterIsr) -> Result<Records, ApiError> {
    let p = image
        .partition(req.topic_id, req.partition)
        .ok_or_else(|| {
            ApiError::new(
                ErrorCode::UnknownTopicOrPartition,
                format!(
                    "Partition {} of topic id {} does not exist.",
                    req.partition, req.topic_id
                ),
            )
        })?;
    if req.leader_epoch < p.leader_epoch {
        return Err(ApiError::new(
            ErrorCode::FencedLeaderEpoch,
            format!(
                "Leader epoch {} is older than the current {}.",
                req.leader_epoch, p.leader_epoch
            ),
        ));
    }
    if p.leader != req.broker || req.leader_epoch > p.leader_epoch {
        return Err(ApiError::new(
            ErrorCode::NotLeaderOrFollower,
            format!(
                "Broker {} is not the leader at epoch {}.",
                req.broker, req.leader_epoch
            ),
        ));
    }
    if req.partition_epoch != p.partition_epoch {
        return Err(ApiError::new(
            ErrorCode::InvalidUpdateVersion,
            format!(
                "Partition epoch {} does not match the current {}.",
                req.partition_epoch, p.partition_epoch
            ),
        ));
    }
    if !req.new_isr.contains(&req.broker) {
        return Err(ApiError::new(
            ErrorCode::InvalidRequest,
            "The new ISR must contain the leader.",
        ));
    }
    let mut seen = BTreeSet::new();
    for r in &req.new_isr {
        if !seen.insert(*r) || !p.replicas.contains(r) {
            return Err(ApiError::new(
                ErrorCode::InvalidRequest,
                format!("ISR member {r} is not a replica of the partition, or listed twice."),
            ));
        }
        if image.brokers.get(r).is_none_or(|b| b.fenced) {
            return Err(ApiError::new(
                ErrorCode::IneligibleReplica,
                format!("Replica {r} is fenced and cannot join the ISR."),
            ));
        }
    }
    Ok(vec![MetadataRecord::PartitionChange {
        topic_id: req.topic_id,
        partition: req.partition,
        leader: None,
        isr: Some(req.new_isr.clone()),
        replicas: None,
    }])
}

/// Preferred-leader election: every partition whose first replica is in the ISR, unfenced and
/// not leading gets it back as leader.
pub(crate) fn elect_preferred_leaders(image: &MetadataImage) -> Records {
    let mut records = Vec::new();
    for topic in image.topics.values() {
        for (&index, p) in &topic.partitions {
            let Some(&preferred) = p.replicas.first() else {
                continue;
            };
            let eligible = p.isr.contains(&preferred)
                && image.brokers.get(&preferred).is_some_and(|b| !b.fenced);
            if eligible && p.leader != preferred {
                records.push(MetadataRecord::PartitionChange {
                    topic_id: topic.id,
                    partition: index,
                    leader: Some(preferred),
                    isr: None,
                    replicas: None,
                });
            }
        }
    }
    records
}

/// AlterPartitionReassignments for one partition: `target` replicas (`None` cancels, which
/// reassigns back to the replicas from before). The partition first gets the union of old and
/// new replicas; [`complete_reassignments`] finishes once the whole target is in the ISR.
pub(crate) fn reassign(
    image: &MetadataImage,
    topic: &str,
    partition: i32,
    target: Option<Vec<i32>>,
) -> Result<Records, ApiError> {
    let t = image.topic(topic).ok_or_else(|| {
        ApiError::new(
            ErrorCode::UnknownTopicOrPartition,
            format!("Topic '{topic}' does not exist."),
        )
    })?;
    let p = t.partitions.get(&partition).ok_or_else(|| {
        ApiError::new(
            ErrorCode::UnknownTopicOrPartition,
            format!("Partition {partition} of '{topic}' does not exist."),
        )
    })?;
    let original = p
        .reassignment
        .as_ref()
        .map_or_else(|| p.replicas.clone(), |r| r.original.clone());
    let target = match target {
        Some(target) => target,
        None => match &p.reassignment {
            Some(r) => r.original.clone(),
            None => {
                return Err(ApiError::new(
                    ErrorCode::NoReassignmentInProgress,
                    format!("No reassignment of {topic}-{partition} is in progress."),
                ));
            }
        },
    };
    let mut seen = BTreeSet::new();
    if target.is_empty() || !target.iter().all(|r| seen.insert(*r)) {
        return Err(ApiError::new(
            ErrorCode::InvalidReplicaAssignment,
            format!("The target replicas {target:?} are empty or repeat a broker."),
        ));
    }
    if let Some(unknown) = target.iter().find(|r| !image.brokers.contains_key(r)) {
        return Err(ApiError::new(
            ErrorCode::InvalidReplicaAssignment,
            format!("Broker {unknown} in the target replicas is not registered."),
        ));
    }
    if target == p.replicas && p.reassignment.is_none() {
        return Ok(Vec::new());
    }
    let mut union = target.clone();
    union.extend(original.iter().filter(|r| !target.contains(r)));
    let mut records = vec![MetadataRecord::Reassignment {
        topic_id: t.id,
        partition,
        reassignment: Some(Reassignment { target, original }),
    }];
    if union != p.replicas {
        records.push(MetadataRecord::PartitionChange {
            topic_id: t.id,
            partition,
            leader: None,
            isr: None,
            replicas: Some(union),
        });
    }
    Ok(records)
}

/// Finishes every reassignment whose target replicas are all in the ISR: the replicas become
/// the target, removed replicas leave the ISR, and leadership moves into the target when the
/// leader is being removed.
pub(crate) fn complete_reassignments(image: &MetadataImage) -> Records {
    let mut records = Vec::new();
    for topic in image.topics.values() {
        for (&index, p) in &topic.partitions {
            let Some(r) = &p.reassignment else { continue };
            if !r.target.iter().all(|t| p.isr.contains(t)) {
                continue;
            }
            let isr: Vec<i32> = p
                .isr
                .iter()
                .copied()
                .filter(|i| r.target.contains(i))
                .collect();
            let leader = if r.target.contains(&p.leader) {
                None
            } else {
                r.target
                    .iter()
                    .copied()
                    .find(|t| isr.contains(t) && image.brokers.get(t).is_some_and(|b| !b.fenced))
            };
            if !r.target.contains(&p.leader) && leader.is_none() {
                continue;
            }
            records.push(MetadataRecord::PartitionChange {
                topic_id: topic.id,
                partition: index,
                leader,
                isr: Some(isr),
                replicas: Some(r.target.clone()),
            });
            records.push(MetadataRecord::Reassignment {
                topic_id: topic.id,
                partition: index,
                reassignment: None,
            });
        }
    }
    records
}

/// AllocateProducerIds: the next block of `size` ids for `broker`; returns the block's start.
pub(crate) fn allocate_producer_ids(
    image: &MetadataImage,
    broker: i32,
    size: i64,
) -> (i64, Records) {
    let start = image.next_producer_id;
    (
        start,
        vec![MetadataRecord::ProducerIds {
            broker,
            next: start + size,
        }],
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    const SEED: PlacementSeed = PlacementSeed {
        start_index: 0,
        replica_shift: 0,
    };

    fn apply_all(image: &mut MetadataImage, records: &[MetadataRecord]) {
        for r in records {
            image.apply(r).unwrap_or_else(|e| panic!("{r:?}: {e}"));
        }
    }

    /// `n` registered, unfenced brokers 1..=n, with racks when given.
    fn cluster(n: i32, racks: Option<&[&str]>) -> MetadataImage {
        let mut image = MetadataImage::default();
        for id in 1..=n {
            let rack = racks.map(|r| r[(id - 1) as usize].to_string());
            apply_all(
                &mut image,
                &[
                    MetadataRecord::RegisterBroker {
                        id,
                        epoch: 1,
                        host: "127.0.0.1".into(),
                        port: 9091 + id as u16,
                        rack,
                    },
                    MetadataRecord::UnfenceBroker { id, epoch: 1 },
                ],
            );
        }
        image
    }

    fn topic(image: &mut MetadataImage, name: &str, partitions: i32, rf: i16) -> Uuid {
        let id = Uuid::new_v4();
        let records =
            create_topic(image, name, id, partitions, rf, &BTreeMap::new(), SEED).expect("create");
        apply_all(image, &records);
        id
    }

    /// Broker `id` restarts: it registers with the next epoch and, once caught up, is unfenced
    /// (which re-elects leaderless partitions whose ISR holds it).
    fn return_broker(image: &mut MetadataImage, id: i32) {
        let epoch = image.brokers[&id].epoch + 1;
        apply_all(
            image,
            &[MetadataRecord::RegisterBroker {
                id,
                epoch,
                host: "127.0.0.1".into(),
                port: 9091 + id as u16,
                rack: None,
            }],
        );
        let records = unfence_broker(image, id).unwrap();
        apply_all(image, &records);
    }

    #[test]
    fn placement_matches_kafkas_round_robin_with_shifted_followers() {
        let image = cluster(3, None);
        let a = place_replicas(&image, 6, 0, 3, SEED).unwrap();
        // Kafka's assignReplicasToBrokers(brokers=[1,2,3], 6 partitions, rf 3, start 0, shift 0).
        assert_eq!(
            a,
            vec![
                vec![1, 2, 3],
                vec![2, 3, 1],
                vec![3, 1, 2],
                vec![1, 3, 2],
                vec![2, 1, 3],
                vec![3, 2, 1],
            ]
        );
        // Leaders are spread evenly.
        let mut leaders = BTreeMap::new();
        for r in &a {
            *leaders.entry(r[0]).or_insert(0) += 1;
        }
        assert_eq!(leaders.values().copied().collect::<Vec<_>>(), vec![2, 2, 2]);
    }

    #[test]
    fn placement_puts_replicas_on_different_racks() {
        let image = cluster(4, Some(&["a", "a", "b", "b"]));
        for p in place_replicas(&image, 8, 0, 2, SEED).unwrap() {
            let racks: BTreeSet<_> = p.iter().map(|id| image.brokers[id].rack.clone()).collect();
            assert_eq!(racks.len(), 2, "{p:?} shares a rack");
        }
    }

    #[test]
    fn too_few_brokers_is_invalid_replication_factor() {
        let image = cluster(2, None);
        let err = place_replicas(&image, 1, 0, 3, SEED).unwrap_err();
        assert_eq!(err.code, ErrorCode::InvalidReplicationFactor);
        assert!(err.message.contains("only 2 broker(s)"), "{}", err.message);
        let err =
            create_topic(&image, "t", Uuid::new_v4(), 0, 1, &BTreeMap::new(), SEED).unwrap_err();
        assert_eq!(err.code, ErrorCode::InvalidPartitions);
    }

    #[test]
    fn topics_and_partitions_are_created_once() {
        let mut image = cluster(3, None);
        let id = topic(&mut image, "orders", 3, 2);
        let t = image.topic("orders").unwrap();
        assert_eq!(t.partitions.len(), 3);
        for p in t.partitions.values() {
            assert_eq!(p.isr, p.replicas);
            assert_eq!(p.leader, p.replicas[0]);
        }
        let err = create_topic(
            &image,
            "orders",
            Uuid::new_v4(),
            1,
            1,
            &BTreeMap::new(),
            SEED,
        )
        .unwrap_err();
        assert_eq!(err.code, ErrorCode::TopicAlreadyExists);
        let more = create_partitions(&image, "orders", 5, SEED).unwrap();
        apply_all(&mut image, &more);
        assert_eq!(image.topics[&id].partitions.len(), 5);
        assert!(
            image.topics[&id]
                .partitions
                .values()
                .all(|p| p.replicas.len() == 2)
        );
        let err = create_partitions(&image, "orders", 5, SEED).unwrap_err();
        assert_eq!(err.code, ErrorCode::InvalidPartitions);
    }

    #[test]
    fn fencing_the_leader_elects_from_the_isr_and_bumps_the_leader_epoch() {
        let mut image = cluster(3, None);
        let id = topic(&mut image, "t", 1, 3);
        assert_eq!(image.partition(id, 0).unwrap().leader, 1);
        let records = fence_broker(&image, 1, |_| false).unwrap();
        apply_all(&mut image, &records);
        let p = image.partition(id, 0).unwrap();
        assert_eq!(
            (p.leader, p.leader_epoch, p.isr.clone()),
            (2, 1, vec![2, 3])
        );
        assert!(image.brokers[&1].fenced);
        // Fencing a follower shrinks the ISR without a leader change.
        let records = fence_broker(&image, 3, |_| false).unwrap();
        apply_all(&mut image, &records);
        let p = image.partition(id, 0).unwrap();
        assert_eq!((p.leader, p.leader_epoch, p.isr.clone()), (2, 1, vec![2]));
    }

    #[test]
    fn the_last_isr_member_stays_and_the_partition_waits_for_it_unless_unclean() {
        let mut image = cluster(2, None);
        let id = topic(&mut image, "t", 1, 2);
        let records = fence_broker(&image, 2, |_| false).unwrap();
        apply_all(&mut image, &records);
        assert_eq!(image.partition(id, 0).unwrap().isr, vec![1]);
        // Broker 2 comes back but is not in sync; broker 1 (the only ISR member) dies.
        return_broker(&mut image, 2);
        let clean = fence_broker(&image, 1, |_| false).unwrap();
        let mut waiting = image.clone();
        apply_all(&mut waiting, &clean);
        let p = waiting.partition(id, 0).unwrap();
        assert_eq!(
            (p.leader, p.isr.clone()),
            (-1, vec![1]),
            "no unclean election"
        );
        // When broker 1 returns, it leads again.
        return_broker(&mut waiting, 1);
        assert_eq!(waiting.partition(id, 0).unwrap().leader, 1);
        // With unclean election the out-of-sync replica takes over alone.
        let records = fence_broker(&image, 1, |t| t == "t").unwrap();
        apply_all(&mut image, &records);
        let p = image.partition(id, 0).unwrap();
        assert_eq!((p.leader, p.isr.clone()), (2, vec![2]));
    }

    #[test]
    fn alter_partition_follows_kafkas_checks() {
        let mut image = cluster(3, None);
        let id = topic(&mut image, "t", 1, 3);
        let req = |broker, leader_epoch, partition_epoch, isr: &[i32]| AlterIsr {
            broker,
            topic_id: id,
            partition: 0,
            leader_epoch,
            partition_epoch,
            new_isr: isr.to_vec(),
        };
        let code =
            |image: &MetadataImage, r: &AlterIsr| alter_partition(image, r).unwrap_err().code;
        assert_eq!(
            code(&image, &req(2, 0, 0, &[1, 2])),
            ErrorCode::NotLeaderOrFollower
        );
        assert_eq!(
            code(&image, &req(1, 0, 7, &[1, 2])),
            ErrorCode::InvalidUpdateVersion
        );
        assert_eq!(
            code(&image, &req(1, 0, 0, &[2, 3])),
            ErrorCode::InvalidRequest
        );
        assert_eq!(
            code(&image, &req(1, 0, 0, &[1, 9])),
            ErrorCode::InvalidRequest
        );
        assert_eq!(
            code(&image, &req(1, 0, 0, &[1, 1])),
            ErrorCode::InvalidRequest
        );
        let shrink = alter_partition(&image, &req(1, 0, 0, &[1, 2])).unwrap();
        apply_all(&mut image, &shrink);
        let p = image.partition(id, 0).unwrap();
        assert_eq!(
            (p.isr.clone(), p.leader_epoch, p.partition_epoch),
            (vec![1, 2], 0, 1)
        );
        // A retry of the same request is now stale.
        assert_eq!(
            code(&image, &req(1, 0, 0, &[1, 2])),
            ErrorCode::InvalidUpdateVersion
        );
        // A fenced replica cannot rejoin.
        let records = fence_broker(&image, 3, |_| false).unwrap();
        apply_all(&mut image, &records);
        let pe = image.partition(id, 0).unwrap().partition_epoch;
        assert_eq!(
            code(&image, &req(1, 0, pe, &[1, 2, 3])),
            ErrorCode::IneligibleReplica
        );
        // After a leader change the old leader is fenced by its epoch.
        let records = fence_broker(&image, 1, |_| false).unwrap();
        apply_all(&mut image, &records);
        let pe = image.partition(id, 0).unwrap().partition_epoch;
        assert_eq!(
            code(&image, &req(1, 0, pe, &[1, 2])),
            ErrorCode::FencedLeaderEpoch
        );
    }

    #[test]
    fn preferred_leaders_return_when_in_sync() {
        let mut image = cluster(3, None);
        let id = topic(&mut image, "t", 3, 3);
        let records = fence_broker(&image, 1, |_| false).unwrap();
        apply_all(&mut image, &records);
        assert!(image.topics[&id].partitions.values().all(|p| p.leader != 1));
        return_broker(&mut image, 1);
        // Not in the ISR yet: nothing to elect.
        assert_eq!(elect_preferred_leaders(&image), vec![]);
        for (index, p) in image.topics[&id].partitions.clone() {
            let mut isr = p.isr.clone();
            isr.push(1);
            let r = alter_partition(
                &image,
                &AlterIsr {
                    broker: p.leader,
                    topic_id: id,
                    partition: index,
                    leader_epoch: p.leader_epoch,
                    partition_epoch: p.partition_epoch,
                    new_isr: isr,
                },
            )
            .unwrap();
            apply_all(&mut image, &r);
        }
        let records = elect_preferred_leaders(&image);
        assert_eq!(
            records.len(),
            1,
            "only the partition whose first replica is 1"
        );
        apply_all(&mut image, &records);
        for p in image.topics[&id].partitions.values() {
            assert_eq!(p.leader, p.replicas[0]);
        }
    }

    #[test]
    fn records_that_do_not_fit_the_image_are_refused_and_change_nothing() {
        let mut image = cluster(2, None);
        let before = image.clone();
        let bad = [
            MetadataRecord::UnfenceBroker { id: 9, epoch: 1 },
            MetadataRecord::UnfenceBroker { id: 1, epoch: 0 },
            MetadataRecord::RegisterBroker {
                id: 1,
                epoch: 1,
                host: "h".into(),
                port: 1,
                rack: None,
            },
            MetadataRecord::PartitionChange {
                topic_id: Uuid::nil(),
                partition: 0,
                leader: Some(1),
                isr: None,
                replicas: None,
            },
            MetadataRecord::RemoveTopic { id: Uuid::nil() },
            MetadataRecord::ProducerIds {
                broker: 1,
                next: -5,
            },
        ];
        for r in &bad {
            assert!(image.apply(r).is_err(), "{r:?}");
        }
        assert_eq!(image, before);
        let id = topic(&mut image, "t", 1, 2);
        let before = image.clone();
        for change in [
            (Some(9), None),          // leader not in the ISR
            (None, Some(vec![1, 1])), // duplicate
            (None, Some(vec![1, 7])), // not a replica
        ] {
            let r = MetadataRecord::PartitionChange {
                topic_id: id,
                partition: 0,
                leader: change.0,
                isr: change.1,
                replicas: None,
            };
            assert!(image.apply(&r).is_err(), "{r:?}");
        }
        assert_eq!(image, before);
    }

    #[test]
    fn records_round_trip_through_json_and_producer_ids_advance() {
        let mut image = cluster(1, None);
        let (start, records) = allocate_producer_ids(&image, 1, 1000);
        assert_eq!(start, 0);
        apply_all(&mut image, &records);
        let (start, _) = allocate_producer_ids(&image, 1, 1000);
        assert_eq!(start, 1000);
        let id = Uuid::new_v4();
        for r in create_topic(
            &image,
            "t",
            id,
            2,
            1,
            &BTreeMap::from([("retention.ms".into(), "5".into())]),
            SEED,
        )
        .unwrap()
        {
            let text = serde_json::to_string(&r).unwrap();
            let back: MetadataRecord = serde_json::from_str(&text).unwrap();
            assert_eq!(back, r);
        }
    }

    #[test]
    fn reassignment_adds_new_replicas_then_drops_the_old_once_they_are_in_sync() {
        let mut image = cluster(4, None);
        let id = Uuid::from_u128(7);
        let records = create_topic(&image, "t", id, 1, 3, &BTreeMap::new(), SEED).unwrap();
        apply_all(&mut image, &records);
        let before = image.partition(id, 0).unwrap().clone();
        let leader = before.leader;
        // Move the partition off its leader onto broker 4.
        let target: Vec<i32> = [4]
            .into_iter()
            .chain(before.replicas.iter().copied().filter(|r| *r != leader))
            .collect();
        let records = reassign(&image, "t", 0, Some(target.clone())).unwrap();
        apply_all(&mut image, &records);
        let during = image.partition(id, 0).unwrap().clone();
        assert_eq!(during.replicas.len(), 4, "old and new replicas together");
        assert_eq!(during.leader, leader);
        // Broker 4 has not joined the ISR: nothing completes.
        assert!(complete_reassignments(&image).is_empty());
        let mut isr = during.isr.clone();
        isr.push(4);
        apply_all(
            &mut image,
            &[MetadataRecord::PartitionChange {
                topic_id: id,
                partition: 0,
                leader: None,
                isr: Some(isr),
                replicas: None,
            }],
        );
        let records = complete_reassignments(&image);
        apply_all(&mut image, &records);
        let after = image.partition(id, 0).unwrap();
        assert_eq!(after.replicas, target);
        assert!(!after.isr.contains(&leader));
        assert!(
            target.contains(&after.leader),
            "leadership moved into the target"
        );
        assert_eq!(after.leader_epoch, before.leader_epoch + 1);
        assert!(after.reassignment.is_none());
        // Bad targets are refused with Kafka's error.
        let bad = reassign(&image, "t", 0, Some(vec![9])).unwrap_err();
        assert_eq!(bad.code, ErrorCode::InvalidReplicaAssignment);
        let none = reassign(&image, "t", 0, None).unwrap_err();
        assert_eq!(none.code, ErrorCode::NoReassignmentInProgress);
    }
}
