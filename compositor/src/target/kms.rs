//! The KMS target: the compositor renders straight into the leased output's scanout
//! buffers (dma-bufs imported into Vulkan) and each frame reaches the display through a
//! page flip gated on the render's fence: IN_FENCE_FD with the exported sync_file where
//! the driver has one, else after a CPU wait.
//!
//! Where the render device cannot import the display's buffers (another GPU, or a
//! driver without dma-buf import), frames are rendered into the renderer's own images
//! and copied through a linear, CPU-visible buffer into the scanout buffer (the
//! multi-GPU path); the target says which path it uses.

use super::{Feedback, Target, TargetError};
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
    last_flip: Option<FlipEvent>,
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
            last_flip: None,
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

    fn next_flip(&self) -> Result<FlipEvent, TargetError> {
        loop {
            let events = self
                .output
                .card()
                .wait_flip_events(Duration::from_secs(2))
                .map_err(lost)?;
            if let Some(e) = events.into_iter().find(|e| e.crtc == self.output.crtc) {
                return Ok(e);
            }
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

    fn present(
        &mut self,
        renderer: &mut GpuRenderer,
        fence: RenderFence,
        target_vblank_ns: u64,
    ) -> Result<Feedback, TargetError> {
        let i = self
            .acquired
            .take()
            .ok_or_else(|| TargetError::Lost("present without an acquired image".into()))?;
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
                let _ = self.ring.cancel(i);
                return Err(lost(e));
            }
        }
        let commit = |this: &Self, renderer: &mut GpuRenderer| -> Result<(), KmsError> {
            match (&fence, this.path) {
                (_, RenderPath::Copy) => this.output.flip(fb),
                (fence, RenderPath::Import) => match fence {
                    RenderFence::SyncFile(fd) => {
                        this.output
                            .flip_gated(fb, fd.as_fd(), Duration::from_secs(1))
                    }
                    RenderFence::Signalled => this.output.flip(fb),
                    RenderFence::CpuWait => {
                        renderer.wait().map_err(|e| KmsError::Lessor {
                            why: format!("waiting for the render: {e}"),
                        })?;
                        this.output.flip(fb)
                    }
                },
            }
        };
        let mut committed = commit(self, renderer);
        if let Err(e) = &committed
            && refused_for_now(e)
        {
            // A commit the kernel refuses for now (a flip still pending, a busy
            // configuration) is retargeted once, to the next vblank, before the display
            // counts as lost.
            tracing::warn!(%e, "commit refused: retrying at the next vblank");
            let _ = self
                .output
                .card()
                .wait_flip_events(Duration::from_nanos(self.period_ns.max(1_000_000)));
            committed = commit(self, renderer);
        }
        if let Err(e) = committed {
            let _ = self.ring.cancel(i);
            return Err(lost(e));
        }
        self.ring
            .queue(i)
            .map_err(|e| TargetError::Lost(e.to_string()))?;
        let ev = self.next_flip()?;
        self.ring
            .flipped(i)
            .map_err(|e| TargetError::Lost(e.to_string()))?;
        self.flips += 1;
        let missed =
            target_vblank_ns > 0 && ev.timestamp_ns > target_vblank_ns + self.period_ns / 2;
        self.last_flip = Some(ev);
        Ok(Feedback {
            sequence: u64::from(ev.sequence),
            vblank_ns: ev.timestamp_ns,
            missed,
        })
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
