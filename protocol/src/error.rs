use crate::ErrorCode;

/// Why a record batch (or a run of batches) was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BatchError {
    /// Fewer bytes than a batch header, or than the header's `batchLength` promises.
    #[error("record batch truncated: need {needed} bytes, have {available}")]
    Truncated { needed: usize, available: usize },
    /// `batchLength` is smaller than the fixed header.
    #[error("record batch length {length} is below the minimum {min}")]
    LengthTooSmall { length: i32, min: usize },
    /// Only magic v2 batches are accepted.
    #[error("unsupported record batch magic {magic} (only v2 is accepted)")]
    UnsupportedMagic { magic: i8 },
    /// The stored CRC32C does not match the bytes.
    #[error("record batch CRC mismatch: stored {stored:#010x}, computed {computed:#010x}")]
    CrcMismatch { stored: u32, computed: u32 },
    /// Record count is negative, zero, or disagrees with `lastOffsetDelta`.
    #[error("record batch has {count} records but lastOffsetDelta {last_offset_delta}")]
    BadRecordCount { count: i32, last_offset_delta: i32 },
    /// The compression codec bits name no known codec.
    #[error("record batch uses unknown compression codec {codec}")]
    UnknownCompression { codec: i16 },
    /// A batch is larger than the topic's `max.message.bytes`.
    #[error("record batch of {size} bytes exceeds max.message.bytes {max}")]
    TooLarge { size: usize, max: usize },
    /// A batch could not be decoded and re-encoded with the topic's codec.
    #[error("record batch could not be recompressed from codec {from} to codec {to}")]
    Recompress { from: i16, to: i16 },
    /// A produce request carried no batch at all.
    #[error("empty record set")]
    Empty,
}

impl BatchError {
    /// The error code a Kafka broker answers a produce request with for this fault.
    pub fn error_code(&self) -> ErrorCode {
        match self {
            BatchError::TooLarge { .. } => ErrorCode::MessageTooLarge,
            BatchError::UnsupportedMagic { .. } => ErrorCode::UnsupportedForMessageFormat,
            BatchError::UnknownCompression { .. } => ErrorCode::UnsupportedCompressionType,
            BatchError::Empty => ErrorCode::InvalidRecord,
            _ => ErrorCode::CorruptMessage,
        }
    }
}

/// Why a request frame cannot be read. Every variant closes the connection, as Kafka does.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    /// The length prefix is negative.
    #[error("negative frame size {size}")]
    Negative { size: i32 },
    /// The frame is larger than `socket.request.max.bytes`.
    #[error("frame of {size} bytes exceeds socket.request.max.bytes {max}")]
    TooLarge { size: usize, max: usize },
}
