//! Leasehold's compositor and display output.
//!
//! - [`kms`]: the only room that issues DRM ioctls (through the `drm` crate): cards,
//!   connectors and their EDID, leases, atomic commits and page-flip events.
//! - [`vk`]: the only room that uses `ash`: Vulkan instance, device choice and capabilities.
//!
//! Layer composition (`render`), the clock-free frame `pacing` model and the frame
//! `target`s (KMS, headless) build on these two rooms.

pub mod frame_loop;
pub mod kms;
pub mod pacing;
pub mod present;
pub mod render;
pub mod service;
pub mod target;
pub mod vk;
