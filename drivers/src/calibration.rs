//! User calibration: IMU corrections measured by `leasehold calibrate imu` and display
//! overrides set by `leasehold calibrate display`, stored per headset serial under the
//! user's config directory and applied by the driver on its next start.
//!
//! The IMU correction applies on top of the factory calibration:
//! `gyro' = gyro − gyro_bias`, `accel' = (accel − accel_bias) / accel_scale` (OpenXR axes).

use crate::motion::{GRAVITY, ImuSample};
use glam::DVec3;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Calibration {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub imu: Option<ImuCalibration>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub display: Option<DisplayOverrides>,
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ImuCalibration {
    /// rad/s.
    pub gyro_bias: [f64; 3],
    /// m/s².
    pub accel_bias: [f64; 3],
    pub accel_scale: [f64; 3],
    /// How many rest samples the estimate came from.
    pub samples: u64,
}

impl ImuCalibration {
    pub fn apply(&self, s: &ImuSample) -> ImuSample {
        ImuSample {
            time_ns: s.time_ns,
            gyro: s.gyro - DVec3::from(self.gyro_bias),
            accel: (s.accel - DVec3::from(self.accel_bias)) / DVec3::from(self.accel_scale),
        }
    }

    /// Within what any real headset's IMU could need (a file or a run outside this is
    /// refused).
    pub fn is_sane(&self) -> bool {
        let g = DVec3::from(self.gyro_bias);
        let b = DVec3::from(self.accel_bias);
        let s = DVec3::from(self.accel_scale);
        g.is_finite()
            && g.length() < 0.5
            && b.is_finite()
            && b.length() < 3.0
            && s.is_finite()
            && s.min_element() > 0.8
            && s.max_element() < 1.2
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DisplayOverrides {
    /// Distance between the eyes, mm (moves the eye poses; the lenses stay).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ipd_mm: Option<f32>,
    /// Per-eye lens centre offset added to every channel's centre, in the lens model's
    /// normalised units: [[left x, left y], [right x, right y]].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lens_center_offset: Option<[[f32; 2]; 2]>,
}

impl DisplayOverrides {
    pub fn validate(&self) -> Result<(), CalibrationError> {
        if let Some(ipd) = self.ipd_mm
            && !(ipd.is_finite() && (50.0..=80.0).contains(&ipd))
        {
            return Err(CalibrationError::Invalid(format!(
                "IPD {ipd} mm is outside 50–80 mm"
            )));
        }
        if let Some(c) = self.lens_center_offset
            && c.iter().flatten().any(|v| !v.is_finite() || v.abs() > 0.2)
        {
            return Err(CalibrationError::Invalid(
                "lens centre offsets must be within ±0.2".into(),
            ));
        }
        Ok(())
    }
}

#[derive(Debug, thiserror::Error)]
pub enum CalibrationError {
    #[error("calibration file {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("calibration file {path} is not valid: {why}")]
    Parse { path: PathBuf, why: String },
    #[error("{0}")]
    Invalid(String),
    #[error("no home directory: set XDG_CONFIG_HOME or HOME")]
    NoConfigDir,
}

/// `$XDG_CONFIG_HOME/leasehold` (or `~/.config/leasehold`).
pub fn config_dir() -> Result<PathBuf, CalibrationError> {
    if let Some(x) = std::env::var_os("XDG_CONFIG_HOME").filter(|x| !x.is_empty()) {
        return Ok(PathBuf::from(x).join("leasehold"));
    }
    std::env::var_os("HOME")
        .filter(|h| !h.is_empty())
        .map(|h| PathBuf::from(h).join(".config/leasehold"))
        .ok_or(CalibrationError::NoConfigDir)
}

/// The file for a headset: `<config>/calibration/<serial>.toml`.
pub fn path_for(serial: &str) -> Result<PathBuf, CalibrationError> {
    let safe: String = serial
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect();
    Ok(config_dir()?
        .join("calibration")
        .join(format!("{safe}.toml")))
}

impl Calibration {
    /// Loads a headset's calibration. No file is not an error (`Ok(None)`); a file that
    /// cannot be read or holds nonsense is, so a bad calibration is never applied silently.
    pub fn load(path: &Path) -> Result<Option<Calibration>, CalibrationError> {
        let text = match std::fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(source) => {
                return Err(CalibrationError::Io {
                    path: path.into(),
                    source,
                });
            }
        };
        let c: Calibration = toml::from_str(&text).map_err(|e| CalibrationError::Parse {
            path: path.into(),
            why: e.to_string(),
        })?;
        if let Some(imu) = &c.imu
            && !imu.is_sane()
        {
            return Err(CalibrationError::Parse {
                path: path.into(),
                why: "IMU values are out of any plausible range".into(),
            });
        }
        if let Some(d) = &c.display {
            d.validate().map_err(|e| CalibrationError::Parse {
                path: path.into(),
                why: e.to_string(),
            })?;
        }
        Ok(Some(c))
    }

    /// Writes atomically (temporary file, then rename).
    pub fn save(&self, path: &Path) -> Result<(), CalibrationError> {
        let io = |source| CalibrationError::Io {
            path: path.into(),
            source,
        };
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(io)?;
        }
        let text = toml::to_string(self).map_err(|e| CalibrationError::Invalid(e.to_string()))?;
        let tmp = path.with_extension("toml.tmp");
        std::fs::write(&tmp, text).map_err(io)?;
        std::fs::rename(&tmp, path).map_err(io)
    }
}

/// Rest periods shorter than this (device time) say nothing.
pub const MIN_REST_NS: u64 = 1_000_000_000;
/// How close the gyro readings of one rest period stay to its mean, rad/s.
pub const REST_GYRO_TOL: f64 = 0.05;
/// The longest gap between two samples inside one rest period. Across a longer one
/// (reports lost to a stalled reader, a replug) nothing says the headset stayed put: a
/// turn whose samples were all lost would otherwise join two sides into one period.
pub const MAX_REST_GAP_NS: u64 = 100_000_000;
/// How far one sample's acceleration may be from its rest period's mean, m/s² (far above
/// the noise of a headset lying on a table; a jump to another side is ~14 m/s²).
const REST_ACCEL_TOL: f64 = 1.0;
/// At rest the accelerometer reads 1 g, within this, m/s².
const REST_GRAVITY_TOL: f64 = 0.5;

/// The rest period being grown: where it started and its running means.
struct OpenRest {
    start: usize,
    n: f64,
    gyro: DVec3,
    accel: DVec3,
    last_ns: u64,
}

/// Splits a sample stream into rest periods: runs of at least `min_ns` where the gyro
/// stays within `gyro_tol` of the run's mean, the acceleration is near 1 g and near the
/// run's mean, and no two consecutive samples are more than [`MAX_REST_GAP_NS`] apart.
/// The first and last tenth of each run are dropped (the device settling or starting to
/// move). Every sample of every period is at rest by these rules, whatever came before
/// it: motion at the very first sample starts no period.
pub fn rest_periods(samples: &[ImuSample], min_ns: u64, gyro_tol: f64) -> Vec<&[ImuSample]> {
    let mut out = Vec::new();
    let mut close = |start: usize, end: usize| {
        let run = &samples[start..end];
        if let (Some(first), Some(last)) = (run.first(), run.last())
            && last.time_ns.saturating_sub(first.time_ns) >= min_ns
        {
            let k = run.len() / 10;
            let trimmed = &run[k..run.len() - k];
            if !trimmed.is_empty() {
                out.push(trimmed);
            }
        }
    };
    let mut open: Option<OpenRest> = None;
    for (i, s) in samples.iter().enumerate() {
        let near_g = (s.accel.length() - GRAVITY).abs() < REST_GRAVITY_TOL && s.gyro.is_finite();
        if let Some(r) = &mut open {
            let continues = near_g
                && s.time_ns >= r.last_ns
                && s.time_ns - r.last_ns <= MAX_REST_GAP_NS
                && (s.gyro - r.gyro).length() < gyro_tol
                && (s.accel - r.accel).length() < REST_ACCEL_TOL;
            if continues {
                r.n += 1.0;
                r.gyro += (s.gyro - r.gyro) / r.n;
                r.accel += (s.accel - r.accel) / r.n;
                r.last_ns = s.time_ns;
                continue;
            }
            close(r.start, i);
        }
        // This sample ends the open period (if any) and may start the next.
        open = near_g.then_some(OpenRest {
            start: i,
            n: 1.0,
            gyro: s.gyro,
            accel: s.accel,
            last_ns: s.time_ns,
        });
    }
    if let Some(r) = open {
        close(r.start, samples.len());
    }
    out
}

/// A side the headset can rest on, named by which of its axes points up (OpenXR axes
/// of the headset: +X right, +Y up, +Z back, towards the wearer).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Face {
    /// 0, 1, 2: X, Y, Z.
    axis: usize,
    /// The axis points up (`true`) or down.
    positive: bool,
}

impl Face {
    /// All six: upright, upside down, on the left and right sides, on the front and back.
    pub const ALL: [Face; 6] = [
        Face::new(1, true),
        Face::new(1, false),
        Face::new(0, true),
        Face::new(0, false),
        Face::new(2, true),
        Face::new(2, false),
    ];

    /// `axis` 0, 1, 2 is X, Y, Z; `positive`: that axis points up.
    pub const fn new(axis: usize, positive: bool) -> Face {
        assert!(axis < 3, "a face is named by axis X, Y or Z");
        Face { axis, positive }
    }

    pub fn axis(self) -> usize {
        self.axis
    }

    pub fn positive(self) -> bool {
        self.positive
    }

    fn index(self) -> usize {
        self.axis * 2 + usize::from(!self.positive)
    }

    /// "+X up", "-Z up", …
    pub fn name(self) -> &'static str {
        ["+X up", "-X up", "+Y up", "-Y up", "+Z up", "-Z up"][self.index()]
    }

    /// How the headset lies with this side up, for the person holding it.
    pub fn how(self) -> &'static str {
        [
            "on its left side",
            "on its right side",
            "upright, as worn",
            "upside down",
            "on its front, lenses up",
            "on its back, lenses down",
        ][self.index()]
    }
}

impl std::fmt::Display for Face {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({})", self.name(), self.how())
    }
}

/// "+X up (on its left side), -Z up (on its back, lenses down)".
fn face_list(faces: &[Face]) -> String {
    faces
        .iter()
        .map(Face::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

/// The result of an IMU calibration run.
#[derive(Debug, Clone, PartialEq)]
pub struct ImuEstimate {
    pub gyro_bias: DVec3,
    /// Standard error of the gyro bias estimate, rad/s.
    pub gyro_bias_stderr: f64,
    /// `None` until all six faces have been seen.
    pub accel: Option<(DVec3, DVec3)>,
    /// Faces seen: which way was up during each clearly axis-aligned rest period.
    pub faces: Vec<Face>,
    pub rest_samples: u64,
}

impl ImuEstimate {
    /// The sides not seen at rest yet, in [`Face::ALL`] order.
    pub fn missing_faces(&self) -> Vec<Face> {
        missing(&self.faces)
    }
}

fn missing(seen: &[Face]) -> Vec<Face> {
    Face::ALL
        .into_iter()
        .filter(|f| !seen.contains(f))
        .collect()
}

/// Estimates the gyro bias from every rest period and, when rest periods cover all six
/// faces, the accelerometer's per-axis bias and scale (`reading = scale · g + bias` on
/// the axis pointing up, `−scale · g + bias` pointing down).
pub fn estimate_imu(rests: &[&[ImuSample]]) -> Option<ImuEstimate> {
    let all: Vec<&ImuSample> = rests.iter().flat_map(|r| r.iter()).collect();
    if all.len() < 100 {
        return None;
    }
    let n = all.len() as f64;
    let gyro_bias = all.iter().map(|s| s.gyro).sum::<DVec3>() / n;
    let var = all
        .iter()
        .map(|s| (s.gyro - gyro_bias).length_squared())
        .sum::<f64>()
        / (n - 1.0);
    let mut faces = Vec::new();
    let mut up = [[None::<f64>; 2]; 3]; // [axis][positive?] mean reading on that axis
    for r in rests.iter().filter(|r| !r.is_empty()) {
        let m = r.iter().map(|s| s.accel).sum::<DVec3>() / r.len() as f64;
        let a = m.to_array();
        let (axis, v) = a
            .iter()
            .enumerate()
            .max_by(|x, y| x.1.abs().total_cmp(&y.1.abs()))
            .map(|(i, v)| (i, *v))?;
        // Only clearly axis-aligned rests tell the scale of that axis.
        if v.abs() < 0.95 * m.length() {
            continue;
        }
        let face = Face::new(axis, v > 0.0);
        if !faces.contains(&face) {
            faces.push(face);
        }
        up[axis][usize::from(v > 0.0)] = Some(v);
    }
    let accel = (0..3)
        .map(|i| match up[i] {
            [Some(neg), Some(pos)] => Some(((pos + neg) / 2.0, (pos - neg) / (2.0 * GRAVITY))),
            _ => None,
        })
        .collect::<Option<Vec<_>>>()
        .map(|v| {
            (
                DVec3::new(v[0].0, v[1].0, v[2].0),
                DVec3::new(v[0].1, v[1].1, v[2].1),
            )
        });
    Some(ImuEstimate {
        gyro_bias,
        gyro_bias_stderr: (var / 3.0 / n).sqrt(),
        accel,
        faces,
        rest_samples: all.len() as u64,
    })
}

/// What an IMU calibration run must see before it is done.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum ImuGoal {
    /// The gyro bias only: this long at rest (device time), on any side.
    GyroOnly { still_ns: u64 },
    /// The gyro bias and the accelerometer's bias and scale: a rest on each of the six
    /// sides ([`Face::ALL`]).
    SixSides,
}

/// Where a run stands.
#[derive(Debug, Clone, PartialEq)]
pub struct ImuProgress {
    /// Device time at rest so far, over every rest period.
    pub still_ns: u64,
    /// Sides seen at rest, in the order they were first seen.
    pub seen: Vec<Face>,
    /// Sides still to rest on, in [`Face::ALL`] order (empty for [`ImuGoal::GyroOnly`]).
    pub missing: Vec<Face>,
    /// The goal is met: [`ImuRun::finish`] has what it needs.
    pub complete: bool,
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ImuRunError {
    #[error("the headset never held still for a second ({samples} samples): nothing measured")]
    NeverStill { samples: usize },
    #[error(
        "the headset rested on {} of its 6 sides; still missing: {}",
        .seen.len(),
        face_list(.missing)
    )]
    MissingSides { seen: Vec<Face>, missing: Vec<Face> },
    #[error(
        "the measured corrections are implausible (gyro bias {:?} rad/s, accelerometer bias \
         {:?} m/s², scale {:?}): was the headset moved while it seemed still?",
        .0.gyro_bias, .0.accel_bias, .0.accel_scale
    )]
    Implausible(ImuCalibration),
}

/// One `calibrate imu` run: takes the IMU samples as they come, says at any point which
/// sides have been seen at rest and which are still missing, and gives the estimate once
/// the goal is met. It keeps no clock: the caller decides how long to wait for a missing
/// side, and [`finish`](Self::finish) then names what is still missing.
#[derive(Debug, Clone)]
pub struct ImuRun {
    goal: ImuGoal,
    samples: Vec<ImuSample>,
}

impl ImuRun {
    pub fn new(goal: ImuGoal) -> ImuRun {
        ImuRun {
            goal,
            samples: Vec::new(),
        }
    }

    pub fn push(&mut self, s: ImuSample) {
        self.samples.push(s);
    }

    /// The rest periods so far ([`MIN_REST_NS`], [`REST_GYRO_TOL`]).
    pub fn rests(&self) -> Vec<&[ImuSample]> {
        rest_periods(&self.samples, MIN_REST_NS, REST_GYRO_TOL)
    }

    pub fn progress(&self) -> ImuProgress {
        let rests = self.rests();
        let still_ns = rests
            .iter()
            .filter_map(|r| Some(r.last()?.time_ns.saturating_sub(r.first()?.time_ns)))
            .fold(0u64, u64::saturating_add);
        let est = estimate_imu(&rests);
        let seen = est.as_ref().map(|e| e.faces.clone()).unwrap_or_default();
        let (missing, complete) = match self.goal {
            ImuGoal::GyroOnly { still_ns: need } => (Vec::new(), est.is_some() && still_ns >= need),
            ImuGoal::SixSides => {
                let m = missing(&seen);
                let done = est.is_some_and(|e| e.accel.is_some());
                (m, done)
            }
        };
        ImuProgress {
            still_ns,
            seen,
            missing,
            complete,
        }
    }

    /// The estimate from everything seen so far. For [`ImuGoal::SixSides`] it fails
    /// unless every side was seen, naming the missing ones; [`ImuGoal::GyroOnly`] takes
    /// whatever rest there was (at least a second). Values no headset could have are
    /// refused, not returned.
    pub fn finish(&self) -> Result<ImuEstimate, ImuRunError> {
        let Some(est) = estimate_imu(&self.rests()) else {
            return Err(ImuRunError::NeverStill {
                samples: self.samples.len(),
            });
        };
        if self.goal == ImuGoal::SixSides && est.accel.is_none() {
            return Err(ImuRunError::MissingSides {
                seen: est.faces.clone(),
                missing: est.missing_faces(),
            });
        }
        let (accel_bias, accel_scale) = est.accel.unwrap_or((DVec3::ZERO, DVec3::ONE));
        let cal = ImuCalibration {
            gyro_bias: est.gyro_bias.to_array(),
            accel_bias: accel_bias.to_array(),
            accel_scale: accel_scale.to_array(),
            samples: est.rest_samples,
        };
        if !cal.is_sane() {
            return Err(ImuRunError::Implausible(cal));
        }
        Ok(est)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::motion::{ImuErrors, Motion, Segment, synthesize};

    #[test]
    fn six_faces_recover_gyro_and_accel_errors() {
        let errors = ImuErrors {
            gyro_bias: DVec3::new(0.021, -0.013, 0.008),
            gyro_noise: 0.005,
            accel_bias: DVec3::new(0.12, -0.08, 0.05),
            accel_scale: DVec3::new(1.02, 0.985, 1.01),
            accel_noise: 0.04,
        };
        let m = Motion::six_faces(2.0, 2.0);
        let samples: Vec<_> = synthesize(&m, 1000.0, m.duration_s() + 0.5, errors, 9).collect();
        let rests = rest_periods(&samples, 1_000_000_000, 0.05);
        assert_eq!(rests.len(), 6);
        let e = estimate_imu(&rests).unwrap();
        assert_eq!(e.faces.len(), 6);
        let rel = (e.gyro_bias - errors.gyro_bias).length() / errors.gyro_bias.length();
        assert!(rel < 0.02, "gyro bias off by {:.2}%", rel * 100.0);
        let (bias, scale) = e.accel.unwrap();
        assert!((bias - errors.accel_bias).length() < 0.01, "{bias}");
        assert!((scale - errors.accel_scale).length() < 0.002, "{scale}");
        // Applying the estimate removes the errors.
        let cal = ImuCalibration {
            gyro_bias: e.gyro_bias.to_array(),
            accel_bias: bias.to_array(),
            accel_scale: scale.to_array(),
            samples: e.rest_samples,
        };
        let fixed = cal.apply(&rests[0][100]);
        assert!((fixed.accel.length() - GRAVITY).abs() < 0.15);
    }

    #[test]
    fn one_face_gives_gyro_only() {
        let m = Motion::new(glam::DQuat::IDENTITY, &[Segment::Still { secs: 5.0 }]);
        let errors = ImuErrors {
            gyro_bias: DVec3::new(0.01, 0.0, -0.02),
            gyro_noise: 0.005,
            ..ImuErrors::NONE
        };
        let samples: Vec<_> = synthesize(&m, 1000.0, 5.0, errors, 2).collect();
        let e = estimate_imu(&rest_periods(&samples, 1_000_000_000, 0.05)).unwrap();
        assert!(e.accel.is_none());
        assert!((e.gyro_bias - errors.gyro_bias).length() < 0.001);
        assert!(estimate_imu(&[]).is_none());
    }

    fn still(time_ns: u64, accel: DVec3) -> ImuSample {
        ImuSample {
            time_ns,
            gyro: DVec3::new(0.01, 0.0, 0.0),
            accel,
        }
    }

    #[test]
    fn motion_at_the_first_sample_starts_no_rest_period() {
        // The headset is moving when the stream starts (this indexed samples[-1] and
        // panicked), then rests on its bottom for 3 s.
        let up = DVec3::new(0.0, GRAVITY, 0.0);
        let mut samples = vec![ImuSample {
            time_ns: 0,
            gyro: DVec3::new(1.5, 0.2, 0.0),
            accel: DVec3::new(4.0, 2.0, 0.0),
        }];
        samples.extend((1..=3000).map(|i| still(i * 1_000_000, up)));
        let rests = rest_periods(&samples, MIN_REST_NS, REST_GYRO_TOL);
        assert_eq!(rests.len(), 1);
        assert!(rests[0].iter().all(|s| s.accel == up), "no moving sample");
        // Trimmed by a tenth at each end of the 3000 still samples.
        assert_eq!(rests[0].len(), 3000 - 2 * 300);
        // Motion alone, or a lone moving sample, is no rest and no panic.
        assert!(rest_periods(&samples[..1], 0, REST_GYRO_TOL).is_empty());
        assert!(rest_periods(&[], MIN_REST_NS, REST_GYRO_TOL).is_empty());
    }

    #[test]
    fn a_gap_in_the_stream_ends_a_rest_period() {
        // Resting on its bottom, then 400 ms of reports lost (a stalled VM or reader)
        // while it was turned onto its left side: two sides, not one blend of both.
        let mut samples: Vec<_> = (0..1500)
            .map(|i| still(i * 1_000_000, DVec3::new(0.0, GRAVITY, 0.0)))
            .collect();
        samples.extend((1900..3400).map(|i| still(i * 1_000_000, DVec3::new(GRAVITY, 0.0, 0.0))));
        let rests = rest_periods(&samples, MIN_REST_NS, REST_GYRO_TOL);
        assert_eq!(rests.len(), 2);
        let e = estimate_imu(&rests).unwrap();
        assert_eq!(e.faces, [Face::new(1, true), Face::new(0, true)]);
        // The same gap on one side splits the hold: 1.5 s halves each still count.
        let mut same: Vec<_> = (0..1500)
            .chain(1900..3400)
            .map(|i| still(i * 1_000_000, DVec3::new(0.0, GRAVITY, 0.0)))
            .collect();
        assert_eq!(rest_periods(&same, MIN_REST_NS, REST_GYRO_TOL).len(), 2);
        // Time running backwards ends a period too.
        same[1200].time_ns = 0;
        let rests = rest_periods(&same, MIN_REST_NS, REST_GYRO_TOL);
        assert_eq!(rests.len(), 2);
        assert!(rests[0].last().unwrap().time_ns < 1_200_000_000);
        assert!(rests[1].first().unwrap().time_ns > 1_900_000_000);
    }

    #[test]
    fn a_missing_side_is_named_and_resting_on_it_later_completes_the_run() {
        let errors = ImuErrors {
            gyro_bias: DVec3::new(0.015, -0.01, 0.005),
            gyro_noise: 0.004,
            accel_bias: DVec3::new(0.09, -0.06, 0.04),
            accel_scale: DVec3::new(1.015, 0.99, 1.008),
            accel_noise: 0.03,
        };
        let m = Motion::six_faces(2.0, 2.0);
        let last_hold_s = m.duration_s() - 2.0;
        let mut run = ImuRun::new(ImuGoal::SixSides);
        // The stream stops 0.7 s into the last side's hold: too short to count.
        let cut_s = last_hold_s + 0.7;
        for s in synthesize(&m, 1000.0, cut_s, errors, 4) {
            run.push(s);
        }
        let p = run.progress();
        assert!(!p.complete);
        assert_eq!(p.seen.len(), 5, "{:?}", p.seen);
        // The script's last side: turned 360° about X, then 270° about Z.
        let last = Face::new(0, false);
        assert_eq!(p.missing, [last]);
        assert!(p.still_ns > 5 * MIN_REST_NS);
        let err = run.finish().unwrap_err();
        assert_eq!(
            err,
            ImuRunError::MissingSides {
                seen: p.seen.clone(),
                missing: vec![last]
            }
        );
        let text = err.to_string();
        assert!(
            text.contains("rested on 5 of its 6 sides")
                && text.contains("-X up (on its right side)"),
            "{text}"
        );

        // Three seconds later the headset is put down on that side and held.
        let t0 = (cut_s * 1e9) as u64 + 3_000_000_000;
        let hold = Motion::new(
            m.orientation(m.duration_s()),
            &[Segment::Still { secs: 2.0 }],
        );
        for s in synthesize(&hold, 1000.0, 2.0, errors, 5) {
            run.push(ImuSample {
                time_ns: s.time_ns + t0,
                ..s
            });
        }
        let p = run.progress();
        assert!(p.complete, "{p:?}");
        assert!(p.missing.is_empty());
        let e = run.finish().unwrap();
        let (bias, scale) = e.accel.unwrap();
        assert!((bias - errors.accel_bias).length() < 0.02, "{bias}");
        assert!((scale - errors.accel_scale).length() < 0.003, "{scale}");
        assert!((e.gyro_bias - errors.gyro_bias).length() < 0.001);
    }

    #[test]
    fn a_side_lost_to_a_stall_is_seen_when_the_script_comes_round_again() {
        // The lab's script (six sides, three times over) with 1.2 s of reports lost in
        // the middle of the first cycle's last hold, as a stalled VM loses them.
        let errors = ImuErrors {
            gyro_bias: DVec3::new(0.012, -0.018, 0.009),
            gyro_noise: 0.004,
            accel_bias: DVec3::new(0.09, -0.06, 0.04),
            accel_scale: DVec3::new(1.015, 0.99, 1.008),
            accel_noise: 0.03,
        };
        let m = Motion::six_faces_repeated(6.0, 2.0, 3);
        let first_cycle_s = Motion::six_faces(6.0, 2.0).duration_s();
        let stall_ns = ((first_cycle_s - 1.6) * 1e9) as u64..((first_cycle_s - 0.4) * 1e9) as u64;
        let mut run = ImuRun::new(ImuGoal::SixSides);
        let mut completed_at = None;
        let mut waited_for_it = false;
        for s in synthesize(&m, 1000.0, m.duration_s(), errors, 11) {
            if stall_ns.contains(&s.time_ns) {
                continue;
            }
            run.push(s);
            // As the CLI does, look now and then.
            if s.time_ns % 250_000_000 == 0 && completed_at.is_none() {
                let p = run.progress();
                if s.time_ns as f64 / 1e9 > first_cycle_s + 0.5 && p.seen.len() == 5 {
                    assert_eq!(p.missing, [Face::new(0, false)]);
                    waited_for_it = true;
                }
                if p.complete {
                    completed_at = Some(s.time_ns as f64 / 1e9);
                }
            }
        }
        assert!(
            waited_for_it,
            "the run named the lost side after the first cycle"
        );
        let t = completed_at.expect("complete");
        assert!(t > first_cycle_s && t < m.duration_s(), "{t}");
        let e = run.finish().unwrap();
        let rel = (e.gyro_bias - errors.gyro_bias).length() / errors.gyro_bias.length();
        assert!(rel < 0.05, "{rel}");
        let (_, scale) = e.accel.unwrap();
        assert!((scale - errors.accel_scale).length() < 0.005, "{scale}");
    }

    #[test]
    fn gyro_only_runs_need_their_still_time_and_keep_no_accel() {
        // 5 s at rest once the ends of the hold are trimmed.
        let m = Motion::new(glam::DQuat::IDENTITY, &[Segment::Still { secs: 7.0 }]);
        let errors = ImuErrors {
            gyro_bias: DVec3::new(0.01, 0.0, -0.02),
            gyro_noise: 0.005,
            ..ImuErrors::NONE
        };
        let mut run = ImuRun::new(ImuGoal::GyroOnly {
            still_ns: 5_000_000_000,
        });
        assert_eq!(run.finish(), Err(ImuRunError::NeverStill { samples: 0 }));
        let samples: Vec<_> = synthesize(&m, 1000.0, 7.0, errors, 2).collect();
        for s in &samples[..3000] {
            run.push(*s);
        }
        let p = run.progress();
        assert!(!p.complete && p.missing.is_empty());
        // Not complete, but a gyro-only run takes what rest there was.
        assert!(run.finish().unwrap().accel.is_none());
        for s in &samples[3000..] {
            run.push(*s);
        }
        assert!(run.progress().complete);
        let e = run.finish().unwrap();
        assert!((e.gyro_bias - errors.gyro_bias).length() < 0.001);
    }

    #[test]
    fn an_implausible_gyro_bias_is_refused() {
        // Turning steadily at 1 rad/s on a turntable looks still to the accelerometer
        // and steady to the gyro, but no gyro is that far off.
        let mut run = ImuRun::new(ImuGoal::GyroOnly {
            still_ns: MIN_REST_NS,
        });
        for i in 0..3000 {
            run.push(ImuSample {
                time_ns: i * 1_000_000,
                gyro: DVec3::new(0.0, 1.0, 0.0),
                accel: DVec3::new(0.0, GRAVITY, 0.0),
            });
        }
        assert!(run.progress().complete);
        assert!(matches!(run.finish(), Err(ImuRunError::Implausible(_))));
    }

    #[test]
    fn faces_have_distinct_names() {
        let names: std::collections::BTreeSet<_> = Face::ALL.iter().map(|f| f.name()).collect();
        assert_eq!(names.len(), 6);
        assert_eq!(
            Face::new(2, false).to_string(),
            "-Z up (on its back, lenses down)"
        );
        assert_eq!(Face::new(0, true).name(), "+X up");
    }

    #[test]
    fn file_round_trip_and_bad_files() {
        let dir = std::env::temp_dir().join(format!("leasehold-cal-{}", std::process::id()));
        let p = dir.join("calibration/X.toml");
        assert_eq!(Calibration::load(&p).unwrap(), None);
        let c = Calibration {
            imu: Some(ImuCalibration {
                gyro_bias: [0.01, 0.02, 0.03],
                accel_bias: [0.0; 3],
                accel_scale: [1.0; 3],
                samples: 5000,
            }),
            display: Some(DisplayOverrides {
                ipd_mm: Some(64.5),
                lens_center_offset: None,
            }),
        };
        c.save(&p).unwrap();
        assert_eq!(Calibration::load(&p).unwrap(), Some(c));
        std::fs::write(&p, "imu = 5").unwrap();
        assert!(matches!(
            Calibration::load(&p),
            Err(CalibrationError::Parse { .. })
        ));
        std::fs::write(
            &p,
            "[imu]\ngyro_bias = [9.0, 0, 0]\naccel_bias = [0,0,0]\naccel_scale = [1,1,1]\nsamples = 1\n",
        )
        .unwrap();
        assert!(Calibration::load(&p).is_err());
        std::fs::write(&p, "[display]\nipd_mm = 20.0\n").unwrap();
        assert!(Calibration::load(&p).is_err());
        std::fs::remove_dir_all(&dir).unwrap();
        assert!(
            path_for("a/../b")
                .unwrap()
                .ends_with("calibration/a____b.toml")
        );
    }
}
