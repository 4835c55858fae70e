//! Shared helpers for Leasehold's integration tests.

pub mod uhid;

use std::sync::Once;

/// Routes `tracing` output to the test harness (captured per test, shown on failure).
pub fn init_tracing() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let filter = tracing_subscriber::EnvFilter::try_from_env("LEASEHOLD_LOG")
            .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
        let _ = tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_test_writer()
            .try_init();
    });
}
