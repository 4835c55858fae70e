//! A small Vulkan client for the OpenXR application Leasehold ships (`leasehold demo`):
//! its own VkInstance and VkDevice, made the XR_KHR_vulkan_enable way (the extensions
//! the runtime lists, the physical device it names), and scenes of flat-coloured
//! rectangles drawn into swapchain images by blits from a palette — no shaders, so it
//! runs on any driver, lavapipe included.

use super::{VkError, call};
use ash::vk;
use ash::vk::Handle as _;
use std::ffi::CString;

/// A rectangle in pixels, drawn in palette colour `color`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rect {
    pub x: i32,
    pub y: i32,
    pub width: i32,
    pub height: i32,
    pub color: u32,
}

struct Slot {
    cmd: vk::CommandBuffer,
    fence: vk::Fence,
    submitted: bool,
}

pub struct SceneDevice {
    _entry: ash::Entry,
    instance: ash::Instance,
    /// The validation messenger, when validation is on.
    debug: Option<(ash::ext::debug_utils::Instance, vk::DebugUtilsMessengerEXT)>,
    physical: vk::PhysicalDevice,
    device: ash::Device,
    queue: vk::Queue,
    queue_family: u32,
    pool: vk::CommandPool,
    slots: Vec<Slot>,
    next: usize,
    palette: vk::Image,
    palette_memory: vk::DeviceMemory,
    colors: u32,
}

impl std::fmt::Debug for SceneDevice {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SceneDevice")
            .field("colors", &self.colors)
            .finish()
    }
}

fn names(list: &str) -> Result<Vec<CString>, VkError> {
    list.split_whitespace()
        .map(|n| CString::new(n).map_err(|e| VkError::Unsupported(e.to_string())))
        .collect()
}

impl SceneDevice {
    /// A Vulkan instance with `instance_extensions` (space-separated), the physical
    /// device `physical_for(instance)` names, a device with `device_extensions` and one
    /// graphics queue, and a palette of sRGB `colors`.
    pub fn new(
        instance_extensions: &str,
        device_extensions: &str,
        physical_for: impl FnOnce(u64) -> Result<u64, String>,
        colors: &[[u8; 4]],
    ) -> Result<Self, VkError> {
        // SAFETY: loading the system's Vulkan loader; the Entry keeps it loaded.
        let entry = unsafe { ash::Entry::load()? };
        let iexts = names(instance_extensions)?;
        let mut iptrs: Vec<_> = iexts.iter().map(|n| n.as_ptr()).collect();
        // SAFETY: global query on a loaded entry.
        let installed = unsafe { entry.enumerate_instance_layer_properties() }.unwrap_or_default();
        let layers = super::validation::layers(&installed)?;
        let messenger = !layers.is_empty();
        if messenger
            && !iexts
                .iter()
                .any(|n| n.as_c_str() == ash::ext::debug_utils::NAME)
        {
            iptrs.push(ash::ext::debug_utils::NAME.as_ptr());
        }
        let app = vk::ApplicationInfo::default()
            .application_name(c"leasehold-demo")
            .api_version(vk::API_VERSION_1_1);
        // SAFETY: every pointer in the create info refers to locals alive across the call.
        let instance = unsafe {
            entry.create_instance(
                &vk::InstanceCreateInfo::default()
                    .application_info(&app)
                    .enabled_layer_names(&layers)
                    .enabled_extension_names(&iptrs),
                None,
            )
        }
        .map_err(call("vkCreateInstance"))?;
        let debug = messenger.then(|| {
            let du = ash::ext::debug_utils::Instance::new(&entry, &instance);
            // SAFETY: the instance has VK_EXT_debug_utils enabled (the validation layer
            // provides it); the callback is a 'static function that never unwinds.
            unsafe { du.create_debug_utils_messenger(&super::validation::messenger_info(), None) }
                .ok()
                .map(|m| (du, m))
        });
        let debug = debug.flatten();
        let made = (|| {
            let physical = vk::PhysicalDevice::from_raw(
                physical_for(instance.handle().as_raw()).map_err(VkError::NoDevice)?,
            );
            // SAFETY: a physical device of this instance (the runtime named it).
            let families =
                unsafe { instance.get_physical_device_queue_family_properties(physical) };
            let queue_family = families
                .iter()
                .position(|f| f.queue_flags.contains(vk::QueueFlags::GRAPHICS))
                .ok_or_else(|| VkError::NoDevice("no graphics queue".into()))?
                as u32;
            let dexts = names(device_extensions)?;
            let dptrs: Vec<_> = dexts.iter().map(|n| n.as_ptr()).collect();
            let prio = [1.0f32];
            let qi = [vk::DeviceQueueCreateInfo::default()
                .queue_family_index(queue_family)
                .queue_priorities(&prio)];
            // SAFETY: a device on this instance's physical device; the pointers in the
            // create info outlive the call.
            let device = unsafe {
                instance.create_device(
                    physical,
                    &vk::DeviceCreateInfo::default()
                        .queue_create_infos(&qi)
                        .enabled_extension_names(&dptrs),
                    None,
                )
            }
            .map_err(call("vkCreateDevice"))?;
            Ok((physical, queue_family, device))
        })();
        let (physical, queue_family, device) = match made {
            Ok(x) => x,
            Err(e) => {
                // SAFETY: nothing else was made from the instance but the messenger.
                unsafe {
                    if let Some((du, m)) = &debug {
                        du.destroy_debug_utils_messenger(*m, None);
                    }
                    instance.destroy_instance(None)
                };
                return Err(e);
            }
        };
        // SAFETY: queue 0 of the family exists; the pool is for that family.
        let (queue, pool) = unsafe {
            (
                device.get_device_queue(queue_family, 0),
                device.create_command_pool(
                    &vk::CommandPoolCreateInfo::default()
                        .queue_family_index(queue_family)
                        .flags(vk::CommandPoolCreateFlags::RESET_COMMAND_BUFFER),
                    None,
                ),
            )
        };
        let mut s = Self {
            _entry: entry,
            instance,
            debug,
            physical,
            device,
            queue,
            queue_family,
            pool: vk::CommandPool::null(),
            slots: Vec::new(),
            next: 0,
            palette: vk::Image::null(),
            palette_memory: vk::DeviceMemory::null(),
            colors: colors.len() as u32,
        };
        s.pool = pool.map_err(call("vkCreateCommandPool"))?;
        for _ in 0..4 {
            // SAFETY: allocation from our pool; a new unsignalled fence.
            let slot = unsafe {
                Slot {
                    cmd: s
                        .device
                        .allocate_command_buffers(
                            &vk::CommandBufferAllocateInfo::default()
                                .command_pool(s.pool)
                                .command_buffer_count(1),
                        )
                        .map_err(call("vkAllocateCommandBuffers"))?[0],
                    fence: s
                        .device
                        .create_fence(&vk::FenceCreateInfo::default(), None)
                        .map_err(call("vkCreateFence"))?,
                    submitted: false,
                }
            };
            s.slots.push(slot);
        }
        s.upload_palette(colors)?;
        Ok(s)
    }

    fn memory_type(&self, bits: u32, flags: vk::MemoryPropertyFlags) -> Option<u32> {
        // SAFETY: a plain query on our physical device.
        let m = unsafe {
            self.instance
                .get_physical_device_memory_properties(self.physical)
        };
        (0..m.memory_type_count).find(|&i| {
            bits & (1 << i) != 0 && m.memory_types[i as usize].property_flags.contains(flags)
        })
    }

    fn upload_palette(&mut self, colors: &[[u8; 4]]) -> Result<(), VkError> {
        let n = colors.len().max(1) as u32;
        let d = self.device.clone();
        // SAFETY: creation of our own image, buffer and memory; the staging buffer is
        // written while mapped and released after the copy completed (waited below).
        unsafe {
            self.palette = d
                .create_image(
                    &vk::ImageCreateInfo::default()
                        .image_type(vk::ImageType::TYPE_2D)
                        .format(vk::Format::R8G8B8A8_SRGB)
                        .extent(vk::Extent3D {
                            width: n,
                            height: 1,
                            depth: 1,
                        })
                        .mip_levels(1)
                        .array_layers(1)
                        .samples(vk::SampleCountFlags::TYPE_1)
                        .tiling(vk::ImageTiling::OPTIMAL)
                        .usage(
                            vk::ImageUsageFlags::TRANSFER_SRC | vk::ImageUsageFlags::TRANSFER_DST,
                        )
                        .initial_layout(vk::ImageLayout::UNDEFINED),
                    None,
                )
                .map_err(call("vkCreateImage"))?;
            let req = d.get_image_memory_requirements(self.palette);
            let ty = self
                .memory_type(req.memory_type_bits, vk::MemoryPropertyFlags::empty())
                .ok_or_else(|| VkError::Unsupported("no memory for the palette".into()))?;
            self.palette_memory = d
                .allocate_memory(
                    &vk::MemoryAllocateInfo::default()
                        .allocation_size(req.size)
                        .memory_type_index(ty),
                    None,
                )
                .map_err(call("vkAllocateMemory"))?;
            d.bind_image_memory(self.palette, self.palette_memory, 0)
                .map_err(call("vkBindImageMemory"))?;
            let bytes: Vec<u8> = colors.iter().flatten().copied().collect();
            let buf = d
                .create_buffer(
                    &vk::BufferCreateInfo::default()
                        .size(bytes.len().max(4) as u64)
                        .usage(vk::BufferUsageFlags::TRANSFER_SRC),
                    None,
                )
                .map_err(call("vkCreateBuffer"))?;
            let breq = d.get_buffer_memory_requirements(buf);
            let host =
                vk::MemoryPropertyFlags::HOST_VISIBLE | vk::MemoryPropertyFlags::HOST_COHERENT;
            let Some(bty) = self.memory_type(breq.memory_type_bits, host) else {
                d.destroy_buffer(buf, None);
                return Err(VkError::Unsupported("no host-visible memory".into()));
            };
            let bmem = d
                .allocate_memory(
                    &vk::MemoryAllocateInfo::default()
                        .allocation_size(breq.size)
                        .memory_type_index(bty),
                    None,
                )
                .map_err(call("vkAllocateMemory"))?;
            d.bind_buffer_memory(buf, bmem, 0)
                .map_err(call("vkBindBufferMemory"))?;
            let p = d
                .map_memory(bmem, 0, breq.size, vk::MemoryMapFlags::empty())
                .map_err(call("vkMapMemory"))?;
            std::ptr::copy_nonoverlapping(bytes.as_ptr(), p.cast::<u8>(), bytes.len());
            d.unmap_memory(bmem);
            let image = self.palette;
            let r = self.submit(|d, cb| {
                transition(
                    d,
                    cb,
                    image,
                    0,
                    vk::ImageLayout::UNDEFINED,
                    vk::ImageLayout::TRANSFER_DST_OPTIMAL,
                );
                d.cmd_copy_buffer_to_image(
                    cb,
                    buf,
                    image,
                    vk::ImageLayout::TRANSFER_DST_OPTIMAL,
                    &[vk::BufferImageCopy::default()
                        .image_subresource(
                            vk::ImageSubresourceLayers::default()
                                .aspect_mask(vk::ImageAspectFlags::COLOR)
                                .layer_count(1),
                        )
                        .image_extent(vk::Extent3D {
                            width: n,
                            height: 1,
                            depth: 1,
                        })],
                );
                transition(
                    d,
                    cb,
                    image,
                    0,
                    vk::ImageLayout::TRANSFER_DST_OPTIMAL,
                    vk::ImageLayout::TRANSFER_SRC_OPTIMAL,
                );
            });
            let w = match r {
                Ok(()) => self.wait_all(),
                Err(e) => Err(e),
            };
            d.destroy_buffer(buf, None);
            d.free_memory(bmem, None);
            w
        }
    }

    /// Records and submits one command buffer on the next slot (waiting for its
    /// previous use first).
    fn submit(&mut self, f: impl FnOnce(&ash::Device, vk::CommandBuffer)) -> Result<(), VkError> {
        let i = self.next;
        self.next = (self.next + 1) % self.slots.len();
        let slot = &mut self.slots[i];
        let d = &self.device;
        // SAFETY: the slot's command buffer and fence are ours and idle once waited.
        unsafe {
            if slot.submitted {
                super::wait_fences(
                    d,
                    &[slot.fence],
                    "the app's previous frame",
                    super::gpu_hang(),
                )?;
            }
            d.reset_fences(&[slot.fence])
                .map_err(call("vkResetFences"))?;
            d.begin_command_buffer(
                slot.cmd,
                &vk::CommandBufferBeginInfo::default()
                    .flags(vk::CommandBufferUsageFlags::ONE_TIME_SUBMIT),
            )
            .map_err(call("vkBeginCommandBuffer"))?;
            f(d, slot.cmd);
            d.end_command_buffer(slot.cmd)
                .map_err(call("vkEndCommandBuffer"))?;
            let cbs = [slot.cmd];
            d.queue_submit(
                self.queue,
                &[vk::SubmitInfo::default().command_buffers(&cbs)],
                slot.fence,
            )
            .map_err(call("vkQueueSubmit"))?;
        }
        slot.submitted = true;
        Ok(())
    }

    fn wait_all(&mut self) -> Result<(), VkError> {
        for s in &mut self.slots {
            if s.submitted {
                // SAFETY: our fence, submitted.
                unsafe {
                    super::wait_fences(
                        &self.device,
                        &[s.fence],
                        "the app's rendering",
                        super::gpu_hang(),
                    )
                }?;
                s.submitted = false;
            }
        }
        Ok(())
    }

    /// The handles for XrGraphicsBindingVulkanKHR: (instance, physical device, device,
    /// queue family, queue index).
    pub fn binding(&self) -> (u64, u64, u64, u32, u32) {
        (
            self.instance.handle().as_raw(),
            self.physical.as_raw(),
            self.device.handle().as_raw(),
            self.queue_family,
            0,
        )
    }

    /// Fills array layer `layer` of `image` (a swapchain image, in the colour-attachment
    /// layout OpenXR hands it out in, with transfer-destination usage) with palette colour
    /// `background`, then draws `rects` (clipped) over it, in order.
    pub fn draw(
        &mut self,
        image: u64,
        layer: u32,
        size: (u32, u32),
        background: u32,
        rects: &[Rect],
    ) -> Result<(), VkError> {
        let image = vk::Image::from_raw(image);
        let palette = self.palette;
        let colors = self.colors;
        let (w, h) = (size.0 as i32, size.1 as i32);
        let all = std::iter::once(Rect {
            x: 0,
            y: 0,
            width: w,
            height: h,
            color: background,
        });
        let blits: Vec<vk::ImageBlit> = all
            .chain(rects.iter().copied())
            .filter_map(|r| {
                let (x0, y0) = (r.x.clamp(0, w), r.y.clamp(0, h));
                let (x1, y1) = ((r.x + r.width).clamp(0, w), (r.y + r.height).clamp(0, h));
                (x1 > x0 && y1 > y0 && r.color < colors).then(|| {
                    let c = r.color as i32;
                    vk::ImageBlit {
                        src_subresource: layers(0),
                        src_offsets: [
                            vk::Offset3D { x: c, y: 0, z: 0 },
                            vk::Offset3D {
                                x: c + 1,
                                y: 1,
                                z: 1,
                            },
                        ],
                        dst_subresource: layers(layer),
                        dst_offsets: [
                            vk::Offset3D { x: x0, y: y0, z: 0 },
                            vk::Offset3D { x: x1, y: y1, z: 1 },
                        ],
                    }
                })
            })
            .collect();
        self.submit(|d, cb| {
            transition(
                d,
                cb,
                image,
                layer,
                vk::ImageLayout::COLOR_ATTACHMENT_OPTIMAL,
                vk::ImageLayout::TRANSFER_DST_OPTIMAL,
            );
            // SAFETY: recording into a command buffer in the recording state; both
            // images are live and in the layouts named.
            unsafe {
                d.cmd_blit_image(
                    cb,
                    palette,
                    vk::ImageLayout::TRANSFER_SRC_OPTIMAL,
                    image,
                    vk::ImageLayout::TRANSFER_DST_OPTIMAL,
                    &blits,
                    vk::Filter::NEAREST,
                )
            };
            transition(
                d,
                cb,
                image,
                layer,
                vk::ImageLayout::TRANSFER_DST_OPTIMAL,
                vk::ImageLayout::COLOR_ATTACHMENT_OPTIMAL,
            );
        })
    }
}

fn layers(layer: u32) -> vk::ImageSubresourceLayers {
    vk::ImageSubresourceLayers::default()
        .aspect_mask(vk::ImageAspectFlags::COLOR)
        .base_array_layer(layer)
        .layer_count(1)
}

fn transition(
    d: &ash::Device,
    cb: vk::CommandBuffer,
    image: vk::Image,
    layer: u32,
    from: vk::ImageLayout,
    to: vk::ImageLayout,
) {
    let b = [vk::ImageMemoryBarrier::default()
        .src_access_mask(vk::AccessFlags::MEMORY_WRITE)
        .dst_access_mask(vk::AccessFlags::MEMORY_READ | vk::AccessFlags::MEMORY_WRITE)
        .old_layout(from)
        .new_layout(to)
        .src_queue_family_index(vk::QUEUE_FAMILY_IGNORED)
        .dst_queue_family_index(vk::QUEUE_FAMILY_IGNORED)
        .image(image)
        .subresource_range(
            vk::ImageSubresourceRange::default()
                .aspect_mask(vk::ImageAspectFlags::COLOR)
                .base_array_layer(layer)
                .level_count(1)
                .layer_count(1),
        )];
    // SAFETY: recording into a command buffer in the recording state; the image is live.
    unsafe {
        d.cmd_pipeline_barrier(
            cb,
            vk::PipelineStageFlags::ALL_COMMANDS,
            vk::PipelineStageFlags::ALL_COMMANDS,
            vk::DependencyFlags::empty(),
            &[],
            &[],
            &b,
        )
    };
}

impl Drop for SceneDevice {
    fn drop(&mut self) {
        if let Err(e) = self.wait_all() {
            // Work may still run on the device: destroying anything it uses would be
            // undefined behaviour (a crash inside the driver). Left to the process's end.
            tracing::error!(%e, "the app's GPU work did not complete: its Vulkan device is leaked");
            return;
        }
        // SAFETY: everything below is ours and idle (waited above); the device goes
        // before the instance.
        unsafe {
            for s in &self.slots {
                self.device.destroy_fence(s.fence, None);
            }
            self.device.destroy_command_pool(self.pool, None);
            self.device.destroy_image(self.palette, None);
            self.device.free_memory(self.palette_memory, None);
            self.device.destroy_device(None);
            if let Some((du, m)) = &self.debug {
                du.destroy_debug_utils_messenger(*m, None);
            }
            self.instance.destroy_instance(None);
        }
    }
}
