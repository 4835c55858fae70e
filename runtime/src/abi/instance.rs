//! Instances at the ABI: creation and destruction, properties, the system and its view
//! configurations, events, paths, time conversion, result and structure type names.
//! Also the instance lookup every other file uses.

use super::marshal::{
    done, fixed_str, guard, input, output, put_str, result_name, string_list, structure_type_name,
    two_call, two_call_copy, walk_chain, xr_state,
};
use crate::core::instance::{self as tree, InstanceNode};
use crate::state::{self, CreateError, CreateRequest, Instance, PathError};
use openxr_sys as xr;
use openxr_sys::Handle as _;
use std::ffi::{CStr, c_char};
use std::sync::{Arc, MutexGuard};

/// The live instance `h` names.
pub(super) fn instance(h: xr::Instance) -> Result<Arc<InstanceNode>, xr::Result> {
    tree::get(h.into_raw()).ok_or(xr::Result::ERROR_HANDLE_INVALID)
}

/// The instance's own state.
pub(super) fn lock(i: &InstanceNode) -> MutexGuard<'_, Instance> {
    i.lock()
}

pub(super) unsafe extern "system" fn enumerate_instance_extension_properties(
    layer_name: *const c_char,
    capacity: u32,
    count_out: *mut u32,
    properties: *mut xr::ExtensionProperties,
) -> xr::Result {
    guard("xrEnumerateInstanceExtensionProperties", || {
        if !layer_name.is_null() {
            return xr::Result::ERROR_API_LAYER_NOT_PRESENT;
        }
        // SAFETY: the two-call contract of the entry point.
        done(unsafe {
            two_call(
                state::EXTENSIONS,
                capacity,
                count_out,
                properties,
                |p, (n, v)| {
                    if p.ty != xr::StructureType::EXTENSION_PROPERTIES {
                        return Err(xr::Result::ERROR_VALIDATION_FAILURE);
                    }
                    put_str(&mut p.extension_name, n);
                    p.extension_version = *v;
                    Ok(())
                },
            )
        })
    })
}

pub(super) unsafe extern "system" fn enumerate_api_layer_properties(
    capacity: u32,
    count_out: *mut u32,
    properties: *mut xr::ApiLayerProperties,
) -> xr::Result {
    guard("xrEnumerateApiLayerProperties", || {
        let none: [(); 0] = [];
        // SAFETY: the two-call contract of the entry point.
        done(unsafe { two_call(&none, capacity, count_out, properties, |_, _| Ok(())) })
    })
}

pub(super) unsafe extern "system" fn create_instance(
    info: *const xr::InstanceCreateInfo,
    out: *mut xr::Instance,
) -> xr::Result {
    guard("xrCreateInstance", || {
        if info.is_null() || out.is_null() {
            return xr::Result::ERROR_VALIDATION_FAILURE;
        }
        // SAFETY: checked non-null; the app passes a valid create-info.
        let info = unsafe { &*info };
        if info.ty != xr::StructureType::INSTANCE_CREATE_INFO {
            return xr::Result::ERROR_VALIDATION_FAILURE;
        }
        let read = || -> Result<CreateRequest, xr::Result> {
            let app = &info.application_info;
            let v = app.api_version;
            Ok(CreateRequest {
                application_name: fixed_str(&app.application_name)?,
                engine_name: fixed_str(&app.engine_name)?,
                api_version: (v.major(), v.minor()),
                // SAFETY: the create-info's arrays follow the two-count contract.
                extensions: unsafe {
                    string_list(info.enabled_extension_names, info.enabled_extension_count)?
                },
                // SAFETY: as above.
                layers: unsafe {
                    string_list(info.enabled_api_layer_names, info.enabled_api_layer_count)?
                },
            })
        };
        let req = match read() {
            Ok(r) => r,
            Err(e) => return e,
        };
        match Instance::create(&req, || {
            crate::system::assemble(crate::core::session::now_ns())
        }) {
            Ok(i) => {
                let h = tree::create(i);
                // SAFETY: checked non-null.
                unsafe { *out = xr::Instance::from_raw(h) };
                xr::Result::SUCCESS
            }
            Err(CreateError::ApiVersionUnsupported) => xr::Result::ERROR_API_VERSION_UNSUPPORTED,
            Err(CreateError::ExtensionNotPresent(e)) => {
                tracing::warn!(extension = %e, "app asked for an extension Leasehold does not offer");
                xr::Result::ERROR_EXTENSION_NOT_PRESENT
            }
            Err(CreateError::NameInvalid(_)) => xr::Result::ERROR_NAME_INVALID,
        }
    })
}

pub(super) unsafe extern "system" fn destroy_instance(h: xr::Instance) -> xr::Result {
    guard("xrDestroyInstance", || match tree::destroy(h.into_raw()) {
        Some(i) => {
            // Everything the instance owns goes with it (its sessions closed first).
            let children = i.sessions.len();
            drop(i);
            tracing::info!(sessions = children, "instance destroyed");
            xr::Result::SUCCESS
        }
        None => xr::Result::ERROR_HANDLE_INVALID,
    })
}

pub(super) unsafe extern "system" fn get_instance_properties(
    h: xr::Instance,
    props: *mut xr::InstanceProperties,
) -> xr::Result {
    guard("xrGetInstanceProperties", || {
        done((|| {
            let _i = instance(h)?;
            // SAFETY: the app passes a valid structure, or null (refused).
            let p = unsafe { output(props) }?;
            let (maj, min, patch) = crate::VERSION;
            p.runtime_version = xr::Version::new(maj, min, patch);
            put_str(&mut p.runtime_name, "Leasehold");
            Ok(())
        })())
    })
}

pub(super) unsafe extern "system" fn poll_event(
    h: xr::Instance,
    buf: *mut xr::EventDataBuffer,
) -> xr::Result {
    guard("xrPollEvent", || {
        let i = match instance(h) {
            Ok(i) => i,
            Err(e) => return e,
        };
        if buf.is_null() {
            return xr::Result::ERROR_VALIDATION_FAILURE;
        }
        // SAFETY: checked non-null; an XrEventDataBuffer is writable for its size.
        let b = unsafe { &mut *buf };
        if b.ty != xr::StructureType::EVENT_DATA_BUFFER {
            return xr::Result::ERROR_VALIDATION_FAILURE;
        }
        // Popped first: the instance's lock is not held in the arms below.
        let event = lock(&i).events.pop_front();
        match event {
            None => xr::Result::EVENT_UNAVAILABLE,
            Some(state::Event::SessionStateChanged {
                session: sh,
                state: st,
                time_ns,
            }) => {
                let e = xr::EventDataSessionStateChanged {
                    ty: xr::StructureType::EVENT_DATA_SESSION_STATE_CHANGED,
                    next: std::ptr::null(),
                    session: xr::Session::from_raw(sh),
                    state: xr_state(st),
                    time: xr::Time::from_nanos(time_ns),
                };
                // SAFETY: the event buffer is larger than any event structure and ours
                // to write for this call.
                unsafe { std::ptr::write(buf.cast::<xr::EventDataSessionStateChanged>(), e) };
                if st == state::session::SessionState::LossPending
                    && let Ok(s) = crate::core::session::session(xr::Session::from_raw(sh))
                {
                    // The app knows now: from here on, calls on the session are
                    // XR_ERROR_SESSION_LOST.
                    crate::core::session::slock(&s).session.loss_reported();
                }
                xr::Result::SUCCESS
            }
            Some(state::Event::DisplayRefreshRateChanged { from_hz, to_hz }) => {
                let e = xr::EventDataDisplayRefreshRateChangedFB {
                    ty: xr::StructureType::EVENT_DATA_DISPLAY_REFRESH_RATE_CHANGED_FB,
                    next: std::ptr::null(),
                    from_display_refresh_rate: from_hz,
                    to_display_refresh_rate: to_hz,
                };
                // SAFETY: the event buffer is larger than any event structure and ours
                // to write for this call.
                unsafe {
                    std::ptr::write(buf.cast::<xr::EventDataDisplayRefreshRateChangedFB>(), e)
                };
                xr::Result::SUCCESS
            }
            Some(state::Event::InteractionProfileChanged { session: sh }) => {
                let e = xr::EventDataInteractionProfileChanged {
                    ty: xr::StructureType::EVENT_DATA_INTERACTION_PROFILE_CHANGED,
                    next: std::ptr::null(),
                    session: xr::Session::from_raw(sh),
                };
                // SAFETY: the event buffer is larger than any event structure and ours
                // to write for this call.
                unsafe { std::ptr::write(buf.cast::<xr::EventDataInteractionProfileChanged>(), e) };
                xr::Result::SUCCESS
            }
            Some(state::Event::InstanceLossPending { loss_time_ns }) => {
                let e = xr::EventDataInstanceLossPending {
                    ty: xr::StructureType::EVENT_DATA_INSTANCE_LOSS_PENDING,
                    next: std::ptr::null(),
                    loss_time: xr::Time::from_nanos(loss_time_ns),
                };
                // SAFETY: the event buffer is larger than any event structure; the
                // buffer is exclusively ours to write for this call.
                unsafe { std::ptr::write(buf.cast::<xr::EventDataInstanceLossPending>(), e) };
                xr::Result::SUCCESS
            }
        }
    })
}

/// Writes `name` into an app's fixed-size string buffer of `size` chars.
///
/// # Safety
/// `buffer` must be null or writable for `size` chars.
unsafe fn write_name(h: xr::Instance, buffer: *mut c_char, size: usize, name: &str) -> xr::Result {
    done((|| {
        instance(h)?;
        if buffer.is_null() {
            return Err(xr::Result::ERROR_VALIDATION_FAILURE);
        }
        // SAFETY: non-null and `size` chars long by the caller's contract.
        let b = unsafe { std::slice::from_raw_parts_mut(buffer, size) };
        put_str(b, name);
        Ok(())
    })())
}

pub(super) unsafe extern "system" fn result_to_string(
    h: xr::Instance,
    value: xr::Result,
    buffer: *mut c_char,
) -> xr::Result {
    // SAFETY: the spec sizes the buffer XR_MAX_RESULT_STRING_SIZE.
    guard("xrResultToString", || unsafe {
        write_name(h, buffer, xr::MAX_RESULT_STRING_SIZE, &result_name(value))
    })
}

pub(super) unsafe extern "system" fn structure_type_to_string(
    h: xr::Instance,
    value: xr::StructureType,
    buffer: *mut c_char,
) -> xr::Result {
    guard("xrStructureTypeToString", || {
        let name = structure_type_name(value);
        // SAFETY: the spec sizes the buffer XR_MAX_STRUCTURE_NAME_SIZE.
        unsafe { write_name(h, buffer, xr::MAX_STRUCTURE_NAME_SIZE, &name) }
    })
}

// ---------------------------------------------------------------------------------
// System and views
// ---------------------------------------------------------------------------------

pub(super) fn system_of(
    h: xr::Instance,
    id: xr::SystemId,
) -> Result<Arc<InstanceNode>, xr::Result> {
    let i = instance(h)?;
    if id.into_raw() != state::HMD_SYSTEM_ID {
        return Err(xr::Result::ERROR_SYSTEM_INVALID);
    }
    Ok(i)
}

pub(super) unsafe extern "system" fn get_system(
    h: xr::Instance,
    info: *const xr::SystemGetInfo,
    out: *mut xr::SystemId,
) -> xr::Result {
    guard("xrGetSystem", || {
        done((|| {
            instance(h)?;
            // SAFETY: the app passes a valid structure, or null (refused).
            let info = unsafe { input(info) }?;
            if out.is_null() {
                return Err(xr::Result::ERROR_VALIDATION_FAILURE);
            }
            match info.form_factor {
                xr::FormFactor::HEAD_MOUNTED_DISPLAY => {
                    // SAFETY: checked non-null.
                    unsafe { *out = xr::SystemId::from_raw(state::HMD_SYSTEM_ID) };
                    Ok(())
                }
                // A handheld display, or a form factor of an extension this runtime
                // does not know: there is no such system here.
                other => {
                    tracing::info!(form_factor = ?other, "xrGetSystem: no system of this form factor");
                    Err(xr::Result::ERROR_FORM_FACTOR_UNSUPPORTED)
                }
            }
        })())
    })
}

pub(super) unsafe extern "system" fn get_system_properties(
    h: xr::Instance,
    id: xr::SystemId,
    props: *mut xr::SystemProperties,
) -> xr::Result {
    guard("xrGetSystemProperties", || {
        done((|| {
            let i = system_of(h, id)?;
            // SAFETY: the app passes a valid structure, or null (refused).
            let p = unsafe { output(props) }?;
            let inst = lock(&i);
            let s = &inst.system;
            p.system_id = id;
            p.vendor_id = s.vendor_id;
            put_str(&mut p.system_name, &s.name);
            p.graphics_properties.max_layer_count = s.max_layer_count;
            p.graphics_properties.max_swapchain_image_width = s.max_swapchain_size;
            p.graphics_properties.max_swapchain_image_height = s.max_swapchain_size;
            p.tracking_properties.orientation_tracking = s.orientation_tracking.into();
            p.tracking_properties.position_tracking = s.position_tracking.into();
            // Extension properties in the chain. No supported headset tracks the eyes.
            let gaze = inst.enabled("XR_EXT_eye_gaze_interaction");
            let visit = |ty: xr::StructureType, at: *const std::ffi::c_void| {
                if ty == xr::StructureType::SYSTEM_EYE_GAZE_INTERACTION_PROPERTIES_EXT && gaze {
                    // SAFETY: the type says what it is; the app's output chain is writable.
                    let e = unsafe { &mut *(at as *mut xr::SystemEyeGazeInteractionPropertiesEXT) };
                    e.supports_eye_gaze_interaction = false.into();
                }
                Ok(())
            };
            // SAFETY: the output structure's `next` chain, as the app built it.
            unsafe { walk_chain(p.next, visit) }
        })())
    })
}

pub(super) unsafe extern "system" fn enumerate_view_configurations(
    h: xr::Instance,
    id: xr::SystemId,
    capacity: u32,
    count_out: *mut u32,
    out: *mut xr::ViewConfigurationType,
) -> xr::Result {
    guard("xrEnumerateViewConfigurations", || {
        done((|| {
            system_of(h, id)?;
            let types = [xr::ViewConfigurationType::PRIMARY_STEREO];
            // SAFETY: the two-call contract of the entry point.
            unsafe { two_call_copy(&types, capacity, count_out, out) }
        })())
    })
}

pub(super) unsafe extern "system" fn get_view_configuration_properties(
    h: xr::Instance,
    id: xr::SystemId,
    ty: xr::ViewConfigurationType,
    props: *mut xr::ViewConfigurationProperties,
) -> xr::Result {
    guard("xrGetViewConfigurationProperties", || {
        done((|| {
            system_of(h, id)?;
            if ty != xr::ViewConfigurationType::PRIMARY_STEREO {
                return Err(xr::Result::ERROR_VIEW_CONFIGURATION_TYPE_UNSUPPORTED);
            }
            // SAFETY: the app passes a valid structure, or null (refused).
            let p = unsafe { output(props) }?;
            p.view_configuration_type = ty;
            p.fov_mutable = false.into();
            Ok(())
        })())
    })
}

pub(super) unsafe extern "system" fn enumerate_view_configuration_views(
    h: xr::Instance,
    id: xr::SystemId,
    ty: xr::ViewConfigurationType,
    capacity: u32,
    count_out: *mut u32,
    out: *mut xr::ViewConfigurationView,
) -> xr::Result {
    guard("xrEnumerateViewConfigurationViews", || {
        done((|| {
            let i = system_of(h, id)?;
            if ty != xr::ViewConfigurationType::PRIMARY_STEREO {
                return Err(xr::Result::ERROR_VIEW_CONFIGURATION_TYPE_UNSUPPORTED);
            }
            let d = lock(&i).system.display.clone();
            let max = lock(&i).system.max_swapchain_size;
            let views = [(d.eye_render_width, d.eye_render_height); 2];
            // SAFETY: the two-call contract of the entry point.
            unsafe {
                two_call(&views, capacity, count_out, out, |o, (w, hh)| {
                    if o.ty != xr::StructureType::VIEW_CONFIGURATION_VIEW {
                        return Err(xr::Result::ERROR_VALIDATION_FAILURE);
                    }
                    o.recommended_image_rect_width = *w;
                    o.recommended_image_rect_height = *hh;
                    o.max_image_rect_width = max;
                    o.max_image_rect_height = max;
                    o.recommended_swapchain_sample_count = 1;
                    o.max_swapchain_sample_count = 1;
                    Ok(())
                })
            }
        })())
    })
}

pub(super) unsafe extern "system" fn enumerate_environment_blend_modes(
    h: xr::Instance,
    id: xr::SystemId,
    ty: xr::ViewConfigurationType,
    capacity: u32,
    count_out: *mut u32,
    out: *mut xr::EnvironmentBlendMode,
) -> xr::Result {
    guard("xrEnumerateEnvironmentBlendModes", || {
        done((|| {
            system_of(h, id)?;
            if ty != xr::ViewConfigurationType::PRIMARY_STEREO {
                return Err(xr::Result::ERROR_VIEW_CONFIGURATION_TYPE_UNSUPPORTED);
            }
            let modes = [xr::EnvironmentBlendMode::OPAQUE];
            // SAFETY: the two-call contract of the entry point.
            unsafe { two_call_copy(&modes, capacity, count_out, out) }
        })())
    })
}

// ---------------------------------------------------------------------------------
// Paths and time
// ---------------------------------------------------------------------------------

pub(super) fn path_err(e: PathError) -> xr::Result {
    match e {
        PathError::Format => xr::Result::ERROR_PATH_FORMAT_INVALID,
        PathError::Invalid => xr::Result::ERROR_PATH_INVALID,
    }
}

pub(super) unsafe extern "system" fn string_to_path(
    h: xr::Instance,
    s: *const c_char,
    out: *mut xr::Path,
) -> xr::Result {
    guard("xrStringToPath", || {
        done((|| {
            let i = instance(h)?;
            if s.is_null() || out.is_null() {
                return Err(xr::Result::ERROR_VALIDATION_FAILURE);
            }
            // SAFETY: checked non-null; NUL-terminated by contract.
            let s = unsafe { CStr::from_ptr(s) }
                .to_str()
                .map_err(|_| xr::Result::ERROR_PATH_FORMAT_INVALID)?;
            let id = lock(&i).paths.intern(s).map_err(path_err)?;
            // SAFETY: checked non-null.
            unsafe { *out = xr::Path::from_raw(id) };
            Ok(())
        })())
    })
}

pub(super) unsafe extern "system" fn path_to_string(
    h: xr::Instance,
    path: xr::Path,
    capacity: u32,
    count_out: *mut u32,
    buffer: *mut c_char,
) -> xr::Result {
    guard("xrPathToString", || {
        done((|| {
            let i = instance(h)?;
            let inst = lock(&i);
            let name = inst.paths.name(path.into_raw()).map_err(path_err)?;
            let mut bytes: Vec<c_char> = name.bytes().map(|b| b as c_char).collect();
            bytes.push(0);
            // SAFETY: the two-call contract of the entry point.
            unsafe { two_call_copy(&bytes, capacity, count_out, buffer) }
        })())
    })
}

pub(super) unsafe extern "system" fn convert_timespec_time_to_time(
    h: xr::Instance,
    ts: *const libc::timespec,
    out: *mut xr::Time,
) -> xr::Result {
    guard("xrConvertTimespecTimeToTimeKHR", || {
        done((|| {
            let i = instance(h)?;
            if !lock(&i).enabled("XR_KHR_convert_timespec_time") {
                return Err(xr::Result::ERROR_FUNCTION_UNSUPPORTED);
            }
            if ts.is_null() || out.is_null() {
                return Err(xr::Result::ERROR_VALIDATION_FAILURE);
            }
            // SAFETY: checked non-null.
            let ts = unsafe { &*ts };
            if ts.tv_sec < 0 || !(0..1_000_000_000).contains(&ts.tv_nsec) {
                return Err(xr::Result::ERROR_TIME_INVALID);
            }
            let ns = ts
                .tv_sec
                .checked_mul(1_000_000_000)
                .and_then(|s| s.checked_add(ts.tv_nsec))
                .ok_or(xr::Result::ERROR_TIME_INVALID)?;
            // XrTime is CLOCK_MONOTONIC nanoseconds in this runtime.
            // SAFETY: checked non-null.
            unsafe { *out = xr::Time::from_nanos(ns) };
            Ok(())
        })())
    })
}

pub(super) unsafe extern "system" fn convert_time_to_timespec_time(
    h: xr::Instance,
    time: xr::Time,
    out: *mut libc::timespec,
) -> xr::Result {
    guard("xrConvertTimeToTimespecTimeKHR", || {
        done((|| {
            let i = instance(h)?;
            if !lock(&i).enabled("XR_KHR_convert_timespec_time") {
                return Err(xr::Result::ERROR_FUNCTION_UNSUPPORTED);
            }
            if out.is_null() {
                return Err(xr::Result::ERROR_VALIDATION_FAILURE);
            }
            let ns = time.as_nanos();
            if ns <= 0 {
                return Err(xr::Result::ERROR_TIME_INVALID);
            }
            // SAFETY: checked non-null.
            unsafe {
                (*out).tv_sec = (ns / 1_000_000_000) as libc::time_t;
                (*out).tv_nsec = (ns % 1_000_000_000) as libc::c_long;
            }
            Ok(())
        })())
    })
}
