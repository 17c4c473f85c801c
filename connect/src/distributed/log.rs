//! `KafkaBasedLog`: a topic read from the beginning by a background consumer (no group),
//! every record handed to a callback in order, with "read to the end" for callers that must
//! see everything written before they act (Kafka Connect's class of the same name).

use std::collections::BTreeMap;
use std::time::Duration;

use fjord_client::{Admin, Consumer, ConsumerConfig, ConsumerRecord, OffsetReset, OffsetSpec};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::error::{Error, Result};

/// Reads a topic into a callback for as long as the worker lives.
#[derive(Debug, Clone)]
pub(crate) struct KafkaBasedLog {
    topic: String,
    bootstrap: String,
    partitions: Vec<i32>,
    /// The next offset to read, per partition.
    positions: watch::Receiver<BTreeMap<i32, i64>>,
}

impl KafkaBasedLog {
    /// Starts reading every partition of `topic` from the beginning.
    pub(crate) async fn start(
        bootstrap: &str,
        topic: &str,
        mut apply: impl FnMut(&ConsumerRecord) + Send + 'static,
        cancel: CancellationToken,
    ) -> Result<Self> {
        let kafka = |context: String| move |source| Error::Kafka { context, source };
        let admin = Admin::connect(bootstrap)
            .await
            .map_err(kafka(format!("connecting to read {topic}")))?;
        let partitions = admin
            .partitions(topic)
            .await
            .map_err(kafka(format!("listing the partitions of {topic}")))?;
        let config =
            ConsumerConfig::new(bootstrap.to_string()).auto_offset_reset(OffsetReset::Earliest);
        let mut consumer = Consumer::new(config)
            .await
            .map_err(kafka(format!("starting the reader of {topic}")))?;
        consumer
            .assign(partitions.iter().map(|p| (topic.to_string(), *p)))
            .map_err(kafka(format!("assigning {topic}")))?;
        let (tx, rx) = watch::channel(partitions.iter().map(|p| (*p, 0)).collect());
        let name = topic.to_string();
        tokio::spawn(async move {
            loop {
                let polled = tokio::select! {
                    _ = cancel.cancelled() => break,
                    r = consumer.poll(Duration::from_millis(200)) => r,
                };
                match polled {
                    Ok(records) => {
                        if records.is_empty() {
                            // Positions move past control records and gaps too.
                            let positions = consumer.positions();
                            tx.send_if_modified(|map| update(map, &name, &positions));
                            continue;
                        }
                        for r in &records {
                            apply(r);
                        }
                        let positions = consumer.positions();
                        tx.send_modify(|map| {
                            update(map, &name, &positions);
                            for r in &records {
                                let next = map.entry(r.partition).or_default();
                                *next = (*next).max(r.offset + 1);
                            }
                        });
                    }
                    Err(e) => {
                        tracing::warn!(topic = %name, error = %e, "reading an internal topic; retrying");
                        tokio::select! {
                            _ = cancel.cancelled() => break,
                            _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                        }
                    }
                }
            }
        });
        Ok(KafkaBasedLog {
            topic: topic.to_string(),
            bootstrap: bootstrap.to_string(),
            partitions,
            positions: rx,
        })
    }

    /// Waits until partition 0 has been read up to `offset` (exclusive).
    pub(crate) async fn wait_for(&self, offset: i64, timeout: Duration) -> bool {
        let mut rx = self.positions.clone();
        tokio::time::timeout(
            timeout,
            rx.wait_for(|m| m.get(&0).copied().unwrap_or(0) >= offset),
        )
        .await
        .is_ok_and(|r| r.is_ok())
    }

    /// Waits until everything written before the call has been read.
    pub(crate) async fn read_to_end(&self, timeout: Duration) -> Result<()> {
        let kafka = |source| Error::Kafka {
            context: format!("reading {} to the end", self.topic),
            source,
        };
        let admin = Admin::connect(&self.bootstrap).await.map_err(kafka)?;
        let tps: Vec<(String, i32)> = self
            .partitions
            .iter()
            .map(|p| (self.topic.clone(), *p))
            .collect();
        let ends = admin
            .list_offsets(&tps, OffsetSpec::Latest)
            .await
            .map_err(kafka)?;
        let ends: BTreeMap<i32, i64> = ends
            .into_iter()
            .map(|((_, p), o)| (p, o.unwrap_or(0)))
            .collect();
        let mut rx = self.positions.clone();
        let caught_up = tokio::time::timeout(
            timeout,
            rx.wait_for(|m| {
                ends.iter()
                    .all(|(p, end)| m.get(p).copied().unwrap_or(0) >= *end)
            }),
        )
        .await;
        match caught_up {
            Ok(Ok(_)) => Ok(()),
            _ => Err(Error::Connector {
                connector: self.topic.clone(),
                reason: format!(
                    "could not read {} to the end within {timeout:?}",
                    self.topic
                ),
            }),
        }
    }
}

fn update(
    map: &mut BTreeMap<i32, i64>,
    topic: &str,
    positions: &BTreeMap<(String, i32), i64>,
) -> bool {
    let mut changed = false;
    for ((t, p), o) in positions {
        if t == topic {
            let next = map.entry(*p).or_default();
            if *o > *next {
                *next = *o;
                changed = true;
            }
        }
    }
    changed
}
