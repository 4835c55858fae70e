//! The compositor's Vulkan device: chosen by DRM node when the display's device is known
//! (else the best available, lavapipe when that is all), one graphics queue at the
//! highest global priority the system grants, timestamp queries, optional dma-buf and
//! sync_file interop, and a debug messenger that routes validation messages into
//! `tracing`.

use super::{GpuInfo, VkError, call, describe};
use ash::vk;
use std::ffi::CStr;

/// Which device to render on.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DevicePreference {
    /// (major, minor) of the display device's DRM node (primary or render): the device
    /// that scans out the headset.
    pub drm_node: Option<(i64, i64)>,
}

/// The queue priority the system granted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QueuePriority {
    Realtime,
    High,
    /// The driver has no global priority extension, or refused every raise.
    Default,
}

/// PCI vendor id of NVIDIA.
const NVIDIA: u32 = 0x10de;

struct DeviceParts {
    physical: vk::PhysicalDevice,
    device: ash::Device,
    queue: vk::Queue,
    queue_family: u32,
    gpu: GpuInfo,
    priority: QueuePriority,
    timestamp_period_ns: Option<f64>,
    memory: vk::PhysicalDeviceMemoryProperties,
    semaphore_fd: Option<ash::khr::external_semaphore_fd::Device>,
    dma_buf: Option<ash::khr::external_memory_fd::Device>,
    memory_fd: Option<ash::khr::external_memory_fd::Device>,
    external_queue_family: u32,
}

pub struct VkContext {
    _entry: ash::Entry,
    pub instance: ash::Instance,
    debug: Option<(ash::ext::debug_utils::Instance, vk::DebugUtilsMessengerEXT)>,
    pub physical: vk::PhysicalDevice,
    pub device: ash::Device,
    pub queue: vk::Queue,
    pub queue_family: u32,
    pub gpu: GpuInfo,
    pub priority: QueuePriority,
    /// Nanoseconds per timestamp tick; `None` if the queue has no timestamps.
    pub timestamp_period_ns: Option<f64>,
    memory: vk::PhysicalDeviceMemoryProperties,
    /// VK_KHR_external_semaphore_fd with SYNC_FD export.
    pub semaphore_fd: Option<ash::khr::external_semaphore_fd::Device>,
    /// dma-buf import with explicit DRM format modifiers.
    pub dma_buf: Option<ash::khr::external_memory_fd::Device>,
    /// VK_KHR_external_memory_fd (opaque fds): imports application swapchain images
    /// allocated on the same physical device by another VkDevice.
    pub memory_fd: Option<ash::khr::external_memory_fd::Device>,
    /// The queue family that stands for the display device in ownership transfers
    /// (FOREIGN with VK_EXT_queue_family_foreign, else EXTERNAL).
    pub external_queue_family: u32,
}

impl std::fmt::Debug for VkContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VkContext")
            .field("gpu", &self.gpu.name)
            .field("priority", &self.priority)
            .field("sync_fd", &self.semaphore_fd.is_some())
            .field("dma_buf", &self.dma_buf.is_some())
            .finish()
    }
}

fn score(g: &GpuInfo) -> u32 {
    match g.device_type {
        vk::PhysicalDeviceType::DISCRETE_GPU => 4,
        vk::PhysicalDeviceType::INTEGRATED_GPU => 3,
        vk::PhysicalDeviceType::VIRTUAL_GPU => 2,
        vk::PhysicalDeviceType::CPU => 1,
        _ => 0,
    }
}

impl VkContext {
    pub fn new(pref: DevicePreference) -> Result<Self, VkError> {
        // SAFETY: loading libvulkan runs its initialisers; the Entry keeps it loaded for
        // the context's lifetime (it is stored in the context).
        let entry = unsafe { ash::Entry::load()? };
        // SAFETY: global queries on a loaded entry.
        let (layers, exts) = unsafe {
            (
                entry
                    .enumerate_instance_layer_properties()
                    .unwrap_or_default(),
                entry
                    .enumerate_instance_extension_properties(None)
                    .unwrap_or_default(),
            )
        };
        let has_ext = |n: &CStr| exts.iter().any(|e| e.extension_name_as_c_str() == Ok(n));
        let layer_names = super::validation::layers(&layers)?;
        let debug_utils = has_ext(ash::ext::debug_utils::NAME);
        let mut ext_names = Vec::new();
        if debug_utils {
            ext_names.push(ash::ext::debug_utils::NAME.as_ptr());
        }
        let app = vk::ApplicationInfo::default()
            .application_name(c"leasehold-compositor")
            .engine_name(c"leasehold")
            .api_version(vk::API_VERSION_1_3);
        let info = vk::InstanceCreateInfo::default()
            .application_info(&app)
            .enabled_layer_names(&layer_names)
            .enabled_extension_names(&ext_names);
        // SAFETY: all pointers in `info` refer to locals that outlive the call.
        let instance =
            unsafe { entry.create_instance(&info, None) }.map_err(call("vkCreateInstance"))?;
        let debug = if debug_utils {
            let du = ash::ext::debug_utils::Instance::new(&entry, &instance);
            let info = super::validation::messenger_info();
            // SAFETY: the instance has VK_EXT_debug_utils enabled; the callback is a
            // 'static function that never unwinds.
            match unsafe { du.create_debug_utils_messenger(&info, None) } {
                Ok(m) => Some((du, m)),
                Err(e) => {
                    tracing::debug!(?e, "no debug messenger");
                    None
                }
            }
        } else {
            None
        };
        match Self::open_device(&instance, pref) {
            Ok(p) => Ok(Self {
                _entry: entry,
                instance,
                debug,
                physical: p.physical,
                device: p.device,
                queue: p.queue,
                queue_family: p.queue_family,
                gpu: p.gpu,
                priority: p.priority,
                timestamp_period_ns: p.timestamp_period_ns,
                memory: p.memory,
                semaphore_fd: p.semaphore_fd,
                dma_buf: p.dma_buf,
                memory_fd: p.memory_fd,
                external_queue_family: p.external_queue_family,
            }),
            Err(e) => {
                // SAFETY: nothing else was created from the instance; destroy in order.
                unsafe {
                    if let Some((du, m)) = debug {
                        du.destroy_debug_utils_messenger(m, None);
                    }
                    instance.destroy_instance(None);
                }
                Err(e)
            }
        }
    }

    fn open_device(
        instance: &ash::Instance,
        pref: DevicePreference,
    ) -> Result<DeviceParts, VkError> {
        let candidates = rank(instance, pref)?;
        let Some((matched, _, physical, queue_family, gpu, family)) = candidates.into_iter().next()
        else {
            return Err(VkError::NoDevice(
                "no Vulkan 1.3 device with a graphics queue".into(),
            ));
        };
        if pref.drm_node.is_some() && !matched {
            tracing::warn!(gpu = %gpu.name, "no Vulkan device matches the display's DRM node; rendering on this one into imported scanout buffers");
        }
        // SAFETY: `physical` is from this instance.
        let exts = unsafe { instance.enumerate_device_extension_properties(physical) }
            .map_err(call("vkEnumerateDeviceExtensionProperties"))?;
        let has = |n: &CStr| exts.iter().any(|e| e.extension_name_as_c_str() == Ok(n));
        let mut names = Vec::new();
        let semaphore_fd = has(ash::khr::external_semaphore_fd::NAME);
        if semaphore_fd {
            names.push(ash::khr::external_semaphore_fd::NAME.as_ptr());
        }
        let memory_fd = has(ash::khr::external_memory_fd::NAME);
        if memory_fd {
            names.push(ash::khr::external_memory_fd::NAME.as_ptr());
        }
        let dma_buf = memory_fd
            && has(ash::ext::external_memory_dma_buf::NAME)
            && has(ash::ext::image_drm_format_modifier::NAME);
        if dma_buf {
            names.extend([ash::ext::image_drm_format_modifier::NAME.as_ptr()]);
        }
        let foreign = has(ash::ext::queue_family_foreign::NAME);
        if dma_buf && foreign {
            names.push(ash::ext::queue_family_foreign::NAME.as_ptr());
        }
        let global_priority = if has(ash::khr::global_priority::NAME) {
            names.push(ash::khr::global_priority::NAME.as_ptr());
            true
        } else if has(ash::ext::global_priority::NAME) {
            names.push(ash::ext::global_priority::NAME.as_ptr());
            true
        } else {
            false
        };
        // SAFETY: plain query on a valid physical device.
        let features = unsafe { instance.get_physical_device_features(physical) };
        if features.dual_src_blend == vk::FALSE {
            return Err(VkError::Unsupported(format!(
                "{} lacks dual-source blending (dualSrcBlend), which the one-pass compositor \
                 blends each colour channel's layers with",
                gpu.name
            )));
        }
        let enabled = vk::PhysicalDeviceFeatures::default().dual_src_blend(true);
        // The highest priority to ask for: LEASEHOLD_VK_QUEUE_PRIORITY=realtime, high or
        // default; else realtime, except on NVIDIA's driver, where a realtime queue's
        // submission costs ~0.3 ms of CPU (measured on an H200, driver 580: 0.31 ms
        // against 0.006 ms at high) and its frames finish later, not sooner (0.32 ms
        // from submit to done against 0.16 ms).
        let cap = match std::env::var("LEASEHOLD_VK_QUEUE_PRIORITY").as_deref() {
            Ok("default") => QueuePriority::Default,
            Ok("high") => QueuePriority::High,
            Ok("realtime") => QueuePriority::Realtime,
            _ if gpu.vendor_id == NVIDIA => QueuePriority::High,
            _ => QueuePriority::Realtime,
        };
        let mut attempts = Vec::new();
        if global_priority {
            attempts.push((
                QueuePriority::Realtime,
                vk::QueueGlobalPriorityKHR::REALTIME,
            ));
            attempts.push((QueuePriority::High, vk::QueueGlobalPriorityKHR::HIGH));
        }
        attempts.push((QueuePriority::Default, vk::QueueGlobalPriorityKHR::MEDIUM));
        let rank = |p: QueuePriority| match p {
            QueuePriority::Default => 0,
            QueuePriority::High => 1,
            QueuePriority::Realtime => 2,
        };
        attempts.retain(|(p, _)| rank(*p) <= rank(cap));
        let mut created = None;
        let mut last_err = vk::Result::ERROR_INITIALIZATION_FAILED;
        for (prio, level) in attempts {
            let prios = [1.0f32];
            let mut gp =
                vk::DeviceQueueGlobalPriorityCreateInfoKHR::default().global_priority(level);
            let mut qi = vk::DeviceQueueCreateInfo::default()
                .queue_family_index(queue_family)
                .queue_priorities(&prios);
            if prio != QueuePriority::Default {
                qi = qi.push_next(&mut gp);
            }
            let qis = [qi];
            let mut f13 = vk::PhysicalDeviceVulkan13Features::default()
                .dynamic_rendering(true)
                .synchronization2(true);
            let info = vk::DeviceCreateInfo::default()
                .queue_create_infos(&qis)
                .enabled_extension_names(&names)
                .enabled_features(&enabled)
                .push_next(&mut f13);
            // SAFETY: every pointer in `info` refers to locals alive across the call;
            // the extensions were checked above and the features are core 1.3.
            match unsafe { instance.create_device(physical, &info, None) } {
                Ok(d) => {
                    created = Some((d, prio));
                    break;
                }
                Err(e) => {
                    tracing::debug!(?prio, ?e, "device creation at this queue priority refused");
                    last_err = e;
                }
            }
        }
        let Some((device, priority)) = created else {
            return Err(VkError::Call {
                op: "vkCreateDevice",
                result: last_err,
            });
        };
        tracing::info!(gpu = %gpu.name, ?priority, semaphore_sync_fd = semaphore_fd, dma_buf, opaque_memory_fd = memory_fd, "compositor device");
        // SAFETY: queue 0 of the family was created with the device.
        let queue = unsafe { device.get_device_queue(queue_family, 0) };
        // SAFETY: plain queries on a valid physical device.
        let (memory, props) = unsafe {
            (
                instance.get_physical_device_memory_properties(physical),
                instance.get_physical_device_properties(physical),
            )
        };
        let timestamp_period_ns =
            (family.timestamp_valid_bits > 0).then_some(props.limits.timestamp_period as f64);
        let semaphore_fd =
            semaphore_fd.then(|| ash::khr::external_semaphore_fd::Device::new(instance, &device));
        let dma_buf = dma_buf.then(|| ash::khr::external_memory_fd::Device::new(instance, &device));
        let memory_fd =
            memory_fd.then(|| ash::khr::external_memory_fd::Device::new(instance, &device));
        Ok(DeviceParts {
            external_queue_family: if foreign {
                vk::QUEUE_FAMILY_FOREIGN_EXT
            } else {
                vk::QUEUE_FAMILY_EXTERNAL
            },
            physical,
            device,
            queue,
            queue_family,
            gpu,
            priority,
            timestamp_period_ns,
            memory,
            semaphore_fd,
            dma_buf,
            memory_fd,
        })
    }

    /// A memory type allowed by `type_bits` with all of `flags`.
    pub fn memory_type(&self, type_bits: u32, flags: vk::MemoryPropertyFlags) -> Option<u32> {
        (0..self.memory.memory_type_count).find(|&i| {
            type_bits & (1 << i) != 0
                && self.memory.memory_types[i as usize]
                    .property_flags
                    .contains(flags)
        })
    }
}

type Candidate = (
    bool,
    u32,
    vk::PhysicalDevice,
    u32,
    GpuInfo,
    vk::QueueFamilyProperties,
);

/// The usable devices, best first: the display's device (by DRM node), then by type.
fn rank(instance: &ash::Instance, pref: DevicePreference) -> Result<Vec<Candidate>, VkError> {
    // SAFETY: the instance is valid.
    let pds = unsafe { instance.enumerate_physical_devices() }
        .map_err(call("vkEnumeratePhysicalDevices"))?;
    let mut candidates = Vec::new();
    for pd in pds {
        let g = describe(instance, pd)?;
        if g.api_version.0 == 1 && g.api_version.1 < 3 {
            tracing::info!(gpu = %g.name, "skipping a device without Vulkan 1.3");
            continue;
        }
        // SAFETY: `pd` is from this instance.
        let families = unsafe { instance.get_physical_device_queue_family_properties(pd) };
        let Some(qf) = families
            .iter()
            .position(|f| f.queue_flags.contains(vk::QueueFlags::GRAPHICS))
        else {
            continue;
        };
        let matches_node = pref
            .drm_node
            .is_some_and(|n| g.primary_node == Some(n) || g.render_node == Some(n));
        candidates.push((matches_node, score(&g), pd, qf as u32, g, families[qf]));
    }
    candidates.sort_by_key(|c| std::cmp::Reverse((c.0, c.1)));
    Ok(candidates)
}

/// The device a compositor made with `pref` renders on, without making one (what
/// XR_KHR_vulkan_enable hands the application).
pub fn preferred_gpu(pref: DevicePreference) -> Result<GpuInfo, VkError> {
    // SAFETY: loading libvulkan runs its initialisers; the Entry outlives its use here.
    let entry = unsafe { ash::Entry::load()? };
    let app = vk::ApplicationInfo::default()
        .application_name(c"leasehold-device-query")
        .api_version(vk::API_VERSION_1_3);
    // SAFETY: `app` outlives the call; no allocator callbacks.
    let instance = unsafe {
        entry.create_instance(
            &vk::InstanceCreateInfo::default().application_info(&app),
            None,
        )
    }
    .map_err(call("vkCreateInstance"))?;
    let r = rank(&instance, pref);
    // SAFETY: nothing made from the instance is kept.
    unsafe { instance.destroy_instance(None) };
    r?.into_iter()
        .next()
        .map(|c| c.4)
        .ok_or_else(|| VkError::NoDevice("no Vulkan 1.3 device with a graphics queue".into()))
}

impl Drop for VkContext {
    fn drop(&mut self) {
        // SAFETY: the context owns these objects; everything created from the device is
        // destroyed by its owners before the context (they hold it in an Arc).
        unsafe {
            let _ = self.device.device_wait_idle();
            self.device.destroy_device(None);
            if let Some((du, m)) = self.debug.take() {
                du.destroy_debug_utils_messenger(m, None);
            }
            self.instance.destroy_instance(None);
        }
    }
}
