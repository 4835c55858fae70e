//! Which headset a process drives: a real one on HID when one is plugged in (the
//! Vive-family driver: Vive, Vive Pro, Index, with their config and the user's
//! calibration file), else the simulated one. `LEASEHOLD_HMD=simulated` asks for the
//! simulated one; `auto` (or unset) for the above. One discovery, one decision, and the
//! reason for it, which the runtime logs and `leasehold probe` prints.

use crate::api::Hmd;
use crate::simulated::SimulatedHmd;
use crate::vive::{self, ViveHmd, ViveOptions};
use std::sync::Arc;

/// What `LEASEHOLD_HMD` asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Preference {
    /// A real headset when one is found, else the simulated one.
    Auto,
    Simulated,
}

impl Preference {
    /// `LEASEHOLD_HMD` (unset: auto); an unknown value is an error naming the choices.
    pub fn from_env() -> Result<Self, String> {
        Self::parse(std::env::var("LEASEHOLD_HMD").ok().as_deref())
    }

    pub fn parse(v: Option<&str>) -> Result<Self, String> {
        match v.map(str::trim) {
            None | Some("") | Some("auto") => Ok(Self::Auto),
            Some("simulated") => Ok(Self::Simulated),
            Some(other) => Err(format!(
                "LEASEHOLD_HMD={other:?} is not a choice: auto (a real headset when one is \
                 plugged in, else the simulated one) or simulated"
            )),
        }
    }
}

/// The headset chosen, and why.
pub struct Chosen {
    pub hmd: Arc<dyn Hmd>,
    /// For people: "HTC Vive (LHR-1234ABCD)", "simulated HTC Vive".
    pub name: String,
    pub simulated: bool,
    pub why: String,
}

impl std::fmt::Debug for Chosen {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Chosen")
            .field("name", &self.name)
            .field("simulated", &self.simulated)
            .field("why", &self.why)
            .finish()
    }
}

/// Decides once: the real headset on HID that `pref` allows, else the simulated one
/// (its scripted motion starting at `epoch_ns`).
pub fn choose(pref: Preference, epoch_ns: u64) -> Chosen {
    let simulated = |why: String| Chosen {
        hmd: Arc::new(SimulatedHmd::looking_around(epoch_ns)),
        name: "simulated HTC Vive".into(),
        simulated: true,
        why,
    };
    if pref == Preference::Simulated {
        return simulated("LEASEHOLD_HMD=simulated".into());
    }
    let transport = match vive::open_first() {
        Ok(t) => t,
        Err(e) => {
            return simulated(format!(
                "no Vive-family headset could be opened on HID ({e}); see the README for \
                 the udev rules a user needs"
            ));
        }
    };
    match ViveHmd::open(Box::new(transport), ViveOptions::default()) {
        Ok(h) => {
            let name = format!("{} ({})", h.config.model_number, h.config.serial);
            let why = format!(
                "{name} on {} ({} profile)",
                h.path(),
                h.config.variant.profile_id()
            );
            Chosen {
                hmd: Arc::new(h),
                name,
                simulated: false,
                why,
            }
        }
        Err(e) => simulated(format!("the headset on HID could not be configured: {e}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_preference_is_auto_unless_simulated_is_asked_for() {
        assert_eq!(Preference::parse(None), Ok(Preference::Auto));
        assert_eq!(Preference::parse(Some("auto")), Ok(Preference::Auto));
        assert_eq!(
            Preference::parse(Some(" simulated ")),
            Ok(Preference::Simulated)
        );
        let e = Preference::parse(Some("vive")).unwrap_err();
        assert!(e.contains("auto") && e.contains("simulated"), "{e}");
    }

    #[test]
    fn asked_for_the_simulated_one_gets_it_and_says_why() {
        let c = choose(Preference::Simulated, 0);
        assert!(c.simulated);
        assert_eq!(c.why, "LEASEHOLD_HMD=simulated");
        assert_eq!(c.hmd.display().panel_width, 2160);
    }
}
