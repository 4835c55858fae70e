//! The `leasehold` CLI against the lab's real kernel: bad input gets a clear error and a
//! non-zero exit, never a crash.

use std::process::{Command, Output};

fn leasehold(args: &[&str]) -> Output {
    let cli = std::env::var("LEASEHOLD_CLI")
        .expect("LEASEHOLD_CLI must name the leasehold binary (cargo xtask test sets it)");
    Command::new(&cli)
        .args(args)
        .output()
        .expect("run leasehold")
}

/// Runtime errors exit 1; malformed arguments are usage errors and exit 2.
fn fails_with(args: &[&str], expect: &str) {
    fails_with_code(args, expect, 1);
}

fn fails_with_code(args: &[&str], expect: &str, code: i32) {
    let out = leasehold(args);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        out.status.code(),
        Some(code),
        "{args:?} must fail cleanly (exit {code}), stderr:\n{err}"
    );
    assert!(
        err.contains(expect),
        "{args:?}: expected `{expect}` in:\n{err}"
    );
    assert!(!err.contains("panicked"), "{args:?} panicked:\n{err}");
}

#[test]
fn bench_rejects_a_mode_the_connector_cannot_do() {
    // virtio-gpu's largest mode is 8192 pixels wide: TEST_ONLY refuses this one.
    fails_with(
        &[
            "bench",
            "frame-timing",
            "--frames",
            "5",
            "--mode",
            "8200x64@90",
            "--out",
            "/tmp",
        ],
        "cannot run 8200x64@90 (a custom mode: not in its EDID)",
    );
    fails_with_code(
        &["bench", "frame-timing", "--mode", "fast"],
        "is not a mode: expected WxH@Hz",
        2,
    );
}

#[test]
fn bench_rejects_a_lease_fd_that_is_not_a_lease() {
    // fd 0 is /dev/null in the lab; fd 57 is not open.
    fails_with(
        &["bench", "frame-timing", "--lease-fd", "0"],
        "fd 0 is not a usable DRM lease: it is not a DRM device",
    );
    fails_with(
        &["bench", "frame-timing", "--lease-fd", "57"],
        "fd 57 is not a usable DRM lease: no such open file descriptor",
    );
}

#[test]
fn bench_rejects_an_unknown_connector() {
    fails_with(
        &["bench", "frame-timing", "--connector", "DP-9"],
        "no connector named `DP-9`",
    );
}

/// Runs in the lab configuration without a headset EDID.
#[test]
fn no_headset_is_a_clear_error() {
    fails_with(
        &["bench", "frame-timing", "--frames", "5"],
        "no headset display found",
    );
}

#[test]
fn bench_with_wayland_but_no_compositor_is_a_clear_error() {
    // The lab guest runs no Wayland compositor outside the wayland:: tests.
    fails_with(
        &["bench", "frame-timing", "--wayland"],
        "no Wayland compositor to lease from",
    );
}

#[test]
fn bench_without_cap_sys_nice_falls_back_to_normal_priority_and_says_so() {
    let cli = std::env::var("LEASEHOLD_CLI").expect("LEASEHOLD_CLI (cargo xtask test sets it)");
    let out_dir = format!("/tmp/leasehold-bench-nonice-{}", std::process::id());
    let out = Command::new("setpriv")
        .args(["--bounding-set=-sys_nice", "--inh-caps=-sys_nice"])
        .arg(&cli)
        .args(["bench", "frame-timing", "--frames", "60", "--out", &out_dir])
        .output()
        .expect("run leasehold under setpriv");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "the bench must still run:\n{stdout}\n{stderr}"
    );
    assert!(
        stdout.contains("(presenter at normal priority: no CAP_SYS_NICE)"),
        "{stdout}"
    );
    assert_eq!(
        stderr.matches("no real-time priority").count(),
        1,
        "said once:\n{stderr}"
    );
    assert!(
        stdout.contains("late-commit median wake-to-scanout is"),
        "{stdout}"
    );
    assert!(
        std::path::Path::new(&out_dir)
            .join("frame-timing.csv")
            .exists()
    );
}
