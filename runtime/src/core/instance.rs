//! Instances: the roots of the tree. An instance owns its sessions, action sets (which
//! own their actions), debug messengers, suggested bindings, object names and Vulkan
//! requirements state; destroying it is dropping it, and everything it owns goes with it
//! (sessions are closed first, so threads waiting in them return).

use super::action::{ActionSetObj, Suggestions};
use super::messenger::Messenger;
use super::registry::{Children, Kind, REGISTRY};
use super::session::SessionCell;
use crate::state::Instance;
use leasehold_compositor::vk::app;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, Weak};

/// What XR_KHR_vulkan_enable(2) remembers per instance.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct VulkanState {
    /// xrGetVulkanGraphicsRequirements(2)KHR was called (xrCreateSession requires it).
    pub(crate) requirements_queried: bool,
    /// The VkInstance the app last asked the graphics device for, with the
    /// vkGetInstanceProcAddr it came through (enable2).
    pub(crate) app_instance: Option<(u64, Option<app::GetInstanceProcAddr>)>,
}

/// (object type, handle) → the name the app gave it (XR_EXT_debug_utils).
pub(crate) type Names = HashMap<(i32, u64), String>;

pub(crate) struct InstanceNode {
    state: Arc<Mutex<Instance>>,
    pub(crate) sessions: Children<SessionCell>,
    pub(crate) action_sets: Children<ActionSetObj>,
    pub(crate) messengers: Children<Messenger>,
    pub(crate) suggested: Mutex<Suggestions>,
    pub(crate) vulkan: Mutex<VulkanState>,
    pub(crate) names: Mutex<Names>,
}

impl InstanceNode {
    pub(crate) fn new(state: Instance) -> Self {
        Self {
            state: Arc::new(Mutex::new(state)),
            sessions: Children::new(Kind::Session),
            action_sets: Children::new(Kind::ActionSet),
            messengers: Children::new(Kind::Messenger),
            suggested: Mutex::new(Suggestions::default()),
            vulkan: Mutex::new(VulkanState::default()),
            names: Mutex::new(Names::new()),
        }
    }

    /// The instance's state as its sessions know it (they post their events there):
    /// gone with the instance.
    pub(crate) fn events_target(&self) -> Weak<Mutex<Instance>> {
        Arc::downgrade(&self.state)
    }

    /// The instance's own state (paths, events, the system).
    pub(crate) fn lock(&self) -> MutexGuard<'_, Instance> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl Drop for InstanceNode {
    fn drop(&mut self) {
        let sessions = self.sessions.drain();
        for (h, s) in &sessions {
            s.close(*h);
        }
        if !sessions.is_empty() {
            tracing::info!(
                sessions = sessions.len(),
                "instance destroyed with its sessions"
            );
        }
    }
}

/// Registers a new instance; the registry owns it until [`destroy`].
pub(crate) fn create(state: Instance) -> u64 {
    REGISTRY.insert_owned(Kind::Instance, Arc::new(InstanceNode::new(state)))
}

/// Unregisters the instance; it (and everything it owns) is dropped as the last call
/// still using it returns.
pub(crate) fn destroy(h: u64) -> Option<Arc<InstanceNode>> {
    REGISTRY.remove(Kind::Instance, h)
}

/// The live instance `h` names.
pub(crate) fn get(h: u64) -> Option<Arc<InstanceNode>> {
    REGISTRY.get(Kind::Instance, h)
}

/// Every live instance.
pub(crate) fn all() -> Vec<Arc<InstanceNode>> {
    REGISTRY.live(Kind::Instance)
}
