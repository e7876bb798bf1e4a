//! The push store: every group, the index that checks a push against the
//! other groups, expiry, and the page that serves them.
//!
//! # Cost of a push
//!
//! A push is decoded and checked by itself first ([`crate::body`]), without
//! the lock. Under the lock it is checked against the other groups through
//! a per-family-name index (type, and which groups hold the name), which
//! costs the push's families, not the store's size. Its log record is
//! queued under the lock, so the log's order is the store's; the push then
//! waits for the group commit without the lock.
//!
//! # Expiry
//!
//! Deadlines live on tokio's clock (so tests pause time) and are persisted
//! as wall-clock milliseconds. A group past its deadline is invisible to
//! every read at once; a background task removes it, logs the deletion and
//! counts it. Writes also remove expired groups before they check anything,
//! so an expired group never conflicts with a push.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use exposition::{Format, MetricType};
use tokio::sync::Notify;
use tokio::time::Instant;

use crate::body::{self, BodyLimits, Push, PUSH_FAILURE_TIME, PUSH_TIME};
use crate::config::{PushConfig, PushConfigError};
use crate::error::PushError;
use crate::format::{unix_millis, unix_seconds, write_float};
use crate::group::{deadline_from_unix_ms, Content, Deadline, Group};
use crate::journal::{self, Ack, GroupRecord, Journal, SnapshotGroup};
use crate::key::GroupingKey;
use crate::metrics::{Method, StoreMetrics};

/// HELP of `push_time_seconds`, as Pushgateway words it.
pub(crate) const PUSH_TIME_HELP: &str =
    "Last Unix time when changing this group in the Pushgateway succeeded.";
/// HELP of `push_failure_time_seconds`, as Pushgateway words it.
pub(crate) const PUSH_FAILURE_TIME_HELP: &str =
    "Last Unix time when changing this group in the Pushgateway failed.";
/// The log is compacted once it is this large and twice the live data.
const COMPACT_MIN_BYTES: u64 = 4 << 20;
/// Bodies larger than this are decoded on a blocking thread.
const BLOCKING_DECODE_BYTES: usize = 256 << 10;

/// Why a store cannot be opened or flushed.
#[derive(Clone, Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The settings are invalid.
    #[error(transparent)]
    Config(#[from] PushConfigError),
    /// A file or directory cannot be used.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// Why.
        #[source]
        source: Arc<std::io::Error>,
    },
    /// A snapshot or log that is not what promrelay wrote.
    #[error("{}: {problem}", path.display())]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        problem: String,
    },
    /// [`PushStore::open`] was called outside a Tokio runtime.
    #[error("the push store must be opened inside a Tokio runtime")]
    NoRuntime,
    /// The log could not be written.
    #[error("the push log cannot be written: {0}")]
    Journal(String),
}

/// What a push does to the families its group already has.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PushMode {
    /// `PUT`: the pushed families replace the whole group.
    Replace,
    /// `POST`: the pushed families replace the group's families of the
    /// same names; the others stay.
    Merge,
}

/// A push body and how it is encoded.
#[derive(Clone, Debug)]
pub struct PushBody {
    /// The bytes as received.
    pub bytes: Bytes,
    /// Delimited protobuf rather than text 0.0.4.
    pub protobuf: bool,
    /// `Content-Encoding: gzip`.
    pub gzip: bool,
}

impl PushBody {
    /// A plain text 0.0.4 body.
    pub fn text(bytes: impl Into<Bytes>) -> PushBody {
        PushBody {
            bytes: bytes.into(),
            protobuf: false,
            gzip: false,
        }
    }

    /// A body described by its `Content-Type` and `Content-Encoding`
    /// headers, as Pushgateway reads them.
    pub fn with_headers(
        bytes: impl Into<Bytes>,
        content_type: Option<&str>,
        content_encoding: Option<&str>,
    ) -> PushBody {
        PushBody {
            bytes: bytes.into(),
            protobuf: content_type.is_some_and(body::is_protobuf),
            gzip: content_encoding.is_some_and(|e| e.trim().eq_ignore_ascii_case("gzip")),
        }
    }
}

/// A group as [`PushStore::groups`] reports it.
#[derive(Clone, Debug)]
pub(crate) struct GroupSnapshot {
    pub(crate) key: Arc<GroupingKey>,
    pub(crate) sample_labels: Box<str>,
    pub(crate) content: Arc<Content>,
    pub(crate) push_time: f64,
    pub(crate) failure_time: f64,
    pub(crate) last_push_successful: bool,
    pub(crate) deadline_ms: Option<u64>,
}

/// The push store. Open it with [`PushStore::open`] (durable, in a data
/// directory) or [`PushStore::in_memory`]; serve it with
/// [`crate::router`]; render its groups with [`PushStore::write_page`].
#[derive(Debug)]
pub struct PushStore {
    shared: Arc<Shared>,
}

#[derive(Debug)]
struct Shared {
    config: PushConfig,
    /// A std lock: it is held only for in-memory work, never across an
    /// `.await`, and is read far more often than written.
    state: RwLock<State>,
    /// `None` for an in-memory store.
    journal: Option<Journal>,
    metrics: Arc<StoreMetrics>,
    /// Wakes the expiry task: a new deadline, or shutdown.
    wake: Notify,
    shutdown: AtomicBool,
    started: SystemTime,
    dir: Option<PathBuf>,
}

#[derive(Debug, Default)]
struct State {
    groups: BTreeMap<Arc<GroupingKey>, Group>,
    /// Every family name held, with its type and the groups holding it,
    /// in name order (the order of the page).
    families: BTreeMap<Box<str>, FamilyEntry>,
    /// Deadlines in time order, for the expiry task.
    deadlines: BTreeSet<(Instant, Arc<GroupingKey>)>,
    series: usize,
    /// Bytes in the log since it was last compacted.
    log_bytes: u64,
    /// What the groups take, roughly what a snapshot would.
    live_bytes: u64,
}

#[derive(Debug)]
struct FamilyEntry {
    /// The same in every group that holds the name: a push that disagrees
    /// is refused.
    kind: MetricType,
    members: BTreeMap<Arc<GroupingKey>, Member>,
}

/// One group's family of a name: enough to serve it without finding the
/// group.
#[derive(Debug)]
struct Member {
    content: Arc<Content>,
    index: usize,
    deadline: Option<Instant>,
}

impl State {
    fn insert(&mut self, key: Arc<GroupingKey>, group: Group) {
        for (index, family) in group.content.families().enumerate() {
            let entry = self
                .families
                .entry(family.name.into())
                .or_insert_with(|| FamilyEntry {
                    kind: family.kind,
                    members: BTreeMap::new(),
                });
            entry.kind = family.kind;
            entry.members.insert(
                Arc::clone(&key),
                Member {
                    content: Arc::clone(&group.content),
                    index,
                    deadline: group.deadline.map(|d| d.at),
                },
            );
        }
        if let Some(deadline) = group.deadline {
            self.deadlines.insert((deadline.at, Arc::clone(&key)));
        }
        self.series += group.content.series();
        self.live_bytes += group_bytes(&key, &group);
        self.groups.insert(key, group);
    }

    fn remove(&mut self, key: &GroupingKey) -> Option<(Arc<GroupingKey>, Group)> {
        let (key, group) = self.groups.remove_entry(key)?;
        for family in group.content.families() {
            if let Some(entry) = self.families.get_mut(family.name) {
                entry.members.remove(&*key);
                if entry.members.is_empty() {
                    self.families.remove(family.name);
                }
            }
        }
        if let Some(deadline) = group.deadline {
            self.deadlines.remove(&(deadline.at, Arc::clone(&key)));
        }
        self.series -= group.content.series();
        self.live_bytes = self.live_bytes.saturating_sub(group_bytes(&key, &group));
        Some((key, group))
    }

    /// The type of `name` in groups other than `key`, with one of them.
    fn elsewhere(&self, name: &str, key: &GroupingKey) -> Option<(MetricType, &GroupingKey)> {
        let entry = self.families.get(name)?;
        let other = entry.members.keys().find(|k| ***k != *key)?;
        Some((entry.kind, other))
    }

    /// Checks a group's families after a push (sorted by name) against
    /// every other group, as Pushgateway's gathering would: one type per
    /// name, and no name that a histogram's or summary's samples use.
    fn check(&self, key: &GroupingKey, families: &[(&str, MetricType)]) -> Result<(), String> {
        let word = |kind: MetricType| kind.word(Format::Text);
        let lookup = |name: &str| match families.binary_search_by(|(n, _)| (*n).cmp(name)) {
            Ok(i) => Some(families[i].1),
            Err(_) => self.elsewhere(name, key).map(|(kind, _)| kind),
        };
        for &(name, kind) in families {
            if let Some((other, example)) = self.elsewhere(name, key) {
                if other != kind {
                    return Err(format!(
                        "metric family {name:?} is a {} here but a {} in group {example}",
                        word(kind),
                        word(other)
                    ));
                }
            }
            for (suffix, summary_too) in [("_count", true), ("_sum", true), ("_bucket", false)] {
                let Some(base) = name.strip_suffix(suffix) else {
                    continue;
                };
                match lookup(base) {
                    Some(MetricType::Histogram) => {
                        return Err(format!(
                            "metric family {name:?} collides with histogram {base:?}"
                        ))
                    }
                    Some(MetricType::Summary) if summary_too => {
                        return Err(format!(
                            "metric family {name:?} collides with summary {base:?}"
                        ))
                    }
                    _ => {}
                }
            }
            let suffixes: &[&str] = match kind {
                MetricType::Histogram => &["_count", "_sum", "_bucket"],
                MetricType::Summary => &["_count", "_sum"],
                _ => &[],
            };
            for suffix in suffixes {
                let sample_name = format!("{name}{suffix}");
                if lookup(&sample_name).is_some() {
                    return Err(format!(
                        "{} {name:?} collides with metric family {sample_name:?}",
                        word(kind)
                    ));
                }
            }
        }
        Ok(())
    }
}

fn group_bytes(key: &GroupingKey, group: &Group) -> u64 {
    let key_bytes: usize = key.iter().map(|(n, v)| n.len() + v.len() + 6).sum();
    (group.content.bytes() + key_bytes + 40) as u64
}

fn record_of<'a>(key: &'a GroupingKey, group: &'a Group) -> GroupRecord<'a> {
    GroupRecord {
        key,
        deadline_ms: group.deadline.map(|d| d.unix_ms),
        push_time: group.push_time,
        failure_time: group.failure_time,
        content: &group.content,
    }
}

impl Shared {
    fn read(&self) -> RwLockReadGuard<'_, State> {
        self.state.read().unwrap_or_else(PoisonError::into_inner)
    }

    fn write(&self) -> RwLockWriteGuard<'_, State> {
        self.state.write().unwrap_or_else(PoisonError::into_inner)
    }

    /// Queues `bytes` (whole frames) in the log, in the order of the
    /// changes made under `state`'s lock; compacts when the log has grown.
    fn log(&self, state: &mut State, bytes: Vec<u8>, wait: bool) -> Option<Ack> {
        let journal = self.journal.as_ref()?;
        state.log_bytes += bytes.len() as u64;
        let ack = journal.append(bytes, wait);
        if state.log_bytes >= COMPACT_MIN_BYTES && state.log_bytes >= 2 * state.live_bytes {
            let groups = state
                .groups
                .iter()
                .map(|(key, group)| SnapshotGroup {
                    key: Arc::clone(key),
                    deadline_ms: group.deadline.map(|d| d.unix_ms),
                    push_time: group.push_time,
                    failure_time: group.failure_time,
                    content: Arc::clone(&group.content),
                })
                .collect();
            journal.compact(groups);
            state.log_bytes = 0;
        }
        ack
    }

    /// Logs the group of `key` as it now is.
    fn log_group(&self, state: &mut State, key: &GroupingKey, wait: bool) -> Option<Ack> {
        self.journal.as_ref()?;
        let mut bytes = Vec::new();
        let group = state.groups.get(key)?;
        journal::put_record(record_of(key, group), &mut bytes);
        self.log(state, bytes, wait)
    }

    /// Removes the groups whose deadline is not after `now`.
    fn purge(&self, state: &mut State, now: Instant) {
        let mut bytes = Vec::new();
        let mut expired = 0;
        while let Some((at, key)) = state.deadlines.first().cloned() {
            if at > now {
                break;
            }
            state.remove(&key);
            journal::delete_record(&key, &mut bytes);
            expired += 1;
        }
        if expired > 0 {
            self.metrics.expired(expired);
            tracing::debug!(groups = expired, "push groups expired");
            self.log(state, bytes, false);
        }
    }

    /// Records a failed push in the group's `push_failure_time_seconds`,
    /// making the group when it is new, as Pushgateway does.
    fn record_failure(&self, state: &mut State, key: &GroupingKey, ttl: Option<Duration>) {
        let wall = SystemTime::now();
        let failure_time = unix_seconds(wall);
        if let Some(group) = state.groups.get_mut(key) {
            group.failure_time = failure_time;
        } else {
            if state.groups.len() >= self.config.max_groups {
                return;
            }
            let mut group = Group::new(key);
            group.failure_time = failure_time;
            group.deadline = ttl.map(|ttl| deadline_after(ttl, wall));
            if group.deadline.is_some() {
                self.wake.notify_one();
            }
            state.insert(Arc::new(key.clone()), group);
        }
        self.log_group(state, key, false);
    }

    /// Applies a decoded push under the lock; returns what tells when it
    /// is durable.
    fn apply(
        &self,
        key: GroupingKey,
        mode: PushMode,
        push: &Push,
        ttl: Option<Duration>,
    ) -> Result<Option<Ack>, PushError> {
        let wall = SystemTime::now();
        let pushed_ms = unix_millis(wall);
        let mut state = self.write();
        self.purge(&mut state, Instant::now());
        let existing = state.groups.get_key_value(&key);
        let content = match (mode, existing) {
            (PushMode::Merge, Some((_, group))) => group.content.merge(&push.families, pushed_ms),
            _ => Content::replace(&push.families, pushed_ms),
        };
        let old_series = existing.map_or(0, |(_, g)| g.content.series());
        let failure_time = existing.map_or(0.0, |(_, g)| g.failure_time);
        let key = existing.map_or_else(|| Arc::new(key), |(k, _)| Arc::clone(k));
        let config = &self.config;
        if content.series() > config.max_series_per_group {
            return Err(PushError::TooLarge(format!(
                "the group would hold {} series, more than {} (max_series_per_group)",
                content.series(),
                config.max_series_per_group
            )));
        }
        if existing.is_none() && state.groups.len() >= config.max_groups {
            return Err(PushError::TooLarge(format!(
                "the store holds {} groups already (max_groups)",
                config.max_groups
            )));
        }
        if state.series - old_series + content.series() > config.max_series_total {
            return Err(PushError::TooLarge(format!(
                "the store would hold more than {} series (max_series_total)",
                config.max_series_total
            )));
        }
        let kinds: Vec<(&str, MetricType)> = content.families().map(|f| (f.name, f.kind)).collect();
        if let Err(problem) = state.check(&key, &kinds) {
            self.record_failure(&mut state, &key, ttl);
            return Err(PushError::Inconsistent(problem));
        }
        drop(kinds);
        let group = Group {
            sample_labels: key.sample_labels().into_boxed_str(),
            content: Arc::new(content),
            push_time: unix_seconds(wall),
            failure_time,
            deadline: ttl.map(|ttl| deadline_after(ttl, wall)),
        };
        if group.deadline.is_some() {
            self.wake.notify_one();
        }
        state.remove(&key);
        state.insert(Arc::clone(&key), group);
        Ok(self.log_group(&mut state, &key, true))
    }
}

fn deadline_after(ttl: Duration, wall: SystemTime) -> Deadline {
    Deadline {
        at: Instant::now() + ttl,
        unix_ms: unix_millis(wall + ttl),
    }
}

/// Waits for a log record to be durable.
async fn durable(ack: Option<Ack>) -> Result<(), PushError> {
    let Some(ack) = ack else {
        return Ok(());
    };
    match ack.await {
        Ok(Ok(())) => Ok(()),
        // The writer has logged the cause once, for everyone waiting.
        Ok(Err(_)) | Err(_) => Err(PushError::Internal),
    }
}

impl PushStore {
    /// Opens the store kept in `dir` (made if missing), restoring every
    /// group whose deadline has not passed. Call it inside a Tokio runtime:
    /// it starts the expiry task. It reads the whole directory, so an
    /// async caller with a large store may prefer `spawn_blocking`.
    pub fn open(dir: impl AsRef<Path>, config: PushConfig) -> Result<Arc<PushStore>, StoreError> {
        let dir = dir.as_ref();
        config.validate()?;
        let runtime = tokio::runtime::Handle::try_current().map_err(|_| StoreError::NoRuntime)?;
        let metrics = Arc::new(StoreMetrics::default());
        let (journal, loaded) = journal::open(dir, Arc::clone(&metrics))?;
        let mut state = State {
            log_bytes: loaded.log_bytes,
            ..State::default()
        };
        let (now, wall) = (Instant::now(), SystemTime::now());
        let mut gone = Vec::new();
        for (key, stored) in loaded.groups {
            let deadline = match stored.deadline_ms {
                None => None,
                Some(ms) => match deadline_from_unix_ms(ms, now, wall) {
                    Some(deadline) => Some(deadline),
                    None => {
                        journal::delete_record(&key, &mut gone);
                        metrics.expired(1);
                        continue;
                    }
                },
            };
            let group = Group {
                sample_labels: key.sample_labels().into_boxed_str(),
                content: Arc::new(stored.content),
                push_time: stored.push_time,
                failure_time: stored.failure_time,
                deadline,
            };
            state.insert(Arc::new(key), group);
        }
        tracing::info!(
            dir = %dir.display(),
            groups = state.groups.len(),
            series = state.series,
            "push store opened"
        );
        let store = PushStore::start(
            config,
            state,
            Some(journal),
            metrics,
            Some(dir.to_owned()),
            &runtime,
        );
        if !gone.is_empty() {
            // Groups whose deadline passed while the store was closed: the
            // deletion is logged so a clock set back cannot revive them.
            let mut state = store.shared.write();
            store.shared.log(&mut state, gone, false);
        }
        Ok(store)
    }

    /// A store that keeps nothing on disk: everything is lost when the
    /// process ends. Call it inside a Tokio runtime.
    pub fn in_memory(config: PushConfig) -> Result<Arc<PushStore>, StoreError> {
        config.validate()?;
        let runtime = tokio::runtime::Handle::try_current().map_err(|_| StoreError::NoRuntime)?;
        let metrics = Arc::new(StoreMetrics::default());
        Ok(PushStore::start(
            config,
            State::default(),
            None,
            metrics,
            None,
            &runtime,
        ))
    }

    fn start(
        config: PushConfig,
        state: State,
        journal: Option<Journal>,
        metrics: Arc<StoreMetrics>,
        dir: Option<PathBuf>,
        runtime: &tokio::runtime::Handle,
    ) -> Arc<PushStore> {
        let shared = Arc::new(Shared {
            config,
            state: RwLock::new(state),
            journal,
            metrics,
            wake: Notify::new(),
            shutdown: AtomicBool::new(false),
            started: SystemTime::now(),
            dir,
        });
        runtime.spawn(expire(Arc::clone(&shared)));
        Arc::new(PushStore { shared })
    }

    /// The settings the store was opened with.
    pub fn config(&self) -> &PushConfig {
        &self.shared.config
    }

    /// The data directory; `None` for an in-memory store.
    pub fn dir(&self) -> Option<&Path> {
        self.shared.dir.as_deref()
    }

    /// When the store was opened.
    pub fn started(&self) -> SystemTime {
        self.shared.started
    }

    /// Pushes `body` to the group `key`. `ttl` is what the client asked for
    /// (it is capped at `max_ttl`; without it the rules and `default_ttl`
    /// decide). Returns once the push is durable.
    pub async fn push(
        &self,
        key: GroupingKey,
        mode: PushMode,
        body: PushBody,
        ttl: Option<Duration>,
    ) -> Result<(), PushError> {
        let method = match mode {
            PushMode::Replace => Method::Put,
            PushMode::Merge => Method::Post,
        };
        let result = self.push_inner(key, mode, body, ttl).await;
        self.count(method, &result);
        result
    }

    async fn push_inner(
        &self,
        key: GroupingKey,
        mode: PushMode,
        body: PushBody,
        ttl: Option<Duration>,
    ) -> Result<(), PushError> {
        self.writable()?;
        let ttl = self.shared.config.ttl_for(&key, ttl);
        let limits = BodyLimits {
            max_decompressed_bytes: self.shared.config.max_decompressed_bytes,
            max_series: self.shared.config.max_series_per_group,
        };
        let decoded = if body.bytes.len() > BLOCKING_DECODE_BYTES {
            let key = key.clone();
            tokio::task::spawn_blocking(move || decode(&body, &key, limits))
                .await
                .map_err(|_| PushError::Internal)?
        } else {
            decode(&body, &key, limits)
        };
        let push = match decoded {
            Ok(push) => push,
            Err(error @ PushError::Inconsistent(_)) => {
                let mut state = self.shared.write();
                self.shared.record_failure(&mut state, &key, ttl);
                return Err(error);
            }
            Err(error) => return Err(error),
        };
        let ack = self.shared.apply(key, mode, &push, ttl)?;
        durable(ack).await
    }

    /// Deletes the group `key`; returns once that is durable. Deleting a
    /// group that does not exist succeeds.
    pub async fn delete(&self, key: &GroupingKey) -> Result<(), PushError> {
        let result = async {
            self.writable()?;
            let ack = {
                let mut state = self.shared.write();
                self.shared.purge(&mut state, Instant::now());
                if state.remove(key).is_none() {
                    return Ok(());
                }
                let mut bytes = Vec::new();
                journal::delete_record(key, &mut bytes);
                self.shared.log(&mut state, bytes, true)
            };
            durable(ack).await
        }
        .await;
        self.count(Method::Delete, &result);
        result
    }

    /// Deletes every group; returns once that is durable.
    pub async fn wipe(&self) -> Result<(), PushError> {
        let result = async {
            self.writable()?;
            let ack = {
                let mut state = self.shared.write();
                let log_bytes = state.log_bytes;
                *state = State {
                    log_bytes,
                    ..State::default()
                };
                let mut bytes = Vec::new();
                journal::wipe_record(&mut bytes);
                self.shared.log(&mut state, bytes, true)
            };
            durable(ack).await
        }
        .await;
        self.count(Method::Wipe, &result);
        result
    }

    /// Waits until every change made so far is durable.
    pub async fn flush(&self) -> Result<(), StoreError> {
        let Some(journal) = &self.shared.journal else {
            return Ok(());
        };
        match journal.flush() {
            Some(ack) => match ack.await {
                Ok(Ok(())) => Ok(()),
                Ok(Err(reason)) => Err(StoreError::Journal(reason)),
                Err(_) => Err(StoreError::Journal("the log writer stopped".to_owned())),
            },
            None => Ok(()),
        }
    }

    fn writable(&self) -> Result<(), PushError> {
        match self.shared.journal.as_ref().and_then(Journal::failure) {
            Some(reason) => Err(PushError::Unavailable(reason.to_owned())),
            None => Ok(()),
        }
    }

    fn count(&self, method: Method, result: &Result<(), PushError>) {
        let label = result.as_ref().err().map_or("ok", PushError::result);
        self.shared.metrics.request(method, label);
    }

    /// Appends every live group in text 0.0.4, as Pushgateway serves them
    /// at `/metrics` (for `honor_labels: true`): each family once, in name
    /// order, with `push_time_seconds` and `push_failure_time_seconds` per
    /// group. The lock is held only to collect what to copy.
    pub fn write_page(&self, out: &mut Vec<u8>) {
        enum Piece {
            Text(String),
            Family(Arc<Content>, usize),
        }
        let now = Instant::now();
        let mut pieces = Vec::new();
        {
            let state = self.shared.read();
            let mut own = [
                (PUSH_FAILURE_TIME, PUSH_FAILURE_TIME_HELP, true),
                (PUSH_TIME, PUSH_TIME_HELP, false),
            ]
            .into_iter()
            .peekable();
            let own_family = |name: &str, help: &str, failure: bool| {
                let mut text = format!("# HELP {name} {help}\n# TYPE {name} gauge\n");
                for group in state.groups.values().filter(|g| g.is_live(now)) {
                    text.push_str(name);
                    text.push('{');
                    text.push_str(&group.sample_labels);
                    text.push_str("} ");
                    let mut value = String::new();
                    write_float(
                        if failure {
                            group.failure_time
                        } else {
                            group.push_time
                        },
                        &mut value,
                    );
                    text.push_str(&value);
                    text.push('\n');
                }
                text
            };
            let any_live = state.groups.values().any(|g| g.is_live(now));
            for (name, entry) in &state.families {
                while let Some((own_name, help, failure)) = own.next_if(|(n, _, _)| *n < &**name) {
                    if any_live {
                        pieces.push(Piece::Text(own_family(own_name, help, failure)));
                    }
                }
                let alive = |m: &&Member| m.deadline.is_none_or(|at| at > now);
                let mut live = entry.members.values().filter(alive).peekable();
                if live.peek().is_none() {
                    continue;
                }
                let help = entry
                    .members
                    .values()
                    .filter(alive)
                    .find_map(|m| m.content.family(m.index).and_then(|f| f.help));
                let mut header = String::new();
                if let Some(help) = help {
                    header.push_str("# HELP ");
                    header.push_str(name);
                    header.push(' ');
                    header.push_str(help);
                    header.push('\n');
                }
                header.push_str("# TYPE ");
                header.push_str(name);
                header.push(' ');
                header.push_str(entry.kind.word(Format::Text));
                header.push('\n');
                pieces.push(Piece::Text(header));
                pieces.extend(live.map(|m| Piece::Family(Arc::clone(&m.content), m.index)));
            }
            for (own_name, help, failure) in own {
                if any_live {
                    pieces.push(Piece::Text(own_family(own_name, help, failure)));
                }
            }
        }
        for piece in &pieces {
            match piece {
                Piece::Text(text) => out.extend_from_slice(text.as_bytes()),
                Piece::Family(content, index) => {
                    if let Some(family) = content.family(*index) {
                        out.extend_from_slice(family.lines.as_bytes());
                    }
                }
            }
        }
    }

    /// The store's own metrics in text 0.0.4 (see [`crate::metrics`]).
    pub fn render_metrics(&self) -> String {
        let now = Instant::now();
        let (groups, series) = {
            let state = self.shared.read();
            // Only live groups: an expired one is gone for every reader,
            // even before the expiry task has removed it.
            state
                .groups
                .values()
                .filter(|g| g.is_live(now))
                .fold((0, 0), |(groups, series), g| {
                    (groups + 1, series + g.content.series())
                })
        };
        let mut out = String::new();
        self.shared.metrics.write(groups, series, &mut out);
        out
    }

    /// How many groups are held (live or not yet removed).
    pub fn group_count(&self) -> usize {
        self.shared.read().groups.len()
    }

    /// How many series are held.
    pub fn series_count(&self) -> usize {
        self.shared.read().series
    }

    /// The live groups, for the API.
    pub(crate) fn groups(&self) -> Vec<GroupSnapshot> {
        let now = Instant::now();
        let state = self.shared.read();
        state
            .groups
            .iter()
            .filter(|(_, g)| g.is_live(now))
            .map(|(key, group)| GroupSnapshot {
                key: Arc::clone(key),
                sample_labels: group.sample_labels.clone(),
                content: Arc::clone(&group.content),
                push_time: group.push_time,
                failure_time: group.failure_time,
                last_push_successful: group.last_push_successful(),
                deadline_ms: group.deadline.map(|d| d.unix_ms),
            })
            .collect()
    }

    /// Counts a request refused before it reached the store.
    pub(crate) fn count_refused(&self, method: Method, error: &PushError) {
        self.shared.metrics.request(method, error.result());
    }
}

fn decode(body: &PushBody, key: &GroupingKey, limits: BodyLimits) -> Result<Push, PushError> {
    let unzipped;
    let bytes: &[u8] = if body.gzip {
        unzipped = body::gunzip(&body.bytes, limits.max_decompressed_bytes)?;
        &unzipped
    } else {
        &body.bytes
    };
    body::decode(bytes, body.protobuf, key, limits)
}

impl Drop for PushStore {
    fn drop(&mut self) {
        // Ends the expiry task, which holds the last other reference to
        // the shared state; the log writer ends when that is dropped.
        self.shared.shutdown.store(true, Ordering::Release);
        self.shared.wake.notify_one();
    }
}

/// Removes groups at their deadlines until the store is dropped.
async fn expire(shared: Arc<Shared>) {
    loop {
        if shared.shutdown.load(Ordering::Acquire) {
            return;
        }
        let next = {
            let mut state = shared.write();
            shared.purge(&mut state, Instant::now());
            state.deadlines.first().map(|(at, _)| *at)
        };
        match next {
            Some(at) => {
                tokio::select! {
                    () = tokio::time::sleep_until(at) => {}
                    () = shared.wake.notified() => {}
                }
            }
            None => shared.wake.notified().await,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::TtlRule;
    use std::fs;

    fn key(path: &str) -> GroupingKey {
        GroupingKey::from_path(false, path).unwrap()
    }

    async fn put(store: &PushStore, path: &str, body: &str) -> Result<(), PushError> {
        store
            .push(
                key(path),
                PushMode::Replace,
                PushBody::text(body.to_owned()),
                None,
            )
            .await
    }

    async fn post(store: &PushStore, path: &str, body: &str) -> Result<(), PushError> {
        store
            .push(
                key(path),
                PushMode::Merge,
                PushBody::text(body.to_owned()),
                None,
            )
            .await
    }

    fn page(store: &PushStore) -> String {
        let mut out = Vec::new();
        store.write_page(&mut out);
        String::from_utf8(out).unwrap()
    }

    /// The page without the push time families, whose values change.
    fn samples(store: &PushStore) -> Vec<String> {
        page(store)
            .lines()
            .filter(|l| !l.starts_with('#') && !l.starts_with("push_"))
            .map(str::to_owned)
            .collect()
    }

    fn metric(store: &PushStore, line_start: &str) -> String {
        store
            .render_metrics()
            .lines()
            .find(|l| l.starts_with(line_start))
            .unwrap_or_else(|| panic!("no {line_start}"))
            .to_owned()
    }

    #[tokio::test]
    async fn put_post_and_delete_work_as_in_pushgateway() {
        let store = PushStore::in_memory(PushConfig::default()).unwrap();
        put(
            &store,
            "a",
            "# TYPE x gauge\nx{l=\"1\"} 1\n# TYPE y counter\ny 2\n",
        )
        .await
        .unwrap();
        post(&store, "a", "# TYPE x gauge\nx{l=\"2\"} 3.0\n")
            .await
            .unwrap();
        assert_eq!(
            samples(&store),
            [
                "x{instance=\"\",job=\"a\",l=\"2\"} 3",
                "y{instance=\"\",job=\"a\"} 2"
            ]
        );
        put(&store, "a", "# TYPE z gauge\nz 1\n").await.unwrap();
        assert_eq!(samples(&store), ["z{instance=\"\",job=\"a\"} 1"]);
        // An empty PUT empties the group but keeps it (and its push time).
        put(&store, "a", "").await.unwrap();
        assert_eq!(samples(&store), Vec::<String>::new());
        assert!(page(&store).contains("push_time_seconds{instance=\"\",job=\"a\"} 1."));
        store.delete(&key("a")).await.unwrap();
        assert_eq!(page(&store), "");
        // Deleting what is not there succeeds.
        store.delete(&key("a")).await.unwrap();
        assert_eq!(
            metric(
                &store,
                "promrelay_push_requests_total{method=\"delete\",result=\"ok\"}"
            ),
            "promrelay_push_requests_total{method=\"delete\",result=\"ok\"} 2"
        );
    }

    #[tokio::test]
    async fn the_page_merges_groups_into_valid_families() {
        let store = PushStore::in_memory(PushConfig::default()).unwrap();
        put(&store, "a", "# HELP m help a\n# TYPE m counter\nm 1\n")
            .await
            .unwrap();
        put(&store, "b/instance/h", "# TYPE m counter\nm 2\nn 3\n")
            .await
            .unwrap();
        let text = page(&store);
        let parsed = exposition::parse(text.as_bytes(), Format::Text).unwrap();
        assert_eq!(exposition::validate_strict(&parsed, Format::Text), []);
        let names: Vec<_> = parsed.families.iter().map(|f| f.name).collect();
        assert_eq!(
            names,
            ["m", "n", "push_failure_time_seconds", "push_time_seconds"]
        );
        assert_eq!(parsed.families[0].help, Some("help a"));
        assert_eq!(parsed.samples_of(&parsed.families[0]).len(), 2);
        assert!(text.contains("n{instance=\"h\",job=\"b\"} 3\n"));
        assert!(text.contains("push_failure_time_seconds{instance=\"h\",job=\"b\"} 0\n"));
    }

    #[tokio::test]
    async fn inconsistent_pushes_change_nothing_but_the_failure_time() {
        let store = PushStore::in_memory(PushConfig::default()).unwrap();
        put(
            &store,
            "a",
            "# TYPE x gauge\nx 1\n# TYPE h histogram\nh_bucket{le=\"1\"} 1\nh_sum 1\nh_count 1\n",
        )
        .await
        .unwrap();
        let before = samples(&store);
        for (path, body, expected) in [
            (
                "b",
                "# TYPE x counter\nx 1\n",
                "metric family \"x\" is a counter here but a gauge in group {job=\"a\"}",
            ),
            (
                "b",
                "h_count 1\n",
                "metric family \"h_count\" collides with histogram \"h\"",
            ),
            ("b", "# TYPE x summary\nx_sum 1\n", "is a summary here"),
            ("b", "# TYPE x_sum summary\nx_sum_sum 1\n", ""),
            (
                "b",
                "# TYPE h gauge\nh 1\n",
                "\"h\" is a gauge here but a histogram",
            ),
            (
                "b",
                "# TYPE c histogram\nc_sum 1\n# TYPE c_count gauge\nc_count 1\n",
                "histogram \"c\" collides with metric family \"c_count\"",
            ),
            (
                "b",
                "y 1 1700000000000\n",
                "pushed metrics must not have timestamps",
            ),
            (
                "b",
                "y{a=\"1\"} 1\ny{a=\"1\"} 2\n",
                "series y{a=\"1\",instance=\"\",job=\"b\"} was pushed twice",
            ),
            (
                "b",
                "y{job=\"p\"} 1\ny{job=\"q\"} 2\n",
                "series y{instance=\"\",job=\"b\"} was pushed twice",
            ),
            ("b", "promrelay_push_groups 1\n", "is reserved"),
        ] {
            let result = put(&store, path, body).await;
            if expected.is_empty() {
                // x_sum as a summary of its own does not collide with gauge x.
                assert_eq!(result, Ok(()), "{body}");
                store.delete(&key(path)).await.unwrap();
                continue;
            }
            match result {
                Err(PushError::Inconsistent(message)) => {
                    assert!(message.contains(expected), "{body}: {message}");
                }
                other => panic!("{body}: {other:?}"),
            }
            assert_eq!(samples(&store), before, "{body}");
        }
        // The failed pushes left group b with only its failure time.
        let text = page(&store);
        assert!(
            text.contains("push_time_seconds{instance=\"\",job=\"b\"} 0\n"),
            "{text}"
        );
        assert!(
            !text.contains("push_failure_time_seconds{instance=\"\",job=\"b\"} 0\n"),
            "{text}"
        );
        assert!(
            text.contains("push_failure_time_seconds{instance=\"\",job=\"a\"} 0\n"),
            "{text}"
        );
        // A body that does not parse records nothing.
        let result = put(&store, "c", "x{ 1\n").await;
        assert!(
            matches!(result, Err(PushError::Malformed(ref m)) if m.contains("line 1")),
            "{result:?}"
        );
        assert!(!page(&store).contains("job=\"c\""));
        assert_eq!(
            metric(
                &store,
                "promrelay_push_requests_total{method=\"put\",result=\"inconsistent\"}"
            ),
            "promrelay_push_requests_total{method=\"put\",result=\"inconsistent\"} 9"
        );
    }

    #[tokio::test]
    async fn a_group_may_change_its_own_types() {
        let store = PushStore::in_memory(PushConfig::default()).unwrap();
        put(&store, "a", "# TYPE x gauge\nx 1\n").await.unwrap();
        put(&store, "a", "# TYPE x counter\nx 1\n").await.unwrap();
        post(&store, "a", "# TYPE x untyped\nx 1\n").await.unwrap();
        // POST keeps the group's other families, which are checked too.
        put(&store, "b", "# TYPE y gauge\ny 1\n").await.unwrap();
        post(&store, "a", "# TYPE y gauge\ny 2\n").await.unwrap();
        assert_eq!(samples(&store).len(), 3);
    }

    #[tokio::test]
    async fn limits_are_answered_with_413() {
        let config = PushConfig {
            max_series_per_group: 3,
            max_groups: 2,
            max_series_total: 4,
            max_decompressed_bytes: 100,
            ..PushConfig::default()
        };
        let store = PushStore::in_memory(config).unwrap();
        let too_large = |r: Result<(), PushError>, what: &str| match r {
            Err(PushError::TooLarge(m)) => assert!(m.contains(what), "{m}"),
            other => panic!("{what}: {other:?}"),
        };
        too_large(
            put(&store, "a", "a 1\nb 1\nc 1\nd 1\n").await,
            "max_series_per_group",
        );
        // A histogram counts its buckets, sum and count.
        too_large(
            put(
                &store,
                "a",
                "# TYPE h histogram\nh_sum 1\nh_count 1\n# TYPE s summary\ns_sum 1\n",
            )
            .await,
            "max_series_per_group",
        );
        put(&store, "a", "a 1\nb 1\n").await.unwrap();
        // POST grows the group past the limit.
        too_large(
            post(&store, "a", "c 1\nd 1\n").await,
            "max_series_per_group",
        );
        put(&store, "b", "a 1\nb 1\n").await.unwrap();
        too_large(put(&store, "c", "a 1\n").await, "max_groups");
        too_large(
            put(&store, "b", "a 1\nb 1\nc 1\nd 1\n").await,
            "max_series_per_group",
        );
        too_large(
            put(&store, "b", "a 1\nb 1\nc 1\n").await,
            "max_series_total",
        );
        let zipped = {
            use std::io::Write as _;
            let mut encoder =
                flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
            encoder.write_all(&[b'#'; 1000]).unwrap();
            encoder.finish().unwrap()
        };
        let body = PushBody {
            bytes: zipped.into(),
            protobuf: false,
            gzip: true,
        };
        too_large(
            store.push(key("a"), PushMode::Replace, body, None).await,
            "max_decompressed_bytes",
        );
        assert_eq!(samples(&store).len(), 4);
    }

    #[tokio::test(start_paused = true)]
    async fn groups_expire_at_their_deadline() {
        let config = PushConfig {
            default_ttl: Some(settings::PromDuration(Duration::from_secs(90))),
            max_ttl: Some(settings::PromDuration(Duration::from_secs(600))),
            rules: vec![TtlRule {
                matchers: [(
                    "job".to_owned(),
                    crate::config::LabelRegex::new("short.*").unwrap(),
                )]
                .into(),
                ttl: settings::PromDuration(Duration::from_secs(10)),
            }],
            ..PushConfig::default()
        };
        let store = PushStore::in_memory(config).unwrap();
        put(&store, "default", "a 1\n").await.unwrap();
        put(&store, "short-lived", "b 1\n").await.unwrap();
        let asked = |ttl: u64| Some(Duration::from_secs(ttl));
        store
            .push(
                key("asked"),
                PushMode::Replace,
                PushBody::text("c 1\n"),
                asked(30),
            )
            .await
            .unwrap();
        store
            .push(
                key("capped"),
                PushMode::Replace,
                PushBody::text("d 1\n"),
                asked(3600),
            )
            .await
            .unwrap();
        let jobs = |store: &PushStore| {
            let mut jobs: Vec<_> = store
                .groups()
                .iter()
                .map(|g| g.key.job().to_owned())
                .collect();
            jobs.sort();
            jobs
        };
        assert_eq!(jobs(&store), ["asked", "capped", "default", "short-lived"]);
        tokio::time::advance(Duration::from_millis(9_999)).await;
        assert_eq!(jobs(&store).len(), 4);
        tokio::time::advance(Duration::from_millis(1)).await;
        // Gone from every read at the deadline, before the task runs.
        assert_eq!(jobs(&store), ["asked", "capped", "default"]);
        assert!(!page(&store).contains("short-lived"));
        tokio::task::yield_now().await;
        assert_eq!(store.group_count(), 3);
        assert_eq!(
            metric(&store, "promrelay_push_expired_groups_total"),
            "promrelay_push_expired_groups_total 1"
        );
        // A new push moves the deadline.
        tokio::time::advance(Duration::from_secs(20)).await;
        put(&store, "default", "a 2\n").await.unwrap();
        tokio::time::advance(Duration::from_secs(60)).await;
        assert_eq!(jobs(&store), ["capped", "default"]);
        tokio::time::advance(Duration::from_secs(90)).await;
        assert_eq!(jobs(&store), ["capped"]);
        tokio::time::advance(Duration::from_secs(600)).await;
        assert_eq!(jobs(&store), Vec::<String>::new());
        assert_eq!(page(&store), "");
        tokio::task::yield_now().await;
        assert_eq!(store.group_count(), 0);
        assert_eq!(store.series_count(), 0);
        assert_eq!(
            metric(&store, "promrelay_push_expired_groups_total"),
            "promrelay_push_expired_groups_total 4"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn an_expired_group_never_conflicts() {
        let store = PushStore::in_memory(PushConfig::default()).unwrap();
        let ttl = Some(Duration::from_secs(5));
        store
            .push(
                key("a"),
                PushMode::Replace,
                PushBody::text("# TYPE x gauge\nx 1\n"),
                ttl,
            )
            .await
            .unwrap();
        assert!(put(&store, "b", "# TYPE x counter\nx 1\n").await.is_err());
        tokio::time::advance(Duration::from_secs(5)).await;
        put(&store, "b", "# TYPE x counter\nx 1\n").await.unwrap();
    }

    fn log_of(dir: &Path) -> PathBuf {
        let mut logs: Vec<_> = fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|e| e == "log"))
            .collect();
        assert_eq!(logs.len(), 1, "{logs:?}");
        logs.pop().unwrap()
    }

    async fn reopen(dir: &Path, store: Arc<PushStore>) -> Arc<PushStore> {
        store.flush().await.unwrap();
        drop(store);
        PushStore::open(dir, PushConfig::default()).unwrap()
    }

    #[tokio::test]
    async fn restart_restores_groups_with_their_deadlines() {
        let dir = testkit::TempDir::new("push-restart");
        let store = PushStore::open(dir.path(), PushConfig::default()).unwrap();
        put(
            &store,
            "a/x@base64/YS9i",
            "# HELP m a \\\\ help\n# TYPE m counter\nm{q=\"\\\"\"} 1\n",
        )
        .await
        .unwrap();
        store
            .push(
                key("b"),
                PushMode::Replace,
                PushBody::text("n 2\n"),
                Some(Duration::from_secs(3600)),
            )
            .await
            .unwrap();
        put(&store, "c", "n 3\n").await.unwrap();
        store.delete(&key("c")).await.unwrap();
        assert!(put(&store, "d", "# TYPE m gauge\nm 1\n").await.is_err());
        let before_page = page(&store);
        let before_groups = store.groups();
        let store = reopen(dir.path(), store).await;
        assert_eq!(page(&store), before_page);
        let after_groups = store.groups();
        assert_eq!(after_groups.len(), 3);
        for (a, b) in before_groups.iter().zip(&after_groups) {
            assert_eq!(
                (&a.key, a.deadline_ms, a.push_time, a.failure_time),
                (&b.key, b.deadline_ms, b.push_time, b.failure_time)
            );
            assert_eq!(a.content, b.content);
        }
        assert!(after_groups[1].deadline_ms.is_some());
        // The store goes on appending to the same log.
        put(&store, "e", "n 5\n").await.unwrap();
        let store = reopen(dir.path(), store).await;
        assert_eq!(store.group_count(), 4);
    }

    #[tokio::test]
    async fn a_torn_tail_is_cut_and_earlier_groups_load() {
        let dir = testkit::TempDir::new("push-torn");
        let store = PushStore::open(dir.path(), PushConfig::default()).unwrap();
        put(&store, "a", "a 1\n").await.unwrap();
        put(&store, "b", "b 2\n").await.unwrap();
        let store = reopen(dir.path(), store).await;
        let good = page(&store);
        store.flush().await.unwrap();
        drop(store);
        let log = log_of(dir.path());
        let intact = fs::read(&log).unwrap();

        // A half-written record: a valid frame cut short.
        let mut frame = Vec::new();
        journal::delete_record(&key("a"), &mut frame);
        let mut torn = intact.clone();
        torn.extend_from_slice(&frame[..frame.len() - 3]);
        // A whole record with a bad checksum; random garbage.
        let mut flipped = intact.clone();
        let mut bad = frame.clone();
        bad[10] ^= 1;
        flipped.extend_from_slice(&bad);
        let mut garbage = intact.clone();
        garbage.extend_from_slice(b"\x13\x00\x00\x00garbage that is not a record");
        for damaged in [torn, flipped, garbage] {
            fs::write(&log, &damaged).unwrap();
            let store = PushStore::open(dir.path(), PushConfig::default()).unwrap();
            assert_eq!(page(&store), good);
            // The tail was cut, so a new record follows the good ones.
            put(&store, "c", "c 3\n").await.unwrap();
            let store = reopen(dir.path(), store).await;
            assert!(page(&store).contains("c{instance=\"\",job=\"c\"} 3\n"));
            store.delete(&key("c")).await.unwrap();
            store.flush().await.unwrap();
            drop(store);
            fs::write(&log, &intact).unwrap();
        }
        // A log whose header is not ours is refused, not overwritten.
        fs::write(&log, b"something else entirely").unwrap();
        assert!(matches!(
            PushStore::open(dir.path(), PushConfig::default()),
            Err(StoreError::Corrupt { .. })
        ));
    }

    #[tokio::test]
    async fn groups_whose_deadline_passed_while_closed_are_gone() {
        let dir = testkit::TempDir::new("push-down");
        let store = PushStore::open(dir.path(), PushConfig::default()).unwrap();
        put(&store, "kept", "a 1\n").await.unwrap();
        store.flush().await.unwrap();
        drop(store);
        // Append a group whose deadline passed a second ago, as if the
        // process had been down across it.
        let past = unix_millis(SystemTime::now()) - 1000;
        let group = Group::new(&key("gone"));
        let mut bytes = Vec::new();
        journal::put_record(
            GroupRecord {
                deadline_ms: Some(past),
                ..record_of(&key("gone"), &group)
            },
            &mut bytes,
        );
        let log = log_of(dir.path());
        let mut content = fs::read(&log).unwrap();
        content.extend_from_slice(&bytes);
        fs::write(&log, content).unwrap();
        let store = PushStore::open(dir.path(), PushConfig::default()).unwrap();
        assert_eq!(store.group_count(), 1);
        assert!(!page(&store).contains("gone"));
        assert_eq!(
            metric(&store, "promrelay_push_expired_groups_total"),
            "promrelay_push_expired_groups_total 1"
        );
    }

    #[tokio::test]
    async fn the_log_is_compacted_into_a_snapshot() {
        let dir = testkit::TempDir::new("push-compact");
        let store = PushStore::open(dir.path(), PushConfig::default()).unwrap();
        put(&store, "small", "s 1\n").await.unwrap();
        let body: String = (0..2000)
            .map(|i| format!("big{{n=\"{i}\"}} {i}\n"))
            .collect();
        for round in 0..100 {
            put(&store, "big", &format!("{body}round {round}\n"))
                .await
                .unwrap();
        }
        store.delete(&key("small")).await.unwrap();
        put(&store, "after", "a 1\n").await.unwrap();
        let before = page(&store);
        let store = reopen(dir.path(), store).await;
        assert!(metric(&store, "promrelay_push_journal_bytes").len() > 10);
        let files: Vec<_> = fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        assert!(files.iter().any(|f| f.ends_with(".snapshot")), "{files:?}");
        assert_eq!(files.len(), 2, "{files:?}");
        assert_eq!(page(&store), before);
        assert!(page(&store).contains("round{instance=\"\",job=\"big\"} 99\n"));
        assert!(!page(&store).contains("job=\"small\""));
    }
}
