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

/// A folder of its own for test `name`, holding an OpenXR runtime manifest that points at
/// the runtime library `cargo xtask test` built: (folder, manifest).
pub fn runtime_manifest(name: &str) -> (std::path::PathBuf, std::path::PathBuf) {
    let lib = std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .parent()
        .unwrap()
        .join("debug/libleasehold_openxr.so");
    assert!(
        lib.exists(),
        "{} (built by cargo xtask test)",
        lib.display()
    );
    let dir = std::env::temp_dir().join(name);
    std::fs::create_dir_all(&dir).unwrap();
    let manifest = dir.join("leasehold_openxr.json");
    std::fs::write(
        &manifest,
        include_str!("../../manifests/openxr/leasehold_openxr.json.in")
            .replace("@LIBRARY_PATH@", &lib.display().to_string()),
    )
    .unwrap();
    (dir, manifest)
}
