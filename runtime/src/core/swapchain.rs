//! Swapchains in the tree: owned by their session.

use crate::state::swapchain::SwapchainCycle;
use leasehold_compositor::frame_loop::InUse;
use leasehold_compositor::service::Compositor;
use leasehold_compositor::vk::app::AppSwapchain;
use std::sync::{Arc, Mutex};

pub(crate) struct SwapchainObj {
    pub(crate) session: u64,
    pub(crate) width: u32,
    pub(crate) height: u32,
    pub(crate) array_size: u32,
    /// 1, or 6 for a cube map.
    pub(crate) faces: u32,
    pub(crate) inner: Mutex<Inner>,
}

pub(crate) struct Inner {
    pub(crate) cycle: SwapchainCycle,
    pub(crate) app: AppSwapchain,
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
