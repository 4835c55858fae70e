//! An open DRM card (primary node or lease fd) and what it exposes.

use super::KmsError;
use drm::control::{Device as ControlDevice, ResourceHandle, connector, crtc, plane, property};
use leasehold_drivers::edid::Edid;
use std::collections::HashMap;
use std::fs;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};

/// An open DRM device file: a card's primary node, or a lessee fd.
#[derive(Debug)]
pub struct Card {
    fd: OwnedFd,
    path: PathBuf,
}

impl AsFd for Card {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

impl drm::Device for Card {}
impl ControlDevice for Card {}

/// The kernel driver behind a card.
#[derive(Debug, Clone)]
pub struct DriverInfo {
    pub name: String,
    pub description: String,
}

/// One connector as the card reports it, with its EDID parsed.
#[derive(Debug, Clone)]
pub struct ConnectorInfo {
    pub handle: connector::Handle,
    /// Kernel-style name, e.g. `DP-1`, `Virtual-2`.
    pub name: String,
    pub connected: bool,
    /// The `non-desktop` property: the kernel (or its EDID quirk list) says this is not a
    /// desktop monitor, i.e. a headset. `None` when the driver has no such property.
    pub non_desktop: Option<bool>,
    pub edid: Option<Edid>,
    /// Why an EDID blob was present but unreadable.
    pub edid_error: Option<String>,
    pub modes: Vec<drm::control::Mode>,
    /// CRTCs that can drive this connector, in the card's order.
    pub possible_crtcs: Vec<crtc::Handle>,
    /// The CRTC driving it now, if any.
    pub current_crtc: Option<crtc::Handle>,
}

impl ConnectorInfo {
    /// A headset candidate: the kernel marks it non-desktop, or its EDID names a known HMD.
    pub fn is_headset_candidate(&self) -> bool {
        self.non_desktop == Some(true)
            || self.edid.as_ref().is_some_and(|e| e.known_hmd().is_some())
    }

    /// The mode matching the EDID's preferred detailed timing, else the kernel's preferred.
    pub fn preferred_mode(&self) -> Option<drm::control::Mode> {
        let from_edid = self
            .edid
            .as_ref()
            .and_then(|e| e.preferred())
            .and_then(|t| {
                self.modes.iter().copied().find(|m| {
                    let (w, h) = m.size();
                    let (_, _, ht) = m.hsync();
                    let (_, _, vt) = m.vsync();
                    u32::from(w) == u32::from(t.hactive)
                        && u32::from(h) == u32::from(t.vactive)
                        && u32::from(ht) == t.htotal()
                        && u32::from(vt) == t.vtotal()
                })
            });
        from_edid.or_else(|| {
            self.modes
                .iter()
                .copied()
                .find(|m| {
                    m.mode_type()
                        .contains(drm::control::ModeTypeFlags::PREFERRED)
                })
                .or_else(|| self.modes.first().copied())
        })
    }
}

/// The card nodes (`/dev/dri/cardN`), in numeric order. Empty when the machine has no DRM.
pub fn cards() -> Vec<PathBuf> {
    let mut found: Vec<(u32, PathBuf)> = fs::read_dir("/dev/dri")
        .into_iter()
        .flatten()
        .filter_map(|e| {
            let e = e.ok()?;
            let name = e.file_name().into_string().ok()?;
            let n: u32 = name.strip_prefix("card")?.parse().ok()?;
            Some((n, e.path()))
        })
        .collect();
    found.sort();
    found.into_iter().map(|(_, p)| p).collect()
}

impl Card {
    /// (major, minor) of the device node behind this fd (a lessee fd names its card's
    /// primary node): what picks the Vulkan device that shares memory with the display.
    pub fn device_node(&self) -> Option<(i64, i64)> {
        let st = rustix::fs::fstat(&self.fd).ok()?;
        Some((
            i64::from(rustix::fs::major(st.st_rdev)),
            i64::from(rustix::fs::minor(st.st_rdev)),
        ))
    }

    /// Opens a card node read-write and enables atomic modesetting (which implies
    /// universal planes). A card whose driver has no atomic support still opens; its
    /// commits fail later with a clear error.
    pub fn open(path: &Path) -> Result<Self, KmsError> {
        let fd: OwnedFd = fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(path)
            .map_err(|source| KmsError::Open {
                path: path.display().to_string(),
                source,
            })?
            .into();
        Ok(Self::from_fd(fd, path.to_path_buf()))
    }

    /// Wraps an fd that is already open on a card, e.g. a lessee fd.
    pub fn from_fd(fd: OwnedFd, path: PathBuf) -> Self {
        let card = Self { fd, path };
        for cap in [
            drm::ClientCapability::UniversalPlanes,
            drm::ClientCapability::Atomic,
        ] {
            if let Err(e) = drm::Device::set_client_capability(&card, cap, true) {
                tracing::debug!(path = %card.path.display(), ?cap, error = %e, "client capability refused");
            }
        }
        card
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn driver(&self) -> Result<DriverInfo, KmsError> {
        let d = drm::Device::get_driver(self).map_err(KmsError::ioctl("get driver"))?;
        Ok(DriverInfo {
            name: d.name().to_string_lossy().into_owned(),
            description: d.description().to_string_lossy().into_owned(),
        })
    }

    /// Tries to become DRM master; true when this fd is (now) master.
    pub fn acquire_master(&self) -> bool {
        drm::Device::acquire_master_lock(self).is_ok()
    }

    /// The CRTCs this fd can see (a lessee sees only its own).
    pub fn crtcs(&self) -> Result<Vec<crtc::Handle>, KmsError> {
        Ok(self
            .resource_handles()
            .map_err(KmsError::ioctl("get resources"))?
            .crtcs()
            .to_vec())
    }

    /// Checks that a framebuffer of this size is within the card's limits.
    pub fn check_fb_size(&self, (w, h): (u16, u16)) -> Result<(), KmsError> {
        use std::ops::{Bound, RangeBounds};
        let res = self
            .resource_handles()
            .map_err(KmsError::ioctl("get resources"))?;
        fn max(r: impl RangeBounds<u32>) -> u32 {
            match r.end_bound() {
                Bound::Included(&m) => m,
                Bound::Excluded(&m) => m.saturating_sub(1),
                Bound::Unbounded => u32::MAX,
            }
        }
        let (wr, hr) = (res.supported_fb_width(), res.supported_fb_height());
        let (max_w, max_h) = (
            max(res.supported_fb_width()),
            max(res.supported_fb_height()),
        );
        let (w, h) = (u32::from(w), u32::from(h));
        if wr.contains(&w) && hr.contains(&h) {
            Ok(())
        } else {
            Err(KmsError::TooLarge { w, h, max_w, max_h })
        }
    }

    /// The mode a CRTC is running, if it is lit.
    pub fn crtc_mode(&self, crtc: crtc::Handle) -> Result<Option<drm::control::Mode>, KmsError> {
        Ok(self
            .get_crtc(crtc)
            .map_err(KmsError::ioctl("get CRTC"))?
            .mode())
    }

    /// Every connector the card exposes, connected or not.
    pub fn connectors(&self) -> Result<Vec<ConnectorInfo>, KmsError> {
        let res = self
            .resource_handles()
            .map_err(KmsError::ioctl("get resources"))?;
        let mut out = Vec::new();
        for &handle in res.connectors() {
            let info = self
                .get_connector(handle, true)
                .map_err(KmsError::ioctl("get connector"))?;
            let props = self.property_map(handle)?;
            let non_desktop = props.get("non-desktop").map(|&v| v != 0);
            let (edid, edid_error) = match props.get("EDID").copied().filter(|&b| b != 0) {
                Some(blob) => match self.get_property_blob(blob) {
                    Ok(bytes) => match Edid::parse(&bytes) {
                        Ok(e) => (Some(e), None),
                        Err(e) => (None, Some(e.to_string())),
                    },
                    Err(e) => (None, Some(format!("cannot read EDID blob: {e}"))),
                },
                None => (None, None),
            };
            let mut possible = Vec::new();
            let mut current_crtc = None;
            for &enc in info.encoders() {
                let Ok(e) = self.get_encoder(enc) else {
                    continue;
                };
                for c in res.filter_crtcs(e.possible_crtcs()) {
                    if !possible.contains(&c) {
                        possible.push(c);
                    }
                }
                if Some(enc) == info.current_encoder() {
                    current_crtc = e.crtc();
                }
            }
            out.push(ConnectorInfo {
                handle,
                name: format!("{}-{}", info.interface().as_str(), info.interface_id()),
                connected: info.state() == connector::State::Connected,
                non_desktop,
                edid,
                edid_error,
                modes: info.modes().to_vec(),
                possible_crtcs: possible,
                current_crtc,
            });
        }
        Ok(out)
    }

    /// Property name → current value for one object.
    pub(crate) fn property_map<H: ResourceHandle>(
        &self,
        handle: H,
    ) -> Result<HashMap<String, u64>, KmsError> {
        let set = self
            .get_properties(handle)
            .map_err(KmsError::ioctl("get properties"))?;
        let mut map = HashMap::new();
        for (&prop, &value) in set.iter() {
            if let Ok(info) = self.get_property(prop) {
                map.insert(info.name().to_string_lossy().into_owned(), value);
            }
        }
        Ok(map)
    }

    /// Property name → handle for one object (what atomic requests are built from).
    pub(crate) fn property_handles<H: ResourceHandle>(
        &self,
        handle: H,
    ) -> Result<HashMap<String, property::Handle>, KmsError> {
        let set = self
            .get_properties(handle)
            .map_err(KmsError::ioctl("get properties"))?;
        let mut map = HashMap::new();
        for (&prop, _) in set.iter() {
            if let Ok(info) = self.get_property(prop) {
                map.insert(info.name().to_string_lossy().into_owned(), prop);
            }
        }
        Ok(map)
    }

    /// The primary plane that can scan out on `crtc`: preferring the one already on it.
    pub fn primary_plane(&self, crtc: crtc::Handle) -> Result<plane::Handle, KmsError> {
        let res = self
            .resource_handles()
            .map_err(KmsError::ioctl("get resources"))?;
        let planes = self
            .plane_handles()
            .map_err(KmsError::ioctl("get planes"))?;
        let mut candidates = Vec::new();
        for p in planes {
            let info = self.get_plane(p).map_err(KmsError::ioctl("get plane"))?;
            if !res.filter_crtcs(info.possible_crtcs()).contains(&crtc) {
                continue;
            }
            // `type` is an enum property: 0 overlay, 1 primary, 2 cursor.
            if self.property_map(p)?.get("type") == Some(&1) {
                candidates.push((info.crtc() != Some(crtc), p));
            }
        }
        candidates.sort_by_key(|&(not_on_crtc, p)| (not_on_crtc, u32::from(p)));
        candidates
            .first()
            .map(|&(_, p)| p)
            .ok_or(KmsError::NoPrimaryPlane { crtc: crtc.into() })
    }
}
