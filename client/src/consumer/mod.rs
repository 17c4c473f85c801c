//! The consumer: `assign` partitions or `subscribe` with a group, then `poll` records.
//!
//! - [`config`]: [`ConsumerConfig`], typed or from Kafka property names.
//! - `fetcher`: metadata, leader connections, Fetch and ListOffsets.
//! - `record`: [`ConsumerRecord`] and batch decoding (all codecs, control records skipped).
//! - `coordinator`: FindCoordinator, OffsetCommit/OffsetFetch and the committer task.
//! - `group`: classic-protocol membership and the heartbeat task.
//! - [`RecordStream`]: the consumer as a `Stream`.
//! - [`assignor`]: range, round-robin and cooperative-sticky assignment.
//!
//! ```no_run
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! use std::time::Duration;
//! use fjord_client::{Consumer, ConsumerConfig, OffsetReset};
//! let config = ConsumerConfig::new("127.0.0.1:9092")
//!     .group_id("readers")
//!     .auto_offset_reset(OffsetReset::Earliest);
//! let mut consumer = Consumer::new(config).await?;
//! consumer.subscribe(["events"])?;
//! loop {
//!     for record in consumer.poll(Duration::from_secs(1)).await? {
//!         println!("{}-{}@{}: {:?}", record.topic, record.partition, record.offset, record.value);
//!     }
//! }
//! # }
//! ```

pub mod assignor;
pub mod config;
mod coordinator;
mod fetcher;
mod group;
mod member;
mod record;
mod stream;

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use fjord_protocol::ErrorCode;
use tokio::time::Instant;

pub use self::config::{
    AssignmentStrategy, ConfigError, ConsumerConfig, IsolationLevel, OffsetReset,
};
pub use self::coordinator::CommitCallback;
pub use self::group::RebalanceListener;
pub use self::member::{GroupMember, HeartbeatOutcome, JoinedGroup};
pub use self::record::{ConsumerRecord, Topic};
pub use self::stream::RecordStream;

use self::coordinator::{Committer, Coordinator, Member};
use self::fetcher::{Cluster, FetchParams, PendingFetch};
use self::group::Membership;
use crate::admin::TopicPartition;
use crate::error::{Error, Result};

/// Pause between fetch rounds when nothing is fetchable.
const IDLE: Duration = Duration::from_millis(20);

/// A Kafka consumer.
pub struct Consumer {
    config: ConsumerConfig,
    cluster: Cluster,
    /// Assigned partitions (by `assign` or by the group).
    assigned: BTreeSet<TopicPartition>,
    /// Next offset to read, per assigned partition with a known position.
    positions: BTreeMap<TopicPartition, i64>,
    paused: BTreeSet<TopicPartition>,
    subscription: Option<BTreeSet<String>>,
    /// The next fetch round, started when the last poll returned records.
    prefetch: Option<PendingFetch>,
    /// A pattern subscription and when the topics were last matched against it.
    pattern: Option<(regex::Regex, Option<Instant>)>,
    membership: Option<Membership>,
    committer: Option<Committer>,
    listener: Option<Box<dyn RebalanceListener>>,
    last_auto_commit: Instant,
    /// Offsets last committed by auto commit (to skip unchanged commits).
    auto_committed: BTreeMap<TopicPartition, i64>,
}

impl std::fmt::Debug for Consumer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Consumer")
            .field("group_id", &self.config.group_id)
            .field("assigned", &self.assigned)
            .field("positions", &self.positions)
            .finish_non_exhaustive()
    }
}

fn usage(reason: &str) -> Error {
    Error::Protocol {
        addr: String::new(),
        reason: reason.to_string(),
    }
}

impl Consumer {
    /// Connects to a bootstrap server. Nothing is fetched before `assign` or `subscribe`.
    pub async fn new(config: ConsumerConfig) -> Result<Self> {
        config.validate().map_err(|e| usage(&e.to_string()))?;
        let cluster = Cluster::connect(&config.bootstrap_servers, &config.client_id).await?;
        let committer = config.group_id.as_deref().map(|group| {
            Committer::spawn(Coordinator::new(
                &config.bootstrap_servers,
                &config.client_id,
                group,
            ))
        });
        Ok(Consumer {
            config,
            cluster,
            assigned: BTreeSet::new(),
            positions: BTreeMap::new(),
            paused: BTreeSet::new(),
            subscription: None,
            prefetch: None,
            pattern: None,
            membership: None,
            committer,
            listener: None,
            last_auto_commit: Instant::now(),
            auto_committed: BTreeMap::new(),
        })
    }

    /// Reads these partitions without a group (replacing any earlier assignment).
    pub fn assign(&mut self, partitions: impl IntoIterator<Item = TopicPartition>) -> Result<()> {
        if self.subscription.is_some() {
            return Err(usage(
                "assign after subscribe: a consumer does one or the other",
            ));
        }
        self.assigned = partitions.into_iter().collect();
        self.positions.retain(|tp, _| self.assigned.contains(tp));
        self.paused.retain(|tp| self.assigned.contains(tp));
        Ok(())
    }

    /// Joins the group (`group.id`) for these topics; the join happens in `poll`.
    pub fn subscribe<T: Into<String>>(
        &mut self,
        topics: impl IntoIterator<Item = T>,
    ) -> Result<()> {
        let Some(group) = self.config.group_id.clone() else {
            return Err(Error::broker(
                "subscribing",
                ErrorCode::InvalidGroupId.code(),
                Some("subscribe needs group.id".into()),
            ));
        };
        if self.subscription.is_none() && !self.assigned.is_empty() {
            return Err(usage(
                "subscribe after assign: a consumer does one or the other",
            ));
        }
        self.subscription = Some(topics.into_iter().map(Into::into).collect());
        self.pattern = None;
        let membership = self
            .membership
            .get_or_insert_with(|| Membership::new(&self.config, &group));
        membership.request_rejoin();
        Ok(())
    }

    /// Joins the group (`group.id`) for every topic whose whole name matches `pattern` (a
    /// regular expression, as Java's `subscribe(Pattern)`); internal topics are left out. New
    /// matching topics are picked up every `metadata.max.age.ms`, and the group rebalances.
    pub fn subscribe_pattern(&mut self, pattern: &str) -> Result<()> {
        let regex = regex::Regex::new(&format!("^(?:{pattern})$")).map_err(|e| Error::Config {
            key: "pattern".into(),
            value: pattern.to_string(),
            reason: e.to_string(),
        })?;
        self.subscribe(Vec::<String>::new())?;
        self.pattern = Some((regex, None));
        Ok(())
    }

    /// Matches the topics against the pattern subscription when due; a change rejoins.
    async fn match_pattern(&mut self) -> Result<()> {
        let Some((regex, checked)) = self.pattern.as_ref() else {
            return Ok(());
        };
        if checked.is_some_and(|at| at.elapsed() < self.config.metadata_max_age) {
            return Ok(());
        }
        let regex = regex.clone();
        let topics: BTreeSet<String> = self
            .cluster
            .all_topics()
            .await?
            .into_iter()
            .filter(|(name, internal)| !internal && regex.is_match(name))
            .map(|(name, _)| name)
            .collect();
        self.pattern = Some((regex, Some(Instant::now())));
        if self.subscription.as_ref() != Some(&topics) {
            tracing::debug!(?topics, "pattern subscription matches new topics");
            self.subscription = Some(topics);
            if let Some(membership) = self.membership.as_ref() {
                membership.request_rejoin();
            }
        }
        Ok(())
    }

    /// Called around rebalances.
    pub fn set_rebalance_listener(&mut self, listener: impl RebalanceListener + 'static) {
        self.listener = Some(Box::new(listener));
    }

    /// The partitions assigned now.
    pub fn assignment(&self) -> Vec<TopicPartition> {
        self.assigned.iter().cloned().collect()
    }

    /// The next offset to read of each partition with a known position.
    pub fn positions(&self) -> BTreeMap<TopicPartition, i64> {
        self.positions.clone()
    }

    /// The next offset to read of one partition.
    pub fn position(&self, partition: &TopicPartition) -> Option<i64> {
        self.positions.get(partition).copied()
    }

    /// Reads from `offset` next.
    pub fn seek(&mut self, partition: TopicPartition, offset: i64) {
        self.positions.insert(partition, offset);
    }

    /// Moves each partition to its first record at or after `timestamp` (ms), or to the end
    /// where there is none.
    pub async fn seek_to_timestamp(
        &mut self,
        partitions: &[TopicPartition],
        timestamp: i64,
    ) -> Result<()> {
        let found = self
            .cluster
            .list_offsets(partitions, timestamp, self.config.isolation_level)
            .await?;
        let missing: Vec<TopicPartition> = found
            .iter()
            .filter(|(_, o)| o.is_none())
            .map(|(tp, _)| tp.clone())
            .collect();
        for (tp, offset) in found {
            if let Some(offset) = offset {
                self.positions.insert(tp, offset);
            }
        }
        if !missing.is_empty() {
            self.seek_to(&missing, -1).await?;
        }
        Ok(())
    }

    /// Moves partitions to their log start offsets.
    pub async fn seek_to_beginning(&mut self, partitions: &[TopicPartition]) -> Result<()> {
        self.seek_to(partitions, -2).await
    }

    /// Moves partitions to their ends (the high watermark, or the last stable offset).
    pub async fn seek_to_end(&mut self, partitions: &[TopicPartition]) -> Result<()> {
        self.seek_to(partitions, -1).await
    }

    async fn seek_to(&mut self, partitions: &[TopicPartition], spec: i64) -> Result<()> {
        if partitions.is_empty() {
            return Ok(());
        }
        let found = self
            .cluster
            .list_offsets(partitions, spec, self.config.isolation_level)
            .await?;
        for (tp, offset) in found {
            self.positions.insert(tp, offset.unwrap_or(0));
        }
        Ok(())
    }

    /// Stops fetching these partitions (positions are kept).
    pub fn pause(&mut self, partitions: &[TopicPartition]) {
        self.paused.extend(partitions.iter().cloned());
    }

    /// Fetches these partitions again.
    pub fn resume(&mut self, partitions: &[TopicPartition]) {
        for tp in partitions {
            self.paused.remove(tp);
        }
    }

    /// The paused partitions.
    pub fn paused(&self) -> Vec<TopicPartition> {
        self.paused.iter().cloned().collect()
    }

    fn committer(&self) -> Result<&Committer> {
        self.committer.as_ref().ok_or_else(|| {
            Error::broker(
                "committing",
                ErrorCode::InvalidGroupId.code(),
                Some("commits need group.id".into()),
            )
        })
    }

    fn member(&self) -> Member {
        self.membership
            .as_ref()
            .map_or_else(Member::none, Membership::member)
    }

    /// Commits `offsets` (the next offsets to read) and waits for the coordinator.
    pub async fn commit_sync(&mut self, offsets: BTreeMap<TopicPartition, i64>) -> Result<()> {
        let member = self.member();
        self.committer()?.commit_sync(member, offsets).await
    }

    /// Commits `offsets` in the background, after any earlier commit; `callback` gets the
    /// outcome.
    pub async fn commit_async(
        &mut self,
        offsets: BTreeMap<TopicPartition, i64>,
        callback: Option<CommitCallback>,
    ) -> Result<()> {
        let member = self.member();
        self.committer()?
            .commit_async(member, offsets, callback)
            .await
    }

    /// The group's committed offsets of `partitions` (`None`: nothing committed).
    pub async fn committed(
        &mut self,
        partitions: &[TopicPartition],
    ) -> Result<BTreeMap<TopicPartition, Option<i64>>> {
        let group = self.config.group_id.clone().ok_or_else(|| {
            Error::broker(
                "fetching committed offsets",
                ErrorCode::InvalidGroupId.code(),
                Some("needs group.id".into()),
            )
        })?;
        let mut coordinator = Coordinator::new(
            &self.config.bootstrap_servers,
            &self.config.client_id,
            &group,
        );
        coordinator.committed(partitions).await
    }

    /// Waits up to `timeout` for records of the assigned, unpaused partitions. Joins or rejoins
    /// the group first when needed, and auto-commits when due.
    pub async fn poll(&mut self, timeout: Duration) -> Result<Vec<ConsumerRecord>> {
        let deadline = Instant::now() + timeout;
        loop {
            if self.subscription.is_some() {
                self.maybe_rebalance().await?;
            }
            self.maybe_auto_commit().await?;
            self.init_positions().await?;
            let fetchable: Vec<(TopicPartition, i64)> = self
                .positions
                .iter()
                .filter(|(tp, _)| self.assigned.contains(*tp) && !self.paused.contains(*tp))
                .map(|(tp, o)| (tp.clone(), *o))
                .collect();
            let now = Instant::now();
            let remaining = deadline.saturating_duration_since(now);
            if fetchable.is_empty() {
                if remaining.is_zero() {
                    return Ok(Vec::new());
                }
                tokio::time::sleep(remaining.min(IDLE)).await;
                continue;
            }
            let params = FetchParams {
                max_wait: remaining.min(self.config.fetch_max_wait),
                min_bytes: self.config.fetch_min_bytes,
                partition_max_bytes: self.config.max_partition_fetch_bytes,
                isolation: self.config.isolation_level,
                check_crcs: self.config.check_crcs,
            };
            // The round prefetched at the end of the last poll, if it still fits; a seek,
            // pause or rebalance since then abandons it.
            let mut pending = match self.prefetch.take() {
                Some(p) if p.positions == fetchable => p,
                _ => self.cluster.start_fetch(&fetchable, params).await?,
            };
            if !self.cluster.wait_fetch(&mut pending, deadline).await {
                self.prefetch = Some(pending);
                return Ok(Vec::new());
            }
            let outcome = self.cluster.finish_fetch(pending)?;
            for (tp, next) in outcome.positions {
                // A seek or revoke during the fetch wins.
                if fetchable
                    .iter()
                    .any(|(f, o)| *f == tp && self.positions.get(f) == Some(o))
                {
                    self.positions.insert(tp, next);
                }
            }
            if !outcome.out_of_range.is_empty() {
                self.reset_positions(&outcome.out_of_range, true).await?;
            }
            if outcome.stale_metadata {
                let topics: BTreeSet<String> =
                    self.assigned.iter().map(|tp| tp.0.clone()).collect();
                if let Err(e) = self.cluster.refresh(&topics).await {
                    tracing::debug!(error = %e, "metadata refresh failed");
                }
                tokio::time::sleep(IDLE).await;
            }
            if !outcome.records.is_empty() {
                self.start_prefetch().await;
                return Ok(outcome.records);
            }
            if Instant::now() >= deadline {
                return Ok(outcome.records);
            }
        }
    }

    /// Starts the next fetch round while the caller works through the records just returned.
    async fn start_prefetch(&mut self) {
        let next: Vec<(TopicPartition, i64)> = self
            .positions
            .iter()
            .filter(|(tp, _)| self.assigned.contains(*tp) && !self.paused.contains(*tp))
            .map(|(tp, o)| (tp.clone(), *o))
            .collect();
        if next.is_empty() || next.len() < self.assigned.len().saturating_sub(self.paused.len()) {
            return;
        }
        let params = FetchParams {
            max_wait: self.config.fetch_max_wait,
            min_bytes: self.config.fetch_min_bytes,
            partition_max_bytes: self.config.max_partition_fetch_bytes,
            isolation: self.config.isolation_level,
            check_crcs: self.config.check_crcs,
        };
        match self.cluster.start_fetch(&next, params).await {
            Ok(pending) => self.prefetch = Some(pending),
            Err(e) => tracing::debug!(error = %e, "prefetch not started"),
        }
    }

    /// Gives partitions without a position one: the committed offset, else `auto.offset.reset`.
    async fn init_positions(&mut self) -> Result<()> {
        let missing: Vec<TopicPartition> = self
            .assigned
            .iter()
            .filter(|tp| !self.positions.contains_key(*tp))
            .cloned()
            .collect();
        if missing.is_empty() {
            return Ok(());
        }
        let mut unresolved = missing.clone();
        if self.config.group_id.is_some() {
            let committed = self.committed(&missing).await?;
            unresolved.clear();
            for (tp, offset) in committed {
                match offset {
                    Some(o) => {
                        self.positions.insert(tp, o);
                    }
                    None => unresolved.push(tp),
                }
            }
        }
        self.reset_positions(&unresolved, false).await
    }

    async fn reset_positions(
        &mut self,
        partitions: &[TopicPartition],
        out_of_range: bool,
    ) -> Result<()> {
        if partitions.is_empty() {
            return Ok(());
        }
        match self.config.auto_offset_reset {
            OffsetReset::Earliest => self.seek_to_beginning(partitions).await,
            OffsetReset::Latest => self.seek_to_end(partitions).await,
            OffsetReset::None => {
                let (tp, code, what) = (
                    &partitions[0],
                    ErrorCode::OffsetOutOfRange,
                    if out_of_range {
                        "the position is out of range"
                    } else {
                        "no committed offset"
                    },
                );
                Err(Error::broker(
                    format!("reading {}-{}", tp.0, tp.1),
                    code.code(),
                    Some(format!("{what} and auto.offset.reset is none")),
                ))
            }
        }
    }

    fn auto_commit_enabled(&self) -> bool {
        self.config.enable_auto_commit && self.committer.is_some()
    }

    /// Positions of assigned partitions, as offsets to commit.
    fn commit_offsets(
        &self,
        only: Option<&BTreeSet<TopicPartition>>,
    ) -> BTreeMap<TopicPartition, i64> {
        self.positions
            .iter()
            .filter(|(tp, _)| self.assigned.contains(*tp) && only.is_none_or(|o| o.contains(*tp)))
            .map(|(tp, o)| (tp.clone(), *o))
            .collect()
    }

    async fn maybe_auto_commit(&mut self) -> Result<()> {
        if !self.auto_commit_enabled()
            || self.last_auto_commit.elapsed() < self.config.auto_commit_interval
        {
            return Ok(());
        }
        self.last_auto_commit = Instant::now();
        let mut offsets = self.commit_offsets(None);
        offsets.retain(|tp, o| self.auto_committed.get(tp) != Some(o));
        if offsets.is_empty() {
            return Ok(());
        }
        self.auto_committed.extend(offsets.clone());
        self.commit_async(offsets, None).await
    }

    /// Commits synchronously before giving partitions up (auto commit only); failures are logged.
    async fn commit_before_revoke(&mut self, partitions: &BTreeSet<TopicPartition>) {
        if !self.auto_commit_enabled() || partitions.is_empty() {
            return;
        }
        let offsets = self.commit_offsets(Some(partitions));
        if let Err(e) = self.commit_sync(offsets.clone()).await {
            tracing::warn!(error = %e, "commit before revoking partitions failed");
        } else {
            self.auto_committed.extend(offsets);
        }
    }

    fn revoke(&mut self, partitions: &BTreeSet<TopicPartition>, lost: bool) {
        if partitions.is_empty() {
            return;
        }
        let list: Vec<TopicPartition> = partitions.iter().cloned().collect();
        if let Some(listener) = self.listener.as_mut() {
            if lost {
                listener.on_partitions_lost(&list);
            } else {
                listener.on_partitions_revoked(&list);
            }
        }
        for tp in partitions {
            self.assigned.remove(tp);
            self.positions.remove(tp);
            self.paused.remove(tp);
            self.auto_committed.remove(tp);
        }
    }

    async fn maybe_rebalance(&mut self) -> Result<()> {
        self.match_pattern().await?;
        let Some(topics) = self.subscription.clone() else {
            return Ok(());
        };
        let Some(membership) = self.membership.as_ref() else {
            return Ok(());
        };
        let (lost, needs_join, cooperative) = (
            membership.take_lost(),
            membership.needs_join(),
            membership.cooperative(),
        );
        if lost {
            let all = self.assigned.clone();
            self.revoke(&all, true);
        }
        if !needs_join {
            return Ok(());
        }
        if !cooperative {
            let all = self.assigned.clone();
            self.commit_before_revoke(&all).await;
            self.revoke(&all, false);
        }
        let owned: Vec<TopicPartition> = self.assigned.iter().cloned().collect();
        let membership = self.membership.as_mut().expect("checked above");
        let joined = membership.join(&topics, &owned, &mut self.cluster).await?;
        let new: BTreeSet<TopicPartition> = joined.assignment.into_iter().collect();
        let revoked: BTreeSet<TopicPartition> = self.assigned.difference(&new).cloned().collect();
        if !revoked.is_empty() {
            self.commit_before_revoke(&revoked).await;
            self.revoke(&revoked, false);
            // Cooperative: the partitions given up go to their new owner in the next round.
            if let Some(m) = self.membership.as_ref() {
                m.request_rejoin();
            }
        }
        let added: Vec<TopicPartition> = new.difference(&self.assigned).cloned().collect();
        self.assigned = new;
        if !added.is_empty()
            && let Some(listener) = self.listener.as_mut()
        {
            listener.on_partitions_assigned(&added);
        }
        Ok(())
    }

    /// The consumer as a `Stream` of records, polling with `poll_timeout` underneath.
    pub fn into_stream(self, poll_timeout: Duration) -> RecordStream {
        RecordStream::new(self, poll_timeout)
    }

    /// Commits positions (with auto commit), leaves the group and waits for queued commits.
    pub async fn close(mut self) -> Result<()> {
        let mut result = Ok(());
        if self.auto_commit_enabled() {
            let offsets = self.commit_offsets(None);
            if !offsets.is_empty() {
                result = self.commit_sync(offsets).await;
            }
        }
        if self.subscription.is_some() {
            let all = self.assigned.clone();
            self.revoke(&all, false);
        }
        if let Some(mut membership) = self.membership.take() {
            let left = membership.leave().await;
            if result.is_ok() {
                result = left;
            }
        }
        if let Some(mut committer) = self.committer.take() {
            committer.close().await;
        }
        result
    }
}
