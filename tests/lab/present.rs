//! The runtime's frame loop on the real kernel: lease loss while flipping.

use crate::common::{headset_card, light_up, period_ns};
use leasehold_compositor::frame_loop;
use leasehold_compositor::kms::{Lease, Output, ScanoutRing};
use leasehold_compositor::pacing::PacerConfig;
use leasehold_compositor::present::{RenderModel, Stop};
use leasehold_tests::init_tracing;
use std::time::Duration;

#[test]
fn revoking_the_lease_mid_run_stops_the_frame_loop_and_the_process_goes_on() {
    init_tracing();
    let (card, headset, _) = headset_card();
    let lease = Lease::create(card.clone(), &headset).expect("lease");
    let mode = headset.preferred_mode().expect("mode");
    let period = period_ns(&mode);
    let (lit_tx, lit) = std::sync::mpsc::channel();
    let lease_ref = &lease;
    let shown = std::sync::atomic::AtomicU64::new(0);
    let shown_ref = &shown;
    let run = std::thread::scope(|s| {
        let presenter = s.spawn(move || {
            let lease = lease_ref;
            let lessee = lease.card();
            let mut out =
                Output::new(lessee, lease.connector, lease.crtc, lease.plane).expect("output");
            let (w, h) = mode.size();
            let mut ring = ScanoutRing::new(lessee, (u32::from(w), u32::from(h)), 3).expect("ring");
            let first = ring.acquire().unwrap();
            ring.queue(first).unwrap();
            out.modeset(&mode, ring.buffer(first).fb).expect("modeset");
            ring.flipped(first).unwrap();
            lit_tx.send(()).expect("main thread waits");
            let render = RenderModel::Fixed { ns: 2_000_000 };
            frame_loop::run_on_output(
                lessee,
                out,
                ring,
                period,
                PacerConfig::for_period(period),
                render,
                100_000,
                Some(shown_ref),
            )
            .map(|(run, _, _)| run)
        });
        lit.recv_timeout(Duration::from_secs(60))
            .expect("the output lights up");
        // The loop brings up Vulkan and its compositor first (software rendering in the
        // lab VM: seconds, more on a loaded machine), then flips at the mode's rate:
        // revoke once it has been seen flipping, however long bring-up took.
        const FLIPPING: u64 = 30;
        let start = std::time::Instant::now();
        while shown.load(std::sync::atomic::Ordering::Acquire) < FLIPPING {
            assert!(
                !presenter.is_finished(),
                "the presenter stopped before flipping"
            );
            assert!(
                start.elapsed() < Duration::from_secs(300),
                "no {FLIPPING} frames shown in 300 s: {} so far",
                shown.load(std::sync::atomic::Ordering::Acquire)
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        tracing::info!(after = ?start.elapsed(), "flipping: revoking the lease");
        lease.revoke().expect("revoke while flipping");
        presenter
            .join()
            .expect("the presenter thread must not panic")
    });
    let run = run.expect("losing the lease is a stop reason, not an error");
    assert_eq!(run.stop, Stop::LeaseLost);
    assert!(
        run.records.len() >= 30,
        "it was flipping before the revoke: {} frames",
        run.records.len()
    );
    assert!(run.records.len() < 100_000);
    tracing::info!(
        frames = run.records.len(),
        "presenter stopped on lease loss"
    );

    // The process goes on: the headset can be leased and flipped again.
    drop(lease);
    let again = Lease::create(card, &headset).expect("lease again after loss");
    let lessee = again.card();
    let (out, fbs, _) = light_up(&again, &headset, [0x000000, 0xFFFFFF]);
    out.flip(fbs[1].fb).expect("flip after re-lease");
    assert_eq!(
        lessee
            .wait_flip_events(Duration::from_secs(2))
            .unwrap()
            .len(),
        1
    );
}
