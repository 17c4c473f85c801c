//! Operator parameters: serdes, store names, partitioners, timestamp extractors.

use std::sync::Arc;

use crate::serdes::SerdeRef;
use crate::topology::Graph;

/// Picks a record's event time from its key, value and the record's own timestamp.
pub type TimestampExtractor<K, V> = Arc<dyn Fn(&K, &V, i64) -> i64 + Send + Sync>;

/// How a source topic is read.
pub struct Consumed<K, V> {
    pub(crate) key_serde: SerdeRef<K>,
    pub(crate) value_serde: SerdeRef<V>,
    pub(crate) extractor: Option<TimestampExtractor<K, V>>,
}

impl<K: 'static, V: 'static> Consumed<K, V> {
    /// With these serdes and the record timestamps as event time.
    pub fn with(key_serde: SerdeRef<K>, value_serde: SerdeRef<V>) -> Self {
        Consumed {
            key_serde,
            value_serde,
            extractor: None,
        }
    }

    /// Event time from `extractor(key, value, record timestamp)`.
    pub fn with_timestamp_extractor(
        mut self,
        extractor: impl Fn(&K, &V, i64) -> i64 + Send + Sync + 'static,
    ) -> Self {
        self.extractor = Some(Arc::new(extractor));
        self
    }
}

/// A partitioner for sinks: `(key, value, partition count) -> partition`.
pub type StreamPartitioner<K, V> = Arc<dyn Fn(&K, &V, i32) -> i32 + Send + Sync>;

/// How a sink topic is written.
pub struct Produced<K, V> {
    pub(crate) key_serde: SerdeRef<K>,
    pub(crate) value_serde: SerdeRef<V>,
    pub(crate) partitioner: Option<StreamPartitioner<K, V>>,
}

impl<K: 'static, V: 'static> Clone for Produced<K, V> {
    fn clone(&self) -> Self {
        Produced {
            key_serde: self.key_serde.clone(),
            value_serde: self.value_serde.clone(),
            partitioner: self.partitioner.clone(),
        }
    }
}

impl<K: 'static, V: 'static> Produced<K, V> {
    /// With these serdes and the producer's partitioner (murmur2 of the key bytes).
    pub fn with(key_serde: SerdeRef<K>, value_serde: SerdeRef<V>) -> Self {
        Produced {
            key_serde,
            value_serde,
            partitioner: None,
        }
    }

    /// Picks the partition with `partitioner(key, value, partition count)`.
    pub fn with_partitioner(
        mut self,
        partitioner: impl Fn(&K, &V, i32) -> i32 + Send + Sync + 'static,
    ) -> Self {
        self.partitioner = Some(Arc::new(partitioner));
        self
    }
}

/// Serdes for a grouping (and its repartition topic, when the key changed).
pub struct Grouped<K, V> {
    pub(crate) key_serde: SerdeRef<K>,
    pub(crate) value_serde: SerdeRef<V>,
    pub(crate) name: Option<String>,
}

impl<K: 'static, V: 'static> Clone for Grouped<K, V> {
    fn clone(&self) -> Self {
        Grouped {
            key_serde: self.key_serde.clone(),
            value_serde: self.value_serde.clone(),
            name: self.name.clone(),
        }
    }
}

impl<K: 'static, V: 'static> Grouped<K, V> {
    /// With these serdes.
    pub fn with(key_serde: SerdeRef<K>, value_serde: SerdeRef<V>) -> Self {
        Grouped {
            key_serde,
            value_serde,
            name: None,
        }
    }

    /// Names the repartition topic `{application.id}-{name}-repartition`.
    pub fn named(mut self, name: &str) -> Self {
        self.name = Some(name.to_string());
        self
    }
}

/// Serdes for the two sides of a join (and its repartition topics).
pub struct Joined<K, V, VO> {
    pub(crate) key_serde: SerdeRef<K>,
    pub(crate) value_serde: SerdeRef<V>,
    pub(crate) other_serde: SerdeRef<VO>,
    pub(crate) name: Option<String>,
}

impl<K: 'static, V: 'static, VO: 'static> Joined<K, V, VO> {
    /// With these serdes (key, this side's values, the other side's values).
    pub fn with(
        key_serde: SerdeRef<K>,
        value_serde: SerdeRef<V>,
        other_serde: SerdeRef<VO>,
    ) -> Self {
        Joined {
            key_serde,
            value_serde,
            other_serde,
            name: None,
        }
    }

    /// Names the join's stores and internal topics.
    pub fn named(mut self, name: &str) -> Self {
        self.name = Some(name.to_string());
        self
    }
}

/// A state store's name and serdes.
pub struct Materialized<K, V> {
    pub(crate) name: Option<String>,
    pub(crate) key_serde: Option<SerdeRef<K>>,
    pub(crate) value_serde: Option<SerdeRef<V>>,
    pub(crate) retention: Option<i64>,
}

impl<K: 'static, V: 'static> Default for Materialized<K, V> {
    fn default() -> Self {
        Materialized {
            name: None,
            key_serde: None,
            value_serde: None,
            retention: None,
        }
    }
}

impl<K: 'static, V: 'static> Materialized<K, V> {
    /// A store named `name` (its changelog: `{application.id}-{name}-changelog`).
    pub fn as_store(name: &str) -> Self {
        Materialized {
            name: Some(name.to_string()),
            ..Self::default()
        }
    }

    /// A store with a generated name.
    pub fn unnamed() -> Self {
        Self::default()
    }

    /// The key serde (where the operator does not know it).
    pub fn with_key_serde(mut self, serde: SerdeRef<K>) -> Self {
        self.key_serde = Some(serde);
        self
    }

    /// The value serde (where the operator does not know it).
    pub fn with_value_serde(mut self, serde: SerdeRef<V>) -> Self {
        self.value_serde = Some(serde);
        self
    }

    /// How long a window store keeps windows (default: size + grace).
    pub fn with_retention(mut self, ms: i64) -> Self {
        self.retention = Some(ms);
        self
    }

    pub(crate) fn name_or(&self, graph: &Graph, what: &str) -> String {
        self.name
            .clone()
            .unwrap_or_else(|| format!("{what}-{:010}-store", graph.next_id()))
    }
}
