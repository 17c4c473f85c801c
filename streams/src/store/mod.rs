//! State stores: key-value, window and session stores over a byte-level [`KvBackend`]
//! (fjall in the runtime, memory in the test driver). Every change is remembered until the
//! next commit, when it goes to the store's changelog topic `{application.id}-{store}-changelog`.

pub mod backend;
pub mod keys;

use std::collections::BTreeMap;
use std::ops::Bound;

use bytes::Bytes;

pub use self::backend::{FjallBackend, KvBackend, MemoryBackend};
use crate::error::Result;

/// What a store holds, which decides its key layout (see [`keys`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreKind {
    /// Plain keys.
    KeyValue,
    /// `(window start, key)` entries.
    Window,
    /// `(key, session end, session start)` entries.
    Session,
}

/// A cached change: the value (`None`: deleted), whether the backend has it, whether the
/// changelog has it.
#[derive(Debug)]
struct Entry {
    value: Option<Bytes>,
    written: bool,
    logged: bool,
}

/// A state store of one task: the backend, with a write cache in front of it that also holds
/// the changes not yet written to the changelog.
///
/// Reads see the cache first; `range` merges it with the backend. The runtime writes the cache
/// back after every batch of records (so repeated updates of a key within a batch cost one
/// backend write, and interactive queries lag by at most a batch) and at every commit, when
/// the changes go to the changelog and the cache is emptied.
pub struct StateStore {
    name: String,
    kind: StoreKind,
    backend: Box<dyn KvBackend>,
    cache: BTreeMap<Bytes, Entry>,
    /// Keys changed since the last write-back (so a write-back costs what changed, not the
    /// whole cache, which holds every change until the next commit).
    dirty: Vec<Bytes>,
    logging: bool,
}

impl std::fmt::Debug for StateStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StateStore")
            .field("name", &self.name)
            .field("kind", &self.kind)
            .field("cached", &self.cache.len())
            .finish_non_exhaustive()
    }
}

impl StateStore {
    /// A store over `backend`; with `logging`, changes are kept for the changelog.
    pub fn new(name: &str, kind: StoreKind, backend: Box<dyn KvBackend>, logging: bool) -> Self {
        StateStore {
            name: name.to_string(),
            kind,
            backend,
            cache: BTreeMap::new(),
            dirty: Vec::new(),
            logging,
        }
    }

    /// The store's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The store's kind.
    pub fn kind(&self) -> StoreKind {
        self.kind
    }

    /// The value of `key`.
    pub fn get(&self, key: &[u8]) -> Result<Option<Bytes>> {
        match self.cache.get(key) {
            Some(e) => Ok(e.value.clone()),
            None => self.backend.get(key),
        }
    }

    /// Sets `key`.
    pub fn put(&mut self, key: &[u8], value: &[u8]) -> Result<()> {
        self.change(key, Some(Bytes::copy_from_slice(value)));
        Ok(())
    }

    /// Removes `key`.
    pub fn delete(&mut self, key: &[u8]) -> Result<()> {
        self.change(key, None);
        Ok(())
    }

    fn change(&mut self, key: &[u8], value: Option<Bytes>) {
        let logged = !self.logging;
        match self.cache.get_mut(key) {
            Some(e) => {
                if e.written {
                    self.dirty.push(Bytes::copy_from_slice(key));
                }
                e.value = value;
                e.written = false;
                e.logged = logged;
            }
            None => {
                let key = Bytes::copy_from_slice(key);
                self.dirty.push(key.clone());
                self.cache.insert(
                    key,
                    Entry {
                        value,
                        written: false,
                        logged,
                    },
                );
            }
        }
    }

    /// Entries between the bounds, in key order.
    pub fn range(&self, from: Bound<&[u8]>, to: Bound<&[u8]>) -> Result<Vec<(Bytes, Bytes)>> {
        let stored = self.backend.range(from, to)?;
        if self.cache.is_empty() {
            return Ok(stored);
        }
        if let (Bound::Included(a) | Bound::Excluded(a), Bound::Included(b) | Bound::Excluded(b)) =
            (from, to)
            && a > b
        {
            return Ok(stored);
        }
        let mut cached = self.cache.range::<[u8], _>((from, to)).peekable();
        let mut out = Vec::with_capacity(stored.len());
        let mut stored = stored.into_iter().peekable();
        loop {
            let take_cached = match (stored.peek(), cached.peek()) {
                (None, None) => break,
                (Some(_), None) => false,
                (None, Some(_)) => true,
                (Some((sk, _)), Some((ck, _))) => {
                    if sk == *ck {
                        stored.next();
                        true
                    } else {
                        ck.as_ref() < sk.as_ref()
                    }
                }
            };
            if take_cached {
                if let Some((k, e)) = cached.next()
                    && let Some(v) = &e.value
                {
                    out.push((k.clone(), v.clone()));
                }
            } else if let Some(kv) = stored.next() {
                out.push(kv);
            }
        }
        Ok(out)
    }

    /// Every entry, in key order.
    pub fn all(&self) -> Result<Vec<(Bytes, Bytes)>> {
        self.range(Bound::Unbounded, Bound::Unbounded)
    }

    /// Number of entries in the backend (approximate on disk).
    pub fn approximate_len(&self) -> usize {
        self.backend.approximate_len()
    }

    /// Writes cached changes to the backend; forgets those the changelog has too.
    pub fn write_back(&mut self) -> Result<()> {
        while let Some(key) = self.dirty.pop() {
            let Some(e) = self.cache.get_mut(&key) else {
                continue;
            };
            if !e.written {
                let written = match &e.value {
                    Some(v) => self.backend.put(&key, v),
                    None => self.backend.delete(&key),
                };
                if let Err(err) = written {
                    self.dirty.push(key);
                    return Err(err);
                }
                e.written = true;
            }
            if e.logged {
                self.cache.remove(&key);
            }
        }
        Ok(())
    }

    /// The changes since the last call, for the changelog (in key order); the cache is
    /// written back and emptied.
    pub(crate) fn take_changes(&mut self) -> Result<Vec<(Bytes, Option<Bytes>)>> {
        self.write_back()?;
        let cache = std::mem::take(&mut self.cache);
        Ok(cache.into_iter().map(|(k, e)| (k, e.value)).collect())
    }

    /// Applies a changelog record without logging it again.
    pub(crate) fn restore(&mut self, key: &[u8], value: Option<&[u8]>) -> Result<()> {
        match value {
            Some(v) => self.backend.put(key, v),
            None => self.backend.delete(key),
        }
    }

    /// Removes everything (before a restore).
    pub(crate) fn clear(&mut self) -> Result<()> {
        self.cache.clear();
        self.dirty.clear();
        self.backend.clear()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_see_cached_changes_and_ranges_merge_them() {
        let mut store = StateStore::new(
            "s",
            StoreKind::KeyValue,
            Box::new(MemoryBackend::default()),
            true,
        );
        store.put(b"a", b"1").unwrap();
        store.put(b"c", b"3").unwrap();
        store.write_back().unwrap();
        store.put(b"b", b"2").unwrap();
        store.put(b"c", b"33").unwrap();
        store.delete(b"a").unwrap();
        assert_eq!(store.get(b"a").unwrap(), None);
        assert_eq!(store.get(b"c").unwrap().as_deref(), Some(&b"33"[..]));
        let all = store.all().unwrap();
        let pairs: Vec<(&[u8], &[u8])> = all.iter().map(|(k, v)| (&k[..], &v[..])).collect();
        assert_eq!(pairs, vec![(&b"b"[..], &b"2"[..]), (&b"c"[..], &b"33"[..])]);
        let some = store
            .range(Bound::Excluded(&b"b"[..]), Bound::Unbounded)
            .unwrap();
        assert_eq!(some.len(), 1);
        // The changelog gets every key changed since the last take, latest value each.
        let changes = store.take_changes().unwrap();
        assert_eq!(
            changes,
            vec![
                (Bytes::from_static(b"a"), None),
                (Bytes::from_static(b"b"), Some(Bytes::from_static(b"2"))),
                (Bytes::from_static(b"c"), Some(Bytes::from_static(b"33"))),
            ]
        );
        assert!(store.take_changes().unwrap().is_empty());
        assert_eq!(store.get(b"b").unwrap().as_deref(), Some(&b"2"[..]));
        assert_eq!(store.get(b"a").unwrap(), None);
    }
}
