//! The KMS target: the compositor renders straight into the leased output's scanout
//! buffers (dma-bufs imported into Vulkan) and each frame reaches the display through a
//! page flip gated on the render's fence: IN_FENCE_FD with the exported sync_file where
//! the driver has one, else after a CPU wait.
//!
//! Where the render device cannot import the display's buffers (another GPU, or a
//! driver without dma-buf import), frames are rendered into the renderer's own images
//! and copied through a linear, CPU-visible buffer into the scanout buffer (the
//! multi-GPU path); the target says which path it uses.
//!
//! Commits do not wait for their flip: the frame loop plans and renders the next frame
//! while this one's flip is in flight, and flip events are taken as they arrive (while the
//! loop sleeps, or when it needs the buffer a pending flip will free).

use super::{Committed, Feedback, Target, TargetError};
use crate::kms::{FlipEvent, KmsError, Output, ScanoutRing};
use crate::vk::renderer::{GpuRenderer, RenderFence, TargetImage};
use std::os::fd::AsFd;
use std::time::Duration;

/// How frames get into the scanout buffers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RenderPath {
    /// Rendered in place: the scanout buffers are the render targets.
    Import,
    /// Rendered into the renderer's images, then copied (GPU → linear buffer → CPU →
    /// scanout dma-buf, bracketed by DMA_BUF_IOCTL_SYNC).
    Copy,
}

#[derive(Debug)]
pub struct KmsTarget<'c> {
    path: RenderPath,
    output: Output<'c>,
    ring: ScanoutRing<'c>,
    images: Vec<TargetImage>,
    acquired: Option<usize>,
    /// Committed frames awaiting their flip, in commit order: (ring slot, the vblank it
    /// was committed for).
    pending: std::collections::VecDeque<(usize, u64)>,
    /// Feedback of flips taken but not yet handed out, oldest first.
    ready: std::collections::VecDeque<Feedback>,
    period_ns: u64,
    flips: u64,
}

fn lost(e: KmsError) -> TargetError {
    if e.is_lease_lost() {
        TargetError::Lost(format!("the lease is gone: {e}"))
    } else {
        TargetError::Lost(e.to_string())
    }
}

impl<'c> KmsTarget<'c> {
    /// Wraps a lit output (modeset done) and its scanout ring; every buffer of the ring
    /// is imported into the renderer's device. Fails if the device cannot import them.
    pub fn new(
        output: Output<'c>,
        ring: ScanoutRing<'c>,
        renderer: &mut GpuRenderer,
        period_ns: u64,
    ) -> Result<Self, TargetError> {
        match Self::import(&ring, renderer) {
            Ok(images) => {
                tracing::info!(
                    buffers = images.len(),
                    stride = ring.buffer(0).stride,
                    modifier = ?ring.buffer(0).modifier,
                    "render path: in place (scanout buffers imported as render targets)"
                );
                Ok(Self::with(
                    RenderPath::Import,
                    output,
                    ring,
                    images,
                    period_ns,
                ))
            }
            Err(e) => {
                tracing::warn!(error = %e, "render path: copy through a CPU-visible buffer (the render device cannot import the display's buffers)");
                Self::new_copying(output, ring, renderer, period_ns)
            }
        }
    }

    /// The copy path, chosen explicitly.
    pub fn new_copying(
        output: Output<'c>,
        ring: ScanoutRing<'c>,
        renderer: &mut GpuRenderer,
        period_ns: u64,
    ) -> Result<Self, TargetError> {
        let (w, h) = (ring.buffer(0).width, ring.buffer(0).height);
        let images = super::all_or_none(renderer, ring.len(), |r, _| r.create_target(w, h))?;
        Ok(Self::with(
            RenderPath::Copy,
            output,
            ring,
            images,
            period_ns,
        ))
    }

    fn with(
        path: RenderPath,
        output: Output<'c>,
        ring: ScanoutRing<'c>,
        images: Vec<TargetImage>,
        period_ns: u64,
    ) -> Self {
        Self {
            path,
            output,
            ring,
            images,
            acquired: None,
            pending: std::collections::VecDeque::new(),
            ready: std::collections::VecDeque::new(),
            period_ns: period_ns.max(1),
            flips: 0,
        }
    }

    pub fn render_path(&self) -> RenderPath {
        self.path
    }

    /// Gives the output and ring back (e.g. to switch render paths).
    pub fn into_parts(
        self,
        renderer: &mut GpuRenderer,
    ) -> Result<(Output<'c>, ScanoutRing<'c>), TargetError> {
        for t in self.images {
            renderer.destroy_target(t)?;
        }
        Ok((self.output, self.ring))
    }

    fn import(
        ring: &ScanoutRing<'c>,
        renderer: &mut GpuRenderer,
    ) -> Result<Vec<TargetImage>, TargetError> {
        Ok(super::all_or_none(renderer, ring.len(), |r, i| {
            let b = ring.buffer(i);
            r.import_target(
                b.dmabuf(),
                b.width,
                b.height,
                b.stride,
                b.modifier.map(u64::from),
            )
        })?)
    }

    pub fn ring(&self) -> &ScanoutRing<'c> {
        &self.ring
    }

    pub fn output(&self) -> &Output<'c> {
        &self.output
    }

    /// Flips completed through this target.
    pub fn flips(&self) -> u64 {
        self.flips
    }

    pub fn destroy(self, renderer: &mut GpuRenderer) -> Result<(), TargetError> {
        for t in self.images {
            renderer.destroy_target(t)?;
        }
        Ok(())
    }

    /// The oldest pending frame is on screen (`ev`): its buffer is the shown one now,
    /// the one it replaced is free again.
    fn flipped(&mut self, ev: FlipEvent) -> Result<(), TargetError> {
        let Some((slot, target_vblank_ns)) = self.pending.pop_front() else {
            // An event with no commit of ours behind it (stray): nothing to account.
            return Ok(());
        };
        self.ring
            .flipped(slot)
            .map_err(|e| TargetError::Lost(e.to_string()))?;
        self.flips += 1;
        let missed =
            target_vblank_ns > 0 && ev.timestamp_ns > target_vblank_ns + self.period_ns / 2;
        self.ready.push_back(Feedback {
            sequence: u64::from(ev.sequence),
            vblank_ns: ev.timestamp_ns,
            missed,
        });
        Ok(())
    }

    /// Takes the flip events that have arrived, waiting at most `timeout`.
    fn take_events(&mut self, timeout: Duration) -> Result<(), TargetError> {
        match self.output.card().wait_flip_events(timeout) {
            Ok(events) => {
                let crtc = self.output.crtc;
                for e in events.into_iter().filter(|e| e.crtc == crtc) {
                    self.flipped(e)?;
                }
                Ok(())
            }
            Err(KmsError::FlipTimeout { .. }) => Ok(()),
            Err(e) => Err(lost(e)),
        }
    }
}

/// A commit error that says "not now" rather than "never": EBUSY (a flip still pending),
/// EAGAIN, EINVAL (a configuration the driver cannot take at this moment, e.g. mid
/// modeset by the lessor).
fn refused_for_now(e: &KmsError) -> bool {
    use rustix::io::Errno;
    [Errno::BUSY, Errno::AGAIN, Errno::INVAL]
        .iter()
        .any(|n| e.errno() == Some(n.raw_os_error()))
}

impl Target for KmsTarget<'_> {
    fn completed_flips(&self) -> Option<u64> {
        Some(self.flips)
    }

    fn describe(&self) -> String {
        let b = self.ring.buffer(0);
        format!(
            "KMS {}x{} ({:?} buffers, render path {:?}) at {:.2} Hz",
            b.width,
            b.height,
            self.ring.allocator(),
            self.path,
            1e9 / self.period_ns as f64
        )
    }

    fn size(&self) -> (u32, u32) {
        let b = self.ring.buffer(0);
        (b.width, b.height)
    }

    fn period_ns(&self) -> u64 {
        self.period_ns
    }

    fn acquire(&mut self) -> Result<&TargetImage, TargetError> {
        let i = match self.acquired {
            Some(i) => i,
            None => {
                let i = self
                    .ring
                    .acquire()
                    .ok_or_else(|| TargetError::Lost("no scanout buffer is free".into()))?;
                self.acquired = Some(i);
                i
            }
        };
        Ok(&self.images[i])
    }

    fn can_acquire(&self) -> bool {
        self.acquired.is_some() || self.ring.state().has_free()
    }

    fn commit(
        &mut self,
        renderer: &mut GpuRenderer,
        fence: &RenderFence,
        target_vblank_ns: u64,
    ) -> Result<Committed, TargetError> {
        let i = self
            .acquired
            .ok_or_else(|| TargetError::Lost("commit without an acquired image".into()))?;
        let fb = self.ring.buffer(i).fb;
        if self.path == RenderPath::Copy {
            // The copy needs the finished frame on the CPU side anyway.
            renderer.wait()?;
            let frame = renderer.read_target(&self.images[i])?;
            let b = self.ring.buffer(i);
            let (w, stride) = (b.width as usize, b.stride as usize);
            let copied = b.write_with(|bytes| {
                for (y, row) in frame.data.chunks_exact(w * 4).enumerate() {
                    let dst = &mut bytes[y * stride..y * stride + w * 4];
                    for (d, s) in dst.chunks_exact_mut(4).zip(row.chunks_exact(4)) {
                        d.copy_from_slice(&[s[2], s[1], s[0], 0xff]); // XRGB8888
                    }
                }
            });
            if let Err(e) = copied {
                self.acquired = None;
                let _ = self.ring.cancel(i);
                return Err(lost(e));
            }
        }
        let committed = match (fence, self.path) {
            (_, RenderPath::Copy) => self.output.flip(fb),
            (RenderFence::SyncFile(fd), RenderPath::Import) => {
                self.output
                    .flip_gated(fb, fd.as_fd(), crate::vk::gpu_hang())
            }
            (RenderFence::Signalled, RenderPath::Import) => self.output.flip(fb),
            (RenderFence::CpuWait, RenderPath::Import) => {
                renderer.wait()?;
                self.output.flip(fb)
            }
        };
        match committed {
            Ok(()) => {
                self.acquired = None;
                self.ring
                    .queue(i)
                    .map_err(|e| TargetError::Lost(e.to_string()))?;
                self.pending.push_back((i, target_vblank_ns));
                Ok(Committed::Pending)
            }
            // Not now: the image stays acquired for the retargeted commit.
            Err(e) if refused_for_now(&e) => Err(TargetError::Busy(e.to_string())),
            Err(e) => {
                self.acquired = None;
                let _ = self.ring.cancel(i);
                Err(lost(e))
            }
        }
    }

    fn wait_until(&mut self, t_ns: u64) -> Result<Vec<Feedback>, TargetError> {
        loop {
            let now = crate::present::now_ns();
            if now >= t_ns {
                return Ok(self.ready.drain(..).collect());
            }
            // Flip events end the sleep early; the card's wait retries EINTR.
            self.take_events(Duration::from_nanos(t_ns - now))?;
        }
    }

    fn next_feedback(&mut self) -> Result<Feedback, TargetError> {
        // A flip is due within a period or two; one that takes a second never comes (the
        // lease is gone, or the CRTC is no longer ours).
        let deadline = crate::present::now_ns() + 1_000_000_000;
        loop {
            if let Some(fb) = self.ready.pop_front() {
                return Ok(fb);
            }
            if self.pending.is_empty() {
                return Err(TargetError::Lost(
                    "no frame is pending on the display".into(),
                ));
            }
            let now = crate::present::now_ns();
            if now >= deadline {
                return Err(TargetError::Lost(if self.output.lease_alive() {
                    "a committed frame never flipped (1 s)".into()
                } else {
                    "the lease is gone (a committed frame never flipped)".into()
                }));
            }
            self.take_events(Duration::from_nanos(deadline - now))?;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn not_now_is_retried_and_never_is_not() {
        let err = |n: rustix::io::Errno| KmsError::Ioctl {
            op: "atomic commit",
            source: std::io::Error::from_raw_os_error(n.raw_os_error()),
        };
        assert!(refused_for_now(&err(rustix::io::Errno::BUSY)));
        assert!(refused_for_now(&err(rustix::io::Errno::AGAIN)));
        assert!(refused_for_now(&err(rustix::io::Errno::INVAL)));
        assert!(
            !refused_for_now(&err(rustix::io::Errno::NOENT)),
            "lease revoked"
        );
        assert!(!refused_for_now(&err(rustix::io::Errno::ACCESS)));
    }
}
