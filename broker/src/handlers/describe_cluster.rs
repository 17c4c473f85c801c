//! DescribeCluster: this broker, which is also the controller.

use fjord_protocol::ErrorCode;
use kafka_protocol::messages::describe_cluster_response::DescribeClusterBroker;
use kafka_protocol::messages::{
    BrokerId, DescribeClusterRequest, DescribeClusterResponse, RequestHeader,
};

use super::{ALL_CLUSTER_OPERATIONS, wire};
use crate::broker::Broker;

/// `endpoint_type` 1 asks for brokers, 2 for controllers.
const BROKERS: i8 = 1;

pub(crate) async fn handle(
    broker: &Broker,
    header: &RequestHeader,
    request: DescribeClusterRequest,
) -> DescribeClusterResponse {
    let version = header.request_api_version;
    let mut response =
        DescribeClusterResponse::default().with_cluster_id(wire(&broker.cluster_id()));
    if version >= 1 {
        response.endpoint_type = request.endpoint_type;
        if request.endpoint_type != BROKERS {
            response.error_code = ErrorCode::UnsupportedEndpointType.code();
            response.error_message = Some(wire(
                "The target broker only supports the broker endpoint type.",
            ));
            return response;
        }
    }
    if let Some(cluster) = broker.cluster() {
        let applied = cluster.image();
        let live: Vec<_> = applied.image.unfenced().collect();
        response.controller_id = BrokerId(live.first().map_or(broker.node_id(), |b| b.id));
        response.brokers = live
            .iter()
            .map(|b| {
                DescribeClusterBroker::default()
                    .with_broker_id(BrokerId(b.id))
                    .with_host(wire(&b.host))
                    .with_port(i32::from(b.port))
                    .with_rack(b.rack.as_deref().map(wire))
            })
            .collect();
        if request.include_cluster_authorized_operations {
            response.cluster_authorized_operations = ALL_CLUSTER_OPERATIONS;
        }
        return response;
    }
    let (host, port) = broker.advertised();
    response.controller_id = BrokerId(broker.node_id());
    response.brokers = vec![
        DescribeClusterBroker::default()
            .with_broker_id(BrokerId(broker.node_id()))
            .with_host(wire(&host))
            .with_port(i32::from(port)),
    ];
    if request.include_cluster_authorized_operations {
        response.cluster_authorized_operations = ALL_CLUSTER_OPERATIONS;
    }
    response
}
