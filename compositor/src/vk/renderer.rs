//! Executes a [`FramePlan`] on the GPU in one pass: layer images, the pass's pipelines
//! (one per layer kind: a compute path, one dispatch per layer, and a fragment path,
//! dynamic rendering and dual-source blending), the lens model's terms, timestamps, the
//! render fence (exported as a sync_file where the driver can), and read-back of targets.

use super::context::VkContext;
use super::{VkError, call};
use crate::render::mesh::{self, Mesh};
use crate::render::pattern::RgbaImage;
use crate::render::{ColorFormat, FramePlan, ImageDesc};
use ash::vk;
use leasehold_drivers::api::{DisplayInfo, LensModel};
use std::collections::HashMap;
use std::os::fd::{FromRawFd, OwnedFd};
use std::sync::Arc;

/// `shaders/panel.wgsl` built for each layer kind (`render::kind`'s numbers, then a
/// projection layer that uses its source alpha: see [`module_for`]).
const PANEL_SPV: [&[u8]; 7] = [
    include_bytes!(concat!(env!("OUT_DIR"), "/panel-0.spv")),
    include_bytes!(concat!(env!("OUT_DIR"), "/panel-1.spv")),
    include_bytes!(concat!(env!("OUT_DIR"), "/panel-2.spv")),
    include_bytes!(concat!(env!("OUT_DIR"), "/panel-3.spv")),
    include_bytes!(concat!(env!("OUT_DIR"), "/panel-4.spv")),
    include_bytes!(concat!(env!("OUT_DIR"), "/panel-5.spv")),
    include_bytes!(concat!(env!("OUT_DIR"), "/panel-6.spv")),
];

/// Which of `PANEL_SPV`'s builds draws `draw`: its kind's, but a projection layer that
/// blends by its source alpha has its own (the opaque one reads no alpha at all).
fn module_for(draw: &crate::render::LayerDraw) -> usize {
    let kind = (draw.push[7] as usize).min(5);
    let source_alpha = (draw.push[11] as u32) & crate::render::LayerFlags::SOURCE_ALPHA_BIT != 0;
    if kind == 0 && source_alpha { 6 } else { kind }
}

/// Push constants of `shaders/panel.wgsl`: the layer draw (28 floats) and the eye and,
/// for the compute path, the region and mode (4 words).
const PUSH_BYTES: u32 = 128;

/// Both paths' stages see the push constants and the layer's set (the vertex stage sets
/// up a projection layer's map once per draw).
const SHADER_STAGES: vk::ShaderStageFlags = vk::ShaderStageFlags::from_raw(
    vk::ShaderStageFlags::VERTEX.as_raw()
        | vk::ShaderStageFlags::FRAGMENT.as_raw()
        | vk::ShaderStageFlags::COMPUTE.as_raw(),
);

/// `shaders/panel.wgsl`'s `EyeLens`: each channel's centre (the first's z: 1 where there
/// is no lens model), then its coefficients, then (factor x, factor y, 1 / aspect, r²
/// cutoff); 7 vec4s.
const EYE_LENS_FLOATS: usize = 7 * 4;

/// The lens model's terms as the shader reads them, per eye (no lens: the identity,
/// every pixel valid).
fn lens_params(lens: &LensModel) -> [[f32; EYE_LENS_FLOATS]; 2] {
    let mut out = [[0f32; EYE_LENS_FLOATS]; 2];
    for (eye, o) in out.iter_mut().enumerate() {
        let (channels, factor, inv_aspect, cutoff) = match lens {
            LensModel::Polynomial(l) => {
                let l = &l[eye];
                let aspect = l.aspect_x_over_y;
                (
                    l.channels,
                    [0.5, 0.5 * aspect].map(|f| f / (1.0 + l.grow_for_undistort)),
                    1.0 / aspect,
                    l.undistort_r2_cutoff,
                )
            }
            LensModel::None => (
                [leasehold_drivers::api::ChannelDistortion::NONE; 3],
                [0.5, 0.5],
                1.0,
                f32::INFINITY,
            ),
        };
        for (c, ch) in channels.iter().enumerate() {
            o[4 * c..4 * c + 2].copy_from_slice(&ch.center.to_array());
            o[12 + 4 * c..16 + 4 * c].copy_from_slice(&ch.coeffs);
        }
        if *lens == LensModel::None {
            o[2] = 1.0;
        }
        o[24..28].copy_from_slice(&[factor[0], factor[1], inv_aspect, cutoff.min(f32::MAX)]);
    }
    out
}

/// The compute path's workgroup edge (`@workgroup_size(8, 8)`).
const GROUP: u32 = 8;

/// The view format through which the compute path writes a target (`TARGET_FORMAT`'s
/// bytes, encoded by the shader).
const STORAGE_FORMAT: vk::Format = vk::Format::R8G8B8A8_UNORM;

/// How the one pass runs. Both compose the same pixels by the same code; which is faster
/// depends on the GPU: chips built for compute have few raster units, and a software
/// rasteriser prefers triangles to many small dispatches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ComposePath {
    /// One compute dispatch per layer, written once per pixel through a storage view.
    Compute,
    /// A coarse grid drawn per layer, blended into the target (dual-source blending).
    Fragment,
}

impl std::fmt::Display for ComposePath {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            ComposePath::Compute => "compute",
            ComposePath::Fragment => "fragment",
        })
    }
}

impl ComposePath {
    /// `LEASEHOLD_COMPOSE=compute|fragment`; anything else (or unset) is `None`: the
    /// renderer chooses.
    pub fn from_env() -> Option<Self> {
        match std::env::var("LEASEHOLD_COMPOSE").ok()?.as_str() {
            "compute" => Some(ComposePath::Compute),
            "fragment" => Some(ComposePath::Fragment),
            _ => None,
        }
    }
}

/// Timestamps per frame: start, app images acquired, pass done, panel released.
const QUERIES: u32 = 4;

/// Panel pixels per cell of the lens mesh the CPU bounds layers with (`Mesh::panel_rect`):
/// fine enough that interpolating the lens model between vertices stays far below a
/// pixel.
pub const MESH_CELL_PX: u32 = 8;

/// Cells per eye, across and down, of the grid the fragment path draws: it only leaves
/// out the panel beyond the valid radius (the lens is evaluated per pixel), and a
/// software rasteriser spends more on triangle setup than on the few pixels it saves.
const GRID_CELLS: u32 = 16;

fn mesh_cells(px: u32) -> u32 {
    px.div_ceil(MESH_CELL_PX).clamp(8, 96)
}

pub fn vk_format(f: ColorFormat) -> vk::Format {
    match f {
        ColorFormat::Rgba8Srgb => vk::Format::R8G8B8A8_SRGB,
        ColorFormat::Bgra8Srgb => vk::Format::B8G8R8A8_SRGB,
        ColorFormat::Rgba8Unorm => vk::Format::R8G8B8A8_UNORM,
        ColorFormat::Bgra8Unorm => vk::Format::B8G8R8A8_UNORM,
        ColorFormat::Rgba16Float => vk::Format::R16G16B16A16_SFLOAT,
    }
}

/// The format of targets the compositor allocates itself.
/// Scanout buffers are XRGB8888 = B8G8R8A8 in memory, sRGB-encoded.
pub const TARGET_FORMAT: vk::Format = vk::Format::B8G8R8A8_SRGB;

/// What own targets are used for: rendered (fragment path), read back, cleared (compute
/// path, where an eye has no layer).
const TARGET_USAGE: vk::ImageUsageFlags = vk::ImageUsageFlags::from_raw(
    vk::ImageUsageFlags::COLOR_ATTACHMENT.as_raw()
        | vk::ImageUsageFlags::TRANSFER_SRC.as_raw()
        | vk::ImageUsageFlags::TRANSFER_DST.as_raw(),
);

struct Buffer {
    buffer: vk::Buffer,
    memory: vk::DeviceMemory,
    mapped: *mut u8,
}

struct Image {
    image: vk::Image,
    memory: vk::DeviceMemory,
    view: vk::ImageView,
}

/// A target's compute-path resources: its storage view and the descriptor set that binds
/// it with the running colour.
struct ComputeTarget {
    view: vk::ImageView,
    set: vk::DescriptorSet,
}

struct LayerImage {
    img: Image,
    set: vk::DescriptorSet,
    desc: ImageDesc,
    /// Imported from an application's device: (the layout the app leaves it in, array
    /// layers). Each frame takes it from the external queue family and gives it back.
    external: Option<(vk::ImageLayout, u32)>,
}

/// A render target: an image the distortion pass writes, the size of the panel.
pub struct TargetImage {
    img: Image,
    /// Present where the compute path writes this target.
    compute: Option<ComputeTarget>,
    /// Holds a finished frame without layers (all black): another such frame is not
    /// composed again.
    blank: std::cell::Cell<bool>,
    pub width: u32,
    pub height: u32,
    pub format: vk::Format,
    /// Imported from a dma-buf another device (the display) reads: ownership goes to
    /// the foreign queue family after each frame.
    pub external: bool,
}

impl std::fmt::Debug for TargetImage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "TargetImage({}x{} {:?})",
            self.width, self.height, self.format
        )
    }
}

/// How the finished frame's completion reaches the display.
#[derive(Debug)]
pub enum RenderFence {
    /// A sync_file exported from the render's semaphore (give it to KMS as IN_FENCE_FD).
    SyncFile(OwnedFd),
    /// The driver exported "already signalled" (-1): the render is complete.
    Signalled,
    /// No sync_file export on this driver: wait for the render on the CPU
    /// ([`GpuRenderer::wait`]) before committing.
    CpuWait,
}

/// What one frame cost.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct FrameTiming {
    /// CPU time to record and submit the frame.
    pub cpu_submit_ns: u64,
    /// The part of it spent in the driver's vkQueueSubmit2.
    pub cpu_queue_submit_ns: u64,
    /// GPU time per stage and for the whole frame (timestamp queries).
    pub gpu: Option<GpuStages>,
    pub gpu_total_ns: Option<u64>,
}

/// Where a frame's GPU time goes.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct GpuStages {
    /// Taking the app's images over from its queue family (layout and ownership).
    pub acquire_ns: u64,
    /// The one pass: every layer, timewarp, distortion and chromatic aberration.
    pub compose_ns: u64,
    /// Handing the panel image to the display (or the read-back).
    pub release_ns: u64,
}

pub struct GpuRenderer {
    ctx: Arc<VkContext>,
    /// One sampled image and one sampler per layer image.
    set_layout: vk::DescriptorSetLayout,
    layout: vk::PipelineLayout,
    /// The one-pass pipelines, per target format and layer kind.
    pipelines: HashMap<(vk::Format, usize), vk::Pipeline>,
    /// The path own targets are composed by (imported scanout buffers: fragment).
    path: ComposePath,
    /// The compute path: the target/running-colour set's layout, the pipeline
    /// layout (layer set, then that), one pipeline per layer kind, and the running
    /// colour (8 bytes per pixel of a panel-sized target).
    compute_set_layout: vk::DescriptorSetLayout,
    compute_layout: vk::PipelineLayout,
    compute_pipelines: Vec<vk::Pipeline>,
    accum: Buffer,
    accum_bytes: u64,
    /// The last `render` found nothing to do (no submission, no timestamps).
    skipped: bool,
    sampler: vk::Sampler,
    pool: vk::DescriptorPool,
    /// The lens mesh: where each layer can show on the panel (CPU only).
    mesh: Mesh,
    /// The grid the fragment path draws (cells beyond the valid radius left out), in
    /// `vertices` and `indices`: each eye's index range (first, count).
    grid_indices: [(u32, u32); 2],
    vertices: Buffer,
    indices: Buffer,
    /// The lens model's terms (`EyeLens`), bound in every layer's set: the left eye's at
    /// 0, the right eye's at `lens_stride` (the binding's dynamic offset).
    lens: Buffer,
    lens_stride: u32,
    layers: HashMap<u64, LayerImage>,
    next_id: u64,
    cmd_pool: vk::CommandPool,
    cmd: vk::CommandBuffer,
    fence: vk::Fence,
    in_flight: bool,
    queries: Option<vk::QueryPool>,
    sync_fd_export: bool,
    /// Frames come with a sync_file even for targets that wait on the CPU (hardware
    /// GPUs: see `render`).
    poll_completion: bool,
    /// The semaphore each frame signals and exports as a sync_file (created once: an
    /// export leaves it unsignalled, ready for the next frame).
    sync_semaphore: Option<vk::Semaphore>,
    /// One whose export failed (still signalled): destroyed once its frame is done.
    stale_semaphore: Option<vk::Semaphore>,
    /// The device takes sync_files in as semaphore payloads (SYNC_FD importable): the
    /// app's rendering can be waited for on the GPU ([`Self::render_after`]).
    sync_fd_import: bool,
    /// Semaphores a frame waits on, each given a sync_file as a temporary payload (which
    /// the wait consumes, leaving it reusable once the frame is done).
    wait_semaphores: Vec<vk::Semaphore>,
    gpu_timeout: std::time::Duration,
}

impl std::fmt::Debug for GpuRenderer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GpuRenderer")
            .field("gpu", &self.ctx.gpu.name)
            .field("layers", &self.layers.len())
            .finish()
    }
}

fn shader(d: &ash::Device, spv: &[u8]) -> Result<vk::ShaderModule, VkError> {
    let words: Vec<u32> = spv
        .chunks_exact(4)
        .map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect();
    let info = vk::ShaderModuleCreateInfo::default().code(&words);
    // SAFETY: `words` is SPIR-V produced and validated by naga at build time.
    unsafe { d.create_shader_module(&info, None) }.map_err(call("vkCreateShaderModule"))
}

impl GpuRenderer {
    /// A renderer for `display` through `lens`, on the path `LEASEHOLD_COMPOSE` names,
    /// else the one this GPU runs faster ([`GpuRenderer::with_path`]).
    pub fn new(
        ctx: Arc<VkContext>,
        lens: &LensModel,
        display: &DisplayInfo,
    ) -> Result<Self, VkError> {
        Self::with_path(ctx, lens, display, ComposePath::from_env())
    }

    /// A renderer on `path`, or (`None`) the faster one for this GPU: compute on
    /// hardware GPUs, fragment on a software rasteriser (measured: `leasehold bench
    /// compositor`). Where the device cannot write the target format through a storage
    /// view, the fragment path, logged.
    pub fn with_path(
        ctx: Arc<VkContext>,
        lens: &LensModel,
        display: &DisplayInfo,
        path: Option<ComposePath>,
    ) -> Result<Self, VkError> {
        let d = &ctx.device;
        // A software rasteriser: fragment path, and fence waits (no driver spin to avoid).
        let software = ctx.gpu.device_type == vk::PhysicalDeviceType::CPU;
        let b = bindings(
            &[
                vk::DescriptorType::SAMPLED_IMAGE,
                vk::DescriptorType::SAMPLER,
                vk::DescriptorType::UNIFORM_BUFFER_DYNAMIC,
            ],
            SHADER_STAGES,
        );
        let set_info = vk::DescriptorSetLayoutCreateInfo::default().bindings(&b);
        // SAFETY: plain object creation on a valid device with create-infos whose
        // pointers refer to live locals (so for the blocks below in `new`, "as above");
        // every object is destroyed in `Drop` before the context goes.
        let set_layout = unsafe { d.create_descriptor_set_layout(&set_info, None) }
            .map_err(call("vkCreateDescriptorSetLayout"))?;
        let push = [vk::PushConstantRange::default()
            .stage_flags(SHADER_STAGES)
            .size(PUSH_BYTES)];
        let sl = [set_layout];
        // SAFETY: as above.
        let layout = unsafe {
            d.create_pipeline_layout(
                &vk::PipelineLayoutCreateInfo::default()
                    .set_layouts(&sl)
                    .push_constant_ranges(&push),
                None,
            )
        }
        .map_err(call("vkCreatePipelineLayout"))?;
        let sampler_info = vk::SamplerCreateInfo::default()
            .mag_filter(vk::Filter::LINEAR)
            .min_filter(vk::Filter::LINEAR)
            .mipmap_mode(vk::SamplerMipmapMode::NEAREST)
            .address_mode_u(vk::SamplerAddressMode::CLAMP_TO_EDGE)
            .address_mode_v(vk::SamplerAddressMode::CLAMP_TO_EDGE)
            .address_mode_w(vk::SamplerAddressMode::CLAMP_TO_EDGE)
            .max_lod(0.0);
        // SAFETY: as above.
        let sampler =
            unsafe { d.create_sampler(&sampler_info, None) }.map_err(call("vkCreateSampler"))?;
        let sizes = [
            vk::DescriptorPoolSize::default()
                .ty(vk::DescriptorType::SAMPLED_IMAGE)
                .descriptor_count(1024),
            vk::DescriptorPoolSize::default()
                .ty(vk::DescriptorType::SAMPLER)
                .descriptor_count(1024),
            vk::DescriptorPoolSize::default()
                .ty(vk::DescriptorType::STORAGE_IMAGE)
                .descriptor_count(64),
            vk::DescriptorPoolSize::default()
                .ty(vk::DescriptorType::STORAGE_BUFFER)
                .descriptor_count(64),
            vk::DescriptorPoolSize::default()
                .ty(vk::DescriptorType::UNIFORM_BUFFER_DYNAMIC)
                .descriptor_count(1024),
        ];
        // SAFETY: as above.
        let pool = unsafe {
            d.create_descriptor_pool(
                &vk::DescriptorPoolCreateInfo::default()
                    .flags(vk::DescriptorPoolCreateFlags::FREE_DESCRIPTOR_SET)
                    .max_sets(1024)
                    .pool_sizes(&sizes),
                None,
            )
        }
        .map_err(call("vkCreateDescriptorPool"))?;
        // SAFETY: as above.
        let cmd_pool = unsafe {
            d.create_command_pool(
                &vk::CommandPoolCreateInfo::default()
                    .queue_family_index(ctx.queue_family)
                    .flags(vk::CommandPoolCreateFlags::RESET_COMMAND_BUFFER),
                None,
            )
        }
        .map_err(call("vkCreateCommandPool"))?;
        // SAFETY: as above.
        let cmd = unsafe {
            d.allocate_command_buffers(
                &vk::CommandBufferAllocateInfo::default()
                    .command_pool(cmd_pool)
                    .command_buffer_count(1),
            )
        }
        .map_err(call("vkAllocateCommandBuffers"))?[0];
        // SAFETY: as above.
        let fence = unsafe { d.create_fence(&vk::FenceCreateInfo::default(), None) }
            .map_err(call("vkCreateFence"))?;
        let queries = match ctx.timestamp_period_ns {
            // SAFETY: as above.
            Some(_) => unsafe {
                d.create_query_pool(
                    &vk::QueryPoolCreateInfo::default()
                        .query_type(vk::QueryType::TIMESTAMP)
                        .query_count(QUERIES),
                    None,
                )
            }
            .ok(),
            None => None,
        };
        let sync_fd_features = {
            let info = vk::PhysicalDeviceExternalSemaphoreInfo::default()
                .handle_type(vk::ExternalSemaphoreHandleTypeFlags::SYNC_FD);
            let mut props = vk::ExternalSemaphoreProperties::default();
            // SAFETY: core 1.1 query on a valid physical device.
            unsafe {
                ctx.instance
                    .get_physical_device_external_semaphore_properties(
                        ctx.physical,
                        &info,
                        &mut props,
                    )
            };
            props.external_semaphore_features
        };
        let sync_fd_export = ctx.semaphore_fd.is_some()
            && sync_fd_features.contains(vk::ExternalSemaphoreFeatureFlags::EXPORTABLE);
        let sync_fd_import = ctx.semaphore_fd.is_some()
            && sync_fd_features.contains(vk::ExternalSemaphoreFeatureFlags::IMPORTABLE);
        tracing::info!(
            path = if sync_fd_export {
                "sync_file from the render semaphore"
            } else {
                "CPU wait"
            },
            "render fence path"
        );
        let mesh = mesh::build(
            lens,
            mesh_cells(display.panel_width / 2),
            mesh_cells(display.panel_height),
        );
        let grid = mesh::build(lens, GRID_CELLS, GRID_CELLS);
        let mut r = Self {
            ctx: ctx.clone(),
            set_layout,
            layout,
            pipelines: HashMap::new(),
            path: ComposePath::Fragment,
            compute_set_layout: vk::DescriptorSetLayout::null(),
            compute_layout: vk::PipelineLayout::null(),
            compute_pipelines: Vec::new(),
            accum: Self::null_buffer(),
            accum_bytes: 0,
            skipped: false,
            sampler,
            pool,
            mesh,
            grid_indices: grid.eye_indices,
            vertices: Self::null_buffer(),
            indices: Self::null_buffer(),
            lens: Self::null_buffer(),
            lens_stride: 0,
            layers: HashMap::new(),
            next_id: 1,
            cmd_pool,
            cmd,
            fence,
            in_flight: false,
            queries,
            sync_fd_export,
            poll_completion: !software,
            sync_semaphore: None,
            stale_semaphore: None,
            sync_fd_import,
            wait_semaphores: Vec::new(),
            gpu_timeout: super::gpu_hang(),
        };
        r.add_pipelines(TARGET_FORMAT)?;
        let vbytes: Vec<u8> = grid
            .vertices
            .iter()
            .flat_map(|v| v.pos)
            .flat_map(f32::to_le_bytes)
            .collect();
        let ibytes: Vec<u8> = grid.indices.iter().flat_map(|i| i.to_le_bytes()).collect();
        // Each eye's terms where a dynamic offset may point.
        // SAFETY: a core query on a valid physical device.
        let align = unsafe { ctx.instance.get_physical_device_properties(ctx.physical) }
            .limits
            .min_uniform_buffer_offset_alignment
            .max(1);
        r.lens_stride = ((EYE_LENS_FLOATS as u64 * 4).div_ceil(align) * align) as u32;
        let mut lbytes = vec![0u8; 2 * r.lens_stride as usize];
        for (eye, terms) in lens_params(lens).iter().enumerate() {
            let at = eye * r.lens_stride as usize;
            for (k, f) in terms.iter().enumerate() {
                lbytes[at + 4 * k..at + 4 * k + 4].copy_from_slice(&f.to_le_bytes());
            }
        }
        r.vertices = r.host_buffer_with(&vbytes, vk::BufferUsageFlags::VERTEX_BUFFER)?;
        r.indices = r.host_buffer_with(&ibytes, vk::BufferUsageFlags::INDEX_BUFFER)?;
        r.lens = r.host_buffer_with(&lbytes, vk::BufferUsageFlags::UNIFORM_BUFFER)?;
        let wanted = path.unwrap_or(if software {
            ComposePath::Fragment
        } else {
            ComposePath::Compute
        });
        if wanted == ComposePath::Compute {
            match r.storage_target_support() {
                Ok(()) => {
                    r.add_compute(
                        (display.panel_width as u64) * (display.panel_height as u64) * 8,
                    )?;
                    r.path = ComposePath::Compute;
                }
                Err(why) => {
                    tracing::warn!(%why, "the compute path cannot write the panel here; fragment path")
                }
            }
        }
        tracing::info!(path = %r.path, gpu = %ctx.gpu.name, "compositor pass");
        Ok(r)
    }

    /// The path own targets are composed by.
    pub fn path(&self) -> ComposePath {
        self.path
    }

    /// Whether targets of `TARGET_FORMAT` can be written through a storage view of
    /// `STORAGE_FORMAT` (mutable format, extended usage).
    fn storage_target_support(&self) -> Result<(), String> {
        let (inst, pd) = (&self.ctx.instance, self.ctx.physical);
        // SAFETY: core queries on a valid physical device.
        let props = unsafe { inst.get_physical_device_format_properties(pd, STORAGE_FORMAT) };
        if !props
            .optimal_tiling_features
            .contains(vk::FormatFeatureFlags::STORAGE_IMAGE)
        {
            return Err(format!("{STORAGE_FORMAT:?} has no storage-image support"));
        }
        // SAFETY: as above.
        unsafe {
            inst.get_physical_device_image_format_properties(
                pd,
                TARGET_FORMAT,
                vk::ImageType::TYPE_2D,
                vk::ImageTiling::OPTIMAL,
                TARGET_USAGE | vk::ImageUsageFlags::STORAGE,
                vk::ImageCreateFlags::MUTABLE_FORMAT | vk::ImageCreateFlags::EXTENDED_USAGE,
            )
        }
        .map(|_| ())
        .map_err(|e| format!("{TARGET_FORMAT:?} with a storage view: {e}"))
    }

    /// The compute path's layouts, pipelines and running colour (`accum_bytes`).
    fn add_compute(&mut self, accum_bytes: u64) -> Result<(), VkError> {
        let d = self.ctx.device.clone();
        let b = bindings(
            &[
                vk::DescriptorType::STORAGE_IMAGE,
                vk::DescriptorType::STORAGE_BUFFER,
            ],
            vk::ShaderStageFlags::COMPUTE,
        );
        // SAFETY: object creation on a valid device from live create-infos; each object
        // is stored in `self` as soon as it exists, so `Drop` destroys it on any failure
        // below.
        unsafe {
            self.compute_set_layout = d
                .create_descriptor_set_layout(
                    &vk::DescriptorSetLayoutCreateInfo::default().bindings(&b),
                    None,
                )
                .map_err(call("vkCreateDescriptorSetLayout"))?;
            let sl = [self.set_layout, self.compute_set_layout];
            let push = [vk::PushConstantRange::default()
                .stage_flags(SHADER_STAGES)
                .size(PUSH_BYTES)];
            self.compute_layout = d
                .create_pipeline_layout(
                    &vk::PipelineLayoutCreateInfo::default()
                        .set_layouts(&sl)
                        .push_constant_ranges(&push),
                    None,
                )
                .map_err(call("vkCreatePipelineLayout"))?;
            for spv in PANEL_SPV {
                let module = shader(&d, spv)?;
                let info = vk::ComputePipelineCreateInfo::default()
                    .stage(
                        vk::PipelineShaderStageCreateInfo::default()
                            .stage(vk::ShaderStageFlags::COMPUTE)
                            .module(module)
                            .name(c"cs_main"),
                    )
                    .layout(self.compute_layout);
                let p = d.create_compute_pipelines(vk::PipelineCache::null(), &[info], None);
                d.destroy_shader_module(module, None);
                let p = p.map_err(|(_, e)| VkError::Call {
                    op: "vkCreateComputePipelines",
                    result: e,
                })?;
                self.compute_pipelines.push(p[0]);
            }
        }
        self.accum = self.buffer(
            accum_bytes,
            vk::BufferUsageFlags::STORAGE_BUFFER,
            vk::MemoryPropertyFlags::DEVICE_LOCAL,
        )?;
        self.accum_bytes = accum_bytes;
        Ok(())
    }

    /// The compute path's view and set for a new own target, where it fits the running
    /// colour; `None` otherwise (the fragment path composes it).
    fn compute_target(
        &self,
        img: &Image,
        width: u32,
        height: u32,
    ) -> Result<Option<ComputeTarget>, VkError> {
        if self.path != ComposePath::Compute
            || (width as u64) * (height as u64) * 8 > self.accum_bytes
            || !width.is_multiple_of(2)
        {
            return Ok(None);
        }
        let d = &self.ctx.device;
        // SAFETY: a view of a live image created with MUTABLE_FORMAT and EXTENDED_USAGE
        // (STORAGE_FORMAT is in its compatibility class), and a set from our pool written
        // with live handles; the view is destroyed if the set cannot be made.
        unsafe {
            let view = d
                .create_image_view(
                    &vk::ImageViewCreateInfo::default()
                        .image(img.image)
                        .view_type(vk::ImageViewType::TYPE_2D)
                        .format(STORAGE_FORMAT)
                        .subresource_range(color_range(1))
                        .push_next(
                            &mut vk::ImageViewUsageCreateInfo::default()
                                .usage(vk::ImageUsageFlags::STORAGE),
                        ),
                    None,
                )
                .map_err(call("vkCreateImageView (storage)"))?;
            let set = match self.allocate_set(self.compute_set_layout) {
                Ok(s) => s,
                Err(e) => {
                    d.destroy_image_view(view, None);
                    return Err(e);
                }
            };
            let img_info = [vk::DescriptorImageInfo::default()
                .image_view(view)
                .image_layout(vk::ImageLayout::GENERAL)];
            let accum = [vk::DescriptorBufferInfo::default()
                .buffer(self.accum.buffer)
                .range(vk::WHOLE_SIZE)];
            let writes = [
                vk::WriteDescriptorSet::default()
                    .dst_set(set)
                    .dst_binding(0)
                    .descriptor_type(vk::DescriptorType::STORAGE_IMAGE)
                    .image_info(&img_info),
                vk::WriteDescriptorSet::default()
                    .dst_set(set)
                    .dst_binding(1)
                    .descriptor_type(vk::DescriptorType::STORAGE_BUFFER)
                    .buffer_info(&accum),
            ];
            d.update_descriptor_sets(&writes, &[]);
            Ok(Some(ComputeTarget { view, set }))
        }
    }

    pub fn context(&self) -> &Arc<VkContext> {
        &self.ctx
    }

    /// Whether frames come with a sync_file ([`RenderFence::SyncFile`]).
    pub fn exports_sync_file(&self) -> bool {
        self.sync_fd_export
    }

    /// Whether a frame can wait on the GPU for sync_files ([`Self::render_after`]).
    pub fn imports_sync_file(&self) -> bool {
        self.sync_fd_import
    }

    /// One semaphore per sync_file, each holding a duplicate of it as its temporary
    /// payload. Called with the previous frame done (its waits consumed), so every
    /// semaphore here is unsignalled with nothing pending.
    fn import_waits(
        &mut self,
        waits: &[std::os::fd::BorrowedFd<'_>],
    ) -> Result<Vec<vk::Semaphore>, VkError> {
        use std::os::fd::IntoRawFd;
        let Some(ext) = self.ctx.semaphore_fd.clone() else {
            return Ok(Vec::new());
        };
        let d = &self.ctx.device;
        while self.wait_semaphores.len() < waits.len() {
            // SAFETY: a plain binary semaphore on our device.
            let s = unsafe { d.create_semaphore(&vk::SemaphoreCreateInfo::default(), None) }
                .map_err(call("vkCreateSemaphore"))?;
            self.wait_semaphores.push(s);
        }
        let mut out = Vec::with_capacity(waits.len());
        for (fd, &s) in waits.iter().zip(&self.wait_semaphores) {
            let dup = fd
                .try_clone_to_owned()
                .map_err(|e| VkError::Unsupported(format!("dup of a sync_file: {e}")))?;
            let raw = dup.into_raw_fd();
            let info = vk::ImportSemaphoreFdInfoKHR::default()
                .semaphore(s)
                .flags(vk::SemaphoreImportFlags::TEMPORARY)
                .handle_type(vk::ExternalSemaphoreHandleTypeFlags::SYNC_FD)
                .fd(raw);
            // SAFETY: our semaphore, unsignalled and not in use (the previous frame is
            // done); SYNC_FD importable on this device (checked by the caller); on
            // success the driver owns `raw`.
            if let Err(e) = unsafe { ext.import_semaphore_fd(&info) } {
                // SAFETY: the import failed, so `raw` is still ours to close.
                drop(unsafe { OwnedFd::from_raw_fd(raw) });
                return Err(VkError::Call {
                    op: "vkImportSemaphoreFdKHR",
                    result: e,
                });
            }
            out.push(s);
        }
        Ok(out)
    }

    fn null_buffer() -> Buffer {
        Buffer {
            buffer: vk::Buffer::null(),
            memory: vk::DeviceMemory::null(),
            mapped: std::ptr::null_mut(),
        }
    }

    /// The pass's pipelines for a target format: one per layer kind.
    fn add_pipelines(&mut self, format: vk::Format) -> Result<(), VkError> {
        for (k, spv) in PANEL_SPV.iter().enumerate() {
            let p = self.pipeline(format, spv)?;
            self.pipelines.insert((format, k), p);
        }
        Ok(())
    }

    fn pipeline(&self, format: vk::Format, spv: &[u8]) -> Result<vk::Pipeline, VkError> {
        let d = &self.ctx.device;
        let module = shader(d, spv)?;
        let stages = [
            vk::PipelineShaderStageCreateInfo::default()
                .stage(vk::ShaderStageFlags::VERTEX)
                .module(module)
                .name(c"vs_main"),
            vk::PipelineShaderStageCreateInfo::default()
                .stage(vk::ShaderStageFlags::FRAGMENT)
                .module(module)
                .name(c"fs_main"),
        ];
        let vb = [vk::VertexInputBindingDescription::default()
            .binding(0)
            .stride(8)
            .input_rate(vk::VertexInputRate::VERTEX)];
        let va = [vk::VertexInputAttributeDescription::default()
            .location(0)
            .binding(0)
            .format(vk::Format::R32G32_SFLOAT)];
        let vertex_input = vk::PipelineVertexInputStateCreateInfo::default()
            .vertex_binding_descriptions(&vb)
            .vertex_attribute_descriptions(&va);
        let ia = vk::PipelineInputAssemblyStateCreateInfo::default()
            .topology(vk::PrimitiveTopology::TRIANGLE_LIST);
        let vp = vk::PipelineViewportStateCreateInfo::default()
            .viewport_count(1)
            .scissor_count(1);
        let rs = vk::PipelineRasterizationStateCreateInfo::default()
            .polygon_mode(vk::PolygonMode::FILL)
            .cull_mode(vk::CullModeFlags::NONE)
            .line_width(1.0);
        let ms = vk::PipelineMultisampleStateCreateInfo::default()
            .rasterization_samples(vk::SampleCountFlags::TYPE_1);
        // Per channel: colour + dst * (1 - that channel's alpha) (the shader's second
        // output); the panel's alpha stays the clear value's 1.
        let blend = [vk::PipelineColorBlendAttachmentState::default()
            .blend_enable(true)
            .src_color_blend_factor(vk::BlendFactor::ONE)
            .dst_color_blend_factor(vk::BlendFactor::ONE_MINUS_SRC1_COLOR)
            .color_blend_op(vk::BlendOp::ADD)
            .src_alpha_blend_factor(vk::BlendFactor::ZERO)
            .dst_alpha_blend_factor(vk::BlendFactor::ONE)
            .alpha_blend_op(vk::BlendOp::ADD)
            .color_write_mask(vk::ColorComponentFlags::RGBA)];
        let cb = vk::PipelineColorBlendStateCreateInfo::default().attachments(&blend);
        let dynamic = [vk::DynamicState::VIEWPORT, vk::DynamicState::SCISSOR];
        let ds = vk::PipelineDynamicStateCreateInfo::default().dynamic_states(&dynamic);
        let formats = [format];
        let mut rendering =
            vk::PipelineRenderingCreateInfo::default().color_attachment_formats(&formats);
        let info = vk::GraphicsPipelineCreateInfo::default()
            .stages(&stages)
            .vertex_input_state(&vertex_input)
            .input_assembly_state(&ia)
            .viewport_state(&vp)
            .rasterization_state(&rs)
            .multisample_state(&ms)
            .color_blend_state(&cb)
            .dynamic_state(&ds)
            .layout(self.layout)
            .push_next(&mut rendering);
        // SAFETY: every state struct is alive across the call; dynamic rendering and
        // dual-source blending are enabled on the device; the module is destroyed after
        // pipeline creation.
        let r = unsafe {
            let p = d.create_graphics_pipelines(vk::PipelineCache::null(), &[info], None);
            d.destroy_shader_module(module, None);
            p
        };
        r.map(|v| v[0]).map_err(|(_, e)| VkError::Call {
            op: "vkCreateGraphicsPipelines",
            result: e,
        })
    }

    fn allocate(
        &self,
        req: vk::MemoryRequirements,
        flags: vk::MemoryPropertyFlags,
    ) -> Result<vk::DeviceMemory, VkError> {
        let ty = self
            .ctx
            .memory_type(req.memory_type_bits, flags)
            .ok_or_else(|| VkError::Unsupported(format!("no memory type with {flags:?}")))?;
        // SAFETY: a valid allocation request for a type index the device reported.
        unsafe {
            self.ctx.device.allocate_memory(
                &vk::MemoryAllocateInfo::default()
                    .allocation_size(req.size)
                    .memory_type_index(ty),
                None,
            )
        }
        .map_err(call("vkAllocateMemory"))
    }

    fn host_buffer(&self, size: u64, usage: vk::BufferUsageFlags) -> Result<Buffer, VkError> {
        self.buffer(
            size,
            usage,
            vk::MemoryPropertyFlags::HOST_VISIBLE | vk::MemoryPropertyFlags::HOST_COHERENT,
        )
    }

    /// A host-visible buffer holding `bytes`.
    fn host_buffer_with(
        &self,
        bytes: &[u8],
        usage: vk::BufferUsageFlags,
    ) -> Result<Buffer, VkError> {
        let b = self.host_buffer(bytes.len() as u64, usage)?;
        // SAFETY: the buffer is host-visible, coherent, mapped for its whole size and
        // exactly as large as `bytes`.
        unsafe { std::ptr::copy_nonoverlapping(bytes.as_ptr(), b.mapped, bytes.len()) };
        Ok(b)
    }

    /// A new buffer in memory with `flags`, mapped when that memory is host-visible.
    fn buffer(
        &self,
        size: u64,
        usage: vk::BufferUsageFlags,
        flags: vk::MemoryPropertyFlags,
    ) -> Result<Buffer, VkError> {
        let d = &self.ctx.device;
        // SAFETY: creation, allocation, binding and mapping of a new buffer; on failure
        // the partially created objects are released before returning.
        unsafe {
            let buffer = d
                .create_buffer(
                    &vk::BufferCreateInfo::default()
                        .size(size.max(4))
                        .usage(usage),
                    None,
                )
                .map_err(call("vkCreateBuffer"))?;
            let req = d.get_buffer_memory_requirements(buffer);
            let memory = match self.allocate(req, flags) {
                Ok(m) => m,
                Err(e) => {
                    d.destroy_buffer(buffer, None);
                    return Err(e);
                }
            };
            let mapped = d.bind_buffer_memory(buffer, memory, 0).and_then(|_| {
                if flags.contains(vk::MemoryPropertyFlags::HOST_VISIBLE) {
                    d.map_memory(memory, 0, vk::WHOLE_SIZE, vk::MemoryMapFlags::empty())
                } else {
                    Ok(std::ptr::null_mut())
                }
            });
            match mapped {
                Ok(p) => Ok(Buffer {
                    buffer,
                    memory,
                    mapped: p.cast(),
                }),
                Err(e) => {
                    d.destroy_buffer(buffer, None);
                    d.free_memory(memory, None);
                    Err(VkError::Call {
                        op: "vkMapMemory",
                        result: e,
                    })
                }
            }
        }
    }

    fn free_buffer(&self, b: &Buffer) {
        if b.buffer == vk::Buffer::null() {
            return;
        }
        // SAFETY: the buffer is not in use (callers wait for the GPU first).
        unsafe {
            self.ctx.device.destroy_buffer(b.buffer, None);
            self.ctx.device.free_memory(b.memory, None);
        }
    }

    fn image(
        &self,
        width: u32,
        height: u32,
        layers: u32,
        format: vk::Format,
        usage: vk::ImageUsageFlags,
        flags: vk::ImageCreateFlags,
    ) -> Result<Image, VkError> {
        let d = &self.ctx.device;
        let info = vk::ImageCreateInfo::default()
            .flags(flags)
            .image_type(vk::ImageType::TYPE_2D)
            .format(format)
            .extent(vk::Extent3D {
                width,
                height,
                depth: 1,
            })
            .mip_levels(1)
            .array_layers(layers)
            .samples(vk::SampleCountFlags::TYPE_1)
            .tiling(vk::ImageTiling::OPTIMAL)
            .usage(usage)
            .initial_layout(vk::ImageLayout::UNDEFINED);
        // SAFETY: creation of a new image, its memory and view; partial objects are
        // released on failure.
        unsafe {
            let image = d.create_image(&info, None).map_err(call("vkCreateImage"))?;
            let req = d.get_image_memory_requirements(image);
            let memory = match self.allocate(req, vk::MemoryPropertyFlags::DEVICE_LOCAL) {
                Ok(m) => m,
                Err(e) => {
                    d.destroy_image(image, None);
                    return Err(e);
                }
            };
            if let Err(e) = d.bind_image_memory(image, memory, 0) {
                d.destroy_image(image, None);
                d.free_memory(memory, None);
                return Err(VkError::Call {
                    op: "vkBindImageMemory",
                    result: e,
                });
            }
            // Layer images are sampled as arrays; targets are plain 2D.
            let view_type = if layers > 1 || usage.contains(vk::ImageUsageFlags::SAMPLED) {
                vk::ImageViewType::TYPE_2D_ARRAY
            } else {
                vk::ImageViewType::TYPE_2D
            };
            // The image's own view is never a storage view (its format may not allow
            // one; the compute path makes its own).
            let mut view_usage = vk::ImageViewUsageCreateInfo::default()
                .usage(usage & !vk::ImageUsageFlags::STORAGE);
            let mut view_info = vk::ImageViewCreateInfo::default()
                .image(image)
                .view_type(view_type)
                .format(format)
                .subresource_range(color_range(layers));
            if usage.contains(vk::ImageUsageFlags::STORAGE) {
                view_info = view_info.push_next(&mut view_usage);
            }
            let view = d
                .create_image_view(&view_info, None)
                .map_err(call("vkCreateImageView"));
            match view {
                Ok(view) => Ok(Image {
                    image,
                    memory,
                    view,
                }),
                Err(e) => {
                    d.destroy_image(image, None);
                    d.free_memory(memory, None);
                    Err(e)
                }
            }
        }
    }

    fn free_image(&self, i: &Image) {
        if i.image == vk::Image::null() {
            return;
        }
        // SAFETY: the image is not in use (callers wait for the GPU first).
        unsafe {
            self.ctx.device.destroy_image_view(i.view, None);
            self.ctx.device.destroy_image(i.image, None);
            self.ctx.device.free_memory(i.memory, None);
        }
    }

    /// A new set of `layout` from our pool (freed with `vkFreeDescriptorSets` or the pool).
    fn allocate_set(&self, layout: vk::DescriptorSetLayout) -> Result<vk::DescriptorSet, VkError> {
        let layouts = [layout];
        // SAFETY: allocation from our pool, with a layout of this device.
        unsafe {
            self.ctx.device.allocate_descriptor_sets(
                &vk::DescriptorSetAllocateInfo::default()
                    .descriptor_pool(self.pool)
                    .set_layouts(&layouts),
            )
        }
        .map(|s| s[0])
        .map_err(call("vkAllocateDescriptorSets"))
    }

    fn descriptor_set(&self, view: vk::ImageView) -> Result<vk::DescriptorSet, VkError> {
        let d = &self.ctx.device;
        let set = self.allocate_set(self.set_layout)?;
        // SAFETY: a write of live handles into a set of ours.
        unsafe {
            let img = [vk::DescriptorImageInfo::default()
                .image_view(view)
                .image_layout(vk::ImageLayout::SHADER_READ_ONLY_OPTIMAL)];
            let smp = [vk::DescriptorImageInfo::default().sampler(self.sampler)];
            let lens = [vk::DescriptorBufferInfo::default()
                .buffer(self.lens.buffer)
                .range(EYE_LENS_FLOATS as u64 * 4)];
            let writes = [
                vk::WriteDescriptorSet::default()
                    .dst_set(set)
                    .dst_binding(0)
                    .descriptor_type(vk::DescriptorType::SAMPLED_IMAGE)
                    .image_info(&img),
                vk::WriteDescriptorSet::default()
                    .dst_set(set)
                    .dst_binding(1)
                    .descriptor_type(vk::DescriptorType::SAMPLER)
                    .image_info(&smp),
                vk::WriteDescriptorSet::default()
                    .dst_set(set)
                    .dst_binding(2)
                    .descriptor_type(vk::DescriptorType::UNIFORM_BUFFER_DYNAMIC)
                    .buffer_info(&lens),
            ];
            d.update_descriptor_sets(&writes, &[]);
            Ok(set)
        }
    }

    /// Records and runs `f` on the queue, waiting for it.
    fn one_shot(&mut self, f: impl FnOnce(&ash::Device, vk::CommandBuffer)) -> Result<(), VkError> {
        self.wait()?;
        let d = &self.ctx.device;
        // SAFETY: the command buffer is idle (waited above); it is recorded, submitted
        // and waited for before returning.
        unsafe {
            d.reset_command_buffer(self.cmd, vk::CommandBufferResetFlags::empty())
                .map_err(call("vkResetCommandBuffer"))?;
            d.begin_command_buffer(
                self.cmd,
                &vk::CommandBufferBeginInfo::default()
                    .flags(vk::CommandBufferUsageFlags::ONE_TIME_SUBMIT),
            )
            .map_err(call("vkBeginCommandBuffer"))?;
            f(d, self.cmd);
            d.end_command_buffer(self.cmd)
                .map_err(call("vkEndCommandBuffer"))?;
            let cbs = [vk::CommandBufferSubmitInfo::default().command_buffer(self.cmd)];
            let submit = [vk::SubmitInfo2::default().command_buffer_infos(&cbs)];
            d.reset_fences(&[self.fence])
                .map_err(call("vkResetFences"))?;
            d.queue_submit2(self.ctx.queue, &submit, self.fence)
                .map_err(call("vkQueueSubmit2"))?;
        }
        self.in_flight = true;
        self.wait()
    }

    /// The memory bandwidth a plain buffer copy achieves on this device: bytes read plus
    /// bytes written per second, from GPU timestamps, the best of three copies of
    /// `bytes` in device-local memory. The yardstick for the pass's traffic; `None`
    /// where the queue has no timestamps.
    pub fn copy_bandwidth(&mut self, bytes: u64) -> Result<Option<f64>, VkError> {
        let (Some(q), Some(period)) = (self.queries, self.ctx.timestamp_period_ns) else {
            return Ok(None);
        };
        let local = vk::MemoryPropertyFlags::DEVICE_LOCAL;
        let src = self.buffer(bytes, vk::BufferUsageFlags::TRANSFER_SRC, local)?;
        let dst = match self.buffer(bytes, vk::BufferUsageFlags::TRANSFER_DST, local) {
            Ok(b) => b,
            Err(e) => {
                self.free_buffer(&src);
                return Err(e);
            }
        };
        let mut best = f64::INFINITY;
        for _ in 0..3 {
            // On failure the copy may still be running: its buffers are leaked, not freed.
            self.one_shot(|d, cb| {
                // SAFETY: recording into the idle command buffer `one_shot` hands us;
                // both buffers live until after the submission is waited for.
                unsafe {
                    d.cmd_reset_query_pool(cb, q, 0, 2);
                    d.cmd_write_timestamp2(cb, vk::PipelineStageFlags2::TOP_OF_PIPE, q, 0);
                    d.cmd_copy_buffer(
                        cb,
                        src.buffer,
                        dst.buffer,
                        &[vk::BufferCopy::default().size(bytes)],
                    );
                    d.cmd_write_timestamp2(cb, vk::PipelineStageFlags2::ALL_COMMANDS, q, 1);
                }
            })?;
            let mut ts = [0u64; 2];
            // SAFETY: both queries were written by the completed submission.
            let read = unsafe {
                self.ctx
                    .device
                    .get_query_pool_results(q, 0, &mut ts, vk::QueryResultFlags::TYPE_64)
            };
            if read.is_ok() {
                best = best.min(ts[1].wrapping_sub(ts[0]) as f64 * period);
            }
        }
        // The copies are complete (waited for): the buffers can go.
        self.free_buffer(&src);
        self.free_buffer(&dst);
        Ok((best.is_finite() && best > 0.0).then(|| 2.0 * bytes as f64 / (best * 1e-9)))
    }

    /// How long a frame may take before the GPU counts as hung (default
    /// [`super::gpu_hang()`]).
    pub fn set_gpu_timeout(&mut self, t: std::time::Duration) {
        self.gpu_timeout = t;
    }

    /// Waits for the last submitted work.
    pub fn wait(&mut self) -> Result<(), VkError> {
        if !self.in_flight {
            return Ok(());
        }
        // SAFETY: the fence belongs to this device and was submitted.
        unsafe {
            super::wait_fences(
                &self.ctx.device,
                &[self.fence],
                "the compositor's render",
                self.gpu_timeout,
            )
        }?;
        self.in_flight = false;
        if let Some(s) = self.stale_semaphore.take() {
            // SAFETY: the submit that signalled it has completed.
            unsafe { self.ctx.device.destroy_semaphore(s, None) };
        }
        Ok(())
    }

    /// A new layer image (e.g. a swapchain image) the compositor can sample.
    pub fn create_layer_image(
        &mut self,
        width: u32,
        height: u32,
        layers: u32,
        format: ColorFormat,
    ) -> Result<u64, VkError> {
        if width == 0 || height == 0 || layers == 0 || width > 16384 || height > 16384 {
            return Err(VkError::Unsupported(format!(
                "layer image {width}x{height}x{layers} is out of range"
            )));
        }
        let img = self.image(
            width,
            height,
            layers,
            vk_format(format),
            vk::ImageUsageFlags::SAMPLED
                | vk::ImageUsageFlags::TRANSFER_DST
                | vk::ImageUsageFlags::COLOR_ATTACHMENT,
            vk::ImageCreateFlags::empty(),
        )?;
        let set = match self.descriptor_set(img.view) {
            Ok(s) => s,
            Err(e) => {
                self.free_image(&img);
                return Err(e);
            }
        };
        let image = img.image;
        self.one_shot(|d, cb| {
            barrier(
                d,
                cb,
                image,
                layers,
                vk::ImageLayout::UNDEFINED,
                vk::ImageLayout::SHADER_READ_ONLY_OPTIMAL,
            )
        })?;
        let id = self.next_id;
        self.next_id += 1;
        self.layers.insert(
            id,
            LayerImage {
                img,
                set,
                desc: ImageDesc {
                    id,
                    width,
                    height,
                    array_layers: layers,
                    format: Some(format),
                },
                external: None,
            },
        );
        Ok(id)
    }

    /// Imports a swapchain image the application's device allocated and exported
    /// ([`super::app::SharedImage`]): the compositor samples the app's memory directly.
    pub fn import_layer_image(&mut self, shared: super::app::SharedImage) -> Result<u64, VkError> {
        use std::os::fd::{AsRawFd, IntoRawFd};
        if self.ctx.memory_fd.is_none() {
            return Err(VkError::Unsupported(
                "this Vulkan device cannot import application images (no VK_KHR_external_memory_fd)"
                    .into(),
            ));
        }
        let d = &self.ctx.device;
        let format = vk_format(shared.format);
        let layers = shared.array_layers;
        let mut external = vk::ExternalMemoryImageCreateInfo::default()
            .handle_types(vk::ExternalMemoryHandleTypeFlags::OPAQUE_FD);
        // The same parameters the app's image was created with: the memory is aliased.
        let info = vk::ImageCreateInfo::default()
            .flags(vk::ImageCreateFlags::from_raw(shared.flags))
            .image_type(vk::ImageType::TYPE_2D)
            .format(format)
            .extent(vk::Extent3D {
                width: shared.width,
                height: shared.height,
                depth: 1,
            })
            .mip_levels(shared.mip_levels)
            .array_layers(layers)
            .samples(vk::SampleCountFlags::TYPE_1)
            .tiling(vk::ImageTiling::OPTIMAL)
            .usage(vk::ImageUsageFlags::from_raw(shared.usage))
            .initial_layout(vk::ImageLayout::UNDEFINED)
            .push_next(&mut external);
        // SAFETY: creation of an image and an import of its memory; Vulkan owns the fd
        // only once the import succeeds (on failure it is closed here); partial objects
        // are released on every error path.
        let img = unsafe {
            let image = d
                .create_image(&info, None)
                .map_err(call("vkCreateImage (application image)"))?;
            let req = d.get_image_memory_requirements(image);
            if req.size > shared.allocation_size {
                d.destroy_image(image, None);
                return Err(VkError::Unsupported(format!(
                    "the application's image memory ({} bytes) is smaller than the image needs ({})",
                    shared.allocation_size, req.size
                )));
            }
            let Some(ty) = self
                .ctx
                .memory_type(req.memory_type_bits, vk::MemoryPropertyFlags::DEVICE_LOCAL)
                .or_else(|| {
                    self.ctx
                        .memory_type(req.memory_type_bits, vk::MemoryPropertyFlags::empty())
                })
            else {
                d.destroy_image(image, None);
                return Err(VkError::Unsupported(
                    "no memory type for an application image".into(),
                ));
            };
            let raw = shared.memory.as_raw_fd();
            let mut import = vk::ImportMemoryFdInfoKHR::default()
                .handle_type(vk::ExternalMemoryHandleTypeFlags::OPAQUE_FD)
                .fd(raw);
            let mut dedicated = vk::MemoryDedicatedAllocateInfo::default().image(image);
            let alloc = vk::MemoryAllocateInfo::default()
                .allocation_size(shared.allocation_size)
                .memory_type_index(ty)
                .push_next(&mut import)
                .push_next(&mut dedicated);
            let memory = match d.allocate_memory(&alloc, None) {
                Ok(m) => {
                    // Vulkan owns the descriptor now.
                    let _ = shared.memory.into_raw_fd();
                    m
                }
                Err(e) => {
                    d.destroy_image(image, None);
                    return Err(VkError::Call {
                        op: "vkAllocateMemory (import application image)",
                        result: e,
                    });
                }
            };
            if let Err(e) = d.bind_image_memory(image, memory, 0) {
                d.destroy_image(image, None);
                d.free_memory(memory, None);
                return Err(VkError::Call {
                    op: "vkBindImageMemory",
                    result: e,
                });
            }
            let view = d.create_image_view(
                &vk::ImageViewCreateInfo::default()
                    .image(image)
                    .view_type(vk::ImageViewType::TYPE_2D_ARRAY)
                    .format(format)
                    .subresource_range(color_range(layers)),
                None,
            );
            match view {
                Ok(view) => Image {
                    image,
                    memory,
                    view,
                },
                Err(e) => {
                    d.destroy_image(image, None);
                    d.free_memory(memory, None);
                    return Err(VkError::Call {
                        op: "vkCreateImageView",
                        result: e,
                    });
                }
            }
        };
        let set = match self.descriptor_set(img.view) {
            Ok(s) => s,
            Err(e) => {
                self.free_image(&img);
                return Err(e);
            }
        };
        let id = self.next_id;
        self.next_id += 1;
        self.layers.insert(
            id,
            LayerImage {
                img,
                set,
                desc: ImageDesc {
                    id,
                    width: shared.width,
                    height: shared.height,
                    array_layers: layers,
                    format: Some(shared.format),
                },
                external: Some((vk::ImageLayout::from_raw(shared.layout), layers)),
            },
        );
        Ok(id)
    }

    pub fn layer_desc(&self, id: u64) -> Option<ImageDesc> {
        self.layers.get(&id).map(|l| l.desc)
    }

    pub fn destroy_layer_image(&mut self, id: u64) -> Result<(), VkError> {
        self.wait()?;
        if let Some(l) = self.layers.remove(&id) {
            // SAFETY: the GPU is idle; the set came from our pool.
            unsafe {
                let _ = self.ctx.device.free_descriptor_sets(self.pool, &[l.set]);
            }
            self.free_image(&l.img);
        }
        Ok(())
    }

    /// Uploads RGBA8 pixels into one array layer of an 8-bit RGBA layer image.
    pub fn upload(&mut self, id: u64, layer: u32, pixels: &RgbaImage) -> Result<(), VkError> {
        let l = self
            .layers
            .get(&id)
            .ok_or_else(|| VkError::Unsupported(format!("no layer image {id}")))?;
        if (pixels.width, pixels.height) != (l.desc.width, l.desc.height)
            || layer >= l.desc.array_layers
            || !matches!(
                l.desc.format,
                Some(ColorFormat::Rgba8Srgb | ColorFormat::Rgba8Unorm)
            )
        {
            return Err(VkError::Unsupported(
                "upload needs an RGBA8 image of the same size".into(),
            ));
        }
        let (image, w, h, layers) = (
            l.img.image,
            l.desc.width,
            l.desc.height,
            l.desc.array_layers,
        );
        let staging = self.host_buffer_with(&pixels.data, vk::BufferUsageFlags::TRANSFER_SRC)?;
        let buf = staging.buffer;
        let r = self.one_shot(|d, cb| {
            barrier(
                d,
                cb,
                image,
                layers,
                vk::ImageLayout::SHADER_READ_ONLY_OPTIMAL,
                vk::ImageLayout::TRANSFER_DST_OPTIMAL,
            );
            let region = vk::BufferImageCopy::default()
                .image_subresource(
                    vk::ImageSubresourceLayers::default()
                        .aspect_mask(vk::ImageAspectFlags::COLOR)
                        .base_array_layer(layer)
                        .layer_count(1),
                )
                .image_extent(vk::Extent3D {
                    width: w,
                    height: h,
                    depth: 1,
                });
            // SAFETY: recording into a command buffer in the recording state.
            unsafe {
                d.cmd_copy_buffer_to_image(
                    cb,
                    buf,
                    image,
                    vk::ImageLayout::TRANSFER_DST_OPTIMAL,
                    &[region],
                )
            };
            barrier(
                d,
                cb,
                image,
                layers,
                vk::ImageLayout::TRANSFER_DST_OPTIMAL,
                vk::ImageLayout::SHADER_READ_ONLY_OPTIMAL,
            );
        });
        self.free_buffer(&staging);
        r
    }

    /// A target the compositor owns (headless), `TARGET_FORMAT`, readable back.
    pub fn create_target(&mut self, width: u32, height: u32) -> Result<TargetImage, VkError> {
        let storage = self.path == ComposePath::Compute;
        let img = self.image(
            width,
            height,
            1,
            TARGET_FORMAT,
            if storage {
                TARGET_USAGE | vk::ImageUsageFlags::STORAGE
            } else {
                TARGET_USAGE
            },
            if storage {
                vk::ImageCreateFlags::MUTABLE_FORMAT | vk::ImageCreateFlags::EXTENDED_USAGE
            } else {
                vk::ImageCreateFlags::empty()
            },
        )?;
        let compute = match self.compute_target(&img, width, height) {
            Ok(c) => c,
            Err(e) => {
                self.free_image(&img);
                return Err(e);
            }
        };
        Ok(TargetImage {
            img,
            compute,
            blank: std::cell::Cell::new(false),
            width,
            height,
            format: TARGET_FORMAT,
            external: false,
        })
    }

    /// Imports a scanout buffer (a dma-buf, XRGB8888, one plane) as a render target:
    /// rendering then writes straight into what the display scans out. `modifier`
    /// `None` means linear (dumb buffers). Fails clearly where the driver cannot import
    /// it (the caller then renders into its own image and copies).
    pub fn import_target(
        &mut self,
        dmabuf: std::os::fd::BorrowedFd<'_>,
        width: u32,
        height: u32,
        stride: u32,
        modifier: Option<u64>,
    ) -> Result<TargetImage, VkError> {
        use std::os::fd::{AsRawFd, IntoRawFd};
        let ext = self.ctx.dma_buf.as_ref().ok_or_else(|| {
            VkError::Unsupported(
                "this Vulkan device cannot import dma-bufs (VK_EXT_external_memory_dma_buf + \
                 VK_EXT_image_drm_format_modifier)"
                    .into(),
            )
        })?;
        let d = &self.ctx.device;
        let layouts = [vk::SubresourceLayout {
            offset: 0,
            size: 0,
            row_pitch: u64::from(stride),
            array_pitch: 0,
            depth_pitch: 0,
        }];
        let mut explicit = vk::ImageDrmFormatModifierExplicitCreateInfoEXT::default()
            .drm_format_modifier(modifier.unwrap_or(0))
            .plane_layouts(&layouts);
        let mut external = vk::ExternalMemoryImageCreateInfo::default()
            .handle_types(vk::ExternalMemoryHandleTypeFlags::DMA_BUF_EXT);
        let info = vk::ImageCreateInfo::default()
            .image_type(vk::ImageType::TYPE_2D)
            .format(TARGET_FORMAT)
            .extent(vk::Extent3D {
                width,
                height,
                depth: 1,
            })
            .mip_levels(1)
            .array_layers(1)
            .samples(vk::SampleCountFlags::TYPE_1)
            .tiling(vk::ImageTiling::DRM_FORMAT_MODIFIER_EXT)
            .usage(vk::ImageUsageFlags::COLOR_ATTACHMENT | vk::ImageUsageFlags::TRANSFER_SRC)
            .initial_layout(vk::ImageLayout::UNDEFINED)
            .push_next(&mut external)
            .push_next(&mut explicit);
        let owned = dmabuf.try_clone_to_owned().map_err(|e| {
            VkError::Unsupported(format!("cannot duplicate the scanout dma-buf: {e}"))
        })?;
        // SAFETY: image creation with a chain of live structures; the memory import
        // takes ownership of the descriptor only on success (on failure it is closed
        // here); partial objects are released on every error path.
        unsafe {
            let image = d
                .create_image(&info, None)
                .map_err(call("vkCreateImage (dma-buf import)"))?;
            let mut fd_props = vk::MemoryFdPropertiesKHR::default();
            if let Err(e) = ext.get_memory_fd_properties(
                vk::ExternalMemoryHandleTypeFlags::DMA_BUF_EXT,
                owned.as_raw_fd(),
                &mut fd_props,
            ) {
                d.destroy_image(image, None);
                return Err(VkError::Call {
                    op: "vkGetMemoryFdPropertiesKHR",
                    result: e,
                });
            }
            let req = d.get_image_memory_requirements(image);
            let bits = req.memory_type_bits & fd_props.memory_type_bits;
            let Some(ty) = (0..32).find(|i| bits & (1 << i) != 0) else {
                d.destroy_image(image, None);
                return Err(VkError::Unsupported(
                    "no memory type can hold this dma-buf as an image".into(),
                ));
            };
            let raw = owned.into_raw_fd();
            let mut import = vk::ImportMemoryFdInfoKHR::default()
                .handle_type(vk::ExternalMemoryHandleTypeFlags::DMA_BUF_EXT)
                .fd(raw);
            let mut dedicated = vk::MemoryDedicatedAllocateInfo::default().image(image);
            let alloc = vk::MemoryAllocateInfo::default()
                .allocation_size(req.size)
                .memory_type_index(ty)
                .push_next(&mut import)
                .push_next(&mut dedicated);
            let memory = match d.allocate_memory(&alloc, None) {
                Ok(m) => m,
                Err(e) => {
                    drop(OwnedFd::from_raw_fd(raw));
                    d.destroy_image(image, None);
                    return Err(VkError::Call {
                        op: "vkAllocateMemory (dma-buf import)",
                        result: e,
                    });
                }
            };
            if let Err(e) = d.bind_image_memory(image, memory, 0) {
                d.destroy_image(image, None);
                d.free_memory(memory, None);
                return Err(VkError::Call {
                    op: "vkBindImageMemory (dma-buf)",
                    result: e,
                });
            }
            let view = match d.create_image_view(
                &vk::ImageViewCreateInfo::default()
                    .image(image)
                    .view_type(vk::ImageViewType::TYPE_2D)
                    .format(TARGET_FORMAT)
                    .subresource_range(color_range(1)),
                None,
            ) {
                Ok(v) => v,
                Err(e) => {
                    d.destroy_image(image, None);
                    d.free_memory(memory, None);
                    return Err(VkError::Call {
                        op: "vkCreateImageView (dma-buf)",
                        result: e,
                    });
                }
            };
            Ok(TargetImage {
                img: Image {
                    image,
                    memory,
                    view,
                },
                compute: None,
                blank: std::cell::Cell::new(false),
                width,
                height,
                format: TARGET_FORMAT,
                external: true,
            })
        }
    }

    pub fn destroy_target(&mut self, t: TargetImage) -> Result<(), VkError> {
        self.wait()?;
        if let Some(c) = &t.compute {
            // SAFETY: the GPU is done with the target (waited above); the set is from
            // our pool, which frees sets individually.
            unsafe {
                let _ = self.ctx.device.free_descriptor_sets(self.pool, &[c.set]);
                self.ctx.device.destroy_image_view(c.view, None);
            }
        }
        self.free_image(&t.img);
        Ok(())
    }

    /// Records and submits one frame into `target`. Returns at once (the GPU works on);
    /// the fence says how completion reaches the display.
    ///
    /// A hardware GPU whose driver exports sync_files hands one back even where the
    /// target did not ask (`want_sync_file` false): waiting for it is a sleep in the
    /// kernel, where some drivers' fence waits spin on the CPU.
    pub fn render(
        &mut self,
        plan: &FramePlan,
        target: &TargetImage,
        want_sync_file: bool,
    ) -> Result<(RenderFence, FrameTiming), VkError> {
        self.render_after(plan, target, want_sync_file, &[])
    }

    /// [`Self::render`], with the GPU waiting for `waits` (sync_files: the app's rendering
    /// into the images the frame samples) before it composes; the CPU never waits for
    /// them. Needs [`Self::imports_sync_file`] (an error otherwise).
    pub fn render_after(
        &mut self,
        plan: &FramePlan,
        target: &TargetImage,
        want_sync_file: bool,
        waits: &[std::os::fd::BorrowedFd<'_>],
    ) -> Result<(RenderFence, FrameTiming), VkError> {
        self.wait()?;
        if !waits.is_empty() && !self.sync_fd_import {
            return Err(VkError::Unsupported(
                "this device cannot wait for sync_files on the GPU".into(),
            ));
        }
        let t0 = std::time::Instant::now();
        let empty = plan.draws.iter().all(Vec::is_empty);
        if empty && target.blank.get() {
            // Nothing to compose, and the target already shows nothing: it is ready.
            self.skipped = true;
            return Ok((
                RenderFence::Signalled,
                FrameTiming {
                    cpu_submit_ns: t0.elapsed().as_nanos() as u64,
                    cpu_queue_submit_ns: 0,
                    gpu: None,
                    // No GPU work at all.
                    gpu_total_ns: Some(0),
                },
            ));
        }
        self.skipped = false;
        target.blank.set(false);
        let queue_ns;
        let d = self.ctx.device.clone();
        let cb = self.cmd;
        // SAFETY: the command buffer is idle (waited above). Everything recorded refers
        // to objects owned by this renderer or the target, alive until the fence signals
        // (`wait` runs before any of them is destroyed).
        let semaphore = unsafe {
            d.reset_command_buffer(cb, vk::CommandBufferResetFlags::empty())
                .map_err(call("vkResetCommandBuffer"))?;
            d.begin_command_buffer(
                cb,
                &vk::CommandBufferBeginInfo::default()
                    .flags(vk::CommandBufferUsageFlags::ONE_TIME_SUBMIT),
            )
            .map_err(call("vkBeginCommandBuffer"))?;
            if let Some(q) = self.queries {
                d.cmd_reset_query_pool(cb, q, 0, QUERIES);
                d.cmd_write_timestamp2(cb, vk::PipelineStageFlags2::TOP_OF_PIPE, q, 0);
            }
            // Application images: from the app's device (external queue family, its
            // layout) to ours for sampling; given back after the layer passes.
            let mut external: Vec<(vk::Image, vk::ImageLayout, u32)> = Vec::new();
            for draw in plan.draws.iter().flatten() {
                if let Some(l) = self.layers.get(&draw.image)
                    && let Some((layout, layers)) = l.external
                    && !external.iter().any(|e| e.0 == l.img.image)
                {
                    external.push((l.img.image, layout, layers));
                }
            }
            for &(image, layout, layers) in &external {
                barrier_layers(
                    &d,
                    cb,
                    image,
                    layers,
                    layout,
                    vk::ImageLayout::SHADER_READ_ONLY_OPTIMAL,
                    (vk::QUEUE_FAMILY_EXTERNAL, self.ctx.queue_family),
                );
            }
            if let Some(q) = self.queries {
                d.cmd_write_timestamp2(cb, vk::PipelineStageFlags2::ALL_COMMANDS, q, 1);
            }
            let foreign = target.external.then_some(self.ctx.queue_family);
            let layout = if let Some(c) = &target.compute {
                self.record_compute(&d, cb, plan, target, c)?;
                vk::ImageLayout::GENERAL
            } else {
                barrier_qf(
                    &d,
                    cb,
                    target.img.image,
                    vk::ImageLayout::UNDEFINED,
                    vk::ImageLayout::COLOR_ATTACHMENT_OPTIMAL,
                    foreign.map(|q| (self.ctx.external_queue_family, q)),
                );
                self.record_fragment(&d, cb, plan, target)?;
                vk::ImageLayout::COLOR_ATTACHMENT_OPTIMAL
            };
            if let Some(q) = self.queries {
                d.cmd_write_timestamp2(cb, vk::PipelineStageFlags2::ALL_COMMANDS, q, 2);
            }
            for &(image, layout, layers) in &external {
                barrier_layers(
                    &d,
                    cb,
                    image,
                    layers,
                    vk::ImageLayout::SHADER_READ_ONLY_OPTIMAL,
                    layout,
                    (self.ctx.queue_family, vk::QUEUE_FAMILY_EXTERNAL),
                );
            }
            // Own targets stay readable (TRANSFER_SRC); scanout buffers go to the display
            // (GENERAL, released to the foreign queue family).
            barrier_qf(
                &d,
                cb,
                target.img.image,
                layout,
                if target.external {
                    vk::ImageLayout::GENERAL
                } else {
                    vk::ImageLayout::TRANSFER_SRC_OPTIMAL
                },
                foreign.map(|q| (q, self.ctx.external_queue_family)),
            );
            if let Some(q) = self.queries {
                d.cmd_write_timestamp2(cb, vk::PipelineStageFlags2::ALL_COMMANDS, q, 3);
            }
            d.end_command_buffer(cb)
                .map_err(call("vkEndCommandBuffer"))?;

            let semaphore = if (want_sync_file || self.poll_completion) && self.sync_fd_export {
                if self.sync_semaphore.is_none() {
                    let mut export = vk::ExportSemaphoreCreateInfo::default()
                        .handle_types(vk::ExternalSemaphoreHandleTypeFlags::SYNC_FD);
                    self.sync_semaphore = Some(
                        d.create_semaphore(
                            &vk::SemaphoreCreateInfo::default().push_next(&mut export),
                            None,
                        )
                        .map_err(call("vkCreateSemaphore"))?,
                    );
                }
                self.sync_semaphore
            } else {
                None
            };
            let at_any_stage = |s: &vk::Semaphore| {
                vk::SemaphoreSubmitInfo::default()
                    .semaphore(*s)
                    .stage_mask(vk::PipelineStageFlags2::ALL_COMMANDS)
            };
            let wait_infos: Vec<_> = self.import_waits(waits)?.iter().map(at_any_stage).collect();
            let cbs = [vk::CommandBufferSubmitInfo::default().command_buffer(cb)];
            let sig: Vec<_> = semaphore.iter().map(at_any_stage).collect();
            let submit = [vk::SubmitInfo2::default()
                .wait_semaphore_infos(&wait_infos)
                .command_buffer_infos(&cbs)
                .signal_semaphore_infos(&sig)];
            d.reset_fences(&[self.fence])
                .map_err(call("vkResetFences"))?;
            let q0 = std::time::Instant::now();
            d.queue_submit2(self.ctx.queue, &submit, self.fence)
                .map_err(call("vkQueueSubmit2"))?;
            queue_ns = q0.elapsed().as_nanos() as u64;
            self.in_flight = true;
            target.blank.set(empty);
            semaphore
        };
        let cpu_submit_ns = t0.elapsed().as_nanos() as u64;
        let fence = match (semaphore, &self.ctx.semaphore_fd) {
            (Some(s), Some(ext)) => {
                let info = vk::SemaphoreGetFdInfoKHR::default()
                    .semaphore(s)
                    .handle_type(vk::ExternalSemaphoreHandleTypeFlags::SYNC_FD);
                // SAFETY: the semaphore was created exportable as SYNC_FD and its signal
                // operation is submitted; the export unsignals it (copy transference).
                match unsafe { ext.get_semaphore_fd(&info) } {
                    Ok(-1) => RenderFence::Signalled,
                    // SAFETY: a successful export returns a new fd that we now own.
                    Ok(fd) => RenderFence::SyncFile(unsafe { OwnedFd::from_raw_fd(fd) }),
                    Err(e) => {
                        // Still signalled: it cannot be signalled again. A new one next
                        // frame; this one goes when the frame is done.
                        self.stale_semaphore = self.sync_semaphore.take();
                        tracing::warn!(?e, "sync_file export failed; CPU wait for this frame");
                        RenderFence::CpuWait
                    }
                }
            }
            _ => RenderFence::CpuWait,
        };
        Ok((
            fence,
            FrameTiming {
                cpu_submit_ns,
                cpu_queue_submit_ns: queue_ns,
                gpu: None,
                gpu_total_ns: None,
            },
        ))
    }

    /// The part of `eye`'s half of the panel (pixels: x0, y0, x1, y1 within the half)
    /// where `draw` can show; `None` where it cannot show at all.
    fn region(
        &self,
        eye: usize,
        draw: &crate::render::LayerDraw,
        half: u32,
        height: u32,
    ) -> Option<[u32; 4]> {
        let rect = match draw.bounds {
            Some(b) => self.mesh.panel_rect(eye, b),
            None => [0.0, 0.0, 1.0, 1.0],
        };
        let x0 = (rect[0] * half as f32).floor() as u32;
        let y0 = (rect[1] * height as f32).floor() as u32;
        let x1 = ((rect[2] * half as f32).ceil() as u32).min(half);
        let y1 = ((rect[3] * height as f32).ceil() as u32).min(height);
        (x1 > x0 && y1 > y0).then_some([x0, y0, x1, y1])
    }

    /// The fragment path: the grid drawn once per layer into the target (in
    /// COLOR_ATTACHMENT_OPTIMAL), blended.
    fn record_fragment(
        &self,
        d: &ash::Device,
        cb: vk::CommandBuffer,
        plan: &FramePlan,
        target: &TargetImage,
    ) -> Result<(), VkError> {
        // SAFETY: recording into `render`'s command buffer; everything bound is owned by
        // this renderer or the target and outlives the submission (see `render`).
        unsafe {
            begin_rendering(
                d,
                cb,
                target.img.view,
                target.width,
                target.height,
                [0.0, 0.0, 0.0, 1.0],
            );
            let mut bound = None;
            d.cmd_bind_vertex_buffers(cb, 0, &[self.vertices.buffer], &[0]);
            d.cmd_bind_index_buffer(cb, self.indices.buffer, 0, vk::IndexType::UINT32);
            let half = target.width / 2;
            let mut push = [0u8; PUSH_BYTES as usize];
            for eye in 0..2 {
                viewport(d, cb, (eye as u32 * half) as f32, half, target.height);
                let (first, count) = self.grid_indices[eye];
                for draw in &plan.draws[eye] {
                    let Some(l) = self.layers.get(&draw.image) else {
                        continue;
                    };
                    let kind = module_for(draw);
                    if bound != Some(kind) {
                        let pipeline =
                            *self.pipelines.get(&(target.format, kind)).ok_or_else(|| {
                                VkError::Unsupported(format!("target format {:?}", target.format))
                            })?;
                        d.cmd_bind_pipeline(cb, vk::PipelineBindPoint::GRAPHICS, pipeline);
                        bound = Some(kind);
                    }
                    // Only the panel region that can see the layer is drawn.
                    let Some([x0, y0, x1, y1]) = self.region(eye, draw, half, target.height) else {
                        continue;
                    };
                    d.cmd_set_scissor(
                        cb,
                        0,
                        &[vk::Rect2D {
                            offset: vk::Offset2D {
                                x: (eye as u32 * half + x0) as i32,
                                y: y0 as i32,
                            },
                            extent: vk::Extent2D {
                                width: x1 - x0,
                                height: y1 - y0,
                            },
                        }],
                    );
                    d.cmd_bind_descriptor_sets(
                        cb,
                        vk::PipelineBindPoint::GRAPHICS,
                        self.layout,
                        0,
                        &[l.set],
                        &[eye as u32 * self.lens_stride],
                    );
                    for (k, f) in draw.push.iter().enumerate() {
                        push[4 * k..4 * k + 4].copy_from_slice(&f.to_le_bytes());
                    }
                    d.cmd_push_constants(cb, self.layout, SHADER_STAGES, 0, &push);
                    d.cmd_draw_indexed(cb, count, 1, first, 0, 0);
                }
            }
            d.cmd_end_rendering(cb);
        }
        Ok(())
    }

    /// The compute path: per eye, one dispatch per layer over the region it can show in
    /// (the eye's first and last layers over the whole half: they start and finish every
    /// pixel), blending in the running colour; the last writes the target (left in
    /// GENERAL). An eye without layers is cleared to black.
    fn record_compute(
        &self,
        d: &ash::Device,
        cb: vk::CommandBuffer,
        plan: &FramePlan,
        target: &TargetImage,
        c: &ComputeTarget,
    ) -> Result<(), VkError> {
        let half = target.width / 2;
        let height = target.height;
        let eyes: [Vec<(&LayerImage, &crate::render::LayerDraw, [u32; 4])>; 2] =
            [0, 1].map(|eye| {
                plan.draws[eye]
                    .iter()
                    .filter_map(|draw| {
                        let l = self.layers.get(&draw.image)?;
                        Some((l, draw, self.region(eye, draw, half, height)?))
                    })
                    .collect()
            });
        // SAFETY: recording into `render`'s command buffer; everything bound is owned by
        // this renderer or the target and outlives the submission (see `render`). The
        // target was created with STORAGE usage and its storage view in `c`.
        unsafe {
            barrier(
                d,
                cb,
                target.img.image,
                1,
                vk::ImageLayout::UNDEFINED,
                vk::ImageLayout::GENERAL,
            );
            if eyes.iter().any(Vec::is_empty) {
                d.cmd_clear_color_image(
                    cb,
                    target.img.image,
                    vk::ImageLayout::GENERAL,
                    &vk::ClearColorValue {
                        float32: [0.0, 0.0, 0.0, 1.0],
                    },
                    &[color_range(1)],
                );
                barrier(
                    d,
                    cb,
                    target.img.image,
                    1,
                    vk::ImageLayout::GENERAL,
                    vk::ImageLayout::GENERAL,
                );
            }
            d.cmd_bind_descriptor_sets(
                cb,
                vk::PipelineBindPoint::COMPUTE,
                self.compute_layout,
                1,
                &[c.set],
                &[],
            );
            let mut bound = None;
            let mut push = [0u8; PUSH_BYTES as usize];
            for (eye, draws) in eyes.iter().enumerate() {
                let n = draws.len();
                for (k, &(l, draw, rect)) in draws.iter().enumerate() {
                    let (first, last) = (k == 0, k + 1 == n);
                    let [x0, y0, x1, y1] = if first || last {
                        [0, 0, half, height]
                    } else {
                        rect
                    };
                    if !first {
                        // The previous layer's running colour is this one's input.
                        let m = [vk::MemoryBarrier2::default()
                            .src_stage_mask(vk::PipelineStageFlags2::COMPUTE_SHADER)
                            .src_access_mask(vk::AccessFlags2::SHADER_STORAGE_WRITE)
                            .dst_stage_mask(vk::PipelineStageFlags2::COMPUTE_SHADER)
                            .dst_access_mask(
                                vk::AccessFlags2::SHADER_STORAGE_READ
                                    | vk::AccessFlags2::SHADER_STORAGE_WRITE,
                            )];
                        d.cmd_pipeline_barrier2(
                            cb,
                            &vk::DependencyInfo::default().memory_barriers(&m),
                        );
                    }
                    let kind = module_for(draw);
                    if bound != Some(kind) {
                        d.cmd_bind_pipeline(
                            cb,
                            vk::PipelineBindPoint::COMPUTE,
                            self.compute_pipelines[kind],
                        );
                        bound = Some(kind);
                    }
                    d.cmd_bind_descriptor_sets(
                        cb,
                        vk::PipelineBindPoint::COMPUTE,
                        self.compute_layout,
                        0,
                        &[l.set],
                        &[eye as u32 * self.lens_stride],
                    );
                    for (i, f) in draw.push.iter().enumerate() {
                        push[4 * i..4 * i + 4].copy_from_slice(&f.to_le_bytes());
                    }
                    let origin = (eye as u32 * half + x0) | (y0 << 16);
                    let size = (x1 - x0) | ((y1 - y0) << 16);
                    let mode = u32::from(first) | (u32::from(last) << 1) | ((eye as u32) << 8);
                    push[116..120].copy_from_slice(&origin.to_le_bytes());
                    push[120..124].copy_from_slice(&size.to_le_bytes());
                    push[124..128].copy_from_slice(&mode.to_le_bytes());
                    d.cmd_push_constants(cb, self.compute_layout, SHADER_STAGES, 0, &push);
                    d.cmd_dispatch(cb, (x1 - x0).div_ceil(GROUP), (y1 - y0).div_ceil(GROUP), 1);
                }
            }
        }
        Ok(())
    }

    /// Waits for the frame and reads its GPU timestamps.
    pub fn finish(&mut self, timing: &mut FrameTiming) -> Result<(), VkError> {
        self.wait()?;
        if self.skipped {
            return Ok(());
        }
        if let (Some(q), Some(period)) = (self.queries, self.ctx.timestamp_period_ns) {
            let mut ts = [0u64; QUERIES as usize];
            // SAFETY: the queries were all written by the completed submission.
            let ok = unsafe {
                self.ctx
                    .device
                    .get_query_pool_results(q, 0, &mut ts, vk::QueryResultFlags::TYPE_64)
            };
            if ok.is_ok() {
                let ns = |a: usize, b: usize| (ts[b].wrapping_sub(ts[a]) as f64 * period) as u64;
                timing.gpu = Some(GpuStages {
                    acquire_ns: ns(0, 1),
                    compose_ns: ns(1, 2),
                    release_ns: ns(2, 3),
                });
                timing.gpu_total_ns = Some(ns(0, 3));
            }
        }
        Ok(())
    }

    /// Reads a target back as RGBA8 (sRGB-encoded), after the frame completes.
    pub fn read_target(&mut self, target: &TargetImage) -> Result<RgbaImage, VkError> {
        let size = (target.width * target.height * 4) as u64;
        let staging = self.host_buffer(size, vk::BufferUsageFlags::TRANSFER_DST)?;
        let (image, w, h, buf) = (
            target.img.image,
            target.width,
            target.height,
            staging.buffer,
        );
        let layout = if target.external {
            vk::ImageLayout::GENERAL
        } else {
            vk::ImageLayout::TRANSFER_SRC_OPTIMAL
        };
        let r = self.one_shot(|d, cb| {
            let region = vk::BufferImageCopy::default()
                .image_subresource(
                    vk::ImageSubresourceLayers::default()
                        .aspect_mask(vk::ImageAspectFlags::COLOR)
                        .layer_count(1),
                )
                .image_extent(vk::Extent3D {
                    width: w,
                    height: h,
                    depth: 1,
                });
            // SAFETY: recording a copy from an image in TRANSFER_SRC_OPTIMAL (where
            // every frame leaves its target) into our staging buffer.
            unsafe { d.cmd_copy_image_to_buffer(cb, image, layout, buf, &[region]) };
        });
        let mut out = RgbaImage::new(w, h);
        if r.is_ok() {
            // SAFETY: the copy completed; the buffer is mapped and `size` bytes long.
            let src = unsafe { std::slice::from_raw_parts(staging.mapped, size as usize) };
            let bgra = target.format == vk::Format::B8G8R8A8_SRGB
                || target.format == vk::Format::B8G8R8A8_UNORM;
            for (o, i) in out.data.chunks_exact_mut(4).zip(src.chunks_exact(4)) {
                if bgra {
                    o.copy_from_slice(&[i[2], i[1], i[0], i[3]]);
                } else {
                    o.copy_from_slice(i);
                }
            }
        }
        self.free_buffer(&staging);
        r.map(|_| out)
    }
}

/// A set layout's bindings: one descriptor of each type, numbered in order.
fn bindings(
    types: &[vk::DescriptorType],
    stages: vk::ShaderStageFlags,
) -> Vec<vk::DescriptorSetLayoutBinding<'static>> {
    types
        .iter()
        .enumerate()
        .map(|(i, &t)| {
            vk::DescriptorSetLayoutBinding::default()
                .binding(i as u32)
                .descriptor_type(t)
                .descriptor_count(1)
                .stage_flags(stages)
        })
        .collect()
}

fn color_range(layers: u32) -> vk::ImageSubresourceRange {
    vk::ImageSubresourceRange::default()
        .aspect_mask(vk::ImageAspectFlags::COLOR)
        .level_count(1)
        .layer_count(layers)
}

/// A full-pipeline layout transition (the compositor's passes are short; precision in
/// stage masks buys little here).
fn barrier(
    d: &ash::Device,
    cb: vk::CommandBuffer,
    image: vk::Image,
    layers: u32,
    from: vk::ImageLayout,
    to: vk::ImageLayout,
) {
    let b = [vk::ImageMemoryBarrier2::default()
        .src_stage_mask(vk::PipelineStageFlags2::ALL_COMMANDS)
        .src_access_mask(vk::AccessFlags2::MEMORY_WRITE)
        .dst_stage_mask(vk::PipelineStageFlags2::ALL_COMMANDS)
        .dst_access_mask(vk::AccessFlags2::MEMORY_READ | vk::AccessFlags2::MEMORY_WRITE)
        .old_layout(from)
        .new_layout(to)
        .src_queue_family_index(vk::QUEUE_FAMILY_IGNORED)
        .dst_queue_family_index(vk::QUEUE_FAMILY_IGNORED)
        .image(image)
        .subresource_range(color_range(layers))];
    // SAFETY: recording into a command buffer in the recording state; the image is live.
    unsafe {
        d.cmd_pipeline_barrier2(cb, &vk::DependencyInfo::default().image_memory_barriers(&b))
    };
}

/// A transition of all layers of a colour image with a queue family ownership transfer
/// (src, dst).
fn barrier_layers(
    d: &ash::Device,
    cb: vk::CommandBuffer,
    image: vk::Image,
    layers: u32,
    from: vk::ImageLayout,
    to: vk::ImageLayout,
    (src, dst): (u32, u32),
) {
    let b = [vk::ImageMemoryBarrier2::default()
        .src_stage_mask(vk::PipelineStageFlags2::ALL_COMMANDS)
        .src_access_mask(vk::AccessFlags2::MEMORY_WRITE)
        .dst_stage_mask(vk::PipelineStageFlags2::ALL_COMMANDS)
        .dst_access_mask(vk::AccessFlags2::MEMORY_READ | vk::AccessFlags2::MEMORY_WRITE)
        .old_layout(from)
        .new_layout(to)
        .src_queue_family_index(src)
        .dst_queue_family_index(dst)
        .image(image)
        .subresource_range(color_range(layers))];
    // SAFETY: recording into a command buffer in the recording state; the image is live.
    unsafe {
        d.cmd_pipeline_barrier2(cb, &vk::DependencyInfo::default().image_memory_barriers(&b))
    };
}

/// A transition of a single-layer image, optionally with a queue family ownership
/// transfer (src, dst).
fn barrier_qf(
    d: &ash::Device,
    cb: vk::CommandBuffer,
    image: vk::Image,
    from: vk::ImageLayout,
    to: vk::ImageLayout,
    transfer: Option<(u32, u32)>,
) {
    let (src, dst) = transfer.unwrap_or((vk::QUEUE_FAMILY_IGNORED, vk::QUEUE_FAMILY_IGNORED));
    let b = [vk::ImageMemoryBarrier2::default()
        .src_stage_mask(vk::PipelineStageFlags2::ALL_COMMANDS)
        .src_access_mask(vk::AccessFlags2::MEMORY_WRITE)
        .dst_stage_mask(vk::PipelineStageFlags2::ALL_COMMANDS)
        .dst_access_mask(vk::AccessFlags2::MEMORY_READ | vk::AccessFlags2::MEMORY_WRITE)
        .old_layout(from)
        .new_layout(to)
        .src_queue_family_index(src)
        .dst_queue_family_index(dst)
        .image(image)
        .subresource_range(color_range(1))];
    // SAFETY: recording into a command buffer in the recording state; the image is live.
    unsafe {
        d.cmd_pipeline_barrier2(cb, &vk::DependencyInfo::default().image_memory_barriers(&b))
    };
}

fn begin_rendering(
    d: &ash::Device,
    cb: vk::CommandBuffer,
    view: vk::ImageView,
    width: u32,
    height: u32,
    clear: [f32; 4],
) {
    let att = [vk::RenderingAttachmentInfo::default()
        .image_view(view)
        .image_layout(vk::ImageLayout::COLOR_ATTACHMENT_OPTIMAL)
        .load_op(vk::AttachmentLoadOp::CLEAR)
        .store_op(vk::AttachmentStoreOp::STORE)
        .clear_value(vk::ClearValue {
            color: vk::ClearColorValue { float32: clear },
        })];
    let info = vk::RenderingInfo::default()
        .render_area(vk::Rect2D {
            offset: vk::Offset2D { x: 0, y: 0 },
            extent: vk::Extent2D { width, height },
        })
        .layer_count(1)
        .color_attachments(&att);
    // SAFETY: recording state; the view is a live colour attachment in the right layout.
    unsafe { d.cmd_begin_rendering(cb, &info) };
}

fn viewport(d: &ash::Device, cb: vk::CommandBuffer, x: f32, width: u32, height: u32) {
    // SAFETY: recording state; viewport and scissor are dynamic in both pipelines.
    unsafe {
        d.cmd_set_viewport(
            cb,
            0,
            &[vk::Viewport {
                x,
                y: 0.0,
                width: width as f32,
                height: height as f32,
                min_depth: 0.0,
                max_depth: 1.0,
            }],
        );
        d.cmd_set_scissor(
            cb,
            0,
            &[vk::Rect2D {
                offset: vk::Offset2D { x: x as i32, y: 0 },
                extent: vk::Extent2D { width, height },
            }],
        );
    }
}

impl Drop for GpuRenderer {
    fn drop(&mut self) {
        if let Err(e) = self.wait() {
            // The last frame may still be running on a hung or lost device: destroying
            // what it uses would be undefined behaviour. Leak it, and say so.
            tracing::error!(%e, "the compositor's last frame did not complete: its GPU objects are leaked");
            return;
        }
        let ids: Vec<u64> = self.layers.keys().copied().collect();
        for id in ids {
            let _ = self.destroy_layer_image(id);
        }
        self.free_buffer(&self.vertices);
        self.free_buffer(&self.indices);
        self.free_buffer(&self.lens);
        self.free_buffer(&self.accum);
        let d = &self.ctx.device;
        // SAFETY: the GPU is idle (waited above) and these objects are ours.
        unsafe {
            if let Some(q) = self.queries {
                d.destroy_query_pool(q, None);
            }
            d.destroy_fence(self.fence, None);
            if let Some(s) = self.sync_semaphore {
                d.destroy_semaphore(s, None);
            }
            for &s in &self.wait_semaphores {
                d.destroy_semaphore(s, None);
            }
            d.destroy_command_pool(self.cmd_pool, None);
            d.destroy_descriptor_pool(self.pool, None);
            d.destroy_sampler(self.sampler, None);
            for p in self.pipelines.values() {
                d.destroy_pipeline(*p, None);
            }
            for p in &self.compute_pipelines {
                d.destroy_pipeline(*p, None);
            }
            d.destroy_pipeline_layout(self.layout, None);
            d.destroy_descriptor_set_layout(self.set_layout, None);
            // Null handles (no compute path) are ignored by vkDestroy*.
            d.destroy_pipeline_layout(self.compute_layout, None);
            d.destroy_descriptor_set_layout(self.compute_set_layout, None);
        }
    }
}
