//! Avro schema resolution as a compatibility check: can a reader schema decode data written with
//! a writer schema? Follows the Avro specification's resolution rules (and the reference Java
//! `SchemaCompatibility` checker that Confluent's registry uses), reporting every
//! incompatibility with its location instead of stopping at the first.
//!
//! Logical types are compared by their underlying type, as the Java checker does.

use std::cell::Cell;
use std::collections::HashSet;
use std::fmt;
use std::rc::Rc;

use apache_avro::Schema;
use apache_avro::schema::{
    DecimalSchema, FixedSchema, InnerDecimalSchema, RecordSchema, UuidSchema,
};

use crate::schema::avro::AvroSchema;

/// Kinds of incompatibility, named as Avro's Java `SchemaIncompatibilityType`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IncompatibilityKind {
    NameMismatch,
    FixedSizeMismatch,
    MissingEnumSymbols,
    ReaderFieldMissingDefaultValue,
    TypeMismatch,
    MissingUnionBranch,
}

impl IncompatibilityKind {
    /// The Java enum constant's name, as Confluent prints it.
    pub fn as_str(self) -> &'static str {
        match self {
            IncompatibilityKind::NameMismatch => "NAME_MISMATCH",
            IncompatibilityKind::FixedSizeMismatch => "FIXED_SIZE_MISMATCH",
            IncompatibilityKind::MissingEnumSymbols => "MISSING_ENUM_SYMBOLS",
            IncompatibilityKind::ReaderFieldMissingDefaultValue => {
                "READER_FIELD_MISSING_DEFAULT_VALUE"
            }
            IncompatibilityKind::TypeMismatch => "TYPE_MISMATCH",
            IncompatibilityKind::MissingUnionBranch => "MISSING_UNION_BRANCH",
        }
    }
}

/// One reason the reader cannot decode the writer's data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Incompatibility {
    pub kind: IncompatibilityKind,
    /// JSON-pointer-like path in the reader schema, e.g. `/fields/1/type`.
    pub location: String,
    /// The detail Confluent calls `additionalInfo`.
    pub info: String,
}

impl fmt::Display for Incompatibility {
    /// Confluent's verbose format:
    /// `{errorType:'TYPE_MISMATCH', description:'...', additionalInfo:'...'}`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let path = &self.location;
        let description = match self.kind {
            IncompatibilityKind::ReaderFieldMissingDefaultValue => format!(
                "The field '{}' at path '{path}' in the new schema has no default value and is missing in the old schema",
                self.info
            ),
            IncompatibilityKind::TypeMismatch => format!(
                "The type (path '{path}') of a field in the new schema does not match with the old schema"
            ),
            IncompatibilityKind::NameMismatch => {
                format!("The name of the schema has changed (path '{path}')")
            }
            IncompatibilityKind::FixedSizeMismatch => format!(
                "The size of FIXED type field at path '{path}' in the new schema does not match with the old schema"
            ),
            IncompatibilityKind::MissingEnumSymbols => format!(
                "The new schema is missing enum symbols '{}' at path '{path}' in the old schema",
                self.info
            ),
            IncompatibilityKind::MissingUnionBranch => format!(
                "The new schema is missing a type inside a union field at path '{path}' in the old schema"
            ),
        };
        write!(
            f,
            "{{errorType:'{}', description:'{description}', additionalInfo:'{}'}}",
            self.kind.as_str(),
            self.info
        )
    }
}

/// Every incompatibility met when `reader` resolves data written with `writer`; empty when the
/// reader can read all of the writer's data.
pub fn check(reader: &AvroSchema, writer: &AvroSchema) -> Vec<Incompatibility> {
    let budget = Rc::new(Cell::new(COMPARISON_BUDGET));
    let mut checker = Checker {
        reader,
        writer,
        visiting: HashSet::new(),
        out: Vec::new(),
        budget: budget.clone(),
    };
    let mut path = Vec::new();
    checker.compare(reader.schema(), writer.schema(), &mut path);
    if budget.get() == 0 {
        checker.out.push(Incompatibility {
            kind: IncompatibilityKind::TypeMismatch,
            location: "/".into(),
            info: format!(
                "the schemas are too complex to compare (more than {COMPARISON_BUDGET} type comparisons)"
            ),
        });
    }
    checker.out
}

/// Type comparisons one check may make. Union branches are probed against each other, so
/// crafted schemas with unions nested in records nested in unions could otherwise make the
/// work exponential in their depth; real schemas stay far below this.
const COMPARISON_BUDGET: u64 = 1_000_000;

/// A schema with logical types reduced to their underlying Avro type.
#[derive(Clone, Copy)]
enum Kind<'a> {
    Null,
    Boolean,
    Int,
    Long,
    Float,
    Double,
    Bytes,
    String,
    Array(&'a Schema),
    Map(&'a Schema),
    Union(&'a [Schema]),
    Record(&'a RecordSchema),
    Enum(&'a apache_avro::schema::EnumSchema),
    Fixed(&'a FixedSchema),
}

impl Kind<'_> {
    fn type_name(&self) -> &'static str {
        match self {
            Kind::Null => "NULL",
            Kind::Boolean => "BOOLEAN",
            Kind::Int => "INT",
            Kind::Long => "LONG",
            Kind::Float => "FLOAT",
            Kind::Double => "DOUBLE",
            Kind::Bytes => "BYTES",
            Kind::String => "STRING",
            Kind::Array(_) => "ARRAY",
            Kind::Map(_) => "MAP",
            Kind::Union(_) => "UNION",
            Kind::Record(_) => "RECORD",
            Kind::Enum(_) => "ENUM",
            Kind::Fixed(_) => "FIXED",
        }
    }
}

struct Checker<'a> {
    reader: &'a AvroSchema,
    writer: &'a AvroSchema,
    /// (reader, writer) pairs being compared, to stop on recursive types.
    visiting: HashSet<(usize, usize)>,
    out: Vec<Incompatibility>,
    /// Comparisons left, shared with the probes.
    budget: Rc<Cell<u64>>,
}

fn location(path: &[String]) -> String {
    if path.is_empty() {
        "/".to_string()
    } else {
        format!("/{}", path.join("/"))
    }
}

impl<'a> Checker<'a> {
    /// Resolves references and logical types. An unresolvable reference (which parsing rules
    /// out) is treated as `null`, which then mismatches.
    fn kind(side: &'a AvroSchema, schema: &'a Schema) -> Kind<'a> {
        let mut schema = schema;
        // Bounded: a reference names a record, enum or fixed, never another reference.
        for _ in 0..4 {
            if let Schema::Ref { name } = schema {
                match side.named(&name.fullname(None)) {
                    Some(target) => schema = target,
                    None => return Kind::Null,
                }
            } else {
                break;
            }
        }
        match schema {
            Schema::Null | Schema::Ref { .. } => Kind::Null,
            Schema::Boolean => Kind::Boolean,
            Schema::Int | Schema::Date | Schema::TimeMillis => Kind::Int,
            Schema::Long
            | Schema::TimeMicros
            | Schema::TimestampMillis
            | Schema::TimestampMicros
            | Schema::TimestampNanos
            | Schema::LocalTimestampMillis
            | Schema::LocalTimestampMicros
            | Schema::LocalTimestampNanos => Kind::Long,
            Schema::Float => Kind::Float,
            Schema::Double => Kind::Double,
            Schema::Bytes
            | Schema::BigDecimal
            | Schema::Uuid(UuidSchema::Bytes)
            | Schema::Decimal(DecimalSchema {
                inner: InnerDecimalSchema::Bytes,
                ..
            }) => Kind::Bytes,
            Schema::String | Schema::Uuid(UuidSchema::String) => Kind::String,
            Schema::Array(a) => Kind::Array(&a.items),
            Schema::Map(m) => Kind::Map(&m.types),
            Schema::Union(u) => Kind::Union(u.variants()),
            Schema::Record(r) => Kind::Record(r),
            Schema::Enum(e) => Kind::Enum(e),
            Schema::Fixed(f)
            | Schema::Duration(f)
            | Schema::Uuid(UuidSchema::Fixed(f))
            | Schema::Decimal(DecimalSchema {
                inner: InnerDecimalSchema::Fixed(f),
                ..
            }) => Kind::Fixed(f),
        }
    }

    fn push(&mut self, kind: IncompatibilityKind, path: &[String], info: String) {
        self.out.push(Incompatibility {
            kind,
            location: location(path),
            info,
        });
    }

    fn compare(&mut self, reader: &'a Schema, writer: &'a Schema, path: &mut Vec<String>) {
        let r = Self::kind(self.reader, reader);
        let w = Self::kind(self.writer, writer);
        self.compare_kinds(r, w, path);
    }

    fn compare_kinds(&mut self, r: Kind<'a>, w: Kind<'a>, path: &mut Vec<String>) {
        let left = self.budget.get();
        if left == 0 {
            return;
        }
        self.budget.set(left - 1);
        match (r, w) {
            (Kind::Null, Kind::Null)
            | (Kind::Boolean, Kind::Boolean)
            | (Kind::Int, Kind::Int)
            | (Kind::Long, Kind::Long)
            | (Kind::Float, Kind::Float)
            | (Kind::Double, Kind::Double)
            | (Kind::Bytes, Kind::Bytes)
            | (Kind::String, Kind::String) => {}
            (Kind::Array(ri), Kind::Array(wi)) => {
                path.push("items".into());
                self.compare(ri, wi, path);
                path.pop();
            }
            (Kind::Map(rv), Kind::Map(wv)) => {
                path.push("values".into());
                self.compare(rv, wv, path);
                path.pop();
            }
            (Kind::Fixed(rf), Kind::Fixed(wf)) => {
                self.check_names(&rf.name, rf.aliases.as_deref(), &wf.name, path);
                if rf.size != wf.size {
                    path.push("size".into());
                    self.push(
                        IncompatibilityKind::FixedSizeMismatch,
                        path,
                        format!("expected: {}, found: {}", wf.size, rf.size),
                    );
                    path.pop();
                }
            }
            (Kind::Enum(re), Kind::Enum(we)) => {
                self.check_names(&re.name, re.aliases.as_deref(), &we.name, path);
                let missing: Vec<&String> = we
                    .symbols
                    .iter()
                    .filter(|s| !re.symbols.contains(s))
                    .collect();
                let has_default = re.default.as_ref().is_some_and(|d| re.symbols.contains(d));
                if !missing.is_empty() && !has_default {
                    path.push("symbols".into());
                    let list: Vec<&str> = missing.iter().map(|s| s.as_str()).collect();
                    self.push(
                        IncompatibilityKind::MissingEnumSymbols,
                        path,
                        format!("[{}]", list.join(", ")),
                    );
                    path.pop();
                }
            }
            (Kind::Record(rr), Kind::Record(wr)) => {
                let key = (
                    std::ptr::from_ref(rr) as usize,
                    std::ptr::from_ref(wr) as usize,
                );
                if !self.visiting.insert(key) {
                    // Already being compared further up: a recursive type, assumed compatible
                    // here (its fields are checked at the outer level).
                    return;
                }
                self.check_names(&rr.name, rr.aliases.as_deref(), &wr.name, path);
                self.compare_fields(rr, wr, path);
                self.visiting.remove(&key);
            }
            (Kind::Union(rb), Kind::Union(wb)) => {
                // Every writer branch must be readable by the reader union.
                for (i, branch) in wb.iter().enumerate() {
                    path.push(i.to_string());
                    self.compare_writer_branch(rb, r, branch, path);
                    path.pop();
                }
            }
            (_, Kind::Union(wb)) => {
                for (i, branch) in wb.iter().enumerate() {
                    path.push(i.to_string());
                    let wk = Self::kind(self.writer, branch);
                    self.compare_kinds(r, wk, path);
                    path.pop();
                }
            }
            (Kind::Union(rb), _) => {
                if !rb.iter().any(|branch| self.compatible_kind(branch, w)) {
                    self.push(
                        IncompatibilityKind::MissingUnionBranch,
                        path,
                        format!("reader union lacking writer type: {}", w.type_name()),
                    );
                }
            }
            // Promotions: int → long, float, double; long → float, double; float → double;
            // string ↔ bytes.
            (Kind::Long, Kind::Int)
            | (Kind::Float, Kind::Int | Kind::Long)
            | (Kind::Double, Kind::Int | Kind::Long | Kind::Float)
            | (Kind::Bytes, Kind::String)
            | (Kind::String, Kind::Bytes) => {}
            _ => self.push(
                IncompatibilityKind::TypeMismatch,
                path,
                format!(
                    "reader type: {} not compatible with writer type: {}",
                    r.type_name(),
                    w.type_name()
                ),
            ),
        }
    }

    /// One writer union branch against the reader union.
    fn compare_writer_branch(
        &mut self,
        reader_branches: &'a [Schema],
        reader_kind: Kind<'a>,
        writer_branch: &'a Schema,
        path: &mut Vec<String>,
    ) {
        let wk = Self::kind(self.writer, writer_branch);
        if let Kind::Union(_) = wk {
            // A union directly inside a union is not valid Avro; compare structurally anyway.
            self.compare_kinds(reader_kind, wk, path);
            return;
        }
        if !reader_branches
            .iter()
            .any(|branch| self.compatible_kind(branch, wk))
        {
            self.push(
                IncompatibilityKind::MissingUnionBranch,
                path,
                format!("reader union lacking writer type: {}", wk.type_name()),
            );
        }
    }

    fn compatible_kind(&self, reader_branch: &'a Schema, writer: Kind<'a>) -> bool {
        let mut probe = Checker {
            reader: self.reader,
            writer: self.writer,
            visiting: self.visiting.clone(),
            out: Vec::new(),
            budget: self.budget.clone(),
        };
        let rk = Self::kind(self.reader, reader_branch);
        probe.compare_kinds(rk, writer, &mut Vec::new());
        probe.out.is_empty()
    }

    /// Java's `schemaNameEquals`: unqualified names equal, or a reader alias names the writer.
    fn check_names(
        &mut self,
        reader: &apache_avro::schema::Name,
        reader_aliases: Option<&[apache_avro::schema::Alias]>,
        writer: &apache_avro::schema::Name,
        path: &mut Vec<String>,
    ) {
        if reader.name() == writer.name() {
            return;
        }
        let writer_full = writer.fullname(None);
        let reader_ns = reader.namespace();
        let aliased = reader_aliases.unwrap_or_default().iter().any(|alias| {
            alias.fullname(reader_ns) == writer_full || alias.fullname(None) == writer_full
        });
        if !aliased {
            path.push("name".into());
            self.push(
                IncompatibilityKind::NameMismatch,
                path,
                format!("expected: {writer_full}"),
            );
            path.pop();
        }
    }

    fn compare_fields(
        &mut self,
        rr: &'a RecordSchema,
        wr: &'a RecordSchema,
        path: &mut Vec<String>,
    ) {
        for (i, field) in rr.fields.iter().enumerate() {
            let found = std::iter::once(&field.name)
                .chain(field.aliases.iter())
                .find_map(|name| wr.fields.iter().find(|wf| &wf.name == name));
            path.push("fields".into());
            path.push(i.to_string());
            match found {
                Some(wf) => {
                    path.push("type".into());
                    self.compare(&field.schema, &wf.schema, path);
                    path.pop();
                }
                None if field.default.is_none() => self.push(
                    IncompatibilityKind::ReaderFieldMissingDefaultValue,
                    path,
                    field.name.clone(),
                ),
                None => {}
            }
            path.pop();
            path.pop();
        }
    }
}

#[cfg(test)]
#[path = "avro_tests.rs"]
mod tests;
