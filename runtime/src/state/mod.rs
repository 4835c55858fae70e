//! The runtime's objects and rules, in plain Rust: no unsafe, no FFI types beyond plain
//! numbers. The ABI layer (`abi`) translates between these and the C structures.

pub mod action;
pub mod layer;
pub mod path;
pub mod session;
pub mod space;
pub mod swapchain;
pub mod visibility;

use leasehold_drivers::api::DisplayInfo;
use std::collections::{BTreeSet, VecDeque};

pub use path::{PathError, PathTable};

/// Extensions this runtime implements, with their spec versions. Only these are
/// advertised, and an extension's functions exist only for instances that enabled it.
pub const EXTENSIONS: &[(&str, u32)] = &[
    ("XR_KHR_convert_timespec_time", 1),
    ("XR_MND_headless", 2),
    ("XR_FB_display_refresh_rate", 1),
    ("XR_KHR_vulkan_enable", 8),
    ("XR_KHR_vulkan_enable2", 2),
    ("XR_KHR_composition_layer_depth", 6),
    ("XR_EXT_debug_utils", 5),
    ("XR_KHR_locate_spaces", 1),
    ("XR_EXT_local_floor", 1),
    ("XR_KHR_visibility_mask", 2),
    ("XR_KHR_composition_layer_cylinder", 4),
    ("XR_KHR_composition_layer_equirect", 3),
    ("XR_KHR_composition_layer_equirect2", 1),
    ("XR_KHR_composition_layer_cube", 8),
    ("XR_EXT_eye_gaze_interaction", 2),
];

/// The system id every instance hands out for its (one) head-mounted display.
pub const HMD_SYSTEM_ID: u64 = 1;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CreateError {
    /// Major version not 1, or a minor version this runtime does not know.
    ApiVersionUnsupported,
    ExtensionNotPresent(String),
    NameInvalid(&'static str),
}

/// Accepts OpenXR 1.0 and 1.1 applications.
pub fn negotiate_api_version(major: u16, minor: u16) -> Result<(u16, u16), CreateError> {
    match (major, minor) {
        (1, 0) | (1, 1) => Ok((major, minor)),
        _ => Err(CreateError::ApiVersionUnsupported),
    }
}

/// What the app asked for in xrCreateInstance, already read out of C memory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CreateRequest {
    pub application_name: String,
    pub engine_name: String,
    pub api_version: (u16, u16),
    pub extensions: Vec<String>,
    pub layers: Vec<String>,
}

/// An instance's events (xrPollEvent), oldest first.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    InstanceLossPending {
        loss_time_ns: i64,
    },
    SessionStateChanged {
        session: u64,
        state: session::SessionState,
        time_ns: i64,
    },
    DisplayRefreshRateChanged {
        from_hz: f32,
        to_hz: f32,
    },
    InteractionProfileChanged {
        session: u64,
    },
}

impl Event {
    /// The session an event is about, if any.
    pub fn session(&self) -> Option<u64> {
        match self {
            Event::SessionStateChanged { session, .. }
            | Event::InteractionProfileChanged { session } => Some(*session),
            Event::InstanceLossPending { .. } | Event::DisplayRefreshRateChanged { .. } => None,
        }
    }
}

/// The headset an instance drives (chosen once, when the instance is created).
#[derive(Clone)]
pub struct Headset(pub std::sync::Arc<dyn leasehold_drivers::api::Hmd>);

impl std::fmt::Debug for Headset {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("Headset").field(&self.0.info().name).finish()
    }
}

impl PartialEq for Headset {
    fn eq(&self, other: &Self) -> bool {
        std::sync::Arc::ptr_eq(&self.0, &other.0)
    }
}

/// Where an instance's frames go (chosen once, with the headset): the display, or why
/// the headset's display was required and could not be had.
#[derive(Clone)]
pub struct Screen(pub Result<std::sync::Arc<leasehold_compositor::kms::display::Display>, String>);

impl std::fmt::Debug for Screen {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.0 {
            Ok(d) => f.debug_tuple("Screen").field(&d.describe()).finish(),
            Err(e) => f.debug_tuple("Screen").field(e).finish(),
        }
    }
}

impl PartialEq for Screen {
    fn eq(&self, other: &Self) -> bool {
        match (&self.0, &other.0) {
            (Ok(a), Ok(b)) => std::sync::Arc::ptr_eq(a, b),
            (Err(a), Err(b)) => a == b,
            _ => false,
        }
    }
}

/// The system (the headset) as xrGetSystemProperties and the view queries see it.
#[derive(Debug, Clone, PartialEq)]
pub struct SystemInfo {
    pub headset: Headset,
    pub screen: Screen,
    pub name: String,
    pub vendor_id: u32,
    pub max_layer_count: u32,
    pub max_swapchain_size: u32,
    pub orientation_tracking: bool,
    pub position_tracking: bool,
    pub display: DisplayInfo,
}

#[derive(Debug)]
pub struct Instance {
    pub application_name: String,
    pub api_version: (u16, u16),
    pub extensions: BTreeSet<String>,
    pub paths: PathTable,
    pub events: VecDeque<Event>,
    pub system: SystemInfo,
}

impl Instance {
    /// Checks the request, then assembles the system (`system`: the headset is chosen
    /// only for a request that is valid).
    pub fn create(
        req: &CreateRequest,
        system: impl FnOnce() -> SystemInfo,
    ) -> Result<Instance, CreateError> {
        if req.application_name.is_empty() {
            return Err(CreateError::NameInvalid("application name is empty"));
        }
        let api_version = negotiate_api_version(req.api_version.0, req.api_version.1)?;
        // The loader loads the API layers the app names and passes their names on; the
        // layers sit between the app and the runtime, so there is nothing for the runtime
        // to do with the names (rejecting them would refuse every app that asks for one).
        if !req.layers.is_empty() {
            tracing::debug!(layers = ?req.layers, "the app enabled API layers");
        }
        let mut extensions = BTreeSet::new();
        for e in &req.extensions {
            if !EXTENSIONS.iter().any(|(n, _)| n == e) {
                return Err(CreateError::ExtensionNotPresent(e.clone()));
            }
            extensions.insert(e.clone());
        }
        tracing::info!(
            app = %req.application_name,
            engine = %req.engine_name,
            api = ?api_version,
            ?extensions,
            "instance created"
        );
        Ok(Instance {
            application_name: req.application_name.clone(),
            api_version,
            extensions,
            paths: PathTable::default(),
            events: VecDeque::new(),
            system: system(),
        })
    }

    pub fn enabled(&self, extension: &str) -> bool {
        self.extensions.contains(extension)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn system() -> SystemInfo {
        let h = leasehold_drivers::simulated::SimulatedHmd::looking_around(0);
        SystemInfo {
            headset: Headset(std::sync::Arc::new(
                leasehold_drivers::simulated::SimulatedHmd::looking_around(0),
            )),
            screen: Screen(Ok(std::sync::Arc::new(
                leasehold_compositor::kms::display::Display::Headless { why: "test".into() },
            ))),
            name: "test".into(),
            vendor_id: 0,
            max_layer_count: 16,
            max_swapchain_size: 4096,
            orientation_tracking: true,
            position_tracking: false,
            display: leasehold_drivers::api::Hmd::display(&h),
        }
    }

    fn req() -> CreateRequest {
        CreateRequest {
            application_name: "app".into(),
            engine_name: String::new(),
            api_version: (1, 0),
            extensions: vec![],
            layers: vec![],
        }
    }

    #[test]
    fn versions_extensions_and_names_are_checked() {
        assert!(Instance::create(&req(), system).is_ok());
        let r = CreateRequest {
            api_version: (1, 1),
            extensions: vec!["XR_KHR_convert_timespec_time".into()],
            ..req()
        };
        let i = Instance::create(&r, system).unwrap();
        assert!(i.enabled("XR_KHR_convert_timespec_time"));
        for (maj, min) in [(2, 0), (1, 2), (0, 9)] {
            let r = CreateRequest {
                api_version: (maj, min),
                ..req()
            };
            assert_eq!(
                Instance::create(&r, system).unwrap_err(),
                CreateError::ApiVersionUnsupported
            );
        }
        let r = CreateRequest {
            extensions: vec!["XR_FB_nonexistent".into()],
            ..req()
        };
        assert!(matches!(
            Instance::create(&r, system),
            Err(CreateError::ExtensionNotPresent(_))
        ));
        let r = CreateRequest {
            layers: vec!["XR_APILAYER_LUNARG_core_validation".into()],
            ..req()
        };
        assert!(
            Instance::create(&r, system).is_ok(),
            "API layer names the loader passes on are accepted"
        );
        let r = CreateRequest {
            application_name: String::new(),
            ..req()
        };
        assert!(matches!(
            Instance::create(&r, system),
            Err(CreateError::NameInvalid(_))
        ));
    }
}
