//! The application's side of Vulkan interop (XR_KHR_vulkan_enable and _enable2): what the
//! app's VkInstance and VkDevice need, creating them for the app (enable2), choosing the
//! physical device the compositor renders on, and swapchain images allocated on the app's
//! device from memory exported as opaque fds, which the compositor imports
//! ([`super::renderer::GpuRenderer::import_layer_image`]) — zero copies, on any driver with
//! VK_KHR_external_memory_fd (lavapipe included).
//!
//! Synchronisation: xrReleaseSwapchainImage submits a fence behind the app's rendering on
//! its queue; nothing waits for it in the app's calls. Where the app's device exports
//! sync_files (VK_KHR_external_semaphore_fd, SYNC_FD) and the compositor's imports them,
//! the release also signals a semaphore and exports it as a sync_file: the compositor
//! takes the frame at once and its GPU waits for the app's ([`ReleaseProbe::sync_file`]).
//! Otherwise (the fallback, chosen per device and logged) the compositor's thread asks
//! ([`ReleaseProbe::done`]) whether the fence has signalled and shows a frame only once
//! all of its images' fences have. Either way xrEndFrame returns without waiting for the
//! app's GPU. The app's queue is used only from the OpenXR calls that the specification
//! lets a runtime use it in (acquire, release).

use super::{VkError, call};
use crate::render::ColorFormat;
use ash::vk;
use ash::vk::Handle as _;
use std::ffi::{CStr, c_char};
use std::os::fd::{FromRawFd, OwnedFd};
use std::sync::{Arc, Mutex};

/// The log target of the debug records that name the runtime's objects on the app's
/// device (images, memory, command buffers, fences, semaphores).
pub const OBJECTS_LOG: &str = "leasehold_compositor::vk::app::objects";

/// The app's (or the loader's) vkGetInstanceProcAddr.
pub type GetInstanceProcAddr = vk::PFN_vkGetInstanceProcAddr;

/// Instance extensions the app's VkInstance needs.
pub const INSTANCE_EXTENSIONS: &[&CStr] = &[
    ash::khr::get_physical_device_properties2::NAME,
    ash::khr::external_memory_capabilities::NAME,
];

/// Device extensions the app's VkDevice needs (memory the compositor can import).
pub const DEVICE_EXTENSIONS: &[&CStr] = &[
    ash::khr::external_memory::NAME,
    ash::khr::external_memory_fd::NAME,
    ash::khr::dedicated_allocation::NAME,
    ash::khr::get_memory_requirements2::NAME,
];

/// Instance extension added where the loader has it: what the optional device
/// extensions below need on a Vulkan 1.0 instance.
pub const OPTIONAL_INSTANCE_EXTENSIONS: &[&CStr] =
    &[ash::khr::external_semaphore_capabilities::NAME];

/// Device extensions added (XR_KHR_vulkan_enable2) where the device has them and the
/// instance has [`OPTIONAL_INSTANCE_EXTENSIONS`]: the release's sync_file, which lets the
/// compositor wait for the app's rendering on the GPU.
pub const OPTIONAL_DEVICE_EXTENSIONS: &[&CStr] = &[
    ash::khr::external_semaphore::NAME,
    ash::khr::external_semaphore_fd::NAME,
];

/// The Vulkan versions the app may use: 1.0 with the extensions above, up to 1.3.
pub const MIN_API: (u16, u16) = (1, 0);
pub const MAX_API: (u16, u16) = (1, 3);

/// `names` space-separated (XR_KHR_vulkan_enable's string form).
pub fn extension_string(names: &[&CStr]) -> String {
    names
        .iter()
        .map(|n| n.to_string_lossy())
        .collect::<Vec<_>>()
        .join(" ")
}

fn entry(gipa: Option<GetInstanceProcAddr>) -> Result<ash::Entry, VkError> {
    match gipa {
        // SAFETY: the app's vkGetInstanceProcAddr follows Vulkan 1.0 semantics and stays
        // valid while its instance lives (the OpenXR contract of enable2).
        Some(f) => Ok(unsafe {
            ash::Entry::from_static_fn(ash::StaticFn {
                get_instance_proc_addr: f,
            })
        }),
        // SAFETY: loading the system's Vulkan loader, the one the app itself uses.
        None => Ok(unsafe { ash::Entry::load()? }),
    }
}

/// The first of `needed` that `available` lacks.
fn first_missing<'a>(
    available: &[vk::ExtensionProperties],
    needed: &[&'a CStr],
) -> Option<&'a CStr> {
    needed
        .iter()
        .find(|n| {
            !available
                .iter()
                .any(|e| e.extension_name_as_c_str() == Ok(**n))
        })
        .copied()
}

/// `needed`, then those of `optional` that `available` has.
fn with_available<'a>(
    needed: &[&'a CStr],
    optional: &[&'a CStr],
    available: &[vk::ExtensionProperties],
) -> Vec<&'a CStr> {
    needed
        .iter()
        .chain(
            optional
                .iter()
                .filter(|n| first_missing(available, &[**n]).is_none()),
        )
        .copied()
        .collect()
}

/// `base` plus whichever of `extra` it lacks.
///
/// # Safety
/// `base` must point to `count` NUL-terminated strings (or be null with `count` 0).
unsafe fn merged(base: *const *const c_char, count: u32, extra: &[&CStr]) -> Vec<*const c_char> {
    let mut out: Vec<*const c_char> = if base.is_null() || count == 0 {
        Vec::new()
    } else {
        // SAFETY: by the caller's contract.
        unsafe { std::slice::from_raw_parts(base, count as usize) }.to_vec()
    };
    for e in extra {
        let present = out.iter().any(|&p| {
            // SAFETY: every entry is a NUL-terminated string by the caller's contract.
            !p.is_null() && unsafe { CStr::from_ptr(p) } == *e
        });
        if !present {
            out.push(e.as_ptr());
        }
    }
    out
}

/// xrCreateVulkanInstanceKHR: the app's VkInstance with the extensions interop needs
/// added. Returns the VkResult (the app sees it in `vulkanResult`) and the handle.
///
/// # Safety
/// `info` must point to a valid VkInstanceCreateInfo and `allocator` be null or valid,
/// as the app passes them.
pub unsafe fn create_instance(
    gipa: GetInstanceProcAddr,
    info: *const std::ffi::c_void,
    allocator: *const std::ffi::c_void,
) -> Result<(i32, u64), VkError> {
    if info.is_null() {
        return Err(VkError::Unsupported("vulkanCreateInfo is null".into()));
    }
    let entry = entry(Some(gipa))?;
    // SAFETY: a global query through the app's loader.
    let available = unsafe { entry.enumerate_instance_extension_properties(None) }
        .map_err(call("vkEnumerateInstanceExtensionProperties"))?;
    if let Some(missing) = first_missing(&available, INSTANCE_EXTENSIONS) {
        tracing::error!(extension = ?missing, "the Vulkan instance lacks an extension Leasehold needs");
        return Ok((vk::Result::ERROR_EXTENSION_NOT_PRESENT.as_raw(), 0));
    }
    // SAFETY: the app's structure, copied; only the extension list is replaced, with
    // pointers that outlive the call.
    let mut ci = unsafe { *(info as *const vk::InstanceCreateInfo<'_>) };
    let wanted = with_available(
        INSTANCE_EXTENSIONS,
        OPTIONAL_INSTANCE_EXTENSIONS,
        &available,
    );
    // SAFETY: the app's extension array, by the structure's contract.
    let names = unsafe {
        merged(
            ci.pp_enabled_extension_names,
            ci.enabled_extension_count,
            &wanted,
        )
    };
    ci.enabled_extension_count = names.len() as u32;
    ci.pp_enabled_extension_names = names.as_ptr();
    let mut out = vk::Instance::null();
    // SAFETY: a valid create info and allocator (the app's), a writable output.
    let r = unsafe { (entry.fp_v1_0().create_instance)(&ci, allocator.cast(), &mut out) };
    Ok((r.as_raw(), out.as_raw()))
}

/// The device the compositor renders on, as one of the app instance's physical devices
/// (matched by device UUID): xrGetVulkanGraphicsDevice(2)KHR.
///
/// # Safety
/// `instance` must be a live VkInstance created through `gipa` (or the system loader),
/// with [`INSTANCE_EXTENSIONS`] enabled or Vulkan 1.1.
pub unsafe fn graphics_device(
    gipa: Option<GetInstanceProcAddr>,
    instance: u64,
    compositor_uuid: [u8; 16],
) -> Result<u64, VkError> {
    let entry = entry(gipa)?;
    let raw = vk::Instance::from_raw(instance);
    // SAFETY: the instance is live by the caller's contract.
    let inst = unsafe { ash::Instance::load(entry.static_fn(), raw) };
    // SAFETY: looking up a function by name; null when the instance lacks it.
    let props2: Option<vk::PFN_vkGetPhysicalDeviceProperties2> = unsafe {
        let f = (entry.static_fn().get_instance_proc_addr)(
            raw,
            c"vkGetPhysicalDeviceProperties2KHR".as_ptr(),
        )
        .or_else(|| {
            (entry.static_fn().get_instance_proc_addr)(
                raw,
                c"vkGetPhysicalDeviceProperties2".as_ptr(),
            )
        });
        f.map(|f| std::mem::transmute::<unsafe extern "system" fn(), _>(f))
    };
    let props2 = props2.ok_or_else(|| {
        VkError::Unsupported(
            "the application's VkInstance has neither Vulkan 1.1 nor \
             VK_KHR_get_physical_device_properties2 (xrGetVulkanInstanceExtensionsKHR lists it)"
                .into(),
        )
    })?;
    // SAFETY: the instance is live.
    let pds =
        unsafe { inst.enumerate_physical_devices() }.map_err(call("vkEnumeratePhysicalDevices"))?;
    for pd in pds {
        let mut id = vk::PhysicalDeviceIDProperties::default();
        let mut p2 = vk::PhysicalDeviceProperties2::default().push_next(&mut id);
        // SAFETY: a valid physical device and a properties chain of known structures.
        unsafe { props2(pd, &mut p2) };
        if id.device_uuid == compositor_uuid {
            return Ok(pd.as_raw());
        }
    }
    Err(VkError::NoDevice(
        "the application's Vulkan instance does not see the device the compositor renders on"
            .into(),
    ))
}

/// xrCreateVulkanDeviceKHR: the app's VkDevice with the extensions interop needs added.
///
/// # Safety
/// `instance` must be the live VkInstance `physical` belongs to; `info` a valid
/// VkDeviceCreateInfo and `allocator` null or valid, as the app passes them.
pub unsafe fn create_device(
    gipa: GetInstanceProcAddr,
    instance: u64,
    physical: u64,
    info: *const std::ffi::c_void,
    allocator: *const std::ffi::c_void,
) -> Result<(i32, u64), VkError> {
    if info.is_null() {
        return Err(VkError::Unsupported("vulkanCreateInfo is null".into()));
    }
    let entry = entry(Some(gipa))?;
    // SAFETY: the instance is live by the caller's contract.
    let inst = unsafe { ash::Instance::load(entry.static_fn(), vk::Instance::from_raw(instance)) };
    let pd = vk::PhysicalDevice::from_raw(physical);
    // SAFETY: a query on a physical device of this instance.
    let available = unsafe { inst.enumerate_device_extension_properties(pd) }
        .map_err(call("vkEnumerateDeviceExtensionProperties"))?;
    if let Some(missing) = first_missing(&available, DEVICE_EXTENSIONS) {
        tracing::error!(extension = ?missing, "the Vulkan device lacks an extension Leasehold needs");
        return Ok((vk::Result::ERROR_EXTENSION_NOT_PRESENT.as_raw(), 0));
    }
    // SAFETY: the app's structure, copied; only the extension list is replaced.
    let mut ci = unsafe { *(info as *const vk::DeviceCreateInfo<'_>) };
    // The instance came from xrCreateVulkanInstanceKHR (the enable2 contract), which
    // enabled the optional instance extension where the loader has it.
    // SAFETY: a global query through the app's loader.
    let instance_has = unsafe { entry.enumerate_instance_extension_properties(None) }
        .map(|ext| first_missing(&ext, OPTIONAL_INSTANCE_EXTENSIONS).is_none())
        .unwrap_or(false);
    let optional = if instance_has {
        OPTIONAL_DEVICE_EXTENSIONS
    } else {
        &[]
    };
    let wanted = with_available(DEVICE_EXTENSIONS, optional, &available);
    // SAFETY: the app's extension array, by the structure's contract.
    let names = unsafe {
        merged(
            ci.pp_enabled_extension_names,
            ci.enabled_extension_count,
            &wanted,
        )
    };
    ci.enabled_extension_count = names.len() as u32;
    ci.pp_enabled_extension_names = names.as_ptr();
    let mut out = vk::Device::null();
    // SAFETY: valid create info (the app's, with our extension list alive across the
    // call), allocator and output.
    let r = unsafe { (inst.fp_v1_0().create_device)(pd, &ci, allocator.cast(), &mut out) };
    Ok((r.as_raw(), out.as_raw()))
}

/// The app's Vulkan objects from XrGraphicsBindingVulkanKHR, with function tables.
pub struct AppDevice {
    _entry: ash::Entry,
    device: ash::Device,
    queue: vk::Queue,
    queue_family: u32,
    memory: vk::PhysicalDeviceMemoryProperties,
    memory_fd: ash::khr::external_memory_fd::Device,
    /// Command pool on the app's queue family (layout transitions). Its lock also
    /// serialises the runtime's submissions to the app's queue: swapchains on several
    /// threads share both, and Vulkan requires external synchronisation of each.
    pool: Mutex<vk::CommandPool>,
    /// A swapchain image was leaked with work possibly pending on it (see
    /// `destroy_image`): the pool must not be destroyed either.
    leaked: std::sync::atomic::AtomicBool,
    /// Why the device is gone (lost, or its work hung), once it is: the session ends.
    gone: Mutex<Option<String>>,
    /// vkGetSemaphoreFdKHR, where the app's device has VK_KHR_external_semaphore_fd.
    semaphore_fd: Option<ash::khr::external_semaphore_fd::Device>,
    /// Releases export a sync_file for the compositor's GPU to wait on
    /// ([`Self::sync_with`]).
    gpu_wait: bool,
}

impl std::fmt::Debug for AppDevice {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppDevice")
            .field("queue_family", &self.queue_family)
            .finish()
    }
}

/// The raw handles of an XrGraphicsBindingVulkanKHR.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Binding {
    pub instance: u64,
    pub physical: u64,
    pub device: u64,
    pub queue_family: u32,
    pub queue_index: u32,
}

impl AppDevice {
    /// # Safety
    /// The handles must be the app's live objects (the physical device of the instance,
    /// the device created from it with the queue named), and outlive this value.
    pub unsafe fn new(b: Binding, compositor_uuid: [u8; 16]) -> Result<Self, VkError> {
        if b.instance == 0 || b.physical == 0 || b.device == 0 {
            return Err(VkError::Unsupported(
                "the graphics binding has a null VkInstance, VkPhysicalDevice or VkDevice".into(),
            ));
        }
        let entry = entry(None)?;
        // SAFETY: live handles by the caller's contract.
        let instance =
            unsafe { ash::Instance::load(entry.static_fn(), vk::Instance::from_raw(b.instance)) };
        let pd = vk::PhysicalDevice::from_raw(b.physical);
        // SAFETY: the app's physical device; the instance is the one it came from. The
        // UUID check runs on the same function `graphics_device` uses.
        let physical = unsafe { graphics_device(None, b.instance, compositor_uuid) }?;
        if physical != b.physical {
            return Err(VkError::NoDevice(
                "the session's VkPhysicalDevice is not the one xrGetVulkanGraphicsDeviceKHR \
                 returned (the device the compositor renders on)"
                    .into(),
            ));
        }
        // SAFETY: plain queries on a live physical device.
        let (memory, families) = unsafe {
            (
                instance.get_physical_device_memory_properties(pd),
                instance.get_physical_device_queue_family_properties(pd),
            )
        };
        let family = families.get(b.queue_family as usize).ok_or_else(|| {
            VkError::Unsupported(format!("queue family {} does not exist", b.queue_family))
        })?;
        if b.queue_index >= family.queue_count {
            return Err(VkError::Unsupported(format!(
                "queue {} of family {} does not exist",
                b.queue_index, b.queue_family
            )));
        }
        // SAFETY: the app's live device, created from this instance.
        let device =
            unsafe { ash::Device::load(instance.fp_v1_0(), vk::Device::from_raw(b.device)) };
        // SAFETY: a name lookup; null when the device lacks the extension.
        let has_fd = unsafe {
            (instance.fp_v1_0().get_device_proc_addr)(device.handle(), c"vkGetMemoryFdKHR".as_ptr())
        }
        .is_some();
        if !has_fd {
            return Err(VkError::Unsupported(
                "the application's VkDevice was created without VK_KHR_external_memory_fd \
                 (xrGetVulkanDeviceExtensionsKHR lists what it needs)"
                    .into(),
            ));
        }
        let memory_fd = ash::khr::external_memory_fd::Device::new(&instance, &device);
        // SAFETY: a name lookup; null when the device lacks the extension.
        let has_semaphore_fd = unsafe {
            (instance.fp_v1_0().get_device_proc_addr)(
                device.handle(),
                c"vkGetSemaphoreFdKHR".as_ptr(),
            )
        }
        .is_some();
        let semaphore_fd = has_semaphore_fd
            .then(|| ash::khr::external_semaphore_fd::Device::new(&instance, &device));
        // SAFETY: the queue exists (checked above) on the app's device.
        let queue = unsafe { device.get_device_queue(b.queue_family, b.queue_index) };
        // SAFETY: a command pool on the app's device for its queue family.
        let pool = unsafe {
            device.create_command_pool(
                &vk::CommandPoolCreateInfo::default()
                    .queue_family_index(b.queue_family)
                    .flags(vk::CommandPoolCreateFlags::RESET_COMMAND_BUFFER),
                None,
            )
        }
        .map_err(call("vkCreateCommandPool"))?;
        Ok(Self {
            _entry: entry,
            device,
            queue,
            queue_family: b.queue_family,
            memory,
            memory_fd,
            pool: Mutex::new(pool),
            leaked: std::sync::atomic::AtomicBool::new(false),
            gone: Mutex::new(None),
            semaphore_fd,
            gpu_wait: false,
        })
    }

    /// `Some(why)` once the app's device is lost or its work hung (a wait on it gave up):
    /// nothing more completes on it, and its session is lost.
    pub fn gone(&self) -> Option<String> {
        self.gone.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Records `e` if it says the device is gone.
    fn note(&self, e: &VkError) {
        if e.is_device_gone() {
            let mut g = self.gone.lock().unwrap_or_else(|p| p.into_inner());
            g.get_or_insert_with(|| e.to_string());
        }
    }

    /// Chooses how the compositor learns the app's rendering is done, given whether the
    /// compositor's device imports sync_files (the same physical device, so it exports
    /// them too), before any swapchain exists. Returns the choice, for the log.
    pub fn sync_with(&mut self, compositor_imports_sync_file: bool) -> &'static str {
        self.gpu_wait = compositor_imports_sync_file && self.semaphore_fd.is_some();
        if self.gpu_wait {
            "GPU: the release exports a sync_file the compositor's queue waits on"
        } else if self.semaphore_fd.is_none() {
            "CPU: a fence behind the app's work at release, probed by the compositor \
             (the app's VkDevice has no VK_KHR_external_semaphore_fd)"
        } else {
            "CPU: a fence behind the app's work at release, probed by the compositor \
             (the compositor's device imports no sync_files)"
        }
    }

    fn memory_type(&self, bits: u32) -> Option<u32> {
        let pick = |flags: vk::MemoryPropertyFlags| {
            (0..self.memory.memory_type_count).find(|&i| {
                bits & (1 << i) != 0
                    && self.memory.memory_types[i as usize]
                        .property_flags
                        .contains(flags)
            })
        };
        pick(vk::MemoryPropertyFlags::DEVICE_LOCAL)
            .or_else(|| pick(vk::MemoryPropertyFlags::empty()))
    }
}

impl Drop for AppDevice {
    fn drop(&mut self) {
        if self.leaked.load(std::sync::atomic::Ordering::Acquire) {
            // A swapchain image's last use never completed: its command buffer (from
            // this pool) may still be pending, so the pool stays too.
            tracing::error!("the swapchain command pool is leaked with an unfinished image");
            return;
        }
        let pool = *self.pool.lock().unwrap_or_else(|p| p.into_inner());
        // SAFETY: our pool; its command buffers completed (every submit is waited for
        // before the swapchain that recorded it goes away, and a swapchain image whose
        // wait failed leaked the pool above).
        unsafe { self.device.destroy_command_pool(pool, None) };
    }
}

/// What a swapchain is, in the terms the app asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SwapchainDesc {
    pub width: u32,
    pub height: u32,
    pub array_layers: u32,
    /// 1, or 6 for a cube map (each array layer six faces, +X -X +Y -Y +Z -Z).
    pub faces: u32,
    pub mip_levels: u32,
    /// VkFormat.
    pub format: i32,
    /// XrSwapchainUsageFlags.
    pub xr_usage: u64,
}

/// The swapchain formats (VkFormat) offered, preferred first: the colour formats the
/// compositor samples, then depth formats (XR_KHR_composition_layer_depth: accepted, not
/// composited).
pub fn swapchain_formats() -> Vec<(i32, Option<ColorFormat>)> {
    let mut v: Vec<(i32, Option<ColorFormat>)> = [
        ColorFormat::Rgba8Srgb,
        ColorFormat::Bgra8Srgb,
        ColorFormat::Rgba8Unorm,
        ColorFormat::Bgra8Unorm,
        ColorFormat::Rgba16Float,
    ]
    .into_iter()
    .map(|c| (super::renderer::vk_format(c).as_raw(), Some(c)))
    .collect();
    v.extend(
        [
            vk::Format::D32_SFLOAT,
            vk::Format::D24_UNORM_S8_UINT,
            vk::Format::D16_UNORM,
        ]
        .into_iter()
        .map(|f| (f.as_raw(), None)),
    );
    v
}

fn is_depth(f: vk::Format) -> bool {
    matches!(
        f,
        vk::Format::D32_SFLOAT | vk::Format::D24_UNORM_S8_UINT | vk::Format::D16_UNORM
    )
}

/// XrSwapchainUsageFlags → Vulkan usage and create flags.
fn vk_usage(xr: u64, color: bool) -> (vk::ImageUsageFlags, vk::ImageCreateFlags) {
    let mut u = vk::ImageUsageFlags::empty();
    let map = [
        (0x1, vk::ImageUsageFlags::COLOR_ATTACHMENT),
        (0x2, vk::ImageUsageFlags::DEPTH_STENCIL_ATTACHMENT),
        (0x4, vk::ImageUsageFlags::STORAGE),
        (0x8, vk::ImageUsageFlags::TRANSFER_SRC),
        (0x10, vk::ImageUsageFlags::TRANSFER_DST),
        (0x20, vk::ImageUsageFlags::SAMPLED),
        (0x80, vk::ImageUsageFlags::INPUT_ATTACHMENT),
    ];
    for (bit, f) in map {
        if xr & bit != 0 {
            u |= f;
        }
    }
    if color {
        // The compositor samples every colour image.
        u |= vk::ImageUsageFlags::SAMPLED;
    }
    let flags = if xr & 0x40 != 0 {
        vk::ImageCreateFlags::MUTABLE_FORMAT
    } else {
        vk::ImageCreateFlags::empty()
    };
    (u, flags)
}

/// A swapchain image's memory, exported for the compositor to import.
#[derive(Debug)]
pub struct SharedImage {
    pub memory: OwnedFd,
    pub allocation_size: u64,
    pub width: u32,
    pub height: u32,
    pub array_layers: u32,
    pub mip_levels: u32,
    pub format: ColorFormat,
    /// VkImageUsageFlags / VkImageCreateFlags the image was created with (the import must
    /// match them).
    pub usage: u32,
    pub flags: u32,
    /// The layout the app leaves the image in at release (VkImageLayout).
    pub layout: i32,
}

struct AppImage {
    image: vk::Image,
    memory: vk::DeviceMemory,
    fence: Arc<AppFence>,
    /// The last release's sync_file (GPU-side synchronisation only).
    sync_file: Option<Arc<OwnedFd>>,
    /// An export failed, leaving the semaphore signalled for good: this image's releases
    /// go on with the fence alone (the compositor probes it on the CPU).
    semaphore_spent: bool,
    /// The fence was submitted and not yet waited for.
    pending: bool,
    /// The first acquire transitioned it into the app's layout.
    prepared: bool,
    cmd: vk::CommandBuffer,
}

/// A swapchain image's fence on the app's device. Shared with the compositor's
/// [`ReleaseProbe`]s, so that it outlives both the image and any probe.
struct AppFence {
    dev: Arc<AppDevice>,
    fence: vk::Fence,
    /// Signalled with the fence and exported as a sync_file at each release (null on the
    /// CPU path). The export leaves it unsignalled, ready for the next release.
    semaphore: vk::Semaphore,
}

impl AppFence {
    /// A fence for a swapchain image's releases, with a semaphore exportable as a
    /// sync_file where `semaphore` (the GPU-side path).
    fn new(dev: &Arc<AppDevice>, semaphore: bool) -> Result<Self, VkError> {
        let d = &dev.device;
        // SAFETY: new objects on the app's device; the fence is released if the
        // semaphore cannot be made.
        unsafe {
            let fence = d
                .create_fence(&vk::FenceCreateInfo::default(), None)
                .map_err(call("vkCreateFence"))?;
            let semaphore = if semaphore {
                let mut export = vk::ExportSemaphoreCreateInfo::default()
                    .handle_types(vk::ExternalSemaphoreHandleTypeFlags::SYNC_FD);
                match d.create_semaphore(
                    &vk::SemaphoreCreateInfo::default().push_next(&mut export),
                    None,
                ) {
                    Ok(s) => s,
                    Err(e) => {
                        d.destroy_fence(fence, None);
                        return Err(VkError::Call {
                            op: "vkCreateSemaphore (release sync_file)",
                            result: e,
                        });
                    }
                }
            } else {
                vk::Semaphore::null()
            };
            tracing::debug!(
                target: OBJECTS_LOG,
                fence = format_args!("{:#x}", fence.as_raw()),
                semaphore = format_args!("{:#x}", semaphore.as_raw()),
                "runtime objects on the app's device"
            );
            Ok(Self {
                dev: dev.clone(),
                fence,
                semaphore,
            })
        }
    }
}

impl Drop for AppFence {
    fn drop(&mut self) {
        if self.dev.leaked.load(std::sync::atomic::Ordering::Acquire) {
            // Work on the device did not complete: leave its objects to the driver.
            return;
        }
        // SAFETY: our fence and semaphore, idle: an image's current fence was waited for
        // before the image was destroyed, a retired one is let go only once signalled
        // (or waited for when its swapchain goes; a failed wait set `leaked`, above), the
        // semaphore's signal is part of the fence's submission, and probes only read the
        // fence's status (the sync_files they hold are payload copies, independent of
        // the semaphore).
        unsafe {
            self.dev.device.destroy_fence(self.fence, None);
            self.dev.device.destroy_semaphore(self.semaphore, None);
        }
    }
}

/// The app's rendering into a released swapchain image: whether the fence that
/// xrReleaseSwapchainImage put behind it has signalled. The compositor asks from its own
/// thread, never waits, and never needs the swapchain's lock.
#[derive(Clone)]
pub struct ReleaseProbe {
    fence: Arc<AppFence>,
    sync_file: Option<Arc<OwnedFd>>,
}

impl ReleaseProbe {
    /// `Ok(true)` once the app's work is done; `Err` if it never will be (device lost).
    pub fn done(&self) -> Result<bool, VkError> {
        // SAFETY: a live fence of a live device (both kept by the Arc); vkGetFenceStatus
        // needs no external synchronisation, and the fence is not reset while a probe
        // of it is asked (the image is not released again before its hold is dropped).
        unsafe { self.fence.dev.device.get_fence_status(self.fence.fence) }
            .map_err(call("vkGetFenceStatus"))
    }

    /// The release's sync_file, for the compositor's GPU to wait on (GPU-side
    /// synchronisation; `None` on the CPU path).
    pub fn sync_file(&self) -> Option<std::os::fd::BorrowedFd<'_>> {
        use std::os::fd::AsFd;
        self.sync_file.as_deref().map(|f| f.as_fd())
    }
}

impl std::fmt::Debug for ReleaseProbe {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReleaseProbe")
            .field("fence", &self.fence.fence)
            .field("sync_file", &self.sync_file.is_some())
            .finish()
    }
}

impl PartialEq for ReleaseProbe {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.fence, &other.fence)
    }
}

/// Swapchain images on the app's device.
pub struct AppSwapchain {
    dev: Arc<AppDevice>,
    images: Vec<AppImage>,
    desc: SwapchainDesc,
    layout: vk::ImageLayout,
    aspect: vk::ImageAspectFlags,
    color: Option<ColorFormat>,
    usage: vk::ImageUsageFlags,
    flags: vk::ImageCreateFlags,
    /// Fences of earlier releases whose work was still running when their image was
    /// released again (late GPU work): that release went behind a fresh fence, and these
    /// are destroyed once signalled, never while the work may run.
    retired: Vec<Arc<AppFence>>,
}

impl std::fmt::Debug for AppSwapchain {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppSwapchain")
            .field("desc", &self.desc)
            .field("images", &self.images.len())
            .finish()
    }
}

impl AppSwapchain {
    /// `count` images. Colour images come with their memory exported
    /// ([`SharedImage`]) for the compositor; depth images stay on the app's side.
    pub fn new(
        dev: Arc<AppDevice>,
        desc: SwapchainDesc,
        count: u32,
    ) -> Result<(Self, Vec<Option<SharedImage>>), VkError> {
        let format = vk::Format::from_raw(desc.format);
        let color = swapchain_formats()
            .into_iter()
            .find(|(f, _)| *f == desc.format)
            .ok_or_else(|| VkError::Unsupported(format!("swapchain format {format:?}")))?
            .1;
        let depth = is_depth(format);
        let (usage, mut flags) = vk_usage(desc.xr_usage, color.is_some());
        if desc.faces == 6 {
            // The app views it as a cube.
            flags |= vk::ImageCreateFlags::CUBE_COMPATIBLE;
        }
        let layout = if usage.contains(vk::ImageUsageFlags::COLOR_ATTACHMENT) {
            vk::ImageLayout::COLOR_ATTACHMENT_OPTIMAL
        } else if usage.contains(vk::ImageUsageFlags::DEPTH_STENCIL_ATTACHMENT) {
            vk::ImageLayout::DEPTH_STENCIL_ATTACHMENT_OPTIMAL
        } else if usage.contains(vk::ImageUsageFlags::STORAGE) {
            vk::ImageLayout::GENERAL
        } else {
            vk::ImageLayout::SHADER_READ_ONLY_OPTIMAL
        };
        let aspect = match format {
            vk::Format::D24_UNORM_S8_UINT => {
                vk::ImageAspectFlags::DEPTH | vk::ImageAspectFlags::STENCIL
            }
            _ if depth => vk::ImageAspectFlags::DEPTH,
            _ => vk::ImageAspectFlags::COLOR,
        };
        let mut sc = Self {
            dev,
            images: Vec::new(),
            desc,
            layout,
            aspect,
            color,
            usage,
            flags,
            retired: Vec::new(),
        };
        let mut shared = Vec::new();
        for _ in 0..count {
            let (img, s) = sc.create_image(format)?;
            sc.images.push(img);
            shared.push(s);
        }
        Ok((sc, shared))
    }

    fn create_image(&self, format: vk::Format) -> Result<(AppImage, Option<SharedImage>), VkError> {
        let d = &self.dev.device;
        let export = self.color.is_some();
        let mut ext = vk::ExternalMemoryImageCreateInfo::default()
            .handle_types(vk::ExternalMemoryHandleTypeFlags::OPAQUE_FD);
        let mut info = vk::ImageCreateInfo::default()
            .flags(self.flags)
            .image_type(vk::ImageType::TYPE_2D)
            .format(format)
            .extent(vk::Extent3D {
                width: self.desc.width,
                height: self.desc.height,
                depth: 1,
            })
            .mip_levels(self.desc.mip_levels)
            .array_layers(self.desc.array_layers * self.desc.faces)
            .samples(vk::SampleCountFlags::TYPE_1)
            .tiling(vk::ImageTiling::OPTIMAL)
            .usage(self.usage)
            .initial_layout(vk::ImageLayout::UNDEFINED);
        if export {
            info = info.push_next(&mut ext);
        }
        // SAFETY: creating and binding new objects on the app's device; everything made
        // here is released on each error path.
        unsafe {
            let image = d.create_image(&info, None).map_err(call("vkCreateImage"))?;
            let req = d.get_image_memory_requirements(image);
            let Some(ty) = self.dev.memory_type(req.memory_type_bits) else {
                d.destroy_image(image, None);
                return Err(VkError::Unsupported(
                    "no memory type for a swapchain image".into(),
                ));
            };
            let mut export_info = vk::ExportMemoryAllocateInfo::default()
                .handle_types(vk::ExternalMemoryHandleTypeFlags::OPAQUE_FD);
            let mut dedicated = vk::MemoryDedicatedAllocateInfo::default().image(image);
            let mut alloc = vk::MemoryAllocateInfo::default()
                .allocation_size(req.size)
                .memory_type_index(ty);
            if export {
                alloc = alloc.push_next(&mut export_info).push_next(&mut dedicated);
            }
            let memory = match d.allocate_memory(&alloc, None) {
                Ok(m) => m,
                Err(e) => {
                    d.destroy_image(image, None);
                    return Err(VkError::Call {
                        op: "vkAllocateMemory (swapchain image)",
                        result: e,
                    });
                }
            };
            let free = |e: VkError| {
                d.destroy_image(image, None);
                d.free_memory(memory, None);
                e
            };
            d.bind_image_memory(image, memory, 0)
                .map_err(call("vkBindImageMemory"))
                .map_err(free)?;
            let app_fence = AppFence::new(&self.dev, self.dev.gpu_wait).map_err(free)?;
            let pool = self.dev.pool.lock().unwrap_or_else(|p| p.into_inner());
            let allocated = d.allocate_command_buffers(
                &vk::CommandBufferAllocateInfo::default()
                    .command_pool(*pool)
                    .command_buffer_count(1),
            );
            drop(pool);
            let cmd = match allocated {
                Ok(c) => c[0],
                Err(e) => {
                    drop(app_fence);
                    return Err(free(VkError::Call {
                        op: "vkAllocateCommandBuffers",
                        result: e,
                    }));
                }
            };
            // Names what is the runtime's on the app's device, so that a validation
            // message there can be told apart from one about the app's own objects.
            tracing::debug!(
                target: OBJECTS_LOG,
                image = format_args!("{:#x}", image.as_raw()),
                memory = format_args!("{:#x}", memory.as_raw()),
                command_buffer = format_args!("{:#x}", cmd.as_raw()),
                "runtime objects on the app's device"
            );
            let img = AppImage {
                image,
                memory,
                fence: Arc::new(app_fence),
                sync_file: None,
                semaphore_spent: false,
                pending: false,
                prepared: false,
                cmd,
            };
            let shared = match (self.color, export) {
                (Some(c), true) => {
                    match self.dev.memory_fd.get_memory_fd(
                        &vk::MemoryGetFdInfoKHR::default()
                            .memory(memory)
                            .handle_type(vk::ExternalMemoryHandleTypeFlags::OPAQUE_FD),
                    ) {
                        Ok(fd) => Some(SharedImage {
                            memory: OwnedFd::from_raw_fd(fd),
                            allocation_size: req.size,
                            width: self.desc.width,
                            height: self.desc.height,
                            array_layers: self.desc.array_layers * self.desc.faces,
                            mip_levels: self.desc.mip_levels,
                            format: c,
                            usage: self.usage.as_raw(),
                            flags: self.flags.as_raw(),
                            layout: self.layout.as_raw(),
                        }),
                        Err(e) => {
                            self.destroy_image(&img);
                            return Err(VkError::Call {
                                op: "vkGetMemoryFdKHR",
                                result: e,
                            });
                        }
                    }
                }
                _ => None,
            };
            Ok((img, shared))
        }
    }

    /// Waits (up to the hang threshold) for the work behind `fences`, of this device and
    /// submitted, before what it uses is destroyed. `false` where it may still run (the
    /// device gone, now or before): the device's objects are then marked leaked, since
    /// destroying them under running work would be undefined behaviour.
    fn settle(&self, fences: &[vk::Fence], what: &'static str) -> bool {
        let waited = if let Some(why) = self.dev.gone() {
            // Waited for once already: nothing completes on a gone device.
            Err(VkError::Unsupported(why))
        } else {
            // SAFETY: both callers pass fences of this device's AppFences that were
            // submitted (an image's pending one, or retired ones).
            unsafe { super::wait_fences(&self.dev.device, fences, what, super::gpu_hang()) }
        };
        let Err(e) = waited else {
            return true;
        };
        self.dev.note(&e);
        tracing::error!(%e, what, "work did not complete: the objects it uses are leaked");
        self.dev
            .leaked
            .store(true, std::sync::atomic::Ordering::Release);
        false
    }

    fn destroy_image(&self, i: &AppImage) {
        let d = &self.dev.device;
        if i.pending && !self.settle(&[i.fence.fence], "a swapchain image's last use") {
            return;
        }
        let pool = self.dev.pool.lock().unwrap_or_else(|p| p.into_inner());
        // SAFETY: our objects, idle (the fence is waited on, or was never submitted); the
        // pool under its lock.
        unsafe {
            d.free_command_buffers(*pool, &[i.cmd]);
            d.destroy_image(i.image, None);
            d.free_memory(i.memory, None);
        }
    }

    /// The VkImage handles, in index order (xrEnumerateSwapchainImages).
    pub fn handles(&self) -> Vec<u64> {
        self.images.iter().map(|i| i.image.as_raw()).collect()
    }

    pub fn len(&self) -> usize {
        self.images.len()
    }

    pub fn is_empty(&self) -> bool {
        self.images.is_empty()
    }

    /// xrAcquireSwapchainImage: the first time an image is handed out, put it into the
    /// layout the app expects (on the app's queue, which the runtime may use here).
    pub fn acquired(&mut self, index: usize) -> Result<(), VkError> {
        self.acquire_inner(index).inspect_err(|e| self.dev.note(e))
    }

    fn acquire_inner(&mut self, index: usize) -> Result<(), VkError> {
        let layout = self.layout;
        let aspect = self.aspect;
        let (levels, layers) = (
            self.desc.mip_levels,
            self.desc.array_layers * self.desc.faces,
        );
        let dev = &self.dev;
        let img = self
            .images
            .get_mut(index)
            .ok_or_else(|| VkError::Unsupported(format!("no swapchain image {index}")))?;
        if img.prepared {
            return Ok(());
        }
        let d = &dev.device;
        if img.pending {
            // SAFETY: our fence, submitted.
            unsafe {
                super::wait_fences(
                    d,
                    &[img.fence.fence],
                    "a swapchain image's previous use",
                    super::gpu_hang(),
                )
            }?;
            img.pending = false;
        }
        // Recording (the pool) and submitting (the queue) under the pool's lock.
        let _pool = dev.pool.lock().unwrap_or_else(|p| p.into_inner());
        // SAFETY: the app's queue, used inside xrAcquireSwapchainImage as the OpenXR
        // specification allows, and our command buffer and fence, idle (waited for
        // above), both under the lock that serialises the runtime's use of them.
        unsafe {
            d.reset_fences(&[img.fence.fence])
                .map_err(call("vkResetFences"))?;
            d.begin_command_buffer(
                img.cmd,
                &vk::CommandBufferBeginInfo::default()
                    .flags(vk::CommandBufferUsageFlags::ONE_TIME_SUBMIT),
            )
            .map_err(call("vkBeginCommandBuffer"))?;
            let b = [vk::ImageMemoryBarrier::default()
                .src_access_mask(vk::AccessFlags::empty())
                .dst_access_mask(vk::AccessFlags::MEMORY_READ | vk::AccessFlags::MEMORY_WRITE)
                .old_layout(vk::ImageLayout::UNDEFINED)
                .new_layout(layout)
                .src_queue_family_index(vk::QUEUE_FAMILY_IGNORED)
                .dst_queue_family_index(vk::QUEUE_FAMILY_IGNORED)
                .image(img.image)
                .subresource_range(
                    vk::ImageSubresourceRange::default()
                        .aspect_mask(aspect)
                        .level_count(levels)
                        .layer_count(layers),
                )];
            d.cmd_pipeline_barrier(
                img.cmd,
                vk::PipelineStageFlags::TOP_OF_PIPE,
                vk::PipelineStageFlags::ALL_COMMANDS,
                vk::DependencyFlags::empty(),
                &[],
                &[],
                &b,
            );
            d.end_command_buffer(img.cmd)
                .map_err(call("vkEndCommandBuffer"))?;
            let cbs = [img.cmd];
            let submit = [vk::SubmitInfo::default().command_buffers(&cbs)];
            d.queue_submit(dev.queue, &submit, img.fence.fence)
                .map_err(call("vkQueueSubmit (swapchain image layout)"))?;
        }
        img.pending = true;
        img.prepared = true;
        Ok(())
    }

    /// xrReleaseSwapchainImage: the app has submitted its rendering; put a fence behind
    /// it on the app's queue (and, on the GPU path, a semaphore exported as a sync_file).
    /// Never waits for the app's GPU: where the image's previous release is still
    /// running (the app's frames take longer than the compositor's hold on them), this
    /// release goes behind a fresh fence and the old one is retired until it signals.
    pub fn released(&mut self, index: usize) -> Result<(), VkError> {
        self.release_inner(index).inspect_err(|e| self.dev.note(e))
    }

    fn release_inner(&mut self, index: usize) -> Result<(), VkError> {
        let Self {
            dev,
            images,
            retired,
            ..
        } = self;
        // Retired fences whose work is done go (their probes keep them while they ask).
        // SAFETY: live fences of a live device; a status query needs no synchronisation.
        retired.retain(|f| !matches!(unsafe { dev.device.get_fence_status(f.fence) }, Ok(true)));
        let img = images
            .get_mut(index)
            .ok_or_else(|| VkError::Unsupported(format!("no swapchain image {index}")))?;
        let d = &dev.device;
        if img.pending {
            // SAFETY: our fence, submitted; a status query needs no synchronisation.
            let done =
                unsafe { d.get_fence_status(img.fence.fence) }.map_err(call("vkGetFenceStatus"))?;
            if !done {
                let semaphore = dev.gpu_wait && !img.semaphore_spent;
                let fresh = Arc::new(AppFence::new(dev, semaphore)?);
                retired.push(std::mem::replace(&mut img.fence, fresh));
                tracing::debug!(
                    index,
                    retired = retired.len(),
                    "a swapchain image released again while its last release still runs on the GPU: a fresh fence"
                );
            }
        }
        let signals = img.fence.semaphore != vk::Semaphore::null() && !img.semaphore_spent;
        let _queue = dev.pool.lock().unwrap_or_else(|p| p.into_inner());
        // SAFETY: our fence (idle: never submitted, signalled, or fresh in place of a
        // running one, above) and semaphore (unsignalled: created so, or exported since
        // its last signal); the app's queue inside
        // xrReleaseSwapchainImage, as the specification allows, under the lock that
        // serialises the runtime's submissions to it.
        unsafe {
            d.reset_fences(&[img.fence.fence])
                .map_err(call("vkResetFences"))?;
            let sems = [img.fence.semaphore];
            let signal: &[vk::Semaphore] = if signals { &sems } else { &[] };
            let submit = [vk::SubmitInfo::default().signal_semaphores(signal)];
            d.queue_submit(dev.queue, &submit, img.fence.fence)
                .map_err(call("vkQueueSubmit (release fence)"))?;
        }
        img.pending = true;
        img.sync_file = None;
        if let (Some(ext), true) = (&dev.semaphore_fd, signals) {
            let info = vk::SemaphoreGetFdInfoKHR::default()
                .semaphore(img.fence.semaphore)
                .handle_type(vk::ExternalSemaphoreHandleTypeFlags::SYNC_FD);
            // SAFETY: the semaphore was created exportable as SYNC_FD and its signal is
            // submitted (above); the export leaves it unsignalled (copy transference).
            match unsafe { ext.get_semaphore_fd(&info) } {
                // Already signalled: nothing for the compositor to wait on.
                Ok(-1) => {}
                // SAFETY: a successful export returns a new fd that we now own.
                Ok(fd) => img.sync_file = Some(Arc::new(unsafe { OwnedFd::from_raw_fd(fd) })),
                Err(e) => {
                    // The fence still says when the work is done: the compositor probes
                    // it on the CPU. The semaphore stays signalled and cannot be
                    // signalled again: this image's releases go on without it.
                    img.semaphore_spent = true;
                    tracing::warn!(result = ?e, "release sync_file export failed; this image falls back to its fence");
                }
            }
        }
        Ok(())
    }

    /// The app's rendering into released image `index`, for the compositor to ask about
    /// (`None`: already known done).
    pub fn release_probe(&self, index: usize) -> Option<ReleaseProbe> {
        let img = self.images.get(index)?;
        img.pending.then(|| ReleaseProbe {
            fence: img.fence.clone(),
            sync_file: img.sync_file.clone(),
        })
    }
}

impl Drop for AppSwapchain {
    fn drop(&mut self) {
        for i in std::mem::take(&mut self.images) {
            self.destroy_image(&i);
        }
        let fences: Vec<vk::Fence> = self.retired.iter().map(|f| f.fence).collect();
        if !fences.is_empty() {
            // Retired fences are destroyed (with the last reference) only once idle.
            self.settle(&fences, "a swapchain's earlier releases");
        }
    }
}
