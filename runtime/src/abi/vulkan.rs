//! XR_KHR_vulkan_enable and XR_KHR_vulkan_enable2 at the ABI: graphics requirements,
//! the extensions the app's Vulkan objects need, the physical device to use (the one
//! the compositor renders on), and — for enable2 — creating the app's VkInstance and
//! VkDevice with those extensions added. The Vulkan work is `compositor::vk::app`'s.

use super::instance::{lock, system_of};
use super::marshal::{done, guard, two_call};
use crate::core::instance::VulkanState;
use leasehold_compositor::service::LocalTarget;
use leasehold_compositor::vk::app;
use leasehold_compositor::vk::context::preferred_gpu;
use openxr_sys as xr;
use openxr_sys::Handle as _;
use std::ffi::c_char;
use std::sync::OnceLock;

/// Works on the instance's Vulkan state (a default one when the instance is gone: the
/// call that asked has found it invalid already, or is about to).
fn with_state<R>(instance: u64, f: impl FnOnce(&mut VulkanState) -> R) -> R {
    match crate::core::instance::get(instance) {
        Some(i) => f(&mut i.vulkan.lock().unwrap_or_else(|p| p.into_inner())),
        None => f(&mut VulkanState::default()),
    }
}

pub(super) fn requirements_queried(instance: u64) -> bool {
    with_state(instance, |s| s.requirements_queried)
}

/// The device the compositor renders on (found once per process).
pub(super) fn compositor_uuid(target: &LocalTarget) -> Result<[u8; 16], xr::Result> {
    static UUID: OnceLock<Result<[u8; 16], String>> = OnceLock::new();
    UUID.get_or_init(|| {
        preferred_gpu(target.device_preference())
            .map(|g| {
                tracing::info!(gpu = %g.name, "applications render on the compositor's device");
                g.device_uuid
            })
            .map_err(|e| e.to_string())
    })
    .clone()
    .map_err(|e| {
        tracing::error!(%e, "no Vulkan device for the compositor");
        xr::Result::ERROR_RUNTIME_FAILURE
    })
}

fn vulkan_enabled(h: xr::Instance, ext: &str) -> Result<(), xr::Result> {
    let i = super::instance(h)?;
    if lock(&i).enabled(ext) {
        Ok(())
    } else {
        Err(xr::Result::ERROR_FUNCTION_UNSUPPORTED)
    }
}

fn requirements(
    name: &'static str,
    h: xr::Instance,
    id: xr::SystemId,
    out: *mut xr::GraphicsRequirementsVulkanKHR,
    ext: &str,
) -> xr::Result {
    guard(name, || {
        done((|| {
            vulkan_enabled(h, ext)?;
            system_of(h, id)?;
            // SAFETY: the app passes a writable structure, or null (refused).
            let out = unsafe { super::marshal::output(out) }?;
            out.min_api_version_supported = xr::Version::new(app::MIN_API.0, app::MIN_API.1, 0);
            out.max_api_version_supported = xr::Version::new(app::MAX_API.0, app::MAX_API.1, 0);
            with_state(h.into_raw(), |s| s.requirements_queried = true);
            Ok(())
        })())
    })
}

pub(super) unsafe extern "system" fn get_vulkan_graphics_requirements(
    h: xr::Instance,
    id: xr::SystemId,
    out: *mut xr::GraphicsRequirementsVulkanKHR,
) -> xr::Result {
    requirements(
        "xrGetVulkanGraphicsRequirementsKHR",
        h,
        id,
        out,
        "XR_KHR_vulkan_enable",
    )
}

pub(super) unsafe extern "system" fn get_vulkan_graphics_requirements2(
    h: xr::Instance,
    id: xr::SystemId,
    out: *mut xr::GraphicsRequirementsVulkanKHR,
) -> xr::Result {
    requirements(
        "xrGetVulkanGraphicsRequirements2KHR",
        h,
        id,
        out,
        "XR_KHR_vulkan_enable2",
    )
}

fn extension_buffer(
    name: &'static str,
    h: xr::Instance,
    id: xr::SystemId,
    capacity: u32,
    count_out: *mut u32,
    buffer: *mut c_char,
    names: &[&std::ffi::CStr],
) -> xr::Result {
    guard(name, || {
        done((|| {
            vulkan_enabled(h, "XR_KHR_vulkan_enable")?;
            system_of(h, id)?;
            let mut bytes = app::extension_string(names).into_bytes();
            bytes.push(0);
            // SAFETY: the two-call contract of the entry point.
            unsafe {
                two_call(&bytes, capacity, count_out, buffer, |o, b| {
                    *o = *b as c_char;
                    Ok(())
                })
            }
        })())
    })
}

pub(super) unsafe extern "system" fn get_vulkan_instance_extensions(
    h: xr::Instance,
    id: xr::SystemId,
    capacity: u32,
    count_out: *mut u32,
    buffer: *mut c_char,
) -> xr::Result {
    extension_buffer(
        "xrGetVulkanInstanceExtensionsKHR",
        h,
        id,
        capacity,
        count_out,
        buffer,
        app::INSTANCE_EXTENSIONS,
    )
}

pub(super) unsafe extern "system" fn get_vulkan_device_extensions(
    h: xr::Instance,
    id: xr::SystemId,
    capacity: u32,
    count_out: *mut u32,
    buffer: *mut c_char,
) -> xr::Result {
    extension_buffer(
        "xrGetVulkanDeviceExtensionsKHR",
        h,
        id,
        capacity,
        count_out,
        buffer,
        app::DEVICE_EXTENSIONS,
    )
}

fn graphics_device(
    h: xr::Instance,
    vk_instance: xr::platform::VkInstance,
    gipa: Option<app::GetInstanceProcAddr>,
    out: *mut xr::platform::VkPhysicalDevice,
) -> Result<(), xr::Result> {
    if out.is_null() || vk_instance.is_null() {
        return Err(xr::Result::ERROR_VALIDATION_FAILURE);
    }
    let target = {
        let i = super::instance(h)?;
        match &lock(&i).system.screen.0 {
            Ok(d) => LocalTarget::for_display(d),
            Err(_) => LocalTarget::Headless,
        }
    };
    let uuid = compositor_uuid(&target)?;
    let raw = vk_instance as usize as u64;
    // SAFETY: the app passes its live VkInstance (created through `gipa` when given).
    let pd = unsafe { app::graphics_device(gipa, raw, uuid) }.map_err(|e| {
        tracing::error!(%e, "xrGetVulkanGraphicsDevice");
        xr::Result::ERROR_RUNTIME_FAILURE
    })?;
    with_state(h.into_raw(), |s| s.app_instance = Some((raw, gipa)));
    // SAFETY: checked non-null.
    unsafe { *out = pd as usize as xr::platform::VkPhysicalDevice };
    Ok(())
}

pub(super) unsafe extern "system" fn get_vulkan_graphics_device(
    h: xr::Instance,
    id: xr::SystemId,
    vk_instance: xr::platform::VkInstance,
    out: *mut xr::platform::VkPhysicalDevice,
) -> xr::Result {
    guard("xrGetVulkanGraphicsDeviceKHR", || {
        done((|| {
            vulkan_enabled(h, "XR_KHR_vulkan_enable")?;
            system_of(h, id)?;
            graphics_device(h, vk_instance, None, out)
        })())
    })
}

/// The app's vkGetInstanceProcAddr as ash's type (the same C signature).
fn gipa(f: Option<xr::platform::VkGetInstanceProcAddr>) -> Option<app::GetInstanceProcAddr> {
    // SAFETY: both are `PFN_vkGetInstanceProcAddr`: (VkInstance, const char*) ->
    // PFN_vkVoidFunction with the system calling convention; VkInstance is a pointer-
    // sized dispatchable handle in both bindings.
    f.map(|f| unsafe {
        std::mem::transmute::<xr::platform::VkGetInstanceProcAddr, app::GetInstanceProcAddr>(f)
    })
}

pub(super) unsafe extern "system" fn get_vulkan_graphics_device2(
    h: xr::Instance,
    info: *const xr::VulkanGraphicsDeviceGetInfoKHR,
    out: *mut xr::platform::VkPhysicalDevice,
) -> xr::Result {
    guard("xrGetVulkanGraphicsDevice2KHR", || {
        done((|| {
            vulkan_enabled(h, "XR_KHR_vulkan_enable2")?;
            // SAFETY: the app passes a valid structure, or null (refused).
            let info = unsafe { super::marshal::input(info) }?;
            system_of(h, info.system_id)?;
            let g = with_state(h.into_raw(), |s| s.app_instance)
                .filter(|(i, _)| *i == info.vulkan_instance as usize as u64)
                .and_then(|(_, g)| g);
            graphics_device(h, info.vulkan_instance, g, out)
        })())
    })
}

pub(super) unsafe extern "system" fn create_vulkan_instance(
    h: xr::Instance,
    info: *const xr::VulkanInstanceCreateInfoKHR,
    out: *mut xr::platform::VkInstance,
    vk_result: *mut xr::platform::VkResult,
) -> xr::Result {
    guard("xrCreateVulkanInstanceKHR", || {
        done((|| {
            vulkan_enabled(h, "XR_KHR_vulkan_enable2")?;
            // SAFETY: the app passes a valid structure, or null (refused).
            let info = unsafe { super::marshal::input(info) }?;
            system_of(h, info.system_id)?;
            if out.is_null() || vk_result.is_null() || info.vulkan_create_info.is_null() {
                return Err(xr::Result::ERROR_VALIDATION_FAILURE);
            }
            if info.create_flags != xr::VulkanInstanceCreateFlagsKHR::EMPTY {
                return Err(xr::Result::ERROR_VALIDATION_FAILURE);
            }
            let g = gipa(info.pfn_get_instance_proc_addr)
                .ok_or(xr::Result::ERROR_VALIDATION_FAILURE)?;
            // SAFETY: the app's create info and allocator, valid by the contract of
            // xrCreateVulkanInstanceKHR.
            let (r, vk_inst) =
                unsafe { app::create_instance(g, info.vulkan_create_info, info.vulkan_allocator) }
                    .map_err(|e| {
                        tracing::error!(%e, "xrCreateVulkanInstanceKHR");
                        xr::Result::ERROR_RUNTIME_FAILURE
                    })?;
            if r >= 0 {
                with_state(h.into_raw(), |s| s.app_instance = Some((vk_inst, Some(g))));
            }
            // SAFETY: checked non-null.
            unsafe {
                *vk_result = r;
                *out = vk_inst as usize as xr::platform::VkInstance;
            }
            Ok(())
        })())
    })
}

pub(super) unsafe extern "system" fn create_vulkan_device(
    h: xr::Instance,
    info: *const xr::VulkanDeviceCreateInfoKHR,
    out: *mut xr::platform::VkDevice,
    vk_result: *mut xr::platform::VkResult,
) -> xr::Result {
    guard("xrCreateVulkanDeviceKHR", || {
        done((|| {
            vulkan_enabled(h, "XR_KHR_vulkan_enable2")?;
            // SAFETY: the app passes a valid structure, or null (refused).
            let info = unsafe { super::marshal::input(info) }?;
            system_of(h, info.system_id)?;
            if out.is_null()
                || vk_result.is_null()
                || info.vulkan_create_info.is_null()
                || info.vulkan_physical_device.is_null()
            {
                return Err(xr::Result::ERROR_VALIDATION_FAILURE);
            }
            if info.create_flags != xr::VulkanDeviceCreateFlagsKHR::EMPTY {
                return Err(xr::Result::ERROR_VALIDATION_FAILURE);
            }
            let g = gipa(info.pfn_get_instance_proc_addr)
                .ok_or(xr::Result::ERROR_VALIDATION_FAILURE)?;
            // vkCreateDevice is reached through the instance the physical device came
            // from: the one xrGetVulkanGraphicsDevice2KHR was asked about.
            let Some((vk_inst, _)) = with_state(h.into_raw(), |s| s.app_instance) else {
                tracing::error!(
                    "xrCreateVulkanDeviceKHR before xrGetVulkanGraphicsDevice2KHR named the VkInstance"
                );
                return Err(xr::Result::ERROR_CALL_ORDER_INVALID);
            };
            // SAFETY: the app's live instance and physical device, its create info and
            // allocator, valid by the contract of xrCreateVulkanDeviceKHR.
            let (r, dev) = unsafe {
                app::create_device(
                    g,
                    vk_inst,
                    info.vulkan_physical_device as usize as u64,
                    info.vulkan_create_info,
                    info.vulkan_allocator,
                )
            }
            .map_err(|e| {
                tracing::error!(%e, "xrCreateVulkanDeviceKHR");
                xr::Result::ERROR_RUNTIME_FAILURE
            })?;
            // SAFETY: checked non-null.
            unsafe {
                *vk_result = r;
                *out = dev as usize as xr::platform::VkDevice;
            }
            Ok(())
        })())
    })
}
