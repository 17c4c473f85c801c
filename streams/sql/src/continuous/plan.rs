//! What a continuous query needs: its sources, its window (from a `TUMBLE`, `HOP` or `SESSION`
//! call in a `GROUP BY`), the time bound of a stream-stream join, and the query rewritten to
//! run over one closed window (the window call replaced by `window_start, window_end`).

use std::collections::BTreeSet;
use std::ops::ControlFlow;

use datafusion::sql::sqlparser::ast::{
    self, Expr as SqlExpr, FunctionArg, FunctionArgExpr, FunctionArguments, GroupByExpr, Ident,
    JoinConstraint, JoinOperator, ObjectName, ObjectNamePart, Query, Select, SetExpr,
    Statement as SqlStatement, VisitorMut,
};
use datafusion::sql::sqlparser::dialect::GenericDialect;
use datafusion::sql::sqlparser::parser::Parser;
use datafusion::sql::sqlparser::tokenizer::{Token, Tokenizer};

use crate::error::{Error, Result};

/// A window of a windowed aggregation; sizes in milliseconds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WindowSpec {
    /// `TUMBLE(ts, size)`, or `HOP(ts, slide, size)` (then `slide` divides `size`).
    Time { size: i64, slide: i64 },
    /// `SESSION(ts, gap)`: per key (the other GROUP BY expressions, as SQL text).
    Session { gap: i64, keys: Vec<String> },
}

/// The shape of a continuous query.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum QueryKind {
    /// Projections and filters over one stream (per batch).
    Stateless,
    /// A GROUP BY over a window of one stream, emitted once per window when it closes.
    Window {
        window: WindowSpec,
        time_column: String,
    },
    /// A join of two topics: bounded by time (`bound` ms, from the ON clause's intervals)
    /// between two streams, or with a table (decided when the query starts, from the topics'
    /// `cleanup.policy`).
    Join {
        left: String,
        right: String,
        bound: Option<i64>,
    },
}

/// A parsed continuous query.
#[derive(Debug, Clone)]
pub struct ContinuousPlan {
    /// The query as written.
    pub sql: String,
    /// The query as run over a window's rows (or a batch, for the other kinds).
    pub exec_sql: String,
    /// Topics read, in FROM order.
    pub sources: Vec<String>,
    pub kind: QueryKind,
    /// Identifiers the query mentions (the source columns worth keeping), lower-cased and as
    /// written; `None` when it selects `*`.
    pub identifiers: Option<BTreeSet<String>>,
}

impl ContinuousPlan {
    pub fn parse(sql: &str) -> Result<Self> {
        let mut statements =
            Parser::parse_sql(&GenericDialect {}, sql).map_err(|e| Error::Sql {
                message: format!("SQL error: {e}"),
                location: None,
                cause: Box::new(datafusion::error::DataFusionError::SQL(Box::new(e), None)),
            })?;
        let statement = match statements.as_mut_slice() {
            [s @ SqlStatement::Query(_)] => s,
            _ => return Err(bad("the stream's query must be one SELECT")),
        };
        let mut walker = Walker::default();
        let _ = ast::VisitMut::visit(statement, &mut walker);
        if let Some(e) = walker.error {
            return Err(e);
        }
        let sources: Vec<String> = walker
            .relations
            .iter()
            .filter(|r| !walker.ctes.contains(*r))
            .fold(Vec::new(), |mut v, r| {
                if !v.contains(r) {
                    v.push(r.clone());
                }
                v
            });
        let kind = match (&walker.window, sources.as_slice(), &walker.join) {
            (_, [], _) => return Err(bad("the query reads no topic")),
            (Some(_), [_, _, ..], _) => {
                return Err(bad(
                    "a windowed aggregation reads one topic (join in a later stream)",
                ));
            }
            (Some((window, time_column)), [_], _) => QueryKind::Window {
                window: window.clone(),
                time_column: time_column.clone(),
            },
            (None, [_], _) if walker.grouped => {
                return Err(bad(
                    "a continuous GROUP BY needs a window: GROUP BY TUMBLE(ts, size), HOP(ts, slide, size) or SESSION(ts, gap)",
                ));
            }
            (None, [_], _) => QueryKind::Stateless,
            (None, [l, r], Some(bound)) => QueryKind::Join {
                left: l.clone(),
                right: r.clone(),
                bound: *bound,
            },
            (None, [_, _], None) => {
                return Err(bad("two topics must be joined with an inner JOIN ... ON"));
            }
            (None, _, _) => return Err(bad("a continuous query reads at most two topics")),
        };
        if walker.grouped && matches!(kind, QueryKind::Join { .. }) {
            return Err(bad("aggregate the join's output in a second stream"));
        }
        Ok(ContinuousPlan {
            sql: sql.to_string(),
            exec_sql: statement.to_string(),
            sources,
            kind,
            identifiers: identifiers(sql),
        })
    }
}

fn bad(reason: &str) -> Error {
    Error::Statement {
        statement: "CREATE STREAM",
        reason: reason.to_string(),
    }
}

#[derive(Default)]
struct Walker {
    relations: Vec<String>,
    ctes: BTreeSet<String>,
    window: Option<(WindowSpec, String)>,
    grouped: bool,
    /// `Some(bound)` once an inner join with ON was seen.
    join: Option<Option<i64>>,
    error: Option<Error>,
}

/// A name as DataFusion resolves it: unquoted parts are lower-cased.
fn normalize(ident: &Ident) -> String {
    match ident.quote_style {
        Some(_) => ident.value.clone(),
        None => ident.value.to_ascii_lowercase(),
    }
}

fn object_name(name: &ObjectName) -> String {
    name.0
        .iter()
        .filter_map(|p| match p {
            ObjectNamePart::Identifier(i) => Some(normalize(i)),
            _ => None,
        })
        .last()
        .unwrap_or_default()
}

impl VisitorMut for Walker {
    type Break = ();

    fn pre_visit_query(&mut self, query: &mut Query) -> ControlFlow<()> {
        if let Some(with) = &query.with {
            for cte in &with.cte_tables {
                self.ctes.insert(normalize(&cte.alias.name));
            }
        }
        if let SetExpr::Select(select) = query.body.as_ref() {
            self.joins(select);
        }
        ControlFlow::Continue(())
    }

    fn pre_visit_relation(&mut self, relation: &mut ObjectName) -> ControlFlow<()> {
        self.relations.push(object_name(relation));
        ControlFlow::Continue(())
    }

    fn post_visit_select(&mut self, select: &mut Select) -> ControlFlow<()> {
        let GroupByExpr::Expressions(items, _) = &mut select.group_by else {
            return ControlFlow::Continue(());
        };
        if items.is_empty() {
            return ControlFlow::Continue(());
        }
        self.grouped = true;
        let mut out = Vec::with_capacity(items.len() + 1);
        let mut found: Option<(WindowSpec, String)> = None;
        let mut keys = Vec::new();
        for item in items.drain(..) {
            match window_call(&item) {
                Some(Ok(w)) if found.is_none() => {
                    found = Some(w);
                    out.push(SqlExpr::Identifier(Ident::new("window_start")));
                    out.push(SqlExpr::Identifier(Ident::new("window_end")));
                }
                Some(Ok(_)) => {
                    self.error = Some(bad("one window per GROUP BY"));
                    return ControlFlow::Break(());
                }
                Some(Err(e)) => {
                    self.error = Some(e);
                    return ControlFlow::Break(());
                }
                None => {
                    keys.push(item.to_string());
                    out.push(item);
                }
            }
        }
        *items = out;
        if let Some((mut w, col)) = found {
            if let WindowSpec::Session { keys: k, .. } = &mut w {
                *k = keys;
            }
            if self.window.is_some() {
                self.error = Some(bad("one windowed GROUP BY per stream"));
                return ControlFlow::Break(());
            }
            self.window = Some((w, col));
        }
        ControlFlow::Continue(())
    }
}

impl Walker {
    fn joins(&mut self, select: &Select) {
        for from in &select.from {
            for join in &from.joins {
                let on = match &join.join_operator {
                    JoinOperator::Join(JoinConstraint::On(e))
                    | JoinOperator::Inner(JoinConstraint::On(e)) => e,
                    _ => {
                        self.error = Some(bad(
                            "only inner joins with ON are supported in continuous queries",
                        ));
                        return;
                    }
                };
                let mut bound: Option<i64> = None;
                let _ = ast::visit_expressions(on, |e: &SqlExpr| {
                    if let SqlExpr::Interval(_) = e {
                        match interval_ms(e) {
                            Ok(ms) => bound = Some(bound.map_or(ms, |b| b.max(ms))),
                            Err(err) => self.error = Some(err),
                        }
                    }
                    ControlFlow::<()>::Continue(())
                });
                self.join = Some(bound);
            }
        }
    }
}

/// `TUMBLE(ts, size)`, `HOP(ts, slide, size)`, `SESSION(ts, gap)`: the window and the time
/// column.
fn window_call(e: &SqlExpr) -> Option<Result<(WindowSpec, String)>> {
    let SqlExpr::Function(f) = e else {
        return None;
    };
    let name = object_name(&f.name);
    if !matches!(name.as_str(), "tumble" | "hop" | "session") {
        return None;
    }
    let FunctionArguments::List(list) = &f.args else {
        return Some(Err(bad(&format!(
            "{} needs arguments",
            name.to_uppercase()
        ))));
    };
    let args: Vec<&SqlExpr> = list
        .args
        .iter()
        .filter_map(|a| match a {
            FunctionArg::Unnamed(FunctionArgExpr::Expr(e)) => Some(e),
            _ => None,
        })
        .collect();
    let column = match args.first() {
        Some(SqlExpr::Identifier(i)) => normalize(i),
        Some(SqlExpr::CompoundIdentifier(parts)) => parts.last().map(normalize).unwrap_or_default(),
        _ => {
            return Some(Err(bad(&format!(
                "the first argument of {} must be a time column",
                name.to_uppercase()
            ))));
        }
    };
    let ms = |i: usize| -> Result<i64> {
        let e = args
            .get(i)
            .ok_or_else(|| bad(&format!("{} is missing an interval", name.to_uppercase())))?;
        let v = interval_ms(e)?;
        if v <= 0 {
            return Err(bad("window intervals must be positive"));
        }
        Ok(v)
    };
    let spec = match (name.as_str(), args.len()) {
        ("tumble", 2) => ms(1).map(|size| WindowSpec::Time { size, slide: size }),
        ("hop", 3) => ms(1).and_then(|slide| {
            let size = ms(2)?;
            if size % slide != 0 {
                return Err(bad("HOP: the size must be a multiple of the slide"));
            }
            Ok(WindowSpec::Time { size, slide })
        }),
        ("session", 2) => ms(1).map(|gap| WindowSpec::Session {
            gap,
            keys: Vec::new(),
        }),
        _ => Err(bad(&format!(
            "wrong number of arguments: TUMBLE(ts, size), HOP(ts, slide, size), SESSION(ts, gap)"
        ))),
    };
    Some(spec.map(|s| (s, column)))
}

/// Milliseconds of an `INTERVAL '…'` literal (`INTERVAL '10' SECOND`, `INTERVAL '10 seconds'`,
/// `INTERVAL '1.5' MINUTE`), or of a plain integer (milliseconds).
pub fn interval_ms(e: &SqlExpr) -> Result<i64> {
    if let SqlExpr::Value(v) = e {
        if let ast::Value::Number(n, _) = &v.value {
            return n
                .parse()
                .map_err(|_| bad(&format!("not a number of milliseconds: {n}")));
        }
    }
    let SqlExpr::Interval(interval) = e else {
        return Err(bad(&format!("expected an INTERVAL, got {e}")));
    };
    let text = match interval.value.as_ref() {
        SqlExpr::Value(v) => match &v.value {
            ast::Value::SingleQuotedString(s) | ast::Value::Number(s, _) => s.clone(),
            other => return Err(bad(&format!("unsupported interval value {other}"))),
        },
        other => return Err(bad(&format!("unsupported interval value {other}"))),
    };
    let mut parts = text.split_whitespace();
    let number: f64 = parts
        .next()
        .and_then(|n| n.parse().ok())
        .ok_or_else(|| bad(&format!("{e}: expected a number")))?;
    let unit = match (parts.next(), &interval.leading_field) {
        (Some(u), _) => u.to_ascii_lowercase(),
        (None, Some(f)) => f.to_string().to_ascii_lowercase(),
        (None, None) => "second".to_string(),
    };
    let scale = match unit.trim_end_matches('s') {
        "millisecond" | "m" => 1.0,
        "second" | "sec" => 1_000.0,
        "minute" | "min" => 60_000.0,
        "hour" => 3_600_000.0,
        "day" => 86_400_000.0,
        "week" => 604_800_000.0,
        _ => {
            return Err(bad(&format!(
                "{e}: unsupported unit {unit} (months and years have no fixed length)"
            )));
        }
    };
    Ok((number * scale).round() as i64)
}

/// Every identifier in the query (as written and lower-cased), or `None` if it uses `*`.
fn identifiers(sql: &str) -> Option<BTreeSet<String>> {
    let tokens = Tokenizer::new(&GenericDialect {}, sql).tokenize().ok()?;
    let mut out = BTreeSet::new();
    for t in tokens {
        match t {
            Token::Mul => return None,
            Token::Word(w) => {
                out.insert(w.value.to_ascii_lowercase());
                out.insert(w.value);
            }
            _ => {}
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tumble_is_rewritten_to_window_columns() {
        let p = ContinuousPlan::parse(
            "SELECT window_start, \"user\", count(*) AS n FROM clicks GROUP BY TUMBLE(\"timestamp\", INTERVAL '1' MINUTE), \"user\"",
        )
        .unwrap();
        assert_eq!(p.sources, vec!["clicks".to_string()]);
        assert_eq!(
            p.kind,
            QueryKind::Window {
                window: WindowSpec::Time {
                    size: 60_000,
                    slide: 60_000
                },
                time_column: "timestamp".into()
            }
        );
        assert!(
            p.exec_sql
                .contains("GROUP BY window_start, window_end, \"user\""),
            "{}",
            p.exec_sql
        );
    }

    #[test]
    fn hop_and_session() {
        let p = ContinuousPlan::parse(
            "WITH c AS (SELECT window_start, auction, count(*) AS n FROM \"nexmark-events\" GROUP BY HOP(\"timestamp\", INTERVAL '2' SECOND, INTERVAL '10' SECOND), auction) SELECT * FROM c",
        )
        .unwrap();
        assert_eq!(p.sources, vec!["nexmark-events".to_string()]);
        assert!(matches!(
            p.kind,
            QueryKind::Window {
                window: WindowSpec::Time {
                    size: 10_000,
                    slide: 2_000
                },
                ..
            }
        ));
        let p = ContinuousPlan::parse(
            "SELECT window_start, k, count(*) FROM t GROUP BY k, SESSION(\"timestamp\", 5000)",
        )
        .unwrap();
        assert_eq!(
            p.kind,
            QueryKind::Window {
                window: WindowSpec::Session {
                    gap: 5000,
                    keys: vec!["k".into()]
                },
                time_column: "timestamp".into()
            }
        );
    }

    #[test]
    fn interval_join_bound() {
        let p = ContinuousPlan::parse(
            "SELECT o.id FROM orders o JOIN payments p ON o.id = p.order_id AND p.\"timestamp\" BETWEEN o.\"timestamp\" AND o.\"timestamp\" + INTERVAL '10' MINUTE",
        )
        .unwrap();
        assert_eq!(
            p.kind,
            QueryKind::Join {
                left: "orders".into(),
                right: "payments".into(),
                bound: Some(600_000)
            }
        );
    }

    #[test]
    fn unwindowed_group_by_is_refused() {
        let e = ContinuousPlan::parse("SELECT k, count(*) FROM t GROUP BY k").unwrap_err();
        assert!(e.to_string().contains("needs a window"), "{e}");
        let e = ContinuousPlan::parse(
            "SELECT k FROM t GROUP BY HOP(ts, INTERVAL '3' SECOND, INTERVAL '10' SECOND)",
        )
        .unwrap_err();
        assert!(e.to_string().contains("multiple of the slide"), "{e}");
    }
}
