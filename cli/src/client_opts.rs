//! Options shared by the commands that run a client: the broker and extra Kafka properties.

use std::collections::BTreeMap;

use clap::Args;

/// Where the broker is and any Kafka client property to pass through.
#[derive(Debug, Args)]
pub(crate) struct ClientOpts {
    /// Broker to bootstrap from (Kafka's bootstrap.servers; a comma-separated list works).
    #[arg(long, default_value = "127.0.0.1:9092", value_name = "HOST:PORT")]
    pub(crate) bootstrap: String,
    /// Any Kafka client property, e.g. -X linger.ms=5 (repeatable; wins over the flags).
    #[arg(short = 'X', long = "property", value_name = "KEY=VALUE", value_parser = key_value)]
    pub(crate) properties: Vec<(String, String)>,
}

impl ClientOpts {
    /// `bootstrap.servers`, then `defaults` (from the command's own flags), then `-X` properties.
    pub(crate) fn properties(&self, defaults: &[(&str, String)]) -> BTreeMap<String, String> {
        let mut map = BTreeMap::from([("bootstrap.servers".to_string(), self.bootstrap.clone())]);
        for (key, value) in defaults {
            map.insert((*key).to_string(), value.clone());
        }
        map.extend(self.properties.iter().cloned());
        map
    }
}

/// Parses `KEY=VALUE`.
pub(crate) fn key_value(text: &str) -> Result<(String, String), String> {
    let (key, value) = text
        .split_once('=')
        .ok_or_else(|| format!("expected KEY=VALUE, got '{text}'"))?;
    Ok((key.trim().to_string(), value.trim().to_string()))
}
