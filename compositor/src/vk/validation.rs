//! Vulkan validation: the Khronos validation layer on the compositor's instance and on
//! the demo's app-side instance, when `LEASEHOLD_VK_VALIDATION=1` or when a test asks
//! for it ([`require`]). Every message goes into `tracing`; validation warnings and
//! errors are also counted ([`reports`]), so a test can fail on any.

use ash::vk;
use std::ffi::{CStr, c_char, c_void};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

const LAYER: &CStr = c"VK_LAYER_KHRONOS_validation";

static REQUIRED: AtomicBool = AtomicBool::new(false);
static REPORTS: AtomicU64 = AtomicU64::new(0);

/// Validation on for every instance this process creates from now on; creating one
/// fails if the layer is not installed.
pub fn require() {
    REQUIRED.store(true, Ordering::SeqCst);
}

/// Validation warnings and errors reported so far in this process.
pub fn reports() -> u64 {
    REPORTS.load(Ordering::SeqCst)
}

/// The layers to enable on a new instance, given the ones installed.
pub(super) fn layers(
    installed: &[vk::LayerProperties],
) -> Result<Vec<*const c_char>, super::VkError> {
    let required = REQUIRED.load(Ordering::SeqCst);
    let wanted = required || std::env::var_os("LEASEHOLD_VK_VALIDATION").is_some_and(|v| v == "1");
    if !wanted {
        return Ok(Vec::new());
    }
    if installed
        .iter()
        .any(|l| l.layer_name_as_c_str() == Ok(LAYER))
    {
        return Ok(vec![LAYER.as_ptr()]);
    }
    if required {
        return Err(super::VkError::Unsupported(
            "Vulkan validation was asked for, but VK_LAYER_KHRONOS_validation is not \
             installed (Debian: vulkan-validationlayers, installed by `cargo xtask setup`)"
                .into(),
        ));
    }
    tracing::warn!("LEASEHOLD_VK_VALIDATION=1 but the validation layer is not installed");
    Ok(Vec::new())
}

/// A messenger for every severity and type, routed to [`callback`].
pub(super) fn messenger_info() -> vk::DebugUtilsMessengerCreateInfoEXT<'static> {
    vk::DebugUtilsMessengerCreateInfoEXT::default()
        .message_severity(
            vk::DebugUtilsMessageSeverityFlagsEXT::ERROR
                | vk::DebugUtilsMessageSeverityFlagsEXT::WARNING
                | vk::DebugUtilsMessageSeverityFlagsEXT::INFO,
        )
        .message_type(
            vk::DebugUtilsMessageTypeFlagsEXT::VALIDATION
                | vk::DebugUtilsMessageTypeFlagsEXT::PERFORMANCE
                | vk::DebugUtilsMessageTypeFlagsEXT::GENERAL,
        )
        .pfn_user_callback(Some(callback))
}

/// Routes a validation/driver message into tracing and counts validation warnings and
/// errors. Never unwinds into the driver.
unsafe extern "system" fn callback(
    severity: vk::DebugUtilsMessageSeverityFlagsEXT,
    types: vk::DebugUtilsMessageTypeFlagsEXT,
    data: *const vk::DebugUtilsMessengerCallbackDataEXT<'_>,
    _user: *mut c_void,
) -> vk::Bool32 {
    let _ = std::panic::catch_unwind(|| {
        if data.is_null() {
            return;
        }
        // SAFETY: the loader passes a valid callback-data structure for the duration of
        // the call; p_message is a NUL-terminated string or null.
        let msg = unsafe {
            let d = &*data;
            if d.p_message.is_null() {
                "(no message)".to_string()
            } else {
                CStr::from_ptr(d.p_message).to_string_lossy().into_owned()
            }
        };
        let serious = vk::DebugUtilsMessageSeverityFlagsEXT::ERROR
            | vk::DebugUtilsMessageSeverityFlagsEXT::WARNING;
        if types.contains(vk::DebugUtilsMessageTypeFlagsEXT::VALIDATION)
            && severity.intersects(serious)
        {
            REPORTS.fetch_add(1, Ordering::SeqCst);
        }
        if severity.contains(vk::DebugUtilsMessageSeverityFlagsEXT::ERROR) {
            tracing::error!(target: "vulkan", "{msg}");
        } else if severity.contains(vk::DebugUtilsMessageSeverityFlagsEXT::WARNING) {
            tracing::warn!(target: "vulkan", "{msg}");
        } else {
            tracing::debug!(target: "vulkan", "{msg}");
        }
    });
    vk::FALSE
}
