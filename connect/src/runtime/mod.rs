//! The worker: connectors and their tasks, statuses, source offsets (a file standalone, the
//! offsets topic distributed), sink offsets in the `connect-{name}` consumer group, error
//! tolerance and the dead-letter queue.
//!
//! ```text
//! Worker (worker.rs)        connector configs, target states (STARTED/PAUSED/STOPPED), task
//!                           handles; lifecycle calls serialized by one async mutex
//! source.rs                 poll → transform → convert → produce → offsets (in order, after acks)
//! sink.rs                   consumer group → convert → transform → put → flush → commit
//! errors.rs                 errors.tolerance, errors.log.*, retries, DLQ with context headers
//! offsets.rs                OffsetStore: offset.storage.file.filename (temp file, fsync, rename)
//!                           or offset.storage.topic
//! status.rs                 StatusBoard: connector and task states with traces (distributed:
//!                           published to and read from the status topic)
//! assignment.rs             distributed: config snapshot and group assignment → local tasks
//! topic_creation.rs         topic.creation.* groups for source connectors
//! ```

mod assignment;
mod convert;
mod errors;
mod offsets;
mod sink;
mod source;
mod status;
mod topic_creation;
mod validate;
mod worker;

pub use offsets::OffsetStore;
pub use status::{ConnectorStatus, State, StatusBoard, TaskStatus};
pub use worker::{ConnectorInfo, TargetState, Worker, WorkerError};
