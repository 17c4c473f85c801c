//! Tumbling and hopping windows over event time, emitted once when they close.
//!
//! Rows are kept in panes of `slide` ms; a window `[s, s + size)` is the union of its
//! `size / slide` panes. The watermark is the highest event time seen; a window closes when
//! `s + size + lateness <= watermark` (Kafka's `end + grace <= stream time`), and a row whose
//! every window has closed is late: dropped and counted. A row of a hopping window is counted
//! only in the windows still open when it arrived (the hidden `__fjord_open` column), so late
//! rows never change a window already emitted.

use std::collections::BTreeMap;
use std::sync::Arc;

use datafusion::arrow::array::{Int64Array, RecordBatch};
use datafusion::arrow::datatypes::SchemaRef;

use super::rows::{self, OPEN, TS};
use crate::error::Result;

/// Open time windows and their rows.
#[derive(Debug)]
pub struct TimeWindows {
    pub size: i64,
    pub slide: i64,
    pub lateness: i64,
    panes: BTreeMap<i64, Vec<RecordBatch>>,
    /// The first window start not yet emitted.
    pub next_window: Option<i64>,
    /// Schema of buffered rows (source columns + hidden columns).
    schema: Option<SchemaRef>,
}

/// What [`TimeWindows::add`] did with a batch.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Added {
    pub kept: usize,
    pub late: usize,
    /// Rows without an event time (skipped).
    pub untimed: usize,
}

impl TimeWindows {
    pub fn new(size: i64, slide: i64, lateness: i64) -> Self {
        TimeWindows {
            size,
            slide,
            lateness,
            panes: BTreeMap::new(),
            next_window: None,
            schema: None,
        }
    }

    fn pane(&self, t: i64) -> i64 {
        t.div_euclid(self.slide) * self.slide
    }

    /// Adds the rows of `batch` with event times `times`, advancing `watermark` row by row.
    pub fn add(
        &mut self,
        batch: &RecordBatch,
        times: &[Option<i64>],
        watermark: &mut Option<i64>,
    ) -> Result<Added> {
        let mut added = Added::default();
        let mut keep = Vec::new();
        let mut opens = Vec::new();
        let mut tss = Vec::new();
        for (i, t) in times.iter().enumerate() {
            let Some(t) = *t else {
                added.untimed += 1;
                continue;
            };
            let wm = watermark.map_or(t, |w| w.max(t));
            *watermark = Some(wm);
            let last_start = self.pane(t);
            if last_start + self.size + self.lateness <= wm {
                added.late += 1;
                continue;
            }
            // The first window holding t, and the first still open.
            let first = (t - self.size).div_euclid(self.slide) * self.slide + self.slide;
            let open_min =
                (wm - self.size - self.lateness).div_euclid(self.slide) * self.slide + self.slide;
            let open_from = first.max(open_min);
            self.next_window = Some(self.next_window.map_or(open_from, |n| n.min(open_from)));
            keep.push(i as u32);
            opens.push(open_from);
            tss.push(t);
        }
        added.kept = keep.len();
        if keep.is_empty() {
            return Ok(added);
        }
        let kept = rows::take(batch, &keep)?;
        let kept = rows::with_columns(
            &kept,
            vec![
                (TS, Arc::new(Int64Array::from(tss.clone()))),
                (OPEN, Arc::new(Int64Array::from(opens))),
            ],
        )?;
        self.schema.get_or_insert_with(|| kept.schema());
        let mut by_pane: BTreeMap<i64, Vec<u32>> = BTreeMap::new();
        for (i, t) in tss.iter().enumerate() {
            by_pane.entry(self.pane(*t)).or_default().push(i as u32);
        }
        for (pane, idx) in by_pane {
            let part = if idx.len() == kept.num_rows() {
                kept.clone()
            } else {
                rows::take(&kept, &idx)?
            };
            self.panes.entry(pane).or_default().push(part);
        }
        Ok(added)
    }

    /// Windows that closed by `watermark`, oldest first: `(start, rows)` with the hidden
    /// columns removed. Panes no open window needs are dropped.
    pub fn close(&mut self, watermark: i64) -> Result<Vec<(i64, RecordBatch)>> {
        let mut out = Vec::new();
        while let Some(s) = self.next_window {
            if s + self.size + self.lateness > watermark {
                break;
            }
            // Skip ahead over windows without rows.
            let Some((&first_pane, _)) = self.panes.range(s..).next() else {
                self.next_window = None;
                break;
            };
            if first_pane >= s + self.size {
                self.next_window =
                    Some((first_pane - self.size).div_euclid(self.slide) * self.slide + self.slide);
                continue;
            }
            let mut parts = Vec::new();
            for (_, batches) in self.panes.range(s..s + self.size) {
                for b in batches {
                    let open = rows::int64_column(b, OPEN)?;
                    let keep: Vec<bool> = open.iter().map(|o| o.is_some_and(|o| o <= s)).collect();
                    let counted = rows::filter(b, keep)?;
                    if counted.num_rows() > 0 {
                        parts.push(rows::without_hidden(&counted)?);
                    }
                }
            }
            if let (Some(first), Some(schema)) = (parts.first(), &self.schema) {
                let visible = rows::visible_schema(schema);
                debug_assert_eq!(first.schema().fields().len(), visible.fields().len());
                out.push((s, rows::concat(&visible, &parts)?));
            }
            self.next_window = Some(s + self.slide);
        }
        let next = self.next_window;
        let horizon = watermark - self.size - self.lateness;
        self.panes
            .retain(|p, _| !(*p <= horizon && next.is_none_or(|n| n > *p)));
        Ok(out)
    }

    /// Every buffered row (for a checkpoint).
    pub fn rows(&self) -> (Option<SchemaRef>, Vec<RecordBatch>) {
        (
            self.schema.clone(),
            self.panes.values().flatten().cloned().collect(),
        )
    }

    /// Puts rows from a checkpoint back into their panes.
    pub fn restore(&mut self, batches: Vec<RecordBatch>) -> Result<()> {
        for b in batches {
            self.schema.get_or_insert_with(|| b.schema());
            let ts = rows::int64_column(&b, TS)?;
            let mut by_pane: BTreeMap<i64, Vec<u32>> = BTreeMap::new();
            for (i, t) in ts.iter().enumerate() {
                if let Some(t) = t {
                    by_pane.entry(self.pane(t)).or_default().push(i as u32);
                }
            }
            for (pane, idx) in by_pane {
                let part = rows::take(&b, &idx)?;
                self.panes.entry(pane).or_default().push(part);
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::array::Array;
    use datafusion::arrow::datatypes::{DataType, Field, Schema};

    fn batch(values: &[i64]) -> RecordBatch {
        let schema = Arc::new(Schema::new(vec![Field::new("v", DataType::Int64, false)]));
        RecordBatch::try_new(schema, vec![Arc::new(Int64Array::from(values.to_vec()))]).unwrap()
    }

    fn sums(closed: &[(i64, RecordBatch)]) -> Vec<(i64, i64)> {
        closed
            .iter()
            .map(|(s, b)| {
                let v = b.column(0).as_any().downcast_ref::<Int64Array>().unwrap();
                (*s, v.iter().flatten().sum())
            })
            .collect()
    }

    #[test]
    fn tumbling_windows_close_once_and_drop_late_rows() {
        let mut w = TimeWindows::new(10, 10, 0);
        let mut wm = None;
        let a = w
            .add(&batch(&[1, 2, 3]), &[Some(1), Some(5), Some(12)], &mut wm)
            .unwrap();
        assert_eq!(
            a,
            Added {
                kept: 3,
                late: 0,
                untimed: 0
            }
        );
        assert_eq!(sums(&w.close(wm.unwrap()).unwrap()), vec![(0, 3)]);
        // t=9 is late: window [0,10) closed at 12.
        let a = w
            .add(&batch(&[100, 4]), &[Some(9), Some(19)], &mut wm)
            .unwrap();
        assert_eq!(a.late, 1);
        assert!(w.close(wm.unwrap()).unwrap().is_empty());
        w.add(&batch(&[5]), &[Some(20)], &mut wm).unwrap();
        assert_eq!(sums(&w.close(wm.unwrap()).unwrap()), vec![(10, 7)]);
    }

    #[test]
    fn lateness_keeps_windows_open() {
        let mut w = TimeWindows::new(10, 10, 5);
        let mut wm = None;
        w.add(&batch(&[1, 2]), &[Some(1), Some(12)], &mut wm)
            .unwrap();
        assert!(w.close(wm.unwrap()).unwrap().is_empty());
        let a = w.add(&batch(&[10]), &[Some(8)], &mut wm).unwrap();
        assert_eq!(a.late, 0);
        w.add(&batch(&[0]), &[Some(15)], &mut wm).unwrap();
        assert_eq!(sums(&w.close(wm.unwrap()).unwrap()), vec![(0, 11)]);
    }

    #[test]
    fn hopping_windows_hold_each_row_in_size_over_slide_windows() {
        let mut w = TimeWindows::new(10, 5, 0);
        let mut wm = None;
        w.add(
            &batch(&[1, 10, 100]),
            &[Some(3), Some(7), Some(12)],
            &mut wm,
        )
        .unwrap();
        w.add(&batch(&[0]), &[Some(40)], &mut wm).unwrap();
        // Windows [-5,5), [0,10), [5,15), [10,20).
        assert_eq!(
            sums(&w.close(wm.unwrap()).unwrap()),
            vec![(-5, 1), (0, 11), (5, 110), (10, 100)]
        );
    }

    #[test]
    fn checkpoint_rows_restore_the_same_windows() {
        let mut w = TimeWindows::new(10, 10, 0);
        let mut wm = None;
        w.add(&batch(&[1, 2]), &[Some(1), Some(15)], &mut wm)
            .unwrap();
        w.close(wm.unwrap()).unwrap();
        let (_, saved) = w.rows();
        let mut r = TimeWindows::new(10, 10, 0);
        r.next_window = w.next_window;
        r.restore(saved).unwrap();
        let mut wm2 = wm;
        r.add(&batch(&[3]), &[Some(25)], &mut wm2).unwrap();
        assert_eq!(sums(&r.close(wm2.unwrap()).unwrap()), vec![(10, 2)]);
        let _ = r.rows().1.iter().map(|b| b.column(0).len()).sum::<usize>();
    }
}
