//! The compositor as the OpenXR runtime sees it: the [`Compositor`] trait, and
//! [`LocalCompositor`], which runs the frame loop on a presenter thread in the app's
//! process. Everything crossing the trait is plain data or file descriptors, so a
//! client talking to a compositor service over a Unix socket (fds over SCM_RIGHTS) can
//! implement it as well.

use crate::frame_loop::{self, LoopRecord, Submission, SubmissionSlot};
use crate::pacing::PacerConfig;
use crate::render::pattern::RgbaImage;
use crate::target::Target;
use crate::target::headless::HeadlessTarget;
use crate::vk::VkError;
use crate::vk::app::SharedImage;
use crate::vk::context::{DevicePreference, VkContext};
use crate::vk::renderer::GpuRenderer;
use leasehold_drivers::api::{DisplayInfo, Hmd};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// How long a call waits for the compositor's thread to answer: it answers between
/// display frames, and one frame may wait on late GPU work up to [`crate::vk::gpu_hang`].
fn answer_within() -> Duration {
    crate::vk::gpu_hang() + Duration::from_secs(60)
}

#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum CompositorError {
    #[error("the compositor could not start: {0}")]
    Start(String),
    #[error("{0}")]
    Vulkan(String),
    /// The display is gone (lease revoked, headset unplugged) or the compositor stopped.
    #[error("the compositor stopped: {0}")]
    Lost(String),
}

impl From<VkError> for CompositorError {
    fn from(e: VkError) -> Self {
        CompositorError::Vulkan(e.to_string())
    }
}

/// Where the display's vblanks fall: the last one known and the period.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameClock {
    pub vblank_ns: u64,
    pub period_ns: u64,
    pub scanout_to_photon_ns: u64,
}

impl FrameClock {
    /// The first vblank at or after `t_ns`.
    pub fn vblank_at_or_after(&self, t_ns: u64) -> u64 {
        if t_ns <= self.vblank_ns {
            return self.vblank_ns;
        }
        let k = (t_ns - self.vblank_ns).div_ceil(self.period_ns.max(1));
        self.vblank_ns + k * self.period_ns
    }

    /// The app's next frame (xrWaitFrame at `now_ns`; `last` the vblank its previous
    /// frame targeted): the vblank it targets and when it should wake, a period before
    /// it. An app on time wakes once a period; one that calls late (its simulation
    /// overran, or the machine was busy) still gets the next vblank while at least half
    /// a period remains, instead of losing a whole period; never the same vblank twice.
    pub fn app_frame(&self, now_ns: u64, last: Option<u64>) -> AppFrame {
        let period = self.period_ns.max(1);
        let mut vblank = self.vblank_at_or_after(now_ns + period / 2);
        if let Some(last) = last
            && vblank < last + period / 2
        {
            vblank = self.vblank_at_or_after(last + period / 2);
        }
        AppFrame {
            vblank_ns: vblank,
            wake_ns: vblank.saturating_sub(period),
        }
    }
}

/// Where an app's frame lands: see [`FrameClock::app_frame`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AppFrame {
    pub vblank_ns: u64,
    pub wake_ns: u64,
}

/// What the compositor has done so far.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CompositorStats {
    pub frames: u64,
    /// Frames shown at the vblank they were planned for.
    pub hits: u64,
    /// Frames that showed an app submission (not the empty scene before the first).
    pub with_submission: u64,
    /// Distinct app frames shown.
    pub app_frames_shown: u64,
    /// Page flips the display completed (KMS targets).
    pub flips: Option<u64>,
    /// Render cost of the most recent frames (CPU submit + GPU time), oldest first.
    pub render_ns: std::collections::VecDeque<u64>,
}

impl CompositorStats {
    /// Render-cost samples kept.
    pub const SAMPLES: usize = 4096;
}

/// What the OpenXR runtime needs from a compositor.
pub trait Compositor: Send + Sync {
    /// For logs.
    fn describe(&self) -> String;
    /// The Vulkan device (VkPhysicalDeviceIDProperties::deviceUUID) app images must be on.
    fn device_uuid(&self) -> [u8; 16];
    /// Whether the compositor's GPU can wait for the app's rendering (sync_files).
    fn imports_sync_file(&self) -> bool {
        false
    }
    fn display(&self) -> DisplayInfo;
    fn clock(&self) -> FrameClock;
    /// Takes an app swapchain image's memory; returns the layer image id layers name.
    fn import_image(&self, image: SharedImage) -> Result<u64, CompositorError>;
    fn destroy_image(&self, id: u64);
    /// The app's newest frame; shown from the next compositor wake on.
    fn submit(&self, frame: Submission) -> Result<(), CompositorError>;
    /// Looks again whether the newest submission's rendering is done (see
    /// [`SubmissionSlot::promote`](crate::frame_loop::SubmissionSlot::promote)).
    fn promote_ready(&self) {}
    /// The last composited panel image (headless targets), RGBA8 sRGB.
    fn snapshot(&self) -> Result<Option<RgbaImage>, CompositorError>;
    fn stats(&self) -> CompositorStats;
    /// `Some(reason)` once the display is gone.
    fn lost(&self) -> Option<String>;
}

enum Command {
    Import(SharedImage, mpsc::Sender<Result<u64, CompositorError>>),
    Destroy(u64),
    Snapshot(mpsc::Sender<Result<Option<RgbaImage>, CompositorError>>),
}

struct Shared {
    slot: SubmissionSlot,
    stop: AtomicBool,
    vblank_ns: AtomicU64,
    period_ns: AtomicU64,
    stats: Mutex<CompositorStats>,
    lost: Mutex<Option<String>>,
}

/// Which display the local compositor drives.
#[derive(Debug, Clone)]
pub enum LocalTarget {
    /// Offscreen images at the panel's size, paced by a simulated vblank clock.
    Headless,
    /// The headset's display, through the lease chosen for the system
    /// ([`crate::kms::display`]).
    Kms(Arc<crate::kms::display::HeadsetDisplay>),
}

impl LocalTarget {
    /// The target for a chosen display.
    pub fn for_display(d: &crate::kms::display::Display) -> Self {
        match d {
            crate::kms::display::Display::Headless { .. } => LocalTarget::Headless,
            crate::kms::display::Display::Headset(h) => LocalTarget::Kms(h.clone()),
        }
    }

    /// The render device this target wants: for KMS, the headset card's (so an app told
    /// to render on the compositor's device renders where the display is).
    pub fn device_preference(&self) -> DevicePreference {
        match self {
            LocalTarget::Headless => DevicePreference::default(),
            LocalTarget::Kms(d) => DevicePreference {
                drm_node: d.drm_node,
            },
        }
    }
}

/// The compositor in the app's process: a presenter thread owning the Vulkan device, the
/// renderer and the target.
pub struct LocalCompositor {
    shared: Arc<Shared>,
    commands: Mutex<mpsc::Sender<Command>>,
    thread: Option<std::thread::JoinHandle<()>>,
    display: DisplayInfo,
    uuid: [u8; 16],
    describe: String,
    imports_sync_file: bool,
    scanout_to_photon_ns: u64,
}

impl std::fmt::Debug for LocalCompositor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.describe)
    }
}

impl LocalCompositor {
    /// Starts the presenter thread: Vulkan device, renderer, target, then the frame loop.
    /// Returns once the first frame's clock is known, or with why it could not start.
    pub fn start(
        hmd: Arc<dyn Hmd + Send + Sync>,
        target: LocalTarget,
    ) -> Result<Self, CompositorError> {
        let display = hmd.display();
        let shared = Arc::new(Shared {
            slot: SubmissionSlot::default(),
            stop: AtomicBool::new(false),
            vblank_ns: AtomicU64::new(0),
            period_ns: AtomicU64::new(0),
            stats: Mutex::new(CompositorStats::default()),
            lost: Mutex::new(None),
        });
        let (ctx_tx, ctx_rx) = mpsc::channel();
        let (cmd_tx, cmd_rx) = mpsc::channel::<Command>();
        let thread = {
            let shared = shared.clone();
            let display = display.clone();
            // The presenter logs to whatever subscriber its creator logs to (the
            // runtime's own, inside an application's process).
            std::thread::Builder::new()
                .name("leasehold-compositor".into())
                .spawn(leasehold_drivers::threads::with_starters_logs(move || {
                    let lost = shared.clone();
                    guarded(&lost.lost, || {
                        presenter(hmd, display, target, shared, cmd_rx, ctx_tx)
                    });
                }))
                .map_err(|e| CompositorError::Start(format!("presenter thread: {e}")))?
        };
        let started = ctx_rx
            .recv_timeout(Duration::from_secs(120))
            .map_err(|_| CompositorError::Start("the presenter thread did not start".into()))
            .and_then(|r| r);
        let (uuid, describe, imports_sync_file) = match started {
            Ok(x) => x,
            Err(e) => {
                shared.stop.store(true, Ordering::Release);
                let _ = thread.join();
                return Err(e);
            }
        };
        tracing::info!(compositor = %describe, "compositor started");
        Ok(Self {
            shared,
            commands: Mutex::new(cmd_tx),
            thread: Some(thread),
            scanout_to_photon_ns: display.scanout_to_photon_ns,
            display,
            uuid,
            describe,
            imports_sync_file,
        })
    }

    fn send(&self, c: Command) -> Result<(), CompositorError> {
        if let Some(why) = self.lost() {
            return Err(CompositorError::Lost(why));
        }
        self.commands
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .send(c)
            .map_err(|_| CompositorError::Lost("the presenter thread has ended".into()))
    }
}

/// The device UUID, the description, and whether the renderer waits for sync_files on
/// the GPU.
type Started = mpsc::Sender<Result<([u8; 16], String, bool), CompositorError>>;

/// Runs the presenter; a panic in it stops the compositor as a lost display (with the
/// panic's message as the reason) instead of leaving a session that looks alive.
fn guarded(lost: &Mutex<Option<String>>, f: impl FnOnce()) {
    if let Err(p) = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)) {
        let msg = p
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| p.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "unknown panic".into());
        tracing::error!(panic = %msg, "the compositor thread failed");
        *lost.lock().unwrap_or_else(|p| p.into_inner()) =
            Some(format!("the compositor thread failed: {msg}"));
    }
}

fn presenter(
    hmd: Arc<dyn Hmd + Send + Sync>,
    display: DisplayInfo,
    target: LocalTarget,
    shared: Arc<Shared>,
    commands: mpsc::Receiver<Command>,
    started: Started,
) {
    match target {
        LocalTarget::Headless => {
            let setup = || -> Result<(GpuRenderer, HeadlessTarget), CompositorError> {
                let ctx = Arc::new(VkContext::new(DevicePreference::default())?);
                let mut r = GpuRenderer::new(ctx, &hmd.lens(), &display)?;
                let hz = display.refresh_hz.first().copied().unwrap_or(90.0);
                let t =
                    HeadlessTarget::new(&mut r, display.panel_width, display.panel_height, hz, 3)?;
                Ok((r, t))
            };
            let Some((mut r, mut t)) = started_or_report(setup(), &started) else {
                return;
            };
            drive(&mut r, &mut t, &*hmd, &display, &shared, &commands, started);
            if let Err(e) = t.destroy(&mut r) {
                tracing::warn!(%e, "releasing the headless target");
            }
        }
        LocalTarget::Kms(d) => kms_presenter(hmd, display, d, shared, commands, started),
    }
}

/// The KMS target: take the system's lease on the headset's output, light it (the
/// lessor's mode kept, else its preferred one), render into its scanout buffers (or copy,
/// where the device cannot import them). An intact lease goes back to the system when
/// the session ends.
fn kms_presenter(
    hmd: Arc<dyn Hmd + Send + Sync>,
    mut display: DisplayInfo,
    headset_display: Arc<crate::kms::display::HeadsetDisplay>,
    shared: Arc<Shared>,
    commands: mpsc::Receiver<Command>,
    started: Started,
) {
    let (lease, headset) = match headset_display.take_lease() {
        Ok(x) => x,
        Err(e) => {
            let _ = started.send(Err(CompositorError::Start(format!(
                "leasing the headset's display: {e}"
            ))));
            return;
        }
    };
    let lessee = lease.card();
    let mut setup =
        || -> Result<(GpuRenderer, crate::target::kms::KmsTarget<'_>), CompositorError> {
            let lit = crate::kms::bringup::bring_up(lessee, &lease, &headset, None, 3)
                .map_err(|e| CompositorError::Start(e.to_string()))?;
            let (w, h) = lit.mode.size();
            // The panel is what the output scans out; the eyes split it.
            display = display.for_mode(u32::from(w), u32::from(h), 1e9 / lit.period_ns as f32);
            let ctx = Arc::new(VkContext::new(DevicePreference {
                drm_node: lessee.device_node(),
            })?);
            let mut r = GpuRenderer::new(ctx, &hmd.lens(), &display)?;
            let t = crate::target::kms::KmsTarget::new(lit.output, lit.ring, &mut r, lit.period_ns)
                .map_err(|e| CompositorError::Start(e.to_string()))?;
            Ok((r, t))
        };
    let Some((mut r, mut t)) = started_or_report(setup(), &started) else {
        headset_display.give_back(lease);
        return;
    };
    drive(&mut r, &mut t, &*hmd, &display, &shared, &commands, started);
    let alive = t.output().lease_alive();
    if let Err(e) = t.destroy(&mut r) {
        tracing::warn!(%e, "releasing the KMS target");
    }
    let lost = shared
        .lost
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .is_some();
    if alive && !lost {
        headset_display.give_back(lease);
    } else {
        tracing::info!("the headset's lease is gone; the next session leases anew");
        drop(lease);
    }
}

/// A setup's result; a failure goes back to the thread waiting in `start`.
fn started_or_report<T>(r: Result<T, CompositorError>, started: &Started) -> Option<T> {
    match r {
        Ok(x) => Some(x),
        Err(e) => {
            let _ = started.send(Err(e));
            None
        }
    }
}

/// Runs the frame loop on a made target until stopped, serving commands between frames.
fn drive(
    renderer: &mut GpuRenderer,
    target: &mut dyn Target,
    hmd: &dyn Hmd,
    display: &DisplayInfo,
    shared: &Shared,
    commands: &mpsc::Receiver<Command>,
    started: Started,
) {
    let period = target.period_ns();
    shared.period_ns.store(period, Ordering::Release);
    shared
        .vblank_ns
        .store(crate::present::now_ns(), Ordering::Release);
    let uuid = renderer.context().gpu.device_uuid;
    let describe = format!("{} on {}", target.describe(), renderer.context().gpu.name);
    let _ = started.send(Ok((uuid, describe, renderer.imports_sync_file())));
    let mut cfg = PacerConfig::for_period(period);
    cfg.scanout_to_photon_ns = display.scanout_to_photon_ns;
    let mut last_app_frame = None;
    let mut on_frame = |r: &mut GpuRenderer, t: &mut dyn Target, rec: &LoopRecord| {
        shared.vblank_ns.store(rec.vblank_ns, Ordering::Release);
        {
            let mut s = shared.stats.lock().unwrap_or_else(|p| p.into_inner());
            s.frames += 1;
            s.hits += u64::from(rec.hit);
            s.flips = t.completed_flips();
            if s.render_ns.len() == CompositorStats::SAMPLES {
                s.render_ns.pop_front();
            }
            s.render_ns.push_back(rec.render_ns);
            if let Some(f) = rec.submission {
                tracing::debug!(
                    app_frame = f,
                    vblank = rec.shown_sequence,
                    hit = rec.hit,
                    "compositor frame"
                );
                s.with_submission += 1;
                if last_app_frame != Some(f) {
                    s.app_frames_shown += 1;
                    last_app_frame = Some(f);
                }
            }
        }
        while let Ok(c) = commands.try_recv() {
            serve(c, r, t, true);
        }
    };
    let result = frame_loop::run(
        renderer,
        target,
        display,
        hmd,
        &shared.slot,
        cfg,
        &shared.stop,
        &mut on_frame,
    );
    if let Err(e) = &result {
        tracing::error!(%e, "compositor stopped");
        *shared.lost.lock().unwrap_or_else(|p| p.into_inner()) = Some(e.to_string());
    }
    // Late requests: answered against the final state, imports refused.
    while let Ok(c) = commands.try_recv() {
        serve(c, renderer, target, false);
    }
    let _ = renderer.wait();
}

/// Carries out one request on the presenter thread.
fn serve(c: Command, r: &mut GpuRenderer, t: &mut dyn Target, running: bool) {
    match c {
        Command::Import(img, reply) => {
            let _ = reply.send(if running {
                r.import_layer_image(img).map_err(Into::into)
            } else {
                Err(CompositorError::Lost("the compositor stopped".into()))
            });
        }
        Command::Destroy(id) => {
            if let Err(e) = r.destroy_layer_image(id) {
                tracing::warn!(%e, id, "destroying a layer image");
            }
        }
        Command::Snapshot(reply) => {
            let _ = reply.send(t.snapshot(r).map_err(Into::into));
        }
    }
}

impl Compositor for LocalCompositor {
    fn describe(&self) -> String {
        self.describe.clone()
    }

    fn device_uuid(&self) -> [u8; 16] {
        self.uuid
    }

    fn imports_sync_file(&self) -> bool {
        self.imports_sync_file
    }

    fn display(&self) -> DisplayInfo {
        self.display.clone()
    }

    fn clock(&self) -> FrameClock {
        FrameClock {
            vblank_ns: self.shared.vblank_ns.load(Ordering::Acquire),
            period_ns: self.shared.period_ns.load(Ordering::Acquire),
            scanout_to_photon_ns: self.scanout_to_photon_ns,
        }
    }

    fn import_image(&self, image: SharedImage) -> Result<u64, CompositorError> {
        let (tx, rx) = mpsc::channel();
        self.send(Command::Import(image, tx))?;
        rx.recv_timeout(answer_within())
            .map_err(|_| CompositorError::Lost("the compositor did not answer".into()))?
    }

    fn destroy_image(&self, id: u64) {
        let _ = self.send(Command::Destroy(id));
    }

    fn submit(&self, frame: Submission) -> Result<(), CompositorError> {
        if let Some(why) = self.lost() {
            return Err(CompositorError::Lost(why));
        }
        self.shared.slot.submit(frame);
        Ok(())
    }

    fn promote_ready(&self) {
        self.shared.slot.promote();
    }

    fn snapshot(&self) -> Result<Option<RgbaImage>, CompositorError> {
        let (tx, rx) = mpsc::channel();
        self.send(Command::Snapshot(tx))?;
        rx.recv_timeout(answer_within())
            .map_err(|_| CompositorError::Lost("the compositor did not answer".into()))?
    }

    fn stats(&self) -> CompositorStats {
        self.shared
            .stats
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    fn lost(&self) -> Option<String> {
        self.shared
            .lost
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }
}

impl Drop for LocalCompositor {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::Release);
        if let Some(t) = self.thread.take()
            && t.join().is_err()
        {
            tracing::error!("the compositor thread panicked");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_presenter_panic_becomes_a_lost_display() {
        let lost = Mutex::new(None);
        guarded(&lost, || {});
        assert_eq!(*lost.lock().unwrap(), None);
        guarded(&lost, || panic!("renderer state broken"));
        let why = lost.lock().unwrap().clone().expect("reported lost");
        assert!(why.contains("renderer state broken"), "{why}");
    }

    const P: u64 = 11_111_111;

    fn clock() -> FrameClock {
        FrameClock {
            vblank_ns: 1_000_000_000,
            period_ns: P,
            scanout_to_photon_ns: 0,
        }
    }

    #[test]
    fn an_app_on_time_gets_one_vblank_per_period() {
        let c = clock();
        // First call: wakes a period before its vblank.
        let f0 = c.app_frame(c.vblank_ns + 100, None);
        assert_eq!(f0.vblank_ns, c.vblank_ns + P);
        assert_eq!(f0.wake_ns, c.vblank_ns);
        // Simulation takes 90 % of a period after each wake (the pipelined pattern).
        let mut last = f0;
        for _ in 0..100 {
            let f = c.app_frame(last.wake_ns + P * 9 / 10, Some(last.vblank_ns));
            assert_eq!(f.vblank_ns, last.vblank_ns + P);
            assert_eq!(f.wake_ns, last.wake_ns + P);
            last = f;
        }
    }

    #[test]
    fn a_late_app_keeps_the_next_vblank_while_half_a_period_remains() {
        let c = clock();
        let f0 = c.app_frame(c.vblank_ns, None);
        // 1.3 periods after its wake: 0.7 of a period before the next vblank.
        let late = c.app_frame(f0.wake_ns + P * 13 / 10, Some(f0.vblank_ns));
        assert_eq!(late.vblank_ns, f0.vblank_ns + P);
        assert!(late.wake_ns < f0.wake_ns + P * 13 / 10, "returns at once");
        // 1.6 periods after: too little left; the one after.
        let later = c.app_frame(f0.wake_ns + P * 16 / 10, Some(f0.vblank_ns));
        assert_eq!(later.vblank_ns, f0.vblank_ns + 2 * P);
    }

    #[test]
    fn never_the_same_vblank_twice() {
        let c = clock();
        let f0 = c.app_frame(c.vblank_ns, None);
        // An app that calls again at once (it skipped its simulation).
        let f1 = c.app_frame(c.vblank_ns + 1, Some(f0.vblank_ns));
        assert_eq!(f1.vblank_ns, f0.vblank_ns + P);
        assert_eq!(f1.wake_ns, f0.vblank_ns);
    }
}
