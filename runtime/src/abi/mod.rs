//! The C ABI: the only `#[no_mangle]` code. The loader negotiates through
//! `xrNegotiateLoaderRuntimeInterface` and gets `xrGetInstanceProcAddr`; every other
//! entry point is handed out from the table below (extension functions only to
//! instances that enabled the extension). Each entry point validates its pointers,
//! structure types and handles, runs under a panic guard, and maps errors to
//! `XrResult`s.

pub mod handles;

use crate::state::{self, CreateError, CreateRequest, Instance, PathError};
use handles::HandleTable;
use openxr_sys as xr;
use openxr_sys::Handle as _;
use std::ffi::{CStr, c_char};
use std::sync::{Arc, Mutex};

type InstanceObj = Mutex<Instance>;

static INSTANCES: HandleTable<InstanceObj> = HandleTable::new(1);

/// Runs an entry point's body; a panic becomes XR_ERROR_RUNTIME_FAILURE instead of
/// unwinding into the application.
///
/// The body logs through the runtime's own subscriber; what it logged for the app's
/// debug messengers is delivered after it returns, when the call holds no runtime lock
/// (a messenger callback may call back into the runtime).
fn guard(f: impl FnOnce() -> xr::Result) -> xr::Result {
    crate::with_logging(|| {
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)).unwrap_or_else(|p| {
            let msg = p
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| p.downcast_ref::<String>().cloned())
                .unwrap_or_default();
            tracing::error!(panic = %msg, "internal error in an OpenXR call");
            xr::Result::ERROR_RUNTIME_FAILURE
        });
        // A callback that panics must not unwind into the application either.
        if std::panic::catch_unwind(debug_utils::deliver_queued).is_err() {
            tracing::error!("a debug messenger delivery panicked");
        }
        r
    })
}

fn instance(h: xr::Instance) -> Result<Arc<InstanceObj>, xr::Result> {
    INSTANCES
        .get(h.into_raw())
        .ok_or(xr::Result::ERROR_HANDLE_INVALID)
}

fn lock(i: &InstanceObj) -> std::sync::MutexGuard<'_, Instance> {
    i.lock().unwrap_or_else(|p| p.into_inner())
}

fn done(r: Result<(), xr::Result>) -> xr::Result {
    match r {
        Ok(()) => xr::Result::SUCCESS,
        Err(e) => e,
    }
}

/// The longest `next` chain the runtime walks: a longer one is taken for a loop (or
/// garbage) and refused with XR_ERROR_VALIDATION_FAILURE.
const MAX_CHAIN: usize = 64;

/// Walks a `next` chain, input or output, calling `f` with each structure's type and
/// address (structures `f` does not know it skips, as the specification requires); at
/// most [`MAX_CHAIN`] structures.
///
/// # Safety
/// `next` must be null or the start of a valid chain: each structure begins with its
/// type and next pointer. `f` may make a reference to the structure it is given (the
/// header is copied before).
unsafe fn walk_chain(
    mut next: *const std::ffi::c_void,
    mut f: impl FnMut(xr::StructureType, *const std::ffi::c_void) -> Result<(), xr::Result>,
) -> Result<(), xr::Result> {
    for _ in 0..MAX_CHAIN {
        if next.is_null() {
            return Ok(());
        }
        // SAFETY: by the caller's contract; a copy, so no reference outlives this line.
        let base = unsafe { *(next as *const xr::BaseInStructure) };
        f(base.ty, next)?;
        next = base.next.cast();
    }
    tracing::warn!("a next chain longer than {MAX_CHAIN} structures: refused");
    Err(xr::Result::ERROR_VALIDATION_FAILURE)
}

/// A structure the app hands over with its `type` field set.
pub(crate) trait Typed {
    const TYPE: xr::StructureType;
    fn ty(&self) -> xr::StructureType;
}

macro_rules! typed {
    ($($t:ident),* $(,)?) => {$(
        impl Typed for xr::$t {
            const TYPE: xr::StructureType = xr::$t::TYPE;
            fn ty(&self) -> xr::StructureType {
                self.ty
            }
        }
    )*};
}

typed!(
    InstanceProperties,
    SystemGetInfo,
    SystemProperties,
    ViewConfigurationProperties,
    SessionCreateInfo,
    SessionBeginInfo,
    FrameEndInfo,
    ReferenceSpaceCreateInfo,
    SpaceLocation,
    SpacesLocateInfo,
    SpaceLocations,
    VisibilityMaskKHR,
    SwapchainCreateInfo,
    SwapchainImageWaitInfo,
    ActionSetCreateInfo,
    ActionCreateInfo,
    InteractionProfileSuggestedBinding,
    SessionActionSetsAttachInfo,
    InteractionProfileState,
    ActionsSyncInfo,
    ActionStateGetInfo,
    ActionStateBoolean,
    ActionStateFloat,
    ActionStateVector2f,
    ActionStatePose,
    HapticActionInfo,
    BoundSourcesForActionEnumerateInfo,
    InputSourceLocalizedNameGetInfo,
    ActionSpaceCreateInfo,
    GraphicsRequirementsVulkanKHR,
    DebugUtilsObjectNameInfoEXT,
    DebugUtilsMessengerCreateInfoEXT,
    DebugUtilsMessengerCallbackDataEXT,
    DebugUtilsLabelEXT,
    VulkanInstanceCreateInfoKHR,
    VulkanDeviceCreateInfoKHR,
    VulkanGraphicsDeviceGetInfoKHR,
);

/// An input structure, checked: not null, the right structure type.
///
/// # Safety
/// `p` must be null or point to a readable `T`.
unsafe fn input<'a, T: Typed>(p: *const T) -> Result<&'a T, xr::Result> {
    if p.is_null() {
        return Err(xr::Result::ERROR_VALIDATION_FAILURE);
    }
    // SAFETY: non-null, and readable by the caller's contract.
    let r = unsafe { &*p };
    if r.ty() != T::TYPE {
        return Err(xr::Result::ERROR_VALIDATION_FAILURE);
    }
    Ok(r)
}

/// An output structure, checked like [`input`].
///
/// # Safety
/// `p` must be null or point to a writable `T` nothing else references.
unsafe fn output<'a, T: Typed>(p: *mut T) -> Result<&'a mut T, xr::Result> {
    if p.is_null() {
        return Err(xr::Result::ERROR_VALIDATION_FAILURE);
    }
    // SAFETY: non-null, writable and unaliased by the caller's contract.
    let r = unsafe { &mut *p };
    if r.ty() != T::TYPE {
        return Err(xr::Result::ERROR_VALIDATION_FAILURE);
    }
    Ok(r)
}

/// A C array the app passes as (pointer, count): empty when `count` is 0 and `empty_ok`,
/// else the pointer must not be null.
///
/// # Safety
/// `p` must be null or point to `count` readable `T`s that outlive `'a`.
unsafe fn array<'a, T>(p: *const T, count: u32, empty_ok: bool) -> Result<&'a [T], xr::Result> {
    if count == 0 && empty_ok {
        return Ok(&[]);
    }
    if count == 0 || p.is_null() {
        return Err(xr::Result::ERROR_VALIDATION_FAILURE);
    }
    // SAFETY: non-null, `count` elements by the caller's contract.
    Ok(unsafe { std::slice::from_raw_parts(p, count as usize) })
}

/// [`two_call`] for plain values copied as they are.
///
/// # Safety
/// As [`two_call`].
unsafe fn two_call_copy<T: Copy>(
    items: &[T],
    capacity: u32,
    count_out: *mut u32,
    out: *mut T,
) -> Result<(), xr::Result> {
    // SAFETY: the caller's contract is two_call's.
    unsafe {
        two_call(items, capacity, count_out, out, |o, v| {
            *o = *v;
            Ok(())
        })
    }
}

/// Copies `s` into a fixed C string buffer (truncated, always NUL-terminated).
fn put_str(dst: &mut [c_char], s: &str) {
    let n = s.len().min(dst.len().saturating_sub(1));
    for (d, b) in dst.iter_mut().zip(s.as_bytes()[..n].iter()) {
        *d = *b as c_char;
    }
    if let Some(end) = dst.get_mut(n) {
        *end = 0;
    }
}

/// Reads a fixed-size C string field (must be NUL-terminated within it).
fn fixed_str(src: &[c_char]) -> Result<String, xr::Result> {
    let bytes: Vec<u8> = src.iter().map(|&c| c as u8).collect();
    let end = bytes
        .iter()
        .position(|&b| b == 0)
        .ok_or(xr::Result::ERROR_NAME_INVALID)?;
    String::from_utf8(bytes[..end].to_vec()).map_err(|_| xr::Result::ERROR_NAME_INVALID)
}

/// The two-call idiom: reports the count; fills `out` (via `fill`) when the capacity
/// allows. `out` elements are validated by `fill` (structure types).
///
/// # Safety
/// `count_out` and (when `capacity > 0`) `out` must be null or valid for `capacity`
/// elements.
unsafe fn two_call<T, U>(
    items: &[U],
    capacity: u32,
    count_out: *mut u32,
    out: *mut T,
    fill: impl Fn(&mut T, &U) -> Result<(), xr::Result>,
) -> Result<(), xr::Result> {
    if count_out.is_null() {
        return Err(xr::Result::ERROR_VALIDATION_FAILURE);
    }
    // SAFETY: checked non-null; the caller guarantees it points to a u32.
    unsafe { *count_out = items.len() as u32 };
    if capacity == 0 {
        return Ok(());
    }
    if out.is_null() {
        return Err(xr::Result::ERROR_VALIDATION_FAILURE);
    }
    if (capacity as usize) < items.len() {
        return Err(xr::Result::ERROR_SIZE_INSUFFICIENT);
    }
    // SAFETY: `out` is non-null and valid for `capacity` >= items.len() elements.
    let out = unsafe { std::slice::from_raw_parts_mut(out, items.len()) };
    for (o, i) in out.iter_mut().zip(items) {
        fill(o, i)?;
    }
    Ok(())
}

// ---------------------------------------------------------------------------------
// Loader negotiation
// ---------------------------------------------------------------------------------

/// The runtime's only exported symbol.
///
/// # Safety
/// Called by the OpenXR loader with pointers to its negotiation structures.
#[unsafe(no_mangle)]
pub unsafe extern "system" fn xrNegotiateLoaderRuntimeInterface(
    loader_info: *const xr::NegotiateLoaderInfo,
    runtime_request: *mut xr::NegotiateRuntimeRequest,
) -> xr::Result {
    guard(|| {
        if loader_info.is_null() || runtime_request.is_null() {
            return xr::Result::ERROR_INITIALIZATION_FAILED;
        }
        // SAFETY: checked non-null; the loader passes valid structures.
        let (info, req) = unsafe { (&*loader_info, &mut *runtime_request) };
        if info.struct_type != xr::LoaderInterfaceStructs::LOADER_INFO
            || info.struct_version != xr::LOADER_INFO_STRUCT_VERSION as u32
            || info.struct_size != std::mem::size_of::<xr::NegotiateLoaderInfo>()
            || req.struct_type != xr::LoaderInterfaceStructs::RUNTIME_REQUEST
            || req.struct_version != xr::RUNTIME_INFO_STRUCT_VERSION as u32
            || req.struct_size != std::mem::size_of::<xr::NegotiateRuntimeRequest>()
        {
            tracing::error!("loader negotiation: unexpected structure types or sizes");
            return xr::Result::ERROR_INITIALIZATION_FAILED;
        }
        let iface = xr::CURRENT_LOADER_RUNTIME_VERSION as u32;
        if info.min_interface_version > iface || info.max_interface_version < iface {
            tracing::error!(
                min = info.min_interface_version,
                max = info.max_interface_version,
                "loader negotiation: no common interface version"
            );
            return xr::Result::ERROR_INITIALIZATION_FAILED;
        }
        // Offer 1.1 where the loader allows it, else 1.0.
        let v11 = xr::Version::new(1, 1, 0);
        let v10 = xr::Version::new(1, 0, 0);
        let api = if info.max_api_version.major() == 1 && info.max_api_version.minor() >= 1 {
            v11
        } else {
            v10
        };
        if info.min_api_version.into_raw() > api.into_raw()
            || info.max_api_version.into_raw() < v10.into_raw()
        {
            tracing::error!("loader negotiation: no common API version");
            return xr::Result::ERROR_INITIALIZATION_FAILED;
        }
        req.runtime_interface_version = iface;
        req.runtime_api_version = api;
        req.get_instance_proc_addr = Some(get_instance_proc_addr);
        tracing::info!(api = %format!("{}.{}", api.major(), api.minor()), "negotiated with the OpenXR loader");
        xr::Result::SUCCESS
    })
}

// ---------------------------------------------------------------------------------
// xrGetInstanceProcAddr
// ---------------------------------------------------------------------------------

macro_rules! void_fn {
    ($f:expr, $t:ty) => {{
        let f: $t = $f;
        // SAFETY: every OpenXR function pointer has the same representation; the loader
        // casts it back to the matching PFN type by name.
        unsafe { std::mem::transmute::<$t, xr::pfn::VoidFunction>(f) }
    }};
}

pub mod action;
pub mod debug_utils;
pub mod session;
mod space;
pub mod swapchain;
mod vulkan;

/// Core functions, and those available without an instance.
fn core_function(name: &str) -> Option<(bool, xr::pfn::VoidFunction)> {
    use xr::pfn;
    Some(match name {
        "xrEnumerateInstanceExtensionProperties" => (
            true,
            void_fn!(
                enumerate_instance_extension_properties,
                pfn::EnumerateInstanceExtensionProperties
            ),
        ),
        "xrEnumerateApiLayerProperties" => (
            true,
            void_fn!(
                enumerate_api_layer_properties,
                pfn::EnumerateApiLayerProperties
            ),
        ),
        "xrCreateInstance" => (true, void_fn!(create_instance, pfn::CreateInstance)),
        "xrGetInstanceProcAddr" => (
            false,
            void_fn!(get_instance_proc_addr, pfn::GetInstanceProcAddr),
        ),
        "xrDestroyInstance" => (false, void_fn!(destroy_instance, pfn::DestroyInstance)),
        "xrGetInstanceProperties" => (
            false,
            void_fn!(get_instance_properties, pfn::GetInstanceProperties),
        ),
        "xrPollEvent" => (false, void_fn!(poll_event, pfn::PollEvent)),
        "xrResultToString" => (false, void_fn!(result_to_string, pfn::ResultToString)),
        "xrStructureTypeToString" => (
            false,
            void_fn!(structure_type_to_string, pfn::StructureTypeToString),
        ),
        "xrGetSystem" => (false, void_fn!(get_system, pfn::GetSystem)),
        "xrGetSystemProperties" => (
            false,
            void_fn!(get_system_properties, pfn::GetSystemProperties),
        ),
        "xrEnumerateViewConfigurations" => (
            false,
            void_fn!(
                enumerate_view_configurations,
                pfn::EnumerateViewConfigurations
            ),
        ),
        "xrGetViewConfigurationProperties" => (
            false,
            void_fn!(
                get_view_configuration_properties,
                pfn::GetViewConfigurationProperties
            ),
        ),
        "xrEnumerateViewConfigurationViews" => (
            false,
            void_fn!(
                enumerate_view_configuration_views,
                pfn::EnumerateViewConfigurationViews
            ),
        ),
        "xrEnumerateEnvironmentBlendModes" => (
            false,
            void_fn!(
                enumerate_environment_blend_modes,
                pfn::EnumerateEnvironmentBlendModes
            ),
        ),
        "xrStringToPath" => (false, void_fn!(string_to_path, pfn::StringToPath)),
        "xrPathToString" => (false, void_fn!(path_to_string, pfn::PathToString)),
        "xrCreateSession" => (false, void_fn!(session::create_session, pfn::CreateSession)),
        "xrDestroySession" => (
            false,
            void_fn!(session::destroy_session, pfn::DestroySession),
        ),
        "xrBeginSession" => (false, void_fn!(session::begin_session, pfn::BeginSession)),
        "xrEndSession" => (false, void_fn!(session::end_session, pfn::EndSession)),
        "xrRequestExitSession" => (
            false,
            void_fn!(session::request_exit_session, pfn::RequestExitSession),
        ),
        "xrWaitFrame" => (false, void_fn!(session::wait_frame, pfn::WaitFrame)),
        "xrBeginFrame" => (false, void_fn!(session::begin_frame, pfn::BeginFrame)),
        "xrEndFrame" => (false, void_fn!(session::end_frame, pfn::EndFrame)),
        "xrEnumerateReferenceSpaces" => (
            false,
            void_fn!(
                space::enumerate_reference_spaces,
                pfn::EnumerateReferenceSpaces
            ),
        ),
        "xrCreateReferenceSpace" => (
            false,
            void_fn!(space::create_reference_space, pfn::CreateReferenceSpace),
        ),
        "xrDestroySpace" => (false, void_fn!(space::destroy_space, pfn::DestroySpace)),
        "xrLocateSpace" => (false, void_fn!(space::locate_space, pfn::LocateSpace)),
        "xrLocateViews" => (false, void_fn!(space::locate_views, pfn::LocateViews)),
        "xrLocateSpaces" => (false, void_fn!(space::locate_spaces, pfn::LocateSpaces)),
        "xrCreateActionSet" => (
            false,
            void_fn!(action::create_action_set, pfn::CreateActionSet),
        ),
        "xrDestroyActionSet" => (
            false,
            void_fn!(action::destroy_action_set, pfn::DestroyActionSet),
        ),
        "xrCreateAction" => (false, void_fn!(action::create_action, pfn::CreateAction)),
        "xrDestroyAction" => (false, void_fn!(action::destroy_action, pfn::DestroyAction)),
        "xrSuggestInteractionProfileBindings" => (
            false,
            void_fn!(
                action::suggest_interaction_profile_bindings,
                pfn::SuggestInteractionProfileBindings
            ),
        ),
        "xrAttachSessionActionSets" => (
            false,
            void_fn!(
                action::attach_session_action_sets,
                pfn::AttachSessionActionSets
            ),
        ),
        "xrGetCurrentInteractionProfile" => (
            false,
            void_fn!(
                action::get_current_interaction_profile,
                pfn::GetCurrentInteractionProfile
            ),
        ),
        "xrSyncActions" => (false, void_fn!(action::sync_actions, pfn::SyncActions)),
        "xrGetActionStateBoolean" => (
            false,
            void_fn!(action::get_action_state_boolean, pfn::GetActionStateBoolean),
        ),
        "xrGetActionStateFloat" => (
            false,
            void_fn!(action::get_action_state_float, pfn::GetActionStateFloat),
        ),
        "xrGetActionStateVector2f" => (
            false,
            void_fn!(
                action::get_action_state_vector2f,
                pfn::GetActionStateVector2f
            ),
        ),
        "xrGetActionStatePose" => (
            false,
            void_fn!(action::get_action_state_pose, pfn::GetActionStatePose),
        ),
        "xrApplyHapticFeedback" => (
            false,
            void_fn!(action::apply_haptic_feedback, pfn::ApplyHapticFeedback),
        ),
        "xrStopHapticFeedback" => (
            false,
            void_fn!(action::stop_haptic_feedback, pfn::StopHapticFeedback),
        ),
        "xrEnumerateBoundSourcesForAction" => (
            false,
            void_fn!(
                action::enumerate_bound_sources_for_action,
                pfn::EnumerateBoundSourcesForAction
            ),
        ),
        "xrGetInputSourceLocalizedName" => (
            false,
            void_fn!(
                action::get_input_source_localized_name,
                pfn::GetInputSourceLocalizedName
            ),
        ),
        "xrCreateActionSpace" => (
            false,
            void_fn!(space::create_action_space, pfn::CreateActionSpace),
        ),
        "xrEnumerateSwapchainFormats" => (
            false,
            void_fn!(
                swapchain::enumerate_swapchain_formats,
                pfn::EnumerateSwapchainFormats
            ),
        ),
        "xrCreateSwapchain" => (
            false,
            void_fn!(swapchain::create_swapchain, pfn::CreateSwapchain),
        ),
        "xrDestroySwapchain" => (
            false,
            void_fn!(swapchain::destroy_swapchain, pfn::DestroySwapchain),
        ),
        "xrEnumerateSwapchainImages" => (
            false,
            void_fn!(
                swapchain::enumerate_swapchain_images,
                pfn::EnumerateSwapchainImages
            ),
        ),
        "xrAcquireSwapchainImage" => (
            false,
            void_fn!(
                swapchain::acquire_swapchain_image,
                pfn::AcquireSwapchainImage
            ),
        ),
        "xrWaitSwapchainImage" => (
            false,
            void_fn!(swapchain::wait_swapchain_image, pfn::WaitSwapchainImage),
        ),
        "xrReleaseSwapchainImage" => (
            false,
            void_fn!(
                swapchain::release_swapchain_image,
                pfn::ReleaseSwapchainImage
            ),
        ),
        "xrGetReferenceSpaceBoundsRect" => (
            false,
            void_fn!(
                space::get_reference_space_bounds_rect,
                pfn::GetReferenceSpaceBoundsRect
            ),
        ),
        _ => return None,
    })
}

/// Extension functions: (extension that must be enabled, function).
fn extension_function(name: &str) -> Option<(&'static str, xr::pfn::VoidFunction)> {
    use xr::pfn;
    Some(match name {
        "xrConvertTimespecTimeToTimeKHR" => (
            "XR_KHR_convert_timespec_time",
            void_fn!(
                convert_timespec_time_to_time,
                pfn::ConvertTimespecTimeToTimeKHR
            ),
        ),
        "xrEnumerateDisplayRefreshRatesFB" => (
            "XR_FB_display_refresh_rate",
            void_fn!(
                session::enumerate_display_refresh_rates,
                pfn::EnumerateDisplayRefreshRatesFB
            ),
        ),
        "xrGetDisplayRefreshRateFB" => (
            "XR_FB_display_refresh_rate",
            void_fn!(
                session::get_display_refresh_rate,
                pfn::GetDisplayRefreshRateFB
            ),
        ),
        "xrRequestDisplayRefreshRateFB" => (
            "XR_FB_display_refresh_rate",
            void_fn!(
                session::request_display_refresh_rate,
                pfn::RequestDisplayRefreshRateFB
            ),
        ),
        "xrConvertTimeToTimespecTimeKHR" => (
            "XR_KHR_convert_timespec_time",
            void_fn!(
                convert_time_to_timespec_time,
                pfn::ConvertTimeToTimespecTimeKHR
            ),
        ),
        "xrLocateSpacesKHR" => (
            "XR_KHR_locate_spaces",
            void_fn!(space::locate_spaces, pfn::LocateSpacesKHR),
        ),
        "xrGetVisibilityMaskKHR" => (
            "XR_KHR_visibility_mask",
            void_fn!(space::get_visibility_mask, pfn::GetVisibilityMaskKHR),
        ),
        "xrSetDebugUtilsObjectNameEXT" => (
            "XR_EXT_debug_utils",
            void_fn!(
                debug_utils::set_debug_utils_object_name,
                pfn::SetDebugUtilsObjectNameEXT
            ),
        ),
        "xrCreateDebugUtilsMessengerEXT" => (
            "XR_EXT_debug_utils",
            void_fn!(
                debug_utils::create_debug_utils_messenger,
                pfn::CreateDebugUtilsMessengerEXT
            ),
        ),
        "xrDestroyDebugUtilsMessengerEXT" => (
            "XR_EXT_debug_utils",
            void_fn!(
                debug_utils::destroy_debug_utils_messenger,
                pfn::DestroyDebugUtilsMessengerEXT
            ),
        ),
        "xrSubmitDebugUtilsMessageEXT" => (
            "XR_EXT_debug_utils",
            void_fn!(
                debug_utils::submit_debug_utils_message,
                pfn::SubmitDebugUtilsMessageEXT
            ),
        ),
        "xrSessionBeginDebugUtilsLabelRegionEXT" => (
            "XR_EXT_debug_utils",
            void_fn!(
                debug_utils::session_begin_debug_utils_label_region,
                pfn::SessionBeginDebugUtilsLabelRegionEXT
            ),
        ),
        "xrSessionEndDebugUtilsLabelRegionEXT" => (
            "XR_EXT_debug_utils",
            void_fn!(
                debug_utils::session_end_debug_utils_label_region,
                pfn::SessionEndDebugUtilsLabelRegionEXT
            ),
        ),
        "xrSessionInsertDebugUtilsLabelEXT" => (
            "XR_EXT_debug_utils",
            void_fn!(
                debug_utils::session_insert_debug_utils_label,
                pfn::SessionInsertDebugUtilsLabelEXT
            ),
        ),
        "xrGetVulkanGraphicsRequirementsKHR" => (
            "XR_KHR_vulkan_enable",
            void_fn!(
                vulkan::get_vulkan_graphics_requirements,
                pfn::GetVulkanGraphicsRequirementsKHR
            ),
        ),
        "xrGetVulkanInstanceExtensionsKHR" => (
            "XR_KHR_vulkan_enable",
            void_fn!(
                vulkan::get_vulkan_instance_extensions,
                pfn::GetVulkanInstanceExtensionsKHR
            ),
        ),
        "xrGetVulkanDeviceExtensionsKHR" => (
            "XR_KHR_vulkan_enable",
            void_fn!(
                vulkan::get_vulkan_device_extensions,
                pfn::GetVulkanDeviceExtensionsKHR
            ),
        ),
        "xrGetVulkanGraphicsDeviceKHR" => (
            "XR_KHR_vulkan_enable",
            void_fn!(
                vulkan::get_vulkan_graphics_device,
                pfn::GetVulkanGraphicsDeviceKHR
            ),
        ),
        "xrGetVulkanGraphicsRequirements2KHR" => (
            "XR_KHR_vulkan_enable2",
            void_fn!(
                vulkan::get_vulkan_graphics_requirements2,
                pfn::GetVulkanGraphicsRequirements2KHR
            ),
        ),
        "xrGetVulkanGraphicsDevice2KHR" => (
            "XR_KHR_vulkan_enable2",
            void_fn!(
                vulkan::get_vulkan_graphics_device2,
                pfn::GetVulkanGraphicsDevice2KHR
            ),
        ),
        "xrCreateVulkanInstanceKHR" => (
            "XR_KHR_vulkan_enable2",
            void_fn!(vulkan::create_vulkan_instance, pfn::CreateVulkanInstanceKHR),
        ),
        "xrCreateVulkanDeviceKHR" => (
            "XR_KHR_vulkan_enable2",
            void_fn!(vulkan::create_vulkan_device, pfn::CreateVulkanDeviceKHR),
        ),
        _ => return None,
    })
}

unsafe extern "system" fn get_instance_proc_addr(
    instance_h: xr::Instance,
    name: *const c_char,
    function: *mut Option<xr::pfn::VoidFunction>,
) -> xr::Result {
    guard(|| {
        if function.is_null() || name.is_null() {
            return xr::Result::ERROR_VALIDATION_FAILURE;
        }
        // SAFETY: checked non-null; the caller passes a writable function pointer slot.
        unsafe { *function = None };
        // SAFETY: checked non-null; the caller passes a NUL-terminated string.
        let Ok(name) = unsafe { CStr::from_ptr(name) }.to_str() else {
            return xr::Result::ERROR_FUNCTION_UNSUPPORTED;
        };
        let inst = if instance_h == xr::Instance::NULL {
            None
        } else {
            match instance(instance_h) {
                Ok(i) => Some(i),
                Err(e) => return e,
            }
        };
        // Core functions, OpenXR 1.1's included, are handed out to every instance (the
        // conformance suite expects xrLocateSpaces from 1.0 instances too).
        let found = match (core_function(name), &inst) {
            (Some((_, f)), Some(_)) => Some(f),
            (Some((true, f)), None) => Some(f),
            (Some((false, _)), None) => return xr::Result::ERROR_HANDLE_INVALID,
            (None, Some(i)) => extension_function(name)
                .filter(|(ext, _)| lock(i).enabled(ext))
                .map(|(_, f)| f),
            (None, None) => None,
        };
        match found {
            Some(f) => {
                // SAFETY: checked non-null above.
                unsafe { *function = Some(f) };
                xr::Result::SUCCESS
            }
            None => xr::Result::ERROR_FUNCTION_UNSUPPORTED,
        }
    })
}

// ---------------------------------------------------------------------------------
// Instance
// ---------------------------------------------------------------------------------

unsafe extern "system" fn enumerate_instance_extension_properties(
    layer_name: *const c_char,
    capacity: u32,
    count_out: *mut u32,
    properties: *mut xr::ExtensionProperties,
) -> xr::Result {
    guard(|| {
        if !layer_name.is_null() {
            return xr::Result::ERROR_API_LAYER_NOT_PRESENT;
        }
        // SAFETY: the two-call contract of the entry point.
        done(unsafe {
            two_call(
                state::EXTENSIONS,
                capacity,
                count_out,
                properties,
                |p, (n, v)| {
                    if p.ty != xr::StructureType::EXTENSION_PROPERTIES {
                        return Err(xr::Result::ERROR_VALIDATION_FAILURE);
                    }
                    put_str(&mut p.extension_name, n);
                    p.extension_version = *v;
                    Ok(())
                },
            )
        })
    })
}

unsafe extern "system" fn enumerate_api_layer_properties(
    capacity: u32,
    count_out: *mut u32,
    properties: *mut xr::ApiLayerProperties,
) -> xr::Result {
    guard(|| {
        let none: [(); 0] = [];
        // SAFETY: the two-call contract of the entry point.
        done(unsafe { two_call(&none, capacity, count_out, properties, |_, _| Ok(())) })
    })
}

/// Reads a C array of C strings.
///
/// # Safety
/// `ptr` must be null (with `count` 0) or point to `count` NUL-terminated strings.
unsafe fn string_list(ptr: *const *const c_char, count: u32) -> Result<Vec<String>, xr::Result> {
    if count == 0 {
        return Ok(Vec::new());
    }
    if ptr.is_null() {
        return Err(xr::Result::ERROR_VALIDATION_FAILURE);
    }
    // SAFETY: the caller guarantees `count` valid pointers.
    let ptrs = unsafe { std::slice::from_raw_parts(ptr, count as usize) };
    ptrs.iter()
        .map(|&p| {
            if p.is_null() {
                return Err(xr::Result::ERROR_VALIDATION_FAILURE);
            }
            // SAFETY: non-null, NUL-terminated by contract.
            unsafe { CStr::from_ptr(p) }
                .to_str()
                .map(str::to_string)
                .map_err(|_| xr::Result::ERROR_VALIDATION_FAILURE)
        })
        .collect()
}

unsafe extern "system" fn create_instance(
    info: *const xr::InstanceCreateInfo,
    out: *mut xr::Instance,
) -> xr::Result {
    guard(|| {
        if info.is_null() || out.is_null() {
            return xr::Result::ERROR_VALIDATION_FAILURE;
        }
        // SAFETY: checked non-null; the app passes a valid create-info.
        let info = unsafe { &*info };
        if info.ty != xr::StructureType::INSTANCE_CREATE_INFO {
            return xr::Result::ERROR_VALIDATION_FAILURE;
        }
        let read = || -> Result<CreateRequest, xr::Result> {
            let app = &info.application_info;
            let v = app.api_version;
            Ok(CreateRequest {
                application_name: fixed_str(&app.application_name)?,
                engine_name: fixed_str(&app.engine_name)?,
                api_version: (v.major(), v.minor()),
                // SAFETY: the create-info's arrays follow the two-count contract.
                extensions: unsafe {
                    string_list(info.enabled_extension_names, info.enabled_extension_count)?
                },
                // SAFETY: as above.
                layers: unsafe {
                    string_list(info.enabled_api_layer_names, info.enabled_api_layer_count)?
                },
            })
        };
        let req = match read() {
            Ok(r) => r,
            Err(e) => return e,
        };
        match Instance::create(&req, || crate::system::assemble(session::now_ns())) {
            Ok(i) => {
                let h = INSTANCES.insert(Mutex::new(i));
                // SAFETY: checked non-null.
                unsafe { *out = xr::Instance::from_raw(h) };
                xr::Result::SUCCESS
            }
            Err(CreateError::ApiVersionUnsupported) => xr::Result::ERROR_API_VERSION_UNSUPPORTED,
            Err(CreateError::ExtensionNotPresent(e)) => {
                tracing::warn!(extension = %e, "app asked for an extension Leasehold does not offer");
                xr::Result::ERROR_EXTENSION_NOT_PRESENT
            }
            Err(CreateError::NameInvalid(_)) => xr::Result::ERROR_NAME_INVALID,
        }
    })
}

unsafe extern "system" fn destroy_instance(h: xr::Instance) -> xr::Result {
    guard(|| match INSTANCES.remove(h.into_raw()) {
        Some(_) => {
            let children = session::destroy_children(h.into_raw());
            vulkan::forget(h.into_raw());
            action::forget(h.into_raw());
            debug_utils::forget(h.into_raw());
            tracing::info!(sessions = children, "instance destroyed");
            xr::Result::SUCCESS
        }
        None => xr::Result::ERROR_HANDLE_INVALID,
    })
}

unsafe extern "system" fn get_instance_properties(
    h: xr::Instance,
    props: *mut xr::InstanceProperties,
) -> xr::Result {
    guard(|| {
        done((|| {
            let _i = instance(h)?;
            // SAFETY: the app passes a valid structure, or null (refused).
            let p = unsafe { output(props) }?;
            let (maj, min, patch) = crate::VERSION;
            p.runtime_version = xr::Version::new(maj, min, patch);
            put_str(&mut p.runtime_name, "Leasehold");
            Ok(())
        })())
    })
}

unsafe extern "system" fn poll_event(h: xr::Instance, buf: *mut xr::EventDataBuffer) -> xr::Result {
    guard(|| {
        let i = match instance(h) {
            Ok(i) => i,
            Err(e) => return e,
        };
        if buf.is_null() {
            return xr::Result::ERROR_VALIDATION_FAILURE;
        }
        // SAFETY: checked non-null; an XrEventDataBuffer is writable for its size.
        let b = unsafe { &mut *buf };
        if b.ty != xr::StructureType::EVENT_DATA_BUFFER {
            return xr::Result::ERROR_VALIDATION_FAILURE;
        }
        match lock(&i).events.pop_front() {
            None => xr::Result::EVENT_UNAVAILABLE,
            Some(state::Event::SessionStateChanged {
                session: sh,
                state: st,
                time_ns,
            }) => {
                let e = xr::EventDataSessionStateChanged {
                    ty: xr::StructureType::EVENT_DATA_SESSION_STATE_CHANGED,
                    next: std::ptr::null(),
                    session: xr::Session::from_raw(sh),
                    state: session::xr_state(st),
                    time: xr::Time::from_nanos(time_ns),
                };
                // SAFETY: the event buffer is larger than any event structure and ours
                // to write for this call.
                unsafe { std::ptr::write(buf.cast::<xr::EventDataSessionStateChanged>(), e) };
                xr::Result::SUCCESS
            }
            Some(state::Event::DisplayRefreshRateChanged { from_hz, to_hz }) => {
                let e = xr::EventDataDisplayRefreshRateChangedFB {
                    ty: xr::StructureType::EVENT_DATA_DISPLAY_REFRESH_RATE_CHANGED_FB,
                    next: std::ptr::null(),
                    from_display_refresh_rate: from_hz,
                    to_display_refresh_rate: to_hz,
                };
                // SAFETY: the event buffer is larger than any event structure and ours
                // to write for this call.
                unsafe {
                    std::ptr::write(buf.cast::<xr::EventDataDisplayRefreshRateChangedFB>(), e)
                };
                xr::Result::SUCCESS
            }
            Some(state::Event::InteractionProfileChanged { session: sh }) => {
                let e = xr::EventDataInteractionProfileChanged {
                    ty: xr::StructureType::EVENT_DATA_INTERACTION_PROFILE_CHANGED,
                    next: std::ptr::null(),
                    session: xr::Session::from_raw(sh),
                };
                // SAFETY: the event buffer is larger than any event structure and ours
                // to write for this call.
                unsafe { std::ptr::write(buf.cast::<xr::EventDataInteractionProfileChanged>(), e) };
                xr::Result::SUCCESS
            }
            Some(state::Event::InstanceLossPending { loss_time_ns }) => {
                let e = xr::EventDataInstanceLossPending {
                    ty: xr::StructureType::EVENT_DATA_INSTANCE_LOSS_PENDING,
                    next: std::ptr::null(),
                    loss_time: xr::Time::from_nanos(loss_time_ns),
                };
                // SAFETY: the event buffer is larger than any event structure; the
                // buffer is exclusively ours to write for this call.
                unsafe { std::ptr::write(buf.cast::<xr::EventDataInstanceLossPending>(), e) };
                xr::Result::SUCCESS
            }
        }
    })
}

/// openxr-sys names known values in Debug and prints unknown ones as numbers.
fn is_enumerant(s: &str) -> bool {
    s.starts_with(|c: char| c.is_ascii_uppercase())
        && s.chars()
            .all(|c| c.is_ascii_uppercase() || c == '_' || c.is_ascii_digit())
}

/// "XR_" + the enumerant's name, or the spec's XR_UNKNOWN_* forms.
pub fn result_name(r: xr::Result) -> String {
    let dbg = format!("{r:?}");
    if is_enumerant(&dbg) {
        format!("XR_{dbg}")
    } else if r.into_raw() >= 0 {
        format!("XR_UNKNOWN_SUCCESS_{}", r.into_raw())
    } else {
        format!("XR_UNKNOWN_FAILURE_{}", r.into_raw())
    }
}

pub fn structure_type_name(t: xr::StructureType) -> String {
    let dbg = format!("{t:?}");
    if is_enumerant(&dbg) {
        format!("XR_TYPE_{dbg}")
    } else {
        format!("XR_UNKNOWN_STRUCTURE_TYPE_{}", t.into_raw())
    }
}

/// Writes `name` into an app's fixed-size string buffer of `size` chars.
///
/// # Safety
/// `buffer` must be null or writable for `size` chars.
unsafe fn write_name(h: xr::Instance, buffer: *mut c_char, size: usize, name: &str) -> xr::Result {
    done((|| {
        instance(h)?;
        if buffer.is_null() {
            return Err(xr::Result::ERROR_VALIDATION_FAILURE);
        }
        // SAFETY: non-null and `size` chars long by the caller's contract.
        let b = unsafe { std::slice::from_raw_parts_mut(buffer, size) };
        put_str(b, name);
        Ok(())
    })())
}

unsafe extern "system" fn result_to_string(
    h: xr::Instance,
    value: xr::Result,
    buffer: *mut c_char,
) -> xr::Result {
    // SAFETY: the spec sizes the buffer XR_MAX_RESULT_STRING_SIZE.
    guard(|| unsafe { write_name(h, buffer, xr::MAX_RESULT_STRING_SIZE, &result_name(value)) })
}

unsafe extern "system" fn structure_type_to_string(
    h: xr::Instance,
    value: xr::StructureType,
    buffer: *mut c_char,
) -> xr::Result {
    guard(|| {
        let name = structure_type_name(value);
        // SAFETY: the spec sizes the buffer XR_MAX_STRUCTURE_NAME_SIZE.
        unsafe { write_name(h, buffer, xr::MAX_STRUCTURE_NAME_SIZE, &name) }
    })
}

// ---------------------------------------------------------------------------------
// System and views
// ---------------------------------------------------------------------------------

fn system_of(h: xr::Instance, id: xr::SystemId) -> Result<Arc<InstanceObj>, xr::Result> {
    let i = instance(h)?;
    if id.into_raw() != state::HMD_SYSTEM_ID {
        return Err(xr::Result::ERROR_SYSTEM_INVALID);
    }
    Ok(i)
}

unsafe extern "system" fn get_system(
    h: xr::Instance,
    info: *const xr::SystemGetInfo,
    out: *mut xr::SystemId,
) -> xr::Result {
    guard(|| {
        done((|| {
            instance(h)?;
            // SAFETY: the app passes a valid structure, or null (refused).
            let info = unsafe { input(info) }?;
            if out.is_null() {
                return Err(xr::Result::ERROR_VALIDATION_FAILURE);
            }
            match info.form_factor {
                xr::FormFactor::HEAD_MOUNTED_DISPLAY => {
                    // SAFETY: checked non-null.
                    unsafe { *out = xr::SystemId::from_raw(state::HMD_SYSTEM_ID) };
                    Ok(())
                }
                // A handheld display, or a form factor of an extension this runtime
                // does not know: there is no such system here.
                other => {
                    tracing::info!(form_factor = ?other, "xrGetSystem: no system of this form factor");
                    Err(xr::Result::ERROR_FORM_FACTOR_UNSUPPORTED)
                }
            }
        })())
    })
}

unsafe extern "system" fn get_system_properties(
    h: xr::Instance,
    id: xr::SystemId,
    props: *mut xr::SystemProperties,
) -> xr::Result {
    guard(|| {
        done((|| {
            let i = system_of(h, id)?;
            // SAFETY: the app passes a valid structure, or null (refused).
            let p = unsafe { output(props) }?;
            let inst = lock(&i);
            let s = &inst.system;
            p.system_id = id;
            p.vendor_id = s.vendor_id;
            put_str(&mut p.system_name, &s.name);
            p.graphics_properties.max_layer_count = s.max_layer_count;
            p.graphics_properties.max_swapchain_image_width = s.max_swapchain_size;
            p.graphics_properties.max_swapchain_image_height = s.max_swapchain_size;
            p.tracking_properties.orientation_tracking = s.orientation_tracking.into();
            p.tracking_properties.position_tracking = s.position_tracking.into();
            // Extension properties in the chain. No supported headset tracks the eyes.
            let gaze = inst.enabled("XR_EXT_eye_gaze_interaction");
            let visit = |ty: xr::StructureType, at: *const std::ffi::c_void| {
                if ty == xr::StructureType::SYSTEM_EYE_GAZE_INTERACTION_PROPERTIES_EXT && gaze {
                    // SAFETY: the type says what it is; the app's output chain is writable.
                    let e = unsafe { &mut *(at as *mut xr::SystemEyeGazeInteractionPropertiesEXT) };
                    e.supports_eye_gaze_interaction = false.into();
                }
                Ok(())
            };
            // SAFETY: the output structure's `next` chain, as the app built it.
            unsafe { walk_chain(p.next, visit) }
        })())
    })
}

unsafe extern "system" fn enumerate_view_configurations(
    h: xr::Instance,
    id: xr::SystemId,
    capacity: u32,
    count_out: *mut u32,
    out: *mut xr::ViewConfigurationType,
) -> xr::Result {
    guard(|| {
        done((|| {
            system_of(h, id)?;
            let types = [xr::ViewConfigurationType::PRIMARY_STEREO];
            // SAFETY: the two-call contract of the entry point.
            unsafe { two_call_copy(&types, capacity, count_out, out) }
        })())
    })
}

unsafe extern "system" fn get_view_configuration_properties(
    h: xr::Instance,
    id: xr::SystemId,
    ty: xr::ViewConfigurationType,
    props: *mut xr::ViewConfigurationProperties,
) -> xr::Result {
    guard(|| {
        done((|| {
            system_of(h, id)?;
            if ty != xr::ViewConfigurationType::PRIMARY_STEREO {
                return Err(xr::Result::ERROR_VIEW_CONFIGURATION_TYPE_UNSUPPORTED);
            }
            // SAFETY: the app passes a valid structure, or null (refused).
            let p = unsafe { output(props) }?;
            p.view_configuration_type = ty;
            p.fov_mutable = false.into();
            Ok(())
        })())
    })
}

unsafe extern "system" fn enumerate_view_configuration_views(
    h: xr::Instance,
    id: xr::SystemId,
    ty: xr::ViewConfigurationType,
    capacity: u32,
    count_out: *mut u32,
    out: *mut xr::ViewConfigurationView,
) -> xr::Result {
    guard(|| {
        done((|| {
            let i = system_of(h, id)?;
            if ty != xr::ViewConfigurationType::PRIMARY_STEREO {
                return Err(xr::Result::ERROR_VIEW_CONFIGURATION_TYPE_UNSUPPORTED);
            }
            let d = lock(&i).system.display.clone();
            let max = lock(&i).system.max_swapchain_size;
            let views = [(d.eye_render_width, d.eye_render_height); 2];
            // SAFETY: the two-call contract of the entry point.
            unsafe {
                two_call(&views, capacity, count_out, out, |o, (w, hh)| {
                    if o.ty != xr::StructureType::VIEW_CONFIGURATION_VIEW {
                        return Err(xr::Result::ERROR_VALIDATION_FAILURE);
                    }
                    o.recommended_image_rect_width = *w;
                    o.recommended_image_rect_height = *hh;
                    o.max_image_rect_width = max;
                    o.max_image_rect_height = max;
                    o.recommended_swapchain_sample_count = 1;
                    o.max_swapchain_sample_count = 1;
                    Ok(())
                })
            }
        })())
    })
}

unsafe extern "system" fn enumerate_environment_blend_modes(
    h: xr::Instance,
    id: xr::SystemId,
    ty: xr::ViewConfigurationType,
    capacity: u32,
    count_out: *mut u32,
    out: *mut xr::EnvironmentBlendMode,
) -> xr::Result {
    guard(|| {
        done((|| {
            system_of(h, id)?;
            if ty != xr::ViewConfigurationType::PRIMARY_STEREO {
                return Err(xr::Result::ERROR_VIEW_CONFIGURATION_TYPE_UNSUPPORTED);
            }
            let modes = [xr::EnvironmentBlendMode::OPAQUE];
            // SAFETY: the two-call contract of the entry point.
            unsafe { two_call_copy(&modes, capacity, count_out, out) }
        })())
    })
}

// ---------------------------------------------------------------------------------
// Paths and time
// ---------------------------------------------------------------------------------

fn path_err(e: PathError) -> xr::Result {
    match e {
        PathError::Format => xr::Result::ERROR_PATH_FORMAT_INVALID,
        PathError::Invalid => xr::Result::ERROR_PATH_INVALID,
    }
}

unsafe extern "system" fn string_to_path(
    h: xr::Instance,
    s: *const c_char,
    out: *mut xr::Path,
) -> xr::Result {
    guard(|| {
        done((|| {
            let i = instance(h)?;
            if s.is_null() || out.is_null() {
                return Err(xr::Result::ERROR_VALIDATION_FAILURE);
            }
            // SAFETY: checked non-null; NUL-terminated by contract.
            let s = unsafe { CStr::from_ptr(s) }
                .to_str()
                .map_err(|_| xr::Result::ERROR_PATH_FORMAT_INVALID)?;
            let id = lock(&i).paths.intern(s).map_err(path_err)?;
            // SAFETY: checked non-null.
            unsafe { *out = xr::Path::from_raw(id) };
            Ok(())
        })())
    })
}

unsafe extern "system" fn path_to_string(
    h: xr::Instance,
    path: xr::Path,
    capacity: u32,
    count_out: *mut u32,
    buffer: *mut c_char,
) -> xr::Result {
    guard(|| {
        done((|| {
            let i = instance(h)?;
            let inst = lock(&i);
            let name = inst.paths.name(path.into_raw()).map_err(path_err)?;
            let mut bytes: Vec<c_char> = name.bytes().map(|b| b as c_char).collect();
            bytes.push(0);
            // SAFETY: the two-call contract of the entry point.
            unsafe { two_call_copy(&bytes, capacity, count_out, buffer) }
        })())
    })
}

unsafe extern "system" fn convert_timespec_time_to_time(
    h: xr::Instance,
    ts: *const libc::timespec,
    out: *mut xr::Time,
) -> xr::Result {
    guard(|| {
        done((|| {
            let i = instance(h)?;
            if !lock(&i).enabled("XR_KHR_convert_timespec_time") {
                return Err(xr::Result::ERROR_FUNCTION_UNSUPPORTED);
            }
            if ts.is_null() || out.is_null() {
                return Err(xr::Result::ERROR_VALIDATION_FAILURE);
            }
            // SAFETY: checked non-null.
            let ts = unsafe { &*ts };
            if ts.tv_sec < 0 || !(0..1_000_000_000).contains(&ts.tv_nsec) {
                return Err(xr::Result::ERROR_TIME_INVALID);
            }
            let ns = ts
                .tv_sec
                .checked_mul(1_000_000_000)
                .and_then(|s| s.checked_add(ts.tv_nsec))
                .ok_or(xr::Result::ERROR_TIME_INVALID)?;
            // XrTime is CLOCK_MONOTONIC nanoseconds in this runtime.
            // SAFETY: checked non-null.
            unsafe { *out = xr::Time::from_nanos(ns) };
            Ok(())
        })())
    })
}

unsafe extern "system" fn convert_time_to_timespec_time(
    h: xr::Instance,
    time: xr::Time,
    out: *mut libc::timespec,
) -> xr::Result {
    guard(|| {
        done((|| {
            let i = instance(h)?;
            if !lock(&i).enabled("XR_KHR_convert_timespec_time") {
                return Err(xr::Result::ERROR_FUNCTION_UNSUPPORTED);
            }
            if out.is_null() {
                return Err(xr::Result::ERROR_VALIDATION_FAILURE);
            }
            let ns = time.as_nanos();
            if ns <= 0 {
                return Err(xr::Result::ERROR_TIME_INVALID);
            }
            // SAFETY: checked non-null.
            unsafe {
                (*out).tv_sec = (ns / 1_000_000_000) as libc::time_t;
                (*out).tv_nsec = (ns % 1_000_000_000) as libc::c_long;
            }
            Ok(())
        })())
    })
}

/// Live instances (for leak tests).
pub fn live_instances() -> usize {
    INSTANCES.len()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_of_results_and_structure_types() {
        assert_eq!(
            result_name(xr::Result::ERROR_HANDLE_INVALID),
            "XR_ERROR_HANDLE_INVALID"
        );
        assert_eq!(result_name(xr::Result::SUCCESS), "XR_SUCCESS");
        assert_eq!(
            result_name(xr::Result::from_raw(-999_999)),
            "XR_UNKNOWN_FAILURE_-999999"
        );
        assert_eq!(
            result_name(xr::Result::from_raw(77)),
            "XR_UNKNOWN_SUCCESS_77"
        );
        assert_eq!(
            structure_type_name(xr::StructureType::INSTANCE_CREATE_INFO),
            "XR_TYPE_INSTANCE_CREATE_INFO"
        );
        assert_eq!(
            structure_type_name(xr::StructureType::from_raw(424242)),
            "XR_UNKNOWN_STRUCTURE_TYPE_424242"
        );
    }

    fn create(exts: &[&CStr]) -> (xr::Result, xr::Instance) {
        let names: Vec<*const c_char> = exts.iter().map(|e| e.as_ptr()).collect();
        let mut app = xr::ApplicationInfo {
            application_name: [0; xr::MAX_APPLICATION_NAME_SIZE],
            application_version: 1,
            engine_name: [0; xr::MAX_ENGINE_NAME_SIZE],
            engine_version: 0,
            api_version: xr::Version::new(1, 0, 0),
        };
        put_str(&mut app.application_name, "abi-unit");
        let info = xr::InstanceCreateInfo {
            ty: xr::StructureType::INSTANCE_CREATE_INFO,
            next: std::ptr::null(),
            create_flags: xr::InstanceCreateFlags::EMPTY,
            application_info: app,
            enabled_api_layer_count: 0,
            enabled_api_layer_names: std::ptr::null(),
            enabled_extension_count: names.len() as u32,
            enabled_extension_names: names.as_ptr(),
        };
        let mut h = xr::Instance::NULL;
        // SAFETY: a valid create-info whose arrays outlive the call, and an out slot.
        let r = unsafe { create_instance(&info, &mut h) };
        (r, h)
    }

    fn proc_addr(h: xr::Instance, name: &CStr) -> xr::Result {
        let mut f = None;
        // SAFETY: a NUL-terminated name and a writable slot.
        unsafe { get_instance_proc_addr(h, name.as_ptr(), &mut f) }
    }

    #[test]
    fn stale_foreign_and_null_handles() {
        let (r, h) = create(&[]);
        assert_eq!(r, xr::Result::SUCCESS);
        let mut props = xr::InstanceProperties {
            ty: xr::StructureType::INSTANCE_PROPERTIES,
            next: std::ptr::null_mut(),
            runtime_version: xr::Version::new(0, 0, 0),
            runtime_name: [0; xr::MAX_RUNTIME_NAME_SIZE],
        };
        // SAFETY: (this test's calls) live or deliberately stale handles, valid pointers.
        unsafe {
            assert_eq!(get_instance_properties(h, &mut props), xr::Result::SUCCESS);
            assert_eq!(fixed_str(&props.runtime_name).unwrap(), "Leasehold");
            props.ty = xr::StructureType::SYSTEM_PROPERTIES;
            assert_eq!(
                get_instance_properties(h, &mut props),
                xr::Result::ERROR_VALIDATION_FAILURE
            );
            assert_eq!(
                get_instance_properties(h, std::ptr::null_mut()),
                xr::Result::ERROR_VALIDATION_FAILURE
            );
            assert_eq!(destroy_instance(h), xr::Result::SUCCESS);
            props.ty = xr::StructureType::INSTANCE_PROPERTIES;
            assert_eq!(
                get_instance_properties(h, &mut props),
                xr::Result::ERROR_HANDLE_INVALID
            );
            assert_eq!(destroy_instance(h), xr::Result::ERROR_HANDLE_INVALID);
            let made_up = xr::Instance::from_raw(0xdead_beef);
            assert_eq!(destroy_instance(made_up), xr::Result::ERROR_HANDLE_INVALID);
            let mut id = xr::SystemId::from_raw(0);
            let gi = xr::SystemGetInfo {
                ty: xr::StructureType::SYSTEM_GET_INFO,
                next: std::ptr::null(),
                form_factor: xr::FormFactor::HEAD_MOUNTED_DISPLAY,
            };
            assert_eq!(
                get_system(h, &gi, &mut id),
                xr::Result::ERROR_HANDLE_INVALID
            );
            assert_eq!(
                create_instance(std::ptr::null(), std::ptr::null_mut()),
                xr::Result::ERROR_VALIDATION_FAILURE
            );
        }
    }

    #[test]
    fn proc_addr_rules() {
        let null = xr::Instance::NULL;
        assert_eq!(proc_addr(null, c"xrCreateInstance"), xr::Result::SUCCESS);
        assert_eq!(
            proc_addr(null, c"xrGetSystem"),
            xr::Result::ERROR_HANDLE_INVALID
        );
        let (_, plain) = create(&[]);
        let (_, with_ext) = create(&[c"XR_KHR_convert_timespec_time"]);
        assert_eq!(proc_addr(plain, c"xrGetSystem"), xr::Result::SUCCESS);
        assert_eq!(
            proc_addr(plain, c"xrNoSuchFunction"),
            xr::Result::ERROR_FUNCTION_UNSUPPORTED
        );
        assert_eq!(
            proc_addr(plain, c"xrConvertTimespecTimeToTimeKHR"),
            xr::Result::ERROR_FUNCTION_UNSUPPORTED
        );
        assert_eq!(
            proc_addr(with_ext, c"xrConvertTimespecTimeToTimeKHR"),
            xr::Result::SUCCESS
        );
        let (r, _) = create(&[c"XR_KHR_opengl_enable"]);
        assert_eq!(r, xr::Result::ERROR_EXTENSION_NOT_PRESENT);
        // Vulkan functions exist only for instances that enabled their extension.
        assert_eq!(
            proc_addr(plain, c"xrGetVulkanGraphicsRequirements2KHR"),
            xr::Result::ERROR_FUNCTION_UNSUPPORTED
        );
        let (r, vk2) = create(&[c"XR_KHR_vulkan_enable2"]);
        assert_eq!(r, xr::Result::SUCCESS);
        assert_eq!(
            proc_addr(vk2, c"xrGetVulkanGraphicsRequirements2KHR"),
            xr::Result::SUCCESS
        );
        assert_eq!(
            proc_addr(vk2, c"xrGetVulkanInstanceExtensionsKHR"),
            xr::Result::ERROR_FUNCTION_UNSUPPORTED,
            "an XR_KHR_vulkan_enable function"
        );
        let mut f = None;
        // SAFETY: null pointers on purpose.
        unsafe {
            assert_eq!(
                get_instance_proc_addr(plain, std::ptr::null(), &mut f),
                xr::Result::ERROR_VALIDATION_FAILURE
            );
            assert_eq!(destroy_instance(plain), xr::Result::SUCCESS);
            assert_eq!(destroy_instance(with_ext), xr::Result::SUCCESS);
            assert_eq!(destroy_instance(vk2), xr::Result::SUCCESS);
        }
        assert_eq!(
            proc_addr(plain, c"xrGetSystem"),
            xr::Result::ERROR_HANDLE_INVALID
        );
    }

    #[test]
    fn two_call_idiom() {
        let mut count = 99u32;
        // SAFETY: (these calls) valid or deliberately null pointers and capacities.
        unsafe {
            assert_eq!(
                enumerate_instance_extension_properties(
                    std::ptr::null(),
                    0,
                    &mut count,
                    std::ptr::null_mut()
                ),
                xr::Result::SUCCESS
            );
            assert_eq!(count as usize, state::EXTENSIONS.len());
            assert_eq!(
                enumerate_instance_extension_properties(
                    std::ptr::null(),
                    0,
                    std::ptr::null_mut(),
                    std::ptr::null_mut()
                ),
                xr::Result::ERROR_VALIDATION_FAILURE
            );
            assert_eq!(
                enumerate_instance_extension_properties(
                    std::ptr::null(),
                    1,
                    &mut count,
                    std::ptr::null_mut()
                ),
                xr::Result::ERROR_VALIDATION_FAILURE
            );
            let (_, h) = create(&[]);
            let mut buf = [0 as c_char; 4];
            let p = {
                let mut p = xr::Path::from_raw(0);
                assert_eq!(
                    string_to_path(h, c"/user/head".as_ptr(), &mut p),
                    xr::Result::SUCCESS
                );
                p
            };
            assert_eq!(
                path_to_string(h, p, 4, &mut count, buf.as_mut_ptr()),
                xr::Result::ERROR_SIZE_INSUFFICIENT
            );
            assert_eq!(count, 11, "length including the NUL");
            assert_eq!(
                path_to_string(
                    h,
                    xr::Path::from_raw(999),
                    0,
                    &mut count,
                    std::ptr::null_mut()
                ),
                xr::Result::ERROR_PATH_INVALID
            );
            assert_eq!(destroy_instance(h), xr::Result::SUCCESS);
        }
    }

    #[test]
    fn destroying_an_instance_destroys_its_sessions_and_spaces() {
        let (_, h) = create(&[c"XR_MND_headless"]);
        let info = xr::SessionCreateInfo {
            ty: xr::StructureType::SESSION_CREATE_INFO,
            next: std::ptr::null(),
            create_flags: xr::SessionCreateFlags::EMPTY,
            system_id: xr::SystemId::from_raw(state::HMD_SYSTEM_ID),
        };
        let mut sh = xr::Session::NULL;
        // SAFETY: a live instance, a valid create-info and out slot.
        unsafe {
            assert_eq!(
                session::create_session(h, &info, &mut sh),
                xr::Result::SUCCESS
            );
            let ci = xr::ReferenceSpaceCreateInfo {
                ty: xr::StructureType::REFERENCE_SPACE_CREATE_INFO,
                next: std::ptr::null(),
                reference_space_type: xr::ReferenceSpaceType::LOCAL,
                pose_in_reference_space: xr::Posef::IDENTITY,
            };
            let mut sp = xr::Space::NULL;
            assert_eq!(
                space::create_reference_space(sh, &ci, &mut sp),
                xr::Result::SUCCESS
            );
            assert_eq!(destroy_instance(h), xr::Result::SUCCESS);
            assert_eq!(
                session::destroy_session(sh),
                xr::Result::ERROR_HANDLE_INVALID
            );
            assert_eq!(space::destroy_space(sp), xr::Result::ERROR_HANDLE_INVALID);
        }
    }

    #[test]
    fn panics_become_runtime_failure() {
        assert_eq!(guard(|| panic!("boom")), xr::Result::ERROR_RUNTIME_FAILURE);
    }
}
