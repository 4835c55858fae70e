//! The compositor on real Vulkan (lavapipe on the build machines): its output against
//! the CPU reference of the same lens model, and rotational timewarp against the
//! expected pixel shift.

use glam::{Quat, Vec3};
use leasehold_compositor::render::pattern::{self, RgbaImage};
use leasehold_compositor::render::reference;
use leasehold_compositor::render::{
    self, ColorFormat, Layer, LayerFlags, ProjectionView, SubImage, yaw_shift_pixels,
};
use leasehold_compositor::vk::context::{DevicePreference, VkContext};
use leasehold_compositor::vk::renderer::GpuRenderer;
use leasehold_drivers::api::{DisplayInfo, EyeInfo, Fov, LensModel, Pose};
use leasehold_drivers::simulated::SIMULATED_CONFIG;
use leasehold_drivers::vive::config::ViveConfig;
use std::sync::Arc;

fn context() -> Arc<VkContext> {
    Arc::new(VkContext::new(DevicePreference::default()).expect(
        "a Vulkan device (lavapipe from mesa-vulkan-drivers is installed by `cargo xtask setup`)",
    ))
}

fn artifacts() -> std::path::PathBuf {
    let d = std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("compositor");
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// Renders one projection layer made of `eyes` (one image per eye, each covering the
/// eye's field of view) at `head`, rendered from `render_pose`.
fn render(
    display: &DisplayInfo,
    lens: &LensModel,
    eyes: [&RgbaImage; 2],
    render_pose: Quat,
    head: Quat,
) -> RgbaImage {
    let mut r = GpuRenderer::new(context(), lens, display).unwrap();
    let ids = [0, 1].map(|e| {
        let id = r
            .create_layer_image(eyes[e].width, eyes[e].height, 1, ColorFormat::Rgba8Srgb)
            .unwrap();
        r.upload(id, 0, eyes[e]).unwrap();
        id
    });
    let view = |e: usize| ProjectionView {
        pose: Pose {
            orientation: render_pose,
            position: display.eyes[e].eye_to_head.position,
        },
        fov: display.eyes[e].fov,
        sub_image: SubImage {
            image: ids[e],
            x: 0,
            y: 0,
            width: eyes[e].width as i32,
            height: eyes[e].height as i32,
            array_index: 0,
        },
    };
    let layers = [Layer::Projection {
        views: [view(0), view(1)],
        flags: LayerFlags::default(),
    }];
    let plan = render::plan(
        display,
        Pose {
            orientation: head,
            position: Vec3::ZERO,
        },
        &layers,
        &|id| r.layer_desc(id),
    );
    assert!(plan.rejections.is_empty(), "{:?}", plan.rejections);
    let target = r
        .create_target(display.panel_width, display.panel_height)
        .unwrap();
    let (_, mut timing) = r.render(&plan, &target, false).unwrap();
    r.finish(&mut timing).unwrap();
    let out = r.read_target(&target).unwrap();
    r.destroy_target(target).unwrap();
    out
}

#[test]
fn distortion_matches_the_cpu_reference() {
    leasehold_tests::init_tracing();
    let cfg = ViveConfig::parse(SIMULATED_CONFIG).unwrap();
    let (mut display, lens) = leasehold_drivers::vive::display_for(&cfg, None);
    // Half the Vive's panel keeps the CPU reference quick; the model is resolution-free.
    display.panel_width /= 2;
    display.panel_height /= 2;
    display.eye_render_width /= 2;
    display.eye_render_height /= 2;
    let (w, h) = (display.eye_render_width, display.eye_render_height);
    let eyes = [
        pattern::test_pattern(w, h, 0),
        pattern::test_pattern(w, h, 1),
    ];
    let gpu = render(
        &display,
        &lens,
        [&eyes[0], &eyes[1]],
        Quat::IDENTITY,
        Quat::IDENTITY,
    );
    let cpu = reference::distort(
        &lens,
        [&eyes[0], &eyes[1]],
        display.panel_width,
        display.panel_height,
    );
    let dir = artifacts();
    gpu.write_png(&dir.join("distorted-gpu.png")).unwrap();
    cpu.write_png(&dir.join("distorted-cpu.png")).unwrap();
    let psnr = reference::psnr(&gpu, &cpu);
    let max_err = reference::max_error_away_from_edges(&cpu, &gpu, 8);
    tracing::info!(
        "PSNR {psnr:.2} dB, max error away from edges {max_err}/255 ({})",
        dir.display()
    );
    assert!(psnr >= 40.0, "PSNR {psnr:.2} dB");
    assert!(
        max_err <= 2,
        "max per-channel error {max_err}/255 away from edges"
    );
    // It is really distorted: the GPU output differs from the undistorted eye images.
    let flat = reference::distort(
        &LensModel::None,
        [&eyes[0], &eyes[1]],
        display.panel_width,
        display.panel_height,
    );
    assert!(reference::psnr(&gpu, &flat) < 20.0);
}

#[test]
fn timewarp_shifts_by_the_expected_pixels() {
    leasehold_tests::init_tracing();
    let fov = Fov::symmetric(1.4, 1.4);
    let eye = |x: f32| EyeInfo {
        eye_to_head: Pose {
            orientation: Quat::IDENTITY,
            position: Vec3::new(x, 0.0, 0.0),
        },
        fov,
    };
    let display = DisplayInfo {
        panel_width: 400,
        panel_height: 200,
        eye_render_width: 200,
        eye_render_height: 200,
        refresh_hz: vec![90.0],
        scanout_to_photon_ns: 0,
        eyes: [eye(-0.03), eye(0.03)],
    };
    let line = pattern::vertical_line(200, 200, 99, 2); // centred on x = 100
    let column = |img: &RgbaImage, x0: u32| -> f32 {
        // Brightness-weighted centre of the line along the middle row.
        let (mut sum, mut w) = (0.0, 0.0);
        for x in x0..x0 + 200 {
            let v = img.pixel(x, 100)[0] as f32;
            sum += v * (x - x0) as f32;
            w += v;
        }
        sum / w
    };
    let still = render(
        &display,
        &LensModel::None,
        [&line, &line],
        Quat::IDENTITY,
        Quat::IDENTITY,
    );
    let base = column(&still, 0);
    assert!((base - 99.5).abs() < 0.6, "unwarped line at {base}");
    let angle = 0.1f32;
    // The head turned left (+yaw) since the app rendered: content moves right.
    let warped = render(
        &display,
        &LensModel::None,
        [&line, &line],
        Quat::IDENTITY,
        render::yaw(angle),
    );
    let expected = yaw_shift_pixels(&fov, 200, angle);
    for eye in 0..2 {
        let shift = column(&warped, eye * 200) - base;
        tracing::info!("eye {eye}: shift {shift:.2} px, expected {expected:.2} px");
        assert!(
            (shift - expected).abs() < 0.75,
            "eye {eye}: shift {shift:.2} vs {expected:.2}"
        );
    }
}
