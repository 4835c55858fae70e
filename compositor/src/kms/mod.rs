//! Kernel mode setting: the only room that issues DRM ioctls (through the `drm` crate).
//!
//! The hardware model: a DRM *card* exposes *connectors* (physical outputs; a headset is a
//! connector whose EDID or `non-desktop` property says so), *CRTCs* (scanout engines that
//! produce timing for one mode) and *planes* (image layers a CRTC blends; every CRTC has
//! one primary plane). The process that opened the card first is its *master*; a master
//! can *lease* a subset of objects (connector + CRTC + primary plane) to a new file
//! descriptor, the *lessee*, which is then master of exactly those objects and sees no
//! others. Leasehold drives the headset through such a lessee: atomic commits set the
//! plane's framebuffer, and page-flip events report the vblank at which each frame
//! reached scanout (timestamp + sequence).

pub mod bringup;
mod card;
pub mod discovery;
pub mod display;
pub mod fence;
mod lease;
pub mod lease_source;
mod output;
pub mod scanout;
pub mod wayland_lease;
pub mod x11_lease;

pub use card::{Card, ConnectorInfo, DriverInfo, cards};
pub use discovery::{HeadsetOutput, ModeDecision, ModeRequest};
pub use fence::{Vgem, VgemFence};
pub use lease::Lease;
pub use lease_source::{DirectLease, FdLease, LeaseSource};
pub use output::{DumbFramebuffer, FenceGate, FlipEvent, Output};
pub use scanout::{ScanoutBuffer, ScanoutRing};
pub use wayland_lease::WaylandLease;
pub use x11_lease::X11Lease;

pub use drm::control::{Mode, connector, crtc, framebuffer, plane};

use std::io;

/// What went wrong in the display path, with the operation and objects involved.
#[derive(Debug, thiserror::Error)]
pub enum KmsError {
    #[error("cannot open DRM device {path}")]
    Open {
        path: String,
        #[source]
        source: io::Error,
    },
    #[error("{op} failed")]
    Ioctl {
        op: &'static str,
        #[source]
        source: io::Error,
    },
    #[error("connector {connector} can be driven by no CRTC")]
    NoCrtc { connector: String },
    #[error("CRTC {crtc} has no primary plane")]
    NoPrimaryPlane { crtc: u32 },
    #[error("{object} has no `{name}` property (the driver lacks atomic support for it)")]
    MissingProperty { object: String, name: &'static str },
    #[error("the kernel rejected the configuration in a TEST_ONLY commit")]
    TestRejected {
        #[source]
        source: io::Error,
    },
    #[error("{fd} is not a usable DRM lease: {why}")]
    NotALease { fd: String, why: String },
    #[error("{why}")]
    Lessor { why: String },
    #[error(
        "{card} is not ours to lease from: another process is its DRM master (a desktop session?); take a lease from that session (Wayland, X11) or pass one with --lease-fd"
    )]
    NotMaster { card: String },
    #[error("{w}x{h} is beyond this card's framebuffer limits ({max_w}x{max_h})")]
    TooLarge {
        w: u32,
        h: u32,
        max_w: u32,
        max_h: u32,
    },
    #[error("scanout ring: {0}")]
    Ring(#[from] scanout::RingError),
    #[error("the render fence did not signal within {ms} ms")]
    FenceTimeout { ms: u64 },
    #[error("timed out after {ms} ms waiting for a page-flip event")]
    FlipTimeout { ms: u64 },
}

/// Waits up to `timeout` for `fd` to become readable (a DRM event, a signalled
/// sync_file). `Ok(false)` on timeout. A signal delivered to the thread (the host
/// application's profiler, timers, a managed runtime) interrupts the wait, which then
/// goes on for the time that is left.
pub(crate) fn poll_readable(
    fd: std::os::fd::BorrowedFd<'_>,
    timeout: std::time::Duration,
    op: &'static str,
) -> Result<bool, KmsError> {
    let deadline = std::time::Instant::now() + timeout;
    loop {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        let ts = rustix::time::Timespec {
            tv_sec: left.as_secs() as _,
            tv_nsec: left.subsec_nanos() as _,
        };
        let mut fds = [rustix::event::PollFd::new(
            &fd,
            rustix::event::PollFlags::IN,
        )];
        match rustix::event::poll(&mut fds, Some(&ts)) {
            Ok(n) => return Ok(n > 0),
            Err(rustix::io::Errno::INTR) => continue,
            Err(e) => {
                return Err(KmsError::Ioctl {
                    op,
                    source: e.into(),
                });
            }
        }
    }
}

impl KmsError {
    pub(crate) fn ioctl(op: &'static str) -> impl FnOnce(io::Error) -> KmsError {
        move |source| KmsError::Ioctl { op, source }
    }

    /// The errno behind the failure, if an ioctl failed.
    pub fn errno(&self) -> Option<i32> {
        match self {
            KmsError::Open { source, .. }
            | KmsError::Ioctl { source, .. }
            | KmsError::TestRejected { source } => source.raw_os_error(),
            _ => None,
        }
    }

    /// A lessee whose lease was revoked (or whose lessor went away) gets ENOENT for the
    /// objects it used to hold: the lease is lost, not the request malformed.
    pub fn is_lease_lost(&self) -> bool {
        self.errno() == Some(rustix::io::Errno::NOENT.raw_os_error())
    }
}
