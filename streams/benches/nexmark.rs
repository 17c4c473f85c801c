//! Nexmark on fjord-streams: a generator of the benchmark's people, auctions and bids, written
//! to a Fjord topic, and queries q0, q1, q2, q5, q7 and q8 on the DSL, each read from that
//! topic and written to its own output topic. Prints events/s per query.
//!
//! `cargo bench -p fjord-streams --bench nexmark -- [events] [threads]` (defaults 1,000,000
//! and 1). Runs a broker in-process on a loopback port unless `FJORD_BOOTSTRAP` names one.
//!
//! Events follow Nexmark's mix (per 50 events: 1 person, 3 auctions, 46 bids) and arrive
//! in event-time order, 10 per millisecond. Values use a compact binary encoding (below), so
//! the figures measure the streams runtime rather than a JSON parser.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Result, bail};
use bytes::{Buf, BufMut, Bytes, BytesMut};
use fjord_client::{Admin, Producer, ProducerConfig, ProducerRecord};
use fjord_streams::{
    Consumed, EmitStrategy, Grouped, JoinWindows, Joined, KafkaStreams, Materialized, Produced,
    Serde, SerdeError, SerdeRef, Serdes, StreamsBuilder, StreamsConfig, TimeWindows, WindowedSerde,
};

#[derive(Debug, Clone, PartialEq)]
enum Event {
    Person {
        id: u64,
        name: String,
        city: String,
    },
    Auction {
        id: u64,
        seller: u64,
        category: u64,
        initial_bid: u64,
    },
    Bid {
        auction: u64,
        bidder: u64,
        price: u64,
    },
}

struct EventSerde;

impl Serde<Event> for EventSerde {
    fn serialize(&self, e: &Event) -> Result<Option<Bytes>, SerdeError> {
        let mut b = BytesMut::with_capacity(33);
        match e {
            Event::Person { id, name, city } => {
                b.put_u8(0);
                b.put_u64(*id);
                b.put_u8(name.len() as u8);
                b.put_slice(name.as_bytes());
                b.put_u8(city.len() as u8);
                b.put_slice(city.as_bytes());
            }
            Event::Auction {
                id,
                seller,
                category,
                initial_bid,
            } => {
                b.put_u8(1);
                b.put_u64(*id);
                b.put_u64(*seller);
                b.put_u64(*category);
                b.put_u64(*initial_bid);
            }
            Event::Bid {
                auction,
                bidder,
                price,
            } => {
                b.put_u8(2);
                b.put_u64(*auction);
                b.put_u64(*bidder);
                b.put_u64(*price);
            }
        }
        Ok(Some(b.freeze()))
    }

    fn deserialize(&self, data: Option<&[u8]>) -> Result<Event, SerdeError> {
        let short = |len| SerdeError::Length {
            expected: "nexmark event",
            len,
            needs: 25,
        };
        let mut d = data.ok_or(SerdeError::Null {
            expected: "nexmark event",
        })?;
        let len = d.len();
        if len < 9 {
            return Err(short(len));
        }
        match d.get_u8() {
            0 => {
                let id = d.get_u64();
                let mut text = || -> Result<String, SerdeError> {
                    if d.is_empty() {
                        return Err(short(len));
                    }
                    let n = d.get_u8() as usize;
                    if d.len() < n {
                        return Err(short(len));
                    }
                    let s = std::str::from_utf8(&d[..n])
                        .map_err(SerdeError::Utf8)?
                        .to_string();
                    d.advance(n);
                    Ok(s)
                };
                let name = text()?;
                let city = text()?;
                Ok(Event::Person { id, name, city })
            }
            1 if len >= 33 => Ok(Event::Auction {
                id: d.get_u64(),
                seller: d.get_u64(),
                category: d.get_u64(),
                initial_bid: d.get_u64(),
            }),
            2 if len >= 25 => Ok(Event::Bid {
                auction: d.get_u64(),
                bidder: d.get_u64(),
                price: d.get_u64(),
            }),
            _ => Err(short(len)),
        }
    }
}

const BASE: i64 = 1_700_000_000_000;
const CITIES: [&str; 5] = ["Phoenix", "Portland", "Boise", "Seattle", "Redmond"];

/// Event `i` of the generator and its event time.
fn event(i: u64) -> (Event, i64) {
    let ts = BASE + (i / 10) as i64;
    let epoch = i / 50;
    let offset = i % 50;
    let mix = |x: u64| {
        let mut z = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z ^ (z >> 31)
    };
    let e = if offset == 0 {
        Event::Person {
            id: 1000 + epoch,
            name: format!("p{epoch}"),
            city: CITIES[(mix(i) % 5) as usize].to_string(),
        }
    } else if offset <= 3 {
        let id = 1000 + epoch * 3 + offset - 1;
        Event::Auction {
            id,
            seller: 1000 + mix(i) % (epoch + 1),
            category: 10 + mix(i + 1) % 5,
            initial_bid: 100 + mix(i + 2) % 1000,
        }
    } else {
        // Bids go to recent auctions, a few of them hot.
        let newest = 1000 + epoch * 3 + 2;
        let back = mix(i) % 100;
        Event::Bid {
            auction: newest.saturating_sub(if back < 60 { back % 10 } else { back }),
            bidder: 1000 + mix(i + 1) % (epoch + 1),
            price: 100 + mix(i + 2) % 10_000,
        }
    };
    (e, ts)
}

/// End offsets of source partitions.
type Ends = BTreeMap<(String, i32), Option<i64>>;

fn events() -> SerdeRef<Event> {
    Arc::new(EventSerde)
}

fn bids_of(builder: &StreamsBuilder) -> fjord_streams::KStream<(), (u64, u64, u64)> {
    builder
        .stream("nexmark-events", Consumed::with(Serdes::unit(), events()))
        .flat_map_values(|_, e| match e {
            Event::Bid {
                auction,
                bidder,
                price,
            } => Some((auction, bidder, price)),
            _ => None,
        })
}

/// `(auction, bidder, price)` as 24 bytes.
struct BidSerde;

impl Serde<(u64, u64, u64)> for BidSerde {
    fn serialize(&self, v: &(u64, u64, u64)) -> Result<Option<Bytes>, SerdeError> {
        let mut b = BytesMut::with_capacity(24);
        b.put_u64(v.0);
        b.put_u64(v.1);
        b.put_u64(v.2);
        Ok(Some(b.freeze()))
    }
    fn deserialize(&self, data: Option<&[u8]>) -> Result<(u64, u64, u64), SerdeError> {
        let mut d = data.ok_or(SerdeError::Null { expected: "bid" })?;
        if d.len() != 24 {
            return Err(SerdeError::Length {
                expected: "bid",
                len: d.len(),
                needs: 24,
            });
        }
        Ok((d.get_u64(), d.get_u64(), d.get_u64()))
    }
}

fn query(name: &str) -> Result<StreamsBuilder> {
    let builder = StreamsBuilder::new();
    let out = format!("nexmark-{name}-out");
    let bid_serde: SerdeRef<(u64, u64, u64)> = Arc::new(BidSerde);
    match name {
        // Pass-through.
        "q0" => builder
            .stream("nexmark-events", Consumed::with(Serdes::unit(), events()))
            .to(&out, Produced::with(Serdes::unit(), events())),
        // Currency conversion of bid prices.
        "q1" => bids_of(&builder)
            .map_values(|_, (a, b, p)| (a, b, p * 908 / 1000))
            .to(&out, Produced::with(Serdes::unit(), bid_serde)),
        // Bids of some auctions.
        "q2" => bids_of(&builder)
            .filter(|_, (a, _, _)| a % 123 == 0)
            .map_values(|_, (a, _, p)| (a as i64) << 32 | p as i64)
            .to(&out, Produced::with(Serdes::unit(), Serdes::i64())),
        // Hot items: bids per auction in 10 s windows every 2 s; the auction with the most
        // bids per window.
        "q5" => {
            let counts = bids_of(&builder)
                .select_key(|_, (a, _, _)| *a as i64)
                .group_by_key(
                    Grouped::with(Serdes::i64(), bid_serde.clone()).named("q5-by-auction"),
                )
                .windowed_by(TimeWindows::of_size_and_grace(10_000, 0)?.advance_by(2_000)?)
                .emit_strategy(EmitStrategy::OnWindowClose)
                .count(Materialized::as_store("q5-counts"))?;
            counts
                .to_stream()
                .flat_map(|w, n| n.map(|n| (w.window.start, (w.key << 32) | n)))
                .group_by_key(Grouped::with(Serdes::i64(), Serdes::i64()).named("q5-by-window"))
                .reduce(
                    |a, b| {
                        if (b & 0xffff_ffff) > (a & 0xffff_ffff) {
                            *b
                        } else {
                            *a
                        }
                    },
                    Materialized::as_store("q5-max"),
                )
                .to_stream()
                .to(
                    &out,
                    Produced::with(Serdes::i64(), Serdes::nullable(Serdes::i64())),
                );
        }
        // Highest bid per 10 s tumbling window.
        "q7" => bids_of(&builder)
            .select_key(|_, _| 0i64)
            .group_by_key(Grouped::with(Serdes::i64(), bid_serde.clone()).named("q7-all"))
            .windowed_by(TimeWindows::of_size_with_no_grace(10_000)?)
            .emit_strategy(EmitStrategy::OnWindowClose)
            .reduce(
                |a, b| if b.2 > a.2 { *b } else { *a },
                Materialized::as_store("q7-max"),
            )?
            .to_stream()
            .to(
                &out,
                Produced::with(
                    WindowedSerde::time(Serdes::i64(), 10_000),
                    Serdes::nullable(bid_serde),
                ),
            ),
        // New users: people who opened an auction within 10 s of registering.
        "q8" => {
            let all = builder.stream("nexmark-events", Consumed::with(Serdes::unit(), events()));
            let persons = all.flat_map(|_, e| match e {
                Event::Person { id, name, .. } => Some((id as i64, name)),
                _ => None,
            });
            let auctions = all.flat_map(|_, e| match e {
                Event::Auction { id, seller, .. } => Some((seller as i64, id as i64)),
                _ => None,
            });
            persons
                .join(
                    &auctions,
                    |name, auction| format!("{name}:{auction}"),
                    JoinWindows::of_time_difference_with_no_grace(10_000)?,
                    Joined::with(Serdes::i64(), Serdes::string(), Serdes::i64()).named("q8"),
                )
                .to(&out, Produced::with(Serdes::i64(), Serdes::string()));
        }
        other => bail!("unknown query {other}"),
    }
    Ok(builder)
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<()> {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect();
    let n: u64 = args
        .first()
        .and_then(|a| a.parse().ok())
        .unwrap_or(1_000_000);
    let threads: usize = args.get(1).and_then(|a| a.parse().ok()).unwrap_or(1);
    let queries: Vec<String> = match args.get(2) {
        Some(q) => q.split(',').map(str::to_string).collect(),
        None => ["q0", "q1", "q2", "q5", "q7", "q8"]
            .map(String::from)
            .to_vec(),
    };
    let dir = tempfile::tempdir()?;
    let (_broker, bootstrap) = match std::env::var("FJORD_BOOTSTRAP") {
        Ok(b) => (None, b),
        Err(_) => {
            let mut values = BTreeMap::new();
            values.insert(
                "listeners".to_string(),
                "PLAINTEXT://127.0.0.1:0".to_string(),
            );
            values.insert(
                "log.dirs".to_string(),
                dir.path().join("broker").display().to_string(),
            );
            values.insert(
                "group.initial.rebalance.delay.ms".to_string(),
                "0".to_string(),
            );
            let broker =
                fjord_broker::Broker::open(fjord_broker::BrokerConfig::from_values(values)?)?;
            let server = fjord_broker::Server::bind(broker).await?;
            let addr = server.local_addr().to_string();
            let shutdown = tokio_util::sync::CancellationToken::new();
            tokio::spawn(server.run(shutdown.clone()));
            (Some(shutdown.drop_guard()), addr)
        }
    };
    let admin = Admin::connect(&bootstrap).await?;
    let partitions = threads.max(1) as i32;
    admin
        .create_topic("nexmark-events", partitions, 1, &BTreeMap::new())
        .await?;
    for q in &queries {
        admin
            .create_topic(&format!("nexmark-{q}-out"), partitions, 1, &BTreeMap::new())
            .await?;
    }
    let started = Instant::now();
    let producer = Producer::new(
        ProducerConfig::new(bootstrap.clone())
            .with_linger(Duration::from_millis(5))
            .with_batch_size(1 << 20),
    )?;
    let serde = EventSerde;
    let mut pending = Vec::new();
    for i in 0..n {
        let (e, ts) = event(i);
        let value = serde.serialize(&e)?.unwrap_or_default();
        let record = ProducerRecord::new("nexmark-events", value)
            .with_partition((i % partitions as u64) as i32)
            .with_timestamp(ts);
        pending.push(producer.send(record).await?);
        if pending.len() >= 100_000 {
            for p in pending.drain(..) {
                p.await?;
            }
        }
    }
    for p in pending {
        p.await?;
    }
    println!(
        "generated {n} events into {partitions} partition(s) in {:?}",
        started.elapsed()
    );
    println!("| query | events | seconds | events/s |");
    println!("|---|---:|---:|---:|");
    for q in &queries {
        let builder = query(q)?;
        let config = StreamsConfig::new(&format!("nexmark-{q}"), &bootstrap)
            .with_state_dir(dir.path().join(q))
            .with_threads(threads)
            .with_commit_interval(Duration::from_secs(5));
        let mut streams = KafkaStreams::new(builder.build()?, config)?;
        let started = Instant::now();
        streams.start().await?;
        // Done when every source partition, repartition topics included, is processed to its
        // end (the end of a repartition topic is final once the input is all read and two
        // looks 200 ms apart agree).
        let mut input_done = false;
        let mut candidate: Option<(Duration, Ends)> = None;
        let elapsed = loop {
            if let fjord_streams::State::Error(e) = streams.state() {
                bail!("{q} failed: {e}");
            }
            if started.elapsed() > Duration::from_secs(600) {
                bail!("{q} did not finish: {:?}", streams.metrics());
            }
            let m = streams.metrics();
            if !input_done {
                let read: i64 = m
                    .positions
                    .iter()
                    .filter(|((t, _), _)| t == "nexmark-events")
                    .map(|(_, o)| *o)
                    .sum();
                input_done = read >= n as i64;
                tokio::time::sleep(Duration::from_millis(20)).await;
                continue;
            }
            let now = started.elapsed();
            let tps: Vec<_> = m.positions.keys().cloned().collect();
            let ends = admin
                .list_offsets(&tps, fjord_client::OffsetSpec::Latest)
                .await?;
            let caught_up = ends
                .iter()
                .all(|(tp, end)| m.positions.get(tp).copied().unwrap_or(0) >= end.unwrap_or(0));
            match &candidate {
                Some((at, seen)) if caught_up && *seen == ends => {
                    if now - *at >= Duration::from_millis(200) {
                        break at.as_secs_f64();
                    }
                }
                _ if caught_up => candidate = Some((now, ends)),
                _ => candidate = None,
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        println!("| {q} | {n} | {elapsed:.2} | {:.0} |", n as f64 / elapsed);
        streams.close().await?;
    }
    Ok(())
}
