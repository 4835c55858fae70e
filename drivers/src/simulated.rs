//! A deterministic headset and two controllers: the devices tests and the demo use when
//! no headset is plugged in.
//!
//! The headset is a simulated HTC Vive: its display comes from the Vive profile and its
//! lens data from a bundled Vive config; its orientation follows a [`Motion`] script
//! exactly (no sensor noise), so anything downstream can compare against ground truth.
//! The controllers hang at fixed offsets from the head's start, follow their own sway,
//! and click select for 100 ms every 2 s.

use crate::api::{
    DeviceInfo, DeviceRole, DisplayInfo, DriverError, Hmd, InputState, LensModel, TrackedDevice,
    TrackedPose, TrackingOrigin,
};
use crate::motion::{Motion, Segment};
use crate::vive::config::ViveConfig;
use glam::{DQuat, DVec3, Vec3};

/// The bundled config the simulated headset presents (Vive-class lens data).
pub const SIMULATED_CONFIG: &str = include_str!("../fixtures/vive-config.json");

#[derive(Debug, Clone)]
pub struct SimulatedHmd {
    motion: Motion,
    epoch_ns: u64,
    display: DisplayInfo,
    lens: LensModel,
    eye_height_m: f32,
}

impl SimulatedHmd {
    /// A headset that starts its script at `epoch_ns` (CLOCK_MONOTONIC).
    pub fn new(motion: Motion, epoch_ns: u64) -> Self {
        let cfg = ViveConfig::parse(SIMULATED_CONFIG).expect("the bundled config parses");
        let (display, lens) = crate::vive::display_for(&cfg, None);
        Self {
            motion,
            epoch_ns,
            display,
            lens,
            eye_height_m: 1.6,
        }
    }

    /// Looks around slowly (a gentle yaw sway): a steady scene with visible motion.
    pub fn looking_around(epoch_ns: u64) -> Self {
        Self::new(
            Motion::new(
                DQuat::IDENTITY,
                &[Segment::Sway {
                    axis: DVec3::Y,
                    amplitude: 0.35,
                    hz: 0.1,
                    secs: 3600.0,
                }],
            ),
            epoch_ns,
        )
    }

    pub fn motion(&self) -> &Motion {
        &self.motion
    }

    fn t(&self, time_ns: u64) -> f64 {
        time_ns.saturating_sub(self.epoch_ns) as f64 * 1e-9
    }
}

impl TrackedDevice for SimulatedHmd {
    fn info(&self) -> DeviceInfo {
        DeviceInfo {
            role: DeviceRole::Hmd,
            name: "Simulated headset (HTC Vive)".into(),
            serial: "SIM-HMD-0001".into(),
        }
    }

    fn tracking_origin(&self) -> TrackingOrigin {
        TrackingOrigin::OrientationOnly {
            eye_height_m: self.eye_height_m,
        }
    }

    fn pose_at(&self, time_ns: u64) -> Result<TrackedPose, DriverError> {
        let t = self.t(time_ns);
        let q = self.motion.orientation(t);
        let w = q * self.motion.angular_velocity_body(t);
        Ok(TrackedPose::orientation_only(
            time_ns,
            q.as_quat(),
            Vec3::ZERO,
            w.as_vec3(),
        ))
    }
}

impl Hmd for SimulatedHmd {
    fn display(&self) -> DisplayInfo {
        self.display.clone()
    }

    fn lens(&self) -> LensModel {
        self.lens
    }
}

#[derive(Debug, Clone)]
pub struct SimulatedController {
    role: DeviceRole,
    epoch_ns: u64,
    offset: Vec3,
    sway: Motion,
}

impl SimulatedController {
    /// A controller following its own motion script, held at `offset` from the head's
    /// start position.
    pub fn with_motion(role: DeviceRole, epoch_ns: u64, offset: Vec3, motion: Motion) -> Self {
        assert!(role != DeviceRole::Hmd, "a controller is left or right");
        Self {
            role,
            epoch_ns,
            offset,
            sway: motion,
        }
    }

    pub fn new(role: DeviceRole, epoch_ns: u64) -> Self {
        assert!(role != DeviceRole::Hmd, "a controller is left or right");
        let side: f64 = if role == DeviceRole::LeftController {
            -1.0
        } else {
            1.0
        };
        Self {
            role,
            epoch_ns,
            offset: Vec3::new(0.2 * side as f32, -0.4, -0.35),
            sway: Motion::new(
                DQuat::from_axis_angle(DVec3::X, -0.5),
                &[Segment::Sway {
                    axis: DVec3::new(0.0, side, 0.3),
                    amplitude: 0.2,
                    hz: 0.3,
                    secs: 3600.0,
                }],
            ),
        }
    }
}

impl TrackedDevice for SimulatedController {
    fn info(&self) -> DeviceInfo {
        let side = if self.role == DeviceRole::LeftController {
            "left"
        } else {
            "right"
        };
        DeviceInfo {
            role: self.role,
            name: format!("Simulated controller ({side})"),
            serial: format!("SIM-CTL-{side}"),
        }
    }

    fn tracking_origin(&self) -> TrackingOrigin {
        TrackingOrigin::OrientationOnly { eye_height_m: 1.6 }
    }

    fn pose_at(&self, time_ns: u64) -> Result<TrackedPose, DriverError> {
        let t = time_ns.saturating_sub(self.epoch_ns) as f64 * 1e-9;
        let q = self.sway.orientation(t);
        Ok(TrackedPose::orientation_only(
            time_ns,
            q.as_quat(),
            self.offset,
            (q * self.sway.angular_velocity_body(t)).as_vec3(),
        ))
    }

    /// Select is held for 100 ms every 2 s (the right hand 1 s out of phase); menu never.
    fn inputs(&self) -> InputState {
        let now = {
            let t = rustix::time::clock_gettime(rustix::time::ClockId::Monotonic);
            t.tv_sec as u64 * 1_000_000_000 + t.tv_nsec as u64
        };
        select_state(self.role, self.epoch_ns, now)
    }
}

/// The simulated select button at `now_ns`.
pub fn select_state(role: DeviceRole, epoch_ns: u64, now_ns: u64) -> InputState {
    let phase = if role == DeviceRole::RightController {
        1_000_000_000
    } else {
        0
    };
    let t = (now_ns.saturating_sub(epoch_ns) + phase) % 2_000_000_000;
    let pressed = t < 100_000_000;
    let changed = now_ns - if pressed { t } else { t - 100_000_000 };
    InputState {
        select_click: pressed,
        menu_click: false,
        changed_ns: changed,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headset_follows_its_script_exactly() {
        let h = SimulatedHmd::looking_around(1_000_000_000);
        let p = h.pose_at(1_000_000_000).unwrap();
        assert!(p.pose.orientation.angle_between(glam::Quat::IDENTITY) < 1e-6);
        let p = h.pose_at(3_500_000_000).unwrap();
        let truth = h.motion().orientation(2.5).as_quat();
        assert!(p.pose.orientation.angle_between(truth) < 1e-6);
        assert!(p.orientation_tracked && !p.position_tracked);
        // Deterministic: same time, same pose.
        assert_eq!(h.pose_at(7_000_000).unwrap(), h.pose_at(7_000_000).unwrap());
        let d = h.display();
        assert_eq!((d.panel_width, d.panel_height), (2160, 1200));
        assert!(d.eyes.iter().all(|e| e.fov.is_valid()));
        assert!(matches!(h.lens(), LensModel::Polynomial(_)));
    }

    #[test]
    fn controllers_sit_left_and_right_and_click() {
        let l = SimulatedController::new(DeviceRole::LeftController, 0);
        let r = SimulatedController::new(DeviceRole::RightController, 0);
        assert!(l.pose_at(0).unwrap().pose.position.x < 0.0);
        assert!(r.pose_at(0).unwrap().pose.position.x > 0.0);
        assert!(select_state(DeviceRole::LeftController, 0, 50_000_000).select_click);
        assert!(!select_state(DeviceRole::LeftController, 0, 500_000_000).select_click);
        assert!(select_state(DeviceRole::RightController, 0, 1_050_000_000).select_click);
        let s = select_state(DeviceRole::LeftController, 0, 2_500_000_000);
        assert_eq!(s.changed_ns, 2_100_000_000);
    }
}
