//! Schemas (`org.apache.kafka.connect.data.Schema`).

use std::collections::BTreeMap;

use super::Value;

/// A schema's type, named as in Kafka Connect (`int32`, `struct`, ...).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SchemaType {
    Int8,
    Int16,
    Int32,
    Int64,
    Float32,
    Float64,
    Boolean,
    String,
    Bytes,
    Array,
    Map,
    Struct,
}

impl SchemaType {
    /// Kafka Connect's name of the type (the JSON envelope's `type`).
    pub fn name(self) -> &'static str {
        match self {
            SchemaType::Int8 => "int8",
            SchemaType::Int16 => "int16",
            SchemaType::Int32 => "int32",
            SchemaType::Int64 => "int64",
            SchemaType::Float32 => "float",
            SchemaType::Float64 => "double",
            SchemaType::Boolean => "boolean",
            SchemaType::String => "string",
            SchemaType::Bytes => "bytes",
            SchemaType::Array => "array",
            SchemaType::Map => "map",
            SchemaType::Struct => "struct",
        }
    }

    /// The type with this name (`float32`/`float64` accepted as well).
    pub fn from_name(name: &str) -> Option<Self> {
        Some(match name {
            "int8" => SchemaType::Int8,
            "int16" => SchemaType::Int16,
            "int32" => SchemaType::Int32,
            "int64" => SchemaType::Int64,
            "float" | "float32" => SchemaType::Float32,
            "double" | "float64" => SchemaType::Float64,
            "boolean" => SchemaType::Boolean,
            "string" => SchemaType::String,
            "bytes" => SchemaType::Bytes,
            "array" => SchemaType::Array,
            "map" => SchemaType::Map,
            "struct" => SchemaType::Struct,
            _ => return None,
        })
    }

    pub fn is_primitive(self) -> bool {
        !matches!(
            self,
            SchemaType::Array | SchemaType::Map | SchemaType::Struct
        )
    }
}

/// A field of a struct schema.
#[derive(Debug, Clone, PartialEq)]
pub struct Field {
    pub name: String,
    pub index: usize,
    pub schema: Schema,
}

/// A Connect schema.
#[derive(Debug, Clone, PartialEq)]
pub struct Schema {
    pub type_: SchemaType,
    pub optional: bool,
    pub default: Option<Box<Value>>,
    pub name: Option<String>,
    pub version: Option<i32>,
    pub doc: Option<String>,
    pub parameters: BTreeMap<String, String>,
    /// Struct fields, in order.
    pub fields: Vec<Field>,
    /// Map key schema.
    pub key_schema: Option<Box<Schema>>,
    /// Array element or map value schema.
    pub value_schema: Option<Box<Schema>>,
}

impl Schema {
    /// A required schema of this type.
    pub fn new(type_: SchemaType) -> Self {
        Schema {
            type_,
            optional: false,
            default: None,
            name: None,
            version: None,
            doc: None,
            parameters: BTreeMap::new(),
            fields: Vec::new(),
            key_schema: None,
            value_schema: None,
        }
    }

    pub fn optional(mut self) -> Self {
        self.optional = true;
        self
    }

    pub fn named(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }

    /// An empty struct schema; add fields with [`Schema::field`].
    pub fn struct_() -> Self {
        Schema::new(SchemaType::Struct)
    }

    /// Adds a struct field.
    pub fn field(mut self, name: impl Into<String>, schema: Schema) -> Self {
        let index = self.fields.len();
        self.fields.push(Field {
            name: name.into(),
            index,
            schema,
        });
        self
    }

    pub fn array(element: Schema) -> Self {
        let mut s = Schema::new(SchemaType::Array);
        s.value_schema = Some(Box::new(element));
        s
    }

    pub fn map(key: Schema, value: Schema) -> Self {
        let mut s = Schema::new(SchemaType::Map);
        s.key_schema = Some(Box::new(key));
        s.value_schema = Some(Box::new(value));
        s
    }

    pub fn string() -> Self {
        Schema::new(SchemaType::String)
    }

    pub fn int32() -> Self {
        Schema::new(SchemaType::Int32)
    }

    pub fn int64() -> Self {
        Schema::new(SchemaType::Int64)
    }

    pub fn float64() -> Self {
        Schema::new(SchemaType::Float64)
    }

    pub fn boolean() -> Self {
        Schema::new(SchemaType::Boolean)
    }

    pub fn bytes() -> Self {
        Schema::new(SchemaType::Bytes)
    }

    /// The struct field with this name.
    pub fn field_named(&self, name: &str) -> Option<&Field> {
        self.fields.iter().find(|f| f.name == name)
    }

    /// Renumbers the fields after edits.
    pub fn reindex(&mut self) {
        for (i, f) in self.fields.iter_mut().enumerate() {
            f.index = i;
        }
    }
}
