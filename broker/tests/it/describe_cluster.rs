//! DescribeCluster: this broker, the controller, and the same cluster id as Metadata.

use anyhow::{Context, Result};
use fjord_protocol::ErrorCode;
use kafka_protocol::error::ParseResponseErrorCode;
use kafka_protocol::messages::{BrokerId, DescribeClusterRequest, MetadataRequest};

use crate::harness::TestBroker;

#[tokio::test]
async fn describe_cluster_lists_this_broker_with_metadatas_cluster_id() -> Result<()> {
    let broker = TestBroker::with_overrides(&[("node.id", "3")]).await?;
    let mut client = broker.client().await?;
    let metadata_id = client
        .call(12, &MetadataRequest::default().with_topics(None))
        .await?
        .cluster_id
        .context("a cluster id")?;
    for version in [0, 1, 2] {
        let mut request = DescribeClusterRequest::default();
        if version >= 1 {
            request.endpoint_type = 1;
        }
        let response = client.call(version, &request).await?;
        assert_eq!(response.error_code.err(), None, "v{version}");
        assert_eq!(response.cluster_id, metadata_id, "v{version}");
        assert_eq!(response.controller_id, BrokerId(3), "v{version}");
        assert_eq!(response.brokers.len(), 1, "v{version}");
        let me = &response.brokers[0];
        assert_eq!(me.broker_id, BrokerId(3), "v{version}");
        assert_eq!(me.host.as_str(), "127.0.0.1", "v{version}");
        assert_eq!(me.port, i32::from(broker.addr().port()), "v{version}");
    }
    Ok(())
}

#[tokio::test]
async fn describe_cluster_for_controllers_is_unsupported_endpoint_type() -> Result<()> {
    let broker = TestBroker::start().await?;
    let mut client = broker.client().await?;
    let request = DescribeClusterRequest::default().with_endpoint_type(2);
    let response = client.call(1, &request).await?;
    assert_eq!(
        response.error_code.err(),
        Some(ErrorCode::UnsupportedEndpointType)
    );
    Ok(())
}

#[tokio::test]
async fn describe_cluster_keeps_its_cluster_id_across_restarts() -> Result<()> {
    let mut broker = TestBroker::start().await?;
    let first = broker
        .client()
        .await?
        .call(0, &DescribeClusterRequest::default())
        .await?
        .cluster_id;
    broker.restart().await?;
    let second = broker
        .client()
        .await?
        .call(0, &DescribeClusterRequest::default())
        .await?
        .cluster_id;
    assert_eq!(first, second);
    Ok(())
}
