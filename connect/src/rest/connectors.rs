//! `/connectors` endpoints.

use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value as Json, json};

use super::{AppState, RestError, config_map, flag, parse_json, query_params};
use crate::runtime::TargetState;

fn ok(value: Json) -> Response {
    axum::Json(value).into_response()
}

fn status_of(worker: &AppState, name: &str) -> Result<Json, RestError> {
    worker
        .status()
        .status_json(name)
        .ok_or_else(|| RestError::new(404, format!("No status found for connector {name}")))
}

/// `GET /connectors` (`?expand=status`, `?expand=info`).
pub(crate) async fn list(
    State(worker): State<AppState>,
    RawQuery(q): RawQuery,
) -> Result<Response, RestError> {
    let params = query_params(q.as_deref());
    let expand: Vec<&str> = params
        .iter()
        .filter(|(k, _)| k == "expand")
        .map(|(_, v)| v.as_str())
        .collect();
    let names = worker.names().await;
    if expand.is_empty() {
        return Ok(ok(json!(names)));
    }
    let mut out = Map::new();
    for name in names {
        let mut entry = Map::new();
        if expand.contains(&"status")
            && let Some(s) = worker.status().status_json(&name)
        {
            entry.insert("status".into(), s);
        }
        if expand.contains(&"info")
            && let Ok(info) = worker.info(&name).await
        {
            entry.insert("info".into(), info.to_json());
        }
        out.insert(name, Json::Object(entry));
    }
    Ok(ok(Json::Object(out)))
}

/// `POST /connectors` with `{"name": .., "config": {..}, "initial_state": ..}`.
pub(crate) async fn create(
    State(worker): State<AppState>,
    body: Bytes,
) -> Result<Response, RestError> {
    let body = parse_json(&body)?;
    let name = match body.get("name") {
        Some(Json::String(n)) => n.trim().to_string(),
        Some(_) => return Err(RestError::new(400, "Connector name must be a string")),
        None => String::new(),
    };
    let config = match body.get("config") {
        Some(c) if !c.is_null() => config_map(c)?,
        _ => {
            return Err(RestError::new(
                400,
                "Connector config is missing; the request body needs \"name\" and \"config\"",
            ));
        }
    };
    let name = if name.is_empty() {
        config
            .get("name")
            .map(|n| n.trim().to_string())
            .unwrap_or_default()
    } else {
        name
    };
    if name.is_empty() {
        return Err(RestError::new(400, "Connector name must not be empty"));
    }
    let initial = match body.get("initial_state").and_then(Json::as_str) {
        None | Some("RUNNING") => None,
        Some("PAUSED") => Some(TargetState::Paused),
        Some("STOPPED") => Some(TargetState::Stopped),
        Some(other) => {
            return Err(RestError::new(
                400,
                format!("Invalid initial_state {other}: expected RUNNING, PAUSED or STOPPED"),
            ));
        }
    };
    let (_, info) = worker
        .put_connector_in_state(&name, config, false, initial)
        .await?;
    Ok((StatusCode::CREATED, axum::Json(info.to_json())).into_response())
}

pub(crate) async fn info(
    State(worker): State<AppState>,
    Path(name): Path<String>,
) -> Result<Response, RestError> {
    Ok(ok(worker.info(&name).await?.to_json()))
}

pub(crate) async fn delete(
    State(worker): State<AppState>,
    Path(name): Path<String>,
) -> Result<Response, RestError> {
    worker.delete(&name).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

pub(crate) async fn get_config(
    State(worker): State<AppState>,
    Path(name): Path<String>,
) -> Result<Response, RestError> {
    Ok(ok(json!(worker.info(&name).await?.config)))
}

/// `PUT /connectors/{n}/config`: 201 when created, 200 when updated.
pub(crate) async fn put_config(
    State(worker): State<AppState>,
    Path(name): Path<String>,
    body: Bytes,
) -> Result<Response, RestError> {
    let config = config_map(&parse_json(&body)?)?;
    let (created, info) = worker.put_connector(&name, config, true).await?;
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, axum::Json(info.to_json())).into_response())
}

pub(crate) async fn patch_config(
    State(worker): State<AppState>,
    Path(name): Path<String>,
    body: Bytes,
) -> Result<Response, RestError> {
    let patch = match parse_json(&body)? {
        Json::Object(m) => m,
        _ => {
            return Err(RestError::new(
                400,
                "The config patch must be a JSON object",
            ));
        }
    };
    Ok(ok(worker.patch_connector(&name, patch).await?.to_json()))
}

pub(crate) async fn status(
    State(worker): State<AppState>,
    Path(name): Path<String>,
) -> Result<Response, RestError> {
    worker.info(&name).await?;
    Ok(ok(status_of(&worker, &name)?))
}

/// `POST /connectors/{n}/restart?includeTasks=..&onlyFailed=..`.
pub(crate) async fn restart(
    State(worker): State<AppState>,
    Path(name): Path<String>,
    RawQuery(q): RawQuery,
) -> Result<Response, RestError> {
    let params = query_params(q.as_deref());
    let include_tasks = flag(&params, "includeTasks")?;
    let only_failed = flag(&params, "onlyFailed")?;
    worker.restart(&name, include_tasks, only_failed).await?;
    if !include_tasks && !only_failed {
        return Ok(StatusCode::NO_CONTENT.into_response());
    }
    Ok((StatusCode::ACCEPTED, axum::Json(status_of(&worker, &name)?)).into_response())
}

pub(crate) async fn pause(
    State(worker): State<AppState>,
    Path(name): Path<String>,
) -> Result<Response, RestError> {
    worker.set_target(&name, TargetState::Paused).await?;
    Ok(StatusCode::ACCEPTED.into_response())
}

pub(crate) async fn resume(
    State(worker): State<AppState>,
    Path(name): Path<String>,
) -> Result<Response, RestError> {
    worker.set_target(&name, TargetState::Started).await?;
    Ok(StatusCode::ACCEPTED.into_response())
}

pub(crate) async fn stop(
    State(worker): State<AppState>,
    Path(name): Path<String>,
) -> Result<Response, RestError> {
    worker.set_target(&name, TargetState::Stopped).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

pub(crate) async fn tasks(
    State(worker): State<AppState>,
    Path(name): Path<String>,
) -> Result<Response, RestError> {
    let tasks: Vec<Json> = worker
        .tasks(&name)
        .await?
        .into_iter()
        .map(|(id, config)| json!({"id": {"connector": name, "task": id}, "config": config}))
        .collect();
    Ok(ok(json!(tasks)))
}

fn task_id(task: &str) -> Result<usize, RestError> {
    task.parse()
        .map_err(|_| RestError::new(404, "HTTP 404 Not Found"))
}

pub(crate) async fn task_status(
    State(worker): State<AppState>,
    Path((name, task)): Path<(String, String)>,
) -> Result<Response, RestError> {
    let id = task_id(&task)?;
    worker.info(&name).await?;
    let status = worker
        .status()
        .task(&name, id)
        .ok_or_else(|| RestError::new(404, format!("No status found for task {name}-{id}")))?;
    Ok(ok(worker.status().task_json(id, &status)))
}

pub(crate) async fn restart_task(
    State(worker): State<AppState>,
    Path((name, task)): Path<(String, String)>,
    headers: HeaderMap,
) -> Result<Response, RestError> {
    let id = task_id(&task)?;
    // A worker sent it here because this one runs the task: never send it on.
    let forwarded = headers.contains_key(crate::distributed::FORWARDED);
    worker.restart_task_from(&name, id, forwarded).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// `POST /connectors/{n}/tasks` (internal, distributed): the worker running a connector sends
/// its task configs to the leader.
pub(crate) async fn put_task_configs(
    State(worker): State<AppState>,
    Path(name): Path<String>,
    body: Bytes,
) -> Result<Response, RestError> {
    let configs: Vec<std::collections::BTreeMap<String, String>> = serde_json::from_slice(&body)
        .map_err(|e| RestError::new(400, format!("Invalid JSON in the request body: {e}")))?;
    worker.put_task_configs(&name, configs).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

pub(crate) async fn topics(
    State(worker): State<AppState>,
    Path(name): Path<String>,
) -> Result<Response, RestError> {
    let topics = worker.active_topics(&name).await?;
    Ok(ok(json!({ name: {"topics": topics} })))
}

pub(crate) async fn reset_topics(
    State(worker): State<AppState>,
    Path(name): Path<String>,
) -> Result<Response, RestError> {
    worker.reset_topics(&name).await?;
    Ok(StatusCode::OK.into_response())
}

pub(crate) async fn get_offsets(
    State(worker): State<AppState>,
    Path(name): Path<String>,
) -> Result<Response, RestError> {
    Ok(ok(worker.offsets(&name).await?))
}

pub(crate) async fn alter_offsets(
    State(worker): State<AppState>,
    Path(name): Path<String>,
    body: Bytes,
) -> Result<Response, RestError> {
    let body = parse_json(&body)?;
    worker.alter_offsets(&name, &body).await?;
    Ok(ok(
        json!({"message": "The offsets for this connector have been altered successfully"}),
    ))
}

pub(crate) async fn reset_offsets(
    State(worker): State<AppState>,
    Path(name): Path<String>,
) -> Result<Response, RestError> {
    worker.reset_offsets(&name).await?;
    Ok(ok(
        json!({"message": "The offsets for this connector have been reset successfully"}),
    ))
}
