//! Partition assignors of the classic consumer protocol, as pure functions: the group leader
//! runs one over every member's subscription and the topics' partition counts.

use std::collections::{BTreeMap, BTreeSet};

use crate::admin::TopicPartition;

use super::config::AssignmentStrategy;

/// One member's subscription as the leader sees it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MemberSubscription {
    pub topics: BTreeSet<String>,
    /// Partitions the member owns now (cooperative protocol).
    pub owned: Vec<TopicPartition>,
}

/// Member id to assigned partitions (every member present, sorted partitions).
pub type Assignment = BTreeMap<String, Vec<TopicPartition>>;

/// Runs `strategy` over `members` (member id to subscription) and `partitions` (topic to
/// partition count; topics missing here are skipped).
pub fn assign(
    strategy: AssignmentStrategy,
    members: &BTreeMap<String, MemberSubscription>,
    partitions: &BTreeMap<String, i32>,
) -> Assignment {
    match strategy {
        AssignmentStrategy::Range => range(members, partitions),
        AssignmentStrategy::RoundRobin => round_robin(members, partitions),
        AssignmentStrategy::CooperativeSticky => cooperative_sticky(members, partitions),
    }
}

fn empty(members: &BTreeMap<String, MemberSubscription>) -> Assignment {
    members.keys().map(|m| (m.clone(), Vec::new())).collect()
}

/// Kafka's RangeAssignor: per topic, consecutive ranges to members in member-id order, the
/// first `count % members` members getting one extra.
pub fn range(
    members: &BTreeMap<String, MemberSubscription>,
    partitions: &BTreeMap<String, i32>,
) -> Assignment {
    let mut out = empty(members);
    for (topic, &count) in partitions {
        let subscribed: Vec<&String> = members
            .iter()
            .filter(|(_, s)| s.topics.contains(topic))
            .map(|(m, _)| m)
            .collect();
        if subscribed.is_empty() {
            continue;
        }
        let n = subscribed.len() as i32;
        let (per, extra) = (count / n, count % n);
        for (i, member) in subscribed.into_iter().enumerate() {
            let i = i as i32;
            let start = per * i + i.min(extra);
            let len = per + i32::from(i < extra);
            let list = out.get_mut(member).expect("every member has an entry");
            list.extend((start..start + len).map(|p| (topic.clone(), p)));
        }
    }
    out
}

/// Kafka's RoundRobinAssignor: all partitions in (topic, partition) order dealt in turn to the
/// members (in member-id order), skipping members not subscribed to the topic.
pub fn round_robin(
    members: &BTreeMap<String, MemberSubscription>,
    partitions: &BTreeMap<String, i32>,
) -> Assignment {
    let mut out = empty(members);
    let ids: Vec<&String> = members.keys().collect();
    if ids.is_empty() {
        return out;
    }
    let mut next = 0usize;
    for (topic, &count) in partitions {
        if !members.values().any(|s| s.topics.contains(topic)) {
            continue;
        }
        for p in 0..count {
            loop {
                let member = ids[next % ids.len()];
                next += 1;
                if members[member].topics.contains(topic) {
                    out.get_mut(member)
                        .expect("every member has an entry")
                        .push((topic.clone(), p));
                    break;
                }
            }
        }
    }
    out
}

/// A cooperative sticky assignor: members keep what they own up to a balanced share; the rest
/// goes to the least-loaded subscribed member. A partition that moves from one member to another
/// is withheld this round (its owner revokes it and rejoins, and the next round assigns it), as
/// in Kafka's incremental cooperative protocol.
pub fn cooperative_sticky(
    members: &BTreeMap<String, MemberSubscription>,
    partitions: &BTreeMap<String, i32>,
) -> Assignment {
    let mut out = empty(members);
    if members.is_empty() {
        return out;
    }
    let all: Vec<TopicPartition> = partitions
        .iter()
        .filter(|(t, _)| members.values().any(|s| s.topics.contains(*t)))
        .flat_map(|(t, &n)| (0..n).map(move |p| (t.clone(), p)))
        .collect();
    let exists: BTreeSet<&TopicPartition> = all.iter().collect();
    let total = all.len();
    let n = members.len();
    let (floor, mut at_ceiling) = (total / n, total % n);

    // Previous owners, first claim wins.
    let mut owner: BTreeMap<TopicPartition, String> = BTreeMap::new();
    for (member, sub) in members {
        for tp in &sub.owned {
            if exists.contains(tp) && sub.topics.contains(&tp.0) && !owner.contains_key(tp) {
                owner.insert(tp.clone(), member.clone());
            }
        }
    }
    // Keep owned partitions up to the member's share.
    let mut assigned: BTreeSet<TopicPartition> = BTreeSet::new();
    for (member, sub) in members {
        let mut kept: Vec<TopicPartition> = sub
            .owned
            .iter()
            .filter(|tp| owner.get(*tp) == Some(member))
            .cloned()
            .collect();
        kept.sort();
        let share = if kept.len() > floor && at_ceiling > 0 {
            at_ceiling -= 1;
            floor + 1
        } else {
            floor
        };
        kept.truncate(share);
        assigned.extend(kept.iter().cloned());
        out.insert(member.clone(), kept);
    }
    // The rest to the least-loaded subscribed member.
    let mut moved: BTreeSet<TopicPartition> = BTreeSet::new();
    for tp in all {
        if assigned.contains(&tp) {
            continue;
        }
        let target = out
            .iter()
            .filter(|(m, _)| members[*m].topics.contains(&tp.0))
            .min_by_key(|(m, list)| (list.len(), (*m).clone()))
            .map(|(m, _)| m.clone());
        if let Some(target) = target {
            if owner.get(&tp).is_some_and(|o| *o != target) {
                moved.insert(tp.clone());
            }
            out.get_mut(&target).expect("member").push(tp);
        }
    }
    for list in out.values_mut() {
        list.retain(|tp| !moved.contains(tp));
        list.sort();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn members(spec: &[(&str, &[&str])]) -> BTreeMap<String, MemberSubscription> {
        spec.iter()
            .map(|(m, topics)| {
                (
                    m.to_string(),
                    MemberSubscription {
                        topics: topics.iter().map(|t| t.to_string()).collect(),
                        owned: Vec::new(),
                    },
                )
            })
            .collect()
    }

    fn tps(spec: &[(&str, i32)]) -> Vec<TopicPartition> {
        spec.iter().map(|(t, p)| (t.to_string(), *p)).collect()
    }

    fn two_topics_of_three() -> BTreeMap<String, i32> {
        [("t0".to_string(), 3), ("t1".to_string(), 3)].into()
    }

    /// The RangeAssignor javadoc: C0 gets t0p0, t0p1, t1p0, t1p1 and C1 gets t0p2, t1p2.
    #[test]
    fn range_matches_kafka_documented_example() {
        let m = members(&[("C0", &["t0", "t1"]), ("C1", &["t0", "t1"])]);
        let out = range(&m, &two_topics_of_three());
        assert_eq!(
            out["C0"],
            tps(&[("t0", 0), ("t0", 1), ("t1", 0), ("t1", 1)])
        );
        assert_eq!(out["C1"], tps(&[("t0", 2), ("t1", 2)]));
    }

    /// The RoundRobinAssignor javadoc: C0 gets t0p0, t0p2, t1p1 and C1 gets t0p1, t1p0, t1p2.
    #[test]
    fn round_robin_matches_kafka_documented_example() {
        let m = members(&[("C0", &["t0", "t1"]), ("C1", &["t0", "t1"])]);
        let out = round_robin(&m, &two_topics_of_three());
        assert_eq!(out["C0"], tps(&[("t0", 0), ("t0", 2), ("t1", 1)]));
        assert_eq!(out["C1"], tps(&[("t0", 1), ("t1", 0), ("t1", 2)]));
    }

    /// The javadoc's uneven subscriptions: C0 {t0}, C1 {t0, t1}, C2 {t0, t1, t2} over t0 (1),
    /// t1 (2), t2 (3): C0 [t0p0], C1 [t1p0], C2 [t1p1, t2p0, t2p1, t2p2].
    #[test]
    fn round_robin_skips_members_not_subscribed() {
        let m = members(&[
            ("C0", &["t0"]),
            ("C1", &["t0", "t1"]),
            ("C2", &["t0", "t1", "t2"]),
        ]);
        let counts = [("t0".into(), 1), ("t1".into(), 2), ("t2".into(), 3)].into();
        let out = round_robin(&m, &counts);
        assert_eq!(out["C0"], tps(&[("t0", 0)]));
        assert_eq!(out["C1"], tps(&[("t1", 0)]));
        assert_eq!(
            out["C2"],
            tps(&[("t1", 1), ("t2", 0), ("t2", 1), ("t2", 2)])
        );
    }

    #[test]
    fn range_gives_extra_partitions_to_the_first_members() {
        let m = members(&[("a", &["t"]), ("b", &["t"]), ("c", &["t"])]);
        let out = range(&m, &[("t".to_string(), 7)].into());
        assert_eq!(out["a"], tps(&[("t", 0), ("t", 1), ("t", 2)]));
        assert_eq!(out["b"], tps(&[("t", 3), ("t", 4)]));
        assert_eq!(out["c"], tps(&[("t", 5), ("t", 6)]));
    }

    #[test]
    fn cooperative_sticky_keeps_owned_and_withholds_moving_partitions() {
        let counts: BTreeMap<String, i32> = [("t".to_string(), 4)].into();
        // First round: one member gets everything.
        let m = members(&[("a", &["t"])]);
        let first = cooperative_sticky(&m, &counts);
        assert_eq!(first["a"].len(), 4);
        // A second member joins: a keeps two, the two it gives up are withheld this round.
        let mut m = members(&[("a", &["t"]), ("b", &["t"])]);
        m.get_mut("a").unwrap().owned = first["a"].clone();
        let second = cooperative_sticky(&m, &counts);
        assert_eq!(second["a"], tps(&[("t", 0), ("t", 1)]));
        assert!(second["b"].is_empty());
        // After a revokes them, the next round gives them to b; a keeps what it had.
        m.get_mut("a").unwrap().owned = second["a"].clone();
        let third = cooperative_sticky(&m, &counts);
        assert_eq!(third["a"], tps(&[("t", 0), ("t", 1)]));
        assert_eq!(third["b"], tps(&[("t", 2), ("t", 3)]));
    }

    #[test]
    fn cooperative_sticky_reassigns_a_departed_members_partitions() {
        let counts: BTreeMap<String, i32> = [("t".to_string(), 4)].into();
        let mut m = members(&[("a", &["t"])]);
        m.get_mut("a").unwrap().owned = tps(&[("t", 0), ("t", 1)]);
        let out = cooperative_sticky(&m, &counts);
        assert_eq!(out["a"], tps(&[("t", 0), ("t", 1), ("t", 2), ("t", 3)]));
    }
}
