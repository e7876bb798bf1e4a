//! The data directory: an append-only log of changes, compacted now and
//! then into a snapshot, so that an acknowledged push survives `kill -9`.
//!
//! # Files
//!
//! `push-<gen>.snapshot` holds every group at the moment generation `<gen>`
//! began; `push-<gen>.log` every change since. Each starts with an 8-byte
//! magic and the generation (u64, little endian), then frames:
//!
//! ```text
//! u32 length | u32 CRC-32 of the payload | payload (length bytes)
//! ```
//!
//! A payload is one record: put a group (its grouping key, deadline as Unix
//! milliseconds, push and failure times, and its families with their
//! canonical text), delete a group, wipe everything, or (last in a
//! snapshot) the end marker with the number of groups.
//!
//! # Writing
//!
//! One thread owns the log. Pushes hand it records over a channel; it takes
//! every record waiting (group commit), writes them with one `write` and one
//! `fdatasync`, and only then tells each push it is durable. Records are
//! sent while the store's lock is held, so the log order is the order in
//! which the store changed.
//!
//! Compaction writes generation `g+1`: first an empty `push-<g+1>.log`, then
//! the snapshot under a temporary name, fsynced and renamed into place, and
//! the directory fsynced. The rename is the commit point: before it, opening
//! the directory finds generation `g` whole; after it, `g+1`.
//!
//! # Reading
//!
//! Opening loads the newest snapshot (which must be whole: it was renamed
//! into place only once complete, so damage there is refused, not guessed
//! at), then replays its log up to the first frame whose length or CRC is
//! wrong. That is where a crash tore the last write; the log is truncated
//! there, so garbage is never loaded and never followed by new records.

use std::collections::HashMap;
use std::fs::{self, File, OpenOptions};
use std::io::{self, BufWriter, Write as _};
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::sync::{Arc, OnceLock};
use std::time::Instant as StdInstant;

use exposition::MetricType;
use tokio::sync::oneshot;

use crate::group::{Content, FamilyView};
use crate::key::GroupingKey;
use crate::metrics::StoreMetrics;
use crate::StoreError;

const LOG_MAGIC: &[u8; 8] = b"PRPUSHL1";
const SNAPSHOT_MAGIC: &[u8; 8] = b"PRPUSHS1";
const HEADER_LEN: u64 = 16;
/// A frame longer than this is damage, not data: no push comes near it.
const MAX_FRAME: usize = 1 << 30;
/// The most bytes written in one group commit.
const MAX_BATCH_BYTES: usize = 8 << 20;

const PUT: u8 = 1;
const DELETE: u8 = 2;
const WIPE: u8 = 3;
const END: u8 = 4;

/// A group as stored on disk.
#[derive(Debug)]
pub(crate) struct StoredGroup {
    pub(crate) key: GroupingKey,
    pub(crate) deadline_ms: Option<u64>,
    pub(crate) push_time: f64,
    pub(crate) failure_time: f64,
    pub(crate) content: Content,
}

/// One change, as read back.
#[derive(Debug)]
enum Record {
    Put(StoredGroup),
    Delete(GroupingKey),
    Wipe,
    End(u64),
}

/// What a group record is made from when it is written.
#[derive(Clone, Copy, Debug)]
pub(crate) struct GroupRecord<'a> {
    pub(crate) key: &'a GroupingKey,
    pub(crate) deadline_ms: Option<u64>,
    pub(crate) push_time: f64,
    pub(crate) failure_time: f64,
    pub(crate) content: &'a Content,
}

/// A group handed to the writer for a snapshot; cheap to make under the
/// store's lock (two reference counts).
#[derive(Debug)]
pub(crate) struct SnapshotGroup {
    pub(crate) key: Arc<GroupingKey>,
    pub(crate) deadline_ms: Option<u64>,
    pub(crate) push_time: f64,
    pub(crate) failure_time: f64,
    pub(crate) content: Arc<Content>,
}

// ---------------------------------------------------------------------------
// Encoding

fn put_str16(out: &mut Vec<u8>, s: &str) {
    let len = u16::try_from(s.len()).unwrap_or(u16::MAX);
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(&s.as_bytes()[..usize::from(len)]);
}

fn put_str32(out: &mut Vec<u8>, s: &str) {
    let len = u32::try_from(s.len()).unwrap_or(u32::MAX);
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(&s.as_bytes()[..len as usize]);
}

fn put_key(out: &mut Vec<u8>, key: &GroupingKey) {
    let n = u16::try_from(key.iter().len()).unwrap_or(u16::MAX);
    out.extend_from_slice(&n.to_le_bytes());
    for (name, value) in key.iter().take(usize::from(n)) {
        put_str16(out, name);
        put_str32(out, value);
    }
}

fn kind_code(kind: MetricType) -> u8 {
    match kind {
        MetricType::Counter => 0,
        MetricType::Gauge => 1,
        MetricType::Summary => 2,
        MetricType::Histogram => 4,
        _ => 3,
    }
}

fn kind_from_code(code: u8) -> Option<MetricType> {
    Some(match code {
        0 => MetricType::Counter,
        1 => MetricType::Gauge,
        2 => MetricType::Summary,
        3 => MetricType::Unknown,
        4 => MetricType::Histogram,
        _ => return None,
    })
}

/// Appends a frame around the payload that `write` appends.
fn frame(out: &mut Vec<u8>, write: impl FnOnce(&mut Vec<u8>)) {
    let start = out.len();
    out.extend_from_slice(&[0; 8]);
    write(out);
    let payload = &out[start + 8..];
    let len = u32::try_from(payload.len()).unwrap_or(u32::MAX);
    let crc = crc32fast::hash(payload);
    out[start..start + 4].copy_from_slice(&len.to_le_bytes());
    out[start + 4..start + 8].copy_from_slice(&crc.to_le_bytes());
}

/// The frame that puts a group.
pub(crate) fn put_record(group: GroupRecord<'_>, out: &mut Vec<u8>) {
    frame(out, |out| {
        out.push(PUT);
        put_key(out, group.key);
        out.extend_from_slice(&group.deadline_ms.unwrap_or(0).to_le_bytes());
        out.extend_from_slice(&group.push_time.to_bits().to_le_bytes());
        out.extend_from_slice(&group.failure_time.to_bits().to_le_bytes());
        let families: Vec<FamilyView<'_>> = group.content.families().collect();
        out.extend_from_slice(&u32::try_from(families.len()).unwrap_or(0).to_le_bytes());
        for family in families {
            put_str16(out, family.name);
            out.push(kind_code(family.kind));
            match family.help {
                Some(help) => {
                    out.push(1);
                    put_str32(out, help);
                }
                None => out.push(0),
            }
            out.extend_from_slice(&family.pushed_ms.to_le_bytes());
            out.extend_from_slice(&u32::try_from(family.series).unwrap_or(0).to_le_bytes());
            put_str32(out, family.lines);
        }
    });
}

/// The frame that deletes a group.
pub(crate) fn delete_record(key: &GroupingKey, out: &mut Vec<u8>) {
    frame(out, |out| {
        out.push(DELETE);
        put_key(out, key);
    });
}

/// The frame that deletes every group.
pub(crate) fn wipe_record(out: &mut Vec<u8>) {
    frame(out, |out| out.push(WIPE));
}

fn end_record(groups: u64, out: &mut Vec<u8>) {
    frame(out, |out| {
        out.push(END);
        out.extend_from_slice(&groups.to_le_bytes());
    });
}

// ---------------------------------------------------------------------------
// Decoding

/// A bounds-checked reader over one payload.
struct Reader<'a> {
    bytes: &'a [u8],
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if n > self.bytes.len() {
            return None;
        }
        let (head, rest) = self.bytes.split_at(n);
        self.bytes = rest;
        Some(head)
    }

    fn u8(&mut self) -> Option<u8> {
        self.take(1).map(|b| b[0])
    }

    fn u16(&mut self) -> Option<u16> {
        self.take(2).map(|b| u16::from_le_bytes([b[0], b[1]]))
    }

    fn u32(&mut self) -> Option<u32> {
        self.take(4)
            .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }

    fn u64(&mut self) -> Option<u64> {
        let b = self.take(8)?;
        let mut array = [0; 8];
        array.copy_from_slice(b);
        Some(u64::from_le_bytes(array))
    }

    fn str16(&mut self) -> Option<&'a str> {
        let n = self.u16()?;
        std::str::from_utf8(self.take(usize::from(n))?).ok()
    }

    fn str32(&mut self) -> Option<&'a str> {
        let n = self.u32()?;
        std::str::from_utf8(self.take(n as usize)?).ok()
    }

    fn key(&mut self) -> Option<GroupingKey> {
        let n = self.u16()?;
        let mut pairs = Vec::with_capacity(usize::from(n));
        for _ in 0..n {
            pairs.push((self.str16()?, self.str32()?));
        }
        GroupingKey::new(pairs).ok()
    }
}

fn decode(payload: &[u8]) -> Option<Record> {
    let mut r = Reader { bytes: payload };
    let record = match r.u8()? {
        PUT => {
            let key = r.key()?;
            let deadline_ms = Some(r.u64()?).filter(|&ms| ms != 0);
            let push_time = f64::from_bits(r.u64()?);
            let failure_time = f64::from_bits(r.u64()?);
            let count = r.u32()?;
            let mut families = Vec::new();
            for _ in 0..count {
                let name = r.str16()?;
                let kind = kind_from_code(r.u8()?)?;
                let help = match r.u8()? {
                    0 => None,
                    1 => Some(r.str32()?),
                    _ => return None,
                };
                let pushed_ms = r.u64()?;
                let series = r.u32()? as usize;
                let lines = r.str32()?;
                families.push(FamilyView {
                    name,
                    kind,
                    help,
                    lines,
                    series,
                    pushed_ms,
                });
            }
            Record::Put(StoredGroup {
                key,
                deadline_ms,
                push_time,
                failure_time,
                content: Content::build(families),
            })
        }
        DELETE => Record::Delete(r.key()?),
        WIPE => Record::Wipe,
        END => Record::End(r.u64()?),
        _ => return None,
    };
    r.bytes.is_empty().then_some(record)
}

/// Reads frames from `bytes` (after the header) until the end or the first
/// damaged one. Returns the records and how many bytes they span.
fn read_frames(bytes: &[u8]) -> (Vec<Record>, usize) {
    let mut records = Vec::new();
    let mut at = 0;
    while bytes.len() - at >= 8 {
        let word =
            |i: usize| u32::from_le_bytes([bytes[i], bytes[i + 1], bytes[i + 2], bytes[i + 3]]);
        let len = word(at) as usize;
        let crc = word(at + 4);
        if len > MAX_FRAME || len > bytes.len() - at - 8 {
            break;
        }
        let payload = &bytes[at + 8..at + 8 + len];
        if crc32fast::hash(payload) != crc {
            break;
        }
        let Some(record) = decode(payload) else {
            break;
        };
        records.push(record);
        at += 8 + len;
    }
    (records, at)
}

fn header(magic: &[u8; 8], generation: u64) -> [u8; 16] {
    let mut out = [0; 16];
    out[..8].copy_from_slice(magic);
    out[8..].copy_from_slice(&generation.to_le_bytes());
    out
}

// ---------------------------------------------------------------------------
// Opening

/// What [`open`] found in the directory.
#[derive(Debug, Default)]
pub(crate) struct Loaded {
    /// Every group, as the last record left it.
    pub(crate) groups: HashMap<GroupingKey, StoredGroup>,
    /// The size of the log being appended to.
    pub(crate) log_bytes: u64,
}

fn log_name(generation: u64) -> String {
    format!("push-{generation}.log")
}

fn snapshot_name(generation: u64) -> String {
    format!("push-{generation}.snapshot")
}

fn io_error(path: &Path) -> impl FnOnce(io::Error) -> StoreError + '_ {
    move |source| StoreError::Io {
        path: path.to_owned(),
        source: Arc::new(source),
    }
}

fn corrupt(path: &Path, problem: impl Into<String>) -> StoreError {
    StoreError::Corrupt {
        path: path.to_owned(),
        problem: problem.into(),
    }
}

/// Makes a directory entry (a created or renamed file) durable.
fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// Opens (or creates) the data directory, loads it and starts the writer.
pub(crate) fn open(
    dir: &Path,
    metrics: Arc<StoreMetrics>,
) -> Result<(Journal, Loaded), StoreError> {
    fs::create_dir_all(dir).map_err(io_error(dir))?;
    let mut snapshots = Vec::new();
    for entry in fs::read_dir(dir).map_err(io_error(dir))? {
        let name = entry.map_err(io_error(dir))?.file_name();
        let name = name.to_string_lossy();
        if let Some(generation) = name
            .strip_prefix("push-")
            .and_then(|n| n.strip_suffix(".snapshot"))
            .and_then(|n| n.parse::<u64>().ok())
        {
            snapshots.push(generation);
        }
    }
    let generation = snapshots.iter().copied().max().unwrap_or(0);
    let mut loaded = Loaded::default();
    if !snapshots.is_empty() {
        load_snapshot(
            &dir.join(snapshot_name(generation)),
            generation,
            &mut loaded,
        )?;
    }
    let log_path = dir.join(log_name(generation));
    let log = replay_log(&log_path, generation, &mut loaded)?;
    sync_dir(dir).map_err(io_error(dir))?;
    remove_others(dir, generation);
    metrics.set_journal_bytes(loaded.log_bytes);
    let failed = Arc::new(OnceLock::new());
    let (jobs, receiver) = mpsc::channel();
    let writer = Writer {
        dir: dir.to_owned(),
        generation,
        log,
        log_bytes: loaded.log_bytes,
        failed: Arc::clone(&failed),
        metrics,
    };
    std::thread::Builder::new()
        .name("push-journal".to_owned())
        .spawn(move || writer.run(&receiver))
        .map_err(io_error(dir))?;
    Ok((Journal { jobs, failed }, loaded))
}

fn load_snapshot(path: &Path, generation: u64, loaded: &mut Loaded) -> Result<(), StoreError> {
    let bytes = fs::read(path).map_err(io_error(path))?;
    if bytes.len() < HEADER_LEN as usize || bytes[..16] != header(SNAPSHOT_MAGIC, generation) {
        return Err(corrupt(
            path,
            "not a promrelay push snapshot of this generation",
        ));
    }
    let (records, used) = read_frames(&bytes[16..]);
    let mut groups = 0;
    let mut ended = false;
    for record in records {
        match record {
            Record::Put(group) if !ended => {
                groups += 1;
                loaded.groups.insert(group.key.clone(), group);
            }
            Record::End(count) if !ended && count == groups => ended = true,
            _ => return Err(corrupt(path, "unexpected record")),
        }
    }
    if !ended || used != bytes.len() - 16 {
        return Err(corrupt(
            path,
            format!("damaged after {} of {} bytes", used + 16, bytes.len()),
        ));
    }
    Ok(())
}

/// Replays the log onto `loaded`, cuts a torn tail, and returns the log
/// opened for appending.
fn replay_log(path: &Path, generation: u64, loaded: &mut Loaded) -> Result<File, StoreError> {
    let expected = header(LOG_MAGIC, generation);
    let bytes = match fs::read(path) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == io::ErrorKind::NotFound => Vec::new(),
        Err(e) => return Err(io_error(path)(e)),
    };
    let mut valid = HEADER_LEN as usize;
    if bytes.len() >= valid {
        if bytes[..valid] != expected {
            return Err(corrupt(path, "not a promrelay push log of this generation"));
        }
        let (records, used) = read_frames(&bytes[valid..]);
        for record in records {
            match record {
                Record::Put(group) => {
                    loaded.groups.insert(group.key.clone(), group);
                }
                Record::Delete(key) => {
                    loaded.groups.remove(&key);
                }
                Record::Wipe => loaded.groups.clear(),
                Record::End(_) => {}
            }
        }
        valid += used;
    }
    let mut file = OpenOptions::new()
        .create(true)
        .append(true)
        .read(true)
        .open(path)
        .map_err(io_error(path))?;
    if bytes.len() < HEADER_LEN as usize {
        // New, or torn while its header was being written.
        file.set_len(0).map_err(io_error(path))?;
        file.write_all(&expected).map_err(io_error(path))?;
        file.sync_all().map_err(io_error(path))?;
    } else if valid < bytes.len() {
        tracing::warn!(
            path = %path.display(),
            kept_bytes = valid,
            dropped_bytes = bytes.len() - valid,
            "the push log ends in a torn or damaged record; cut it there"
        );
        file.set_len(valid as u64).map_err(io_error(path))?;
        file.sync_all().map_err(io_error(path))?;
    }
    loaded.log_bytes = valid as u64;
    Ok(file)
}

/// Removes files of other generations and unfinished temporary files.
fn remove_others(dir: &Path, generation: u64) {
    let keep = [log_name(generation), snapshot_name(generation)];
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with("push-") && !keep.contains(&name) {
            let _ = fs::remove_file(entry.path());
        }
    }
}

// ---------------------------------------------------------------------------
// Writing

/// The answer to a record that waits for durability.
pub(crate) type Ack = oneshot::Receiver<Result<(), String>>;

enum Job {
    /// Write `bytes` (whole frames); answer once they are durable.
    Append {
        bytes: Vec<u8>,
        done: Option<oneshot::Sender<Result<(), String>>>,
    },
    /// Start a new generation from these groups.
    Compact(Vec<SnapshotGroup>),
}

/// The store's handle on the writer thread.
#[derive(Debug)]
pub(crate) struct Journal {
    jobs: mpsc::Sender<Job>,
    failed: Arc<OnceLock<String>>,
}

impl Journal {
    /// Queues frames; with `wait`, returns what tells when they are durable.
    pub(crate) fn append(&self, bytes: Vec<u8>, wait: bool) -> Option<Ack> {
        let (done, ack) = if wait {
            let (tx, rx) = oneshot::channel();
            (Some(tx), Some(rx))
        } else {
            (None, None)
        };
        // A send fails only once the writer has stopped; the ack then
        // reports it as dropped.
        let _ = self.jobs.send(Job::Append { bytes, done });
        ack
    }

    /// Waits until everything queued so far is durable.
    pub(crate) fn flush(&self) -> Option<Ack> {
        self.append(Vec::new(), true)
    }

    /// Queues a compaction into a snapshot of `groups`.
    pub(crate) fn compact(&self, groups: Vec<SnapshotGroup>) {
        let _ = self.jobs.send(Job::Compact(groups));
    }

    /// Why the log cannot be written, once that has happened.
    pub(crate) fn failure(&self) -> Option<&str> {
        self.failed.get().map(String::as_str)
    }
}

struct Writer {
    dir: PathBuf,
    generation: u64,
    log: File,
    log_bytes: u64,
    failed: Arc<OnceLock<String>>,
    metrics: Arc<StoreMetrics>,
}

impl Writer {
    fn run(mut self, jobs: &mpsc::Receiver<Job>) {
        while let Ok(first) = jobs.recv() {
            let mut batch = Vec::new();
            let mut waiters = Vec::new();
            let mut next = Some(first);
            while let Some(job) = next.take() {
                match job {
                    Job::Append { bytes, done } => {
                        batch.extend_from_slice(&bytes);
                        waiters.extend(done);
                    }
                    Job::Compact(groups) => {
                        // Everything queued before it goes to the old log.
                        self.commit(&batch, core::mem::take(&mut waiters));
                        batch.clear();
                        self.compact(&groups);
                    }
                }
                if batch.len() < MAX_BATCH_BYTES {
                    next = jobs.try_recv().ok();
                }
            }
            self.commit(&batch, waiters);
        }
    }

    /// Writes and syncs one batch, then answers its waiters.
    fn commit(&mut self, batch: &[u8], waiters: Vec<oneshot::Sender<Result<(), String>>>) {
        if batch.is_empty() && waiters.is_empty() {
            return;
        }
        let result = match self.failed.get() {
            Some(reason) => Err(reason.clone()),
            None => self.write(batch).map_err(|e| {
                let reason = e.to_string();
                tracing::error!(dir = %self.dir.display(), error = %reason, "cannot write the push log; pushes are refused from now on");
                self.metrics.journal_error();
                let _ = self.failed.set(reason.clone());
                reason
            }),
        };
        for waiter in waiters {
            let _ = waiter.send(result.clone());
        }
    }

    fn write(&mut self, batch: &[u8]) -> io::Result<()> {
        if !batch.is_empty() {
            self.log.write_all(batch)?;
            let started = StdInstant::now();
            self.log.sync_data()?;
            self.metrics.observe_fsync(started.elapsed());
            self.log_bytes += batch.len() as u64;
            self.metrics.set_journal_bytes(self.log_bytes);
            self.metrics.group_commit(batch.len());
        }
        Ok(())
    }

    fn compact(&mut self, groups: &[SnapshotGroup]) {
        if self.failed.get().is_some() {
            return;
        }
        let next = self.generation + 1;
        let log_path = self.dir.join(log_name(next));
        let snapshot_path = self.dir.join(snapshot_name(next));
        let temporary = self.dir.join(format!("{}.tmp", snapshot_name(next)));
        let result = (|| -> io::Result<File> {
            let mut log = OpenOptions::new()
                .create(true)
                .write(true)
                .truncate(true)
                .open(&log_path)?;
            log.write_all(&header(LOG_MAGIC, next))?;
            log.sync_all()?;
            let file = File::create(&temporary)?;
            let mut out = BufWriter::with_capacity(1 << 20, file);
            out.write_all(&header(SNAPSHOT_MAGIC, next))?;
            let mut record = Vec::new();
            for group in groups {
                record.clear();
                put_record(
                    GroupRecord {
                        key: &group.key,
                        deadline_ms: group.deadline_ms,
                        push_time: group.push_time,
                        failure_time: group.failure_time,
                        content: &group.content,
                    },
                    &mut record,
                );
                out.write_all(&record)?;
            }
            record.clear();
            end_record(groups.len() as u64, &mut record);
            out.write_all(&record)?;
            let file = out.into_inner().map_err(io::IntoInnerError::into_error)?;
            file.sync_all()?;
            fs::rename(&temporary, &snapshot_path)?;
            sync_dir(&self.dir)?;
            // Appending to `log` (opened for writing) continues at its end.
            let log = OpenOptions::new().append(true).open(&log_path)?;
            Ok(log)
        })();
        match result {
            Ok(log) => {
                let old = self.generation;
                self.log = log;
                self.generation = next;
                self.log_bytes = HEADER_LEN;
                self.metrics.set_journal_bytes(self.log_bytes);
                self.metrics.compacted();
                let _ = fs::remove_file(self.dir.join(log_name(old)));
                let _ = fs::remove_file(self.dir.join(snapshot_name(old)));
                let _ = sync_dir(&self.dir);
                tracing::debug!(
                    generation = next,
                    groups = groups.len(),
                    "push log compacted"
                );
            }
            Err(error) => {
                let _ = fs::remove_file(&temporary);
                if !snapshot_path.exists() {
                    let _ = fs::remove_file(&log_path);
                }
                self.metrics.journal_error();
                tracing::error!(dir = %self.dir.display(), %error, "cannot compact the push log; the old log is kept");
                if snapshot_path.exists() {
                    // The new generation is committed but its log cannot be
                    // used: later records would be lost on restart.
                    let _ = self
                        .failed
                        .set(format!("compaction failed after its commit: {error}"));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_round_trip() {
        let key = GroupingKey::new([("job", "j"), ("x", "é\"")]).unwrap();
        let content = Content::build([FamilyView {
            name: "a",
            kind: MetricType::Histogram,
            help: Some("h\\nx"),
            lines: "a_bucket{le=\"+Inf\"} 1\na_sum 1\na_count 1\n",
            series: 3,
            pushed_ms: 42,
        }]);
        let mut bytes = Vec::new();
        put_record(
            GroupRecord {
                key: &key,
                deadline_ms: Some(9),
                push_time: 1.5,
                failure_time: 0.0,
                content: &content,
            },
            &mut bytes,
        );
        delete_record(&key, &mut bytes);
        wipe_record(&mut bytes);
        let (records, used) = read_frames(&bytes);
        assert_eq!(used, bytes.len());
        assert_eq!(records.len(), 3);
        let Record::Put(group) = &records[0] else {
            panic!("{records:?}")
        };
        assert_eq!(group.key, key);
        assert_eq!(group.deadline_ms, Some(9));
        assert_eq!(group.push_time, 1.5);
        assert_eq!(group.content, content);
        assert!(matches!(&records[1], Record::Delete(k) if *k == key));
        assert!(matches!(records[2], Record::Wipe));
    }

    #[test]
    fn stops_at_the_first_damaged_frame() {
        let key = GroupingKey::new([("job", "j")]).unwrap();
        let mut bytes = Vec::new();
        delete_record(&key, &mut bytes);
        let first = bytes.len();
        delete_record(&key, &mut bytes);
        // Every cut inside the second frame leaves exactly the first.
        for cut in first..bytes.len() {
            assert_eq!(read_frames(&bytes[..cut]).1, first, "cut at {cut}");
        }
        // A flipped bit anywhere in the second frame is caught too.
        for at in first..bytes.len() {
            let mut damaged = bytes.clone();
            damaged[at] ^= 0x10;
            assert_eq!(read_frames(&damaged).1, first, "flip at {at}");
        }
    }
}
