//! What every display lab test starts from: the headset output, leased and lit.

use leasehold_compositor::kms::{self, Card, ConnectorInfo, DumbFramebuffer, Lease, Output};
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

pub use leasehold_compositor::present::{now_ns, sleep_until};

/// Lights a leased headset output with its preferred mode and two solid framebuffers.
pub fn light_up<'a>(
    lease: &'a Lease,
    headset: &ConnectorInfo,
    colors: [u32; 2],
) -> (Output<'a>, [DumbFramebuffer<'a>; 2], kms::Mode) {
    let lessee = lease.card();
    let mode = headset.preferred_mode().expect("mode");
    let mut out = Output::new(lessee, lease.connector, lease.crtc, lease.plane).expect("output");
    let fbs = colors.map(|c| DumbFramebuffer::solid(lessee, mode.size(), c).expect("fb"));
    out.modeset(&mode, fbs[0].fb).expect("modeset");
    (out, fbs, mode)
}
