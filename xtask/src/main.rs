//! `cargo xtask …`: the project's own developer tool.
//!
//! - `setup`: installs every system package the project and its tests need (idempotent).
//! - `lab`: boots the VM hardware lab and runs a command inside it.
//! - `test`: setup, then lint, unit and host integration tests, then the lab tests in the VM.
//! - `leasehold …`: setup, then build and run the `leasehold` CLI with the given arguments.
//!
//! It depends on nothing but std so that a fresh clone runs it after a few seconds of build.
// This is a command-line tool: its output is for the person who runs it.
#![allow(clippy::disallowed_macros)]

mod edid;
mod lab;
mod setup;
mod test;
mod util;
mod vnc;

use std::process::ExitCode;

const USAGE: &str = "\
usage: cargo xtask <command> [args]

commands:
  setup [--refresh-kernel]     install system packages, virtme-ng and the lab kernel (idempotent)
  lab [options] -- <cmd…>      boot the VM lab and run <cmd> inside it
      --outputs N              virtio-gpu outputs to bring up (1 or 2; default 1)
      --hmd-edid NAME          give the headset output this headset's EDID (vive, vive-pro,
                               index, rift-cv1); the headset is output 1, or output 2
                               with --outputs 2
      --hmd MODEL              a whole headset: MODEL's EDID (as --hmd-edid) and its sensor
                               interface emulated over uhid (USB ids, config with its lens
                               data, an IMU following a head-motion script); vive,
                               vive-pro or index
      --mode WxH@Hz            the headset EDID's preferred mode (default: the headset's own)
      --timeout SECS           give up after this long (default 600)
      --out DIR                writable directory shared with the guest (default lab-out/)
      --kernel PATH            boot this kernel image instead of the lab kernel
      --qemu-opt ARG           pass an extra argument to QEMU (repeatable)
  test [--no-lab] [--no-lint]  setup, lint, unit + host integration tests, then the lab tests
  leasehold <args…>            setup, then run the leasehold CLI (e.g. `cargo xtask leasehold probe`)
";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some((cmd, rest)) = args.split_first() else {
        eprint!("{USAGE}");
        return ExitCode::from(2);
    };
    let result = match cmd.as_str() {
        "setup" => setup::run(rest),
        "lab" => lab::run_cli(rest),
        "test" => test::run(rest),
        "leasehold" => test::run_cli(rest),
        "-h" | "--help" | "help" => {
            print!("{USAGE}");
            Ok(())
        }
        other => Err(format!("unknown command `{other}`\n\n{USAGE}")),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("xtask: error: {e}");
            ExitCode::FAILURE
        }
    }
}
