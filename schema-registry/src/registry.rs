//! The registry's operations over the store: registration with compatibility checks and id
//! assignment, lookups, deletes, config and mode. Writes are serialized and go through the
//! topic; reads come from the replayed state.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use bytes::Bytes;

use crate::compat::{self, CompatibilityLevel, Previous};
use crate::error::{ApiError, Result};
use crate::schema::{ParsedSchema, SchemaReference, SchemaType, minify_json};
use crate::store::kafka::KafkaStore;
use crate::store::records::{
    ConfigValue, DeleteSubjectValue, Mode, ModeValue, RecordKey, SchemaValue,
};
use crate::store::state::{Identity, State, StoredSchema};

/// Parsed-schema cache entries kept for lookups before it is cleared.
const PARSE_CACHE_ENTRIES: usize = 10_000;

/// Parsed schemas by (type, text, references), with their normalized text.
type ParseCache = HashMap<(SchemaType, String, Vec<SchemaReference>), (Arc<ParsedSchema>, String)>;

/// Lookup answers by subject and request body, valid while the store's applied offset is
/// `offset` (any write clears them).
#[derive(Debug, Default)]
pub struct LookupCache {
    inner: std::sync::RwLock<LookupEntries>,
}

#[derive(Debug, Default)]
struct LookupEntries {
    offset: i64,
    entries: HashMap<String, HashMap<Bytes, Bytes>>,
    count: usize,
}

impl LookupCache {
    /// The cached answer, if the store is still at `offset`.
    pub fn get(&self, offset: i64, subject: &str, body: &[u8]) -> Option<Bytes> {
        let inner = self.inner.read().unwrap_or_else(|p| p.into_inner());
        if inner.offset != offset {
            return None;
        }
        inner.entries.get(subject)?.get(body).cloned()
    }

    /// Remembers an answer computed when the store was at `offset`.
    pub fn put(&self, offset: i64, subject: &str, body: Bytes, answer: Bytes) {
        let mut inner = self.inner.write().unwrap_or_else(|p| p.into_inner());
        if offset < inner.offset {
            return;
        }
        if offset > inner.offset || inner.count >= PARSE_CACHE_ENTRIES {
            inner.entries.clear();
            inner.count = 0;
            inner.offset = offset;
        }
        inner
            .entries
            .entry(subject.to_string())
            .or_default()
            .insert(body, answer);
        inner.count += 1;
    }
}

/// A schema as submitted to register, look up or test.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SchemaInput {
    pub schema: String,
    pub schema_type: SchemaType,
    pub references: Vec<SchemaReference>,
    /// Explicit id (IMPORT mode).
    pub id: Option<i32>,
    /// Explicit version (IMPORT mode).
    pub version: Option<i32>,
}

/// A version selector: a number or `latest` (`-1`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VersionSpec {
    Latest,
    Number(i32),
}

impl VersionSpec {
    /// Parses a path's version: `latest`, `-1` or a number in 1..=2^31-1; else 42202.
    pub fn parse(text: &str) -> Result<VersionSpec, ApiError> {
        if text.eq_ignore_ascii_case("latest") {
            return Ok(VersionSpec::Latest);
        }
        match text.parse::<i32>() {
            Ok(-1) => Ok(VersionSpec::Latest),
            Ok(n) if n >= 1 => Ok(VersionSpec::Number(n)),
            _ => Err(ApiError::invalid_version(text)),
        }
    }
}

/// A subject version with its schema, as the API shows it.
#[derive(Debug, Clone)]
pub struct SubjectVersion {
    pub subject: String,
    pub version: i32,
    pub schema: Arc<StoredSchema>,
    pub deleted: bool,
}

/// The registry over one store.
pub struct Registry {
    store: Arc<KafkaStore>,
    /// Serializes writes: each decides from the state it reads, then writes and reads back.
    write_lock: tokio::sync::Mutex<()>,
    parse_cache: Mutex<ParseCache>,
    lookups: LookupCache,
}

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registry")
            .field("store", &self.store)
            .finish_non_exhaustive()
    }
}

fn value_bytes<T: serde::Serialize>(value: &T) -> Result<Vec<u8>, ApiError> {
    serde_json::to_vec(value).map_err(|e| ApiError::store(format!("encoding a store record: {e}")))
}

fn check_writable(state: &State, subject: &str) -> Result<Mode, ApiError> {
    let mode = state.mode(subject);
    match mode {
        Mode::Readonly | Mode::ReadonlyOverride => Err(ApiError::not_permitted(format!(
            "Subject {subject} is in read-only mode"
        ))),
        _ => Ok(mode),
    }
}

impl Registry {
    pub fn new(store: Arc<KafkaStore>) -> Self {
        Registry {
            store,
            write_lock: tokio::sync::Mutex::new(()),
            parse_cache: Mutex::new(HashMap::new()),
            lookups: LookupCache::default(),
        }
    }

    pub fn store(&self) -> &Arc<KafkaStore> {
        &self.store
    }

    /// The lookup answer cache.
    pub fn lookups(&self) -> &LookupCache {
        &self.lookups
    }

    /// Parses a submitted schema (references resolved from `state`) and its identity.
    fn parse(
        &self,
        state: &State,
        input: &SchemaInput,
    ) -> Result<(Arc<ParsedSchema>, Identity), ApiError> {
        let key = (
            input.schema_type,
            input.schema.clone(),
            input.references.clone(),
        );
        // Only self-contained schemas: what a reference resolves to can change (a hard-deleted
        // subject starts its versions again at 1).
        let cacheable = input.references.is_empty();
        if cacheable && let Some((parsed, normalized)) = self.cache().get(&key).cloned() {
            let identity = Identity {
                schema_type: input.schema_type,
                normalized,
                references: input.references.clone(),
            };
            return Ok((parsed, identity));
        }
        let references = state.reference_texts(&input.references)?;
        let parsed = ParsedSchema::parse(input.schema_type, &input.schema, &references)
            .map_err(|e| ApiError::invalid_schema(&e))?;
        let parsed = Arc::new(parsed);
        let normalized = parsed.normalized().to_string();
        if cacheable {
            let mut cache = self.cache();
            if cache.len() >= PARSE_CACHE_ENTRIES {
                cache.clear();
            }
            cache.insert(key, (parsed.clone(), normalized.clone()));
        }
        let identity = Identity {
            schema_type: input.schema_type,
            normalized,
            references: input.references.clone(),
        };
        Ok((parsed, identity))
    }

    fn cache(&self) -> std::sync::MutexGuard<'_, ParseCache> {
        self.parse_cache.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The version of `subject` holding this schema, if any.
    fn find_in_subject(
        state: &State,
        subject: &str,
        identity: &Identity,
        deleted: bool,
    ) -> Option<(i32, i32, bool)> {
        let id = state.id_of(identity)?;
        state
            .versions(subject)
            .into_iter()
            .rev()
            .find(|(_, v)| v.id == id && (deleted || !v.deleted))
            .map(|(version, v)| (version, v.id, v.deleted))
    }

    /// The live versions of `subject`, oldest first, that parse (for compatibility checks).
    fn previous(state: &State, subject: &str) -> Vec<(i32, Arc<StoredSchema>)> {
        state
            .versions(subject)
            .into_iter()
            .filter(|(_, v)| !v.deleted)
            .filter_map(|(version, v)| state.stored(v.id).map(|s| (version, s.clone())))
            .collect()
    }

    fn compatibility_messages(
        level: CompatibilityLevel,
        new: &ParsedSchema,
        previous: &[(i32, Arc<StoredSchema>)],
    ) -> Vec<String> {
        let previous: Vec<Previous<'_>> = previous
            .iter()
            .filter_map(|(version, stored)| {
                stored.parsed.as_deref().map(|schema| Previous {
                    version: *version,
                    schema,
                    text: &stored.text,
                })
            })
            .collect();
        compat::check(level, new, &previous)
    }

    /// `POST /subjects/{subject}/versions`: registers and returns the schema's id.
    pub async fn register(
        &self,
        subject: &str,
        input: SchemaInput,
        normalize: bool,
    ) -> Result<i32, ApiError> {
        let _guard = self.write_lock.lock().await;
        // A new leader may not have read everything the previous one wrote.
        self.store.sync().await?;
        let (key, value) = {
            let state = self.store.state();
            let mode = check_writable(&state, subject)?;
            let (parsed, identity) = self.parse(&state, &input)?;
            if let Some((_, id, _)) = Self::find_in_subject(&state, subject, &identity, false)
                && input.id.is_none_or(|wanted| wanted == id)
            {
                return Ok(id);
            }
            let existing_id = state.id_of(&identity);
            let id = match (mode, input.id) {
                (Mode::Import, Some(wanted)) => {
                    if state.stored(wanted).is_some() && existing_id != Some(wanted) {
                        return Err(ApiError::id_does_not_match(format!(
                            "Overwrite new schema with id {wanted} is not permitted."
                        )));
                    }
                    wanted
                }
                (_, Some(wanted)) if existing_id == Some(wanted) => wanted,
                (_, Some(_)) => {
                    return Err(ApiError::not_permitted(format!(
                        "Subject {subject} is not in import mode"
                    )));
                }
                (_, None) => existing_id.unwrap_or(state.max_id() + 1),
            };
            if mode != Mode::Import {
                let previous = Self::previous(&state, subject);
                let messages =
                    Self::compatibility_messages(state.compatibility(subject), &parsed, &previous);
                if !messages.is_empty() {
                    return Err(ApiError::incompatible(subject, &messages));
                }
            }
            let version = match (mode, input.version) {
                (Mode::Import, Some(v)) if v >= 1 => {
                    if state.version(subject, v).is_some() {
                        return Err(ApiError::not_permitted(format!(
                            "Version {v} of subject {subject} already exists"
                        )));
                    }
                    v
                }
                _ => state.max_version(subject) + 1,
            };
            let schema = if normalize {
                parsed.normalized().to_string()
            } else {
                minify_json(&input.schema)
            };
            let value = SchemaValue {
                subject: subject.to_string(),
                version,
                id,
                schema_type: input.schema_type,
                references: input.references.clone(),
                schema,
                deleted: false,
            };
            (
                RecordKey::Schema {
                    subject: subject.to_string(),
                    version,
                },
                value,
            )
        };
        let id = value.id;
        self.store.write(&key, Some(value_bytes(&value)?)).await?;
        tracing::info!(subject, version = value.version, id, "registered a schema");
        Ok(id)
    }

    /// `POST /subjects/{subject}`: the version of `subject` holding this schema.
    pub fn lookup(
        &self,
        subject: &str,
        input: &SchemaInput,
        deleted: bool,
    ) -> Result<SubjectVersion, ApiError> {
        let state = self.store.state();
        if !state.subject_exists(subject) || (!deleted && state.latest(subject, false).is_none()) {
            return Err(ApiError::subject_not_found(subject));
        }
        let (_, identity) = self.parse(&state, input)?;
        let (version, id, is_deleted) = Self::find_in_subject(&state, subject, &identity, deleted)
            .ok_or_else(ApiError::schema_not_found)?;
        let schema = state
            .stored(id)
            .cloned()
            .ok_or_else(ApiError::schema_not_found)?;
        Ok(SubjectVersion {
            subject: subject.to_string(),
            version,
            schema,
            deleted: is_deleted,
        })
    }

    /// A subject's version; soft-deleted versions only with `deleted`.
    pub fn version(
        &self,
        subject: &str,
        spec: VersionSpec,
        deleted: bool,
    ) -> Result<SubjectVersion, ApiError> {
        let state = self.store.state();
        Self::version_in(&state, subject, spec, deleted)
    }

    fn version_in(
        state: &State,
        subject: &str,
        spec: VersionSpec,
        deleted: bool,
    ) -> Result<SubjectVersion, ApiError> {
        if !state.subject_exists(subject) || (!deleted && state.latest(subject, false).is_none()) {
            return Err(ApiError::subject_not_found(subject));
        }
        let (version, entry) = match spec {
            VersionSpec::Latest => state
                .latest(subject, deleted)
                .ok_or_else(|| ApiError::subject_not_found(subject))?,
            VersionSpec::Number(n) => match state.version(subject, n) {
                Some(e) if deleted || !e.deleted => (n, e),
                _ => return Err(ApiError::version_not_found(n)),
            },
        };
        let schema = state
            .stored(entry.id)
            .cloned()
            .ok_or_else(|| ApiError::schema_id_not_found(entry.id))?;
        Ok(SubjectVersion {
            subject: subject.to_string(),
            version,
            schema,
            deleted: entry.deleted,
        })
    }

    /// `POST /compatibility/subjects/{subject}/versions[/{version}]`: whether `input` could be
    /// registered (against one version, or against the versions the subject's level names).
    pub fn test_compatibility(
        &self,
        subject: &str,
        version: Option<VersionSpec>,
        input: &SchemaInput,
    ) -> Result<Vec<String>, ApiError> {
        let state = self.store.state();
        let (parsed, _) = self.parse(&state, input)?;
        let level = state.compatibility(subject);
        let previous = match version {
            None => Self::previous(&state, subject),
            Some(spec) => {
                let v = Self::version_in(&state, subject, spec, false)?;
                vec![(v.version, v.schema)]
            }
        };
        Ok(Self::compatibility_messages(level, &parsed, &previous))
    }

    /// `DELETE /subjects/{subject}`: soft (all versions) or, after that, permanent.
    pub async fn delete_subject(
        &self,
        subject: &str,
        permanent: bool,
    ) -> Result<Vec<i32>, ApiError> {
        let _guard = self.write_lock.lock().await;
        self.store.sync().await?;
        let (versions, latest, config, mode) = {
            let state = self.store.state();
            check_writable(&state, subject)?;
            let versions = state.versions(subject);
            if versions.is_empty() {
                return Err(ApiError::subject_not_found(subject));
            }
            let live: Vec<i32> = versions
                .iter()
                .filter(|(_, v)| !v.deleted)
                .map(|(n, _)| *n)
                .collect();
            if permanent && !live.is_empty() {
                return Err(ApiError::subject_not_soft_deleted(subject));
            }
            if !permanent && live.is_empty() {
                return Err(ApiError::subject_soft_deleted(subject));
            }
            for (version, _) in &versions {
                if !state.referenced_by(subject, *version).is_empty() {
                    return Err(ApiError::reference_exists(subject, *version));
                }
            }
            let latest = versions.last().map(|(n, _)| *n).unwrap_or(0);
            let versions = if permanent {
                versions.iter().map(|(n, _)| *n).collect()
            } else {
                live
            };
            (
                versions,
                latest,
                state.subject_compatibility(subject).is_some(),
                state.subject_mode(subject).is_some(),
            )
        };
        if permanent {
            for version in &versions {
                let key = RecordKey::Schema {
                    subject: subject.to_string(),
                    version: *version,
                };
                self.store.write(&key, None).await?;
            }
            // A permanently deleted subject loses its config and mode too, as in Confluent.
            if config {
                let key = RecordKey::Config {
                    subject: Some(subject.to_string()),
                };
                self.store.write(&key, None).await?;
            }
            if mode {
                let key = RecordKey::Mode {
                    subject: Some(subject.to_string()),
                };
                self.store.write(&key, None).await?;
            }
        } else {
            let key = RecordKey::DeleteSubject {
                subject: subject.to_string(),
            };
            let value = DeleteSubjectValue {
                subject: subject.to_string(),
                version: latest,
            };
            self.store.write(&key, Some(value_bytes(&value)?)).await?;
        }
        tracing::info!(subject, permanent, ?versions, "deleted a subject");
        Ok(versions)
    }

    /// `DELETE /subjects/{subject}/versions/{version}`: soft, or permanent after soft.
    pub async fn delete_version(
        &self,
        subject: &str,
        spec: VersionSpec,
        permanent: bool,
    ) -> Result<i32, ApiError> {
        let _guard = self.write_lock.lock().await;
        self.store.sync().await?;
        let (key, value) = {
            let state = self.store.state();
            check_writable(&state, subject)?;
            if !state.subject_exists(subject) {
                return Err(ApiError::subject_not_found(subject));
            }
            let (version, entry) = match spec {
                VersionSpec::Latest => state
                    .latest(subject, permanent)
                    .ok_or_else(|| ApiError::subject_not_found(subject))?,
                VersionSpec::Number(n) => (
                    n,
                    state
                        .version(subject, n)
                        .ok_or_else(|| ApiError::version_not_found(n))?,
                ),
            };
            if permanent && !entry.deleted {
                return Err(ApiError::version_not_soft_deleted(subject, version));
            }
            if !permanent && entry.deleted {
                return Err(ApiError::version_soft_deleted(subject, version));
            }
            if !state.referenced_by(subject, version).is_empty() {
                return Err(ApiError::reference_exists(subject, version));
            }
            let key = RecordKey::Schema {
                subject: subject.to_string(),
                version,
            };
            let value = if permanent {
                None
            } else {
                let stored = state
                    .stored(entry.id)
                    .ok_or_else(|| ApiError::schema_id_not_found(entry.id))?;
                Some(SchemaValue {
                    subject: subject.to_string(),
                    version,
                    id: entry.id,
                    schema_type: stored.schema_type,
                    references: stored.references.clone(),
                    schema: stored.text.clone(),
                    deleted: true,
                })
            };
            (key, value)
        };
        let version = match &key {
            RecordKey::Schema { version, .. } => *version,
            _ => 0,
        };
        let bytes = value.as_ref().map(value_bytes).transpose()?;
        self.store.write(&key, bytes).await?;
        tracing::info!(subject, version, permanent, "deleted a schema version");
        Ok(version)
    }

    /// `PUT /config[/{subject}]`.
    pub async fn set_config(
        &self,
        subject: Option<&str>,
        level: CompatibilityLevel,
    ) -> Result<(), ApiError> {
        let _guard = self.write_lock.lock().await;
        let key = RecordKey::Config {
            subject: subject.map(str::to_string),
        };
        let value = ConfigValue {
            compatibility_level: level,
        };
        self.store.write(&key, Some(value_bytes(&value)?)).await?;
        Ok(())
    }

    /// `DELETE /config[/{subject}]`: returns the level in force before.
    pub async fn delete_config(
        &self,
        subject: Option<&str>,
    ) -> Result<CompatibilityLevel, ApiError> {
        let _guard = self.write_lock.lock().await;
        let previous = {
            let state = self.store.state();
            match subject {
                None => state.global_compatibility(),
                Some(s) => match state.subject_compatibility(s) {
                    Some(level) => level,
                    None if !state.subject_exists(s) => return Err(ApiError::subject_not_found(s)),
                    None => return Err(ApiError::compatibility_not_configured(s)),
                },
            }
        };
        let key = RecordKey::Config {
            subject: subject.map(str::to_string),
        };
        self.store.write(&key, None).await?;
        Ok(previous)
    }

    /// `PUT /mode[/{subject}]`. IMPORT needs an empty registry (or subject) unless `force`.
    pub async fn set_mode(
        &self,
        subject: Option<&str>,
        mode: Mode,
        force: bool,
    ) -> Result<(), ApiError> {
        let _guard = self.write_lock.lock().await;
        if mode == Mode::Import && !force {
            let state = self.store.state();
            let occupied = match subject {
                None => !state.subjects(true, false).is_empty(),
                Some(s) => state.subject_exists(s),
            };
            if occupied {
                return Err(ApiError::not_permitted(
                    "Cannot import since found existing subjects",
                ));
            }
        }
        let key = RecordKey::Mode {
            subject: subject.map(str::to_string),
        };
        self.store
            .write(&key, Some(value_bytes(&ModeValue { mode })?))
            .await?;
        Ok(())
    }

    /// `DELETE /mode/{subject}`: returns the mode in force before.
    pub async fn delete_mode(&self, subject: &str) -> Result<Mode, ApiError> {
        let _guard = self.write_lock.lock().await;
        let previous = {
            let state = self.store.state();
            match state.subject_mode(subject) {
                Some(mode) => mode,
                None => return Err(ApiError::mode_not_configured(subject)),
            }
        };
        let key = RecordKey::Mode {
            subject: Some(subject.to_string()),
        };
        self.store.write(&key, None).await?;
        Ok(previous)
    }
}
