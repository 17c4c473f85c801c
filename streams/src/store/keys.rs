//! Key layouts of window and session stores, so that byte order is time order.
//!
//! - window: `start (8 bytes) ++ key`: expiry removes a prefix range, an update is a point
//!   lookup, a scan of one window start visits its keys.
//! - session: `key length (4 bytes) ++ key ++ end (8) ++ start (8)`: one key's sessions are
//!   adjacent and ordered by end time.
//!
//! Timestamps are big-endian with the sign bit flipped, so negative times sort first.

/// Time as order-preserving bytes.
pub fn time_bytes(t: i64) -> [u8; 8] {
    ((t as u64) ^ (1 << 63)).to_be_bytes()
}

/// The inverse of [`time_bytes`].
pub fn time_from(bytes: [u8; 8]) -> i64 {
    (u64::from_be_bytes(bytes) ^ (1 << 63)) as i64
}

/// A window-store key into `out` (cleared first).
pub fn window_key(start: i64, key: &[u8], out: &mut Vec<u8>) {
    out.clear();
    out.extend_from_slice(&time_bytes(start));
    out.extend_from_slice(key);
}

/// `(start, key)` of a window-store key.
pub fn split_window_key(stored: &[u8]) -> Option<(i64, &[u8])> {
    let (start, key) = stored.split_first_chunk::<8>()?;
    Some((time_from(*start), key))
}

/// The prefix of a session-store key for one record key.
pub fn session_prefix(key: &[u8], out: &mut Vec<u8>) {
    out.clear();
    out.extend_from_slice(&(key.len() as u32).to_be_bytes());
    out.extend_from_slice(key);
}

/// A session-store key into `out` (cleared first).
pub fn session_key(key: &[u8], start: i64, end: i64, out: &mut Vec<u8>) {
    session_prefix(key, out);
    out.extend_from_slice(&time_bytes(end));
    out.extend_from_slice(&time_bytes(start));
}

/// `(key, start, end)` of a session-store key.
pub fn split_session_key(stored: &[u8]) -> Option<(&[u8], i64, i64)> {
    let (len, rest) = stored.split_first_chunk::<4>()?;
    let len = u32::from_be_bytes(*len) as usize;
    if rest.len() != len + 16 {
        return None;
    }
    let (key, times) = rest.split_at(len);
    let (end, start) = times.split_first_chunk::<8>()?;
    let start: [u8; 8] = start.try_into().ok()?;
    Some((key, time_from(start), time_from(*end)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn time_bytes_keep_order(a: i64, b: i64) {
            prop_assert_eq!(a.cmp(&b), time_bytes(a).cmp(&time_bytes(b)));
            prop_assert_eq!(time_from(time_bytes(a)), a);
        }

        #[test]
        fn window_keys_round_trip(start: i64, key: Vec<u8>) {
            let mut out = Vec::new();
            window_key(start, &key, &mut out);
            prop_assert_eq!(split_window_key(&out), Some((start, &key[..])));
        }

        #[test]
        fn session_keys_round_trip(start: i64, end: i64, key: Vec<u8>) {
            let mut out = Vec::new();
            session_key(&key, start, end, &mut out);
            prop_assert_eq!(split_session_key(&out), Some((&key[..], start, end)));
        }
    }
}
