//! `InsertHeader` (`header`, `value.literal`), `DropHeaders` (`headers`) and `HeaderFrom`
//! (`fields`, `headers`, `operation` move|copy).

use super::{Settings, Target, Transform, fields_of, rebuild, require_struct};
use crate::converter::header::parse_string;
use crate::data::{ConnectRecord, Header, Schema, Value};
use crate::error::{Error, Result};

pub(crate) struct InsertHeader {
    header: String,
    schema: Option<Schema>,
    value: Value,
}

impl InsertHeader {
    pub(crate) fn new(s: &Settings<'_>) -> Result<Self> {
        // Kafka parses the literal (`Values.parseString`): "42" is an int8 header.
        let (schema, value) = parse_string(s.required("value.literal")?);
        Ok(InsertHeader {
            header: s.required("header")?.to_string(),
            schema,
            value,
        })
    }
}

impl Transform for InsertHeader {
    fn apply(&self, mut record: ConnectRecord) -> Result<Option<ConnectRecord>> {
        record.headers.push(Header {
            key: self.header.clone(),
            schema: self.schema.clone(),
            value: self.value.clone(),
        });
        Ok(Some(record))
    }
}

pub(crate) struct DropHeaders {
    headers: Vec<String>,
}

impl DropHeaders {
    pub(crate) fn new(s: &Settings<'_>) -> Result<Self> {
        let headers = s.list("headers");
        if headers.is_empty() {
            return Err(Error::MissingConfig {
                key: s.key("headers"),
            });
        }
        Ok(DropHeaders { headers })
    }
}

impl Transform for DropHeaders {
    fn apply(&self, mut record: ConnectRecord) -> Result<Option<ConnectRecord>> {
        record.headers.retain(|h| !self.headers.contains(&h.key));
        Ok(Some(record))
    }
}

pub(crate) struct HeaderFrom {
    target: Target,
    fields: Vec<String>,
    headers: Vec<String>,
    move_: bool,
}

impl HeaderFrom {
    pub(crate) fn new(s: &Settings<'_>, target: Target) -> Result<Self> {
        let fields = s.list("fields");
        let headers = s.list("headers");
        if fields.is_empty() || fields.len() != headers.len() {
            return Err(s.bad(
                "headers",
                "'fields' config must have the same number of elements as 'headers' config.",
            ));
        }
        let move_ = match s.required("operation")? {
            "move" => true,
            "copy" => false,
            _ => return Err(s.bad("operation", "String must be one of: move, copy")),
        };
        Ok(HeaderFrom {
            target,
            fields,
            headers,
            move_,
        })
    }
}

impl Transform for HeaderFrom {
    fn apply(&self, mut record: ConnectRecord) -> Result<Option<ConnectRecord>> {
        let (schema, value) = self.target.take(&mut record);
        require_struct(schema.as_ref(), "header from")?;
        let Some((is_struct, mut fields)) = fields_of(value.clone()) else {
            self.target.set(&mut record, schema, value);
            return Ok(Some(record));
        };
        for (field, header) in self.fields.iter().zip(&self.headers) {
            let v = fields
                .iter()
                .find(|(n, _)| n == field)
                .map(|(_, v)| v.clone())
                .unwrap_or(Value::Null);
            let field_schema = schema
                .as_ref()
                .and_then(|s| s.field_named(field))
                .map(|f| f.schema.clone());
            record.headers.push(Header {
                key: header.clone(),
                schema: field_schema,
                value: v,
            });
        }
        let mut schema = schema;
        if self.move_ {
            fields.retain(|(n, _)| !self.fields.contains(n));
            if let Some(s) = &mut schema {
                s.fields.retain(|f| !self.fields.contains(&f.name));
                s.reindex();
            }
        }
        self.target
            .set(&mut record, schema, rebuild(is_struct, fields));
        Ok(Some(record))
    }
}

#[cfg(test)]
mod tests {
    use super::super::TransformChain;
    use super::super::tests::cfg;
    use crate::data::{ConnectRecord, Header, Value};

    #[test]
    fn insert_drop_and_header_from() {
        let chain = TransformChain::from_config(&cfg(&[
            ("transforms", "ins,drop,from"),
            (
                "transforms.ins.type",
                "org.apache.kafka.connect.transforms.InsertHeader",
            ),
            ("transforms.ins.header", "source"),
            ("transforms.ins.value.literal", "fjord"),
            ("transforms.drop.type", "DropHeaders"),
            ("transforms.drop.headers", "secret"),
            ("transforms.from.type", "HeaderFrom$Value"),
            ("transforms.from.fields", "id"),
            ("transforms.from.headers", "record-id"),
            ("transforms.from.operation", "move"),
        ]))
        .unwrap();
        let mut r = ConnectRecord::new(
            "t",
            None,
            Value::Map(vec![
                (Value::from("id"), Value::Int(5)),
                (Value::from("n"), Value::from("x")),
            ]),
        );
        r.headers.push(Header::string("secret", None));
        let out = chain.apply(r).unwrap().unwrap();
        let keys: Vec<_> = out.headers.iter().map(|h| h.key.as_str()).collect();
        assert_eq!(keys, ["source", "record-id"]);
        assert_eq!(out.headers[0].value, Value::from("fjord"));
        assert_eq!(out.headers[1].value, Value::Int(5));
        assert_eq!(
            out.value,
            Value::Map(vec![(Value::from("n"), Value::from("x"))])
        );
    }
}
