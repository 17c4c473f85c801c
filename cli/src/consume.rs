//! `fjord consume`: print a topic's records, raw or as JSON lines.

use std::io::Write;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use bytes::Bytes;
use clap::{Args, ValueEnum};
use fjord_client::{Admin, Consumer, ConsumerConfig, ConsumerRecord, TopicPartition};
use serde_json::{Map, Value, json};

use crate::client_opts::ClientOpts;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Format {
    /// The value, one per line (with --print-key: key, separator, value).
    Raw,
    /// One JSON object per record: topic, partition, offset, timestamp, key, value, headers.
    Json,
}

#[derive(Debug, Args)]
pub(crate) struct ConsumeArgs {
    /// The topic to read.
    #[arg(required_unless_present = "include")]
    topic: Option<String>,
    /// Read every topic whose name matches this regular expression (needs --group); topics
    /// created later that match are picked up (metadata.max.age.ms).
    #[arg(
        long,
        value_name = "REGEX",
        conflicts_with = "topic",
        requires = "group"
    )]
    include: Option<String>,
    #[command(flatten)]
    client: ClientOpts,
    /// Consume as this consumer group: partitions are shared with the group's other members
    /// and offsets are committed, so the next run resumes where this one stopped.
    #[arg(long, value_name = "GROUP")]
    group: Option<String>,
    /// Start at the beginning of the log (with --group: when the group has no committed offset).
    #[arg(long)]
    from_beginning: bool,
    /// Start at this offset: a number, `earliest` or `latest` (without --group).
    #[arg(long, value_name = "OFFSET")]
    offset: Option<String>,
    /// Read only this partition (without --group).
    #[arg(long)]
    partition: Option<i32>,
    /// Exit after this many records.
    #[arg(long, value_name = "N")]
    max_messages: Option<u64>,
    /// Exit when no record arrives for this long.
    #[arg(long, value_name = "MS")]
    timeout_ms: Option<u64>,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Raw)]
    format: Format,
    /// With --format raw: print the key before the value.
    #[arg(long)]
    print_key: bool,
    /// With --print-key: what goes between key and value.
    #[arg(long, default_value = "\t", value_name = "SEP")]
    key_separator: String,
}

/// Where to start reading when not in a group.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Start {
    Earliest,
    Latest,
    At(i64),
}

fn parse_start(args: &ConsumeArgs) -> anyhow::Result<Start> {
    match args.offset.as_deref() {
        None if args.from_beginning => Ok(Start::Earliest),
        None => Ok(Start::Latest),
        Some(_) if args.from_beginning => bail!("use --offset or --from-beginning, not both"),
        Some("earliest") | Some("beginning") => Ok(Start::Earliest),
        Some("latest") | Some("end") => Ok(Start::Latest),
        Some(text) => match text.parse::<i64>() {
            Ok(offset) if offset >= 0 => Ok(Start::At(offset)),
            _ => bail!("--offset must be a non-negative number, earliest or latest, not '{text}'"),
        },
    }
}

/// Whether `open` reads one topic or the topics matching a pattern.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Source {
    Topic,
    Pattern,
}

/// A consumer of `topic`: subscribed as `group`, or else assigned `partition` (or all of them)
/// and positioned at `start`. `reset` is auto.offset.reset for a group without offsets.
/// With [`Source::Pattern`], `topic` is a regular expression (group only).
pub(crate) async fn open(
    client: &ClientOpts,
    topic: &str,
    source: Source,
    group: Option<&str>,
    partition: Option<i32>,
    start: Start,
    reset: &str,
) -> anyhow::Result<Consumer> {
    let mut defaults = vec![("auto.offset.reset", reset.to_string())];
    if let Some(group) = group {
        defaults.push(("group.id", group.to_string()));
    }
    let config = ConsumerConfig::from_properties(&client.properties(&defaults))?;
    let mut consumer = Consumer::new(config)
        .await
        .with_context(|| format!("cannot reach the broker at {}", client.bootstrap))?;
    match (group, source) {
        (Some(_), Source::Topic) => {
            consumer.subscribe([topic.to_string()])?;
            return Ok(consumer);
        }
        (Some(_), Source::Pattern) => {
            consumer.subscribe_pattern(topic)?;
            return Ok(consumer);
        }
        (None, Source::Pattern) => bail!("a pattern subscription needs --group"),
        (None, Source::Topic) => {}
    }
    let admin = Admin::connect(&client.bootstrap).await?;
    let all = admin
        .partitions(topic)
        .await
        .with_context(|| format!("cannot read topic {topic}"))?;
    let partitions: Vec<TopicPartition> = match partition {
        Some(p) if all.contains(&p) => vec![(topic.to_string(), p)],
        Some(p) => bail!("topic {topic} has no partition {p} (it has {})", all.len()),
        None => all.iter().map(|p| (topic.to_string(), *p)).collect(),
    };
    consumer.assign(partitions.clone())?;
    match start {
        Start::Earliest => consumer.seek_to_beginning(&partitions).await?,
        Start::Latest => consumer.seek_to_end(&partitions).await?,
        Start::At(offset) => {
            for tp in partitions {
                consumer.seek(tp, offset);
            }
        }
    }
    Ok(consumer)
}

pub(crate) async fn run(args: ConsumeArgs) -> anyhow::Result<()> {
    let start = parse_start(&args)?;
    if args.group.is_some() && (args.partition.is_some() || args.offset.is_some()) {
        bail!("--partition and --offset read without a group; drop them or drop --group");
    }
    let reset = if args.from_beginning {
        "earliest"
    } else {
        "latest"
    };
    let (topic, source) = match (&args.topic, &args.include) {
        (Some(topic), _) => (topic.as_str(), Source::Topic),
        (None, Some(pattern)) => (pattern.as_str(), Source::Pattern),
        (None, None) => bail!("name a topic, or --include a pattern"),
    };
    let mut consumer = open(
        &args.client,
        topic,
        source,
        args.group.as_deref(),
        args.partition,
        start,
        reset,
    )
    .await?;

    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    let mut count: u64 = 0;
    let mut last_record = Instant::now();
    let limit = args.max_messages.unwrap_or(u64::MAX);
    let idle_limit = args.timeout_ms.map(Duration::from_millis);
    let interrupted = tokio::signal::ctrl_c();
    tokio::pin!(interrupted);
    let result: anyhow::Result<()> = async {
        while count < limit {
            let records = tokio::select! {
                records = consumer.poll(Duration::from_millis(200)) => records?,
                _ = &mut interrupted => break,
            };
            if records.is_empty() {
                if idle_limit.is_some_and(|idle| last_record.elapsed() >= idle) {
                    break;
                }
                continue;
            }
            last_record = Instant::now();
            for record in &records {
                if count == limit {
                    break;
                }
                let written = match args.format {
                    Format::Raw => write_raw(&mut out, record, args.print_key, &args.key_separator),
                    Format::Json => writeln!(out, "{}", to_json(record)),
                };
                if let Err(e) = written {
                    if e.kind() == std::io::ErrorKind::BrokenPipe {
                        return Ok(());
                    }
                    return Err(e).context("cannot write to stdout");
                }
                count += 1;
            }
            if let Err(e) = out.flush() {
                if e.kind() == std::io::ErrorKind::BrokenPipe {
                    return Ok(());
                }
                return Err(e).context("cannot write to stdout");
            }
        }
        Ok(())
    }
    .await;
    let _ = out.flush();
    drop(out);
    // A group consumer commits what was printed and leaves the group.
    consumer.close().await.context("closing the consumer")?;
    result?;
    eprintln!("fjord: consumed {count} records from {topic}");
    Ok(())
}

fn write_raw(
    out: &mut impl Write,
    record: &ConsumerRecord,
    print_key: bool,
    separator: &str,
) -> std::io::Result<()> {
    if print_key {
        out.write_all(record.key.as_deref().unwrap_or(b"null"))?;
        out.write_all(separator.as_bytes())?;
    }
    out.write_all(record.value.as_deref().unwrap_or(b"null"))?;
    out.write_all(b"\n")
}

/// A record as a JSON object. Bytes that are UTF-8 become strings; others become base64
/// strings and a `*_encoding: "base64"` field says so. Null keys and values are `null`.
fn to_json(record: &ConsumerRecord) -> Value {
    let mut object = Map::new();
    object.insert("topic".into(), json!(&*record.topic));
    object.insert("partition".into(), json!(record.partition));
    object.insert("offset".into(), json!(record.offset));
    object.insert("timestamp".into(), json!(record.timestamp));
    put_bytes(&mut object, "key", record.key.as_ref());
    put_bytes(&mut object, "value", record.value.as_ref());
    let headers: Vec<Value> = record
        .headers
        .iter()
        .map(|(name, value)| {
            let mut header = Map::new();
            header.insert("key".into(), json!(name));
            put_bytes(&mut header, "value", value.as_ref());
            Value::Object(header)
        })
        .collect();
    object.insert("headers".into(), Value::Array(headers));
    Value::Object(object)
}

fn put_bytes(object: &mut Map<String, Value>, field: &str, bytes: Option<&Bytes>) {
    let value = match bytes {
        None => Value::Null,
        Some(bytes) => match std::str::from_utf8(bytes) {
            Ok(text) => json!(text),
            Err(_) => {
                object.insert(format!("{field}_encoding"), json!("base64"));
                json!(base64(bytes))
            }
        },
    };
    object.insert(field.into(), value);
}

/// Standard base64 with padding (RFC 4648).
fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(char::from(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_matches_rfc4648_vectors() {
        for (input, expected) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ] {
            assert_eq!(base64(input.as_bytes()), expected);
        }
    }

    #[test]
    fn json_shows_every_field_and_marks_binary() {
        let record = ConsumerRecord {
            topic: "t".into(),
            partition: 3,
            offset: 42,
            timestamp: 1_700_000_000_000,
            key: Some(Bytes::from_static(b"k")),
            value: Some(Bytes::from_static(&[0xff, 0x00])),
            headers: vec![
                ("h".into(), None),
                ("g".into(), Some(Bytes::from_static(b"v"))),
            ],
        };
        let json = to_json(&record);
        assert_eq!(json["partition"], 3);
        assert_eq!(json["offset"], 42);
        assert_eq!(json["timestamp"], 1_700_000_000_000_i64);
        assert_eq!(json["key"], "k");
        assert_eq!(json["value"], "/wA=");
        assert_eq!(json["value_encoding"], "base64");
        assert!(json.get("key_encoding").is_none());
        assert_eq!(json["headers"][0]["value"], Value::Null);
        assert_eq!(json["headers"][1]["value"], "v");
    }
}
