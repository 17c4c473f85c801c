//! The file source.

use std::collections::BTreeMap;
use std::io::SeekFrom;
use std::path::PathBuf;
use std::time::Duration;

use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncSeekExt};

use crate::config::{ConfigDef, ConfigKey, ConfigType, ConnectorConfig, Importance};
use crate::data::{ConnectRecord, Schema, SourceRecord, Value};
use crate::error::{Error, Result};
use crate::plugin::{
    BoxFuture, OffsetMap, SourceConnector, SourceTask, SourceTaskContext, TaskConfigs,
};

/// How long `poll` waits for new lines before returning an empty batch.
const IDLE: Duration = Duration::from_millis(200);
/// Bytes read per syscall.
const CHUNK: usize = 64 * 1024;

/// `org.apache.kafka.connect.file.FileStreamSourceConnector`.
#[derive(Debug, Default)]
pub struct FileStreamSourceConnector;

impl SourceConnector for FileStreamSourceConnector {
    fn config_def(&self) -> ConfigDef {
        ConfigDef::new([
            ConfigKey::new(
                "file",
                ConfigType::String,
                None,
                Importance::High,
                "Source filename.",
            ),
            ConfigKey::new(
                "topic",
                ConfigType::List,
                None,
                Importance::High,
                "The topic to publish data to.",
            ),
            ConfigKey::new(
                "batch.size",
                ConfigType::Int,
                Some("2000"),
                Importance::Low,
                "The maximum number of records the source task can read from the file each time it is polled.",
            ),
        ])
    }

    fn validate(&self, config: &ConnectorConfig) -> Result<()> {
        let topic = config.get("topic").unwrap_or("").trim();
        if topic.contains(',') {
            return Err(Error::config(
                "topic",
                topic,
                "'topic' in FileStreamSourceConnector configuration requires definition of a single topic.",
            ));
        }
        Ok(())
    }

    fn task_configs(&self, config: &ConnectorConfig, _max_tasks: usize) -> Result<TaskConfigs> {
        // One file, one task, as in Kafka.
        Ok(vec![config.values.clone()])
    }

    fn create_task(&self) -> Box<dyn SourceTask> {
        Box::new(FileStreamSourceTask::default())
    }
}

/// Reads appended lines; resumes from the committed byte position.
#[derive(Debug, Default)]
pub struct FileStreamSourceTask {
    path: PathBuf,
    topic: String,
    batch_size: usize,
    file: Option<tokio::fs::File>,
    /// Byte offset of the first byte of `pending`.
    position: u64,
    /// Read but not yet returned (a partial last line).
    pending: Vec<u8>,
    context: Option<SourceTaskContext>,
}

impl FileStreamSourceTask {
    fn partition(&self) -> OffsetMap {
        let mut m = OffsetMap::new();
        m.insert("filename".into(), json!(self.path.display().to_string()));
        m
    }

    async fn open(&mut self) -> Result<bool> {
        let mut file = match tokio::fs::File::open(&self.path).await {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(false),
            Err(source) => {
                return Err(Error::File {
                    action: "cannot open",
                    path: self.path.clone(),
                    source,
                });
            }
        };
        let stored = self
            .context
            .as_ref()
            .and_then(|c| c.offset(&self.partition()))
            .and_then(|o| o.get("position").and_then(serde_json::Value::as_u64))
            .unwrap_or(0);
        file.seek(SeekFrom::Start(stored))
            .await
            .map_err(|source| Error::File {
                action: "cannot seek in",
                path: self.path.clone(),
                source,
            })?;
        tracing::debug!(file = %self.path.display(), position = stored, "file source opened");
        self.position = stored;
        self.pending.clear();
        self.file = Some(file);
        Ok(true)
    }

    /// The complete lines in `pending`, up to `batch.size`.
    fn take_lines(&mut self) -> Vec<SourceRecord> {
        let mut records = Vec::new();
        let mut consumed = 0;
        while records.len() < self.batch_size {
            let Some(nl) = self.pending[consumed..].iter().position(|&b| b == b'\n') else {
                break;
            };
            let mut line = &self.pending[consumed..consumed + nl];
            if line.last() == Some(&b'\r') {
                line = &line[..line.len() - 1];
            }
            let text = String::from_utf8_lossy(line).into_owned();
            consumed += nl + 1;
            let mut offset = OffsetMap::new();
            offset.insert("position".into(), json!(self.position + consumed as u64));
            records.push(SourceRecord {
                source_partition: self.partition(),
                source_offset: offset,
                record: ConnectRecord::new(
                    self.topic.clone(),
                    Some(Schema::string()),
                    Value::String(text),
                ),
            });
        }
        self.pending.drain(..consumed);
        self.position += consumed as u64;
        records
    }
}

impl SourceTask for FileStreamSourceTask {
    fn start<'a>(
        &'a mut self,
        config: &'a BTreeMap<String, String>,
        context: SourceTaskContext,
    ) -> BoxFuture<'a, Result<()>> {
        Box::pin(async move {
            let file = config
                .get("file")
                .map(|f| f.trim())
                .filter(|f| !f.is_empty())
                .ok_or_else(|| Error::MissingConfig { key: "file".into() })?;
            self.path = PathBuf::from(file);
            self.topic = config
                .get("topic")
                .map(|t| t.trim().to_string())
                .filter(|t| !t.is_empty())
                .ok_or_else(|| Error::MissingConfig {
                    key: "topic".into(),
                })?;
            let batch = config.get("batch.size").map(|b| b.trim()).unwrap_or("2000");
            self.batch_size = batch
                .parse::<usize>()
                .ok()
                .filter(|b| *b > 0)
                .ok_or_else(|| Error::config("batch.size", batch, "must be a positive integer"))?;
            self.context = Some(context);
            Ok(())
        })
    }

    fn poll(&mut self) -> BoxFuture<'_, Result<Vec<SourceRecord>>> {
        Box::pin(async move {
            if self.file.is_none() && !self.open().await? {
                tokio::time::sleep(IDLE).await;
                return Ok(Vec::new());
            }
            let records = self.take_lines();
            if !records.is_empty() {
                return Ok(records);
            }
            let mut buf = vec![0u8; CHUNK];
            let Some(file) = self.file.as_mut() else {
                return Ok(Vec::new());
            };
            let n = file.read(&mut buf).await.map_err(|source| Error::File {
                action: "cannot read",
                path: self.path.clone(),
                source,
            })?;
            if n == 0 {
                tokio::time::sleep(IDLE).await;
                return Ok(Vec::new());
            }
            self.pending.extend_from_slice(&buf[..n]);
            Ok(self.take_lines())
        })
    }

    fn stop(&mut self) -> BoxFuture<'_, ()> {
        Box::pin(async move {
            self.file = None;
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn reads_lines_and_resumes_from_the_stored_position() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("in.txt");
        std::fs::write(&path, "one\ntwo\r\nthr").unwrap();
        let config = BTreeMap::from([
            ("file".to_string(), path.display().to_string()),
            ("topic".to_string(), "t".to_string()),
        ]);
        let mut task = FileStreamSourceTask::default();
        task.start(&config, SourceTaskContext::fixed(Vec::new()))
            .await
            .unwrap();
        let records = task.poll().await.unwrap();
        let lines: Vec<_> = records.iter().map(|r| r.record.value.clone()).collect();
        assert_eq!(lines, [Value::from("one"), Value::from("two")]);
        assert_eq!(records[1].source_offset["position"], json!(9));
        assert_eq!(
            records[0].source_partition["filename"],
            json!(path.display().to_string())
        );

        // A new task with the stored offset starts after "two".
        let partition = records[1].source_partition.clone();
        let offset = records[1].source_offset.clone();
        std::fs::write(&path, "one\ntwo\r\nthree\n").unwrap();
        let mut task = FileStreamSourceTask::default();
        task.start(&config, SourceTaskContext::fixed(vec![(partition, offset)]))
            .await
            .unwrap();
        let mut got = Vec::new();
        for _ in 0..10 {
            got.extend(task.poll().await.unwrap());
            if !got.is_empty() {
                break;
            }
        }
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].record.value, Value::from("three"));
    }

    #[tokio::test]
    async fn missing_file_yields_empty_polls() {
        let dir = tempfile::tempdir().unwrap();
        let config = BTreeMap::from([
            (
                "file".to_string(),
                dir.path().join("nope").display().to_string(),
            ),
            ("topic".to_string(), "t".to_string()),
        ]);
        let mut task = FileStreamSourceTask::default();
        task.start(&config, SourceTaskContext::fixed(Vec::new()))
            .await
            .unwrap();
        assert!(task.poll().await.unwrap().is_empty());
    }
}
