//! The broker settings the group coordinator reads.

/// Group coordinator settings, mapped from the broker configuration by the driver.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct GroupConfig {
    /// `group.min.session.timeout.ms`: the smallest session timeout a member may ask for.
    pub(crate) min_session_timeout_ms: i32,
    /// `group.max.session.timeout.ms`: the largest session timeout a member may ask for.
    pub(crate) max_session_timeout_ms: i32,
    /// `group.initial.rebalance.delay.ms`: how long the first rebalance of an empty group waits for
    /// more members; extended by this much while members keep joining, up to the rebalance timeout.
    pub(crate) initial_rebalance_delay_ms: i32,
    /// `group.max.size`: the most members a group may have.
    pub(crate) max_size: usize,
}

impl Default for GroupConfig {
    fn default() -> Self {
        Self {
            min_session_timeout_ms: 6_000,
            max_session_timeout_ms: 1_800_000,
            initial_rebalance_delay_ms: 3_000,
            max_size: i32::MAX as usize,
        }
    }
}
