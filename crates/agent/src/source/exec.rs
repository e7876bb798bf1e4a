//! `exec` sources: a command whose standard output is an exposition page.
//!
//! The command is started directly (program and argument vector, never a
//! shell), with standard input closed, in a process group of its own. One run
//! is bounded three ways:
//!
//! * **time**: when [`ExecSpec::timeout`] passes, the whole process group is
//!   killed with `SIGKILL`, so a command that ignores `SIGTERM` and forked
//!   helpers leaves nothing behind. After a normal exit the group is killed
//!   too: a straggler still holding the output pipe would otherwise keep the
//!   read open forever;
//! * **size**: more than [`ExecSpec::max_output`] bytes of standard output
//!   kill the group and fail the run with [`SourceError::TooLarge`];
//! * **concurrency**: a run takes a permit from the agent-wide limiter before
//!   it starts and fails with [`SourceError::Busy`] when none frees up in
//!   time (coalesced scrapes share the permit of the run they wait for).
//!
//! Standard error is kept up to 4 KiB and logged (`warn` when the run fails,
//! `debug` otherwise); its first line ends the message of a
//! [`SourceError::Command`].
//!
//! # On-demand mode
//!
//! Without [`ExecSpec::interval`] a scrape runs the command. Scrapes that
//! arrive while a run with the same parameters is in progress share that
//! run's result instead of starting another (coalescing), so a hundred
//! scrapers cost one process. Each scraper still stops waiting at its own
//! deadline; that does not stop the run the others wait for.
//!
//! The run is bounded by `timeout` from its start (waiting for a permit
//! included) **and** by the latest deadline of the scrapes waiting for it
//! (scrapes that join later extend it), not by the deadline of the scrape that
//! happened to start it.
//! A run nobody waits for any more has no use: its output would be thrown
//! away, so it is stopped (and, still queued for a permit, never started)
//! instead of holding a permit other scrapes need.
//!
//! # Cached mode
//!
//! With `interval`, [`ExecSource::start`] runs the command in the background
//! every `interval`, and scrapes serve the last good result while it is at
//! most `max_age` old, never starting a process themselves. When the latest
//! run failed, the previous good result is served with the failure in
//! [`Scraped::stale_error`]. Without a good result young enough, a scrape
//! fails with [`SourceError::Stale`], or, when no run has ever succeeded,
//! with the latest run's own failure (which says more).

use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::os::unix::process::ExitStatusExt;
use std::process::{ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use exposition::Format;
use futures::future::{BoxFuture, FutureExt, Shared};
use nix::errno::Errno;
use nix::sys::signal::{killpg, Signal};
use nix::unistd::Pid;
use regex::Regex;
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::process::Command;
use tokio::sync::{watch, Semaphore, TryAcquireError};
use tokio::task::JoinHandle;
use tokio::time::{Instant, MissedTickBehavior};
use tracing::{debug, warn};

use crate::source::{ScrapeContext, Scraped, Series, SourceError};

/// How much of a run's standard error is kept for the log and error message.
const STDERR_KEEP: usize = 4096;

/// How long to wait for a killed process to be reaped before leaving it to
/// Tokio's background reaper.
const REAP_GRACE: Duration = Duration::from_secs(2);

/// How a query parameter that passed the allowlist reaches the command.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ParamTarget {
    /// Appended to the argument vector as one element, after the fixed
    /// arguments, in the order the parameters are declared.
    Arg,
    /// Set as this environment variable.
    Env(String),
}

/// One allowlisted query parameter.
///
/// The HTTP layer rejects any parameter that is not listed (with 400) and
/// passes only validated values in [`ScrapeContext::params`], in declared
/// order. The source checks them again before running anything.
#[derive(Clone, Debug)]
pub struct ParamRule {
    /// The query parameter's name.
    pub name: String,
    /// The pattern the whole value must match (anchored by [`ParamRule::new`]).
    pub pattern: Regex,
    /// Where the value goes.
    pub target: ParamTarget,
}

impl ParamRule {
    /// A rule whose `pattern` must match a value entirely: it is compiled as
    /// `^(?:pattern)$`, so `[a-z]+` rejects `abc;rm`.
    pub fn new(
        name: impl Into<String>,
        pattern: &str,
        target: ParamTarget,
    ) -> Result<ParamRule, regex::Error> {
        // Compiled alone first: a pattern such as `a)|(.*` is not a regular
        // expression by itself, and wrapped it would escape the anchors.
        Regex::new(pattern)?;
        // `\A` and `\z` are `^` and `$` that no flag inside the pattern (such
        // as `(?m)`) can turn into line anchors.
        let pattern = Regex::new(&format!(r"\A(?:{pattern})\z"))?;
        Ok(ParamRule {
            name: name.into(),
            pattern,
            target,
        })
    }

    /// Whether `value` may reach the command.
    pub fn accepts(&self, value: &str) -> bool {
        self.pattern.is_match(value)
    }
}

/// What to run, and within which limits.
#[derive(Clone, Debug)]
pub struct ExecSpec {
    /// Program path or name (looked up in `PATH`); never run through a shell.
    pub command: String,
    /// Fixed arguments.
    pub args: Vec<String>,
    /// Fixed extra environment, on top of the agent's own environment.
    pub env: Vec<(String, String)>,
    /// Hard limit for one run, waiting for a permit included; the process
    /// group is killed after it.
    pub timeout: Duration,
    /// The most bytes of standard output accepted.
    pub max_output: usize,
    /// `Some`: cached mode, the command runs in the background this often.
    pub interval: Option<Duration>,
    /// Cached mode: how long the last good result may be served.
    pub max_age: Duration,
    /// Query parameters that may reach the command (on-demand mode only).
    pub params: Vec<ParamRule>,
}

impl ExecSpec {
    /// Checks the limits: a non-empty command, a timeout, output cap and
    /// interval above zero; in cached mode no parameters and a `max_age` of
    /// at least the interval; parameter names unique, environment names
    /// usable.
    pub fn validate(&self) -> Result<(), String> {
        if self.command.is_empty() {
            return Err("command must not be empty".into());
        }
        let strings = std::iter::once(&self.command)
            .chain(&self.args)
            .chain(self.env.iter().flat_map(|(k, v)| [k, v]));
        if strings.into_iter().any(|s| s.contains('\0')) {
            return Err("command, arguments and environment must not contain NUL".into());
        }
        if self.timeout.is_zero() {
            return Err("timeout must be above zero".into());
        }
        if self.max_output == 0 {
            return Err("max_output must be above zero".into());
        }
        if let Some(interval) = self.interval {
            if interval.is_zero() {
                return Err("interval must be above zero".into());
            }
            if !self.params.is_empty() {
                return Err("a command run in the background cannot take query parameters".into());
            }
            if self.max_age < interval {
                return Err(format!(
                    "max_age ({:?}) must be at least the interval ({interval:?})",
                    self.max_age
                ));
            }
        }
        for (name, _) in &self.env {
            if !is_env_name(name) {
                return Err(format!("env {name:?} is not a variable name"));
            }
        }
        for (index, rule) in self.params.iter().enumerate() {
            if rule.name.is_empty() {
                return Err(format!("params[{index}]: name must not be empty"));
            }
            if self.params[..index].iter().any(|p| p.name == rule.name) {
                return Err(format!("params[{index}]: {:?} is listed twice", rule.name));
            }
            if let ParamTarget::Env(var) = &rule.target {
                if !is_env_name(var) {
                    return Err(format!(
                        "params[{index}]: env {var:?} is not a variable name"
                    ));
                }
            }
        }
        Ok(())
    }
}

fn is_env_name(name: &str) -> bool {
    !name.is_empty()
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
        && !name.as_bytes()[0].is_ascii_digit()
}

/// A command as a source; see the [module documentation](self).
pub struct ExecSource {
    inner: Arc<Inner>,
}

/// Keeps a cached-mode source's background loop alive; dropping it stops the
/// loop and kills a run in progress (used on reload).
pub struct BackgroundGuard {
    task: JoinHandle<()>,
    inner: Arc<Inner>,
}

/// A run's result, shared by every scrape waiting for it.
type SharedRun = Shared<BoxFuture<'static, Result<Scraped, SourceError>>>;

struct Inner {
    name: String,
    spec: ExecSpec,
    limiter: Arc<Semaphore>,
    /// What [`SourceError::Busy`] reports as the limit.
    limit: usize,
    /// On-demand runs in progress, by parameters.
    ///
    /// A `std` mutex is the right kind: it is only held for a lookup or an
    /// insert or a removal, never across an `.await`, so it cannot block the
    /// runtime for long, and it is cheaper than an async mutex.
    in_flight: Mutex<HashMap<Vec<(String, String)>, InFlight>>,
    next_run: AtomicU64,
    /// Cached mode: the latest outcome, and a way to wait for the first.
    cache: watch::Sender<Cache>,
    /// Cached mode: whether a background loop is running.
    running: AtomicBool,
}

struct InFlight {
    id: u64,
    result: SharedRun,
    state: Arc<RunState>,
}

/// What the waiters of an on-demand run and the run itself share.
struct RunState {
    /// When the run was started.
    start: Instant,
    /// The latest deadline of the scrapes waiting for the run, in nanoseconds
    /// after `start`.
    latest: AtomicU64,
    /// [`QUEUED`] while the run waits for a permit, [`RUNNING`] after.
    phase: AtomicU8,
}

const STARTING: u8 = 0;
const QUEUED: u8 = 1;
const RUNNING: u8 = 2;

/// [`RunState::latest`] once the run has decided to stop: nobody can join.
const CLOSED: u64 = u64::MAX;

impl RunState {
    fn new(deadline: Instant) -> RunState {
        let state = RunState {
            start: Instant::now(),
            latest: AtomicU64::new(0),
            phase: AtomicU8::new(STARTING),
        };
        state.extend(deadline);
        state
    }

    /// Another scrape waits until `deadline`. False when the run is stopping
    /// already: the scrape must start a run of its own.
    fn extend(&self, deadline: Instant) -> bool {
        let nanos = deadline.saturating_duration_since(self.start).as_nanos();
        let nanos = u64::try_from(nanos).unwrap_or(CLOSED).min(CLOSED - 1);
        self.latest.fetch_max(nanos, Ordering::AcqRel) != CLOSED
    }

    /// When the run stops, given `latest`: at `hard`, or earlier when every
    /// waiter is gone.
    fn stop_at(&self, latest: u64, hard: Instant) -> Instant {
        self.start
            .checked_add(Duration::from_nanos(latest))
            .map_or(hard, |at| at.min(hard))
    }

    /// Resolves when the run must stop, with that instant, and closes the
    /// run to scrapes that would join it.
    async fn stopped(&self, hard: Instant) -> Instant {
        let mut seen = self.latest.load(Ordering::Acquire);
        loop {
            let at = self.stop_at(seen, hard);
            tokio::time::sleep_until(at).await;
            // Unless a scrape joined meanwhile and pushed the end later.
            match self
                .latest
                .compare_exchange(seen, CLOSED, Ordering::AcqRel, Ordering::Acquire)
            {
                Ok(_) => return at,
                Err(now) => seen = now,
            }
        }
    }
}

#[derive(Default)]
struct Cache {
    /// The latest successful run.
    good: Option<Good>,
    /// The latest run's failure; `None` when it succeeded.
    error: Option<SourceError>,
    /// Runs finished so far.
    runs: u64,
}

struct Good {
    body: Bytes,
    format: Format,
    at: Instant,
    unix_seconds: f64,
}

/// What one process run produced.
struct Output {
    result: Result<Bytes, SourceError>,
    stderr: Vec<u8>,
}

impl ExecSource {
    /// A source running `spec` (which should pass [`ExecSpec::validate`]).
    ///
    /// `limiter` is shared by every exec source of the agent; each run holds
    /// one permit. The number of permits it has available now is what
    /// [`SourceError::Busy`] reports as the limit, so pass it before any run
    /// takes one.
    pub fn new(name: String, spec: ExecSpec, limiter: Arc<Semaphore>) -> ExecSource {
        let limit = limiter.available_permits();
        ExecSource {
            inner: Arc::new(Inner {
                name,
                spec,
                limiter,
                limit,
                in_flight: Mutex::new(HashMap::new()),
                next_run: AtomicU64::new(0),
                cache: watch::Sender::new(Cache::default()),
                running: AtomicBool::new(false),
            }),
        }
    }

    /// The source's name.
    pub fn name(&self) -> &str {
        &self.inner.name
    }

    /// What the source runs.
    pub fn spec(&self) -> &ExecSpec {
        &self.inner.spec
    }

    /// The page: in on-demand mode from a run (shared with the scrapes that
    /// wait for the same parameters), in cached mode the last good result.
    ///
    /// Parameters not allowed by [`ExecSpec::params`] are refused with
    /// [`SourceError::Command`] without running anything.
    pub async fn scrape(&self, ctx: &ScrapeContext) -> Result<Scraped, SourceError> {
        self.inner.check_params(&ctx.params)?;
        if self.inner.spec.interval.is_some() {
            self.scrape_cached(ctx).await
        } else {
            self.scrape_on_demand(ctx).await
        }
    }

    /// Cached mode: starts the background loop (first run immediately) and
    /// returns the guard that stops it when dropped. `None` in on-demand mode
    /// or when a loop is already running for this source.
    ///
    /// # Panics
    ///
    /// Outside a Tokio runtime.
    pub fn start(&self) -> Option<BackgroundGuard> {
        let interval = self.inner.spec.interval?;
        if self.inner.running.swap(true, Ordering::AcqRel) {
            return None;
        }
        let inner = Arc::clone(&self.inner);
        let task = tokio::spawn(async move {
            let mut ticker = tokio::time::interval(interval);
            ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
            loop {
                ticker.tick().await;
                let state = RunState::new(Instant::now() + inner.spec.timeout);
                let result = inner.run_logged(&[], &state).await;
                inner.cache.send_modify(|cache| {
                    cache.runs += 1;
                    match result {
                        Ok(scraped) => {
                            cache.good = Some(Good {
                                body: scraped.body,
                                format: scraped.format,
                                at: Instant::now(),
                                unix_seconds: SystemTime::now()
                                    .duration_since(UNIX_EPOCH)
                                    .map_or(0.0, |d| d.as_secs_f64()),
                            });
                            cache.error = None;
                        }
                        Err(e) => cache.error = Some(e),
                    }
                });
            }
        });
        Some(BackgroundGuard {
            task,
            inner: Arc::clone(&self.inner),
        })
    }

    async fn scrape_on_demand(&self, ctx: &ScrapeContext) -> Result<Scraped, SourceError> {
        let began = Instant::now();
        if ctx.deadline <= began {
            return Err(SourceError::Timeout(Duration::ZERO));
        }
        let (result, state) = self.join_or_start(&ctx.params, ctx.deadline);
        match tokio::time::timeout_at(ctx.deadline, result).await {
            Ok(result) => result,
            // Gave up waiting; the run goes on for the other scrapes.
            Err(_) if state.phase.load(Ordering::Acquire) == QUEUED => {
                Err(SourceError::Busy(self.inner.limit))
            }
            Err(_) => Err(SourceError::Timeout(
                ctx.deadline.saturating_duration_since(began),
            )),
        }
    }

    /// The run in progress for `params`, or a new one.
    fn join_or_start(
        &self,
        params: &[(String, String)],
        deadline: Instant,
    ) -> (SharedRun, Arc<RunState>) {
        let mut in_flight = lock(&self.inner.in_flight);
        if let Some(run) = in_flight.get(params) {
            if run.state.extend(deadline) {
                return (run.result.clone(), Arc::clone(&run.state));
            }
            // Stopping for want of waiters: replaced below (its task, which
            // removes only its own entry, leaves the new one alone).
        }
        let id = self.inner.next_run.fetch_add(1, Ordering::Relaxed);
        let state = Arc::new(RunState::new(deadline));
        let key = params.to_vec();
        let task = {
            let inner = Arc::clone(&self.inner);
            let state = Arc::clone(&state);
            let key = key.clone();
            // A task of its own: the run goes on when the scrape that started
            // it stops waiting, for the others that share it.
            tokio::spawn(async move {
                let result = inner.run_logged(&key, &state).await;
                let mut in_flight = lock(&inner.in_flight);
                if in_flight.get(&key).is_some_and(|run| run.id == id) {
                    in_flight.remove(&key);
                }
                result
            })
        };
        let result = task
            .map(|joined| {
                joined.unwrap_or_else(|e| Err(SourceError::Io(format!("command run failed: {e}"))))
            })
            .boxed()
            .shared();
        in_flight.insert(
            key,
            InFlight {
                id,
                result: result.clone(),
                state: Arc::clone(&state),
            },
        );
        (result, state)
    }

    async fn scrape_cached(&self, ctx: &ScrapeContext) -> Result<Scraped, SourceError> {
        let began = Instant::now();
        let mut cache = self.inner.cache.subscribe();
        if self.inner.running.load(Ordering::Acquire) {
            // Right after start, wait for the first run rather than fail.
            let first = async { cache.wait_for(|c| c.runs > 0).await.map(drop) };
            if tokio::time::timeout_at(ctx.deadline, first).await.is_err() {
                return Err(SourceError::Timeout(
                    ctx.deadline.saturating_duration_since(began),
                ));
            }
        }
        let cache = cache.borrow();
        let max_age = self.inner.spec.max_age;
        match (&cache.good, &cache.error) {
            (Some(good), error) => {
                let age = Instant::now().saturating_duration_since(good.at);
                if age > max_age {
                    return Err(SourceError::Stale(max_age));
                }
                Ok(Scraped {
                    body: good.body.clone(),
                    format: good.format,
                    extra: vec![
                        Series {
                            family: "promrelay_exec_last_success_timestamp_seconds",
                            help: "When the command last produced a good page, in Unix seconds.",
                            labels: Vec::new(),
                            value: good.unix_seconds,
                        },
                        Series {
                            family: "promrelay_exec_result_age_seconds",
                            help: "Age of the command's page being served, in seconds.",
                            labels: Vec::new(),
                            value: age.as_secs_f64(),
                        },
                    ],
                    stale_error: error.clone(),
                })
            }
            (None, Some(error)) => Err(error.clone()),
            (None, None) => Err(SourceError::Stale(max_age)),
        }
    }
}

impl Inner {
    /// Refuses parameters the spec does not allow, whatever the HTTP layer
    /// did.
    fn check_params(&self, params: &[(String, String)]) -> Result<(), SourceError> {
        for (index, (name, value)) in params.iter().enumerate() {
            let allowed = self
                .spec
                .params
                .iter()
                .find(|rule| rule.name == *name)
                .is_some_and(|rule| rule.accepts(value));
            if !allowed || params[..index].iter().any(|(n, _)| n == name) {
                return Err(SourceError::Command(format!(
                    "refused to run: query parameter {name:?} not allowed"
                )));
            }
        }
        Ok(())
    }

    /// One run, logged.
    async fn run_logged(
        &self,
        params: &[(String, String)],
        state: &RunState,
    ) -> Result<Scraped, SourceError> {
        let Output { result, stderr } = self.run(params, state).await;
        let stderr = String::from_utf8_lossy(&stderr);
        let stderr = stderr.trim_end();
        match &result {
            Err(error) => warn!(source = %self.name, %error, stderr, "command failed"),
            Ok(_) if !stderr.is_empty() => debug!(source = %self.name, stderr, "command stderr"),
            Ok(_) => {}
        }
        let body = result?;
        let format = Format::sniff(&body);
        exposition::parse(&body, format).map_err(|e| {
            let error = SourceError::Parse(e.to_string());
            warn!(source = %self.name, %error, "command output does not parse");
            error
        })?;
        Ok(Scraped::fresh(body, format))
    }

    /// Takes a permit and runs the command once.
    async fn run(&self, params: &[(String, String)], state: &RunState) -> Output {
        let hard = state.start + self.spec.timeout;
        let stopped = state.stopped(hard);
        tokio::pin!(stopped);
        let failed = |error| Output {
            result: Err(error),
            stderr: Vec::new(),
        };
        let _permit = match self.limiter.try_acquire() {
            Ok(permit) => permit,
            Err(TryAcquireError::Closed) => return failed(SourceError::Busy(self.limit)),
            Err(TryAcquireError::NoPermits) => {
                state.phase.store(QUEUED, Ordering::Release);
                tokio::select! {
                    permit = self.limiter.acquire() => match permit {
                        Ok(permit) => permit,
                        Err(_) => return failed(SourceError::Busy(self.limit)),
                    },
                    _ = &mut stopped => return failed(SourceError::Busy(self.limit)),
                }
            }
        };
        state.phase.store(RUNNING, Ordering::Release);
        let timed_out = stopped.map(|at| {
            if at >= hard {
                self.spec.timeout
            } else {
                at.saturating_duration_since(state.start)
            }
        });
        self.run_process(params, timed_out).await
    }

    /// Spawns the command and collects its output until it exits, it writes
    /// too much, or `timed_out` resolves.
    async fn run_process(
        &self,
        params: &[(String, String)],
        timed_out: impl Future<Output = Duration>,
    ) -> Output {
        let spec = &self.spec;
        let mut command = Command::new(&spec.command);
        command
            .args(&spec.args)
            .envs(spec.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0)
            .kill_on_drop(true);
        // In declared order, whatever order the parameters came in.
        for rule in &spec.params {
            let Some((_, value)) = params.iter().find(|(name, _)| *name == rule.name) else {
                continue;
            };
            match &rule.target {
                ParamTarget::Arg => command.arg(value),
                ParamTarget::Env(var) => command.env(var, value),
            };
        }
        let mut stderr_kept = Vec::new();
        let mut child = match command.spawn() {
            Ok(child) => child,
            Err(e) => {
                return Output {
                    result: Err(SourceError::Command(format!(
                        "cannot run {:?}: {e}",
                        spec.command
                    ))),
                    stderr: stderr_kept,
                }
            }
        };
        let group = ProcessGroup::new(child.id());
        let (Some(mut stdout), Some(mut stderr)) = (child.stdout.take(), child.stderr.take())
        else {
            return Output {
                result: Err(SourceError::Io(
                    "the command's output pipes are missing".into(),
                )),
                stderr: stderr_kept,
            };
        };

        let collected = {
            let out = read_capped(&mut stdout, spec.max_output);
            let err = async {
                read_head(&mut stderr, &mut stderr_kept, STDERR_KEEP).await;
                Ok(())
            };
            let exit = async {
                let status = child.wait().await;
                // Stragglers that still hold the pipes would keep the reads
                // above open; nobody reads their output anyway.
                group.kill();
                status.map_err(|e| SourceError::Io(format!("waiting for the command: {e}")))
            };
            let all = async {
                let (body, (), status) = tokio::try_join!(out, err, exit)?;
                Ok::<_, SourceError>((body, status))
            };
            tokio::select! {
                done = all => done,
                after = timed_out => Err(SourceError::Timeout(after)),
            }
        };
        // Over the limit, out of time: the whole group goes, then the child
        // is reaped (at once when it has exited already).
        group.kill();
        let _ = tokio::time::timeout(REAP_GRACE, child.wait()).await;

        let result = collected.and_then(|(body, status)| {
            if status.success() {
                Ok(Bytes::from(body))
            } else {
                Err(SourceError::Command(describe_failure(status, &stderr_kept)))
            }
        });
        Output {
            result,
            stderr: stderr_kept,
        }
    }
}

/// Reads everything, failing as soon as there is more than `max` bytes.
async fn read_capped(
    reader: &mut (impl AsyncRead + Unpin),
    max: usize,
) -> Result<Vec<u8>, SourceError> {
    let mut body = Vec::new();
    let limit = u64::try_from(max).unwrap_or(u64::MAX).saturating_add(1);
    reader
        .take(limit)
        .read_to_end(&mut body)
        .await
        .map_err(|e| SourceError::Io(format!("reading the command's output: {e}")))?;
    if body.len() > max {
        return Err(SourceError::TooLarge(max));
    }
    Ok(body)
}

/// Reads everything (so the writer never blocks), keeping the first `max`
/// bytes in `kept`.
async fn read_head(reader: &mut (impl AsyncRead + Unpin), kept: &mut Vec<u8>, max: usize) {
    let mut chunk = vec![0; 4096];
    while let Ok(n @ 1..) = reader.read(&mut chunk).await {
        let room = max.saturating_sub(kept.len());
        kept.extend_from_slice(&chunk[..n.min(room)]);
    }
}

/// `exit status 3: <first line of stderr>`.
fn describe_failure(status: ExitStatus, stderr: &[u8]) -> String {
    let how = match (status.code(), status.signal()) {
        (Some(code), _) => format!("exit status {code}"),
        (None, Some(signal)) => format!("killed by signal {signal}"),
        (None, None) => status.to_string(),
    };
    let stderr = String::from_utf8_lossy(stderr);
    match stderr.lines().map(str::trim).find(|line| !line.is_empty()) {
        Some(line) => format!("{how}: {line}"),
        None => how,
    }
}

/// A command's process group, killed with `SIGKILL` on demand or when
/// dropped (a run cancelled by a stopped background loop).
struct ProcessGroup {
    id: Option<Pid>,
    killed: AtomicBool,
}

impl ProcessGroup {
    fn new(leader: Option<u32>) -> ProcessGroup {
        ProcessGroup {
            id: leader
                .and_then(|pid| i32::try_from(pid).ok())
                .map(Pid::from_raw),
            killed: AtomicBool::new(false),
        }
    }

    /// Kills the group, once: the first call comes right after the leader
    /// exited or before it is reaped, while the group id cannot have been
    /// reused (a live member or the unreaped leader holds it).
    fn kill(&self) {
        let Some(id) = self.id else { return };
        if self.killed.swap(true, Ordering::AcqRel) {
            return;
        }
        match killpg(id, Signal::SIGKILL) {
            Ok(()) | Err(Errno::ESRCH) => {}
            Err(e) => {
                debug!(pgid = id.as_raw(), error = %e, "cannot kill the command's process group");
            }
        }
    }
}

impl Drop for ProcessGroup {
    fn drop(&mut self) {
        self.kill();
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl fmt::Debug for ExecSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ExecSource")
            .field("name", &self.inner.name)
            .field("spec", &self.inner.spec)
            .field("limit", &self.inner.limit)
            .finish_non_exhaustive()
    }
}

impl fmt::Debug for BackgroundGuard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BackgroundGuard")
            .field("source", &self.inner.name)
            .finish_non_exhaustive()
    }
}

impl Drop for BackgroundGuard {
    fn drop(&mut self) {
        self.task.abort();
        self.inner.running.store(false, Ordering::Release);
    }
}
