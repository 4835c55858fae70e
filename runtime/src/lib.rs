//! Leasehold's OpenXR runtime, loaded by the Khronos loader as `libleasehold_openxr.so`.
//!
//! Its rooms, as they arrive with the runtime issue:
//! - `abi`: the only `#[no_mangle]` code: loader negotiation, `xrGetInstanceProcAddr`,
//!   handle tables, the panic guard and `XrResult` mapping.
//! - `state`: instance, system, session, swapchain, space and action objects and their
//!   state machines; pure Rust that reaches the compositor and drivers through traits.
//!
//! Until then the library exports nothing, so the loader cannot mistake it for a runtime.
