//! `leasehold probe` on the build host: real output from the real system. The host has
//! Mesa's lavapipe (installed by `cargo xtask setup`) and, on these machines, no DRM.

use std::path::Path;
use std::process::Command;

fn probe() -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_leasehold"))
        .arg("probe")
        .output()
        .expect("run probe");
    assert!(
        out.status.success(),
        "probe failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("UTF-8 output")
}

fn has_card_nodes() -> bool {
    std::fs::read_dir("/dev/dri")
        .map(|d| {
            d.flatten()
                .any(|e| e.file_name().to_string_lossy().starts_with("card"))
        })
        .unwrap_or(false)
}

#[test]
fn reports_all_three_sections() {
    let text = probe();
    for heading in ["Display (DRM/KMS)", "Vulkan", "Headsets on HID"] {
        assert!(text.contains(heading), "no `{heading}` section in:\n{text}");
    }
}

#[test]
fn says_plainly_when_there_is_no_drm() {
    let text = probe();
    if has_card_nodes() {
        assert!(
            text.contains("/dev/dri/card"),
            "cards exist but none listed:\n{text}"
        );
    } else {
        let why = if Path::new("/dev/dri").exists() {
            "/dev/dri has no card nodes"
        } else {
            "/dev/dri does not exist"
        };
        assert!(
            text.contains(&format!(
                "no DRM devices: {why}. This machine has no display outputs to lease."
            )),
            "{text}"
        );
    }
}

#[test]
fn lists_lavapipe_with_display_path_capabilities() {
    let text = probe();
    let lines: Vec<&str> = text.lines().collect();
    let i = lines
        .iter()
        .position(|l| l.contains("llvmpipe") && l.contains("Vulkan 1."))
        .unwrap_or_else(|| {
            panic!("lavapipe not listed (is mesa-vulkan-drivers installed?):\n{text}")
        });
    let caps = lines[i + 1..]
        .iter()
        .find(|l| l.contains("dma-buf memory:"))
        .expect("capability line");
    // Mesa 25's lavapipe imports dma-bufs: the reason setup takes Mesa from backports.
    assert!(caps.contains("dma-buf memory: yes"), "{caps}");
    assert!(caps.contains("semaphore sync_fd:"), "{caps}");
}
