//! Swapchains at the ABI: formats, creation (images on the app's VkDevice, their memory
//! imported by the compositor), enumeration as XrSwapchainImageVulkanKHR, and the
//! acquire / wait / release cycle with its ordering errors.

use super::marshal::{done, guard};
use crate::core::registry::{Kind, REGISTRY};
use crate::core::session::{Graphics, session, slock};
use crate::core::swapchain::{Inner, SwapchainObj, alock, ilock};
use crate::state::swapchain::{SwapchainCycle, SwapchainError};
use leasehold_compositor::frame_loop::{Hold, InUse};

use leasehold_compositor::vk::app::{self, AppSwapchain, ReleaseProbe, SwapchainDesc};
use openxr_sys as xr;
use openxr_sys::Handle as _;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Images per swapchain: one the app renders, one waiting to be shown, one on screen.
const IMAGES: u32 = 3;

fn swapchain(h: xr::Swapchain) -> Result<Arc<SwapchainObj>, xr::Result> {
    REGISTRY
        .get(Kind::Swapchain, h.into_raw())
        .ok_or(xr::Result::ERROR_HANDLE_INVALID)
}

fn order(e: SwapchainError) -> xr::Result {
    match e {
        SwapchainError::CallOrderInvalid => xr::Result::ERROR_CALL_ORDER_INVALID,
    }
}

pub(super) unsafe extern "system" fn enumerate_swapchain_formats(
    h: xr::Session,
    capacity: u32,
    count_out: *mut u32,
    out: *mut i64,
) -> xr::Result {
    guard("xrEnumerateSwapchainFormats", || {
        done((|| {
            let s = session(h)?;
            let graphics = slock(&s).graphics().is_some();
            // A headless session has no swapchains: its list is empty.
            let formats: Vec<i64> = if graphics {
                app::swapchain_formats()
                    .into_iter()
                    .map(|(f, _)| i64::from(f))
                    .collect()
            } else {
                Vec::new()
            };
            // SAFETY: the two-call contract of the entry point.
            unsafe { super::marshal::two_call_copy(&formats, capacity, count_out, out) }
        })())
    })
}

pub(super) unsafe extern "system" fn create_swapchain(
    h: xr::Session,
    info: *const xr::SwapchainCreateInfo,
    out: *mut xr::Swapchain,
) -> xr::Result {
    guard("xrCreateSwapchain", || {
        done((|| {
            let s = session(h)?;
            // SAFETY: the app passes a valid structure, or null (refused).
            let info = unsafe { super::marshal::input(info) }?;
            if out.is_null() {
                return Err(xr::Result::ERROR_VALIDATION_FAILURE);
            }
            let (gfx, max_size, instance) = {
                let s = slock(&s);
                s.alive()?;
                let Some(g) = s.graphics() else {
                    // Headless sessions render nothing.
                    return Err(xr::Result::ERROR_FEATURE_UNSUPPORTED);
                };
                (g, s.max_swapchain_size, s.instance)
            };
            let cube_enabled = crate::core::instance::get(instance).is_some_and(|i| {
                super::instance::lock(&i).enabled("XR_KHR_composition_layer_cube")
            });
            let Graphics { device, compositor } = gfx;
            if info
                .create_flags
                .contains(xr::SwapchainCreateFlags::PROTECTED_CONTENT)
            {
                return Err(xr::Result::ERROR_FEATURE_UNSUPPORTED);
            }
            let known = xr::SwapchainCreateFlags::PROTECTED_CONTENT
                | xr::SwapchainCreateFlags::STATIC_IMAGE;
            if !(info.create_flags & !known).is_empty() {
                return Err(xr::Result::ERROR_VALIDATION_FAILURE);
            }
            let Some((format, color)) = app::swapchain_formats()
                .into_iter()
                .find(|(f, _)| i64::from(*f) == info.format)
            else {
                return Err(xr::Result::ERROR_SWAPCHAIN_FORMAT_UNSUPPORTED);
            };
            if info.sample_count != 1 {
                return Err(if info.sample_count == 0 {
                    xr::Result::ERROR_VALIDATION_FAILURE
                } else {
                    xr::Result::ERROR_FEATURE_UNSUPPORTED
                });
            }
            if info.width == 0 || info.height == 0 || info.array_size == 0 || info.mip_count == 0 {
                return Err(xr::Result::ERROR_VALIDATION_FAILURE);
            }
            if info.width > max_size || info.height > max_size || info.array_size > 16 {
                return Err(xr::Result::ERROR_SIZE_INSUFFICIENT);
            }
            // A full mip chain ends at 1x1: more levels than that do not exist.
            let max_mips = 32 - info.width.max(info.height).leading_zeros();
            if info.mip_count > max_mips {
                tracing::warn!(
                    mips = info.mip_count,
                    max = max_mips,
                    "xrCreateSwapchain: more mip levels than a {}x{} image has",
                    info.width,
                    info.height
                );
                return Err(xr::Result::ERROR_VALIDATION_FAILURE);
            }
            match info.face_count {
                1 => {}
                // Cube maps (XR_KHR_composition_layer_cube): square faces.
                6 if cube_enabled && info.width == info.height => {}
                6 if cube_enabled => {
                    tracing::warn!(
                        w = info.width,
                        h = info.height,
                        "xrCreateSwapchain: a cube map's faces must be square"
                    );
                    return Err(xr::Result::ERROR_VALIDATION_FAILURE);
                }
                6 => return Err(xr::Result::ERROR_FEATURE_UNSUPPORTED),
                _ => return Err(xr::Result::ERROR_VALIDATION_FAILURE),
            }
            let depth_usage = info
                .usage_flags
                .contains(xr::SwapchainUsageFlags::DEPTH_STENCIL_ATTACHMENT);
            let color_usage = info
                .usage_flags
                .contains(xr::SwapchainUsageFlags::COLOR_ATTACHMENT);
            if (color.is_some() && depth_usage) || (color.is_none() && color_usage) {
                // Depth-attachment use of a colour format, or the reverse.
                return Err(xr::Result::ERROR_FEATURE_UNSUPPORTED);
            }
            let static_image = info
                .create_flags
                .contains(xr::SwapchainCreateFlags::STATIC_IMAGE);
            let count = if static_image { 1 } else { IMAGES };
            let desc = SwapchainDesc {
                width: info.width,
                height: info.height,
                array_layers: info.array_size,
                faces: info.face_count,
                mip_levels: info.mip_count,
                format,
                xr_usage: info.usage_flags.into_raw(),
            };
            let (app_sc, shared) = AppSwapchain::new(device, desc, count).map_err(|e| {
                tracing::error!(%e, "xrCreateSwapchain: creating the images");
                xr::Result::ERROR_RUNTIME_FAILURE
            })?;
            let mut layer_ids = Vec::with_capacity(shared.len());
            for img in shared {
                match img {
                    Some(img) => match compositor.import_image(img) {
                        Ok(id) => layer_ids.push(Some(id)),
                        Err(e) => {
                            tracing::error!(%e, "xrCreateSwapchain: the compositor cannot import the images");
                            for id in layer_ids.into_iter().flatten() {
                                compositor.destroy_image(id);
                            }
                            return Err(xr::Result::ERROR_RUNTIME_FAILURE);
                        }
                    },
                    None => layer_ids.push(None),
                }
            }
            let obj = SwapchainObj {
                session: h.into_raw(),
                width: info.width,
                height: info.height,
                array_size: info.array_size,
                faces: info.face_count,
                inner: Mutex::new(Inner {
                    cycle: SwapchainCycle::new(count, static_image),
                    in_use: (0..count).map(|_| InUse::new()).collect(),
                    probes: (0..count).map(|_| None).collect(),
                    layer_ids,
                    compositor,
                }),
                app: Mutex::new(app_sc),
            };
            let (handle, _) = s.swapchains.adopt(obj);
            tracing::debug!(
                w = info.width,
                h = info.height,
                layers = info.array_size,
                format,
                "swapchain created"
            );
            // SAFETY: checked non-null.
            unsafe { *out = xr::Swapchain::from_raw(handle) };
            Ok(())
        })())
    })
}

pub(super) unsafe extern "system" fn destroy_swapchain(h: xr::Swapchain) -> xr::Result {
    guard("xrDestroySwapchain", || {
        let removed = swapchain(h)
            .ok()
            .and_then(|sc| session(xr::Session::from_raw(sc.session)).ok())
            .and_then(|s| s.swapchains.remove(h.into_raw()));
        match removed {
            Some(_) => xr::Result::SUCCESS,
            None => xr::Result::ERROR_HANDLE_INVALID,
        }
    })
}

pub(super) unsafe extern "system" fn enumerate_swapchain_images(
    h: xr::Swapchain,
    capacity: u32,
    count_out: *mut u32,
    out: *mut xr::SwapchainImageBaseHeader,
) -> xr::Result {
    guard("xrEnumerateSwapchainImages", || {
        done((|| {
            let sc = swapchain(h)?;
            let handles = alock(&sc).handles();
            // SAFETY: the two-call contract; the app's array is of
            // XrSwapchainImageVulkanKHR (checked per element by its type).
            unsafe {
                super::marshal::two_call(
                    &handles,
                    capacity,
                    count_out,
                    out.cast::<xr::SwapchainImageVulkanKHR>(),
                    |o, img| {
                        if o.ty != xr::StructureType::SWAPCHAIN_IMAGE_VULKAN_KHR {
                            return Err(xr::Result::ERROR_VALIDATION_FAILURE);
                        }
                        o.image = *img;
                        Ok(())
                    },
                )
            }
        })())
    })
}

/// Checks an optional info structure's type.
///
/// # Safety
/// `p` must be null or point to a structure starting with its type.
unsafe fn optional_info(
    p: *const xr::StructureType,
    ty: xr::StructureType,
) -> Result<(), xr::Result> {
    // SAFETY: by the caller's contract.
    if !p.is_null() && unsafe { *p } != ty {
        return Err(xr::Result::ERROR_VALIDATION_FAILURE);
    }
    Ok(())
}

/// The GPU side of an acquire or release, as the call's result: a lost or hung app
/// device loses the session (LOSS_PENDING, noticed by the next frame call, which is how
/// the app learns of it), so the call itself succeeds; any other failure is the
/// runtime's.
fn app_side(
    call: &'static str,
    r: Result<(), leasehold_compositor::vk::VkError>,
) -> Result<(), xr::Result> {
    match r {
        Ok(()) => Ok(()),
        Err(e) if e.is_device_gone() => {
            tracing::error!(%e, call, "the app's GPU is gone: the session is lost");
            Ok(())
        }
        Err(e) => {
            tracing::error!(%e, call);
            Err(xr::Result::ERROR_RUNTIME_FAILURE)
        }
    }
}

pub(super) unsafe extern "system" fn acquire_swapchain_image(
    h: xr::Swapchain,
    info: *const xr::SwapchainImageAcquireInfo,
    index: *mut u32,
) -> xr::Result {
    guard("xrAcquireSwapchainImage", || {
        done((|| {
            let sc = swapchain(h)?;
            // SAFETY: the app passes a structure or null.
            unsafe { optional_info(info.cast(), xr::StructureType::SWAPCHAIN_IMAGE_ACQUIRE_INFO) }?;
            if index.is_null() {
                return Err(xr::Result::ERROR_VALIDATION_FAILURE);
            }
            let i = {
                let mut inner = ilock(&sc);
                let Inner { cycle, in_use, .. } = &mut *inner;
                cycle
                    .acquire_preferring(|i| in_use.get(i as usize).is_some_and(|u| u.is_free()))
                    .map_err(order)?
            };
            // The GPU side (a wait for the image's previous submission, then its layout
            // transition) without the cycle's lock: xrEndFrame on another thread never
            // waits behind it.
            app_side("xrAcquireSwapchainImage", alock(&sc).acquired(i as usize))?;
            // SAFETY: checked non-null.
            unsafe { *index = i };
            Ok(())
        })())
    })
}

pub(super) unsafe extern "system" fn wait_swapchain_image(
    h: xr::Swapchain,
    info: *const xr::SwapchainImageWaitInfo,
) -> xr::Result {
    guard("xrWaitSwapchainImage", || {
        let r = (|| {
            let sc = swapchain(h)?;
            // SAFETY: the app passes a valid structure, or null (refused).
            let info = unsafe { super::marshal::input(info) }?;
            let (i, in_use, compositor) = {
                let inner = ilock(&sc);
                let i = inner.cycle.to_wait().map_err(order)?;
                (
                    i,
                    inner.in_use[i as usize].clone(),
                    Arc::downgrade(&inner.compositor),
                )
            };
            // Until the compositor no longer reads the image; without the lock, so the
            // app may release other images meanwhile.
            let t = info.timeout.as_nanos();
            let timeout = if t <= 0 {
                Duration::ZERO
            } else {
                Duration::from_nanos(t as u64)
            };
            // The compositor lets an image go when a newer frame is ready to show; the
            // app's rendering of that frame may finish while this waits, so look again
            // every millisecond rather than only at the compositor's next display frame.
            let deadline = std::time::Instant::now() + timeout;
            loop {
                // Not kept alive by this wait: a session destroyed meanwhile takes its
                // compositor (and the holds) with it.
                if let Some(c) = compositor.upgrade() {
                    c.promote_ready();
                }
                let left = deadline.saturating_duration_since(std::time::Instant::now());
                if in_use.wait_free(left.min(Duration::from_millis(1))) {
                    break;
                }
                if left.is_zero() {
                    return Ok(xr::Result::TIMEOUT_EXPIRED);
                }
            }
            ilock(&sc).cycle.waited(i);
            Ok(xr::Result::SUCCESS)
        })();
        r.unwrap_or_else(|e| e)
    })
}

pub(super) unsafe extern "system" fn release_swapchain_image(
    h: xr::Swapchain,
    info: *const xr::SwapchainImageReleaseInfo,
) -> xr::Result {
    guard("xrReleaseSwapchainImage", || {
        done((|| {
            let sc = swapchain(h)?;
            // SAFETY: the app passes a structure or null.
            unsafe { optional_info(info.cast(), xr::StructureType::SWAPCHAIN_IMAGE_RELEASE_INFO) }?;
            let i = ilock(&sc).cycle.to_release().map_err(order)?;
            // The GPU side without the cycle's lock (see xrAcquireSwapchainImage); the
            // app synchronises its calls on one swapchain, so `i` is still the one.
            let probe = {
                let mut app = alock(&sc);
                // On a gone device the image's earlier, unfinished probe stays, so the
                // compositor never reads it.
                app_side("xrReleaseSwapchainImage", app.released(i as usize))?;
                app.release_probe(i as usize)
            };
            let mut inner = ilock(&sc);
            inner.cycle.release().map_err(order)?;
            inner.probes[i as usize] = probe;
            Ok(())
        })())
    })
}

/// What a layer naming this swapchain shows: the last released image, held while it is
/// shown, and the app's rendering into it, which the compositor asks about before
/// showing it.
pub(super) struct Shown {
    pub(super) layer_id: u64,
    pub(super) hold: Hold,
    pub(super) rendering: Option<ReleaseProbe>,
}

/// For xrEndFrame: the released image of `h`, held for the compositor.
pub(super) fn shown(h: xr::Swapchain, session: u64) -> Result<Shown, xr::Result> {
    let sc = swapchain(h)?;
    if sc.session != session {
        return Err(xr::Result::ERROR_VALIDATION_FAILURE);
    }
    let inner = ilock(&sc);
    let Some(i) = inner.cycle.released() else {
        // Never released: nothing to show.
        tracing::warn!("xrEndFrame: a layer names a swapchain that has no released image");
        return Err(xr::Result::ERROR_LAYER_INVALID);
    };
    let Some(layer_id) = inner.layer_ids[i as usize] else {
        // A depth swapchain as a colour layer.
        tracing::warn!("xrEndFrame: a layer shows a depth swapchain");
        return Err(xr::Result::ERROR_LAYER_INVALID);
    };
    let hold = inner.in_use[i as usize].hold();
    let rendering = inner.probes[i as usize].clone();
    Ok(Shown {
        layer_id,
        hold,
        rendering,
    })
}

/// What a layer checks a swapchain against.
pub(super) struct Extent {
    pub(super) width: u32,
    pub(super) height: u32,
    pub(super) array_size: u32,
    pub(super) faces: u32,
    pub(super) session: u64,
}

/// A swapchain's size, layers and faces, for sub-image checks.
pub(super) fn extent(h: xr::Swapchain) -> Result<Extent, xr::Result> {
    let sc = swapchain(h)?;
    Ok(Extent {
        width: sc.width,
        height: sc.height,
        array_size: sc.array_size,
        faces: sc.faces,
        session: sc.session,
    })
}
