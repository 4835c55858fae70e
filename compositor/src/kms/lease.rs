//! DRM leases: a connector + CRTC + primary plane handed to a new master fd.

use super::{Card, ConnectorInfo, KmsError};
use drm::control::{Device as ControlDevice, LeaseId, RawResourceHandle, connector, crtc, plane};
use std::os::fd::{AsFd, OwnedFd};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

/// A lease we created as master of `lessor`. The lessee fd is a [`Card`] that sees only
/// the leased objects. Dropping the lease revokes it (and closes the lessee fd).
pub struct Lease {
    lessee: Card,
    lessor: Option<Arc<Card>>,
    /// Known when we created the lease; a lease fd handed in does not say.
    id: Option<LeaseId>,
    pub connector: connector::Handle,
    pub crtc: crtc::Handle,
    pub plane: plane::Handle,
    revoked: AtomicBool,
    /// Whatever must outlive the lessee fd for the lease to last (e.g. the Wayland
    /// connection that granted it). Dropped after the lessee.
    keep_alive: Option<std::sync::Mutex<Box<dyn std::any::Any + Send>>>,
}

impl std::fmt::Debug for Lease {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Lease")
            .field("lessee", &self.lessee)
            .field("id", &self.id)
            .field("connector", &self.connector)
            .field("crtc", &self.crtc)
            .field("plane", &self.plane)
            .field("revoked", &self.revoked)
            .field("kept_alive", &self.keep_alive.is_some())
            .finish()
    }
}

impl Lease {
    /// Leases `connector` with a free CRTC that can drive it and that CRTC's primary plane.
    /// `lessor` must be DRM master of its card.
    pub fn create(lessor: Arc<Card>, connector: &ConnectorInfo) -> Result<Self, KmsError> {
        let crtc = choose_crtc(&lessor, connector)?;
        let plane = lessor.primary_plane(crtc)?;
        let objects: [RawResourceHandle; 3] = [connector.handle.into(), crtc.into(), plane.into()];
        let flags = rustix::fs::OFlags::CLOEXEC.bits();
        let (id, fd) = lessor
            .create_lease(&objects, flags)
            .map_err(KmsError::ioctl("create lease"))?;
        let lessee = Card::from_fd(fd, lessor.path().to_path_buf());
        tracing::info!(
            connector = %connector.name, crtc = u32::from(crtc), plane = u32::from(plane),
            lessee = id.get(), "lease created"
        );
        Ok(Self {
            lessee,
            lessor: Some(lessor),
            id: Some(id),
            connector: connector.handle,
            crtc,
            plane,
            revoked: AtomicBool::new(false),
            keep_alive: None,
        })
    }

    /// Ties `value` to the lease: it is dropped only after the lessee fd is closed.
    pub fn keep_alive(mut self, value: Box<dyn std::any::Any + Send>) -> Self {
        self.keep_alive = Some(std::sync::Mutex::new(value));
        self
    }

    /// The lessee: a master fd for exactly the leased objects.
    pub fn card(&self) -> &Card {
        &self.lessee
    }

    pub fn id(&self) -> Option<LeaseId> {
        self.id
    }

    /// Adopts a lessee fd obtained elsewhere (another lessor, a Wayland or X11 server,
    /// the user's `--lease-fd`). Checks that it really is a lease holding a connector, a
    /// CRTC and a primary plane; revoking it is the lessor's business (dropping closes it).
    pub fn from_lessee_fd(fd: OwnedFd, label: &str) -> Result<Self, KmsError> {
        let not_lease = |why: String| KmsError::NotALease {
            fd: label.to_string(),
            why,
        };
        // GET_LEASE is master-only; a lessee is master of its lease. Anything that is not
        // a DRM device fails here (ENOTTY), as does a non-master DRM fd (EACCES).
        // Client caps first: without universal planes the primary plane stays hidden.
        let lessee = Card::from_fd(fd, PathBuf::from(label));
        let mut objects = Vec::new();
        match drm_ffi::mode::get_lease(lessee.as_fd(), Some(&mut objects)) {
            Ok(_) => {}
            Err(e) if e.raw_os_error() == Some(rustix::io::Errno::NOTTY.raw_os_error()) => {
                return Err(not_lease("it is not a DRM device".into()));
            }
            Err(e) => {
                return Err(not_lease(format!(
                    "DRM refused GET_LEASE ({e}): not a lessee or master fd"
                )));
            }
        }
        let res = drm::control::get_lease(lessee.as_fd())
            .map_err(|e| not_lease(format!("cannot list leased objects: {e}")))?;
        // A lessee's GET_LEASE lists only its leased mode objects (connectors, CRTCs,
        // planes; lessors may add e.g. a cursor plane). A whole-device master gets every
        // mode object of the device instead, properties included: any property id in
        // the list gives it away.
        let is_property = |id: u32| {
            drm::control::from_u32::<drm::control::property::Handle>(id)
                .is_some_and(|h| lessee.get_property(h).is_ok())
        };
        if objects.iter().any(|&id| is_property(id)) {
            return Err(not_lease(format!(
                "it is a DRM master of the whole device ({} objects), not a lease",
                objects.len()
            )));
        }
        let (Some(&connector), Some(&crtc)) = (res.connectors.first(), res.crtcs.first()) else {
            return Err(not_lease("the lease holds no connector or no CRTC".into()));
        };
        let plane = lessee.primary_plane(crtc)?;
        if !res.planes.contains(&plane) {
            return Err(not_lease(
                "the lease holds no primary plane for its CRTC".into(),
            ));
        }
        tracing::info!(
            fd = label,
            connector = u32::from(connector),
            crtc = u32::from(crtc),
            "adopted lease fd"
        );
        Ok(Self {
            lessee,
            lessor: None,
            id: None,
            connector,
            crtc,
            plane,
            revoked: AtomicBool::new(false),
            keep_alive: None,
        })
    }

    /// Ends the lease from the lessor side. The lessee's next request on the leased
    /// objects fails with ENOENT.
    /// Takes `&self` so that a display path borrowing the lessee can be cut off under it.
    pub fn revoke(&self) -> Result<(), KmsError> {
        if self.revoked.swap(true, Ordering::AcqRel) {
            return Ok(());
        }
        if let (Some(lessor), Some(id)) = (&self.lessor, self.id) {
            if let Err(e) = lessor.revoke_lease(id) {
                self.revoked.store(false, Ordering::Release);
                return Err(KmsError::Ioctl {
                    op: "revoke lease",
                    source: e,
                });
            }
            tracing::info!(lessee = id.get(), "lease revoked");
        }
        Ok(())
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        if let Err(e) = self.revoke() {
            // Already gone (lessee closed, lessor lost master): nothing left to clean up.
            tracing::debug!(lessee = ?self.id, error = %e, "revoke on drop");
        }
    }
}

/// A CRTC for the connector: the one driving it now, else one no other connector uses.
fn choose_crtc(card: &Card, connector: &ConnectorInfo) -> Result<crtc::Handle, KmsError> {
    if let Some(c) = connector.current_crtc {
        return Ok(c);
    }
    let busy: Vec<crtc::Handle> = card
        .connectors()?
        .into_iter()
        .filter(|c| c.handle != connector.handle)
        .filter_map(|c| c.current_crtc)
        .collect();
    connector
        .possible_crtcs
        .iter()
        .copied()
        .find(|c| !busy.contains(c))
        .ok_or_else(|| KmsError::NoCrtc {
            connector: connector.name.clone(),
        })
}
