//! Partition choice: the Java client's murmur2 for keyed records, sticky partitions (KIP-480)
//! for records without a key, and the [`Partitioner`] trait for custom choices.

use std::collections::HashMap;
use std::sync::Mutex;

/// Chooses the partition of a record that names none.
pub trait Partitioner: Send + Sync + 'static {
    /// The partition, in `0..partition_count`, for a record of `topic` with `key`.
    fn partition(&self, topic: &str, key: Option<&[u8]>, partition_count: i32) -> i32;

    /// Called when a record without a key would open a new batch on `previous`: a sticky
    /// partitioner moves to another partition here. The record is then partitioned again.
    fn on_new_batch(&self, _topic: &str, _partition_count: i32, _previous: i32) {}
}

/// Kafka's `Utils.murmur2` (seed `0x9747b28c`), bit for bit.
pub fn murmur2(data: &[u8]) -> i32 {
    const SEED: u32 = 0x9747_b28c;
    const M: u32 = 0x5bd1_e995;
    const R: u32 = 24;
    let length = data.len();
    let mut h: u32 = SEED ^ (length as u32);
    let mut chunks = data.chunks_exact(4);
    for chunk in &mut chunks {
        let mut k = u32::from_le_bytes([chunk[0], chunk[1], chunk[2], chunk[3]]);
        k = k.wrapping_mul(M);
        k ^= k >> R;
        k = k.wrapping_mul(M);
        h = h.wrapping_mul(M);
        h ^= k;
    }
    let tail = chunks.remainder();
    if tail.len() >= 3 {
        h ^= u32::from(tail[2]) << 16;
    }
    if tail.len() >= 2 {
        h ^= u32::from(tail[1]) << 8;
    }
    if !tail.is_empty() {
        h ^= u32::from(tail[0]);
        h = h.wrapping_mul(M);
    }
    h ^= h >> 13;
    h = h.wrapping_mul(M);
    h ^= h >> 15;
    h as i32
}

/// Kafka's `Utils.toPositive`: clears the sign bit (not `abs`).
pub fn to_positive(n: i32) -> i32 {
    n & 0x7fff_ffff
}

/// The partition the Java client's default partitioner gives a key.
pub fn partition_for_key(key: &[u8], partition_count: i32) -> i32 {
    to_positive(murmur2(key)) % partition_count.max(1)
}

/// The Java client's default: `toPositive(murmur2(key)) % partitions` for keyed records; records
/// without a key stick to one partition until a new batch is opened there (KIP-480).
#[derive(Debug)]
pub struct DefaultPartitioner {
    sticky: Mutex<HashMap<String, i32>>,
    rng: Mutex<u64>,
}

impl Default for DefaultPartitioner {
    fn default() -> Self {
        Self::new()
    }
}

impl DefaultPartitioner {
    /// Seeded from the clock.
    pub fn new() -> Self {
        let seed = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0x2545_f491_4f6c_dd1d);
        Self::with_seed(seed)
    }

    /// With a fixed seed, for deterministic tests.
    pub fn with_seed(seed: u64) -> Self {
        DefaultPartitioner {
            sticky: Mutex::new(HashMap::new()),
            rng: Mutex::new(seed.max(1)),
        }
    }

    fn random(&self, below: i32) -> i32 {
        let mut state = self.rng.lock().unwrap_or_else(|e| e.into_inner());
        // xorshift64
        *state ^= *state << 13;
        *state ^= *state >> 7;
        *state ^= *state << 17;
        (*state % below.max(1) as u64) as i32
    }
}

impl Partitioner for DefaultPartitioner {
    fn partition(&self, topic: &str, key: Option<&[u8]>, partition_count: i32) -> i32 {
        if let Some(key) = key {
            return partition_for_key(key, partition_count);
        }
        let mut sticky = self.sticky.lock().unwrap_or_else(|e| e.into_inner());
        match sticky.get(topic) {
            Some(&p) if p < partition_count => p,
            _ => {
                let p = self.random(partition_count);
                sticky.insert(topic.to_string(), p);
                p
            }
        }
    }

    fn on_new_batch(&self, topic: &str, partition_count: i32, previous: i32) {
        let mut sticky = self.sticky.lock().unwrap_or_else(|e| e.into_inner());
        if sticky.get(topic).is_some_and(|&p| p != previous) {
            return; // another record already moved on
        }
        let next = if partition_count <= 1 {
            0
        } else {
            // Any partition but the previous one.
            let r = self.random(partition_count - 1);
            if r >= previous { r + 1 } else { r }
        };
        sticky.insert(topic.to_string(), next);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The vectors of Kafka's `UtilsTest.testMurmur2`.
    const VECTORS: &[(&[u8], i32)] = &[
        (b"21", -973932308),
        (b"foobar", -790332482),
        (b"a-little-bit-long-string", -985981536),
        (b"a-little-bit-longer-string", -1486304829),
        (
            b"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8",
            -58897971,
        ),
        (b"abc", 479470107),
    ];

    /// A second, independent transcription of the Java code (signed ints, `>>>`, fall-through).
    fn murmur2_java_style(data: &[u8]) -> i32 {
        let length = data.len() as i32;
        let seed = 0x9747b28cu32 as i32;
        let m: i32 = 0x5bd1e995;
        let r = 24;
        let mut h = seed ^ length;
        let length4 = length / 4;
        let b = |i: i32| i32::from(data[i as usize]) & 0xff;
        for i in 0..length4 {
            let i4 = i * 4;
            let mut k = b(i4) + (b(i4 + 1) << 8) + (b(i4 + 2) << 16) + (b(i4 + 3) << 24);
            k = k.wrapping_mul(m);
            k ^= ((k as u32) >> r) as i32;
            k = k.wrapping_mul(m);
            h = h.wrapping_mul(m);
            h ^= k;
        }
        let rem = length % 4;
        if rem == 3 {
            h ^= b((length & !3) + 2) << 16;
        }
        if rem >= 2 {
            h ^= b((length & !3) + 1) << 8;
        }
        if rem >= 1 {
            h ^= b(length & !3);
            h = h.wrapping_mul(m);
        }
        h ^= ((h as u32) >> 13) as i32;
        h = h.wrapping_mul(m);
        h ^= ((h as u32) >> 15) as i32;
        h
    }

    #[test]
    fn murmur2_matches_kafka_utils_test_vectors() {
        for (input, expected) in VECTORS {
            assert_eq!(
                murmur2(input),
                *expected,
                "{}",
                String::from_utf8_lossy(input)
            );
        }
    }

    #[test]
    fn murmur2_agrees_with_a_second_transcription() {
        let mut data = Vec::new();
        for len in 0..64u8 {
            data.push(len.wrapping_mul(37).wrapping_add(200));
            assert_eq!(
                murmur2(&data),
                murmur2_java_style(&data),
                "length {}",
                len + 1
            );
        }
        assert_eq!(murmur2(b""), murmur2_java_style(b""));
    }

    #[test]
    fn to_positive_clears_the_sign_bit() {
        assert_eq!(to_positive(-1), i32::MAX);
        assert_eq!(to_positive(i32::MIN), 0);
        assert_eq!(to_positive(5), 5);
        // "21" hashes negative: the partition is not abs() % n.
        assert_eq!(
            partition_for_key(b"21", 7),
            (-973932308i32 & 0x7fffffff) % 7
        );
    }

    #[test]
    fn keyed_records_use_murmur2() {
        let p = DefaultPartitioner::with_seed(1);
        for (key, hash) in VECTORS {
            assert_eq!(p.partition("t", Some(key), 12), to_positive(*hash) % 12);
        }
    }

    #[test]
    fn records_without_key_stick_until_a_new_batch() {
        let p = DefaultPartitioner::with_seed(42);
        let first = p.partition("t", None, 6);
        for _ in 0..100 {
            assert_eq!(p.partition("t", None, 6), first);
        }
        p.on_new_batch("t", 6, first);
        let second = p.partition("t", None, 6);
        assert_ne!(second, first);
        // A stale notification about the old partition changes nothing.
        p.on_new_batch("t", 6, first);
        assert_eq!(p.partition("t", None, 6), second);
        // One partition: always 0.
        p.on_new_batch("single", 1, 0);
        assert_eq!(p.partition("single", None, 1), 0);
    }
}
