//! Marshalling shared by every entry point: the panic guard, structure and pointer
//! checks, bounded `next` chains, the two-call idiom, fixed-size strings.

use crate::logging::IN_CALLBACK;
use openxr_sys as xr;
use std::cell::Cell;
use std::ffi::{CStr, c_char, c_void};

/// Runs entry point `name`'s body; a panic becomes XR_ERROR_RUNTIME_FAILURE instead of
/// unwinding into the application. A failed call leaves one record saying which call
/// failed with what (the reason, where the body knows one, was logged just before): a
/// warning the app's debug messengers hear where the app misused the API or the runtime
/// failed, a debug record where the error is an answer (see [`is_mistake`]).
///
/// The body logs through the runtime's own subscriber; what it logged for the app's
/// debug messengers is delivered after it returns, when the call holds no runtime lock
/// (a messenger callback may call back into the runtime).
pub(super) fn guard(name: &'static str, f: impl FnOnce() -> xr::Result) -> xr::Result {
    crate::with_logging(|| {
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)).unwrap_or_else(|p| {
            let msg = p
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| p.downcast_ref::<String>().cloned())
                .unwrap_or_default();
            tracing::error!(function = name, panic = %msg, "internal error in an OpenXR call");
            xr::Result::ERROR_RUNTIME_FAILURE
        });
        if is_mistake(r) {
            tracing::warn!(function = name, result = %result_name(r), "call failed");
        } else if r.into_raw() < 0 {
            tracing::debug!(function = name, result = %result_name(r), "call failed");
        }
        // A callback that panics must not unwind into the application either.
        if std::panic::catch_unwind(deliver_queued).is_err() {
            tracing::error!("a debug messenger delivery panicked");
        }
        r
    })
}

/// Results that say the application misused the API, or the runtime failed: worth a
/// warning its messengers hear. Other errors are answers apps ask for and act on (an
/// extension function not offered, no headset yet, a buffer too small, a session not
/// running yet): logged at debug only, so a conforming app's log stays quiet.
fn is_mistake(r: xr::Result) -> bool {
    use xr::Result as R;
    matches!(
        r,
        R::ERROR_VALIDATION_FAILURE
            | R::ERROR_RUNTIME_FAILURE
            | R::ERROR_HANDLE_INVALID
            | R::ERROR_CALL_ORDER_INVALID
            | R::ERROR_LAYER_INVALID
            | R::ERROR_LAYER_LIMIT_EXCEEDED
            | R::ERROR_SWAPCHAIN_RECT_INVALID
            | R::ERROR_SWAPCHAIN_FORMAT_UNSUPPORTED
            | R::ERROR_PATH_INVALID
            | R::ERROR_PATH_FORMAT_INVALID
            | R::ERROR_POSE_INVALID
            | R::ERROR_TIME_INVALID
            | R::ERROR_NAME_INVALID
            | R::ERROR_NAME_DUPLICATED
            | R::ERROR_LOCALIZED_NAME_INVALID
            | R::ERROR_LOCALIZED_NAME_DUPLICATED
            | R::ERROR_ACTION_TYPE_MISMATCH
            | R::ERROR_ACTIONSET_NOT_ATTACHED
            | R::ERROR_ACTIONSETS_ALREADY_ATTACHED
            | R::ERROR_GRAPHICS_DEVICE_INVALID
            | R::ERROR_GRAPHICS_REQUIREMENTS_CALL_MISSING
            | R::ERROR_REFERENCE_SPACE_UNSUPPORTED
            | R::ERROR_SESSION_LOST
    )
}

pub(super) fn done(r: Result<(), xr::Result>) -> xr::Result {
    match r {
        Ok(()) => xr::Result::SUCCESS,
        Err(e) => e,
    }
}

/// The longest `next` chain the runtime walks: a longer one is taken for a loop (or
/// garbage) and refused with XR_ERROR_VALIDATION_FAILURE.
pub(super) const MAX_CHAIN: usize = 64;

/// Walks a `next` chain, input or output, calling `f` with each structure's type and
/// address (structures `f` does not know it skips, as the specification requires); at
/// most [`MAX_CHAIN`] structures.
///
/// # Safety
/// `next` must be null or the start of a valid chain: each structure begins with its
/// type and next pointer. `f` may make a reference to the structure it is given (the
/// header is copied before).
pub(super) unsafe fn walk_chain(
    mut next: *const std::ffi::c_void,
    mut f: impl FnMut(xr::StructureType, *const std::ffi::c_void) -> Result<(), xr::Result>,
) -> Result<(), xr::Result> {
    for _ in 0..MAX_CHAIN {
        if next.is_null() {
            return Ok(());
        }
        // SAFETY: by the caller's contract; a copy, so no reference outlives this line.
        let base = unsafe { *(next as *const xr::BaseInStructure) };
        f(base.ty, next)?;
        next = base.next.cast();
    }
    tracing::warn!("a next chain longer than {MAX_CHAIN} structures: refused");
    Err(xr::Result::ERROR_VALIDATION_FAILURE)
}

/// A structure the app hands over with its `type` field set.
pub(crate) trait Typed {
    const TYPE: xr::StructureType;
    fn ty(&self) -> xr::StructureType;
}

macro_rules! typed {
    ($($t:ident),* $(,)?) => {$(
        impl Typed for xr::$t {
            const TYPE: xr::StructureType = xr::$t::TYPE;
            fn ty(&self) -> xr::StructureType {
                self.ty
            }
        }
    )*};
}

typed!(
    InstanceProperties,
    SystemGetInfo,
    SystemProperties,
    ViewConfigurationProperties,
    SessionCreateInfo,
    SessionBeginInfo,
    FrameEndInfo,
    ReferenceSpaceCreateInfo,
    SpaceLocation,
    SpacesLocateInfo,
    SpaceLocations,
    VisibilityMaskKHR,
    SwapchainCreateInfo,
    SwapchainImageWaitInfo,
    ActionSetCreateInfo,
    ActionCreateInfo,
    InteractionProfileSuggestedBinding,
    SessionActionSetsAttachInfo,
    InteractionProfileState,
    ActionsSyncInfo,
    ActionStateGetInfo,
    ActionStateBoolean,
    ActionStateFloat,
    ActionStateVector2f,
    ActionStatePose,
    HapticActionInfo,
    BoundSourcesForActionEnumerateInfo,
    InputSourceLocalizedNameGetInfo,
    ActionSpaceCreateInfo,
    GraphicsRequirementsVulkanKHR,
    DebugUtilsObjectNameInfoEXT,
    DebugUtilsMessengerCreateInfoEXT,
    DebugUtilsMessengerCallbackDataEXT,
    DebugUtilsLabelEXT,
    VulkanInstanceCreateInfoKHR,
    VulkanDeviceCreateInfoKHR,
    VulkanGraphicsDeviceGetInfoKHR,
);

/// An input structure, checked: not null, the right structure type.
///
/// # Safety
/// `p` must be null or point to a readable `T`.
pub(super) unsafe fn input<'a, T: Typed>(p: *const T) -> Result<&'a T, xr::Result> {
    if p.is_null() {
        return Err(xr::Result::ERROR_VALIDATION_FAILURE);
    }
    // SAFETY: non-null, and readable by the caller's contract.
    let r = unsafe { &*p };
    if r.ty() != T::TYPE {
        return Err(xr::Result::ERROR_VALIDATION_FAILURE);
    }
    Ok(r)
}

/// An output structure, checked like [`input`].
///
/// # Safety
/// `p` must be null or point to a writable `T` nothing else references.
pub(super) unsafe fn output<'a, T: Typed>(p: *mut T) -> Result<&'a mut T, xr::Result> {
    if p.is_null() {
        return Err(xr::Result::ERROR_VALIDATION_FAILURE);
    }
    // SAFETY: non-null, writable and unaliased by the caller's contract.
    let r = unsafe { &mut *p };
    if r.ty() != T::TYPE {
        return Err(xr::Result::ERROR_VALIDATION_FAILURE);
    }
    Ok(r)
}

/// A C array the app passes as (pointer, count): empty when `count` is 0 and `empty_ok`,
/// else the pointer must not be null.
///
/// # Safety
/// `p` must be null or point to `count` readable `T`s that outlive `'a`.
pub(super) unsafe fn array<'a, T>(
    p: *const T,
    count: u32,
    empty_ok: bool,
) -> Result<&'a [T], xr::Result> {
    if count == 0 && empty_ok {
        return Ok(&[]);
    }
    if count == 0 || p.is_null() {
        return Err(xr::Result::ERROR_VALIDATION_FAILURE);
    }
    // SAFETY: non-null, `count` elements by the caller's contract.
    Ok(unsafe { std::slice::from_raw_parts(p, count as usize) })
}

/// [`two_call`] for plain values copied as they are.
///
/// # Safety
/// As [`two_call`].
pub(super) unsafe fn two_call_copy<T: Copy>(
    items: &[T],
    capacity: u32,
    count_out: *mut u32,
    out: *mut T,
) -> Result<(), xr::Result> {
    // SAFETY: the caller's contract is two_call's.
    unsafe {
        two_call(items, capacity, count_out, out, |o, v| {
            *o = *v;
            Ok(())
        })
    }
}

/// Copies `s` into a fixed C string buffer (truncated, always NUL-terminated).
pub(super) fn put_str(dst: &mut [c_char], s: &str) {
    let n = s.len().min(dst.len().saturating_sub(1));
    for (d, b) in dst.iter_mut().zip(s.as_bytes()[..n].iter()) {
        *d = *b as c_char;
    }
    if let Some(end) = dst.get_mut(n) {
        *end = 0;
    }
}

/// Reads a fixed-size C string field (must be NUL-terminated within it).
pub(super) fn fixed_str(src: &[c_char]) -> Result<String, xr::Result> {
    let bytes: Vec<u8> = src.iter().map(|&c| c as u8).collect();
    let end = bytes
        .iter()
        .position(|&b| b == 0)
        .ok_or(xr::Result::ERROR_NAME_INVALID)?;
    String::from_utf8(bytes[..end].to_vec()).map_err(|_| xr::Result::ERROR_NAME_INVALID)
}

/// The two-call idiom: reports the count; fills `out` (via `fill`) when the capacity
/// allows. `out` elements are validated by `fill` (structure types).
///
/// # Safety
/// `count_out` and (when `capacity > 0`) `out` must be null or valid for `capacity`
/// elements.
pub(super) unsafe fn two_call<T, U>(
    items: &[U],
    capacity: u32,
    count_out: *mut u32,
    out: *mut T,
    fill: impl Fn(&mut T, &U) -> Result<(), xr::Result>,
) -> Result<(), xr::Result> {
    if count_out.is_null() {
        return Err(xr::Result::ERROR_VALIDATION_FAILURE);
    }
    // SAFETY: checked non-null; the caller guarantees it points to a u32.
    unsafe { *count_out = items.len() as u32 };
    if capacity == 0 {
        return Ok(());
    }
    if out.is_null() {
        return Err(xr::Result::ERROR_VALIDATION_FAILURE);
    }
    if (capacity as usize) < items.len() {
        return Err(xr::Result::ERROR_SIZE_INSUFFICIENT);
    }
    // SAFETY: `out` is non-null and valid for `capacity` >= items.len() elements.
    let out = unsafe { std::slice::from_raw_parts_mut(out, items.len()) };
    for (o, i) in out.iter_mut().zip(items) {
        fill(o, i)?;
    }
    Ok(())
}

/// Reads a C array of C strings.
///
/// # Safety
/// `ptr` must be null (with `count` 0) or point to `count` NUL-terminated strings.
pub(super) unsafe fn string_list(
    ptr: *const *const c_char,
    count: u32,
) -> Result<Vec<String>, xr::Result> {
    if count == 0 {
        return Ok(Vec::new());
    }
    if ptr.is_null() {
        return Err(xr::Result::ERROR_VALIDATION_FAILURE);
    }
    // SAFETY: the caller guarantees `count` valid pointers.
    let ptrs = unsafe { std::slice::from_raw_parts(ptr, count as usize) };
    ptrs.iter()
        .map(|&p| {
            if p.is_null() {
                return Err(xr::Result::ERROR_VALIDATION_FAILURE);
            }
            // SAFETY: non-null, NUL-terminated by contract.
            unsafe { CStr::from_ptr(p) }
                .to_str()
                .map(str::to_string)
                .map_err(|_| xr::Result::ERROR_VALIDATION_FAILURE)
        })
        .collect()
}

// ---------------------------------------------------------------------------------
// Debug messengers: runtime messages reach the app's callbacks as each call returns
// ---------------------------------------------------------------------------------

/// Calls every messenger (of `only` instance, or all) that wants `severity`/`types`.
pub(super) fn deliver(
    only: Option<u64>,
    severity: xr::DebugUtilsMessageSeverityFlagsEXT,
    types: xr::DebugUtilsMessageTypeFlagsEXT,
    data: &xr::DebugUtilsMessengerCallbackDataEXT,
) {
    if IN_CALLBACK.with(Cell::get) {
        return;
    }
    let instances = match only {
        Some(h) => crate::core::instance::get(h).into_iter().collect(),
        None => crate::core::instance::all(),
    };
    let mut targets = Vec::new();
    for i in &instances {
        for (_, m) in i.messengers.snapshot() {
            if m.severities.intersects(severity) && m.types.intersects(types) {
                targets.push((m.callback, m.user_data));
            }
        }
    }
    // The instances and messengers are not locked from here on: a callback may call
    // back in, even destroy them.
    drop(instances);
    IN_CALLBACK.with(|c| c.set(true));
    for (cb, user) in targets {
        // SAFETY: the app's callback with the signature XR_EXT_debug_utils defines, its
        // own user pointer, and callback data alive for the call.
        unsafe { cb(severity, types, data, user as *mut c_void) };
    }
    IN_CALLBACK.with(|c| c.set(false));
}

/// Delivers the queued runtime messages. Called by every OpenXR call as it returns, with
/// no runtime lock held; not from inside a messenger callback.
pub(super) fn deliver_queued() {
    if IN_CALLBACK.with(Cell::get) {
        return;
    }
    let queued = crate::logging::take_queued();
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

/// A session state as OpenXR names it.
pub(super) fn xr_state(s: crate::state::session::SessionState) -> xr::SessionState {
    use crate::state::session::SessionState as S;
    match s {
        S::Idle => xr::SessionState::IDLE,
        S::Ready => xr::SessionState::READY,
        S::Synchronized => xr::SessionState::SYNCHRONIZED,
        S::Visible => xr::SessionState::VISIBLE,
        S::Focused => xr::SessionState::FOCUSED,
        S::Stopping => xr::SessionState::STOPPING,
        S::LossPending => xr::SessionState::LOSS_PENDING,
        S::Exiting => xr::SessionState::EXITING,
    }
}

/// openxr-sys names known values in Debug and prints unknown ones as numbers.
fn is_enumerant(s: &str) -> bool {
    s.starts_with(|c: char| c.is_ascii_uppercase())
        && s.chars()
            .all(|c| c.is_ascii_uppercase() || c == '_' || c.is_ascii_digit())
}

/// "XR_" + the enumerant's name, or the spec's XR_UNKNOWN_* forms.
pub(super) fn result_name(r: xr::Result) -> String {
    let dbg = format!("{r:?}");
    if is_enumerant(&dbg) {
        format!("XR_{dbg}")
    } else if r.into_raw() >= 0 {
        format!("XR_UNKNOWN_SUCCESS_{}", r.into_raw())
    } else {
        format!("XR_UNKNOWN_FAILURE_{}", r.into_raw())
    }
}

pub(super) fn structure_type_name(t: xr::StructureType) -> String {
    let dbg = format!("{t:?}");
    if is_enumerant(&dbg) {
        format!("XR_TYPE_{dbg}")
    } else {
        format!("XR_UNKNOWN_STRUCTURE_TYPE_{}", t.into_raw())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn misuse_warns_and_answers_stay_quiet() {
        assert!(is_mistake(xr::Result::ERROR_VALIDATION_FAILURE));
        assert!(is_mistake(xr::Result::ERROR_HANDLE_INVALID));
        assert!(
            !is_mistake(xr::Result::ERROR_FUNCTION_UNSUPPORTED),
            "proc-addr probing"
        );
        assert!(
            !is_mistake(xr::Result::ERROR_FORM_FACTOR_UNAVAILABLE),
            "no headset yet"
        );
        assert!(
            !is_mistake(xr::Result::ERROR_SIZE_INSUFFICIENT),
            "two-call idiom"
        );
        assert!(!is_mistake(xr::Result::SUCCESS));
    }
}
