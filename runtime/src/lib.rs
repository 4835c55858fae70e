//! Leasehold's OpenXR runtime, loaded by the Khronos loader as `libleasehold_openxr.so`.
//!
//! - [`abi`]: the only `#[no_mangle]` code: loader negotiation, `xrGetInstanceProcAddr`,
//!   handle tables, the panic guard and `XrResult` mapping.
//! - [`state`]: instance, system (and, as they arrive, session, swapchain, space and
//!   action) objects and their rules; pure Rust that reaches the compositor and drivers
//!   through traits.

pub mod abi;
pub mod state;
pub mod system;

/// The runtime's version (from Cargo).
pub const VERSION: (u16, u16, u32) = (0, 1, 0);

/// The runtime's own log subscriber: stderr, filtered by `LEASEHOLD_LOG` (default:
/// warnings), and warnings and errors for the app's XR_EXT_debug_utils messengers.
///
/// The runtime lives inside an application's process, so it installs nothing global: the
/// subscriber is made once and set as the thread's default for the duration of each
/// OpenXR call ([`with_logging`]) and on the threads the runtime starts. A host that has
/// its own subscriber keeps it for its own logs, and may still install one later.
fn dispatch() -> &'static tracing::Dispatch {
    use std::io::IsTerminal;
    use tracing_subscriber::prelude::*;
    static DISPATCH: std::sync::OnceLock<tracing::Dispatch> = std::sync::OnceLock::new();
    DISPATCH.get_or_init(|| {
        let filter = tracing_subscriber::EnvFilter::try_from_env("LEASEHOLD_LOG")
            .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
        let ansi = std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none();
        let subscriber = tracing_subscriber::registry()
            .with(
                tracing_subscriber::fmt::layer()
                    .with_writer(std::io::stderr)
                    .with_ansi(ansi)
                    .with_filter(filter),
            )
            .with(ToMessengers.with_filter(tracing_subscriber::filter::LevelFilter::WARN));
        tracing::Dispatch::new(subscriber)
    })
}

/// Runs `f` (an OpenXR call's body) with the runtime's subscriber as this thread's
/// default.
pub(crate) fn with_logging<R>(f: impl FnOnce() -> R) -> R {
    tracing::dispatcher::with_default(dispatch(), f)
}

/// Forwards warnings and errors to the app's debug messengers.
struct ToMessengers;

impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for ToMessengers {
    fn on_event(&self, event: &tracing::Event<'_>, _: tracing_subscriber::layer::Context<'_, S>) {
        struct Text(String);
        impl tracing::field::Visit for Text {
            fn record_debug(&mut self, f: &tracing::field::Field, v: &dyn std::fmt::Debug) {
                use std::fmt::Write;
                if f.name() == "message" {
                    let _ = write!(self.0, "{v:?}");
                } else {
                    let _ = write!(self.0, " {}={v:?}", f.name());
                }
            }
        }
        let mut t = Text(String::new());
        event.record(&mut t);
        let m = event.metadata();
        abi::debug_utils::queue(*m.level() == tracing::Level::ERROR, m.target(), &t.0);
    }
}
