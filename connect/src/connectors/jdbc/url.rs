//! JDBC URLs: `jdbc:postgresql://host[:port]/database[?user=..&password=..]` and
//! `jdbc:sqlite:/path/to/db` (or `jdbc:sqlite::memory:`).

use std::collections::BTreeMap;

use crate::error::{Error, Result};

/// A parsed connection URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JdbcUrl {
    Postgres {
        host: String,
        port: u16,
        database: String,
        user: Option<String>,
        password: Option<String>,
    },
    Sqlite {
        path: String,
    },
}

impl JdbcUrl {
    /// Parses `connection.url`; `connection.user`/`connection.password` win over URL parameters.
    pub fn parse(url: &str, user: Option<&str>, password: Option<&str>) -> Result<Self> {
        let url = url.trim();
        let bad = |reason: &str| Error::config("connection.url", url, reason);
        if let Some(path) = url.strip_prefix("jdbc:sqlite:") {
            if path.is_empty() {
                return Err(bad("jdbc:sqlite: needs a file path"));
            }
            return Ok(JdbcUrl::Sqlite {
                path: path.to_string(),
            });
        }
        let rest = url.strip_prefix("jdbc:postgresql://").ok_or_else(|| {
            bad("expected jdbc:postgresql://host:port/database or jdbc:sqlite:/path")
        })?;
        let (authority, rest) = rest
            .split_once('/')
            .ok_or_else(|| bad("missing /database"))?;
        let (database, query) = rest.split_once('?').unwrap_or((rest, ""));
        if database.is_empty() {
            return Err(bad("missing database name"));
        }
        let (host, port) = match authority.rsplit_once(':') {
            Some((h, p)) => (h, p.parse::<u16>().map_err(|_| bad("invalid port"))?),
            None => (authority, 5432),
        };
        if host.is_empty() {
            return Err(bad("missing host"));
        }
        let params: BTreeMap<&str, &str> =
            query.split('&').filter_map(|p| p.split_once('=')).collect();
        let pick = |explicit: Option<&str>, key: &str| {
            explicit
                .filter(|v| !v.is_empty())
                .or_else(|| params.get(key).copied())
                .map(str::to_string)
        };
        Ok(JdbcUrl::Postgres {
            host: host.to_string(),
            port,
            database: database.to_string(),
            user: pick(user, "user"),
            password: pick(password, "password"),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_postgres_and_sqlite_urls() {
        assert_eq!(
            JdbcUrl::parse(
                "jdbc:postgresql://127.0.0.1:5432/test?user=postgres",
                None,
                None
            )
            .unwrap(),
            JdbcUrl::Postgres {
                host: "127.0.0.1".into(),
                port: 5432,
                database: "test".into(),
                user: Some("postgres".into()),
                password: None
            }
        );
        let p = JdbcUrl::parse("jdbc:postgresql://db/x", Some("u"), Some("p")).unwrap();
        assert!(
            matches!(p, JdbcUrl::Postgres { port: 5432, ref user, .. } if user.as_deref() == Some("u"))
        );
        assert_eq!(
            JdbcUrl::parse("jdbc:sqlite:/tmp/a.db", None, None).unwrap(),
            JdbcUrl::Sqlite {
                path: "/tmp/a.db".into()
            }
        );
        for bad in [
            "jdbc:mysql://x/y",
            "jdbc:postgresql://h:port/db",
            "jdbc:postgresql://h",
            "jdbc:sqlite:",
        ] {
            let err = JdbcUrl::parse(bad, None, None).unwrap_err();
            assert!(err.to_string().contains("connection.url"), "{bad}: {err}");
        }
    }
}
