//! hello_xr on the leased headset output: the runtime finds the headset's display by
//! itself (no LEASEHOLD_TARGET), leases it as DRM master (no desktop runs here), renders
//! into its scanout buffers and commits fence-gated page flips; every frame the
//! compositor presented is a completed flip. With the whole emulated headset, the views
//! follow its IMU and it is unplugged and plugged in again mid-run.

use leasehold_tests::init_tracing;
use std::process::Command;

use leasehold_tests::report_field as field;

#[test]
fn hello_xr_runs_on_the_leased_headset_with_a_flip_per_frame() {
    init_tracing();
    let (dir, manifest) = crate::common::runtime_manifest("leasehold-lab-hello-xr");
    let report = dir.join("frames.json");
    let mut cmd = Command::new("hello_xr");
    cmd.args(["-g", "Vulkan2"])
        .env("XR_RUNTIME_JSON", &manifest)
        .env("LEASEHOLD_FRAME_REPORT", &report)
        .env(
            "LEASEHOLD_LOG",
            format!(
                "{},{}",
                crate::common::HELLO_XR_LOG,
                crate::headset::LOCATE_LOG
            ),
        );
    // The runtime is the lessor itself here (DRM master): nobody else can revoke its
    // lease; the lessor groups (sway, Xorg) take that part.
    let run = if std::env::var_os("LEASEHOLD_LAB_HMD").is_some() {
        crate::headset::hello_xr_follows_the_headset(cmd, &report, None)
    } else {
        crate::common::run_hello_xr(cmd, &report)
    };
    let (text, report) = (run.log, run.report);
    assert!(
        text.contains("display chosen") && text.contains("through direct (DRM master"),
        "the runtime found the headset's display and leased it as master by itself:\n{text}"
    );
    assert!(
        text.contains("render path"),
        "the KMS target said which render path it uses:\n{text}"
    );
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
