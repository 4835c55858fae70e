//! Where the headset lease comes from. Every source yields the same [`Lease`].
//!
//! - [`DirectLease`]: we are DRM master of the card (a VT without a desktop, a headless
//!   box, the lab) and lease the headset's objects to ourselves.
//! - [`FdLease`]: a lessee fd handed in by the user (`--lease-fd N`), e.g. from a lessor
//!   process they run.
//!
//! Desktop sessions hold the master themselves and offer leases over their own
//! protocols (Wayland `wp_drm_lease_device_v1`, X11 RandR `CreateLease`); those sources
//! implement the same trait.

use super::discovery::{self, DiscoveryError, HeadsetOutput};
use super::{Card, KmsError, Lease};
use std::os::fd::OwnedFd;
use std::sync::Arc;

/// A way to obtain the headset's lease.
pub trait LeaseSource {
    /// A short human-readable name for logs and errors.
    fn describe(&self) -> String;
    /// Obtains the lease, with the headset output it covers when the source knows it.
    fn acquire(&mut self) -> Result<(Lease, Option<HeadsetOutput>), DiscoveryError>;
}

/// Lease the headset to ourselves as DRM master of its card.
#[derive(Debug, Default)]
pub struct DirectLease {
    /// `--connector`: take this connector instead of discovering the headset.
    pub connector: Option<String>,
}

impl LeaseSource for DirectLease {
    fn describe(&self) -> String {
        "direct (DRM master of the headset's card)".into()
    }

    fn acquire(&mut self) -> Result<(Lease, Option<HeadsetOutput>), DiscoveryError> {
        let headset = discovery::discover(self.connector.as_deref())?;
        let card = Card::open(&headset.card)?;
        if !card.acquire_master() {
            return Err(KmsError::NotMaster {
                card: headset.card.display().to_string(),
            }
            .into());
        }
        let lease = Lease::create(Arc::new(card), &headset.connector)?;
        Ok((lease, Some(headset)))
    }
}

/// A lessee fd obtained elsewhere.
#[derive(Debug)]
pub struct FdLease {
    fd: Option<OwnedFd>,
    label: String,
}

impl FdLease {
    pub fn new(fd: OwnedFd, label: impl Into<String>) -> Self {
        Self {
            fd: Some(fd),
            label: label.into(),
        }
    }

    /// Takes ownership of an inherited fd given by number (`--lease-fd 3`). Fails if no
    /// such fd is open in this process.
    pub fn from_inherited(fd: i32) -> Result<Self, KmsError> {
        let label = format!("fd {fd}");
        let not_open = |why: &str| KmsError::NotALease {
            fd: label.clone(),
            why: why.into(),
        };
        if fd < 0 {
            return Err(not_open("negative fd number"));
        }
        // SAFETY: only used to ask the kernel whether the number is an open fd; the
        // borrow does not outlive this statement.
        let probe = unsafe { std::os::fd::BorrowedFd::borrow_raw(fd) };
        if rustix::io::fcntl_getfd(probe).is_err() {
            return Err(not_open("no such open file descriptor"));
        }
        // SAFETY: the user handed this fd number to us to own (it is open, checked
        // above); nothing else in this process uses it.
        let owned = unsafe { <OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(fd) };
        Ok(Self::new(owned, label))
    }
}

impl LeaseSource for FdLease {
    fn describe(&self) -> String {
        format!("lease fd {}", self.label)
    }

    fn acquire(&mut self) -> Result<(Lease, Option<HeadsetOutput>), DiscoveryError> {
        let fd = self.fd.take().ok_or_else(|| KmsError::NotALease {
            fd: self.label.clone(),
            why: "it was already used (a lease fd can be adopted once)".into(),
        })?;
        let lease = Lease::from_lessee_fd(fd, &self.label)?;
        let headset = leased_headset(
            &lease,
            lease.card().path().to_path_buf(),
            discovery::HeadsetReason::Named,
        )?;
        Ok((lease, headset))
    }
}

/// Describes the connector of a lease obtained elsewhere, from what the lessee sees (it
/// sees only its own connector).
pub(crate) fn leased_headset(
    lease: &Lease,
    card: std::path::PathBuf,
    reason: discovery::HeadsetReason,
) -> Result<Option<HeadsetOutput>, KmsError> {
    Ok(lease
        .card()
        .connectors()?
        .into_iter()
        .find(|c| c.handle == lease.connector)
        .map(|connector| HeadsetOutput {
            card,
            profile: connector.edid.as_ref().and_then(|e| e.known_hmd()),
            connector,
            reason,
        }))
}
