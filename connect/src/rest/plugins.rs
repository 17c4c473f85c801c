//! `/connector-plugins`.

use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::response::{IntoResponse, Response};
use serde_json::{Value as Json, json};

use super::{AppState, RestError, config_map, flag, parse_json, query_params};
use crate::converter::CONVERTER_CLASSES;
use crate::plugin::{connectors, find_connector};
use crate::transforms::{PREDICATE_CLASSES, TRANSFORM_CLASSES};

/// `GET /connector-plugins` (`connectorsOnly=false` adds transforms, predicates, converters).
pub(crate) async fn list(RawQuery(q): RawQuery) -> Result<Response, RestError> {
    let params = query_params(q.as_deref());
    let connectors_only = match params.iter().rev().find(|(k, _)| k == "connectorsOnly") {
        None => true,
        Some(_) => flag(&params, "connectorsOnly")?,
    };
    let version = env!("CARGO_PKG_VERSION");
    let mut out: Vec<Json> = connectors()
        .iter()
        .map(|p| json!({"class": p.class, "type": p.connector.type_name(), "version": p.version}))
        .collect();
    if !connectors_only {
        out.extend(
            TRANSFORM_CLASSES
                .iter()
                .map(|c| json!({"class": c, "type": "transformation", "version": version})),
        );
        out.extend(
            PREDICATE_CLASSES
                .iter()
                .map(|c| json!({"class": c, "type": "predicate", "version": version})),
        );
        out.extend(
            CONVERTER_CLASSES
                .iter()
                .map(|c| json!({"class": c, "type": "converter", "version": version})),
        );
        out.push(json!({"class": "org.apache.kafka.connect.storage.SimpleHeaderConverter", "type": "header_converter", "version": version}));
    }
    Ok(axum::Json(out).into_response())
}

/// `GET /connector-plugins/{plugin}/config`.
pub(crate) async fn config(Path(plugin): Path<String>) -> Result<Response, RestError> {
    let p = find_connector(&plugin)
        .ok_or_else(|| RestError::new(404, format!("Unknown plugin {plugin}.")))?;
    let defs: Vec<Json> = p
        .connector
        .full_config_def()
        .keys
        .iter()
        .enumerate()
        .map(|(i, k)| k.definition(i + 1))
        .collect();
    Ok(axum::Json(defs).into_response())
}

/// `PUT /connector-plugins/{plugin}/config/validate`.
pub(crate) async fn validate(
    State(worker): State<AppState>,
    Path(plugin): Path<String>,
    body: Bytes,
) -> Result<Response, RestError> {
    let mut config = config_map(&parse_json(&body)?)?;
    let resolved = find_connector(&plugin);
    match config.get("connector.class") {
        None => {
            config.insert("connector.class".into(), plugin.clone());
        }
        Some(class) => {
            let same = match (&resolved, find_connector(class)) {
                (Some(a), Some(b)) => a.class == b.class,
                _ => class == &plugin,
            };
            if !same {
                return Err(RestError::new(
                    400,
                    "Connector class in the config does not match the plugin in the URL",
                ));
            }
        }
    }
    if resolved.is_none() {
        return Err(RestError::new(
            400,
            format!(
                "Failed to find any class that implements Connector and which name matches {plugin}"
            ),
        ));
    }
    Ok(axum::Json(worker.validate_json(&config)).into_response())
}
