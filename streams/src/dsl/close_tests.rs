//! Closing windows on long random inputs: every session is emitted once on close, and every
//! record of an outer join is either joined or emitted alone once. (The operators keep indexes
//! and scan bounds so closing costs what closes; these check that nothing is skipped.)

use std::collections::{BTreeMap, BTreeSet};

use crate::test_driver::TopologyTestDriver;
use crate::{
    Consumed, EmitStrategy, Grouped, JoinWindows, Joined, Materialized, Produced, Serdes,
    SessionWindows, StreamsBuilder, WindowedSerde,
};

type R = crate::Result<()>;

/// splitmix64: a seeded sequence, so a failure is reproducible.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> i64 {
        (self.next() % n) as i64
    }
}

fn ss() -> Consumed<String, String> {
    Consumed::with(Serdes::string(), Serdes::string())
}

/// Sessions `(key, start, end, count)` of in-order records: a gap above `gap` starts a new one.
fn reference_sessions(records: &[(String, i64)], gap: i64) -> BTreeSet<(String, i64, i64, i64)> {
    let mut by_key: BTreeMap<&str, Vec<i64>> = BTreeMap::new();
    for (k, t) in records {
        by_key.entry(k).or_default().push(*t);
    }
    let mut out = BTreeSet::new();
    for (k, mut times) in by_key {
        times.sort_unstable();
        let (mut start, mut end, mut n) = (times[0], times[0], 0);
        for t in times {
            if t > end + gap {
                out.insert((k.to_string(), start, end, n));
                (start, n) = (t, 0);
            }
            end = t;
            n += 1;
        }
        out.insert((k.to_string(), start, end, n));
    }
    out
}

#[test]
fn session_emit_on_close_emits_every_session_once() -> R {
    let (gap, grace) = (10, 6);
    for seed in 0..8 {
        let builder = StreamsBuilder::new();
        builder
            .stream("clicks", ss())
            .group_by_key(Grouped::with(Serdes::string(), Serdes::string()))
            .windowed_by_session(SessionWindows::of_inactivity_gap_and_grace(gap, grace)?)
            .emit_strategy(EmitStrategy::OnWindowClose)
            .count(Materialized::as_store("sessions"))
            .to_stream()
            .to(
                "sessions",
                Produced::with(
                    WindowedSerde::session(Serdes::string()),
                    Serdes::nullable(Serdes::i64()),
                ),
            );
        let mut d = TopologyTestDriver::new(builder.build()?, "app")?;
        let input = d.input_topic("clicks", Serdes::string(), Serdes::string());
        let mut rng = Rng(seed);
        let mut records = Vec::new();
        let mut now = 0;
        for _ in 0..2_000 {
            now += rng.below(4);
            // Out of order by less than the grace: nothing is late.
            let t = (now - rng.below(grace as u64)).max(0);
            let key = format!("k{}", rng.below(12));
            input.pipe(&mut d, &key, &"x".to_string(), t)?;
            records.push((key, t));
        }
        // Closes every session above (the flush key's own session stays open).
        input.pipe(&mut d, &"flush".to_string(), &"x".to_string(), now + 1_000)?;
        let emitted: Vec<_> = d
            .output_topic(
                "sessions",
                WindowedSerde::session(Serdes::string()),
                Serdes::nullable(Serdes::i64()),
            )
            .read_key_values(&mut d)?
            .into_iter()
            .map(|(w, c)| (w.key, w.window.start, w.window.end, c.unwrap_or(-1)))
            .collect();
        let unique: BTreeSet<_> = emitted.iter().cloned().collect();
        assert_eq!(
            unique.len(),
            emitted.len(),
            "seed {seed}: a session was emitted twice"
        );
        assert_eq!(unique, reference_sessions(&records, gap), "seed {seed}");
        assert_eq!(d.metrics().late_records_dropped, 0);
    }
    Ok(())
}

#[test]
fn outer_join_emits_each_unmatched_record_once_with_asymmetric_windows() -> R {
    let (before, after, grace) = (7, 3, 2);
    for seed in 0..8 {
        let builder = StreamsBuilder::new();
        let left = builder.stream("left", ss());
        let right = builder.stream("right", ss());
        let show = |v: Option<&String>| v.map_or("null".to_string(), Clone::clone);
        left.outer_join(
            &right,
            move |a, b| format!("{}+{}", show(a), show(b)),
            JoinWindows::of_time_difference_and_grace(before, grace)?.after(after),
            Joined::with(Serdes::string(), Serdes::string(), Serdes::string()),
        )
        .to("joined", Produced::with(Serdes::string(), Serdes::string()));
        let mut d = TopologyTestDriver::new(builder.build()?, "app")?;
        let l = d.input_topic("left", Serdes::string(), Serdes::string());
        let r = d.input_topic("right", Serdes::string(), Serdes::string());
        let mut rng = Rng(seed + 100);
        let mut stream_time = i64::MIN;
        let mut kept = Vec::new();
        let mut now = 0;
        for i in 0..1_500 {
            now += rng.below(3);
            let t = (now - rng.below(6)).max(0);
            let key = format!("k{}", rng.below(6));
            let is_left = rng.below(2) == 0;
            let value = format!("{}{i}", if is_left { "L" } else { "R" });
            stream_time = stream_time.max(t);
            // A record is late once stream time passes its window's close.
            let reach = if is_left { after } else { before };
            if t + reach + grace >= stream_time {
                kept.push(value.clone());
            }
            let topic = if is_left { &l } else { &r };
            topic.pipe(&mut d, &key, &value, t)?;
        }
        l.pipe(&mut d, &"flush".to_string(), &"F".to_string(), now + 1_000)?;
        let results = d
            .output_topic("joined", Serdes::string(), Serdes::string())
            .read_key_values(&mut d)?;
        let mut joined: BTreeMap<String, usize> = BTreeMap::new();
        let mut alone: BTreeMap<String, usize> = BTreeMap::new();
        for (_, v) in results {
            let (a, b) = v.split_once('+').unwrap_or_default();
            match (a, b) {
                ("null", x) | (x, "null") => *alone.entry(x.to_string()).or_default() += 1,
                (a, b) => {
                    *joined.entry(a.to_string()).or_default() += 1;
                    *joined.entry(b.to_string()).or_default() += 1;
                }
            }
        }
        // A record never joined is emitted alone, once. (One joined only after its window
        // closed, by an out-of-order record of the other side that was not yet late, was
        // emitted alone too: the close time is `t + after + grace`, as in Kafka Streams.)
        for v in &kept {
            let (j, n) = (joined.contains_key(v), alone.get(v).copied().unwrap_or(0));
            assert!(
                n == 1 || (j && n == 0),
                "seed {seed}: {v} joined: {j}, emitted alone {n} times"
            );
        }
        let kept: BTreeSet<&String> = kept.iter().collect();
        for v in alone.keys().chain(joined.keys()) {
            assert!(
                kept.contains(v),
                "seed {seed}: a result for {v}, which was late"
            );
        }
    }
    Ok(())
}
