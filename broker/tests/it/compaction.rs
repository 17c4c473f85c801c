//! Log compaction: a compacted topic is cleaned in the background down to the latest record per
//! key, tombstones go after `delete.retention.ms`, and offsets stay where they were.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use anyhow::Result;
use bytes::{Bytes, BytesMut};
use kafka_protocol::indexmap::IndexMap;
use kafka_protocol::records::{
    Compression, Record, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
};

use crate::harness::{TestBroker, create_topic, eventually, fetch_all, now_ms, produce_ok};

const KEYS: usize = 1_000;
const RECORDS: usize = 200_000;
const PER_BATCH: usize = 1_000;

/// One batch of `(key, value)` records (`None` is a tombstone).
fn keyed_batch(records: &[(String, Option<String>)], compression: Compression) -> Vec<u8> {
    let now = now_ms();
    let records: Vec<Record> = records
        .iter()
        .enumerate()
        .map(|(i, (key, value))| Record {
            transactional: false,
            control: false,
            delete_horizon: false,
            partition_leader_epoch: -1,
            producer_id: -1,
            producer_epoch: -1,
            timestamp_type: TimestampType::Creation,
            offset: i as i64,
            sequence: -1,
            timestamp: now,
            key: Some(Bytes::from(key.clone())),
            value: value.clone().map(Bytes::from),
            headers: IndexMap::new(),
        })
        .collect();
    let mut buf = BytesMut::new();
    RecordBatchEncoder::encode(
        &mut buf,
        records.iter(),
        &RecordEncodeOptions {
            version: 2,
            compression,
        },
    )
    .expect("encoding a record batch");
    buf.to_vec()
}

fn log_bytes(dir: &Path) -> Result<u64> {
    let mut total = 0;
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        if entry.file_name().to_string_lossy().ends_with(".log") {
            total += entry.metadata()?.len();
        }
    }
    Ok(total)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_compacted_topic_keeps_exactly_the_latest_value_of_each_live_key() -> Result<()> {
    let broker = TestBroker::with_overrides(&[
        ("log.cleaner.backoff.ms", "200"),
        ("log.retention.check.interval.ms", "200"),
    ])
    .await?;
    let mut client = broker.client().await?;
    create_topic(
        &mut client,
        "compacted",
        1,
        &[
            ("cleanup.policy", "compact"),
            ("segment.bytes", "65536"),
            ("min.cleanable.dirty.ratio", "0.01"),
            ("delete.retention.ms", "1000"),
        ],
    )
    .await?;
    let mut latest: BTreeMap<String, (i64, Option<String>)> = BTreeMap::new();
    let mut produced_bytes = 0u64;
    let mut send = async |records: Vec<(String, Option<String>)>,
                          compression: Compression,
                          latest: &mut BTreeMap<String, (i64, Option<String>)>|
           -> Result<()> {
        let batch = keyed_batch(&records, compression);
        produced_bytes += batch.len() as u64;
        let base = produce_ok(&mut client, "compacted", 0, batch).await?;
        for (i, (key, value)) in records.into_iter().enumerate() {
            latest.insert(key, (base + i as i64, value));
        }
        Ok(())
    };
    for b in 0..RECORDS / PER_BATCH {
        let records = (0..PER_BATCH)
            .map(|i| {
                let n = b * PER_BATCH + i;
                (format!("key-{}", n % KEYS), Some(format!("value-{n}")))
            })
            .collect();
        let compression = if b % 2 == 0 {
            Compression::None
        } else {
            Compression::Gzip
        };
        send(records, compression, &mut latest).await?;
    }
    // Delete every tenth key, then roll the active segment with one big record so that all of
    // it becomes cleanable.
    let tombstones = (0..KEYS)
        .step_by(10)
        .map(|k| (format!("key-{k}"), None))
        .collect();
    send(tombstones, Compression::None, &mut latest).await?;
    let filler = "f".repeat(70_000);
    send(
        vec![("filler".to_string(), Some(filler))],
        Compression::None,
        &mut latest,
    )
    .await?;
    let expected: Vec<(i64, String, String)> = {
        let mut live: Vec<(i64, String, String)> = latest
            .iter()
            .filter_map(|(k, (o, v))| v.clone().map(|v| (*o, k.clone(), v)))
            .collect();
        live.sort();
        live
    };
    assert_eq!(expected.len(), KEYS - KEYS / 10 + 1);

    let seen = eventually(Duration::from_secs(60), || {
        let client = broker.client();
        let expected = &expected;
        async move {
            let records = fetch_all(&mut client.await?, "compacted", 0, 0).await?;
            let seen: Vec<(i64, String, String)> = records
                .iter()
                .map(|r| {
                    let text = |b: &Option<Bytes>| {
                        b.as_ref().map(|b| String::from_utf8_lossy(b).into_owned())
                    };
                    (
                        r.offset,
                        text(&r.key).unwrap_or_default(),
                        text(&r.value).unwrap_or_else(|| "<tombstone>".into()),
                    )
                })
                .collect();
            Ok((seen.len() == expected.len()).then_some(seen))
        }
    })
    .await?;
    assert_eq!(seen, expected, "exactly the latest value of each live key");
    let on_disk = log_bytes(&broker.partition_dir("compacted", 0))?;
    assert!(
        on_disk * 10 < produced_bytes,
        "the log shrank: {on_disk} bytes on disk of {produced_bytes} produced"
    );
    Ok(())
}
