//! The continuous-query statements, recognized before DataFusion sees the text:
//!
//! ```text
//! CREATE STREAM name [WITH (key = 'value', ...)] AS SELECT ...
//! DROP STREAM [IF EXISTS] name
//! SHOW QUERIES
//! DESCRIBE STREAM name
//! ```

use std::collections::BTreeMap;

use crate::error::{Error, Result};

/// One of our statements.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Statement {
    CreateStream {
        name: String,
        options: BTreeMap<String, String>,
        query: String,
    },
    DropStream {
        name: String,
        if_exists: bool,
    },
    ShowQueries,
    DescribeStream {
        name: String,
    },
}

/// Our statement in `text`, or `None` when it is for DataFusion.
pub fn parse(text: &str) -> Result<Option<Statement>> {
    let text = text.trim().trim_end_matches(';').trim();
    let mut rest = text;
    let Some(first) = word(&mut rest) else {
        return Ok(None);
    };
    match first.to_ascii_uppercase().as_str() {
        "CREATE" => {
            let mut r = rest;
            if !word(&mut r).is_some_and(|w| w.eq_ignore_ascii_case("STREAM")) {
                return Ok(None);
            }
            let name = identifier(&mut r, "CREATE STREAM")?;
            let mut options = BTreeMap::new();
            let mut next = word(&mut r);
            if next
                .as_deref()
                .is_some_and(|w| w.eq_ignore_ascii_case("WITH"))
            {
                options = with_options(&mut r)?;
                next = word(&mut r);
            }
            if !next
                .as_deref()
                .is_some_and(|w| w.eq_ignore_ascii_case("AS"))
            {
                return Err(bad(
                    "CREATE STREAM",
                    "expected AS SELECT ... after the stream name",
                ));
            }
            let query = r.trim().to_string();
            if query.is_empty() {
                return Err(bad("CREATE STREAM", "the query after AS is missing"));
            }
            Ok(Some(Statement::CreateStream {
                name,
                options,
                query,
            }))
        }
        "DROP" => {
            let mut r = rest;
            if !word(&mut r).is_some_and(|w| w.eq_ignore_ascii_case("STREAM")) {
                return Ok(None);
            }
            let mut if_exists = false;
            let mut probe = r;
            if word(&mut probe).is_some_and(|w| w.eq_ignore_ascii_case("IF"))
                && word(&mut probe).is_some_and(|w| w.eq_ignore_ascii_case("EXISTS"))
            {
                if_exists = true;
                r = probe;
            }
            let name = identifier(&mut r, "DROP STREAM")?;
            expect_end(r, "DROP STREAM")?;
            Ok(Some(Statement::DropStream { name, if_exists }))
        }
        "SHOW" => {
            let mut r = rest;
            if word(&mut r).is_some_and(|w| {
                w.eq_ignore_ascii_case("QUERIES") || w.eq_ignore_ascii_case("STREAMS")
            }) {
                expect_end(r, "SHOW QUERIES")?;
                return Ok(Some(Statement::ShowQueries));
            }
            Ok(None)
        }
        "DESCRIBE" => {
            let mut r = rest;
            if !word(&mut r).is_some_and(|w| w.eq_ignore_ascii_case("STREAM")) {
                return Ok(None);
            }
            let name = identifier(&mut r, "DESCRIBE STREAM")?;
            expect_end(r, "DESCRIBE STREAM")?;
            Ok(Some(Statement::DescribeStream { name }))
        }
        _ => Ok(None),
    }
}

fn bad(statement: &'static str, reason: &str) -> Error {
    Error::Statement {
        statement,
        reason: reason.to_string(),
    }
}

fn expect_end(rest: &str, statement: &'static str) -> Result<()> {
    if rest.trim().is_empty() {
        Ok(())
    } else {
        Err(bad(statement, &format!("unexpected text: {}", rest.trim())))
    }
}

/// The next bare word (letters, digits, `_`), advancing `rest`.
fn word(rest: &mut &str) -> Option<String> {
    let s = rest.trim_start();
    let end = s
        .find(|c: char| !(c.is_alphanumeric() || c == '_'))
        .unwrap_or(s.len());
    if end == 0 {
        return None;
    }
    let w = s[..end].to_string();
    *rest = &s[end..];
    Some(w)
}

/// A name: a bare word (kept as written: topic names are case-sensitive) or a `"quoted"` one
/// (which may hold `-` and `.`, as topic names do).
fn identifier(rest: &mut &str, statement: &'static str) -> Result<String> {
    let s = rest.trim_start();
    if let Some(q) = s.strip_prefix('"') {
        let Some(end) = q.find('"') else {
            return Err(bad(statement, "unterminated quoted name"));
        };
        *rest = &q[end + 1..];
        return Ok(q[..end].to_string());
    }
    let end = s
        .find(|c: char| !(c.is_alphanumeric() || matches!(c, '_' | '-' | '.')))
        .unwrap_or(s.len());
    if end == 0 {
        return Err(bad(statement, "expected a stream name"));
    }
    *rest = &s[end..];
    Ok(s[..end].to_string())
}

/// `(key = 'value', key = 123, ...)`.
fn with_options(rest: &mut &str) -> Result<BTreeMap<String, String>> {
    let s = rest.trim_start();
    let Some(body) = s.strip_prefix('(') else {
        return Err(bad("CREATE STREAM", "expected ( after WITH"));
    };
    let Some(close) = body.find(')') else {
        return Err(bad("CREATE STREAM", "unterminated WITH ( ... )"));
    };
    *rest = &body[close + 1..];
    let mut out = BTreeMap::new();
    for item in body[..close].split(',').filter(|i| !i.trim().is_empty()) {
        let Some((k, v)) = item.split_once('=') else {
            return Err(bad(
                "CREATE STREAM",
                &format!("expected key = value in WITH, got {}", item.trim()),
            ));
        };
        let k = k.trim().trim_matches('"').to_ascii_lowercase();
        let v = v.trim().trim_matches('\'').to_string();
        out.insert(k, v);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn create_stream_with_options() {
        let s = parse("create stream \"clicks-per-minute\" WITH (allowed_lateness = '5 seconds', partitions = 3) AS SELECT 1;").unwrap();
        let Some(Statement::CreateStream {
            name,
            options,
            query,
        }) = s
        else {
            panic!("{s:?}")
        };
        assert_eq!(name, "clicks-per-minute");
        assert_eq!(
            options.get("allowed_lateness").map(String::as_str),
            Some("5 seconds")
        );
        assert_eq!(options.get("partitions").map(String::as_str), Some("3"));
        assert_eq!(query, "SELECT 1");
    }

    #[test]
    fn other_statements() {
        assert_eq!(parse("SHOW QUERIES").unwrap(), Some(Statement::ShowQueries));
        assert_eq!(
            parse("drop stream if exists out").unwrap(),
            Some(Statement::DropStream {
                name: "out".into(),
                if_exists: true
            })
        );
        assert_eq!(parse("SELECT * FROM t").unwrap(), None);
        assert_eq!(parse("CREATE TABLE t AS SELECT 1").unwrap(), None);
        assert_eq!(parse("SHOW TABLES").unwrap(), None);
    }

    #[test]
    fn malformed_create_names_the_problem() {
        let e = parse("CREATE STREAM out SELECT 1").unwrap_err();
        assert!(e.to_string().contains("expected AS"), "{e}");
    }
}
