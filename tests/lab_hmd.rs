//! `lab-hmd MODEL [SECONDS]`: the lab's emulated headset sensor interface as a process of
//! its own, for `cargo xtask lab --hmd MODEL`: a uhid device with the model's USB ids and
//! config, streaming an IMU that follows the head-motion script for SECONDS (default an
//! hour, then still) until the process is stopped. SIGUSR1 unplugs it, SIGUSR2 plugs it
//! in again; its pid and clock origin are published in `lab-hmd.state` in the lab's
//! output folder. Only inside the lab VM (uhid).

use leasehold_drivers::motion::{ImuErrors, Motion};
use leasehold_tests::uhid::{EmulatedVive, EmulatorConfig, LabModel, lab_hmd_state_path};
use std::process::ExitCode;

fn main() -> ExitCode {
    leasehold_tests::init_tracing();
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some(model) = args.first().and_then(|m| LabModel::parse(m)) else {
        tracing::error!("usage: lab-hmd vive|vive-pro|index [SECONDS]");
        return ExitCode::from(2);
    };
    let secs = match args.get(1).map(|s| s.parse::<f64>()) {
        None => 3600.0,
        Some(Ok(s)) if s > 0.0 && s.is_finite() => s,
        Some(_) => {
            tracing::error!("lab-hmd: SECONDS must be a positive number");
            return ExitCode::from(2);
        }
    };
    // SIGUSR1 pulls the cable, SIGUSR2 plugs it in again: taken by sigtimedwait below,
    // blocked everywhere else (the emulator's thread inherits the mask).
    // SAFETY: a sigset on the stack, filled by sigemptyset/sigaddset before use, and
    // pthread_sigmask on this (so far the only) thread.
    let signals = unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, libc::SIGUSR1);
        libc::sigaddset(&mut set, libc::SIGUSR2);
        libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
        set
    };
    let mut cfg = EmulatorConfig::new(Motion::head_demo(secs), secs, ImuErrors::NONE);
    cfg.product_id = model.product_id();
    cfg.config = model.config();
    cfg.samples_per_report = 1;
    let emulated = match EmulatedVive::start(cfg) {
        Ok(e) => e,
        Err(e) => {
            tracing::error!(?model, %e, "lab-hmd: cannot create the emulated headset");
            return ExitCode::FAILURE;
        }
    };
    tracing::info!(
        ?model,
        product_id = format_args!("28de:{:04x}", model.product_id()),
        "lab-hmd: emulated headset streaming its IMU"
    );
    open_to_the_user();
    while emulated.origin_monotonic_ns() == 0 {
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
    let state = format!(
        "pid={}\norigin_ns={}\nsecs={secs}\n",
        std::process::id(),
        emulated.origin_monotonic_ns()
    );
    let path = lab_hmd_state_path();
    if let Err(e) = std::fs::write(&path, state) {
        tracing::error!(path = %path.display(), %e, "lab-hmd: cannot publish its state");
        return ExitCode::FAILURE;
    }
    // Runs until the lab stops it (the device goes with the process).
    loop {
        let timeout = libc::timespec {
            tv_sec: 1,
            tv_nsec: 0,
        };
        // SAFETY: `signals` is the initialised set blocked above; no siginfo wanted.
        let sig = unsafe { libc::sigtimedwait(&signals, std::ptr::null_mut(), &timeout) };
        match sig {
            libc::SIGUSR1 => {
                tracing::info!("lab-hmd: unplugged");
                emulated.unplug();
            }
            libc::SIGUSR2 => {
                tracing::info!("lab-hmd: plugged in again");
                emulated.replug();
                open_to_the_user();
            }
            _ => {}
        }
        // What it delivered, for the tests' reports: samples sent, and samples skipped
        // because the emulator fell behind its clock.
        let stats = format!(
            "sent={}\nskipped={}\n",
            emulated.sent_samples(),
            emulated.skipped_samples()
        );
        let _ = std::fs::write(path.with_extension("stats"), stats);
        if !emulated.plugged() && emulated.finished() {
            break;
        }
    }
    ExitCode::SUCCESS
}

/// What the project's udev rules do on a real machine (the VM runs no udev): the new
/// hidraw node becomes the desktop user's to open, within moments of its creation (the
/// driver retries an open for half a second).
fn open_to_the_user() {
    use std::os::unix::fs::PermissionsExt;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(2);
    while std::time::Instant::now() < deadline {
        let nodes: Vec<std::path::PathBuf> = std::fs::read_dir("/dev")
            .map(|d| {
                d.filter_map(|e| e.ok())
                    .map(|e| e.path())
                    .filter(|p| {
                        p.file_name()
                            .is_some_and(|n| n.to_string_lossy().starts_with("hidraw"))
                    })
                    .collect()
            })
            .unwrap_or_default();
        if !nodes.is_empty() {
            for n in nodes {
                if let Err(e) = std::fs::set_permissions(&n, std::fs::Permissions::from_mode(0o666))
                {
                    tracing::warn!(node = %n.display(), %e, "lab-hmd: cannot open the node to the user");
                }
            }
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(2));
    }
    tracing::warn!("lab-hmd: no hidraw node appeared");
}
