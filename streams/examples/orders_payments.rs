//! Orders joined with their payments when the payment comes within 10 minutes of the order
//! (a windowed stream-stream join); JSON values through serde.
//!
//! `cargo run -p fjord-streams --example orders_payments -- 127.0.0.1:9092`

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Result, bail};
use bytes::Bytes;
use fjord_client::{Admin, Producer, ProducerConfig, ProducerRecord};
use fjord_streams::{
    Consumed, JoinWindows, Joined, KafkaStreams, Produced, Serdes, StreamsBuilder, StreamsConfig,
};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Order {
    pub item: String,
    pub amount: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Payment {
    pub method: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PaidOrder {
    pub item: String,
    pub amount: u64,
    pub method: String,
}

const MINUTE: i64 = 60_000;

/// Runs the join over sample orders and payments; returns order id -> paid order.
pub async fn run(bootstrap: &str, state_dir: &Path) -> Result<BTreeMap<String, PaidOrder>> {
    let admin = Admin::connect(bootstrap).await?;
    for topic in ["orders", "payments", "paid-orders"] {
        let _ = admin.create_topic(topic, 2, -1, &BTreeMap::new()).await;
    }
    let results = Arc::new(Mutex::new(BTreeMap::new()));
    let sink = results.clone();

    let builder = StreamsBuilder::new();
    let orders = builder.stream(
        "orders",
        Consumed::with(Serdes::string(), Serdes::json::<Order>()),
    );
    let payments = builder.stream(
        "payments",
        Consumed::with(Serdes::string(), Serdes::json::<Payment>()),
    );
    let paid = orders.join(
        &payments,
        |o: &Order, p: &Payment| PaidOrder {
            item: o.item.clone(),
            amount: o.amount,
            method: p.method.clone(),
        },
        // A payment up to 10 minutes after its order (none before it).
        JoinWindows::of_time_difference_and_grace(10 * MINUTE, MINUTE)?.before(0),
        Joined::with(
            Serdes::string(),
            Serdes::json::<Order>(),
            Serdes::json::<Payment>(),
        ),
    );
    paid.foreach(move |id, p| {
        sink.lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(id.clone(), p.clone());
    });
    paid.to(
        "paid-orders",
        Produced::with(Serdes::string(), Serdes::json::<PaidOrder>()),
    );

    let config = StreamsConfig::new("orders-payments-example", bootstrap)
        .with_state_dir(state_dir)
        .with_commit_interval(Duration::from_millis(500));
    let mut streams = KafkaStreams::new(builder.build()?, config)?;
    streams.start().await?;

    let producer = Producer::new(ProducerConfig::new(bootstrap))?;
    let json = |v: serde_json::Value| Bytes::from(v.to_string());
    let records = [
        (
            "orders",
            "o1",
            json(serde_json::json!({"item": "lamp", "amount": 30})),
            0,
        ),
        (
            "orders",
            "o2",
            json(serde_json::json!({"item": "desk", "amount": 250})),
            MINUTE,
        ),
        // o1 paid after 5 minutes: joined. o2 paid after 11 minutes: too late.
        (
            "payments",
            "o1",
            json(serde_json::json!({"method": "card"})),
            5 * MINUTE,
        ),
        (
            "payments",
            "o2",
            json(serde_json::json!({"method": "cash"})),
            12 * MINUTE,
        ),
    ];
    for (topic, key, value, ts) in records {
        producer
            .send(
                ProducerRecord::new(topic, value)
                    .with_key(key)
                    .with_timestamp(ts),
            )
            .await?
            .await?;
    }
    for _ in 0..100 {
        if !results.lock().unwrap_or_else(|e| e.into_inner()).is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Give a wrong o2 result the time to show up before answering.
    tokio::time::sleep(Duration::from_millis(500)).await;
    streams.close().await?;
    let got = results.lock().unwrap_or_else(|e| e.into_inner()).clone();
    if got.is_empty() {
        bail!("no order was joined");
    }
    Ok(got)
}

#[tokio::main]
#[allow(dead_code)]
async fn main() -> Result<()> {
    let bootstrap = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:9092".into());
    let dir = std::env::temp_dir().join(format!("fjord-orders-payments-{}", std::process::id()));
    for (id, paid) in run(&bootstrap, &dir).await? {
        println!("{id}\t{paid:?}");
    }
    Ok(())
}
