//! Headset profiles: what a headset family's display is, from `manifests/headsets/*.toml`.
//!
//! The profiles are compiled in, so an installed runtime knows every headset without
//! finding its data files. They carry the EDID ids that identify the family (the single
//! source for "is this connector a headset?" beyond the kernel's own non-desktop flag),
//! the native mode and refresh rates, and the scanout-to-photon delay the pacer adds to
//! predicted display times.

use crate::edid::{Edid, ManufacturerId};
use serde::Deserialize;
use std::sync::OnceLock;

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HeadsetProfile {
    /// Short id used on the command line (`--headset vive`).
    pub id: String,
    pub name: String,
    pub edid: EdidIds,
    pub display: DisplayInfo,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EdidIds {
    /// Three-letter PNP id.
    pub manufacturer: String,
    pub products: Vec<u16>,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DisplayInfo {
    /// The panel mode across both eyes.
    pub width: u32,
    pub height: u32,
    /// Supported refresh rates, preferred first.
    pub refresh_hz: Vec<u32>,
    /// From vblank to the panel emitting the frame's photons (midpoint).
    pub scanout_to_photon_us: u32,
}

#[derive(Debug, thiserror::Error)]
pub enum ProfileError {
    #[error("headset profile is not valid TOML for a profile: {0}")]
    Parse(#[from] toml::de::Error),
    #[error("headset profile `{id}`: {why}")]
    Invalid { id: String, why: String },
}

impl HeadsetProfile {
    pub fn parse(text: &str) -> Result<Self, ProfileError> {
        let p: HeadsetProfile = toml::from_str(text)?;
        let bad = |why: &str| {
            Err(ProfileError::Invalid {
                id: p.id.clone(),
                why: why.to_string(),
            })
        };
        let m = p.edid.manufacturer.as_bytes();
        if m.len() != 3 || !m.iter().all(|c| c.is_ascii_uppercase()) {
            return bad("edid.manufacturer must be three upper-case letters");
        }
        if p.edid.products.is_empty() {
            return bad("edid.products is empty");
        }
        if p.display.width == 0 || p.display.height == 0 {
            return bad("display size is zero");
        }
        if p.display.refresh_hz.is_empty() || p.display.refresh_hz.contains(&0) {
            return bad("display.refresh_hz must list non-zero rates");
        }
        Ok(p)
    }

    pub fn manufacturer(&self) -> ManufacturerId {
        let m = self.edid.manufacturer.as_bytes();
        ManufacturerId([m[0], m[1], m[2]])
    }

    pub fn matches(&self, edid: &Edid) -> bool {
        edid.manufacturer == self.manufacturer() && self.edid.products.contains(&edid.product)
    }

    pub fn preferred_refresh_hz(&self) -> u32 {
        self.display.refresh_hz[0]
    }
}

const BUILTIN: &[(&str, &str)] = &[
    ("vive", include_str!("../../manifests/headsets/vive.toml")),
    (
        "vive-pro",
        include_str!("../../manifests/headsets/vive-pro.toml"),
    ),
    ("index", include_str!("../../manifests/headsets/index.toml")),
    (
        "bigscreen-beyond",
        include_str!("../../manifests/headsets/bigscreen-beyond.toml"),
    ),
    ("pimax", include_str!("../../manifests/headsets/pimax.toml")),
    (
        "rift-cv1",
        include_str!("../../manifests/headsets/rift-cv1.toml"),
    ),
    ("psvr", include_str!("../../manifests/headsets/psvr.toml")),
    (
        "osvr-hdk",
        include_str!("../../manifests/headsets/osvr-hdk.toml"),
    ),
];

/// The compiled-in profiles. A profile that fails to parse is logged and left out
/// (the unit tests keep that from shipping).
pub fn builtin() -> &'static [HeadsetProfile] {
    static PROFILES: OnceLock<Vec<HeadsetProfile>> = OnceLock::new();
    PROFILES.get_or_init(|| {
        BUILTIN
            .iter()
            .filter_map(|(file, text)| match HeadsetProfile::parse(text) {
                Ok(p) => Some(p),
                Err(e) => {
                    tracing::error!(file, error = %e, "built-in headset profile skipped");
                    None
                }
            })
            .collect()
    })
}

/// The profile whose EDID ids match this display.
pub fn for_edid(edid: &Edid) -> Option<&'static HeadsetProfile> {
    builtin().iter().find(|p| p.matches(edid))
}

/// The profile with this id.
pub fn by_id(id: &str) -> Option<&'static HeadsetProfile> {
    builtin().iter().find(|p| p.id == id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_builtin_profile_parses_and_ids_are_unique() {
        assert_eq!(builtin().len(), BUILTIN.len());
        for (file, _) in BUILTIN {
            let p = by_id(file).unwrap_or_else(|| panic!("{file}.toml has id != file name"));
            assert!(!p.name.is_empty());
        }
        // No two profiles claim the same EDID id.
        let mut ids = Vec::new();
        for p in builtin() {
            for &prod in &p.edid.products {
                let key = (p.edid.manufacturer.clone(), prod);
                assert!(!ids.contains(&key), "{key:?} claimed twice");
                ids.push(key);
            }
        }
    }

    #[test]
    fn known_headsets_have_their_public_ids() {
        let id = |m: &str, prod| {
            builtin()
                .iter()
                .find(|p| p.edid.manufacturer == m && p.edid.products.contains(&prod))
                .map(|p| p.id.as_str())
        };
        assert_eq!(id("HVR", 0xAA01), Some("vive"));
        assert_eq!(id("HVR", 0xAA02), Some("vive-pro"));
        assert_eq!(id("VLV", 0x91A8), Some("index"));
        assert_eq!(id("BIG", 0x1234), Some("bigscreen-beyond"));
        assert_eq!(id("PVR", 0x101A), Some("pimax"));
        assert_eq!(id("OVR", 0x0012), Some("rift-cv1"));
        assert_eq!(
            by_id("index").unwrap().display.refresh_hz,
            vec![90, 80, 120, 144]
        );
    }

    #[test]
    fn malformed_profiles_are_rejected_with_reasons() {
        let base = "id = \"x\"\nname = \"X\"\n[edid]\nmanufacturer = \"ABC\"\nproducts = [1]\n[display]\nwidth = 10\nheight = 10\nrefresh_hz = [90]\nscanout_to_photon_us = 0\n";
        assert!(HeadsetProfile::parse(base).is_ok());
        let cases = [
            (base.replace("\"ABC\"", "\"ab\""), "three upper-case"),
            (
                base.replace("products = [1]", "products = []"),
                "products is empty",
            ),
            (
                base.replace("refresh_hz = [90]", "refresh_hz = [0]"),
                "non-zero",
            ),
            (base.replace("width = 10", "width = 0"), "size is zero"),
        ];
        for (text, why) in cases {
            let e = HeadsetProfile::parse(&text).unwrap_err().to_string();
            assert!(e.contains(why), "{e}");
        }
        assert!(matches!(
            HeadsetProfile::parse("id = 3"),
            Err(ProfileError::Parse(_))
        ));
        assert!(
            HeadsetProfile::parse(&format!("{base}extra = 1\n")).is_err(),
            "unknown keys rejected"
        );
    }
}
