//! `leasehold bench compositor`: what one composited frame costs — two eye layers (and
//! optionally quads over them) through timewarp, lens distortion and chromatic
//! aberration into a panel-sized target, in one pass — on the CPU (planning, recording
//! and submitting) and on the GPU (timestamp queries per stage), with the pass's memory
//! traffic against what a plain buffer copy achieves on the same device.

use anyhow::Context;
use clap::Args;
use glam::Vec3;
use leasehold_compositor::render::{
    self, ColorFormat, Layer, LayerFlags, ProjectionView, SubImage, pattern,
};
use leasehold_compositor::target::Target;
use leasehold_compositor::target::headless::HeadlessTarget;
use leasehold_compositor::vk::context::{DevicePreference, VkContext};
use leasehold_compositor::vk::renderer::{ComposePath, GpuRenderer};
use leasehold_drivers::api::{Pose, TrackedDevice};
use leasehold_drivers::simulated::{SIMULATED_CONFIG, SimulatedHmd};
use leasehold_drivers::vive::config::ViveConfig;
use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

#[derive(Args, Debug)]
pub struct CompositorArgs {
    /// Frames to time (after 5 warm-up frames).
    #[arg(long, default_value_t = 60)]
    frames: u32,
    /// Eye layer size WxH (each eye); the panel is two of these side by side.
    #[arg(long, default_value = "1440x1600")]
    eye: String,
    /// Quad layers over the projection layer (half-transparent 512x512 panels, both eyes).
    #[arg(long, default_value_t = 0)]
    layers: u32,
    /// Present through the headless target's simulated vblank clock (else back to back).
    #[arg(long)]
    paced: bool,
    /// The compositor's path: compute or fragment (default: the one the renderer picks
    /// for this GPU, or LEASEHOLD_COMPOSE).
    #[arg(long, value_parser = ["compute", "fragment"])]
    path: Option<String>,
    /// Where the CSV and the last frame's PNG go.
    #[arg(long, default_value = "leasehold-bench")]
    out: PathBuf,
}

fn parse_size(s: &str) -> anyhow::Result<(u32, u32)> {
    let (w, h) = s.split_once('x').context("--eye is WxH, e.g. 1440x1600")?;
    let (w, h): (u32, u32) = (w.parse()?, h.parse()?);
    anyhow::ensure!(
        (16..=8192).contains(&w) && (16..=8192).contains(&h),
        "--eye {w}x{h} is out of range"
    );
    Ok((w, h))
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn p99(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    v[((v.len() - 1) as f64 * 0.99).round() as usize]
}

pub fn compositor(a: CompositorArgs) -> anyhow::Result<()> {
    let (ew, eh) = parse_size(&a.eye)?;
    let ctx = Arc::new(VkContext::new(DevicePreference::default()).context("Vulkan")?);
    println!(
        "leasehold compositor bench: {} ({}), queue priority {:?}, render fence: {}",
        ctx.gpu.name,
        ctx.gpu.driver.clone().unwrap_or_default(),
        ctx.priority,
        if ctx.semaphore_fd.is_some() {
            "sync_file export"
        } else {
            "CPU wait"
        }
    );
    // The simulated Vive's lens and projection, at the requested eye and panel size.
    let cfg = ViveConfig::parse(SIMULATED_CONFIG)?;
    let (mut display, lens) = leasehold_drivers::vive::display_for(&cfg, None);
    display.eye_render_width = ew;
    display.eye_render_height = eh;
    display.panel_width = 2 * ew;
    display.panel_height = eh;
    println!(
        "  two {ew}x{eh} eye layers{} -> {}x{} panel, {} frames",
        if a.layers > 0 {
            format!(" + {} quads of 512x512", a.layers)
        } else {
            String::new()
        },
        display.panel_width,
        display.panel_height,
        a.frames
    );
    let path = match a.path.as_deref() {
        Some("compute") => Some(ComposePath::Compute),
        Some("fragment") => Some(ComposePath::Fragment),
        _ => ComposePath::from_env(),
    };
    let mut r = GpuRenderer::with_path(ctx.clone(), &lens, &display, path)?;
    println!("  pass: {} path", r.path());
    r.set_gpu_timeout(std::time::Duration::from_secs(300));
    let mut ids = [0u64; 2];
    for (e, id) in ids.iter_mut().enumerate() {
        *id = r.create_layer_image(ew, eh, 1, ColorFormat::Rgba8Srgb)?;
        r.upload(*id, 0, &pattern::test_pattern(ew, eh, e))?;
    }
    // Quads: half-transparent test patterns on a grid 1.5 m ahead, each a little nearer.
    const QUAD_PX: u32 = 512;
    let mut quads = Vec::new();
    for k in 0..a.layers {
        let id = r.create_layer_image(QUAD_PX, QUAD_PX, 1, ColorFormat::Rgba8Srgb)?;
        let mut img = pattern::test_pattern(QUAD_PX, QUAD_PX, k as usize % 2);
        for y in 0..QUAD_PX {
            for x in 0..QUAD_PX {
                let mut c = img.pixel(x, y);
                c[3] = 160;
                img.put(x, y, c);
            }
        }
        r.upload(id, 0, &img)?;
        let (col, row) = ((k % 4) as f32, ((k / 4) % 3) as f32);
        quads.push(Layer::Quad {
            eyes: [true, true],
            sub_image: SubImage {
                image: id,
                x: 0,
                y: 0,
                width: QUAD_PX as i32,
                height: QUAD_PX as i32,
                array_index: 0,
            },
            pose: Pose {
                orientation: glam::Quat::IDENTITY,
                position: Vec3::new(-0.6 + 0.4 * col, 0.3 - 0.3 * row, -1.5 + 0.01 * k as f32),
            },
            size: glam::Vec2::new(0.5, 0.5),
            flags: LayerFlags {
                blend_texture_source_alpha: true,
                unpremultiplied_alpha: true,
            },
        });
    }
    // The pass's least memory traffic per frame: every layer's image read once, the
    // panel written once.
    let traffic_bytes = 4
        * (2 * u64::from(ew) * u64::from(eh)
            + u64::from(a.layers) * 2 * u64::from(QUAD_PX * QUAD_PX)
            + u64::from(display.panel_width) * u64::from(display.panel_height));
    let copy = r.copy_bandwidth(128 << 20)?;
    let refresh = display.refresh_hz.first().copied().unwrap_or(90.0);
    let mut target = HeadlessTarget::new(
        &mut r,
        display.panel_width,
        display.panel_height,
        refresh,
        3,
    )?;
    target.set_paced(a.paced);
    let hmd = SimulatedHmd::looking_around(leasehold_compositor::present::now_ns());
    std::fs::create_dir_all(&a.out)?;
    let mut csv = std::io::BufWriter::new(std::fs::File::create(a.out.join("compositor.csv"))?);
    writeln!(
        csv,
        "frame,cpu_plan_us,cpu_submit_us,gpu_acquire_us,gpu_compose_us,gpu_release_us,gpu_total_us,wall_us"
    )?;
    let (mut plan_ms, mut submit_ms, mut queue_ms, mut wall) = (vec![], vec![], vec![], vec![]);
    let (mut acquire, mut compose, mut release, mut gpu) = (vec![], vec![], vec![], vec![]);
    let bar = indicatif::ProgressBar::new(u64::from(a.frames) + 5);
    for f in 0..a.frames + 5 {
        let t0 = Instant::now();
        let now = leasehold_compositor::present::now_ns();
        // The app rendered 15 ms ago; we compose for now: a real timewarp every frame.
        let render_pose = hmd.pose_at(now.saturating_sub(15_000_000))?.pose;
        let head = hmd.pose_at(now)?.pose;
        let view = |e: usize| ProjectionView {
            pose: Pose {
                orientation: render_pose.orientation,
                position: display.eyes[e].eye_to_head.position,
            },
            fov: display.eyes[e].fov,
            sub_image: SubImage {
                image: ids[e],
                x: 0,
                y: 0,
                width: ew as i32,
                height: eh as i32,
                array_index: 0,
            },
        };
        let mut layers = vec![Layer::Projection {
            views: [view(0), view(1)],
            flags: LayerFlags::default(),
        }];
        layers.extend_from_slice(&quads);
        let plan = render::plan(
            &display,
            Pose {
                orientation: head.orientation,
                position: Vec3::ZERO,
            },
            &layers,
            &|id| r.layer_desc(id),
        );
        let plan_ns = t0.elapsed().as_nanos() as u64;
        let (fence, mut timing) = {
            let img = target.acquire()?;
            r.render(&plan, img, false)?
        };
        target.present(&mut r, fence, 0)?;
        r.finish(&mut timing)?;
        let wall_ns = t0.elapsed().as_nanos() as u64;
        bar.inc(1);
        if f < 5 {
            continue;
        }
        let us = |ns: u64| ns as f64 / 1e3;
        let opt = |v: Option<u64>| v.map(|v| format!("{:.1}", us(v))).unwrap_or_default();
        writeln!(
            csv,
            "{f},{:.1},{:.1},{},{},{},{},{:.1}",
            us(plan_ns),
            us(timing.cpu_submit_ns),
            opt(timing.gpu.map(|g| g.acquire_ns)),
            opt(timing.gpu.map(|g| g.compose_ns)),
            opt(timing.gpu.map(|g| g.release_ns)),
            opt(timing.gpu_total_ns),
            us(wall_ns)
        )?;
        let ms = |ns: u64| ns as f64 / 1e6;
        plan_ms.push(ms(plan_ns));
        submit_ms.push(ms(timing.cpu_submit_ns));
        queue_ms.push(ms(timing.cpu_queue_submit_ns));
        wall.push(ms(wall_ns));
        if let (Some(g), Some(t)) = (timing.gpu, timing.gpu_total_ns) {
            acquire.push(ms(g.acquire_ns));
            compose.push(ms(g.compose_ns));
            release.push(ms(g.release_ns));
            gpu.push(ms(t));
        }
    }
    bar.finish_and_clear();
    println!();
    println!("                                   median       p99");
    let row = |name: &str, v: &mut Vec<f64>| {
        println!("  {name:<30}{:>8.3} ms {:>8.3} ms", median(v), p99(v));
    };
    row("CPU plan", &mut plan_ms);
    row("CPU record + submit", &mut submit_ms);
    row("  of which vkQueueSubmit2", &mut queue_ms);
    if !gpu.is_empty() {
        row("GPU take app images", &mut acquire);
        row("GPU compose (one pass)", &mut compose);
        row("GPU hand panel on", &mut release);
        row("GPU whole frame", &mut gpu);
    } else {
        println!("  GPU: this queue has no timestamps");
    }
    row("submit to done (wall)", &mut wall);
    if !compose.is_empty() {
        let rate = traffic_bytes as f64 / (median(&mut compose) * 1e-3);
        let of_copy = copy
            .map(|c| {
                format!(
                    ", {:.1} % of a buffer copy's {:.1} GB/s",
                    100.0 * rate / c,
                    c / 1e9
                )
            })
            .unwrap_or_default();
        println!(
            "  compose traffic: {:.1} MB a frame (layers read once, panel written once), {:.2} GB/s{of_copy}",
            traffic_bytes as f64 / 1e6,
            rate / 1e9
        );
    }
    let png = a.out.join("compositor-frame.png");
    target.write_png(&mut r, &png)?;
    println!(
        "  per-frame CSV: {}",
        a.out.join("compositor.csv").display()
    );
    println!("  last frame: {}", png.display());
    target.destroy(&mut r)?;
    Ok(())
}
