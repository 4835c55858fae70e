//! `leasehold`: the user-facing command.
// The CLI is where user-facing output is printed; everything else logs through tracing.
#![allow(clippy::disallowed_macros)]

mod bench;
mod bench_compositor;
mod calibrate;
mod demo;
mod install;
mod plot;
mod probe;

use clap::{Parser, Subcommand};
use std::process::ExitCode;

#[derive(Parser, Debug)]
#[command(
    name = "leasehold",
    version,
    about = "Leasehold: a Linux VR direct-mode runtime"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run the bundled OpenXR app on the simulated headset through the real loader and
    /// Leasehold: writes the composited panel image (PNG) and a frame-timing summary.
    Demo(demo::DemoArgs),
    /// List what this machine offers a VR runtime: DRM cards and connectors (headset
    /// candidates marked), Vulkan devices and their display-path capabilities, HID headsets.
    Probe,
    /// Benchmarks.
    #[command(subcommand)]
    Bench(BenchCommand),
    /// Headset calibration, saved per headset and applied by the driver on its next start.
    #[command(subcommand)]
    Calibrate(CalibrateCommand),
    /// Make Leasehold the active OpenXR runtime for this user (or, with --print-env, print
    /// the XR_RUNTIME_JSON line that selects it for one shell).
    Install(install::InstallArgs),
}

#[derive(Subcommand, Debug)]
enum CalibrateCommand {
    /// Measure the IMU's gyro bias (and, over all six sides, the accelerometer's bias and
    /// scale) with the headset at rest.
    Imu(calibrate::ImuArgs),
    /// Show or set display overrides: IPD and per-eye lens centre offsets.
    Display(calibrate::DisplayArgs),
}

#[derive(Subcommand, Debug)]
enum BenchCommand {
    /// Drive the real display path with synthetic render work (vgem fences) and compare
    /// the late-commit presenter with a FIFO-swapchain baseline; writes a per-frame CSV.
    FrameTiming(bench::FrameTimingArgs),
    /// Time the compositor: two eye layers through timewarp, lens distortion and
    /// chromatic aberration into a panel-sized target, CPU and GPU (timestamps).
    Compositor(bench_compositor::CompositorArgs),
}

fn main() -> ExitCode {
    let filter = tracing_subscriber::EnvFilter::try_from_env("LEASEHOLD_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Demo(a) => demo::run(a),
        Command::Probe => probe::run(),
        Command::Bench(BenchCommand::FrameTiming(a)) => bench::frame_timing(a),
        Command::Bench(BenchCommand::Compositor(a)) => bench_compositor::compositor(a),
        Command::Calibrate(CalibrateCommand::Imu(a)) => calibrate::imu(a),
        Command::Calibrate(CalibrateCommand::Display(a)) => calibrate::display(a),
        Command::Install(a) => install::run(a),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("leasehold: {e:#}");
            ExitCode::FAILURE
        }
    }
}
