//! `fjord sql`: SQL over topics (fjord-sql). One statement from the command line, or a REPL
//! reading `;`-terminated statements from stdin when none is given.

use std::io::{BufRead, Write};
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use clap::Args;
use fjord_sql::{OutputFormat, SqlConfig, SqlContext};
use futures::StreamExt;

#[derive(Debug, Args)]
pub(crate) struct SqlArgs {
    /// Broker to bootstrap from (Kafka's bootstrap.servers).
    #[arg(long, default_value = "127.0.0.1:9092", value_name = "HOST:PORT")]
    bootstrap: String,
    /// Schema registry URL: value fields come from the schema registered under
    /// `{topic}-value` (Avro or JSON Schema). Without it, JSON values are sampled.
    #[arg(long, value_name = "URL")]
    registry: Option<String>,
    /// How results are printed: an aligned table, JSON lines or CSV.
    #[arg(long, default_value = "table", value_name = "table|json|csv")]
    format: OutputFormat,
    /// Where continuous queries keep their checkpoints.
    #[arg(long, value_name = "DIR")]
    state_dir: Option<PathBuf>,
    /// Run QUERY continuously, writing its results to TOPIC (`CREATE STREAM TOPIC AS QUERY`).
    #[arg(long, value_name = "TOPIC")]
    continuous: Option<String>,
    /// The statement; without one, a REPL reads statements ending in `;` from stdin.
    query: Option<String>,
}

pub(crate) async fn run(args: SqlArgs) -> anyhow::Result<()> {
    let mut config = SqlConfig::new(args.bootstrap.clone());
    if let Some(r) = &args.registry {
        config = config.with_registry(r.clone());
    }
    if let Some(d) = &args.state_dir {
        config = config.with_state_dir(d.clone());
    }
    let ctx = SqlContext::connect(config)
        .await
        .with_context(|| format!("cannot reach the broker at {}", args.bootstrap))?;
    let Some(query) = args.query.as_deref() else {
        return repl(&ctx, args.format).await;
    };
    let statement = match &args.continuous {
        Some(topic) => format!("CREATE STREAM \"{topic}\" AS {query}"),
        None => query.to_string(),
    };
    run_statement(&ctx, &statement, args.format).await?;
    let running = ctx.query_names();
    if !running.is_empty() {
        // A continuous query: run until Ctrl-C (or until it fails), then stop it cleanly so
        // that its checkpoint holds everything it read.
        eprintln!("running {} until Ctrl-C", running.join(", "));
        tokio::select! {
            r = tokio::signal::ctrl_c() => r.context("waiting for Ctrl-C")?,
            r = ctx.wait_any() => r?,
        }
        ctx.stop_all().await?;
    }
    report_skipped(&ctx);
    Ok(())
}

async fn run_statement(
    ctx: &SqlContext,
    statement: &str,
    format: OutputFormat,
) -> anyhow::Result<()> {
    let mut stream = ctx.execute(statement).await?;
    let mut stdout = std::io::stdout().lock();
    if format == OutputFormat::Table {
        let mut batches = Vec::new();
        while let Some(b) = stream.next().await {
            batches.push(b.map_err(fjord_sql::Error::from)?);
        }
        fjord_sql::format::write_batches(&mut stdout, &batches, format, true)?;
    } else {
        let mut first = true;
        while let Some(b) = stream.next().await {
            let b = b.map_err(fjord_sql::Error::from)?;
            fjord_sql::format::write_batches(&mut stdout, &[b], format, first)?;
            first = false;
        }
    }
    stdout.flush()?;
    Ok(())
}

async fn repl(ctx: &SqlContext, format: OutputFormat) -> anyhow::Result<()> {
    // Lines are read on a blocking thread and handed over through a bounded channel.
    let (tx, mut rx) = tokio::sync::mpsc::channel::<String>(16);
    std::thread::spawn(move || {
        let stdin = std::io::stdin();
        for line in stdin.lock().lines() {
            let Ok(line) = line else { break };
            if tx.blocking_send(line).is_err() {
                break;
            }
        }
    });
    let interactive = std::io::IsTerminal::is_terminal(&std::io::stdin());
    let prompt = |continued: bool| {
        if interactive {
            eprint!("{}", if continued { "   ...> " } else { "fjord> " });
        }
    };
    let mut buffer = String::new();
    prompt(false);
    while let Some(line) = rx.recv().await {
        let trimmed = line.trim();
        if buffer.is_empty() && matches!(trimmed, "\\q" | "quit" | "exit") {
            break;
        }
        buffer.push_str(&line);
        buffer.push('\n');
        while let Some(end) = statement_end(&buffer) {
            let statement: String = buffer[..end].trim().to_string();
            buffer = buffer[end + 1..].to_string();
            if statement.is_empty() {
                continue;
            }
            let started = std::time::Instant::now();
            match run_statement(ctx, &statement, format).await {
                Ok(()) => {
                    if interactive {
                        eprintln!("({:.3} s)", started.elapsed().as_secs_f64());
                    }
                }
                Err(e) => eprintln!("error: {e:#}"),
            }
        }
        prompt(!buffer.trim().is_empty());
    }
    // Statements without a final `;` at the end of input run too.
    if !buffer.trim().is_empty() {
        if let Err(e) = run_statement(ctx, buffer.trim(), format).await {
            eprintln!("error: {e:#}");
        }
    }
    if !ctx.query_names().is_empty() {
        eprintln!("stopping continuous queries");
        tokio::time::timeout(Duration::from_secs(30), ctx.stop_all())
            .await
            .context("stopping continuous queries")??;
    }
    report_skipped(ctx);
    Ok(())
}

/// The index of the `;` ending the first statement, outside quotes.
fn statement_end(text: &str) -> Option<usize> {
    let mut quote: Option<char> = None;
    for (i, c) in text.char_indices() {
        match (quote, c) {
            (None, '\'' | '"') => quote = Some(c),
            (Some(q), c) if c == q => quote = None,
            (None, ';') => return Some(i),
            _ => {}
        }
    }
    None
}

fn report_skipped(ctx: &SqlContext) {
    let skipped = ctx.records_skipped();
    if skipped > 0 {
        eprintln!("{skipped} record(s) skipped: their value did not decode");
    }
}

#[cfg(test)]
mod tests {
    use super::statement_end;

    #[test]
    fn statement_end_ignores_quoted_semicolons() {
        assert_eq!(statement_end("SELECT ';' FROM t; x"), Some(17));
        assert_eq!(statement_end("SELECT \"a;b\""), None);
    }
}
