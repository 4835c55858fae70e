//! Sessions in the tree: a session owns its swapchains, spaces and debug labels; its
//! instance owns it. Destroying it (or its instance) closes it: threads waiting in
//! xrWaitFrame return, its children go, its events are no longer delivered.

use super::registry::{Children, Kind, REGISTRY};
use super::space::SpaceObj;
use super::swapchain::SwapchainObj;
use crate::state::session::{Session, SessionState};
use crate::state::{Event, Instance};
use leasehold_compositor::service::Compositor;
use leasehold_compositor::vk::app::AppDevice;
use leasehold_drivers::api::Hmd;
use leasehold_drivers::simulated::SimulatedController;
use openxr_sys as xr;
use openxr_sys::Handle as _;
use std::sync::{Arc, Condvar, Mutex, Weak};

/// A Vulkan session's app device and compositor.
#[derive(Clone)]
pub(crate) struct Graphics {
    pub(crate) device: Arc<AppDevice>,
    pub(crate) compositor: Arc<dyn Compositor>,
}

pub(crate) struct SessionObj {
    pub(crate) instance: u64,
    /// Where the session's events go: its instance's state (gone with the instance).
    pub(crate) owner: Weak<Mutex<Instance>>,
    /// The headset the session tracks (the simulated one until a driver is attached),
    /// shared with the compositor (its timewarp samples the same poses).
    pub(crate) hmd: Arc<dyn Hmd>,
    /// Vulkan sessions; `None` for headless ones.
    pub(crate) gfx: Option<Graphics>,
    /// The controllers actions read (simulated until a driver is attached).
    pub(crate) controllers: [SimulatedController; 2],
    /// Attached action sets (xrAttachSessionActionSets).
    pub(crate) actions: Option<super::action::Attached>,
    pub(crate) max_swapchain_size: u32,
    pub(crate) display: leasehold_drivers::api::DisplayInfo,
    /// LOCAL_FLOOR exists: OpenXR 1.1 instances, and those with XR_EXT_local_floor.
    pub(crate) local_floor: bool,
    pub(crate) session: Session,
    /// Destroyed (xrDestroySession, or its instance's destruction).
    pub(crate) closed: bool,
    /// Display frame clock: vblanks at `epoch + k · period`.
    pub(crate) epoch_ns: u64,
    pub(crate) period_ns: u64,
    pub(crate) scanout_to_photon_ns: u64,
    /// The last vblank time handed out by xrWaitFrame (Vulkan sessions).
    pub(crate) last_vblank_ns: Option<u64>,
}

impl Drop for SessionObj {
    fn drop(&mut self) {
        let frames = self.session.frames_ended();
        let Some(g) = &self.gfx else {
            tracing::info!(app_frames = frames, "headless session ended");
            return;
        };
        let c = g.compositor.stats();
        let secs = now_ns().saturating_sub(self.epoch_ns) as f64 * 1e-9;
        let mut render: Vec<u64> = c.render_ns.iter().copied().collect();
        render.sort_unstable();
        let pct = |p: f64| {
            render
                .get(((render.len() as f64 - 1.0) * p).round() as usize)
                .map_or(0.0, |n| *n as f64 * 1e-6)
        };
        tracing::info!(
            app_frames = frames,
            compositor_frames = c.frames,
            app_frames_shown = c.app_frames_shown,
            vblanks_hit = c.hits,
            "session ended"
        );
        // What `leasehold demo` (and anyone else who asks) reads back: the last
        // composited panel image and a frame-timing report.
        if let Some(path) = std::env::var_os("LEASEHOLD_SNAPSHOT") {
            match g.compositor.snapshot() {
                Ok(Some(img)) => match img.write_png(std::path::Path::new(&path)) {
                    Ok(()) => {
                        tracing::info!(path = %std::path::Path::new(&path).display(), "panel image written")
                    }
                    Err(e) => tracing::error!(%e, "writing the panel image"),
                },
                Ok(None) => tracing::warn!("this display target keeps no image to write"),
                Err(e) => tracing::error!(%e, "reading the panel image back"),
            }
        }
        if let Some(path) = std::env::var_os("LEASEHOLD_FRAME_REPORT") {
            let report = format!(
                "{{\n  \"seconds\": {secs:.3},\n  \"app_frames\": {frames},\n  \"flips\": {},\n  \"compositor_frames\": {},\n  \"app_frames_shown\": {},\n  \"vblanks_hit\": {},\n  \"refresh_hz\": {:.3},\n  \"render_ms_median\": {:.3},\n  \"render_ms_p99\": {:.3},\n  \"vk_validation_messages\": {},\n  \"compositor\": \"{}\"\n}}\n",
                c.flips.map_or("null".to_string(), |f| f.to_string()),
                c.frames,
                c.app_frames_shown,
                c.hits,
                1e9 / g.compositor.clock().period_ns.max(1) as f64,
                pct(0.5),
                pct(0.99),
                leasehold_compositor::vk::validation::reports(),
                g.compositor.describe().replace('"', "'"),
            );
            if let Err(e) = std::fs::write(&path, report) {
                tracing::error!(%e, "writing the frame report");
            }
        }
    }
}

impl SessionObj {
    pub(crate) fn is_focused(&self) -> bool {
        self.session.state() == SessionState::Focused
    }

    pub(crate) fn graphics(&self) -> Option<Graphics> {
        self.gfx.clone()
    }

    /// XR_ERROR_SESSION_LOST once the session is lost and the app has polled its
    /// LOSS_PENDING event (the rule is `state::session`'s); a compositor that lost its
    /// display loses the session.
    pub(crate) fn alive(&self) -> Result<(), xr::Result> {
        self.session
            .alive()
            .map_err(|_| xr::Result::ERROR_SESSION_LOST)
    }

    /// Notices a compositor that stopped: the session moves to LOSS_PENDING.
    pub(crate) fn check_lost(&mut self, handle: u64) {
        if let Some(why) = self
            .gfx
            .as_ref()
            .and_then(|g| g.compositor.lost().or_else(|| g.device.gone()))
            && self.session.state() != SessionState::LossPending
        {
            tracing::error!(%why, "session lost");
            self.session.lose();
            flush(handle, self);
        }
    }
}

/// A session's state behind its lock, and the condition xrWaitFrame waits on: a second
/// xrWaitFrame blocks until the frame the first one returned is begun.
pub(crate) struct SessionCell {
    /// The instance's handle (immutable: read without the lock).
    pub(crate) instance: u64,
    pub(crate) obj: Mutex<SessionObj>,
    pub(crate) frame_begun: Condvar,
    pub(crate) swapchains: Children<SwapchainObj>,
    pub(crate) spaces: Children<SpaceObj>,
    /// Open debug label regions, outermost first; `true` marks an inserted label (it
    /// closes at the next begin, insert or end).
    pub(crate) labels: Mutex<Vec<(String, bool)>>,
}

impl SessionCell {
    pub(crate) fn new(instance: u64, obj: SessionObj) -> Self {
        Self {
            instance,
            obj: Mutex::new(obj),
            frame_begun: Condvar::new(),
            swapchains: Children::new(Kind::Swapchain),
            spaces: Children::new(Kind::Space),
            labels: Mutex::new(Vec::new()),
        }
    }

    /// The session was destroyed (itself or with its instance): threads waiting in
    /// xrWaitFrame return, its swapchains and spaces go (dropped here, or by the last
    /// call still using one), and its events are no longer delivered.
    pub(crate) fn close(&self, h: u64) {
        let owner = {
            let mut s = slock(self);
            s.closed = true;
            s.owner.clone()
        };
        self.frame_begun.notify_all();
        drop(self.swapchains.drain());
        drop(self.spaces.drain());
        if let Some(i) = owner.upgrade() {
            i.lock()
                .unwrap_or_else(|p| p.into_inner())
                .events
                .retain(|e| e.session() != Some(h));
        }
    }
}

pub(crate) fn now_ns() -> u64 {
    let t = rustix::time::clock_gettime(rustix::time::ClockId::Monotonic);
    t.tv_sec as u64 * 1_000_000_000 + t.tv_nsec as u64
}

/// The live session `h` names.
pub(crate) fn session(h: xr::Session) -> Result<Arc<SessionCell>, xr::Result> {
    REGISTRY
        .get(Kind::Session, h.into_raw())
        .ok_or(xr::Result::ERROR_HANDLE_INVALID)
}

pub(crate) fn slock(s: &SessionCell) -> std::sync::MutexGuard<'_, SessionObj> {
    s.obj.lock().unwrap_or_else(|p| p.into_inner())
}

/// Moves the session's state changes into its instance's event queue.
pub(crate) fn flush(handle: u64, s: &mut SessionObj) {
    let events = s.session.take_events();
    if events.is_empty() {
        return;
    }
    if let Some(i) = s.owner.upgrade() {
        let t = now_ns() as i64;
        let mut inst = i.lock().unwrap_or_else(|p| p.into_inner());
        for state in events {
            tracing::debug!(?state, "session state");
            inst.events.push_back(Event::SessionStateChanged {
                session: handle,
                state,
                time_ns: t,
            });
        }
    }
}
