//! Every operator through the test driver, with explicit timestamps and exact outputs.

use std::cell::RefCell;
use std::rc::Rc;
use std::sync::{Arc, Mutex};

use bytes::Bytes;

use crate::processor::{
    Downstream, Lifecycle, Processor, ProcessorContext, PunctuationType, Record,
};
use crate::store::StoreKind;
use crate::test_driver::TopologyTestDriver;
use crate::{
    Consumed, DeserializationHandler, EmitStrategy, Grouped, Joined, Materialized, Produced,
    Serdes, SessionWindows, StreamsBuilder, TimeWindows, Window, Windowed, WindowedSerde,
};

pub(super) type R = crate::Result<()>;

/// key, window start, window end, value.
type WindowRow = (String, i64, i64, Option<i64>);

pub(super) fn ss() -> Consumed<String, String> {
    Consumed::with(Serdes::string(), Serdes::string())
}

pub(super) fn out_ss() -> Produced<String, String> {
    Produced::with(Serdes::string(), Serdes::string())
}

pub(super) fn driver(builder: &StreamsBuilder) -> TopologyTestDriver {
    TopologyTestDriver::new(builder.build().unwrap(), "app").unwrap()
}

fn kv(k: &str, v: &str) -> (String, String) {
    (k.to_string(), v.to_string())
}

#[test]
fn stateless_operators_transform_and_route_records() -> R {
    let builder = StreamsBuilder::new();
    let input = builder.stream("in", ss());
    input
        .filter(|_, v| v.len() > 1)
        .filter_not(|k, _| k == "skip")
        .map_values(|_, v| v.to_uppercase())
        .to("upper", out_ss());
    input
        .map(|k, v| (v, k))
        .flat_map_values(|_, v: String| vec![v.clone(), v])
        .to("swapped", out_ss());
    input
        .flat_map(|k, v: String| {
            v.chars()
                .map(|c| (k.clone(), c.to_string()))
                .collect::<Vec<_>>()
        })
        .to("chars", out_ss());
    let seen = Arc::new(Mutex::new(Vec::new()));
    let s2 = seen.clone();
    input
        .select_key(|_, v| format!("key-{v}"))
        .peek(move |k, _| s2.lock().unwrap().push(k.clone()))
        .to("rekeyed", out_ss());
    let mut d = driver(&builder);
    let i = d.input_topic("in", Serdes::string(), Serdes::string());
    i.pipe(&mut d, &"a".into(), &"xy".into(), 1)?;
    i.pipe(&mut d, &"skip".into(), &"zz".into(), 2)?;
    i.pipe(&mut d, &"b".into(), &"q".into(), 3)?;
    let upper = d.output_topic("upper", Serdes::string(), Serdes::string());
    assert_eq!(upper.read_key_values(&mut d)?, vec![kv("a", "XY")]);
    let swapped = d.output_topic("swapped", Serdes::string(), Serdes::string());
    assert_eq!(
        swapped.read_key_values(&mut d)?,
        vec![
            kv("xy", "a"),
            kv("xy", "a"),
            kv("zz", "skip"),
            kv("zz", "skip"),
            kv("q", "b"),
            kv("q", "b")
        ]
    );
    let chars = d.output_topic("chars", Serdes::string(), Serdes::string());
    let recs = chars.read_records(&mut d)?;
    assert_eq!(
        recs.iter()
            .map(|r| (r.key.as_str(), r.value.as_str(), r.timestamp))
            .collect::<Vec<_>>(),
        vec![
            ("a", "x", 1),
            ("a", "y", 1),
            ("skip", "z", 2),
            ("skip", "z", 2),
            ("b", "q", 3)
        ]
    );
    assert_eq!(*seen.lock().unwrap(), vec!["key-xy", "key-zz", "key-q"]);
    Ok(())
}

#[test]
fn split_merge_and_foreach() -> R {
    let builder = StreamsBuilder::new();
    let branches = builder
        .stream("in", Consumed::with(Serdes::string(), Serdes::i64()))
        .split()
        .branch(|_, v| *v < 0)
        .branch(|_, v| *v == 0)
        .default_branch();
    assert_eq!(branches.len(), 3);
    branches[0].to("negative", Produced::with(Serdes::string(), Serdes::i64()));
    branches[2].to("positive", Produced::with(Serdes::string(), Serdes::i64()));
    let zeros = Arc::new(Mutex::new(0));
    let z = zeros.clone();
    branches[1].foreach(move |_, _| *z.lock().unwrap() += 1);
    branches[0]
        .merge(&branches[2])
        .map_values(|_, v| v * 10)
        .to("merged", Produced::with(Serdes::string(), Serdes::i64()));
    let mut d = driver(&builder);
    let i = d.input_topic("in", Serdes::string(), Serdes::i64());
    for (n, v) in [-1i64, 0, 5, -7, 0].iter().enumerate() {
        i.pipe(&mut d, &format!("k{n}"), v, n as i64)?;
    }
    let neg = d.output_topic("negative", Serdes::string(), Serdes::i64());
    assert_eq!(
        neg.read_key_values(&mut d)?,
        vec![("k0".into(), -1), ("k3".into(), -7)]
    );
    let pos = d.output_topic("positive", Serdes::string(), Serdes::i64());
    assert_eq!(pos.read_key_values(&mut d)?, vec![("k2".into(), 5)]);
    let merged = d.output_topic("merged", Serdes::string(), Serdes::i64());
    assert_eq!(
        merged.read_key_values(&mut d)?,
        vec![("k0".into(), -10), ("k2".into(), 50), ("k3".into(), -70)]
    );
    assert_eq!(*zeros.lock().unwrap(), 2);
    Ok(())
}

#[test]
fn sink_partitioner_picks_the_partition() -> R {
    let builder = StreamsBuilder::new();
    builder.stream("in", ss()).to(
        "out",
        out_ss().with_partitioner(|_, v: &String, n| v.len() as i32 % n),
    );
    let mut d = driver(&builder);
    let i = d.input_topic("in", Serdes::string(), Serdes::string());
    i.pipe(&mut d, &"a".into(), &"xyz".into(), 0)?;
    let raw = d.read_raw("out");
    assert_eq!(raw.len(), 1);
    // The driver gives every topic one partition.
    assert_eq!(raw[0].partition, Some(0));
    Ok(())
}

#[test]
fn word_count_repartitions_after_a_key_change() -> R {
    let builder = StreamsBuilder::new();
    builder
        .stream("lines", Consumed::with(Serdes::unit(), Serdes::string()))
        .flat_map_values(|_, l: String| l.split(' ').map(String::from).collect::<Vec<_>>())
        .group_by(
            |_, w| w.clone(),
            Grouped::with(Serdes::string(), Serdes::string()).named("words"),
        )
        .count(Materialized::as_store("counts"))
        .to_stream()
        .to(
            "counts-out",
            Produced::with(Serdes::string(), Serdes::nullable(Serdes::i64())),
        );
    let topology = builder.build()?;
    assert_eq!(topology.subtopologies(), 2);
    assert!(
        topology.describe().contains("words-repartition"),
        "{}",
        topology.describe()
    );
    let mut d = TopologyTestDriver::new(topology, "wc")?;
    let i = d.input_topic("lines", Serdes::unit(), Serdes::string());
    i.pipe(&mut d, &(), &"a b a".into(), 10)?;
    i.pipe(&mut d, &(), &"b".into(), 11)?;
    let o = d.output_topic(
        "counts-out",
        Serdes::string(),
        Serdes::nullable(Serdes::i64()),
    );
    assert_eq!(
        o.read_key_values(&mut d)?,
        vec![
            ("a".into(), Some(1)),
            ("b".into(), Some(1)),
            ("a".into(), Some(2)),
            ("b".into(), Some(2))
        ]
    );
    // The store holds the counts, and its changelog gets the latest value per key.
    let changes = d.take_changelog("counts");
    assert_eq!(
        changes,
        vec![
            (
                Bytes::from_static(b"a"),
                Some(Bytes::copy_from_slice(&2i64.to_be_bytes()))
            ),
            (
                Bytes::from_static(b"b"),
                Some(Bytes::copy_from_slice(&2i64.to_be_bytes()))
            )
        ]
    );
    Ok(())
}

#[test]
fn reduce_and_aggregate_fold_per_key() -> R {
    let builder = StreamsBuilder::new();
    let grouped = builder
        .stream("in", Consumed::with(Serdes::string(), Serdes::i64()))
        .group_by_key(Grouped::with(Serdes::string(), Serdes::i64()));
    grouped
        .reduce(|a, b| *a.max(b), Materialized::as_store("max"))
        .to_stream()
        .to(
            "max",
            Produced::with(Serdes::string(), Serdes::nullable(Serdes::i64())),
        );
    grouped
        .aggregate(
            String::new,
            |_, v, agg| format!("{agg}{v}"),
            Serdes::string(),
            Materialized::as_store("concat"),
        )
        .to_stream()
        .to(
            "concat",
            Produced::with(Serdes::string(), Serdes::nullable(Serdes::string())),
        );
    let mut d = driver(&builder);
    let i = d.input_topic("in", Serdes::string(), Serdes::i64());
    for (k, v) in [("a", 3), ("a", 1), ("b", 2), ("a", 7)] {
        i.pipe(&mut d, &k.to_string(), &v, 0)?;
    }
    let max = d.output_topic("max", Serdes::string(), Serdes::nullable(Serdes::i64()));
    assert_eq!(
        max.read_key_values(&mut d)?,
        vec![
            ("a".into(), Some(3)),
            ("a".into(), Some(3)),
            ("b".into(), Some(2)),
            ("a".into(), Some(7))
        ]
    );
    let concat = d.output_topic(
        "concat",
        Serdes::string(),
        Serdes::nullable(Serdes::string()),
    );
    let last = concat.read_key_values(&mut d)?.pop().unwrap();
    assert_eq!(last, ("a".into(), Some("317".into())));
    Ok(())
}

#[test]
fn table_keeps_latest_value_and_tombstones_delete() -> R {
    let builder = StreamsBuilder::new();
    let table = builder.table("users", ss(), Materialized::as_store("users"));
    table
        .filter(|_, v| v != "hidden", Materialized::unnamed())
        .map_values(
            |_, v| v.len() as i64,
            Serdes::i64(),
            Materialized::as_store("lengths"),
        )
        .to_stream()
        .to(
            "lengths",
            Produced::with(Serdes::string(), Serdes::nullable(Serdes::i64())),
        );
    let mut d = driver(&builder);
    d.pipe_raw(
        "users",
        Some(Bytes::from("u1")),
        Some(Bytes::from("alice")),
        1,
    )?;
    d.pipe_raw("users", Some(Bytes::from("u1")), Some(Bytes::from("al")), 2)?;
    d.pipe_raw(
        "users",
        Some(Bytes::from("u2")),
        Some(Bytes::from("hidden")),
        3,
    )?;
    d.pipe_raw("users", Some(Bytes::from("u1")), None, 4)?;
    // Deleting an absent key does nothing.
    d.pipe_raw("users", Some(Bytes::from("u3")), None, 5)?;
    let o = d.output_topic("lengths", Serdes::string(), Serdes::nullable(Serdes::i64()));
    assert_eq!(
        o.read_key_values(&mut d)?,
        vec![
            ("u1".into(), Some(5)),
            ("u1".into(), Some(2)),
            ("u1".into(), None)
        ]
    );
    let users = d.store("users").unwrap();
    assert_eq!(users.borrow().get(b"u1")?, None);
    assert_eq!(users.borrow().get(b"u2")?.as_deref(), Some(&b"hidden"[..]));
    Ok(())
}

#[test]
fn stream_to_table_and_table_aggregation_with_subtractor() -> R {
    let builder = StreamsBuilder::new();
    // user -> region, re-grouped by region and counted: a move subtracts from the old region.
    let table = builder.table("user-region", ss(), Materialized::as_store("user-region"));
    table
        .group_by(
            |_, region| (region.clone(), 1i64),
            Grouped::with(Serdes::string(), Serdes::i64()),
        )
        .count(Materialized::as_store("per-region"))
        .to_stream()
        .to(
            "per-region",
            Produced::with(Serdes::string(), Serdes::nullable(Serdes::i64())),
        );
    let mut d = driver(&builder);
    let i = d.input_topic("user-region", Serdes::string(), Serdes::string());
    i.pipe(&mut d, &"u1".into(), &"eu".into(), 1)?;
    i.pipe(&mut d, &"u2".into(), &"eu".into(), 2)?;
    i.pipe(&mut d, &"u1".into(), &"us".into(), 3)?;
    let o = d.output_topic(
        "per-region",
        Serdes::string(),
        Serdes::nullable(Serdes::i64()),
    );
    assert_eq!(
        o.read_key_values(&mut d)?,
        vec![
            ("eu".into(), Some(1)),
            ("eu".into(), Some(2)),
            ("eu".into(), Some(1)),
            ("us".into(), Some(1))
        ]
    );

    let builder = StreamsBuilder::new();
    builder
        .stream("in", ss())
        .map(|k, v| (v, k))
        .to_table(
            Materialized::as_store("latest")
                .with_key_serde(Serdes::string())
                .with_value_serde(Serdes::string()),
        )?
        .to_stream()
        .to(
            "latest",
            Produced::with(Serdes::string(), Serdes::nullable(Serdes::string())),
        );
    let mut d = driver(&builder);
    let i = d.input_topic("in", Serdes::string(), Serdes::string());
    i.pipe(&mut d, &"a".into(), &"x".into(), 1)?;
    i.pipe(&mut d, &"b".into(), &"x".into(), 2)?;
    let o = d.output_topic(
        "latest",
        Serdes::string(),
        Serdes::nullable(Serdes::string()),
    );
    assert_eq!(
        o.read_key_values(&mut d)?,
        vec![
            ("x".into(), Some("a".into())),
            ("x".into(), Some("b".into()))
        ]
    );
    Ok(())
}

fn windowed_counts(d: &mut TopologyTestDriver, size: i64) -> crate::Result<Vec<WindowRow>> {
    let o = d.output_topic(
        "counts",
        WindowedSerde::time(Serdes::string(), size),
        Serdes::nullable(Serdes::i64()),
    );
    Ok(o.read_key_values(d)?
        .into_iter()
        .map(|(w, c)| (w.key, w.window.start, w.window.end, c))
        .collect())
}

fn windowed_count_topology(windows: TimeWindows, emit: EmitStrategy) -> StreamsBuilder {
    let builder = StreamsBuilder::new();
    builder
        .stream("clicks", ss())
        .group_by_key(Grouped::with(Serdes::string(), Serdes::string()))
        .windowed_by(windows)
        .emit_strategy(emit)
        .count(Materialized::as_store("windowed"))
        .unwrap()
        .to_stream()
        .to(
            "counts",
            Produced::with(
                WindowedSerde::time(Serdes::string(), windows.size),
                Serdes::nullable(Serdes::i64()),
            ),
        );
    builder
}

#[test]
fn tumbling_window_counts_with_grace_and_late_drops() -> R {
    let windows = TimeWindows::of_size_and_grace(10, 5)?;
    let builder = windowed_count_topology(windows, EmitStrategy::OnWindowUpdate);
    let mut d = driver(&builder);
    let i = d.input_topic("clicks", Serdes::string(), Serdes::string());
    let k = "u".to_string();
    i.pipe(&mut d, &k, &"x".into(), 0)?;
    i.pipe(&mut d, &k, &"x".into(), 9)?; // same window [0,10)
    i.pipe(&mut d, &k, &"x".into(), 10)?; // [10,20)
    i.pipe(&mut d, &k, &"x".into(), 14)?; // stream time 14: [0,10) closes at 10+5=15
    i.pipe(&mut d, &k, &"x".into(), 3)?; // out of order, within grace: counted
    i.pipe(&mut d, &k, &"x".into(), 15)?; // stream time 15: [0,10) closed
    i.pipe(&mut d, &k, &"x".into(), 4)?; // late: dropped
    assert_eq!(
        windowed_counts(&mut d, 10)?,
        vec![
            ("u".into(), 0, 10, Some(1)),
            ("u".into(), 0, 10, Some(2)),
            ("u".into(), 10, 20, Some(1)),
            ("u".into(), 10, 20, Some(2)),
            ("u".into(), 0, 10, Some(3)),
            ("u".into(), 10, 20, Some(3)),
        ]
    );
    assert_eq!(d.metrics().late_records_dropped, 1);
    // The closed window is gone from the store (retention = size + grace).
    let store = d.store("windowed").unwrap();
    assert_eq!(store.borrow().all()?.len(), 1);
    Ok(())
}

#[test]
fn hopping_windows_count_a_record_in_every_window_it_falls_in() -> R {
    let windows = TimeWindows::of_size_and_grace(10, 0)?.advance_by(5)?;
    assert_eq!(windows.window_starts(12).collect::<Vec<_>>(), vec![5, 10]);
    assert_eq!(windows.window_starts(3).collect::<Vec<_>>(), vec![0]);
    let builder = windowed_count_topology(windows, EmitStrategy::OnWindowUpdate);
    let mut d = driver(&builder);
    let i = d.input_topic("clicks", Serdes::string(), Serdes::string());
    i.pipe(&mut d, &"a".into(), &"x".into(), 3)?;
    i.pipe(&mut d, &"a".into(), &"x".into(), 7)?;
    assert_eq!(
        windowed_counts(&mut d, 10)?,
        vec![
            ("a".into(), 0, 10, Some(1)),
            ("a".into(), 0, 10, Some(2)),
            ("a".into(), 5, 15, Some(1)),
        ]
    );
    Ok(())
}

#[test]
fn emit_on_window_close_sends_only_final_results() -> R {
    let windows = TimeWindows::of_size_and_grace(10, 5)?;
    let builder = windowed_count_topology(windows, EmitStrategy::OnWindowClose);
    let mut d = driver(&builder);
    let i = d.input_topic("clicks", Serdes::string(), Serdes::string());
    i.pipe(&mut d, &"a".into(), &"x".into(), 1)?;
    i.pipe(&mut d, &"b".into(), &"x".into(), 2)?;
    i.pipe(&mut d, &"a".into(), &"x".into(), 12)?;
    i.pipe(&mut d, &"a".into(), &"x".into(), 8)?; // in grace
    assert_eq!(windowed_counts(&mut d, 10)?, vec![]);
    i.pipe(&mut d, &"c".into(), &"x".into(), 15)?; // [0,10) closes at 15
    assert_eq!(
        windowed_counts(&mut d, 10)?,
        vec![("a".into(), 0, 10, Some(2)), ("b".into(), 0, 10, Some(1))]
    );
    i.pipe(&mut d, &"a".into(), &"x".into(), 9)?; // late
    i.pipe(&mut d, &"c".into(), &"x".into(), 24)?;
    assert_eq!(windowed_counts(&mut d, 10)?, vec![]);
    i.pipe(&mut d, &"c".into(), &"x".into(), 25)?; // [10,20) closes
    assert_eq!(
        windowed_counts(&mut d, 10)?,
        vec![("a".into(), 10, 20, Some(1)), ("c".into(), 10, 20, Some(1))]
    );
    assert_eq!(d.metrics().late_records_dropped, 1);
    Ok(())
}

fn session_topology(emit: EmitStrategy) -> StreamsBuilder {
    let builder = StreamsBuilder::new();
    builder
        .stream("clicks", ss())
        .group_by_key(Grouped::with(Serdes::string(), Serdes::string()))
        .windowed_by_session(SessionWindows::of_inactivity_gap_and_grace(10, 5).unwrap())
        .emit_strategy(emit)
        .count(Materialized::as_store("sessions"))
        .to_stream()
        .to(
            "sessions",
            Produced::with(
                WindowedSerde::session(Serdes::string()),
                Serdes::nullable(Serdes::i64()),
            ),
        );
    builder
}

fn sessions(d: &mut TopologyTestDriver) -> crate::Result<Vec<WindowRow>> {
    let o = d.output_topic(
        "sessions",
        WindowedSerde::session(Serdes::string()),
        Serdes::nullable(Serdes::i64()),
    );
    Ok(o.read_key_values(d)?
        .into_iter()
        .map(|(w, c)| (w.key, w.window.start, w.window.end, c))
        .collect())
}

#[test]
fn session_windows_merge_when_a_record_bridges_the_gap() -> R {
    let mut d = driver(&session_topology(EmitStrategy::OnWindowUpdate));
    let i = d.input_topic("clicks", Serdes::string(), Serdes::string());
    let a = "a".to_string();
    i.pipe(&mut d, &a, &"x".into(), 0)?;
    i.pipe(&mut d, &a, &"x".into(), 18)?; // new session: 18 > 0 + 10
    i.pipe(&mut d, &a, &"x".into(), 9)?; // within 10 of both: merges [0,0] and [18,18]
    assert_eq!(
        sessions(&mut d)?,
        vec![
            ("a".into(), 0, 0, Some(1)),
            ("a".into(), 18, 18, Some(1)),
            ("a".into(), 0, 0, None),
            ("a".into(), 18, 18, None),
            ("a".into(), 0, 18, Some(3)),
        ]
    );
    i.pipe(&mut d, &a, &"x".into(), 28)?; // extends [0,18] to [0,28]
    i.pipe(&mut d, &"b".into(), &"x".into(), 60)?; // stream time 60
    i.pipe(&mut d, &a, &"x".into(), 44)?; // new session [44,44], end 44 < 60 - 5: late
    i.pipe(&mut d, &a, &"x".into(), 56)?; // new session [56,56]: not late
    assert_eq!(
        sessions(&mut d)?,
        vec![
            ("a".into(), 0, 18, None),
            ("a".into(), 0, 28, Some(4)),
            ("b".into(), 60, 60, Some(1)),
            ("a".into(), 56, 56, Some(1)),
        ]
    );
    assert_eq!(d.metrics().late_records_dropped, 1);
    Ok(())
}

#[test]
fn session_windows_emit_on_close_after_gap_and_grace() -> R {
    let mut d = driver(&session_topology(EmitStrategy::OnWindowClose));
    let i = d.input_topic("clicks", Serdes::string(), Serdes::string());
    i.pipe(&mut d, &"a".into(), &"x".into(), 0)?;
    i.pipe(&mut d, &"a".into(), &"x".into(), 5)?;
    i.pipe(&mut d, &"b".into(), &"x".into(), 19)?;
    assert_eq!(sessions(&mut d)?, vec![]);
    i.pipe(&mut d, &"b".into(), &"x".into(), 20)?; // 5 + 10 + 5 = 20: [0,5] final
    assert_eq!(sessions(&mut d)?, vec![("a".into(), 0, 5, Some(2))]);
    Ok(())
}

#[test]
fn stream_table_join_inner_and_left_null_semantics() -> R {
    let builder = StreamsBuilder::new();
    let users = builder.table("users", ss(), Materialized::as_store("users"));
    let clicks = builder.stream("clicks", ss());
    let joined = || Joined::with(Serdes::string(), Serdes::string(), Serdes::string());
    clicks
        .join_table(&users, |c, u| format!("{c}@{u}"), joined())
        .to("inner", out_ss());
    clicks
        .left_join_table(
            &users,
            |c, u| format!("{c}@{}", u.map_or("null", |u| u)),
            joined(),
        )
        .to("left", out_ss());
    let mut d = driver(&builder);
    let u = d.input_topic("users", Serdes::string(), Serdes::string());
    let c = d.input_topic("clicks", Serdes::string(), Serdes::string());
    c.pipe(&mut d, &"u1".into(), &"home".into(), 1)?; // no user yet
    u.pipe(&mut d, &"u1".into(), &"alice".into(), 2)?;
    c.pipe(&mut d, &"u1".into(), &"cart".into(), 3)?;
    d.pipe_raw("users", Some(Bytes::from("u1")), None, 4)?;
    c.pipe(&mut d, &"u1".into(), &"exit".into(), 5)?;
    let inner = d.output_topic("inner", Serdes::string(), Serdes::string());
    assert_eq!(inner.read_key_values(&mut d)?, vec![kv("u1", "cart@alice")]);
    let left = d.output_topic("left", Serdes::string(), Serdes::string());
    assert_eq!(
        left.read_key_values(&mut d)?,
        vec![
            kv("u1", "home@null"),
            kv("u1", "cart@alice"),
            kv("u1", "exit@null")
        ]
    );
    Ok(())
}

#[test]
fn stream_global_table_join_maps_the_key() -> R {
    let builder = StreamsBuilder::new();
    let products = builder.global_table("products", ss(), Materialized::as_store("products"));
    builder
        .stream("orders", ss())
        .join_global(
            &products,
            |_, product| product.clone(),
            |product, name| format!("{product}={name}"),
        )
        .to("out", out_ss());
    let mut d = driver(&builder);
    let p = d.input_topic("products", Serdes::string(), Serdes::string());
    let o = d.input_topic("orders", Serdes::string(), Serdes::string());
    p.pipe(&mut d, &"p1".into(), &"lamp".into(), 0)?;
    o.pipe(&mut d, &"order1".into(), &"p1".into(), 1)?;
    o.pipe(&mut d, &"order2".into(), &"p2".into(), 2)?;
    let out = d.output_topic("out", Serdes::string(), Serdes::string());
    assert_eq!(out.read_key_values(&mut d)?, vec![kv("order1", "p1=lamp")]);
    Ok(())
}

#[test]
fn deserialization_errors_follow_the_handler() -> R {
    let build = || {
        let builder = StreamsBuilder::new();
        builder
            .stream("in", Consumed::with(Serdes::string(), Serdes::i64()))
            .to("out", Produced::with(Serdes::string(), Serdes::i64()));
        builder.build().unwrap()
    };
    let good = Some(Bytes::copy_from_slice(&5i64.to_be_bytes()));
    let bad = Some(Bytes::from_static(b"abc"));
    let key = || Some(Bytes::from_static(b"k"));

    let mut d = TopologyTestDriver::new(build(), "app")?;
    let err = d.pipe_raw("in", key(), bad.clone(), 0).unwrap_err();
    assert!(
        matches!(err, crate::Error::Deserialization { ref topic, .. } if topic == "in"),
        "{err}"
    );

    let mut d =
        TopologyTestDriver::with_handler(build(), "app", DeserializationHandler::LogAndContinue)?;
    d.pipe_raw("in", key(), bad.clone(), 0)?;
    d.pipe_raw("in", key(), good.clone(), 1)?;
    assert_eq!(d.read_raw("out").len(), 1);
    assert_eq!(d.metrics().records_skipped, 1);

    let mut d = TopologyTestDriver::with_handler(
        build(),
        "app",
        DeserializationHandler::DeadLetter("dlq".into()),
    )?;
    d.pipe_raw("in", key(), bad.clone(), 7)?;
    let dlq = d.read_raw("dlq");
    assert_eq!(dlq.len(), 1);
    assert_eq!(dlq[0].value, bad);
    assert_eq!(dlq[0].timestamp, 7);
    assert!(d.read_raw("out").is_empty());
    Ok(())
}

#[test]
fn timestamp_extractor_sets_event_time() -> R {
    let builder = StreamsBuilder::new();
    builder
        .stream(
            "in",
            Consumed::with(Serdes::string(), Serdes::i64()).with_timestamp_extractor(|_, v, _| *v),
        )
        .to("out", Produced::with(Serdes::string(), Serdes::i64()));
    let mut d = driver(&builder);
    let i = d.input_topic("in", Serdes::string(), Serdes::i64());
    i.pipe(&mut d, &"k".into(), &1234, 1)?;
    let o = d.output_topic("out", Serdes::string(), Serdes::i64());
    assert_eq!(o.read_records(&mut d)?[0].timestamp, 1234);
    Ok(())
}

/// A processor-API processor: sums values per key in a store and emits all sums on
/// stream-time punctuation every 10 ms, and a heartbeat on wall-clock punctuation.
struct Summer {
    store: Option<Rc<RefCell<crate::store::StateStore>>>,
    down: Downstream<String, i64>,
}

impl Lifecycle for Summer {
    fn init(&mut self, ctx: &mut ProcessorContext) -> crate::Result<()> {
        self.store = Some(ctx.store("sums", StoreKind::KeyValue)?);
        ctx.schedule(10, PunctuationType::StreamTime)?;
        ctx.schedule(1000, PunctuationType::WallClockTime)
    }

    fn punctuate(
        &mut self,
        ctx: &mut ProcessorContext,
        kind: PunctuationType,
        time: i64,
    ) -> crate::Result<()> {
        if kind == PunctuationType::WallClockTime {
            return self
                .down
                .forward(ctx, Record::new("tick".into(), time, time));
        }
        let Some(store) = self.store.clone() else {
            return Ok(());
        };
        let all = store.borrow().all()?;
        for (k, v) in all {
            let key = String::from_utf8_lossy(&k).into_owned();
            let sum = i64::from_be_bytes(v[..8].try_into().unwrap());
            self.down.forward(ctx, Record::new(key, sum, time))?;
        }
        Ok(())
    }
}

impl Processor<String, i64> for Summer {
    fn process(
        &mut self,
        _ctx: &mut ProcessorContext,
        record: Record<String, i64>,
    ) -> crate::Result<()> {
        let Some(store) = &self.store else {
            return Ok(());
        };
        let old = store
            .borrow()
            .get(record.key.as_bytes())?
            .map_or(0, |b| i64::from_be_bytes(b[..8].try_into().unwrap()));
        store
            .borrow_mut()
            .put(record.key.as_bytes(), &(old + record.value).to_be_bytes())
    }
}

#[test]
fn processor_api_punctuates_on_stream_time_and_wall_clock() -> R {
    let builder = StreamsBuilder::new();
    builder
        .stream("in", Consumed::with(Serdes::string(), Serdes::i64()))
        .process(|down| Summer { store: None, down }, &["sums"])
        .to("out", Produced::with(Serdes::string(), Serdes::i64()));
    let mut d = driver(&builder);
    let i = d.input_topic("in", Serdes::string(), Serdes::i64());
    let o = d.output_topic("out", Serdes::string(), Serdes::i64());
    // The first record fires the stream-time punctuation (after processing it), then every 10 ms.
    i.pipe(&mut d, &"a".into(), &1, 100)?;
    assert_eq!(
        o.read_records(&mut d)?,
        vec![Record::new("a".to_string(), 1, 100)]
    );
    i.pipe(&mut d, &"a".into(), &2, 105)?;
    i.pipe(&mut d, &"b".into(), &5, 109)?;
    assert_eq!(o.read_records(&mut d)?, vec![]);
    i.pipe(&mut d, &"b".into(), &1, 100)?; // out of order: stream time stays 109
    assert_eq!(o.read_records(&mut d)?, vec![]);
    i.pipe(&mut d, &"a".into(), &1, 125)?; // passes 110 (and 120): one punctuation at 125
    assert_eq!(
        o.read_records(&mut d)?,
        vec![
            Record::new("a".to_string(), 4, 125),
            Record::new("b".to_string(), 6, 125)
        ]
    );
    d.advance_wall_clock(999)?;
    assert_eq!(o.read_records(&mut d)?, vec![]);
    d.advance_wall_clock(1)?;
    assert_eq!(
        o.read_records(&mut d)?,
        vec![Record::new("tick".to_string(), 1000, 1000)]
    );
    Ok(())
}

#[test]
fn windowed_serde_round_trips_like_kafkas() -> R {
    let serde = WindowedSerde::time(Serdes::string(), 60_000);
    let w = Windowed {
        key: "k".to_string(),
        window: Window {
            start: 120_000,
            end: 180_000,
        },
    };
    let bytes = serde.serialize(&w).unwrap().unwrap();
    assert_eq!(&bytes[..1], b"k");
    assert_eq!(&bytes[1..], &120_000i64.to_be_bytes());
    assert_eq!(serde.deserialize(Some(&bytes)).unwrap(), w);
    Ok(())
}

#[test]
fn sliding_windows_follow_kafkas_example() -> R {
    // SlidingWindows' Javadoc: difference 5000, records at 8000, 9200, 12400 give the windows
    // [3000,8000] {1}, [4200,9200] {1,2}, [7400,12400] {1,2,3}, [8001,13001] {2,3},
    // [9201,14201] {3}.
    let builder = StreamsBuilder::new();
    builder
        .stream("in", Consumed::with(Serdes::string(), Serdes::i64()))
        .group_by_key(Grouped::with(Serdes::string(), Serdes::i64()))
        .windowed_by_sliding(crate::SlidingWindows::of_time_difference_and_grace(
            5000, 100_000,
        )?)
        .aggregate(
            Vec::new,
            |_, v, mut agg: Vec<i64>| {
                agg.push(*v);
                agg
            },
            Serdes::json::<Vec<i64>>(),
            Materialized::as_store("sliding"),
        )
        .to_stream()
        .to(
            "out",
            Produced::with(
                WindowedSerde::time(Serdes::string(), 5000),
                Serdes::nullable(Serdes::json::<Vec<i64>>()),
            ),
        );
    let mut d = driver(&builder);
    let i = d.input_topic("in", Serdes::string(), Serdes::i64());
    for (v, t) in [(1, 8000), (2, 9200), (3, 12400)] {
        i.pipe(&mut d, &"A".into(), &v, t)?;
    }
    let o = d.output_topic(
        "out",
        WindowedSerde::time(Serdes::string(), 5000),
        Serdes::nullable(Serdes::json::<Vec<i64>>()),
    );
    let mut last = std::collections::BTreeMap::new();
    for (w, v) in o.read_key_values(&mut d)? {
        last.insert((w.window.start, w.window.end), v.unwrap_or_default());
    }
    let expected: std::collections::BTreeMap<(i64, i64), Vec<i64>> = [
        ((3000, 8000), vec![1]),
        ((4200, 9200), vec![1, 2]),
        ((7400, 12400), vec![1, 2, 3]),
        ((8001, 13001), vec![2, 3]),
        ((9201, 14201), vec![3]),
    ]
    .into();
    assert_eq!(last, expected);
    Ok(())
}

#[test]
fn sliding_windows_drop_records_whose_windows_closed() -> R {
    let builder = StreamsBuilder::new();
    builder
        .stream("in", Consumed::with(Serdes::string(), Serdes::i64()))
        .group_by_key(Grouped::with(Serdes::string(), Serdes::i64()))
        .windowed_by_sliding(crate::SlidingWindows::of_time_difference_and_grace(10, 0)?)
        .emit_strategy(EmitStrategy::OnWindowClose)
        .count(Materialized::as_store("sliding"))
        .to_stream()
        .to(
            "out",
            Produced::with(
                WindowedSerde::time(Serdes::string(), 10),
                Serdes::nullable(Serdes::i64()),
            ),
        );
    let mut d = driver(&builder);
    let i = d.input_topic("in", Serdes::string(), Serdes::i64());
    i.pipe(&mut d, &"A".into(), &1, 100)?;
    i.pipe(&mut d, &"A".into(), &1, 105)?;
    i.pipe(&mut d, &"B".into(), &1, 200)?; // closes A's windows
    i.pipe(&mut d, &"A".into(), &1, 150)?; // 150 + 10 < 200: late
    let o = d.output_topic(
        "out",
        WindowedSerde::time(Serdes::string(), 10),
        Serdes::nullable(Serdes::i64()),
    );
    let got: Vec<(String, i64, Option<i64>)> = o
        .read_key_values(&mut d)?
        .into_iter()
        .map(|(w, n)| (w.key, w.window.start, n))
        .collect();
    // [90,100] {100}, [95,105] {100,105}, [101,111] {105}.
    assert_eq!(
        got,
        vec![
            ("A".into(), 90, Some(1)),
            ("A".into(), 95, Some(2)),
            ("A".into(), 101, Some(1))
        ]
    );
    assert_eq!(d.metrics().late_records_dropped, 1);
    Ok(())
}
