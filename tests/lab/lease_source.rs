//! Lease sources on the real kernel: direct leasing and adopting a lease fd.

use crate::common::{headset_card, light_up};
use drm::control::Device as _;
use leasehold_compositor::kms::discovery::{DiscoveryError, HeadsetReason};
use leasehold_compositor::kms::{Card, DirectLease, FdLease, KmsError, LeaseSource, cards};
use leasehold_tests::init_tracing;
use std::os::fd::OwnedFd;
use std::time::Duration;

#[test]
fn direct_source_finds_and_leases_the_headset() {
    init_tracing();
    let (lease, headset) = DirectLease::default().acquire().expect("direct lease");
    let headset = headset.expect("direct leasing knows the output");
    assert_eq!(headset.reason, HeadsetReason::NonDesktop);
    assert!(headset.profile.is_some(), "the lab EDID matches a profile");
    assert_eq!(lease.connector, headset.connector.handle);
    assert_eq!(lease.card().crtcs().unwrap(), vec![lease.crtc]);
}

#[test]
fn a_lease_fd_from_elsewhere_is_adopted_and_drives_the_output() {
    init_tracing();
    let (card, headset, _) = headset_card();
    let crtc = headset.possible_crtcs[0];
    let plane = card.primary_plane(crtc).expect("primary plane");
    let (_, fd) = card
        .create_lease(
            &[headset.handle.into(), crtc.into(), plane.into()],
            rustix::fs::OFlags::CLOEXEC.bits(),
        )
        .expect("a lessor hands out a lease");
    let (lease, out) = FdLease::new(fd, "test-fd")
        .acquire()
        .expect("adopt lease fd");
    let out = out.expect("connector visible to the lessee");
    assert_eq!(out.connector.name, headset.name);
    let lessee = lease.card();
    let (o, fbs, _) = light_up(&lease, &out.connector, [0x101010, 0x808080]);
    o.flip(fbs[1].fb).expect("flip");
    assert_eq!(
        lessee
            .wait_flip_events(Duration::from_secs(2))
            .unwrap()
            .len(),
        1
    );
}

#[test]
fn fds_that_are_not_leases_are_refused_clearly() {
    init_tracing();
    let not_lease = |fd: OwnedFd, label: &str| match FdLease::new(fd, label).acquire() {
        Err(DiscoveryError::Kms(e @ KmsError::NotALease { .. })) => e.to_string(),
        Err(other) => panic!("{label}: wrong error: {other}"),
        Ok(_) => panic!("{label}: accepted as a lease"),
    };
    let null: OwnedFd = std::fs::File::open("/dev/null").unwrap().into();
    let e = not_lease(null, "/dev/null");
    assert!(e.contains("not a DRM device"), "{e}");

    let (card, _, _) = headset_card(); // master of the card
    let path = cards()
        .into_iter()
        .find(|p| {
            Card::open(p)
                .and_then(|c| c.driver())
                .is_ok_and(|d| d.name == "virtio_gpu")
        })
        .unwrap();
    let second: OwnedFd = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(&path)
        .unwrap()
        .into();
    let e = not_lease(second, "second open");
    assert!(e.contains("refused GET_LEASE"), "a non-master fd: {e}");
    drop(card);

    let master: OwnedFd = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(&path)
        .unwrap()
        .into();
    let e = not_lease(master, "master fd");
    assert!(e.contains("whole device"), "{e}");
}
