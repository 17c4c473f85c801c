//! DescribeConfigs, AlterConfigs and IncrementalAlterConfigs on topics and the broker.

use std::collections::BTreeMap;

use anyhow::{Context, Result};
use fjord_protocol::ErrorCode;
use fjord_protocol::batch::testing::batch;
use kafka_protocol::error::ParseResponseErrorCode;
use kafka_protocol::messages::describe_configs_request::DescribeConfigsResource;
use kafka_protocol::messages::describe_configs_response::DescribeConfigsResult;
use kafka_protocol::messages::{
    AlterConfigsRequest, DescribeConfigsRequest, IncrementalAlterConfigsRequest,
    alter_configs_request, incremental_alter_configs_request,
};

use crate::harness::{Client, TestBroker, create_topic, produce, s};

const TOPIC: i8 = 2;
const BROKER: i8 = 4;

const TOPIC_CONFIG: i8 = 1;
const STATIC_BROKER_CONFIG: i8 = 4;
const DEFAULT_CONFIG: i8 = 5;

const SET: i8 = 0;
const DELETE: i8 = 1;
const APPEND: i8 = 2;
const SUBTRACT: i8 = 3;

/// Every topic config Fjord registers, with Kafka's default.
const TOPIC_DEFAULTS: &[(&str, &str)] = &[
    ("cleanup.policy", "delete"),
    ("compression.type", "producer"),
    ("flush.messages", "9223372036854775807"),
    ("flush.ms", "9223372036854775807"),
    ("index.interval.bytes", "4096"),
    ("max.message.bytes", "1048588"),
    ("message.timestamp.type", "CreateTime"),
    ("min.insync.replicas", "1"),
    ("retention.bytes", "-1"),
    ("retention.ms", "604800000"),
    ("segment.bytes", "1073741824"),
    ("segment.ms", "604800000"),
];

/// name -> (value, source)
type Described = BTreeMap<String, (Option<String>, i8)>;

fn resource(resource_type: i8, name: &str, keys: Option<&[&str]>) -> DescribeConfigsResource {
    DescribeConfigsResource::default()
        .with_resource_type(resource_type)
        .with_resource_name(s(name))
        .with_configuration_keys(keys.map(|k| k.iter().map(|k| s(k)).collect()))
}

async fn describe_result(
    client: &mut Client,
    version: i16,
    resource: DescribeConfigsResource,
    synonyms: bool,
) -> Result<DescribeConfigsResult> {
    let request = DescribeConfigsRequest::default()
        .with_resources(vec![resource])
        .with_include_synonyms(synonyms);
    client
        .call(version, &request)
        .await?
        .results
        .into_iter()
        .next()
        .context("a result")
}

async fn describe(
    client: &mut Client,
    version: i16,
    resource_type: i8,
    name: &str,
) -> Result<Described> {
    let result =
        describe_result(client, version, resource(resource_type, name, None), false).await?;
    anyhow::ensure!(
        result.error_code == 0,
        "describe {name}: {:?} {:?}",
        result.error_code.err(),
        result.error_message
    );
    Ok(result
        .configs
        .into_iter()
        .map(|c| {
            (
                c.name.to_string(),
                (c.value.map(|v| v.to_string()), c.config_source),
            )
        })
        .collect())
}

fn entry<'a>(described: &'a Described, key: &str) -> Result<(Option<&'a str>, i8)> {
    let (value, source) = described
        .get(key)
        .with_context(|| format!("{key} described"))?;
    Ok((value.as_deref(), *source))
}

fn alter(name: &str, configs: &[(&str, &str)], validate_only: bool) -> AlterConfigsRequest {
    AlterConfigsRequest::default()
        .with_resources(vec![
            alter_configs_request::AlterConfigsResource::default()
                .with_resource_type(TOPIC)
                .with_resource_name(s(name))
                .with_configs(
                    configs
                        .iter()
                        .map(|(k, v)| {
                            alter_configs_request::AlterableConfig::default()
                                .with_name(s(k))
                                .with_value(Some(s(v)))
                        })
                        .collect(),
                ),
        ])
        .with_validate_only(validate_only)
}

fn incremental(
    resource_type: i8,
    name: &str,
    ops: &[(&str, i8, Option<&str>)],
    validate_only: bool,
) -> IncrementalAlterConfigsRequest {
    IncrementalAlterConfigsRequest::default()
        .with_resources(vec![
            incremental_alter_configs_request::AlterConfigsResource::default()
                .with_resource_type(resource_type)
                .with_resource_name(s(name))
                .with_configs(
                    ops.iter()
                        .map(|(k, op, v)| {
                            incremental_alter_configs_request::AlterableConfig::default()
                                .with_name(s(k))
                                .with_config_operation(*op)
                                .with_value(v.map(s))
                        })
                        .collect(),
                ),
        ])
        .with_validate_only(validate_only)
}

async fn alter_code(
    client: &mut Client,
    version: i16,
    request: &AlterConfigsRequest,
) -> Result<Option<ErrorCode>> {
    let response = client.call(version, request).await?;
    Ok(response
        .responses
        .first()
        .context("a response")?
        .error_code
        .err())
}

async fn incremental_code(
    client: &mut Client,
    version: i16,
    request: &IncrementalAlterConfigsRequest,
) -> Result<Option<ErrorCode>> {
    let response = client.call(version, request).await?;
    Ok(response
        .responses
        .first()
        .context("a response")?
        .error_code
        .err())
}

#[tokio::test]
async fn describe_configs_of_a_new_topic_lists_every_default() -> Result<()> {
    let broker = TestBroker::start().await?;
    let mut client = broker.client().await?;
    create_topic(&mut client, "plain", 1, &[]).await?;
    for version in [1, 4] {
        let described = describe(&mut client, version, TOPIC, "plain").await?;
        for (key, default) in TOPIC_DEFAULTS {
            assert_eq!(
                entry(&described, key)?,
                (Some(*default), DEFAULT_CONFIG),
                "v{version} {key}"
            );
        }
    }
    Ok(())
}

#[tokio::test]
async fn describe_configs_reports_topic_overrides_as_topic_config() -> Result<()> {
    let broker = TestBroker::start().await?;
    let mut client = broker.client().await?;
    create_topic(
        &mut client,
        "tuned",
        1,
        &[("retention.ms", "60000"), ("cleanup.policy", "compact")],
    )
    .await?;
    for version in [1, 4] {
        let described = describe(&mut client, version, TOPIC, "tuned").await?;
        assert_eq!(
            entry(&described, "retention.ms")?,
            (Some("60000"), TOPIC_CONFIG),
            "v{version}"
        );
        assert_eq!(
            entry(&described, "cleanup.policy")?,
            (Some("compact"), TOPIC_CONFIG),
            "v{version}"
        );
        assert_eq!(
            entry(&described, "segment.bytes")?,
            (Some("1073741824"), DEFAULT_CONFIG),
            "v{version}"
        );
    }
    Ok(())
}

#[tokio::test]
async fn describe_configs_reports_broker_overrides_as_static_broker_config() -> Result<()> {
    let broker = TestBroker::with_overrides(&[
        ("log.retention.hours", "2"),
        ("log.segment.bytes", "2048"),
        ("message.max.bytes", "5000"),
    ])
    .await?;
    let mut client = broker.client().await?;
    create_topic(&mut client, "inherits", 1, &[("segment.bytes", "4096")]).await?;
    let described = describe(&mut client, 4, TOPIC, "inherits").await?;
    assert_eq!(
        entry(&described, "retention.ms")?,
        (Some("7200000"), STATIC_BROKER_CONFIG)
    );
    assert_eq!(
        entry(&described, "max.message.bytes")?,
        (Some("5000"), STATIC_BROKER_CONFIG)
    );
    assert_eq!(
        entry(&described, "segment.bytes")?,
        (Some("4096"), TOPIC_CONFIG),
        "topic beats broker"
    );
    assert_eq!(
        entry(&described, "cleanup.policy")?,
        (Some("delete"), DEFAULT_CONFIG)
    );
    Ok(())
}

#[tokio::test]
async fn describe_configs_with_keys_returns_only_those() -> Result<()> {
    let broker = TestBroker::start().await?;
    let mut client = broker.client().await?;
    create_topic(&mut client, "keys", 1, &[]).await?;
    let result = describe_result(
        &mut client,
        4,
        resource(TOPIC, "keys", Some(&["retention.ms", "segment.ms"])),
        false,
    )
    .await?;
    let mut names: Vec<String> = result.configs.iter().map(|c| c.name.to_string()).collect();
    names.sort();
    assert_eq!(names, ["retention.ms", "segment.ms"]);
    Ok(())
}

#[tokio::test]
async fn describe_configs_with_synonyms_lists_the_resolution_chain() -> Result<()> {
    let broker = TestBroker::with_overrides(&[("log.retention.ms", "99000")]).await?;
    let mut client = broker.client().await?;
    create_topic(&mut client, "chain", 1, &[("retention.ms", "5000")]).await?;
    let result = describe_result(
        &mut client,
        4,
        resource(TOPIC, "chain", Some(&["retention.ms"])),
        true,
    )
    .await?;
    let config = result.configs.first().context("retention.ms")?;
    let chain: Vec<(String, Option<String>, i8)> = config
        .synonyms
        .iter()
        .map(|s| {
            (
                s.name.to_string(),
                s.value.as_ref().map(|v| v.to_string()),
                s.source,
            )
        })
        .collect();
    assert_eq!(
        chain,
        [
            (
                "retention.ms".to_string(),
                Some("5000".to_string()),
                TOPIC_CONFIG
            ),
            (
                "log.retention.ms".to_string(),
                Some("99000".to_string()),
                STATIC_BROKER_CONFIG
            ),
            (
                "retention.ms".to_string(),
                Some("604800000".to_string()),
                DEFAULT_CONFIG
            ),
        ]
    );
    Ok(())
}

#[tokio::test]
async fn describe_configs_v4_gives_types_and_documentation() -> Result<()> {
    let broker = TestBroker::start().await?;
    let mut client = broker.client().await?;
    create_topic(&mut client, "docs", 1, &[]).await?;
    let request = DescribeConfigsRequest::default()
        .with_resources(vec![resource(
            TOPIC,
            "docs",
            Some(&["retention.ms", "cleanup.policy"]),
        )])
        .with_include_documentation(true);
    let response = client.call(4, &request).await?;
    let configs = &response.results.first().context("a result")?.configs;
    let retention = configs
        .iter()
        .find(|c| c.name.as_str() == "retention.ms")
        .context("retention.ms")?;
    assert_eq!(retention.config_type, 5, "LONG");
    assert!(
        retention
            .documentation
            .as_ref()
            .is_some_and(|d| !d.is_empty())
    );
    let policy = configs
        .iter()
        .find(|c| c.name.as_str() == "cleanup.policy")
        .context("cleanup.policy")?;
    assert_eq!(policy.config_type, 7, "LIST");
    Ok(())
}

#[tokio::test]
async fn describe_configs_of_the_broker_resource_shows_static_and_default_values() -> Result<()> {
    let broker = TestBroker::with_overrides(&[("num.partitions", "3"), ("node.id", "4")]).await?;
    let mut client = broker.client().await?;
    for (version, name) in [(1, "4"), (4, "4"), (4, "")] {
        let described = describe(&mut client, version, BROKER, name).await?;
        assert_eq!(
            entry(&described, "num.partitions")?,
            (Some("3"), STATIC_BROKER_CONFIG),
            "v{version} {name:?}"
        );
        assert_eq!(
            entry(&described, "log.retention.hours")?,
            (Some("168"), DEFAULT_CONFIG),
            "v{version} {name:?}"
        );
        assert_eq!(
            entry(&described, "auto.create.topics.enable")?,
            (Some("true"), DEFAULT_CONFIG)
        );
    }
    let other = describe_result(&mut client, 4, resource(BROKER, "99", None), false).await?;
    assert!(
        other.error_code != 0,
        "another broker's configs are not ours to describe"
    );
    Ok(())
}

#[tokio::test]
async fn describe_configs_of_an_unknown_topic_is_unknown_topic_or_partition() -> Result<()> {
    let broker = TestBroker::start().await?;
    let mut client = broker.client().await?;
    let result = describe_result(&mut client, 4, resource(TOPIC, "ghost", None), false).await?;
    assert_eq!(
        result.error_code.err(),
        Some(ErrorCode::UnknownTopicOrPartition)
    );
    Ok(())
}

#[tokio::test]
async fn alter_configs_replaces_all_topic_overrides() -> Result<()> {
    let broker = TestBroker::start().await?;
    let mut client = broker.client().await?;
    create_topic(
        &mut client,
        "replaced",
        1,
        &[("segment.bytes", "4096"), ("retention.ms", "1000")],
    )
    .await?;
    for (version, retention) in [(0, "5000"), (2, "6000")] {
        assert_eq!(
            alter_code(
                &mut client,
                version,
                &alter("replaced", &[("retention.ms", retention)], false)
            )
            .await?,
            None
        );
        let described = describe(&mut client, 4, TOPIC, "replaced").await?;
        assert_eq!(
            entry(&described, "retention.ms")?,
            (Some(retention), TOPIC_CONFIG),
            "v{version}"
        );
        assert_eq!(
            entry(&described, "segment.bytes")?,
            (Some("1073741824"), DEFAULT_CONFIG),
            "v{version}: dropped override"
        );
    }
    Ok(())
}

#[tokio::test]
async fn alter_configs_with_an_invalid_value_or_key_changes_nothing() -> Result<()> {
    let broker = TestBroker::start().await?;
    let mut client = broker.client().await?;
    create_topic(&mut client, "guarded", 1, &[("retention.ms", "1000")]).await?;
    let bad: [&[(&str, &str)]; 3] = [
        &[("segment.bytes", "8192"), ("retention.ms", "soon")],
        &[("segment.bytes", "8192"), ("cleanup.policy", "shred")],
        &[("segment.bytes", "8192"), ("no.such.config", "1")],
    ];
    for configs in bad {
        assert_eq!(
            alter_code(&mut client, 2, &alter("guarded", configs, false)).await?,
            Some(ErrorCode::InvalidConfig),
            "{configs:?}"
        );
        let described = describe(&mut client, 4, TOPIC, "guarded").await?;
        assert_eq!(
            entry(&described, "retention.ms")?,
            (Some("1000"), TOPIC_CONFIG),
            "{configs:?}"
        );
        assert_eq!(
            entry(&described, "segment.bytes")?,
            (Some("1073741824"), DEFAULT_CONFIG),
            "{configs:?}"
        );
    }
    Ok(())
}

#[tokio::test]
async fn alter_configs_validate_only_changes_nothing() -> Result<()> {
    let broker = TestBroker::start().await?;
    let mut client = broker.client().await?;
    create_topic(&mut client, "dry", 1, &[]).await?;
    assert_eq!(
        alter_code(
            &mut client,
            2,
            &alter("dry", &[("retention.ms", "1")], true)
        )
        .await?,
        None
    );
    assert_eq!(
        incremental_code(
            &mut client,
            1,
            &incremental(TOPIC, "dry", &[("retention.ms", SET, Some("1"))], true)
        )
        .await?,
        None
    );
    let described = describe(&mut client, 4, TOPIC, "dry").await?;
    assert_eq!(
        entry(&described, "retention.ms")?,
        (Some("604800000"), DEFAULT_CONFIG)
    );
    Ok(())
}

#[tokio::test]
async fn alter_configs_of_an_unknown_topic_is_unknown_topic_or_partition() -> Result<()> {
    let broker = TestBroker::start().await?;
    let mut client = broker.client().await?;
    assert_eq!(
        alter_code(
            &mut client,
            2,
            &alter("ghost", &[("retention.ms", "1")], false)
        )
        .await?,
        Some(ErrorCode::UnknownTopicOrPartition)
    );
    assert_eq!(
        incremental_code(
            &mut client,
            1,
            &incremental(TOPIC, "ghost", &[("retention.ms", SET, Some("1"))], false)
        )
        .await?,
        Some(ErrorCode::UnknownTopicOrPartition)
    );
    Ok(())
}

#[tokio::test]
async fn incremental_alter_configs_sets_and_deletes_overrides() -> Result<()> {
    let broker = TestBroker::with_overrides(&[("log.retention.ms", "99000")]).await?;
    let mut client = broker.client().await?;
    create_topic(&mut client, "inc", 1, &[("segment.bytes", "4096")]).await?;
    for version in [0, 1] {
        let set = incremental(
            TOPIC,
            "inc",
            &[
                ("retention.ms", SET, Some("1234")),
                ("max.message.bytes", SET, Some("2000")),
            ],
            false,
        );
        assert_eq!(
            incremental_code(&mut client, version, &set).await?,
            None,
            "v{version}"
        );
        let described = describe(&mut client, 4, TOPIC, "inc").await?;
        assert_eq!(
            entry(&described, "retention.ms")?,
            (Some("1234"), TOPIC_CONFIG),
            "v{version}"
        );
        assert_eq!(
            entry(&described, "max.message.bytes")?,
            (Some("2000"), TOPIC_CONFIG),
            "v{version}"
        );
        assert_eq!(
            entry(&described, "segment.bytes")?,
            (Some("4096"), TOPIC_CONFIG),
            "v{version}: untouched"
        );
        let delete = incremental(
            TOPIC,
            "inc",
            &[
                ("retention.ms", DELETE, None),
                ("max.message.bytes", DELETE, None),
            ],
            false,
        );
        assert_eq!(
            incremental_code(&mut client, version, &delete).await?,
            None,
            "v{version}"
        );
        let described = describe(&mut client, 4, TOPIC, "inc").await?;
        assert_eq!(
            entry(&described, "retention.ms")?,
            (Some("99000"), STATIC_BROKER_CONFIG),
            "v{version}"
        );
        assert_eq!(
            entry(&described, "max.message.bytes")?,
            (Some("1048588"), DEFAULT_CONFIG),
            "v{version}"
        );
        assert_eq!(
            entry(&described, "segment.bytes")?,
            (Some("4096"), TOPIC_CONFIG),
            "v{version}: untouched"
        );
    }
    Ok(())
}

#[tokio::test]
async fn incremental_alter_configs_appends_to_and_subtracts_from_lists() -> Result<()> {
    let broker = TestBroker::start().await?;
    let mut client = broker.client().await?;
    create_topic(&mut client, "lists", 1, &[]).await?;
    let append = incremental(
        TOPIC,
        "lists",
        &[("cleanup.policy", APPEND, Some("compact"))],
        false,
    );
    assert_eq!(incremental_code(&mut client, 1, &append).await?, None);
    let described = describe(&mut client, 4, TOPIC, "lists").await?;
    assert_eq!(
        entry(&described, "cleanup.policy")?,
        (Some("delete,compact"), TOPIC_CONFIG)
    );
    // Appending what is there already changes nothing.
    assert_eq!(incremental_code(&mut client, 1, &append).await?, None);
    let described = describe(&mut client, 4, TOPIC, "lists").await?;
    assert_eq!(
        entry(&described, "cleanup.policy")?,
        (Some("delete,compact"), TOPIC_CONFIG)
    );
    let subtract = incremental(
        TOPIC,
        "lists",
        &[("cleanup.policy", SUBTRACT, Some("delete"))],
        false,
    );
    assert_eq!(incremental_code(&mut client, 1, &subtract).await?, None);
    let described = describe(&mut client, 4, TOPIC, "lists").await?;
    assert_eq!(
        entry(&described, "cleanup.policy")?,
        (Some("compact"), TOPIC_CONFIG)
    );
    Ok(())
}

#[tokio::test]
async fn incremental_alter_configs_with_an_invalid_change_changes_nothing() -> Result<()> {
    let broker = TestBroker::start().await?;
    let mut client = broker.client().await?;
    create_topic(&mut client, "atomic", 1, &[("retention.ms", "1000")]).await?;
    let bad: [&[(&str, i8, Option<&str>)]; 4] = [
        &[
            ("segment.bytes", SET, Some("8192")),
            ("retention.ms", SET, Some("soon")),
        ],
        &[
            ("segment.bytes", SET, Some("8192")),
            ("no.such.config", SET, Some("1")),
        ],
        &[
            ("segment.bytes", SET, Some("8192")),
            ("retention.ms", APPEND, Some("5")),
        ],
        &[
            ("segment.bytes", SET, Some("8192")),
            ("cleanup.policy", APPEND, Some("shred")),
        ],
    ];
    for ops in bad {
        assert_eq!(
            incremental_code(&mut client, 1, &incremental(TOPIC, "atomic", ops, false)).await?,
            Some(ErrorCode::InvalidConfig),
            "{ops:?}"
        );
        let described = describe(&mut client, 4, TOPIC, "atomic").await?;
        assert_eq!(
            entry(&described, "retention.ms")?,
            (Some("1000"), TOPIC_CONFIG),
            "{ops:?}"
        );
        assert_eq!(
            entry(&described, "segment.bytes")?,
            (Some("1073741824"), DEFAULT_CONFIG),
            "{ops:?}"
        );
        assert_eq!(
            entry(&described, "cleanup.policy")?,
            (Some("delete"), DEFAULT_CONFIG),
            "{ops:?}"
        );
    }
    Ok(())
}

#[tokio::test]
async fn altering_broker_configs_is_refused() -> Result<()> {
    let broker = TestBroker::start().await?;
    let mut client = broker.client().await?;
    let request = incremental(BROKER, "1", &[("num.partitions", SET, Some("9"))], false);
    assert!(incremental_code(&mut client, 1, &request).await?.is_some());
    let described = describe(&mut client, 4, BROKER, "1").await?;
    assert_eq!(
        entry(&described, "num.partitions")?,
        (Some("1"), DEFAULT_CONFIG)
    );
    Ok(())
}

#[tokio::test]
async fn altered_configs_survive_a_restart() -> Result<()> {
    let mut broker = TestBroker::start().await?;
    let mut client = broker.client().await?;
    create_topic(&mut client, "kept", 1, &[]).await?;
    create_topic(&mut client, "kept-too", 1, &[]).await?;
    assert_eq!(
        alter_code(
            &mut client,
            2,
            &alter("kept", &[("retention.ms", "4242")], false)
        )
        .await?,
        None
    );
    let ops = [
        ("cleanup.policy", APPEND, Some("compact")),
        ("segment.ms", SET, Some("777777")),
    ];
    assert_eq!(
        incremental_code(&mut client, 1, &incremental(TOPIC, "kept-too", &ops, false)).await?,
        None
    );
    broker.restart().await?;
    let mut client = broker.client().await?;
    let kept = describe(&mut client, 4, TOPIC, "kept").await?;
    assert_eq!(entry(&kept, "retention.ms")?, (Some("4242"), TOPIC_CONFIG));
    let kept_too = describe(&mut client, 4, TOPIC, "kept-too").await?;
    assert_eq!(
        entry(&kept_too, "cleanup.policy")?,
        (Some("delete,compact"), TOPIC_CONFIG)
    );
    assert_eq!(
        entry(&kept_too, "segment.ms")?,
        (Some("777777"), TOPIC_CONFIG)
    );
    Ok(())
}

#[tokio::test]
async fn an_altered_config_takes_effect_on_the_next_request() -> Result<()> {
    let broker = TestBroker::start().await?;
    let mut client = broker.client().await?;
    create_topic(&mut client, "live", 1, &[]).await?;
    let big = batch(0, 1, 1_000, &[7u8; 600]);
    let set = incremental(
        TOPIC,
        "live",
        &[("max.message.bytes", SET, Some("300"))],
        false,
    );
    assert_eq!(incremental_code(&mut client, 1, &set).await?, None);
    assert_eq!(
        produce(&mut client, "live", 0, big.clone())
            .await?
            .error_code
            .err(),
        Some(ErrorCode::MessageTooLarge)
    );
    let delete = incremental(TOPIC, "live", &[("max.message.bytes", DELETE, None)], false);
    assert_eq!(incremental_code(&mut client, 1, &delete).await?, None);
    assert_eq!(
        produce(&mut client, "live", 0, big).await?.error_code.err(),
        None
    );
    let stamp = incremental(
        TOPIC,
        "live",
        &[("message.timestamp.type", SET, Some("LogAppendTime"))],
        false,
    );
    assert_eq!(incremental_code(&mut client, 1, &stamp).await?, None);
    let stamped = produce(&mut client, "live", 0, batch(0, 1, 1_000, b"x")).await?;
    assert!(
        stamped.log_append_time_ms > 1_000,
        "LogAppendTime after the alter"
    );
    Ok(())
}
