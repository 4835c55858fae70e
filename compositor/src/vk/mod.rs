//! Vulkan through `ash`: the only room that calls Vulkan.
//!
//! The compositor renders on a Vulkan device and hands finished frames to KMS as dma-bufs.
//! What matters about a device for that: can it import/export dma-bufs with explicit DRM
//! format modifiers, export a render's completion as a sync_file, run a high-priority
//! queue, and which DRM node it is (so we render on the GPU that scans out the headset).

pub mod app;
pub mod context;
pub mod renderer;
pub mod scene;
pub mod validation;

use ash::vk;
use std::ffi::CStr;

/// Why Vulkan is unavailable or a query failed.
#[derive(Debug, thiserror::Error)]
pub enum VkError {
    #[error("cannot load the Vulkan loader (libvulkan.so.1): {0}")]
    Load(#[from] ash::LoadingError),
    #[error("{op} failed: {result}")]
    Call {
        op: &'static str,
        result: vk::Result,
    },
    #[error("no usable Vulkan device: {0}")]
    NoDevice(String),
    #[error("{0}")]
    Unsupported(String),
    /// GPU work still running after [`gpu_hang`]: the device is taken to be hung. Its
    /// objects are leaked rather than destroyed while the work may still run.
    #[error("{what} did not complete in {waited:?}: the GPU is taken to be hung")]
    Hung {
        what: &'static str,
        waited: std::time::Duration,
    },
}

impl VkError {
    /// The device is gone (lost or hung): nothing more will complete on it.
    pub fn is_device_gone(&self) -> bool {
        matches!(
            self,
            VkError::Hung { .. }
                | VkError::Call {
                    result: vk::Result::ERROR_DEVICE_LOST,
                    ..
                }
        )
    }
}

/// How long GPU work may run before the device counts as hung: 120 s, or
/// `LEASEHOLD_GPU_HANG_MS` (a diagnostic and fault-injection switch: a small value makes
/// ordinary work count as hung). Late work is not a hang: a software rasteriser under
/// emulation, or an app that renders each frame for seconds, is slow, and every wait on
/// GPU work waits this long (logging how late it is) before it gives up.
pub fn gpu_hang() -> std::time::Duration {
    static HANG: std::sync::OnceLock<std::time::Duration> = std::sync::OnceLock::new();
    *HANG.get_or_init(|| {
        std::env::var("LEASEHOLD_GPU_HANG_MS")
            .ok()
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map(std::time::Duration::from_millis)
            .unwrap_or(std::time::Duration::from_secs(120))
    })
}

/// After this long a wait on GPU work is logged as late (once per wait).
const GPU_LATE: std::time::Duration = std::time::Duration::from_secs(2);

/// Waits for all of `fences` (on `device`) up to `limit`, in slices: late work is logged,
/// `VK_ERROR_DEVICE_LOST` returns at once, and work still running at `limit` is
/// [`VkError::Hung`]. `what` names the work in the log and the error.
///
/// # Safety
/// `fences` must be fences of `device` that were submitted (or are signalled).
pub(crate) unsafe fn wait_fences(
    device: &ash::Device,
    fences: &[vk::Fence],
    what: &'static str,
    limit: std::time::Duration,
) -> Result<(), VkError> {
    let start = std::time::Instant::now();
    let mut said_late = false;
    loop {
        let left = limit.saturating_sub(start.elapsed());
        let slice = left.min(GPU_LATE);
        // SAFETY: by the caller's contract.
        match unsafe { device.wait_for_fences(fences, true, slice.as_nanos() as u64) } {
            Ok(()) => {
                if said_late {
                    tracing::info!(what, waited = ?start.elapsed(), "late GPU work completed");
                }
                return Ok(());
            }
            Err(vk::Result::TIMEOUT) if !left.is_zero() && slice < left => {
                if !said_late {
                    said_late = true;
                    tracing::warn!(what, waited = ?start.elapsed(), "GPU work is late; still waiting");
                }
            }
            Err(vk::Result::TIMEOUT) => {
                let waited = start.elapsed();
                tracing::error!(what, ?waited, "GPU work did not complete: taken to be hung");
                return Err(VkError::Hung { what, waited });
            }
            Err(result) => return Err(VkError::Call { op: what, result }),
        }
    }
}

fn call(op: &'static str) -> impl FnOnce(vk::Result) -> VkError {
    move |result| VkError::Call { op, result }
}

/// The device extensions the display path cares about, by name.
pub const INTERESTING_EXTENSIONS: &[(&str, &CStr)] = &[
    ("dma-buf memory", c"VK_EXT_external_memory_dma_buf"),
    ("DRM format modifiers", c"VK_EXT_image_drm_format_modifier"),
    ("external memory fd", c"VK_KHR_external_memory_fd"),
    ("semaphore sync_fd", c"VK_KHR_external_semaphore_fd"),
    ("fence sync_fd", c"VK_KHR_external_fence_fd"),
    ("global priority", c"VK_KHR_global_priority"),
    ("DRM node", c"VK_EXT_physical_device_drm"),
];

/// What one physical device offers the compositor.
#[derive(Debug, Clone)]
pub struct GpuInfo {
    pub name: String,
    pub device_type: vk::PhysicalDeviceType,
    pub api_version: (u32, u32, u32),
    pub vendor_id: u32,
    pub device_id: u32,
    /// Driver name and info (VK_KHR_driver_properties / Vulkan 1.2), when reported.
    pub driver: Option<String>,
    /// (major, minor) of the primary and render DRM nodes, when the device reports them.
    pub primary_node: Option<(i64, i64)>,
    pub render_node: Option<(i64, i64)>,
    /// VkPhysicalDeviceIDProperties::deviceUUID: the same device seen from another
    /// VkInstance (an application's) has the same UUID.
    pub device_uuid: [u8; 16],
    /// Which of [`INTERESTING_EXTENSIONS`] the device supports, in that order.
    pub extensions: Vec<bool>,
}

impl GpuInfo {
    pub fn supports(&self, name: &CStr) -> bool {
        INTERESTING_EXTENSIONS
            .iter()
            .zip(&self.extensions)
            .any(|((_, n), &have)| *n == name && have)
    }
}

/// Loads the Vulkan loader, creates a throwaway instance and describes every device.
pub fn probe() -> Result<(u32, Vec<GpuInfo>), VkError> {
    // SAFETY: loading libvulkan runs its initialisers; the loader is a well-behaved
    // system library and the Entry keeps it loaded for as long as it is used here.
    let entry = unsafe { ash::Entry::load()? };
    // SAFETY: a global command with no parameters beyond the loaded entry.
    let instance_version = unsafe { entry.try_enumerate_instance_version() }
        .map_err(call("vkEnumerateInstanceVersion"))?
        .unwrap_or(vk::API_VERSION_1_0);
    let app = vk::ApplicationInfo::default()
        .application_name(c"leasehold-probe")
        .api_version(vk::API_VERSION_1_1);
    let info = vk::InstanceCreateInfo::default().application_info(&app);
    // SAFETY: `info` and `app` outlive the call; no allocator callbacks.
    let instance =
        unsafe { entry.create_instance(&info, None) }.map_err(call("vkCreateInstance"))?;
    let result = describe_all(&instance);
    // SAFETY: every object derived from the instance (none are kept) is gone by now.
    unsafe { instance.destroy_instance(None) };
    result.map(|gpus| (instance_version, gpus))
}

fn describe_all(instance: &ash::Instance) -> Result<Vec<GpuInfo>, VkError> {
    // SAFETY: the instance is valid for the duration of this function.
    let devices = unsafe { instance.enumerate_physical_devices() }
        .map_err(call("vkEnumeratePhysicalDevices"))?;
    devices
        .into_iter()
        .map(|pd| describe(instance, pd))
        .collect()
}

pub(crate) fn describe(
    instance: &ash::Instance,
    pd: vk::PhysicalDevice,
) -> Result<GpuInfo, VkError> {
    // SAFETY: `pd` came from this instance's enumeration.
    let exts = unsafe { instance.enumerate_device_extension_properties(pd) }
        .map_err(call("vkEnumerateDeviceExtensionProperties"))?;
    let has = |name: &CStr| exts.iter().any(|e| e.extension_name_as_c_str() == Ok(name));
    let has_drm = has(c"VK_EXT_physical_device_drm");

    // SAFETY: `pd` is valid; properties are plain data written by the driver.
    let props = unsafe { instance.get_physical_device_properties(pd) };
    let mut drm = vk::PhysicalDeviceDrmPropertiesEXT::default();
    let mut driver = vk::PhysicalDeviceDriverProperties::default();
    let api = props.api_version;
    let mut id = vk::PhysicalDeviceIDProperties::default();
    let mut props2 = vk::PhysicalDeviceProperties2::default().push_next(&mut id);
    if vk::api_version_minor(api) >= 2 || vk::api_version_major(api) > 1 {
        props2 = props2.push_next(&mut driver);
    }
    if has_drm {
        props2 = props2.push_next(&mut drm);
    }
    // SAFETY: the instance is Vulkan 1.1 (vkGetPhysicalDeviceProperties2 is core); the
    // pNext chain only holds structures the device reports support for.
    unsafe { instance.get_physical_device_properties2(pd, &mut props2) };
    let _ = props2;

    let driver_name = driver
        .driver_name_as_c_str()
        .ok()
        .map(|n| n.to_string_lossy().into_owned());
    let driver_info = driver
        .driver_info_as_c_str()
        .ok()
        .map(|n| n.to_string_lossy().into_owned());
    let driver = match (driver_name, driver_info) {
        (Some(n), Some(i)) if !n.is_empty() && !i.is_empty() => Some(format!("{n} ({i})")),
        (Some(n), _) if !n.is_empty() => Some(n),
        _ => None,
    };
    Ok(GpuInfo {
        name: props
            .device_name_as_c_str()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|_| "(unnamed)".into()),
        device_type: props.device_type,
        api_version: (
            vk::api_version_major(api),
            vk::api_version_minor(api),
            vk::api_version_patch(api),
        ),
        vendor_id: props.vendor_id,
        device_id: props.device_id,
        driver,
        primary_node: (has_drm && drm.has_primary != 0)
            .then_some((drm.primary_major, drm.primary_minor)),
        render_node: (has_drm && drm.has_render != 0)
            .then_some((drm.render_major, drm.render_minor)),
        device_uuid: id.device_uuid,
        extensions: INTERESTING_EXTENSIONS.iter().map(|(_, n)| has(n)).collect(),
    })
}

/// Major part of a packed Vulkan version.
pub fn api_major(v: u32) -> u32 {
    vk::api_version_major(v)
}

/// Minor part of a packed Vulkan version.
pub fn api_minor(v: u32) -> u32 {
    vk::api_version_minor(v)
}
