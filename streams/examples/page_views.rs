//! Page views per user in 1-minute tumbling windows, final counts only (emitted when a window
//! closes), to `page-views-per-minute`.
//!
//! `cargo run -p fjord-streams --example page_views -- 127.0.0.1:9092`

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Result, bail};
use bytes::Bytes;
use fjord_client::{Admin, Producer, ProducerConfig, ProducerRecord};
use fjord_streams::{
    Consumed, EmitStrategy, Grouped, KafkaStreams, Materialized, Produced, Serdes, StreamsBuilder,
    StreamsConfig, TimeWindows, WindowedSerde,
};

const MINUTE: i64 = 60_000;

/// Runs the job over sample views; returns `(user, window start) -> views`.
pub async fn run(bootstrap: &str, state_dir: &Path) -> Result<BTreeMap<(String, i64), i64>> {
    let admin = Admin::connect(bootstrap).await?;
    for topic in ["page-views", "page-views-per-minute"] {
        let _ = admin.create_topic(topic, 1, -1, &BTreeMap::new()).await;
    }
    let results = Arc::new(Mutex::new(BTreeMap::new()));
    let sink = results.clone();

    let builder = StreamsBuilder::new();
    let counts = builder
        .stream(
            "page-views",
            Consumed::with(Serdes::string(), Serdes::string()),
        )
        .group_by_key(Grouped::with(Serdes::string(), Serdes::string()))
        .windowed_by(TimeWindows::of_size_and_grace(MINUTE, 5_000)?)
        .emit_strategy(EmitStrategy::OnWindowClose)
        .count(Materialized::as_store("views-per-minute"))?
        .to_stream();
    counts.foreach(move |w, n| {
        if let Some(n) = n {
            sink.lock()
                .unwrap_or_else(|e| e.into_inner())
                .insert((w.key.clone(), w.window.start), *n);
        }
    });
    counts.to(
        "page-views-per-minute",
        Produced::with(
            WindowedSerde::time(Serdes::string(), MINUTE),
            Serdes::nullable(Serdes::i64()),
        ),
    );

    let config = StreamsConfig::new("page-views-example", bootstrap)
        .with_state_dir(state_dir)
        .with_commit_interval(Duration::from_millis(500));
    let mut streams = KafkaStreams::new(builder.build()?, config)?;
    streams.start().await?;

    let producer = Producer::new(ProducerConfig::new(bootstrap))?;
    // (user, page, seconds): alice twice and bob once in minute 0, alice once in minute 1; a
    // view at 3:00 closes both windows (end + 5 s grace).
    let views = [
        ("alice", "/", 1),
        ("bob", "/cart", 20),
        ("alice", "/cart", 59),
        ("alice", "/", 61),
        ("carol", "/", 180),
    ];
    for (user, page, secs) in views {
        producer
            .send(
                ProducerRecord::new("page-views", Bytes::from(page))
                    .with_key(user)
                    .with_timestamp(secs * 1000),
            )
            .await?
            .await?;
    }
    for _ in 0..300 {
        let got = results.lock().unwrap_or_else(|e| e.into_inner()).clone();
        if got.len() == 3 {
            streams.close().await?;
            return Ok(got);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    bail!(
        "windows did not close: {:?}",
        results.lock().unwrap_or_else(|e| e.into_inner())
    )
}

#[tokio::main]
#[allow(dead_code)]
async fn main() -> Result<()> {
    let bootstrap = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:9092".into());
    let dir = std::env::temp_dir().join(format!("fjord-page-views-{}", std::process::id()));
    for ((user, start), views) in run(&bootstrap, &dir).await? {
        println!("{user}\tminute starting {start}\t{views} views");
    }
    Ok(())
}
