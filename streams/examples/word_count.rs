//! Word count: lines in, a running count per word out (`word-count-output`), with the counts
//! readable through an interactive query while the job runs.
//!
//! `cargo run -p fjord-streams --example word_count -- 127.0.0.1:9092` (a broker must be
//! running, e.g. `fjord dev`).

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use anyhow::{Result, bail};
use bytes::Bytes;
use fjord_client::{Admin, Producer, ProducerConfig, ProducerRecord};
use fjord_streams::{
    Consumed, Grouped, KafkaStreams, Materialized, Produced, Serdes, StreamsBuilder, StreamsConfig,
};

/// Runs the job over a few sample lines and returns the final counts.
pub async fn run(bootstrap: &str, state_dir: &Path) -> Result<BTreeMap<String, i64>> {
    let admin = Admin::connect(bootstrap).await?;
    for topic in ["word-count-input", "word-count-output"] {
        // An existing topic is fine.
        let _ = admin.create_topic(topic, 2, -1, &BTreeMap::new()).await;
    }

    let builder = StreamsBuilder::new();
    builder
        .stream(
            "word-count-input",
            Consumed::with(Serdes::nullable(Serdes::string()), Serdes::string()),
        )
        .flat_map_values(|_, line: String| {
            line.split_whitespace()
                .map(str::to_lowercase)
                .collect::<Vec<_>>()
        })
        .group_by(
            |_, word| word.clone(),
            Grouped::with(Serdes::string(), Serdes::string()),
        )
        .count(Materialized::as_store("word-counts"))
        .to_stream()
        .to(
            "word-count-output",
            Produced::with(Serdes::string(), Serdes::nullable(Serdes::i64())),
        );

    let config = StreamsConfig::new("word-count-example", bootstrap)
        .with_state_dir(state_dir)
        .with_commit_interval(Duration::from_millis(500));
    let mut streams = KafkaStreams::new(builder.build()?, config)?;
    streams.start().await?;

    let producer = Producer::new(ProducerConfig::new(bootstrap))?;
    let lines = [
        "the quick brown fox",
        "jumps over the lazy dog",
        "The dog sleeps",
    ];
    for line in lines {
        producer
            .send(ProducerRecord::new("word-count-input", Bytes::from(line)))
            .await?
            .await?;
    }

    let store = streams.key_value_store("word-counts", Serdes::string(), Serdes::i64());
    for _ in 0..300 {
        let counts: BTreeMap<String, i64> = store.all()?.into_iter().collect();
        if counts.values().sum::<i64>() == 12 {
            streams.close().await?;
            return Ok(counts);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    bail!("the counts did not arrive: {:?}", store.all()?)
}

#[tokio::main]
#[allow(dead_code)]
async fn main() -> Result<()> {
    let bootstrap = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:9092".into());
    let dir = std::env::temp_dir().join(format!("fjord-word-count-{}", std::process::id()));
    for (word, count) in run(&bootstrap, &dir).await? {
        println!("{word}\t{count}");
    }
    Ok(())
}
