//! What the frame-timing benchmark measures with, and its baseline.
//!
//! - Leasehold's presenter is the runtime's frame loop ([`crate::frame_loop`]): the pacer
//!   decides per frame when to wake and when to commit; the commit carries the render's
//!   fence and lands as close to vblank as the measured margins allow.
//! - [`fifo`]: the baseline, what a Vulkan FIFO display swapchain does — render as soon
//!   as an image is free, commit as soon as the frame is ready, queue behind a pending
//!   flip. Low risk of misses, but frames wait in the queue.
//!
//! Both drive the same output with the same synthetic render work ([`SyntheticGpu`]: a
//! vgem fence signalled from a "GPU" thread after a configurable render time), so the
//! kernel's fence gating is real even without a GPU. Every frame's timeline is recorded
//! as a [`FrameRecord`].

use crate::kms::fence::{VgemFence, wait_sync_file};
use crate::kms::scanout::RingError;
use crate::kms::{FlipEvent, KmsError, Output, ScanoutRing, Vgem};
use std::collections::VecDeque;
use std::os::fd::{AsFd, OwnedFd};
use std::sync::mpsc;
use std::time::Duration;

/// CLOCK_MONOTONIC now, ns (the clock of flip-event timestamps).
pub fn now_ns() -> u64 {
    let t = rustix::time::clock_gettime(rustix::time::ClockId::Monotonic);
    t.tv_sec as u64 * 1_000_000_000 + t.tv_nsec as u64
}

/// Sleeps until an absolute CLOCK_MONOTONIC time (returns at once if it has passed).
pub fn sleep_until(t_ns: u64) {
    let ts = rustix::time::Timespec {
        tv_sec: (t_ns / 1_000_000_000) as _,
        tv_nsec: (t_ns % 1_000_000_000) as _,
    };
    while let Err(rustix::io::Errno::INTR) =
        rustix::thread::clock_nanosleep_absolute(rustix::thread::ClockId::Monotonic, &ts)
    {}
}

/// How long each synthetic render takes.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum RenderModel {
    Fixed {
        ns: u64,
    },
    /// Uniform in `ns ± jitter_ns`.
    Jittered {
        ns: u64,
        jitter_ns: u64,
    },
    /// `ns`, except every `every`-th frame takes `spike_ns`.
    Spikes {
        ns: u64,
        every: u64,
        spike_ns: u64,
    },
}

impl RenderModel {
    /// Deterministic: frame `i` always takes the same time for a given model.
    pub fn duration_ns(&self, i: u64) -> u64 {
        match *self {
            RenderModel::Fixed { ns } => ns,
            RenderModel::Jittered { ns, jitter_ns } => {
                let x = i
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407)
                    >> 33;
                let span = 2 * jitter_ns + 1;
                (ns + x % span).saturating_sub(jitter_ns)
            }
            RenderModel::Spikes {
                ns,
                every,
                spike_ns,
            } => {
                if every > 0 && i % every == every - 1 {
                    spike_ns
                } else {
                    ns
                }
            }
        }
    }
}

/// One frame's timeline (CLOCK_MONOTONIC ns).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameRecord {
    pub frame: u64,
    /// The vblank aimed at (late commit: the pacer's target; FIFO: the first vblank
    /// after the commit that has no earlier queued frame).
    pub target_sequence: u64,
    pub target_vblank_ns: u64,
    pub wake_ns: u64,
    pub commit_ns: u64,
    pub fence_signal_ns: u64,
    pub flip_sequence: u64,
    pub flip_ns: u64,
    /// The pacer's commit-to-vblank margin in force (0 for FIFO).
    pub margin_ns: u64,
    /// Flipped at its (final) target vblank.
    pub hit: bool,
    /// Moved to a later vblank before its commit (late wake-up, or the previous frame
    /// still occupying its vblank): on screen later than first planned.
    pub retargeted: bool,
}

impl FrameRecord {
    pub fn wake_to_scanout_ns(&self) -> u64 {
        self.flip_ns.saturating_sub(self.wake_ns)
    }

    pub fn commit_to_vblank_ns(&self) -> u64 {
        self.flip_ns.saturating_sub(self.commit_ns)
    }

    pub const CSV_HEADER: &'static str = "frame,target_sequence,target_vblank_ns,flip_sequence,flip_ns,wake_ns,commit_ns,fence_signal_ns,margin_ns,wake_to_scanout_ns,commit_to_vblank_ns,hit,retargeted";

    pub fn csv_row(&self) -> String {
        format!(
            "{},{},{},{},{},{},{},{},{},{},{},{},{}",
            self.frame,
            self.target_sequence,
            self.target_vblank_ns,
            self.flip_sequence,
            self.flip_ns,
            self.wake_ns,
            self.commit_ns,
            self.fence_signal_ns,
            self.margin_ns,
            self.wake_to_scanout_ns(),
            self.commit_to_vblank_ns(),
            u8::from(self.hit),
            u8::from(self.retargeted)
        )
    }
}

/// Medians and tails of a run.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Summary {
    pub frames: usize,
    pub hit_rate: f64,
    pub misses: usize,
    pub retargeted: usize,
    pub wake_to_scanout_median_ns: u64,
    pub wake_to_scanout_p99_ns: u64,
    pub commit_to_vblank_median_ns: u64,
    pub commit_to_vblank_p99_ns: u64,
}

fn percentile(sorted: &[u64], p: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    let idx = ((sorted.len() - 1) as f64 * p).round() as usize;
    sorted[idx.min(sorted.len() - 1)]
}

impl Summary {
    pub fn of(records: &[FrameRecord]) -> Self {
        let mut w: Vec<u64> = records
            .iter()
            .map(FrameRecord::wake_to_scanout_ns)
            .collect();
        let mut c: Vec<u64> = records
            .iter()
            .map(FrameRecord::commit_to_vblank_ns)
            .collect();
        w.sort_unstable();
        c.sort_unstable();
        let hits = records.iter().filter(|r| r.hit).count();
        Self {
            frames: records.len(),
            hit_rate: if records.is_empty() {
                0.0
            } else {
                hits as f64 / records.len() as f64
            },
            misses: records.len() - hits,
            retargeted: records.iter().filter(|r| r.retargeted).count(),
            wake_to_scanout_median_ns: percentile(&w, 0.5),
            wake_to_scanout_p99_ns: percentile(&w, 0.99),
            commit_to_vblank_median_ns: percentile(&c, 0.5),
            commit_to_vblank_p99_ns: percentile(&c, 0.99),
        }
    }
}

/// Asks for real-time scheduling for the calling thread. Without the privilege
/// (CAP_SYS_NICE or an rtprio limit) it stays at normal priority and says so once.
pub fn request_realtime_priority() -> bool {
    match leasehold_drivers::threads::request_sched_fifo(50) {
        Ok(()) => {
            tracing::info!("presenter thread runs SCHED_FIFO");
            true
        }
        Err(e) => {
            static ONCE: std::sync::Once = std::sync::Once::new();
            ONCE.call_once(|| {
                tracing::warn!(error = ?e, "no real-time priority for the presenter (needs CAP_SYS_NICE or an rtprio limit); running at normal priority");
            });
            false
        }
    }
}

/// The synthetic GPU: a thread that "renders" for a given time and then signals the
/// frame's vgem fence, like a GPU completing asynchronously.
#[derive(Debug)]
pub struct SyntheticGpu {
    jobs: mpsc::Sender<(u64, u64)>,
    fences: mpsc::Receiver<Result<OwnedFd, KmsError>>,
    done: mpsc::Receiver<(u64, u64)>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl SyntheticGpu {
    pub fn start() -> Result<Self, KmsError> {
        let vgem = Vgem::open()?;
        let (jobs, job_rx) = mpsc::channel::<(u64, u64)>();
        let (fence_tx, fences) = mpsc::channel();
        let (done_tx, done) = mpsc::channel();
        let thread = std::thread::Builder::new()
            .name("synthetic-gpu".into())
            .spawn(move || {
                // It stands in for a GPU, which the CPU scheduler does not preempt.
                request_realtime_priority();
                for (frame, render_ns) in job_rx {
                    let start = now_ns();
                    let mut fence: VgemFence<'_> = match vgem.fence() {
                        Ok(f) => f,
                        Err(e) => {
                            let _ = fence_tx.send(Err(e));
                            continue;
                        }
                    };
                    let dup = fence
                        .sync_file()
                        .try_clone_to_owned()
                        .map_err(|e| KmsError::Ioctl {
                            op: "dup sync_file",
                            source: e,
                        });
                    let _ = fence_tx.send(dup);
                    sleep_until(start + render_ns);
                    let signalled = now_ns();
                    if let Err(e) = fence.signal() {
                        tracing::warn!(error = %e, "synthetic GPU could not signal its fence");
                    }
                    let _ = done_tx.send((frame, signalled));
                }
            })
            .map_err(|e| KmsError::Ioctl {
                op: "spawn synthetic GPU thread",
                source: e,
            })?;
        Ok(Self {
            jobs,
            fences,
            done,
            thread: Some(thread),
        })
    }

    /// Starts a render; returns its fence as a sync_file.
    pub fn render(&self, frame: u64, render_ns: u64) -> Result<OwnedFd, KmsError> {
        let lost = || KmsError::Ioctl {
            op: "synthetic GPU",
            source: std::io::Error::other("GPU thread exited"),
        };
        self.jobs.send((frame, render_ns)).map_err(|_| lost())?;
        self.fences.recv().map_err(|_| lost())?
    }

    /// Waits for a render's completion time (renders complete in order: ask for each).
    pub fn completed(&self, frame: u64) -> Result<u64, KmsError> {
        loop {
            let (f, t) = self
                .done
                .recv_timeout(Duration::from_secs(20))
                .map_err(|_| KmsError::Ioctl {
                    op: "synthetic GPU",
                    source: std::io::Error::other("render never completed"),
                })?;
            if f == frame {
                return Ok(t);
            }
        }
    }
}

impl Drop for SyntheticGpu {
    fn drop(&mut self) {
        let (tx, _) = mpsc::channel();
        drop(std::mem::replace(&mut self.jobs, tx));
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Waits for exactly the next flip event on the output's card.
fn next_flip(output: &Output<'_>, timeout: Duration) -> Result<FlipEvent, KmsError> {
    loop {
        let events = output.card().wait_flip_events(timeout)?;
        if let Some(e) = events.into_iter().find(|e| e.crtc == output.crtc) {
            return Ok(e);
        }
    }
}

/// Runs `frames` frames of the FIFO baseline with `images` swapchain images (2 or more,
/// at most the ring's) on a lit output (after its modeset), rendering into buffers from
/// `ring` (at least 3: one on screen, one pending, one being rendered).
pub fn fifo(
    output: &Output<'_>,
    ring: &mut ScanoutRing<'_>,
    period_ns: u64,
    images: usize,
    render: RenderModel,
    frames: u64,
) -> Result<Run, KmsError> {
    assert!(ring.len() >= 3, "a scanout ring needs at least 3 buffers");
    let images = images.clamp(2, ring.len());
    let gpu = SyntheticGpu::start()?;
    let mut records = Vec::with_capacity(frames as usize);
    let result = (|| {
        // Anchor: one unfenced flip tells us where vblanks are.
        let slot = ring.acquire().ok_or(RingError::Exhausted)?;
        output.flip(ring.buffer(slot).fb)?;
        ring.queue(slot)?;
        let anchor = next_flip(output, Duration::from_secs(2))?;
        ring.flipped(slot)?;
        fifo_frames(
            output,
            &mut *ring,
            &gpu,
            anchor,
            period_ns,
            images,
            render,
            frames,
            &mut records,
        )
    })();
    match result {
        Ok(()) => Ok(Run {
            records,
            stop: Stop::Completed,
        }),
        // A revoked lease (or a lessor gone) shows as ENOENT on the leased objects, or as
        // a flip that never completes on a CRTC we no longer hold.
        Err(e) if e.is_lease_lost() || !output.lease_alive() => {
            tracing::warn!(frames = records.len(), error = %e, "lease lost: presenter stopped");
            Ok(Run {
                records,
                stop: Stop::LeaseLost,
            })
        }
        Err(e) => Err(e),
    }
}

/// Why a presenter run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stop {
    Completed,
    /// The lease was revoked or its lessor went away: the output is gone, the process
    /// is not.
    LeaseLost,
}

/// The frames a presenter showed and why it stopped.
#[derive(Debug, Clone)]
pub struct Run {
    pub records: Vec<FrameRecord>,
    pub stop: Stop,
}

#[allow(clippy::too_many_arguments)]
fn fifo_frames(
    output: &Output<'_>,
    ring: &mut ScanoutRing<'_>,
    gpu: &SyntheticGpu,
    anchor: FlipEvent,
    period_ns: u64,
    images: usize,
    render: RenderModel,
    frames: u64,
    out: &mut Vec<FrameRecord>,
) -> Result<(), KmsError> {
    struct Queued {
        frame: u64,
        wake: u64,
        commit: u64,
        signalled: u64,
        fence: Option<OwnedFd>,
        slot: usize,
    }
    // Frames rendered or rendering, oldest first; at most `images - 1` are off screen.
    let mut queue: VecDeque<Queued> = VecDeque::new();
    let mut pending: Option<Queued> = None;
    let mut last_seq = u64::from(anchor.sequence);
    let mut last_ns = anchor.timestamp_ns;
    let mut next = 0u64;
    while (out.len() as u64) < frames {
        // The app renders as soon as an image is free (FIFO acquire), back to back.
        while next < frames && queue.len() + usize::from(pending.is_some()) < images - 1 {
            let Some(slot) = ring.acquire() else { break };
            let wake = now_ns();
            let fence = gpu.render(next, render.duration_ns(next))?;
            let signalled = gpu.completed(next)?;
            queue.push_back(Queued {
                frame: next,
                wake,
                commit: 0,
                signalled,
                fence: Some(fence),
                slot,
            });
            next += 1;
        }
        // Present: commit the oldest ready frame as soon as no flip is pending.
        if pending.is_none()
            && let Some(mut q) = queue.pop_front()
        {
            let fb = ring.buffer(q.slot).fb;
            let fence = q.fence.take().expect("queued frames carry their fence");
            let _ = wait_sync_file(fence.as_fd(), Duration::ZERO);
            q.commit = now_ns();
            if let Err(e) = output.flip_fenced(fb, Some(fence.as_fd()), false) {
                ring.cancel(q.slot)?;
                return Err(e);
            }
            ring.queue(q.slot)?;
            pending = Some(q);
        }
        let ev = next_flip(output, Duration::from_secs(2))?;
        let q = pending.take().expect("a flip event follows a commit");
        ring.flipped(q.slot)?;
        // FIFO aims at the first vblank after the commit.
        let target_seq = last_seq + ((q.commit.max(last_ns) - last_ns) / period_ns) + 1;
        let ev_seq = u64::from(ev.sequence);
        out.push(FrameRecord {
            frame: q.frame,
            target_sequence: target_seq,
            target_vblank_ns: last_ns + (target_seq - last_seq) * period_ns,
            wake_ns: q.wake,
            commit_ns: q.commit,
            fence_signal_ns: q.signalled,
            flip_sequence: ev_seq,
            flip_ns: ev.timestamp_ns,
            margin_ns: 0,
            hit: ev_seq <= target_seq,
            retargeted: false,
        });
        last_seq = ev_seq;
        last_ns = ev.timestamp_ns;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn render_models_are_deterministic_and_bounded() {
        let j = RenderModel::Jittered {
            ns: 3_000_000,
            jitter_ns: 1_000_000,
        };
        for i in 0..10_000 {
            let d = j.duration_ns(i);
            assert!((2_000_000..=4_000_000).contains(&d), "{d}");
            assert_eq!(d, j.duration_ns(i));
        }
        let s = RenderModel::Spikes {
            ns: 3,
            every: 100,
            spike_ns: 20,
        };
        assert_eq!((0..1000).filter(|&i| s.duration_ns(i) == 20).count(), 10);
        assert_eq!(RenderModel::Fixed { ns: 7 }.duration_ns(5), 7);
    }

    #[test]
    fn summary_medians_tails_and_hits() {
        let rec = |i: u64, wake: u64, commit: u64, flip: u64, hit: bool| FrameRecord {
            frame: i,
            target_sequence: i,
            target_vblank_ns: flip,
            wake_ns: wake,
            commit_ns: commit,
            fence_signal_ns: commit,
            flip_sequence: i,
            flip_ns: flip,
            margin_ns: 0,
            hit,
            retargeted: false,
        };
        let rs: Vec<_> = (0..100)
            .map(|i| rec(i, 0, 90 + i % 10, 100 + i, i != 7))
            .collect();
        let s = Summary::of(&rs);
        assert_eq!(s.frames, 100);
        assert_eq!(s.misses, 1);
        assert!((s.hit_rate - 0.99).abs() < 1e-9);
        assert_eq!(s.wake_to_scanout_median_ns, 150);
        assert_eq!(s.wake_to_scanout_p99_ns, 198);
        assert_eq!(
            rs[3].csv_row().split(',').count(),
            FrameRecord::CSV_HEADER.split(',').count()
        );
    }
}
