//! What every display lab test starts from: the headset output, leased and lit.

use leasehold_compositor::kms::{self, Card, ConnectorInfo};
use std::sync::Arc;

/// Opens the first card that has a connected headset (non-desktop) connector, as master.
pub fn headset_card() -> (Arc<Card>, ConnectorInfo, Vec<ConnectorInfo>) {
    let paths = kms::cards();
    assert!(
        !paths.is_empty(),
        "no DRM cards in the lab VM: is virtio_gpu loaded?"
    );
    for path in paths {
        let card = Card::open(&path).expect("open card");
        let Ok(connectors) = card.connectors() else {
            continue;
        };
        if let Some(c) = connectors
            .iter()
            .find(|c| c.connected && c.non_desktop == Some(true))
        {
            assert!(
                card.acquire_master(),
                "{} could not become DRM master",
                path.display()
            );
            let c = c.clone();
            return (Arc::new(card), c, connectors);
        }
    }
    panic!("no connected non-desktop connector: boot the lab with --hmd-edid");
}

pub use leasehold_compositor::kms::discovery::period_ns;

/// CLOCK_MONOTONIC now, ns: the clock flip-event timestamps use.
pub fn now_ns() -> u64 {
    let t = rustix::time::clock_gettime(rustix::time::ClockId::Monotonic);
    t.tv_sec as u64 * 1_000_000_000 + t.tv_nsec as u64
}

/// Sleeps until an absolute CLOCK_MONOTONIC time.
pub fn sleep_until(t_ns: u64) {
    let ts = rustix::time::Timespec {
        tv_sec: (t_ns / 1_000_000_000) as _,
        tv_nsec: (t_ns % 1_000_000_000) as _,
    };
    let _ = rustix::thread::clock_nanosleep_absolute(rustix::thread::ClockId::Monotonic, &ts);
}
