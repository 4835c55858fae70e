//! Fence-gated flips on the real kernel: a vgem fence as the plane's IN_FENCE_FD.

use crate::common::{headset_card, light_up, now_ns, period_ns, sleep_until};
use leasehold_compositor::kms::fence::wait_sync_file;
use leasehold_compositor::kms::{FenceGate, FlipEvent, KmsError, Lease, Vgem};
use leasehold_compositor::pacing::{FlipFeedback, Pacer, PacerConfig};
use leasehold_tests::init_tracing;
use std::os::fd::AsFd;
use std::time::Duration;

fn one_event(card: &leasehold_compositor::kms::Card, timeout: Duration) -> FlipEvent {
    let ev = card.wait_flip_events(timeout).expect("flip event");
    assert_eq!(ev.len(), 1, "one flip event per flip: {ev:?}");
    ev[0]
}

#[test]
fn a_flip_never_completes_before_its_fence() {
    init_tracing();
    let (card, headset, _) = headset_card();
    let lease = Lease::create(card, &headset).expect("lease");
    let lessee = lease.card();
    let (out, fbs, mode) = light_up(&lease, &headset, [0x000040, 0x400000]);
    let period = period_ns(&mode);
    assert!(
        out.supports_in_fence(),
        "virtio-gpu's primary plane has IN_FENCE_FD"
    );
    out.flip(fbs[1].fb).expect("flip");
    let first = one_event(lessee, Duration::from_secs(2));

    let vgem = Vgem::open().expect("vgem");
    let mut fence = vgem.fence().expect("vgem fence");
    let released = out
        .flip_fenced(fbs[0].fb, Some(fence.sync_file()), true)
        .expect("fenced flip")
        .expect("out-fence requested");
    // Four vblanks pass with the fence unsignalled: no flip, and the previous frame
    // stays on screen (its out-fence has not signalled).
    match lessee.wait_flip_events(Duration::from_nanos(4 * period)) {
        Err(KmsError::FlipTimeout { .. }) => {}
        other => panic!("a flip completed before its fence signalled: {other:?}"),
    }
    assert!(
        !wait_sync_file(released.as_fd(), Duration::ZERO).unwrap(),
        "out-fence before the flip"
    );
    // A second flip while this one is pending is refused (EBUSY), not queued.
    let busy = out
        .flip(fbs[1].fb)
        .expect_err("second flip while one is pending");
    assert_eq!(busy.errno(), Some(16), "EBUSY: {busy}");

    let signalled_at = now_ns();
    fence.signal().expect("signal");
    let ev = one_event(lessee, Duration::from_secs(2));
    // The lab's vblank timer stamps events with the tick's scheduled time, not the time
    // its handler ran; under TCG a late-running tick can stamp a flip it processed after
    // the signal with a time just before it. So: the flip lands on the vblank whose
    // period contains the signal, or a later one (never an earlier period).
    assert!(
        ev.timestamp_ns + period > signalled_at,
        "flip at {} ns, a whole period before the fence signalled at {signalled_at} ns",
        ev.timestamp_ns
    );
    assert!(
        ev.sequence >= first.sequence + 4,
        "{} vs {}",
        ev.sequence,
        first.sequence
    );
    assert!(
        wait_sync_file(released.as_fd(), Duration::from_millis(100)).unwrap(),
        "out-fence signals at the flip"
    );
    tracing::info!(
        held_vblanks = ev.sequence - first.sequence,
        signal_to_flip_us = (ev.timestamp_ns.saturating_sub(signalled_at)) / 1000,
        "fence gating"
    );
}

#[test]
fn a_late_fence_moves_the_frame_and_the_pacer_reports_the_miss() {
    init_tracing();
    let (card, headset, _) = headset_card();
    let lease = Lease::create(card, &headset).expect("lease");
    let lessee = lease.card();
    let (out, fbs, mode) = light_up(&lease, &headset, [0x004000, 0x404000]);
    let period = period_ns(&mode);
    out.flip(fbs[1].fb).expect("flip");
    let anchor = one_event(lessee, Duration::from_secs(2));
    let vgem = Vgem::open().expect("vgem");

    // Generous margins: TCG adds up to ~1 ms of wake-up and latch latency.
    let mut cfg = PacerConfig::for_period(period);
    cfg.initial_margin_ns = period / 2;
    cfg.min_margin_ns = period / 2;
    cfg.initial_render_ns = 1_000_000;
    let mut pacer = Pacer::new(cfg, u64::from(anchor.sequence), anchor.timestamp_ns);

    let run = |pacer: &mut Pacer, signal_late: bool, fb| {
        let plan = pacer.plan(now_ns());
        sleep_until(plan.commit_deadline_ns);
        let mut fence = vgem.fence().expect("fence");
        let commit_ns = now_ns();
        out.flip_fenced(fb, Some(fence.sync_file()), false)
            .expect("fenced flip");
        if signal_late {
            // Past the target vblank: the frame can only flip one vblank later.
            sleep_until(plan.target_vblank_ns + 1_000_000);
        }
        let done = now_ns();
        fence.signal().expect("signal");
        let ev = one_event(lessee, Duration::from_secs(2));
        let outcome = pacer
            .on_flip(FlipFeedback {
                frame_id: plan.frame_id,
                sequence: u64::from(ev.sequence),
                vblank_ns: ev.timestamp_ns,
                commit_ns,
                render_done_ns: Some(done),
            })
            .expect("known frame");
        (plan, ev, outcome)
    };

    // TCG stalls the whole VM now and then (LAB.md), so a single frame can slip for no
    // fault of ours: try the on-time/late pair a few times and require one clean pair.
    // Broken fence gating or miss detection fails every attempt.
    let mut failures = Vec::new();
    for attempt in 1..=3 {
        let (plan, ev, on_time) = run(&mut pacer, false, fbs[0].fb);
        if on_time.missed_vblanks != 0 || ev.timestamp_ns.abs_diff(plan.target_vblank_ns) >= 500_000
        {
            failures.push(format!(
                "attempt {attempt}: on-time frame slipped: {plan:?} vs {ev:?}"
            ));
            continue;
        }
        let (hits, misses) = pacer.stats();
        let margin_before = pacer.margin_ns();
        let (plan, ev, late) = run(&mut pacer, true, fbs[1].fb);
        if late.missed_vblanks != 1 || u64::from(ev.sequence) != plan.target_sequence + 1 {
            failures.push(format!(
                "attempt {attempt}: late frame: {late:?}, {plan:?} vs {ev:?}"
            ));
            continue;
        }
        assert!(
            pacer.margin_ns() >= margin_before,
            "a miss never shrinks the margin"
        );
        assert_eq!(
            pacer.stats(),
            (hits, misses + 1),
            "the miss is counted once"
        );
        tracing::info!(attempt, ?failures, "late fence moved the frame one vblank");
        return;
    }
    panic!(
        "no clean on-time/late pair in 3 attempts:\n{}",
        failures.join("\n")
    );
}

#[test]
fn the_cpu_wait_fallback_never_flips_before_the_fence() {
    init_tracing();
    let (card, headset, _) = headset_card();
    let lease = Lease::create(card, &headset).expect("lease");
    let lessee = lease.card();
    let (out, fbs, mode) = light_up(&lease, &headset, [0x101010, 0x202020]);
    assert_eq!(
        out.fence_gate(),
        FenceGate::InFence,
        "virtio-gpu takes IN_FENCE_FD"
    );
    // As if the driver had refused IN_FENCE_FD.
    out.use_cpu_fence_wait();
    let vgem = Vgem::open().expect("vgem");
    let mut fence = vgem.fence().expect("fence");
    let sync = fence
        .sync_file()
        .try_clone_to_owned()
        .expect("dup sync_file");
    let signal_at = now_ns() + 30_000_000;
    std::thread::scope(|s| {
        s.spawn(|| {
            sleep_until(signal_at);
            fence.signal().expect("signal");
        });
        out.flip_gated(fbs[1].fb, sync.as_fd(), Duration::from_secs(2))
            .expect("gated flip");
        assert!(
            now_ns() >= signal_at,
            "the CPU wait returned before the fence signalled"
        );
    });
    let ev = one_event(lessee, Duration::from_secs(2));
    // As above: the timer-stamped vblank may be the tick just before the signal, never
    // an earlier period.
    assert!(
        ev.timestamp_ns + period_ns(&mode) > signal_at,
        "flip at {} ns, a whole period before the fence at {signal_at} ns",
        ev.timestamp_ns
    );

    // A fence that never signals: a clear timeout, and nothing is committed.
    let stuck = vgem.fence().expect("fence");
    let err = out
        .flip_gated(fbs[0].fb, stuck.sync_file(), Duration::from_millis(50))
        .expect_err("stalled render");
    assert!(matches!(err, KmsError::FenceTimeout { ms: 50 }), "{err}");
    match lessee.wait_flip_events(Duration::from_millis(100)) {
        Err(KmsError::FlipTimeout { .. }) => {}
        other => panic!("nothing may flip after a fence timeout: {other:?}"),
    }
}
