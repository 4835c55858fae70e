//! `leasehold demo`: the bundled OpenXR app on the simulated headset. The command writes
//! a runtime manifest for the library beside it and starts itself as the app (`demo
//! --app`) with XR_RUNTIME_JSON pointing there: the app loads the real Khronos loader,
//! which loads Leasehold into the app's process, exactly as for any OpenXR app. The app
//! draws a scene of markers around the user for a few seconds; the runtime composites it
//! (timewarp, lens distortion) to the headless target — or with `--display` to the
//! headset through KMS — and leaves the last panel image and a frame report behind.

use anyhow::{Context, Result, bail};
use glam::{Quat, Vec3};
use leasehold_compositor::vk::scene::{Rect, SceneDevice};
use openxr as xr;
use std::path::PathBuf;
use std::time::{Duration, Instant};

#[derive(clap::Args, Debug)]
pub struct DemoArgs {
    /// How long the app runs, seconds.
    #[arg(long, default_value_t = 5.0)]
    seconds: f64,
    /// Where the panel image (PNG) and the frame report (JSON) go.
    #[arg(long, default_value = "leasehold-demo")]
    out: PathBuf,
    /// Show it on the headset's display (a DRM lease: real hardware or the lab VM)
    /// instead of offscreen.
    #[arg(long)]
    display: bool,
    /// The runtime library (default: libleasehold_openxr.so beside this executable).
    #[arg(long)]
    library: Option<PathBuf>,
    /// What the app submits each frame: its projection layer, or no layer at all (the
    /// bare frame loop, to see what the runtime itself costs per frame).
    #[arg(long, value_enum, default_value_t = Layers::Projection)]
    layers: Layers,
    /// Make the app GPU-heavy: it repaints each eye this many more times per frame.
    #[arg(long, default_value_t = 0)]
    gpu_load: u32,
    /// Run as the app (what the command starts).
    #[arg(long, hide = true)]
    app: bool,
}

#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
enum Layers {
    Projection,
    None,
}

/// What the app measures of its own frame loop, from after its first frames (warm-up)
/// until it asks to exit.
struct AppTimes {
    /// Each xrEndFrame call's duration, µs.
    end_frame_us: Vec<f64>,
    /// Frames in the window.
    frames: u64,
    /// The whole process's CPU time over the window (all threads: the app, the loader,
    /// the runtime and its compositor), ns; and its user/system split in clock ticks.
    cpu_ns: u64,
    user_ticks: u64,
    sys_ticks: u64,
    /// Per thread (by name): user and system ticks over the window, busiest first.
    threads: Vec<(String, u64, u64)>,
}

/// Each thread of this process: id → (name, user ticks, system ticks).
fn thread_ticks() -> std::collections::HashMap<u64, (String, u64, u64)> {
    let mut out = std::collections::HashMap::new();
    let Ok(dir) = std::fs::read_dir("/proc/self/task") else {
        return out;
    };
    for e in dir.flatten() {
        let Some(tid) = e.file_name().to_str().and_then(|t| t.parse::<u64>().ok()) else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(e.path().join("stat")) else {
            continue;
        };
        let name = stat
            .split_once('(')
            .and_then(|(_, r)| r.rsplit_once(')'))
            .map(|(n, _)| n.to_string())
            .unwrap_or_default();
        let (u, s) = ticks_of(&stat);
        out.insert(tid, (name, u, s));
    }
    out
}

/// User and system ticks of a /proc stat line (fields 14 and 15).
fn ticks_of(stat: &str) -> (u64, u64) {
    // The command name (field 2) may hold spaces; the fields after it follow its ')'.
    let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let f: Vec<u64> = rest
        .split_whitespace()
        .map(|x| x.parse().unwrap_or(0))
        .collect();
    (
        f.get(11).copied().unwrap_or(0),
        f.get(12).copied().unwrap_or(0),
    )
}

/// The process's CPU time, ns (CLOCK_PROCESS_CPUTIME_ID, all threads).
fn process_cpu_ns() -> u64 {
    let t = rustix::time::clock_gettime(rustix::time::ClockId::ProcessCPUTime);
    t.tv_sec as u64 * 1_000_000_000 + t.tv_nsec as u64
}

/// The process's user and system time in clock ticks (/proc/self/stat, fields 14 and 15).
fn process_ticks() -> (u64, u64) {
    std::fs::read_to_string("/proc/self/stat")
        .map(|s| ticks_of(&s))
        .unwrap_or((0, 0))
}

fn median_p99(v: &[f64]) -> (f64, f64) {
    if v.is_empty() {
        return (0.0, 0.0);
    }
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    let at = |q: f64| s[((s.len() - 1) as f64 * q).round() as usize];
    (at(0.5), at(0.99))
}

pub fn run(a: DemoArgs) -> Result<()> {
    if a.app {
        let times = app(a.seconds, a.layers, a.gpu_load)?;
        return write_app_times(&times);
    }
    if !(a.seconds > 0.0 && a.seconds <= 3600.0) {
        bail!("--seconds must be between 0 and 3600");
    }
    let lib = crate::install::library(a.library.clone())?;
    std::fs::create_dir_all(&a.out)
        .with_context(|| format!("cannot create {}", a.out.display()))?;
    let out = a.out.canonicalize()?;
    let manifest = out.join("leasehold_openxr.json");
    crate::install::write_atomically(&manifest, &crate::install::manifest(&lib)?)?;
    let png = out.join("panel.png");
    let report = out.join("frames.json");
    let _ = std::fs::remove_file(&png);
    let _ = std::fs::remove_file(&report);
    let mut cmd = std::process::Command::new(std::env::current_exe()?);
    let app_report = out.join("app.json");
    let _ = std::fs::remove_file(&app_report);
    let layers = match a.layers {
        Layers::Projection => "projection",
        Layers::None => "none",
    };
    cmd.args(["demo", "--app", "--seconds", &a.seconds.to_string()])
        .args(["--layers", layers, "--gpu-load", &a.gpu_load.to_string()])
        .env("XR_RUNTIME_JSON", &manifest)
        .env(APP_REPORT, &app_report)
        .env("LEASEHOLD_SNAPSHOT", &png)
        .env("LEASEHOLD_FRAME_REPORT", &report);
    cmd.env(
        "LEASEHOLD_TARGET",
        if a.display { "kms" } else { "headless" },
    );
    let bar = indicatif::ProgressBar::new_spinner().with_message(format!(
        "running the demo app on the simulated headset for {} s",
        a.seconds
    ));
    bar.enable_steady_tick(Duration::from_millis(120));
    let started = Instant::now();
    let status = cmd.status().context("cannot start the demo app")?;
    bar.finish_and_clear();
    if !status.success() {
        bail!("the demo app failed ({status}); run with LEASEHOLD_LOG=info for details");
    }
    let text = std::fs::read_to_string(&report)
        .with_context(|| format!("the runtime wrote no frame report ({})", report.display()))?;
    let r: serde_json::Value = serde_json::from_str(&text).context("the frame report")?;
    let num = |k: &str| r.get(k).and_then(|v| v.as_f64()).unwrap_or(0.0);
    let secs = num("seconds").max(1e-3);
    let comp = num("compositor_frames");
    println!(
        "leasehold demo: {:.1} s of the bundled OpenXR app, composited by {}",
        started.elapsed().as_secs_f64(),
        r.get("compositor").and_then(|v| v.as_str()).unwrap_or("?")
    );
    println!(
        "  app frames            {:>6}   {:>6.1} /s",
        num("app_frames"),
        num("app_frames") / secs
    );
    println!(
        "  compositor frames     {:>6}   {:>6.1} /s of {:.0} Hz, {:.1} % on their vblank",
        comp,
        comp / secs,
        num("refresh_hz"),
        100.0 * num("vblanks_hit") / comp.max(1.0)
    );
    println!("  app frames shown      {:>6}", num("app_frames_shown"));
    if let Some(f) = r.get("flips").and_then(|v| v.as_f64()) {
        println!("  page flips            {f:>6}   (fence-gated, on the leased display)");
    }
    println!(
        "  compositor render     median {:.2} ms, p99 {:.2} ms",
        num("render_ms_median"),
        num("render_ms_p99")
    );
    if let Ok(text) = std::fs::read_to_string(&app_report)
        && let Ok(t) = serde_json::from_str::<serde_json::Value>(&text)
    {
        let n = |k: &str| t.get(k).and_then(|v| v.as_f64()).unwrap_or(0.0);
        let frames = n("frames").max(1.0);
        let tick_us = 1e6 / n("ticks_per_second").max(1.0);
        println!(
            "  app xrEndFrame        median {:.1} µs, p99 {:.1} µs{}",
            n("end_frame_us_median"),
            n("end_frame_us_p99"),
            if a.gpu_load > 0 {
                format!(" (GPU load: {} repaints per eye)", a.gpu_load)
            } else {
                String::new()
            }
        );
        println!(
            "  process CPU per frame {:>6.0} µs  (user {:.0} µs, system {:.0} µs; {} frames{})",
            n("cpu_ns") / 1e3 / frames,
            n("user_ticks") * tick_us / frames,
            n("sys_ticks") * tick_us / frames,
            n("frames"),
            if a.layers == Layers::None {
                ", no layers"
            } else {
                ""
            }
        );
        if let Some(threads) = t.get("threads").and_then(|v| v.as_array()) {
            let parts: Vec<String> = threads
                .iter()
                .take(6)
                .filter_map(|t| {
                    let name = t.get(0)?.as_str()?;
                    let u = t.get(1)?.as_f64()? * tick_us / frames;
                    let s = t.get(2)?.as_f64()? * tick_us / frames;
                    Some(format!("{name} {:.0} (sys {s:.0})", u + s))
                })
                .collect();
            if !parts.is_empty() {
                println!("    by thread, µs/frame  {}", parts.join(", "));
            }
        }
    }
    if png.exists() {
        println!("  panel image           {}", png.display());
    }
    println!("  frame report          {}", report.display());
    Ok(())
}

/// The scene's palette (sRGB): sky, floor, a ring of eight colours, white.
const PALETTE: [[u8; 4]; 11] = [
    [24, 34, 58, 255],
    [90, 96, 104, 255],
    [230, 60, 60, 255],
    [240, 160, 40, 255],
    [235, 225, 60, 255],
    [80, 200, 90, 255],
    [60, 190, 220, 255],
    [70, 100, 230, 255],
    [160, 90, 220, 255],
    [230, 110, 180, 255],
    [250, 250, 250, 255],
];

/// World-fixed markers (LOCAL space): (centre, edge length in metres, palette colour).
fn scene() -> Vec<(Vec3, f32, u32)> {
    let mut m = Vec::new();
    // A ring of 16 markers at eye level, 3 m away.
    for i in 0..16 {
        let a = i as f32 * std::f32::consts::TAU / 16.0;
        m.push((
            Vec3::new(3.0 * a.sin(), 0.0, -3.0 * a.cos()),
            0.35,
            2 + (i % 8) as u32,
        ));
    }
    // The floor, 1.6 m below, a dot every metre.
    for x in -5..=5 {
        for z in -5..=5 {
            m.push((Vec3::new(x as f32, -1.6, z as f32), 0.08, 1));
        }
    }
    // Straight ahead, a white marker above the horizon.
    m.push((Vec3::new(0.0, 0.8, -4.0), 0.5, 10));
    m
}

/// The markers as rectangles in one view (pose, field of view) of `size` pixels, far
/// to near.
fn project(view: &xr::View, size: (u32, u32), markers: &[(Vec3, f32, u32)]) -> Vec<Rect> {
    let q = view.pose.orientation;
    let p = view.pose.position;
    let rot = Quat::from_xyzw(q.x, q.y, q.z, q.w);
    let inv = rot.inverse();
    let eye = Vec3::new(p.x, p.y, p.z);
    let (l, r) = (view.fov.angle_left.tan(), view.fov.angle_right.tan());
    let (u, d) = (view.fov.angle_up.tan(), view.fov.angle_down.tan());
    let (w, h) = (size.0 as f32, size.1 as f32);
    let mut out: Vec<(f32, Rect)> = markers
        .iter()
        .filter_map(|&(c, edge, color)| {
            let v = inv * (c - eye);
            if v.z > -0.1 {
                return None;
            }
            let (tx, ty) = (v.x / -v.z, v.y / -v.z);
            let px = (tx - l) / (r - l) * w;
            let py = (u - ty) / (u - d) * h;
            let s = (edge / -v.z) / (r - l) * w;
            Some((
                -v.z,
                Rect {
                    x: (px - s / 2.0).round() as i32,
                    y: (py - s / 2.0).round() as i32,
                    width: s.round().max(1.0) as i32,
                    height: s.round().max(1.0) as i32,
                    color,
                },
            ))
        })
        .collect();
    out.sort_by(|a, b| b.0.total_cmp(&a.0));
    out.into_iter().map(|(_, r)| r).collect()
}

/// Where the app writes what it measured (set by the command for the app it starts).
const APP_REPORT: &str = "LEASEHOLD_DEMO_APP_REPORT";

/// Frames the app runs before it starts measuring.
const WARM_UP_FRAMES: u64 = 30;

fn write_app_times(t: &AppTimes) -> Result<()> {
    let Some(path) = std::env::var_os(APP_REPORT) else {
        return Ok(());
    };
    let (median, p99) = median_p99(&t.end_frame_us);
    // /proc reports times in USER_HZ, which Linux fixes at 100 for user space.
    let json = serde_json::json!({
        "frames": t.frames,
        "end_frame_us_median": median,
        "end_frame_us_p99": p99,
        "cpu_ns": t.cpu_ns,
        "user_ticks": t.user_ticks,
        "sys_ticks": t.sys_ticks,
        "ticks_per_second": 100,
        "threads": t.threads,
    });
    std::fs::write(&path, json.to_string())
        .with_context(|| format!("cannot write {}", PathBuf::from(&path).display()))
}

/// The app: an ordinary OpenXR application on XR_KHR_vulkan_enable.
fn app(seconds: f64, layers: Layers, gpu_load: u32) -> Result<AppTimes> {
    // SAFETY: loads the system's OpenXR loader (libopenxr_loader.so.1) by its standard
    // name; it stays loaded for the Entry's lifetime.
    let entry = unsafe { xr::Entry::load(&()) }
        .context("the Khronos OpenXR loader (libopenxr-loader1) is not installed")?;
    let mut exts = xr::ExtensionSet::default();
    exts.khr_vulkan_enable = true;
    let instance = entry
        .create_instance(
            &xr::ApplicationInfo {
                application_name: "leasehold-demo",
                application_version: 1,
                engine_name: "leasehold",
                engine_version: 1,
                api_version: xr::Version::new(1, 0, 0),
            },
            &exts,
            &[],
            &(),
        )
        .context("xrCreateInstance")?;
    let system = instance
        .system(xr::FormFactor::HEAD_MOUNTED_DISPLAY)
        .context("no headset")?;
    instance
        .graphics_requirements::<xr::Vulkan>(system)
        .context("xrGetVulkanGraphicsRequirementsKHR")?;
    let iexts = instance.vulkan_legacy_instance_extensions(system)?;
    let dexts = instance.vulkan_legacy_device_extensions(system)?;
    let mut gpu = SceneDevice::new(
        &iexts,
        &dexts,
        |vk_instance| {
            // SAFETY: a live VkInstance this app just created (XR_KHR_vulkan_enable).
            unsafe { instance.vulkan_graphics_device(system, vk_instance as usize as _) }
                .map(|p| p as usize as u64)
                .map_err(|e| format!("xrGetVulkanGraphicsDeviceKHR: {e}"))
        },
        &PALETTE,
    )
    .context("the app's Vulkan device")?;
    let (vi, vp, vd, family, index) = gpu.binding();
    // SAFETY: the Vulkan objects are the app's own, alive until after the session is
    // dropped (the session is dropped first, below).
    let (session, mut waiter, mut stream) = unsafe {
        instance.create_session::<xr::Vulkan>(
            system,
            &xr::vulkan::SessionCreateInfo {
                instance: vi as usize as _,
                physical_device: vp as usize as _,
                device: vd as usize as _,
                queue_family_index: family,
                queue_index: index,
            },
        )
    }
    .context("xrCreateSession")?;
    let views = instance
        .enumerate_view_configuration_views(system, xr::ViewConfigurationType::PRIMARY_STEREO)?;
    let size = (
        views[0].recommended_image_rect_width,
        views[0].recommended_image_rect_height,
    );
    let formats = session.enumerate_swapchain_formats()?;
    // VK_FORMAT_R8G8B8A8_SRGB, else B8G8R8A8_SRGB.
    let format = [43u32, 50]
        .into_iter()
        .find(|f| formats.contains(f))
        .context("no sRGB swapchain format")?;
    let mut swapchain = session.create_swapchain(&xr::SwapchainCreateInfo {
        create_flags: xr::SwapchainCreateFlags::EMPTY,
        usage_flags: xr::SwapchainUsageFlags::COLOR_ATTACHMENT
            | xr::SwapchainUsageFlags::TRANSFER_DST,
        format,
        sample_count: 1,
        width: size.0,
        height: size.1,
        face_count: 1,
        array_size: 2,
        mip_count: 1,
    })?;
    let images = swapchain.enumerate_images()?;
    let space =
        session.create_reference_space(xr::ReferenceSpaceType::LOCAL, xr::Posef::IDENTITY)?;
    let markers = scene();
    let mut times = AppTimes {
        end_frame_us: Vec::new(),
        frames: 0,
        cpu_ns: 0,
        user_ticks: 0,
        sys_ticks: 0,
        threads: Vec::new(),
    };
    let mut frame = 0u64;
    let mut window: Option<(u64, (u64, u64))> = None;
    let mut threads_before = std::collections::HashMap::new();
    let started = Instant::now();
    let mut running = false;
    let mut exit_requested = false;
    let mut buf = xr::EventDataBuffer::new();
    'main: loop {
        while let Some(ev) = instance.poll_event(&mut buf)? {
            if let xr::Event::SessionStateChanged(e) = ev {
                match e.state() {
                    xr::SessionState::READY => {
                        session.begin(xr::ViewConfigurationType::PRIMARY_STEREO)?;
                        running = true;
                    }
                    xr::SessionState::STOPPING => {
                        session.end()?;
                        running = false;
                    }
                    xr::SessionState::EXITING | xr::SessionState::LOSS_PENDING => break 'main,
                    _ => {}
                }
            }
        }
        if !running {
            std::thread::sleep(Duration::from_millis(10));
            continue;
        }
        if !exit_requested && started.elapsed().as_secs_f64() >= seconds {
            if let Some((cpu, (user, sys))) = window.take() {
                let (u, s) = process_ticks();
                times.cpu_ns = process_cpu_ns().saturating_sub(cpu);
                times.user_ticks = u.saturating_sub(user);
                times.sys_ticks = s.saturating_sub(sys);
                times.frames = times.end_frame_us.len() as u64;
                // Threads by name (a name may be shared), what each spent in the window.
                let mut by_name: std::collections::BTreeMap<String, (u64, u64)> =
                    std::collections::BTreeMap::new();
                for (tid, (name, u, s)) in thread_ticks() {
                    let (u0, s0) = threads_before
                        .get(&tid)
                        .map(|&(_, u0, s0): &(String, u64, u64)| (u0, s0))
                        .unwrap_or((0, 0));
                    let e = by_name.entry(name).or_default();
                    e.0 += u.saturating_sub(u0);
                    e.1 += s.saturating_sub(s0);
                }
                times.threads = by_name
                    .into_iter()
                    .filter(|(_, (u, s))| u + s > 0)
                    .map(|(n, (u, s))| (n, u, s))
                    .collect();
                times.threads.sort_by_key(|t| std::cmp::Reverse(t.1 + t.2));
            }
            session.request_exit()?;
            exit_requested = true;
        }
        frame += 1;
        if frame == WARM_UP_FRAMES && !exit_requested {
            threads_before = thread_ticks();
            window = Some((process_cpu_ns(), process_ticks()));
        }
        let measuring = window.is_some();
        let state = waiter.wait()?;
        stream.begin()?;
        if !state.should_render || layers == Layers::None {
            let t = Instant::now();
            stream.end(
                state.predicted_display_time,
                xr::EnvironmentBlendMode::OPAQUE,
                &[],
            )?;
            if measuring {
                times.end_frame_us.push(t.elapsed().as_secs_f64() * 1e6);
            }
            continue;
        }
        let (_, located) = session.locate_views(
            xr::ViewConfigurationType::PRIMARY_STEREO,
            state.predicted_display_time,
            &space,
        )?;
        let i = swapchain.acquire_image()? as usize;
        swapchain.wait_image(xr::Duration::INFINITE)?;
        for (eye, v) in located.iter().enumerate().take(2) {
            // The GPU load: whole-eye repaints under the scene (the scene's own
            // background repaints over them).
            let mut rects: Vec<Rect> = (0..gpu_load)
                .map(|k| Rect {
                    x: 0,
                    y: 0,
                    width: size.0 as i32,
                    height: size.1 as i32,
                    color: k % PALETTE.len() as u32,
                })
                .collect();
            if gpu_load > 0 {
                rects.push(Rect {
                    x: 0,
                    y: 0,
                    width: size.0 as i32,
                    height: size.1 as i32,
                    color: 0,
                });
            }
            rects.extend(project(v, size, &markers));
            gpu.draw(images[i], eye as u32, size, 0, &rects)?;
        }
        swapchain.release_image()?;
        let rect = xr::Rect2Di {
            offset: xr::Offset2Di { x: 0, y: 0 },
            extent: xr::Extent2Di {
                width: size.0 as i32,
                height: size.1 as i32,
            },
        };
        let proj: Vec<_> = (0..2)
            .map(|eye| {
                xr::CompositionLayerProjectionView::new()
                    .pose(located[eye].pose)
                    .fov(located[eye].fov)
                    .sub_image(
                        xr::SwapchainSubImage::new()
                            .swapchain(&swapchain)
                            .image_array_index(eye as u32)
                            .image_rect(rect),
                    )
            })
            .collect();
        let t = Instant::now();
        stream.end(
            state.predicted_display_time,
            xr::EnvironmentBlendMode::OPAQUE,
            &[&xr::CompositionLayerProjection::new()
                .space(&space)
                .views(&proj)],
        )?;
        if measuring {
            times.end_frame_us.push(t.elapsed().as_secs_f64() * 1e6);
        }
    }
    // The session (and with it the swapchain) goes before the app's Vulkan device.
    drop((swapchain, space, stream, waiter, session));
    drop(gpu);
    Ok(times)
}
