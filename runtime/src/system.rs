//! The system an instance presents, assembled in one place: the headset (a real one on
//! HID, else the simulated one; `LEASEHOLD_HMD`) and the display (the headset's output
//! through the lease source that fits this session, else headless; `LEASEHOLD_TARGET`).
//! Each choice is made once, logged once with its reason, and the OpenXR system
//! properties, views and refresh rates follow from it.

use crate::state::{Headset, Screen, SystemInfo};
use leasehold_compositor::kms::display::{self, Display, Preference};
use std::sync::{Arc, Mutex, Weak};

/// Assembles the system for a new instance.
pub fn assemble(now_ns: u64) -> SystemInfo {
    use leasehold_drivers::headset::{Preference as HmdPreference, choose};
    let pref = HmdPreference::from_env().unwrap_or_else(|e| {
        tracing::error!("{e}; choosing as for auto");
        HmdPreference::Auto
    });
    let chosen = choose(pref, now_ns);
    tracing::info!(headset = %chosen.name, simulated = chosen.simulated, why = %chosen.why, "headset chosen");
    let hmd = chosen.hmd;
    let screen = shared_display();
    let mut panel = hmd.display();
    if let Ok(d) = &screen
        && let Display::Headset(h) = &**d
    {
        // Driving the headset in another mode than its native one: the views are sized
        // for what is scanned out.
        let (w, h, hz) = h.mode;
        panel = panel.for_mode(w, h, hz);
    }
    SystemInfo {
        headset: Headset(hmd),
        screen: Screen(screen),
        name: format!("Leasehold: {}", chosen.name),
        vendor_id: 0x28de,
        max_layer_count: 16,
        max_swapchain_size: 8192,
        orientation_tracking: true,
        position_tracking: false,
        display: panel,
    }
}

/// The display, shared by every instance alive at once (a headset's output can be leased
/// once); chosen again when the last instance that held it is gone.
fn shared_display() -> Result<Arc<Display>, String> {
    static SHARED: Mutex<Weak<Display>> = Mutex::new(Weak::new());
    let mut shared = SHARED.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(d) = shared.upgrade() {
        return Ok(d);
    }
    let pref = Preference::from_env().unwrap_or_else(|e| {
        tracing::error!("{e}; choosing as for auto");
        Preference::Auto
    });
    match display::choose(pref) {
        Ok(d) => {
            tracing::info!(display = %d.describe(), why = %d.why(), "display chosen");
            let d = Arc::new(d);
            *shared = Arc::downgrade(&d);
            Ok(d)
        }
        Err(why) => {
            tracing::error!(%why, "LEASEHOLD_TARGET=kms: no headset display");
            Err(why)
        }
    }
}
