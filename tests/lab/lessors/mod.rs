//! Real desktop lessors in the lab: they hold DRM master and lease us the headset. They
//! run in their own VM boot (nothing else may hold master), one after the other.

mod wayland;
mod x11;

use crate::common::light_up;
use leasehold_compositor::kms::{HeadsetOutput, Lease};
use std::time::Duration;

/// What every lessor must give us: the Vive output, seen alone by the lessee, and
/// drivable — lit with its preferred mode and flipped 20 times.
fn drive_leased_headset(lessor: &str, lease: &Lease, headset: Option<HeadsetOutput>) {
    let headset = headset.unwrap_or_else(|| panic!("{lessor}: the leased connector's details"));
    assert_eq!(headset.connector.name, "Virtual-2");
    assert_eq!(headset.profile.map(|p| p.id.as_str()), Some("vive"));
    assert_eq!(
        lease.card().connectors().expect("lessee connectors").len(),
        1,
        "the lessee sees one connector"
    );
    let (out, fbs, _) = light_up(lease, &headset.connector, [0x112233, 0x445566]);
    for i in 0..20 {
        out.flip(fbs[(i + 1) % 2].fb)
            .unwrap_or_else(|e| panic!("flip on {lessor}'s lease: {e}"));
        let events = lease
            .card()
            .wait_flip_events(Duration::from_secs(2))
            .expect("flip event");
        assert_eq!(events.len(), 1);
    }
}
