//! Sessions and the frame loop at the ABI: xrCreateSession (headless, through
//! XR_MND_headless, until the Vulkan bindings land), the lifecycle calls, and
//! xrWaitFrame / xrBeginFrame / xrEndFrame paced by the display's refresh.

use super::{done, guard, instance, lock};
use crate::state::session::{BeginFrame, Session, SessionError, SessionState};
use crate::state::{self, Event};
use openxr_sys as xr;
use openxr_sys::Handle as _;
use std::sync::{Arc, Mutex};

pub(super) struct SessionObj {
    pub(super) instance: u64,
    /// The headset the session tracks (the simulated one until a driver is attached).
    pub(super) hmd: leasehold_drivers::simulated::SimulatedHmd,
    pub(super) display: leasehold_drivers::api::DisplayInfo,
    /// OpenXR 1.1 instances also get LOCAL_FLOOR.
    pub(super) api_minor: u16,
    session: Session,
    /// Display frame clock: vblanks at `epoch + k · period`.
    epoch_ns: u64,
    period_ns: u64,
    scanout_to_photon_ns: u64,
    /// The last vblank index handed out by xrWaitFrame.
    last_vblank: Option<u64>,
}

pub(super) static SESSIONS: super::handles::HandleTable<Mutex<SessionObj>> =
    super::handles::HandleTable::new(2);

pub(super) fn now_ns() -> u64 {
    let t = rustix::time::clock_gettime(rustix::time::ClockId::Monotonic);
    t.tv_sec as u64 * 1_000_000_000 + t.tv_nsec as u64
}

pub(super) fn session(h: xr::Session) -> Result<Arc<Mutex<SessionObj>>, xr::Result> {
    SESSIONS
        .get(h.into_raw())
        .ok_or(xr::Result::ERROR_HANDLE_INVALID)
}

pub(super) fn slock(s: &Mutex<SessionObj>) -> std::sync::MutexGuard<'_, SessionObj> {
    s.lock().unwrap_or_else(|p| p.into_inner())
}

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

pub(super) fn xr_state(s: SessionState) -> xr::SessionState {
    match s {
        SessionState::Idle => xr::SessionState::IDLE,
        SessionState::Ready => xr::SessionState::READY,
        SessionState::Synchronized => xr::SessionState::SYNCHRONIZED,
        SessionState::Visible => xr::SessionState::VISIBLE,
        SessionState::Focused => xr::SessionState::FOCUSED,
        SessionState::Stopping => xr::SessionState::STOPPING,
        SessionState::LossPending => xr::SessionState::LOSS_PENDING,
        SessionState::Exiting => xr::SessionState::EXITING,
    }
}

/// Moves the session's state changes into its instance's event queue.
fn flush(handle: u64, s: &mut SessionObj) {
    let events = s.session.take_events();
    if events.is_empty() {
        return;
    }
    if let Some(i) = super::INSTANCES.get(s.instance) {
        let t = now_ns() as i64;
        let mut inst = lock(&i);
        for state in events {
            inst.events.push_back(Event::SessionStateChanged {
                session: handle,
                state,
                time_ns: t,
            });
        }
    }
}

pub(super) unsafe extern "system" fn create_session(
    instance_h: xr::Instance,
    info: *const xr::SessionCreateInfo,
    out: *mut xr::Session,
) -> xr::Result {
    guard(|| {
        done((|| {
            let i = instance(instance_h)?;
            // SAFETY: the app passes a valid structure, or null (refused).
            let info = unsafe { super::input(info) }?;
            if out.is_null() {
                return Err(xr::Result::ERROR_VALIDATION_FAILURE);
            }
            if info.system_id.into_raw() != state::HMD_SYSTEM_ID {
                return Err(xr::Result::ERROR_SYSTEM_INVALID);
            }
            let (headless, display, api_minor) = {
                let inst = lock(&i);
                (
                    inst.enabled("XR_MND_headless"),
                    inst.system.display.clone(),
                    inst.api_version.1,
                )
            };
            if !info.next.is_null() {
                // A graphics binding: none is implemented yet (none is advertised).
                tracing::error!(
                    "xrCreateSession with a graphics binding: Leasehold's Vulkan bindings are not implemented yet"
                );
                return Err(xr::Result::ERROR_GRAPHICS_DEVICE_INVALID);
            }
            if !headless {
                return Err(xr::Result::ERROR_GRAPHICS_DEVICE_INVALID);
            }
            let hz = display.refresh_hz.first().copied().unwrap_or(90.0).max(1.0);
            let obj = SessionObj {
                instance: instance_h.into_raw(),
                hmd: leasehold_drivers::simulated::SimulatedHmd::looking_around(now_ns()),
                display: display.clone(),
                api_minor,
                session: Session::new(),
                epoch_ns: now_ns(),
                period_ns: (1e9 / hz as f64).round() as u64,
                scanout_to_photon_ns: display.scanout_to_photon_ns,
                last_vblank: None,
            };
            // The handle first, so the IDLE and READY events can name it.
            let h = SESSIONS.insert(Mutex::new(obj));
            if let Some(s) = SESSIONS.get(h) {
                flush(h, &mut slock(&s));
            }
            // SAFETY: checked non-null.
            unsafe { *out = xr::Session::from_raw(h) };
            tracing::info!("headless session created");
            Ok(())
        })())
    })
}

/// Destroys the sessions of an instance that is being destroyed.
pub(super) fn destroy_children(instance: u64) -> usize {
    let n = SESSIONS.remove_where(|s| slock(s).instance == instance);
    // Their spaces go with them.
    super::space::destroy_orphans();
    n
}

/// Live sessions (for leak tests).
pub fn live_sessions() -> usize {
    SESSIONS.len()
}

pub(super) unsafe extern "system" fn destroy_session(h: xr::Session) -> xr::Result {
    guard(|| match SESSIONS.remove(h.into_raw()) {
        Some(_) => {
            super::space::destroy_children(h.into_raw());
            xr::Result::SUCCESS
        }
        None => xr::Result::ERROR_HANDLE_INVALID,
    })
}

pub(super) unsafe extern "system" fn begin_session(
    h: xr::Session,
    info: *const xr::SessionBeginInfo,
) -> xr::Result {
    guard(|| {
        done((|| {
            let s = session(h)?;
            // SAFETY: the app passes a valid structure, or null (refused).
            let info = unsafe { super::input(info) }?;
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
    h: xr::Session,
    f: impl FnOnce(&mut Session) -> Result<(), SessionError>,
) -> xr::Result {
    guard(|| {
        done((|| {
            let s = session(h)?;
            let mut s = slock(&s);
            f(&mut s.session).map_err(map_err)?;
            flush(h.into_raw(), &mut s);
            Ok(())
        })())
    })
}

pub(super) unsafe extern "system" fn end_session(h: xr::Session) -> xr::Result {
    lifecycle(h, Session::end)
}

pub(super) unsafe extern "system" fn request_exit_session(h: xr::Session) -> xr::Result {
    lifecycle(h, Session::request_exit)
}

pub(super) unsafe extern "system" fn wait_frame(
    h: xr::Session,
    info: *const xr::FrameWaitInfo,
    out: *mut xr::FrameState,
) -> xr::Result {
    guard(|| {
        done((|| {
            let s = session(h)?;
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
                let mut s = slock(&s);
                s.session.wait_frame().map_err(map_err)?;
                let now = now_ns();
                // The app gets one period to render: target the first vblank at least a
                // period away, never the same vblank twice.
                let earliest = (now + s.period_ns).saturating_sub(s.epoch_ns);
                let mut k = earliest.div_ceil(s.period_ns);
                if let Some(last) = s.last_vblank {
                    k = k.max(last + 1);
                }
                s.last_vblank = Some(k);
                let vblank = s.epoch_ns + k * s.period_ns;
                let should_render = matches!(
                    s.session.state(),
                    SessionState::Visible | SessionState::Focused
                ) || s.session.state() == SessionState::Ready;
                (
                    vblank - s.period_ns,
                    vblank + s.scanout_to_photon_ns,
                    s.period_ns,
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
    guard(|| {
        let s = match session(h) {
            Ok(s) => s,
            Err(e) => return e,
        };
        // SAFETY: info may be null (optional); when not, it points to a structure.
        if !info.is_null() && unsafe { (*info).ty } != xr::StructureType::FRAME_BEGIN_INFO {
            return xr::Result::ERROR_VALIDATION_FAILURE;
        }
        let mut s = slock(&s);
        match s.session.begin_frame() {
            Ok(BeginFrame::Begun) => xr::Result::SUCCESS,
            Ok(BeginFrame::DiscardedPrevious) => xr::Result::FRAME_DISCARDED,
            Err(e) => map_err(e),
        }
    })
}

pub(super) unsafe extern "system" fn end_frame(
    h: xr::Session,
    info: *const xr::FrameEndInfo,
) -> xr::Result {
    guard(|| {
        done((|| {
            let s = session(h)?;
            // SAFETY: the app passes a valid structure, or null (refused).
            let info = unsafe { super::input(info) }?;
            let mut s = slock(&s);
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
            if info.layer_count > 0 {
                if info.layers.is_null() {
                    return Err(xr::Result::ERROR_VALIDATION_FAILURE);
                }
                // SAFETY: non-null array of `layer_count` pointers by contract.
                let layers =
                    unsafe { std::slice::from_raw_parts(info.layers, info.layer_count as usize) };
                if layers.iter().any(|l| l.is_null()) {
                    return Err(xr::Result::ERROR_LAYER_INVALID);
                }
                // A headless session has no swapchains, so no layer can name a valid one.
                return Err(xr::Result::ERROR_HANDLE_INVALID);
            }
            s.session.end_frame().map_err(map_err)?;
            flush(h.into_raw(), &mut s);
            Ok(())
        })())
    })
}

// ---------------------------------------------------------------------------------
// XR_FB_display_refresh_rate
// ---------------------------------------------------------------------------------

fn rates(s: &SessionObj) -> Vec<f32> {
    s.display.refresh_hz.clone()
}

fn fb_enabled(s: &SessionObj) -> bool {
    super::INSTANCES
        .get(s.instance)
        .is_some_and(|i| lock(&i).enabled("XR_FB_display_refresh_rate"))
}

pub(super) unsafe extern "system" fn enumerate_display_refresh_rates(
    h: xr::Session,
    capacity: u32,
    count_out: *mut u32,
    out: *mut f32,
) -> xr::Result {
    guard(|| {
        done((|| {
            let s = session(h)?;
            let s = slock(&s);
            if !fb_enabled(&s) {
                return Err(xr::Result::ERROR_FUNCTION_UNSUPPORTED);
            }
            let r = rates(&s);
            // SAFETY: the two-call contract of the entry point.
            unsafe {
                super::two_call(&r, capacity, count_out, out, |o, v| {
                    *o = *v;
                    Ok(())
                })
            }
        })())
    })
}

pub(super) unsafe extern "system" fn get_display_refresh_rate(
    h: xr::Session,
    out: *mut f32,
) -> xr::Result {
    guard(|| {
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
    guard(|| {
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
                s.last_vblank = None;
                if let Some(i) = super::INSTANCES.get(s.instance) {
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
