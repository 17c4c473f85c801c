//! The consumer as a `Stream` of records.

use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use futures_core::Stream;

use super::{Consumer, ConsumerRecord};
use crate::error::Result;

type PollFuture = Pin<Box<dyn Future<Output = (Consumer, Result<Vec<ConsumerRecord>>)> + Send>>;

/// Records of a [`Consumer`], one at a time; an error ends nothing (the next item polls
/// again), so stop on the first error if it is fatal to you.
pub struct RecordStream {
    consumer: Option<Consumer>,
    polling: Option<PollFuture>,
    buffered: VecDeque<ConsumerRecord>,
    poll_timeout: Duration,
}

impl std::fmt::Debug for RecordStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RecordStream")
            .field("buffered", &self.buffered.len())
            .field("polling", &self.polling.is_some())
            .finish_non_exhaustive()
    }
}

impl RecordStream {
    pub(crate) fn new(consumer: Consumer, poll_timeout: Duration) -> Self {
        RecordStream {
            consumer: Some(consumer),
            polling: None,
            buffered: VecDeque::new(),
            poll_timeout,
        }
    }

    /// The consumer back, with records fetched but not yet yielded; `None` while a poll is
    /// in flight (drive the stream until it yields first).
    pub fn into_inner(self) -> Option<(Consumer, Vec<ConsumerRecord>)> {
        let consumer = self.consumer?;
        Some((consumer, self.buffered.into()))
    }
}

impl Stream for RecordStream {
    type Item = Result<ConsumerRecord>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        loop {
            if let Some(record) = this.buffered.pop_front() {
                return Poll::Ready(Some(Ok(record)));
            }
            if this.polling.is_none() {
                let Some(mut consumer) = this.consumer.take() else {
                    return Poll::Ready(None);
                };
                let timeout = this.poll_timeout;
                this.polling = Some(Box::pin(async move {
                    let result = consumer.poll(timeout).await;
                    (consumer, result)
                }));
            }
            let polling = this.polling.as_mut().expect("set above");
            let (consumer, result) = match polling.as_mut().poll(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(done) => done,
            };
            this.polling = None;
            this.consumer = Some(consumer);
            match result {
                Ok(records) => this.buffered.extend(records),
                Err(e) => return Poll::Ready(Some(Err(e))),
            }
        }
    }
}
