//! Atomic commits on one connector → CRTC → primary plane path, and page-flip events.

use super::{Card, KmsError};
use drm::buffer::DrmFourcc;
use drm::control::{
    AtomicCommitFlags, Device as ControlDevice, Mode, atomic::AtomicModeReq, connector, crtc,
    dumbbuffer::DumbBuffer, framebuffer, plane, property,
};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::time::Duration;

/// One page flip that completed: the vblank at which the new framebuffer reached scanout.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FlipEvent {
    pub crtc: crtc::Handle,
    /// The CRTC's vblank counter at the flip.
    pub sequence: u32,
    /// CLOCK_MONOTONIC time of that vblank, in ns (the kernel reports microseconds).
    pub timestamp_ns: u64,
}

/// The property handles an atomic request on this path needs, looked up once.
#[derive(Debug, Clone)]
struct PathProps {
    conn_crtc_id: property::Handle,
    crtc_active: property::Handle,
    crtc_mode_id: property::Handle,
    fb_id: property::Handle,
    plane_crtc_id: property::Handle,
    src: [property::Handle; 4],
    dst: [property::Handle; 4],
    /// Optional: drivers without explicit fencing lack them.
    in_fence_fd: Option<property::Handle>,
    out_fence_ptr: Option<property::Handle>,
}

/// A display path we are master of (typically through a lease): connector, CRTC and the
/// CRTC's primary plane, driven by atomic commits.
#[derive(Debug)]
pub struct Output<'c> {
    card: &'c Card,
    pub connector: connector::Handle,
    pub crtc: crtc::Handle,
    pub plane: plane::Handle,
    props: PathProps,
    /// Size of the mode set by [`Output::modeset`], for plane coordinates.
    size: Option<(u16, u16)>,
    /// How renders gate flips on this path (see [`FenceGate`]).
    gate: std::cell::Cell<FenceGate>,
    /// Flip configurations (framebuffer, in-fence, out-fence) a TEST_ONLY commit accepted.
    tested: std::cell::RefCell<Vec<(framebuffer::Handle, bool, bool)>>,
}

/// How a flip waits for its render.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FenceGate {
    /// The render's sync_file goes to the plane's IN_FENCE_FD: the kernel holds the flip.
    InFence,
    /// The driver has no IN_FENCE_FD or refuses it (EPERM): wait for the fence on the CPU,
    /// then commit. Costs the presenter's time; chosen once, logged once.
    CpuWait,
}

impl<'c> Output<'c> {
    pub fn new(
        card: &'c Card,
        connector: connector::Handle,
        crtc: crtc::Handle,
        plane: plane::Handle,
    ) -> Result<Self, KmsError> {
        let cp = card.property_handles(connector)?;
        let rp = card.property_handles(crtc)?;
        let pp = card.property_handles(plane)?;
        let get = |map: &std::collections::HashMap<String, property::Handle>,
                   object: String,
                   name: &'static str| {
            map.get(name)
                .copied()
                .ok_or(KmsError::MissingProperty { object, name })
        };
        let c = || format!("connector {}", u32::from(connector));
        let r = || format!("CRTC {}", u32::from(crtc));
        let p = || format!("plane {}", u32::from(plane));
        let props = PathProps {
            conn_crtc_id: get(&cp, c(), "CRTC_ID")?,
            crtc_active: get(&rp, r(), "ACTIVE")?,
            crtc_mode_id: get(&rp, r(), "MODE_ID")?,
            fb_id: get(&pp, p(), "FB_ID")?,
            plane_crtc_id: get(&pp, p(), "CRTC_ID")?,
            src: [
                get(&pp, p(), "SRC_X")?,
                get(&pp, p(), "SRC_Y")?,
                get(&pp, p(), "SRC_W")?,
                get(&pp, p(), "SRC_H")?,
            ],
            dst: [
                get(&pp, p(), "CRTC_X")?,
                get(&pp, p(), "CRTC_Y")?,
                get(&pp, p(), "CRTC_W")?,
                get(&pp, p(), "CRTC_H")?,
            ],
            in_fence_fd: pp.get("IN_FENCE_FD").copied(),
            out_fence_ptr: rp.get("OUT_FENCE_PTR").copied(),
        };
        let gate = if props.in_fence_fd.is_some() {
            FenceGate::InFence
        } else {
            FenceGate::CpuWait
        };
        if gate == FenceGate::CpuWait {
            tracing::warn!(
                plane = u32::from(plane),
                "plane has no IN_FENCE_FD: flips wait for renders on the CPU"
            );
        }
        Ok(Self {
            card,
            connector,
            crtc,
            plane,
            props,
            size: None,
            gate: std::cell::Cell::new(gate),
            tested: Default::default(),
        })
    }

    fn plane_request(&self, req: &mut AtomicModeReq, fb: framebuffer::Handle, (w, h): (u16, u16)) {
        let p = &self.props;
        req.add_property(self.plane, p.fb_id, property::Value::Framebuffer(Some(fb)));
        req.add_property(
            self.plane,
            p.plane_crtc_id,
            property::Value::CRTC(Some(self.crtc)),
        );
        // Source coordinates are 16.16 fixed point.
        let src = [0, 0, u64::from(w) << 16, u64::from(h) << 16];
        let dst = [0, 0, u64::from(w), u64::from(h)];
        for (prop, v) in p.src.iter().zip(src) {
            req.add_property(self.plane, *prop, property::Value::UnsignedRange(v));
        }
        for (prop, v) in p.dst.iter().zip(dst) {
            req.add_property(self.plane, *prop, property::Value::UnsignedRange(v));
        }
    }

    /// Lights the path up with `mode`, showing `fb`. Checked with a TEST_ONLY commit
    /// first so that a mode the hardware refuses is reported before anything changes.
    pub fn modeset(&mut self, mode: &Mode, fb: framebuffer::Handle) -> Result<(), KmsError> {
        let blob = self
            .card
            .create_property_blob(mode)
            .map_err(KmsError::ioctl("create mode blob"))?;
        let mut req = AtomicModeReq::new();
        let p = &self.props;
        req.add_property(
            self.connector,
            p.conn_crtc_id,
            property::Value::CRTC(Some(self.crtc)),
        );
        req.add_property(self.crtc, p.crtc_active, property::Value::Boolean(true));
        req.add_property(self.crtc, p.crtc_mode_id, blob);
        self.plane_request(&mut req, fb, mode.size());
        let flags = AtomicCommitFlags::ALLOW_MODESET;
        self.card
            .atomic_commit(flags | AtomicCommitFlags::TEST_ONLY, req.clone())
            .map_err(|source| KmsError::TestRejected { source })?;
        self.card
            .atomic_commit(flags, req)
            .map_err(KmsError::ioctl("modeset commit"))?;
        self.size = Some(mode.size());
        let (w, h) = mode.size();
        tracing::info!(
            crtc = u32::from(self.crtc),
            w,
            h,
            hz = mode.vrefresh(),
            "modeset"
        );
        Ok(())
    }

    /// Takes over the mode a lessor already set on the CRTC: no modeset, only flips.
    pub fn adopt_mode(&mut self, mode: &Mode) {
        self.size = Some(mode.size());
    }

    /// Whether the CRTC is still ours (a revoked lessee can no longer see it).
    pub fn lease_alive(&self) -> bool {
        self.card.get_crtc(self.crtc).is_ok()
    }

    /// The card this path is on.
    pub fn card(&self) -> &'c Card {
        self.card
    }

    pub fn fence_gate(&self) -> FenceGate {
        self.gate.get()
    }

    /// Gate flips on the CPU from now on (a driver known to mishandle in-fences).
    pub fn use_cpu_fence_wait(&self) {
        self.gate.set(FenceGate::CpuWait);
    }

    /// A flip of `fb` gated on `fence`: through IN_FENCE_FD where the driver takes it,
    /// else by waiting up to `max_wait` for the fence on the CPU first. A driver that
    /// refuses an in-fence with EPERM switches this path to CPU waits (logged once).
    pub fn flip_gated(
        &self,
        fb: framebuffer::Handle,
        fence: BorrowedFd<'_>,
        max_wait: std::time::Duration,
    ) -> Result<(), KmsError> {
        if self.gate.get() == FenceGate::InFence {
            match self.flip_fenced(fb, Some(fence), false) {
                Ok(_) => return Ok(()),
                Err(e) if e.errno() == Some(rustix::io::Errno::PERM.raw_os_error()) => {
                    tracing::warn!(crtc = u32::from(self.crtc), error = %e, "the driver refuses IN_FENCE_FD: flips wait for renders on the CPU from now on");
                    self.gate.set(FenceGate::CpuWait);
                }
                Err(e) => return Err(e),
            }
        }
        if !super::fence::wait_sync_file(fence, max_wait)? {
            return Err(KmsError::FenceTimeout {
                ms: max_wait.as_millis() as u64,
            });
        }
        self.flip(fb)
    }

    /// Whether the plane takes an `IN_FENCE_FD` (explicit fencing).
    pub fn supports_in_fence(&self) -> bool {
        self.props.in_fence_fd.is_some()
    }

    /// Queues a nonblocking page flip to `fb` at the next vblank, with a flip event.
    /// Fails with EBUSY while a previous flip is still pending.
    pub fn flip(&self, fb: framebuffer::Handle) -> Result<(), KmsError> {
        self.flip_fenced(fb, None, false).map(|_| ())
    }

    /// A nonblocking page flip gated on `in_fence` (a sync_file: the flip happens at the
    /// first vblank after it signals, never earlier). With `out_fence`, returns the CRTC's
    /// out-fence: a sync_file that signals when this frame replaces the previous one on
    /// screen, i.e. when the previous framebuffer is released.
    pub fn flip_fenced(
        &self,
        fb: framebuffer::Handle,
        in_fence: Option<BorrowedFd<'_>>,
        out_fence: bool,
    ) -> Result<Option<OwnedFd>, KmsError> {
        let size = self.size.ok_or(KmsError::Ioctl {
            op: "page flip",
            source: std::io::Error::other("flip before modeset"),
        })?;
        let mut req = AtomicModeReq::new();
        self.plane_request(&mut req, fb, size);
        if let Some(fence) = in_fence {
            let prop = self.props.in_fence_fd.ok_or(KmsError::MissingProperty {
                object: format!("plane {}", u32::from(self.plane)),
                name: "IN_FENCE_FD",
            })?;
            req.add_property(
                self.plane,
                prop,
                property::Value::SignedRange(i64::from(fence.as_raw_fd())),
            );
        }
        // The kernel writes the new out-fence fd into this i32 during the commit ioctl.
        let mut out_fd: i32 = -1;
        if out_fence {
            let prop = self.props.out_fence_ptr.ok_or(KmsError::MissingProperty {
                object: format!("CRTC {}", u32::from(self.crtc)),
                name: "OUT_FENCE_PTR",
            })?;
            let ptr = std::ptr::addr_of_mut!(out_fd) as u64;
            req.add_property(self.crtc, prop, property::Value::UnsignedRange(ptr));
        }
        // The first commit of each configuration is checked with TEST_ONLY (without the
        // out-fence pointer and event, which TEST_ONLY does not take).
        let key = (fb, in_fence.is_some(), out_fence);
        if !self.tested.borrow().contains(&key) {
            let mut test = AtomicModeReq::new();
            self.plane_request(&mut test, fb, size);
            if let (Some(fence), Some(prop)) = (in_fence, self.props.in_fence_fd) {
                test.add_property(
                    self.plane,
                    prop,
                    property::Value::SignedRange(i64::from(fence.as_raw_fd())),
                );
            }
            self.card
                .atomic_commit(AtomicCommitFlags::TEST_ONLY, test)
                .map_err(|source| KmsError::TestRejected { source })?;
            self.tested.borrow_mut().push(key);
        }
        self.card
            .atomic_commit(
                AtomicCommitFlags::NONBLOCK | AtomicCommitFlags::PAGE_FLIP_EVENT,
                req,
            )
            .map_err(KmsError::ioctl("page flip commit"))?;
        if out_fd < 0 {
            return Ok(None);
        }
        // SAFETY: the commit succeeded, so the kernel installed a new sync_file fd in
        // `out_fd` for this process; nothing else owns it.
        Ok(Some(unsafe {
            <OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(out_fd)
        }))
    }
}

impl Card {
    /// Waits up to `timeout` for DRM events and returns the page flips among them.
    pub fn wait_flip_events(&self, timeout: Duration) -> Result<Vec<FlipEvent>, KmsError> {
        if !super::poll_readable(self.as_fd(), timeout, "poll DRM fd")? {
            return Err(KmsError::FlipTimeout {
                ms: timeout.as_millis() as u64,
            });
        }
        // A signal may interrupt the read as well: read again.
        let events = loop {
            match self.receive_events() {
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                r => break r.map_err(KmsError::ioctl("read DRM events"))?,
            }
        };
        Ok(events
            .filter_map(|e| match e {
                drm::control::Event::PageFlip(f) => Some(FlipEvent {
                    crtc: f.crtc,
                    sequence: f.frame,
                    timestamp_ns: f.duration.as_nanos() as u64,
                }),
                _ => None,
            })
            .collect())
    }
}

/// A CPU-filled dumb buffer with a framebuffer on it: the simplest scanout buffer, which
/// every KMS driver supports. Destroyed with its card on drop.
#[derive(Debug)]
pub struct DumbFramebuffer<'c> {
    card: &'c Card,
    buffer: Option<DumbBuffer>,
    pub fb: framebuffer::Handle,
}

impl<'c> DumbFramebuffer<'c> {
    /// Allocates an XRGB8888 buffer and fills it with one colour (0xRRGGBB).
    pub fn solid(card: &'c Card, (w, h): (u16, u16), rgb: u32) -> Result<Self, KmsError> {
        let mut buffer = card
            .create_dumb_buffer((u32::from(w), u32::from(h)), DrmFourcc::Xrgb8888, 32)
            .map_err(KmsError::ioctl("create dumb buffer"))?;
        {
            let mut map = card
                .map_dumb_buffer(&mut buffer)
                .map_err(KmsError::ioctl("map dumb buffer"))?;
            for px in map.as_mut().chunks_exact_mut(4) {
                px.copy_from_slice(&rgb.to_le_bytes());
            }
        }
        let fb = match card.add_framebuffer(&buffer, 24, 32) {
            Ok(fb) => fb,
            Err(e) => {
                let _ = card.destroy_dumb_buffer(buffer);
                return Err(KmsError::Ioctl {
                    op: "add framebuffer",
                    source: e,
                });
            }
        };
        Ok(Self {
            card,
            buffer: Some(buffer),
            fb,
        })
    }
}

impl Drop for DumbFramebuffer<'_> {
    fn drop(&mut self) {
        let _ = self.card.destroy_framebuffer(self.fb);
        if let Some(b) = self.buffer.take() {
            let _ = self.card.destroy_dumb_buffer(b);
        }
    }
}
