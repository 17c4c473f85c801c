//! Sans-I/O Kafka wire support shared by the Fjord broker and client.
//!
//! - [`batch`]: a zero-copy view of record-batch headers (magic v2): validation
//!   (lengths, CRC32C, counts) and the in-place edits a broker makes on append
//!   (base offset, partition leader epoch, LogAppendTime).
//! - [`frame`]: the 4-byte length prefix of every request and response.
//! - [`request`]: decoding request frames and encoding response frames.
//! - [`ErrorCode`]: Kafka's stable wire error codes.
//!
//! Message bodies are encoded and decoded with the `kafka-protocol` crate, re-exported as [`messages`].
//!
//! ```
//! use fjord_protocol::batch::{BatchHeader, HEADER_LEN};
//! let bytes = fjord_protocol::batch::testing::batch(0, 3, 1_000, b"hello");
//! let header = BatchHeader::parse(&bytes).unwrap();
//! assert_eq!(header.record_count(), 3);
//! assert!(bytes.len() > HEADER_LEN);
//! ```

pub mod batch;
mod error;
pub mod frame;
pub mod request;

pub use error::{BatchError, FrameError};
pub use kafka_protocol::error::ResponseError as ErrorCode;
pub use kafka_protocol::messages;
pub use kafka_protocol::protocol as codec;
pub use kafka_protocol::records;
