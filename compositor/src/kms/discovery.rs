//! Finding the headset's display and choosing its mode.
//!
//! A connector is the headset when the user names it (`--connector`), when the kernel
//! marks it `non-desktop` (its EDID is on the kernel's HMD quirk list), or when its EDID
//! matches one of our headset profiles (newer headsets the running kernel does not know).

use super::{Card, ConnectorInfo, KmsError, cards};
use drm::control::Mode;
use leasehold_drivers::profile::HeadsetProfile;
use std::fmt;
use std::path::PathBuf;

/// Why a connector was taken for the headset.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HeadsetReason {
    Named,
    NonDesktop,
    Profile,
}

/// The headset's output: which card, which connector, and its profile if known.
#[derive(Debug, Clone)]
pub struct HeadsetOutput {
    pub card: PathBuf,
    pub connector: ConnectorInfo,
    pub profile: Option<&'static HeadsetProfile>,
    pub reason: HeadsetReason,
}

#[derive(Debug, thiserror::Error)]
pub enum DiscoveryError {
    #[error(
        "no DRM devices on this machine (/dev/dri has no card nodes): there is no display to lease"
    )]
    NoDrm,
    #[error(
        "no headset display found: no connected connector is marked non-desktop or matches a headset profile \
         (seen: {}); if the headset is one of these, name it with --connector",
        list(.seen)
    )]
    NoHeadset { seen: Vec<String> },
    #[error("no connector named `{name}` (seen: {})", list(.seen))]
    NamedNotFound { name: String, seen: Vec<String> },
    #[error("connector `{name}` is not connected")]
    NamedDisconnected { name: String },
    #[error(transparent)]
    Kms(#[from] KmsError),
}

fn list(seen: &[String]) -> String {
    if seen.is_empty() {
        "none".into()
    } else {
        seen.join(", ")
    }
}

/// Picks the headset among the connectors of the given cards (in order).
pub fn pick_headset(
    cards: &[(PathBuf, Vec<ConnectorInfo>)],
    named: Option<&str>,
) -> Result<HeadsetOutput, DiscoveryError> {
    let describe = |path: &PathBuf, c: &ConnectorInfo| {
        let state = if c.connected {
            "connected"
        } else {
            "disconnected"
        };
        format!("{} {} ({state})", path.display(), c.name)
    };
    let seen: Vec<String> = cards
        .iter()
        .flat_map(|(p, cs)| cs.iter().map(move |c| describe(p, c)))
        .collect();
    let profile_of = |c: &ConnectorInfo| c.edid.as_ref().and_then(|e| e.known_hmd());
    let found = |path: &PathBuf, c: &ConnectorInfo, reason| HeadsetOutput {
        card: path.clone(),
        connector: c.clone(),
        profile: profile_of(c),
        reason,
    };
    if let Some(name) = named {
        for (path, cs) in cards {
            if let Some(c) = cs.iter().find(|c| c.name == name) {
                if !c.connected {
                    return Err(DiscoveryError::NamedDisconnected { name: name.into() });
                }
                return Ok(found(path, c, HeadsetReason::Named));
            }
        }
        return Err(DiscoveryError::NamedNotFound {
            name: name.into(),
            seen,
        });
    }
    for (reason, test) in [
        (
            HeadsetReason::NonDesktop,
            &(|c: &ConnectorInfo| c.non_desktop == Some(true)) as &dyn Fn(&ConnectorInfo) -> bool,
        ),
        (HeadsetReason::Profile, &|c: &ConnectorInfo| {
            profile_of(c).is_some()
        }),
    ] {
        for (path, cs) in cards {
            if let Some(c) = cs.iter().find(|c| c.connected && test(c)) {
                return Ok(found(path, c, reason));
            }
        }
    }
    Err(DiscoveryError::NoHeadset { seen })
}

/// Opens every card and picks the headset (see [`pick_headset`]).
pub fn discover(named: Option<&str>) -> Result<HeadsetOutput, DiscoveryError> {
    let paths = cards();
    if paths.is_empty() {
        return Err(DiscoveryError::NoDrm);
    }
    let mut all = Vec::new();
    for path in paths {
        let card = Card::open(&path)?;
        match card.connectors() {
            Ok(cs) => all.push((path, cs)),
            // Render-only devices (vgem, compute GPUs) have no connectors to offer.
            Err(e) if e.errno() == Some(rustix::io::Errno::OPNOTSUPP.raw_os_error()) => {}
            Err(e) => return Err(e.into()),
        }
    }
    let h = pick_headset(&all, named)?;
    tracing::info!(card = %h.card.display(), connector = %h.connector.name, reason = ?h.reason,
        profile = h.profile.map(|p| p.id.as_str()), "headset display");
    Ok(h)
}

/// A requested mode, `WxH@Hz`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ModeRequest {
    pub width: u16,
    pub height: u16,
    pub hz: u32,
}

impl std::str::FromStr for ModeRequest {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let bad = || format!("`{s}` is not a mode: expected WxH@Hz, e.g. 2160x1200@90");
        let (size, hz) = s.split_once('@').ok_or_else(bad)?;
        let (w, h) = size.split_once('x').ok_or_else(bad)?;
        let r = ModeRequest {
            width: w.parse().map_err(|_| bad())?,
            height: h.parse().map_err(|_| bad())?,
            hz: hz.parse().map_err(|_| bad())?,
        };
        if r.width == 0 || r.height == 0 || r.hz == 0 {
            return Err(bad());
        }
        Ok(r)
    }
}

impl fmt::Display for ModeRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}x{}@{}", self.width, self.height, self.hz)
    }
}

/// What to do about the mode.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum ModeDecision {
    /// The lessor already lit the CRTC: keep its mode and only flip (a lessee modeset
    /// would race the lessor over shared resources).
    Keep(Mode),
    /// Modeset to this mode (after a TEST_ONLY commit accepts it).
    Set { mode: Mode, custom: bool },
}

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum ModeError {
    #[error("connector {connector} offers no modes")]
    NoModes { connector: String },
    #[error("mode {requested} needs a pixel clock the kernel cannot express")]
    Unrepresentable { requested: ModeRequest },
}

/// Refresh in mHz from a mode's timings (the kernel's `vrefresh` is rounded).
pub fn refresh_mhz(m: &Mode) -> u64 {
    let (_, _, ht) = m.hsync();
    let (_, _, vt) = m.vsync();
    (u64::from(m.clock()) * 1_000_000)
        .checked_div(u64::from(ht) * u64::from(vt))
        .unwrap_or(0)
}

/// Frame period of a mode, ns.
pub fn period_ns(m: &Mode) -> u64 {
    let (_, _, ht) = m.hsync();
    let (_, _, vt) = m.vsync();
    (u64::from(ht) * u64::from(vt) * 1_000_000)
        .checked_div(u64::from(m.clock()))
        .unwrap_or(0)
}

fn refresh_matches(m: &Mode, hz: u32) -> bool {
    refresh_mhz(m).abs_diff(u64::from(hz) * 1000) <= 1000
}

/// A mode with reduced blanking for `req`, for drivers that accept modes beyond the
/// EDID's list (a TEST_ONLY commit decides).
pub fn custom_mode(req: ModeRequest) -> Result<Mode, ModeError> {
    let (hblank, hso, hsw) = (80u16, 8u16, 32u16);
    let (vblank, vso, vsw) = (40u16, 3u16, 5u16);
    let unrep = || ModeError::Unrepresentable { requested: req };
    let htotal = req.width.checked_add(hblank).ok_or_else(unrep)?;
    let vtotal = req.height.checked_add(vblank).ok_or_else(unrep)?;
    let clock_khz = (u64::from(htotal) * u64::from(vtotal) * u64::from(req.hz)).div_ceil(1000);
    let clock = u32::try_from(clock_khz).map_err(|_| unrep())?;
    let mut name = [0 as std::ffi::c_char; 32];
    for (d, s) in name
        .iter_mut()
        .zip(format!("{}x{}", req.width, req.height).bytes())
    {
        *d = s as std::ffi::c_char;
    }
    let info = drm_ffi::drm_mode_modeinfo {
        clock,
        hdisplay: req.width,
        hsync_start: req.width + hso,
        hsync_end: req.width + hso + hsw,
        htotal,
        hskew: 0,
        vdisplay: req.height,
        vsync_start: req.height + vso,
        vsync_end: req.height + vso + vsw,
        vtotal,
        vscan: 0,
        vrefresh: req.hz,
        flags: drm_ffi::DRM_MODE_FLAG_PHSYNC | drm_ffi::DRM_MODE_FLAG_PVSYNC,
        type_: drm_ffi::DRM_MODE_TYPE_USERDEF,
        name,
    };
    Ok(Mode::from(info))
}

/// Chooses the headset's mode. `current` is the mode already on the CRTC, if any.
pub fn choose_mode(
    connector: &ConnectorInfo,
    profile: Option<&HeadsetProfile>,
    requested: Option<ModeRequest>,
    current: Option<Mode>,
) -> Result<ModeDecision, ModeError> {
    if let Some(req) = requested {
        let exact = connector
            .modes
            .iter()
            .copied()
            .find(|m| m.size() == (req.width, req.height) && refresh_matches(m, req.hz));
        return Ok(match exact {
            Some(mode) => ModeDecision::Set {
                mode,
                custom: false,
            },
            None => ModeDecision::Set {
                mode: custom_mode(req)?,
                custom: true,
            },
        });
    }
    if let Some(mode) = current {
        return Ok(ModeDecision::Keep(mode));
    }
    if let Some(p) = profile {
        let native = (p.display.width, p.display.height);
        for &hz in &p.display.refresh_hz {
            if let Some(mode) = connector.modes.iter().copied().find(|m| {
                (u32::from(m.size().0), u32::from(m.size().1)) == native && refresh_matches(m, hz)
            }) {
                return Ok(ModeDecision::Set {
                    mode,
                    custom: false,
                });
            }
        }
    }
    connector
        .preferred_mode()
        .map(|mode| ModeDecision::Set {
            mode,
            custom: false,
        })
        .ok_or_else(|| ModeError::NoModes {
            connector: connector.name.clone(),
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use leasehold_drivers::edid::Edid;

    fn mode(w: u16, h: u16, hz: u32) -> Mode {
        custom_mode(ModeRequest {
            width: w,
            height: h,
            hz,
        })
        .unwrap()
    }

    fn connector(
        name: &str,
        connected: bool,
        non_desktop: Option<bool>,
        edid: Option<Edid>,
        modes: Vec<Mode>,
    ) -> ConnectorInfo {
        ConnectorInfo {
            handle: drm::control::from_u32(1).unwrap(),
            name: name.into(),
            connected,
            non_desktop,
            edid,
            edid_error: None,
            modes,
            possible_crtcs: vec![],
            current_crtc: None,
        }
    }

    /// A minimal valid EDID base block with these ids (no timings).
    fn edid(m: &[u8; 3], product: u16) -> Edid {
        let mut b = [0u8; 128];
        b[..8].copy_from_slice(&[0, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0]);
        let packed = leasehold_drivers::edid::ManufacturerId(*m).packed();
        b[8..10].copy_from_slice(&packed.to_be_bytes());
        b[10..12].copy_from_slice(&product.to_le_bytes());
        b[18] = 1;
        b[19] = 4;
        let sum = b.iter().fold(0u8, |a, &x| a.wrapping_add(x));
        b[127] = 0u8.wrapping_sub(sum);
        Edid::parse(&b).unwrap()
    }

    fn card(cs: Vec<ConnectorInfo>) -> Vec<(PathBuf, Vec<ConnectorInfo>)> {
        vec![(PathBuf::from("/dev/dri/card0"), cs)]
    }

    #[test]
    fn non_desktop_wins_then_profile_then_nothing() {
        let desk = connector("DP-1", true, Some(false), Some(edid(b"DEL", 1)), vec![]);
        let beyond = connector(
            "DP-2",
            true,
            Some(false),
            Some(edid(b"BIG", 0x1234)),
            vec![],
        );
        let vive = connector("DP-3", true, Some(true), Some(edid(b"HVR", 0xAA01)), vec![]);
        let h = pick_headset(&card(vec![desk.clone(), beyond.clone(), vive]), None).unwrap();
        assert_eq!(
            (h.connector.name.as_str(), h.reason),
            ("DP-3", HeadsetReason::NonDesktop)
        );
        assert_eq!(h.profile.unwrap().id, "vive");
        // A kernel without the Beyond quirk: found through its profile.
        let h = pick_headset(&card(vec![desk.clone(), beyond]), None).unwrap();
        assert_eq!(
            (h.connector.name.as_str(), h.reason),
            ("DP-2", HeadsetReason::Profile)
        );
        let err = pick_headset(&card(vec![desk]), None)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("no headset display found")
                && err.contains("/dev/dri/card0 DP-1 (connected)"),
            "{err}"
        );
    }

    #[test]
    fn disconnected_headsets_are_not_picked_and_names_are_checked() {
        let vive_off = connector(
            "DP-3",
            false,
            Some(true),
            Some(edid(b"HVR", 0xAA01)),
            vec![],
        );
        let desk = connector("HDMI-A-1", true, Some(false), None, vec![]);
        assert!(matches!(
            pick_headset(&card(vec![vive_off.clone(), desk.clone()]), None),
            Err(DiscoveryError::NoHeadset { .. })
        ));
        let h = pick_headset(
            &card(vec![vive_off.clone(), desk.clone()]),
            Some("HDMI-A-1"),
        )
        .unwrap();
        assert_eq!(h.reason, HeadsetReason::Named);
        assert!(h.profile.is_none());
        assert!(matches!(
            pick_headset(&card(vec![vive_off.clone()]), Some("DP-3")),
            Err(DiscoveryError::NamedDisconnected { .. })
        ));
        let err = pick_headset(&card(vec![vive_off, desk]), Some("DP-9"))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("no connector named `DP-9`") && err.contains("HDMI-A-1"),
            "{err}"
        );
    }

    #[test]
    fn mode_choice_order() {
        let index = leasehold_drivers::profile::by_id("index").unwrap();
        let modes = vec![
            mode(2880, 1600, 120),
            mode(2880, 1600, 90),
            mode(1920, 1080, 60),
        ];
        let c = connector("DP-1", true, Some(true), None, modes.clone());
        // Profile order: 90 is the Index's preferred rate.
        assert_eq!(
            choose_mode(&c, Some(index), None, None),
            Ok(ModeDecision::Set {
                mode: modes[1],
                custom: false
            })
        );
        // The lessor's mode is kept.
        assert_eq!(
            choose_mode(&c, Some(index), None, Some(modes[0])),
            Ok(ModeDecision::Keep(modes[0]))
        );
        // An explicit request wins, exact when listed, custom otherwise.
        let req: ModeRequest = "2880x1600@120".parse().unwrap();
        assert_eq!(
            choose_mode(&c, Some(index), Some(req), Some(modes[1])),
            Ok(ModeDecision::Set {
                mode: modes[0],
                custom: false
            })
        );
        let req: ModeRequest = "640x360@144".parse().unwrap();
        let Ok(ModeDecision::Set {
            mode: m,
            custom: true,
        }) = choose_mode(&c, None, Some(req), None)
        else {
            panic!()
        };
        assert_eq!(m.size(), (640, 360));
        assert!(refresh_matches(&m, 144), "{} mHz", refresh_mhz(&m));
        // No profile: the kernel's preferred (first) mode.
        let plain = connector("DP-1", true, None, None, modes.clone());
        assert_eq!(
            choose_mode(&plain, None, None, None),
            Ok(ModeDecision::Set {
                mode: modes[0],
                custom: false
            })
        );
        let empty = connector("DP-1", true, None, None, vec![]);
        assert!(matches!(
            choose_mode(&empty, None, None, None),
            Err(ModeError::NoModes { .. })
        ));
    }

    #[test]
    fn mode_requests_parse_and_reject_garbage() {
        assert_eq!(
            "640x360@90".parse::<ModeRequest>(),
            Ok(ModeRequest {
                width: 640,
                height: 360,
                hz: 90
            })
        );
        for bad in [
            "",
            "640x360",
            "640@90",
            "0x360@90",
            "640x360@0",
            "axb@c",
            "99999x1@90",
        ] {
            assert!(bad.parse::<ModeRequest>().is_err(), "{bad}");
        }
        let huge = ModeRequest {
            width: 65535,
            height: 65535,
            hz: 1000,
        };
        assert_eq!(
            custom_mode(huge),
            Err(ModeError::Unrepresentable { requested: huge })
        );
        let m = mode(2160, 1200, 90);
        assert!(
            period_ns(&m).abs_diff(11_111_111) < 2_000,
            "{}",
            period_ns(&m)
        );
    }
}
