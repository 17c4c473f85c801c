//! Source offsets: in `offset.storage.file.filename` (standalone) or the offsets topic
//! (distributed).
//!
//! Keys are Kafka Connect's `["<connector>", {<source partition>}]` and values the source
//! offset maps. The file is JSON (`{"offsets": [{"key": .., "value": ..}]}`), written to a
//! temporary name, fsynced and renamed over the old one, so a crash leaves either the old or
//! the new file. Without a file the offsets live in memory only. Distributed, every change is
//! produced to `offset.storage.topic` (key and value as JSON text, a null value deletes) at the
//! next save, and every worker reads the topic back; a key changed here and not saved yet
//! wins over what is read.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};

use bytes::Bytes;
use fjord_client::{Producer, ProducerRecord};
use serde_json::{Value as Json, json};

use crate::error::{Error, Result};
use crate::plugin::OffsetMap;

/// Offsets of every source connector on this worker.
#[derive(Debug)]
pub struct OffsetStore {
    path: Option<PathBuf>,
    /// Key (the JSON text of `[name, partition]`) to offset; `None` marks a deleted key.
    data: Mutex<BTreeMap<String, (String, OffsetMap, OffsetMap)>>,
    /// Serializes file writes.
    write: Mutex<()>,
    /// Distributed mode: the offsets topic and its producer.
    topic: OnceLock<(String, Arc<Producer>)>,
    /// Distributed mode: keys changed since the last save (`None`: deleted).
    dirty: Mutex<BTreeMap<String, Change>>,
}

/// An unsaved change: connector, partition and offset (`None`: deleted).
type Change = (String, OffsetMap, Option<OffsetMap>);
/// A dirty entry: the key text and the change.
type Dirty = (String, Change);

fn key_text(connector: &str, partition: &OffsetMap) -> String {
    json!([connector, partition]).to_string()
}

impl OffsetStore {
    /// Loads the file if it exists.
    pub fn open(path: Option<&Path>) -> Result<Self> {
        let mut data = BTreeMap::new();
        if let Some(path) = path {
            match std::fs::read(path) {
                Ok(bytes) => {
                    let json: Json = serde_json::from_slice(&bytes).map_err(|e| {
                        Error::config(
                            "offset.storage.file.filename",
                            &path.display().to_string(),
                            format!("the offsets file is not valid JSON: {e}"),
                        )
                    })?;
                    for entry in json["offsets"].as_array().into_iter().flatten() {
                        let (Some(name), Some(partition), Some(offset)) = (
                            entry["key"][0].as_str(),
                            entry["key"][1].as_object(),
                            entry["value"].as_object(),
                        ) else {
                            continue;
                        };
                        data.insert(
                            key_text(name, partition),
                            (name.to_string(), partition.clone(), offset.clone()),
                        );
                    }
                }
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(source) => {
                    return Err(Error::File {
                        action: "cannot read",
                        path: path.to_path_buf(),
                        source,
                    });
                }
            }
        }
        Ok(OffsetStore {
            path: path.map(Path::to_path_buf),
            data: Mutex::new(data),
            write: Mutex::new(()),
            topic: OnceLock::new(),
            dirty: Mutex::new(BTreeMap::new()),
        })
    }

    /// Distributed mode: changes go to `topic` at each save.
    pub(crate) fn use_topic(&self, topic: &str, producer: Arc<Producer>) {
        let _ = self.topic.set((topic.to_string(), producer));
    }

    fn mark(&self, key: String, connector: &str, partition: &OffsetMap, offset: Option<OffsetMap>) {
        if self.topic.get().is_some() {
            self.dirty
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .insert(key, (connector.to_string(), partition.clone(), offset));
        }
    }

    /// Applies a record read from the offsets topic (ignored while the key has unsaved changes
    /// here).
    pub(crate) fn apply_remote(&self, key: &[u8], value: Option<&[u8]>) {
        let Ok(parsed) = serde_json::from_slice::<Json>(key) else {
            return;
        };
        let (Some(name), Some(partition)) = (parsed[0].as_str(), parsed[1].as_object()) else {
            return;
        };
        let text = key_text(name, partition);
        if self
            .dirty
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .contains_key(&text)
        {
            return;
        }
        let offset: Option<OffsetMap> = value
            .and_then(|v| serde_json::from_slice::<Json>(v).ok())
            .and_then(|j| j.as_object().cloned());
        let mut data = self.lock();
        match offset {
            Some(o) => {
                data.insert(text, (name.to_string(), partition.clone(), o));
            }
            None => {
                data.remove(&text);
            }
        }
    }

    /// Saves: the file (on a blocking thread) or, distributed, the changed keys to the topic
    /// (acknowledged by all in-sync replicas before this returns).
    pub(crate) async fn save(self: &Arc<Self>) -> Result<()> {
        let Some((topic, producer)) = self.topic.get() else {
            let store = self.clone();
            return tokio::task::spawn_blocking(move || store.flush())
                .await
                .map_err(|e| Error::Connector {
                    connector: String::new(),
                    reason: format!("saving offsets panicked: {e}"),
                })?;
        };
        let batch: Vec<Dirty> =
            std::mem::take(&mut *self.dirty.lock().unwrap_or_else(|e| e.into_inner()))
                .into_iter()
                .collect();
        let mut deliveries = Vec::with_capacity(batch.len());
        let mut result = Ok(());
        for (_, (connector, partition, offset)) in &batch {
            let key = Bytes::from(json!([connector, partition]).to_string());
            let value = offset
                .as_ref()
                .map(|o| Bytes::from(Json::Object(o.clone()).to_string()));
            let record = ProducerRecord {
                topic: topic.clone(),
                partition: None,
                key: Some(key),
                value,
                headers: Vec::new(),
                timestamp: None,
            };
            match producer.send(record).await {
                Ok(d) => deliveries.push(d),
                Err(source) => {
                    result = Err(Error::Kafka {
                        context: format!("writing source offsets to {topic}"),
                        source,
                    });
                    break;
                }
            }
        }
        for d in deliveries {
            if let Err(source) = d.await
                && result.is_ok()
            {
                result = Err(Error::Kafka {
                    context: format!("writing source offsets to {topic}"),
                    source,
                });
            }
        }
        if result.is_err() {
            // Not saved: keep them for the next save, unless changed again meanwhile.
            let mut dirty = self.dirty.lock().unwrap_or_else(|e| e.into_inner());
            for (k, v) in batch {
                dirty.entry(k).or_insert(v);
            }
        }
        result
    }

    fn lock(&self) -> MutexGuard<'_, BTreeMap<String, (String, OffsetMap, OffsetMap)>> {
        self.data.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn get(&self, connector: &str, partition: &OffsetMap) -> Option<OffsetMap> {
        self.lock()
            .get(&key_text(connector, partition))
            .map(|(_, _, o)| o.clone())
    }

    /// Records offsets in memory (saved by the next [`OffsetStore::flush`]).
    pub fn put(&self, connector: &str, partition: OffsetMap, offset: OffsetMap) {
        let key = key_text(connector, &partition);
        self.mark(key.clone(), connector, &partition, Some(offset.clone()));
        self.lock()
            .insert(key, (connector.to_string(), partition, offset));
    }

    pub fn remove(&self, connector: &str, partition: &OffsetMap) {
        let key = key_text(connector, partition);
        self.mark(key.clone(), connector, partition, None);
        self.lock().remove(&key);
    }

    /// A connector's partitions and offsets.
    pub fn connector_offsets(&self, connector: &str) -> Vec<(OffsetMap, OffsetMap)> {
        self.lock()
            .values()
            .filter(|(n, _, _)| n == connector)
            .map(|(_, p, o)| (p.clone(), o.clone()))
            .collect()
    }

    /// Drops every offset of a connector.
    pub fn clear_connector(&self, connector: &str) {
        let partitions: Vec<OffsetMap> = self
            .connector_offsets(connector)
            .into_iter()
            .map(|(p, _)| p)
            .collect();
        for p in partitions {
            self.remove(connector, &p);
        }
    }

    /// Writes the file (blocking I/O: call from a blocking context or accept a short stall).
    pub fn flush(&self) -> Result<()> {
        let Some(path) = &self.path else {
            return Ok(());
        };
        let _guard = self.write.lock().unwrap_or_else(|e| e.into_inner());
        let entries: Vec<Json> = self
            .lock()
            .values()
            .map(|(n, p, o)| json!({"key": [n, p], "value": o}))
            .collect();
        let text = json!({"offsets": entries}).to_string();
        let tmp = path.with_extension("tmp");
        let io = |action, source| Error::File {
            action,
            path: tmp.clone(),
            source,
        };
        {
            use std::io::Write;
            let mut f = std::fs::File::create(&tmp).map_err(|e| io("cannot create", e))?;
            f.write_all(text.as_bytes())
                .map_err(|e| io("cannot write", e))?;
            f.sync_all().map_err(|e| io("cannot sync", e))?;
        }
        std::fs::rename(&tmp, path).map_err(|source| Error::File {
            action: "cannot rename the offsets file to",
            path: path.clone(),
            source,
        })?;
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty())
            && let Ok(d) = std::fs::File::open(dir)
        {
            let _ = d.sync_all();
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offsets_survive_a_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("connect.offsets");
        let store = OffsetStore::open(Some(&path)).unwrap();
        let mut p = OffsetMap::new();
        p.insert("filename".into(), json!("/a"));
        let mut o = OffsetMap::new();
        o.insert("position".into(), json!(42));
        store.put("c", p.clone(), o.clone());
        store.flush().unwrap();
        let again = OffsetStore::open(Some(&path)).unwrap();
        assert_eq!(again.get("c", &p), Some(o));
        assert_eq!(again.get("other", &p), None);
        again.clear_connector("c");
        assert!(again.connector_offsets("c").is_empty());
    }

    #[test]
    fn remote_records_apply_unless_the_key_has_unsaved_changes() {
        let store = OffsetStore::open(None).unwrap();
        let key = br#"["c",{"filename":"/a"}]"#;
        store.apply_remote(key, Some(br#"{"position":5}"#));
        let mut p = OffsetMap::new();
        p.insert("filename".into(), json!("/a"));
        assert_eq!(store.get("c", &p).unwrap()["position"], 5);
        store.apply_remote(key, None);
        assert_eq!(store.get("c", &p), None);
        store.apply_remote(b"not json", Some(b"{}"));
        assert!(store.connector_offsets("c").is_empty());
    }

    #[test]
    fn corrupt_file_is_a_config_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bad");
        std::fs::write(&path, "{not json").unwrap();
        let err = OffsetStore::open(Some(&path)).unwrap_err();
        assert!(err.to_string().contains("offset.storage.file.filename"));
    }
}
