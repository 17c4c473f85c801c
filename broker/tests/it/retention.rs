//! Retention: expired or excess segments are deleted whole and the log start offset advances.

use std::path::Path;
use std::time::Duration;

use anyhow::Result;
use fjord_protocol::ErrorCode;
use fjord_protocol::batch::testing::batch;
use kafka_protocol::error::ParseResponseErrorCode;

use crate::harness::{
    Client, LIST_OFFSETS_V, TestBroker, create_topic, eventually, fetch, list_offset, now_ms,
    produce_ok,
};

const CHECK_EVERY_200_MS: (&str, &str) = ("log.retention.check.interval.ms", "200");

fn log_bases(dir: &Path) -> Result<Vec<i64>> {
    let mut bases: Vec<i64> = std::fs::read_dir(dir)?
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            e.file_name()
                .to_str()
                .and_then(|n| n.strip_suffix(".log"))
                .and_then(|b| b.parse().ok())
        })
        .collect();
    bases.sort_unstable();
    Ok(bases)
}

async fn earliest(client: &mut Client, name: &str) -> Result<i64> {
    Ok(list_offset(client, LIST_OFFSETS_V, name, 0, -2)
        .await?
        .offset)
}

#[tokio::test]
async fn retention_ms_deletes_expired_segments_and_advances_the_log_start_offset() -> Result<()> {
    let broker = TestBroker::with_overrides(&[CHECK_EVERY_200_MS]).await?;
    let mut client = broker.client().await?;
    create_topic(
        &mut client,
        "expiring",
        1,
        &[("segment.bytes", "1024"), ("retention.ms", "1000")],
    )
    .await?;
    for _ in 0..10 {
        produce_ok(
            &mut client,
            "expiring",
            0,
            batch(0, 5, now_ms(), &[1u8; 100]),
        )
        .await?;
    }
    let dir = broker.partition_dir("expiring", 0);
    let before = log_bases(&dir)?;
    assert!(
        before.len() >= 5,
        "segments rolled at 1024 bytes: {before:?}"
    );
    assert_eq!(
        earliest(&mut client, "expiring").await?,
        0,
        "nothing expires before retention.ms"
    );
    let start = eventually(Duration::from_secs(10), || {
        let client = broker.client();
        async move {
            let start = earliest(&mut client.await?, "expiring").await?;
            Ok((start == 50).then_some(start))
        }
    })
    .await?;
    assert_eq!(start, 50);
    let after = log_bases(&dir)?;
    assert!(
        after.iter().all(|b| *b >= 50),
        "expired .log files deleted: {after:?}"
    );
    assert_eq!(
        fetch(&mut client, "expiring", 0, 0, 1 << 20)
            .await?
            .error_code
            .err(),
        Some(ErrorCode::OffsetOutOfRange)
    );
    assert_eq!(
        produce_ok(&mut client, "expiring", 0, batch(0, 1, now_ms(), b"next")).await?,
        50
    );
    Ok(())
}

#[tokio::test]
async fn retention_ms_keeps_segments_that_have_not_expired() -> Result<()> {
    let broker = TestBroker::with_overrides(&[CHECK_EVERY_200_MS]).await?;
    let mut client = broker.client().await?;
    create_topic(
        &mut client,
        "mixed",
        1,
        &[("segment.bytes", "1024"), ("retention.ms", "60000")],
    )
    .await?;
    let old = now_ms() - 120_000;
    for _ in 0..5 {
        produce_ok(&mut client, "mixed", 0, batch(0, 5, old, &[1u8; 100])).await?;
    }
    for _ in 0..5 {
        produce_ok(&mut client, "mixed", 0, batch(0, 5, now_ms(), &[2u8; 100])).await?;
    }
    eventually(Duration::from_secs(10), || {
        let client = broker.client();
        async move { Ok((earliest(&mut client.await?, "mixed").await? == 25).then_some(())) }
    })
    .await?;
    // Several more retention passes delete nothing newer.
    tokio::time::sleep(Duration::from_millis(700)).await;
    assert_eq!(earliest(&mut client, "mixed").await?, 25);
    let bases = log_bases(&broker.partition_dir("mixed", 0))?;
    assert_eq!(bases.first(), Some(&25), "{bases:?}");
    assert_eq!(
        fetch(&mut client, "mixed", 0, 25, 1 << 20)
            .await?
            .error_code
            .err(),
        None
    );
    Ok(())
}

#[tokio::test]
async fn retention_bytes_deletes_the_oldest_segments_beyond_the_limit() -> Result<()> {
    let broker = TestBroker::with_overrides(&[CHECK_EVERY_200_MS]).await?;
    let mut client = broker.client().await?;
    create_topic(
        &mut client,
        "bounded",
        1,
        &[
            ("segment.bytes", "1024"),
            ("retention.ms", "-1"),
            ("retention.bytes", "2500"),
        ],
    )
    .await?;
    for _ in 0..10 {
        produce_ok(
            &mut client,
            "bounded",
            0,
            batch(0, 5, now_ms(), &[1u8; 100]),
        )
        .await?;
    }
    let dir = broker.partition_dir("bounded", 0);
    let size = eventually(Duration::from_secs(10), || {
        let dir = dir.clone();
        async move {
            let size: u64 = std::fs::read_dir(&dir)?
                .filter_map(|e| e.ok())
                .filter(|e| e.file_name().to_string_lossy().ends_with(".log"))
                .map(|e| e.metadata().map(|m| m.len()).unwrap_or(0))
                .sum();
            Ok((size <= 2500 + 1024).then_some(size))
        }
    })
    .await?;
    // Whole segments only, and never below retention.bytes: 3 one-batch segments are left.
    assert!(size >= 2500, "{size} bytes left, retention.bytes is 2500");
    let start = earliest(&mut client, "bounded").await?;
    assert!(start > 0 && start < 50, "log start {start}");
    assert_eq!(log_bases(&dir)?.first(), Some(&start));
    assert_eq!(
        list_offset(&mut client, LIST_OFFSETS_V, "bounded", 0, -1)
            .await?
            .offset,
        50
    );
    Ok(())
}

#[tokio::test]
async fn the_log_start_offset_moved_by_retention_survives_a_restart() -> Result<()> {
    let mut broker = TestBroker::with_overrides(&[CHECK_EVERY_200_MS]).await?;
    let mut client = broker.client().await?;
    create_topic(
        &mut client,
        "after",
        1,
        &[("segment.bytes", "1024"), ("retention.ms", "60000")],
    )
    .await?;
    for _ in 0..4 {
        produce_ok(
            &mut client,
            "after",
            0,
            batch(0, 5, now_ms() - 120_000, &[1u8; 100]),
        )
        .await?;
    }
    produce_ok(&mut client, "after", 0, batch(0, 5, now_ms(), &[1u8; 100])).await?;
    eventually(Duration::from_secs(10), || {
        let client = broker.client();
        async move { Ok((earliest(&mut client.await?, "after").await? == 20).then_some(())) }
    })
    .await?;
    broker.restart().await?;
    let mut client = broker.client().await?;
    assert_eq!(earliest(&mut client, "after").await?, 20);
    assert_eq!(
        fetch(&mut client, "after", 0, 19, 1 << 20)
            .await?
            .error_code
            .err(),
        Some(ErrorCode::OffsetOutOfRange)
    );
    Ok(())
}
