//! Joins through the test driver: stream-stream windows, table-table and foreign-key joins, and
//! each join type's null semantics.

use bytes::Bytes;

use super::tests::{R, driver, out_ss, ss};
use crate::test_driver::TopologyTestDriver;
use crate::{JoinWindows, Joined, Materialized, Produced, Serdes, StreamsBuilder, TimeWindows};

#[test]
fn join_windows_validate() {
    assert!(JoinWindows::of_time_difference_and_grace(-1, 0).is_err());
    let w = JoinWindows::of_time_difference_with_no_grace(10)
        .unwrap()
        .after(3);
    assert_eq!((w.before, w.after, w.grace), (10, 3, 0));
    assert!(
        TimeWindows::of_size_and_grace(10, 0)
            .unwrap()
            .advance_by(11)
            .is_err()
    );
}

fn stream_join_topology(kind: &str, windows: JoinWindows) -> StreamsBuilder {
    let builder = StreamsBuilder::new();
    let left = builder.stream("left", ss());
    let right = builder.stream("right", ss());
    let joined = Joined::with(Serdes::string(), Serdes::string(), Serdes::string());
    let show = |v: Option<&String>| v.map_or("null".to_string(), Clone::clone);
    let out = match kind {
        "inner" => left.join(&right, |a, b| format!("{a}+{b}"), windows, joined),
        "left" => left.left_join(
            &right,
            move |a, b| format!("{a}+{}", show(b)),
            windows,
            joined,
        ),
        _ => left.outer_join(
            &right,
            move |a, b| format!("{}+{}", show(a), show(b)),
            windows,
            joined,
        ),
    };
    out.to("joined", out_ss());
    builder
}

fn joined_records(d: &mut TopologyTestDriver) -> Vec<(String, String, i64)> {
    d.output_topic("joined", Serdes::string(), Serdes::string())
        .read_records(d)
        .unwrap()
        .into_iter()
        .map(|r| (r.key, r.value, r.timestamp))
        .collect()
}

#[test]
fn stream_stream_inner_join_pairs_records_within_the_window() -> R {
    let mut d = driver(&stream_join_topology(
        "inner",
        JoinWindows::of_time_difference_and_grace(10, 100)?,
    ));
    let l = d.input_topic("left", Serdes::string(), Serdes::string());
    let r = d.input_topic("right", Serdes::string(), Serdes::string());
    let k = "k".to_string();
    l.pipe(&mut d, &k, &"a".into(), 0)?;
    r.pipe(&mut d, &k, &"x".into(), 5)?;
    r.pipe(&mut d, &k, &"y".into(), 20)?; // 20 > 0 + 10: no pair with a
    r.pipe(&mut d, &"other".into(), &"z".into(), 6)?; // other key
    l.pipe(&mut d, &k, &"b".into(), 15)?; // pairs with x (15 - 10 = 5) and y
    assert_eq!(
        joined_records(&mut d),
        vec![
            ("k".into(), "a+x".into(), 5),
            ("k".into(), "b+x".into(), 15),
            ("k".into(), "b+y".into(), 20),
        ]
    );
    Ok(())
}

#[test]
fn stream_stream_left_join_emits_unmatched_records_when_their_window_closes() -> R {
    let mut d = driver(&stream_join_topology(
        "left",
        JoinWindows::of_time_difference_and_grace(10, 0)?,
    ));
    let l = d.input_topic("left", Serdes::string(), Serdes::string());
    let r = d.input_topic("right", Serdes::string(), Serdes::string());
    let k = "k".to_string();
    l.pipe(&mut d, &k, &"a".into(), 0)?;
    l.pipe(&mut d, &k, &"b".into(), 3)?;
    r.pipe(&mut d, &k, &"x".into(), 12)?; // joins b (12 - 3 <= 10), not a; stream time 12 > 0 + 10
    assert_eq!(
        joined_records(&mut d),
        vec![
            ("k".into(), "b+x".into(), 12),
            ("k".into(), "a+null".into(), 0)
        ]
    );
    r.pipe(&mut d, &k, &"late".into(), 1)?; // 1 + 10 + 0 < 12: dropped
    l.pipe(&mut d, &k, &"c".into(), 30)?; // b's window closed long ago but b was matched
    assert_eq!(joined_records(&mut d), vec![]);
    r.pipe(&mut d, &"z".into(), &"q".into(), 41)?; // closes c's window: c+null
    assert_eq!(
        joined_records(&mut d),
        vec![("k".into(), "c+null".into(), 30)]
    );
    assert_eq!(d.metrics().late_records_dropped, 1);
    Ok(())
}

#[test]
fn stream_stream_outer_join_emits_unmatched_records_of_both_sides() -> R {
    let mut d = driver(&stream_join_topology(
        "outer",
        JoinWindows::of_time_difference_and_grace(5, 0)?,
    ));
    let l = d.input_topic("left", Serdes::string(), Serdes::string());
    let r = d.input_topic("right", Serdes::string(), Serdes::string());
    r.pipe(&mut d, &"k".into(), &"x".into(), 0)?;
    l.pipe(&mut d, &"j".into(), &"a".into(), 1)?;
    l.pipe(&mut d, &"k".into(), &"b".into(), 4)?; // joins x
    assert_eq!(joined_records(&mut d), vec![("k".into(), "b+x".into(), 4)]);
    l.pipe(&mut d, &"m".into(), &"c".into(), 20)?; // closes a's window (1 + 5 < 20)
    assert_eq!(
        joined_records(&mut d),
        vec![("j".into(), "a+null".into(), 1)]
    );
    r.pipe(&mut d, &"n".into(), &"y".into(), 21)?;
    r.pipe(&mut d, &"n".into(), &"w".into(), 40)?; // closes c and y
    assert_eq!(
        joined_records(&mut d),
        vec![
            ("m".into(), "c+null".into(), 20),
            ("n".into(), "null+y".into(), 21)
        ]
    );
    Ok(())
}
#[test]
fn foreign_key_join_follows_both_tables() -> R {
    // orders (order -> product id), products (product -> name).
    let builder = StreamsBuilder::new();
    let orders = builder.table("orders", ss(), Materialized::as_store("orders"));
    let products = builder.table("products", ss(), Materialized::as_store("products"));
    let opt = Serdes::nullable(Serdes::string());
    orders
        .join_foreign_key(
            &products,
            |product: &String| product.clone(),
            |p, name| format!("{p}:{name}"),
            Serdes::string(),
            Materialized::as_store("inner"),
        )
        .to_stream()
        .to("inner", Produced::with(Serdes::string(), opt.clone()));
    orders
        .left_join_foreign_key(
            &products,
            |product: &String| product.clone(),
            |p, name| format!("{p}:{}", name.map_or("?", String::as_str)),
            Serdes::string(),
            Materialized::as_store("left"),
        )
        .to_stream()
        .to("left", Produced::with(Serdes::string(), opt.clone()));
    let mut d = driver(&builder);
    let o = d.input_topic("orders", Serdes::string(), Serdes::string());
    let p = d.input_topic("products", Serdes::string(), Serdes::string());
    let read = |d: &mut TopologyTestDriver, t: &str| {
        d.output_topic(t, Serdes::string(), opt.clone())
            .read_key_values(d)
            .unwrap()
    };
    let s = |k: &str, v: Option<&str>| (k.to_string(), v.map(String::from));
    o.pipe(&mut d, &"o1".into(), &"p1".into(), 1)?; // no product yet
    assert_eq!(read(&mut d, "inner"), vec![]);
    assert_eq!(read(&mut d, "left"), vec![s("o1", Some("p1:?"))]);
    p.pipe(&mut d, &"p1".into(), &"lamp".into(), 2)?;
    assert_eq!(read(&mut d, "inner"), vec![s("o1", Some("p1:lamp"))]);
    assert_eq!(read(&mut d, "left"), vec![s("o1", Some("p1:lamp"))]);
    p.pipe(&mut d, &"p2".into(), &"desk".into(), 3)?;
    o.pipe(&mut d, &"o1".into(), &"p2".into(), 4)?; // the order moves to another product
    assert_eq!(read(&mut d, "inner"), vec![s("o1", Some("p2:desk"))]);
    p.pipe(&mut d, &"p1".into(), &"LAMP".into(), 5)?; // o1 no longer subscribes to p1
    assert_eq!(read(&mut d, "inner"), vec![]);
    p.pipe(&mut d, &"p2".into(), &"DESK".into(), 6)?;
    assert_eq!(read(&mut d, "inner"), vec![s("o1", Some("p2:DESK"))]);
    d.pipe_raw("orders", Some(Bytes::from("o1")), None, 7)?; // order deleted
    assert_eq!(read(&mut d, "inner"), vec![s("o1", None)]);
    assert_eq!(read(&mut d, "left").last(), Some(&s("o1", None)));
    Ok(())
}

#[test]
fn table_table_joins_inner_left_outer_null_semantics() -> R {
    let builder = StreamsBuilder::new();
    let left = builder.table("l", ss(), Materialized::as_store("l"));
    let right = builder.table("r", ss(), Materialized::as_store("r"));
    let opt = Serdes::nullable(Serdes::string());
    left.join(
        &right,
        |a, b| format!("{a}+{b}"),
        Serdes::string(),
        Materialized::unnamed(),
    )
    .to_stream()
    .to("inner", Produced::with(Serdes::string(), opt.clone()));
    left.left_join(
        &right,
        |a, b| format!("{a}+{}", b.map_or("null", |b| b)),
        Serdes::string(),
        Materialized::unnamed(),
    )
    .to_stream()
    .to("left", Produced::with(Serdes::string(), opt.clone()));
    left.outer_join(
        &right,
        |a, b| format!("{}+{}", a.map_or("null", |a| a), b.map_or("null", |b| b)),
        Serdes::string(),
        Materialized::unnamed(),
    )
    .to_stream()
    .to("outer", Produced::with(Serdes::string(), opt.clone()));
    let mut d = driver(&builder);
    let l = d.input_topic("l", Serdes::string(), Serdes::string());
    let r = d.input_topic("r", Serdes::string(), Serdes::string());
    r.pipe(&mut d, &"k".into(), &"r1".into(), 1)?;
    l.pipe(&mut d, &"k".into(), &"l1".into(), 2)?;
    d.pipe_raw("r", Some(Bytes::from("k")), None, 3)?;
    d.pipe_raw("l", Some(Bytes::from("k")), None, 4)?;
    let read = |d: &mut TopologyTestDriver, t: &str| {
        d.output_topic(t, Serdes::string(), opt.clone())
            .read_key_values(d)
            .unwrap()
            .into_iter()
            .map(|(_, v)| v)
            .collect::<Vec<_>>()
    };
    let s = |x: &str| Some(x.to_string());
    assert_eq!(read(&mut d, "inner"), vec![s("l1+r1"), None]);
    assert_eq!(read(&mut d, "left"), vec![s("l1+r1"), s("l1+null"), None]);
    assert_eq!(
        read(&mut d, "outer"),
        vec![s("null+r1"), s("l1+r1"), s("l1+null"), None]
    );
    Ok(())
}
