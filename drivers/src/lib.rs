//! Headset and controller drivers.
//!
//! - [`edid`]: display identification data: who made a connected panel, its modes, and
//!   whether it is a known head-mounted display.
//! - [`hid`]: the only room that talks to hidapi; finds headsets on the HID bus.
//! - [`profile`]: headset profiles (display, EDID ids) from `manifests/headsets/`.
//!
//! Device traits (`Hmd`, `TrackedDevice`), the simulated headset, the Vive family and IMU
//! fusion arrive with the drivers issue and live beside these.

pub mod edid;
pub mod hid;
pub mod profile;
