//! Leasehold's OpenXR runtime, loaded by the Khronos loader as `libleasehold_openxr.so`.
//!
//! - [`abi`]: the only `#[no_mangle]` code: loader negotiation, `xrGetInstanceProcAddr`,
//!   handle tables, the panic guard and `XrResult` mapping.
//! - [`state`]: instance, system (and, as they arrive, session, swapchain, space and
//!   action) objects and their rules; pure Rust that reaches the compositor and drivers
//!   through traits.

pub mod abi;
pub mod core;
mod logging;
pub mod state;
pub mod system;

pub(crate) use logging::with_logging;

/// The runtime's version (from Cargo).
pub const VERSION: (u16, u16, u32) = (0, 1, 0);
