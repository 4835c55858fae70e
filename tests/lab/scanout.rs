//! Scanout buffers on the real kernel: the ring never hands out a buffer that is on
//! screen or queued, checked against the kernel's flip events and by content.

use crate::common::headset_card;
use leasehold_compositor::kms::scanout::Slot;
use leasehold_compositor::kms::{Lease, Output, ScanoutRing};
use leasehold_tests::init_tracing;
use std::time::Duration;

/// Stamps a frame number into the first 16 bytes of a buffer.
fn stamp(bytes: &mut [u8], frame: u64) {
    bytes[..8].copy_from_slice(&frame.to_le_bytes());
    bytes[8..16].copy_from_slice(&(!frame).to_le_bytes());
}

fn read_stamp(bytes: &[u8]) -> u64 {
    let a = u64::from_le_bytes(bytes[..8].try_into().unwrap());
    let b = u64::from_le_bytes(bytes[8..16].try_into().unwrap());
    assert_eq!(a, !b, "torn or foreign stamp");
    a
}

#[test]
fn no_buffer_is_written_while_it_is_scanned_out() {
    init_tracing();
    let (card, headset, _) = headset_card();
    let lease = Lease::create(card, &headset).expect("lease");
    let lessee = lease.card();
    let mode = headset.preferred_mode().expect("mode");
    let (w, h) = mode.size();
    let mut ring = ScanoutRing::new(lessee, (u32::from(w), u32::from(h)), 3).expect("scanout ring");
    tracing::info!(allocator = ?ring.allocator(), stride = ring.buffer(0).stride, "ring allocated");
    // Read-write dma-bufs: the CPU can map them for writing.
    let first = ring.acquire().unwrap();
    ring.buffer(first)
        .write_with(|b| stamp(b, 0))
        .expect("write through the dma-buf");
    let mut out = Output::new(lessee, lease.connector, lease.crtc, lease.plane).expect("output");
    ring.queue(first).unwrap();
    out.modeset(&mode, ring.buffer(first).fb).expect("modeset");
    ring.flipped(first).unwrap();

    // Independently of the ring: what the kernel says is on screen and pending.
    let mut on_screen = ring.buffer(first).fb;
    let mut pending: Option<(usize, u64)> = None;
    for frame in 1..=300u64 {
        let i = ring
            .acquire()
            .expect("a free buffer while one flip is pending");
        let fb = ring.buffer(i).fb;
        assert_ne!(
            fb, on_screen,
            "frame {frame}: handed out the buffer being scanned out"
        );
        assert_ne!(
            pending.map(|(p, _)| ring.buffer(p).fb),
            Some(fb),
            "frame {frame}: handed out the queued buffer"
        );
        // Render while the previous flip is still pending.
        ring.buffer(i)
            .write_with(|b| stamp(b, frame))
            .expect("write");
        // The on-screen buffer still holds its own frame: nothing wrote into it.
        let shown = ring.state().on_screen().expect("something on screen");
        let want = pending.map_or(frame - 1, |(_, f)| f - 1);
        assert_eq!(
            ring.buffer(shown).read_with(read_stamp).expect("read"),
            want,
            "on-screen content clobbered"
        );
        // Complete the pending flip, then queue this frame.
        if let Some((p, _)) = pending.take() {
            let ev = lessee
                .wait_flip_events(Duration::from_secs(2))
                .expect("flip event");
            assert_eq!(ev.len(), 1);
            ring.flipped(p).unwrap();
            on_screen = ring.buffer(p).fb;
        }
        out.flip(fb).expect("flip");
        ring.queue(i).unwrap();
        pending = Some((i, frame));
    }
    if let Some((p, _)) = pending {
        lessee
            .wait_flip_events(Duration::from_secs(2))
            .expect("last flip");
        ring.flipped(p).unwrap();
    }
    assert_eq!(
        ring.state().slot(ring.state().on_screen().unwrap()),
        Some(Slot::OnScreen)
    );
}
