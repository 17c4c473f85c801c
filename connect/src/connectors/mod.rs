//! Built-in connectors.

pub mod file;

use crate::plugin::PluginDesc;

/// Plugins beyond the file connectors.
pub(crate) fn extra_plugins(_version: &'static str) -> Vec<PluginDesc> {
    Vec::new()
}
