//! The registry of agents: which agent names have a live tunnel, which were
//! recently connected, and the rules for who may hold a name.
//!
//! [`Registry`] is the interface the HTTP routes use, so that a clustered
//! gateway (for example one sharing ownership of names over NATS) can
//! provide its own; its methods are synchronous because they are called on
//! every scrape and must not wait on the network — a clustered registry
//! keeps its view of remote ownership up to date in the background.
//! [`LocalRegistry`] is the single-process implementation.
//!
//! # Rules
//!
//! - A name held by a live tunnel cannot be taken by a **different**
//!   credential ([`RegisterError::NameTaken`], answered with 409); the
//!   existing tunnel stays.
//! - The **same** credential connecting again replaces its own older tunnel:
//!   the newer wins, and the older one is told to close
//!   ([`Registration::released`]).
//! - When a tunnel ends, its entry becomes disconnected only if it is still
//!   the same [`Generation`]: an old tunnel ending late never marks its
//!   replacement disconnected.
//! - Disconnected entries are forgotten after the retention period; the
//!   agent is then unknown. A disconnected name may be taken by any
//!   credential.
//! - At most `max_agents` names are held (connected or disconnected); new
//!   names past that are refused ([`RegisterError::Full`]).

use core::fmt;
use core::future::Future;
use core::pin::Pin;
use core::task::{Context, Poll};
use core::time::Duration;
use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard, PoisonError};

use tokio::sync::oneshot;
use tokio::time::Instant;
use tunnel::TunnelClient;

use crate::auth::CredentialId;

/// What the registry needs of a tunnel: to be cloned for each scrape and to
/// say whether it is already gone. Implemented by [`TunnelClient`]; tests
/// may use their own.
pub trait TunnelHandle: Clone + Send + Sync + 'static {
    /// Whether the tunnel is gone (no request sent now can succeed).
    fn is_closed(&self) -> bool;
}

impl TunnelHandle for TunnelClient {
    fn is_closed(&self) -> bool {
        TunnelClient::is_closed(self)
    }
}

/// Distinguishes successive tunnels of one agent name; it only grows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Generation(u64);

impl Generation {
    /// The generation as a number.
    pub fn get(self) -> u64 {
        self.0
    }
}

/// Where a scrape for an agent goes.
#[derive(Debug, Clone)]
pub enum Route<C = TunnelClient> {
    /// The agent has a live tunnel: send the scrape over it.
    Connected(C),
    /// The agent was connected within the retention period but is not now.
    Disconnected,
    /// No agent of that name is known.
    Unknown,
}

/// One agent, as listed for discovery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgentInfo {
    /// The agent's name.
    pub name: String,
    /// Whether it has a live tunnel.
    pub connected: bool,
    /// Since when it has been connected (or disconnected).
    pub since: Instant,
    /// The credential it connected with.
    pub credential: CredentialId,
}

/// How many agents the registry holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct AgentCounts {
    /// Agents with a live tunnel.
    pub connected: usize,
    /// Agents connected or disconnected within the retention period.
    pub known: usize,
}

/// Why a tunnel cannot be registered under a name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RegisterError {
    /// Another credential holds the name with a live tunnel.
    #[error("agent name {name:?} is held by another connected agent")]
    NameTaken {
        /// The name.
        name: String,
    },
    /// The registry holds its maximum number of agents.
    #[error("the gateway already holds its maximum of {max} agents")]
    Full {
        /// The maximum.
        max: usize,
    },
}

/// Resolves when the registry no longer holds the tunnel it was handed out
/// for (it was replaced by a newer tunnel of the same credential): the
/// tunnel's task should then close it.
#[derive(Debug)]
pub struct Released(oneshot::Receiver<()>);

impl Future for Released {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        // The sender is never used: it is dropped with the registry entry.
        Pin::new(&mut self.0).poll(cx).map(|_| ())
    }
}

/// A successful registration.
#[derive(Debug)]
pub struct Registration {
    /// The generation of this tunnel, to give back to
    /// [`Registry::mark_disconnected`] when it ends.
    pub generation: Generation,
    /// Whether it replaced an older tunnel of the same credential.
    pub replaced: bool,
    /// Resolves when this tunnel has been replaced and should be closed.
    pub released: Released,
}

/// The registry of agents as the gateway's routes use it. See the
/// [module documentation](self) for the rules every implementation follows.
pub trait Registry: Send + Sync + fmt::Debug + 'static {
    /// Checks, before accepting an upgrade, whether `credential` could
    /// register `name` now. [`register`](Self::register) checks again.
    fn check(&self, name: &str, credential: &CredentialId) -> Result<(), RegisterError>;

    /// Registers a newly established tunnel for `name`.
    fn register(
        &self,
        name: &str,
        credential: CredentialId,
        client: TunnelClient,
    ) -> Result<Registration, RegisterError>;

    /// Marks `name` disconnected if its tunnel is still of `generation`;
    /// says whether it did.
    fn mark_disconnected(&self, name: &str, generation: Generation) -> bool;

    /// Where a scrape for `name` goes.
    fn route(&self, name: &str) -> Route;

    /// All known agents, sorted by name.
    fn agents(&self) -> Vec<AgentInfo>;

    /// How many agents are connected and known.
    fn counts(&self) -> AgentCounts;
}

enum Entry<C> {
    Connected {
        client: C,
        credential: CredentialId,
        since: Instant,
        generation: Generation,
        /// Dropped (so the tunnel's [`Released`] resolves) when the entry
        /// is replaced or removed.
        _release: oneshot::Sender<()>,
    },
    Disconnected {
        since: Instant,
        credential: CredentialId,
    },
}

impl<C: TunnelHandle> Entry<C> {
    fn is_live(&self) -> bool {
        matches!(self, Entry::Connected { client, .. } if !client.is_closed())
    }

    fn expired(&self, now: Instant, retention: Duration) -> bool {
        matches!(self, Entry::Disconnected { since, .. } if now.saturating_duration_since(*since) >= retention)
    }

    fn info(&self, name: &str) -> AgentInfo {
        match self {
            Entry::Connected {
                client,
                credential,
                since,
                ..
            } => AgentInfo {
                name: name.to_owned(),
                connected: !client.is_closed(),
                since: *since,
                credential: credential.clone(),
            },
            Entry::Disconnected { since, credential } => AgentInfo {
                name: name.to_owned(),
                connected: false,
                since: *since,
                credential: credential.clone(),
            },
        }
    }
}

struct Inner<C> {
    entries: HashMap<String, Entry<C>>,
    next_generation: u64,
}

/// The single-process [`Registry`]: a map from agent name to its state
/// behind one `std::sync::Mutex`.
///
/// The lock is only held for map operations, never across an `.await`
/// (no method here is async), so a blocking mutex is both correct and
/// cheaper than an async one; contention is one short critical section per
/// scrape and per connect. Disconnected entries expire lazily: a lookup
/// of an expired entry forgets it, and listings and registrations sweep all
/// expired entries. Time is tokio's clock, so tests can pause it.
///
/// It is generic over the tunnel handle only so it can be tested without
/// real tunnels; the gateway uses `LocalRegistry<TunnelClient>`.
pub struct LocalRegistry<C = TunnelClient> {
    inner: Mutex<Inner<C>>,
    retention: Duration,
    max_agents: usize,
}

impl<C> fmt::Debug for LocalRegistry<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LocalRegistry")
            .field("retention", &self.retention)
            .field("max_agents", &self.max_agents)
            .finish_non_exhaustive()
    }
}

impl<C: TunnelHandle> LocalRegistry<C> {
    /// An empty registry forgetting disconnected agents after `retention`
    /// and holding at most `max_agents` names.
    pub fn new(retention: Duration, max_agents: usize) -> LocalRegistry<C> {
        LocalRegistry {
            inner: Mutex::new(Inner {
                entries: HashMap::new(),
                next_generation: 1,
            }),
            retention,
            max_agents,
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner<C>> {
        // No code holding the lock can leave the map inconsistent on a
        // panic, so a poisoned lock is still good to use.
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn sweep(&self, inner: &mut Inner<C>, now: Instant) {
        let retention = self.retention;
        inner
            .entries
            .retain(|_, entry| !entry.expired(now, retention));
    }

    fn check_locked(
        &self,
        inner: &mut Inner<C>,
        name: &str,
        credential: &CredentialId,
        now: Instant,
    ) -> Result<(), RegisterError> {
        match inner.entries.get(name) {
            Some(
                entry @ Entry::Connected {
                    credential: held, ..
                },
            ) if entry.is_live() && held != credential => Err(RegisterError::NameTaken {
                name: name.to_owned(),
            }),
            Some(entry) if !entry.expired(now, self.retention) => Ok(()),
            _ => {
                if inner.entries.len() >= self.max_agents {
                    self.sweep(inner, now);
                    if inner.entries.len() >= self.max_agents {
                        return Err(RegisterError::Full {
                            max: self.max_agents,
                        });
                    }
                }
                Ok(())
            }
        }
    }

    /// See [`Registry::check`].
    pub fn check(&self, name: &str, credential: &CredentialId) -> Result<(), RegisterError> {
        let now = Instant::now();
        let mut inner = self.lock();
        self.check_locked(&mut inner, name, credential, now)
    }

    /// See [`Registry::register`].
    pub fn register(
        &self,
        name: &str,
        credential: CredentialId,
        client: C,
    ) -> Result<Registration, RegisterError> {
        let now = Instant::now();
        let mut inner = self.lock();
        self.check_locked(&mut inner, name, &credential, now)?;
        let generation = Generation(inner.next_generation);
        inner.next_generation += 1;
        let (release, released) = oneshot::channel();
        let old = inner.entries.insert(
            name.to_owned(),
            Entry::Connected {
                client,
                credential,
                since: now,
                generation,
                _release: release,
            },
        );
        drop(inner);
        // Dropping the old entry (outside the lock) releases its tunnel.
        let replaced = matches!(old, Some(Entry::Connected { .. }));
        Ok(Registration {
            generation,
            replaced,
            released: Released(released),
        })
    }

    /// See [`Registry::mark_disconnected`].
    pub fn mark_disconnected(&self, name: &str, generation: Generation) -> bool {
        let now = Instant::now();
        let mut inner = self.lock();
        let Some(entry) = inner.entries.get_mut(name) else {
            return false;
        };
        let credential = match entry {
            Entry::Connected {
                generation: current,
                credential,
                ..
            } if *current == generation => credential.clone(),
            _ => return false,
        };
        let old = core::mem::replace(
            entry,
            Entry::Disconnected {
                since: now,
                credential,
            },
        );
        drop(inner);
        drop(old);
        true
    }

    /// See [`Registry::route`].
    pub fn route(&self, name: &str) -> Route<C> {
        let now = Instant::now();
        let mut inner = self.lock();
        match inner.entries.get(name) {
            None => Route::Unknown,
            Some(Entry::Connected { client, .. }) => {
                if client.is_closed() {
                    Route::Disconnected
                } else {
                    Route::Connected(client.clone())
                }
            }
            Some(entry) if entry.expired(now, self.retention) => {
                inner.entries.remove(name);
                Route::Unknown
            }
            Some(Entry::Disconnected { .. }) => Route::Disconnected,
        }
    }

    /// See [`Registry::agents`].
    pub fn agents(&self) -> Vec<AgentInfo> {
        let now = Instant::now();
        let mut inner = self.lock();
        self.sweep(&mut inner, now);
        let mut agents: Vec<AgentInfo> = inner
            .entries
            .iter()
            .map(|(name, entry)| entry.info(name))
            .collect();
        drop(inner);
        agents.sort_unstable_by(|a, b| a.name.cmp(&b.name));
        agents
    }

    /// See [`Registry::counts`].
    pub fn counts(&self) -> AgentCounts {
        let now = Instant::now();
        let mut inner = self.lock();
        self.sweep(&mut inner, now);
        AgentCounts {
            connected: inner.entries.values().filter(|e| e.is_live()).count(),
            known: inner.entries.len(),
        }
    }
}

impl Registry for LocalRegistry<TunnelClient> {
    fn check(&self, name: &str, credential: &CredentialId) -> Result<(), RegisterError> {
        LocalRegistry::check(self, name, credential)
    }

    fn register(
        &self,
        name: &str,
        credential: CredentialId,
        client: TunnelClient,
    ) -> Result<Registration, RegisterError> {
        LocalRegistry::register(self, name, credential, client)
    }

    fn mark_disconnected(&self, name: &str, generation: Generation) -> bool {
        LocalRegistry::mark_disconnected(self, name, generation)
    }

    fn route(&self, name: &str) -> Route {
        LocalRegistry::route(self, name)
    }

    fn agents(&self) -> Vec<AgentInfo> {
        LocalRegistry::agents(self)
    }

    fn counts(&self) -> AgentCounts {
        LocalRegistry::counts(self)
    }
}
