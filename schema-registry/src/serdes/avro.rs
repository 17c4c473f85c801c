//! Avro serializer and deserializer over the wire format.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use apache_avro::Schema;
use apache_avro::reader::datum::GenericDatumReader;
use apache_avro::types::Value;
use apache_avro::writer::datum::GenericDatumWriter;

use super::client::RegistryClient;
use super::strategy::SubjectNameStrategy;
use super::{decode, encode};
use crate::error::{Error, Result};
use crate::schema::{AvroSchema, SchemaReference};

fn avro_error(operation: &'static str) -> impl FnOnce(apache_avro::Error) -> Error {
    move |source| Error::Avro {
        operation,
        source: Box::new(source),
    }
}

/// Serializes values of one writer schema, registering it (or looking it up) under the
/// subject its strategy names.
#[derive(Debug)]
pub struct AvroSerializer {
    client: Arc<RegistryClient>,
    schema: AvroSchema,
    text: String,
    references: Vec<SchemaReference>,
    strategy: SubjectNameStrategy,
    is_key: bool,
    /// Confluent's `auto.register.schemas` (default true); false looks the schema up.
    pub auto_register: bool,
}

impl AvroSerializer {
    /// A serializer for `schema` (Avro JSON text).
    pub fn new(
        client: Arc<RegistryClient>,
        schema: &str,
        strategy: SubjectNameStrategy,
        is_key: bool,
    ) -> Result<Self> {
        let parsed = AvroSchema::parse(schema, &[])
            .map_err(|reason| Error::InvalidSchema { id: -1, reason })?;
        Ok(AvroSerializer {
            client,
            schema: parsed,
            text: schema.to_string(),
            references: Vec::new(),
            strategy,
            is_key,
            auto_register: true,
        })
    }

    /// A serializer for a schema that references others (`{name, subject, version}`); the
    /// referenced schemas are fetched from the registry.
    pub async fn with_references(
        client: Arc<RegistryClient>,
        schema: &str,
        references: Vec<SchemaReference>,
        strategy: SubjectNameStrategy,
        is_key: bool,
    ) -> Result<Self> {
        let texts = client.reference_texts(&references).await?;
        let parsed = AvroSchema::parse(schema, &texts)
            .map_err(|reason| Error::InvalidSchema { id: -1, reason })?;
        Ok(AvroSerializer {
            client,
            schema: parsed,
            text: schema.to_string(),
            references,
            strategy,
            is_key,
            auto_register: true,
        })
    }

    /// The subject this serializer uses for `topic`.
    pub fn subject(&self, topic: &str) -> Result<String> {
        let name = self.schema.full_name();
        self.strategy.subject(topic, self.is_key, name.as_deref())
    }

    /// Encodes `value` (resolved against the schema first) in the wire format.
    pub async fn serialize(&self, topic: &str, value: Value) -> Result<Vec<u8>> {
        let subject = self.subject(topic)?;
        let id = if self.auto_register {
            self.client
                .register_with_references(&subject, &self.text, &self.references)
                .await?
        } else {
            self.client
                .lookup_with_references(&subject, &self.text, &self.references)
                .await?
        };
        let schema = self.schema.schema();
        let schemata: Vec<&Schema> = self.schema.schemata().iter().collect();
        let payload = if schemata.is_empty() {
            value.resolve(schema).and_then(|value| {
                GenericDatumWriter::builder(schema)
                    .build()
                    .and_then(|writer| writer.write_value_to_vec(value))
            })
        } else {
            value
                .resolve_schemata(schema, schemata.clone())
                .and_then(|value| {
                    GenericDatumWriter::builder(schema)
                        .schemata(schemata)
                        .and_then(|b| b.build())
                        .and_then(|writer| writer.write_value_to_vec(value))
                })
        }
        .map_err(avro_error("encoding"))?;
        Ok(encode(id, &payload))
    }

    /// [`serialize`](Self::serialize) from JSON.
    pub async fn serialize_json(&self, topic: &str, value: &serde_json::Value) -> Result<Vec<u8>> {
        let value = Value::try_from(value.clone()).map_err(avro_error("JSON conversion"))?;
        self.serialize(topic, value).await
    }
}

/// Deserializes wire-format messages with the writer schema fetched by id (cached), optionally
/// resolved to a reader schema.
#[derive(Debug)]
pub struct AvroDeserializer {
    client: Arc<RegistryClient>,
    reader: Option<Schema>,
    writers: Mutex<HashMap<i32, Arc<AvroSchema>>>,
}

impl AvroDeserializer {
    /// Reads data as it was written.
    pub fn new(client: Arc<RegistryClient>) -> Self {
        AvroDeserializer {
            client,
            reader: None,
            writers: Mutex::new(HashMap::new()),
        }
    }

    /// Reads data into `reader_schema` by Avro schema resolution.
    pub fn with_reader_schema(client: Arc<RegistryClient>, reader_schema: &str) -> Result<Self> {
        let reader = AvroSchema::parse(reader_schema, &[])
            .map_err(|reason| Error::InvalidSchema { id: -1, reason })?;
        Ok(AvroDeserializer {
            client,
            reader: Some(reader.schema().clone()),
            writers: Mutex::new(HashMap::new()),
        })
    }

    /// The writer schema of `id`, its references resolved through the registry.
    async fn writer(&self, id: i32) -> Result<Arc<AvroSchema>> {
        if let Some(found) = self
            .writers
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&id)
        {
            return Ok(found.clone());
        }
        let fetched = self.client.schema_by_id(id).await?;
        let references = self.client.reference_texts(&fetched.references).await?;
        let parsed = AvroSchema::parse(&fetched.schema, &references)
            .map_err(|reason| Error::InvalidSchema { id, reason })?;
        let schema = Arc::new(parsed);
        self.writers
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(id, schema.clone());
        Ok(schema)
    }

    /// Decodes a wire-format message.
    pub async fn deserialize(&self, bytes: &[u8]) -> Result<Value> {
        let (id, mut payload) = decode(bytes)?;
        let writer = self.writer(id).await?;
        let schemata: Vec<&Schema> = writer.schemata().iter().collect();
        let reader = if schemata.is_empty() {
            GenericDatumReader::builder(writer.schema())
                .maybe_reader_schema(self.reader.as_ref())
                .build()
        } else {
            GenericDatumReader::builder(writer.schema())
                .writer_schemata(schemata)
                .and_then(|b| b.maybe_reader_schema(self.reader.as_ref()).build())
        };
        reader
            .and_then(|reader| reader.read_value(&mut payload))
            .map_err(avro_error("decoding"))
    }

    /// [`deserialize`](Self::deserialize) to JSON.
    pub async fn deserialize_json(&self, bytes: &[u8]) -> Result<serde_json::Value> {
        let value = self.deserialize(bytes).await?;
        serde_json::Value::try_from(value).map_err(avro_error("JSON conversion"))
    }
}
