//! The group coordinator: found with FindCoordinator, reconnected when it moves; offset commits
//! and fetches; and the committer task that orders sync and async commits on one connection.

use std::collections::BTreeMap;
use std::time::Duration;

use fjord_protocol::ErrorCode;
use kafka_protocol::messages::offset_fetch_request::OffsetFetchRequestTopic;
use kafka_protocol::messages::{
    FindCoordinatorRequest, GroupId, OffsetCommitRequest, OffsetFetchRequest, TopicName,
};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

use super::fetcher::connect_any;
use crate::admin::TopicPartition;
use crate::connection::Connection;
use crate::error::{Error, Result};
use crate::requests::{self, s};

const FIND_COORDINATOR_MAX_V: i16 = 3;
const OFFSET_COMMIT_MAX_V: i16 = 8;
const OFFSET_FETCH_MAX_V: i16 = 7;
/// Attempts for a request that fails because the coordinator moved or is loading.
const ATTEMPTS: usize = 10;
const RETRY_BACKOFF: Duration = Duration::from_millis(100);

/// Whether a coordinator error means: find the coordinator again and retry.
pub(crate) fn coordinator_moved(code: i16) -> bool {
    matches!(
        ErrorCode::try_from_code(code),
        Some(
            ErrorCode::NotCoordinator
                | ErrorCode::CoordinatorNotAvailable
                | ErrorCode::CoordinatorLoadInProgress
        )
    )
}

/// A lazily (re)connected coordinator connection for one group.
#[derive(Debug)]
pub(crate) struct Coordinator {
    servers: Vec<String>,
    client_id: String,
    group: String,
    conn: Option<Connection>,
}

/// Who commits: a member of a generation, or a simple consumer (generation -1).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Member {
    pub(crate) member_id: String,
    pub(crate) generation: i32,
    pub(crate) instance_id: Option<String>,
}

impl Member {
    pub(crate) fn none() -> Self {
        Member {
            member_id: String::new(),
            generation: -1,
            instance_id: None,
        }
    }
}

impl Coordinator {
    pub(crate) fn new(servers: &[String], client_id: &str, group: &str) -> Self {
        Coordinator {
            servers: servers.to_vec(),
            client_id: client_id.to_string(),
            group: group.to_string(),
            conn: None,
        }
    }

    pub(crate) fn group(&self) -> &str {
        &self.group
    }

    /// The coordinator connection, finding the coordinator first when needed.
    pub(crate) async fn conn(&mut self) -> Result<&mut Connection> {
        if self.conn.is_none() {
            let mut bootstrap = connect_any(&self.servers, &self.client_id).await?;
            let version = bootstrap
                .version_of::<FindCoordinatorRequest>()?
                .min(FIND_COORDINATOR_MAX_V);
            let request = FindCoordinatorRequest::default()
                .with_key(s(&self.group))
                .with_key_type(0);
            let response = bootstrap.send_at(&request, version).await?;
            if response.error_code != 0 {
                return Err(Error::broker(
                    format!("finding the coordinator of group {}", self.group),
                    response.error_code,
                    response.error_message.map(|m| m.to_string()),
                ));
            }
            let addr = format!("{}:{}", response.host.as_str(), response.port);
            let conn = if addr == bootstrap.addr() {
                bootstrap
            } else {
                Connection::connect(&addr, &self.client_id).await?
            };
            self.conn = Some(conn);
        }
        Ok(self.conn.as_mut().expect("connected above"))
    }

    /// Forgets the connection: the next request finds the coordinator again.
    pub(crate) fn reset(&mut self) {
        self.conn = None;
    }

    /// Commits `offsets` for the group, retrying while the coordinator moves.
    pub(crate) async fn commit(
        &mut self,
        member: &Member,
        offsets: &BTreeMap<TopicPartition, i64>,
    ) -> Result<()> {
        if offsets.is_empty() {
            return Ok(());
        }
        let request = requests::offset_commit(
            &self.group,
            &requests::Committer {
                generation: member.generation,
                member_id: &member.member_id,
                instance_id: member.instance_id.as_deref(),
            },
            offsets,
        );
        let mut attempt = 0;
        'retry: loop {
            attempt += 1;
            let response = match self.send_commit(&request).await {
                Ok(r) => r,
                Err(e) if attempt < ATTEMPTS && retriable(&e) => {
                    self.reset();
                    tokio::time::sleep(RETRY_BACKOFF).await;
                    continue;
                }
                Err(e) => return Err(e),
            };
            for topic in response.topics {
                for p in topic.partitions {
                    if p.error_code == 0 {
                        continue;
                    }
                    if coordinator_moved(p.error_code) && attempt < ATTEMPTS {
                        self.reset();
                        tokio::time::sleep(RETRY_BACKOFF).await;
                        continue 'retry;
                    }
                    return Err(Error::broker(
                        format!(
                            "committing {}-{} for group {}",
                            topic.name.0.as_str(),
                            p.partition_index,
                            self.group
                        ),
                        p.error_code,
                        None,
                    ));
                }
            }
            return Ok(());
        }
    }

    async fn send_commit(
        &mut self,
        request: &OffsetCommitRequest,
    ) -> Result<kafka_protocol::messages::OffsetCommitResponse> {
        let conn = self.conn().await?;
        let version = conn
            .version_of::<OffsetCommitRequest>()?
            .min(OFFSET_COMMIT_MAX_V);
        conn.send_at(request, version).await
    }

    /// The group's committed offsets of `partitions` (`None`: nothing committed).
    pub(crate) async fn committed(
        &mut self,
        partitions: &[TopicPartition],
    ) -> Result<BTreeMap<TopicPartition, Option<i64>>> {
        let mut by_topic: BTreeMap<&str, Vec<i32>> = BTreeMap::new();
        for (topic, partition) in partitions {
            by_topic.entry(topic).or_default().push(*partition);
        }
        let request = OffsetFetchRequest::default()
            .with_group_id(GroupId(s(&self.group)))
            .with_require_stable(true)
            .with_topics(Some(
                by_topic
                    .into_iter()
                    .map(|(t, p)| {
                        OffsetFetchRequestTopic::default()
                            .with_name(TopicName(s(t)))
                            .with_partition_indexes(p)
                    })
                    .collect(),
            ));
        let mut attempt = 0;
        loop {
            attempt += 1;
            let sent = async {
                let conn = self.conn().await?;
                let version = conn
                    .version_of::<OffsetFetchRequest>()?
                    .min(OFFSET_FETCH_MAX_V);
                conn.send_at(&request, version).await
            };
            let response = match sent.await {
                Ok(r) => r,
                Err(e) if attempt < ATTEMPTS && retriable(&e) => {
                    self.reset();
                    tokio::time::sleep(RETRY_BACKOFF).await;
                    continue;
                }
                Err(e) => return Err(e),
            };
            let unstable = ErrorCode::UnstableOffsetCommit.code();
            if (coordinator_moved(response.error_code) || response.error_code == unstable)
                && attempt < ATTEMPTS
            {
                self.reset();
                tokio::time::sleep(RETRY_BACKOFF).await;
                continue;
            }
            if response.error_code != 0 {
                return Err(Error::broker(
                    format!("fetching the offsets of group {}", self.group),
                    response.error_code,
                    None,
                ));
            }
            let mut out: BTreeMap<TopicPartition, Option<i64>> =
                partitions.iter().map(|tp| (tp.clone(), None)).collect();
            for topic in response.topics {
                for p in topic.partitions {
                    let tp = (topic.name.0.to_string(), p.partition_index);
                    if p.error_code != 0 {
                        return Err(Error::broker(
                            format!("fetching the offset of {}-{}", tp.0, tp.1),
                            p.error_code,
                            None,
                        ));
                    }
                    out.insert(tp, (p.committed_offset >= 0).then_some(p.committed_offset));
                }
            }
            return Ok(out);
        }
    }
}

/// Transport failures and coordinator moves are worth a retry on a new connection.
pub(crate) fn retriable(error: &Error) -> bool {
    match error {
        Error::Connect { .. } | Error::Io { .. } | Error::Timeout { .. } => true,
        Error::Broker { code, .. } => coordinator_moved(code.code()),
        _ => false,
    }
}

/// Called with the outcome of an asynchronous commit.
pub type CommitCallback = Box<dyn FnOnce(Result<()>) + Send + 'static>;

enum Reply {
    Sync(oneshot::Sender<Result<()>>),
    Async(Option<CommitCallback>),
}

struct Commit {
    member: Member,
    offsets: BTreeMap<TopicPartition, i64>,
    reply: Reply,
}

/// A task that owns a coordinator connection and commits in the order asked.
pub(crate) struct Committer {
    tx: Option<mpsc::Sender<Commit>>,
    task: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for Committer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Committer").finish_non_exhaustive()
    }
}

impl Committer {
    pub(crate) fn spawn(mut coordinator: Coordinator) -> Self {
        let (tx, mut rx) = mpsc::channel::<Commit>(64);
        let task = tokio::spawn(async move {
            while let Some(commit) = rx.recv().await {
                let result = coordinator.commit(&commit.member, &commit.offsets).await;
                match commit.reply {
                    Reply::Sync(reply) => {
                        let _ = reply.send(result);
                    }
                    Reply::Async(Some(callback)) => callback(result),
                    Reply::Async(None) => {
                        if let Err(e) = result {
                            tracing::warn!(group = coordinator.group(), error = %e, "asynchronous commit failed");
                        }
                    }
                }
            }
        });
        Committer {
            tx: Some(tx),
            task: Some(task),
        }
    }

    fn closed() -> Error {
        Error::Protocol {
            addr: String::new(),
            reason: "the consumer is closed".into(),
        }
    }

    /// Commits after every earlier commit, and waits.
    pub(crate) async fn commit_sync(
        &self,
        member: Member,
        offsets: BTreeMap<TopicPartition, i64>,
    ) -> Result<()> {
        let tx = self.tx.as_ref().ok_or_else(Self::closed)?;
        let (reply, rx) = oneshot::channel();
        tx.send(Commit {
            member,
            offsets,
            reply: Reply::Sync(reply),
        })
        .await
        .map_err(|_| Self::closed())?;
        rx.await.map_err(|_| Self::closed())?
    }

    /// Queues a commit (waiting only while the bounded queue is full).
    pub(crate) async fn commit_async(
        &self,
        member: Member,
        offsets: BTreeMap<TopicPartition, i64>,
        callback: Option<CommitCallback>,
    ) -> Result<()> {
        let tx = self.tx.as_ref().ok_or_else(Self::closed)?;
        tx.send(Commit {
            member,
            offsets,
            reply: Reply::Async(callback),
        })
        .await
        .map_err(|_| Self::closed())
    }

    /// Finishes the queued commits and stops.
    pub(crate) async fn close(&mut self) {
        self.tx = None;
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

impl Drop for Committer {
    fn drop(&mut self) {
        // Queued commits still run: dropping the sender ends the task after them.
        self.tx = None;
    }
}
