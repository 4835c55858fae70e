//! The compositor on the real display path: it renders (lavapipe, in the guest) straight
//! into the leased headset output's scanout buffers, imported as dma-bufs; every frame
//! reaches the screen through a fence-gated page flip; the buffer being scanned out,
//! read back through a dma-buf mapping, matches the CPU reference of the lens model.

use crate::common::{headset_card, period_ns};
use leasehold_compositor::kms::{Lease, Output, ScanoutRing};
use leasehold_compositor::render::pattern::{self, RgbaImage};
use leasehold_compositor::render::{
    self, ColorFormat, Layer, LayerFlags, ProjectionView, SubImage, reference,
};
use leasehold_compositor::target::Target;
use leasehold_compositor::target::kms::{KmsTarget, RenderPath};
use leasehold_compositor::vk::context::{DevicePreference, VkContext};
use leasehold_compositor::vk::renderer::{GpuRenderer, RenderFence};
use leasehold_drivers::api::Pose;
use leasehold_drivers::simulated::SIMULATED_CONFIG;
use leasehold_drivers::vive::config::ViveConfig;
use leasehold_tests::init_tracing;
use std::sync::Arc;

/// XRGB8888 rows (B, G, R, X in memory) with a stride, as RGBA.
fn from_xrgb(bytes: &[u8], w: u32, h: u32, stride: u32) -> RgbaImage {
    let mut img = RgbaImage::new(w, h);
    for y in 0..h {
        for x in 0..w {
            let i = (y * stride + x * 4) as usize;
            img.put(x, y, [bytes[i + 2], bytes[i + 1], bytes[i], 255]);
        }
    }
    img
}

/// The buffer being scanned out, read through its dma-buf (DMA_BUF_IOCTL_SYNC bracketed).
fn on_screen(target: &KmsTarget<'_>, w: u32, h: u32) -> RgbaImage {
    let on = target
        .ring()
        .state()
        .on_screen()
        .expect("a buffer on screen");
    let b = target.ring().buffer(on);
    b.read_with(|bytes| from_xrgb(bytes, w, h, b.stride))
        .expect("read the scanned-out buffer through its dma-buf")
}

#[test]
fn compositor_frames_reach_the_headset_through_fenced_flips() {
    init_tracing();
    let (card, headset, _) = headset_card();
    let lease = Lease::create(card, &headset).expect("lease");
    let lessee = lease.card();
    let mode = headset.preferred_mode().expect("mode");
    let (w, h) = (u32::from(mode.size().0), u32::from(mode.size().1));
    let mut ring = ScanoutRing::new(lessee, (w, h), 3).expect("scanout ring");
    let first = ring.acquire().unwrap();
    ring.buffer(first).write_with(|b| b.fill(0)).unwrap();
    let mut out = Output::new(lessee, lease.connector, lease.crtc, lease.plane).expect("output");
    ring.queue(first).unwrap();
    out.modeset(&mode, ring.buffer(first).fb).expect("modeset");
    ring.flipped(first).unwrap();

    // The display's node picks the render device where one matches (virtio-gpu has no
    // Vulkan driver here: lavapipe renders, importing the scanout buffers).
    let node = lessee.device_node();
    assert!(node.is_some(), "the lessee fd names a device node");
    let ctx =
        Arc::new(VkContext::new(DevicePreference { drm_node: node }).expect("Vulkan in the lab"));
    let cfg = ViveConfig::parse(SIMULATED_CONFIG).unwrap();
    let (mut display, lens) = leasehold_drivers::vive::display_for(&cfg, None);
    display.panel_width = w;
    display.panel_height = h;
    display.eye_render_width = w / 2;
    display.eye_render_height = h;
    let mut r = GpuRenderer::new(ctx, &lens, &display).expect("renderer");
    // lavapipe under TCG takes seconds per frame.
    r.set_gpu_timeout(std::time::Duration::from_secs(120));
    let eyes = [0, 1].map(|e| pattern::test_pattern(w / 2, h, e));
    let ids = [0, 1].map(|e| {
        let id = r
            .create_layer_image(w / 2, h, 1, ColorFormat::Rgba8Srgb)
            .unwrap();
        r.upload(id, 0, &eyes[e]).unwrap();
        id
    });
    let view = |e: usize| ProjectionView {
        pose: Pose::IDENTITY,
        fov: display.eyes[e].fov,
        sub_image: SubImage {
            image: ids[e],
            x: 0,
            y: 0,
            width: (w / 2) as i32,
            height: h as i32,
            array_index: 0,
        },
    };
    let layers = [Layer::Projection {
        views: [view(0), view(1)],
        flags: LayerFlags::default(),
    }];
    let plan = render::plan(&display, Pose::IDENTITY, &layers, &|id| r.layer_desc(id));
    let period = period_ns(&mode);
    let mut target =
        KmsTarget::new(out, ring, &mut r, period).expect("scanout buffers import into Vulkan");
    tracing::info!(target = %target.describe(), sync_file = r.exports_sync_file(), "compositing into the headset");

    // Each frame costs lavapipe about 2 s under TCG (with LP_NATIVE_VECTOR_WIDTH=128).
    let frames = 4u64;
    let mut last_seq = None;
    let mut paths = std::collections::BTreeMap::new();
    for f in 0..frames {
        let t0 = std::time::Instant::now();
        let (fence, _) = {
            let img = target.acquire().expect("a free scanout buffer");
            // Alternate the two fence paths: the exported sync_file (IN_FENCE_FD) and
            // the CPU wait.
            r.render(&plan, img, f % 2 == 0).expect("render")
        };
        let kind = match &fence {
            RenderFence::SyncFile(_) => "sync_file (IN_FENCE_FD)",
            RenderFence::Signalled => "already signalled",
            RenderFence::CpuWait => "CPU wait",
        };
        *paths.entry(kind).or_insert(0) += 1;
        let fb = target.present(&mut r, fence, 0).expect("fence-gated flip");
        if let Some(prev) = last_seq {
            assert!(fb.sequence > prev, "each frame flips at a later vblank");
        }
        last_seq = Some(fb.sequence);
        tracing::info!(
            f,
            ms = t0.elapsed().as_secs_f64() * 1e3,
            sequence = fb.sequence,
            "frame on screen"
        );
    }
    assert_eq!(target.flips(), frames, "one flip per frame submitted");
    if r.exports_sync_file() {
        assert!(
            !paths.contains_key("CPU wait") || paths.len() > 1,
            "the sync_file path was used: {paths:?}"
        );
    }
    tracing::info!(?paths, gate = ?target.output().fence_gate(), "render fences");

    let shown = on_screen(&target, w, h);
    let cpu = reference::distort(&lens, [&eyes[0], &eyes[1]], w, h);
    let psnr = reference::psnr(&shown, &cpu);
    let max_err = reference::max_error_away_from_edges(&cpu, &shown, 8);
    tracing::info!(psnr, max_err, "scanned-out frame vs CPU reference");
    assert!(psnr >= 40.0, "PSNR {psnr:.2} dB against the reference");
    assert!(max_err <= 2, "max error {max_err}/255 away from edges");
    assert_eq!(target.render_path(), RenderPath::Import);

    // The multi-GPU path: render into the renderer's own images, copy into the scanout
    // buffers through CPU-visible memory. Same picture on screen.
    let (out, ring) = target.into_parts(&mut r).unwrap();
    let mut target = KmsTarget::new_copying(out, ring, &mut r, period).expect("copy path");
    assert_eq!(target.render_path(), RenderPath::Copy);
    for f in 0..2 {
        let (fence, _) = {
            let img = target.acquire().expect("a free scanout buffer");
            r.render(&plan, img, f == 0).expect("render")
        };
        target
            .present(&mut r, fence, 0)
            .expect("flip after the copy");
    }
    assert_eq!(target.flips(), 2);
    let shown = on_screen(&target, w, h);
    let psnr = reference::psnr(&shown, &cpu);
    tracing::info!(psnr, "copy path: scanned-out frame vs CPU reference");
    assert!(psnr >= 40.0, "copy path PSNR {psnr:.2} dB");
    target.destroy(&mut r).unwrap();
}
