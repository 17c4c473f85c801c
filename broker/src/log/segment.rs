//! One log segment: `<20-digit base offset>.log` holding batches exactly as appended, with its
//! sparse `.index` and `.timeindex` caches (see `offset_index` and `time_index`).

use std::fs::{File, OpenOptions};
use std::io::{BufReader, Read, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;
use fjord_protocol::batch::{self, BatchHeader, Batches, HEADER_LEN};

use super::offset_index::{OffsetEntry, OffsetIndex};
use super::sealing::Sealer;
use super::time_index::{TimeEntry, TimeIndex};
use crate::error::{Error, Result};

/// File extension of the log itself.
pub(crate) const LOG_SUFFIX: &str = "log";
/// File extension of the offset index.
pub(crate) const INDEX_SUFFIX: &str = "index";
/// File extension of the time index.
pub(crate) const TIME_INDEX_SUFFIX: &str = "timeindex";

/// Path of a segment file: `dir/<base offset, 20 digits>.<suffix>`.
pub(crate) fn segment_path(dir: &Path, base_offset: i64, suffix: &str) -> PathBuf {
    dir.join(format!("{base_offset:020}.{suffix}"))
}

/// Writes `bytes` to `path` crash-safely: temporary file, fsync, rename, fsync of the directory.
///
/// The temporary name is unique per write, so two writers of one file (a seal thread of a
/// broker that was torn down in-process and the recovery of its successor) never rename each
/// other's half-written file; recovery deletes leftover `*.tmp` files.
pub(crate) fn write_atomically(path: &Path, bytes: &[u8]) -> Result<()> {
    static WRITES: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let unique = WRITES.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let tmp = path.with_extension(format!(
        "{}.{}-{unique}.tmp",
        path.extension()
            .and_then(|e| e.to_str())
            .unwrap_or_default(),
        std::process::id()
    ));
    let mut file = File::create(&tmp).map_err(|e| Error::io("create", &tmp, e))?;
    file.write_all(bytes)
        .map_err(|e| Error::io("write", &tmp, e))?;
    file.sync_all().map_err(|e| Error::io("fsync", &tmp, e))?;
    std::fs::rename(&tmp, path).map_err(|e| Error::io("rename to", path, e))?;
    if let Some(dir) = path.parent() {
        sync_dir(dir)?;
    }
    Ok(())
}

/// Fsyncs a directory so that renames and creations in it are durable.
pub(crate) fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| Error::io("fsync directory", dir, e))
}

/// The bytes of a segment a read may touch, captured under the partition lock and read after
/// it is released. The file handle stays valid even if retention unlinks the segment meanwhile.
#[derive(Debug, Clone)]
pub(crate) struct ReadPlan {
    pub(crate) file: Arc<File>,
    pub(crate) path: PathBuf,
    /// Base offset of the segment.
    pub(crate) segment_base: i64,
    /// First byte to scan from (an index hint at or before the wanted batch).
    pub(crate) start: u64,
    /// End of readable bytes (the segment size when planned).
    pub(crate) end: u64,
}

/// What a scan of a segment's batches found.
#[derive(Debug, Default)]
struct ScanResult {
    valid_len: u64,
    next_offset: Option<i64>,
    max_timestamp: i64,
    index: OffsetIndex,
    time_index: TimeIndex,
    bytes_since_index: u64,
    running_max: i64,
}

/// One segment of a partition log.
#[derive(Debug)]
pub(crate) struct Segment {
    dir: PathBuf,
    base_offset: i64,
    file: Arc<File>,
    size: u64,
    next_offset: i64,
    max_timestamp: i64,
    created_ms: i64,
    /// Max timestamp of the first batch: `segment.ms` counts from it (Kafka's rule).
    first_batch_timestamp: Option<i64>,
    index: OffsetIndex,
    time_index: TimeIndex,
    bytes_since_index: u64,
    running_max: i64,
}

impl Segment {
    /// Creates an empty segment starting at `base_offset`.
    pub(crate) fn create(dir: &Path, base_offset: i64, now_ms: i64) -> Result<Self> {
        let path = segment_path(dir, base_offset, LOG_SUFFIX);
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(&path)
            .map_err(|e| Error::io("create segment", &path, e))?;
        Ok(Segment {
            dir: dir.to_path_buf(),
            base_offset,
            file: Arc::new(file),
            size: 0,
            next_offset: base_offset,
            max_timestamp: -1,
            created_ms: now_ms,
            first_batch_timestamp: None,
            index: OffsetIndex::default(),
            time_index: TimeIndex::default(),
            bytes_since_index: 0,
            running_max: -1,
        })
    }

    /// Opens an existing segment. With `recover`, every batch is CRC-checked and the file is
    /// truncated after the last valid one; otherwise the index files are trusted when they
    /// validate against the log, and rebuilt from it when they do not.
    pub(crate) fn open(
        dir: &Path,
        base_offset: i64,
        recover: bool,
        index_interval: u64,
        now_ms: i64,
    ) -> Result<Self> {
        let path = segment_path(dir, base_offset, LOG_SUFFIX);
        let mut segment = Self::from_file(dir, base_offset, &path, now_ms)?;
        let size = segment.size;
        if recover || !segment.load_indexes(index_interval)? {
            let scan = segment.scan(0, recover, index_interval, ScanResult::default())?;
            if scan.valid_len < size {
                tracing::warn!(
                    segment = %path.display(),
                    valid_bytes = scan.valid_len,
                    file_bytes = size,
                    "truncating torn or corrupt tail of segment"
                );
                segment
                    .file
                    .set_len(scan.valid_len)
                    .map_err(|e| Error::io("truncate", &path, e))?;
                segment
                    .file
                    .sync_all()
                    .map_err(|e| Error::io("fsync", &path, e))?;
                segment.size = scan.valid_len;
            }
            segment.apply_scan(scan);
            if !recover {
                segment.write_indexes()?;
            }
        }
        Ok(segment)
    }

    /// Opens a segment the log cleaner wrote to `path` (`<base>.log.cleaned`), to be renamed
    /// over `<base>.log`: every batch is checked and the indexes are built in memory (they are
    /// written by [`Segment::write_indexes`] once the rename is done). The file handle follows
    /// the rename, so the segment stays valid after it.
    pub(crate) fn open_cleaned(
        dir: &Path,
        base_offset: i64,
        path: &Path,
        index_interval: u64,
        now_ms: i64,
    ) -> Result<Self> {
        let mut segment = Self::from_file(dir, base_offset, path, now_ms)?;
        let scan = segment.scan(0, true, index_interval, ScanResult::default())?;
        if scan.valid_len != segment.size {
            return Err(Error::io(
                "validate cleaned segment",
                path,
                std::io::Error::new(
                    std::io::ErrorKind::InvalidData,
                    "a rewritten batch does not validate",
                ),
            ));
        }
        segment.apply_scan(scan);
        Ok(segment)
    }

    /// The segment over the file at `path`, before its batches are scanned.
    fn from_file(dir: &Path, base_offset: i64, path: &Path, now_ms: i64) -> Result<Self> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .open(path)
            .map_err(|e| Error::io("open segment", path, e))?;
        let size = file
            .metadata()
            .map_err(|e| Error::io("stat", path, e))?
            .len();
        let created_ms = file
            .metadata()
            .ok()
            .and_then(|m| m.modified().ok())
            .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
            .map(|d| d.as_millis() as i64)
            .unwrap_or(now_ms);
        let mut segment = Segment {
            dir: dir.to_path_buf(),
            base_offset,
            file: Arc::new(file),
            size,
            next_offset: base_offset,
            max_timestamp: -1,
            created_ms,
            first_batch_timestamp: None,
            index: OffsetIndex::default(),
            time_index: TimeIndex::default(),
            bytes_since_index: 0,
            running_max: -1,
        };
        if size >= HEADER_LEN as u64 {
            let mut header = [0u8; HEADER_LEN];
            if segment.file.read_exact_at(&mut header, 0).is_ok() {
                segment.first_batch_timestamp =
                    BatchHeader::parse(&header).ok().map(|h| h.max_timestamp());
            }
        }
        Ok(segment)
    }

    /// Loads and validates the index files, then walks the tail after the last index entry to
    /// learn the next offset. `false` when the indexes must be rebuilt.
    fn load_indexes(&mut self, index_interval: u64) -> Result<bool> {
        let index_path = segment_path(&self.dir, self.base_offset, INDEX_SUFFIX);
        let time_path = segment_path(&self.dir, self.base_offset, TIME_INDEX_SUFFIX);
        let (Ok(index_bytes), Ok(time_bytes)) =
            (std::fs::read(&index_path), std::fs::read(&time_path))
        else {
            return Ok(false);
        };
        let (Some(index), Some(time_index)) = (
            OffsetIndex::decode(&index_bytes, self.size),
            TimeIndex::decode(&time_bytes, u64::from(u32::MAX)),
        ) else {
            tracing::warn!(segment = %index_path.display(), "index files invalid; rebuilding from the log");
            return Ok(false);
        };
        if !self.entries_land_on_batches(&index)? {
            tracing::warn!(segment = %index_path.display(), "offset index points between batches; rebuilding from the log");
            return Ok(false);
        }
        let start = u64::from(index.lookup(u32::MAX));
        let running_max = time_index.last_timestamp().unwrap_or(-1);
        let resume = ScanResult {
            index,
            time_index,
            running_max,
            max_timestamp: running_max,
            ..ScanResult::default()
        };
        let scan = self.scan(start, false, index_interval, resume)?;
        let next_relative = scan.next_offset.map_or(0, |n| n - self.base_offset);
        let time_in_range = scan
            .time_index
            .last_offset()
            .is_none_or(|o| i64::from(o) < next_relative);
        if scan.valid_len != self.size || !time_in_range {
            tracing::warn!(segment = %index_path.display(), "segment tail disagrees with its indexes; rebuilding them");
            return Ok(false);
        }
        self.apply_scan(scan);
        Ok(true)
    }

    /// Checks that a sample of index entries (up to 64, evenly spaced, and the last) point at a
    /// batch header with the base offset the entry names.
    fn entries_land_on_batches(&self, index: &OffsetIndex) -> Result<bool> {
        let entries = index.entries();
        let step = entries.len().div_ceil(64).max(1);
        let sample = entries.iter().step_by(step).chain(entries.last());
        let mut header = [0u8; HEADER_LEN];
        for entry in sample {
            let position = u64::from(entry.position);
            if position + HEADER_LEN as u64 > self.size {
                return Ok(false);
            }
            self.read_header_at(&mut header, position)?;
            let expected = self.base_offset + i64::from(entry.relative_offset);
            if BatchHeader::parse(&header).map(|h| h.base_offset()).ok() != Some(expected) {
                return Ok(false);
            }
        }
        Ok(true)
    }

    fn apply_scan(&mut self, scan: ScanResult) {
        self.next_offset = scan.next_offset.unwrap_or(self.base_offset);
        self.max_timestamp = self.max_timestamp.max(scan.max_timestamp);
        self.index = scan.index;
        self.time_index = scan.time_index;
        self.bytes_since_index = scan.bytes_since_index;
        self.running_max = scan.running_max;
    }

    /// Reads batches sequentially from byte `start`, stopping at the first that is cut short
    /// (or, with `check_crc`, invalid). Index entries are added to `acc` as an append would.
    fn scan(
        &self,
        start: u64,
        check_crc: bool,
        index_interval: u64,
        mut acc: ScanResult,
    ) -> Result<ScanResult> {
        let path = segment_path(&self.dir, self.base_offset, LOG_SUFFIX);
        let mut reader = BufReader::with_capacity(
            1 << 20,
            ReadAt {
                file: &self.file,
                position: start,
            },
        );
        let mut position = start;
        let mut buf = Vec::new();
        acc.valid_len = start;
        loop {
            let mut header = [0u8; HEADER_LEN];
            match read_full(&mut reader, &mut header) {
                Ok(true) => {}
                Ok(false) => break,
                Err(e) => return Err(Error::io("read segment", &path, e)),
            }
            let Ok(parsed) = BatchHeader::parse(&header) else {
                break;
            };
            let len = parsed.total_len();
            if position + len as u64 > self.size {
                break;
            }
            let (base, last, max_ts) = (
                parsed.base_offset(),
                parsed.last_offset(),
                parsed.max_timestamp(),
            );
            if base < self.base_offset || acc.next_offset.is_some_and(|next| base < next) {
                break;
            }
            buf.clear();
            buf.extend_from_slice(&header);
            buf.resize(len, 0);
            match read_full(&mut reader, &mut buf[HEADER_LEN..]) {
                Ok(true) => {}
                Ok(false) => break,
                Err(e) => return Err(Error::io("read segment", &path, e)),
            }
            if check_crc && batch::validate(&buf).is_err() && !valid_compacted(&buf) {
                break;
            }
            let relative = (base - self.base_offset) as u32;
            if acc.bytes_since_index >= index_interval && position > 0 {
                acc.index.push(OffsetEntry {
                    relative_offset: relative,
                    position: position as u32,
                });
                acc.time_index.maybe_push(TimeEntry {
                    timestamp: acc.running_max,
                    relative_offset: relative,
                });
                acc.bytes_since_index = 0;
            }
            acc.bytes_since_index += len as u64;
            acc.running_max = acc.running_max.max(max_ts);
            acc.max_timestamp = acc.max_timestamp.max(max_ts);
            acc.next_offset = Some(last + 1);
            position += len as u64;
            acc.valid_len = position;
        }
        Ok(acc)
    }

    /// Reads the batch header at byte `position` of the log.
    fn read_header_at(&self, header: &mut [u8; HEADER_LEN], position: u64) -> Result<()> {
        self.file.read_exact_at(header, position).map_err(|e| {
            Error::io(
                "read segment",
                segment_path(&self.dir, self.base_offset, LOG_SUFFIX),
                e,
            )
        })
    }

    /// Calls `f` with every batch header, in order (header reads only).
    pub(crate) fn for_each_header(&self, mut f: impl FnMut(BatchHeader<'_>)) -> Result<()> {
        let mut position = 0u64;
        let mut header = [0u8; HEADER_LEN];
        while position + HEADER_LEN as u64 <= self.size {
            self.read_header_at(&mut header, position)?;
            let Ok(parsed) = BatchHeader::parse(&header) else {
                break;
            };
            f(parsed);
            position += parsed.total_len() as u64;
        }
        Ok(())
    }

    /// Cuts the segment before the first batch at or past `offset` (a follower dropping a
    /// divergent tail) and rebuilds its indexes from the batches that remain.
    pub(crate) fn truncate_to(&mut self, offset: i64, index_interval: u64) -> Result<()> {
        let path = segment_path(&self.dir, self.base_offset, LOG_SUFFIX);
        let mut position = 0u64;
        let mut header = [0u8; HEADER_LEN];
        while position + HEADER_LEN as u64 <= self.size {
            self.read_header_at(&mut header, position)?;
            let Ok(parsed) = BatchHeader::parse(&header) else {
                break;
            };
            if parsed.base_offset() >= offset {
                break;
            }
            position += parsed.total_len() as u64;
        }
        let position = position.min(self.size);
        self.file
            .set_len(position)
            .map_err(|e| Error::io("truncate", &path, e))?;
        self.file
            .sync_all()
            .map_err(|e| Error::io("fsync", &path, e))?;
        self.size = position;
        self.max_timestamp = -1;
        self.running_max = -1;
        self.first_batch_timestamp = None;
        let scan = self.scan(0, false, index_interval, ScanResult::default())?;
        self.apply_scan(scan);
        self.write_indexes()
    }

    /// Appends already-validated batches (with offsets assigned) at the end of the file.
    pub(crate) fn append(&mut self, batches: &[u8], index_interval: u64) -> Result<()> {
        self.file.write_all_at(batches, self.size).map_err(|e| {
            Error::io(
                "append to",
                segment_path(&self.dir, self.base_offset, LOG_SUFFIX),
                e,
            )
        })?;
        let mut position = self.size;
        for item in Batches::new(batches) {
            let Ok((header, range)) = item else { break };
            let relative = (header.base_offset() - self.base_offset) as u32;
            if self.bytes_since_index >= index_interval && position > 0 {
                self.index.push(OffsetEntry {
                    relative_offset: relative,
                    position: position as u32,
                });
                self.time_index.maybe_push(TimeEntry {
                    timestamp: self.running_max,
                    relative_offset: relative,
                });
                self.bytes_since_index = 0;
            }
            let len = range.len() as u64;
            self.bytes_since_index += len;
            self.first_batch_timestamp
                .get_or_insert(header.max_timestamp());
            self.running_max = self.running_max.max(header.max_timestamp());
            self.max_timestamp = self.max_timestamp.max(header.max_timestamp());
            self.next_offset = header.last_offset() + 1;
            position += len;
        }
        self.size = position;
        Ok(())
    }

    /// Writes both index files (temporary file, fsync, rename).
    pub(crate) fn write_indexes(&self) -> Result<()> {
        write_atomically(
            &segment_path(&self.dir, self.base_offset, INDEX_SUFFIX),
            &self.index.encode(),
        )?;
        write_atomically(
            &segment_path(&self.dir, self.base_offset, TIME_INDEX_SUFFIX),
            &self.time_index.encode(),
        )
    }

    /// Fsyncs the log file.
    pub(crate) fn flush(&self) -> Result<()> {
        self.file.sync_data().map_err(|e| {
            Error::io(
                "fsync",
                segment_path(&self.dir, self.base_offset, LOG_SUFFIX),
                e,
            )
        })
    }

    /// Seals the segment: log fsynced, indexes written. Called on clean shutdown and after
    /// recovering a sealed segment; a roll seals in the background with [`Segment::sealer`].
    pub(crate) fn seal(&self) -> Result<()> {
        self.sealer().run()
    }

    /// What sealing this segment takes, detached from it: the file handle and the encoded
    /// indexes as they are now (the segment takes no more appends once rolled).
    pub(crate) fn sealer(&self) -> Sealer {
        Sealer::new(
            Arc::clone(&self.file),
            segment_path(&self.dir, self.base_offset, LOG_SUFFIX),
            [
                (
                    segment_path(&self.dir, self.base_offset, INDEX_SUFFIX),
                    self.index.encode(),
                ),
                (
                    segment_path(&self.dir, self.base_offset, TIME_INDEX_SUFFIX),
                    self.time_index.encode(),
                ),
            ],
        )
    }

    /// Whether both index files exist: a sealed segment gets them only after its log was
    /// fsynced, so one without them may have lost unsynced writes in a machine crash.
    pub(crate) fn has_index_files(dir: &Path, base_offset: i64) -> bool {
        segment_path(dir, base_offset, INDEX_SUFFIX).exists()
            && segment_path(dir, base_offset, TIME_INDEX_SUFFIX).exists()
    }

    /// Removes the segment's files.
    pub(crate) fn delete(&self) -> Result<()> {
        remove_files(
            &self.dir,
            self.base_offset,
            &[LOG_SUFFIX, INDEX_SUFFIX, TIME_INDEX_SUFFIX],
        )
    }

    /// Plans a read of the batches holding `offset` onwards.
    pub(crate) fn plan_read(&self, offset: i64) -> ReadPlan {
        let relative = (offset - self.base_offset).clamp(0, i64::from(u32::MAX)) as u32;
        self.plan_from(u64::from(self.index.lookup(relative)))
    }

    /// Plans a search for the first batch with a timestamp `>= target`.
    pub(crate) fn plan_time_search(&self, target: i64) -> ReadPlan {
        let relative = self.time_index.lookup(target);
        self.plan_from(u64::from(self.index.lookup(relative)))
    }

    fn plan_from(&self, start: u64) -> ReadPlan {
        ReadPlan {
            file: Arc::clone(&self.file),
            path: segment_path(&self.dir, self.base_offset, LOG_SUFFIX),
            segment_base: self.base_offset,
            start,
            end: self.size,
        }
    }

    pub(crate) fn base_offset(&self) -> i64 {
        self.base_offset
    }
    pub(crate) fn next_offset(&self) -> i64 {
        self.next_offset
    }
    pub(crate) fn size(&self) -> u64 {
        self.size
    }
    pub(crate) fn max_timestamp(&self) -> i64 {
        self.max_timestamp
    }
    /// How long the segment has been open for `segment.ms`: from its first batch's timestamp to
    /// the incoming batch's, or by the wall clock when it has no timestamps (Kafka's rule).
    pub(crate) fn time_waited_for_roll(&self, now_ms: i64, incoming_max_timestamp: i64) -> i64 {
        match self.first_batch_timestamp {
            Some(first) if first >= 0 && incoming_max_timestamp >= 0 => {
                incoming_max_timestamp.saturating_sub(first)
            }
            _ => now_ms.saturating_sub(self.created_ms),
        }
    }
    /// The time retention measures from: the largest record timestamp, or the creation time of
    /// a segment without timestamps.
    pub(crate) fn largest_time_ms(&self) -> i64 {
        if self.max_timestamp >= 0 {
            self.max_timestamp
        } else {
            self.created_ms
        }
    }

    /// A plan covering the whole segment (for the log cleaner; sealed segments do not change).
    pub(crate) fn plan_all(&self) -> ReadPlan {
        self.plan_from(0)
    }

    /// Whether this segment reads the file `file` (i.e. it was not replaced meanwhile).
    pub(crate) fn reads_file(&self, file: &Arc<File>) -> bool {
        Arc::ptr_eq(&self.file, file)
    }

    /// Takes over the creation time of the segment this one replaces (retention of segments
    /// without timestamps counts from it).
    pub(crate) fn inherit_created(&mut self, old: &Segment) {
        self.created_ms = old.created_ms;
    }

    /// The earliest time of the segment's records for `max.compaction.lag.ms`: its first batch's
    /// timestamp, or its creation time when it has none.
    pub(crate) fn earliest_time_ms(&self) -> i64 {
        match self.first_batch_timestamp {
            Some(ts) if ts >= 0 => ts,
            _ => self.created_ms,
        }
    }
}

/// Removes `dir/<base>.<suffix>` for each suffix; missing files are fine.
pub(crate) fn remove_files(dir: &Path, base_offset: i64, suffixes: &[&str]) -> Result<()> {
    for suffix in suffixes {
        let path = segment_path(dir, base_offset, suffix);
        match std::fs::remove_file(&path) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(Error::io("delete", &path, e)),
        }
    }
    Ok(())
}

/// Batches the log cleaner rewrote may hold fewer records than `lastOffsetDelta + 1`; their
/// CRC must still hold.
fn valid_compacted(bytes: &[u8]) -> bool {
    BatchHeader::parse(bytes).is_ok_and(|h| {
        h.magic() == batch::MAGIC_V2
            && h.total_len() == bytes.len()
            && batch::compute_crc(bytes) == h.crc()
    })
}

/// Fills `buf` completely; `Ok(false)` on a clean or partial end of file.
fn read_full(reader: &mut impl Read, buf: &mut [u8]) -> std::io::Result<bool> {
    let mut filled = 0;
    while filled < buf.len() {
        match reader.read(&mut buf[filled..]) {
            Ok(0) => return Ok(false),
            Ok(n) => filled += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(true)
}

/// Sequential reads over a shared file handle with positional I/O.
struct ReadAt<'a> {
    file: &'a File,
    position: u64,
}

impl Read for ReadAt<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.file.read_at(buf, self.position)?;
        self.position += n as u64;
        Ok(n)
    }
}

/// Reads whole batches for a fetch from `offset` on: skips batches ending before it, then takes
/// batches while they fit in `max_bytes`. With `at_least_one`, the first batch is returned whole
/// even when larger (Kafka's KIP-74 rule, so a consumer always makes progress); without it, a
/// first batch over the limit means nothing is returned.
pub(crate) fn read_batches(
    plan: &ReadPlan,
    offset: i64,
    max_bytes: usize,
    at_least_one: bool,
) -> Result<Bytes> {
    let io = |e| Error::io("read segment", &plan.path, e);
    let mut start = plan.start;
    let mut hint_checked = false;
    loop {
        let available = plan.end.saturating_sub(start);
        // Enough to skip the batches between the index hint and the target, plus the fetch.
        let window = available.min((max_bytes as u64).saturating_add(64 * 1024)) as usize;
        let mut buf = vec![0u8; window];
        plan.file.read_exact_at(&mut buf, start).map_err(io)?;
        if !hint_checked {
            hint_checked = true;
            // A damaged index that passed validation: scan the segment from its start instead.
            if start > 0 && !lands_on_batch(&buf, plan.segment_base, offset) {
                tracing::warn!(segment = %plan.path.display(), "index hint does not land on a batch; scanning from the segment start");
                start = 0;
                continue;
            }
        }
        let mut first: Option<usize> = None;
        let mut end = 0usize;
        let mut walked = 0usize;
        for item in Batches::new(&buf) {
            let Ok((header, range)) = item else { break };
            walked = range.end;
            if first.is_none() {
                if header.last_offset() < offset {
                    continue;
                }
                first = Some(range.start);
            }
            let first_start = first.unwrap_or(range.start);
            if range.end - first_start > max_bytes && (end > first_start || !at_least_one) {
                break;
            }
            end = range.end;
        }
        return match first {
            Some(first) if end > first => Ok(Bytes::from(buf).slice(first..end)),
            Some(first) => {
                // The first wanted batch does not fit in the window: read it whole.
                let mut header = [0u8; HEADER_LEN];
                let at = start + first as u64;
                plan.file.read_exact_at(&mut header, at).map_err(io)?;
                let len = BatchHeader::parse(&header)
                    .map(|h| h.total_len())
                    .unwrap_or(0);
                if len == 0 || at + len as u64 > plan.end || (len > max_bytes && !at_least_one) {
                    return Ok(Bytes::new());
                }
                let mut whole = vec![0u8; len];
                plan.file.read_exact_at(&mut whole, at).map_err(io)?;
                Ok(Bytes::from(whole))
            }
            None if window as u64 == available || walked == 0 => Ok(Bytes::new()),
            None => {
                // The target lies beyond the window: continue after the last whole batch.
                start += walked as u64;
                continue;
            }
        };
    }
}

/// Whether `buf` starts with a plausible batch of the segment at or before `offset`: magic 2,
/// a base offset inside the segment, and (when the batch is within `buf`) a matching CRC.
fn lands_on_batch(buf: &[u8], segment_base: i64, offset: i64) -> bool {
    let Ok(header) = BatchHeader::parse(buf) else {
        return buf.is_empty();
    };
    let plausible = header.magic() == batch::MAGIC_V2
        && (segment_base..=offset).contains(&header.base_offset());
    plausible
        && (header.total_len() > buf.len()
            || batch::compute_crc(&buf[..header.total_len()]) == header.crc())
}

/// Finds the first batch whose max timestamp is `>= target` and returns its bytes.
pub(crate) fn find_batch_by_time(plan: &ReadPlan, target: i64) -> Result<Option<Bytes>> {
    let mut position = plan.start;
    let mut header = [0u8; HEADER_LEN];
    while position + HEADER_LEN as u64 <= plan.end {
        plan.file
            .read_exact_at(&mut header, position)
            .map_err(|e| Error::io("read segment", &plan.path, e))?;
        let parsed = BatchHeader::parse(&header)
            .ok()
            .filter(|h| h.magic() == batch::MAGIC_V2 && h.base_offset() >= plan.segment_base);
        let Some(parsed) = parsed else {
            if position == plan.start && plan.start > 0 {
                // A damaged index hint: search the segment from its start.
                return find_batch_by_time(
                    &ReadPlan {
                        start: 0,
                        ..plan.clone()
                    },
                    target,
                );
            }
            return Ok(None);
        };
        let len = parsed.total_len();
        if position + len as u64 > plan.end {
            return Ok(None);
        }
        if parsed.max_timestamp() >= target {
            let mut whole = vec![0u8; len];
            plan.file
                .read_exact_at(&mut whole, position)
                .map_err(|e| Error::io("read segment", &plan.path, e))?;
            return Ok(Some(Bytes::from(whole)));
        }
        position += len as u64;
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;
    use fjord_protocol::batch::testing;

    fn batch_at(offset: i64, count: i32, ts: i64) -> Vec<u8> {
        let mut bytes = testing::batch(0, count, ts, &[7u8; 100]);
        batch::set_base_offset(&mut bytes, offset);
        bytes
    }

    fn filled_segment(dir: &Path, batches: i64) -> Segment {
        let mut segment = Segment::create(dir, 0, 0).expect("create");
        for i in 0..batches {
            segment
                .append(&batch_at(i * 10, 10, 1_000 + i * 10), 4096)
                .expect("append");
        }
        segment
    }

    #[test]
    fn fetch_from_mid_batch_returns_whole_batch() {
        let dir = tempfile::tempdir().expect("tempdir");
        let segment = filled_segment(dir.path(), 50);
        let bytes = read_batches(&segment.plan_read(237), 237, 1, true).expect("read");
        let header = BatchHeader::parse(&bytes).expect("header");
        assert_eq!(header.base_offset(), 230);
        assert_eq!(bytes.len(), header.total_len(), "exactly one whole batch");
    }

    #[test]
    fn reads_honour_max_bytes_in_whole_batches() {
        let dir = tempfile::tempdir().expect("tempdir");
        let segment = filled_segment(dir.path(), 50);
        let one = batch_at(0, 10, 0).len();
        let bytes = read_batches(&segment.plan_read(0), 0, one * 3 + one / 2, true).expect("read");
        assert_eq!(bytes.len(), one * 3);
        let offsets: Vec<i64> = Batches::new(&bytes)
            .map(|b| b.expect("whole").0.base_offset())
            .collect();
        assert_eq!(offsets, vec![0, 10, 20]);
    }

    #[test]
    fn reopen_uses_written_indexes_and_recovers_the_same_state() {
        let dir = tempfile::tempdir().expect("tempdir");
        let segment = filled_segment(dir.path(), 200);
        segment.seal().expect("seal");
        let reopened = Segment::open(dir.path(), 0, false, 4096, 0).expect("open");
        assert_eq!(reopened.next_offset(), 2_000);
        assert_eq!(reopened.index, segment.index);
        assert_eq!(reopened.max_timestamp(), segment.max_timestamp());
        let recovered = Segment::open(dir.path(), 0, true, 4096, 0).expect("recover");
        assert_eq!(recovered.index, segment.index);
        assert_eq!(recovered.time_index, segment.time_index);
        assert_eq!(recovered.next_offset(), 2_000);
    }

    #[test]
    fn recovery_truncates_a_torn_tail_at_the_last_valid_batch() {
        let dir = tempfile::tempdir().expect("tempdir");
        let segment = filled_segment(dir.path(), 10);
        let good_size = segment.size();
        drop(segment);
        let path = segment_path(dir.path(), 0, LOG_SUFFIX);
        let mut file = OpenOptions::new().append(true).open(&path).expect("open");
        let next = batch_at(100, 10, 5_000);
        file.write_all(&next[..next.len() / 2]).expect("torn write");
        drop(file);
        let recovered = Segment::open(dir.path(), 0, true, 4096, 0).expect("recover");
        assert_eq!(recovered.size(), good_size);
        assert_eq!(recovered.next_offset(), 100);
        assert_eq!(std::fs::metadata(&path).expect("stat").len(), good_size);
    }

    #[test]
    fn recovery_truncates_at_a_corrupt_batch() {
        let dir = tempfile::tempdir().expect("tempdir");
        let segment = filled_segment(dir.path(), 10);
        let one = batch_at(0, 10, 0).len() as u64;
        drop(segment);
        let path = segment_path(dir.path(), 0, LOG_SUFFIX);
        let file = OpenOptions::new().write(true).open(&path).expect("open");
        // Flip a payload byte of the fourth batch.
        file.write_all_at(&[0xFF], one * 3 + 70).expect("corrupt");
        let recovered = Segment::open(dir.path(), 0, true, 4096, 0).expect("recover");
        assert_eq!(recovered.next_offset(), 30);
        assert_eq!(recovered.size(), one * 3);
    }

    #[test]
    fn garbage_index_files_are_rebuilt() {
        let dir = tempfile::tempdir().expect("tempdir");
        let segment = filled_segment(dir.path(), 200);
        segment.seal().expect("seal");
        let expected = segment.index.clone();
        std::fs::write(segment_path(dir.path(), 0, INDEX_SUFFIX), b"not an index!").expect("write");
        let reopened = Segment::open(dir.path(), 0, false, 4096, 0).expect("open");
        assert_eq!(reopened.index, expected);
        let rewritten = std::fs::read(segment_path(dir.path(), 0, INDEX_SUFFIX)).expect("read");
        assert_eq!(rewritten, expected.encode());
    }

    #[test]
    fn time_search_finds_the_first_batch_reaching_the_target() {
        let dir = tempfile::tempdir().expect("tempdir");
        let segment = filled_segment(dir.path(), 100);
        // Batch i holds timestamps 1000 + 10 i .. 1000 + 10 i + 9.
        let bytes = find_batch_by_time(&segment.plan_time_search(1_505), 1_505)
            .expect("io")
            .expect("found");
        assert_eq!(
            BatchHeader::parse(&bytes).expect("header").base_offset(),
            500
        );
        assert!(
            find_batch_by_time(&segment.plan_time_search(99_999), 99_999)
                .expect("io")
                .is_none()
        );
    }

    #[test]
    fn an_index_pointing_between_batches_is_rebuilt_and_reads_stay_correct() {
        let dir = tempfile::tempdir().expect("tempdir");
        let segment = filled_segment(dir.path(), 200);
        segment.seal().expect("seal");
        let expected = segment.index.clone();
        let mut bad = OffsetIndex::default();
        for e in expected.entries() {
            bad.push(OffsetEntry {
                relative_offset: e.relative_offset,
                position: e.position + 5,
            });
        }
        std::fs::write(segment_path(dir.path(), 0, INDEX_SUFFIX), bad.encode()).expect("write");
        let reopened = Segment::open(dir.path(), 0, false, 4096, 0).expect("open");
        assert_eq!(reopened.index, expected, "rebuilt from the log");
        // And a read planned from a wrong hint still finds the right batch.
        let plan = ReadPlan {
            start: segment.plan_read(1_234).start + 5,
            ..segment.plan_read(1_234)
        };
        let bytes = read_batches(&plan, 1_234, 1, true).expect("read");
        assert_eq!(
            BatchHeader::parse(&bytes).expect("batch").base_offset(),
            1_230
        );
    }
}
