//! XR_EXT_debug_utils: messengers (the app's callbacks), object names, session labels,
//! and app-submitted messages. Messengers hear the app's own submissions and every
//! warning and error the runtime logs (a `tracing` layer installed with the runtime's
//! logging forwards them), with the session's open label regions attached.

use super::{done, guard, instance, lock};
use openxr_sys as xr;
use openxr_sys::Handle as _;
use std::cell::Cell;
use std::collections::HashMap;
use std::ffi::{CStr, CString, c_void};
use std::sync::Mutex;

struct Messenger {
    instance: u64,
    severities: xr::DebugUtilsMessageSeverityFlagsEXT,
    types: xr::DebugUtilsMessageTypeFlagsEXT,
    callback: xr::pfn::DebugUtilsMessengerCallbackEXT,
    /// The app's pointer, handed back untouched.
    user_data: usize,
}

static MESSENGERS: super::handles::HandleTable<Messenger> = super::handles::HandleTable::new(7);
/// (instance, object type, handle) → name.
type Names = HashMap<(u64, i32, u64), String>;
static NAMES: Mutex<Option<Names>> = Mutex::new(None);
/// Session → open label regions, outermost first; `true` marks an inserted label (it
/// closes at the next begin, insert or end).
type Labels = HashMap<u64, Vec<(String, bool)>>;
static LABELS: Mutex<Option<Labels>> = Mutex::new(None);

thread_local! {
    /// Set while a callback runs: a callback that calls back into the runtime must not
    /// hear about its own calls (that would recurse).
    static IN_CALLBACK: Cell<bool> = const { Cell::new(false) };
}

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

/// Forgets what an instance (or its sessions) named and created.
pub(super) fn forget(instance: u64) {
    MESSENGERS.remove_where(|m| m.instance == instance);
    if let Some(n) = NAMES.lock().unwrap_or_else(|p| p.into_inner()).as_mut() {
        n.retain(|k, _| k.0 != instance);
    }
}

pub(super) fn forget_session(session: u64) {
    if let Some(l) = LABELS.lock().unwrap_or_else(|p| p.into_inner()).as_mut() {
        l.remove(&session);
    }
}

/// Calls every messenger (of `only` instance, or all) that wants `severity`/`types`.
fn deliver(
    only: Option<u64>,
    severity: xr::DebugUtilsMessageSeverityFlagsEXT,
    types: xr::DebugUtilsMessageTypeFlagsEXT,
    data: &xr::DebugUtilsMessengerCallbackDataEXT,
) {
    if IN_CALLBACK.with(Cell::get) {
        return;
    }
    let mut targets = Vec::new();
    MESSENGERS.for_each(|m| {
        if only.is_none_or(|i| i == m.instance)
            && m.severities.intersects(severity)
            && m.types.intersects(types)
        {
            targets.push((m.callback, m.user_data));
        }
    });
    IN_CALLBACK.with(|c| c.set(true));
    for (cb, user) in targets {
        // SAFETY: the app's callback with the signature XR_EXT_debug_utils defines, its
        // own user pointer, and callback data alive for the call.
        unsafe { cb(severity, types, data, user as *mut c_void) };
    }
    IN_CALLBACK.with(|c| c.set(false));
}

/// A runtime message waiting to be delivered.
struct Queued {
    error: bool,
    function: CString,
    message: CString,
}

/// Messages logged since the last delivery. Logging happens anywhere (under the
/// runtime's locks, on the compositor's thread), so messages wait here and are delivered
/// by the next OpenXR call on an app thread as it returns, holding no lock.
static QUEUED: Mutex<Vec<Queued>> = Mutex::new(Vec::new());

/// At most this many undelivered messages are kept (the oldest are dropped), so an app
/// that stops calling the runtime does not make it grow without bound.
const QUEUE_MAX: usize = 256;

/// A runtime message (a logged warning or error) for the app's messengers.
pub fn queue(error: bool, function: &str, message: &str) {
    if MESSENGERS.is_empty() || IN_CALLBACK.with(Cell::get) {
        return;
    }
    let (Ok(message), Ok(function)) = (CString::new(message), CString::new(function)) else {
        return;
    };
    let mut q = QUEUED.lock().unwrap_or_else(|p| p.into_inner());
    if q.len() >= QUEUE_MAX {
        q.remove(0);
    }
    q.push(Queued {
        error,
        function,
        message,
    });
}

/// Delivers the queued runtime messages. Called by every OpenXR call as it returns, with
/// no runtime lock held; not from inside a messenger callback.
pub(super) fn deliver_queued() {
    if IN_CALLBACK.with(Cell::get) {
        return;
    }
    let queued = std::mem::take(&mut *QUEUED.lock().unwrap_or_else(|p| p.into_inner()));
    for q in queued {
        let data = xr::DebugUtilsMessengerCallbackDataEXT {
            ty: xr::StructureType::DEBUG_UTILS_MESSENGER_CALLBACK_DATA_EXT,
            next: std::ptr::null(),
            message_id: c"leasehold".as_ptr(),
            function_name: q.function.as_ptr(),
            message: q.message.as_ptr(),
            object_count: 0,
            objects: std::ptr::null_mut(),
            session_label_count: 0,
            session_labels: std::ptr::null_mut(),
        };
        let severity = if q.error {
            xr::DebugUtilsMessageSeverityFlagsEXT::ERROR
        } else {
            xr::DebugUtilsMessageSeverityFlagsEXT::WARNING
        };
        deliver(
            None,
            severity,
            xr::DebugUtilsMessageTypeFlagsEXT::GENERAL
                | xr::DebugUtilsMessageTypeFlagsEXT::VALIDATION,
            &data,
        );
    }
}

pub(super) unsafe extern "system" fn set_debug_utils_object_name(
    h: xr::Instance,
    info: *const xr::DebugUtilsObjectNameInfoEXT,
) -> xr::Result {
    guard(|| {
        done((|| {
            enabled(h)?;
            // SAFETY: the app passes a valid structure, or null (refused).
            let info = unsafe { super::input(info) }?;
            if info.object_type == xr::ObjectType::UNKNOWN || info.object_handle == 0 {
                return Err(xr::Result::ERROR_VALIDATION_FAILURE);
            }
            let key = (
                h.into_raw(),
                info.object_type.into_raw(),
                info.object_handle,
            );
            let mut names = NAMES.lock().unwrap_or_else(|p| p.into_inner());
            let names = names.get_or_insert_with(HashMap::new);
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
    guard(|| {
        done((|| {
            enabled(h)?;
            // SAFETY: the app passes a valid structure, or null (refused).
            let info = unsafe { super::input(info) }?;
            if out.is_null() {
                return Err(xr::Result::ERROR_VALIDATION_FAILURE);
            }
            let callback = info
                .user_callback
                .ok_or(xr::Result::ERROR_VALIDATION_FAILURE)?;
            if info.message_severities.is_empty() || info.message_types.is_empty() {
                return Err(xr::Result::ERROR_VALIDATION_FAILURE);
            }
            let m = MESSENGERS.insert(Messenger {
                instance: h.into_raw(),
                severities: info.message_severities,
                types: info.message_types,
                callback,
                user_data: info.user_data as usize,
            });
            // SAFETY: checked non-null.
            unsafe { *out = xr::DebugUtilsMessengerEXT::from_raw(m) };
            Ok(())
        })())
    })
}

pub(super) unsafe extern "system" fn destroy_debug_utils_messenger(
    m: xr::DebugUtilsMessengerEXT,
) -> xr::Result {
    guard(|| match MESSENGERS.remove(m.into_raw()) {
        Some(_) => xr::Result::SUCCESS,
        None => xr::Result::ERROR_HANDLE_INVALID,
    })
}

pub(super) unsafe extern "system" fn submit_debug_utils_message(
    h: xr::Instance,
    severity: xr::DebugUtilsMessageSeverityFlagsEXT,
    types: xr::DebugUtilsMessageTypeFlagsEXT,
    data: *const xr::DebugUtilsMessengerCallbackDataEXT,
) -> xr::Result {
    guard(|| {
        done((|| {
            enabled(h)?;
            // SAFETY: the app passes a valid structure, or null (refused).
            let data = unsafe { super::input(data) }?;
            // One severity bit exactly; at least one type.
            if severity.into_raw().count_ones() != 1 || types.is_empty() || data.message.is_null() {
                return Err(xr::Result::ERROR_VALIDATION_FAILURE);
            }
            // The objects with the names the app gave them (xrSetDebugUtilsObjectNameEXT
            // wins), and the open labels of the sessions among them, most recent first.
            // SAFETY: `object_count` structures by contract.
            let objects = unsafe { super::array(data.objects, data.object_count, true) }?;
            let mut owned: Vec<CString> = Vec::new();
            let mut objs: Vec<xr::DebugUtilsObjectNameInfoEXT> = objects.to_vec();
            if let Some(names) = NAMES.lock().unwrap_or_else(|p| p.into_inner()).as_ref() {
                for o in objs.iter_mut() {
                    let key = (h.into_raw(), o.object_type.into_raw(), o.object_handle);
                    if let Some(c) = names.get(&key).and_then(|n| CString::new(n.as_str()).ok()) {
                        o.object_name = c.as_ptr();
                        owned.push(c);
                    }
                }
            }
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
            deliver(Some(h.into_raw()), severity, types, &full);
            drop((owned, label_names));
            Ok(())
        })())
    })
}

fn label(
    s: xr::Session,
    info: *const xr::DebugUtilsLabelEXT,
    f: impl FnOnce(&mut Vec<(String, bool)>, String),
) -> xr::Result {
    guard(|| {
        done((|| {
            let sess = super::session::session(s)?;
            let inst = super::session::slock(&sess).instance;
            enabled(xr::Instance::from_raw(inst))?;
            // SAFETY: the app passes a valid structure, or null (refused).
            let info = unsafe { super::input(info) }?;
            let name = cstr(info.label_name).ok_or(xr::Result::ERROR_VALIDATION_FAILURE)?;
            let mut l = LABELS.lock().unwrap_or_else(|p| p.into_inner());
            f(
                l.get_or_insert_with(HashMap::new)
                    .entry(s.into_raw())
                    .or_default(),
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
    label(s, info, |stack, name| {
        // A begin closes an inserted label, as the specification says.
        if stack.last().is_some_and(|l| l.1) {
            stack.pop();
        }
        stack.push((name, false));
    })
}

pub(super) unsafe extern "system" fn session_insert_debug_utils_label(
    s: xr::Session,
    info: *const xr::DebugUtilsLabelEXT,
) -> xr::Result {
    label(s, info, |stack, name| {
        if stack.last().is_some_and(|l| l.1) {
            stack.pop();
        }
        stack.push((name, true));
    })
}

pub(super) unsafe extern "system" fn session_end_debug_utils_label_region(
    s: xr::Session,
) -> xr::Result {
    guard(|| {
        done((|| {
            let sess = super::session::session(s)?;
            let inst = super::session::slock(&sess).instance;
            enabled(xr::Instance::from_raw(inst))?;
            let mut l = LABELS.lock().unwrap_or_else(|p| p.into_inner());
            let stack = l
                .get_or_insert_with(HashMap::new)
                .entry(s.into_raw())
                .or_default();
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
    LABELS
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .as_ref()
        .and_then(|l| l.get(&session))
        .map(|v| v.iter().map(|(n, _)| n.clone()).collect())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    static CALLS: AtomicUsize = AtomicUsize::new(0);

    unsafe extern "system" fn count(
        _: xr::DebugUtilsMessageSeverityFlagsEXT,
        _: xr::DebugUtilsMessageTypeFlagsEXT,
        _: *const xr::DebugUtilsMessengerCallbackDataEXT,
        _: *mut c_void,
    ) -> xr::Bool32 {
        CALLS.fetch_add(1, Ordering::SeqCst);
        xr::FALSE
    }

    #[test]
    fn runtime_messages_wait_until_the_call_returns() {
        let m = MESSENGERS.insert(Messenger {
            instance: 1,
            severities: xr::DebugUtilsMessageSeverityFlagsEXT::WARNING,
            types: xr::DebugUtilsMessageTypeFlagsEXT::GENERAL,
            callback: count,
            user_data: 0,
        });
        // Logged somewhere inside a call (perhaps under a lock): nothing is called yet.
        queue(false, "test", "a warning");
        assert_eq!(CALLS.load(Ordering::SeqCst), 0);
        // As the call returns.
        deliver_queued();
        assert_eq!(CALLS.load(Ordering::SeqCst), 1);
        deliver_queued();
        assert_eq!(CALLS.load(Ordering::SeqCst), 1, "delivered once");
        // The queue is bounded when nobody calls in.
        for _ in 0..QUEUE_MAX + 10 {
            queue(true, "test", "an error");
        }
        assert_eq!(QUEUED.lock().unwrap().len(), QUEUE_MAX);
        MESSENGERS.remove(m);
        deliver_queued();
    }
}
