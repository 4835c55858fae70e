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

    fn is_sane(&self) -> bool {
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

/// Splits a sample stream into rest periods: runs of at least `min_ns` where the gyro
/// stays within `gyro_tol` of the run's mean and the acceleration is near 1 g.
pub fn rest_periods(samples: &[ImuSample], min_ns: u64, gyro_tol: f64) -> Vec<&[ImuSample]> {
    let mut out = Vec::new();
    let mut start = 0;
    let mut mean = DVec3::ZERO;
    for i in 0..samples.len() {
        let s = &samples[i];
        let n = (i - start) as f64;
        let still = (s.accel.length() - GRAVITY).abs() < 0.5
            && (n == 0.0 || (s.gyro - mean).length() < gyro_tol);
        if still {
            mean = (mean * n + s.gyro) / (n + 1.0);
        } else {
            if samples[i - 1]
                .time_ns
                .saturating_sub(samples[start].time_ns)
                >= min_ns
            {
                out.push(&samples[start..i]);
            }
            start = i;
            mean = s.gyro;
        }
    }
    if let (Some(first), Some(last)) = (samples.get(start), samples.last())
        && last.time_ns.saturating_sub(first.time_ns) >= min_ns
    {
        out.push(&samples[start..]);
    }
    // Trim the edges of each run (the device settling or starting to move).
    out.into_iter()
        .map(|r| {
            let k = r.len() / 10;
            &r[k..r.len() - k]
        })
        .filter(|r| !r.is_empty())
        .collect()
}

/// The result of an IMU calibration run.
#[derive(Debug, Clone, PartialEq)]
pub struct ImuEstimate {
    pub gyro_bias: DVec3,
    /// Standard error of the gyro bias estimate, rad/s.
    pub gyro_bias_stderr: f64,
    /// `None` until all six faces have been seen.
    pub accel: Option<(DVec3, DVec3)>,
    /// Faces seen (±X, ±Y, ±Z): which way was up during each rest period.
    pub faces: Vec<(usize, bool)>,
    pub rest_samples: u64,
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
    for r in rests {
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
        let face = (axis, v > 0.0);
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::motion::{ImuErrors, Motion, synthesize};

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
        let m = Motion::new(
            glam::DQuat::IDENTITY,
            &[crate::motion::Segment::Still { secs: 5.0 }],
        );
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
