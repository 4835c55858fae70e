//! Sessions and the frame loop at the ABI: xrCreateSession (headless, through
//! XR_MND_headless, until the Vulkan bindings land), the lifecycle calls, and
//! xrWaitFrame / xrBeginFrame / xrEndFrame paced by the display's refresh.

use super::instance::{instance, lock};
use super::marshal::{done, guard};
use crate::core::session::{Graphics, SessionCell, SessionObj, flush, now_ns, session, slock};
use crate::state::layer::{self, LayerError, Shape};
use crate::state::session::{BeginFrame, Session, SessionError, SessionState};
use crate::state::{self, Event};
use leasehold_compositor::frame_loop::{Hold, Submission};
use leasehold_compositor::kms::display::Display;
use leasehold_compositor::render::{Layer, LayerFlags, ProjectionView, SubImage};
use leasehold_compositor::service::{Compositor, FrameClock, LocalCompositor, LocalTarget};
use leasehold_compositor::vk::app::{AppDevice, Binding, ReleaseProbe};
use leasehold_drivers::api::DeviceRole;
use leasehold_drivers::api::Fov;
use leasehold_drivers::api::Hmd;
use leasehold_drivers::simulated::SimulatedController;
use openxr_sys as xr;
use openxr_sys::Handle as _;
use std::sync::Arc;

fn map_err(e: SessionError) -> xr::Result {
    match e {
        SessionError::NotReady => xr::Result::ERROR_SESSION_NOT_READY,
        SessionError::Running => xr::Result::ERROR_SESSION_RUNNING,
        SessionError::NotRunning => xr::Result::ERROR_SESSION_NOT_RUNNING,
        SessionError::NotStopping => xr::Result::ERROR_SESSION_NOT_STOPPING,
        SessionError::CallOrderInvalid => xr::Result::ERROR_CALL_ORDER_INVALID,
        SessionError::Lost => xr::Result::ERROR_SESSION_LOST,
    }
}

pub(super) unsafe extern "system" fn create_session(
    instance_h: xr::Instance,
    info: *const xr::SessionCreateInfo,
    out: *mut xr::Session,
) -> xr::Result {
    guard("xrCreateSession", || {
        done((|| {
            let i = instance(instance_h)?;
            // SAFETY: the app passes a valid structure, or null (refused).
            let info = unsafe { super::marshal::input(info) }?;
            if out.is_null() {
                return Err(xr::Result::ERROR_VALIDATION_FAILURE);
            }
            if info.system_id.into_raw() != state::HMD_SYSTEM_ID {
                return Err(xr::Result::ERROR_SYSTEM_INVALID);
            }
            let (headless, display, local_floor, hmd, screen) = {
                let inst = lock(&i);
                (
                    inst.enabled("XR_MND_headless"),
                    inst.system.display.clone(),
                    inst.api_version.1 >= 1 || inst.enabled("XR_EXT_local_floor"),
                    inst.system.headset.0.clone(),
                    inst.system.screen.0.clone(),
                )
            };
            // SAFETY: the create-info's `next` chain, as the app built it.
            let binding = unsafe { graphics_binding(info.next) }?;
            let (vulkan1, vulkan2) = {
                let inst = lock(&i);
                (
                    inst.enabled("XR_KHR_vulkan_enable"),
                    inst.enabled("XR_KHR_vulkan_enable2"),
                )
            };
            let epoch = now_ns();
            let gfx = match binding {
                None if headless => None,
                None => return Err(xr::Result::ERROR_GRAPHICS_DEVICE_INVALID),
                Some(_) if !(vulkan1 || vulkan2) => {
                    tracing::error!("a Vulkan graphics binding without XR_KHR_vulkan_enable(2)");
                    return Err(xr::Result::ERROR_GRAPHICS_DEVICE_INVALID);
                }
                Some(_) if !super::vulkan::requirements_queried(instance_h.into_raw()) => {
                    return Err(xr::Result::ERROR_GRAPHICS_REQUIREMENTS_CALL_MISSING);
                }
                Some(b) => Some(vulkan_session(&b, hmd.clone(), screen)?),
            };
            let hz = display.refresh_hz.first().copied().unwrap_or(90.0).max(1.0);
            let obj = SessionObj {
                instance: instance_h.into_raw(),
                owner: i.events_target(),
                controllers: [
                    SimulatedController::new(DeviceRole::LeftController, epoch),
                    SimulatedController::new(DeviceRole::RightController, epoch),
                ],
                actions: None,
                hmd,
                gfx,
                max_swapchain_size: lock(&i).system.max_swapchain_size,
                display: display.clone(),
                local_floor,
                session: Session::new(),
                closed: false,
                epoch_ns: now_ns(),
                period_ns: (1e9 / hz as f64).round() as u64,
                scanout_to_photon_ns: display.scanout_to_photon_ns,
                last_vblank_ns: None,
            };
            // The handle first, so the IDLE and READY events can name it.
            let (h, cell) = i
                .sessions
                .adopt(SessionCell::new(instance_h.into_raw(), obj));
            flush(h, &mut slock(&cell));
            // SAFETY: checked non-null.
            unsafe { *out = xr::Session::from_raw(h) };
            tracing::info!(handle = h, "session created");
            Ok(())
        })())
    })
}

/// The Vulkan graphics binding in a session create-info's `next` chain, if any. Other
/// graphics APIs' bindings are refused; structures this runtime does not know are
/// skipped, as the specification requires.
///
/// # Safety
/// `next` must be null or a valid input structure chain.
unsafe fn graphics_binding(
    next: *const std::ffi::c_void,
) -> Result<Option<xr::GraphicsBindingVulkanKHR>, xr::Result> {
    let mut found = None;
    let visit = |ty: xr::StructureType, at: *const std::ffi::c_void| match ty {
        xr::StructureType::GRAPHICS_BINDING_VULKAN_KHR if found.is_none() => {
            // SAFETY: the type says it is an XrGraphicsBindingVulkanKHR.
            found = Some(unsafe { *(at as *const xr::GraphicsBindingVulkanKHR) });
            Ok(())
        }
        xr::StructureType::GRAPHICS_BINDING_VULKAN_KHR => {
            tracing::error!("xrCreateSession: two Vulkan graphics bindings");
            Err(xr::Result::ERROR_GRAPHICS_DEVICE_INVALID)
        }
        xr::StructureType::GRAPHICS_BINDING_OPENGL_XLIB_KHR
        | xr::StructureType::GRAPHICS_BINDING_OPENGL_XCB_KHR
        | xr::StructureType::GRAPHICS_BINDING_OPENGL_WAYLAND_KHR
        | xr::StructureType::GRAPHICS_BINDING_OPENGL_ES_ANDROID_KHR
        | xr::StructureType::GRAPHICS_BINDING_EGL_MNDX
        | xr::StructureType::GRAPHICS_BINDING_D3D11_KHR
        | xr::StructureType::GRAPHICS_BINDING_D3D12_KHR => {
            tracing::error!(
                ?ty,
                "xrCreateSession: Leasehold supports Vulkan graphics bindings only"
            );
            Err(xr::Result::ERROR_GRAPHICS_DEVICE_INVALID)
        }
        _ => Ok(()),
    };
    // SAFETY: by this function's contract.
    unsafe { super::marshal::walk_chain(next, visit) }?;
    Ok(found)
}

/// A Vulkan session's device and compositor, from the app's graphics binding.
fn vulkan_session(
    b: &xr::GraphicsBindingVulkanKHR,
    hmd: Arc<dyn Hmd>,
    screen: Result<Arc<Display>, String>,
) -> Result<Graphics, xr::Result> {
    let target = match &screen {
        Ok(d) => LocalTarget::for_display(d),
        Err(why) => {
            tracing::error!(%why, "xrCreateSession: the headset's display");
            return Err(xr::Result::ERROR_RUNTIME_FAILURE);
        }
    };
    let uuid = super::vulkan::compositor_uuid(&target)?;
    let binding = Binding {
        instance: b.instance as usize as u64,
        physical: b.physical_device as usize as u64,
        device: b.device as usize as u64,
        queue_family: b.queue_family_index,
        queue_index: b.queue_index,
    };
    // SAFETY: the app's live Vulkan objects, which the OpenXR contract keeps alive until
    // the session is destroyed.
    let mut device = unsafe { AppDevice::new(binding, uuid) }.map_err(|e| {
        tracing::error!(%e, "xrCreateSession: the Vulkan binding");
        xr::Result::ERROR_GRAPHICS_DEVICE_INVALID
    })?;
    let compositor = LocalCompositor::start(hmd, target).map_err(|e| {
        tracing::error!(%e, "xrCreateSession: the compositor");
        xr::Result::ERROR_RUNTIME_FAILURE
    })?;
    let sync = device.sync_with(compositor.imports_sync_file());
    tracing::info!(
        compositor = %compositor.describe(),
        images = "shared memory (opaque fd), no copies",
        sync,
        "Vulkan session"
    );
    Ok(Graphics {
        device: Arc::new(device),
        compositor: Arc::new(compositor),
    })
}

pub(super) unsafe extern "system" fn destroy_session(h: xr::Session) -> xr::Result {
    guard("xrDestroySession", || {
        let removed = session(h)
            .ok()
            .and_then(|s| crate::core::instance::get(s.instance))
            .and_then(|i| i.sessions.remove(h.into_raw()));
        match removed {
            Some(cell) => {
                cell.close(h.into_raw());
                xr::Result::SUCCESS
            }
            None => xr::Result::ERROR_HANDLE_INVALID,
        }
    })
}

pub(super) unsafe extern "system" fn begin_session(
    h: xr::Session,
    info: *const xr::SessionBeginInfo,
) -> xr::Result {
    guard("xrBeginSession", || {
        done((|| {
            let s = session(h)?;
            // SAFETY: the app passes a valid structure, or null (refused).
            let info = unsafe { super::marshal::input(info) }?;
            if info.primary_view_configuration_type != xr::ViewConfigurationType::PRIMARY_STEREO {
                return Err(xr::Result::ERROR_VIEW_CONFIGURATION_TYPE_UNSUPPORTED);
            }
            let mut s = slock(&s);
            s.session.begin().map_err(map_err)?;
            flush(h.into_raw(), &mut s);
            Ok(())
        })())
    })
}

/// A lifecycle call on a session, its state changes reported as events.
fn lifecycle(
    name: &'static str,
    h: xr::Session,
    f: impl FnOnce(&mut Session) -> Result<(), SessionError>,
) -> xr::Result {
    guard(name, || {
        done((|| {
            let cell = session(h)?;
            let mut s = slock(&cell);
            let r = f(&mut s.session).map_err(map_err);
            flush(h.into_raw(), &mut s);
            drop(s);
            // A session that stopped running frees an xrWaitFrame waiting on it.
            cell.frame_begun.notify_all();
            r
        })())
    })
}

pub(super) unsafe extern "system" fn end_session(h: xr::Session) -> xr::Result {
    lifecycle("xrEndSession", h, Session::end)
}

pub(super) unsafe extern "system" fn request_exit_session(h: xr::Session) -> xr::Result {
    lifecycle("xrRequestExitSession", h, Session::request_exit)
}

pub(super) unsafe extern "system" fn wait_frame(
    h: xr::Session,
    info: *const xr::FrameWaitInfo,
    out: *mut xr::FrameState,
) -> xr::Result {
    guard("xrWaitFrame", || {
        done((|| {
            let cell = session(h)?;
            if out.is_null() {
                return Err(xr::Result::ERROR_VALIDATION_FAILURE);
            }
            // SAFETY: checked non-null; info may be null (it is optional).
            if !info.is_null() && unsafe { (*info).ty } != xr::StructureType::FRAME_WAIT_INFO {
                return Err(xr::Result::ERROR_VALIDATION_FAILURE);
            }
            // SAFETY: checked non-null.
            if unsafe { (*out).ty } != xr::StructureType::FRAME_STATE {
                return Err(xr::Result::ERROR_VALIDATION_FAILURE);
            }
            // Plan under the lock, sleep without it.
            let (wake, display, period, should_render) = {
                let mut s = slock(&cell);
                s.check_lost(h.into_raw());
                // A second xrWaitFrame blocks until the frame the first returned is begun.
                // It also returns when the session is lost (the compositor stopping
                // notifies no one: checked every 100 ms) or destroyed.
                while s.session.frame_wait_blocked()
                    && !s.closed
                    && s.session.state() != SessionState::LossPending
                {
                    s = cell
                        .frame_begun
                        .wait_timeout(s, std::time::Duration::from_millis(100))
                        .unwrap_or_else(|p| p.into_inner())
                        .0;
                    s.check_lost(h.into_raw());
                }
                if s.closed {
                    return Err(xr::Result::ERROR_HANDLE_INVALID);
                }
                s.session.wait_frame().map_err(map_err)?;
                let now = now_ns();
                let clock = match &s.gfx {
                    Some(g) => g.compositor.clock(),
                    None => FrameClock {
                        vblank_ns: s.epoch_ns,
                        period_ns: s.period_ns,
                        scanout_to_photon_ns: s.scanout_to_photon_ns,
                    },
                };
                let period = clock.period_ns.max(1);
                let next = clock.app_frame(now, s.last_vblank_ns);
                s.last_vblank_ns = Some(next.vblank_ns);
                let vblank = next.vblank_ns;
                let should_render = matches!(
                    s.session.state(),
                    SessionState::Visible | SessionState::Focused
                ) || s.session.state() == SessionState::Ready;
                (
                    next.wake_ns,
                    vblank + clock.scanout_to_photon_ns,
                    period,
                    should_render,
                )
            };
            let now = now_ns();
            if wake > now {
                std::thread::sleep(std::time::Duration::from_nanos(wake - now));
            }
            // SAFETY: checked non-null and typed above.
            let o = unsafe { &mut *out };
            o.predicted_display_time = xr::Time::from_nanos(display as i64);
            o.predicted_display_period = xr::Duration::from_nanos(period as i64);
            o.should_render = should_render.into();
            Ok(())
        })())
    })
}

pub(super) unsafe extern "system" fn begin_frame(
    h: xr::Session,
    info: *const xr::FrameBeginInfo,
) -> xr::Result {
    guard("xrBeginFrame", || {
        let s = match session(h) {
            Ok(s) => s,
            Err(e) => return e,
        };
        // SAFETY: info may be null (optional); when not, it points to a structure.
        if !info.is_null() && unsafe { (*info).ty } != xr::StructureType::FRAME_BEGIN_INFO {
            return xr::Result::ERROR_VALIDATION_FAILURE;
        }
        let r = match slock(&s).session.begin_frame() {
            Ok(BeginFrame::Begun) => xr::Result::SUCCESS,
            Ok(BeginFrame::DiscardedPrevious) => xr::Result::FRAME_DISCARDED,
            Err(e) => map_err(e),
        };
        s.frame_begun.notify_all();
        r
    })
}

pub(super) unsafe extern "system" fn end_frame(
    h: xr::Session,
    info: *const xr::FrameEndInfo,
) -> xr::Result {
    guard("xrEndFrame", || {
        done((|| {
            let cell = session(h)?;
            // SAFETY: the app passes a valid structure, or null (refused).
            let info = unsafe { super::marshal::input(info) }?;
            // Checked, resolved and ended under the session's lock, which is held only
            // for that: the app's GPU work is not waited for here (the compositor shows
            // the frame once it is done), so xrWaitFrame on another thread goes on.
            let mut s = slock(&cell);
            if s.closed {
                return Err(xr::Result::ERROR_HANDLE_INVALID);
            }
            if !s.session.is_running() {
                return Err(map_err(SessionError::NotRunning));
            }
            if info.display_time.as_nanos() <= 0 {
                return Err(xr::Result::ERROR_TIME_INVALID);
            }
            if info.environment_blend_mode != xr::EnvironmentBlendMode::OPAQUE {
                return Err(xr::Result::ERROR_ENVIRONMENT_BLEND_MODE_UNSUPPORTED);
            }
            if info.layer_count > 16 {
                return Err(xr::Result::ERROR_LAYER_LIMIT_EXCEEDED);
            }
            if !s.session.frame_in_progress() {
                return Err(xr::Result::ERROR_CALL_ORDER_INVALID);
            }
            // SAFETY: an array of `layer_count` layer pointers by contract.
            let ptrs = unsafe { super::marshal::array(info.layers, info.layer_count, true) }?;
            let FrameLayers {
                layers,
                holds,
                rendering,
            } = layers(h.into_raw(), &s, info.display_time, ptrs)?;
            if s.gfx.is_none() && !layers.is_empty() {
                // A headless session has no swapchains, so no layer can name one.
                return Err(xr::Result::ERROR_LAYER_INVALID);
            }
            s.check_lost(h.into_raw());
            s.alive()?;
            s.session.end_frame().map_err(map_err)?;
            let frame = s.session.frames_ended();
            if frame.is_multiple_of(100) {
                tracing::debug!(frames = frame, "frames ended");
            }
            // A lost session's frames go nowhere (the app has yet to see LOSS_PENDING).
            if let Some(g) = s.gfx.as_ref().filter(|_| !s.session.is_lost())
                && let Err(e) = g.compositor.submit(Submission {
                    frame,
                    layers,
                    holds,
                    rendering,
                })
            {
                tracing::error!(%e, "submitting a frame");
            }
            flush(h.into_raw(), &mut s);
            Ok(())
        })())
    })
}

/// A layer the rules refuse: the reason logged, the result OpenXR names for it.
fn refused(e: LayerError) -> xr::Result {
    tracing::warn!(reason = %e, "xrEndFrame: a layer is refused");
    match e {
        LayerError::Invalid(_) => xr::Result::ERROR_VALIDATION_FAILURE,
        LayerError::RectInvalid => xr::Result::ERROR_SWAPCHAIN_RECT_INVALID,
    }
}

fn eye_visibility(v: xr::EyeVisibility) -> Result<[bool; 2], xr::Result> {
    layer::eyes(v.into_raw()).map_err(refused)
}

fn layer_flags(f: xr::CompositionLayerFlags) -> LayerFlags {
    LayerFlags {
        blend_texture_source_alpha: f
            .contains(xr::CompositionLayerFlags::BLEND_TEXTURE_SOURCE_ALPHA),
        unpremultiplied_alpha: f.contains(xr::CompositionLayerFlags::UNPREMULTIPLIED_ALPHA),
    }
}

/// Checks a layer's sub-image against its swapchain and takes the image it shows.
fn sub_image(
    session: u64,
    si: &xr::SwapchainSubImage,
    holds: &mut Vec<Hold>,
    rendering: &mut Vec<ReleaseProbe>,
) -> Result<SubImage, xr::Result> {
    let super::swapchain::Extent {
        width: w,
        height: h,
        array_size: layers,
        faces,
        session: owner,
    } = super::swapchain::extent(si.swapchain)?;
    let r = si.image_rect;
    let shape = layer::SwapchainShape {
        width: w,
        height: h,
        array_size: layers,
        faces,
        same_session: owner == session,
    };
    let rect = layer::Rect {
        x: r.offset.x,
        y: r.offset.y,
        width: r.extent.width,
        height: r.extent.height,
    };
    layer::check_sub_image(shape, rect, si.image_array_index).map_err(refused)?;
    let shown = super::swapchain::shown(si.swapchain, session)?;
    holds.push(shown.hold);
    rendering.extend(shown.rendering);
    Ok(SubImage {
        image: shown.layer_id,
        x: r.offset.x,
        y: r.offset.y,
        width: r.extent.width,
        height: r.extent.height,
        array_index: si.image_array_index,
    })
}

fn fov(f: &xr::Fovf) -> Result<Fov, xr::Result> {
    layer::check_fov(Fov {
        angle_left: f.angle_left,
        angle_right: f.angle_right,
        angle_up: f.angle_up,
        angle_down: f.angle_down,
    })
    .map_err(refused)
}

fn app_pose(p: &xr::Posef) -> Result<leasehold_drivers::api::Pose, xr::Result> {
    crate::state::space::validate_pose(super::space::to_pose(p))
        .map_err(|_| xr::Result::ERROR_POSE_INVALID)
}

/// Walks a projection view's `next` chain: depth info (XR_KHR_composition_layer_depth)
/// is checked and accepted; the compositor does not use depth yet.
///
/// # Safety
/// `next` must be null or a valid input structure chain.
unsafe fn check_view_chain(
    session: u64,
    depth_enabled: bool,
    next: *const std::ffi::c_void,
) -> Result<(), xr::Result> {
    let visit = |ty: xr::StructureType, at: *const std::ffi::c_void| {
        if ty == xr::StructureType::COMPOSITION_LAYER_DEPTH_INFO_KHR && depth_enabled {
            // SAFETY: the type says what it is.
            let d = unsafe { &*(at as *const xr::CompositionLayerDepthInfoKHR) };
            if super::swapchain::extent(d.sub_image.swapchain)?.session != session {
                return Err(xr::Result::ERROR_VALIDATION_FAILURE);
            }
            if !(0.0..=1.0).contains(&d.min_depth)
                || !(0.0..=1.0).contains(&d.max_depth)
                || d.min_depth > d.max_depth
            {
                return Err(xr::Result::ERROR_VALIDATION_FAILURE);
            }
        }
        Ok(())
    };
    // SAFETY: by this function's contract.
    unsafe { super::marshal::walk_chain(next, visit) }
}

/// xrEndFrame's layers, checked and resolved.
struct FrameLayers {
    layers: Vec<Layer>,
    /// Keep the shown images from being reused while the compositor reads them.
    holds: Vec<Hold>,
    /// The app's rendering into the shown images, for the compositor to ask about.
    rendering: Vec<ReleaseProbe>,
}

/// xrEndFrame's layers, checked, as the compositor's layers.
fn layers(
    session: u64,
    s: &SessionObj,
    time: xr::Time,
    ptrs: &[*const xr::CompositionLayerBaseHeader],
) -> Result<FrameLayers, xr::Result> {
    let (depth_enabled, cylinder, equirect, equirect2, cube) =
        crate::core::instance::get(s.instance)
            .map(|i| {
                let i = lock(&i);
                (
                    i.enabled("XR_KHR_composition_layer_depth"),
                    i.enabled("XR_KHR_composition_layer_cylinder"),
                    i.enabled("XR_KHR_composition_layer_equirect"),
                    i.enabled("XR_KHR_composition_layer_equirect2"),
                    i.enabled("XR_KHR_composition_layer_cube"),
                )
            })
            .unwrap_or_default();
    let mut out = Vec::with_capacity(ptrs.len());
    let mut holds = Vec::new();
    let mut rendering = Vec::new();
    for &p in ptrs {
        if p.is_null() {
            return Err(xr::Result::ERROR_LAYER_INVALID);
        }
        // SAFETY: non-null; every layer starts with the base header.
        let base = unsafe { &*p };
        let known = xr::CompositionLayerFlags::CORRECT_CHROMATIC_ABERRATION
            | xr::CompositionLayerFlags::BLEND_TEXTURE_SOURCE_ALPHA
            | xr::CompositionLayerFlags::UNPREMULTIPLIED_ALPHA;
        layer::check_flags(base.layer_flags.into_raw(), known.into_raw()).map_err(refused)?;
        let space = super::space::in_world(base.space, session, s, time)?;
        match base.ty {
            xr::StructureType::COMPOSITION_LAYER_PROJECTION => {
                // SAFETY: the type says it is a projection layer.
                let l = unsafe { &*(p as *const xr::CompositionLayerProjection) };
                layer::check_view_count(l.view_count, !l.views.is_null()).map_err(refused)?;
                // SAFETY: non-null array of `view_count` views by contract.
                let views = unsafe { std::slice::from_raw_parts(l.views, 2) };
                let mut pv = Vec::with_capacity(2);
                for v in views {
                    if v.ty != xr::StructureType::COMPOSITION_LAYER_PROJECTION_VIEW {
                        return Err(xr::Result::ERROR_VALIDATION_FAILURE);
                    }
                    // SAFETY: the view's `next` chain, as the app built it.
                    unsafe { check_view_chain(session, depth_enabled, v.next) }?;
                    pv.push(ProjectionView {
                        pose: space.compose(&app_pose(&v.pose)?),
                        fov: fov(&v.fov)?,
                        sub_image: sub_image(session, &v.sub_image, &mut holds, &mut rendering)?,
                    });
                }
                out.push(Layer::Projection {
                    views: [pv[0], pv[1]],
                    flags: layer_flags(base.layer_flags),
                });
            }
            xr::StructureType::COMPOSITION_LAYER_QUAD => {
                // SAFETY: the type says it is a quad layer.
                let l = unsafe { &*(p as *const xr::CompositionLayerQuad) };
                let eyes = eye_visibility(l.eye_visibility)?;
                let shape = layer::check_quad(l.size.width, l.size.height).map_err(refused)?;
                let quad = Layer::Quad {
                    eyes,
                    sub_image: sub_image(session, &l.sub_image, &mut holds, &mut rendering)?,
                    pose: space.compose(&app_pose(&l.pose)?),
                    size: glam::Vec2::new(l.size.width, l.size.height),
                    flags: layer_flags(base.layer_flags),
                };
                // A quad without area is valid and shows nothing.
                if shape == Shape::Drawn {
                    out.push(quad);
                }
            }
            xr::StructureType::COMPOSITION_LAYER_CYLINDER_KHR if cylinder => {
                // SAFETY: the type says it is a cylinder layer.
                let l = unsafe { &*(p as *const xr::CompositionLayerCylinderKHR) };
                let shape = layer::check_cylinder(l.radius, l.central_angle, l.aspect_ratio)
                    .map_err(refused)?;
                let layer = Layer::Cylinder {
                    eyes: eye_visibility(l.eye_visibility)?,
                    sub_image: sub_image(session, &l.sub_image, &mut holds, &mut rendering)?,
                    pose: space.compose(&app_pose(&l.pose)?),
                    radius: l.radius,
                    central_angle: l.central_angle,
                    aspect_ratio: l.aspect_ratio,
                    flags: layer_flags(base.layer_flags),
                };
                // A cylinder without an arc is valid and shows nothing.
                if shape == Shape::Drawn {
                    out.push(layer);
                }
            }
            xr::StructureType::COMPOSITION_LAYER_EQUIRECT2_KHR if equirect2 => {
                // SAFETY: the type says it is an equirect2 layer.
                let l = unsafe { &*(p as *const xr::CompositionLayerEquirect2KHR) };
                let shape = layer::check_equirect2(
                    l.radius,
                    l.central_horizontal_angle,
                    l.upper_vertical_angle,
                    l.lower_vertical_angle,
                )
                .map_err(refused)?;
                let layer = Layer::Equirect {
                    eyes: eye_visibility(l.eye_visibility)?,
                    sub_image: sub_image(session, &l.sub_image, &mut holds, &mut rendering)?,
                    pose: space.compose(&app_pose(&l.pose)?),
                    radius: l.radius,
                    central_horizontal_angle: l.central_horizontal_angle,
                    upper_vertical_angle: l.upper_vertical_angle,
                    lower_vertical_angle: l.lower_vertical_angle,
                    flags: layer_flags(base.layer_flags),
                };
                // Without area it is valid and shows nothing.
                if shape == Shape::Drawn {
                    out.push(layer);
                }
            }
            xr::StructureType::COMPOSITION_LAYER_EQUIRECT_KHR if equirect => {
                // SAFETY: the type says it is an equirect layer.
                let l = unsafe { &*(p as *const xr::CompositionLayerEquirectKHR) };
                layer::check_equirect(l.radius, [l.scale.x, l.scale.y], [l.bias.x, l.bias.y])
                    .map_err(refused)?;
                out.push(Layer::EquirectScaleBias {
                    eyes: eye_visibility(l.eye_visibility)?,
                    sub_image: sub_image(session, &l.sub_image, &mut holds, &mut rendering)?,
                    pose: space.compose(&app_pose(&l.pose)?),
                    radius: l.radius,
                    scale: glam::Vec2::new(l.scale.x, l.scale.y),
                    bias: glam::Vec2::new(l.bias.x, l.bias.y),
                    flags: layer_flags(base.layer_flags),
                });
            }
            xr::StructureType::COMPOSITION_LAYER_CUBE_KHR if cube => {
                // SAFETY: the type says it is a cube layer.
                let l = unsafe { &*(p as *const xr::CompositionLayerCubeKHR) };
                let e = super::swapchain::extent(l.swapchain)?;
                let shape = layer::SwapchainShape {
                    width: e.width,
                    height: e.height,
                    array_size: e.array_size,
                    faces: e.faces,
                    same_session: e.session == session,
                };
                layer::check_cube(shape, l.image_array_index).map_err(refused)?;
                let orientation = app_pose(&xr::Posef {
                    orientation: l.orientation,
                    position: xr::Vector3f::default(),
                })?;
                let shown = super::swapchain::shown(l.swapchain, session)?;
                holds.push(shown.hold);
                rendering.extend(shown.rendering);
                out.push(Layer::Cube {
                    eyes: eye_visibility(l.eye_visibility)?,
                    sub_image: SubImage {
                        image: shown.layer_id,
                        x: 0,
                        y: 0,
                        width: e.width as i32,
                        height: e.height as i32,
                        array_index: l.image_array_index * 6,
                    },
                    orientation: space.compose(&orientation).orientation,
                    flags: layer_flags(base.layer_flags),
                });
            }
            _ => return Err(xr::Result::ERROR_LAYER_INVALID),
        }
    }
    Ok(FrameLayers {
        layers: out,
        holds,
        rendering,
    })
}

// ---------------------------------------------------------------------------------
// XR_FB_display_refresh_rate
// ---------------------------------------------------------------------------------

fn rates(s: &SessionObj) -> Vec<f32> {
    s.display.refresh_hz.clone()
}

fn fb_enabled(s: &SessionObj) -> bool {
    crate::core::instance::get(s.instance)
        .is_some_and(|i| lock(&i).enabled("XR_FB_display_refresh_rate"))
}

pub(super) unsafe extern "system" fn enumerate_display_refresh_rates(
    h: xr::Session,
    capacity: u32,
    count_out: *mut u32,
    out: *mut f32,
) -> xr::Result {
    guard("xrEnumerateDisplayRefreshRatesFB", || {
        done((|| {
            let s = session(h)?;
            let s = slock(&s);
            if !fb_enabled(&s) {
                return Err(xr::Result::ERROR_FUNCTION_UNSUPPORTED);
            }
            let r = rates(&s);
            // SAFETY: the two-call contract of the entry point.
            unsafe { super::marshal::two_call_copy(&r, capacity, count_out, out) }
        })())
    })
}

pub(super) unsafe extern "system" fn get_display_refresh_rate(
    h: xr::Session,
    out: *mut f32,
) -> xr::Result {
    guard("xrGetDisplayRefreshRateFB", || {
        done((|| {
            let s = session(h)?;
            let s = slock(&s);
            if !fb_enabled(&s) {
                return Err(xr::Result::ERROR_FUNCTION_UNSUPPORTED);
            }
            if out.is_null() {
                return Err(xr::Result::ERROR_VALIDATION_FAILURE);
            }
            // SAFETY: checked non-null.
            unsafe { *out = (1e9 / s.period_ns as f64) as f32 };
            Ok(())
        })())
    })
}

pub(super) unsafe extern "system" fn request_display_refresh_rate(
    h: xr::Session,
    rate: f32,
) -> xr::Result {
    guard("xrRequestDisplayRefreshRateFB", || {
        done((|| {
            let s = session(h)?;
            let mut s = slock(&s);
            if !fb_enabled(&s) {
                return Err(xr::Result::ERROR_FUNCTION_UNSUPPORTED);
            }
            let available = rates(&s);
            // 0 asks for the runtime's choice: the headset's preferred rate.
            let target = if rate == 0.0 {
                available.first().copied().unwrap_or(90.0)
            } else if available.iter().any(|r| (r - rate).abs() < 0.01) {
                rate
            } else {
                return Err(xr::Result::ERROR_DISPLAY_REFRESH_RATE_UNSUPPORTED_FB);
            };
            let from = (1e9 / s.period_ns as f64) as f32;
            let period = (1e9 / f64::from(target)).round() as u64;
            if period != s.period_ns {
                // Re-anchor the frame clock at the change.
                s.epoch_ns = now_ns();
                s.period_ns = period;
                s.last_vblank_ns = None;
                if let Some(i) = crate::core::instance::get(s.instance) {
                    lock(&i).events.push_back(Event::DisplayRefreshRateChanged {
                        from_hz: from,
                        to_hz: target,
                    });
                }
                tracing::info!(from, to = target, "display refresh rate changed");
            }
            Ok(())
        })())
    })
}
