//! Frames the broker cannot parse close only their own connection: the client sees EOF, a
//! connection opened before keeps working, and the broker keeps serving (it never panics).

use anyhow::{Context, Result, ensure};
use bytes::{BufMut, Bytes, BytesMut};
use fjord_protocol::batch::testing::batch;
use kafka_protocol::error::ParseResponseErrorCode;
use kafka_protocol::messages::{ApiKey, ApiVersionsRequest, MetadataRequest};

use crate::harness::{
    Client, TestBroker, create_topic, fetch_all, noise, produce_ok, produce_request,
};

/// A size-prefixed frame: `api_key`, `version`, correlation id 1, null client id, then `body`.
fn raw_frame(api_key: i16, version: i16, body: &[u8]) -> Vec<u8> {
    let mut frame = BytesMut::new();
    frame.put_i32(0);
    frame.put_i16(api_key);
    frame.put_i16(version);
    frame.put_i32(1);
    frame.put_i16(-1);
    frame.put_slice(body);
    let len = (frame.len() - 4) as i32;
    frame[..4].copy_from_slice(&len.to_be_bytes());
    frame.to_vec()
}

/// A broker with a topic, and a bystander connection that has already made a request.
async fn setup(overrides: &[(&str, &str)]) -> Result<(TestBroker, Client)> {
    let broker = TestBroker::with_overrides(overrides).await?;
    let mut bystander = broker.client().await?;
    create_topic(&mut bystander, "steady", 1, &[]).await?;
    produce_ok(&mut bystander, "steady", 0, batch(0, 2, 1_000, b"before")).await?;
    Ok((broker, bystander))
}

/// After the bad input: the bystander and a fresh connection still produce and fetch, and the
/// server task is still running.
async fn still_serving(broker: &TestBroker, bystander: &mut Client) -> Result<()> {
    ensure!(broker.is_serving(), "the server task ended");
    let answer = bystander
        .call(3, &ApiVersionsRequest::default())
        .await
        .context("the bystander connection")?;
    assert_eq!(answer.error_code.err(), None);
    let next = produce_ok(bystander, "steady", 0, batch(0, 1, 1_000, b"after")).await?;
    let mut fresh = broker.client().await?;
    let records = fetch_all(&mut fresh, "steady", 0, 0).await?;
    assert_eq!(
        records.len() as i64,
        next + 1,
        "every acknowledged record is there"
    );
    Ok(())
}

/// Sends `bytes` on a new connection and requires the broker to close it without answering.
async fn closes(broker: &TestBroker, bytes: &[u8], finish: bool) -> Result<()> {
    let mut bad = broker.client().await?;
    bad.send_raw_lossy(bytes).await;
    if finish {
        bad.finish_writing().await;
    }
    bad.expect_closed().await
}

#[tokio::test]
async fn a_truncated_frame_then_close_closes_only_that_connection() -> Result<()> {
    let (broker, mut bystander) = setup(&[]).await?;
    let mut frame = raw_frame(ApiKey::Metadata as i16, 1, &[0, 0, 0, 0]);
    frame.truncate(frame.len() - 3);
    closes(&broker, &frame, true).await?;
    // A size prefix and nothing more.
    closes(&broker, &100i32.to_be_bytes(), true).await?;
    // Half a size prefix.
    closes(&broker, &[0, 0], true).await?;
    still_serving(&broker, &mut bystander).await
}

#[tokio::test]
async fn a_frame_with_a_negative_size_closes_the_connection() -> Result<()> {
    let (broker, mut bystander) = setup(&[]).await?;
    for size in [-1i32, i32::MIN] {
        let mut bytes = size.to_be_bytes().to_vec();
        bytes.extend_from_slice(&[0u8; 16]);
        closes(&broker, &bytes, false)
            .await
            .with_context(|| format!("size {size}"))?;
    }
    still_serving(&broker, &mut bystander).await
}

#[tokio::test]
async fn a_frame_of_zero_or_too_few_bytes_for_a_header_closes_the_connection() -> Result<()> {
    let (broker, mut bystander) = setup(&[]).await?;
    closes(&broker, &0i32.to_be_bytes(), false)
        .await
        .context("size 0")?;
    closes(&broker, &[0, 0, 0, 3, 0, 3, 0], false)
        .await
        .context("size 3")?;
    still_serving(&broker, &mut bystander).await
}

#[tokio::test]
async fn a_frame_over_socket_request_max_bytes_closes_the_connection() -> Result<()> {
    let (broker, mut bystander) = setup(&[("socket.request.max.bytes", "2048")]).await?;
    // The size alone is enough to refuse: the body is never sent.
    closes(&broker, &4096i32.to_be_bytes(), false)
        .await
        .context("size prefix only")?;
    closes(&broker, &i32::MAX.to_be_bytes(), false)
        .await
        .context("i32::MAX")?;
    // A well-formed produce request that is too big.
    let mut big = broker.client().await?;
    let request = produce_request(
        "steady",
        0,
        1,
        Bytes::from(batch(0, 1, 1_000, &[1u8; 4_000])),
    );
    let (_, frame) = big.frame(9, &request)?;
    assert!(frame.len() > 2048);
    big.send_raw_lossy(&frame).await;
    big.expect_closed().await.context("a big produce request")?;
    // A request under the limit is served.
    let small = produce_ok(&mut bystander, "steady", 0, batch(0, 1, 1_000, &[1u8; 500])).await?;
    assert!(small > 0);
    still_serving(&broker, &mut bystander).await
}

#[tokio::test]
async fn an_unknown_or_unserved_api_key_closes_the_connection() -> Result<()> {
    let (broker, mut bystander) = setup(&[]).await?;
    let served: Vec<i16> = bystander
        .call(3, &ApiVersionsRequest::default())
        .await?
        .api_keys
        .iter()
        .map(|k| k.api_key)
        .collect();
    let unserved = [
        ApiKey::JoinGroup,
        ApiKey::OffsetCommit,
        ApiKey::DescribeAcls,
        ApiKey::ShareFetch,
    ]
    .into_iter()
    .map(|k| k as i16)
    .filter(|k| !served.contains(k));
    for key in [999i16, -1].into_iter().chain(unserved) {
        closes(&broker, &raw_frame(key, 0, &[0u8; 16]), false)
            .await
            .with_context(|| format!("api key {key}"))?;
    }
    still_serving(&broker, &mut bystander).await
}

#[tokio::test]
async fn an_unsupported_version_of_produce_closes_the_connection() -> Result<()> {
    let (broker, mut bystander) = setup(&[]).await?;
    for version in [99i16, 2, 0, -1] {
        closes(
            &broker,
            &raw_frame(ApiKey::Produce as i16, version, &[0u8; 32]),
            false,
        )
        .await
        .with_context(|| format!("Produce v{version}"))?;
    }
    assert_eq!(
        fetch_all(&mut bystander, "steady", 0, 0).await?.len(),
        2,
        "nothing appended"
    );
    still_serving(&broker, &mut bystander).await
}

#[tokio::test]
async fn a_garbage_body_closes_the_connection() -> Result<()> {
    let (broker, mut bystander) = setup(&[]).await?;
    for (key, version) in [
        (ApiKey::Metadata, 12),
        (ApiKey::Produce, 9),
        (ApiKey::Fetch, 4),
        (ApiKey::CreateTopics, 7),
    ] {
        // Header v1/v2 then bytes that cannot be the body (an absurd array length).
        let mut body = vec![0u8];
        body.extend_from_slice(&[0xff; 24]);
        closes(&broker, &raw_frame(key as i16, version, &body), false)
            .await
            .with_context(|| format!("{key:?} v{version}"))?;
    }
    // A valid Metadata v12 request cut one byte short.
    let mut client = broker.client().await?;
    let (_, frame) = client.frame(12, &MetadataRequest::default())?;
    let mut short = frame.to_vec();
    short.truncate(short.len() - 1);
    let len = (short.len() - 4) as i32;
    short[..4].copy_from_slice(&len.to_be_bytes());
    client.send_raw_lossy(&short).await;
    client.expect_closed().await.context("truncated body")?;
    still_serving(&broker, &mut bystander).await
}

#[tokio::test]
async fn a_good_request_followed_by_garbage_is_answered_then_closed() -> Result<()> {
    let (broker, mut bystander) = setup(&[]).await?;
    let mut client = broker.client().await?;
    let (id, good) = client.frame(3, &ApiVersionsRequest::default())?;
    let mut bytes = good.to_vec();
    bytes.extend_from_slice(&raw_frame(999, 0, &[1, 2, 3]));
    client.send_raw_lossy(&bytes).await;
    client
        .receive::<ApiVersionsRequest>(3, id)
        .await
        .context("the good request's answer")?;
    client.expect_closed().await?;
    still_serving(&broker, &mut bystander).await
}

#[tokio::test]
async fn random_bytes_close_the_connection_and_nothing_else() -> Result<()> {
    let (broker, mut bystander) = setup(&[]).await?;
    for seed in 1..=40u64 {
        let len = 1 + (seed as usize * 97) % 2_000;
        closes(&broker, &noise(seed, len), true)
            .await
            .with_context(|| format!("seed {seed}, {len} bytes"))?;
    }
    // Random bodies behind a plausible size prefix and a served API key and version.
    for seed in 41..=80u64 {
        let keys = [
            ApiKey::Produce,
            ApiKey::Fetch,
            ApiKey::Metadata,
            ApiKey::CreateTopics,
            ApiKey::DescribeConfigs,
        ];
        let key = keys[seed as usize % keys.len()];
        let version = key.valid_versions().max;
        let body = noise(seed, 8 + (seed as usize * 31) % 300);
        let mut bad = broker.client().await?;
        bad.send_raw_lossy(&raw_frame(key as i16, version, &body))
            .await;
        bad.finish_writing().await;
        // Either an error answer (the body happened to decode) or a close; never a hang.
        while bad
            .read_frame()
            .await
            .with_context(|| format!("seed {seed}"))?
            .is_some()
        {}
    }
    still_serving(&broker, &mut bystander).await
}

#[tokio::test]
async fn a_frame_exactly_at_socket_request_max_bytes_is_served() -> Result<()> {
    let (broker, mut bystander) = setup(&[("socket.request.max.bytes", "2048")]).await?;
    let mut client = broker.client().await?;
    let (id, frame) = client.frame(3, &ApiVersionsRequest::default())?;
    // Pad the body with zeros (bytes after a body are ignored) up to exactly the limit.
    let mut padded = frame.to_vec();
    padded.resize(4 + 2048, 0);
    padded[..4].copy_from_slice(&2048i32.to_be_bytes());
    client.send_raw(&padded).await?;
    let answer = client.receive::<ApiVersionsRequest>(3, id).await?;
    assert_eq!(answer.error_code.err(), None);
    still_serving(&broker, &mut bystander).await
}
