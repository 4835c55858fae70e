//! `lab-hmd MODEL [SECONDS]`: the lab's emulated headset sensor interface as a process of
//! its own, for `cargo xtask lab --hmd MODEL`: a uhid device with the model's USB ids and
//! config, streaming an IMU that follows the head-motion script for SECONDS (default an
//! hour, then still) until the process is stopped. Only inside the lab VM (uhid).

use leasehold_drivers::motion::{ImuErrors, Motion};
use leasehold_tests::uhid::{EmulatedVive, EmulatorConfig, LabModel};
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
    // Runs until the lab stops it (the device goes with the process).
    loop {
        std::thread::sleep(std::time::Duration::from_secs(1));
        if !emulated.plugged() && emulated.finished() {
            break;
        }
    }
    ExitCode::SUCCESS
}
