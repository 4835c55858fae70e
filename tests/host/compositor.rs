//! The compositor on real Vulkan (lavapipe on the build machines): its output against
//! the CPU reference of the same lens model, and rotational timewarp against the
//! expected pixel shift.

use crate::common;
use glam::{Quat, Vec3};
use leasehold_compositor::render::pattern::{self, RgbaImage};
use leasehold_compositor::render::reference;
use leasehold_compositor::render::{
    self, ColorFormat, Layer, LayerFlags, ProjectionView, SubImage, yaw_shift_pixels,
};
use leasehold_compositor::vk::renderer::{ComposePath, GpuRenderer};
use leasehold_drivers::api::{DisplayInfo, Fov, LensModel, Pose};
use leasehold_drivers::simulated::SIMULATED_CONFIG;
use leasehold_drivers::vive::config::ViveConfig;

/// A test run once on each of the compositor's paths (`NAME::compute`,
/// `NAME::fragment`): both must match the CPU reference.
macro_rules! both_paths {
    ($name:ident) => {
        mod $name {
            use leasehold_compositor::vk::renderer::ComposePath;
            #[test]
            fn compute() {
                super::$name(ComposePath::Compute)
            }
            #[test]
            fn fragment() {
                super::$name(ComposePath::Fragment)
            }
        }
    };
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
    path: ComposePath,
) -> RgbaImage {
    let mut r = GpuRenderer::with_path(common::context(), lens, display, Some(path)).unwrap();
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

/// A new sRGB layer image holding `img`, remembered in `sources` for the CPU reference.
fn uploaded(
    r: &mut GpuRenderer,
    sources: &mut std::collections::HashMap<(u64, u32), RgbaImage>,
    img: RgbaImage,
) -> u64 {
    let id = r
        .create_layer_image(img.width, img.height, 1, ColorFormat::Rgba8Srgb)
        .unwrap();
    r.upload(id, 0, &img).unwrap();
    sources.insert((id, 0), img);
    id
}

/// The simulated Vive's display and lens, its panel and eye images `divisor` times
/// smaller (the lens model is resolution-free).
fn vive(divisor: u32) -> (DisplayInfo, LensModel) {
    let cfg = ViveConfig::parse(SIMULATED_CONFIG).unwrap();
    let (mut display, lens) = leasehold_drivers::vive::display_for(&cfg, None);
    display.panel_width /= divisor;
    display.panel_height /= divisor;
    display.eye_render_width /= divisor;
    display.eye_render_height /= divisor;
    (display, lens)
}

fn distortion_matches_the_cpu_reference(path: ComposePath) {
    leasehold_tests::init_tracing();
    let _vulkan = crate::common::validated();
    // Half the Vive's panel keeps the CPU reference quick; the model is resolution-free.
    let (display, lens) = vive(2);
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
        path,
    );
    let cpu = reference::distort(
        &lens,
        [&eyes[0], &eyes[1]],
        display.panel_width,
        display.panel_height,
    );
    let dir = artifacts();
    gpu.write_png(&dir.join(format!("distorted-gpu-{path}.png")))
        .unwrap();
    cpu.write_png(&dir.join(format!("distorted-cpu-{path}.png")))
        .unwrap();
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

fn timewarp_shifts_by_the_expected_pixels(path: ComposePath) {
    leasehold_tests::init_tracing();
    let _vulkan = crate::common::validated();
    let fov = Fov::symmetric(1.4, 1.4);
    let display = common::display(200, 1.4, 90.0);
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
        path,
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
        path,
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

fn small_display() -> DisplayInfo {
    common::display(128, 1.4, 90.0)
}

fn solid(w: u32, h: u32, c: [u8; 4]) -> RgbaImage {
    let mut img = RgbaImage::new(w, h);
    for y in 0..h {
        for x in 0..w {
            img.put(x, y, c);
        }
    }
    img
}

fn full(image: u64, w: u32, h: u32) -> SubImage {
    SubImage {
        image,
        x: 0,
        y: 0,
        width: w as i32,
        height: h as i32,
        array_index: 0,
    }
}

fn frame(r: &mut GpuRenderer, display: &DisplayInfo, layers: &[Layer]) -> (RgbaImage, usize) {
    let plan = render::plan(display, Pose::IDENTITY, layers, &|id| r.layer_desc(id));
    let target = r
        .create_target(display.panel_width, display.panel_height)
        .unwrap();
    let (_, mut t) = r.render(&plan, &target, false).unwrap();
    r.finish(&mut t).unwrap();
    let out = r.read_target(&target).unwrap();
    r.destroy_target(target).unwrap();
    (out, plan.rejections.len())
}

fn background(id: u64, display: &DisplayInfo, flags: LayerFlags) -> Layer {
    let v = |e: usize| ProjectionView {
        pose: Pose::IDENTITY,
        fov: display.eyes[e].fov,
        sub_image: full(id, 128, 128),
    };
    Layer::Projection {
        views: [v(0), v(1)],
        flags,
    }
}

fn quad_layers_blend_by_their_flags(path: ComposePath) {
    leasehold_tests::init_tracing();
    let _vulkan = crate::common::validated();
    let display = small_display();
    let mut r =
        GpuRenderer::with_path(common::context(), &LensModel::None, &display, Some(path)).unwrap();
    let blue = r
        .create_layer_image(128, 128, 1, ColorFormat::Rgba8Srgb)
        .unwrap();
    r.upload(blue, 0, &solid(128, 128, [0, 0, 255, 255]))
        .unwrap();
    let red = r
        .create_layer_image(64, 64, 1, ColorFormat::Rgba8Srgb)
        .unwrap();
    r.upload(red, 0, &solid(64, 64, [255, 0, 0, 128])).unwrap();
    let quad = |flags| Layer::Quad {
        eyes: [true, true],
        sub_image: full(red, 64, 64),
        pose: Pose {
            orientation: Quat::IDENTITY,
            position: Vec3::new(0.0, 0.0, -1.0),
        },
        size: glam::Vec2::new(0.5, 0.5),
        flags,
    };
    let bg = background(blue, &display, LayerFlags::default());
    // Opaque: the quad's alpha is ignored without BLEND_TEXTURE_SOURCE_ALPHA.
    let (out, rej) = frame(&mut r, &display, &[bg, quad(LayerFlags::default())]);
    assert_eq!(rej, 0);
    for eye in 0..2 {
        let c = out.pixel(64 + eye * 128, 64);
        assert!(c[0] > 250 && c[2] < 5, "eye {eye} centre {c:?}");
        assert_eq!(
            out.pixel(8 + eye * 128, 8)[..3],
            [0, 0, 255],
            "outside the quad"
        );
    }
    // Unpremultiplied alpha 0.5 over blue: half of each, mixed in linear light.
    let flags = LayerFlags {
        blend_texture_source_alpha: true,
        unpremultiplied_alpha: true,
    };
    let (out, _) = frame(&mut r, &display, &[bg, quad(flags)]);
    let a = 128.0 / 255.0;
    let expect_r = reference::linear_to_srgb(a);
    let expect_b = reference::linear_to_srgb(1.0 - a);
    let c = out.pixel(64, 64);
    assert!(
        c[0].abs_diff(expect_r) <= 2 && c[2].abs_diff(expect_b) <= 2,
        "{c:?} vs {expect_r}/{expect_b}"
    );
    // The quad is 0.5 m wide at 1 m: tan = 0.25 each side of centre, seen from the
    // left eye 3 cm to the left (so shifted right by tan = 0.03).
    let px = |tan: f32| 64.0 + tan / (0.7f32).tan() * 64.0;
    let inside = (px(0.25 + 0.03) - 1.5) as u32;
    let outside = (px(0.25 + 0.03) + 1.5) as u32;
    assert!(out.pixel(inside, 64)[0] > 100, "inside the quad's edge");
    assert_eq!(
        out.pixel(outside, 64)[..3],
        [0, 0, 255],
        "outside the quad's edge"
    );
}

fn bad_layers_are_corrected_and_the_compositor_keeps_running(path: ComposePath) {
    leasehold_tests::init_tracing();
    let _vulkan = crate::common::validated();
    let display = small_display();
    let mut r =
        GpuRenderer::with_path(common::context(), &LensModel::None, &display, Some(path)).unwrap();
    let green = r
        .create_layer_image(128, 128, 1, ColorFormat::Rgba8Srgb)
        .unwrap();
    r.upload(green, 0, &solid(128, 128, [0, 255, 0, 255]))
        .unwrap();
    let gone = r
        .create_layer_image(16, 16, 1, ColorFormat::Rgba8Srgb)
        .unwrap();
    r.destroy_layer_image(gone).unwrap();
    let nan = Pose {
        orientation: Quat::from_xyzw(f32::NAN, 0.0, 0.0, 1.0),
        position: Vec3::ZERO,
    };
    let v = |e: usize, pose, sub| ProjectionView {
        pose,
        fov: display.eyes[e].fov,
        sub_image: sub,
    };
    let layers = [
        // NaN pose: drawn without timewarp.
        Layer::Projection {
            views: [
                v(0, nan, full(green, 128, 128)),
                v(1, nan, full(green, 128, 128)),
            ],
            flags: LayerFlags::default(),
        },
        // Sub-image far outside its image: dropped.
        Layer::Quad {
            eyes: [true, true],
            sub_image: SubImage {
                x: 1000,
                ..full(green, 10, 10)
            },
            pose: Pose::IDENTITY,
            size: glam::Vec2::ONE,
            flags: LayerFlags::default(),
        },
        // An image that no longer exists: dropped.
        Layer::Quad {
            eyes: [true, false],
            sub_image: full(gone, 16, 16),
            pose: Pose::IDENTITY,
            size: glam::Vec2::ONE,
            flags: LayerFlags::default(),
        },
        // Array layer beyond the image's: dropped.
        Layer::Quad {
            eyes: [false, true],
            sub_image: SubImage {
                array_index: 3,
                ..full(green, 128, 128)
            },
            pose: Pose::IDENTITY,
            size: glam::Vec2::ONE,
            flags: LayerFlags::default(),
        },
    ];
    let (out, rejections) = frame(&mut r, &display, &layers);
    assert!(rejections >= 5, "{rejections} corrections reported");
    assert_eq!(out.pixel(64, 64)[..3], [0, 255, 0]);
    assert_eq!(out.pixel(192, 64)[..3], [0, 255, 0]);
    // Still running: a clean frame afterwards is right and reports nothing.
    let (out, rejections) = frame(
        &mut r,
        &display,
        &[background(green, &display, LayerFlags::default())],
    );
    assert_eq!(rejections, 0);
    assert_eq!(out.pixel(10, 10)[..3], [0, 255, 0]);
}

/// Cylinder and equirect layers (both kinds; with a quad, over a projection layer), drawn
/// by the GPU and by the CPU reference of the pass, compared by PSNR. A lens-less
/// display, so the panel shows each eye's field of view as it is.
fn cylinder_and_equirect_layers_match_the_cpu_reference(path: ComposePath) {
    leasehold_tests::init_tracing();
    let _vulkan = crate::common::validated();
    let display = common::display(160, 1.6, 90.0);
    let mut r =
        GpuRenderer::with_path(common::context(), &LensModel::None, &display, Some(path)).unwrap();
    let mut sources = std::collections::HashMap::new();
    let mut image = |r: &mut GpuRenderer, img: RgbaImage| uploaded(r, &mut sources, img);
    let bg = image(&mut r, pattern::test_pattern(128, 128, 0));
    let cyl_img = image(&mut r, pattern::test_pattern(192, 96, 1));
    let eq_img = image(&mut r, pattern::test_pattern(256, 128, 0));
    let quad_img = image(&mut r, solid(32, 32, [255, 255, 0, 160]));
    let yawed = |a: f32, z: f32| Pose {
        orientation: Quat::from_rotation_y(a),
        position: Vec3::new(0.0, 0.1, z),
    };
    let layers = [
        background(bg, &display, LayerFlags::default()),
        Layer::Equirect {
            eyes: [true, true],
            sub_image: full(eq_img, 256, 128),
            pose: yawed(0.3, 0.0),
            radius: 0.0,
            central_horizontal_angle: 1.2,
            upper_vertical_angle: 0.4,
            lower_vertical_angle: -0.3,
            flags: LayerFlags::default(),
        },
        Layer::Cylinder {
            eyes: [true, true],
            sub_image: full(cyl_img, 192, 96),
            pose: yawed(-0.2, 0.2),
            radius: 1.5,
            central_angle: 0.9,
            aspect_ratio: 2.5,
            flags: LayerFlags::default(),
        },
        Layer::EquirectScaleBias {
            eyes: [false, true],
            sub_image: full(eq_img, 256, 128),
            pose: yawed(-0.6, 0.0),
            radius: 3.0,
            scale: glam::Vec2::new(4.0, 3.0),
            bias: glam::Vec2::new(-1.5, -1.2),
            flags: LayerFlags::default(),
        },
        Layer::Quad {
            eyes: [true, false],
            sub_image: full(quad_img, 32, 32),
            pose: yawed(0.1, -1.0),
            size: glam::Vec2::new(0.3, 0.3),
            flags: LayerFlags {
                blend_texture_source_alpha: true,
                unpremultiplied_alpha: true,
            },
        },
    ];
    let plan = render::plan(&display, Pose::IDENTITY, &layers, &|id| r.layer_desc(id));
    assert!(plan.rejections.is_empty(), "{:?}", plan.rejections);
    let (gpu, rejected) = frame(&mut r, &display, &layers);
    assert_eq!(rejected, 0);
    let cpu = cpu_panel(&LensModel::None, &display, &plan, &|id, layer| {
        sources.get(&(id, layer)).cloned()
    });
    compare(&format!("layers-{path}"), &gpu, &cpu);
    // Each layer is really there: the cylinder and the equirect cover part of each eye,
    // and differ from the background alone.
    let only_bg = render::plan(&display, Pose::IDENTITY, &layers[..1], &|id| {
        r.layer_desc(id)
    });
    let alone = cpu_panel(&LensModel::None, &display, &only_bg, &|id, layer| {
        sources.get(&(id, layer)).cloned()
    });
    assert!(
        reference::psnr(&gpu, &alone) < 20.0,
        "the layers changed the image"
    );
}

/// Quads (small and large, near the centre and in the periphery) and a cylinder over a
/// projection layer, through a real lens model: the GPU's one pass (each quad drawn only
/// where the lens can show it) against the CPU reference evaluated per pixel.
fn layers_through_the_lens_match_the_cpu_reference(path: ComposePath) {
    leasehold_tests::init_tracing();
    let _vulkan = crate::common::validated();
    let (display, lens) = vive(4);
    let mut r = GpuRenderer::with_path(common::context(), &lens, &display, Some(path)).unwrap();
    let mut sources = std::collections::HashMap::new();
    let mut image = |r: &mut GpuRenderer, img: RgbaImage| uploaded(r, &mut sources, img);
    let (w, h) = (display.eye_render_width, display.eye_render_height);
    let bg = image(&mut r, pattern::test_pattern(w, h, 0));
    let small = image(&mut r, pattern::test_pattern(48, 48, 1));
    let glass = image(&mut r, solid(16, 16, [0, 255, 255, 128]));
    let cyl_img = image(&mut r, pattern::test_pattern(96, 48, 1));
    let at = |x: f32, y: f32, z: f32, yaw: f32| Pose {
        orientation: Quat::from_rotation_y(yaw),
        position: Vec3::new(x, y, z),
    };
    let quad = |id: u64, px: u32, pose: Pose, size: f32, flags: LayerFlags| Layer::Quad {
        eyes: [true, true],
        sub_image: full(id, px, px),
        pose,
        size: glam::Vec2::splat(size),
        flags,
    };
    let blend = LayerFlags {
        blend_texture_source_alpha: true,
        unpremultiplied_alpha: true,
    };
    let layers = [
        background(bg, &display, LayerFlags::default()),
        Layer::Cylinder {
            eyes: [true, true],
            sub_image: full(cyl_img, 96, 48),
            pose: at(0.0, -0.3, 0.0, 0.4),
            radius: 2.0,
            central_angle: 1.0,
            aspect_ratio: 3.0,
            flags: LayerFlags::default(),
        },
        quad(
            small,
            48,
            at(0.0, 0.05, -1.0, 0.0),
            0.12,
            LayerFlags::default(),
        ),
        quad(
            small,
            48,
            at(-0.9, 0.6, -1.2, 0.5),
            0.4,
            LayerFlags::default(),
        ),
        quad(glass, 16, at(0.3, -0.2, -0.8, -0.3), 0.5, blend),
    ];
    let plan = render::plan(&display, Pose::IDENTITY, &layers, &|id| r.layer_desc(id));
    assert!(plan.rejections.is_empty(), "{:?}", plan.rejections);
    assert!(
        plan.draws
            .iter()
            .flatten()
            .filter(|d| d.bounds.is_some())
            .count()
            >= 4,
        "the quads are bounded"
    );
    let (gpu, rejected) = frame(&mut r, &display, &layers);
    assert_eq!(rejected, 0);
    let cpu = cpu_panel(&lens, &display, &plan, &|id, layer| {
        sources.get(&(id, layer)).cloned()
    });
    compare(&format!("lens-layers-{path}"), &gpu, &cpu);
}

/// Projection layers over projection layers through the lens: one that blends by its
/// unpremultiplied source alpha (a gradient from clear to opaque across each eye), one
/// premultiplied from a sub-image of a larger image and rendered from a turned pose, over
/// an opaque one; the GPU against the CPU reference.
fn projection_layers_blend_by_their_source_alpha(path: ComposePath) {
    leasehold_tests::init_tracing();
    let _vulkan = crate::common::validated();
    let (display, lens) = vive(4);
    let mut r = GpuRenderer::with_path(common::context(), &lens, &display, Some(path)).unwrap();
    let mut sources = std::collections::HashMap::new();
    let (w, h) = (display.eye_render_width, display.eye_render_height);
    let bg = uploaded(&mut r, &mut sources, pattern::test_pattern(w, h, 0));
    let mut faded = pattern::test_pattern(w, h, 1);
    for y in 0..h {
        for x in 0..w {
            let mut c = faded.pixel(x, y);
            c[3] = (255 * x / (w - 1)) as u8;
            faded.put(x, y, c);
        }
    }
    let faded = uploaded(&mut r, &mut sources, faded);
    // Premultiplied: colour at most alpha; the view shows its middle (w/2 x h/2).
    let mut glass = RgbaImage::new(2 * w, 2 * h);
    for y in 0..2 * h {
        for x in 0..2 * w {
            let a = 64 + (128 * y / (2 * h - 1)) as u8;
            let v = |k: u32| ((a as u32 * ((x / 8 + y / 8 + k) % 3)) / 2) as u8;
            glass.put(x, y, [v(0), v(1), v(2), a]);
        }
    }
    let glass = uploaded(&mut r, &mut sources, glass);
    let layer = |sub: SubImage, pose: Pose, flags: LayerFlags| {
        let v = |e: usize| ProjectionView {
            pose,
            fov: display.eyes[e].fov,
            sub_image: sub,
        };
        Layer::Projection {
            views: [v(0), v(1)],
            flags,
        }
    };
    let middle = SubImage {
        image: glass,
        x: (w / 2) as i32,
        y: (h / 2) as i32,
        width: w as i32,
        height: h as i32,
        array_index: 0,
    };
    let turned = Pose {
        orientation: Quat::from_rotation_y(0.05) * Quat::from_rotation_x(-0.03),
        position: Vec3::ZERO,
    };
    let layers = [
        background(bg, &display, LayerFlags::default()),
        layer(
            full(faded, w, h),
            Pose::IDENTITY,
            LayerFlags {
                blend_texture_source_alpha: true,
                unpremultiplied_alpha: true,
            },
        ),
        layer(
            middle,
            turned,
            LayerFlags {
                blend_texture_source_alpha: true,
                unpremultiplied_alpha: false,
            },
        ),
    ];
    let plan = render::plan(&display, Pose::IDENTITY, &layers, &|id| r.layer_desc(id));
    assert!(plan.rejections.is_empty(), "{:?}", plan.rejections);
    let (gpu, _) = frame(&mut r, &display, &layers);
    let cpu = cpu_panel(&lens, &display, &plan, &|id, layer| {
        sources.get(&(id, layer)).cloned()
    });
    compare(&format!("alpha-projections-{path}"), &gpu, &cpu);
    // The layers show: the panel is neither the background alone nor the top layer alone.
    let (alone, _) = frame(&mut r, &display, &layers[..1]);
    assert!(
        reference::psnr(&gpu, &alone) < 30.0,
        "the blended layers show"
    );
}

/// A cube map layer: six faces of different patterns around the viewer, turned, drawn
/// by the GPU and by the CPU reference.
fn cube_layers_match_the_cpu_reference(path: ComposePath) {
    leasehold_tests::init_tracing();
    let _vulkan = crate::common::validated();
    let display = common::display(160, 1.6, 90.0);
    let mut r =
        GpuRenderer::with_path(common::context(), &LensModel::None, &display, Some(path)).unwrap();
    let cube = r
        .create_layer_image(64, 64, 6, ColorFormat::Rgba8Srgb)
        .unwrap();
    let faces: Vec<RgbaImage> = (0..6)
        .map(|f| {
            let mut img = pattern::test_pattern(64, 64, f % 2);
            // Each face its own tint, so a wrong face shows.
            for y in 0..64 {
                for x in 0..64 {
                    let mut c = img.pixel(x, y);
                    c[f % 3] = c[f % 3].saturating_add(60 * (f as u8 / 3 + 1));
                    img.put(x, y, c);
                }
            }
            img
        })
        .collect();
    for (f, img) in faces.iter().enumerate() {
        r.upload(cube, f as u32, img).unwrap();
    }
    let layers = [Layer::Cube {
        eyes: [true, true],
        sub_image: full(cube, 64, 64),
        orientation: Quat::from_rotation_y(0.7) * Quat::from_rotation_x(0.4),
        flags: LayerFlags::default(),
    }];
    let plan = render::plan(&display, Pose::IDENTITY, &layers, &|id| r.layer_desc(id));
    assert!(plan.rejections.is_empty(), "{:?}", plan.rejections);
    let (gpu, _) = frame(&mut r, &display, &layers);
    let cpu = cpu_panel(&LensModel::None, &display, &plan, &|_, layer| {
        faces.get(layer as usize).cloned()
    });
    compare(&format!("cube-{path}"), &gpu, &cpu);
    // Turned 0.7 rad about Y then 0.4 about X: the view shows more than one face.
    let tints: std::collections::BTreeSet<[u8; 3]> = (0..4)
        .flat_map(|i| (0..4).map(move |j| (i, j)))
        .map(|(i, j)| {
            let c = gpu.pixel(20 + 40 * i, 20 + 40 * j);
            [c[0] / 64, c[1] / 64, c[2] / 64]
        })
        .collect();
    assert!(tints.len() > 2, "several faces in view: {tints:?}");
}

/// The panel the CPU reference makes of a plan through `lens`.
fn cpu_panel(
    lens: &LensModel,
    display: &DisplayInfo,
    plan: &render::FramePlan,
    images: &dyn Fn(u64, u32) -> Option<RgbaImage>,
) -> RgbaImage {
    reference::compose_panel(
        lens,
        [&plan.draws[0], &plan.draws[1]],
        images,
        display.panel_width,
        display.panel_height,
    )
}

/// The GPU's panel against the CPU reference's: at least 40 dB PSNR and at most 3/255
/// away from edges; both written as `<name>-gpu.png` and `<name>-cpu.png`.
fn compare(name: &str, gpu: &RgbaImage, cpu: &RgbaImage) {
    let dir = artifacts();
    gpu.write_png(&dir.join(format!("{name}-gpu.png"))).unwrap();
    cpu.write_png(&dir.join(format!("{name}-cpu.png"))).unwrap();
    let psnr = reference::psnr(gpu, cpu);
    let worst = reference::max_error_away_from_edges(cpu, gpu, 8);
    tracing::info!(psnr, worst, "{name}: GPU vs CPU");
    assert!(psnr >= 40.0, "{name}: PSNR {psnr:.1} dB");
    assert!(worst <= 3, "{name}: max error away from edges {worst}");
}

both_paths!(distortion_matches_the_cpu_reference);
both_paths!(timewarp_shifts_by_the_expected_pixels);
both_paths!(quad_layers_blend_by_their_flags);
both_paths!(bad_layers_are_corrected_and_the_compositor_keeps_running);
both_paths!(cylinder_and_equirect_layers_match_the_cpu_reference);
both_paths!(layers_through_the_lens_match_the_cpu_reference);
both_paths!(projection_layers_blend_by_their_source_alpha);
both_paths!(cube_layers_match_the_cpu_reference);
