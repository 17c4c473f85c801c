//! Recovery: torn or corrupt segment tails after an unclean stop are truncated at the last
//! valid batch; bad or missing indexes are rebuilt from the log; acknowledged writes survive.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use fjord_protocol::batch::testing::batch;
use kafka_protocol::error::ParseResponseErrorCode;

use crate::harness::{
    Client, LIST_OFFSETS_V, TestBroker, create_topic, decode, fetch, fetch_all, list_offset, noise,
    produce_ok,
};

/// The segment files of a partition with `suffix`, by base offset.
fn segments(dir: &Path, suffix: &str) -> Result<Vec<PathBuf>> {
    let mut paths: Vec<PathBuf> = std::fs::read_dir(dir)?
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == suffix))
        .collect();
    paths.sort();
    Ok(paths)
}

fn active_log(dir: &Path) -> Result<PathBuf> {
    segments(dir, "log")?.pop().context("an active segment")
}

fn mark_unclean(broker: &TestBroker) -> Result<()> {
    let marker = broker.data_dir().join(".clean_shutdown");
    assert!(marker.exists(), "a clean stop writes {}", marker.display());
    std::fs::remove_file(marker)?;
    Ok(())
}

/// `batches` batches of `count` records, values `<batch>-<record>`-ish, timestamps 10_000 + 10 * batch.
async fn fill(
    client: &mut Client,
    name: &str,
    batches: i64,
    count: i32,
    value_len: usize,
) -> Result<()> {
    for i in 0..batches {
        let base = produce_ok(
            client,
            name,
            0,
            batch(0, count, 10_000 + 10 * i, &vec![i as u8; value_len]),
        )
        .await?;
        assert_eq!(base, i * i64::from(count));
    }
    Ok(())
}

/// Every record 0..end is fetched once, in order, with the value its batch was given.
async fn assert_all_readable(client: &mut Client, name: &str, end: i64, count: i32) -> Result<()> {
    let records = fetch_all(client, name, 0, 0).await?;
    let offsets: Vec<i64> = records.iter().map(|r| r.offset).collect();
    assert_eq!(offsets, (0..end).collect::<Vec<_>>());
    for record in &records {
        let batch_index = (record.offset / i64::from(count)) as u8;
        let value = record.value.as_ref().context("a value")?;
        assert!(
            value.iter().all(|b| *b == batch_index),
            "offset {} has the value of another batch",
            record.offset
        );
    }
    Ok(())
}

async fn log_end(client: &mut Client, name: &str) -> Result<i64> {
    Ok(list_offset(client, LIST_OFFSETS_V, name, 0, -1)
        .await?
        .offset)
}

#[tokio::test]
async fn a_garbage_tail_after_an_unclean_stop_is_truncated_and_writes_continue() -> Result<()> {
    for (what, garbage) in [("noise", noise(7, 300)), ("zeros", vec![0u8; 4096])] {
        let mut broker = TestBroker::start().await?;
        let mut client = broker.client().await?;
        create_topic(&mut client, "torn", 1, &[]).await?;
        fill(&mut client, "torn", 5, 4, 50).await?;
        broker.stop().await?;
        let log = active_log(&broker.partition_dir("torn", 0))?;
        let good_len = std::fs::metadata(&log)?.len();
        let mut bytes = std::fs::read(&log)?;
        bytes.extend_from_slice(&garbage);
        std::fs::write(&log, bytes)?;
        mark_unclean(&broker)?;
        broker.start_again().await?;
        assert_eq!(
            std::fs::metadata(&log)?.len(),
            good_len,
            "{what}: tail truncated"
        );
        let mut client = broker.client().await?;
        assert_eq!(log_end(&mut client, "torn").await?, 20, "{what}");
        assert_all_readable(&mut client, "torn", 20, 4).await?;
        assert_eq!(
            produce_ok(&mut client, "torn", 0, batch(0, 4, 20_000, &[5u8; 50])).await?,
            20,
            "{what}"
        );
        assert_all_readable(&mut client, "torn", 24, 4).await?;
    }
    Ok(())
}

#[tokio::test]
async fn a_batch_cut_short_by_a_crash_is_dropped_on_recovery() -> Result<()> {
    let mut broker = TestBroker::start().await?;
    let mut client = broker.client().await?;
    create_topic(&mut client, "cut", 1, &[]).await?;
    fill(&mut client, "cut", 5, 4, 50).await?;
    broker.stop().await?;
    let log = active_log(&broker.partition_dir("cut", 0))?;
    let len = std::fs::metadata(&log)?.len();
    std::fs::OpenOptions::new()
        .write(true)
        .open(&log)?
        .set_len(len - 7)?;
    mark_unclean(&broker)?;
    broker.start_again().await?;
    let mut client = broker.client().await?;
    assert_eq!(log_end(&mut client, "cut").await?, 16);
    assert_all_readable(&mut client, "cut", 16, 4).await?;
    assert_eq!(
        produce_ok(&mut client, "cut", 0, batch(0, 4, 20_000, &[4u8; 50])).await?,
        16
    );
    assert_all_readable(&mut client, "cut", 20, 4).await
}

#[tokio::test]
async fn a_corrupt_last_batch_is_dropped_on_recovery() -> Result<()> {
    let mut broker = TestBroker::start().await?;
    let mut client = broker.client().await?;
    create_topic(&mut client, "flipped", 1, &[]).await?;
    fill(&mut client, "flipped", 5, 4, 50).await?;
    broker.stop().await?;
    let log = active_log(&broker.partition_dir("flipped", 0))?;
    let mut bytes = std::fs::read(&log)?;
    let at = bytes.len() - 10;
    bytes[at] ^= 0x20;
    std::fs::write(&log, bytes)?;
    mark_unclean(&broker)?;
    broker.start_again().await?;
    let mut client = broker.client().await?;
    assert_eq!(log_end(&mut client, "flipped").await?, 16);
    assert_all_readable(&mut client, "flipped", 16, 4).await?;
    assert_eq!(
        produce_ok(&mut client, "flipped", 0, batch(0, 4, 20_000, &[4u8; 50])).await?,
        16
    );
    Ok(())
}

#[tokio::test]
async fn acknowledged_records_survive_a_crash() -> Result<()> {
    let mut broker = TestBroker::start().await?;
    let mut client = broker.client().await?;
    create_topic(&mut client, "crash", 2, &[("segment.bytes", "2048")]).await?;
    fill(&mut client, "crash", 12, 3, 100).await?;
    produce_ok(&mut client, "crash", 1, batch(0, 2, 1_000, b"other")).await?;
    broker.crash().await?;
    assert!(!broker.data_dir().join(".clean_shutdown").exists());
    broker.start_again().await?;
    let mut client = broker.client().await?;
    assert_eq!(log_end(&mut client, "crash").await?, 36);
    assert_all_readable(&mut client, "crash", 36, 3).await?;
    assert_eq!(fetch_all(&mut client, "crash", 1, 0).await?.len(), 2);
    assert_eq!(
        produce_ok(&mut client, "crash", 0, batch(0, 3, 20_000, &[12u8; 100])).await?,
        36
    );
    // And a second, clean restart after the recovery keeps everything.
    broker.restart().await?;
    let mut client = broker.client().await?;
    assert_all_readable(&mut client, "crash", 39, 3).await
}

/// A topic with several sealed segments, each with several index entries; stopped cleanly.
/// 40 batches of 2 records (offsets 0..80).
async fn sealed_segments(name: &str) -> Result<TestBroker> {
    let mut broker = TestBroker::start().await?;
    let mut client = broker.client().await?;
    create_topic(
        &mut client,
        name,
        1,
        &[("segment.bytes", "4096"), ("index.interval.bytes", "300")],
    )
    .await?;
    fill(&mut client, name, 40, 2, 100).await?;
    broker.stop().await?;
    let logs = segments(&broker.partition_dir(name, 0), "log")?;
    assert!(logs.len() >= 3, "several segments: {logs:?}");
    Ok(broker)
}

/// Every offset reads back from the batch holding it; every timestamp lookup is exact.
async fn assert_reads_are_correct(broker: &TestBroker, name: &str) -> Result<()> {
    let mut client = broker.client().await?;
    for offset in 0..80 {
        let data = fetch(&mut client, name, 0, offset, 1).await?;
        assert_eq!(data.error_code.err(), None, "offset {offset}");
        let records = decode(data.records.context("records")?)?;
        let found = records
            .iter()
            .find(|r| r.offset == offset)
            .with_context(|| format!("offset {offset} not in the fetched batch"))?;
        let batch_index = (offset / 2) as u8;
        assert!(
            found
                .value
                .as_ref()
                .is_some_and(|v| v.iter().all(|b| *b == batch_index)),
            "offset {offset}: wrong value"
        );
    }
    for batch_index in [0i64, 7, 15, 22, 39] {
        let target = 10_000 + 10 * batch_index;
        let found = list_offset(&mut client, LIST_OFFSETS_V, name, 0, target).await?;
        assert_eq!(
            (found.offset, found.timestamp),
            (2 * batch_index, target),
            "timestamp {target}"
        );
    }
    assert_all_readable(&mut client, name, 80, 2).await
}

#[tokio::test]
async fn a_multi_segment_log_reads_correctly_after_a_clean_restart() -> Result<()> {
    let mut broker = sealed_segments("control").await?;
    broker.start_again().await?;
    assert_reads_are_correct(&broker, "control").await
}

#[tokio::test]
async fn a_garbage_index_of_a_sealed_segment_is_rebuilt() -> Result<()> {
    let mut broker = sealed_segments("garbled").await?;
    let dir = broker.partition_dir("garbled", 0);
    let index = segments(&dir, "index")?
        .into_iter()
        .next()
        .context("an index")?;
    let garbage = noise(3, 37);
    std::fs::write(&index, &garbage)?;
    broker.start_again().await?;
    assert_reads_are_correct(&broker, "garbled").await?;
    assert_ne!(
        std::fs::read(&index)?,
        garbage,
        "the index file was rewritten"
    );
    Ok(())
}

#[tokio::test]
async fn an_index_with_plausible_but_wrong_positions_is_not_trusted() -> Result<()> {
    let mut broker = sealed_segments("skewed").await?;
    let dir = broker.partition_dir("skewed", 0);
    let index = segments(&dir, "index")?
        .into_iter()
        .next()
        .context("an index")?;
    let mut entries = std::fs::read(&index)?;
    assert!(
        entries.len() >= 16,
        "at least two entries to skew: {} bytes",
        entries.len()
    );
    // Still strictly increasing and inside the log, but every entry but the last points 5 bytes
    // into a batch.
    for entry in 0..entries.len() / 8 - 1 {
        let at = entry * 8 + 4;
        let position = u32::from_be_bytes([
            entries[at],
            entries[at + 1],
            entries[at + 2],
            entries[at + 3],
        ]);
        entries[at..at + 4].copy_from_slice(&(position + 5).to_be_bytes());
    }
    std::fs::write(&index, &entries)?;
    broker.start_again().await?;
    assert_reads_are_correct(&broker, "skewed").await
}

#[tokio::test]
async fn missing_index_files_are_rebuilt() -> Result<()> {
    let mut broker = sealed_segments("bare").await?;
    let dir = broker.partition_dir("bare", 0);
    for suffix in ["index", "timeindex"] {
        for path in segments(&dir, suffix)? {
            std::fs::remove_file(path)?;
        }
    }
    broker.start_again().await?;
    assert_reads_are_correct(&broker, "bare").await
}

#[tokio::test]
async fn a_garbage_time_index_is_rebuilt() -> Result<()> {
    let mut broker = sealed_segments("timeless").await?;
    let dir = broker.partition_dir("timeless", 0);
    for (i, path) in segments(&dir, "timeindex")?.into_iter().enumerate() {
        std::fs::write(path, noise(11 + i as u64, 48))?;
    }
    broker.start_again().await?;
    assert_reads_are_correct(&broker, "timeless").await
}

#[tokio::test]
async fn corrupt_indexes_after_an_unclean_stop_are_rebuilt_too() -> Result<()> {
    let mut broker = sealed_segments("both").await?;
    let dir = broker.partition_dir("both", 0);
    for path in segments(&dir, "index")? {
        std::fs::write(path, noise(5, 24))?;
    }
    mark_unclean(&broker)?;
    broker.start_again().await?;
    assert_reads_are_correct(&broker, "both").await
}
