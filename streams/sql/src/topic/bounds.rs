//! Which records of a topic a scan needs, from the query's filters on `partition`, `offset`
//! and `timestamp` (the pushdown). Pure: the filters in, ranges out; the scan resolves
//! timestamps to offsets with ListOffsets.

use datafusion::common::ScalarValue;
use datafusion::logical_expr::{BinaryExpr, Expr, Operator};

/// Ranges a scan may restrict itself to. Every bound is inclusive; `None` is unbounded. The
/// filters stay in the plan above the scan (they are pushed down as `Inexact`), so a bound
/// only has to be safe, not tight.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ScanBounds {
    /// Only these partitions (`None`: all).
    pub partitions: Option<Vec<i32>>,
    pub min_offset: Option<i64>,
    pub max_offset: Option<i64>,
    /// Records before the first one with a timestamp at or after this can be skipped
    /// (ListOffsets by timestamp finds it).
    pub min_timestamp: Option<i64>,
}

impl ScanBounds {
    /// True when no record can match.
    pub fn is_empty(&self) -> bool {
        matches!(&self.partitions, Some(p) if p.is_empty())
            || matches!((self.min_offset, self.max_offset), (Some(a), Some(b)) if a > b)
    }

    /// Applies one filter (a conjunct of the WHERE clause). Returns whether it was used.
    pub fn apply(&mut self, filter: &Expr) -> bool {
        match filter {
            Expr::BinaryExpr(BinaryExpr {
                left,
                op: Operator::And,
                right,
            }) => {
                // Both sides narrow; the conjunction is usable if either is.
                let l = self.apply(left);
                let r = self.apply(right);
                l || r
            }
            Expr::BinaryExpr(BinaryExpr { left, op, right }) => {
                match (
                    column_of(left),
                    literal_of(right),
                    column_of(right),
                    literal_of(left),
                ) {
                    (Some(c), Some(v), _, _) => self.compare(c, *op, v),
                    (_, _, Some(c), Some(v)) => match op.swap() {
                        Some(op) => self.compare(c, op, v),
                        None => false,
                    },
                    _ => false,
                }
            }
            Expr::Between(b) if !b.negated => {
                let (Some(c), Some(lo), Some(hi)) =
                    (column_of(&b.expr), literal_of(&b.low), literal_of(&b.high))
                else {
                    return false;
                };
                let l = self.compare(c, Operator::GtEq, lo);
                let h = self.compare(c, Operator::LtEq, hi);
                l && h
            }
            Expr::InList(list) if !list.negated && column_of(&list.expr) == Some("partition") => {
                let mut wanted = Vec::new();
                for item in &list.list {
                    match literal_of(item) {
                        Some(v) => wanted.push(v),
                        None => return false,
                    }
                }
                self.restrict_partitions(
                    wanted
                        .into_iter()
                        .filter_map(|v| i32::try_from(v).ok())
                        .collect(),
                );
                true
            }
            _ => false,
        }
    }

    /// Whether [`apply`](Self::apply) would use `filter` (without changing anything).
    pub fn usable(filter: &Expr) -> bool {
        ScanBounds::default().apply(filter)
    }

    fn restrict_partitions(&mut self, mut wanted: Vec<i32>) {
        wanted.sort_unstable();
        wanted.dedup();
        self.partitions = Some(match self.partitions.take() {
            Some(have) => have.into_iter().filter(|p| wanted.contains(p)).collect(),
            None => wanted,
        });
    }

    fn compare(&mut self, column: &str, op: Operator, value: i64) -> bool {
        let (lo, hi) = match op {
            Operator::Eq => (Some(value), Some(value)),
            Operator::Gt => (value.checked_add(1), None),
            Operator::GtEq => (Some(value), None),
            Operator::Lt => (None, Some(value.saturating_sub(1))),
            Operator::LtEq => (None, Some(value)),
            _ => return false,
        };
        match column {
            "offset" => {
                if let Some(lo) = lo {
                    self.min_offset = Some(self.min_offset.map_or(lo, |m| m.max(lo)));
                }
                if let Some(hi) = hi {
                    self.max_offset = Some(self.max_offset.map_or(hi, |m| m.min(hi)));
                }
                true
            }
            // Timestamps need not grow with offsets (CreateTime), so only a lower bound is
            // safe to turn into a start offset.
            "timestamp" => match lo {
                Some(lo) => {
                    self.min_timestamp = Some(self.min_timestamp.map_or(lo, |m| m.max(lo)));
                    true
                }
                None => false,
            },
            "partition" if op == Operator::Eq => {
                match i32::try_from(value) {
                    Ok(p) => self.restrict_partitions(vec![p]),
                    Err(_) => self.partitions = Some(Vec::new()),
                }
                true
            }
            _ => false,
        }
    }
}

fn column_of(expr: &Expr) -> Option<&str> {
    match expr {
        Expr::Column(c) => Some(c.name.as_str()),
        Expr::Cast(c) => column_of(&c.expr),
        _ => None,
    }
}

/// An integer literal, timestamps in milliseconds.
fn literal_of(expr: &Expr) -> Option<i64> {
    let Expr::Literal(value, _) = expr else {
        return None;
    };
    match value {
        ScalarValue::Int8(Some(v)) => Some(i64::from(*v)),
        ScalarValue::Int16(Some(v)) => Some(i64::from(*v)),
        ScalarValue::Int32(Some(v)) => Some(i64::from(*v)),
        ScalarValue::Int64(Some(v)) => Some(*v),
        ScalarValue::UInt8(Some(v)) => Some(i64::from(*v)),
        ScalarValue::UInt16(Some(v)) => Some(i64::from(*v)),
        ScalarValue::UInt32(Some(v)) => Some(i64::from(*v)),
        ScalarValue::UInt64(Some(v)) => i64::try_from(*v).ok(),
        ScalarValue::TimestampSecond(Some(v), _) => v.checked_mul(1000),
        ScalarValue::TimestampMillisecond(Some(v), _) => Some(*v),
        // Rounded down: a lower bound in ms that is still safe.
        ScalarValue::TimestampMicrosecond(Some(v), _) => Some(v.div_euclid(1000)),
        ScalarValue::TimestampNanosecond(Some(v), _) => Some(v.div_euclid(1_000_000)),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::prelude::{col, lit};

    fn bounds(filters: &[Expr]) -> ScanBounds {
        let mut b = ScanBounds::default();
        for f in filters {
            b.apply(f);
        }
        b
    }

    #[test]
    fn offset_range_from_comparisons() {
        let b = bounds(&[
            col("offset").gt(lit(10i64)),
            col("offset").lt_eq(lit(20i64)),
        ]);
        assert_eq!((b.min_offset, b.max_offset), (Some(11), Some(20)));
    }

    #[test]
    fn literal_on_the_left_is_swapped() {
        let b = bounds(&[lit(5i64).lt(col("offset"))]);
        assert_eq!(b.min_offset, Some(6));
    }

    #[test]
    fn timestamp_lower_bound_only() {
        let ts = ScalarValue::TimestampMillisecond(Some(1_000), Some("UTC".into()));
        let mut b = ScanBounds::default();
        assert!(b.apply(&col("timestamp").gt_eq(lit(ts.clone()))));
        assert_eq!(b.min_timestamp, Some(1_000));
        assert!(!ScanBounds::usable(&col("timestamp").lt(lit(ts))));
    }

    #[test]
    fn partitions_from_eq_and_in_list() {
        let b = bounds(&[
            col("partition").in_list(vec![lit(1), lit(3), lit(5)], false),
            col("partition").eq(lit(3)),
        ]);
        assert_eq!(b.partitions, Some(vec![3]));
        let b = bounds(&[col("partition").eq(lit(1)), col("partition").eq(lit(2))]);
        assert!(b.is_empty());
    }

    #[test]
    fn between_and_conjunctions() {
        let b = bounds(&[col("offset")
            .between(lit(3i64), lit(7i64))
            .and(col("partition").eq(lit(0)))]);
        assert_eq!(
            (b.min_offset, b.max_offset, b.partitions),
            (Some(3), Some(7), Some(vec![0]))
        );
    }

    #[test]
    fn other_columns_are_not_pushed() {
        assert!(!ScanBounds::usable(&col("user").eq(lit("a"))));
        assert!(!ScanBounds::usable(&col("offset").not_eq(lit(3i64))));
    }
}
