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
