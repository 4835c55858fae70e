//! `leasehold probe` on the lab's real kernel: the virtio-gpu card, both connectors, the
//! headset output marked with its EDID identity and modes.

use std::process::Command;

#[test]
fn probe_lists_card_connectors_and_headset() {
    let cli = std::env::var("LEASEHOLD_CLI")
        .expect("LEASEHOLD_CLI must name the leasehold binary (cargo xtask test sets it)");
    let out = Command::new(&cli)
        .arg("probe")
        .output()
        .expect("run leasehold probe");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "probe failed: {}\n{text}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lines: Vec<&str> = text.lines().collect();
    assert!(
        lines
            .iter()
            .any(|l| l.contains("/dev/dri/card") && l.contains("virtio_gpu")),
        "no virtio-gpu card in:\n{text}"
    );
    let v1 = lines
        .iter()
        .position(|l| l.trim_start().starts_with("Virtual-1 "))
        .expect("Virtual-1 listed");
    let v2 = lines
        .iter()
        .position(|l| l.trim_start().starts_with("Virtual-2 "))
        .expect("Virtual-2 listed");
    assert!(
        !lines[v1].contains("headset candidate"),
        "the desktop output is not a headset: {}",
        lines[v1]
    );
    assert!(
        lines[v2].contains("connected, non-desktop"),
        "{}",
        lines[v2]
    );
    assert!(lines[v2].contains("headset candidate"), "{}", lines[v2]);
    assert!(
        lines[v2 + 1].contains("EDID: HVR:0xaa01 \"HTC-VIVE\""),
        "{}",
        lines[v2 + 1]
    );
    assert!(
        lines[v2 + 1].contains("known HMD: HTC Vive"),
        "{}",
        lines[v2 + 1]
    );
    assert!(
        lines[v2 + 2].contains("modes: 2160x1200@90*"),
        "{}",
        lines[v2 + 2]
    );
}
