//! The headset display, chosen once: which lease source fits the session this process
//! runs in, the lease it gave, and the mode the output will run in.
//!
//! Sources are tried in this order, each only when its session is there:
//! 1. an inherited lease fd (`LEASEHOLD_LEASE_FD=N`), when the user gives one;
//! 2. Wayland `wp_drm_lease_device_v1`, when `WAYLAND_DISPLAY` names a compositor;
//! 3. X11 RandR `CreateLease`, when `DISPLAY` names an X server;
//! 4. direct: DRM master of the headset's card, when no one else holds it.
//!
//! The first that yields a lease wins; the reasons the others gave are kept for the log
//! and for `leasehold probe`. Where none does, [`Preference::Auto`] falls back to
//! headless (offscreen) frames and [`Preference::Kms`] fails with every reason.

use super::discovery::{HeadsetOutput, ModeDecision, choose_mode, period_ns};
use super::lease_source::{DirectLease, FdLease, LeaseSource};
use super::{Lease, WaylandLease, X11Lease};
use std::sync::Mutex;

/// What the user asked for (`LEASEHOLD_TARGET`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Preference {
    /// The headset's display when a lease can be had, else headless (the default).
    Auto,
    /// Offscreen frames paced by a simulated vblank clock, even with a headset there.
    Headless,
    /// The headset's display, or fail.
    Kms,
}

impl Preference {
    /// Parses `LEASEHOLD_TARGET` (`auto`, the default, `headless` or `kms`).
    pub fn parse(v: Option<&str>) -> Result<Self, String> {
        match v {
            None | Some("") | Some("auto") => Ok(Preference::Auto),
            Some("headless") => Ok(Preference::Headless),
            Some("kms") => Ok(Preference::Kms),
            Some(other) => Err(format!(
                "LEASEHOLD_TARGET={other}: expected `auto`, `headless` or `kms`"
            )),
        }
    }

    pub fn from_env() -> Result<Self, String> {
        Self::parse(std::env::var("LEASEHOLD_TARGET").ok().as_deref())
    }
}

/// Which lease source gave (and gives again) the headset's lease.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SourceKind {
    /// An inherited lessee fd; it can be adopted once, so a second lease cannot be had.
    Fd(i32),
    Wayland,
    X11,
    Direct,
}

impl SourceKind {
    fn source(&self) -> Result<Box<dyn LeaseSource>, super::discovery::DiscoveryError> {
        Ok(match self {
            SourceKind::Fd(fd) => Box::new(FdLease::from_inherited(*fd)?),
            SourceKind::Wayland => Box::new(WaylandLease::default()),
            SourceKind::X11 => Box::new(X11Lease::default()),
            SourceKind::Direct => Box::new(DirectLease::default()),
        })
    }

    /// The sources that fit the environment, in the order they are tried.
    fn candidates(env: &dyn Fn(&str) -> Option<String>) -> Result<Vec<SourceKind>, String> {
        if let Some(v) = env("LEASEHOLD_LEASE_FD").filter(|v| !v.is_empty()) {
            let fd = v.parse().map_err(|_| {
                format!("LEASEHOLD_LEASE_FD={v}: expected a file descriptor number")
            })?;
            return Ok(vec![SourceKind::Fd(fd)]);
        }
        let mut kinds = Vec::new();
        if env("WAYLAND_DISPLAY").is_some_and(|v| !v.is_empty()) {
            kinds.push(SourceKind::Wayland);
        }
        if env("DISPLAY").is_some_and(|v| !v.is_empty()) {
            kinds.push(SourceKind::X11);
        }
        kinds.push(SourceKind::Direct);
        Ok(kinds)
    }

    pub fn name(&self) -> &'static str {
        match self {
            SourceKind::Fd(_) => "an inherited lease fd",
            SourceKind::Wayland => "the Wayland compositor (wp_drm_lease_device_v1)",
            SourceKind::X11 => "the X server (RandR CreateLease)",
            SourceKind::Direct => "direct (DRM master of the headset's card)",
        }
    }
}

/// The headset's leased display.
pub struct HeadsetDisplay {
    pub kind: SourceKind,
    /// The headset output as the lease showed it.
    pub headset: HeadsetOutput,
    /// The mode the output will run in: width, height, refresh (Hz).
    pub mode: (u32, u32, f32),
    /// The render node of the card the output is on, when known.
    pub drm_node: Option<(i64, i64)>,
    /// Why this source, and what the others said.
    pub why: String,
    /// The lease while no session drives the output.
    held: Mutex<Option<Lease>>,
}

impl std::fmt::Debug for HeadsetDisplay {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HeadsetDisplay")
            .field("kind", &self.kind)
            .field("connector", &self.headset.connector.name)
            .field("mode", &self.mode)
            .finish()
    }
}

impl HeadsetDisplay {
    /// The lease for a session: the one held, else a new one through the same source
    /// (after a session whose lease was revoked or lost).
    pub fn take_lease(&self) -> Result<(Lease, HeadsetOutput), String> {
        let held = self.held.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(lease) = held {
            return Ok((lease, self.headset.clone()));
        }
        if let SourceKind::Fd(fd) = self.kind {
            return Err(format!(
                "the lease handed in as fd {fd} is gone (revoked, or its lessor went away); a new one cannot be had from an inherited fd"
            ));
        }
        let mut source = self.kind.source().map_err(|e| e.to_string())?;
        let (lease, headset) = source.acquire().map_err(|e| {
            format!(
                "leasing the headset again through {}: {e}",
                source.describe()
            )
        })?;
        let headset = headset.unwrap_or_else(|| self.headset.clone());
        if headset.connector.name != self.headset.connector.name {
            return Err(format!(
                "the headset moved: leased {} this time, {} before",
                headset.connector.name, self.headset.connector.name
            ));
        }
        Ok((lease, headset))
    }

    /// A session is done with the output and its lease is intact: keep it for the next.
    pub fn give_back(&self, lease: Lease) {
        *self.held.lock().unwrap_or_else(|p| p.into_inner()) = Some(lease);
    }
}

/// Where frames go.
#[derive(Debug)]
pub enum Display {
    Headset(std::sync::Arc<HeadsetDisplay>),
    Headless { why: String },
}

impl Display {
    /// One line for logs and `leasehold probe`.
    pub fn describe(&self) -> String {
        match self {
            Display::Headset(d) => {
                let (w, h, hz) = d.mode;
                format!(
                    "{} on {} through {}, {w}x{h}@{hz:.2}",
                    d.headset.connector.name,
                    d.headset.card.display(),
                    d.kind.name()
                )
            }
            Display::Headless { .. } => "headless (offscreen frames, simulated vblank)".into(),
        }
    }

    pub fn why(&self) -> &str {
        match self {
            Display::Headset(d) => &d.why,
            Display::Headless { why } => why,
        }
    }
}

/// Chooses the display for `pref` from this process's environment.
pub fn choose(pref: Preference) -> Result<Display, String> {
    choose_with(pref, &|k| std::env::var(k).ok())
}

fn choose_with(pref: Preference, env: &dyn Fn(&str) -> Option<String>) -> Result<Display, String> {
    if pref == Preference::Headless {
        return Ok(Display::Headless {
            why: "LEASEHOLD_TARGET=headless".into(),
        });
    }
    let mut tried = Vec::new();
    for kind in SourceKind::candidates(env)? {
        match lease_through(&kind) {
            Ok((lease, headset)) => {
                let card = lease.card();
                let current = card.crtc_mode(lease.crtc).ok().flatten();
                let mode = match choose_mode(&headset.connector, headset.profile, None, current) {
                    Ok(ModeDecision::Keep(m)) | Ok(ModeDecision::Set { mode: m, .. }) => m,
                    Err(e) => {
                        tried.push(format!("{}: {e}", kind.name()));
                        continue;
                    }
                };
                let (w, h) = mode.size();
                let hz = 1e9 / period_ns(&mode).max(1) as f32;
                let drm_node = card.device_node();
                let mut why = format!("{} leased {}", kind.name(), headset.connector.name);
                if current.is_some() {
                    why.push_str(" in the lessor's mode");
                }
                if !tried.is_empty() {
                    why.push_str(&format!(" (before it: {})", tried.join("; ")));
                }
                return Ok(Display::Headset(std::sync::Arc::new(HeadsetDisplay {
                    kind,
                    headset,
                    mode: (u32::from(w), u32::from(h), hz),
                    drm_node,
                    why,
                    held: Mutex::new(Some(lease)),
                })));
            }
            Err(e) => tried.push(format!("{}: {e}", kind.name())),
        }
    }
    let why = format!("no headset display could be leased: {}", tried.join("; "));
    match pref {
        Preference::Kms => Err(why),
        _ => Ok(Display::Headless { why }),
    }
}

fn lease_through(kind: &SourceKind) -> Result<(Lease, HeadsetOutput), String> {
    let mut source = kind.source().map_err(|e| e.to_string())?;
    let (lease, headset) = source.acquire().map_err(|e| e.to_string())?;
    let headset = headset.ok_or("the lease's connector is not visible to us")?;
    Ok((lease, headset))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env<'a>(vars: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<String> + 'a {
        move |k| {
            vars.iter()
                .find(|(n, _)| *n == k)
                .map(|(_, v)| v.to_string())
        }
    }

    #[test]
    fn sources_follow_the_session_the_process_runs_in() {
        let kinds = |vars: &[(&str, &str)]| SourceKind::candidates(&env(vars)).unwrap();
        assert_eq!(kinds(&[]), vec![SourceKind::Direct]);
        assert_eq!(
            kinds(&[("WAYLAND_DISPLAY", "wayland-1"), ("DISPLAY", ":0")]),
            vec![SourceKind::Wayland, SourceKind::X11, SourceKind::Direct],
            "Xwayland beside a Wayland compositor: Wayland first"
        );
        assert_eq!(
            kinds(&[("DISPLAY", ":1"), ("WAYLAND_DISPLAY", "")]),
            vec![SourceKind::X11, SourceKind::Direct]
        );
        assert_eq!(
            kinds(&[("LEASEHOLD_LEASE_FD", "5"), ("DISPLAY", ":0")]),
            vec![SourceKind::Fd(5)],
            "an fd handed in is the only source"
        );
        assert!(
            SourceKind::candidates(&env(&[("LEASEHOLD_LEASE_FD", "five")]))
                .unwrap_err()
                .contains("LEASEHOLD_LEASE_FD=five")
        );
    }

    #[test]
    fn the_preference_parses_and_says_what_it_expects() {
        assert_eq!(Preference::parse(None), Ok(Preference::Auto));
        assert_eq!(Preference::parse(Some("kms")), Ok(Preference::Kms));
        assert_eq!(
            Preference::parse(Some("headless")),
            Ok(Preference::Headless)
        );
        assert!(Preference::parse(Some("vr")).unwrap_err().contains("auto"));
    }

    #[test]
    fn without_a_lease_auto_is_headless_with_every_reason_and_kms_fails() {
        // An fd number that is not open: the one source, and it fails.
        let vars = [("LEASEHOLD_LEASE_FD", "100000")];
        let d = choose_with(Preference::Auto, &env(&vars)).unwrap();
        assert!(matches!(d, Display::Headless { .. }));
        assert!(
            d.why().contains("no such open file descriptor"),
            "{}",
            d.why()
        );
        let e = choose_with(Preference::Kms, &env(&vars)).unwrap_err();
        assert!(e.contains("an inherited lease fd"), "{e}");
        let h = choose_with(Preference::Headless, &env(&vars)).unwrap();
        assert_eq!(h.why(), "LEASEHOLD_TARGET=headless");
    }
}
