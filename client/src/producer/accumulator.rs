//! Per-partition batching: records collect in batches until `batch.size` bytes or `linger.ms`
//! (pure state; time is passed in).

use std::collections::{BTreeMap, VecDeque};
use std::time::{Duration, Instant};

use bytes::Bytes;
use tokio::sync::{OwnedSemaphorePermit, oneshot};

use crate::error::Result;
use crate::producer::record::RecordMetadata;

/// A topic and a partition.
pub(crate) type TopicPartition = (String, i32);

/// A record waiting in a batch, with the reply to its `send` and its share of `buffer.memory`.
#[derive(Debug)]
pub(crate) struct PendingRecord {
    pub(crate) key: Option<Bytes>,
    pub(crate) value: Option<Bytes>,
    pub(crate) headers: Vec<(String, Option<Bytes>)>,
    pub(crate) timestamp: i64,
    pub(crate) size: usize,
    pub(crate) reply: Option<oneshot::Sender<Result<RecordMetadata>>>,
    pub(crate) memory: Option<OwnedSemaphorePermit>,
}

/// Producer id, epoch and base sequence given to a batch when it is first sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Sequenced {
    pub(crate) producer_id: i64,
    pub(crate) producer_epoch: i16,
    pub(crate) base_sequence: i32,
}

/// The records of one partition sent together.
#[derive(Debug)]
pub(crate) struct ProducerBatch {
    pub(crate) tp: TopicPartition,
    pub(crate) records: Vec<PendingRecord>,
    pub(crate) size: usize,
    pub(crate) created: Instant,
    /// Failed sends so far.
    pub(crate) attempts: u32,
    /// Not before this instant (retry backoff).
    pub(crate) retry_at: Option<Instant>,
    pub(crate) sequenced: Option<Sequenced>,
    /// The records' `buffer.memory`, merged: released when the batch is done with (one
    /// semaphore release per batch, not per record).
    pub(crate) memory: Option<OwnedSemaphorePermit>,
}

/// Moves a record's memory permit into its batch's.
fn merge_memory(batch: &mut Option<OwnedSemaphorePermit>, record: &mut PendingRecord) {
    if let Some(permit) = record.memory.take() {
        match batch {
            Some(merged) => merged.merge(permit),
            None => *batch = Some(permit),
        }
    }
}

/// What [`Accumulator::append`] did.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Appended {
    /// The record joined an open batch, which is not full yet.
    Joined,
    /// The record joined an open batch and filled it (to `batch.size`): it is ready.
    Filled,
    /// The record opened a new batch.
    NewBatch,
}

impl Appended {
    /// Whether the sender must look again: a batch became ready or has a new linger deadline.
    pub(crate) fn wakes_sender(&self) -> bool {
        !matches!(self, Appended::Joined)
    }
}

/// Batches per partition, oldest first.
#[derive(Debug)]
pub(crate) struct Accumulator {
    batch_size: usize,
    linger: Duration,
    partitions: BTreeMap<TopicPartition, VecDeque<ProducerBatch>>,
    /// While positive, every batch is ready regardless of `linger.ms` (flush, close).
    flushing: usize,
}

impl Accumulator {
    pub(crate) fn new(batch_size: usize, linger: Duration) -> Self {
        Accumulator {
            batch_size,
            linger,
            partitions: BTreeMap::new(),
            flushing: 0,
        }
    }

    /// Adds a record to the partition's open batch, or opens one. With `abort_on_new_batch`,
    /// a record that would open a new batch is handed back instead (sticky partitioning).
    pub(crate) fn append(
        &mut self,
        tp: &TopicPartition,
        record: PendingRecord,
        now: Instant,
        abort_on_new_batch: bool,
    ) -> Result<Appended, Box<PendingRecord>> {
        // The common case (an open batch exists) without cloning the topic name.
        let queue = match self.partitions.get_mut(tp) {
            Some(queue) => queue,
            None => self.partitions.entry(tp.clone()).or_default(),
        };
        if let Some(last) = queue.back_mut()
            && last.attempts == 0
            && last.sequenced.is_none()
            && last.size + record.size <= self.batch_size
        {
            last.size += record.size;
            let mut record = record;
            merge_memory(&mut last.memory, &mut record);
            last.records.push(record);
            return Ok(if last.size >= self.batch_size {
                Appended::Filled
            } else {
                Appended::Joined
            });
        }
        if abort_on_new_batch && !queue.is_empty() {
            return Err(Box::new(record));
        }
        let mut record = record;
        let mut memory = None;
        merge_memory(&mut memory, &mut record);
        // Room for as many records of this size as the batch holds, so it does not regrow.
        let expected = (self.batch_size / record.size.max(1)).clamp(1, 1024);
        let mut records = Vec::with_capacity(expected);
        records.push(record);
        queue.push_back(ProducerBatch {
            tp: tp.clone(),
            size: records[0].size,
            records,
            created: now,
            attempts: 0,
            retry_at: None,
            sequenced: None,
            memory,
        });
        Ok(Appended::NewBatch)
    }

    fn is_ready(&self, queue: &VecDeque<ProducerBatch>, now: Instant) -> bool {
        let Some(first) = queue.front() else {
            return false;
        };
        if first.retry_at.is_some_and(|at| at > now) {
            return false;
        }
        first.attempts > 0
            || queue.len() > 1
            || first.size >= self.batch_size
            || self.flushing > 0
            || now >= first.created + self.linger
    }

    /// Partitions whose first batch can be sent now.
    pub(crate) fn ready(&self, now: Instant) -> Vec<TopicPartition> {
        self.partitions
            .iter()
            .filter(|(_, queue)| self.is_ready(queue, now))
            .map(|(tp, _)| tp.clone())
            .collect()
    }

    /// When the next batch becomes ready by time alone (linger or backoff), if any waits.
    pub(crate) fn next_deadline(&self) -> Option<Instant> {
        self.partitions
            .values()
            .filter_map(|q| q.front())
            .map(|b| b.retry_at.unwrap_or(b.created + self.linger))
            .min()
    }

    /// Takes the partition's first batch.
    pub(crate) fn drain(&mut self, tp: &TopicPartition) -> Option<ProducerBatch> {
        let queue = self.partitions.get_mut(tp)?;
        let batch = queue.pop_front();
        if queue.is_empty() {
            self.partitions.remove(tp);
        }
        batch
    }

    /// Puts a batch back first in line, to be retried not before `retry_at`.
    pub(crate) fn requeue(&mut self, mut batch: ProducerBatch, retry_at: Instant) {
        batch.retry_at = Some(retry_at);
        self.partitions
            .entry(batch.tp.clone())
            .or_default()
            .push_front(batch);
    }

    /// Removes batches created at least `timeout` ago.
    pub(crate) fn expire(&mut self, now: Instant, timeout: Duration) -> Vec<ProducerBatch> {
        let mut expired = Vec::new();
        for queue in self.partitions.values_mut() {
            while queue.front().is_some_and(|b| now >= b.created + timeout) {
                expired.extend(queue.pop_front());
            }
        }
        self.partitions.retain(|_, q| !q.is_empty());
        expired
    }

    pub(crate) fn begin_flush(&mut self) {
        self.flushing += 1;
    }

    pub(crate) fn end_flush(&mut self) {
        self.flushing = self.flushing.saturating_sub(1);
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.partitions.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(size: usize) -> PendingRecord {
        PendingRecord {
            key: None,
            value: Some(Bytes::from(vec![0; size])),
            headers: Vec::new(),
            timestamp: 0,
            size,
            reply: None,
            memory: None,
        }
    }

    fn tp(p: i32) -> TopicPartition {
        ("t".to_string(), p)
    }

    #[test]
    fn batch_is_ready_when_full() {
        let now = Instant::now();
        let mut acc = Accumulator::new(100, Duration::from_secs(60));
        assert_eq!(
            acc.append(&tp(0), record(60), now, false).ok(),
            Some(Appended::NewBatch)
        );
        assert!(acc.ready(now).is_empty());
        // 60 + 60 > 100: a second batch opens and the first is ready.
        assert_eq!(
            acc.append(&tp(0), record(60), now, false).ok(),
            Some(Appended::NewBatch)
        );
        assert_eq!(acc.ready(now), vec![tp(0)]);
        let first = acc.drain(&tp(0)).expect("batch");
        assert_eq!(first.records.len(), 1);
        assert!(acc.ready(now).is_empty());
        // Filling the open batch to exactly batch.size makes it ready.
        assert_eq!(
            acc.append(&tp(0), record(40), now, false).ok(),
            Some(Appended::Filled)
        );
        assert_eq!(acc.ready(now), vec![tp(0)]);
    }

    #[test]
    fn batch_is_ready_after_linger() {
        let now = Instant::now();
        let linger = Duration::from_millis(10);
        let mut acc = Accumulator::new(1000, linger);
        acc.append(&tp(1), record(10), now, false).ok();
        acc.append(&tp(1), record(10), now + Duration::from_millis(5), false)
            .ok();
        assert!(acc.ready(now + Duration::from_millis(9)).is_empty());
        assert_eq!(acc.next_deadline(), Some(now + linger));
        assert_eq!(acc.ready(now + linger), vec![tp(1)]);
        assert_eq!(acc.drain(&tp(1)).expect("batch").records.len(), 2);
        assert!(acc.is_empty());
    }

    #[test]
    fn flush_makes_every_batch_ready() {
        let now = Instant::now();
        let mut acc = Accumulator::new(1000, Duration::from_secs(60));
        acc.append(&tp(0), record(1), now, false).ok();
        acc.append(&tp(1), record(1), now, false).ok();
        acc.begin_flush();
        assert_eq!(acc.ready(now), vec![tp(0), tp(1)]);
        acc.end_flush();
        assert!(acc.ready(now).is_empty());
    }

    #[test]
    fn oversized_record_gets_its_own_batch() {
        let now = Instant::now();
        let mut acc = Accumulator::new(100, Duration::from_secs(60));
        acc.append(&tp(0), record(500), now, false).ok();
        assert_eq!(acc.ready(now), vec![tp(0)]);
    }

    #[test]
    fn sticky_append_hands_back_a_record_that_needs_a_new_batch() {
        let now = Instant::now();
        let mut acc = Accumulator::new(100, Duration::from_secs(60));
        // An empty partition opens a batch even when aborting is asked for.
        assert!(acc.append(&tp(0), record(80), now, true).is_ok());
        let back = acc.append(&tp(0), record(80), now, true);
        assert!(back.is_err());
        assert_eq!(acc.drain(&tp(0)).expect("batch").records.len(), 1);
    }

    #[test]
    fn retried_batch_waits_for_backoff_and_takes_no_new_records() {
        let now = Instant::now();
        let mut acc = Accumulator::new(100, Duration::from_millis(0));
        acc.append(&tp(0), record(10), now, false).ok();
        let mut batch = acc.drain(&tp(0)).expect("batch");
        batch.attempts = 1;
        acc.requeue(batch, now + Duration::from_millis(50));
        assert_eq!(
            acc.append(&tp(0), record(10), now, false).ok(),
            Some(Appended::NewBatch)
        );
        assert!(acc.ready(now + Duration::from_millis(49)).is_empty());
        assert_eq!(acc.next_deadline(), Some(now + Duration::from_millis(50)));
        assert_eq!(acc.ready(now + Duration::from_millis(50)), vec![tp(0)]);
        assert_eq!(acc.drain(&tp(0)).expect("retry").attempts, 1);
    }

    #[test]
    fn expire_removes_old_batches() {
        let now = Instant::now();
        let mut acc = Accumulator::new(10, Duration::from_secs(60));
        acc.append(&tp(0), record(10), now, false).ok();
        acc.append(&tp(0), record(10), now + Duration::from_secs(5), false)
            .ok();
        let expired = acc.expire(now + Duration::from_secs(3), Duration::from_secs(3));
        assert_eq!(expired.len(), 1);
        assert!(!acc.is_empty());
    }
}
