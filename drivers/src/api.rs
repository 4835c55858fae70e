//! The device traits and types every other part of Leasehold sees: the floor of the
//! dependency graph.
//!
//! Conventions (those of OpenXR): right-handed, +X right, +Y up, −Z forward, metres and
//! radians, times in CLOCK_MONOTONIC nanoseconds. A driver converts its device's axes and
//! clock into these before anything leaves it.

use glam::{Quat, Vec2, Vec3};

/// A rigid transform: orientation, then position.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Pose {
    pub orientation: Quat,
    pub position: Vec3,
}

impl Pose {
    pub const IDENTITY: Pose = Pose {
        orientation: Quat::IDENTITY,
        position: Vec3::ZERO,
    };

    /// `self ∘ other`: other's pose expressed in self's parent space.
    pub fn compose(&self, other: &Pose) -> Pose {
        Pose {
            orientation: (self.orientation * other.orientation).normalize(),
            position: self.position + self.orientation * other.position,
        }
    }

    pub fn is_finite(&self) -> bool {
        self.orientation.is_finite() && self.position.is_finite()
    }
}

/// A device's pose at a time, with what the driver vouches for.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TrackedPose {
    /// The time this pose is for (CLOCK_MONOTONIC ns): the time asked for.
    pub time_ns: u64,
    pub pose: Pose,
    /// World-space angular velocity, rad/s.
    pub angular_velocity: Vec3,
    /// World-space linear velocity, m/s.
    pub linear_velocity: Vec3,
    pub orientation_valid: bool,
    /// A 3-DoF device reports a fixed (neck-model or zero) position: valid, not tracked.
    pub position_valid: bool,
    pub orientation_tracked: bool,
    pub position_tracked: bool,
}

impl TrackedPose {
    /// A 3-DoF device's pose: tracked orientation, a fixed (valid, untracked) position.
    pub fn orientation_only(
        time_ns: u64,
        orientation: Quat,
        position: Vec3,
        angular_velocity: Vec3,
    ) -> TrackedPose {
        TrackedPose {
            time_ns,
            pose: Pose {
                orientation,
                position,
            },
            angular_velocity,
            linear_velocity: Vec3::ZERO,
            orientation_valid: true,
            position_valid: true,
            orientation_tracked: true,
            position_tracked: false,
        }
    }
}

/// How a device's poses relate to the room.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum TrackingOrigin {
    /// IMU only: orientation is tracked, yaw drifts slowly, position is a fixed offset.
    OrientationOnly {
        /// Height of the head above the floor used for STAGE/LOCAL_FLOOR spaces.
        eye_height_m: f32,
    },
    /// Full 6-DoF tracking relative to a room origin on the floor.
    Room,
}

/// A field of view as OpenXR gives it: angles from the view direction, left and down
/// negative.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Fov {
    pub angle_left: f32,
    pub angle_right: f32,
    pub angle_up: f32,
    pub angle_down: f32,
}

impl Fov {
    /// A symmetric field of view of the given total horizontal/vertical angles.
    pub fn symmetric(horizontal: f32, vertical: f32) -> Fov {
        Fov {
            angle_left: -horizontal / 2.0,
            angle_right: horizontal / 2.0,
            angle_up: vertical / 2.0,
            angle_down: -vertical / 2.0,
        }
    }

    pub fn is_valid(&self) -> bool {
        let all = [
            self.angle_left,
            self.angle_right,
            self.angle_up,
            self.angle_down,
        ];
        all.iter()
            .all(|a| a.is_finite() && a.abs() < std::f32::consts::FRAC_PI_2)
            && self.angle_left < self.angle_right
            && self.angle_down < self.angle_up
    }
}

/// One eye's view: where it is on the head and what it sees.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct EyeInfo {
    /// Eye relative to the head (the VIEW space origin, between the eyes).
    pub eye_to_head: Pose,
    pub fov: Fov,
}

/// The headset's display as the compositor and the runtime need it.
#[derive(Debug, Clone, PartialEq)]
pub struct DisplayInfo {
    /// The whole panel (both eyes side by side).
    pub panel_width: u32,
    pub panel_height: u32,
    /// Recommended per-eye render size (larger than half the panel where the lens
    /// magnifies the centre).
    pub eye_render_width: u32,
    pub eye_render_height: u32,
    /// Supported refresh rates, preferred first.
    pub refresh_hz: Vec<f32>,
    /// From vblank to photons (midpoint of the panel's illumination).
    pub scanout_to_photon_ns: u64,
    pub eyes: [EyeInfo; 2],
}

impl DisplayInfo {
    /// Distance between the eye centres, metres.
    pub fn ipd_m(&self) -> f32 {
        (self.eyes[1].eye_to_head.position - self.eyes[0].eye_to_head.position).length()
    }

    /// The same headset driven in another mode (`width` x `height` at `refresh_hz`): the
    /// recommended eye sizes scale with the panel, and the mode's rate comes first.
    pub fn for_mode(&self, width: u32, height: u32, refresh_hz: f32) -> DisplayInfo {
        let mut d = self.clone();
        let scale = |eye: u32, to: u32, from: u32| {
            if from == 0 {
                eye
            } else {
                ((u64::from(eye) * u64::from(to)).div_ceil(u64::from(from))).max(1) as u32
            }
        };
        d.eye_render_width = scale(self.eye_render_width, width, self.panel_width);
        d.eye_render_height = scale(self.eye_render_height, height, self.panel_height);
        d.panel_width = width;
        d.panel_height = height;
        if refresh_hz.is_finite() && refresh_hz > 0.0 {
            d.refresh_hz.retain(|r| (r - refresh_hz).abs() > 0.01);
            d.refresh_hz.insert(0, refresh_hz);
        }
        d
    }
}

/// One colour channel of the polynomial lens model used by Vive/Index-class headsets:
///
/// ```text
/// p = (2u − 1, (2v − 1) / aspect) − centre
/// d = 1 / (1 + k1·r² + k2·r⁴ + k3·r⁶) + k4          r² = |p|²
/// source = 0.5 + (p·d + centre) · (0.5, 0.5·aspect) / (1 + grow)
/// ```
///
/// mapping a point (u, v) ∈ [0,1]² of the eye's half of the panel to where in the eye's
/// rendered image to sample. Each channel has its own centre and coefficients: that is
/// the chromatic aberration correction.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ChannelDistortion {
    pub center: Vec2,
    /// k1, k2, k3, k4.
    pub coeffs: [f32; 4],
}

impl ChannelDistortion {
    pub const NONE: ChannelDistortion = ChannelDistortion {
        center: Vec2::ZERO,
        coeffs: [0.0; 4],
    };
}

/// One eye's lens: red, green, blue.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct EyeLens {
    pub channels: [ChannelDistortion; 3],
    /// How much larger than the panel the undistorted image is (0 = same).
    pub grow_for_undistort: f32,
    /// Beyond this r² the model is not valid; the compositor shows black there.
    pub undistort_r2_cutoff: f32,
    /// Physical aspect ratio of the eye's half of the panel.
    pub aspect_x_over_y: f32,
}

impl EyeLens {
    /// The channel's lens-centred position of panel point (u, v): linear in (u, v).
    pub fn offset(&self, ch: &ChannelDistortion, u: f32, v: f32) -> Vec2 {
        Vec2::new(2.0 * u - 1.0, (2.0 * v - 1.0) / self.aspect_x_over_y) - ch.center
    }

    fn factor(&self) -> Vec2 {
        Vec2::new(0.5, 0.5 * self.aspect_x_over_y) / (1.0 + self.grow_for_undistort)
    }
}

/// A lens model the compositor turns into a distortion mesh.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum LensModel {
    /// No lens (a flat monitor-like display, or a headset without lens data): identity.
    None,
    /// Per-eye, per-channel polynomial (Vive, Vive Pro, Index, and the default profile).
    Polynomial([EyeLens; 2]),
}

impl LensModel {
    /// Where to sample the eye's image for panel point (u, v), per channel (r, g, b).
    /// `None` outside the model's valid radius.
    pub fn sample_uv(&self, eye: usize, u: f32, v: f32) -> Option<[Vec2; 3]> {
        let (uv, inside) = self.sample(eye, u, v);
        inside.then_some(uv)
    }

    /// Like [`sample_uv`](Self::sample_uv), but always computes the positions and says
    /// separately whether the point is inside the valid radius (the green channel's
    /// r² against the cutoff).
    pub fn sample(&self, eye: usize, u: f32, v: f32) -> ([Vec2; 3], bool) {
        let LensModel::Polynomial(eyes) = self else {
            return ([Vec2::new(u, v); 3], true);
        };
        let lens = &eyes[eye.min(1)];
        let mut out = [Vec2::ZERO; 3];
        for (o, ch) in out.iter_mut().zip(&lens.channels) {
            let p = lens.offset(ch, u, v);
            let r2 = p.length_squared();
            let [k1, k2, k3, k4] = ch.coeffs;
            let d = 1.0 / (1.0 + r2 * (k1 + r2 * (k2 + r2 * k3))) + k4;
            *o = Vec2::splat(0.5) + (p * d + ch.center) * lens.factor();
        }
        let inside =
            lens.offset(&lens.channels[1], u, v).length_squared() <= lens.undistort_r2_cutoff;
        (out, inside)
    }
}

/// What kind of tracked device.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DeviceRole {
    Hmd,
    LeftController,
    RightController,
}

/// Who a device is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceInfo {
    pub role: DeviceRole,
    /// "HTC Vive", "Simulated headset", …
    pub name: String,
    pub serial: String,
}

/// The inputs of the Khronos simple controller profile (what every driver can offer).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct InputState {
    pub select_click: bool,
    pub menu_click: bool,
    /// When the state last changed (CLOCK_MONOTONIC ns).
    pub changed_ns: u64,
}

/// What happens to devices over time.
#[derive(Debug, Clone, PartialEq)]
pub enum DeviceEvent {
    Connected {
        role: DeviceRole,
        name: String,
    },
    /// Unplugged, powered off, or failing: its poses are no longer valid.
    Lost {
        role: DeviceRole,
        reason: String,
    },
    /// The device's calibration (IMU biases, lens data) changed: reload derived state.
    CalibrationChanged {
        role: DeviceRole,
    },
}

#[derive(Debug, thiserror::Error)]
pub enum DriverError {
    #[error("device is gone: {0}")]
    Disconnected(String),
    #[error("no pose yet: the device has not sent enough samples")]
    NoPose,
    #[error("invalid request: {0}")]
    InvalidArgument(String),
    #[error(transparent)]
    Hid(#[from] crate::hid::HidError),
    #[error(transparent)]
    Protocol(#[from] crate::vive::ViveError),
}

/// Anything with a pose: headsets and controllers.
pub trait TrackedDevice: Send + Sync {
    fn info(&self) -> DeviceInfo;
    fn tracking_origin(&self) -> TrackingOrigin;
    /// The device's pose at `time_ns` (CLOCK_MONOTONIC): predicted forward when that is
    /// after the newest sample, never further than the driver's prediction limit.
    fn pose_at(&self, time_ns: u64) -> Result<TrackedPose, DriverError>;
    fn inputs(&self) -> InputState {
        InputState::default()
    }
}

/// A head-mounted display.
pub trait Hmd: TrackedDevice {
    fn display(&self) -> DisplayInfo;
    fn lens(&self) -> LensModel;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_smaller_mode_scales_the_eye_sizes_and_leads_with_its_rate() {
        let d = crate::simulated::SimulatedHmd::looking_around(0);
        let native = Hmd::display(&d);
        let m = native.for_mode(native.panel_width / 2, native.panel_height / 2, 120.0);
        assert_eq!(m.panel_width, native.panel_width / 2);
        assert_eq!(m.eye_render_width, native.eye_render_width.div_ceil(2));
        assert_eq!(m.eye_render_height, native.eye_render_height.div_ceil(2));
        assert_eq!(m.refresh_hz[0], 120.0);
        let same = native.for_mode(
            native.panel_width,
            native.panel_height,
            native.refresh_hz[0],
        );
        assert_eq!(same, native);
    }

    #[test]
    fn identity_lens_samples_where_it_is() {
        let uv = LensModel::None.sample_uv(0, 0.25, 0.75).unwrap();
        assert_eq!(uv, [Vec2::new(0.25, 0.75); 3]);
    }

    #[test]
    fn polynomial_lens_centre_is_fixed_and_edges_pull_inwards() {
        let ch = ChannelDistortion {
            center: Vec2::ZERO,
            coeffs: [0.2, 0.05, 0.0, 0.0],
        };
        let eye = EyeLens {
            channels: [ch; 3],
            grow_for_undistort: 0.0,
            undistort_r2_cutoff: 4.0,
            aspect_x_over_y: 1.0,
        };
        let m = LensModel::Polynomial([eye; 2]);
        let c = m.sample_uv(0, 0.5, 0.5).unwrap();
        assert!((c[1] - Vec2::splat(0.5)).length() < 1e-6);
        // Barrel pre-distortion: an edge point samples closer to the centre.
        let e = m.sample_uv(0, 1.0, 0.5).unwrap();
        assert!(e[1].x < 1.0 && e[1].x > 0.5, "{:?}", e[1]);
        // d = 1 / (1 + 0.2 + 0.05) at r = 1.
        assert!((e[1].x - (0.5 + 0.5 / 1.25)).abs() < 1e-6);
        // Beyond the cutoff there is nothing to sample.
        let eye2 = EyeLens {
            undistort_r2_cutoff: 0.5,
            ..eye
        };
        assert!(
            LensModel::Polynomial([eye2; 2])
                .sample_uv(1, 1.0, 1.0)
                .is_none()
        );
    }

    #[test]
    fn fov_validity() {
        assert!(Fov::symmetric(1.6, 1.7).is_valid());
        let mut f = Fov::symmetric(1.6, 1.7);
        f.angle_left = f32::NAN;
        assert!(!f.is_valid());
        assert!(!Fov::symmetric(-1.0, 1.0).is_valid());
    }
}
