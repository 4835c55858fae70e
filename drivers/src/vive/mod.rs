//! The first real family: HTC Vive, Vive Pro and Valve Index headsets, over their HID
//! sensor interface.
//!
//! [`ViveHmd::open`] reads the IMU range and the headset's config (factory IMU
//! calibration, lens data), applies the user's calibration file if there is one, and
//! starts a reader thread that decodes IMU reports into the fusion filter. Poses are
//! predicted to requested CLOCK_MONOTONIC times through a device-to-host clock mapping.
//! Unplugging ends the reader with a `Lost` event; [`supervise`] turns hotplug into
//! `Connected`/`Lost` events and re-opens the headset when it comes back.

pub mod config;
pub mod protocol;

use crate::api::{
    DeviceEvent, DeviceInfo, DeviceRole, DisplayInfo, DriverError, EyeInfo, Hmd, LensModel, Pose,
    TrackedDevice, TrackedPose, TrackingOrigin,
};
use crate::calibration::{Calibration, ImuCalibration};
use crate::fusion::{Fusion, FusionConfig};
use crate::hid::hotplug::{HidHotplug, HotplugWatcher};
use crate::hid::{HidError, HidTransport, HidapiTransport};
use crate::motion::ImuSample;
use config::{ViveConfig, read_config};
use glam::{DQuat, Quat, Vec3};
use protocol::{
    FEATURE_REPORT_LEN, IMU_REPORT_ID, ImuDecoder, ImuRange, LHR_SENSORS_PID, RANGE_REPORT_ID,
    ReportError, SENSORS_INTERFACE, VALVE_VID, VIVE_SENSORS_PID, parse_range_report, to_sample,
};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, mpsc};

#[derive(Debug, thiserror::Error)]
pub enum ViveError {
    #[error(transparent)]
    Report(#[from] ReportError),
    #[error("headset config: {0}")]
    Config(String),
    #[error("headset config lacks `{0}`")]
    MissingKey(&'static str),
    #[error(transparent)]
    Hid(#[from] HidError),
    #[error(transparent)]
    Calibration(#[from] crate::calibration::CalibrationError),
}

/// Is this USB id pair a Vive-family sensor interface?
pub fn is_sensor_interface(vendor_id: u16, product_id: u16) -> bool {
    vendor_id == VALVE_VID && matches!(product_id, VIVE_SENSORS_PID | LHR_SENSORS_PID)
}

/// Opens the first Vive-family sensor interface on the bus.
pub fn open_first() -> Result<HidapiTransport, HidError> {
    HidapiTransport::open(VALVE_VID, VIVE_SENSORS_PID, SENSORS_INTERFACE)
        .or_else(|_| HidapiTransport::open(VALVE_VID, LHR_SENSORS_PID, SENSORS_INTERFACE))
}

/// Where the user calibration comes from.
#[derive(Debug, Clone, Default, PartialEq)]
pub enum CalibrationSource {
    /// `<config dir>/calibration/<serial>.toml`, if present.
    #[default]
    UserFile,
    File(PathBuf),
    /// Factory calibration only (what `calibrate imu` measures against).
    Ignore,
}

#[derive(Debug, Clone, Default)]
pub struct ViveOptions {
    pub calibration: CalibrationSource,
    pub fusion: Option<FusionConfig>,
}

/// Maps the device's clock onto CLOCK_MONOTONIC: a sample is received after it was
/// taken, so the smallest `receive − device` seen is the best offset; it follows
/// upward slowly to absorb clock drift.
#[derive(Debug, Clone, Copy, Default)]
pub struct DeviceClock {
    offset: Option<i128>,
}

impl DeviceClock {
    pub fn update(&mut self, device_ns: u64, host_ns: u64) {
        let c = host_ns as i128 - device_ns as i128;
        self.offset = Some(match self.offset {
            None => c,
            Some(o) if c < o => c,
            Some(o) => o + (c - o) / 1000,
        });
    }

    pub fn to_device(&self, host_ns: u64) -> Option<u64> {
        self.offset
            .map(|o| (host_ns as i128 - o).clamp(0, u64::MAX as i128) as u64)
    }

    pub fn to_host(&self, device_ns: u64) -> Option<u64> {
        self.offset
            .map(|o| (device_ns as i128 + o).clamp(0, u64::MAX as i128) as u64)
    }
}

/// Counters of what the reader saw.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ReaderStats {
    pub reports: u64,
    pub samples: u64,
    pub repeats: u64,
    pub lost_samples: u64,
    pub malformed: u64,
}

struct Track {
    fusion: Fusion,
    clock: DeviceClock,
    stats: ReaderStats,
}

struct Shared {
    track: Mutex<Track>,
    stop: AtomicBool,
    connected: AtomicBool,
    tap: Mutex<Option<mpsc::SyncSender<ImuSample>>>,
    /// The user's IMU correction, swapped when the calibration is reloaded.
    user_imu: Mutex<Option<ImuCalibration>>,
    last_receive_ns: AtomicU64,
}

/// What the user's calibration currently makes of the display.
#[derive(Debug, Clone)]
struct Applied {
    calibration: Option<Calibration>,
    display: DisplayInfo,
    lens: LensModel,
}

/// An open Vive-family headset.
pub struct ViveHmd {
    shared: Arc<Shared>,
    reader: Option<std::thread::JoinHandle<()>>,
    path: String,
    pub config: ViveConfig,
    pub range: ImuRange,
    applied: Mutex<Applied>,
    events: Mutex<Option<mpsc::Receiver<DeviceEvent>>>,
    events_tx: mpsc::Sender<DeviceEvent>,
}

impl std::fmt::Debug for ViveHmd {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ViveHmd")
            .field("path", &self.path)
            .field("model", &self.config.model_number)
            .field("serial", &self.config.serial)
            .finish()
    }
}

fn now_ns() -> u64 {
    let t = rustix::time::clock_gettime(rustix::time::ClockId::Monotonic);
    t.tv_sec as u64 * 1_000_000_000 + t.tv_nsec as u64
}

fn read_range(t: &mut dyn HidTransport) -> Result<ImuRange, ViveError> {
    let mut last = None;
    // A freshly powered headset may answer zeros once before its ranges are set.
    for _ in 0..2 {
        let mut buf = [0u8; FEATURE_REPORT_LEN];
        buf[0] = RANGE_REPORT_ID;
        let n = t.get_feature(&mut buf)?;
        let r = parse_range_report(&buf[..n])?;
        if buf[1] != 0 && buf[2] != 0 {
            return Ok(r);
        }
        last = Some(r);
    }
    Ok(last.expect("the loop ran"))
}

/// The display as the runtime sees it: the profile's panel and refresh rates, the
/// config's render size, projection and lens positions, then the user's overrides.
pub fn display_for(cfg: &ViveConfig, cal: Option<&Calibration>) -> (DisplayInfo, LensModel) {
    let profile = crate::profile::by_id(cfg.variant.profile_id());
    let (panel_w, panel_h, refresh, s2p) = match profile {
        Some(p) => (
            p.display.width,
            p.display.height,
            p.display.refresh_hz.iter().map(|&r| r as f32).collect(),
            u64::from(p.display.scanout_to_photon_us) * 1000,
        ),
        None => (cfg.eye_width * 2, cfg.eye_height, vec![90.0], 11_000_000),
    };
    let overrides = cal.and_then(|c| c.display);
    let ipd = overrides
        .and_then(|o| o.ipd_mm)
        .map(|mm| mm / 1000.0)
        .unwrap_or(cfg.lens_separation_m);
    let eye = |i: usize, x: f32| EyeInfo {
        eye_to_head: Pose {
            orientation: Quat::IDENTITY,
            position: Vec3::new(x, 0.0, 0.0),
        },
        fov: cfg.fov[i],
    };
    let mut lens = cfg.lens;
    if let (LensModel::Polynomial(eyes), Some(off)) =
        (&mut lens, overrides.and_then(|o| o.lens_center_offset))
    {
        for (e, o) in eyes.iter_mut().zip(off) {
            for ch in &mut e.channels {
                ch.center += glam::Vec2::from(o);
            }
        }
    }
    // Render at the lens's magnification: 1 + grow_for_undistort of the panel half.
    let grow = match &lens {
        LensModel::Polynomial(e) => 1.0 + e[0].grow_for_undistort.min(1.0),
        LensModel::None => 1.0,
    };
    (
        DisplayInfo {
            panel_width: panel_w,
            panel_height: panel_h,
            eye_render_width: (cfg.eye_width as f32 * grow.sqrt()).round() as u32,
            eye_render_height: (cfg.eye_height as f32 * grow.sqrt()).round() as u32,
            refresh_hz: refresh,
            scanout_to_photon_ns: s2p,
            eyes: [eye(0, -ipd / 2.0), eye(1, ipd / 2.0)],
        },
        lens,
    )
}

impl ViveHmd {
    /// Configures the headset behind `transport` and starts reading its IMU.
    pub fn open(
        mut transport: Box<dyn HidTransport>,
        opts: ViveOptions,
    ) -> Result<Self, ViveError> {
        let path = transport.path().to_string();
        let range = read_range(transport.as_mut())?;
        let json = read_config(transport.as_mut())?;
        let config = ViveConfig::parse(&json)?;
        let calibration = match &opts.calibration {
            CalibrationSource::Ignore => None,
            CalibrationSource::File(p) => Calibration::load(p)?,
            CalibrationSource::UserFile => {
                Calibration::load(&crate::calibration::path_for(&config.serial)?)?
            }
        };
        let imu_cal = calibration.as_ref().and_then(|c| c.imu);
        let fusion = Fusion::new(opts.fusion.unwrap_or_default());
        if let Some(c) = &imu_cal {
            tracing::info!(
                serial = %config.serial,
                gyro_bias = ?c.gyro_bias,
                "applying the user's IMU calibration"
            );
        }
        let (display, lens) = display_for(&config, calibration.as_ref());
        tracing::info!(
            %path, model = %config.model_number, serial = %config.serial,
            gyro_range = range.gyro, accel_range = range.accel,
            "Vive-family headset configured"
        );
        let shared = Arc::new(Shared {
            track: Mutex::new(Track {
                fusion,
                clock: DeviceClock::default(),
                stats: ReaderStats::default(),
            }),
            stop: AtomicBool::new(false),
            connected: AtomicBool::new(true),
            tap: Mutex::new(None),
            user_imu: Mutex::new(imu_cal),
            last_receive_ns: AtomicU64::new(0),
        });
        let (tx, rx) = mpsc::channel();
        let _ = tx.send(DeviceEvent::Connected {
            role: DeviceRole::Hmd,
            name: config.model_number.clone(),
        });
        let reader = {
            let shared = shared.clone();
            let factory = config.imu;
            std::thread::Builder::new()
                .name("vive-imu".into())
                .spawn({
                    let tx = tx.clone();
                    // The opener's log subscriber goes with the reader ("headset lost").
                    crate::threads::with_starters_logs(move || {
                        reader(transport, shared, range, factory, tx)
                    })
                })
                .map_err(|e| {
                    ViveError::Config(format!("cannot start the IMU reader thread: {e}"))
                })?
        };
        Ok(Self {
            shared,
            reader: Some(reader),
            path,
            config,
            range,
            applied: Mutex::new(Applied {
                calibration,
                display,
                lens,
            }),
            events: Mutex::new(Some(rx)),
            events_tx: tx,
        })
    }

    pub fn path(&self) -> &str {
        &self.path
    }

    /// The user calibration in force.
    pub fn calibration(&self) -> Option<Calibration> {
        self.applied.lock().ok()?.calibration.clone()
    }

    /// Applies a new user calibration at once (IMU correction, display overrides) and
    /// reports `CalibrationChanged`; `None` goes back to the factory calibration.
    pub fn apply_calibration(&self, calibration: Option<Calibration>) {
        if let Ok(mut u) = self.shared.user_imu.lock() {
            *u = calibration.as_ref().and_then(|c| c.imu);
        }
        let (display, lens) = display_for(&self.config, calibration.as_ref());
        if let Ok(mut a) = self.applied.lock() {
            *a = Applied {
                calibration,
                display,
                lens,
            };
        }
        let _ = self.events_tx.send(DeviceEvent::CalibrationChanged {
            role: DeviceRole::Hmd,
        });
    }

    /// Re-reads the user's calibration file (after `leasehold calibrate` changed it). A
    /// file that fails to load leaves the calibration in force untouched.
    pub fn reload_calibration(&self, source: &CalibrationSource) -> Result<(), ViveError> {
        let cal = match source {
            CalibrationSource::Ignore => None,
            CalibrationSource::File(p) => Calibration::load(p)?,
            CalibrationSource::UserFile => {
                Calibration::load(&crate::calibration::path_for(&self.config.serial)?)?
            }
        };
        self.apply_calibration(cal);
        Ok(())
    }

    pub fn is_connected(&self) -> bool {
        self.shared.connected.load(Ordering::Acquire)
    }

    /// This device's events (Connected first, Lost when it goes away). Once.
    pub fn take_events(&self) -> Option<mpsc::Receiver<DeviceEvent>> {
        self.events.lock().ok()?.take()
    }

    /// Every IMU sample after the factory calibration and before the user's (what
    /// `calibrate imu` measures). Bounded: samples are dropped if the receiver lags.
    pub fn tap_samples(&self, capacity: usize) -> mpsc::Receiver<ImuSample> {
        let (tx, rx) = mpsc::sync_channel(capacity);
        if let Ok(mut t) = self.shared.tap.lock() {
            *t = Some(tx);
        }
        rx
    }

    pub fn stats(&self) -> ReaderStats {
        self.shared
            .track
            .lock()
            .map(|t| t.stats)
            .unwrap_or_default()
    }

    /// The filter's latest state: (device time ns, orientation, gyro bias).
    pub fn fusion_state(&self) -> Option<(u64, DQuat, glam::DVec3)> {
        let t = self.shared.track.lock().ok()?;
        Some((
            t.fusion.last_time_ns()?,
            t.fusion.orientation(),
            t.fusion.gyro_bias(),
        ))
    }
}

impl Drop for ViveHmd {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::Release);
        if let Some(r) = self.reader.take() {
            let _ = r.join();
        }
        // What the stream was like, for whoever looks into tracking trouble (samples
        // lost are reports the kernel's queue dropped before they were read).
        let st = self.stats();
        tracing::info!(
            path = %self.path,
            reports = st.reports,
            samples = st.samples,
            lost_samples = st.lost_samples,
            malformed = st.malformed,
            "headset closed"
        );
    }
}

/// The IMU reader keeps up with the 1 kHz stream even when the app's rendering fills
/// every core: it asks for SCHED_FIFO (below the compositor's presenter), where the
/// process may (CAP_SYS_NICE or an rtprio limit). Otherwise it runs at normal priority
/// and says so once: a saturated CPU can then delay reports until the kernel's hidraw
/// queue (64 reports) overflows, and the filter does not integrate across the gap.
fn imu_priority() {
    match crate::threads::request_sched_fifo(40) {
        Ok(()) => tracing::debug!("IMU reader runs SCHED_FIFO"),
        Err(e) => {
            static ONCE: std::sync::Once = std::sync::Once::new();
            ONCE.call_once(|| {
                tracing::info!(error = ?e, "no real-time priority for the IMU reader (needs CAP_SYS_NICE or an rtprio limit); running at normal priority");
            });
        }
    }
}

fn reader(
    mut t: Box<dyn HidTransport>,
    shared: Arc<Shared>,
    range: ImuRange,
    factory: protocol::FactoryImu,
    events: mpsc::Sender<DeviceEvent>,
) {
    imu_priority();
    let mut decoder = ImuDecoder::default();
    let mut buf = [0u8; 64];
    let mut errors_in_a_row = 0u32;
    let lost = |reason: String| {
        shared.connected.store(false, Ordering::Release);
        tracing::warn!(%reason, "headset lost");
        let _ = events.send(DeviceEvent::Lost {
            role: DeviceRole::Hmd,
            reason,
        });
    };
    while !shared.stop.load(Ordering::Acquire) {
        let n = match t.read_input(&mut buf, 100) {
            Ok(0) => continue,
            Ok(n) => {
                errors_in_a_row = 0;
                n
            }
            Err(HidError::Disconnected { path }) => {
                lost(format!("{path} was unplugged"));
                return;
            }
            Err(e) => {
                errors_in_a_row += 1;
                if errors_in_a_row >= 20 {
                    lost(format!("{e} (20 times in a row)"));
                    return;
                }
                tracing::debug!(error = %e, "IMU read failed");
                std::thread::sleep(std::time::Duration::from_millis(5));
                continue;
            }
        };
        let received = now_ns();
        shared.last_receive_ns.store(received, Ordering::Release);
        if buf[0] != IMU_REPORT_ID {
            continue; // lighthouse pulses and other reports: not ours to read
        }
        let Ok(mut track) = shared.track.lock() else {
            return;
        };
        track.stats.reports += 1;
        let samples = match decoder.feed(&buf[..n]) {
            Ok(s) => s,
            Err(e) => {
                track.stats.malformed += 1;
                if track.stats.malformed.is_power_of_two() {
                    tracing::warn!(error = %e, count = track.stats.malformed, "malformed IMU report ignored");
                }
                continue;
            }
        };
        track.stats.repeats = decoder.repeats;
        track.stats.lost_samples = decoder.lost;
        let tap = shared.tap.lock().ok().and_then(|g| g.clone());
        let user = shared.user_imu.lock().ok().and_then(|g| *g);
        for raw in &samples {
            let s = to_sample(raw, &range, &factory);
            if let Some(tap) = &tap {
                let _ = tap.try_send(s);
            }
            let s = match &user {
                Some(c) => c.apply(&s),
                None => s,
            };
            track.fusion.update(&s);
            track.clock.update(s.time_ns, received);
            track.stats.samples += 1;
        }
    }
}

impl TrackedDevice for ViveHmd {
    fn info(&self) -> DeviceInfo {
        DeviceInfo {
            role: DeviceRole::Hmd,
            name: self.config.model_number.clone(),
            serial: self.config.serial.clone(),
        }
    }

    fn tracking_origin(&self) -> TrackingOrigin {
        TrackingOrigin::OrientationOnly { eye_height_m: 1.6 }
    }

    fn pose_at(&self, time_ns: u64) -> Result<TrackedPose, DriverError> {
        if !self.is_connected() {
            return Err(DriverError::Disconnected(self.path.clone()));
        }
        let t = self
            .shared
            .track
            .lock()
            .map_err(|_| DriverError::Disconnected(self.path.clone()))?;
        let device_t = t.clock.to_device(time_ns).ok_or(DriverError::NoPose)?;
        let (q, w) = t.fusion.predict(device_t).ok_or(DriverError::NoPose)?;
        Ok(TrackedPose::orientation_only(
            time_ns,
            q.as_quat(),
            Vec3::ZERO,
            w.as_vec3(),
        ))
    }
}

impl Hmd for ViveHmd {
    fn display(&self) -> DisplayInfo {
        self.applied
            .lock()
            .map(|a| a.display.clone())
            .unwrap_or_else(|p| p.into_inner().display.clone())
    }

    fn lens(&self) -> LensModel {
        self.applied
            .lock()
            .map(|a| a.lens)
            .unwrap_or_else(|p| p.into_inner().lens)
    }
}

/// The headset slot [`supervise`] keeps filled while a headset is plugged in.
pub type HmdSlot = Arc<Mutex<Option<Arc<ViveHmd>>>>;

/// Keeps `slot` holding the plugged-in Vive-family headset: opens one present at start,
/// reports `Lost` when its hidraw node goes away and `Connected` when one (re)appears.
/// Runs until the event receiver is dropped.
pub async fn supervise(
    opts: ViveOptions,
    slot: HmdSlot,
    events: tokio::sync::mpsc::UnboundedSender<DeviceEvent>,
) -> Result<(), HidError> {
    let mut watcher = HotplugWatcher::new()?;
    let open = |path: Option<String>| {
        let opts = opts.clone();
        tokio::task::spawn_blocking(move || -> Result<ViveHmd, ViveError> {
            // A new node may take a moment to become readable (udev applies its rules).
            let mut last = None;
            for _ in 0..10 {
                let t = match &path {
                    Some(p) => HidapiTransport::open_path(p),
                    None => open_first(),
                };
                match t {
                    Ok(t) => return ViveHmd::open(Box::new(t), opts.clone()),
                    Err(e @ HidError::NotFound { .. }) if path.is_none() => return Err(e.into()),
                    Err(e) => last = Some(e),
                }
                std::thread::sleep(std::time::Duration::from_millis(50));
            }
            Err(last.expect("tried at least once").into())
        })
    };
    let install = |hmd: ViveHmd| {
        let name = hmd.config.model_number.clone();
        if let Ok(mut s) = slot.lock() {
            *s = Some(Arc::new(hmd));
        }
        events.send(DeviceEvent::Connected {
            role: DeviceRole::Hmd,
            name,
        })
    };
    match open(None).await {
        Ok(Ok(hmd)) => {
            if install(hmd).is_err() {
                return Ok(());
            }
        }
        Ok(Err(e)) => tracing::info!(error = %e, "no Vive-family headset yet; waiting for one"),
        Err(e) => tracing::warn!(error = %e, "headset open task failed"),
    }
    loop {
        if events.is_closed() {
            return Ok(());
        }
        let ev = tokio::select! {
            ev = watcher.next() => ev?,
            _ = events.closed() => return Ok(()),
        };
        let (vid, pid) = ev.ids();
        if !is_sensor_interface(vid, pid) {
            continue;
        }
        match ev {
            HidHotplug::Removed { devnode, .. } => {
                let was = slot
                    .lock()
                    .ok()
                    .and_then(|mut s| s.take_if(|h| h.path() == devnode));
                if was.is_some()
                    && events
                        .send(DeviceEvent::Lost {
                            role: DeviceRole::Hmd,
                            reason: format!("{devnode} was unplugged"),
                        })
                        .is_err()
                {
                    return Ok(());
                }
            }
            HidHotplug::Added { devnode, .. } => {
                if slot.lock().map(|s| s.is_some()).unwrap_or(true) {
                    continue;
                }
                match open(Some(devnode.clone())).await {
                    Ok(Ok(hmd)) => {
                        if install(hmd).is_err() {
                            return Ok(());
                        }
                    }
                    Ok(Err(e)) => {
                        tracing::warn!(%devnode, error = %e, "a headset appeared but could not be opened")
                    }
                    Err(e) => tracing::warn!(error = %e, "headset open task failed"),
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::protocol::*;
    use super::*;
    use crate::hid::ReplayTransport;
    use crate::hid::replay::ReplayEvent;
    use crate::motion::{ImuErrors, Motion, synthesize};

    const FIXTURE: &str = include_str!("../../fixtures/vive-config.json");

    /// A capture of a headset: range, config, then IMU reports of `motion`.
    fn capture(motion: &Motion, secs: f64, unplug: bool) -> ReplayTransport {
        let cfg = ViveConfig::parse(FIXTURE).unwrap();
        let range = ImuRange::from_modes(1, 1).unwrap();
        let mut t = ReplayTransport::new("replay:vive")
            .feature(&encode_range_report(&range))
            .feature(&[CONFIG_START_REPORT_ID]);
        for c in encode_config_chunks(&config::deflate(FIXTURE)) {
            t = t.feature(&c);
        }
        let mut slots = [RawImuSample::default(); 3];
        for (i, s) in synthesize(motion, 1000.0, secs, ImuErrors::NONE, 5).enumerate() {
            let ticks = s.time_ns * 48 / 1000;
            slots[i % 3] = from_sample(&s, &range, &cfg.imu, i as u8, ticks as u32);
            if i >= 2 {
                t = t.input(&encode_imu_report(&slots));
            }
        }
        // Noise on the wire: a short report and a foreign one.
        t = t.input(&[IMU_REPORT_ID, 1, 2]).input(&[0x21; 64]);
        if unplug {
            t = t.event(ReplayEvent::Unplug);
        }
        t
    }

    /// Opens a replayed headset (factory calibration only) and takes its Connected event.
    fn open_replay(t: ReplayTransport) -> (ViveHmd, mpsc::Receiver<DeviceEvent>) {
        let hmd = ViveHmd::open(
            Box::new(t),
            ViveOptions {
                calibration: CalibrationSource::Ignore,
                fusion: None,
            },
        )
        .unwrap();
        let events = hmd.take_events().unwrap();
        assert!(matches!(
            events.recv().unwrap(),
            DeviceEvent::Connected { .. }
        ));
        (hmd, events)
    }

    /// The IMU reader runs on a thread of its own; what it logs (the headset lost) reaches
    /// the subscriber of whoever opened the headset (the runtime sets one only for the
    /// duration of each OpenXR call), not the void.
    #[test]
    fn the_reader_logs_to_the_openers_subscriber() {
        #[derive(Clone, Default)]
        struct Buf(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);
        impl std::io::Write for Buf {
            fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
                self.0
                    .lock()
                    .map_err(|_| std::io::Error::other("poisoned"))?
                    .extend_from_slice(b);
                Ok(b.len())
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        let buf = Buf::default();
        let subscriber = tracing_subscriber::fmt()
            .with_writer({
                let buf = buf.clone();
                move || buf.clone()
            })
            .with_ansi(false)
            .finish();
        let m = Motion::new(
            DQuat::IDENTITY,
            &[crate::motion::Segment::Still { secs: 0.5 }],
        );
        let (_hmd, events) =
            tracing::subscriber::with_default(subscriber, || open_replay(capture(&m, 0.5, true)));
        let lost = events
            .recv_timeout(std::time::Duration::from_secs(10))
            .unwrap();
        assert!(matches!(lost, DeviceEvent::Lost { .. }), "{lost:?}");
        let text = String::from_utf8(buf.0.lock().unwrap().clone()).unwrap();
        assert!(
            text.contains("headset lost"),
            "the reader's records: {text:?}"
        );
    }

    #[test]
    fn replayed_headset_is_configured_tracked_and_lost() {
        let m = Motion::new(
            DQuat::IDENTITY,
            &[crate::motion::Segment::Turn {
                axis: glam::DVec3::Y,
                angle: 1.0,
                secs: 2.0,
            }],
        );
        let (hmd, events) = open_replay(capture(&m, 3.0, true));
        let lost = events
            .recv_timeout(std::time::Duration::from_secs(10))
            .unwrap();
        assert!(matches!(lost, DeviceEvent::Lost { .. }), "{lost:?}");
        assert!(!hmd.is_connected());
        let st = hmd.stats();
        assert_eq!(st.samples, 3000);
        assert_eq!(st.malformed, 1);
        let (t, q, _) = hmd.fusion_state().unwrap();
        assert_eq!(t, 2_999_000_000);
        let err = q.angle_between(m.orientation(t as f64 * 1e-9));
        assert!(err < 0.5f64.to_radians(), "error {:.3}°", err.to_degrees());
        assert!(matches!(
            hmd.pose_at(now_ns()),
            Err(DriverError::Disconnected(_))
        ));
        // The display comes from the Vive profile and the config's lens data.
        let d = hmd.display();
        assert_eq!((d.panel_width, d.panel_height), (2160, 1200));
        assert!((d.ipd_m() - 0.0623).abs() < 1e-4);
        assert!(matches!(hmd.lens(), LensModel::Polynomial(_)));
    }

    #[test]
    fn calibration_changes_apply_at_once_and_are_events() {
        let m = Motion::new(DQuat::IDENTITY, &[]);
        let (hmd, events) = open_replay(capture(&m, 0.1, false));
        let before = hmd.display().ipd_m();
        hmd.apply_calibration(Some(Calibration {
            imu: None,
            display: Some(crate::calibration::DisplayOverrides {
                ipd_mm: Some(70.0),
                lens_center_offset: Some([[0.01, 0.0], [-0.01, 0.0]]),
            }),
        }));
        assert!(matches!(
            events.recv().unwrap(),
            DeviceEvent::CalibrationChanged { .. }
        ));
        assert!((hmd.display().ipd_m() - 0.070).abs() < 1e-6);
        let (LensModel::Polynomial(a), LensModel::Polynomial(b)) =
            (hmd.lens(), ViveConfig::parse(FIXTURE).unwrap().lens)
        else {
            panic!("polynomial lenses")
        };
        assert!((a[0].channels[1].center.x - b[0].channels[1].center.x - 0.01).abs() < 1e-6);
        // A broken file is an error and changes nothing.
        let dir = std::env::temp_dir().join(format!("leasehold-reload-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let bad = dir.join("bad.toml");
        std::fs::write(&bad, "[display]\nipd_mm = 3\n").unwrap();
        assert!(
            hmd.reload_calibration(&CalibrationSource::File(bad))
                .is_err()
        );
        assert!((hmd.display().ipd_m() - 0.070).abs() < 1e-6);
        hmd.reload_calibration(&CalibrationSource::Ignore).unwrap();
        assert!((hmd.display().ipd_m() - before).abs() < 1e-6);
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn a_headset_that_refuses_its_config_is_an_error_not_a_panic() {
        let t = ReplayTransport::new("replay:broken").feature(&[RANGE_REPORT_ID, 1, 1]);
        let e = ViveHmd::open(Box::new(t), ViveOptions::default()).unwrap_err();
        assert!(matches!(e, ViveError::Hid(HidError::Io { .. })), "{e}");
        let t = ReplayTransport::new("replay:broken").feature(&[RANGE_REPORT_ID, 9, 9]);
        let e = ViveHmd::open(Box::new(t), ViveOptions::default()).unwrap_err();
        assert!(
            matches!(e, ViveError::Report(ReportError::BadRange { .. })),
            "{e}"
        );
    }

    #[test]
    fn device_clock_tracks_the_smallest_delay() {
        let mut c = DeviceClock::default();
        c.update(1_000, 10_000_000);
        c.update(2_000, 10_000_500);
        assert_eq!(c.to_host(2_000), Some(10_000_500));
        assert_eq!(c.to_device(10_000_500), Some(2_000));
        c.update(3_000, 10_050_000); // a late delivery barely moves it
        assert!(c.to_host(3_000).unwrap() < 10_002_000);
    }
}
