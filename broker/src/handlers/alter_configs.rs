//! AlterConfigs (replace a topic's overrides) and IncrementalAlterConfigs (SET, DELETE, APPEND,
//! SUBTRACT). Broker configs are static: altering them is refused with INVALID_REQUEST.

use std::collections::{BTreeMap, HashSet};

use fjord_protocol::ErrorCode;
use kafka_protocol::messages::{
    AlterConfigsRequest, AlterConfigsResponse, IncrementalAlterConfigsRequest,
    IncrementalAlterConfigsResponse, RequestHeader, alter_configs_response,
    incremental_alter_configs_response,
};
use kafka_protocol::protocol::StrBytes;

use super::describe_configs::{BROKER, TOPIC};
use super::wire;
use crate::broker::Broker;
use crate::config::{ConfigType, TOPIC_CONFIGS, find};
use crate::error::ApiError;

const SET: i8 = 0;
const DELETE: i8 = 1;
const APPEND: i8 = 2;
const SUBTRACT: i8 = 3;

pub(crate) async fn handle(
    broker: &Broker,
    _header: &RequestHeader,
    request: AlterConfigsRequest,
) -> AlterConfigsResponse {
    let mut responses = Vec::new();
    for resource in request.resources {
        {
            let outcome = apply(
                broker,
                resource.resource_type,
                &resource.resource_name,
                request.validate_only,
                |_| {
                    let mut overrides = BTreeMap::new();
                    for config in &resource.configs {
                        let Some(value) = &config.value else {
                            return Err(ApiError::new(
                                ErrorCode::InvalidRequest,
                                format!("Null value not supported for : {}", config.name.as_str()),
                            ));
                        };
                        overrides.insert(config.name.to_string(), value.to_string());
                    }
                    Ok(overrides)
                },
            )
            .await;
            let mut response = alter_configs_response::AlterConfigsResourceResponse::default()
                .with_resource_type(resource.resource_type)
                .with_resource_name(resource.resource_name);
            if let Err(e) = outcome {
                response.error_code = e.code.code();
                response.error_message = Some(wire(&e.message));
            }
            responses.push(response);
        }
    }
    AlterConfigsResponse::default().with_responses(responses)
}

pub(crate) async fn handle_incremental(
    broker: &Broker,
    _header: &RequestHeader,
    request: IncrementalAlterConfigsRequest,
) -> IncrementalAlterConfigsResponse {
    let mut responses = Vec::new();
    for resource in request.resources {
        {
            let outcome = apply(broker, resource.resource_type, &resource.resource_name, request.validate_only, |current| {
                let mut overrides = current.clone();
                let mut seen = HashSet::new();
                for config in &resource.configs {
                    let name = config.name.to_string();
                    if !seen.insert(name.clone()) {
                        return Err(ApiError::new(ErrorCode::InvalidRequest, format!("Error due to duplicate config keys: {name}")));
                    }
                    let def = find(TOPIC_CONFIGS, &name)
                        .ok_or_else(|| ApiError::new(ErrorCode::InvalidConfig, format!("Unknown topic config name: {name}")))?;
                    let value = config.value.as_ref().map(|v| v.to_string());
                    match config.config_operation {
                        SET => {
                            let value = value.ok_or_else(|| ApiError::new(ErrorCode::InvalidRequest, format!("Null value not supported for : {name}")))?;
                            overrides.insert(name, value);
                        }
                        DELETE => {
                            overrides.remove(&name);
                        }
                        APPEND | SUBTRACT => {
                            if def.kind != ConfigType::List {
                                return Err(ApiError::new(
                                    ErrorCode::InvalidConfig,
                                    format!("Config value append is not allowed for config key: {name}"),
                                ));
                            }
                            let effective = overrides.get(&name).cloned().or(def.default.map(str::to_string)).unwrap_or_default();
                            let mut items: Vec<String> = effective.split(',').map(str::trim).filter(|s| !s.is_empty()).map(str::to_string).collect();
                            for item in value.unwrap_or_default().split(',').map(str::trim).filter(|s| !s.is_empty()) {
                                if config.config_operation == APPEND {
                                    if !items.iter().any(|i| i == item) {
                                        items.push(item.to_string());
                                    }
                                } else {
                                    items.retain(|i| i != item);
                                }
                            }
                            overrides.insert(name, items.join(","));
                        }
                        other => return Err(ApiError::new(ErrorCode::InvalidRequest, format!("Unknown config operation {other}"))),
                    }
                }
                Ok(overrides)
            }).await;
            let mut response =
                incremental_alter_configs_response::AlterConfigsResourceResponse::default()
                    .with_resource_type(resource.resource_type)
                    .with_resource_name(resource.resource_name);
            if let Err(e) = outcome {
                response.error_code = e.code.code();
                response.error_message = Some(wire(&e.message));
            }
            responses.push(response);
        }
    }
    IncrementalAlterConfigsResponse::default().with_responses(responses)
}

/// Resolves the resource, computes its new overrides from the current ones, validates them and
/// (unless `validate_only`) stores them.
async fn apply(
    broker: &Broker,
    resource_type: i8,
    name: &StrBytes,
    validate_only: bool,
    change: impl FnOnce(&BTreeMap<String, String>) -> Result<BTreeMap<String, String>, ApiError>,
) -> Result<(), ApiError> {
    match resource_type {
        TOPIC if broker.cluster().is_some() => {
            let Some(cluster) = broker.cluster() else {
                return Ok(());
            };
            let current = cluster
                .image()
                .image
                .topic(name.as_str())
                .map(|t| t.configs.clone())
                .ok_or_else(|| {
                    ApiError::new(
                        ErrorCode::UnknownTopicOrPartition,
                        format!("Topic {} does not exist", name.as_str()),
                    )
                })?;
            let overrides = change(&current)?;
            broker.topic_config(overrides.clone())?;
            cluster
                .write(crate::cluster::ControllerRequest::SetTopicConfigs {
                    topic: name.to_string(),
                    configs: overrides,
                    validate_only,
                })
                .await?;
            Ok(())
        }
        TOPIC => {
            let topic = broker.topic(name.as_str()).ok_or_else(|| {
                ApiError::new(
                    ErrorCode::UnknownTopicOrPartition,
                    format!("Topic {} does not exist", name.as_str()),
                )
            })?;
            let overrides = change(topic.config().overrides())?;
            let config = broker.topic_config(overrides)?;
            if !validate_only {
                broker.set_topic_config(&topic, config)?;
            }
            Ok(())
        }
        BROKER => Err(ApiError::new(
            ErrorCode::InvalidRequest,
            "Broker configs are static in Fjord: set them in the config file, FJORD_* variables or --override and restart.",
        )),
        other => Err(ApiError::new(
            ErrorCode::InvalidRequest,
            format!("Resource type {other} cannot be altered"),
        )),
    }
}
