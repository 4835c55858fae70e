//! Khronos' hello_xr (Debian's libopenxr-utils) on Leasehold through the real loader,
//! under the OpenXR core validation layer (and, hello_xr's own choice, the Vulkan
//! validation layer): both Vulkan bindings, at least 300 frames, FOCUSED, a clean exit on
//! a key press, nothing reported by either layer, and its scene on the composited panel.

use std::io::Write;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

const FRAMES: u64 = 300;

use leasehold_tests::report_field as field;

fn run(graphics: &str) {
    leasehold_tests::init_tracing();
    let manifest = super::openxr::manifest();
    let dir = std::env::temp_dir().join(format!(
        "leasehold-hello-xr-{graphics}-{}",
        std::process::id()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    let png = dir.join("panel.png");
    let report = dir.join("frames.json");
    let validation = dir.join("core-validation.txt");
    let mut child = Command::new("hello_xr")
        .args(["-g", graphics])
        .env("XR_RUNTIME_JSON", &manifest)
        .env(
            "LEASEHOLD_LOG",
            "info,leasehold_openxr::abi::session=debug,leasehold_openxr::core::session=debug",
        )
        .env("LEASEHOLD_SNAPSHOT", &png)
        .env("LEASEHOLD_FRAME_REPORT", &report)
        .env("NO_COLOR", "1")
        // Under Debian's OpenXR core validation layer: it reports every call that breaks
        // the specification's valid-usage rules into this file.
        .env("XR_ENABLE_API_LAYERS", "XR_APILAYER_LUNARG_core_validation")
        .env("XR_CORE_VALIDATION_EXPORT_TYPE", "text")
        .env("XR_CORE_VALIDATION_FILE_NAME", &validation)
        // And under the Khronos Vulkan validation layer: hello_xr's instance (the layer
        // prints its reports) and the runtime's compositor (counted in the frame report).
        .env("VK_INSTANCE_LAYERS", "VK_LAYER_KHRONOS_validation")
        .env("LEASEHOLD_VK_VALIDATION", "1")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("hello_xr (libopenxr-utils, installed by `cargo xtask setup`)");
    let (rx, readers) = leasehold_tests::line_readers(&mut child);
    let mut log = Vec::new();
    let (mut focused, mut frames) = (false, 0u64);
    let deadline = Instant::now() + Duration::from_secs(300);
    while !(focused && frames >= FRAMES) {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(line) => {
                // The runtime's log (stderr, unbuffered; hello_xr's own stdout arrives
                // only when it exits).
                focused |= line.contains("session state state=Focused");
                if let Some(n) = line
                    .split("frames=")
                    .nth(1)
                    .and_then(|r| r.split_whitespace().next())
                    .and_then(|n| n.parse::<u64>().ok())
                {
                    frames = frames.max(n);
                }
                log.push(line);
            }
            Err(e) => {
                let _ = child.kill();
                let why = match e {
                    mpsc::RecvTimeoutError::Timeout => "within 300 s",
                    mpsc::RecvTimeoutError::Disconnected => "before it exited",
                };
                panic!(
                    "hello_xr -g {graphics}: no {FRAMES} focused frames {why} \
                     (focused {focused}, frames {frames}):\n{}",
                    log.join("\n")
                );
            }
        }
    }
    // "Press any key to shutdown".
    child.stdin.take().unwrap().write_all(b"\n").unwrap();
    let exit = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        assert!(
            Instant::now() < deadline + Duration::from_secs(60),
            "hello_xr did not exit after the key press"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    for r in readers {
        r.join().unwrap();
    }
    log.extend(rx.try_iter());
    let text = log.join("\n");
    assert!(
        exit.success(),
        "hello_xr -g {graphics} exited with {exit}:\n{text}"
    );
    for bad in [
        "XrResult failure",
        " ERROR ",
        "panicked",
        "Validation Error",
        "Validation Warning",
    ] {
        assert!(!text.contains(bad), "`{bad}` in the output:\n{text}");
    }
    assert!(
        text.contains("Core Validation output type: text"),
        "hello_xr ran under the core validation layer:\n{text}"
    );
    let reported = std::fs::read_to_string(&validation).unwrap_or_default();
    assert!(
        reported.trim().is_empty(),
        "the OpenXR core validation layer reported:\n{reported}"
    );
    let report = std::fs::read_to_string(&report).expect("the runtime's frame report");
    tracing::info!(graphics, "{report}");
    assert!(field(&report, "app_frames") >= FRAMES as f64, "{report}");
    assert_eq!(
        field(&report, "vk_validation_messages"),
        0.0,
        "Vulkan validation of the runtime's compositor: {report}"
    );
    assert!(
        field(&report, "app_frames_shown") > 0.0,
        "the compositor showed hello_xr's frames: {report}"
    );
    // The panel shows hello_xr's scene: its background in the middle of each eye, not
    // the compositor's black, and both eyes alike there.
    let img =
        leasehold_compositor::render::pattern::RgbaImage::read_png(&png).expect("the panel image");
    let px = |x: u32, y: u32| {
        let i = ((y * img.width + x) * 4) as usize;
        [img.data[i], img.data[i + 1], img.data[i + 2]]
    };
    let (l, r) = (
        px(img.width / 4, img.height / 3),
        px(3 * img.width / 4, img.height / 3),
    );
    assert!(
        l.iter().map(|&c| u32::from(c)).sum::<u32>() > 120,
        "left eye: {l:?}"
    );
    assert!(
        l.iter().zip(&r).all(|(a, b)| a.abs_diff(*b) < 12),
        "eyes differ at the same spot: {l:?} vs {r:?}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn hello_xr_vulkan2_runs_focused_and_exits_cleanly() {
    run("Vulkan2");
}

#[test]
fn hello_xr_vulkan_runs_focused_and_exits_cleanly() {
    run("Vulkan");
}
