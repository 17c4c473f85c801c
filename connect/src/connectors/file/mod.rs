//! `FileStreamSource` and `FileStreamSink`: lines of a file to records and back, with Kafka's
//! keys (`file`, `topic`, `batch.size` for the source; `file`, `topics` for the sink). The
//! source's offset is `{"position": <byte offset>}` under the partition `{"filename": <file>}`,
//! as in Kafka, so a restarted source resumes after the last line it produced.

mod sink;
mod source;

pub use sink::{FileStreamSinkConnector, FileStreamSinkTask};
pub use source::{FileStreamSourceConnector, FileStreamSourceTask};
