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
    /// Shows the acquired image at `target_vblank_ns` (or the first vblank after, if
    /// that has passed), once `fence` has signalled.
    fn present(
        &mut self,
        renderer: &mut GpuRenderer,
        fence: RenderFence,
        target_vblank_ns: u64,
    ) -> Result<Feedback, TargetError>;
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
