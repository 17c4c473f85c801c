//! Topics as tables: schema discovery, predicate pushdown, the parallel partition scan and the
//! decoding of records into Arrow.

pub mod bounds;
mod decode;
mod scan;
pub mod schema;
mod table;

pub use bounds::ScanBounds;
pub use decode::{Decoded, RecordDecoder};
pub use scan::{PartitionRange, TopicScanExec};
pub use schema::ValueFormat;
pub use table::{TopicSource, TopicTable};
