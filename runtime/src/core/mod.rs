//! The runtime's object tree, in safe Rust. The ABI layer (`abi`) marshals each call,
//! looks its handle up here and works on what it finds.
//!
//! ```text
//! registry (handles → objects; owns instances, knows the rest weakly)
//! instance ─┬─ sessions ─┬─ swapchains
//!           │            ├─ spaces
//!           │            └─ debug labels, attached actions
//!           ├─ action sets ── actions
//!           ├─ debug messengers
//!           └─ suggested bindings, object names, Vulkan requirements state
//! ```
//!
//! Destroying an object is dropping it: it leaves the registry and its parent, and what
//! it owns goes with it. A call that already looked an object up keeps it alive until it
//! returns; its handle no longer resolves meanwhile.
//!
//! Lock order (a thread holding one may take only those after it):
//! 1. a session's state (`SessionCell::obj`);
//! 2. a swapchain's cycle (`SwapchainObj::inner`);
//! 3. an instance's state (`InstanceNode::lock`), its suggested bindings, names and
//!    Vulkan state;
//! 4. children lists (`Children`), then the registry: leaves, held for a push or a lookup
//!    only.
//!
//! A swapchain's images on the app's device (`SwapchainObj::app`) are locked with no
//! other lock held: the GPU waits of xrAcquireSwapchainImage and xrReleaseSwapchainImage
//! happen under it and under nothing else, so xrWaitFrame and xrEndFrame on other
//! threads never wait for the app's GPU.
//!
//! No application callback runs while any of them is held (messages for debug
//! messengers are queued and delivered as each call returns).

pub mod action;
pub mod instance;
pub mod messenger;
pub mod registry;
pub mod session;
pub mod space;
pub mod swapchain;

/// Live objects of each kind (leak tests): instances, sessions, swapchains, spaces,
/// action sets, actions, messengers.
pub fn live() -> [(&'static str, usize); 7] {
    use registry::{Kind, REGISTRY};
    [
        ("instances", REGISTRY.count(Kind::Instance)),
        ("sessions", REGISTRY.count(Kind::Session)),
        ("swapchains", REGISTRY.count(Kind::Swapchain)),
        ("spaces", REGISTRY.count(Kind::Space)),
        ("action sets", REGISTRY.count(Kind::ActionSet)),
        ("actions", REGISTRY.count(Kind::Action)),
        ("messengers", REGISTRY.count(Kind::Messenger)),
    ]
}
