//! The lab's emulated headset: a Vive sensor interface made with uhid.
//!
//! It has the real vendor/product ids and a report descriptor with the real report ids,
//! answers the range and config feature reports (the config JSON is deflated and sent in
//! 62-byte chunks, as the hardware does), and streams IMU reports generated from a known
//! motion with injected gyro bias, accelerometer errors and noise. Device time is the
//! motion's time: sample `i` is stamped `i` ms, so a driver's estimate at device time `t`
//! can be compared with the script's exact orientation at `t`.
//!
//! Only in the lab: the host kernel has no uhid.

use leasehold_drivers::motion::{ImuErrors, ImuSample, Motion, synthesize};
use leasehold_drivers::vive::config::{ViveConfig, deflate};
use leasehold_drivers::vive::protocol::{
    CONFIG_READ_REPORT_ID, CONFIG_START_REPORT_ID, FEATURE_REPORT_LEN, FactoryImu, IMU_REPORT_LEN,
    ImuRange, LHR_SENSORS_PID, RANGE_REPORT_ID, RawImuSample, VALVE_VID, VIVE_SENSORS_PID,
    encode_config_chunks, encode_imu_report, encode_range_report, from_sample,
};
use std::collections::VecDeque;
use std::os::fd::{AsFd, OwnedFd};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub const CONFIG_JSON: &str = include_str!("../drivers/fixtures/vive-config.json");

/// The family members the lab emulates: each its own sensor interface product id and
/// config (model, serial, panel, lens data), and the headset EDID that goes with it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LabModel {
    Vive,
    VivePro,
    Index,
}

impl LabModel {
    pub fn parse(name: &str) -> Option<Self> {
        match name {
            "vive" => Some(LabModel::Vive),
            "vive-pro" => Some(LabModel::VivePro),
            "index" => Some(LabModel::Index),
            _ => None,
        }
    }

    pub fn product_id(self) -> u16 {
        match self {
            LabModel::Vive => VIVE_SENSORS_PID,
            LabModel::VivePro | LabModel::Index => LHR_SENSORS_PID,
        }
    }

    pub fn config(self) -> &'static str {
        match self {
            LabModel::Vive => CONFIG_JSON,
            LabModel::VivePro => include_str!("../drivers/fixtures/vive-pro-config.json"),
            LabModel::Index => include_str!("../drivers/fixtures/index-config.json"),
        }
    }
}

const UHID_DESTROY: u32 = 1;
const UHID_START: u32 = 2;
const UHID_GET_REPORT: u32 = 9;
const UHID_GET_REPORT_REPLY: u32 = 10;
const UHID_CREATE2: u32 = 11;
const UHID_INPUT2: u32 = 12;
const UHID_SET_REPORT: u32 = 13;
const UHID_SET_REPORT_REPLY: u32 = 14;
/// sizeof(struct uhid_event): type + the largest union member (create2).
const UHID_EVENT_SIZE: usize = 4 + 128 + 64 + 64 + 2 + 2 + 4 * 4 + 4096;
const BUS_USB: u16 = 3;

/// A vendor-defined collection with the sensor interface's reports: input 0x20 (51
/// bytes after the id) and features 0x01, 0x04, 0x05, 0x10, 0x11 (63 bytes each).
fn report_descriptor() -> Vec<u8> {
    let mut d = vec![
        0x06, 0x00, 0xff, // usage page (vendor 0xff00)
        0x09, 0x01, // usage 1
        0xa1, 0x01, // collection (application)
        0x15, 0x00, 0x26, 0xff, 0x00, // logical 0..255
        0x75, 0x08, // 8-bit fields
        0x85, 0x20, 0x09, 0x20, 0x95, 0x33, 0x81, 0x02, // input 0x20, 51 bytes
    ];
    for id in [0x01u8, 0x04, 0x05, 0x10, 0x11] {
        d.extend([0x85, id, 0x09, id, 0x95, 0x3f, 0xb1, 0x02]); // feature, 63 bytes
    }
    d.push(0xc0); // end collection
    d
}

fn put_str(buf: &mut [u8], s: &str) {
    let n = s.len().min(buf.len() - 1);
    buf[..n].copy_from_slice(&s.as_bytes()[..n]);
}

fn create2(product_id: u16) -> Vec<u8> {
    let mut e = vec![0u8; UHID_EVENT_SIZE];
    e[..4].copy_from_slice(&UHID_CREATE2.to_ne_bytes());
    let p = 4;
    put_str(
        &mut e[p..p + 128],
        "Valve Corporation VR Headset (Leasehold lab)",
    );
    put_str(&mut e[p + 128..p + 192], "leasehold-lab/uhid0");
    put_str(&mut e[p + 192..p + 256], "LHR-LEASE001");
    let rd = report_descriptor();
    let q = p + 256;
    e[q..q + 2].copy_from_slice(&(rd.len() as u16).to_ne_bytes());
    e[q + 2..q + 4].copy_from_slice(&BUS_USB.to_ne_bytes());
    e[q + 4..q + 8].copy_from_slice(&u32::from(VALVE_VID).to_ne_bytes());
    e[q + 8..q + 12].copy_from_slice(&u32::from(product_id).to_ne_bytes());
    e[q + 12..q + 16].copy_from_slice(&0x0100u32.to_ne_bytes());
    e[q + 20..q + 20 + rd.len()].copy_from_slice(&rd);
    e
}

fn event(kind: u32, body: &[u8]) -> Vec<u8> {
    let mut e = vec![0u8; UHID_EVENT_SIZE];
    e[..4].copy_from_slice(&kind.to_ne_bytes());
    e[4..4 + body.len()].copy_from_slice(body);
    e
}

fn write_event(fd: &OwnedFd, e: &[u8]) -> std::io::Result<()> {
    let n = rustix::io::write(fd, e)?;
    if n != e.len() {
        return Err(std::io::Error::other(format!(
            "uhid took {n} of {} bytes",
            e.len()
        )));
    }
    Ok(())
}

/// What the emulated headset does.
#[derive(Debug, Clone)]
pub struct EmulatorConfig {
    pub motion: Motion,
    pub errors: ImuErrors,
    /// Device seconds per wall second (the stream is paced, not dumped).
    pub speed: f64,
    /// New samples per report (1 as the hardware does; up to 3 to keep report rates low
    /// when running faster than real time).
    pub samples_per_report: usize,
    /// Stream this many device seconds (then hold the last orientation still).
    pub secs: f64,
    pub seed: u64,
    pub product_id: u16,
    /// The config JSON the device serves.
    pub config: &'static str,
}

impl EmulatorConfig {
    pub fn new(motion: Motion, secs: f64, errors: ImuErrors) -> Self {
        Self {
            motion,
            errors,
            speed: 1.0,
            samples_per_report: 3,
            secs,
            seed: 11,
            product_id: VIVE_SENSORS_PID,
            config: CONFIG_JSON,
        }
    }
}

#[derive(Debug, Default)]
struct Status {
    sent_samples: AtomicU64,
    /// Samples skipped because the emulator fell behind the clock (see `run`).
    skipped_samples: AtomicU64,
    /// Device time of the newest sample sent, ns.
    device_ns: AtomicU64,
    /// CLOCK_MONOTONIC (ns) at device time 0: the stream is paced so that sample `i`
    /// goes out at this plus `i` ms (divided by the speed); after a stall it skips to the
    /// present rather than catch up (see `run`).
    origin_ns: AtomicU64,
    finished: AtomicBool,
    stop: AtomicBool,
    plugged: AtomicBool,
}

/// A running emulated headset (its thread owns the uhid device).
#[derive(Debug)]
pub struct EmulatedVive {
    status: Arc<Status>,
    commands: Arc<Mutex<VecDeque<Command>>>,
    thread: Option<std::thread::JoinHandle<std::io::Result<()>>>,
}

#[derive(Debug)]
enum Command {
    Unplug,
    Replug,
}

impl EmulatedVive {
    /// Creates the device and starts streaming.
    pub fn start(cfg: EmulatorConfig) -> std::io::Result<Self> {
        let fd = rustix::fs::open(
            "/dev/uhid",
            rustix::fs::OFlags::RDWR | rustix::fs::OFlags::CLOEXEC,
            rustix::fs::Mode::empty(),
        )
        .map_err(|e| std::io::Error::other(format!("/dev/uhid: {e} (is uhid loaded?)")))?;
        write_event(&fd, &create2(cfg.product_id))?;
        let status = Arc::new(Status::default());
        status.plugged.store(true, Ordering::Release);
        let commands: Arc<Mutex<VecDeque<Command>>> = Default::default();
        let thread = {
            let (status, commands) = (status.clone(), commands.clone());
            std::thread::Builder::new()
                .name("emulated-vive".into())
                .spawn(move || run(fd, cfg, status, commands))?
        };
        Ok(Self {
            status,
            commands,
            thread: Some(thread),
        })
    }

    /// Samples skipped because the emulator fell behind the clock (CPU-starved).
    pub fn skipped_samples(&self) -> u64 {
        self.status.skipped_samples.load(Ordering::Acquire)
    }

    pub fn sent_samples(&self) -> u64 {
        self.status.sent_samples.load(Ordering::Acquire)
    }

    pub fn device_time_ns(&self) -> u64 {
        self.status.device_ns.load(Ordering::Acquire)
    }

    /// CLOCK_MONOTONIC (ns, the runtime's XrTime) at device time 0, once streaming has
    /// begun (0 before): the script's ground truth at host time `t` is the motion at
    /// `(t - origin) * speed`.
    pub fn origin_monotonic_ns(&self) -> u64 {
        self.status.origin_ns.load(Ordering::Acquire)
    }

    /// The whole script has been streamed.
    pub fn finished(&self) -> bool {
        self.status.finished.load(Ordering::Acquire)
    }

    /// UHID_DESTROY: the hidraw node disappears, as when the cable is pulled.
    pub fn unplug(&self) {
        self.commands.lock().unwrap().push_back(Command::Unplug);
    }

    /// UHID_CREATE2 again: the headset comes back (its stream continues).
    pub fn replug(&self) {
        self.commands.lock().unwrap().push_back(Command::Replug);
    }

    pub fn plugged(&self) -> bool {
        self.status.plugged.load(Ordering::Acquire)
    }

    /// Stops streaming and destroys the device.
    pub fn stop(mut self) -> std::io::Result<()> {
        self.status.stop.store(true, Ordering::Release);
        match self.thread.take().map(|t| t.join()) {
            Some(Ok(r)) => r,
            Some(Err(_)) => Err(std::io::Error::other("emulator thread panicked")),
            None => Ok(()),
        }
    }
}

impl Drop for EmulatedVive {
    fn drop(&mut self) {
        self.status.stop.store(true, Ordering::Release);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

struct Device {
    range: ImuRange,
    factory: FactoryImu,
    config_chunks: Vec<[u8; FEATURE_REPORT_LEN]>,
    next_chunk: usize,
}

impl Device {
    fn feature(&mut self, rnum: u8) -> Option<Vec<u8>> {
        match rnum {
            RANGE_REPORT_ID => Some(encode_range_report(&self.range).to_vec()),
            CONFIG_START_REPORT_ID => {
                self.next_chunk = 0;
                let mut r = vec![0u8; FEATURE_REPORT_LEN];
                r[0] = CONFIG_START_REPORT_ID;
                Some(r)
            }
            CONFIG_READ_REPORT_ID => {
                let c = self.config_chunks.get(self.next_chunk).copied();
                self.next_chunk = (self.next_chunk + 1).min(self.config_chunks.len() - 1);
                c.map(|c| c.to_vec())
            }
            _ => None,
        }
    }
}

/// Answers the kernel's requests waiting in the uhid queue (non-blocking).
fn serve_requests(fd: &OwnedFd, dev: &mut Device) -> std::io::Result<()> {
    let mut buf = vec![0u8; UHID_EVENT_SIZE];
    loop {
        let mut fds = [rustix::event::PollFd::new(fd, rustix::event::PollFlags::IN)];
        let zero = rustix::event::Timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        if rustix::event::poll(&mut fds, Some(&zero))? == 0 {
            return Ok(());
        }
        let n = rustix::io::read(fd.as_fd(), &mut buf[..])?;
        if n < 4 {
            continue;
        }
        let kind = u32::from_ne_bytes([buf[0], buf[1], buf[2], buf[3]]);
        let id = &buf[4..8];
        match kind {
            UHID_GET_REPORT => {
                let rnum = buf[8];
                let mut body = Vec::with_capacity(8 + FEATURE_REPORT_LEN);
                body.extend_from_slice(id);
                match dev.feature(rnum) {
                    Some(data) => {
                        body.extend_from_slice(&0u16.to_ne_bytes());
                        body.extend_from_slice(&(data.len() as u16).to_ne_bytes());
                        body.extend_from_slice(&data);
                    }
                    None => {
                        body.extend_from_slice(
                            &(rustix::io::Errno::IO.raw_os_error() as u16).to_ne_bytes(),
                        );
                        body.extend_from_slice(&0u16.to_ne_bytes());
                    }
                }
                write_event(fd, &event(UHID_GET_REPORT_REPLY, &body))?;
            }
            UHID_SET_REPORT => {
                let mut body = id.to_vec();
                body.extend_from_slice(&0u16.to_ne_bytes());
                write_event(fd, &event(UHID_SET_REPORT_REPLY, &body))?;
            }
            UHID_START => tracing::debug!("emulated headset started by the kernel"),
            _ => {}
        }
    }
}

/// Samples behind its clock after which the emulator skips to the present.
const SKIP_BEHIND: usize = 6;

fn run(
    fd: OwnedFd,
    cfg: EmulatorConfig,
    status: Arc<Status>,
    commands: Arc<Mutex<VecDeque<Command>>>,
) -> std::io::Result<()> {
    let parsed = ViveConfig::parse(cfg.config).map_err(|e| std::io::Error::other(e.to_string()))?;
    let mut dev = Device {
        range: ImuRange::from_modes(1, 1).map_err(|e| std::io::Error::other(e.to_string()))?,
        factory: parsed.imu,
        config_chunks: encode_config_chunks(&deflate(cfg.config)),
        next_chunk: 0,
    };
    // Generated as streamed: a long script must not delay the first feature answers
    // (the kernel gives up on a GET_REPORT after 5 s).
    let mut stream = synthesize(&cfg.motion, 1000.0, cfg.secs, cfg.errors, cfg.seed).peekable();
    let mut newest: Option<ImuSample> = None;
    let mut slots = [RawImuSample::default(); 3];
    let mut next_slot = 0;
    // Hardware streams on time whatever the host's load: the emulator asks for
    // SCHED_FIFO (root in the lab VM), above the runtime's threads.
    let param = libc::sched_param { sched_priority: 70 };
    // SAFETY: sched_setscheduler on the calling thread (pid 0) with a valid parameter.
    if unsafe { libc::sched_setscheduler(0, libc::SCHED_FIFO, &param) } != 0 {
        tracing::debug!(
            error = %std::io::Error::last_os_error(),
            "emulated headset at normal priority"
        );
    }
    let start = Instant::now();
    status
        .origin_ns
        .store(leasehold_compositor::present::now_ns(), Ordering::Release);
    let per_report = cfg.samples_per_report.clamp(1, 3);
    let mut i = 0usize;
    let mut skipped = 0u64;
    let mut plugged = true;
    let result = (|| -> std::io::Result<()> {
        while !status.stop.load(Ordering::Acquire) {
            if let Some(c) = commands.lock().unwrap().pop_front() {
                match c {
                    Command::Unplug if plugged => {
                        write_event(&fd, &event(UHID_DESTROY, &[]))?;
                        plugged = false;
                    }
                    Command::Replug if !plugged => {
                        write_event(&fd, &create2(cfg.product_id))?;
                        plugged = true;
                    }
                    _ => {}
                }
                status.plugged.store(plugged, Ordering::Release);
            }
            serve_requests(&fd, &mut dev)?;
            if stream.peek().is_none() {
                status.finished.store(true, Ordering::Release);
                std::thread::sleep(Duration::from_millis(2));
                continue;
            }
            // Pace: sample i is due at device time i ms, scaled by the speed.
            let due_at = |i: usize| start + Duration::from_secs_f64(i as f64 / 1000.0 / cfg.speed);
            let now = Instant::now();
            if now < due_at(i) {
                std::thread::sleep((due_at(i) - now).min(Duration::from_millis(1)));
                continue;
            }
            // A device's clock runs on whatever its host does: an emulator starved of CPU
            // (the VM stalled, or slower than real time) does not send the samples it
            // missed late, with old timestamps, ever further behind; it skips them, as a
            // real headset's samples are lost while nobody reads them, so that what it
            // sends is always the motion at the guest's present.
            while stream.peek().is_some() && now >= due_at(i + SKIP_BEHIND) {
                stream.next();
                i += 1;
                skipped += 1;
            }
            for _ in 0..per_report {
                let Some(s) = stream.next() else {
                    break;
                };
                let ticks = (s.time_ns as u128 * 48 / 1000) as u64;
                slots[next_slot] = from_sample(&s, &dev.range, &dev.factory, i as u8, ticks as u32);
                newest = Some(s);
                next_slot = (next_slot + 1) % 3;
                i += 1;
            }
            if plugged {
                let report = encode_imu_report(&slots);
                let mut body = Vec::with_capacity(2 + IMU_REPORT_LEN);
                body.extend_from_slice(&(IMU_REPORT_LEN as u16).to_ne_bytes());
                body.extend_from_slice(&report);
                write_event(&fd, &event(UHID_INPUT2, &body))?;
            }
            status.sent_samples.store(i as u64, Ordering::Release);
            status.skipped_samples.store(skipped, Ordering::Release);
            if let Some(s) = &newest {
                status.device_ns.store(s.time_ns, Ordering::Release);
            }
        }
        Ok(())
    })();
    if plugged {
        let _ = write_event(&fd, &event(UHID_DESTROY, &[]));
    }
    result
}

/// Where `lab-hmd` says how to reach it and how its script is timed: `key=value` lines
/// (`pid`, `origin_ns`: CLOCK_MONOTONIC at device time 0, `secs`: the script's length),
/// in the lab's output folder. SIGUSR1 to that pid unplugs the headset, SIGUSR2 plugs
/// it in again.
pub fn lab_hmd_state_path() -> std::path::PathBuf {
    std::env::var_os("LEASEHOLD_LAB_OUT")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(std::env::temp_dir)
        .join("lab-hmd.state")
}

/// What `lab-hmd` published (see [`lab_hmd_state_path`]).
#[derive(Debug, Clone, Copy)]
pub struct LabHmdState {
    pub pid: i32,
    pub origin_ns: u64,
    pub secs: f64,
}

impl LabHmdState {
    pub fn read() -> std::io::Result<Self> {
        let text = std::fs::read_to_string(lab_hmd_state_path())?;
        let get = |k: &str| {
            text.lines()
                .find_map(|l| l.strip_prefix(k)?.strip_prefix('='))
                .ok_or_else(|| std::io::Error::other(format!("lab-hmd state: no {k}")))
        };
        let bad = |e: &dyn std::fmt::Display| std::io::Error::other(format!("lab-hmd state: {e}"));
        Ok(Self {
            pid: get("pid")?.parse().map_err(|e| bad(&e))?,
            origin_ns: get("origin_ns")?.parse().map_err(|e| bad(&e))?,
            secs: get("secs")?.parse().map_err(|e| bad(&e))?,
        })
    }

    /// Pulls the cable (true) or plugs it in again (false).
    pub fn plug(&self, plugged: bool) {
        let sig = if plugged {
            libc::SIGUSR2
        } else {
            libc::SIGUSR1
        };
        // SAFETY: kill(2) with a pid lab-hmd wrote (a positive process id) and a signal it handles.
        let r = unsafe { libc::kill(self.pid, sig) };
        assert_eq!(
            r,
            0,
            "signal lab-hmd (pid {}): {}",
            self.pid,
            std::io::Error::last_os_error()
        );
    }
}

/// The Vive Pro / Index product id, for tests that want the other family member.
pub const INDEX_PID: u16 = LHR_SENSORS_PID;
