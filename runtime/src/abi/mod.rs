//! The C ABI: the only `#[no_mangle]` code. The loader negotiates through
//! `xrNegotiateLoaderRuntimeInterface` and gets `xrGetInstanceProcAddr`; every other
//! entry point is handed out from the table below (extension functions only to
//! instances that enabled the extension). Each entry point validates its pointers,
//! structure types and handles, runs under a panic guard, and maps errors to
//! `XrResult`s.

//!
//! The files here hold no objects: each marshals one object kind's entry points (verify
//! the arguments, look the handle up in `core`, do the work, map the error and log why).
//! They import `marshal` and `instance` (handle lookups), and `session` imports the
//! files of what a frame refers to (swapchains, spaces, Vulkan); nothing imports back.

pub mod action;
pub mod debug_utils;
mod instance;
mod marshal;
pub mod session;
mod space;
pub mod swapchain;
mod vulkan;

use instance::*;
use marshal::guard;
use openxr_sys as xr;
use openxr_sys::Handle as _;
use std::ffi::{CStr, c_char};

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
    guard("xrNegotiateLoaderRuntimeInterface", || {
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
    guard("xrGetInstanceProcAddr", || {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state;
    use marshal::{fixed_str, put_str, result_name, structure_type_name};

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
        assert_eq!(
            guard("xrTest", || panic!("boom")),
            xr::Result::ERROR_RUNTIME_FAILURE
        );
    }

    static CALLS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

    unsafe extern "system" fn count(
        _: xr::DebugUtilsMessageSeverityFlagsEXT,
        _: xr::DebugUtilsMessageTypeFlagsEXT,
        _: *const xr::DebugUtilsMessengerCallbackDataEXT,
        _: *mut std::ffi::c_void,
    ) -> xr::Bool32 {
        CALLS.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        xr::FALSE
    }

    #[test]
    fn runtime_messages_wait_until_the_call_returns() {
        use std::sync::atomic::Ordering::SeqCst;
        let (r, h) = create(&[c"XR_EXT_debug_utils"]);
        assert_eq!(r, xr::Result::SUCCESS);
        let info = xr::DebugUtilsMessengerCreateInfoEXT {
            ty: xr::StructureType::DEBUG_UTILS_MESSENGER_CREATE_INFO_EXT,
            next: std::ptr::null(),
            message_severities: xr::DebugUtilsMessageSeverityFlagsEXT::WARNING,
            message_types: xr::DebugUtilsMessageTypeFlagsEXT::GENERAL,
            user_callback: Some(count),
            user_data: std::ptr::null_mut(),
        };
        let mut m = xr::DebugUtilsMessengerEXT::NULL;
        // SAFETY: a live instance with the extension, a valid create-info and out slot.
        let r = unsafe { debug_utils::create_debug_utils_messenger(h, &info, &mut m) };
        assert_eq!(r, xr::Result::SUCCESS);
        let before = CALLS.load(SeqCst);
        // Logged somewhere inside a call (perhaps under a lock): nothing is called yet.
        crate::logging::queue(false, "test", "a warning");
        assert_eq!(CALLS.load(SeqCst), before);
        // As the call returns.
        marshal::deliver_queued();
        assert_eq!(CALLS.load(SeqCst), before + 1);
        marshal::deliver_queued();
        assert_eq!(CALLS.load(SeqCst), before + 1, "delivered once");
        // The queue is bounded when nobody calls in.
        for _ in 0..crate::logging::QUEUE_MAX + 10 {
            crate::logging::queue(true, "test", "an error");
        }
        assert_eq!(
            crate::logging::take_queued().len(),
            crate::logging::QUEUE_MAX
        );
        // Destroying the instance takes its messenger with it.
        // SAFETY: a live instance.
        assert_eq!(unsafe { destroy_instance(h) }, xr::Result::SUCCESS);
        // SAFETY: a stale handle, deliberately.
        let r = unsafe { debug_utils::destroy_debug_utils_messenger(m) };
        assert_eq!(r, xr::Result::ERROR_HANDLE_INVALID);
    }
}
