//! The runtime's logging, owned by the runtime (nothing installed into the host
//! application's process), and the queue that carries its warnings and errors to the
//! application's XR_EXT_debug_utils messengers.

use std::cell::Cell;
use std::ffi::CString;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

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
        queue(*m.level() == tracing::Level::ERROR, m.target(), &t.0);
    }
}

thread_local! {
    /// Set while a callback runs: a callback that calls back into the runtime must not
    /// hear about its own calls (that would recurse).
    pub(crate) static IN_CALLBACK: Cell<bool> = const { Cell::new(false) };
}

/// A runtime message waiting to be delivered.
pub(crate) struct Queued {
    pub(crate) error: bool,
    pub(crate) function: CString,
    pub(crate) message: CString,
}

/// Messages logged since the last delivery. Logging happens anywhere (under the
/// runtime's locks, on the compositor's thread), so messages wait here and are delivered
/// by the next OpenXR call on an app thread as it returns, holding no lock.
pub(crate) static QUEUED: Mutex<Vec<Queued>> = Mutex::new(Vec::new());

/// At most this many undelivered messages are kept (the oldest are dropped), so an app
/// that stops calling the runtime does not make it grow without bound.
pub(crate) const QUEUE_MAX: usize = 256;

/// A runtime message (a logged warning or error) for the app's messengers.
pub fn queue(error: bool, function: &str, message: &str) {
    if MESSENGERS.load(Ordering::Acquire) == 0 || IN_CALLBACK.with(Cell::get) {
        return;
    }
    let (Ok(message), Ok(function)) = (CString::new(message), CString::new(function)) else {
        return;
    };
    let mut q = QUEUED.lock().unwrap_or_else(|p| p.into_inner());
    if q.len() >= QUEUE_MAX {
        q.remove(0);
    }
    q.push(Queued {
        error,
        function,
        message,
    });
}

/// How many debug messengers are alive in this process: with none, nothing is queued.
pub(crate) static MESSENGERS: AtomicUsize = AtomicUsize::new(0);

/// The queued messages, taken for delivery.
pub(crate) fn take_queued() -> Vec<Queued> {
    std::mem::take(&mut *QUEUED.lock().unwrap_or_else(|p| p.into_inner()))
}
