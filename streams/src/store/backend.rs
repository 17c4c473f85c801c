//! Byte-level ordered key-value backends under every state store.
//!
//! Contract (checked by one conformance suite run on each backend): keys are ordered
//! bytewise; `put` overwrites; `delete` of an absent key is a no-op; `range` returns the
//! entries between its bounds in key order, as of the call. Durability is the changelog's
//! job: a backend need not survive a crash (a task always restores from its changelog).

use std::collections::BTreeMap;
use std::ops::Bound;

use bytes::Bytes;

use crate::error::{Error, Result};

/// An ordered map of bytes.
pub trait KvBackend {
    /// The value of `key`.
    fn get(&self, key: &[u8]) -> Result<Option<Bytes>>;
    /// Sets `key` to `value`.
    fn put(&mut self, key: &[u8], value: &[u8]) -> Result<()>;
    /// Removes `key`.
    fn delete(&mut self, key: &[u8]) -> Result<()>;
    /// Entries with keys within the bounds, in key order.
    fn range(&self, from: Bound<&[u8]>, to: Bound<&[u8]>) -> Result<Vec<(Bytes, Bytes)>>;
    /// Removes everything (before a restore).
    fn clear(&mut self) -> Result<()>;
    /// Number of entries (approximate for on-disk backends).
    fn approximate_len(&self) -> usize;
}

/// An in-memory backend (the test driver's default).
#[derive(Debug, Default)]
pub struct MemoryBackend {
    map: BTreeMap<Vec<u8>, Bytes>,
}

impl KvBackend for MemoryBackend {
    fn get(&self, key: &[u8]) -> Result<Option<Bytes>> {
        Ok(self.map.get(key).cloned())
    }
    fn put(&mut self, key: &[u8], value: &[u8]) -> Result<()> {
        match self.map.get_mut(key) {
            Some(v) => *v = Bytes::copy_from_slice(value),
            None => {
                self.map.insert(key.to_vec(), Bytes::copy_from_slice(value));
            }
        }
        Ok(())
    }
    fn delete(&mut self, key: &[u8]) -> Result<()> {
        self.map.remove(key);
        Ok(())
    }
    fn range(&self, from: Bound<&[u8]>, to: Bound<&[u8]>) -> Result<Vec<(Bytes, Bytes)>> {
        if let (Bound::Included(a) | Bound::Excluded(a), Bound::Included(b) | Bound::Excluded(b)) =
            (from, to)
            && a > b
        {
            return Ok(Vec::new());
        }
        Ok(self
            .map
            .range::<[u8], _>((from, to))
            .map(|(k, v)| (Bytes::copy_from_slice(k), v.clone()))
            .collect())
    }
    fn clear(&mut self) -> Result<()> {
        self.map.clear();
        Ok(())
    }
    fn approximate_len(&self) -> usize {
        self.map.len()
    }
}

/// A fjall keyspace (one per store and task) in the instance's database under `state.dir`.
pub struct FjallBackend {
    name: String,
    keyspace: fjall::Keyspace,
}

impl std::fmt::Debug for FjallBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FjallBackend")
            .field("name", &self.name)
            .finish()
    }
}

impl FjallBackend {
    /// Opens (or creates) keyspace `name`.
    pub fn open(db: &fjall::Database, name: &str) -> Result<Self> {
        if name.is_empty() || name.len() > 255 {
            return Err(Error::Topology {
                reason: format!("store keyspace name {name:?} must have 1 to 255 bytes"),
            });
        }
        let keyspace = db
            .keyspace(name, fjall::KeyspaceCreateOptions::default)
            .map_err(Error::store(name))?;
        Ok(FjallBackend {
            name: name.to_string(),
            keyspace,
        })
    }

    /// The keyspace (for interactive queries from other threads).
    pub fn keyspace(&self) -> fjall::Keyspace {
        self.keyspace.clone()
    }
}

pub(crate) fn fjall_range(
    keyspace: &fjall::Keyspace,
    name: &str,
    from: Bound<&[u8]>,
    to: Bound<&[u8]>,
) -> Result<Vec<(Bytes, Bytes)>> {
    if let (Bound::Included(a) | Bound::Excluded(a), Bound::Included(b) | Bound::Excluded(b)) =
        (from, to)
        && a > b
    {
        return Ok(Vec::new());
    }
    let mut out = Vec::new();
    for guard in keyspace.range::<&[u8], _>((from, to)) {
        let (k, v) = guard.into_inner().map_err(Error::store(name))?;
        out.push((Bytes::copy_from_slice(&k), Bytes::copy_from_slice(&v)));
    }
    Ok(out)
}

impl KvBackend for FjallBackend {
    fn get(&self, key: &[u8]) -> Result<Option<Bytes>> {
        let value = self.keyspace.get(key).map_err(Error::store(&self.name))?;
        Ok(value.map(|v| Bytes::copy_from_slice(&v)))
    }
    fn put(&mut self, key: &[u8], value: &[u8]) -> Result<()> {
        self.keyspace
            .insert(key, value)
            .map_err(Error::store(&self.name))
    }
    fn delete(&mut self, key: &[u8]) -> Result<()> {
        self.keyspace.remove(key).map_err(Error::store(&self.name))
    }
    fn range(&self, from: Bound<&[u8]>, to: Bound<&[u8]>) -> Result<Vec<(Bytes, Bytes)>> {
        fjall_range(&self.keyspace, &self.name, from, to)
    }
    fn clear(&mut self) -> Result<()> {
        self.keyspace.clear().map_err(Error::store(&self.name))
    }
    fn approximate_len(&self) -> usize {
        self.keyspace.approximate_len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The contract every backend keeps.
    fn conformance(backend: &mut dyn KvBackend) {
        backend.clear().unwrap();
        assert_eq!(backend.get(b"a").unwrap(), None);
        backend.put(b"b", b"2").unwrap();
        backend.put(b"a", b"1").unwrap();
        backend.put(b"c", b"3").unwrap();
        backend.put(b"b", b"22").unwrap();
        assert_eq!(backend.get(b"b").unwrap().as_deref(), Some(&b"22"[..]));
        backend.delete(b"zz").unwrap();
        let all = backend.range(Bound::Unbounded, Bound::Unbounded).unwrap();
        let keys: Vec<&[u8]> = all.iter().map(|(k, _)| &k[..]).collect();
        assert_eq!(keys, vec![&b"a"[..], b"b", b"c"]);
        let mid = backend
            .range(Bound::Excluded(&b"a"[..]), Bound::Included(&b"b"[..]))
            .unwrap();
        assert_eq!(mid.len(), 1);
        assert_eq!(&mid[0].1[..], b"22");
        assert!(
            backend
                .range(Bound::Included(&b"c"[..]), Bound::Included(&b"a"[..]))
                .unwrap()
                .is_empty()
        );
        backend.delete(b"a").unwrap();
        assert_eq!(backend.get(b"a").unwrap(), None);
        backend.clear().unwrap();
        assert!(
            backend
                .range(Bound::Unbounded, Bound::Unbounded)
                .unwrap()
                .is_empty()
        );
    }

    #[test]
    fn memory_backend_keeps_the_contract() {
        conformance(&mut MemoryBackend::default());
    }

    #[test]
    fn fjall_backend_keeps_the_contract() {
        let dir = tempfile::tempdir().unwrap();
        let db = fjall::Database::builder(dir.path()).open().unwrap();
        conformance(&mut FjallBackend::open(&db, "store.0_1").unwrap());
    }
}
