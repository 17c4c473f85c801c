//! `errors.tolerance`, `errors.log.*` and the dead-letter queue.
//!
//! A failure in a converter or transform (and, beyond Kafka, in a source's conversion) is
//! reported here. With `errors.tolerance=none` it fails the task with a trace; with `all` the
//! record is skipped, logged when `errors.log.enable`, and written to
//! `errors.deadletterqueue.topic.name` (if set) as it was consumed, with Kafka Connect's
//! `__connect.errors.*` headers when `errors.deadletterqueue.context.headers.enable`.

use std::sync::Arc;

use bytes::Bytes;
use fjord_client::{Admin, Producer, ProducerRecord};
use tokio::sync::OnceCell;

use crate::config::{ErrorTolerance, ErrorsConfig};
use crate::error::Error;

/// Where in the pipeline a failure happened (`__connect.errors.stage`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Stage {
    KeyConverter,
    ValueConverter,
    HeaderConverter,
    Transformation,
}

impl Stage {
    fn name(self) -> &'static str {
        match self {
            Stage::KeyConverter => "KEY_CONVERTER",
            Stage::ValueConverter => "VALUE_CONVERTER",
            Stage::HeaderConverter => "HEADER_CONVERTER",
            Stage::Transformation => "TRANSFORMATION",
        }
    }
}

/// The record as it was read (sinks) or as far as it got (sources).
#[derive(Debug, Clone, Default)]
pub(crate) struct RawRecord {
    pub(crate) topic: String,
    pub(crate) partition: Option<i32>,
    pub(crate) offset: Option<i64>,
    pub(crate) key: Option<Bytes>,
    pub(crate) value: Option<Bytes>,
    pub(crate) headers: Vec<(String, Option<Bytes>)>,
}

/// The trace a FAILED task shows.
pub(crate) fn trace(error: &Error) -> String {
    format!("{}: {}", error.class_name(), error.chain())
}

pub(crate) struct ErrorReporter {
    connector: String,
    task: usize,
    config: ErrorsConfig,
    producer: Arc<Producer>,
    bootstrap: String,
    dlq_created: OnceCell<()>,
}

impl ErrorReporter {
    pub(crate) fn new(
        connector: &str,
        task: usize,
        config: ErrorsConfig,
        producer: Arc<Producer>,
        bootstrap: &str,
    ) -> Self {
        ErrorReporter {
            connector: connector.to_string(),
            task,
            config,
            producer,
            bootstrap: bootstrap.to_string(),
            dlq_created: OnceCell::new(),
        }
    }

    /// Handles a failure of one record: `Ok` when tolerated (the record is skipped), the error
    /// for the task to fail with otherwise.
    pub(crate) async fn report(
        &self,
        stage: Stage,
        class: &str,
        error: Error,
        raw: &RawRecord,
    ) -> Result<(), Error> {
        if self.config.tolerance == ErrorTolerance::None {
            return Err(Error::Connector {
                connector: self.connector.clone(),
                reason: format!(
                    "Tolerance exceeded in error handler (stage {}, class {class}): {}",
                    stage.name(),
                    trace(&error)
                ),
            });
        }
        if self.config.log_enable {
            if self.config.log_include_messages {
                tracing::error!(connector = %self.connector, task = self.task, stage = stage.name(),
                    topic = %raw.topic, partition = ?raw.partition, offset = ?raw.offset,
                    error = %error.chain(), "error handling a record (tolerated)");
            } else {
                tracing::error!(connector = %self.connector, task = self.task, stage = stage.name(),
                    error = %error.chain(), "error handling a record (tolerated)");
            }
        }
        if let Some(topic) = self.config.dlq_topic.clone()
            && let Err(e) = self.send_to_dlq(&topic, stage, class, &error, raw).await
        {
            // A DLQ that cannot be written is not tolerated (as in Kafka).
            return Err(e);
        }
        Ok(())
    }

    async fn ensure_dlq(&self, topic: &str) {
        self.dlq_created
            .get_or_init(|| async {
                let rf = self.config.dlq_replication_factor;
                let result = async {
                    let admin = Admin::connect(&self.bootstrap).await?;
                    let brokers = admin
                        .describe_cluster()
                        .await
                        .map(|c| c.brokers.len())
                        .unwrap_or(1);
                    let rf = i16::try_from(brokers).unwrap_or(i16::MAX).min(rf).max(1);
                    admin.create_topic(topic, 1, rf, &Default::default()).await
                }
                .await;
                match result {
                    Ok(()) => tracing::info!(topic, "created the dead letter queue topic"),
                    // TOPIC_ALREADY_EXISTS
                    Err(fjord_client::Error::Broker { code, .. }) if code.code() == 36 => {}
                    Err(e) => {
                        tracing::debug!(topic, error = %e, "creating the dead letter queue topic")
                    }
                }
            })
            .await;
    }

    async fn send_to_dlq(
        &self,
        topic: &str,
        stage: Stage,
        class: &str,
        error: &Error,
        raw: &RawRecord,
    ) -> Result<(), Error> {
        self.ensure_dlq(topic).await;
        let mut record = ProducerRecord {
            topic: topic.to_string(),
            partition: None,
            key: raw.key.clone(),
            value: raw.value.clone(),
            headers: raw.headers.clone(),
            timestamp: None,
        };
        if self.config.dlq_context_headers {
            let mut add = |k: &str, v: String| {
                record.headers.retain(|(n, _)| n != k);
                record.headers.push((k.to_string(), Some(Bytes::from(v))));
            };
            add("__connect.errors.topic", raw.topic.clone());
            if let Some(p) = raw.partition {
                add("__connect.errors.partition", p.to_string());
            }
            if let Some(o) = raw.offset {
                add("__connect.errors.offset", o.to_string());
            }
            add("__connect.errors.connector.name", self.connector.clone());
            add("__connect.errors.task.id", self.task.to_string());
            add("__connect.errors.stage", stage.name().to_string());
            add("__connect.errors.class.name", class.to_string());
            add(
                "__connect.errors.exception.class.name",
                error.class_name().to_string(),
            );
            add("__connect.errors.exception.message", error.chain());
            add("__connect.errors.exception.stacktrace", trace(error));
        }
        let delivery = self.producer.send(record).await.map_err(|e| Error::Kafka {
            context: format!("sending to the dead letter queue {topic}"),
            source: e,
        })?;
        delivery.await.map_err(|e| Error::Kafka {
            context: format!("sending to the dead letter queue {topic}"),
            source: e,
        })?;
        Ok(())
    }
}
