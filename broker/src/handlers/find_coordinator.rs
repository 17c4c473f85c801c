//! FindCoordinator: this broker coordinates every group (one node). Batched lookups (v4+)
//! answer each key. Transaction coordinators are not served yet.

use fjord_protocol::ErrorCode;
use kafka_protocol::messages::find_coordinator_response::Coordinator;
use kafka_protocol::messages::{
    BrokerId, FindCoordinatorRequest, FindCoordinatorResponse, RequestHeader,
};
use kafka_protocol::protocol::StrBytes;

use super::wire;
use crate::broker::Broker;

/// `key_type` of a consumer group.
const GROUP: i8 = 0;

pub(crate) async fn handle(
    broker: &Broker,
    header: &RequestHeader,
    request: FindCoordinatorRequest,
) -> FindCoordinatorResponse {
    let version = header.request_api_version;
    let (host, port) = broker.advertised();
    let answer = |key: &StrBytes| -> Result<(), (ErrorCode, String)> {
        if request.key_type != GROUP {
            return Err((
                ErrorCode::CoordinatorNotAvailable,
                "Transaction coordinators are not available on this broker yet.".into(),
            ));
        }
        if key.is_empty() {
            return Err((
                ErrorCode::InvalidGroupId,
                "The group id must not be empty.".into(),
            ));
        }
        broker
            .offsets_topic()
            .map(|_| ())
            .map_err(|e| (e.code, e.message))
    };
    let mut response = FindCoordinatorResponse::default();
    if version >= 4 {
        response.coordinators = request
            .coordinator_keys
            .iter()
            .map(|key| {
                let coordinator = Coordinator::default().with_key(key.clone());
                match answer(key) {
                    Ok(()) => coordinator
                        .with_node_id(BrokerId(broker.node_id()))
                        .with_host(wire(&host))
                        .with_port(i32::from(port)),
                    Err((code, message)) => coordinator
                        .with_node_id(BrokerId(-1))
                        .with_port(-1)
                        .with_error_code(code.code())
                        .with_error_message(Some(wire(&message))),
                }
            })
            .collect();
    } else {
        match answer(&request.key) {
            Ok(()) => {
                response.node_id = BrokerId(broker.node_id());
                response.host = wire(&host);
                response.port = i32::from(port);
            }
            Err((code, message)) => {
                response.error_code = code.code();
                response.node_id = BrokerId(-1);
                response.port = -1;
                if version >= 1 {
                    response.error_message = Some(wire(&message));
                }
            }
        }
    }
    response
}
