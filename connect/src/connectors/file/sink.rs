//! The file sink.

use std::collections::BTreeMap;
use std::path::PathBuf;

use tokio::io::AsyncWriteExt;

use crate::config::{ConfigDef, ConfigKey, ConfigType, ConnectorConfig, Importance};
use crate::data::SinkRecord;
use crate::error::{Error, Result};
use crate::plugin::{BoxFuture, SinkConnector, SinkTask, TaskConfigs};

/// `org.apache.kafka.connect.file.FileStreamSinkConnector`.
#[derive(Debug, Default)]
pub struct FileStreamSinkConnector;

impl SinkConnector for FileStreamSinkConnector {
    fn config_def(&self) -> ConfigDef {
        ConfigDef::new([ConfigKey::new(
            "file",
            ConfigType::String,
            None,
            Importance::High,
            "Destination filename.",
        )])
    }

    fn task_configs(&self, config: &ConnectorConfig, max_tasks: usize) -> Result<TaskConfigs> {
        Ok(vec![config.values.clone(); max_tasks.max(1)])
    }

    fn create_task(&self) -> Box<dyn SinkTask> {
        Box::new(FileStreamSinkTask::default())
    }
}

/// Appends each record's value as a line; `flush` syncs the file.
#[derive(Debug, Default)]
pub struct FileStreamSinkTask {
    path: PathBuf,
    file: Option<tokio::io::BufWriter<tokio::fs::File>>,
}

impl FileStreamSinkTask {
    fn io(&self, action: &'static str) -> impl FnOnce(std::io::Error) -> Error + '_ {
        move |source| Error::File {
            action,
            path: self.path.clone(),
            source,
        }
    }
}

impl SinkTask for FileStreamSinkTask {
    fn start<'a>(&'a mut self, config: &'a BTreeMap<String, String>) -> BoxFuture<'a, Result<()>> {
        Box::pin(async move {
            let file = config
                .get("file")
                .map(|f| f.trim())
                .filter(|f| !f.is_empty())
                .ok_or_else(|| Error::MissingConfig { key: "file".into() })?;
            self.path = PathBuf::from(file);
            let f = tokio::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(&self.path)
                .await
                .map_err(self.io("cannot open"))?;
            self.file = Some(tokio::io::BufWriter::new(f));
            Ok(())
        })
    }

    fn put(&mut self, records: Vec<SinkRecord>) -> BoxFuture<'_, Result<()>> {
        Box::pin(async move {
            let mut out = Vec::new();
            for r in &records {
                out.extend_from_slice(r.record.value.to_text().as_bytes());
                out.push(b'\n');
            }
            let path = self.path.clone();
            let file = self.file.as_mut().ok_or_else(|| Error::Connector {
                connector: "FileStreamSink".into(),
                reason: "put before start".into(),
            })?;
            file.write_all(&out).await.map_err(|source| Error::File {
                action: "cannot write",
                path,
                source,
            })
        })
    }

    fn flush(&mut self) -> BoxFuture<'_, Result<()>> {
        Box::pin(async move {
            let path = self.path.clone();
            let io = |source| Error::File {
                action: "cannot flush",
                path: path.clone(),
                source,
            };
            if let Some(file) = self.file.as_mut() {
                file.flush().await.map_err(io)?;
                file.get_ref().sync_data().await.map_err(io)?;
            }
            Ok(())
        })
    }

    fn stop(&mut self) -> BoxFuture<'_, ()> {
        Box::pin(async move {
            if let Some(mut file) = self.file.take()
                && let Err(e) = file.flush().await
            {
                tracing::warn!(file = %self.path.display(), error = %e, "file sink flush on stop failed");
            }
        })
    }
}
