//! SQL text per database: identifier quoting, placeholders, column types, and the insert,
//! upsert, update and delete statements of the sink.

use crate::data::{Schema, SchemaType, logical};
use crate::error::{Error, Result};

/// A double-quoted identifier (both PostgreSQL and SQLite), quotes doubled.
pub(crate) fn quote(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// How a database spells things.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Dialect {
    Postgres,
    Sqlite,
}

impl Dialect {
    /// The `n`th (1-based) parameter placeholder.
    pub(crate) fn placeholder(self, n: usize) -> String {
        match self {
            Dialect::Postgres => format!("${n}"),
            Dialect::Sqlite => "?".into(),
        }
    }

    /// The column type for a Connect schema (auto.create / auto.evolve).
    pub(crate) fn column_type(self, field: &str, schema: &Schema) -> Result<&'static str> {
        if schema.name.as_deref() == Some(logical::TIMESTAMP) {
            return Ok("TIMESTAMP");
        }
        let pg = self == Dialect::Postgres;
        Ok(match schema.type_ {
            SchemaType::Int8 | SchemaType::Int16 => {
                if pg {
                    "SMALLINT"
                } else {
                    "INTEGER"
                }
            }
            SchemaType::Int32 => {
                if pg {
                    "INT"
                } else {
                    "INTEGER"
                }
            }
            SchemaType::Int64 => {
                if pg {
                    "BIGINT"
                } else {
                    "INTEGER"
                }
            }
            SchemaType::Float32 => "REAL",
            SchemaType::Float64 => {
                if pg {
                    "DOUBLE PRECISION"
                } else {
                    "REAL"
                }
            }
            SchemaType::Boolean => {
                if pg {
                    "BOOLEAN"
                } else {
                    "NUMERIC"
                }
            }
            SchemaType::String => "TEXT",
            SchemaType::Bytes => {
                if pg {
                    "BYTEA"
                } else {
                    "BLOB"
                }
            }
            other => {
                return Err(Error::Connector {
                    connector: "JdbcSinkConnector".into(),
                    reason: format!("field {field}: no SQL type for a {} schema", other.name()),
                });
            }
        })
    }

    /// `CREATE TABLE` with every column (NOT NULL for required ones) and the primary key.
    pub(crate) fn create_table(
        self,
        table: &str,
        columns: &[(String, Schema)],
        pk: &[String],
    ) -> Result<String> {
        let mut defs = Vec::new();
        for (name, schema) in columns {
            let ty = self.column_type(name, schema)?;
            let null = if schema.optional && !pk.contains(name) {
                ""
            } else {
                " NOT NULL"
            };
            defs.push(format!("{} {ty}{null}", quote(name)));
        }
        if !pk.is_empty() {
            let keys: Vec<String> = pk.iter().map(|k| quote(k)).collect();
            defs.push(format!("PRIMARY KEY({})", keys.join(",")));
        }
        Ok(format!(
            "CREATE TABLE {} (\n{})",
            quote(table),
            defs.join(",\n")
        ))
    }

    pub(crate) fn add_column(self, table: &str, name: &str, schema: &Schema) -> Result<String> {
        let ty = self.column_type(name, schema)?;
        Ok(format!(
            "ALTER TABLE {} ADD COLUMN {} {ty}",
            quote(table),
            quote(name)
        ))
    }

    /// `INSERT INTO t (cols) VALUES (..), (..)` for `rows` rows (parameters row by row).
    pub(crate) fn insert_rows(self, table: &str, columns: &[String], rows: usize) -> String {
        let cols: Vec<String> = columns.iter().map(|c| quote(c)).collect();
        let tuples: Vec<String> = (0..rows)
            .map(|r| {
                let params: Vec<String> = (1..=columns.len())
                    .map(|i| self.placeholder(r * columns.len() + i))
                    .collect();
                format!("({})", params.join(","))
            })
            .collect();
        format!(
            "INSERT INTO {} ({}) VALUES {}",
            quote(table),
            cols.join(","),
            tuples.join(",")
        )
    }

    /// `INSERT .. VALUES (..), (..) ON CONFLICT (pk) DO UPDATE SET c = EXCLUDED.c` (the same in
    /// both databases) for `rows` rows; no key may repeat within one statement.
    pub(crate) fn upsert_rows(
        self,
        table: &str,
        columns: &[String],
        pk: &[String],
        rows: usize,
    ) -> String {
        let keys: Vec<String> = pk.iter().map(|k| quote(k)).collect();
        let updates: Vec<String> = columns
            .iter()
            .filter(|c| !pk.contains(c))
            .map(|c| format!("{0}=EXCLUDED.{0}", quote(c)))
            .collect();
        let action = if updates.is_empty() {
            "DO NOTHING".to_string()
        } else {
            format!("DO UPDATE SET {}", updates.join(","))
        };
        format!(
            "{} ON CONFLICT ({}) {action}",
            self.insert_rows(table, columns, rows),
            keys.join(",")
        )
    }

    /// `UPDATE .. SET non-key columns WHERE key columns` (parameters: non-keys, then keys).
    pub(crate) fn update(self, table: &str, non_keys: &[String], pk: &[String]) -> String {
        let sets: Vec<String> = non_keys
            .iter()
            .enumerate()
            .map(|(i, c)| format!("{}={}", quote(c), self.placeholder(i + 1)))
            .collect();
        let wheres: Vec<String> = pk
            .iter()
            .enumerate()
            .map(|(i, c)| format!("{}={}", quote(c), self.placeholder(non_keys.len() + i + 1)))
            .collect();
        format!(
            "UPDATE {} SET {} WHERE {}",
            quote(table),
            sets.join(","),
            wheres.join(" AND ")
        )
    }

    pub(crate) fn delete(self, table: &str, pk: &[String]) -> String {
        let wheres: Vec<String> = pk
            .iter()
            .enumerate()
            .map(|(i, c)| format!("{}={}", quote(c), self.placeholder(i + 1)))
            .collect();
        format!(
            "DELETE FROM {} WHERE {}",
            quote(table),
            wheres.join(" AND ")
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statements() {
        let cols = vec!["id".to_string(), "name".to_string()];
        let pk = vec!["id".to_string()];
        assert_eq!(
            Dialect::Postgres.upsert_rows("t", &cols, &pk, 1),
            r#"INSERT INTO "t" ("id","name") VALUES ($1,$2) ON CONFLICT ("id") DO UPDATE SET "name"=EXCLUDED."name""#
        );
        assert_eq!(
            Dialect::Sqlite.insert_rows("t", &cols, 1),
            r#"INSERT INTO "t" ("id","name") VALUES (?,?)"#
        );
        assert_eq!(
            Dialect::Postgres.update("t", &cols[1..], &pk),
            r#"UPDATE "t" SET "name"=$1 WHERE "id"=$2"#
        );
        assert_eq!(
            Dialect::Sqlite.delete("t", &pk),
            r#"DELETE FROM "t" WHERE "id"=?"#
        );
        let create = Dialect::Postgres
            .create_table(
                "t",
                &[
                    ("id".into(), Schema::int32()),
                    ("name".into(), Schema::string().optional()),
                ],
                &pk,
            )
            .unwrap();
        assert_eq!(
            create,
            "CREATE TABLE \"t\" (\n\"id\" INT NOT NULL,\n\"name\" TEXT,\nPRIMARY KEY(\"id\"))"
        );
        assert_eq!(quote("a\"b"), "\"a\"\"b\"");
        assert!(
            Dialect::Sqlite
                .column_type("m", &Schema::map(Schema::string(), Schema::string()))
                .is_err()
        );
    }
}
