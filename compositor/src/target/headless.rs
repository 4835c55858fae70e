//! The headless target: the compositor's output with no display at all. Images at the
//! headset panel's resolution, a simulated vblank clock at its refresh rate (a present
//! returns at the vblank that shows the frame, as a real display queue would), and PNG
//! snapshots of any presented frame.

use super::{Committed, Feedback, Target, TargetError};
use crate::present::{now_ns, sleep_until};
use crate::render::pattern::RgbaImage;
use crate::vk::VkError;
use crate::vk::renderer::{GpuRenderer, RenderFence, TargetImage};
use std::os::fd::AsFd;

/// Vblanks at `epoch + n · period`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VblankClock {
    pub epoch_ns: u64,
    pub period_ns: u64,
}

impl VblankClock {
    pub fn new(refresh_hz: f32, epoch_ns: u64) -> Self {
        let hz = if refresh_hz.is_finite() && refresh_hz >= 1.0 {
            refresh_hz
        } else {
            90.0
        };
        Self {
            epoch_ns,
            period_ns: (1e9 / hz as f64).round() as u64,
        }
    }

    /// The first vblank at or after `t_ns`: (sequence, time).
    pub fn at_or_after(&self, t_ns: u64) -> (u64, u64) {
        let since = t_ns.saturating_sub(self.epoch_ns);
        let n = since.div_ceil(self.period_ns);
        (n, self.epoch_ns + n * self.period_ns)
    }
}

#[derive(Debug)]
pub struct HeadlessTarget {
    images: Vec<TargetImage>,
    next: usize,
    /// The last presented image, for snapshots.
    shown: Option<usize>,
    /// The last presented image that showed an app's layers: kept out of the ring (when
    /// it has more than two images) so that snapshots see it after the app is gone.
    content: Option<usize>,
    clock: VblankClock,
    last_sequence: Option<u64>,
    paced: bool,
}

impl HeadlessTarget {
    /// `count` images (at least 2) of `width` × `height`, refreshing at `refresh_hz`.
    pub fn new(
        renderer: &mut GpuRenderer,
        width: u32,
        height: u32,
        refresh_hz: f32,
        count: usize,
    ) -> Result<Self, VkError> {
        let images = super::all_or_none(renderer, count.max(2), |r, _| {
            r.create_target(width, height)
        })?;
        Ok(Self {
            images,
            next: 0,
            shown: None,
            content: None,
            clock: VblankClock::new(refresh_hz, now_ns()),
            last_sequence: None,
            paced: true,
        })
    }

    /// Unpaced, a present returns as soon as the render is done (benchmarks measure
    /// the compositor, not the clock); the feedback still names the vblank it would hit.
    pub fn set_paced(&mut self, paced: bool) {
        self.paced = paced;
    }

    pub fn clock(&self) -> VblankClock {
        self.clock
    }

    /// The last frame on "screen" that showed an app's layers, else the frame on
    /// "screen" now, read back as RGBA.
    pub fn snapshot(&self, renderer: &mut GpuRenderer) -> Result<Option<RgbaImage>, VkError> {
        match self.content.or(self.shown) {
            Some(i) => renderer.read_target(&self.images[i]).map(Some),
            None => Ok(None),
        }
    }

    /// Writes the frame on "screen" as PNG; `false` if nothing was presented yet.
    pub fn write_png(
        &self,
        renderer: &mut GpuRenderer,
        path: &std::path::Path,
    ) -> Result<bool, TargetError> {
        match self.snapshot(renderer)? {
            Some(img) => {
                img.write_png(path)
                    .map_err(|e| TargetError::Lost(format!("{}: {e}", path.display())))?;
                Ok(true)
            }
            None => Ok(false),
        }
    }

    /// Releases the images (the renderer must be the one that made them).
    pub fn destroy(self, renderer: &mut GpuRenderer) -> Result<(), VkError> {
        for i in self.images {
            renderer.destroy_target(i)?;
        }
        Ok(())
    }
}

impl Target for HeadlessTarget {
    fn describe(&self) -> String {
        let (w, h) = self.size();
        format!(
            "headless {w}x{h} at {:.2} Hz",
            1e9 / self.clock.period_ns as f64
        )
    }

    fn size(&self) -> (u32, u32) {
        (self.images[0].width, self.images[0].height)
    }

    fn period_ns(&self) -> u64 {
        self.clock.period_ns
    }

    fn acquire(&mut self) -> Result<&TargetImage, TargetError> {
        Ok(&self.images[self.next])
    }

    fn commit(
        &mut self,
        renderer: &mut GpuRenderer,
        fence: &RenderFence,
        target_vblank_ns: u64,
    ) -> Result<Committed, TargetError> {
        match fence {
            RenderFence::SyncFile(fd) => {
                let hang = crate::vk::gpu_hang();
                let signalled = crate::kms::fence::wait_sync_file(fd.as_fd(), hang)
                    .map_err(|e| TargetError::Lost(format!("render fence: {e}")))?;
                if !signalled {
                    return Err(TargetError::Lost(format!(
                        "the render fence did not signal within {hang:?}: the GPU is taken to be hung"
                    )));
                }
            }
            RenderFence::Signalled => {}
            RenderFence::CpuWait => renderer.wait()?,
        }
        // Shown at the first vblank at or after both the target and the render's end,
        // and never twice at one vblank.
        let ready = now_ns();
        let (mut seq, mut t) = self.clock.at_or_after(ready.max(target_vblank_ns));
        if let Some(last) = self.last_sequence
            && seq <= last
        {
            seq = last + 1;
            t = self.clock.epoch_ns + seq * self.clock.period_ns;
        }
        let (target_seq, _) = self.clock.at_or_after(target_vblank_ns);
        if self.paced {
            sleep_until(t);
        }
        self.last_sequence = Some(seq);
        self.shown = Some(self.next);
        self.next = after(self.next, self.images.len(), self.content);
        Ok(Committed::Shown(Feedback {
            sequence: seq,
            vblank_ns: t,
            missed: seq > target_seq,
        }))
    }

    fn gates_on_sync_files(&self) -> bool {
        false
    }

    fn presented_content(&mut self) {
        self.content = self.shown;
    }

    fn snapshot(&self, renderer: &mut GpuRenderer) -> Result<Option<RgbaImage>, VkError> {
        HeadlessTarget::snapshot(self, renderer)
    }
}

/// The ring's image after `i` of `len`, passing over the kept one while two others are
/// left to alternate.
fn after(i: usize, len: usize, kept: Option<usize>) -> usize {
    let n = (i + 1) % len;
    if kept == Some(n) && len > 2 {
        (n + 1) % len
    } else {
        n
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_kept_image_is_passed_over_while_two_others_alternate() {
        assert_eq!(after(0, 3, None), 1);
        assert_eq!(after(2, 3, None), 0);
        // Image 1 kept: 0 and 2 alternate.
        assert_eq!(after(0, 3, Some(1)), 2);
        assert_eq!(after(2, 3, Some(1)), 0);
        // Two images: nothing can be kept out of the ring.
        assert_eq!(after(0, 2, Some(1)), 1);
    }

    #[test]
    fn vblank_clock_rounds_up_to_the_next_vblank() {
        let c = VblankClock::new(90.0, 1_000);
        assert_eq!(c.period_ns, 11_111_111);
        assert_eq!(c.at_or_after(1_000), (0, 1_000));
        assert_eq!(c.at_or_after(1_001), (1, 1_000 + 11_111_111));
        assert_eq!(c.at_or_after(0), (0, 1_000));
        assert_eq!(VblankClock::new(f32::NAN, 0).period_ns, 11_111_111);
    }
}
