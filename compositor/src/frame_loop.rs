//! The compositor's frame loop: the presenter thread's body. Per display frame it asks
//! the pacer when to wake, sleeps until then, takes the *newest* submission the app has
//! made by that moment (older ones are simply superseded; a late app's last frame is
//! shown again), samples the headset's pose for the frame's predicted display time
//! (timewarp), renders, sleeps until the commit deadline, and presents at the target
//! vblank; the display's feedback goes back into the pacer.
//!
//! Runs on whichever thread calls [`run`] (the service spawns a dedicated one), with
//! real-time priority where permitted.

use crate::pacing::{FlipFeedback, Pacer, PacerConfig};
use crate::present::{now_ns, request_realtime_priority, sleep_until};
use crate::render::{self, Layer};
use crate::target::{Target, TargetError};
use crate::vk::renderer::GpuRenderer;
use leasehold_drivers::api::{DisplayInfo, Hmd, Pose};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

/// One frame's layers as the app submitted them.
#[derive(Debug, Clone, PartialEq)]
pub struct Submission {
    /// The app's frame counter (increasing).
    pub frame: u64,
    pub layers: Vec<Layer>,
}

/// Where submissions meet the loop. The app side replaces; the loop reads the newest.
#[derive(Debug, Default)]
pub struct SubmissionSlot {
    newest: Mutex<Option<Arc<Submission>>>,
    submitted: AtomicU64,
    superseded: AtomicU64,
}

impl SubmissionSlot {
    pub fn submit(&self, s: Submission) {
        self.submitted.fetch_add(1, Ordering::AcqRel);
        if let Ok(mut n) = self.newest.lock()
            && n.replace(Arc::new(s)).is_some()
        {
            // Counted as superseded now; un-counted when the loop takes it.
            self.superseded.fetch_add(1, Ordering::AcqRel);
        }
    }

    /// The newest submission (it stays for reuse if the app is late).
    pub fn newest(&self) -> Option<Arc<Submission>> {
        self.newest.lock().ok()?.clone()
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

/// Runs `frames` display frames (or until `stop`).
#[allow(clippy::too_many_arguments)]
pub fn run(
    renderer: &mut GpuRenderer,
    target: &mut dyn Target,
    display: &DisplayInfo,
    hmd: &dyn Hmd,
    slot: &SubmissionSlot,
    pacer_cfg: PacerConfig,
    frames: u64,
    stop: &AtomicBool,
) -> Result<Vec<LoopRecord>, TargetError> {
    request_realtime_priority();
    // Anchor: one frame with nothing in it tells us where vblanks are.
    let empty = render::plan(display, Pose::IDENTITY, &[], &|_| None);
    let (fence, _) = {
        let img = target.acquire()?;
        renderer.render(&empty, img, true)?
    };
    let anchor = target.present(renderer, fence, 0)?;
    let mut pacer = Pacer::new(pacer_cfg, anchor.sequence, anchor.vblank_ns);
    let mut last_pose = Pose::IDENTITY;
    let mut out = Vec::with_capacity(frames as usize);
    for _ in 0..frames {
        if stop.load(Ordering::Acquire) {
            break;
        }
        let plan = pacer.plan(now_ns());
        sleep_until(plan.wake_ns);
        let wake = now_ns();
        let sub = slot.newest();
        let head = match hmd.pose_at(plan.predicted_display_ns) {
            Ok(p) if p.pose.is_finite() => p.pose,
            Ok(_) | Err(_) => last_pose,
        };
        last_pose = head;
        let layers = sub.as_ref().map(|s| s.layers.as_slice()).unwrap_or(&[]);
        let fplan = render::plan(display, head, layers, &|id| renderer.layer_desc(id));
        let (fence, mut timing) = {
            let img = target.acquire()?;
            renderer.render(&fplan, img, true)?
        };
        // Late commit: as close to the vblank as the pacer's margins allow.
        sleep_until(plan.commit_deadline_ns);
        let commit = now_ns();
        let fb = target.present(renderer, fence, plan.target_vblank_ns)?;
        renderer.finish(&mut timing)?;
        let render_ns = timing
            .gpu_total_ns
            .map(|g| g + timing.cpu_submit_ns)
            .unwrap_or_else(|| commit.saturating_sub(wake));
        pacer.on_render_time(render_ns);
        let outcome = pacer.on_flip(FlipFeedback {
            frame_id: plan.frame_id,
            sequence: fb.sequence,
            vblank_ns: fb.vblank_ns,
            commit_ns: commit,
            render_done_ns: None,
        });
        out.push(LoopRecord {
            wake_ns: wake,
            commit_ns: commit,
            submission: sub.map(|s| s.frame),
            target_sequence: plan.target_sequence,
            predicted_display_ns: plan.predicted_display_ns,
            shown_sequence: fb.sequence,
            vblank_ns: fb.vblank_ns,
            render_ns,
            hit: outcome.is_some_and(|o| o.missed_vblanks == 0) && !fb.missed,
        });
    }
    Ok(out)
}
