//! InitProducerId for idempotent producers: a fresh producer id with epoch 0, or the same id
//! with the next epoch when the client asks to bump it (KIP-360). Transactions are not served
//! yet: a transactional id is refused with INVALID_REQUEST.

use fjord_protocol::ErrorCode;
use kafka_protocol::messages::{
    InitProducerIdRequest, InitProducerIdResponse, ProducerId, RequestHeader,
};

use crate::broker::Broker;

pub(crate) async fn handle(
    broker: &Broker,
    _header: &RequestHeader,
    request: InitProducerIdRequest,
) -> InitProducerIdResponse {
    let mut response = InitProducerIdResponse::default()
        .with_producer_id(ProducerId(-1))
        .with_producer_epoch(-1);
    if request.transactional_id.is_some() {
        response.error_code = ErrorCode::InvalidRequest.code();
        return response;
    }
    let bump = request.producer_id.0 >= 0
        && request.producer_epoch >= 0
        && request.producer_epoch < i16::MAX - 1;
    if bump {
        response.producer_id = request.producer_id;
        response.producer_epoch = request.producer_epoch + 1;
        return response;
    }
    let next = match broker.cluster() {
        // In a cluster ids come in blocks from the controller, unique across brokers.
        Some(cluster) => cluster
            .next_producer_id(broker.node_id())
            .await
            .map_err(|e| e.message),
        None => broker.next_producer_id().map_err(|e| e.to_string()),
    };
    match next {
        Ok(id) => {
            response.producer_id = ProducerId(id);
            response.producer_epoch = 0;
        }
        Err(e) => {
            tracing::error!(error = %e, "cannot allocate a producer id");
            response.error_code = if broker.cluster().is_some() {
                ErrorCode::CoordinatorNotAvailable.code()
            } else {
                ErrorCode::KafkaStorageError.code()
            };
        }
    }
    response
}
