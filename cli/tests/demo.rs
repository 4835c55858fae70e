//! `leasehold demo`: the bundled OpenXR app through the real loader and the runtime built
//! beside the CLI, the panel image and the frame report it leaves.

use std::path::PathBuf;
use std::process::Command;

fn cli() -> Command {
    Command::new(env!("CARGO_BIN_EXE_leasehold"))
}

fn tmp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("leasehold-demo-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    d
}

#[test]
fn demo_composites_the_app_and_reports_its_frames() {
    let out_dir = tmp("run");
    let out = cli()
        .args(["demo", "--seconds", "2", "--out"])
        .arg(&out_dir)
        .env("NO_COLOR", "1")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "demo failed:\n{stdout}\n{stderr}");
    assert!(stdout.contains("app frames"), "{stdout}");
    assert!(stdout.contains("panel image"), "{stdout}");
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out_dir.join("frames.json")).unwrap())
            .unwrap();
    let n = |k: &str| {
        report[k]
            .as_f64()
            .unwrap_or_else(|| panic!("{k}: {report}"))
    };
    assert!(n("app_frames") >= 2.0, "{report}");
    assert!(n("app_frames_shown") >= 1.0, "{report}");
    assert!(n("compositor_frames") >= n("app_frames_shown"), "{report}");
    // The panel: the app's night sky in each eye's middle (not the compositor's black),
    // and the white marker ahead above the horizon in the left eye.
    let img =
        leasehold_compositor::render::pattern::RgbaImage::read_png(&out_dir.join("panel.png"))
            .unwrap();
    let sky = img.pixel(img.width / 4, img.height / 8);
    assert!(
        sky[2] > 40 && sky[2] > sky[0],
        "the sky colour at the top of the left eye: {sky:?}"
    );
    let whites = (0..img.height / 2)
        .flat_map(|y| (0..img.width / 2).map(move |x| (x, y)))
        .filter(|&(x, y)| img.pixel(x, y)[..3].iter().all(|&c| c > 230))
        .count();
    assert!(whites > 100, "the white marker is visible: {whites} pixels");
    let _ = std::fs::remove_dir_all(&out_dir);
}

#[test]
fn demo_without_a_runtime_library_says_how_to_build_one() {
    let out_dir = tmp("nolib");
    let out = cli()
        .args([
            "demo",
            "--seconds",
            "1",
            "--library",
            "/nonexistent/libx.so",
            "--out",
        ])
        .arg(&out_dir)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("not found"), "{stderr}");
    assert!(stderr.contains("cargo build"), "{stderr}");
    let _ = std::fs::remove_dir_all(&out_dir);
}

/// Runs `leasehold demo` with an app whose every frame repaints each eye `gpu_load` times
/// (seconds of GPU work a frame on a software rasteriser), with `env` set.
fn heavy_demo(name: &str, gpu_load: u32, env: &[(&str, &str)]) -> (std::process::Output, PathBuf) {
    let out_dir = tmp(name);
    let mut cmd = cli();
    cmd.args([
        "demo",
        "--seconds",
        "3",
        "--gpu-load",
        &gpu_load.to_string(),
        "--out",
    ])
    .arg(&out_dir)
    .env("NO_COLOR", "1")
    .env("LEASEHOLD_LOG", "warn");
    for (k, v) in env {
        cmd.env(k, v);
    }
    (cmd.output().unwrap(), out_dir)
}

/// An app whose GPU frames take longer than the compositor's hold on them (and, on a
/// 2-core machine's lavapipe, longer than any fixed deadline the runtime used to have):
/// late work is late, not an error. The demo runs to its end and its frames are shown.
#[test]
fn demo_with_a_slow_gpu_app_keeps_going() {
    let (out, out_dir) = heavy_demo("slow", 400, &[]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "a slow app is not a failed one: {:?}\n{stdout}\n{stderr}",
        out.status
    );
    assert!(!stderr.contains("RUNTIME_FAILURE"), "{stderr}");
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out_dir.join("frames.json")).unwrap())
            .unwrap();
    assert!(
        report["app_frames_shown"].as_f64().unwrap_or(0.0) >= 1.0,
        "{report}"
    );
    let _ = std::fs::remove_dir_all(&out_dir);
}

/// The same app with the hang threshold injected down to 1 ms: every wait on its GPU
/// work gives up as on a hung GPU. The demo exits with an error saying so and a
/// non-zero status, never with a signal (its device is leaked, not destroyed under
/// running work: that was a SIGSEGV inside the driver).
#[test]
fn demo_whose_gpu_hangs_exits_with_an_error_not_a_signal() {
    let (out, out_dir) = heavy_demo("hang", 400, &[("LEASEHOLD_GPU_HANG_MS", "1")]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.code().is_some(),
        "the demo died of a signal: {:?}\n{stdout}\n{stderr}",
        out.status
    );
    assert!(
        !stderr.contains("signal"),
        "the demo app died of a signal:\n{stderr}"
    );
    assert!(
        stderr.contains("taken to be hung"),
        "the injected hang was hit and named:\n{stdout}\n{stderr}"
    );
    assert!(!out.status.success(), "{stdout}\n{stderr}");
    let _ = std::fs::remove_dir_all(&out_dir);
}
