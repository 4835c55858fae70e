//! What every display lab test starts from: the headset output, leased and lit.

use leasehold_compositor::kms::{self, Card, ConnectorInfo, DumbFramebuffer, Lease, Output};
use std::sync::Arc;

/// Opens the first card that has a connected headset (non-desktop) connector, as master.
pub fn headset_card() -> (Arc<Card>, ConnectorInfo, Vec<ConnectorInfo>) {
    let paths = kms::cards();
    assert!(
        !paths.is_empty(),
        "no DRM cards in the lab VM: is virtio_gpu loaded?"
    );
    for path in paths {
        let card = Card::open(&path).expect("open card");
        let Ok(connectors) = card.connectors() else {
            continue;
        };
        if let Some(c) = connectors
            .iter()
            .find(|c| c.connected && c.non_desktop == Some(true))
        {
            assert!(
                card.acquire_master(),
                "{} could not become DRM master",
                path.display()
            );
            let c = c.clone();
            return (Arc::new(card), c, connectors);
        }
    }
    panic!("no connected non-desktop connector: boot the lab with --hmd-edid");
}

pub use leasehold_compositor::kms::discovery::period_ns;

pub use leasehold_compositor::present::{now_ns, sleep_until};

/// Lights a leased headset output with its preferred mode and two solid framebuffers.
pub fn light_up<'a>(
    lease: &'a Lease,
    headset: &ConnectorInfo,
    colors: [u32; 2],
) -> (Output<'a>, [DumbFramebuffer<'a>; 2], kms::Mode) {
    let lessee = lease.card();
    let mode = headset.preferred_mode().expect("mode");
    let mut out = Output::new(lessee, lease.connector, lease.crtc, lease.plane).expect("output");
    let fbs = colors.map(|c| DumbFramebuffer::solid(lessee, mode.size(), c).expect("fb"));
    out.modeset(&mode, fbs[0].fb).expect("modeset");
    (out, fbs, mode)
}

/// A folder of its own for test `name`, holding an OpenXR runtime manifest that points at
/// the runtime library `cargo xtask test` built: (folder, manifest).
pub fn runtime_manifest(name: &str) -> (std::path::PathBuf, std::path::PathBuf) {
    let lib = std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .parent()
        .unwrap()
        .join("debug/libleasehold_openxr.so");
    assert!(
        lib.exists(),
        "{} (built by cargo xtask test)",
        lib.display()
    );
    let dir = std::env::temp_dir().join(name);
    std::fs::create_dir_all(&dir).unwrap();
    let manifest = dir.join("leasehold_openxr.json");
    std::fs::write(
        &manifest,
        include_str!("../../manifests/openxr/leasehold_openxr.json.in")
            .replace("@LIBRARY_PATH@", &lib.display().to_string()),
    )
    .unwrap();
    (dir, manifest)
}

/// hello_xr `-g Vulkan2` on this build's runtime (a manifest in a folder named `name`
/// under the temporary directory), with the runtime's frame report asked for there; the
/// report's path comes back with the command.
pub fn hello_xr_command(name: &str) -> (std::process::Command, std::path::PathBuf) {
    let (dir, manifest) = runtime_manifest(name);
    let report = dir.join("frames.json");
    let mut cmd = std::process::Command::new("hello_xr");
    cmd.args(["-g", "Vulkan2"])
        .env("XR_RUNTIME_JSON", &manifest)
        .env("LEASEHOLD_FRAME_REPORT", &report);
    (cmd, report)
}

/// What a hello_xr run left: its log (stderr, the runtime's records included) and the
/// runtime's frame report.
pub struct HelloXr {
    pub log: String,
    pub report: String,
}

/// Runs `cmd` (hello_xr `-g Vulkan2`, with the environment it needs) until its session
/// is focused and the compositor showed a few frames, then asks it to stop and checks it
/// exits cleanly. `report` is where the runtime writes its frame report
/// (`LEASEHOLD_FRAME_REPORT`, set by the caller). The runtime must log at debug for
/// `leasehold_compositor::service` and `leasehold_openxr::{abi,core}::session`.
pub fn run_hello_xr(cmd: std::process::Command, report: &std::path::Path) -> HelloXr {
    run_hello_xr_then(cmd, report, None)
}

/// Something done to a running hello_xr's world (a lessor killed, a headset unplugged).
pub type Then = Box<dyn FnOnce()>;

/// One step of a scenario run on a hello_xr whose frames are shown: `action`, then up to
/// `secs` for a log line that `until` accepts.
pub struct Step {
    pub what: String,
    pub action: Then,
    pub until: Box<dyn FnMut(&str) -> bool>,
    pub secs: u64,
}

/// As [`run_hello_xr`]; once frames are shown, runs `then`'s action and waits (up to
/// 60 s) for a log line containing its text before asking hello_xr to stop.
pub fn run_hello_xr_then(
    cmd: std::process::Command,
    report: &std::path::Path,
    then: Option<(Then, &str)>,
) -> HelloXr {
    let steps = then
        .map(|(action, text)| {
            let text = text.to_string();
            Step {
                what: text.clone(),
                action,
                until: Box::new(move |l: &str| l.contains(&text)),
                secs: 60,
            }
        })
        .into_iter()
        .collect();
    run_hello_xr_steps(cmd, report, steps)
}

/// As [`run_hello_xr`], with `steps` run in order once frames are shown.
pub fn run_hello_xr_steps(
    mut cmd: std::process::Command,
    report: &std::path::Path,
    steps: Vec<Step>,
) -> HelloXr {
    use std::io::Write;
    use std::process::Stdio;
    use std::time::{Duration, Instant};
    let _ = std::fs::remove_file(report);
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("hello_xr (libopenxr-utils)");
    // The runtime's records come on stderr as they happen; hello_xr's own output (its
    // Vulkan validation reports among it) on stdout, buffered until it exits.
    let (rx, readers) = leasehold_tests::line_readers(&mut child);
    let mut log = Vec::new();
    let mut wait_for = |what: &str, done: &mut dyn FnMut(&str) -> bool, secs: u64| {
        let deadline = Instant::now() + Duration::from_secs(secs);
        loop {
            match rx.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
                Ok(l) => {
                    let hit = done(&l);
                    log.push(l);
                    if hit {
                        return Ok(());
                    }
                }
                Err(_) => return Err(format!("hello_xr: {what} not seen in {secs} s")),
            }
        }
    };
    // Under software emulation every frame takes seconds: wait for the session to be
    // focused and a few app frames to be shown.
    let (mut focused, mut shown) = (false, 0u64);
    let mut started = |l: &str| {
        focused |= l.contains("session state state=Focused");
        if l.contains("compositor frame") {
            shown += 1;
        }
        focused && shown >= 2
    };
    let mut outcome = wait_for("a focused session with frames shown", &mut started, 240);
    for mut step in steps {
        if outcome.is_err() {
            break;
        }
        tracing::info!(step = step.what, "hello_xr scenario");
        (step.action)();
        outcome = wait_for(&step.what, &mut *step.until, step.secs);
    }
    if let Err(why) = outcome {
        let _ = child.kill();
        let _ = child.wait();
        panic!("{why}:\n{}", log.join("\n"));
    }
    child.stdin.take().unwrap().write_all(b"\n").unwrap();
    let status = child.wait().unwrap();
    for r in readers {
        r.join().unwrap();
    }
    log.extend(rx.try_iter());
    let log = log.join("\n");
    assert!(status.success(), "hello_xr exited with {status}:\n{log}");
    let report = std::fs::read_to_string(report)
        .unwrap_or_else(|e| panic!("the frame report {}: {e}\n{log}", report.display()));
    tracing::info!("{report}");
    // With a whole emulated headset in the VM (`cargo xtask lab --hmd`), the runtime
    // must have found and driven it, not the simulated one.
    if let Ok(model) = std::env::var("LEASEHOLD_LAB_HMD") {
        let name = match model.as_str() {
            "vive" => "Vive MV",
            "vive-pro" => "Vive Pro",
            _ => "Index",
        };
        let chosen = log
            .lines()
            .find(|l| l.contains("headset chosen"))
            .unwrap_or_else(|| panic!("the runtime logged no headset choice:\n{log}"));
        assert!(
            chosen.contains(name) && chosen.contains("simulated=false"),
            "the runtime did not drive the emulated {model}: {chosen}"
        );
    }
    HelloXr { log, report }
}

/// The runtime's log records for the lab's hello_xr runs.
pub const HELLO_XR_LOG: &str = "info,leasehold_openxr::abi::session=debug,leasehold_openxr::core::session=debug,leasehold_compositor::service=debug";
