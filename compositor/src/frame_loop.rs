//! The compositor's frame loop: the presenter thread's body. Per display frame it asks
//! the pacer when to wake, sleeps until then, takes the *newest* submission the app has
//! made by that moment whose GPU rendering is done (older ones are simply superseded;
//! one still rendering waits for a later frame, and a late app's last frame is shown
//! again), samples the headset's pose for the frame's predicted display time
//! (timewarp), renders, sleeps until the commit deadline, and presents at the target
//! vblank; the display's feedback goes back into the pacer.
//!
//! An app whose releases come with sync_files (GPU-side synchronisation, see
//! [`crate::vk::app`]) has its newest submission taken at once, still rendering: the
//! compositor's GPU waits for the app's before it composes, and the CPU never does.
//!
//! Runs on whichever thread calls [`run`] (the service spawns a dedicated one), with
//! real-time priority where permitted.

use crate::pacing::{FlipFeedback, Pacer, PacerConfig};
use crate::present::{RenderModel, Run, SyntheticGpu, now_ns, request_realtime_priority};
use crate::render::{self, Layer};
use crate::target::{Committed, Feedback, Target, TargetError};
use crate::vk::app::ReleaseProbe;
use crate::vk::renderer::{GpuRenderer, RenderFence};
use leasehold_drivers::api::{DisplayInfo, Hmd, Pose};
use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

/// One frame's layers as the app submitted them.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Submission {
    /// The app's frame counter (increasing).
    pub frame: u64,
    pub layers: Vec<Layer>,
    /// Keep the images the layers sample marked in use while the compositor may read
    /// them (dropped with the submission, after the last frame that showed it).
    pub holds: Vec<Hold>,
    /// The app's rendering into those images: the submission is shown once all of it is
    /// done (asked each frame, never waited for).
    pub rendering: Vec<ReleaseProbe>,
}

impl Submission {
    /// Whether the app's rendering into the submission's images is done.
    fn rendered(&self) -> Result<bool, crate::vk::VkError> {
        for p in &self.rendering {
            if !p.done()? {
                return Ok(false);
            }
        }
        Ok(true)
    }

    /// Whether the compositor's GPU can wait for all of the app's rendering into the
    /// submission's images (each release came with a sync_file).
    fn gpu_waitable(&self) -> bool {
        self.rendering.iter().all(|p| p.sync_file().is_some())
    }

    /// The sync_files of the app's rendering not yet seen done, for the compositor's GPU
    /// to wait on.
    pub fn gpu_waits(&self) -> Vec<std::os::fd::BorrowedFd<'_>> {
        self.rendering
            .iter()
            .filter(|p| !p.done().unwrap_or(true))
            .filter_map(ReleaseProbe::sync_file)
            .collect()
    }
}

/// Whether the compositor may still read an image (a swapchain image the app wants back).
#[derive(Debug, Default)]
pub struct InUse {
    count: Mutex<u32>,
    freed: Condvar,
}

impl InUse {
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }

    /// Marks the image in use until the returned hold (and its clones) are dropped.
    pub fn hold(self: &Arc<Self>) -> Hold {
        *self.count.lock().unwrap_or_else(|p| p.into_inner()) += 1;
        Hold(self.clone())
    }

    pub fn is_free(&self) -> bool {
        *self.count.lock().unwrap_or_else(|p| p.into_inner()) == 0
    }

    /// Waits until nothing holds the image: `false` on timeout.
    pub fn wait_free(&self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        let mut n = self.count.lock().unwrap_or_else(|p| p.into_inner());
        while *n > 0 {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return false;
            }
            n = self
                .freed
                .wait_timeout(n, left)
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
        true
    }
}

/// One claim on an [`InUse`] image.
#[derive(Debug)]
pub struct Hold(Arc<InUse>);

impl Clone for Hold {
    fn clone(&self) -> Self {
        self.0.hold()
    }
}

impl PartialEq for Hold {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}

impl Drop for Hold {
    fn drop(&mut self) {
        let mut n = self.0.count.lock().unwrap_or_else(|p| p.into_inner());
        *n = n.saturating_sub(1);
        if *n == 0 {
            self.0.freed.notify_all();
        }
    }
}

/// Where submissions meet the loop. The app side replaces the newest; the loop shows the
/// newest whose rendering is done.
#[derive(Debug, Default)]
pub struct SubmissionSlot {
    slots: Mutex<Slots>,
    submitted: AtomicU64,
}

#[derive(Debug, Default)]
struct Slots {
    /// Submitted, their rendering not yet seen done, oldest first. Each waits until it or a
    /// newer one is done (then the older ones go): an app with several frames in flight
    /// on its GPU still has each shown, and its images stay held meanwhile, which is
    /// what paces it.
    pending: std::collections::VecDeque<Arc<Submission>>,
    /// The newest one seen rendered: what the loop shows.
    ready: Option<Arc<Submission>>,
}

/// Submissions waiting for their rendering at most; beyond, the oldest goes unseen
/// (an app that submits without ever finishing its GPU work).
const MAX_PENDING: usize = 8;

impl Slots {
    fn promote(&mut self) {
        // The newest one done replaces the shown one; the older ones go with it.
        let mut done = None;
        let mut failed = Vec::new();
        for (k, s) in self.pending.iter().enumerate().rev() {
            match s.rendered() {
                // Done, or the GPU will wait for it: the newest such one is shown.
                Ok(rendered) if rendered || s.gpu_waitable() => {
                    done = Some(k);
                    break;
                }
                Ok(_) => {}
                Err(e) => {
                    tracing::error!(%e, frame = s.frame, "the app's rendering failed: its frame is not shown");
                    failed.push(k);
                }
            }
        }
        for k in failed {
            self.pending.remove(k);
        }
        if let Some(k) = done {
            let k = k.min(self.pending.len().saturating_sub(1));
            let newest_done = self.pending.remove(k);
            // The older ones (holds and all) go; the shown one is replaced.
            self.pending.drain(..k);
            self.ready = newest_done;
        }
    }
}

impl SubmissionSlot {
    pub fn submit(&self, s: Submission) {
        self.submitted.fetch_add(1, Ordering::AcqRel);
        if let Ok(mut g) = self.slots.lock() {
            g.pending.push_back(Arc::new(s));
            if g.pending.len() > MAX_PENDING {
                g.pending.pop_front();
            }
            g.promote();
        }
    }

    /// Makes the newest submission whose rendering is done the one to show, so the ones
    /// it replaces let their images go (an app waiting for a swapchain image asks).
    pub fn promote(&self) {
        if let Ok(mut g) = self.slots.lock() {
            g.promote();
        }
    }

    /// The newest submission whose app rendering is done. Newer ones still rendering wait
    /// for a later display frame while it is shown (again, as for an app that is late);
    /// one whose rendering failed (device lost) is dropped and logged.
    pub fn latest_ready(&self) -> Option<Arc<Submission>> {
        let mut g = self.slots.lock().ok()?;
        g.promote();
        g.ready.clone()
    }

    pub fn submitted(&self) -> u64 {
        self.submitted.load(Ordering::Acquire)
    }
}

/// What happened to one display frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LoopRecord {
    pub wake_ns: u64,
    pub commit_ns: u64,
    /// The vblank the frame was planned (or retargeted) for.
    pub target_vblank_ns: u64,
    /// Moved to a later vblank before its commit (woken late, or refused for now).
    pub retargeted: bool,
    /// When its render completed, where known (a synthetic load's fence).
    pub render_done_ns: Option<u64>,
    /// The pacer's safety margin when the frame was shown.
    pub margin_ns: u64,
    /// The app frame shown (`None` before the first submission).
    pub submission: Option<u64>,
    pub target_sequence: u64,
    pub predicted_display_ns: u64,
    pub shown_sequence: u64,
    pub vblank_ns: u64,
    /// Render cost: CPU submit plus GPU time (timestamps), or wake to commit without.
    pub render_ns: u64,
    pub hit: bool,
}

/// Extra render work per frame that the commit waits for: a synthetic GPU's fence
/// signalled after the model's time (`leasehold bench frame-timing` measures the loop
/// with it).
#[derive(Debug)]
pub struct SyntheticLoad<'a> {
    pub gpu: &'a SyntheticGpu,
    pub model: RenderModel,
}

/// Runs display frames until `stop`, handing each frame's record to `on_frame` (which
/// also gets the renderer and target between frames: imports and removals of layer images happen
/// there). Returns the number of frames shown.
#[allow(clippy::too_many_arguments)]
pub fn run(
    renderer: &mut GpuRenderer,
    target: &mut dyn Target,
    display: &DisplayInfo,
    hmd: &dyn Hmd,
    slot: &SubmissionSlot,
    pacer_cfg: PacerConfig,
    stop: &AtomicBool,
    on_frame: &mut dyn FnMut(&mut GpuRenderer, &mut dyn Target, &LoopRecord),
) -> Result<u64, TargetError> {
    run_with(
        renderer, target, display, hmd, slot, pacer_cfg, stop, None, on_frame,
    )
}

/// This loop on a lit output for `frames` frames, as `leasehold bench frame-timing`
/// measures it: the compositor on the display's device with no app (nothing to compose:
/// its render is skipped once the scanout buffers are black) and `render` as the
/// synthetic load every commit waits for. Gives the output and ring back (for the next
/// presenter) and the frames as the benchmark records them; a lost lease ends the run
/// early ([`crate::present::Stop::LeaseLost`]). `shown`, where given, counts the frames
/// shown so far (for a watcher on another thread).
#[allow(clippy::too_many_arguments)]
pub fn run_on_output<'c>(
    lessee: &'c crate::kms::Card,
    output: crate::kms::Output<'c>,
    ring: crate::kms::ScanoutRing<'c>,
    period: u64,
    cfg: PacerConfig,
    render: RenderModel,
    frames: u64,
    shown: Option<&std::sync::atomic::AtomicU64>,
) -> Result<(Run, crate::kms::Output<'c>, crate::kms::ScanoutRing<'c>), TargetError> {
    use crate::present::{FrameRecord, Stop};
    use crate::target::kms::KmsTarget;
    use crate::vk::context::{DevicePreference, VkContext};
    let ctx = Arc::new(VkContext::new(DevicePreference {
        drm_node: lessee.device_node(),
    })?);
    let (w, h) = (ring.buffer(0).width, ring.buffer(0).height);
    let hmd = leasehold_drivers::simulated::SimulatedHmd::new(
        leasehold_drivers::motion::Motion::new(glam::DQuat::IDENTITY, &[]),
        now_ns(),
    );
    let display = hmd.display().for_mode(w, h, 1e9 / period as f32);
    let mut renderer = GpuRenderer::new(ctx, &hmd.lens(), &display)?;
    let mut target = KmsTarget::new(output, ring, &mut renderer, period)?;
    let gpu = SyntheticGpu::start().map_err(|e| TargetError::Lost(e.to_string()))?;
    let slot = SubmissionSlot::default();
    let stop = AtomicBool::new(false);
    let mut records = Vec::with_capacity(frames as usize);
    let result = run_with(
        &mut renderer,
        &mut target,
        &display,
        &hmd,
        &slot,
        cfg,
        &stop,
        Some(SyntheticLoad {
            gpu: &gpu,
            model: render,
        }),
        &mut |_, _, r| {
            if records.len() as u64 >= frames {
                return;
            }
            records.push(FrameRecord {
                frame: records.len() as u64,
                target_sequence: r.target_sequence,
                target_vblank_ns: r.target_vblank_ns,
                wake_ns: r.wake_ns,
                commit_ns: r.commit_ns,
                fence_signal_ns: r.render_done_ns.unwrap_or(r.commit_ns),
                flip_sequence: r.shown_sequence,
                flip_ns: r.vblank_ns,
                margin_ns: r.margin_ns,
                hit: r.hit,
                retargeted: r.retargeted,
            });
            if let Some(n) = shown {
                n.store(records.len() as u64, Ordering::Release);
            }
            if records.len() as u64 >= frames {
                stop.store(true, Ordering::Release);
            }
        },
    );
    let lease_alive = target.output().lease_alive();
    let (output, ring) = target.into_parts(&mut renderer)?;
    let stop = match result {
        Ok(_) => Stop::Completed,
        // A revoked lease (or a lessor gone): the output is gone, the process is not.
        Err(e) if !lease_alive => {
            tracing::warn!(frames = records.len(), error = %e, "lease lost: frame loop stopped");
            Stop::LeaseLost
        }
        Err(e) => return Err(e),
    };
    Ok((Run { records, stop }, output, ring))
}

/// [`run`], with a synthetic render load on every frame.
#[allow(clippy::too_many_arguments)]
pub fn run_with(
    renderer: &mut GpuRenderer,
    target: &mut dyn Target,
    display: &DisplayInfo,
    hmd: &dyn Hmd,
    slot: &SubmissionSlot,
    pacer_cfg: PacerConfig,
    stop: &AtomicBool,
    load: Option<SyntheticLoad<'_>>,
    on_frame: &mut dyn FnMut(&mut GpuRenderer, &mut dyn Target, &LoopRecord),
) -> Result<u64, TargetError> {
    request_realtime_priority();
    // Anchor: one frame with nothing in it tells us where vblanks are.
    let empty = render::plan(display, Pose::IDENTITY, &[], &|_| None);
    let sync_file = target.gates_on_sync_files();
    let (fence, _) = {
        let img = target.acquire()?;
        renderer.render(&empty, img, sync_file)?
    };
    let anchor = target.present(renderer, fence, 0)?;
    let mut pacer = Pacer::new(pacer_cfg, anchor.sequence, anchor.vblank_ns);
    let mut last_pose = Pose::IDENTITY;
    let mut last_rejections = Vec::new();
    let mut shown = 0;
    // Committed frames whose feedback (flip) has not come yet, in commit order.
    let mut inflight: VecDeque<InFlight> = VecDeque::new();
    let mut load_frames = 0u64;
    // Feedback for the oldest frame in flight: into the pacer, then to `on_frame`; the
    // frame's submission (and the holds on its images) goes with it.
    let mut feed = |renderer: &mut GpuRenderer,
                    target: &mut dyn Target,
                    pacer: &mut Pacer,
                    inflight: &mut VecDeque<InFlight>,
                    fb: Feedback| {
        let Some(f) = inflight.pop_front() else {
            return;
        };
        // A synthetic render's completion is known exactly: it is the render time.
        let render_done_ns = match (&load, f.load_frame) {
            (Some(l), Some(i)) => l.gpu.completed(i).ok(),
            _ => None,
        };
        if let Some(done) = render_done_ns {
            pacer.on_render_time(done.saturating_sub(f.wake_ns));
        }
        let outcome = pacer.on_flip(FlipFeedback {
            frame_id: f.frame_id,
            sequence: fb.sequence,
            vblank_ns: fb.vblank_ns,
            commit_ns: f.commit_ns,
            render_done_ns,
        });
        shown += 1;
        on_frame(
            renderer,
            target,
            &LoopRecord {
                wake_ns: f.wake_ns,
                commit_ns: f.commit_ns,
                target_vblank_ns: f.target_vblank_ns,
                retargeted: f.retargeted,
                render_done_ns,
                margin_ns: pacer.margin_ns(),
                submission: f.submission.as_ref().map(|s| s.frame),
                target_sequence: f.target_sequence,
                predicted_display_ns: f.predicted_display_ns,
                shown_sequence: fb.sequence,
                vblank_ns: fb.vblank_ns,
                render_ns: f.render_ns,
                hit: outcome.is_some_and(|o| o.missed_vblanks == 0) && !fb.missed,
            },
        );
    };
    while !stop.load(Ordering::Acquire) {
        let mut plan = pacer.plan(now_ns());
        for fb in target.wait_until(plan.wake_ns)? {
            feed(renderer, target, &mut pacer, &mut inflight, fb);
        }
        // The buffer to render into: where all are on screen or queued, the pending
        // flip frees one.
        while !target.can_acquire() {
            let fb = target.next_feedback()?;
            feed(renderer, target, &mut pacer, &mut inflight, fb);
        }
        let wake = now_ns();
        let sub = slot.latest_ready();
        let head = match hmd.pose_at(plan.predicted_display_ns) {
            Ok(p) if p.pose.is_finite() => p.pose,
            Ok(_) | Err(_) => last_pose,
        };
        last_pose = head;
        let layers = sub.as_ref().map(|s| s.layers.as_slice()).unwrap_or(&[]);
        let fplan = render::plan(display, head, layers, &|id| renderer.layer_desc(id));
        // The same submission is shown frame after frame: say what was wrong with it
        // once, not at the display's refresh rate.
        if fplan.rejections != last_rejections {
            for r in &fplan.rejections {
                tracing::warn!(layer = r.layer, clamped = r.clamped, reason = %r.reason, "layer input corrected");
            }
            last_rejections = fplan.rejections.clone();
        }
        let (mut fence, mut timing) = {
            let waits = sub.as_ref().map(|s| s.gpu_waits()).unwrap_or_default();
            let img = target.acquire()?;
            renderer.render_after(&fplan, img, sync_file, &waits)?
        };
        let load_frame = match &load {
            Some(l) => {
                let i = load_frames;
                load_frames += 1;
                fence = with_load(renderer, fence, l.gpu.render(i, l.model.duration_ns(i)))?;
                Some(i)
            }
            None => None,
        };
        let mut retargeted = false;
        // Late commit: as close to the vblank as the pacer's margins allow; flips of
        // earlier frames are taken meanwhile.
        for fb in target.wait_until(plan.commit_deadline_ns)? {
            feed(renderer, target, &mut pacer, &mut inflight, fb);
        }
        if now_ns() > plan.commit_deadline_ns + 1_000_000 {
            // Woken too late for this vblank: move the frame rather than block.
            plan = pacer.retarget(&plan, now_ns());
            retargeted = true;
            for fb in target.wait_until(plan.commit_deadline_ns)? {
                feed(renderer, target, &mut pacer, &mut inflight, fb);
            }
        }
        let mut refused = 0;
        let (commit, committed) = loop {
            let commit = now_ns();
            match target.commit(renderer, &fence, plan.target_vblank_ns) {
                Ok(c) => break (commit, c),
                // Refused for now (the previous frame slipped and its flip still holds
                // this vblank, or the display is mid-change): take what is pending and
                // aim one vblank later, once; a second refusal counts as lost.
                Err(TargetError::Busy(why)) if refused == 0 => {
                    refused += 1;
                    tracing::debug!(%why, "commit refused for now: retargeting to a later vblank");
                    if let Ok(fb) = target.next_feedback() {
                        feed(renderer, target, &mut pacer, &mut inflight, fb);
                    }
                    plan = pacer.retarget(&plan, now_ns());
                    retargeted = true;
                    for fb in target.wait_until(plan.commit_deadline_ns)? {
                        feed(renderer, target, &mut pacer, &mut inflight, fb);
                    }
                }
                Err(e) => return Err(e),
            }
        };
        if fplan.draws.iter().any(|d| !d.is_empty()) {
            target.presented_content();
        }
        renderer.finish(&mut timing)?;
        let render_ns = timing
            .gpu_total_ns
            .map(|g| g + timing.cpu_submit_ns)
            .unwrap_or_else(|| commit.saturating_sub(wake));
        if load_frame.is_none() {
            pacer.on_render_time(render_ns);
        }
        inflight.push_back(InFlight {
            frame_id: plan.frame_id,
            target_vblank_ns: plan.target_vblank_ns,
            retargeted,
            load_frame,
            wake_ns: wake,
            commit_ns: commit,
            submission: sub,
            target_sequence: plan.target_sequence,
            predicted_display_ns: plan.predicted_display_ns,
            render_ns,
        });
        if let Committed::Shown(fb) = committed {
            feed(renderer, target, &mut pacer, &mut inflight, fb);
        }
    }
    // The frames still in flight: their flips come within a period or two.
    while !inflight.is_empty() {
        match target.next_feedback() {
            Ok(fb) => feed(renderer, target, &mut pacer, &mut inflight, fb),
            Err(_) => break,
        }
    }
    Ok(shown)
}

/// The commit's fence with a synthetic render's added: one sync_file for both.
fn with_load(
    renderer: &mut GpuRenderer,
    fence: RenderFence,
    load: Result<std::os::fd::OwnedFd, crate::kms::KmsError>,
) -> Result<RenderFence, TargetError> {
    use std::os::fd::AsFd;
    let load = load.map_err(|e| TargetError::Lost(format!("synthetic render load: {e}")))?;
    match fence {
        RenderFence::SyncFile(fd) => crate::kms::fence::merge_sync_files(fd.as_fd(), load.as_fd())
            .map(RenderFence::SyncFile)
            .map_err(|e| TargetError::Lost(e.to_string())),
        RenderFence::Signalled => Ok(RenderFence::SyncFile(load)),
        RenderFence::CpuWait => {
            renderer.wait()?;
            Ok(RenderFence::SyncFile(load))
        }
    }
}

/// A committed frame awaiting its feedback.
struct InFlight {
    frame_id: u64,
    target_vblank_ns: u64,
    retargeted: bool,
    /// Its synthetic render, if any.
    load_frame: Option<u64>,
    wake_ns: u64,
    commit_ns: u64,
    /// What it showed: kept (with the holds on its images) until it is on screen.
    submission: Option<Arc<Submission>>,
    target_sequence: u64,
    predicted_display_ns: u64,
    render_ns: u64,
}
