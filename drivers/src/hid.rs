//! The HID bus, through hidapi (hidraw backend). The only room that touches hidapi.
//!
//! Headsets expose their IMU, configuration and controls as HID interfaces. This module
//! finds them by USB vendor/product id; transports and protocol parsing for each family
//! build on it.

/// A HID interface that belongs to a known headset family.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HidHeadset {
    pub family: &'static str,
    pub role: &'static str,
    pub vendor_id: u16,
    pub product_id: u16,
    pub interface: i32,
    pub path: String,
    pub manufacturer: Option<String>,
    pub product: Option<String>,
    pub serial: Option<String>,
}

/// USB ids of headset HID interfaces: (vendor, product, family, role).
pub const KNOWN_HID: &[(u16, u16, &str, &str)] = &[
    (0x0BB4, 0x2C87, "HTC Vive", "mainboard"),
    (0x0BB4, 0x0309, "HTC Vive Pro", "mainboard"),
    (
        0x28DE,
        0x2000,
        "HTC Vive / Vive Pro",
        "IMU + lighthouse receiver",
    ),
    (0x28DE, 0x2300, "Valve Index", "IMU + lighthouse receiver"),
    (0x28DE, 0x2101, "Valve", "Watchman dongle"),
    (0x28DE, 0x2102, "Valve", "Watchman dongle (gen 2)"),
    (0x2833, 0x0031, "Oculus Rift CV1", "HMD"),
    (0x35BD, 0x0101, "Bigscreen Beyond", "HMD"),
];

#[derive(Debug, thiserror::Error)]
pub enum HidError {
    #[error("hidapi could not start: {0}")]
    Init(#[source] hidapi::HidError),
}

/// Lists every HID interface that matches a known headset. An empty list is a normal
/// answer (no headset plugged in, or no hidraw devices at all).
pub fn find_headsets() -> Result<Vec<HidHeadset>, HidError> {
    let api = hidapi::HidApi::new().map_err(HidError::Init)?;
    let mut found: Vec<HidHeadset> = api
        .device_list()
        .filter_map(|d| {
            let &(vendor_id, product_id, family, role) = KNOWN_HID
                .iter()
                .find(|(v, p, _, _)| *v == d.vendor_id() && *p == d.product_id())?;
            Some(HidHeadset {
                family,
                role,
                vendor_id,
                product_id,
                interface: d.interface_number(),
                path: d.path().to_string_lossy().into_owned(),
                manufacturer: d.manufacturer_string().map(String::from),
                product: d.product_string().map(String::from),
                serial: d.serial_number().map(String::from),
            })
        })
        .collect();
    found.sort_by(|a, b| a.path.cmp(&b.path));
    tracing::debug!(count = found.len(), "HID headset interfaces");
    Ok(found)
}
