//! `fjord cluster`: the cluster's brokers and partition placement, preferred-leader election
//! and partition reassignment (Kafka's kafka-leader-election and kafka-reassign-partitions).

use anyhow::{Context, bail};
use clap::{Args, Subcommand};
use fjord_client::Admin;

#[derive(Debug, Args)]
pub(crate) struct ClusterArgs {
    /// Broker to connect to (any broker of the cluster).
    #[arg(
        long,
        default_value = "127.0.0.1:9092",
        global = true,
        value_name = "HOST:PORT"
    )]
    bootstrap: String,
    #[command(subcommand)]
    command: ClusterCommand,
}

#[derive(Debug, Subcommand)]
enum ClusterCommand {
    /// Show the brokers and, per partition, the leader, replicas and in-sync replicas
    /// (under-replicated partitions are marked), and reassignments in progress.
    Describe {
        /// Only this topic.
        #[arg(long)]
        topic: Option<String>,
    },
    /// Move leadership back to each partition's preferred (first) replica.
    ElectLeaders {
        /// Only this topic (every topic when absent).
        #[arg(long)]
        topic: Option<String>,
        /// Only this partition of --topic.
        #[arg(long, requires = "topic")]
        partition: Option<i32>,
    },
    /// Move a partition's replicas to other brokers while traffic flows; the new replicas
    /// copy the data, then the old ones are dropped.
    Reassign {
        /// The topic.
        #[arg(long)]
        topic: String,
        /// The partition.
        #[arg(long)]
        partition: i32,
        /// The new replicas, the preferred leader first (e.g. 4,2,3).
        #[arg(long, value_delimiter = ',', required_unless_present = "cancel")]
        replicas: Vec<i32>,
        /// Cancel the partition's reassignment in progress instead.
        #[arg(long, conflicts_with = "replicas")]
        cancel: bool,
    },
}

pub(crate) async fn run(args: ClusterArgs) -> anyhow::Result<()> {
    let admin = Admin::connect(&args.bootstrap)
        .await
        .with_context(|| format!("cannot connect to {}", args.bootstrap))?;
    match args.command {
        ClusterCommand::Describe { topic } => {
            let cluster = admin.describe_cluster().await?;
            println!("cluster id {}", cluster.cluster_id);
            println!("{:<6} {:<24} RACK", "BROKER", "ADDRESS");
            for (id, host, port, rack) in &cluster.brokers {
                println!(
                    "{id:<6} {:<24} {}",
                    format!("{host}:{port}"),
                    rack.as_deref().unwrap_or("-")
                );
            }
            let topics = match &topic {
                Some(t) => vec![admin.describe_topic(t).await?],
                None => admin.list_topics().await?,
            };
            println!();
            println!(
                "{:<32} {:>9} {:>6} {:<16} {:<16}",
                "TOPIC", "PARTITION", "LEADER", "REPLICAS", "ISR"
            );
            let list = |v: &[i32]| v.iter().map(i32::to_string).collect::<Vec<_>>().join(",");
            for t in &topics {
                for (partition, leader, replicas, isr) in &t.partitions {
                    let mark = if isr.len() < replicas.len() {
                        "  under-replicated"
                    } else {
                        ""
                    };
                    let leader = if *leader < 0 {
                        "none".to_string()
                    } else {
                        leader.to_string()
                    };
                    println!(
                        "{:<32} {partition:>9} {leader:>6} {:<16} {:<16}{mark}",
                        t.name,
                        list(replicas),
                        list(isr)
                    );
                }
            }
            let moving = admin.list_reassignments().await?;
            if !moving.is_empty() {
                println!();
                println!("reassignments in progress:");
                for r in moving {
                    println!(
                        "  {}-{}: replicas {} (adding {}, removing {})",
                        r.topic,
                        r.partition,
                        list(&r.replicas),
                        list(&r.adding),
                        list(&r.removing)
                    );
                }
            }
        }
        ClusterCommand::ElectLeaders { topic, partition } => {
            let wanted = match (&topic, partition) {
                (Some(t), Some(p)) => Some(vec![(t.clone(), p)]),
                (Some(t), None) => Some(
                    admin
                        .partitions(t)
                        .await?
                        .into_iter()
                        .map(|p| (t.clone(), p))
                        .collect(),
                ),
                _ => None,
            };
            let results = admin.elect_preferred_leaders(wanted.as_deref()).await?;
            let mut failed = 0;
            for (t, p, error) in &results {
                match error {
                    None => println!("{t}-{p}: led by its preferred replica"),
                    Some(e) => {
                        failed += 1;
                        println!("{t}-{p}: {e}");
                    }
                }
            }
            if results.is_empty() {
                println!("every partition is already led by its preferred replica");
            }
            if failed > 0 {
                bail!("{failed} partition(s) could not be moved to their preferred leader");
            }
        }
        ClusterCommand::Reassign {
            topic,
            partition,
            replicas,
            cancel,
        } => {
            let target = (!cancel).then_some(replicas);
            admin
                .reassign_partition(&topic, partition, target.clone())
                .await?;
            match target {
                Some(r) => println!(
                    "reassigning {topic}-{partition} to {}; `fjord cluster describe` shows the progress",
                    r.iter().map(i32::to_string).collect::<Vec<_>>().join(",")
                ),
                None => println!("cancelled the reassignment of {topic}-{partition}"),
            }
        }
    }
    Ok(())
}
