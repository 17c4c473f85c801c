//! Source offsets in `offset.storage.file.filename`.
//!
//! Keys are Kafka Connect's `["<connector>", {<source partition>}]` and values the source
//! offset maps. The file is JSON (`{"offsets": [{"key": .., "value": ..}]}`), written to a
//! temporary name, fsynced and renamed over the old one, so a crash leaves either the old or
//! the new file. Without a file the offsets live in memory only.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};

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
}

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
        })
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
        self.lock().insert(
            key_text(connector, &partition),
            (connector.to_string(), partition, offset),
        );
    }

    pub fn remove(&self, connector: &str, partition: &OffsetMap) {
        self.lock().remove(&key_text(connector, partition));
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
        self.lock().retain(|_, (n, _, _)| n != connector);
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
    fn corrupt_file_is_a_config_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bad");
        std::fs::write(&path, "{not json").unwrap();
        let err = OffsetStore::open(Some(&path)).unwrap_err();
        assert!(err.to_string().contains("offset.storage.file.filename"));
    }
}
