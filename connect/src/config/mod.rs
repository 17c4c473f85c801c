//! Configuration with Kafka Connect's keys: worker properties, connector configs and the
//! typed definitions (`ConfigDef`) that the `validate` endpoint and the plugin listing read.

mod connector;
mod def;
mod distributed;
mod properties;
mod worker;

pub use connector::{ConnectorConfig, ErrorTolerance, ErrorsConfig, parse_bool, parse_list};
pub(crate) use connector::{common_def as connector_common_def, sink_def as connector_sink_def};
pub use def::{ConfigDef, ConfigKey, ConfigType, Importance};
pub use distributed::DistributedConfig;
pub use properties::{parse_properties, read_config_file};
pub use worker::WorkerConfig;
pub(crate) use worker::prefixed;
