//! DescribeConfigs for topics and for this broker, from the config registry.

use fjord_protocol::ErrorCode;
use kafka_protocol::messages::describe_configs_response::{
    DescribeConfigsResourceResult, DescribeConfigsResult, DescribeConfigsSynonym,
};
use kafka_protocol::messages::{DescribeConfigsRequest, DescribeConfigsResponse, RequestHeader};
use kafka_protocol::protocol::StrBytes;

use super::wire;
use crate::broker::Broker;
use crate::config::{ConfigDef, ConfigSource, broker_synonyms};

/// Kafka's resource type numbers.
pub(crate) const TOPIC: i8 = 2;
pub(crate) const BROKER: i8 = 4;

/// Kafka's `ConfigSource` for a statically configured broker value.
const STATIC_BROKER_CONFIG: i8 = 4;
const DEFAULT_CONFIG: i8 = 5;

pub(crate) async fn handle(
    broker: &Broker,
    header: &RequestHeader,
    request: DescribeConfigsRequest,
) -> DescribeConfigsResponse {
    let version = header.request_api_version;
    let results = request
        .resources
        .into_iter()
        .map(|resource| {
            let keys: Option<Vec<String>> = resource.configuration_keys.map(|k| k.iter().map(|s| s.to_string()).collect());
            let wanted = |name: &str| keys.as_ref().is_none_or(|k| k.iter().any(|w| w == name));
            let mut result = DescribeConfigsResult::default()
                .with_resource_type(resource.resource_type)
                .with_resource_name(resource.resource_name.clone());
            let entry = |def: &ConfigDef, value: Option<&str>, source: i8, synonyms: Vec<DescribeConfigsSynonym>| {
                let mut entry = DescribeConfigsResourceResult::default()
                    .with_name(wire(def.name))
                    .with_value(value.map(wire))
                    .with_config_source(source);
                if request.include_synonyms {
                    entry.synonyms = synonyms;
                }
                if version >= 3 {
                    entry.config_type = def.kind as i8;
                    if request.include_documentation {
                        entry.documentation = Some(wire(def.doc));
                    }
                }
                entry
            };
            match resource.resource_type {
                TOPIC => match broker.topic(resource.resource_name.as_str()) {
                    None => {
                        result.error_code = ErrorCode::UnknownTopicOrPartition.code();
                        result.error_message = Some(wire(&format!("Topic {} does not exist", resource.resource_name.as_str())));
                    }
                    Some(topic) => {
                        let config = topic.config();
                        result.configs = config
                            .entries()
                            .filter(|(def, _, _)| wanted(def.name))
                            .map(|(def, value, source)| {
                                entry(def, Some(value), source as i8, synonyms(broker, def, value, source))
                            })
                            .collect();
                    }
                },
                BROKER => {
                    let name = resource.resource_name.as_str();
                    if !name.is_empty() && name != broker.node_id().to_string() {
                        result.error_code = ErrorCode::InvalidRequest.code();
                        result.error_message = Some(wire(&format!("Unexpected broker id, expected {} or empty string, but received {name}", broker.node_id())));
                    } else {
                        result.configs = broker
                            .config()
                            .entries()
                            .filter(|(def, _, _)| wanted(def.name))
                            .map(|(def, value, set)| {
                                let source = if set { STATIC_BROKER_CONFIG } else { DEFAULT_CONFIG };
                                let synonyms = value
                                    .map(|v| vec![DescribeConfigsSynonym::default().with_name(wire(def.name)).with_value(Some(wire(v))).with_source(source)])
                                    .unwrap_or_default();
                                entry(def, value, source, synonyms)
                            })
                            .collect();
                    }
                }
                other => {
                    result.error_code = ErrorCode::InvalidRequest.code();
                    result.error_message = Some(wire(&format!("Resource type {other} is not supported by DescribeConfigs on this broker")));
                }
            }
            result
        })
        .collect();
    DescribeConfigsResponse::default().with_results(results)
}

/// The chain of values a topic config resolves through, most specific first, as Kafka lists
/// them with `include_synonyms`.
fn synonyms(
    broker: &Broker,
    def: &ConfigDef,
    value: &str,
    source: ConfigSource,
) -> Vec<DescribeConfigsSynonym> {
    let synonym = |name: &str, value: &str, source: i8| {
        DescribeConfigsSynonym::default()
            .with_name(StrBytes::from_string(name.to_string()))
            .with_value(Some(wire(value)))
            .with_source(source)
    };
    let mut out = Vec::new();
    if source == ConfigSource::Topic {
        out.push(synonym(def.name, value, ConfigSource::Topic as i8));
    }
    for (key, _) in broker_synonyms(def.name) {
        if let Some(v) = broker.config().values().get(*key) {
            out.push(synonym(key, v, STATIC_BROKER_CONFIG));
        }
    }
    if let Some(default) = def.default {
        out.push(synonym(def.name, default, DEFAULT_CONFIG));
    }
    out
}
