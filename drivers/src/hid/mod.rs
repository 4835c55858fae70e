//! The HID bus, through hidapi (hidraw backend). The only room that touches hidapi.
//!
//! Headsets expose their IMU, configuration and controls as HID interfaces. This module
//! finds them by USB vendor/product id and interface, moves reports through the
//! [`HidTransport`] seam (hidapi in production, [`ReplayTransport`] in unit tests, the
//! lab's uhid-emulated headset through hidapi too), and watches the bus for hotplug
//! ([`hotplug`]).

pub mod hotplug;
pub mod replay;

pub use replay::ReplayTransport;

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
    #[error(
        "cannot open HID device {path}: {source} (is a udev rule giving you access installed?)"
    )]
    Open {
        path: String,
        #[source]
        source: hidapi::HidError,
    },
    #[error("HID device {path} is gone (unplugged or powered off)")]
    Disconnected { path: String },
    #[error("HID {op} on {path} failed: {detail}")]
    Io {
        op: &'static str,
        path: String,
        detail: String,
    },
    #[error("no HID interface {vendor_id:04x}:{product_id:04x} interface {interface}")]
    NotFound {
        vendor_id: u16,
        product_id: u16,
        interface: i32,
    },
}

/// How reports reach a HID device. Buffers follow hidapi's convention: the first byte is
/// the report id (0 where the device uses none).
pub trait HidTransport: Send {
    /// Where the device is (a hidraw path, or a replay's name), for messages.
    fn path(&self) -> &str;
    /// The next input report, or `Ok(0)` if none arrives within `timeout_ms`.
    fn read_input(&mut self, buf: &mut [u8], timeout_ms: i32) -> Result<usize, HidError>;
    fn write_output(&mut self, data: &[u8]) -> Result<(), HidError>;
    /// `buf[0]` names the feature report; returns the length read (id included).
    fn get_feature(&mut self, buf: &mut [u8]) -> Result<usize, HidError>;
    fn send_feature(&mut self, data: &[u8]) -> Result<(), HidError>;
}

/// A HID interface opened through hidapi.
pub struct HidapiTransport {
    dev: hidapi::HidDevice,
    path: String,
}

impl std::fmt::Debug for HidapiTransport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HidapiTransport")
            .field("path", &self.path)
            .finish()
    }
}

impl HidapiTransport {
    /// Opens the first interface with these ids (and interface number, if given).
    pub fn open(vendor_id: u16, product_id: u16, interface: i32) -> Result<Self, HidError> {
        let api = hidapi::HidApi::new().map_err(HidError::Init)?;
        let info = api
            .device_list()
            .find(|d| {
                d.vendor_id() == vendor_id
                    && d.product_id() == product_id
                    // Virtual (uhid) and Bluetooth devices report no interface (-1).
                    && (interface < 0
                        || d.interface_number() == interface
                        || d.interface_number() < 0)
            })
            .ok_or(HidError::NotFound {
                vendor_id,
                product_id,
                interface,
            })?;
        let path = info.path().to_string_lossy().into_owned();
        let dev = api
            .open_path(info.path())
            .map_err(|source| HidError::Open {
                path: path.clone(),
                source,
            })?;
        tracing::debug!(%path, "opened HID interface {vendor_id:04x}:{product_id:04x}");
        Ok(Self { dev, path })
    }

    /// Opens a hidraw node (as named by a hotplug event).
    pub fn open_path(path: &str) -> Result<Self, HidError> {
        let api = hidapi::HidApi::new().map_err(HidError::Init)?;
        let c = std::ffi::CString::new(path).map_err(|_| HidError::Io {
            op: "open",
            path: path.into(),
            detail: "path contains a NUL byte".into(),
        })?;
        let dev = api.open_path(&c).map_err(|source| HidError::Open {
            path: path.into(),
            source,
        })?;
        Ok(Self {
            dev,
            path: path.into(),
        })
    }

    /// Maps a hidapi failure: a device whose node has disappeared is `Disconnected`.
    fn err(&self, op: &'static str, e: hidapi::HidError) -> HidError {
        if !std::path::Path::new(&self.path).exists() {
            HidError::Disconnected {
                path: self.path.clone(),
            }
        } else {
            HidError::Io {
                op,
                path: self.path.clone(),
                detail: e.to_string(),
            }
        }
    }
}

impl HidTransport for HidapiTransport {
    fn path(&self) -> &str {
        &self.path
    }

    fn read_input(&mut self, buf: &mut [u8], timeout_ms: i32) -> Result<usize, HidError> {
        self.dev
            .read_timeout(buf, timeout_ms)
            .map_err(|e| self.err("read", e))
    }

    fn write_output(&mut self, data: &[u8]) -> Result<(), HidError> {
        self.dev
            .write(data)
            .map(|_| ())
            .map_err(|e| self.err("write", e))
    }

    fn get_feature(&mut self, buf: &mut [u8]) -> Result<usize, HidError> {
        self.dev
            .get_feature_report(buf)
            .map_err(|e| self.err("get feature report", e))
    }

    fn send_feature(&mut self, data: &[u8]) -> Result<(), HidError> {
        self.dev
            .send_feature_report(data)
            .map_err(|e| self.err("send feature report", e))
    }
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
