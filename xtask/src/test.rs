//! `cargo xtask test`: the whole suite, as CI runs it.
//!
//! setup (a no-op when all is present) → rustfmt and clippy → unit and host integration
//! tests (nextest, or cargo test where nextest is missing) → the lab tests inside the VM.
//! Ends with one line, `summary: N passed, M failed`, and fails if anything failed.

use crate::lab::{self, LabConfig};
use crate::util::{self, Result, step, workspace_root};
use crate::{edid, setup};
use std::io::{BufRead, BufReader, Write};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

#[derive(Default, Debug, Clone, Copy, PartialEq)]
struct Tally {
    passed: u64,
    failed: u64,
}

impl std::ops::AddAssign for Tally {
    fn add_assign(&mut self, o: Tally) {
        self.passed += o.passed;
        self.failed += o.failed;
    }
}

pub fn run(args: &[String]) -> Result {
    let mut lab = true;
    let mut lint = true;
    let mut fuzz_secs = 10u64;
    for a in args {
        match a.as_str() {
            "--no-lab" => lab = false,
            "--no-lint" => lint = false,
            "--no-fuzz" => fuzz_secs = 0,
            other => return Err(format!("test: unknown argument `{other}`")),
        }
    }
    let t0 = Instant::now();
    setup::run(&[])?;
    let root = workspace_root();
    if lint {
        step("rustfmt");
        util::run(cargo(&root).args(["fmt", "--all", "--check"]))
            .map_err(|e| format!("{e}: run `cargo fmt --all`"))?;
        step("clippy");
        util::run(cargo(&root).args([
            "clippy",
            "--workspace",
            "--all-targets",
            "--features",
            "leasehold-tests/lab",
            "--",
            "-D",
            "warnings",
        ]))?;
    }
    if fuzz_secs > 0 {
        step(&format!("fuzz: every parser target, {fuzz_secs} s each"));
        fuzz(&root, fuzz_secs)?;
    }
    let mut total = Tally::default();
    step("unit and host integration tests");
    let host = host_tests(&root)?;
    total += host;
    if lab {
        step("lab tests (VM: real kernel, virtio-gpu with vblank timer, vgem, uhid)");
        match lab_tests(&root) {
            Ok(t) => total += t,
            Err(e) => {
                println!(
                    "summary: {} passed, {} failed",
                    total.passed,
                    total.failed + 1
                );
                return Err(e);
            }
        }
    }
    step(&format!("all done in {:.0} s", t0.elapsed().as_secs_f64()));
    println!("summary: {} passed, {} failed", total.passed, total.failed);
    if total.failed > 0 {
        Err(format!("{} tests failed", total.failed))
    } else {
        Ok(())
    }
}

/// Builds every fuzz target and runs each for `secs` (seeded from `fuzz/seeds/<target>`
/// where there is one). A crash fails the suite; its input is left in fuzz/artifacts.
fn fuzz(root: &std::path::Path, secs: u64) -> Result {
    util::run(cargo(root).args(["fuzz", "build", "--sanitizer", "none"]))?;
    let list = util::output(cargo(root).args(["fuzz", "list"]))?;
    for target in list.lines().map(str::trim).filter(|t| !t.is_empty()) {
        let corpus = root.join("fuzz/corpus").join(target);
        std::fs::create_dir_all(&corpus).map_err(|e| format!("{}: {e}", corpus.display()))?;
        let mut cmd = cargo(root);
        cmd.args(["fuzz", "run", "--sanitizer", "none", target])
            .arg(&corpus);
        let seeds = root.join("fuzz/seeds").join(target);
        if seeds.is_dir() {
            cmd.arg(&seeds);
        }
        cmd.args([
            "--",
            &format!("-max_total_time={secs}"),
            "-print_final_stats=0",
        ]);
        let out = cmd
            .output()
            .map_err(|e| format!("cannot run cargo fuzz: {e}"))?;
        let text = String::from_utf8_lossy(&out.stderr);
        let runs = text
            .lines()
            .rev()
            .find(|l| l.starts_with("Done "))
            .unwrap_or("(no summary)")
            .to_string();
        if !out.status.success() {
            println!("{text}");
            return Err(format!(
                "fuzz target {target} failed (input saved under fuzz/artifacts)"
            ));
        }
        println!("  {target}: {runs}");
    }
    Ok(())
}

fn cargo(root: &std::path::Path) -> Command {
    let mut c = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    c.current_dir(root);
    c
}

fn has_nextest() -> bool {
    util::succeeds(Command::new("cargo").args(["nextest", "--version"]))
}

/// Runs a command, echoing its stdout and stderr as they come, and returns the text.
fn run_tee(cmd: &mut Command) -> Result<(bool, String)> {
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot start `{}`: {e}", util::show(cmd)))?;
    let (tx, rx) = std::sync::mpsc::channel::<String>();
    let streams: Vec<Box<dyn std::io::Read + Send>> = vec![
        Box::new(child.stdout.take().expect("piped")),
        Box::new(child.stderr.take().expect("piped")),
    ];
    let readers: Vec<_> = streams
        .into_iter()
        .map(|r| {
            let tx = tx.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(r).lines().map_while(|l| l.ok()) {
                    let _ = tx.send(line);
                }
            })
        })
        .collect();
    drop(tx);
    let mut text = String::new();
    for line in rx {
        let _ = writeln!(std::io::stdout().lock(), "{line}");
        text.push_str(&line);
        text.push('\n');
    }
    for r in readers {
        let _ = r.join();
    }
    let status = child.wait().map_err(|e| e.to_string())?;
    Ok((status.success(), text))
}

/// The number just before `word` on a line ("12 passed" → 12).
fn count_before(line: &str, word: &str) -> Option<u64> {
    let words: Vec<&str> = line
        .split(|c: char| c.is_whitespace() || c == ',' || c == ';')
        .filter(|w| !w.is_empty())
        .collect();
    words
        .windows(2)
        .find(|w| w[1] == word)
        .and_then(|w| w[0].parse().ok())
}

/// Sums libtest's `test result:` lines, or reads nextest's `Summary` line.
fn tally(output: &str) -> Option<Tally> {
    let mut t = None::<Tally>;
    // nextest echoes a failing test's own libtest output: where its summary is present,
    // count only that, or a failure is counted twice.
    let nextest = output
        .lines()
        .any(|l| l.trim().starts_with("Summary [") && l.contains("tests run:"));
    for line in output.lines() {
        let l = line.trim();
        let is_libtest = !nextest && l.starts_with("test result:");
        let is_nextest = nextest && l.starts_with("Summary [") && l.contains("tests run:");
        if is_libtest || is_nextest {
            let add = Tally {
                passed: count_before(l, "passed").unwrap_or(0),
                failed: count_before(l, "failed").unwrap_or(0),
            };
            *t.get_or_insert_with(Tally::default) += add;
        }
    }
    t
}

fn host_tests(root: &std::path::Path) -> Result<Tally> {
    // The OpenXR tests load the runtime library through the real loader: build it (a
    // cdylib is not built as a dependency of the test crates).
    util::run(cargo(root).args(["build", "--quiet", "-p", "leasehold-runtime"]))?;
    let mut cmd = cargo(root);
    if has_nextest() {
        cmd.args(["nextest", "run", "--workspace", "--no-fail-fast"]);
    } else {
        println!("  (cargo-nextest not found: using cargo test)");
        cmd.args(["test", "--workspace", "--no-fail-fast"]);
    }
    let (ok, out) = run_tee(&mut cmd)?;
    let t = tally(&out).ok_or("host tests printed no summary (did they build?)")?;
    if !ok && t.failed == 0 {
        return Err("host tests failed without a failing test (see above)".into());
    }
    Ok(t)
}

/// The path of a test or binary target from cargo's JSON build messages.
pub(crate) fn executable_from_json(json: &str, target: &str) -> Option<PathBuf> {
    json.lines()
        .filter(|l| l.contains("\"reason\":\"compiler-artifact\""))
        .filter(|l| l.contains(&format!("\"name\":\"{target}\"")))
        .find_map(|l| {
            let start = l.find("\"executable\":\"")? + "\"executable\":\"".len();
            let end = start + l[start..].find('"')?;
            Some(PathBuf::from(&l[start..end]))
        })
}

/// One VM configuration and the lab tests that run in it (one boot each).
struct LabGroup {
    what: &'static str,
    outputs: u8,
    hmd: Option<&'static str>,
    /// The headset's sensor interface emulated too (`lab --hmd`): the runtime finds a
    /// whole headset.
    emulate: bool,
    mode: Option<&'static str>,
    /// libtest name filters (a test runs if it matches any); empty runs every lab test.
    filters: &'static [&'static str],
    /// libtest `--skip` filters.
    skip: &'static [&'static str],
}

const LAB_GROUPS: &[LabGroup] = &[
    LabGroup {
        what: "two outputs, Vive EDID (2160x1200@90) on output 2",
        outputs: 2,
        hmd: Some("vive"),
        // The HID tests start their own emulated headsets.
        emulate: false,
        mode: None,
        filters: &[],
        skip: &["no_headset", "lessors::", "compositor::", "openxr::"],
    },
    LabGroup {
        what: "one output, a whole emulated Index (EDID with a custom 640x360@120 mode, sensor interface over uhid): cadence, compositor, hello_xr",
        outputs: 1,
        hmd: Some("index"),
        emulate: true,
        mode: Some("640x360@120"),
        filters: &[
            "lease::lease_flip_isolate_revoke",
            "compositor::",
            "openxr::",
        ],
        skip: &[],
    },
    LabGroup {
        what: "two outputs, a whole emulated Vive (EDID with a custom 640x360@90 mode on output 2, sensor interface over uhid), sway, then Xorg, as the DRM master leasing it (hello_xr under each)",
        outputs: 2,
        hmd: Some("vive"),
        emulate: true,
        mode: Some("640x360@90"),
        filters: &["lessors::"],
        skip: &[],
    },
    LabGroup {
        what: "two outputs, a whole emulated Index (EDID with a custom 640x360@120 mode on output 2, sensor interface over uhid), Xorg leasing it (hello_xr followed through unplug, replug and the X server's end)",
        outputs: 2,
        hmd: Some("index"),
        emulate: true,
        mode: Some("640x360@120"),
        filters: &["lessors::x11::hello_xr_under_xorg"],
        skip: &[],
    },
    LabGroup {
        what: "one output, no headset (QEMU's desktop EDID)",
        outputs: 1,
        hmd: None,
        emulate: false,
        mode: None,
        filters: &["no_headset"],
        skip: &[],
    },
];

fn lab_tests(root: &std::path::Path) -> Result<Tally> {
    let json = util::output(cargo(root).args([
        "test",
        "-p",
        "leasehold-tests",
        "--features",
        "lab",
        "--test",
        "lab",
        "--no-run",
        "--message-format=json",
    ]))?;
    let lab_bin =
        executable_from_json(&json, "lab").ok_or("cargo built no `lab` test executable")?;
    let json = util::output(cargo(root).args([
        "build",
        "-p",
        "leasehold-cli",
        "--bin",
        "leasehold",
        "--message-format=json",
    ]))?;
    let cli =
        executable_from_json(&json, "leasehold").ok_or("cargo built no `leasehold` binary")?;

    let mut total = Tally::default();
    for g in LAB_GROUPS {
        println!("  \x1b[1mlab group:\x1b[0m {}", g.what);
        let mut cfg = LabConfig::new();
        cfg.outputs = g.outputs;
        cfg.hmd = g.hmd.map(edid::find).transpose()?;
        if g.emulate
            && let Some(model) = g.hmd
        {
            cfg.emulate = Some((model.to_string(), lab::emulator(model)?));
        }
        cfg.mode = g.mode.map(edid::parse_mode).transpose()?;
        cfg.timeout = Duration::from_secs(900);
        cfg.env
            .push(("LEASEHOLD_CLI".into(), cli.display().to_string()));
        // llvmpipe's AVX2 code runs ~6x slower under TCG than its SSE code.
        cfg.env
            .push(("LP_NATIVE_VECTOR_WIDTH".into(), "128".into()));
        let mut cmd = vec![lab_bin.display().to_string(), "--test-threads=1".into()];
        cmd.extend(g.filters.iter().map(|f| (*f).to_string()));
        for skip in g.skip {
            cmd.extend(["--skip".into(), (*skip).into()]);
        }
        let r = lab::run(&cfg, &cmd)?;
        println!(
            "  lab VM: boot to command {}, whole run {:.1} s",
            r.boot_to_command
                .map(|d| format!("{:.1} s", d.as_secs_f64()))
                .unwrap_or("-".into()),
            r.total.as_secs_f64()
        );
        let t = tally(&r.output).ok_or("the lab tests printed no `test result:` line")?;
        if r.status != 0 && t.failed == 0 {
            return Err(format!(
                "the lab tests exited with {} without a failing test (see above)",
                r.status
            ));
        }
        total += t;
    }
    Ok(total)
}

/// `cargo xtask leasehold …`: setup, then the CLI in release mode.
pub fn run_cli(args: &[String]) -> Result {
    setup::run(&[])?;
    let root = workspace_root();
    step(&format!("leasehold {}", args.join(" ")));
    // The OpenXR runtime library goes beside the CLI (`leasehold demo` and `install`
    // find it there).
    util::run(cargo(&root).args(["build", "--quiet", "--release", "-p", "leasehold-runtime"]))?;
    util::run(
        cargo(&root)
            .args([
                "run",
                "--quiet",
                "--release",
                "-p",
                "leasehold-cli",
                "--bin",
                "leasehold",
                "--",
            ])
            .args(args),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tallies_nextest_and_libtest() {
        let nt = "     Summary [   0.5s] 14 tests run: 12 passed, 2 failed, 0 skipped\n";
        assert_eq!(
            tally(nt),
            Some(Tally {
                passed: 12,
                failed: 2
            })
        );
        let lt = "test result: ok. 3 passed; 0 failed; 0 ignored\nfoo\ntest result: FAILED. 1 passed; 1 failed; 0 ignored\n";
        assert_eq!(
            tally(lt),
            Some(Tally {
                passed: 4,
                failed: 1
            })
        );
        assert_eq!(tally("nothing here"), None);
        // nextest's echo of a failing test's libtest output is not counted again.
        let both = "    test result: FAILED. 0 passed; 1 failed; 0 ignored\n     Summary [   1.0s] 5 tests run: 4 passed, 1 failed, 0 skipped\n";
        assert_eq!(
            tally(both),
            Some(Tally {
                passed: 4,
                failed: 1
            })
        );
    }

    #[test]
    fn finds_executables_in_cargo_json() {
        let j = r#"{"reason":"compiler-artifact","target":{"kind":["test"],"name":"lab"},"executable":"/t/lab-abc"}
{"reason":"compiler-artifact","target":{"name":"drm"},"executable":null}"#;
        assert_eq!(
            executable_from_json(j, "lab"),
            Some(PathBuf::from("/t/lab-abc"))
        );
        assert_eq!(executable_from_json(j, "drm"), None);
    }
}
