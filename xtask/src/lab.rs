//! `cargo xtask lab`: the VM hardware lab.
//!
//! Boots the sid kernel under QEMU (TCG: KVM is not usable on these hosts) through
//! virtme-ng, with a virtio-gpu that has a vblank timer, vgem for CPU-signalled fences and
//! uhid for emulated HID devices. The guest sees the host's root filesystem read-only, so
//! binaries built on the host run inside; `--out` is the one writable directory. The
//! guest command's exit status and output come back; a VM that cannot start or a run that
//! exceeds its time limit fails with a clear message instead of hanging.

use crate::edid::{self, LabHmd};
use crate::setup;
use crate::util::{Result, workspace_root};
use crate::vnc;
use std::fs;
use std::io::{BufRead, BufReader, Write};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// How to boot the lab VM.
#[derive(Clone)]
pub struct LabConfig {
    pub outputs: u8,
    pub hmd: Option<&'static LabHmd>,
    pub mode: Option<(u16, u16, u32)>,
    pub timeout: Duration,
    pub out: PathBuf,
    /// Extra environment for the guest command.
    pub env: Vec<(String, String)>,
    /// Echo the guest's output as it arrives.
    pub echo: bool,
    /// A kernel image other than the lab kernel from setup.
    pub kernel: Option<PathBuf>,
    /// Extra QEMU arguments.
    pub qemu_extra: Vec<String>,
    /// An emulated headset sensor interface to start before the command: (model, the
    /// `lab-hmd` executable).
    pub emulate: Option<(String, PathBuf)>,
}

impl LabConfig {
    pub fn new() -> Self {
        Self {
            outputs: 1,
            hmd: None,
            mode: None,
            timeout: Duration::from_secs(600),
            out: workspace_root().join("lab-out"),
            env: Vec::new(),
            echo: true,
            kernel: None,
            qemu_extra: Vec::new(),
            emulate: None,
        }
    }

    /// The connector the headset EDID goes on: the second output when there are two.
    pub fn hmd_connector(&self) -> &'static str {
        if self.outputs >= 2 {
            "Virtual-2"
        } else {
            "Virtual-1"
        }
    }
}

/// What came back from a lab run.
pub struct LabRun {
    pub status: i32,
    pub output: String,
    pub boot_to_command: Option<Duration>,
    pub total: Duration,
}

pub fn run_cli(args: &[String]) -> Result {
    let (opts, cmd) = match args.iter().position(|a| a == "--") {
        Some(i) => (&args[..i], &args[i + 1..]),
        None => (args, &[][..]),
    };
    if cmd.is_empty() {
        return Err("lab: no command given (usage: cargo xtask lab [options] -- <cmd…>)".into());
    }
    let mut cfg = LabConfig::new();
    let mut it = opts.iter();
    while let Some(a) = it.next() {
        let mut val = |name: &str| {
            it.next()
                .cloned()
                .ok_or(format!("lab: {name} needs a value"))
        };
        match a.as_str() {
            "--outputs" => {
                cfg.outputs = match val("--outputs")?.as_str() {
                    "1" => 1,
                    "2" => 2,
                    o => return Err(format!("lab: --outputs {o}: the lab drives 1 or 2 outputs")),
                }
            }
            "--hmd-edid" => cfg.hmd = Some(edid::find(&val("--hmd-edid")?)?),
            "--hmd" => {
                let model = val("--hmd")?;
                cfg.hmd = Some(edid::find(&model)?);
                cfg.emulate = Some((model, PathBuf::new()));
            }
            "--mode" => cfg.mode = Some(edid::parse_mode(&val("--mode")?)?),
            "--timeout" => {
                let v = val("--timeout")?;
                let s: u64 = v
                    .parse()
                    .map_err(|_| format!("lab: --timeout {v} is not seconds"))?;
                cfg.timeout = Duration::from_secs(s);
            }
            "--out" => cfg.out = PathBuf::from(val("--out")?),
            "--kernel" => cfg.kernel = Some(PathBuf::from(val("--kernel")?)),
            "--qemu-opt" => cfg.qemu_extra.push(val("--qemu-opt")?),
            other => return Err(format!("lab: unknown option `{other}`")),
        }
    }
    if let Some((model, bin)) = &mut cfg.emulate {
        *bin = emulator(model)?;
    }
    let r = run(&cfg, cmd)?;
    eprintln!(
        "lab: exit status {} after {:.1} s (VM boot to command: {})",
        r.status,
        r.total.as_secs_f64(),
        r.boot_to_command
            .map(|d| format!("{:.1} s", d.as_secs_f64()))
            .unwrap_or("-".into())
    );
    if r.status == 0 {
        Ok(())
    } else {
        Err(format!(
            "the command in the lab exited with status {}",
            r.status
        ))
    }
}

/// The models `--hmd` emulates: the Vive family, whose sensor interface the drivers read.
pub const EMULATED_MODELS: [&str; 3] = ["vive", "vive-pro", "index"];

/// Builds the `lab-hmd` emulator for `model` and returns its path.
pub fn emulator(model: &str) -> Result<PathBuf> {
    if !EMULATED_MODELS.contains(&model) {
        return Err(format!(
            "lab: --hmd {model}: the lab emulates {} (use --hmd-edid for the EDID alone)",
            EMULATED_MODELS.join(", ")
        ));
    }
    let json = crate::util::output(
        std::process::Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
            .current_dir(workspace_root())
            .args([
                "build",
                "-p",
                "leasehold-tests",
                "--features",
                "lab",
                "--bin",
                "lab-hmd",
                "--message-format=json",
            ]),
    )?;
    crate::test::executable_from_json(&json, "lab-hmd")
        .ok_or_else(|| "lab: cargo built no `lab-hmd` executable".to_string())
}

fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

/// Boots the VM, runs `cmd` in it and returns its exit status and output.
pub fn run(cfg: &LabConfig, cmd: &[String]) -> Result<LabRun> {
    if cfg.mode.is_some() && cfg.hmd.is_none() {
        return Err("lab: --mode sets the headset EDID's mode, so it needs --hmd-edid".into());
    }
    let kernel = match &cfg.kernel {
        Some(k) => k.clone(),
        None => {
            let release = setup::lab_kernel_release()?;
            Path::new("/usr/lib/modules").join(release).join("vmlinuz")
        }
    };
    if !kernel.is_file() {
        return Err(format!(
            "lab: kernel image {} does not exist",
            kernel.display()
        ));
    }
    let vng = setup::vng_path();
    if !vng.exists() {
        return Err(format!(
            "lab: {} is missing: run `cargo xtask setup`",
            vng.display()
        ));
    }
    if Command::new("qemu-system-x86_64")
        .arg("--version")
        .output()
        .is_err()
    {
        return Err("lab: qemu-system-x86_64 is missing: run `cargo xtask setup`".into());
    }
    let out = absolute(&cfg.out)?;
    fs::create_dir_all(&out).map_err(|e| format!("lab: create {}: {e}", out.display()))?;
    for marker in [".lab-started", ".lab-status"] {
        let _ = fs::remove_file(out.join(marker));
    }

    let mut append = vec!["quiet".to_string(), "loglevel=4".to_string()];
    let (mut xres, mut yres) = (1280u16, 800u16);
    if let Some(hmd) = cfg.hmd {
        let mode = cfg.mode.unwrap_or(hmd.native);
        let fw = out.join("firmware/edid");
        fs::create_dir_all(&fw).map_err(|e| format!("lab: create {}: {e}", fw.display()))?;
        let bin = edid::build(hmd, mode)?;
        fs::write(fw.join(format!("{}.bin", hmd.name)), bin)
            .map_err(|e| format!("lab: write EDID: {e}"))?;
        append.push(format!(
            "drm.edid_firmware={}:edid/{}.bin",
            cfg.hmd_connector(),
            hmd.name
        ));
        append.push(format!(
            "firmware_class.path={}",
            out.join("firmware").display()
        ));
        if cfg.outputs == 1 {
            (xres, yres) = (mode.0, mode.1);
        }
    }
    let vnc_sock = out.join("vnc.sock");
    let _ = fs::remove_file(&vnc_sock);
    let mut qemu =
        format!("-device virtio-gpu-pci,id=gpu0,max_outputs=2,edid=on,xres={xres},yres={yres}");
    if cfg.outputs >= 2 {
        qemu.push_str(&format!(
            " -vnc unix:{},display=gpu0,head=1",
            vnc_sock.display()
        ));
    }
    for extra in &cfg.qemu_extra {
        qemu.push(' ');
        qemu.push_str(extra);
    }

    let cwd = std::env::current_dir().map_err(|e| e.to_string())?;
    let script = guest_script(cfg, &out, &cwd, cmd);
    let script_path = out.join("run.sh");
    fs::write(&script_path, script)
        .map_err(|e| format!("lab: write {}: {e}", script_path.display()))?;

    let venv_bin = setup::venv_dir().join("bin");
    let path = format!(
        "{}:{}",
        venv_bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let mut vm = Command::new(&vng);
    vm.arg("--run")
        .arg(&kernel)
        .args(["--disable-kvm", "--cpus", "2", "--memory", "2G"])
        .arg("--rwdir")
        .arg(&out)
        .arg("--append")
        .arg(append.join(" "))
        .arg(format!("--qemu-opts={qemu}"))
        .arg("--exec")
        .arg(format!("sh {}", script_path.display()))
        .env("PATH", path)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0);
    let t0 = Instant::now();
    let mut child = vm
        .spawn()
        .map_err(|e| format!("lab: cannot start vng: {e}"))?;
    let pgid = child.id();

    let vnc_thread = (cfg.outputs >= 2).then(|| {
        let (w, h) = cfg
            .hmd
            .map(|h| cfg.mode.unwrap_or(h.native))
            .map(|m| (m.0, m.1))
            .unwrap_or((1280, 720));
        let sock = vnc_sock.clone();
        std::thread::spawn(move || {
            match vnc::set_desktop_size(&sock, w, h, Duration::from_secs(60)) {
                Ok(conn) => {
                    vnc::drain(conn);
                    Ok(())
                }
                Err(e) => Err(e),
            }
        })
    });

    let (tx, rx) = std::sync::mpsc::channel::<String>();
    let stdout = child.stdout.take().expect("piped");
    let stderr = child.stderr.take().expect("piped");
    let readers: Vec<_> = [
        Box::new(stdout) as Box<dyn std::io::Read + Send>,
        Box::new(stderr),
    ]
    .into_iter()
    .map(|r| {
        let tx = tx.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(r).lines().map_while(|l| l.ok()) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        })
    })
    .collect();
    drop(tx);

    let mut output = String::new();
    let mut timed_out = false;
    let deadline = t0 + cfg.timeout;
    loop {
        match rx.recv_timeout(Duration::from_millis(200)) {
            Ok(line) => {
                if cfg.echo {
                    let mut so = std::io::stdout().lock();
                    let _ = writeln!(so, "{line}");
                }
                output.push_str(&line);
                output.push('\n');
            }
            Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => break,
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {}
        }
        if Instant::now() >= deadline {
            timed_out = true;
            kill_group(pgid);
            break;
        }
    }
    let status = child
        .wait()
        .map_err(|e| format!("lab: wait for vng: {e}"))?;
    // QEMU or helpers vng started may outlive it; the VM's process group goes with it.
    kill_group(pgid);
    for r in readers {
        let _ = r.join();
    }
    let total = t0.elapsed();
    let started = fs::metadata(out.join(".lab-started"))
        .and_then(|m| m.modified())
        .ok();
    let boot_to_command = started.and_then(|s| {
        let spawned = std::time::SystemTime::now().checked_sub(total)?;
        s.duration_since(spawned).ok()
    });
    if let Some(t) = vnc_thread
        && let Ok(Err(e)) = t.join()
    {
        return Err(format!("lab: second output: {e}"));
    }
    if timed_out {
        return Err(format!(
            "lab: the run exceeded its {} s limit and was stopped{}",
            cfg.timeout.as_secs(),
            if started.is_none() {
                " before the guest command started (the VM never booted)"
            } else {
                ""
            }
        ));
    }
    if started.is_none() {
        return Err(format!(
            "lab: the VM failed to start (vng exited with {status}); its output is above. \
             Check `cargo xtask setup` and the kernel {}.",
            kernel.display()
        ));
    }
    let guest_status = fs::read_to_string(out.join(".lab-status"))
        .ok()
        .and_then(|s| s.trim().parse::<i32>().ok())
        .ok_or_else(|| format!("lab: the guest stopped before the command finished (vng: {status}); see the output above"))?;
    Ok(LabRun {
        status: guest_status,
        output,
        boot_to_command,
        total,
    })
}

/// SIGKILL to a whole process group. Spelled `kill -s KILL -- -PGID`: procps-ng 4.0's
/// `kill -KILL -PGID` parses only the first digit of the group (so `-1234` became `-1`,
/// every process).
fn kill_group(pgid: u32) {
    if pgid <= 1 {
        return;
    }
    let _ = Command::new("kill")
        .args(["-s", "KILL", "--", &format!("-{pgid}")])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
}

fn absolute(p: &Path) -> Result<PathBuf> {
    if p.is_absolute() {
        Ok(p.to_path_buf())
    } else {
        Ok(std::env::current_dir().map_err(|e| e.to_string())?.join(p))
    }
}

/// The script the guest runs: load the lab's drivers, wait for the display outputs, run
/// the command, record its status.
fn guest_script(cfg: &LabConfig, out: &Path, cwd: &Path, cmd: &[String]) -> String {
    let out_q = shell_quote(&out.display().to_string());
    let mut s = String::from("#!/bin/sh\n# Written by `cargo xtask lab`.\n");
    s.push_str(&format!(
        "OUT={out_q}\ndate +%s.%N > \"$OUT/.lab-started\"\n"
    ));
    s.push_str(
        "for m in virtio_gpu vgem uhid; do\n  modprobe $m || { echo \"lab: modprobe $m failed\"; echo 125 > \"$OUT/.lab-status\"; exit 125; }\ndone\n",
    );
    s.push_str(
        "i=0; while ! ls /dev/dri/card* >/dev/null 2>&1; do i=$((i+1)); [ $i -gt 100 ] && { echo 'lab: no DRM card appeared'; echo 125 > \"$OUT/.lab-status\"; exit 125; }; sleep 0.1; done\n",
    );
    let mut want = vec!["Virtual-1"];
    if cfg.outputs >= 2 {
        want.push("Virtual-2");
    }
    for c in want {
        s.push_str(&format!(
            "i=0; until grep -qx connected /sys/class/drm/card*-{c}/status 2>/dev/null; do i=$((i+1)); [ $i -gt 300 ] && {{ echo 'lab: output {c} never came up connected'; echo 125 > \"$OUT/.lab-status\"; exit 125; }}; sleep 0.1; done\n"
        ));
    }
    s.push_str("export RUST_BACKTRACE=1 LEASEHOLD_LAB=1 LEASEHOLD_LAB_OUT=\"$OUT\"\n");
    for key in ["LEASEHOLD_LOG", "HOME"] {
        if let Ok(v) = std::env::var(key) {
            s.push_str(&format!("export {key}={}\n", shell_quote(&v)));
        }
    }
    for (k, v) in &cfg.env {
        s.push_str(&format!("export {k}={}\n", shell_quote(v)));
    }
    s.push_str(&format!("cd {}\n", shell_quote(&cwd.display().to_string())));
    if let Some((model, bin)) = &cfg.emulate {
        // The headset's sensor interface, as a process beside the command: up (its
        // hidraw node there) before the command starts, stopped after it.
        s.push_str(&format!(
            "export LEASEHOLD_LAB_HMD={}\n",
            shell_quote(model)
        ));
        s.push_str(&format!(
            "{} {} > \"$OUT/lab-hmd.log\" 2>&1 &\nHMD=$!\n",
            shell_quote(&bin.display().to_string()),
            shell_quote(model)
        ));
        s.push_str(
            "i=0; until ls /dev/hidraw* >/dev/null 2>&1; do i=$((i+1)); [ $i -gt 100 ] && { echo 'lab: the emulated headset never appeared'; cat \"$OUT/lab-hmd.log\"; echo 125 > \"$OUT/.lab-status\"; exit 125; }; sleep 0.1; done\n",
        );
        // What the project's udev rules give the desktop's user on a real machine (the
        // VM runs no udev): the sensor interface is theirs to open.
        s.push_str("chmod a+rw /dev/hidraw*\n");
    }
    let quoted: Vec<String> = cmd.iter().map(|a| shell_quote(a)).collect();
    s.push_str(&quoted.join(" "));
    s.push_str("\nrc=$?\n");
    if cfg.emulate.is_some() {
        s.push_str("kill $HMD 2>/dev/null; wait $HMD 2>/dev/null\n");
    }
    s.push_str("echo $rc > \"$OUT/.lab-status\"\nexit $rc\n");
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scratch(name: &str) -> PathBuf {
        std::env::temp_dir().join(format!("leasehold-lab-{name}-{}", std::process::id()))
    }

    #[test]
    fn missing_kernel_is_a_clear_error() {
        let mut cfg = LabConfig::new();
        cfg.out = scratch("nokernel");
        cfg.kernel = Some(PathBuf::from("/nonexistent/vmlinuz"));
        let err = run(&cfg, &["true".into()]).err().expect("must fail");
        assert!(
            err.contains("kernel image /nonexistent/vmlinuz does not exist"),
            "{err}"
        );
    }

    /// Needs `cargo xtask setup` (as `cargo xtask test` runs first): a QEMU that refuses
    /// its configuration must end the run quickly with a clear error, not hang.
    #[test]
    fn qemu_error_fails_fast_and_clearly() {
        let mut cfg = LabConfig::new();
        cfg.out = scratch("qemuerr");
        cfg.echo = false;
        cfg.timeout = Duration::from_secs(120);
        cfg.qemu_extra = vec!["-device".into(), "no-such-device-leasehold".into()];
        let t0 = Instant::now();
        let err = run(&cfg, &["true".into()]).err().expect("must fail");
        assert!(err.contains("the VM failed to start"), "{err}");
        assert!(
            t0.elapsed() < Duration::from_secs(60),
            "took {:?}",
            t0.elapsed()
        );
        let _ = fs::remove_dir_all(&cfg.out);
    }

    #[test]
    fn quoting_survives_quotes() {
        assert_eq!(shell_quote("a b"), "'a b'");
        assert_eq!(shell_quote("it's"), r"'it'\''s'");
    }

    #[test]
    fn script_loads_drivers_waits_and_records_status() {
        let mut cfg = LabConfig::new();
        cfg.outputs = 2;
        cfg.env.push(("X".into(), "1 2".into()));
        let s = guest_script(
            &cfg,
            Path::new("/o"),
            Path::new("/w"),
            &["echo".into(), "hi there".into()],
        );
        assert!(s.contains("modprobe $m"));
        assert!(s.contains("Virtual-2/status"));
        assert!(s.contains("export X='1 2'"));
        assert!(s.contains("cd '/w'\n'echo' 'hi there'\nrc=$?"));
    }

    #[test]
    fn an_emulated_headset_is_up_before_the_command_and_stopped_after() {
        let mut cfg = LabConfig::new();
        cfg.emulate = Some(("index".into(), PathBuf::from("/b/lab-hmd")));
        let s = guest_script(&cfg, Path::new("/o"), Path::new("/w"), &["true".into()]);
        let start = s.find("'/b/lab-hmd' 'index'").expect("started");
        let wait = s.find("/dev/hidraw*").expect("waited for");
        let cmd = s.find("'true'\nrc=$?").expect("the command");
        let stop = s.find("kill $HMD").expect("stopped");
        let status = s.find("echo $rc").expect("status");
        assert!(
            start < wait && wait < cmd && cmd < stop && stop < status,
            "{s}"
        );
        assert!(
            emulator("rift-cv1")
                .unwrap_err()
                .contains("vive, vive-pro, index")
        );
    }
}
