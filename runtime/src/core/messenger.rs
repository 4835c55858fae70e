//! Debug messengers (XR_EXT_debug_utils) in the tree: owned by their instance. The
//! process keeps a count of live ones, so that runtime messages are queued only when
//! someone listens.

use openxr_sys as xr;
use std::sync::atomic::Ordering;

pub(crate) struct Messenger {
    pub(crate) instance: u64,
    pub(crate) severities: xr::DebugUtilsMessageSeverityFlagsEXT,
    pub(crate) types: xr::DebugUtilsMessageTypeFlagsEXT,
    pub(crate) callback: xr::pfn::DebugUtilsMessengerCallbackEXT,
    /// The app's pointer, handed back untouched.
    pub(crate) user_data: usize,
}

impl Messenger {
    pub(crate) fn new(
        instance: u64,
        severities: xr::DebugUtilsMessageSeverityFlagsEXT,
        types: xr::DebugUtilsMessageTypeFlagsEXT,
        callback: xr::pfn::DebugUtilsMessengerCallbackEXT,
        user_data: usize,
    ) -> Self {
        crate::logging::MESSENGERS.fetch_add(1, Ordering::AcqRel);
        Self {
            instance,
            severities,
            types,
            callback,
            user_data,
        }
    }
}

impl Drop for Messenger {
    fn drop(&mut self) {
        crate::logging::MESSENGERS.fetch_sub(1, Ordering::AcqRel);
    }
}
