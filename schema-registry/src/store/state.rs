//! The registry's in-memory state: what reading the `_schemas` topic from the start yields.
//! Pure (no I/O): [`State::apply`] takes one record at a time, in offset order.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;

use bytes::Bytes;
use serde_json::{Value, json};

use super::records::{ConfigValue, DeleteSubjectValue, Mode, ModeValue, RecordKey, SchemaValue};
use crate::compat::CompatibilityLevel;
use crate::error::ApiError;
use crate::schema::{ParsedSchema, SchemaReference, SchemaType, minify_json};

/// A schema by global id.
#[derive(Debug)]
pub struct StoredSchema {
    pub id: i32,
    pub schema_type: SchemaType,
    pub text: String,
    pub references: Vec<SchemaReference>,
    /// `None` when a stored schema no longer parses (kept and served, never compared).
    pub parsed: Option<Arc<ParsedSchema>>,
    /// The `GET /schemas/ids/{id}` body, rendered once.
    pub by_id_body: Bytes,
}

/// What makes two registrations the same schema (and so the same id).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Identity {
    pub schema_type: SchemaType,
    pub normalized: String,
    pub references: Vec<SchemaReference>,
}

/// One version of a subject.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Version {
    pub id: i32,
    pub deleted: bool,
}

/// The registry state.
#[derive(Debug, Default)]
pub struct State {
    schemas: HashMap<i32, Arc<StoredSchema>>,
    identities: HashMap<Identity, i32>,
    /// Versions per id across subjects (hard-deleted ones gone); 0 means the id is not served.
    live: HashMap<i32, usize>,
    subjects: BTreeMap<String, BTreeMap<i32, Version>>,
    global_compat: Option<CompatibilityLevel>,
    subject_compat: HashMap<String, CompatibilityLevel>,
    global_mode: Option<Mode>,
    subject_mode: HashMap<String, Mode>,
    max_id: i32,
}

/// The JSON the API shows for a schema: `schema`, plus `schemaType` unless Avro and
/// `references` when there are some.
pub fn schema_json(mut object: serde_json::Map<String, Value>, stored: &StoredSchema) -> Value {
    if stored.schema_type != SchemaType::Avro {
        object.insert("schemaType".into(), json!(stored.schema_type.as_str()));
    }
    if !stored.references.is_empty() {
        object.insert("references".into(), json!(stored.references));
    }
    object.insert("schema".into(), json!(stored.text));
    Value::Object(object)
}

impl State {
    /// Applies one record. A malformed record is skipped with the reason returned (for a log
    /// line): the topic is shared and must never stop the registry.
    pub fn apply(&mut self, key: &[u8], value: Option<&[u8]>) -> Result<(), String> {
        let Some(key) = RecordKey::parse(key) else {
            return Err("unknown or malformed key".into());
        };
        match key {
            RecordKey::Schema { subject, version } => match value {
                None => {
                    self.remove_version(&subject, version);
                    Ok(())
                }
                Some(bytes) => {
                    let value: SchemaValue =
                        serde_json::from_slice(bytes).map_err(|e| format!("schema value: {e}"))?;
                    if value.subject != subject || value.version != version {
                        return Err("schema value does not match its key".into());
                    }
                    self.put_version(value);
                    Ok(())
                }
            },
            RecordKey::Config { subject } => {
                let level = match value {
                    None => None,
                    Some(b) => Some(
                        serde_json::from_slice::<ConfigValue>(b)
                            .map_err(|e| format!("config value: {e}"))?
                            .compatibility_level,
                    ),
                };
                match (subject, level) {
                    (None, level) => self.global_compat = level,
                    (Some(s), Some(level)) => {
                        self.subject_compat.insert(s, level);
                    }
                    (Some(s), None) => {
                        self.subject_compat.remove(&s);
                    }
                }
                Ok(())
            }
            RecordKey::Mode { subject } => {
                let mode = match value {
                    None => None,
                    Some(b) => Some(
                        serde_json::from_slice::<ModeValue>(b)
                            .map_err(|e| format!("mode value: {e}"))?
                            .mode,
                    ),
                };
                match (subject, mode) {
                    (None, mode) => self.global_mode = mode,
                    (Some(s), Some(mode)) => {
                        self.subject_mode.insert(s, mode);
                    }
                    (Some(s), None) => {
                        self.subject_mode.remove(&s);
                    }
                }
                Ok(())
            }
            RecordKey::DeleteSubject { subject } => {
                let Some(bytes) = value else { return Ok(()) };
                let v: DeleteSubjectValue =
                    serde_json::from_slice(bytes).map_err(|e| format!("delete value: {e}"))?;
                if let Some(versions) = self.subjects.get_mut(&subject) {
                    for (_, entry) in versions.range_mut(..=v.version) {
                        entry.deleted = true;
                    }
                }
                Ok(())
            }
            RecordKey::ClearSubject { subject } => {
                let Some(bytes) = value else { return Ok(()) };
                let v: DeleteSubjectValue =
                    serde_json::from_slice(bytes).map_err(|e| format!("clear value: {e}"))?;
                let versions: Vec<i32> = self
                    .subjects
                    .get(&subject)
                    .map(|m| m.range(..=v.version).map(|(k, _)| *k).collect())
                    .unwrap_or_default();
                for version in versions {
                    self.remove_version(&subject, version);
                }
                Ok(())
            }
            RecordKey::Noop => Ok(()),
        }
    }

    fn put_version(&mut self, value: SchemaValue) {
        let id = value.id;
        if !self.schemas.contains_key(&id) {
            let parsed = self
                .reference_texts(&value.references)
                .ok()
                .and_then(|refs| ParsedSchema::parse(value.schema_type, &value.schema, &refs).ok())
                .map(Arc::new);
            let normalized = parsed
                .as_ref()
                .map(|p| p.normalized().to_string())
                .unwrap_or_else(|| minify_json(&value.schema));
            let identity = Identity {
                schema_type: value.schema_type,
                normalized,
                references: value.references.clone(),
            };
            self.identities.entry(identity).or_insert(id);
            let mut stored = StoredSchema {
                id,
                schema_type: value.schema_type,
                text: value.schema,
                references: value.references,
                parsed,
                by_id_body: Bytes::new(),
            };
            stored.by_id_body =
                Bytes::from(schema_json(serde_json::Map::new(), &stored).to_string());
            self.schemas.insert(id, Arc::new(stored));
        }
        self.max_id = self.max_id.max(id);
        let previous = self.subjects.entry(value.subject).or_default().insert(
            value.version,
            Version {
                id,
                deleted: value.deleted,
            },
        );
        if let Some(previous) = previous {
            self.release(previous.id);
        }
        *self.live.entry(id).or_default() += 1;
    }

    fn release(&mut self, id: i32) {
        if let Some(count) = self.live.get_mut(&id) {
            *count = count.saturating_sub(1);
        }
    }

    fn remove_version(&mut self, subject: &str, version: i32) {
        let Some(versions) = self.subjects.get_mut(subject) else {
            return;
        };
        let removed = versions.remove(&version);
        if versions.is_empty() {
            self.subjects.remove(subject);
        }
        if let Some(removed) = removed {
            self.release(removed.id);
        }
    }

    // --- queries ---------------------------------------------------------------------------

    /// The schema with this id, if some subject version (soft-deleted included) still has it.
    pub fn schema_by_id(&self, id: i32) -> Option<&Arc<StoredSchema>> {
        if self.live.get(&id).copied().unwrap_or(0) == 0 {
            return None;
        }
        self.schemas.get(&id)
    }

    pub fn max_id(&self) -> i32 {
        self.max_id
    }

    pub fn id_of(&self, identity: &Identity) -> Option<i32> {
        self.identities.get(identity).copied()
    }

    /// Subject names, sorted; soft-deleted subjects (all versions deleted) only if asked.
    pub fn subjects(&self, deleted: bool, deleted_only: bool) -> Vec<String> {
        self.subjects
            .iter()
            .filter(|(_, versions)| {
                let any_live = versions.values().any(|v| !v.deleted);
                let any_deleted = versions.values().any(|v| v.deleted);
                if deleted_only {
                    any_deleted
                } else {
                    any_live || deleted
                }
            })
            .map(|(s, _)| s.clone())
            .collect()
    }

    /// Whether a subject has any version, soft-deleted included.
    pub fn subject_exists(&self, subject: &str) -> bool {
        self.subjects.contains_key(subject)
    }

    /// The versions of a subject (ascending) with their entries.
    pub fn versions(&self, subject: &str) -> Vec<(i32, Version)> {
        self.subjects
            .get(subject)
            .map(|m| m.iter().map(|(k, v)| (*k, *v)).collect())
            .unwrap_or_default()
    }

    pub fn version(&self, subject: &str, version: i32) -> Option<Version> {
        self.subjects.get(subject)?.get(&version).copied()
    }

    /// The newest version; soft-deleted ones only when `deleted`.
    pub fn latest(&self, subject: &str, deleted: bool) -> Option<(i32, Version)> {
        self.subjects
            .get(subject)?
            .iter()
            .rev()
            .find(|(_, v)| deleted || !v.deleted)
            .map(|(k, v)| (*k, *v))
    }

    /// The highest version number ever seen for the subject (soft-deleted included).
    pub fn max_version(&self, subject: &str) -> i32 {
        self.subjects
            .get(subject)
            .and_then(|m| m.keys().next_back().copied())
            .unwrap_or(0)
    }

    /// (subject, version) pairs that use this id.
    pub fn versions_of_id(&self, id: i32, deleted: bool) -> Vec<(String, i32)> {
        let mut out = Vec::new();
        for (subject, versions) in &self.subjects {
            for (version, entry) in versions {
                if entry.id == id && (deleted || !entry.deleted) {
                    out.push((subject.clone(), *version));
                }
            }
        }
        out
    }

    /// Ids of schemas (in live subject versions) that reference `subject` `version`.
    pub fn referenced_by(&self, subject: &str, version: i32) -> Vec<i32> {
        let mut ids: Vec<i32> = self
            .subjects
            .values()
            .flat_map(|versions| versions.values())
            .filter_map(|entry| self.schemas.get(&entry.id))
            .filter(|s| {
                s.references
                    .iter()
                    .any(|r| r.subject == subject && r.version == version)
            })
            .map(|s| s.id)
            .collect();
        ids.sort_unstable();
        ids.dedup();
        ids
    }

    /// The texts of the referenced schemas, transitively, dependencies first.
    pub fn reference_texts(&self, references: &[SchemaReference]) -> Result<Vec<String>, ApiError> {
        let mut out = Vec::new();
        let mut seen = HashSet::new();
        for r in references {
            self.collect_reference(r, &mut seen, &mut out, 0)?;
        }
        Ok(out)
    }

    fn collect_reference(
        &self,
        r: &SchemaReference,
        seen: &mut HashSet<(String, i32)>,
        out: &mut Vec<String>,
        depth: usize,
    ) -> Result<(), ApiError> {
        if depth > 32 {
            return Err(ApiError::invalid_schema(
                "references nested deeper than 32 levels",
            ));
        }
        let version = if r.version == -1 {
            self.latest(&r.subject, false).map(|(v, _)| v)
        } else {
            Some(r.version)
        };
        let entry = version.and_then(|v| self.version(&r.subject, v).map(|e| (v, e)));
        let Some((version, entry)) = entry else {
            return Err(ApiError::invalid_schema(&format!(
                "reference '{}' to subject '{}' version {} not found",
                r.name, r.subject, r.version
            )));
        };
        if !seen.insert((r.subject.clone(), version)) {
            return Ok(());
        }
        let Some(stored) = self.schemas.get(&entry.id) else {
            return Err(ApiError::schema_id_not_found(entry.id));
        };
        for nested in &stored.references {
            self.collect_reference(nested, seen, out, depth + 1)?;
        }
        out.push(stored.text.clone());
        Ok(())
    }

    pub fn stored(&self, id: i32) -> Option<&Arc<StoredSchema>> {
        self.schemas.get(&id)
    }

    /// Global compatibility (BACKWARD unless set).
    pub fn global_compatibility(&self) -> CompatibilityLevel {
        self.global_compat.unwrap_or_default()
    }

    pub fn subject_compatibility(&self, subject: &str) -> Option<CompatibilityLevel> {
        self.subject_compat.get(subject).copied()
    }

    pub fn compatibility(&self, subject: &str) -> CompatibilityLevel {
        self.subject_compatibility(subject)
            .unwrap_or_else(|| self.global_compatibility())
    }

    pub fn global_mode(&self) -> Mode {
        self.global_mode.unwrap_or(Mode::Readwrite)
    }

    pub fn subject_mode(&self, subject: &str) -> Option<Mode> {
        self.subject_mode.get(subject).copied()
    }

    pub fn mode(&self, subject: &str) -> Mode {
        self.subject_mode(subject)
            .unwrap_or_else(|| self.global_mode())
    }
}

#[cfg(test)]
#[path = "state_tests.rs"]
mod tests;
