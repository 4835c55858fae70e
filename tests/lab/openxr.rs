//! hello_xr on the leased headset output: the runtime's KMS target (LEASEHOLD_TARGET=kms)
//! leases the headset as DRM master, renders into its scanout buffers and commits
//! fence-gated page flips; every frame the compositor presented is a completed flip.

use leasehold_tests::init_tracing;
use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use leasehold_tests::report_field as field;

#[test]
fn hello_xr_runs_on_the_leased_headset_with_a_flip_per_frame() {
    init_tracing();
    let (dir, manifest) = crate::common::runtime_manifest("leasehold-lab-hello-xr");
    let report = dir.join("frames.json");
    let _ = std::fs::remove_file(&report);
    let mut child = Command::new("hello_xr")
        .args(["-g", "Vulkan2"])
        .env("XR_RUNTIME_JSON", &manifest)
        .env("LEASEHOLD_TARGET", "kms")
        .env("LEASEHOLD_FRAME_REPORT", &report)
        .env(
            "LEASEHOLD_LOG",
            "info,leasehold_openxr::abi::session=debug,leasehold_compositor::service=debug",
        )
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("hello_xr (libopenxr-utils)");
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let reader = std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    // Under software emulation every frame takes seconds: wait for the session to be
    // focused and a few app frames to be shown, then ask hello_xr to stop.
    let mut log = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(240);
    let mut focused = false;
    let mut shown = 0u64;
    while !(focused && shown >= 2) {
        match rx.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
            Ok(l) => {
                focused |= l.contains("session state state=Focused");
                if l.contains("compositor frame") {
                    shown += 1;
                }
                log.push(l);
            }
            Err(_) => {
                let _ = child.kill();
                panic!(
                    "hello_xr on the KMS target: not focused with frames shown in time:\n{}",
                    log.join("\n")
                );
            }
        }
    }
    child.stdin.take().unwrap().write_all(b"\n").unwrap();
    let status = child.wait().unwrap();
    reader.join().unwrap();
    log.extend(rx.try_iter());
    let text = log.join("\n");
    assert!(status.success(), "hello_xr exited with {status}:\n{text}");
    assert!(
        text.contains("render path"),
        "the KMS target said which render path it uses:\n{text}"
    );
    let report = std::fs::read_to_string(&report).expect("the frame report");
    tracing::info!("{report}");
    let (frames, flips) = (field(&report, "compositor_frames"), field(&report, "flips"));
    assert!(field(&report, "app_frames_shown") >= 1.0, "{report}");
    // One fence-gated flip per presented frame, none lost, none extra: the frames the
    // report counts, plus the loop's first (empty) frame that finds the vblank phase.
    assert_eq!(flips, frames + 1.0, "{report}");
}

#[test]
fn leasehold_demo_shows_on_the_headset() {
    init_tracing();
    let cli = std::env::var("LEASEHOLD_CLI")
        .expect("LEASEHOLD_CLI must name the leasehold binary (cargo xtask test sets it)");
    let out_dir = std::env::temp_dir().join("leasehold-lab-demo");
    let out = Command::new(&cli)
        .args(["demo", "--display", "--seconds", "30", "--out"])
        .arg(&out_dir)
        .env("NO_COLOR", "1")
        .output()
        .expect("run leasehold demo");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "demo --display failed:\n{stdout}\n{stderr}"
    );
    tracing::info!("{stdout}");
    assert!(stdout.contains("page flips"), "{stdout}");
    let report = std::fs::read_to_string(out_dir.join("frames.json")).unwrap();
    assert!(
        report.contains("KMS"),
        "composited on the KMS target: {report}"
    );
    assert!(field(&report, "app_frames_shown") >= 1.0, "{report}");
    assert_eq!(
        field(&report, "flips"),
        field(&report, "compositor_frames") + 1.0,
        "a flip per presented frame (plus the anchor frame): {report}"
    );
}
