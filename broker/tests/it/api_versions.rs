//! ApiVersions: the served APIs, derived from the handlers, and the KIP-511 fallback answer.

use std::collections::BTreeSet;

use anyhow::{Context, Result, ensure};
use bytes::{Buf, BufMut, BytesMut};
use fjord_protocol::ErrorCode;
use kafka_protocol::error::ParseResponseErrorCode;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::{Decodable, Request};

use crate::harness::{Client, TestBroker};

/// Exactly what the broker serves today.
const SERVED: &[ApiKey] = &[
    ApiKey::Produce,
    ApiKey::Fetch,
    ApiKey::ListOffsets,
    ApiKey::OffsetForLeaderEpoch,
    ApiKey::Metadata,
    ApiKey::ApiVersions,
    ApiKey::CreateTopics,
    ApiKey::DeleteTopics,
    ApiKey::CreatePartitions,
    ApiKey::DescribeConfigs,
    ApiKey::AlterConfigs,
    ApiKey::IncrementalAlterConfigs,
    ApiKey::DeleteRecords,
    ApiKey::DescribeCluster,
    ApiKey::ElectLeaders,
    ApiKey::AlterPartitionReassignments,
    ApiKey::ListPartitionReassignments,
    ApiKey::InitProducerId,
    ApiKey::FindCoordinator,
    ApiKey::OffsetCommit,
    ApiKey::OffsetFetch,
    ApiKey::ListGroups,
    ApiKey::DescribeGroups,
    ApiKey::DeleteGroups,
    ApiKey::OffsetDelete,
    ApiKey::JoinGroup,
    ApiKey::SyncGroup,
    ApiKey::Heartbeat,
    ApiKey::LeaveGroup,
];

fn served_keys() -> BTreeSet<i16> {
    SERVED.iter().map(|k| *k as i16).collect()
}

#[tokio::test]
async fn api_versions_lists_exactly_the_served_apis_at_v0_and_v3() -> Result<()> {
    let broker = TestBroker::start().await?;
    let mut client = broker.client().await?;
    for version in [0, 3, 4] {
        let request = ApiVersionsRequest::default()
            .with_client_software_name("fjord-it".into())
            .with_client_software_version("0.1".into());
        let response = client.call(version, &request).await?;
        assert_eq!(response.error_code.err(), None, "v{version}");
        let listed: BTreeSet<i16> = response.api_keys.iter().map(|k| k.api_key).collect();
        assert_eq!(listed, served_keys(), "v{version}");
        assert_eq!(
            listed.len(),
            response.api_keys.len(),
            "v{version}: duplicates"
        );
        for api in &response.api_keys {
            assert!(
                api.min_version <= api.max_version,
                "v{version}: api {} has range {}..={}",
                api.api_key,
                api.min_version,
                api.max_version
            );
        }
    }
    Ok(())
}

#[tokio::test]
async fn api_versions_ranges_cover_the_versions_current_clients_send() -> Result<()> {
    let broker = TestBroker::start().await?;
    let mut client = broker.client().await?;
    let response = client.call(3, &ApiVersionsRequest::default()).await?;
    // (API, a version librdkafka 2.x / the Java client 3.x+ send).
    let wanted = [
        (ApiKey::Produce, 7),
        (ApiKey::Fetch, 11),
        (ApiKey::ListOffsets, 5),
        (ApiKey::Metadata, 9),
        (ApiKey::ApiVersions, 3),
        (ApiKey::CreateTopics, 4),
        (ApiKey::DescribeConfigs, 1),
        (ApiKey::DescribeCluster, 0),
    ];
    for (key, version) in wanted {
        let api = response
            .api_keys
            .iter()
            .find(|a| a.api_key == key as i16)
            .with_context(|| format!("{key:?} not listed"))?;
        assert!(
            (api.min_version..=api.max_version).contains(&version),
            "{key:?} range {}..={} lacks v{version}",
            api.min_version,
            api.max_version
        );
    }
    Ok(())
}

#[tokio::test]
async fn unsupported_api_versions_version_gets_a_v0_answer_with_the_list() -> Result<()> {
    let broker = TestBroker::start().await?;
    let mut client = broker.client().await?;
    // ApiVersions v99: header v2 (flexible) as a newer client would send it.
    let mut frame = BytesMut::new();
    frame.put_i32(0);
    frame.put_i16(ApiKey::ApiVersions as i16);
    frame.put_i16(99);
    frame.put_i32(4242);
    frame.put_i16(-1); // null client id
    frame.put_u8(0); // no tagged fields
    frame.put_slice(&[0, 0, 0, 0, 0, 0]); // a body this server cannot know
    let len = (frame.len() - 4) as i32;
    frame[..4].copy_from_slice(&len.to_be_bytes());
    client.send_raw(&frame).await?;
    let mut answer = client.read_frame().await?.context("connection closed")?;
    let header = ResponseHeader::decode(&mut answer, 0)?;
    assert_eq!(header.correlation_id, 4242);
    let body = ApiVersionsResponse::decode(&mut answer, 0)?;
    assert!(!answer.has_remaining(), "a v0 body is all there is");
    assert_eq!(body.error_code.err(), Some(ErrorCode::UnsupportedVersion));
    assert_eq!(body.error_code, 35);
    let listed: BTreeSet<i16> = body.api_keys.iter().map(|k| k.api_key).collect();
    assert_eq!(listed, served_keys());
    // The connection stays usable: the client retries at a version both sides know.
    let retry = client.call(3, &ApiVersionsRequest::default()).await?;
    assert_eq!(retry.error_code.err(), None);
    Ok(())
}

/// Sends `request` at every version in `min..=max`; returns one line per version that was not
/// answered with a decodable response (reconnecting after a failure).
async fn probe<R: Request>(
    broker: &TestBroker,
    client: &mut Client,
    request: &R,
    min: i16,
    max: i16,
) -> Result<Vec<String>> {
    let key = ApiKey::try_from(R::KEY).map_err(|_| anyhow::anyhow!("unknown key {}", R::KEY))?;
    let mut failures = Vec::new();
    for version in min..=max {
        if let Err(e) = client.call(version, request).await {
            failures.push(format!("{key:?} v{version}: {e:#}"));
            *client = broker.client().await?;
        }
    }
    Ok(failures)
}

#[tokio::test]
async fn every_advertised_version_of_every_api_is_answered() -> Result<()> {
    let broker = TestBroker::start().await?;
    let mut client = broker.client().await?;
    let response = client.call(3, &ApiVersionsRequest::default()).await?;
    ensure!(!response.api_keys.is_empty(), "nothing advertised");
    let mut failures = Vec::new();
    for api in &response.api_keys {
        let (min, max) = (api.min_version, api.max_version);
        let key = ApiKey::try_from(api.api_key).map_err(|_| anyhow::anyhow!("unknown key"))?;
        let c = &mut client;
        let b = &broker;
        failures.extend(match key {
            // acks=0 would get no answer at all.
            ApiKey::Produce => {
                probe(b, c, &ProduceRequest::default().with_acks(1), min, max).await?
            }
            ApiKey::Fetch => probe(b, c, &FetchRequest::default(), min, max).await?,
            ApiKey::ListOffsets => probe(b, c, &ListOffsetsRequest::default(), min, max).await?,
            ApiKey::OffsetForLeaderEpoch => {
                probe(b, c, &OffsetForLeaderEpochRequest::default(), min, max).await?
            }
            // v0 cannot say "all topics" with null; an empty list is valid at every version.
            ApiKey::Metadata => {
                probe(
                    b,
                    c,
                    &MetadataRequest::default().with_topics(Some(Vec::new())),
                    min,
                    max,
                )
                .await?
            }
            ApiKey::ApiVersions => probe(b, c, &ApiVersionsRequest::default(), min, max).await?,
            ApiKey::CreateTopics => probe(b, c, &CreateTopicsRequest::default(), min, max).await?,
            ApiKey::DeleteTopics => probe(b, c, &DeleteTopicsRequest::default(), min, max).await?,
            ApiKey::CreatePartitions => {
                probe(b, c, &CreatePartitionsRequest::default(), min, max).await?
            }
            ApiKey::DescribeConfigs => {
                probe(b, c, &DescribeConfigsRequest::default(), min, max).await?
            }
            ApiKey::AlterConfigs => probe(b, c, &AlterConfigsRequest::default(), min, max).await?,
            ApiKey::IncrementalAlterConfigs => {
                probe(b, c, &IncrementalAlterConfigsRequest::default(), min, max).await?
            }
            ApiKey::DeleteRecords => {
                probe(b, c, &DeleteRecordsRequest::default(), min, max).await?
            }
            ApiKey::DescribeCluster => {
                probe(b, c, &DescribeClusterRequest::default(), min, max).await?
            }
            ApiKey::ElectLeaders => probe(b, c, &ElectLeadersRequest::default(), min, max).await?,
            ApiKey::AlterPartitionReassignments => {
                probe(
                    b,
                    c,
                    &AlterPartitionReassignmentsRequest::default(),
                    min,
                    max,
                )
                .await?
            }
            ApiKey::ListPartitionReassignments => {
                probe(
                    b,
                    c,
                    &ListPartitionReassignmentsRequest::default(),
                    min,
                    max,
                )
                .await?
            }
            ApiKey::InitProducerId => {
                // No transactional id: an idempotent producer's request.
                let request = InitProducerIdRequest::default().with_transactional_id(None);
                probe(b, c, &request, min, max).await?
            }
            ApiKey::FindCoordinator => {
                // An empty group id is answered (INVALID_GROUP_ID) at every version.
                probe(b, c, &FindCoordinatorRequest::default(), min, max).await?
            }
            ApiKey::OffsetCommit => probe(b, c, &OffsetCommitRequest::default(), min, max).await?,
            ApiKey::OffsetFetch => probe(b, c, &OffsetFetchRequest::default(), min, max).await?,
            ApiKey::ListGroups => probe(b, c, &ListGroupsRequest::default(), min, max).await?,
            ApiKey::DescribeGroups => {
                probe(b, c, &DescribeGroupsRequest::default(), min, max).await?
            }
            ApiKey::DeleteGroups => probe(b, c, &DeleteGroupsRequest::default(), min, max).await?,
            ApiKey::OffsetDelete => probe(b, c, &OffsetDeleteRequest::default(), min, max).await?,
            // Empty group ids are answered at once (INVALID_GROUP_ID) at every version.
            ApiKey::JoinGroup => {
                probe(
                    b,
                    c,
                    &JoinGroupRequest::default().with_session_timeout_ms(10_000),
                    min,
                    max,
                )
                .await?
            }
            ApiKey::SyncGroup => probe(b, c, &SyncGroupRequest::default(), min, max).await?,
            ApiKey::Heartbeat => probe(b, c, &HeartbeatRequest::default(), min, max).await?,
            ApiKey::LeaveGroup => probe(b, c, &LeaveGroupRequest::default(), min, max).await?,
            other => vec![format!("unexpected API advertised: {other:?}")],
        });
    }
    assert!(
        failures.is_empty(),
        "advertised versions not answered:\n{}",
        failures.join("\n")
    );
    Ok(())
}
