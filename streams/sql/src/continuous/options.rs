//! A continuous query's options (`CREATE STREAM … WITH (…)`) and its live counters.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::time::Duration;

use crate::error::{Error, Result};

/// Options of `CREATE STREAM … WITH (…)`.
#[derive(Debug, Clone)]
pub struct QueryOptions {
    /// `allowed_lateness`: how long after a window's end its rows are still accepted (ms).
    pub lateness: i64,
    /// `dead_letter_topic`: where records whose value does not decode go (else skipped).
    pub dead_letter_topic: Option<String>,
    /// `partitions`: of the output topic when it is created (default: the first source's).
    pub partitions: Option<i32>,
    /// `checkpoint_interval_ms` (default 1,000).
    pub checkpoint_interval: Duration,
}

impl QueryOptions {
    pub fn from_map(options: &BTreeMap<String, String>) -> Result<Self> {
        let mut out = QueryOptions {
            lateness: 0,
            dead_letter_topic: None,
            partitions: None,
            checkpoint_interval: Duration::from_secs(1),
        };
        let bad = |key: &str, reason: String| Error::Statement {
            statement: "CREATE STREAM",
            reason: format!("option {key}: {reason}"),
        };
        for (k, v) in options {
            match k.as_str() {
                "allowed_lateness" | "lateness" => {
                    out.lateness = parse_duration_ms(v).map_err(|r| bad(k, r))?;
                }
                "dead_letter_topic" => out.dead_letter_topic = Some(v.clone()),
                "partitions" => {
                    out.partitions = Some(
                        v.parse()
                            .map_err(|_| bad(k, format!("not a number: {v}")))?,
                    );
                }
                "checkpoint_interval_ms" => {
                    let ms: u64 = v
                        .parse()
                        .map_err(|_| bad(k, format!("not a number: {v}")))?;
                    out.checkpoint_interval = Duration::from_millis(ms);
                }
                other => {
                    return Err(bad(
                        other,
                        "unknown (allowed_lateness, dead_letter_topic, partitions, checkpoint_interval_ms)".into(),
                    ));
                }
            }
        }
        Ok(out)
    }
}

/// `'5 seconds'`, `'500 ms'`, `'1 minute'` or a number of ms.
fn parse_duration_ms(text: &str) -> std::result::Result<i64, String> {
    if let Ok(ms) = text.trim().parse::<i64>() {
        return Ok(ms);
    }
    let expr = datafusion::sql::sqlparser::parser::Parser::new(
        &datafusion::sql::sqlparser::dialect::GenericDialect {},
    )
    .try_with_sql(&format!("INTERVAL '{text}'"))
    .and_then(|mut p| p.parse_expr())
    .map_err(|e| e.to_string())?;
    super::plan::interval_ms(&expr).map_err(|e| e.to_string())
}

/// Counters of a running query (read by `SHOW QUERIES`).
#[derive(Debug, Default)]
pub struct QueryStats {
    pub records_in: AtomicU64,
    pub records_out: AtomicU64,
    pub late_dropped: AtomicU64,
    pub skipped: AtomicU64,
    /// Highest event time seen (`i64::MIN` before the first).
    pub watermark: AtomicI64,
    pub state: Mutex<String>,
}

impl QueryStats {
    pub fn new() -> Self {
        let s = QueryStats::default();
        s.watermark.store(i64::MIN, Ordering::Relaxed);
        *s.state.lock().unwrap_or_else(|p| p.into_inner()) = "STARTING".into();
        s
    }

    pub fn set_state(&self, state: impl Into<String>) {
        *self.state.lock().unwrap_or_else(|p| p.into_inner()) = state.into();
    }

    pub fn state(&self) -> String {
        self.state.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
}
