//! A lease from a real X server: Debian's Xorg with the modesetting driver on the lab's
//! virtio-gpu marks the headset output non-desktop; RandR 1.6 CreateLease hands it to us.

use super::drive_leased_headset;
use leasehold_compositor::kms::{LeaseSource, X11Lease};
use leasehold_tests::init_tracing;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const DISPLAY: &str = ":7";

/// Xorg on the virtio-gpu card, no input devices; stopped on drop.
struct Xorg(Child);

impl Xorg {
    fn start() -> Self {
        let conf = "/tmp/leasehold-xorg.conf";
        std::fs::write(
            conf,
            "Section \"ServerFlags\"\n  Option \"AutoAddDevices\" \"false\"\nEndSection\n\
             Section \"Device\"\n  Identifier \"gpu\"\n  Driver \"modesetting\"\n  Option \"kmsdev\" \"/dev/dri/card0\"\nEndSection\n",
        )
        .unwrap();
        // A server killed before (the previous test's) leaves its socket and lock file:
        // the socket would pass for a running server, the lock would stop this one.
        let socket = format!("/tmp/.X11-unix/X{}", &DISPLAY[1..]);
        let _ = std::fs::remove_file(&socket);
        let _ = std::fs::remove_file(format!("/tmp/.X{}-lock", &DISPLAY[1..]));
        let child = Command::new("Xorg")
            .args([
                DISPLAY,
                "-config",
                conf,
                "-noreset",
                "-nolisten",
                "tcp",
                "-logfile",
                "/tmp/leasehold-xorg.log",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start Xorg (installed by cargo xtask setup)");
        let x = Xorg(child);
        let t0 = Instant::now();
        while std::os::unix::net::UnixStream::connect(&socket).is_err() {
            assert!(
                t0.elapsed() < Duration::from_secs(60),
                "Xorg did not start; see /tmp/leasehold-xorg.log"
            );
            std::thread::sleep(Duration::from_millis(200));
        }
        x
    }
}

impl Drop for Xorg {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn xorg_leases_us_the_headset_and_we_drive_it() {
    init_tracing();
    let _x = Xorg::start();
    let mut src = X11Lease {
        display: Some(DISPLAY.into()),
        connector: None,
    };
    let (lease, headset) = src.acquire().expect("lease from Xorg");
    drive_leased_headset("Xorg", &lease, headset);
    drop(lease);

    // An output that does not exist.
    let mut none = X11Lease {
        display: Some(DISPLAY.into()),
        connector: Some("DP-9".into()),
    };
    let err = none.acquire().expect_err("no DP-9").to_string();
    assert!(
        err.contains("no connected or non-desktop output is named `DP-9`")
            && err.contains("Virtual-2 (non-desktop)"),
        "{err}"
    );
}

/// hello_xr under the X server with no `LEASEHOLD_*` settings: the runtime finds it,
/// leases the headset through RandR and drives it, a fence-gated flip per presented
/// frame; with the whole emulated headset (`lab --hmd`), its views follow the IMU, the
/// headset is unplugged and plugged in again, and then the X server goes away (its leases
/// revoked): LOSS_PENDING, and hello_xr exits cleanly.
#[test]
fn hello_xr_under_xorg_gets_the_headset_from_the_x_server() {
    init_tracing();
    let x = Xorg::start();
    let (mut cmd, report) = crate::common::hello_xr_command("leasehold-lab-hello-xr-xorg");
    cmd.env("DISPLAY", DISPLAY)
        .env_remove("WAYLAND_DISPLAY")
        .env("LEASEHOLD_LOG", crate::headset::log_filter());
    if std::env::var_os("LEASEHOLD_LAB_HMD").is_none() {
        let run = crate::common::run_hello_xr(cmd, &report);
        super::assert_shown_through(&run, "the X server (RandR CreateLease)");
        return;
    }
    let pid = x.0.id();
    let kill: crate::common::Then = Box::new(move || {
        tracing::info!("killing Xorg");
        // SAFETY: kill(2) on the X server this test started (a positive pid).
        unsafe { libc::kill(pid as i32, libc::SIGKILL) };
    });
    let run = crate::headset::hello_xr_follows_the_headset(cmd, &report, Some(kill));
    assert!(
        run.log.contains("display chosen")
            && run.log.contains("through the X server (RandR CreateLease)"),
        "the runtime leased the headset from Xorg:\n{}",
        run.log
    );
    assert!(
        run.log.contains("session lost"),
        "the runtime said why the session was lost:\n{}",
        run.log
    );
}
