//! DRM leases: a connector + CRTC + primary plane handed to a new master fd.

use super::{Card, ConnectorInfo, KmsError};
use drm::control::{Device as ControlDevice, LeaseId, RawResourceHandle, connector, crtc, plane};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

/// A lease we created as master of `lessor`. The lessee fd is a [`Card`] that sees only
/// the leased objects. Dropping the lease revokes it (and closes the lessee fd).
#[derive(Debug)]
pub struct Lease {
    lessee: Card,
    lessor: Option<Arc<Card>>,
    id: LeaseId,
    pub connector: connector::Handle,
    pub crtc: crtc::Handle,
    pub plane: plane::Handle,
    revoked: AtomicBool,
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
            id,
            connector: connector.handle,
            crtc,
            plane,
            revoked: AtomicBool::new(false),
        })
    }

    /// The lessee: a master fd for exactly the leased objects.
    pub fn card(&self) -> &Card {
        &self.lessee
    }

    pub fn id(&self) -> LeaseId {
        self.id
    }

    /// Ends the lease from the lessor side. The lessee's next request on the leased
    /// objects fails with ENOENT.
    /// Takes `&self` so that a display path borrowing the lessee can be cut off under it.
    pub fn revoke(&self) -> Result<(), KmsError> {
        if self.revoked.swap(true, Ordering::AcqRel) {
            return Ok(());
        }
        if let Some(lessor) = &self.lessor {
            if let Err(e) = lessor.revoke_lease(self.id) {
                self.revoked.store(false, Ordering::Release);
                return Err(KmsError::Ioctl {
                    op: "revoke lease",
                    source: e,
                });
            }
            tracing::info!(lessee = self.id.get(), "lease revoked");
        }
        Ok(())
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        if let Err(e) = self.revoke() {
            // Already gone (lessee closed, lessor lost master): nothing left to clean up.
            tracing::debug!(lessee = self.id.get(), error = %e, "revoke on drop");
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
