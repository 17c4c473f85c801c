//! `fjord bench produce|consume`: load generators in the manner of Kafka's
//! kafka-producer-perf-test and kafka-consumer-perf-test.
//!
//! MB is 10^6 bytes of record values (what rdkafka_performance reports too), so figures can be
//! put side by side with librdkafka's.

use std::future::Future;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, bail};
use bytes::Bytes;
use clap::{Args, Subcommand};
use fjord_client::{DeliveryFuture, Producer, ProducerConfig, ProducerRecord};
use tokio::sync::mpsc;

use crate::client_opts::ClientOpts;
use crate::consume::{Source, Start, open};

/// How often a progress line is printed.
const REPORT_EVERY: Duration = Duration::from_secs(5);

#[derive(Debug, Args)]
pub(crate) struct BenchArgs {
    #[command(subcommand)]
    command: BenchCommand,
}

#[derive(Debug, Subcommand)]
enum BenchCommand {
    /// Produce records as fast as allowed and report throughput and delivery latency
    /// (send to acknowledgement).
    Produce(ProduceBench),
    /// Read records and report throughput (and, for live data, end-to-end latency).
    Consume(ConsumeBench),
}

#[derive(Debug, Args)]
struct ProduceBench {
    /// The topic to write to (created by the broker if auto.create.topics.enable is on).
    topic: String,
    #[command(flatten)]
    client: ClientOpts,
    /// How many records to send.
    #[arg(long, default_value_t = 1_000_000)]
    records: u64,
    /// Value size of each record in bytes (keys are null, as in kafka-producer-perf-test).
    #[arg(long, default_value_t = 1024)]
    record_size: usize,
    /// Cap on records per second; -1 for no cap.
    #[arg(long, default_value_t = -1, allow_negative_numbers = true)]
    throughput: i64,
    /// Kafka's acks: 0, 1 or all.
    #[arg(long, default_value = "1")]
    acks: String,
    /// Kafka's compression.type: none, gzip, snappy, lz4, zstd.
    #[arg(long, default_value = "none")]
    compression: String,
    /// Kafka's batch.size in bytes.
    #[arg(long)]
    batch_size: Option<usize>,
    /// Kafka's linger.ms.
    #[arg(long)]
    linger_ms: Option<u64>,
}

#[derive(Debug, Args)]
struct ConsumeBench {
    /// The topic to read.
    topic: String,
    #[command(flatten)]
    client: ClientOpts,
    /// Stop after this many records.
    #[arg(long, default_value_t = 1_000_000)]
    records: u64,
    /// Read as this consumer group (from the committed offsets, else the beginning);
    /// without it every partition is read from the beginning.
    #[arg(long)]
    group: Option<String>,
    /// Give up when no record arrives for this long.
    #[arg(long, default_value_t = 10_000, value_name = "MS")]
    timeout_ms: u64,
}

pub(crate) async fn run(args: BenchArgs) -> anyhow::Result<()> {
    match args.command {
        BenchCommand::Produce(args) => produce(args).await,
        BenchCommand::Consume(args) => consume(args).await,
    }
}

/// Latencies in microseconds, reported in milliseconds.
#[derive(Default)]
struct Latencies {
    samples: Vec<u32>,
    sum_us: u64,
    max_us: u32,
}

impl Latencies {
    fn record(&mut self, latency: Duration) {
        let us = u32::try_from(latency.as_micros()).unwrap_or(u32::MAX);
        self.samples.push(us);
        self.sum_us += u64::from(us);
        self.max_us = self.max_us.max(us);
    }

    fn avg_ms(&self) -> f64 {
        if self.samples.is_empty() {
            return 0.0;
        }
        self.sum_us as f64 / self.samples.len() as f64 / 1000.0
    }

    fn max_ms(&self) -> f64 {
        f64::from(self.max_us) / 1000.0
    }

    /// The percentiles, in ms, of the samples (sorted in place).
    fn percentiles(&mut self, points: &[f64]) -> Vec<f64> {
        self.samples.sort_unstable();
        points
            .iter()
            .map(|p| {
                if self.samples.is_empty() {
                    return 0.0;
                }
                let rank = ((p / 100.0) * self.samples.len() as f64).ceil() as usize;
                let index = rank.clamp(1, self.samples.len()) - 1;
                f64::from(self.samples[index]) / 1000.0
            })
            .collect()
    }
}

/// Throughput over a period, as "N records, X records/sec (Y MB/sec)".
fn rate(records: u64, bytes: u64, elapsed: Duration) -> String {
    let secs = elapsed.as_secs_f64().max(1e-9);
    format!(
        "{records} records, {:.1} records/sec ({:.2} MB/sec)",
        records as f64 / secs,
        bytes as f64 / secs / 1e6
    )
}

async fn produce(args: ProduceBench) -> anyhow::Result<()> {
    if args.records == 0 {
        bail!("--records must be at least 1");
    }
    let mut defaults = vec![
        ("acks", args.acks.clone()),
        ("compression.type", args.compression.clone()),
    ];
    if let Some(size) = args.batch_size {
        defaults.push(("batch.size", size.to_string()));
    }
    if let Some(linger) = args.linger_ms {
        defaults.push(("linger.ms", linger.to_string()));
    }
    let config = ProducerConfig::from_properties(&args.client.properties(&defaults))?;
    let producer = Producer::new(config)?;
    // One random payload, shared by every record (as kafka-producer-perf-test does): the
    // benchmark measures the client and broker, not a payload generator.
    let payload = Bytes::from(random_payload(args.record_size));

    let (tx, rx) = mpsc::channel::<(Instant, DeliveryFuture)>(64 * 1024);
    let record_size = args.record_size as u64;
    let collector = tokio::spawn(collect_deliveries(rx, record_size));
    let start = Instant::now();
    let per_record =
        (args.throughput > 0).then(|| Duration::from_secs_f64(1.0 / args.throughput as f64));
    let mut send_error = None;
    for i in 0..args.records {
        if let Some(interval) = per_record {
            let due = start + interval.mul_f64(i as f64);
            let now = Instant::now();
            if due > now + Duration::from_millis(1) {
                tokio::time::sleep_until(due.into()).await;
            }
        }
        let record = ProducerRecord {
            topic: args.topic.clone(),
            value: Some(payload.clone()),
            ..Default::default()
        };
        let sent_at = Instant::now();
        match producer.send(record).await {
            Ok(delivery) => {
                if tx.send((sent_at, delivery)).await.is_err() {
                    break;
                }
            }
            Err(e) => {
                send_error = Some(e);
                break;
            }
        }
    }
    drop(tx);
    producer.flush().await;
    let outcome = collector.await.context("delivery task failed")?;
    let elapsed = start.elapsed();
    producer.close().await;
    if let Some(e) = send_error {
        return Err(e).context("send failed");
    }
    let Outcome {
        delivered,
        mut latencies,
        first_error,
    } = outcome;
    if let Some(e) = first_error {
        bail!(
            "{delivered} of {} records delivered; first failure: {e}",
            args.records
        );
    }
    let p = latencies.percentiles(&[50.0, 95.0, 99.0, 99.9]);
    println!(
        "{} sent, {:.2} ms avg latency, {:.2} ms max latency, {:.2} ms 50th, {:.2} ms 95th, \
         {:.2} ms 99th, {:.2} ms 99.9th.",
        rate(delivered, delivered * record_size, elapsed),
        latencies.avg_ms(),
        latencies.max_ms(),
        p[0],
        p[1],
        p[2],
        p[3]
    );
    Ok(())
}

struct Outcome {
    delivered: u64,
    latencies: Latencies,
    first_error: Option<fjord_client::Error>,
}

/// Awaits deliveries in send order (one broker answers a partition's batches in order),
/// timing each from `send` to acknowledgement; prints a progress line every few seconds.
async fn collect_deliveries(
    mut rx: mpsc::Receiver<(Instant, DeliveryFuture)>,
    record_size: u64,
) -> Outcome {
    let mut outcome = Outcome {
        delivered: 0,
        latencies: Latencies::default(),
        first_error: None,
    };
    let mut window = Latencies::default();
    let mut window_start = Instant::now();
    let mut window_count = 0u64;
    // Records of one batch are answered together: read the clock when a wait ended, and reuse
    // that reading for deliveries that were already complete (the clock is not free here).
    let mut answered_at = Instant::now();
    while let Some((sent_at, mut delivery)) = rx.recv().await {
        let ready = {
            let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
            match std::pin::Pin::new(&mut delivery).poll(&mut cx) {
                std::task::Poll::Ready(result) => Some(result),
                std::task::Poll::Pending => None,
            }
        };
        let result = match ready {
            Some(result) => result,
            None => {
                let result = delivery.await;
                answered_at = Instant::now();
                result
            }
        };
        match result {
            Ok(_) => {
                let latency = answered_at.saturating_duration_since(sent_at);
                outcome.latencies.record(latency);
                window.record(latency);
                outcome.delivered += 1;
                window_count += 1;
            }
            Err(e) => {
                outcome.first_error.get_or_insert(e);
            }
        }
        if window_start.elapsed() >= REPORT_EVERY {
            eprintln!(
                "{} sent, {:.1} ms avg latency, {:.1} ms max latency.",
                rate(
                    window_count,
                    window_count * record_size,
                    window_start.elapsed()
                ),
                window.avg_ms(),
                window.max_ms()
            );
            window = Latencies::default();
            window_start = Instant::now();
            window_count = 0;
        }
    }
    outcome
}

/// Uppercase letters from a small xorshift generator (seeded from the clock).
fn random_payload(size: usize) -> Vec<u8> {
    let mut state = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0x9e37_79b9_7f4a_7c15, |d| d.as_nanos() as u64)
        | 1;
    (0..size)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            b'A' + (state % 26) as u8
        })
        .collect()
}

async fn consume(args: ConsumeBench) -> anyhow::Result<()> {
    let mut consumer = open(
        &args.client,
        &args.topic,
        Source::Topic,
        args.group.as_deref(),
        None,
        Start::Earliest,
        "earliest",
    )
    .await?;
    let idle = Duration::from_millis(args.timeout_ms);
    let start = Instant::now();
    let mut first_record_at = None;
    let mut last_record_at = Instant::now();
    let mut count = 0u64;
    let mut bytes = 0u64;
    let mut ages = Latencies::default();
    let mut window_start = Instant::now();
    let (mut window_count, mut window_bytes) = (0u64, 0u64);
    while count < args.records {
        let records = consumer.poll(Duration::from_millis(100)).await?;
        if records.is_empty() {
            if last_record_at.elapsed() >= idle {
                break;
            }
            continue;
        }
        let now = Instant::now();
        let wall_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as i64);
        first_record_at.get_or_insert(now);
        last_record_at = now;
        for record in records.iter().take((args.records - count) as usize) {
            let size = record.value.as_ref().map_or(0, |v| v.len()) as u64;
            bytes += size;
            window_bytes += size;
            count += 1;
            window_count += 1;
            ages.record(Duration::from_millis(
                u64::try_from(wall_ms - record.timestamp).unwrap_or(0),
            ));
        }
        if window_start.elapsed() >= REPORT_EVERY {
            eprintln!(
                "{} consumed.",
                rate(window_count, window_bytes, window_start.elapsed())
            );
            window_start = Instant::now();
            (window_count, window_bytes) = (0, 0);
        }
    }
    let end = last_record_at;
    consumer.close().await?;
    if count < args.records {
        eprintln!(
            "fjord: only {count} of {} records arrived (nothing new for {} ms)",
            args.records, args.timeout_ms
        );
    }
    let elapsed = first_record_at.map_or(Duration::ZERO, |first| {
        end.duration_since(first).max(Duration::from_millis(1))
    });
    let p = ages.percentiles(&[50.0, 99.0, 99.9]);
    println!(
        "{} consumed in {:.2} s (first fetch after {:.0} ms); end-to-end latency (receipt - record \
         timestamp): {:.0} ms avg, {:.0} ms 50th, {:.0} ms 99th, {:.0} ms 99.9th, {:.0} ms max.",
        rate(count, bytes, elapsed),
        elapsed.as_secs_f64(),
        first_record_at.map_or(0.0, |f| f.duration_since(start).as_secs_f64() * 1000.0),
        ages.avg_ms(),
        p[0],
        p[1],
        p[2],
        ages.max_ms()
    );
    if count == 0 {
        bail!("no records read from {}", args.topic);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_use_nearest_rank() {
        let mut latencies = Latencies::default();
        for ms in 1..=100u64 {
            latencies.record(Duration::from_millis(ms));
        }
        assert_eq!(
            latencies.percentiles(&[50.0, 99.0, 99.9]),
            vec![50.0, 99.0, 100.0]
        );
        assert_eq!(latencies.max_ms(), 100.0);
        assert!((latencies.avg_ms() - 50.5).abs() < 1e-9);
    }

    #[test]
    fn payload_has_the_requested_size() {
        let payload = random_payload(1024);
        assert_eq!(payload.len(), 1024);
        assert!(payload.iter().all(u8::is_ascii_uppercase));
    }
}
