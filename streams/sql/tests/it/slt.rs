//! A small sqllogictest runner (the subset we use): `statement ok|error <text>`,
//! `query <types> [rowsort]` with `----` and expected rows (columns separated by single
//! spaces, NULL for nulls), `query error <text>`, `#` comments. Each record is separated by a
//! blank line.

use anyhow::{Context, Result, bail};
use fjord_sql::SqlContext;
use fjord_sql::arrow::util::display::array_value_to_string;

/// Runs every record of the file's text against `ctx`; fails naming the line of the first
/// mismatch.
pub(crate) async fn run(ctx: &SqlContext, name: &str, text: &str) -> Result<usize> {
    let lines: Vec<&str> = text.lines().collect();
    let mut i = 0;
    let mut ran = 0;
    while i < lines.len() {
        let line = lines[i].trim();
        if line.is_empty() || line.starts_with('#') {
            i += 1;
            continue;
        }
        let at = i + 1;
        let header: Vec<&str> = line.split_whitespace().collect();
        i += 1;
        let mut sql = Vec::new();
        while i < lines.len() && !lines[i].trim().is_empty() && lines[i].trim() != "----" {
            sql.push(lines[i]);
            i += 1;
        }
        let sql = sql.join("\n");
        let mut expected = Vec::new();
        if i < lines.len() && lines[i].trim() == "----" {
            i += 1;
            while i < lines.len() && !lines[i].trim().is_empty() {
                expected.push(lines[i].trim().to_string());
                i += 1;
            }
        }
        let context = || format!("{name}:{at}: {sql}");
        match header.as_slice() {
            ["statement", "ok"] => {
                ctx.sql(&sql).await.with_context(context)?;
            }
            ["statement" | "query", "error", want @ ..] => {
                let want = want.join(" ");
                match ctx.sql(&sql).await {
                    Ok(_) => bail!("{}: expected an error containing {want:?}", context()),
                    Err(e) => {
                        if !e.to_string().contains(&want) {
                            bail!("{}: error {e:?} does not contain {want:?}", context());
                        }
                    }
                }
            }
            ["query", _types, rest @ ..] => {
                let batches = ctx.sql(&sql).await.with_context(context)?;
                let mut rows = Vec::new();
                for b in &batches {
                    let b = fjord_sql::format::displayable(b)?;
                    for r in 0..b.num_rows() {
                        let mut cells = Vec::new();
                        for c in b.columns() {
                            if c.is_null(r) {
                                cells.push("NULL".to_string());
                            } else {
                                cells.push(array_value_to_string(c, r)?);
                            }
                        }
                        rows.push(cells.join(" "));
                    }
                }
                if rest.contains(&"rowsort") {
                    rows.sort();
                    expected.sort();
                }
                if rows != expected {
                    bail!(
                        "{}:\nexpected:\n{}\ngot:\n{}",
                        context(),
                        expected.join("\n"),
                        rows.join("\n")
                    );
                }
            }
            other => bail!("{name}:{at}: unknown record {other:?}"),
        }
        ran += 1;
    }
    Ok(ran)
}
