//! What the host tests share: the Vulkan context and simple displays.

use glam::{Quat, Vec3};
use leasehold_compositor::vk::context::{DevicePreference, VkContext};
use leasehold_drivers::api::{DisplayInfo, EyeInfo, Fov, Pose};
use std::sync::Arc;

pub fn context() -> Arc<VkContext> {
    leasehold_compositor::vk::validation::require();
    Arc::new(VkContext::new(DevicePreference::default()).expect(
        "a Vulkan device (lavapipe from mesa-vulkan-drivers is installed by `cargo xtask setup`)",
    ))
}

/// A lens-less display: two `eye` × `eye` views side by side, symmetric `fov` (radians),
/// eyes 6 cm apart.
pub fn display(eye: u32, fov: f32, refresh_hz: f32) -> DisplayInfo {
    let fov = Fov::symmetric(fov, fov);
    let at = |x: f32| EyeInfo {
        eye_to_head: Pose {
            orientation: Quat::IDENTITY,
            position: Vec3::new(x, 0.0, 0.0),
        },
        fov,
    };
    DisplayInfo {
        panel_width: 2 * eye,
        panel_height: eye,
        eye_render_width: eye,
        eye_render_height: eye,
        refresh_hz: vec![refresh_hz],
        scanout_to_photon_ns: 0,
        eyes: [at(-0.03), at(0.03)],
    }
}

/// Vulkan validation for the rest of the test: every instance the test creates in this
/// process runs under the Khronos validation layer, and the test fails (when the guard
/// goes, unless it already failed) if the layer reported any warning or error.
#[must_use = "the check runs when the guard is dropped"]
pub fn validated() -> Validated {
    leasehold_compositor::vk::validation::require();
    Validated
}

pub struct Validated;

impl Drop for Validated {
    fn drop(&mut self) {
        let n = leasehold_compositor::vk::validation::reports();
        if !std::thread::panicking() {
            assert_eq!(
                n, 0,
                "Vulkan validation reported {n} messages (the log has them)"
            );
        }
    }
}
