//! Kafka Connect's group protocol `default` (`ConnectProtocol`, eager): member metadata is
//! the worker's URL and config offset; the leader's assignment names the connectors and tasks
//! each worker runs. Binary layout as in Kafka: an `INT16` version header, `STRING` = `INT16`
//! length + UTF-8, `ARRAY` = `INT32` count + elements; task id -1 stands for the connector
//! itself. Fjord's metadata is version 1: after Kafka's v0 fields it carries what the worker
//! runs now (nullable `BYTES` holding an assignment, as Kafka's incremental protocol does), so
//! that the leader can revoke a task from its old owner before giving it to a new one.

use std::collections::BTreeMap;

use bytes::{Buf, BufMut, Bytes, BytesMut};

/// The group's protocol type.
pub(crate) const PROTOCOL_TYPE: &str = "connect";
/// The eager protocol's name.
pub(crate) const PROTOCOL_NAME: &str = "default";
const VERSION: i16 = 0;
const METADATA_VERSION: i16 = 1;
/// `ConnectProtocol.CONNECTOR_TASK`: the connector itself in an assignment.
const CONNECTOR_TASK: i32 = -1;

/// Assignment error codes (`ConnectProtocol.Assignment`).
pub(crate) const NO_ERROR: i16 = 0;
pub(crate) const CONFIG_MISMATCH: i16 = 1;

/// What a worker says about itself when it joins.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct WorkerState {
    /// The worker's REST URL (`http://host:port`).
    pub(crate) url: String,
    /// How far the worker has read the config topic.
    pub(crate) config_offset: i64,
    /// The tasks the worker runs as it joins.
    pub(crate) running: Vec<(String, usize)>,
}

/// A worker's share of the work for one generation.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(crate) struct Assignment {
    pub(crate) error: i16,
    pub(crate) leader: String,
    pub(crate) leader_url: String,
    pub(crate) config_offset: i64,
    pub(crate) connectors: Vec<String>,
    pub(crate) tasks: Vec<(String, usize)>,
}

/// Malformed protocol bytes.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("malformed Connect protocol data: {0}")]
pub(crate) struct DecodeError(&'static str);

fn put_string(buf: &mut BytesMut, s: &str) {
    let len = i16::try_from(s.len()).unwrap_or(i16::MAX);
    buf.put_i16(len);
    buf.put_slice(&s.as_bytes()[..len as usize]);
}

fn get_i16(buf: &mut Bytes) -> Result<i16, DecodeError> {
    if buf.remaining() < 2 {
        return Err(DecodeError("truncated INT16"));
    }
    Ok(buf.get_i16())
}

fn get_i32(buf: &mut Bytes) -> Result<i32, DecodeError> {
    if buf.remaining() < 4 {
        return Err(DecodeError("truncated INT32"));
    }
    Ok(buf.get_i32())
}

fn get_i64(buf: &mut Bytes) -> Result<i64, DecodeError> {
    if buf.remaining() < 8 {
        return Err(DecodeError("truncated INT64"));
    }
    Ok(buf.get_i64())
}

fn get_string(buf: &mut Bytes) -> Result<String, DecodeError> {
    let len = get_i16(buf)?;
    let len = usize::try_from(len).map_err(|_| DecodeError("null STRING"))?;
    if buf.remaining() < len {
        return Err(DecodeError("truncated STRING"));
    }
    let bytes = buf.split_to(len);
    String::from_utf8(bytes.to_vec()).map_err(|_| DecodeError("STRING is not UTF-8"))
}

fn get_count(buf: &mut Bytes, min_element: usize) -> Result<usize, DecodeError> {
    let n = get_i32(buf)?;
    let n = usize::try_from(n).map_err(|_| DecodeError("negative ARRAY length"))?;
    if n.saturating_mul(min_element) > buf.remaining() {
        return Err(DecodeError("ARRAY longer than the data"));
    }
    Ok(n)
}

impl WorkerState {
    pub(crate) fn encode(&self) -> Bytes {
        let mut buf = BytesMut::new();
        buf.put_i16(METADATA_VERSION);
        put_string(&mut buf, &self.url);
        buf.put_i64(self.config_offset);
        let running = Assignment {
            tasks: self.running.clone(),
            ..Assignment::default()
        }
        .encode();
        buf.put_i32(running.len() as i32);
        buf.put_slice(&running);
        buf.freeze()
    }

    pub(crate) fn decode(mut bytes: Bytes) -> Result<Self, DecodeError> {
        let version = get_i16(&mut bytes)?;
        if version < 0 {
            return Err(DecodeError("negative version"));
        }
        let url = get_string(&mut bytes)?;
        let config_offset = get_i64(&mut bytes)?;
        let mut running = Vec::new();
        if version >= 1 {
            let len = get_i32(&mut bytes)?;
            if let Ok(len) = usize::try_from(len) {
                if bytes.remaining() < len {
                    return Err(DecodeError("truncated BYTES"));
                }
                running = Assignment::decode(bytes.split_to(len))?.tasks;
            }
        }
        Ok(WorkerState {
            url,
            config_offset,
            running,
        })
    }
}

impl Assignment {
    pub(crate) fn encode(&self) -> Bytes {
        let mut buf = BytesMut::new();
        buf.put_i16(VERSION);
        buf.put_i16(self.error);
        put_string(&mut buf, &self.leader);
        put_string(&mut buf, &self.leader_url);
        buf.put_i64(self.config_offset);
        let mut by_connector: BTreeMap<&str, Vec<i32>> = BTreeMap::new();
        for c in &self.connectors {
            by_connector.entry(c).or_default().push(CONNECTOR_TASK);
        }
        for (c, t) in &self.tasks {
            by_connector
                .entry(c)
                .or_default()
                .push(i32::try_from(*t).unwrap_or(i32::MAX));
        }
        buf.put_i32(by_connector.len() as i32);
        for (connector, ids) in by_connector {
            put_string(&mut buf, connector);
            buf.put_i32(ids.len() as i32);
            for id in ids {
                buf.put_i32(id);
            }
        }
        buf.freeze()
    }

    pub(crate) fn decode(mut bytes: Bytes) -> Result<Self, DecodeError> {
        let version = get_i16(&mut bytes)?;
        if version < 0 {
            return Err(DecodeError("negative version"));
        }
        let error = get_i16(&mut bytes)?;
        let leader = get_string(&mut bytes)?;
        let leader_url = get_string(&mut bytes)?;
        let config_offset = get_i64(&mut bytes)?;
        let mut out = Assignment {
            error,
            leader,
            leader_url,
            config_offset,
            ..Assignment::default()
        };
        let n = get_count(&mut bytes, 6)?;
        for _ in 0..n {
            let connector = get_string(&mut bytes)?;
            let ids = get_count(&mut bytes, 4)?;
            for _ in 0..ids {
                match get_i32(&mut bytes)? {
                    CONNECTOR_TASK => out.connectors.push(connector.clone()),
                    id => out.tasks.push((
                        connector.clone(),
                        usize::try_from(id).map_err(|_| DecodeError("negative task id"))?,
                    )),
                }
            }
        }
        Ok(out)
    }
}

/// A plan: each member's connectors and tasks.
pub(crate) type Plan = BTreeMap<String, (Vec<String>, Vec<(String, usize)>)>;

/// Takes out of `plan` every task that another member runs now, so that its owner stops it
/// before the next rebalance gives it to the new one. Returns whether anything was held back.
pub(crate) fn hold_back_moves(
    plan: &mut Plan,
    running: &BTreeMap<String, Vec<(String, usize)>>,
) -> bool {
    let mut owner: BTreeMap<&(String, usize), &str> = BTreeMap::new();
    for (member, tasks) in running {
        for t in tasks {
            owner.insert(t, member);
        }
    }
    let mut held = false;
    for (member, (_, tasks)) in plan.iter_mut() {
        tasks.retain(|t| match owner.get(t) {
            Some(o) if *o != member.as_str() => {
                held = true;
                false
            }
            _ => true,
        });
    }
    held
}

/// The assignor: connectors dealt round-robin over the members sorted by member id; tasks
/// balanced (each member gets the total divided by the number of members, the first ones one
/// more), a task staying with the member that runs it while that member has room (`running`:
/// what each member reported when it joined), the others dealt to the least loaded member.
/// Returns each member's connectors and tasks.
pub(crate) fn assign(
    members: &[String],
    connectors: &[(String, usize)],
    running: &BTreeMap<String, Vec<(String, usize)>>,
) -> Plan {
    let mut sorted: Vec<&String> = members.iter().collect();
    sorted.sort();
    let mut out: Plan = sorted
        .iter()
        .map(|m| ((*m).clone(), (Vec::new(), Vec::new())))
        .collect();
    if sorted.is_empty() {
        return out;
    }
    for (next, (name, _)) in connectors.iter().enumerate() {
        if let Some(slot) = out.get_mut(sorted[next % sorted.len()]) {
            slot.0.push(name.clone());
        }
    }
    let tasks: Vec<(String, usize)> = connectors
        .iter()
        .flat_map(|(name, count)| (0..*count).map(move |t| (name.clone(), t)))
        .collect();
    let (base, extra) = (tasks.len() / sorted.len(), tasks.len() % sorted.len());
    let quota: BTreeMap<String, usize> = sorted
        .iter()
        .enumerate()
        .map(|(i, m)| ((*m).clone(), base + usize::from(i < extra)))
        .collect();
    let owner: BTreeMap<&(String, usize), &String> = running
        .iter()
        .filter(|(m, _)| quota.contains_key(*m))
        .flat_map(|(m, ts)| ts.iter().map(move |t| (t, m)))
        .collect();
    let mut unplaced = Vec::new();
    for task in &tasks {
        let keep = owner.get(task).is_some_and(|o| out[*o].1.len() < quota[*o]);
        match (keep, owner.get(task).and_then(|o| out.get_mut(*o))) {
            (true, Some(slot)) => slot.1.push(task.clone()),
            _ => unplaced.push(task.clone()),
        }
    }
    for task in unplaced {
        let least = sorted
            .iter()
            .filter(|m| out[**m].1.len() < quota[**m])
            .min_by_key(|m| out[**m].1.len())
            .map(|m| (*m).clone());
        if let Some(slot) = least.and_then(|m| out.get_mut(&m)) {
            slot.1.push(task);
        }
    }
    for (_, tasks) in out.values_mut() {
        tasks.sort();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn worker_state_has_kafkas_layout_then_the_running_tasks() {
        let s = WorkerState {
            url: "http://a:1".into(),
            config_offset: 7,
            running: vec![("c".into(), 2)],
        };
        let bytes = s.encode();
        let mut expected = vec![0, 1, 0, 10];
        expected.extend_from_slice(b"http://a:1");
        expected.extend_from_slice(&7i64.to_be_bytes());
        assert_eq!(&bytes[..expected.len()], &expected[..]);
        assert_eq!(WorkerState::decode(bytes.clone()).unwrap(), s);
        // Kafka's v0 metadata (no running tasks) is read too.
        let mut v0 = vec![0, 0, 0, 10];
        v0.extend_from_slice(b"http://a:1");
        v0.extend_from_slice(&7i64.to_be_bytes());
        let old = WorkerState::decode(Bytes::from(v0)).unwrap();
        assert_eq!((old.config_offset, old.running.len()), (7, 0));
        for cut in 0..bytes.len() {
            assert!(
                WorkerState::decode(bytes.slice(..cut)).is_err(),
                "cut at {cut}"
            );
        }
    }

    #[test]
    fn tasks_moving_between_live_workers_are_held_back_one_round() {
        // b runs both tasks; a joins: one task must move to a, and is first only revoked.
        let members = ["a".to_string(), "b".to_string()];
        let running = BTreeMap::from([
            ("a".to_string(), vec![]),
            (
                "b".to_string(),
                vec![("x".to_string(), 0), ("x".to_string(), 1)],
            ),
        ]);
        let mut plan = assign(&members, &[("x".into(), 2)], &running);
        assert_eq!(plan["a"].1.len(), 1);
        assert_eq!(plan["b"].1.len(), 1);
        assert!(hold_back_moves(&mut plan, &running));
        assert!(plan["a"].1.is_empty());
        assert_eq!(plan["b"].1.len(), 1);
        // Tasks of departed workers (absent from `running`) are not held back.
        let mut plan = assign(&["a".to_string()], &[("x".into(), 1)], &BTreeMap::new());
        assert!(!hold_back_moves(&mut plan, &BTreeMap::new()));
        assert_eq!(plan["a"].1.len(), 1);
    }

    #[test]
    fn tasks_stay_where_they_run_when_an_unrelated_connector_is_added() {
        let members = ["a".to_string(), "b".to_string()];
        let before = assign(&members, &[("x".into(), 2)], &BTreeMap::new());
        let running: BTreeMap<String, Vec<(String, usize)>> = before
            .iter()
            .map(|(m, (_, t))| (m.clone(), t.clone()))
            .collect();
        let mut after = assign(&members, &[("w".into(), 2), ("x".into(), 2)], &running);
        for (m, (_, tasks)) in &before {
            for t in tasks {
                assert!(after[m].1.contains(t), "{t:?} moved off {m}");
            }
        }
        assert_eq!(after["a"].1.len(), 2);
        assert_eq!(after["b"].1.len(), 2);
        assert!(!hold_back_moves(&mut after, &running));
        // A departed member's tasks go to the survivors.
        let alone = assign(&["a".to_string()], &[("x".into(), 2)], &running);
        assert_eq!(alone["a"].1.len(), 2);
    }

    #[test]
    fn assignment_round_trips_with_the_connector_as_task_minus_one() {
        let a = Assignment {
            error: NO_ERROR,
            leader: "m-1".into(),
            leader_url: "http://a:1".into(),
            config_offset: 42,
            connectors: vec!["src".into()],
            tasks: vec![("sink".into(), 1), ("src".into(), 0)],
        };
        let bytes = a.encode();
        let decoded = Assignment::decode(bytes.clone()).unwrap();
        assert_eq!(decoded.connectors, a.connectors);
        let mut tasks = decoded.tasks.clone();
        tasks.sort();
        assert_eq!(tasks, vec![("sink".into(), 1), ("src".into(), 0)]);
        assert_eq!(decoded.config_offset, 42);
        // "src" carries -1 (the connector) then 0.
        let tail = &bytes[bytes.len() - 12..];
        assert_eq!(tail, &[0, 0, 0, 2, 0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0]);
        for cut in 0..bytes.len() {
            assert!(
                Assignment::decode(bytes.slice(..cut)).is_err(),
                "cut at {cut}"
            );
        }
    }

    #[test]
    fn connectors_round_robin_and_tasks_balanced_over_sorted_members() {
        let members = vec!["b".to_string(), "a".to_string()];
        let plan = assign(
            &members,
            &[("x".into(), 2), ("y".into(), 1)],
            &BTreeMap::new(),
        );
        assert_eq!(plan["a"].0, vec!["x".to_string()]);
        assert_eq!(plan["b"].0, vec!["y".to_string()]);
        assert_eq!(
            plan["a"].1,
            vec![("x".to_string(), 0), ("y".to_string(), 0)]
        );
        assert_eq!(plan["b"].1, vec![("x".to_string(), 1)]);
        // One member runs everything.
        let alone = assign(&["a".to_string()], &[("x".into(), 2)], &BTreeMap::new());
        assert_eq!(alone["a"].1.len(), 2);
        assert!(assign(&[], &[("x".into(), 1)], &BTreeMap::new()).is_empty());
    }
}
