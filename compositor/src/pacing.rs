//! The frame pacer: when to wake, when to commit, which vblank to aim for.
//!
//! Clock-free: every input carries its own timestamp (CLOCK_MONOTONIC ns) and the pacer
//! never reads a clock, so it runs identically against the kernel and in simulated time.
//!
//! The model, per frame aimed at vblank `V`:
//!
//! ```text
//!   wake ─── render (estimate) ───▶ commit deadline ── margin ──▶ V ── scanout→photon ──▶ display
//! ```
//!
//! - `margin` is how long before `V` the commit (and the render fence) must be in for the
//!   kernel to latch it. It adapts to what is measured: on a miss it grows by how late the
//!   frame was (at least 0.5 ms), and it decays slowly while frames hit, so commits drift
//!   as late as the system allows.
//! - `render estimate` is how long the compositor needs from wake to a finished render:
//!   a decaying maximum of measured durations plus headroom, capped below one period.
//! - A frame that can no longer make its vblank is retargeted to the next one — planning
//!   never blocks and never targets the past.
//! - Vblank times are predicted from the latest flip event (sequence, timestamp) and the
//!   period; gaps in flip sequences beyond the target are reported as missed vblanks.

/// Fixed parameters of a pacer, usually from the mode and the headset profile.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PacerConfig {
    /// Frame period of the current mode, ns.
    pub period_ns: u64,
    /// From vblank to photons (panel scanout + persistence midpoint), from the profile.
    pub scanout_to_photon_ns: u64,
    /// Starting commit-to-vblank margin before any feedback.
    pub initial_margin_ns: u64,
    /// The margin never drops below this (kernel latch time).
    pub min_margin_ns: u64,
    /// Starting render estimate before any render was measured.
    pub initial_render_ns: u64,
    /// Added on top of the measured render maximum.
    pub render_headroom_ns: u64,
}

impl PacerConfig {
    /// Reasonable starting values for a mode with this period.
    pub fn for_period(period_ns: u64) -> Self {
        Self {
            period_ns,
            scanout_to_photon_ns: 0,
            initial_margin_ns: 2_000_000.min(period_ns / 4),
            min_margin_ns: 500_000.min(period_ns / 8),
            initial_render_ns: period_ns / 4,
            render_headroom_ns: 300_000,
        }
    }
}

/// The plan for one frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FramePlan {
    pub frame_id: u64,
    /// Vblank sequence number this frame aims at.
    pub target_sequence: u64,
    /// Predicted time of that vblank.
    pub target_vblank_ns: u64,
    /// When the compositor should start its work for this frame.
    pub wake_ns: u64,
    /// The latest moment to commit (with the render fence) and still make the vblank.
    pub commit_deadline_ns: u64,
    /// When the frame's photons are predicted to be seen: what apps render for.
    pub predicted_display_ns: u64,
}

/// What the display reported for a committed frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FlipFeedback {
    pub frame_id: u64,
    /// Vblank sequence at which the frame reached scanout.
    pub sequence: u64,
    /// Timestamp of that vblank.
    pub vblank_ns: u64,
    /// When the commit was issued.
    pub commit_ns: u64,
    /// When the render fence signalled (render complete), if known.
    pub render_done_ns: Option<u64>,
}

/// How a frame fared.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FlipOutcome {
    pub frame_id: u64,
    pub target_sequence: u64,
    pub actual_sequence: u64,
    /// Vblanks between the target and the actual flip (0: on time).
    pub missed_vblanks: u64,
    /// Commit to vblank, ns (negative never: a commit after its vblank misses it).
    pub commit_to_vblank_ns: u64,
    /// The margin in force after this feedback.
    pub margin_ns: u64,
}

/// The pacer's state. See the module docs for the model.
#[derive(Debug, Clone)]
pub struct Pacer {
    cfg: PacerConfig,
    /// Latest known vblank: (sequence, timestamp).
    anchor: (u64, u64),
    margin_ns: u64,
    render_estimate_ns: u64,
    next_frame_id: u64,
    /// Frames planned and not yet fed back: (frame_id, target_sequence).
    in_flight: Vec<(u64, u64)>,
    last_target: Option<u64>,
    hits: u64,
    misses: u64,
}

/// How much of the gap to the minimum the margin decays per hit frame (1/2048 per frame:
/// a time constant of ~23 s at 90 Hz), so probing for a later commit costs rare misses.
const MARGIN_DECAY_SHIFT: u32 = 11;
/// The least a miss grows the margin by.
const MARGIN_MISS_STEP_NS: u64 = 500_000;
/// Render estimate decays by 1/64 of its excess over the newest sample per frame.
const RENDER_DECAY_SHIFT: u32 = 6;

impl Pacer {
    /// A pacer anchored at a known vblank (e.g. from CRTC_GET_SEQUENCE or a first flip).
    pub fn new(cfg: PacerConfig, anchor_sequence: u64, anchor_vblank_ns: u64) -> Self {
        assert!(cfg.period_ns > 0, "a pacer needs a non-zero period");
        Self {
            margin_ns: cfg.initial_margin_ns.max(cfg.min_margin_ns),
            render_estimate_ns: cfg.initial_render_ns,
            cfg,
            anchor: (anchor_sequence, anchor_vblank_ns),
            next_frame_id: 1,
            in_flight: Vec::new(),
            last_target: None,
            hits: 0,
            misses: 0,
        }
    }

    pub fn period_ns(&self) -> u64 {
        self.cfg.period_ns
    }

    pub fn margin_ns(&self) -> u64 {
        self.margin_ns
    }

    pub fn render_estimate_ns(&self) -> u64 {
        self.render_estimate_ns
    }

    /// (hits, misses) so far.
    pub fn stats(&self) -> (u64, u64) {
        (self.hits, self.misses)
    }

    /// Predicted timestamp of vblank `sequence`.
    pub fn vblank_time(&self, sequence: u64) -> u64 {
        let (s0, t0) = self.anchor;
        if sequence >= s0 {
            t0 + (sequence - s0) * self.cfg.period_ns
        } else {
            t0.saturating_sub((s0 - sequence) * self.cfg.period_ns)
        }
    }

    /// The first vblank sequence strictly after `t_ns`.
    fn next_sequence_after(&self, t_ns: u64) -> u64 {
        let (s0, t0) = self.anchor;
        if t_ns < t0 {
            return s0;
        }
        s0 + (t_ns - t0) / self.cfg.period_ns + 1
    }

    fn plan_for(&self, frame_id: u64, seq: u64) -> FramePlan {
        let v = self.vblank_time(seq);
        let deadline = v.saturating_sub(self.margin_ns);
        FramePlan {
            frame_id,
            target_sequence: seq,
            target_vblank_ns: v,
            wake_ns: deadline.saturating_sub(self.render_estimate_ns),
            commit_deadline_ns: deadline,
            predicted_display_ns: v + self.cfg.scanout_to_photon_ns,
        }
    }

    /// Plans the next frame given the current time: the earliest vblank whose wake-up is
    /// not in the past and that no earlier frame already targets.
    pub fn plan(&mut self, now_ns: u64) -> FramePlan {
        let mut seq = self.next_sequence_after(now_ns);
        if let Some(last) = self.last_target {
            seq = seq.max(last + 1);
        }
        while self.plan_for(0, seq).wake_ns < now_ns {
            seq += 1;
        }
        let id = self.next_frame_id;
        self.next_frame_id += 1;
        self.last_target = Some(seq);
        self.in_flight.push((id, seq));
        self.plan_for(id, seq)
    }

    /// Re-plans a frame that is running late: same id, the earliest vblank still
    /// reachable from `now_ns` (the frame moves; nothing blocks).
    pub fn retarget(&mut self, plan: &FramePlan, now_ns: u64) -> FramePlan {
        let mut seq = plan.target_sequence;
        while self.plan_for(plan.frame_id, seq).commit_deadline_ns < now_ns {
            seq += 1;
        }
        if let Some(e) = self
            .in_flight
            .iter_mut()
            .find(|(id, _)| *id == plan.frame_id)
        {
            e.1 = seq;
        }
        self.last_target = Some(self.last_target.map_or(seq, |l| l.max(seq)));
        self.plan_for(plan.frame_id, seq)
    }

    /// A frame was dropped before commit (e.g. superseded by a newer one).
    pub fn on_dropped(&mut self, frame_id: u64) {
        self.in_flight.retain(|(id, _)| *id != frame_id);
    }

    /// How long the compositor took from wake to render complete.
    pub fn on_render_time(&mut self, duration_ns: u64) {
        // A render longer than a period is a stall, not a new normal: cap what we learn
        // from it so the pacer keeps aiming at every vblank it can make.
        let cap = self.cfg.period_ns.saturating_sub(self.margin_ns).max(1);
        let sample = (duration_ns + self.cfg.render_headroom_ns).min(cap);
        if sample >= self.render_estimate_ns {
            self.render_estimate_ns = sample;
        } else {
            self.render_estimate_ns -= (self.render_estimate_ns - sample) >> RENDER_DECAY_SHIFT;
        }
    }

    /// The display changed its refresh rate (a modeset); plans follow the new period.
    pub fn set_period(&mut self, period_ns: u64, anchor_sequence: u64, anchor_vblank_ns: u64) {
        assert!(period_ns > 0, "a pacer needs a non-zero period");
        self.cfg.period_ns = period_ns;
        self.anchor = (anchor_sequence, anchor_vblank_ns);
        self.margin_ns = self
            .margin_ns
            .min(period_ns / 2)
            .max(self.cfg.min_margin_ns);
        self.render_estimate_ns = self
            .render_estimate_ns
            .min(period_ns.saturating_sub(self.margin_ns));
        self.last_target = None;
        self.in_flight.clear();
    }

    /// A flip completed. Updates the vblank anchor and the margin; returns how the frame
    /// fared. Feedback for a frame the pacer does not know (already dropped, or from
    /// before a period change) still moves the anchor and returns `None`.
    pub fn on_flip(&mut self, fb: FlipFeedback) -> Option<FlipOutcome> {
        if fb.sequence >= self.anchor.0 {
            self.anchor = (fb.sequence, fb.vblank_ns);
        }
        let pos = self
            .in_flight
            .iter()
            .position(|(id, _)| *id == fb.frame_id)?;
        let (_, target) = self.in_flight.remove(pos);
        // Frames planned before this one can no longer flip.
        self.in_flight.retain(|(id, _)| *id > fb.frame_id);
        let missed = fb.sequence.saturating_sub(target);
        let period = self.cfg.period_ns;
        if missed > 0 {
            self.misses += 1;
            // How late were we? Commit or fence after (target vblank − margin).
            let target_ns = self.vblank_time(target);
            let late_by = fb
                .commit_ns
                .max(fb.render_done_ns.unwrap_or(0))
                .saturating_sub(target_ns.saturating_sub(self.margin_ns));
            // Grow by what this frame lacked (at least a step): a one-off stall costs
            // little latency, a systematic shortfall is covered after one miss.
            let step = late_by.min(period / 4).max(MARGIN_MISS_STEP_NS);
            self.margin_ns = (self.margin_ns + step).min(period / 2);
        } else {
            self.hits += 1;
            let excess = self.margin_ns - self.cfg.min_margin_ns.min(self.margin_ns);
            self.margin_ns -= excess >> MARGIN_DECAY_SHIFT;
        }
        Some(FlipOutcome {
            frame_id: fb.frame_id,
            target_sequence: target,
            actual_sequence: fb.sequence,
            missed_vblanks: missed,
            commit_to_vblank_ns: fb.vblank_ns.saturating_sub(fb.commit_ns),
            margin_ns: self.margin_ns,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const P90: u64 = 11_111_111;

    /// A simulated display: vblank k at `k * period`; a commit latches at the first vblank
    /// at least `latch_ns` after both the commit and the render fence.
    struct SimDisplay {
        period_ns: u64,
        latch_ns: u64,
    }

    impl SimDisplay {
        fn flip_at(&self, commit_ns: u64, fence_ns: u64) -> (u64, u64) {
            let ready = commit_ns.max(fence_ns) + self.latch_ns;
            let seq = ready.div_ceil(self.period_ns);
            (seq, seq * self.period_ns)
        }
    }

    /// Drives `frames` frames through pacer + sim with render times from `render(i)`.
    /// The presenter commits at the deadline or when the render is done, whichever is
    /// later, retargeting when the deadline has already passed. Returns outcomes.
    fn simulate(
        pacer: &mut Pacer,
        sim: &SimDisplay,
        frames: usize,
        render: impl Fn(usize) -> u64,
    ) -> Vec<FlipOutcome> {
        let mut now = 0;
        let mut out = Vec::new();
        for i in 0..frames {
            let plan = pacer.plan(now);
            assert!(plan.wake_ns >= now, "never plans a wake in the past");
            assert!(plan.wake_ns <= plan.commit_deadline_ns);
            assert!(plan.commit_deadline_ns < plan.target_vblank_ns);
            let done = plan.wake_ns + render(i);
            pacer.on_render_time(done - plan.wake_ns);
            let plan = if done > plan.commit_deadline_ns {
                pacer.retarget(&plan, done)
            } else {
                plan
            };
            let commit = plan.commit_deadline_ns.max(done);
            let (seq, vblank) = sim.flip_at(commit, done);
            let o = pacer
                .on_flip(FlipFeedback {
                    frame_id: plan.frame_id,
                    sequence: seq,
                    vblank_ns: vblank,
                    commit_ns: commit,
                    render_done_ns: Some(done),
                })
                .expect("known frame");
            out.push(o);
            now = vblank;
        }
        out
    }

    fn hit_rate(o: &[FlipOutcome]) -> f64 {
        o.iter().filter(|o| o.missed_vblanks == 0).count() as f64 / o.len() as f64
    }

    fn pacer90() -> Pacer {
        Pacer::new(PacerConfig::for_period(P90), 0, 0)
    }

    #[test]
    fn steady_state_hits_every_vblank_and_commits_late() {
        let mut p = pacer90();
        let sim = SimDisplay {
            period_ns: P90,
            latch_ns: 300_000,
        };
        // 6000 frames: about a minute at 90 Hz, ~3 decay time constants.
        let o = simulate(&mut p, &sim, 6000, |_| 3_000_000);
        assert_eq!(hit_rate(&o), 1.0);
        // Consecutive frames target consecutive vblanks: full rate.
        for w in o.windows(2) {
            assert_eq!(w[1].actual_sequence, w[0].actual_sequence + 1);
        }
        // The margin decays toward the minimum: commits end up close to vblank.
        let last = o.last().unwrap();
        assert!(last.margin_ns < 700_000, "margin {} ns", last.margin_ns);
        assert!(
            last.commit_to_vblank_ns < 700_000,
            "{} ns",
            last.commit_to_vblank_ns
        );
    }

    #[test]
    fn jittered_renders_keep_a_high_hit_rate() {
        let mut p = pacer90();
        let sim = SimDisplay {
            period_ns: P90,
            latch_ns: 300_000,
        };
        // 3 ms ± 1 ms, deterministic pseudo-random.
        let jitter = |i: usize| {
            let x = (i as u64)
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407)
                >> 33;
            2_000_000 + x % 2_000_000
        };
        let o = simulate(&mut p, &sim, 5000, jitter);
        assert!(hit_rate(&o) >= 0.99, "hit rate {}", hit_rate(&o));
        // The render estimate has learned the worst case (≥ 4 ms incl. headroom).
        assert!(p.render_estimate_ns() >= 3_900_000);
    }

    #[test]
    fn a_slow_frame_misses_once_and_the_pacer_recovers() {
        let mut p = pacer90();
        let sim = SimDisplay {
            period_ns: P90,
            latch_ns: 300_000,
        };
        let o = simulate(&mut p, &sim, 600, |i| {
            if i == 300 { 15_000_000 } else { 3_000_000 }
        });
        let misses: Vec<usize> = o
            .iter()
            .enumerate()
            .filter(|(_, o)| o.missed_vblanks > 0)
            .map(|(i, _)| i)
            .collect();
        assert!(misses.len() <= 1, "misses at {misses:?}");
        // The slow frame is retargeted rather than blocking, and later frames hit.
        assert!(o[310..].iter().all(|o| o.missed_vblanks == 0));
        // The slow frame did not poison the estimate beyond one period.
        assert!(p.render_estimate_ns() < P90);
    }

    #[test]
    fn a_late_latch_grows_the_margin_then_it_decays() {
        let mut p = pacer90();
        // The display needs 3 ms between commit and vblank: more than the starting margin.
        let sim = SimDisplay {
            period_ns: P90,
            latch_ns: 3_000_000,
        };
        let o = simulate(&mut p, &sim, 3000, |_| 2_000_000);
        let early_misses = o[..20].iter().filter(|o| o.missed_vblanks > 0).count();
        assert!(
            early_misses >= 1,
            "the first frames miss with a 2 ms margin"
        );
        assert!(
            o[..50].iter().any(|o| o.margin_ns >= 3_000_000),
            "margin grows past the latch time"
        );
        assert!(hit_rate(&o[100..]) >= 0.99, "{}", hit_rate(&o[100..]));
        // Decay probes back toward the minimum; each probe that goes too far costs one miss.
        let misses = o.iter().filter(|o| o.missed_vblanks > 0).count();
        assert!(misses < 30, "{misses} misses");
    }

    #[test]
    fn refresh_rate_change_replans_at_the_new_period() {
        let mut p = pacer90();
        let sim = SimDisplay {
            period_ns: P90,
            latch_ns: 300_000,
        };
        let o = simulate(&mut p, &sim, 100, |_| 3_000_000);
        let last = o.last().unwrap();
        let p120 = 8_333_333;
        p.set_period(p120, last.actual_sequence, last.actual_sequence * P90);
        let base = last.actual_sequence * P90;
        let mut prev = None;
        for _ in 0..10 {
            let plan = p.plan(base);
            if let Some(prev) = prev {
                assert_eq!(
                    plan.target_vblank_ns - prev,
                    p120,
                    "plans spaced by the new period"
                );
            }
            prev = Some(plan.target_vblank_ns);
        }
    }

    #[test]
    fn a_stalled_fence_moves_the_frame_and_never_blocks_planning() {
        let mut p = pacer90();
        let plan = p.plan(0);
        // The fence has not signalled a full 100 ms later: the frame is retargeted to a
        // vblank after now, and the next plan does not wait for it.
        let now = 100_000_000;
        p.on_render_time(now - plan.wake_ns);
        let moved = p.retarget(&plan, now);
        assert_eq!(moved.frame_id, plan.frame_id);
        assert!(moved.commit_deadline_ns >= now);
        assert!(moved.target_sequence > plan.target_sequence);
        let next = p.plan(now);
        assert!(next.target_sequence > moved.target_sequence);
        assert!(next.wake_ns >= now);
        // When it finally flips, the miss is reported against the original target.
        let o = p
            .on_flip(FlipFeedback {
                frame_id: plan.frame_id,
                sequence: moved.target_sequence,
                vblank_ns: moved.target_vblank_ns,
                commit_ns: now,
                render_done_ns: Some(now),
            })
            .unwrap();
        assert!(
            o.missed_vblanks == 0,
            "measured against the retargeted vblank"
        );
        assert!(
            p.render_estimate_ns() < P90,
            "a stall is capped, not learned"
        );
    }

    #[test]
    fn sequence_gaps_are_reported_as_missed_vblanks() {
        let mut p = pacer90();
        let plan = p.plan(0);
        let o = p
            .on_flip(FlipFeedback {
                frame_id: plan.frame_id,
                sequence: plan.target_sequence + 2,
                vblank_ns: plan.target_vblank_ns + 2 * P90,
                commit_ns: plan.commit_deadline_ns,
                render_done_ns: None,
            })
            .unwrap();
        assert_eq!(o.missed_vblanks, 2);
        assert_eq!(p.stats(), (0, 1));
        assert!(o.margin_ns > PacerConfig::for_period(P90).initial_margin_ns);
        // Unknown frames move the anchor but report nothing.
        assert!(
            p.on_flip(FlipFeedback {
                frame_id: 999,
                sequence: 10,
                vblank_ns: 10 * P90,
                commit_ns: 0,
                render_done_ns: None
            })
            .is_none()
        );
        assert_eq!(p.vblank_time(11), 11 * P90);
    }

    #[test]
    fn predicted_display_time_adds_scanout_to_photon() {
        let mut cfg = PacerConfig::for_period(P90);
        cfg.scanout_to_photon_ns = 4_000_000;
        let mut p = Pacer::new(cfg, 5, 1_000_000_000);
        let plan = p.plan(1_000_000_000);
        assert_eq!(plan.predicted_display_ns, plan.target_vblank_ns + 4_000_000);
        assert_eq!(plan.target_vblank_ns, p.vblank_time(plan.target_sequence));
    }
}
