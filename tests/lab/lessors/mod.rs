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

/// The runtime chose the headset's display through `source` by itself, and showed the
/// app's frames there, one flip per presented frame.
fn assert_shown_through(run: &crate::common::HelloXr, source: &str) {
    use leasehold_tests::report_field as field;
    let (log, report) = (&run.log, &run.report);
    assert!(
        log.contains("display chosen")
            && log.contains("Virtual-2 on")
            && log.contains(&format!("through {source}")),
        "the runtime leased the headset through {source}:\n{log}"
    );
    assert!(field(report, "app_frames_shown") >= 1.0, "{report}");
    assert_eq!(
        field(report, "flips"),
        field(report, "compositor_frames") + 1.0,
        "a flip per presented frame (plus the anchor frame): {report}"
    );
}
