//! Scripted rigid-body motion with analytic ground truth, and synthetic IMU streams made
//! from it (with a known bias, scale error and noise).
//!
//! The simulated headset follows a [`Motion`]; the fusion tests and the lab's emulated
//! headset turn one into IMU samples and compare what the driver estimates with the
//! script's exact orientation.

use glam::{DQuat, DVec3};

/// Standard gravity, m/s².
pub const GRAVITY: f64 = 9.80665;

/// One piece of a motion script. Each rotates about a fixed axis of the body as it was
/// at the segment's start, so orientation and angular velocity are exact.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Segment {
    Still {
        secs: f64,
    },
    /// Constant angular rate.
    Spin {
        axis: DVec3,
        rad_per_s: f64,
        secs: f64,
    },
    /// A smooth turn by `angle` (cosine velocity profile: starts and ends at rest).
    Turn {
        axis: DVec3,
        angle: f64,
        secs: f64,
    },
    /// Oscillation `amplitude · sin(2π f t)` about `axis` (ends where it started when
    /// `secs · hz` is whole).
    Sway {
        axis: DVec3,
        amplitude: f64,
        hz: f64,
        secs: f64,
    },
}

impl Segment {
    fn secs(&self) -> f64 {
        match *self {
            Segment::Still { secs }
            | Segment::Spin { secs, .. }
            | Segment::Turn { secs, .. }
            | Segment::Sway { secs, .. } => secs,
        }
    }

    /// (axis, angle, angular rate) at local time `t`.
    fn at(&self, t: f64) -> (DVec3, f64, f64) {
        use std::f64::consts::PI;
        match *self {
            Segment::Still { .. } => (DVec3::Y, 0.0, 0.0),
            Segment::Spin {
                axis, rad_per_s, ..
            } => (axis.normalize(), rad_per_s * t, rad_per_s),
            Segment::Turn { axis, angle, secs } => {
                let x = (t / secs).clamp(0.0, 1.0);
                let theta = angle * (1.0 - (PI * x).cos()) / 2.0;
                let rate = if (0.0..=1.0).contains(&(t / secs)) {
                    angle * PI / (2.0 * secs) * (PI * x).sin()
                } else {
                    0.0
                };
                (axis.normalize(), theta, rate)
            }
            Segment::Sway {
                axis,
                amplitude,
                hz,
                ..
            } => {
                let w = 2.0 * PI * hz;
                (
                    axis.normalize(),
                    amplitude * (w * t).sin(),
                    amplitude * w * (w * t).cos(),
                )
            }
        }
    }
}

/// A motion script: segments one after another from a start orientation; after the
/// last segment the body stays still.
#[derive(Debug, Clone, PartialEq)]
pub struct Motion {
    pub start: DQuat,
    segments: Vec<(f64, DQuat, Segment)>, // (start time, orientation at start, segment)
    duration: f64,
}

impl Motion {
    pub fn new(start: DQuat, segments: &[Segment]) -> Motion {
        let mut t = 0.0;
        let mut q = start;
        let mut out = Vec::with_capacity(segments.len());
        for s in segments {
            out.push((t, q, *s));
            let (axis, angle, _) = s.at(s.secs());
            q = (q * DQuat::from_axis_angle(axis, angle)).normalize();
            t += s.secs();
        }
        Motion {
            start,
            segments: out,
            duration: t,
        }
    }

    pub fn duration_s(&self) -> f64 {
        self.duration
    }

    fn segment(&self, t: f64) -> Option<&(f64, DQuat, Segment)> {
        self.segments.iter().rev().find(|(t0, _, _)| *t0 <= t)
    }

    /// World-from-body orientation at `t` seconds.
    pub fn orientation(&self, t: f64) -> DQuat {
        match self.segment(t) {
            None => self.start,
            Some((t0, q0, s)) => {
                let (axis, angle, _) = s.at((t - t0).min(s.secs()));
                (*q0 * DQuat::from_axis_angle(axis, angle)).normalize()
            }
        }
    }

    /// Body-frame angular velocity at `t` seconds, rad/s.
    pub fn angular_velocity_body(&self, t: f64) -> DVec3 {
        match self.segment(t) {
            Some((t0, _, s)) if t - t0 <= s.secs() => {
                let (axis, _, rate) = s.at(t - t0);
                axis * rate
            }
            _ => DVec3::ZERO,
        }
    }

    /// What an ideal accelerometer at the rotation centre reads (specific force, body
    /// frame): gravity's reaction, pointing up.
    pub fn specific_force_body(&self, t: f64) -> DVec3 {
        self.orientation(t).inverse() * DVec3::new(0.0, GRAVITY, 0.0)
    }

    /// A head-like script: looks around, nods, holds still (so gyro bias can be
    /// tracked), turns fast, for about `secs` seconds.
    pub fn head_demo(secs: f64) -> Motion {
        let mut segs = Vec::new();
        let mut t = 0.0;
        let pattern = [
            Segment::Still { secs: 2.0 },
            Segment::Turn {
                axis: DVec3::Y,
                angle: 1.2,
                secs: 1.5,
            },
            Segment::Sway {
                axis: DVec3::X,
                amplitude: 0.3,
                hz: 0.5,
                secs: 4.0,
            },
            Segment::Turn {
                axis: DVec3::Y,
                angle: -2.0,
                secs: 2.0,
            },
            Segment::Still { secs: 1.5 },
            Segment::Sway {
                axis: DVec3::new(0.2, 1.0, 0.1),
                amplitude: 0.6,
                hz: 0.25,
                secs: 4.0,
            },
            Segment::Turn {
                axis: DVec3::Z,
                angle: 0.4,
                secs: 1.0,
            },
            Segment::Turn {
                axis: DVec3::Z,
                angle: -0.4,
                secs: 1.0,
            },
            Segment::Turn {
                axis: DVec3::Y,
                angle: 0.8,
                secs: 1.0,
            },
        ];
        while t < secs {
            for s in pattern {
                segs.push(s);
                t += s.secs();
            }
        }
        Motion::new(DQuat::IDENTITY, &segs)
    }

    /// The IMU calibration routine: still on each of the six faces for `hold_s` (the
    /// first for `first_hold_s`), with turns between them.
    pub fn six_faces(first_hold_s: f64, hold_s: f64) -> Motion {
        Motion::new(DQuat::IDENTITY, &six_face_cycle(first_hold_s, hold_s))
    }

    /// [`six_faces`](Self::six_faces) `cycles` times over, each cycle turned back to the
    /// start orientation: a side missed once (a stalled stream, a late start) comes
    /// round again, as a patient user would put the headset down on it again.
    pub fn six_faces_repeated(first_hold_s: f64, hold_s: f64, cycles: usize) -> Motion {
        let mut segs = Vec::new();
        for c in 0..cycles {
            if c > 0 {
                // The cycle ends turned 270° about Z: a quarter turn more is the start.
                segs.push(Segment::Turn {
                    axis: DVec3::Z,
                    angle: std::f64::consts::FRAC_PI_2,
                    secs: 0.8,
                });
            }
            segs.extend(six_face_cycle(
                if c == 0 { first_hold_s } else { hold_s },
                hold_s,
            ));
        }
        Motion::new(DQuat::IDENTITY, &segs)
    }
}

/// One pass over the six faces from the identity orientation (+Y up); it ends turned
/// 360° about X and then 270° about Z (-X up).
fn six_face_cycle(first_hold_s: f64, hold_s: f64) -> Vec<Segment> {
    use std::f64::consts::FRAC_PI_2;
    let turn = |axis: DVec3, angle: f64| Segment::Turn {
        axis,
        angle,
        secs: 0.8,
    };
    let hold = Segment::Still { secs: hold_s };
    vec![
        Segment::Still { secs: first_hold_s },
        turn(DVec3::X, FRAC_PI_2),
        hold,
        turn(DVec3::X, FRAC_PI_2),
        hold,
        turn(DVec3::X, FRAC_PI_2),
        hold,
        turn(DVec3::X, FRAC_PI_2),
        turn(DVec3::Z, FRAC_PI_2),
        hold,
        turn(DVec3::Z, std::f64::consts::PI),
        hold,
    ]
}

/// One IMU sample in the driver's conventions.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ImuSample {
    /// Device time, ns (monotonic, the device's own clock).
    pub time_ns: u64,
    /// Body frame, rad/s.
    pub gyro: DVec3,
    /// Body frame specific force, m/s².
    pub accel: DVec3,
}

/// Sensor errors to inject: `reading = scale ⊙ truth + bias + noise`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ImuErrors {
    pub gyro_bias: DVec3,
    pub gyro_noise: f64,
    pub accel_bias: DVec3,
    pub accel_scale: DVec3,
    pub accel_noise: f64,
}

impl ImuErrors {
    pub const NONE: ImuErrors = ImuErrors {
        gyro_bias: DVec3::ZERO,
        gyro_noise: 0.0,
        accel_bias: DVec3::ZERO,
        accel_scale: DVec3::ONE,
        accel_noise: 0.0,
    };
}

/// A deterministic Gaussian source (xorshift64* + Box–Muller): same seed, same stream.
#[derive(Debug, Clone)]
pub struct Noise(u64);

impl Noise {
    pub fn new(seed: u64) -> Noise {
        Noise(seed.max(1))
    }

    fn uniform(&mut self) -> f64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        let x = self.0.wrapping_mul(0x2545_F491_4F6C_DD1D);
        ((x >> 11) as f64 + 0.5) / (1u64 << 53) as f64
    }

    pub fn gaussian(&mut self) -> f64 {
        let (u1, u2) = (self.uniform(), self.uniform());
        (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()
    }

    pub fn vec3(&mut self, sigma: f64) -> DVec3 {
        DVec3::new(self.gaussian(), self.gaussian(), self.gaussian()) * sigma
    }
}

/// Samples a motion as an IMU would: `rate_hz` samples per second with `errors`.
pub fn synthesize(
    motion: &Motion,
    rate_hz: f64,
    secs: f64,
    errors: ImuErrors,
    seed: u64,
) -> impl Iterator<Item = ImuSample> + '_ {
    let mut noise = Noise::new(seed);
    let n = (secs * rate_hz).round() as u64;
    (0..n).map(move |i| {
        let t = i as f64 / rate_hz;
        let gyro =
            motion.angular_velocity_body(t) + errors.gyro_bias + noise.vec3(errors.gyro_noise);
        let accel = motion.specific_force_body(t) * errors.accel_scale
            + errors.accel_bias
            + noise.vec3(errors.accel_noise);
        ImuSample {
            time_ns: (t * 1e9).round() as u64,
            gyro,
            accel,
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn orientation_is_the_integral_of_angular_velocity() {
        let m = Motion::head_demo(20.0);
        // Integrate the script's own body rates finely and compare with its closed form.
        let mut q = m.start;
        let dt = 1e-4;
        let mut t = 0.0;
        while t < 20.0 {
            let w = m.angular_velocity_body(t + dt / 2.0);
            q = (q * DQuat::from_scaled_axis(w * dt)).normalize();
            t += dt;
        }
        let err = q.angle_between(m.orientation(t));
        assert!(err < 1e-3, "integrated vs closed form: {err} rad");
    }

    /// The faces a script rests on between `from` and `to` seconds, sampled every 0.1 s.
    fn faces_between(m: &Motion, from: f64, to: f64) -> std::collections::BTreeSet<(usize, bool)> {
        let mut faces = std::collections::BTreeSet::new();
        let mut t = from;
        while t < to {
            if m.angular_velocity_body(t).length() == 0.0 {
                let f = m.specific_force_body(t) / GRAVITY;
                let (i, v) = f
                    .to_array()
                    .into_iter()
                    .enumerate()
                    .max_by(|a, b| a.1.abs().total_cmp(&b.1.abs()))
                    .unwrap();
                assert!(v.abs() > 0.999, "{f}");
                faces.insert((i, v > 0.0));
            }
            t += 0.1;
        }
        faces
    }

    #[test]
    fn six_faces_visit_every_face() {
        let m = Motion::six_faces(1.0, 1.0);
        let faces = faces_between(&m, 0.5, m.duration_s());
        assert_eq!(faces.len(), 6, "{faces:?}");
    }

    #[test]
    fn repeated_six_faces_visit_every_face_in_every_cycle() {
        let one = Motion::six_faces(3.0, 1.0).duration_s();
        let m = Motion::six_faces_repeated(3.0, 1.0, 3);
        // Later cycles hold their first face for `hold_s` and start with a 0.8 s turn.
        let cycle = one - 2.0 + 0.8;
        assert!((m.duration_s() - (one + 2.0 * cycle)).abs() < 1e-9);
        let mut start = 0.0;
        for c in 0..3 {
            let end = if c == 0 { one } else { start + cycle };
            // Each cycle's first hold is upright again (+Y up).
            let first = start + if c == 0 { 0.5 } else { 1.3 };
            let up = m.specific_force_body(first) / GRAVITY;
            assert!((up - DVec3::Y).length() < 1e-9, "cycle {c}: {up}");
            let faces = faces_between(&m, first, end);
            assert_eq!(faces.len(), 6, "cycle {c}: {faces:?}");
            start = end;
        }
    }

    #[test]
    fn noise_is_deterministic_and_unit() {
        let mut a = Noise::new(7);
        let mut b = Noise::new(7);
        let xs: Vec<f64> = (0..20000).map(|_| a.gaussian()).collect();
        assert!(
            xs.iter()
                .zip((0..).map(|_| b.gaussian()))
                .all(|(x, y)| *x == y)
        );
        let mean = xs.iter().sum::<f64>() / xs.len() as f64;
        let var = xs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / xs.len() as f64;
        assert!(
            mean.abs() < 0.03 && (var - 1.0).abs() < 0.05,
            "{mean} {var}"
        );
    }
}
