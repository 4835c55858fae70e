//! Swapchains in the tree: owned by their session.

use crate::state::swapchain::SwapchainCycle;
use leasehold_compositor::frame_loop::InUse;
use leasehold_compositor::service::Compositor;
use leasehold_compositor::vk::app::{AppSwapchain, ReleaseProbe};
use std::sync::{Arc, Mutex};

pub(crate) struct SwapchainObj {
    pub(crate) session: u64,
    pub(crate) width: u32,
    pub(crate) height: u32,
    pub(crate) array_size: u32,
    /// 1, or 6 for a cube map.
    pub(crate) faces: u32,
    /// The image cycle and what the compositor may read: what xrEndFrame looks at, so
    /// never held across a GPU wait.
    pub(crate) inner: Mutex<Inner>,
    /// The images on the app's device: acquiring and releasing one records and submits
    /// its layout transition, after waiting for that image's previous submission. Drops
    /// after `inner` (the compositor lets go of its imports first).
    pub(crate) app: Mutex<AppSwapchain>,
}

pub(crate) struct Inner {
    pub(crate) cycle: SwapchainCycle,
    /// Per image: the app's rendering into it as of its last release (`None`: known
    /// done), for the compositor to ask about before it reads the image.
    pub(crate) probes: Vec<Option<ReleaseProbe>>,
    /// Per image: the compositor's layer image (colour swapchains), and whether the
    /// compositor may still be reading it.
    pub(crate) layer_ids: Vec<Option<u64>>,
    pub(crate) in_use: Vec<Arc<InUse>>,
    pub(crate) compositor: Arc<dyn Compositor>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        for id in self.layer_ids.iter().flatten() {
            self.compositor.destroy_image(*id);
        }
    }
}

pub(crate) fn ilock(s: &SwapchainObj) -> std::sync::MutexGuard<'_, Inner> {
    s.inner.lock().unwrap_or_else(|p| p.into_inner())
}

pub(crate) fn alock(s: &SwapchainObj) -> std::sync::MutexGuard<'_, AppSwapchain> {
    s.app.lock().unwrap_or_else(|p| p.into_inner())
}
