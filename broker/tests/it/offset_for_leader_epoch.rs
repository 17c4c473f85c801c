//! OffsetForLeaderEpoch: where an epoch ended, fencing by the current epoch, unknown partitions;
//! the answer survives a restart (the leader-epoch checkpoint).

use anyhow::Result;
use fjord_protocol::ErrorCode;
use fjord_protocol::batch::testing::batch;
use kafka_protocol::messages::offset_for_leader_epoch_request::{
    OffsetForLeaderPartition, OffsetForLeaderTopic,
};
use kafka_protocol::messages::offset_for_leader_epoch_response::EpochEndOffset;
use kafka_protocol::messages::{
    BrokerId, OffsetForLeaderEpochRequest, OffsetForLeaderEpochResponse,
};

use crate::harness::{Client, TestBroker, create_topic, produce_ok, topic};

async fn ask(
    client: &mut Client,
    version: i16,
    name: &str,
    partition: i32,
    current_leader_epoch: i32,
    leader_epoch: i32,
) -> Result<EpochEndOffset> {
    let request = OffsetForLeaderEpochRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_topics(vec![
            OffsetForLeaderTopic::default()
                .with_topic(topic(name))
                .with_partitions(vec![
                    OffsetForLeaderPartition::default()
                        .with_partition(partition)
                        .with_current_leader_epoch(current_leader_epoch)
                        .with_leader_epoch(leader_epoch),
                ]),
        ]);
    let response: OffsetForLeaderEpochResponse = client.call(version, &request).await?;
    let answer = response
        .topics
        .into_iter()
        .next()
        .and_then(|t| t.partitions.into_iter().next())
        .ok_or_else(|| anyhow::anyhow!("no partition in the response"))?;
    Ok(answer)
}

#[tokio::test]
async fn the_latest_epoch_ends_at_the_log_end_and_older_ones_are_fenced() -> Result<()> {
    let mut broker = TestBroker::start().await?;
    let mut client = broker.client().await?;
    create_topic(&mut client, "epochs", 1, &[]).await?;
    let empty = ask(&mut client, 4, "epochs", 0, -1, 0).await?;
    assert_eq!(
        (empty.error_code, empty.leader_epoch, empty.end_offset),
        (0, 0, 0)
    );
    produce_ok(&mut client, "epochs", 0, batch(0, 4, 1_000, b"x")).await?;
    produce_ok(&mut client, "epochs", 0, batch(0, 3, 2_000, b"y")).await?;
    for version in [2, 3, 4] {
        let a = ask(&mut client, version, "epochs", 0, 0, 0).await?;
        assert_eq!(
            (a.error_code, a.leader_epoch, a.end_offset),
            (0, 0, 7),
            "v{version}"
        );
        // A client without an epoch is not fenced; one from the future is told so.
        let a = ask(&mut client, version, "epochs", 0, -1, 5).await?;
        assert_eq!(
            (a.error_code, a.leader_epoch, a.end_offset),
            (0, 0, 7),
            "v{version}"
        );
        let a = ask(&mut client, version, "epochs", 0, 1, 0).await?;
        assert_eq!(
            a.error_code,
            ErrorCode::UnknownLeaderEpoch.code(),
            "v{version}"
        );
    }
    let missing = ask(&mut client, 4, "epochs", 9, -1, 0).await?;
    assert_eq!(
        missing.error_code,
        ErrorCode::UnknownTopicOrPartition.code()
    );
    let missing = ask(&mut client, 4, "nope", 0, -1, 0).await?;
    assert_eq!(
        missing.error_code,
        ErrorCode::UnknownTopicOrPartition.code()
    );

    broker.crash().await?;
    broker.start_again().await?;
    let mut client = broker.client().await?;
    let a = ask(&mut client, 4, "epochs", 0, 0, 0).await?;
    assert_eq!((a.error_code, a.leader_epoch, a.end_offset), (0, 0, 7));
    Ok(())
}
