//! A click stream enriched with a user table (stream-table left join): each click gets the
//! user's current name, or "unknown".
//!
//! `cargo run -p fjord-streams --example click_enrichment -- 127.0.0.1:9092`

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Result, bail};
use bytes::Bytes;
use fjord_client::{Admin, Producer, ProducerConfig, ProducerRecord};
use fjord_streams::{
    Consumed, Joined, KafkaStreams, Materialized, Produced, Serdes, StreamsBuilder, StreamsConfig,
};

/// Runs the enrichment over sample users and clicks; returns the enriched clicks in order.
pub async fn run(bootstrap: &str, state_dir: &Path) -> Result<Vec<(String, String)>> {
    let admin = Admin::connect(bootstrap).await?;
    for topic in ["users", "clicks", "enriched-clicks"] {
        let _ = admin.create_topic(topic, 1, -1, &BTreeMap::new()).await;
    }
    let results = Arc::new(Mutex::new(Vec::new()));
    let sink = results.clone();

    let builder = StreamsBuilder::new();
    let users = builder.table(
        "users",
        Consumed::with(Serdes::string(), Serdes::string()),
        Materialized::as_store("users"),
    );
    let enriched = builder
        .stream("clicks", Consumed::with(Serdes::string(), Serdes::string()))
        .left_join_table(
            &users,
            |page, name| format!("{} clicked {page}", name.map_or("unknown", String::as_str)),
            Joined::with(Serdes::string(), Serdes::string(), Serdes::string()),
        );
    enriched.foreach(move |user, text| {
        sink.lock()
            .unwrap_or_else(|e| e.into_inner())
            .push((user.clone(), text.clone()));
    });
    enriched.to(
        "enriched-clicks",
        Produced::with(Serdes::string(), Serdes::string()),
    );

    let config = StreamsConfig::new("click-enrichment-example", bootstrap)
        .with_state_dir(state_dir)
        .with_commit_interval(Duration::from_millis(500));
    let mut streams = KafkaStreams::new(builder.build()?, config)?;
    streams.start().await?;

    let producer = Producer::new(ProducerConfig::new(bootstrap))?;
    let records = [
        ("users", "u1", "Alice", 0),
        ("clicks", "u1", "/home", 1),
        ("clicks", "u2", "/home", 2),
        ("users", "u2", "Bob", 3),
        ("clicks", "u2", "/cart", 4),
    ];
    // One partition and one task: records are processed in the order they are written.
    for (topic, key, value, ts) in records {
        producer
            .send(
                ProducerRecord::new(topic, Bytes::from(value))
                    .with_key(key)
                    .with_timestamp(ts),
            )
            .await?
            .await?;
        tokio::time::sleep(Duration::from_millis(300)).await;
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
        "clicks missing: {:?}",
        results.lock().unwrap_or_else(|e| e.into_inner())
    )
}

#[tokio::main]
#[allow(dead_code)]
async fn main() -> Result<()> {
    let bootstrap = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:9092".into());
    let dir = std::env::temp_dir().join(format!("fjord-click-enrichment-{}", std::process::id()));
    for (user, text) in run(&bootstrap, &dir).await? {
        println!("{user}\t{text}");
    }
    Ok(())
}
