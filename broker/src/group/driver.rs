//! Drives the [`GroupCoordinator`]: gives each request a token and a reply channel, carries out
//! the commands (persist to `__consumer_offsets` first, then reply), and ticks it.
//!
//! The coordinator sits behind a short-held `std::sync::Mutex`: `handle` is pure and fast, and
//! the only I/O under the lock is the page-cache append of a group's metadata record, which
//! must happen before the replies that follow it. Delayed replies (JoinGroup until the join
//! phase completes, a follower's SyncGroup until the leader's) wait on a `oneshot` outside it.

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use tokio::sync::oneshot;

use super::{
    Command, Event, GroupConfig, GroupCoordinator, GroupDescription, GroupListing, RequestToken,
    Response,
};
use crate::broker::Broker;

struct Inner {
    coordinator: GroupCoordinator,
    waiting: HashMap<RequestToken, oneshot::Sender<Response>>,
}

/// The broker's handle on its group coordinator.
pub(crate) struct GroupManager {
    inner: Mutex<Inner>,
    next_token: AtomicU64,
}

impl std::fmt::Debug for GroupManager {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GroupManager").finish_non_exhaustive()
    }
}

impl GroupManager {
    pub(crate) fn new(config: GroupConfig) -> Self {
        GroupManager {
            inner: Mutex::new(Inner {
                coordinator: GroupCoordinator::new(config),
                waiting: HashMap::new(),
            }),
            next_token: AtomicU64::new(1),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Sends one request (built around its token) and waits for its answer. `None` if the
    /// coordinator dropped the request without an answer (it never should).
    pub(crate) async fn request(
        &self,
        broker: &Broker,
        build: impl FnOnce(RequestToken) -> Event,
    ) -> Option<Response> {
        let token = RequestToken(self.next_token.fetch_add(1, Ordering::Relaxed));
        let (tx, rx) = oneshot::channel();
        {
            let mut inner = self.lock();
            inner.waiting.insert(token, tx);
            let commands = inner.coordinator.handle(broker.now_ms(), build(token));
            execute(broker, &mut inner, commands);
        }
        rx.await.ok()
    }

    /// Expires sessions and rebalance phases that are due.
    pub(crate) fn tick(&self, broker: &Broker) {
        let mut inner = self.lock();
        let now = broker.now_ms();
        if inner
            .coordinator
            .next_deadline_ms()
            .is_some_and(|d| d <= now)
        {
            let commands = inner.coordinator.handle(now, Event::Tick);
            execute(broker, &mut inner, commands);
        }
    }

    /// Loads a group read back from `__consumer_offsets`.
    pub(crate) fn load(&self, broker: &Broker, snapshot: super::GroupSnapshot) {
        let mut inner = self.lock();
        let commands = inner
            .coordinator
            .handle(broker.now_ms(), Event::Load(snapshot));
        execute(broker, &mut inner, commands);
    }

    pub(crate) fn describe(&self, group_id: &str) -> Option<GroupDescription> {
        self.lock().coordinator.describe(group_id)
    }

    pub(crate) fn list(&self) -> Vec<GroupListing> {
        self.lock().coordinator.list()
    }
}

fn execute(broker: &Broker, inner: &mut Inner, commands: Vec<Command>) {
    let now = broker.now_ms();
    for command in commands {
        match command {
            Command::Reply { token, response } => {
                if let Some(tx) = inner.waiting.remove(&token) {
                    // The client may have gone; its answer is then dropped.
                    let _ = tx.send(response);
                }
            }
            Command::PersistGroup(snapshot) => {
                let value = crate::offsets::encode_group(&snapshot);
                let written = broker
                    .offsets_topic()
                    .map_err(|e| e.message)
                    .and_then(|topic| {
                        broker
                            .offsets()
                            .write_group(&topic, &snapshot.group_id, Some(value), now)
                            .map_err(|e| e.to_string())
                    });
                if let Err(e) = written {
                    tracing::error!(group = %snapshot.group_id, error = %e, "could not persist group metadata");
                }
            }
            Command::DeleteGroup { group_id } => {
                let offsets = broker
                    .offsets()
                    .group(&group_id)
                    .into_keys()
                    .map(|k| (k, None))
                    .collect();
                let written = broker
                    .offsets_topic()
                    .map_err(|e| e.message)
                    .and_then(|topic| {
                        broker
                            .offsets()
                            .write(&topic, &group_id, offsets, now)
                            .map_err(|e| e.to_string())?;
                        broker
                            .offsets()
                            .write_group(&topic, &group_id, None, now)
                            .map_err(|e| e.to_string())
                    });
                if let Err(e) = written {
                    tracing::error!(group = %group_id, error = %e, "could not delete group records");
                }
            }
        }
    }
}
