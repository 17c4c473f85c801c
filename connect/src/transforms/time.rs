//! `TimestampConverter` (`target.type`, `field`, `format`, `unix.precision`) and the subset of
//! Java's `SimpleDateFormat` it and `TimestampRouter` use (`yyyy MM dd HH mm ss SSS`, quoted
//! literals), always in UTC as Kafka does.

use super::{Settings, Target, Transform, fields_of, rebuild};
use crate::data::{ConnectRecord, Schema, SchemaType, Value, logical};
use crate::error::{Error, Result};

const DAY_MS: i64 = 86_400_000;

/// Days since 1970-01-01 to (year, month, day) (Howard Hinnant's civil_from_days).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let m = i64::from(m);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

enum Token {
    Field(char, usize),
    Literal(String),
}

fn tokenize(pattern: &str) -> Vec<Token> {
    let mut out = Vec::new();
    let chars: Vec<char> = pattern.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c == '\'' {
            let mut lit = String::new();
            i += 1;
            while i < chars.len() && chars[i] != '\'' {
                lit.push(chars[i]);
                i += 1;
            }
            i += 1;
            out.push(Token::Literal(if lit.is_empty() {
                "'".into()
            } else {
                lit
            }));
        } else if c.is_ascii_alphabetic() {
            let mut n = 0;
            while i < chars.len() && chars[i] == c {
                n += 1;
                i += 1;
            }
            out.push(Token::Field(c, n));
        } else {
            out.push(Token::Literal(c.to_string()));
            i += 1;
        }
    }
    out
}

/// Formats epoch milliseconds (UTC) with a `SimpleDateFormat` pattern.
pub(crate) fn format_millis(ms: i64, pattern: &str) -> String {
    let days = ms.div_euclid(DAY_MS);
    let in_day = ms.rem_euclid(DAY_MS);
    let (y, mo, d) = civil_from_days(days);
    let mut out = String::new();
    for t in tokenize(pattern) {
        match t {
            Token::Literal(l) => out.push_str(&l),
            Token::Field(c, n) => {
                let v = match c {
                    'y' => y,
                    'M' => i64::from(mo),
                    'd' => i64::from(d),
                    'H' => in_day / 3_600_000,
                    'm' => in_day / 60_000 % 60,
                    's' => in_day / 1000 % 60,
                    'S' => in_day % 1000,
                    'Z' | 'X' => {
                        out.push_str(if c == 'Z' { "+0000" } else { "Z" });
                        continue;
                    }
                    other => {
                        out.extend(std::iter::repeat_n(other, n));
                        continue;
                    }
                };
                let v = if c == 'y' && n == 2 { v % 100 } else { v };
                out.push_str(&format!("{v:0n$}"));
            }
        }
    }
    out
}

/// Parses text written with a `SimpleDateFormat` pattern to epoch milliseconds (UTC).
pub(crate) fn parse_millis(text: &str, pattern: &str) -> Option<i64> {
    let (mut y, mut mo, mut d, mut h, mut mi, mut s, mut ms) =
        (1970i64, 1u32, 1u32, 0i64, 0i64, 0i64, 0i64);
    let mut rest = text;
    for t in tokenize(pattern) {
        match t {
            Token::Literal(l) => rest = rest.strip_prefix(l.as_str())?,
            Token::Field('Z' | 'X', _) => {
                rest = rest
                    .strip_prefix("Z")
                    .or_else(|| rest.strip_prefix("+0000"))?;
            }
            Token::Field(c, n) => {
                let len = rest.bytes().take_while(u8::is_ascii_digit).count();
                let take = if n >= 2 && c != 'y' { n.min(len) } else { len };
                let (digits, tail) = rest.split_at(take);
                let v: i64 = digits.parse().ok()?;
                rest = tail;
                match c {
                    'y' => y = v,
                    'M' => mo = u32::try_from(v).ok()?,
                    'd' => d = u32::try_from(v).ok()?,
                    'H' => h = v,
                    'm' => mi = v,
                    's' => s = v,
                    'S' => ms = v,
                    _ => return None,
                }
            }
        }
    }
    if !rest.is_empty() || !(1..=12).contains(&mo) || !(1..=31).contains(&d) {
        return None;
    }
    Some(days_from_civil(y, mo, d) * DAY_MS + h * 3_600_000 + mi * 60_000 + s * 1000 + ms)
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    String,
    Unix,
    Date,
    Time,
    Timestamp,
}

pub(crate) struct TimestampConverter {
    target: Target,
    kind: Kind,
    field: Option<String>,
    format: Option<String>,
    /// Milliseconds per unit of `unix.precision` as (multiply, divide).
    unix_scale: (i64, i64),
}

impl TimestampConverter {
    pub(crate) fn new(s: &Settings<'_>, target: Target) -> Result<Self> {
        let kind = match s.required("target.type")? {
            "string" => Kind::String,
            "unix" => Kind::Unix,
            "Date" => Kind::Date,
            "Time" => Kind::Time,
            "Timestamp" => Kind::Timestamp,
            _ => {
                return Err(s.bad(
                    "target.type",
                    "String must be one of: string, unix, Date, Time, Timestamp",
                ));
            }
        };
        let format = s.get("format").map(str::to_string);
        if kind == Kind::String && format.is_none() {
            return Err(s.bad(
                "format",
                "TimestampConverter requires format option to be specified when using string timestamps",
            ));
        }
        let unix_scale = match s.get("unix.precision").unwrap_or("milliseconds") {
            "seconds" => (1000, 1),
            "milliseconds" => (1, 1),
            "microseconds" => (1, 1000),
            "nanoseconds" => (1, 1_000_000),
            _ => {
                return Err(s.bad(
                    "unix.precision",
                    "String must be one of: nanoseconds, microseconds, milliseconds, seconds",
                ));
            }
        };
        Ok(TimestampConverter {
            target,
            kind,
            field: s.get("field").map(str::to_string),
            format,
            unix_scale,
        })
    }

    fn to_millis(&self, schema: Option<&Schema>, value: &Value) -> Result<i64> {
        let name = schema.and_then(|s| s.name.as_deref());
        match value {
            Value::Int(i) => Ok(match name {
                Some(logical::DATE) => i * DAY_MS,
                Some(logical::TIME) | Some(logical::TIMESTAMP) => *i,
                _ => i * self.unix_scale.0 / self.unix_scale.1,
            }),
            Value::String(text) => {
                let format = self
                    .format
                    .as_deref()
                    .unwrap_or("yyyy-MM-dd'T'HH:mm:ss.SSSX");
                parse_millis(text, format).ok_or_else(|| {
                    Error::transform(
                        "TimestampConverter",
                        format!("Could not parse timestamp: value ({text}) does not match pattern ({format})"),
                    )
                })
            }
            other => Err(Error::transform(
                "TimestampConverter",
                format!("Expected a timestamp, found {other:?}"),
            )),
        }
    }

    fn convert(&self, schema: Option<&Schema>, value: &Value) -> Result<(Schema, Value)> {
        if value.is_null() {
            return Ok((self.schema().optional(), Value::Null));
        }
        let ms = self.to_millis(schema, value)?;
        let out = match self.kind {
            Kind::String => Value::String(format_millis(ms, self.format.as_deref().unwrap_or(""))),
            Kind::Unix => Value::Int(ms * self.unix_scale.1 / self.unix_scale.0),
            Kind::Date => Value::Int(ms.div_euclid(DAY_MS)),
            Kind::Time => Value::Int(ms.rem_euclid(DAY_MS)),
            Kind::Timestamp => Value::Int(ms),
        };
        let mut s = self.schema();
        if schema.is_some_and(|s| s.optional) {
            s.optional = true;
        }
        Ok((s, out))
    }

    fn schema(&self) -> Schema {
        match self.kind {
            Kind::String => Schema::string(),
            Kind::Unix => Schema::int64(),
            Kind::Date => Schema::int32().named(logical::DATE),
            Kind::Time => Schema::int32().named(logical::TIME),
            Kind::Timestamp => Schema::int64().named(logical::TIMESTAMP),
        }
    }
}

impl Transform for TimestampConverter {
    fn apply(&self, mut record: ConnectRecord) -> Result<Option<ConnectRecord>> {
        let (schema, value) = self.target.take(&mut record);
        let Some(field) = &self.field else {
            let (s, v) = self.convert(schema.as_ref(), &value)?;
            self.target.set(&mut record, schema.map(|_| s), v);
            return Ok(Some(record));
        };
        let Some((is_struct, mut fields)) = fields_of(value.clone()) else {
            self.target.set(&mut record, schema, value);
            return Ok(Some(record));
        };
        let mut schema = schema;
        let field_schema = schema
            .as_ref()
            .and_then(|s| s.field_named(field))
            .map(|f| f.schema.clone());
        if let Some((_, v)) = fields.iter_mut().find(|(n, _)| n == field) {
            let (s, converted) = self.convert(field_schema.as_ref(), v)?;
            *v = converted;
            if let Some(sc) = &mut schema
                && let Some(f) = sc.fields.iter_mut().find(|f| &f.name == field)
            {
                f.schema = s;
            }
        }
        debug_assert!(
            schema
                .as_ref()
                .is_none_or(|s| s.type_ == SchemaType::Struct)
        );
        self.target
            .set(&mut record, schema, rebuild(is_struct, fields));
        Ok(Some(record))
    }
}

#[cfg(test)]
mod tests {
    use super::super::TransformChain;
    use super::super::tests::cfg;
    use super::*;

    #[test]
    fn formats_and_parses_dates() {
        assert_eq!(
            format_millis(0, "yyyy-MM-dd HH:mm:ss.SSS"),
            "1970-01-01 00:00:00.000"
        );
        assert_eq!(
            format_millis(1_700_000_000_123, "yyyyMMdd'T'HHmmss.SSS"),
            "20231114T221320.123"
        );
        assert_eq!(
            parse_millis("2023-11-14 22:13:20", "yyyy-MM-dd HH:mm:ss"),
            Some(1_700_000_000_000)
        );
        assert_eq!(parse_millis("2023-13-14", "yyyy-MM-dd"), None);
        assert_eq!(format_millis(-1, "yyyy-MM-dd"), "1969-12-31");
    }

    #[test]
    fn converts_a_field_to_string_and_back() {
        let chain = TransformChain::from_config(&cfg(&[
            ("transforms", "t"),
            (
                "transforms.t.type",
                "org.apache.kafka.connect.transforms.TimestampConverter$Value",
            ),
            ("transforms.t.field", "at"),
            ("transforms.t.target.type", "string"),
            ("transforms.t.format", "yyyy-MM-dd"),
        ]))
        .unwrap();
        let schema = Schema::struct_().field("at", Schema::int64().named(logical::TIMESTAMP));
        let r = ConnectRecord::new(
            "t",
            Some(schema),
            Value::struct_of([("at", Value::Int(1_700_000_000_000))]),
        );
        let out = chain.apply(r).unwrap().unwrap();
        assert_eq!(out.value.get("at"), Some(&Value::from("2023-11-14")));
        assert_eq!(
            out.value_schema.unwrap().fields[0].schema.type_,
            SchemaType::String
        );
        let unix = TransformChain::from_config(&cfg(&[
            ("transforms", "t"),
            ("transforms.t.type", "TimestampConverter$Value"),
            ("transforms.t.target.type", "unix"),
            ("transforms.t.unix.precision", "seconds"),
            ("transforms.t.format", "yyyy-MM-dd"),
        ]))
        .unwrap();
        let out = unix
            .apply(ConnectRecord::new("t", None, Value::from("2023-11-14")))
            .unwrap()
            .unwrap();
        assert_eq!(out.value, Value::Int(1_699_920_000));
    }
}
