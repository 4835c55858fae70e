//! Leasehold's OpenXR runtime, loaded by the Khronos loader as `libleasehold_openxr.so`.
//!
//! - [`abi`]: the only `#[no_mangle]` code: loader negotiation, `xrGetInstanceProcAddr`,
//!   handle tables, the panic guard and `XrResult` mapping.
//! - [`state`]: instance, system (and, as they arrive, session, swapchain, space and
//!   action) objects and their rules; pure Rust that reaches the compositor and drivers
//!   through traits.

pub mod abi;
pub mod state;

/// The runtime's version (from Cargo).
pub const VERSION: (u16, u16, u32) = (0, 1, 0);

/// Routes the runtime's logs to stderr, filtered by `LEASEHOLD_LOG` (default: warnings),
/// once per process. A host that installed its own subscriber keeps it.
pub fn init_logging() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let filter = tracing_subscriber::EnvFilter::try_from_env("LEASEHOLD_LOG")
            .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
        use std::io::IsTerminal;
        let ansi = std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none();
        let _ = tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_ansi(ansi)
            .with_writer(std::io::stderr)
            .try_init();
    });
}
