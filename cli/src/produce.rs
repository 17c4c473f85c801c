//! `fjord produce`: one record per input line, from stdin or a file.

use std::io::{BufRead, BufReader, Read};
use std::path::PathBuf;

use anyhow::{Context, bail};
use bytes::Bytes;
use clap::Args;
use fjord_client::{DeliveryFuture, Producer, ProducerConfig, ProducerRecord};
use indicatif::{ProgressBar, ProgressStyle};
use tokio::sync::mpsc;

use crate::client_opts::{ClientOpts, key_value};

/// Lines handed from the reader thread to the producer at a time.
const CHUNK_LINES: usize = 512;

#[derive(Debug, Args)]
pub(crate) struct ProduceArgs {
    /// The topic to write to.
    topic: String,
    #[command(flatten)]
    client: ClientOpts,
    /// Read lines from this file instead of stdin (a progress bar shows on a terminal).
    #[arg(long, value_name = "PATH")]
    file: Option<PathBuf>,
    /// Split each line into key and value at the first SEP; a line without SEP is an error.
    #[arg(long, value_name = "SEP")]
    key_separator: Option<String>,
    /// Each line starts with headers, `name:value,name:value`, then a tab, then the record
    /// (kafka-console-producer's parse.headers format). `name` alone gives a null value.
    #[arg(long)]
    headers: bool,
    /// A header added to every record (repeatable).
    #[arg(long = "header", value_name = "NAME=VALUE", value_parser = key_value)]
    fixed_headers: Vec<(String, String)>,
    /// Write every record to this partition instead of letting the partitioner choose.
    #[arg(long)]
    partition: Option<i32>,
    /// Acknowledgements to wait for: 0, 1 or all (Kafka's acks).
    #[arg(long, value_name = "0|1|all")]
    acks: Option<String>,
    /// Compression: none, gzip, snappy, lz4 or zstd (Kafka's compression.type).
    #[arg(long, value_name = "CODEC")]
    compression: Option<String>,
}

/// How a line becomes a record.
struct LineFormat {
    key_separator: Option<Vec<u8>>,
    headers: bool,
    fixed_headers: Vec<(String, Option<Bytes>)>,
}

impl LineFormat {
    fn record(
        &self,
        topic: &str,
        partition: Option<i32>,
        line: &[u8],
    ) -> Result<ProducerRecord, String> {
        let mut headers = self.fixed_headers.clone();
        let mut rest = line;
        if self.headers {
            let tab = rest.iter().position(|b| *b == b'\t').ok_or(
                "no tab after the headers (--headers expects `name:value,...<TAB>record`)",
            )?;
            let (text, after) = rest.split_at(tab);
            rest = &after[1..];
            let text = std::str::from_utf8(text).map_err(|_| "header names must be UTF-8")?;
            for header in text.split(',').filter(|h| !h.is_empty()) {
                match header.split_once(':') {
                    Some((name, value)) => headers.push((
                        name.to_string(),
                        Some(Bytes::copy_from_slice(value.as_bytes())),
                    )),
                    None => headers.push((header.to_string(), None)),
                }
            }
        }
        let (key, value) = match &self.key_separator {
            Some(sep) => {
                let at = find(rest, sep).ok_or_else(|| {
                    format!(
                        "no key separator {:?} in the line",
                        String::from_utf8_lossy(sep)
                    )
                })?;
                (
                    Some(Bytes::copy_from_slice(&rest[..at])),
                    &rest[at + sep.len()..],
                )
            }
            None => (None, rest),
        };
        Ok(ProducerRecord {
            topic: topic.to_string(),
            partition,
            key,
            value: Some(Bytes::copy_from_slice(value)),
            headers,
            timestamp: None,
        })
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    if needle.is_empty() {
        return None;
    }
    haystack.windows(needle.len()).position(|w| w == needle)
}

pub(crate) async fn run(args: ProduceArgs) -> anyhow::Result<()> {
    let mut defaults = Vec::new();
    if let Some(acks) = &args.acks {
        defaults.push(("acks", acks.clone()));
    }
    if let Some(codec) = &args.compression {
        defaults.push(("compression.type", codec.clone()));
    }
    let config = ProducerConfig::from_properties(&args.client.properties(&defaults))?;
    let producer = Producer::new(config)?;
    let format = LineFormat {
        key_separator: args.key_separator.as_ref().map(|s| s.as_bytes().to_vec()),
        headers: args.headers,
        fixed_headers: args
            .fixed_headers
            .iter()
            .map(|(k, v)| (k.clone(), Some(Bytes::copy_from_slice(v.as_bytes()))))
            .collect(),
    };

    let (input, size): (Box<dyn Read + Send>, Option<u64>) = match &args.file {
        Some(path) => {
            let file = std::fs::File::open(path)
                .with_context(|| format!("cannot open {}", path.display()))?;
            let size = file.metadata().ok().map(|m| m.len());
            (Box::new(file), size)
        }
        None => (Box::new(std::io::stdin()), None),
    };
    let progress = match size {
        Some(len) => {
            let bar = ProgressBar::new(len);
            bar.set_style(
                ProgressStyle::with_template(
                    "{bar:40} {bytes}/{total_bytes} {bytes_per_sec} eta {eta} {msg}",
                )
                .unwrap_or_else(|_| ProgressStyle::default_bar()),
            );
            bar
        }
        None => ProgressBar::hidden(),
    };

    // Lines are read on a blocking thread; the bounded channel keeps it at most a few chunks
    // ahead of the producer (which in turn is bounded by buffer.memory).
    let (lines_tx, mut lines_rx) = mpsc::channel::<std::io::Result<Vec<Vec<u8>>>>(4);
    let reader_progress = progress.clone();
    let reader =
        tokio::task::spawn_blocking(move || read_lines(input, &lines_tx, &reader_progress));

    let (deliveries_tx, deliveries) = mpsc::channel::<DeliveryFuture>(64 * 1024);
    let collector = tokio::spawn(collect(deliveries));

    let mut line_no: u64 = 0;
    let mut failure = None;
    'read: while let Some(chunk) = lines_rx.recv().await {
        let chunk = chunk.context("cannot read the input")?;
        for line in chunk {
            line_no += 1;
            let record = match format.record(&args.topic, args.partition, &line) {
                Ok(record) => record,
                Err(reason) => {
                    failure = Some(anyhow::anyhow!("line {line_no}: {reason}"));
                    break 'read;
                }
            };
            match producer.send(record).await {
                Ok(delivery) => {
                    if deliveries_tx.send(delivery).await.is_err() {
                        break 'read;
                    }
                }
                Err(e) => {
                    failure = Some(anyhow::Error::new(e).context(format!("line {line_no}")));
                    break 'read;
                }
            }
        }
    }
    drop(lines_rx);
    drop(deliveries_tx);
    producer.flush().await;
    let (delivered, first_error) = collector.await.context("delivery task failed")?;
    producer.close().await;
    progress.finish_and_clear();
    let _ = reader.await;
    if let Some(e) = failure {
        eprintln!(
            "fjord: {delivered} records produced to {} before the error",
            args.topic
        );
        return Err(e);
    }
    if let Some(e) = first_error {
        bail!(
            "{delivered} of {line_no} records delivered to {}; first failure: {e}",
            args.topic
        );
    }
    eprintln!("fjord: produced {delivered} records to {}", args.topic);
    Ok(())
}

/// Waits for every delivery; returns how many succeeded and the first error.
async fn collect(
    mut deliveries: mpsc::Receiver<DeliveryFuture>,
) -> (u64, Option<fjord_client::Error>) {
    let mut delivered = 0;
    let mut first_error = None;
    while let Some(delivery) = deliveries.recv().await {
        match delivery.await {
            Ok(_) => delivered += 1,
            Err(e) => {
                first_error.get_or_insert(e);
            }
        }
    }
    (delivered, first_error)
}

/// Reads newline-separated lines (a trailing `\r` is dropped) and sends them in chunks.
fn read_lines(
    input: Box<dyn Read + Send>,
    out: &mpsc::Sender<std::io::Result<Vec<Vec<u8>>>>,
    progress: &ProgressBar,
) {
    let mut input = BufReader::with_capacity(256 * 1024, input);
    let mut chunk = Vec::with_capacity(CHUNK_LINES);
    loop {
        let mut line = Vec::new();
        match input.read_until(b'\n', &mut line) {
            Ok(0) => break,
            Ok(n) => {
                progress.inc(n as u64);
                if line.last() == Some(&b'\n') {
                    line.pop();
                    if line.last() == Some(&b'\r') {
                        line.pop();
                    }
                }
                chunk.push(line);
                if chunk.len() == CHUNK_LINES
                    && out.blocking_send(Ok(std::mem::take(&mut chunk))).is_err()
                {
                    return;
                }
            }
            Err(e) => {
                let _ = out.blocking_send(Err(e));
                return;
            }
        }
    }
    if !chunk.is_empty() {
        let _ = out.blocking_send(Ok(chunk));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn format(sep: Option<&str>, headers: bool) -> LineFormat {
        LineFormat {
            key_separator: sep.map(|s| s.as_bytes().to_vec()),
            headers,
            fixed_headers: vec![("src".into(), Some(Bytes::from_static(b"cli")))],
        }
    }

    #[test]
    fn key_separator_splits_at_the_first_occurrence() {
        let record = format(Some(":"), false)
            .record("t", None, b"k:v:w")
            .expect("record");
        assert_eq!(record.key.as_deref(), Some(&b"k"[..]));
        assert_eq!(record.value.as_deref(), Some(&b"v:w"[..]));
    }

    #[test]
    fn line_without_separator_is_an_error() {
        let err = format(Some("::"), false)
            .record("t", None, b"kv")
            .unwrap_err();
        assert!(err.contains("no key separator"), "{err}");
    }

    #[test]
    fn headers_precede_a_tab() {
        let record = format(Some("="), true)
            .record("t", Some(2), b"a:1,b\tkey=value")
            .expect("record");
        assert_eq!(record.partition, Some(2));
        assert_eq!(
            record.headers,
            vec![
                ("src".into(), Some(Bytes::from_static(b"cli"))),
                ("a".into(), Some(Bytes::from_static(b"1"))),
                ("b".into(), None),
            ]
        );
        assert_eq!(record.key.as_deref(), Some(&b"key"[..]));
        assert_eq!(record.value.as_deref(), Some(&b"value"[..]));
        assert!(format(None, true).record("t", None, b"no tab").is_err());
    }
}
