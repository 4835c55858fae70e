//! The compositor's frame loop: the presenter thread's body. Per display frame it asks
//! the pacer when to wake, sleeps until then, takes the *newest* submission the app has
//! made by that moment whose GPU rendering is done (older ones are simply superseded;
//! one still rendering waits for a later frame, and a late app's last frame is shown
//! again), samples the headset's pose for the frame's predicted display time
//! (timewarp), renders, sleeps until the commit deadline, and presents at the target
//! vblank; the display's feedback goes back into the pacer.
//!
//! Runs on whichever thread calls [`run`] (the service spawns a dedicated one), with
//! real-time priority where permitted.

use crate::pacing::{FlipFeedback, Pacer, PacerConfig};
use crate::present::{now_ns, request_realtime_priority};
use crate::render::{self, Layer};
use crate::target::{Committed, Feedback, Target, TargetError};
use crate::vk::app::ReleaseProbe;
use crate::vk::renderer::GpuRenderer;
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
                Ok(true) => {
                    done = Some(k);
                    break;
                }
                Ok(false) => {}
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
        let outcome = pacer.on_flip(FlipFeedback {
            frame_id: f.frame_id,
            sequence: fb.sequence,
            vblank_ns: fb.vblank_ns,
            commit_ns: f.commit_ns,
            render_done_ns: None,
        });
        shown += 1;
        on_frame(
            renderer,
            target,
            &LoopRecord {
                wake_ns: f.wake_ns,
                commit_ns: f.commit_ns,
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
        let (fence, mut timing) = {
            let img = target.acquire()?;
            renderer.render(&fplan, img, sync_file)?
        };
        // Late commit: as close to the vblank as the pacer's margins allow; flips of
        // earlier frames are taken meanwhile.
        for fb in target.wait_until(plan.commit_deadline_ns)? {
            feed(renderer, target, &mut pacer, &mut inflight, fb);
        }
        if now_ns() > plan.commit_deadline_ns + 1_000_000 {
            // Woken too late for this vblank: move the frame rather than block.
            plan = pacer.retarget(&plan, now_ns());
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
        pacer.on_render_time(render_ns);
        inflight.push_back(InFlight {
            frame_id: plan.frame_id,
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

/// A committed frame awaiting its feedback.
struct InFlight {
    frame_id: u64,
    wake_ns: u64,
    commit_ns: u64,
    /// What it showed: kept (with the holds on its images) until it is on screen.
    submission: Option<Arc<Submission>>,
    target_sequence: u64,
    predicted_display_ns: u64,
    render_ns: u64,
}
