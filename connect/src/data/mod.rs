//! Connect's data model: schemas, values and records, as in `org.apache.kafka.connect.data`.

mod record;
mod schema;
mod value;

pub use record::{ConnectRecord, Header, SinkRecord, SourceRecord};
pub use schema::{Field, Schema, SchemaType};
pub use value::Value;

/// Logical type names Kafka Connect puts on primitive schemas.
pub mod logical {
    pub const TIMESTAMP: &str = "org.apache.kafka.connect.data.Timestamp";
    pub const DATE: &str = "org.apache.kafka.connect.data.Date";
    pub const TIME: &str = "org.apache.kafka.connect.data.Time";
    pub const DECIMAL: &str = "org.apache.kafka.connect.data.Decimal";
}
