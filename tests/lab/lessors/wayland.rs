//! A lease from a real Wayland compositor: Debian's sway (wlroots) runs on the lab's
//! virtio-gpu as DRM master, keeps the non-desktop headset output off the desktop and
//! offers it through wp_drm_lease_device_v1.

use super::drive_leased_headset;
use leasehold_compositor::kms::{LeaseSource, WaylandLease};
use leasehold_tests::init_tracing;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The account `cargo xtask setup` creates for the lab (sway refuses to run as root).
const LAB_USER: &str = "leasehold-lab";

/// A command run as the lab user in an empty environment but for a path, a home and
/// `runtime` as its XDG_RUNTIME_DIR; more `NAME=value` arguments, then the program, follow.
fn as_lab_user(runtime: &std::path::Path) -> Command {
    let mut cmd = Command::new("setpriv");
    cmd.args([
        "--reuid",
        LAB_USER,
        "--regid",
        LAB_USER,
        "--init-groups",
        "env",
        "-i",
    ])
    .arg("PATH=/usr/bin:/bin")
    .arg("HOME=/tmp")
    .arg(format!("XDG_RUNTIME_DIR={}", runtime.display()));
    cmd
}

/// seatd and sway, running as the lab user; stopped on drop.
struct Sway {
    seatd: Child,
    sway: Child,
    runtime: PathBuf,
}

impl Sway {
    fn start() -> Self {
        let runtime = PathBuf::from(format!("/tmp/leasehold-sway-{}", std::process::id()));
        std::fs::create_dir_all(&runtime).unwrap();
        let chown = Command::new("chown")
            .arg(format!("{LAB_USER}:{LAB_USER}"))
            .arg(&runtime)
            .status()
            .unwrap();
        assert!(
            chown.success(),
            "chown the runtime dir (does the {LAB_USER} account exist? run cargo xtask setup)"
        );
        let log = |name: &str| std::fs::File::create(runtime.with_extension(name)).unwrap();
        let seatd = Command::new("seatd")
            .args(["-u", LAB_USER, "-g", "video"])
            .stdout(Stdio::null())
            .stderr(log("seatd.log"))
            .spawn()
            .expect("start seatd");
        std::fs::write(
            runtime.with_extension("conf"),
            "output Virtual-1 resolution 1280x800\n",
        )
        .unwrap();
        let sway = as_lab_user(&runtime)
            .args([
                "LIBSEAT_BACKEND=seatd",
                "WLR_BACKENDS=drm",
                "WLR_RENDERER=pixman",
                "sway",
                "-d",
                "-c",
            ])
            .arg(runtime.with_extension("conf"))
            .stdout(Stdio::null())
            .stderr(log("sway.log"))
            .spawn()
            .expect("start sway");
        let s = Sway {
            seatd,
            sway,
            runtime,
        };
        let t0 = Instant::now();
        while t0.elapsed() < Duration::from_secs(60) {
            let log =
                std::fs::read_to_string(s.runtime.with_extension("sway.log")).unwrap_or_default();
            if log.contains("Offering output") {
                return s;
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        let log = std::fs::read_to_string(s.runtime.with_extension("sway.log")).unwrap_or_default();
        panic!("sway did not offer an output within 60 s; its log:\n{log}");
    }

    fn socket(&self) -> PathBuf {
        self.runtime.join("wayland-1")
    }
}

impl Drop for Sway {
    fn drop(&mut self) {
        let _ = self.sway.kill();
        let _ = self.sway.wait();
        let _ = self.seatd.kill();
        let _ = self.seatd.wait();
    }
}

/// hello_xr as the desktop's user in sway's session, with no `LEASEHOLD_*` settings but
/// the frame report and the log.
fn hello_xr_as_user(sway: &Sway, manifest: &std::path::Path, report: &std::path::Path) -> Command {
    let mut cmd = as_lab_user(&sway.runtime);
    cmd.arg("WAYLAND_DISPLAY=wayland-1")
        .arg(format!("XR_RUNTIME_JSON={}", manifest.display()))
        .arg(format!("LEASEHOLD_FRAME_REPORT={}", report.display()))
        .arg(format!("LEASEHOLD_LOG={}", crate::headset::log_filter()));
    if let Ok(v) = std::env::var("LP_NATIVE_VECTOR_WIDTH") {
        cmd.arg(format!("LP_NATIVE_VECTOR_WIDTH={v}"));
    }
    cmd.args(["hello_xr", "-g", "Vulkan2"]);
    cmd
}

#[test]
fn sway_leases_us_the_headset_and_we_drive_it() {
    init_tracing();
    let sway = Sway::start();
    let mut src = WaylandLease {
        socket: Some(sway.socket()),
        connector: None,
    };
    let (lease, headset) = src.acquire().expect("lease from sway");
    drive_leased_headset("sway", &lease, headset);
    drop(lease);

    // A connector sway does not offer: a clear error naming what it does offer.
    let mut wrong = WaylandLease {
        socket: Some(sway.socket()),
        connector: Some("Virtual-1".into()),
    };
    let err = wrong
        .acquire()
        .expect_err("Virtual-1 is sway's desktop, not offered")
        .to_string();
    assert!(
        err.contains("no offered connector is named `Virtual-1`") && err.contains("Virtual-2"),
        "{err}"
    );
}

/// hello_xr, run as the desktop's user inside sway's session with no `LEASEHOLD_*`
/// settings: the runtime finds the Wayland compositor, leases the headset from it and
/// drives it, a fence-gated flip per presented frame.
#[test]
fn hello_xr_in_a_sway_session_gets_the_headset_from_sway() {
    init_tracing();
    let sway = Sway::start();
    let (_, manifest) = crate::common::runtime_manifest("leasehold-lab-hello-xr-sway");
    // The frame report goes where the user may write.
    let report = sway.runtime.join("frames.json");
    let cmd = hello_xr_as_user(&sway, &manifest, &report);
    let run = crate::common::run_hello_xr(cmd, &report);
    super::assert_shown_through(&run, "the Wayland compositor (wp_drm_lease_device_v1)");
}

/// The whole headset in sway's session: hello_xr's views follow the emulated IMU, the
/// headset is unplugged (tracking lost, the app goes on) and plugged in again (tracked),
/// then the lessor goes away (sway killed): the kernel revokes its leases, the session
/// reports LOSS_PENDING instead of hanging or crashing, and hello_xr (which restarts its
/// session on a loss) still exits cleanly when asked.
#[test]
fn hello_xr_follows_the_headset_and_loses_its_session_when_sway_goes_away() {
    init_tracing();
    let mut sway = Sway::start();
    let (_, manifest) = crate::common::runtime_manifest("leasehold-lab-hello-xr-sway-gone");
    let report = sway.runtime.join("frames.json");
    let cmd = hello_xr_as_user(&sway, &manifest, &report);
    let sway_pid = sway.sway.id();
    let kill: crate::common::Then = Box::new(move || {
        tracing::info!("killing sway");
        let _ = Command::new("kill")
            .args(["-KILL", &sway_pid.to_string()])
            .status();
    });
    let run = crate::headset::hello_xr_follows_the_headset(cmd, &report, Some(kill));
    assert!(
        run.log.contains("display chosen")
            && run
                .log
                .contains("through the Wayland compositor (wp_drm_lease_device_v1)"),
        "the runtime leased the headset from sway:\n{}",
        run.log
    );
    assert!(
        run.log.contains("session lost"),
        "the runtime said why the session was lost:\n{}",
        run.log
    );
    let _ = sway.sway.wait();
}
