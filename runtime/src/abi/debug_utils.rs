//! XR_EXT_debug_utils: messengers (the app's callbacks), object names, session labels,
//! and app-submitted messages. Messengers hear the app's own submissions and every
//! warning and error the runtime logs (a `tracing` layer installed with the runtime's
//! logging forwards them), with the session's open label regions attached.

use super::instance::{instance, lock};
use super::marshal::{done, guard};
use crate::core::messenger::Messenger;
use crate::core::registry::{Kind, REGISTRY};
use crate::core::session::session;
use openxr_sys as xr;
use openxr_sys::Handle as _;
use std::ffi::{CStr, CString};

fn enabled(h: xr::Instance) -> Result<(), xr::Result> {
    let i = instance(h)?;
    if lock(&i).enabled("XR_EXT_debug_utils") {
        Ok(())
    } else {
        Err(xr::Result::ERROR_FUNCTION_UNSUPPORTED)
    }
}

fn cstr(p: *const std::ffi::c_char) -> Option<String> {
    // SAFETY: the app passes NUL-terminated strings or null.
    (!p.is_null()).then(|| unsafe { CStr::from_ptr(p) }.to_string_lossy().into_owned())
}

pub(super) unsafe extern "system" fn set_debug_utils_object_name(
    h: xr::Instance,
    info: *const xr::DebugUtilsObjectNameInfoEXT,
) -> xr::Result {
    guard("xrSetDebugUtilsObjectNameEXT", || {
        done((|| {
            enabled(h)?;
            let i = instance(h)?;
            // SAFETY: the app passes a valid structure, or null (refused).
            let info = unsafe { super::marshal::input(info) }?;
            if info.object_type == xr::ObjectType::UNKNOWN || info.object_handle == 0 {
                return Err(xr::Result::ERROR_VALIDATION_FAILURE);
            }
            let key = (info.object_type.into_raw(), info.object_handle);
            let mut names = i.names.lock().unwrap_or_else(|p| p.into_inner());
            match cstr(info.object_name).filter(|n| !n.is_empty()) {
                Some(n) => names.insert(key, n),
                None => names.remove(&key),
            };
            Ok(())
        })())
    })
}

pub(super) unsafe extern "system" fn create_debug_utils_messenger(
    h: xr::Instance,
    info: *const xr::DebugUtilsMessengerCreateInfoEXT,
    out: *mut xr::DebugUtilsMessengerEXT,
) -> xr::Result {
    guard("xrCreateDebugUtilsMessengerEXT", || {
        done((|| {
            enabled(h)?;
            let i = instance(h)?;
            // SAFETY: the app passes a valid structure, or null (refused).
            let info = unsafe { super::marshal::input(info) }?;
            if out.is_null() {
                return Err(xr::Result::ERROR_VALIDATION_FAILURE);
            }
            let callback = info
                .user_callback
                .ok_or(xr::Result::ERROR_VALIDATION_FAILURE)?;
            if info.message_severities.is_empty() || info.message_types.is_empty() {
                return Err(xr::Result::ERROR_VALIDATION_FAILURE);
            }
            let (m, _) = i.messengers.adopt(Messenger::new(
                h.into_raw(),
                info.message_severities,
                info.message_types,
                callback,
                info.user_data as usize,
            ));
            // SAFETY: checked non-null.
            unsafe { *out = xr::DebugUtilsMessengerEXT::from_raw(m) };
            Ok(())
        })())
    })
}

pub(super) unsafe extern "system" fn destroy_debug_utils_messenger(
    m: xr::DebugUtilsMessengerEXT,
) -> xr::Result {
    guard("xrDestroyDebugUtilsMessengerEXT", || {
        let removed = REGISTRY
            .get::<Messenger>(Kind::Messenger, m.into_raw())
            .and_then(|obj| crate::core::instance::get(obj.instance))
            .and_then(|i| i.messengers.remove(m.into_raw()));
        match removed {
            Some(_) => xr::Result::SUCCESS,
            None => xr::Result::ERROR_HANDLE_INVALID,
        }
    })
}

pub(super) unsafe extern "system" fn submit_debug_utils_message(
    h: xr::Instance,
    severity: xr::DebugUtilsMessageSeverityFlagsEXT,
    types: xr::DebugUtilsMessageTypeFlagsEXT,
    data: *const xr::DebugUtilsMessengerCallbackDataEXT,
) -> xr::Result {
    guard("xrSubmitDebugUtilsMessageEXT", || {
        done((|| {
            enabled(h)?;
            let i = instance(h)?;
            // SAFETY: the app passes a valid structure, or null (refused).
            let data = unsafe { super::marshal::input(data) }?;
            // One severity bit exactly; at least one type.
            if severity.into_raw().count_ones() != 1 || types.is_empty() || data.message.is_null() {
                return Err(xr::Result::ERROR_VALIDATION_FAILURE);
            }
            // The objects with the names the app gave them (xrSetDebugUtilsObjectNameEXT
            // wins), and the open labels of the sessions among them, most recent first.
            // SAFETY: `object_count` structures by contract.
            let objects = unsafe { super::marshal::array(data.objects, data.object_count, true) }?;
            let mut owned: Vec<CString> = Vec::new();
            let mut objs: Vec<xr::DebugUtilsObjectNameInfoEXT> = objects.to_vec();
            {
                let names = i.names.lock().unwrap_or_else(|p| p.into_inner());
                for o in objs.iter_mut() {
                    let key = (o.object_type.into_raw(), o.object_handle);
                    if let Some(c) = names.get(&key).and_then(|n| CString::new(n.as_str()).ok()) {
                        o.object_name = c.as_ptr();
                        owned.push(c);
                    }
                }
            }
            drop(i);
            let mut label_names: Vec<CString> = Vec::new();
            for o in &objs {
                if o.object_type == xr::ObjectType::SESSION {
                    for l in labels(o.object_handle).into_iter().rev() {
                        label_names.extend(CString::new(l).ok());
                    }
                }
            }
            let session_labels: Vec<xr::DebugUtilsLabelEXT> = label_names
                .iter()
                .map(|n| xr::DebugUtilsLabelEXT {
                    ty: xr::StructureType::DEBUG_UTILS_LABEL_EXT,
                    next: std::ptr::null(),
                    label_name: n.as_ptr(),
                })
                .collect();
            let full = xr::DebugUtilsMessengerCallbackDataEXT {
                object_count: objs.len() as u32,
                objects: if objs.is_empty() {
                    std::ptr::null_mut()
                } else {
                    objs.as_mut_ptr()
                },
                session_label_count: session_labels.len() as u32,
                session_labels: if session_labels.is_empty() {
                    std::ptr::null_mut()
                } else {
                    session_labels.as_ptr().cast_mut()
                },
                ..*data
            };
            super::marshal::deliver(Some(h.into_raw()), severity, types, &full);
            drop((owned, label_names));
            Ok(())
        })())
    })
}

fn label(
    name: &'static str,
    s: xr::Session,
    info: *const xr::DebugUtilsLabelEXT,
    f: impl FnOnce(&mut Vec<(String, bool)>, String),
) -> xr::Result {
    guard(name, || {
        done((|| {
            let sess = session(s)?;
            enabled(xr::Instance::from_raw(sess.instance))?;
            // SAFETY: the app passes a valid structure, or null (refused).
            let info = unsafe { super::marshal::input(info) }?;
            let name = cstr(info.label_name).ok_or(xr::Result::ERROR_VALIDATION_FAILURE)?;
            f(
                &mut sess.labels.lock().unwrap_or_else(|p| p.into_inner()),
                name,
            );
            Ok(())
        })())
    })
}

pub(super) unsafe extern "system" fn session_begin_debug_utils_label_region(
    s: xr::Session,
    info: *const xr::DebugUtilsLabelEXT,
) -> xr::Result {
    label(
        "xrSessionBeginDebugUtilsLabelRegionEXT",
        s,
        info,
        |stack, name| {
            // A begin closes an inserted label, as the specification says.
            if stack.last().is_some_and(|l| l.1) {
                stack.pop();
            }
            stack.push((name, false));
        },
    )
}

pub(super) unsafe extern "system" fn session_insert_debug_utils_label(
    s: xr::Session,
    info: *const xr::DebugUtilsLabelEXT,
) -> xr::Result {
    label(
        "xrSessionInsertDebugUtilsLabelEXT",
        s,
        info,
        |stack, name| {
            if stack.last().is_some_and(|l| l.1) {
                stack.pop();
            }
            stack.push((name, true));
        },
    )
}

pub(super) unsafe extern "system" fn session_end_debug_utils_label_region(
    s: xr::Session,
) -> xr::Result {
    guard("xrSessionEndDebugUtilsLabelRegionEXT", || {
        done((|| {
            let sess = session(s)?;
            enabled(xr::Instance::from_raw(sess.instance))?;
            let mut stack = sess.labels.lock().unwrap_or_else(|p| p.into_inner());
            if stack.last().is_some_and(|l| l.1) {
                stack.pop();
            }
            // Ending a region that was never begun does nothing: the Khronos loader,
            // which implements labels for runtimes without the extension, accepts it, and
            // apps must see the same behaviour either way.
            if stack.pop().is_none() {
                tracing::debug!("xrSessionEndDebugUtilsLabelRegionEXT with no region open");
            }
            Ok(())
        })())
    })
}

/// The open label regions of a session, outermost first (for tests and messages).
pub fn labels(session: u64) -> Vec<String> {
    crate::core::session::session(xr::Session::from_raw(session))
        .map(|s| {
            let l = s.labels.lock().unwrap_or_else(|p| p.into_inner());
            l.iter().map(|(n, _)| n.clone()).collect()
        })
        .unwrap_or_default()
}
