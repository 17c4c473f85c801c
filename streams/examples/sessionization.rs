//! Sessionization: each user's clicks grouped into sessions that end after 5 minutes of
//! inactivity; one result per session (clicks, first and last time) when it closes.
//!
//! `cargo run -p fjord-streams --example sessionization -- 127.0.0.1:9092`

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Result, bail};
use bytes::Bytes;
use fjord_client::{Admin, Producer, ProducerConfig, ProducerRecord};
use fjord_streams::{
    Consumed, EmitStrategy, Grouped, KafkaStreams, Materialized, Produced, Serdes, SessionWindows,
    StreamsBuilder, StreamsConfig, WindowedSerde,
};

const MINUTE: i64 = 60_000;

/// Runs the job over sample clicks; returns `(user, start, end) -> clicks` per closed session.
pub async fn run(bootstrap: &str, state_dir: &Path) -> Result<BTreeMap<(String, i64, i64), i64>> {
    let admin = Admin::connect(bootstrap).await?;
    for topic in ["user-clicks", "user-sessions"] {
        let _ = admin.create_topic(topic, 1, -1, &BTreeMap::new()).await;
    }
    let results = Arc::new(Mutex::new(BTreeMap::new()));
    let sink = results.clone();

    let builder = StreamsBuilder::new();
    let sessions = builder
        .stream(
            "user-clicks",
            Consumed::with(Serdes::string(), Serdes::string()),
        )
        .group_by_key(Grouped::with(Serdes::string(), Serdes::string()))
        .windowed_by_session(SessionWindows::of_inactivity_gap_and_grace(5 * MINUTE, 0)?)
        .emit_strategy(EmitStrategy::OnWindowClose)
        .count(Materialized::as_store("sessions"))
        .to_stream();
    sessions.foreach(move |w, n| {
        if let Some(n) = n {
            sink.lock()
                .unwrap_or_else(|e| e.into_inner())
                .insert((w.key.clone(), w.window.start, w.window.end), *n);
        }
    });
    sessions.to(
        "user-sessions",
        Produced::with(
            WindowedSerde::session(Serdes::string()),
            Serdes::nullable(Serdes::i64()),
        ),
    );

    let config = StreamsConfig::new("sessionization-example", bootstrap)
        .with_state_dir(state_dir)
        .with_commit_interval(Duration::from_millis(500));
    let mut streams = KafkaStreams::new(builder.build()?, config)?;
    streams.start().await?;

    let producer = Producer::new(ProducerConfig::new(bootstrap))?;
    // alice: clicks at 0, 2 and 4 min (one session), then at 20 min (another).
    // bob: one click at 3 min. A click at 60 min closes everything before it.
    let clicks = [
        ("alice", 0),
        ("alice", 2),
        ("bob", 3),
        ("alice", 4),
        ("alice", 20),
        ("zed", 60),
    ];
    for (user, minute) in clicks {
        producer
            .send(
                ProducerRecord::new("user-clicks", Bytes::from_static(b"click"))
                    .with_key(user)
                    .with_timestamp(minute * MINUTE),
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
        "sessions missing: {:?}",
        results.lock().unwrap_or_else(|e| e.into_inner())
    )
}

#[tokio::main]
#[allow(dead_code)]
async fn main() -> Result<()> {
    let bootstrap = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:9092".into());
    let dir = std::env::temp_dir().join(format!("fjord-sessionization-{}", std::process::id()));
    for ((user, start, end), clicks) in run(&bootstrap, &dir).await? {
        println!("{user}\t{start}..{end}\t{clicks} clicks");
    }
    Ok(())
}
