//! Where composited frames go. A [`Target`] hands out the image to render the next frame
//! into, and presents it at a target vblank once its render fence allows, returning
//! what the display did (vblank time, sequence, missed or not) for the pacer.
//!
//! - [`headless::HeadlessTarget`]: offscreen images at the panel's resolution, paced by
//!   a simulated vblank clock; any frame can be written as PNG.
//! - The KMS target (scanout buffers of a leased output) builds on `kms`.

pub mod headless;
pub mod kms;

use crate::vk::VkError;
use crate::vk::renderer::{GpuRenderer, RenderFence, TargetImage};

/// Makes `n` targets with `make`, or none: on a failure the ones made so far are
/// released before the error is returned.
pub(crate) fn all_or_none(
    renderer: &mut GpuRenderer,
    n: usize,
    mut make: impl FnMut(&mut GpuRenderer, usize) -> Result<TargetImage, VkError>,
) -> Result<Vec<TargetImage>, VkError> {
    let mut images = Vec::with_capacity(n);
    for i in 0..n {
        match make(renderer, i) {
            Ok(t) => images.push(t),
            Err(e) => {
                for t in images {
                    let _ = renderer.destroy_target(t);
                }
                return Err(e);
            }
        }
    }
    Ok(images)
}

/// What the display did with a presented frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Feedback {
    /// The vblank the frame was shown at.
    pub sequence: u64,
    pub vblank_ns: u64,
    /// It was shown later than the vblank it was presented for.
    pub missed: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum TargetError {
    #[error(transparent)]
    Vulkan(#[from] VkError),
    #[error("the display is gone: {0}")]
    Lost(String),
    /// The display refused the commit for now (a flip still pending, a configuration
    /// it cannot take at this moment): the frame may be retargeted to a later vblank.
    #[error("the display refused the commit for now: {0}")]
    Busy(String),
}

/// What a commit did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Committed {
    /// Already shown (targets without a display: the simulated vblank has passed).
    Shown(Feedback),
    /// Queued on the display: its feedback arrives later, in commit order, from
    /// [`Target::wait_until`] or [`Target::next_feedback`].
    Pending,
}

pub trait Target {
    /// For logs and the CLI.
    fn describe(&self) -> String;
    /// Panel size in pixels.
    fn size(&self) -> (u32, u32);
    /// Refresh period, ns.
    fn period_ns(&self) -> u64;
    /// The image the next frame renders into (free: not on screen, not queued).
    fn acquire(&mut self) -> Result<&TargetImage, TargetError>;
    /// Commits the acquired image for `target_vblank_ns` (or the first vblank after, if
    /// that has passed), to be shown once `fence` has signalled. Does not wait for the
    /// display: a target with one answers [`Committed::Pending`].
    fn commit(
        &mut self,
        renderer: &mut GpuRenderer,
        fence: &RenderFence,
        target_vblank_ns: u64,
    ) -> Result<Committed, TargetError>;
    /// Sleeps until `t_ns` (monotonic), returning the feedback of committed frames the
    /// display showed meanwhile, oldest first.
    fn wait_until(&mut self, t_ns: u64) -> Result<Vec<Feedback>, TargetError> {
        crate::present::sleep_until(t_ns);
        Ok(Vec::new())
    }
    /// Waits for the oldest pending frame's feedback (its flip).
    fn next_feedback(&mut self) -> Result<Feedback, TargetError> {
        Err(TargetError::Lost(
            "no frame is pending on this target".into(),
        ))
    }
    /// Whether an image is free to render into now (else a pending frame's flip must
    /// come first: [`Target::next_feedback`]).
    fn can_acquire(&self) -> bool {
        true
    }
    /// Shows the acquired image and waits until it is on screen (one frame at a time:
    /// tests and benchmarks); a commit refused for now is tried once more a period later.
    fn present(
        &mut self,
        renderer: &mut GpuRenderer,
        fence: RenderFence,
        target_vblank_ns: u64,
    ) -> Result<Feedback, TargetError> {
        let committed = match self.commit(renderer, &fence, target_vblank_ns) {
            Err(TargetError::Busy(why)) => {
                tracing::warn!(%why, "commit refused: retrying a period later");
                let later = crate::present::now_ns() + self.period_ns();
                let _ = self.wait_until(later)?;
                self.commit(renderer, &fence, target_vblank_ns)?
            }
            other => other?,
        };
        match committed {
            Committed::Shown(fb) => Ok(fb),
            Committed::Pending => self.next_feedback(),
        }
    }
    /// Page flips the display completed, for targets with a display.
    fn completed_flips(&self) -> Option<u64> {
        None
    }
    /// Whether `present` can hand a render's sync_file to the display (KMS: the commit
    /// waits on it); else a frame's completion is waited for on the CPU, with no
    /// semaphore to create or export.
    fn gates_on_sync_files(&self) -> bool {
        true
    }
    /// The frame just presented showed an app's layers: targets that keep snapshots keep
    /// this one (until a later frame with layers replaces it).
    fn presented_content(&mut self) {}
    /// The last presented image that showed an app's layers (else the last presented
    /// one), read back (targets that can: headless).
    fn snapshot(
        &self,
        _renderer: &mut GpuRenderer,
    ) -> Result<Option<crate::render::pattern::RgbaImage>, VkError> {
        Ok(None)
    }
}
