//! A lease from an X server through RandR 1.6 `CreateLease`.
//!
//! Xorg's modesetting driver holds DRM master, marks headset outputs with the RandR
//! `non-desktop` property and keeps them out of the desktop; a client may lease such an
//! output with a free CRTC and receives the lessee fd in the reply. The X connection stays
//! open for as long as the lease lives: closing it ends the lease.

use super::discovery::{DiscoveryError, HeadsetOutput, HeadsetReason};
use super::lease_source::LeaseSource;
use super::{KmsError, Lease};
use leasehold_drivers::edid::Edid;
use std::path::PathBuf;
use x11rb::connection::{Connection as _, RequestConnection as _};
use x11rb::protocol::randr::{self, ConnectionExt as _};
use x11rb::protocol::xproto::{AtomEnum, ConnectionExt as _};

/// Lease the headset from the X server we run under.
#[derive(Debug, Default)]
pub struct X11Lease {
    /// The display, e.g. `:0`; default: `$DISPLAY`.
    pub display: Option<String>,
    /// Take the output with this name instead of the non-desktop / profile match.
    pub connector: Option<String>,
}

fn x11_error(why: impl std::fmt::Display) -> DiscoveryError {
    KmsError::Lessor {
        why: why.to_string(),
    }
    .into()
}

struct Candidate {
    output: randr::Output,
    name: String,
    crtcs: Vec<randr::Crtc>,
    current: randr::Crtc,
    non_desktop: bool,
    edid: Option<Edid>,
}

impl LeaseSource for X11Lease {
    fn describe(&self) -> String {
        format!(
            "X11 RandR CreateLease on {}",
            self.display.as_deref().unwrap_or("$DISPLAY")
        )
    }

    fn acquire(&mut self) -> Result<(Lease, Option<HeadsetOutput>), DiscoveryError> {
        let (conn, screen) = x11rb::connect(self.display.as_deref())
            .map_err(|e| x11_error(format!("no X server to lease from: {e}")))?;
        let root = conn.setup().roots[screen].root;
        let err = |what: &str| {
            let what = what.to_string();
            move |e: x11rb::errors::ReplyError| x11_error(format!("{what}: {e}"))
        };
        let cerr = |what: &'static str| {
            move |e: x11rb::errors::ConnectionError| x11_error(format!("{what}: {e}"))
        };
        if conn
            .extension_information(randr::X11_EXTENSION_NAME)
            .map_err(cerr("query RandR"))?
            .is_none()
        {
            return Err(x11_error("the X server has no RandR extension"));
        }
        let v = conn
            .randr_query_version(1, 6)
            .map_err(cerr("RandR version"))?
            .reply()
            .map_err(err("RandR version"))?;
        if (v.major_version, v.minor_version) < (1, 6) {
            return Err(x11_error(format!(
                "the X server speaks RandR {}.{}; leases need 1.6",
                v.major_version, v.minor_version
            )));
        }
        let atom = |name: &[u8]| -> Result<u32, DiscoveryError> {
            Ok(conn
                .intern_atom(false, name)
                .map_err(cerr("intern atom"))?
                .reply()
                .map_err(err("intern atom"))?
                .atom)
        };
        let (non_desktop_atom, edid_atom) = (atom(b"non-desktop")?, atom(b"EDID")?);
        let res = conn
            .randr_get_screen_resources_current(root)
            .map_err(cerr("screen resources"))?
            .reply()
            .map_err(err("screen resources"))?;
        let mut candidates = Vec::new();
        for &output in &res.outputs {
            let info = conn
                .randr_get_output_info(output, res.config_timestamp)
                .map_err(cerr("output info"))?
                .reply()
                .map_err(err("output info"))?;
            let prop = |a: u32, len: u32| {
                conn.randr_get_output_property(output, a, AtomEnum::ANY, 0, len, false, false)
                    .ok()
                    .and_then(|c| c.reply().ok())
                    .map(|r| r.data)
                    .unwrap_or_default()
            };
            let nd = prop(non_desktop_atom, 1);
            let non_desktop = nd.first().is_some_and(|&b| b != 0);
            // X servers report headsets as "disconnected" (so desktop clients leave
            // them alone) and mark them non-desktop: those are exactly what we want.
            if info.connection != randr::Connection::CONNECTED && !non_desktop {
                continue;
            }
            candidates.push(Candidate {
                output,
                name: String::from_utf8_lossy(&info.name).into_owned(),
                crtcs: info.crtcs.clone(),
                current: info.crtc,
                non_desktop,
                edid: Edid::parse(&prop(edid_atom, 64)).ok(),
            });
        }
        let chosen = candidates.iter().find(|c| match &self.connector {
            Some(n) => &c.name == n,
            None => c.non_desktop || c.edid.as_ref().is_some_and(|e| e.known_hmd().is_some()),
        });
        let Some(c) = chosen else {
            let seen: Vec<String> = candidates
                .iter()
                .map(|c| {
                    format!(
                        "{}{}",
                        c.name,
                        if c.non_desktop { " (non-desktop)" } else { "" }
                    )
                })
                .collect();
            let what = match &self.connector {
                Some(n) => format!("no connected or non-desktop output is named `{n}`"),
                None => "no connected output is non-desktop or a known headset; name one with --connector".into(),
            };
            return Err(x11_error(format!("{what} (outputs: {})", seen.join(", "))));
        };
        // A CRTC for it: the one it already has, else one no output uses.
        let mut crtc = (c.current != 0).then_some(c.current);
        if crtc.is_none() {
            for &candidate in &c.crtcs {
                let ci = conn
                    .randr_get_crtc_info(candidate, res.config_timestamp)
                    .map_err(cerr("CRTC info"))?
                    .reply()
                    .map_err(err("CRTC info"))?;
                if ci.outputs.is_empty() {
                    crtc = Some(candidate);
                    break;
                }
            }
        }
        let crtc = crtc.ok_or_else(|| x11_error(format!("no free CRTC can drive {}", c.name)))?;
        let lid = conn
            .generate_id()
            .map_err(|e| x11_error(format!("allocate a lease id: {e}")))?;
        let reply = conn
            .randr_create_lease(root, lid, &[crtc], &[c.output])
            .map_err(cerr("CreateLease"))?
            .reply()
            .map_err(err(&format!("the X server refused to lease {}", c.name)))?;
        tracing::info!(output = %c.name, crtc, "lease granted by the X server");
        let name = c.name.clone();
        let reason = if self.connector.is_some() {
            HeadsetReason::Named
        } else {
            HeadsetReason::NonDesktop
        };
        let lease = Lease::from_lessee_fd(reply.master_fd, "X11 lease")?.keep_alive(Box::new(conn));
        let headset = super::lease_source::leased_headset(&lease, PathBuf::from("x11"), reason)?;
        debug_assert!(headset.as_ref().is_none_or(|h| h.connector.name == name));
        Ok((lease, headset))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_server_is_a_clear_error() {
        let mut src = X11Lease {
            display: Some(":97".into()),
            connector: None,
        };
        let err = src.acquire().expect_err("no X server on :97").to_string();
        assert!(err.contains("no X server to lease from"), "{err}");
    }
}
