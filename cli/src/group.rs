//! `fjord group`: list, describe, delete consumer groups and reset their offsets, with the
//! output and flags of Kafka's `kafka-consumer-groups.sh`.

use std::collections::BTreeMap;

use anyhow::{Context, bail};
use clap::{Args, Subcommand};
use fjord_client::{Admin, OffsetSpec, TopicPartition};

#[derive(Debug, Args)]
pub(crate) struct GroupArgs {
    /// Broker to connect to.
    #[arg(
        long,
        default_value = "127.0.0.1:9092",
        global = true,
        value_name = "HOST:PORT"
    )]
    bootstrap: String,
    #[command(subcommand)]
    command: GroupCommand,
}

#[derive(Debug, Subcommand)]
enum GroupCommand {
    /// List consumer groups and their states.
    List,
    /// Show a group's state, members and, per partition, committed offset, log end offset and lag.
    Describe {
        /// The group id.
        group: String,
    },
    /// Delete a group that has no active members (its committed offsets too).
    Delete {
        /// The group id.
        group: String,
    },
    /// Move a group's committed offsets for a topic (the group must have no active members).
    /// Prints the plan; add --execute to apply it.
    ResetOffsets(ResetArgs),
}

#[derive(Debug, Args)]
struct ResetArgs {
    /// The group id.
    group: String,
    /// The topic whose offsets to reset (all its partitions).
    #[arg(long)]
    topic: String,
    /// To the log start offset.
    #[arg(long, group = "target")]
    to_earliest: bool,
    /// To the log end offset.
    #[arg(long, group = "target")]
    to_latest: bool,
    /// To this offset (clamped to the log's range).
    #[arg(long, group = "target", value_name = "N")]
    to_offset: Option<i64>,
    /// To the first record at or after this time, e.g. 2026-11-25T06:00:00Z or 2026-11-25T06:00:00.000+01:00.
    #[arg(long, group = "target", value_name = "ISO")]
    to_datetime: Option<String>,
    /// Apply the reset (without it, only the plan is printed, as Kafka's tool does).
    #[arg(long)]
    execute: bool,
}

pub(crate) async fn run(args: GroupArgs) -> anyhow::Result<()> {
    let admin = Admin::connect(&args.bootstrap)
        .await
        .with_context(|| format!("cannot reach the broker at {}", args.bootstrap))?;
    match args.command {
        GroupCommand::List => {
            let groups = admin.list_groups().await?;
            if groups.is_empty() {
                println!("No consumer groups.");
            }
            let width = groups
                .iter()
                .map(|g| g.group_id.len())
                .max()
                .unwrap_or(5)
                .max(5);
            if !groups.is_empty() {
                println!("{:<width$}  STATE", "GROUP");
            }
            for group in groups {
                println!("{:<width$}  {}", group.group_id, group.state);
            }
        }
        GroupCommand::Describe { group } => describe(&admin, &group).await?,
        GroupCommand::Delete { group } => {
            admin.delete_group(&group).await?;
            println!("Deletion of requested consumer groups ('{group}') was successful.");
        }
        GroupCommand::ResetOffsets(reset) => reset_offsets(&admin, reset).await?,
    }
    Ok(())
}

async fn describe(admin: &Admin, group: &str) -> anyhow::Result<()> {
    let description = admin.describe_group(group).await?;
    let committed = admin.committed_offsets(group).await?;
    if description.state == "Dead" && committed.is_empty() {
        bail!("consumer group '{group}' does not exist");
    }
    let mut owners: BTreeMap<TopicPartition, (String, String, String)> = BTreeMap::new();
    for member in &description.members {
        for tp in &member.partitions {
            owners.insert(
                tp.clone(),
                (
                    member.member_id.clone(),
                    member.host.clone(),
                    member.client_id.clone(),
                ),
            );
        }
    }
    let partitions: Vec<TopicPartition> = committed
        .keys()
        .chain(owners.keys())
        .cloned()
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect();
    let ends = if partitions.is_empty() {
        BTreeMap::new()
    } else {
        admin.list_offsets(&partitions, OffsetSpec::Latest).await?
    };
    println!(
        "Consumer group '{group}' is {} with {} member(s).\n",
        description.state,
        description.members.len()
    );
    let rows: Vec<[String; 9]> = partitions
        .iter()
        .map(|tp| {
            let current = committed.get(tp).copied();
            let end = ends.get(tp).copied().flatten();
            let lag = match (current, end) {
                (Some(c), Some(e)) => (e - c).max(0).to_string(),
                _ => "-".into(),
            };
            let (member, host, client) = owners
                .get(tp)
                .cloned()
                .unwrap_or_else(|| ("-".into(), "-".into(), "-".into()));
            [
                group.to_string(),
                tp.0.clone(),
                tp.1.to_string(),
                current.map_or("-".into(), |c| c.to_string()),
                end.map_or("-".into(), |e| e.to_string()),
                lag,
                member,
                host,
                client,
            ]
        })
        .collect();
    print_table(
        &[
            "GROUP",
            "TOPIC",
            "PARTITION",
            "CURRENT-OFFSET",
            "LOG-END-OFFSET",
            "LAG",
            "CONSUMER-ID",
            "HOST",
            "CLIENT-ID",
        ],
        &rows,
    );
    Ok(())
}

async fn reset_offsets(admin: &Admin, reset: ResetArgs) -> anyhow::Result<()> {
    let partitions: Vec<TopicPartition> = admin
        .partitions(&reset.topic)
        .await?
        .into_iter()
        .map(|p| (reset.topic.clone(), p))
        .collect();
    let earliest = admin
        .list_offsets(&partitions, OffsetSpec::Earliest)
        .await?;
    let latest = admin.list_offsets(&partitions, OffsetSpec::Latest).await?;
    let bounds = |tp: &TopicPartition| {
        (
            earliest.get(tp).copied().flatten().unwrap_or(0),
            latest.get(tp).copied().flatten().unwrap_or(0),
        )
    };
    let plan: BTreeMap<TopicPartition, i64> = if reset.to_earliest {
        partitions
            .iter()
            .map(|tp| (tp.clone(), bounds(tp).0))
            .collect()
    } else if reset.to_latest {
        partitions
            .iter()
            .map(|tp| (tp.clone(), bounds(tp).1))
            .collect()
    } else if let Some(offset) = reset.to_offset {
        partitions
            .iter()
            .map(|tp| (tp.clone(), offset.clamp(bounds(tp).0, bounds(tp).1)))
            .collect()
    } else if let Some(text) = &reset.to_datetime {
        let ts = parse_datetime(text).with_context(|| {
            format!("--to-datetime '{text}' is not an ISO-8601 time like 2026-11-25T06:00:00Z")
        })?;
        let found = admin
            .list_offsets(&partitions, OffsetSpec::Timestamp(ts))
            .await?;
        partitions
            .iter()
            .map(|tp| {
                (
                    tp.clone(),
                    found.get(tp).copied().flatten().unwrap_or(bounds(tp).1),
                )
            })
            .collect()
    } else {
        bail!("choose where to: --to-earliest, --to-latest, --to-offset N or --to-datetime ISO");
    };
    let rows: Vec<[String; 4]> = plan
        .iter()
        .map(|((t, p), o)| [reset.group.clone(), t.clone(), p.to_string(), o.to_string()])
        .collect();
    print_table(&["GROUP", "TOPIC", "PARTITION", "NEW-OFFSET"], &rows);
    if reset.execute {
        admin
            .alter_group_offsets(&reset.group, &plan)
            .await
            .context("the group must have no active members to reset its offsets")?;
    } else {
        println!("\nDry run: no offsets were changed. Add --execute to apply.");
    }
    Ok(())
}

fn print_table<const N: usize>(headers: &[&str; N], rows: &[[String; N]]) {
    let mut widths: Vec<usize> = headers.iter().map(|h| h.len()).collect();
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.len());
        }
    }
    let line = |cells: Vec<&str>| {
        cells
            .iter()
            .zip(&widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect::<Vec<_>>()
            .join("  ")
            .trim_end()
            .to_string()
    };
    println!("{}", line(headers.to_vec()));
    for row in rows {
        println!("{}", line(row.iter().map(String::as_str).collect()));
    }
}

/// Parses `YYYY-MM-DDTHH:MM:SS[.fff][Z|±HH:MM]` (no zone means UTC) to ms since the epoch.
fn parse_datetime(text: &str) -> Option<i64> {
    let (date, rest) = text.trim().split_once('T')?;
    let mut d = date.split('-').map(|p| p.parse::<i64>());
    let (year, month, day) = (d.next()?.ok()?, d.next()?.ok()?, d.next()?.ok()?);
    let (time, offset_ms) = if let Some(t) = rest.strip_suffix('Z') {
        (t, 0)
    } else if let Some(at) = rest.rfind(['+', '-']).filter(|&i| i >= 8) {
        let (t, zone) = rest.split_at(at);
        let sign = if zone.starts_with('-') { -1 } else { 1 };
        let (h, m) = zone[1..].split_once(':')?;
        (
            t,
            sign * (h.parse::<i64>().ok()? * 3_600_000 + m.parse::<i64>().ok()? * 60_000),
        )
    } else {
        (rest, 0)
    };
    let (hms, millis) = time.split_once('.').map_or((time, "0"), |(a, b)| (a, b));
    let mut t = hms.split(':').map(|p| p.parse::<i64>());
    let (hour, minute, second) = (
        t.next()?.ok()?,
        t.next()?.ok()?,
        t.next().unwrap_or(Ok(0)).ok()?,
    );
    let millis: i64 = format!("{millis:0<3}")[..3].parse().ok()?;
    if !(1..=12).contains(&month)
        || !(1..=31).contains(&day)
        || hour > 23
        || minute > 59
        || second > 60
    {
        return None;
    }
    // Days from civil (Howard Hinnant's algorithm).
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * (month + if month > 2 { -3 } else { 9 }) + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some(((days * 24 + hour) * 60 + minute) * 60_000 + second * 1000 + millis - offset_ms)
}

#[cfg(test)]
mod tests {
    use super::parse_datetime;

    #[test]
    fn iso_times_parse_to_epoch_millis() {
        assert_eq!(parse_datetime("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(
            parse_datetime("2000-03-01T00:00:00.5Z"),
            Some(951_868_800_500)
        );
        assert_eq!(
            parse_datetime("2026-11-25T06:00:00.000+01:00"),
            parse_datetime("2026-11-25T05:00:00Z")
        );
        assert_eq!(
            parse_datetime("2024-02-29T12:30:15"),
            Some(1_709_209_815_000)
        );
        assert_eq!(parse_datetime("yesterday"), None);
        assert_eq!(parse_datetime("2026-13-01T00:00:00Z"), None);
    }
}
