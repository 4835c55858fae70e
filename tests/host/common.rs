//! What the host tests share: the Vulkan context and simple displays.

use glam::{Quat, Vec3};
use leasehold_compositor::vk::context::{DevicePreference, VkContext};
use leasehold_drivers::api::{DisplayInfo, EyeInfo, Fov, Pose};
use std::sync::Arc;

pub fn context() -> Arc<VkContext> {
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
