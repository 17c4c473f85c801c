//! `fjord topic`: create, list, describe, delete topics and alter their configs.

use std::collections::BTreeMap;

use anyhow::{Context, bail};
use clap::{Args, Subcommand};
use fjord_client::Admin;

use crate::client_opts::key_value;

#[derive(Debug, Args)]
pub(crate) struct TopicArgs {
    /// Broker to connect to.
    #[arg(
        long,
        default_value = "127.0.0.1:9092",
        global = true,
        value_name = "HOST:PORT"
    )]
    bootstrap: String,
    #[command(subcommand)]
    command: TopicCommand,
}

#[derive(Debug, Subcommand)]
enum TopicCommand {
    /// Create a topic.
    Create {
        /// The topic name.
        topic: String,
        /// Number of partitions (default: the broker's num.partitions).
        #[arg(long, default_value_t = -1)]
        partitions: i32,
        /// Replication factor (default: the broker's default.replication.factor).
        #[arg(long, default_value_t = -1)]
        replication_factor: i16,
        /// A topic config, e.g. --config retention.ms=60000 (repeatable).
        #[arg(long = "config", value_name = "KEY=VALUE", value_parser = key_value)]
        configs: Vec<(String, String)>,
    },
    /// List topics.
    List {
        /// Include internal topics (__consumer_offsets).
        #[arg(long)]
        internal: bool,
    },
    /// Show a topic's partitions, leaders, replicas and config overrides.
    Describe {
        /// The topic name.
        topic: String,
    },
    /// Delete a topic and its data.
    Delete {
        /// The topic name.
        topic: String,
    },
    /// Set or remove topic configs.
    AlterConfig {
        /// The topic name.
        topic: String,
        /// Set a config, e.g. --set retention.ms=60000 (repeatable).
        #[arg(long = "set", value_name = "KEY=VALUE", value_parser = key_value)]
        set: Vec<(String, String)>,
        /// Remove an override, going back to the broker default (repeatable).
        #[arg(long = "delete", value_name = "KEY")]
        delete: Vec<String>,
    },
}

pub(crate) async fn run(args: TopicArgs) -> anyhow::Result<()> {
    let admin = Admin::connect(&args.bootstrap)
        .await
        .with_context(|| format!("cannot reach the broker at {}", args.bootstrap))?;
    match args.command {
        TopicCommand::Create {
            topic,
            partitions,
            replication_factor,
            configs,
        } => {
            admin
                .create_topic(
                    &topic,
                    partitions,
                    replication_factor,
                    &configs.into_iter().collect(),
                )
                .await?;
            println!("Created topic {topic}.");
        }
        TopicCommand::List { internal } => {
            for topic in admin.list_topics().await? {
                if internal || !topic.internal {
                    println!("{}", topic.name);
                }
            }
        }
        TopicCommand::Describe { topic } => {
            let t = admin.describe_topic(&topic).await?;
            let configs: Vec<String> = t
                .overrides
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect();
            println!(
                "Topic: {}\tPartitionCount: {}\tConfigs: {}",
                t.name,
                t.partitions.len(),
                configs.join(",")
            );
            let join = |ids: &[i32]| ids.iter().map(i32::to_string).collect::<Vec<_>>().join(",");
            for (partition, leader, replicas, isr) in &t.partitions {
                println!(
                    "\tTopic: {}\tPartition: {partition}\tLeader: {leader}\tReplicas: {}\tIsr: {}",
                    t.name,
                    join(replicas),
                    join(isr)
                );
            }
        }
        TopicCommand::Delete { topic } => {
            admin.delete_topic(&topic).await?;
            println!("Deleted topic {topic}.");
        }
        TopicCommand::AlterConfig { topic, set, delete } => {
            if set.is_empty() && delete.is_empty() {
                bail!("nothing to change: give --set KEY=VALUE and/or --delete KEY");
            }
            let mut changes: BTreeMap<String, Option<String>> =
                set.into_iter().map(|(k, v)| (k, Some(v))).collect();
            changes.extend(delete.into_iter().map(|k| (k, None)));
            admin.alter_topic_configs(&topic, &changes).await?;
            println!("Updated the configs of topic {topic}.");
        }
    }
    Ok(())
}
