//! Interactive queries: reads of the stores of this instance's tasks, from any thread, while
//! the application runs (fjall keyspaces are safe to read concurrently).

use std::ops::Bound;
use std::sync::Arc;

use super::Shared;
use crate::dsl::{Window, Windowed};
use crate::error::{Error, Result};
use crate::serdes::SerdeRef;
use crate::store::backend::fjall_range;
use crate::store::keys::{split_window_key, time_bytes};

fn keyspaces(shared: &Shared, name: &str) -> Vec<fjall::Keyspace> {
    shared
        .lock_stores()
        .get(name)
        .map(|tasks| {
            tasks
                .values()
                .map(|(_, keyspace)| keyspace.clone())
                .collect()
        })
        .unwrap_or_default()
}

fn decode<T: 'static>(serde: &SerdeRef<T>, bytes: &[u8], store: &str) -> Result<T> {
    serde
        .deserialize(Some(bytes))
        .map_err(|source| Error::Serialization {
            topic: store.to_string(),
            source,
        })
}

/// A key-value store across the local tasks.
pub struct ReadOnlyKeyValueStore<K, V> {
    shared: Arc<Shared>,
    name: String,
    key_serde: SerdeRef<K>,
    value_serde: SerdeRef<V>,
}

impl<K, V> std::fmt::Debug for ReadOnlyKeyValueStore<K, V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReadOnlyKeyValueStore")
            .field("name", &self.name)
            .finish()
    }
}

impl<K: 'static, V: 'static> ReadOnlyKeyValueStore<K, V> {
    pub(crate) fn new(
        shared: Arc<Shared>,
        name: &str,
        key_serde: SerdeRef<K>,
        value_serde: SerdeRef<V>,
    ) -> Self {
        ReadOnlyKeyValueStore {
            shared,
            name: name.to_string(),
            key_serde,
            value_serde,
        }
    }

    /// The value of `key` in whichever local task holds it.
    pub fn get(&self, key: &K) -> Result<Option<V>> {
        let key = crate::dsl::store_key(&self.key_serde, key, &self.name)?;
        for ks in keyspaces(&self.shared, &self.name) {
            if let Some(v) = ks.get(&key).map_err(Error::store(&self.name))? {
                return Ok(Some(decode(&self.value_serde, &v, &self.name)?));
            }
        }
        Ok(None)
    }

    /// Every entry of the local tasks (each task's in key order).
    pub fn all(&self) -> Result<Vec<(K, V)>> {
        let mut out = Vec::new();
        for ks in keyspaces(&self.shared, &self.name) {
            for (k, v) in fjall_range(&ks, &self.name, Bound::Unbounded, Bound::Unbounded)? {
                out.push((
                    decode(&self.key_serde, &k, &self.name)?,
                    decode(&self.value_serde, &v, &self.name)?,
                ));
            }
        }
        Ok(out)
    }

    /// Entries with serialized keys between those of `from` and `to` (inclusive).
    pub fn range(&self, from: &K, to: &K) -> Result<Vec<(K, V)>> {
        let from = crate::dsl::store_key(&self.key_serde, from, &self.name)?;
        let to = crate::dsl::store_key(&self.key_serde, to, &self.name)?;
        let mut out = Vec::new();
        for ks in keyspaces(&self.shared, &self.name) {
            for (k, v) in fjall_range(
                &ks,
                &self.name,
                Bound::Included(&from),
                Bound::Included(&to),
            )? {
                out.push((
                    decode(&self.key_serde, &k, &self.name)?,
                    decode(&self.value_serde, &v, &self.name)?,
                ));
            }
        }
        Ok(out)
    }
}

/// A window store across the local tasks.
pub struct ReadOnlyWindowStore<K, V> {
    shared: Arc<Shared>,
    name: String,
    key_serde: SerdeRef<K>,
    value_serde: SerdeRef<V>,
    size: i64,
}

impl<K, V> std::fmt::Debug for ReadOnlyWindowStore<K, V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReadOnlyWindowStore")
            .field("name", &self.name)
            .finish()
    }
}

impl<K: 'static, V: 'static> ReadOnlyWindowStore<K, V> {
    pub(crate) fn new(
        shared: Arc<Shared>,
        name: &str,
        key_serde: SerdeRef<K>,
        value_serde: SerdeRef<V>,
        size: i64,
    ) -> Self {
        ReadOnlyWindowStore {
            shared,
            name: name.to_string(),
            key_serde,
            value_serde,
            size,
        }
    }

    /// The windows of `key` starting in `[from, to]`, by start.
    pub fn fetch(&self, key: &K, from: i64, to: i64) -> Result<Vec<(Window, V)>> {
        let key = crate::dsl::store_key(&self.key_serde, key, &self.name)?;
        let (lo, hi) = (time_bytes(from), time_bytes(to.saturating_add(1)));
        let mut out = Vec::new();
        for ks in keyspaces(&self.shared, &self.name) {
            for (k, v) in fjall_range(&ks, &self.name, Bound::Included(&lo), Bound::Excluded(&hi))?
            {
                if let Some((start, kb)) = split_window_key(&k)
                    && kb == &key[..]
                {
                    out.push((
                        Window {
                            start,
                            end: start + self.size,
                        },
                        decode(&self.value_serde, &v, &self.name)?,
                    ));
                }
            }
        }
        out.sort_by_key(|(w, _)| w.start);
        Ok(out)
    }

    /// Every window of every key in the local tasks.
    pub fn all(&self) -> Result<Vec<(Windowed<K>, V)>> {
        let mut out = Vec::new();
        for ks in keyspaces(&self.shared, &self.name) {
            for (k, v) in fjall_range(&ks, &self.name, Bound::Unbounded, Bound::Unbounded)? {
                if let Some((start, kb)) = split_window_key(&k) {
                    out.push((
                        Windowed {
                            key: decode(&self.key_serde, kb, &self.name)?,
                            window: Window {
                                start,
                                end: start + self.size,
                            },
                        },
                        decode(&self.value_serde, &v, &self.name)?,
                    ));
                }
            }
        }
        Ok(out)
    }
}
