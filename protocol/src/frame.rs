//! The size prefix of Kafka request and response frames: a big-endian `int32` byte count.

use crate::FrameError;

/// Bytes in the length prefix.
pub const PREFIX_LEN: usize = 4;

/// Kafka's default `socket.request.max.bytes` (100 MiB).
pub const DEFAULT_MAX_REQUEST_BYTES: usize = 104_857_600;

/// Reads a frame's length prefix and checks it against the largest frame accepted.
pub fn frame_len(prefix: [u8; PREFIX_LEN], max: usize) -> Result<usize, FrameError> {
    let size = i32::from_be_bytes(prefix);
    let len = usize::try_from(size).map_err(|_| FrameError::Negative { size })?;
    if len > max {
        return Err(FrameError::TooLarge { size: len, max });
    }
    Ok(len)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_sizes_up_to_the_limit() {
        assert_eq!(frame_len(10i32.to_be_bytes(), 10), Ok(10));
        assert_eq!(frame_len(0i32.to_be_bytes(), 10), Ok(0));
    }

    #[test]
    fn rejects_negative_and_oversized_frames() {
        assert_eq!(
            frame_len((-1i32).to_be_bytes(), 10),
            Err(FrameError::Negative { size: -1 })
        );
        assert_eq!(
            frame_len(11i32.to_be_bytes(), 10),
            Err(FrameError::TooLarge { size: 11, max: 10 })
        );
    }
}
