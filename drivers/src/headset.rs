//! Which headset a process drives: a real one on HID when one is plugged in (the
//! Vive-family driver: Vive, Vive Pro, Index, with their config and the user's
//! calibration file, followed across unplug and replug), else the simulated one. `LEASEHOLD_HMD=simulated` asks for the
//! simulated one; `auto` (or unset) for the above. One discovery, one decision, and the
//! reason for it, which the runtime logs and `leasehold probe` prints.

use crate::api::{
    DeviceEvent, DeviceInfo, DeviceRole, DisplayInfo, DriverError, Hmd, LensModel, TrackedDevice,
    TrackedPose, TrackingOrigin,
};
use crate::simulated::SimulatedHmd;
use crate::vive::{self, ViveHmd, ViveOptions};
use std::sync::Arc;
use std::time::Duration;

/// What `LEASEHOLD_HMD` asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Preference {
    /// A real headset when one is found, else the simulated one.
    Auto,
    Simulated,
}

impl Preference {
    /// `LEASEHOLD_HMD` (unset: auto); an unknown value is an error naming the choices.
    pub fn from_env() -> Result<Self, String> {
        Self::parse(std::env::var("LEASEHOLD_HMD").ok().as_deref())
    }

    pub fn parse(v: Option<&str>) -> Result<Self, String> {
        match v.map(str::trim) {
            None | Some("") | Some("auto") => Ok(Self::Auto),
            Some("simulated") => Ok(Self::Simulated),
            Some(other) => Err(format!(
                "LEASEHOLD_HMD={other:?} is not a choice: auto (a real headset when one is \
                 plugged in, else the simulated one) or simulated"
            )),
        }
    }
}

/// The headset chosen, and why.
pub struct Chosen {
    pub hmd: Arc<dyn Hmd>,
    /// For people: "HTC Vive (LHR-1234ABCD)", "simulated HTC Vive".
    pub name: String,
    pub simulated: bool,
    pub why: String,
}

impl std::fmt::Debug for Chosen {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Chosen")
            .field("name", &self.name)
            .field("simulated", &self.simulated)
            .field("why", &self.why)
            .finish()
    }
}

/// Decides once: the real headset on HID that `pref` allows, else the simulated one
/// (its scripted motion starting at `epoch_ns`).
pub fn choose(pref: Preference, epoch_ns: u64) -> Chosen {
    let simulated = |why: String| Chosen {
        hmd: Arc::new(SimulatedHmd::looking_around(epoch_ns)),
        name: "simulated HTC Vive".into(),
        simulated: true,
        why,
    };
    if pref == Preference::Simulated {
        return simulated("LEASEHOLD_HMD=simulated".into());
    }
    // One headset, one driver per process: instances share it (two drivers would
    // interleave their requests to the device). Held while a new one starts, so a
    // second instance waits for it rather than opening the device again.
    static SHARED: std::sync::Mutex<std::sync::Weak<Supervised>> =
        std::sync::Mutex::new(std::sync::Weak::new());
    let mut shared = SHARED.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(h) = shared.upgrade() {
        let name = h.name();
        return Chosen {
            why: format!("{name} on HID, shared with this process's other instances"),
            hmd: h,
            name,
            simulated: false,
        };
    }
    // Only a headset that is there is waited for: enumerating costs nothing, opening
    // takes the supervisor a moment.
    let present = crate::hid::find_headsets()
        .map(|l| {
            l.iter()
                .any(|h| vive::is_sensor_interface(h.vendor_id, h.product_id))
        })
        .unwrap_or(false);
    if !present {
        return simulated(
            "no Vive-family headset on HID (with one plugged in: the udev rules in the \
             README give the user its interface)"
                .into(),
        );
    }
    match Supervised::start(ViveOptions::default(), Duration::from_secs(5)) {
        Ok(h) => {
            let name = h.name();
            let why = format!("{name} on HID, kept across unplug and replug");
            let h = Arc::new(h);
            *shared = Arc::downgrade(&h);
            Chosen {
                hmd: h,
                name,
                simulated: false,
                why,
            }
        }
        Err(e) => simulated(format!("the headset on HID could not be opened: {e}")),
    }
}

/// A Vive-family headset kept across unplug and replug: the driver's hotplug supervisor
/// ([`vive::supervise`], on a thread of its own) fills and empties the slot, and poses
/// come from whichever headset is in it (none while it is empty: the head is not
/// tracked). Its display and lens are those of the headset first found.
struct Supervised {
    slot: vive::HmdSlot,
    info: DeviceInfo,
    display: DisplayInfo,
    lens: LensModel,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Supervised {
    /// Starts the supervisor and waits (at most `first`) for it to open a headset.
    fn start(opts: ViveOptions, first: Duration) -> Result<Self, String> {
        let slot = vive::HmdSlot::default();
        let (stop, mut stopped) = tokio::sync::oneshot::channel::<()>();
        // The caller's log subscriber (the runtime sets its own only for the duration of
        // each OpenXR call) goes with the supervisor's thread and its blocking pool, or
        // "headset lost" and the open failures would be heard by no one.
        let logs = tracing::dispatcher::get_default(|d| d.clone());
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .on_thread_start({
                let logs = logs.clone();
                // The guard is kept for the pool thread's whole life.
                move || std::mem::forget(tracing::dispatcher::set_default(&logs))
            })
            .build()
            .map_err(|e| format!("the headset supervisor's runtime: {e}"))?;
        let thread = {
            let slot = slot.clone();
            std::thread::Builder::new()
                .name("leasehold-headset".into())
                .spawn(move || {
                    let _logs = tracing::dispatcher::set_default(&logs);
                    let rt = rt;
                    rt.block_on(async move {
                        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
                        let sup = vive::supervise(opts, slot, tx);
                        tokio::pin!(sup);
                        loop {
                            tokio::select! {
                                r = &mut sup => {
                                    if let Err(e) = r {
                                        tracing::error!(%e, "the headset supervisor stopped: the headset is not followed any more");
                                    }
                                    return;
                                }
                                ev = rx.recv() => match ev {
                                    Some(DeviceEvent::Lost { reason, .. }) => {
                                        tracing::warn!(%reason, "headset lost: not tracked until it is back");
                                    }
                                    Some(ev) => tracing::info!(?ev, "headset"),
                                    None => return,
                                },
                                _ = &mut stopped => return,
                            }
                        }
                    });
                    // A headset being opened (blocking HID requests) is not waited for
                    // beyond this: the app's thread is the one dropping the headset.
                    rt.shutdown_timeout(Duration::from_millis(200));
                })
                .map_err(|e| format!("the headset supervisor's thread: {e}"))?
        };
        let mut s = Self {
            slot,
            info: DeviceInfo {
                role: DeviceRole::Hmd,
                name: String::new(),
                serial: String::new(),
            },
            display: SimulatedHmd::looking_around(0).display(),
            lens: LensModel::None,
            stop: Some(stop),
            thread: Some(thread),
        };
        let deadline = std::time::Instant::now() + first;
        loop {
            if let Some(h) = s.current() {
                s.info = h.info();
                s.display = h.display();
                s.lens = h.lens();
                return Ok(s);
            }
            if std::time::Instant::now() >= deadline {
                return Err(format!("no headset opened within {} s", first.as_secs()));
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// For people: model and serial.
    fn name(&self) -> String {
        format!("{} ({})", self.info.name, self.info.serial)
    }

    fn current(&self) -> Option<Arc<ViveHmd>> {
        self.slot.lock().ok()?.clone()
    }
}

impl Drop for Supervised {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl TrackedDevice for Supervised {
    fn info(&self) -> DeviceInfo {
        self.info.clone()
    }

    fn tracking_origin(&self) -> TrackingOrigin {
        match self.current() {
            Some(h) => h.tracking_origin(),
            None => TrackingOrigin::OrientationOnly { eye_height_m: 1.6 },
        }
    }

    fn pose_at(&self, time_ns: u64) -> Result<TrackedPose, DriverError> {
        match self.current() {
            Some(h) => h.pose_at(time_ns),
            None => Err(DriverError::Disconnected("the headset is unplugged".into())),
        }
    }
}

impl Hmd for Supervised {
    fn display(&self) -> DisplayInfo {
        self.display.clone()
    }

    fn lens(&self) -> LensModel {
        self.lens
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_preference_is_auto_unless_simulated_is_asked_for() {
        assert_eq!(Preference::parse(None), Ok(Preference::Auto));
        assert_eq!(Preference::parse(Some("auto")), Ok(Preference::Auto));
        assert_eq!(
            Preference::parse(Some(" simulated ")),
            Ok(Preference::Simulated)
        );
        let e = Preference::parse(Some("vive")).unwrap_err();
        assert!(e.contains("auto") && e.contains("simulated"), "{e}");
    }

    #[test]
    fn asked_for_the_simulated_one_gets_it_and_says_why() {
        let c = choose(Preference::Simulated, 0);
        assert!(c.simulated);
        assert_eq!(c.why, "LEASEHOLD_HMD=simulated");
        assert_eq!(c.hmd.display().panel_width, 2160);
    }
}
