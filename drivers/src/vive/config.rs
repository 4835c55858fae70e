//! The headset's own configuration: a zlib-compressed JSON document read over feature
//! reports, carrying the factory IMU calibration, the panel's per-eye render size, the
//! lens separation and the per-eye, per-colour distortion and projection.
//!
//! Missing optional keys take documented defaults (a warning names each); a document
//! that does not inflate, is not JSON, or lacks `model_number` is an error.

use super::ViveError;
use super::protocol::{
    CONFIG_READ_REPORT_ID, CONFIG_START_REPORT_ID, FEATURE_REPORT_LEN, FactoryImu,
    parse_config_chunk,
};
use crate::api::{ChannelDistortion, EyeLens, Fov, LensModel};
use crate::hid::HidTransport;
use glam::{DVec3, Vec2};
use serde_json::Value;
use std::io::Read;

/// Compressed configs are a few kB; refuse absurd sizes from a confused device.
pub const MAX_COMPRESSED: usize = 64 * 1024;
pub const MAX_INFLATED: u64 = 1024 * 1024;

/// Which member of the family the config describes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Variant {
    Vive,
    VivePro,
    Index,
}

impl Variant {
    pub fn from_model(model: &str) -> Option<Variant> {
        let m = model.to_ascii_lowercase();
        if m.contains("index") {
            Some(Variant::Index)
        } else if m.contains("pro") {
            Some(Variant::VivePro)
        } else if m.contains("vive") {
            Some(Variant::Vive)
        } else {
            None
        }
    }

    /// The headset profile id in `manifests/headsets/`.
    pub fn profile_id(self) -> &'static str {
        match self {
            Variant::Vive => "vive",
            Variant::VivePro => "vive-pro",
            Variant::Index => "index",
        }
    }
}

/// What Leasehold uses from the config.
#[derive(Debug, Clone, PartialEq)]
pub struct ViveConfig {
    pub model_number: String,
    pub variant: Variant,
    pub serial: String,
    pub imu: FactoryImu,
    pub eye_width: u32,
    pub eye_height: u32,
    /// Metres between the lens centres (the hardware IPD).
    pub lens_separation_m: f32,
    pub lens: LensModel,
    pub fov: [Fov; 2],
    /// Keys that were missing and took defaults.
    pub defaulted: Vec<&'static str>,
}

fn f(v: &Value) -> Option<f64> {
    v.as_f64().filter(|x| x.is_finite())
}

fn vec3(v: Option<&Value>) -> Option<DVec3> {
    let a = v?.as_array()?;
    if a.len() != 3 {
        return None;
    }
    Some(DVec3::new(f(&a[0])?, f(&a[1])?, f(&a[2])?))
}

impl ViveConfig {
    pub fn parse(json: &str) -> Result<ViveConfig, ViveError> {
        let root: Value =
            serde_json::from_str(json).map_err(|e| ViveError::Config(format!("not JSON: {e}")))?;
        if !root.is_object() {
            return Err(ViveError::Config("not a JSON object".into()));
        }
        let model_number = root
            .get("model_number")
            .or_else(|| root.get("model_name"))
            .and_then(Value::as_str)
            .ok_or(ViveError::MissingKey("model_number"))?
            .to_string();
        let variant = Variant::from_model(&model_number)
            .ok_or_else(|| ViveError::Config(format!("unknown headset model {model_number:?}")))?;
        let mut defaulted = Vec::new();
        let mut take = |key: &'static str, v: Option<DVec3>, default: DVec3| {
            v.unwrap_or_else(|| {
                defaulted.push(key);
                default
            })
        };
        // Older headsets keep IMU data at the root, newer ones under "imu".
        let imu_obj = root.get("imu").filter(|v| v.is_object()).unwrap_or(&root);
        let imu = FactoryImu {
            acc_bias: take("acc_bias", vec3(imu_obj.get("acc_bias")), DVec3::ZERO),
            acc_scale: take("acc_scale", vec3(imu_obj.get("acc_scale")), DVec3::ONE),
            gyro_bias: take("gyro_bias", vec3(imu_obj.get("gyro_bias")), DVec3::ZERO),
            gyro_scale: take("gyro_scale", vec3(imu_obj.get("gyro_scale")), DVec3::ONE),
        };
        if imu.acc_scale.min_element() <= 0.0 || imu.gyro_scale.min_element() <= 0.0 {
            return Err(ViveError::Config(
                "IMU scale factors must be positive".into(),
            ));
        }
        let serial = root
            .get("device_serial_number")
            .and_then(Value::as_str)
            .unwrap_or("unknown")
            .to_string();
        let device = root.get("device");
        let dim = |key: &'static str, default: u32, defaulted: &mut Vec<&'static str>| {
            device
                .and_then(|d| d.get(key))
                .and_then(Value::as_u64)
                .filter(|v| (1..=16384).contains(v))
                .map(|v| v as u32)
                .unwrap_or_else(|| {
                    defaulted.push(key);
                    default
                })
        };
        let eye_width = dim("eye_target_width_in_pixels", 1080, &mut defaulted);
        let eye_height = dim("eye_target_height_in_pixels", 1200, &mut defaulted);
        let aspect = device
            .and_then(|d| d.get("physical_aspect_x_over_y"))
            .and_then(f)
            .filter(|a| *a > 0.1 && *a < 10.0)
            .unwrap_or_else(|| {
                defaulted.push("physical_aspect_x_over_y");
                0.9
            }) as f32;
        let lens_separation_m = root
            .get("lens_separation")
            .and_then(f)
            .or_else(|| {
                root.get("ipd")
                    .and_then(|i| i.get("default_mm"))
                    .and_then(f)
                    .map(|mm| mm / 1000.0)
            })
            .filter(|m| *m > 0.03 && *m < 0.1)
            .unwrap_or_else(|| {
                defaulted.push("lens_separation");
                0.063
            }) as f32;

        let eyes_json = root
            .get("tracking_to_eye_transform")
            .and_then(Value::as_array)
            .filter(|a| a.len() == 2);
        let (lens, fov) = match eyes_json {
            Some(eyes) => {
                let l = [
                    eye_lens(&eyes[0], 0, aspect)?,
                    eye_lens(&eyes[1], 1, aspect)?,
                ];
                let fov = [eye_fov(&eyes[0])?, eye_fov(&eyes[1])?];
                (LensModel::Polynomial(l), fov)
            }
            None => {
                defaulted.push("tracking_to_eye_transform");
                (LensModel::None, [Fov::symmetric(1.75, 1.9); 2])
            }
        };
        for key in &defaulted {
            tracing::warn!(key, "headset config lacks a value; using the default");
        }
        Ok(ViveConfig {
            model_number,
            variant,
            serial,
            imu,
            eye_width,
            eye_height,
            lens_separation_m,
            lens,
            fov,
            defaulted,
        })
    }
}

/// A lens value as the lens model keeps it. Finite as f64 is not enough: 1e39 is
/// infinite as f32, and one infinite coefficient makes the distortion mesh NaN.
fn lens_f32(x: f64, what: &dyn Fn() -> String) -> Result<f32, ViveError> {
    let v = x as f32;
    if v.is_finite() {
        Ok(v)
    } else {
        Err(ViveError::Config(format!(
            "{} = {x:e} is beyond the lens model's 32-bit range (±{:e})",
            what(),
            f32::MAX
        )))
    }
}

/// The lens of eye `index` (`tracking_to_eye_transform[index]`).
fn eye_lens(eye: &Value, index: usize, aspect: f32) -> Result<EyeLens, ViveError> {
    let at = format!("tracking_to_eye_transform[{index}]");
    let num = |key: &str, default: f64| {
        lens_f32(eye.get(key).and_then(f).unwrap_or(default), &|| {
            format!("{at}.{key}")
        })
    };
    let channel = |name: &str| -> Result<ChannelDistortion, ViveError> {
        let Some(d) = eye.get(name) else {
            return Ok(ChannelDistortion::NONE);
        };
        let mut coeffs = [0.0f32; 4];
        if let Some(c) = d.get("coeffs").and_then(Value::as_array) {
            for (i, (slot, v)) in coeffs.iter_mut().zip(c).enumerate() {
                let x = f(v).ok_or_else(|| {
                    ViveError::Config(format!("{name}.coeffs holds a non-number"))
                })?;
                *slot = lens_f32(x, &|| format!("{at}.{name}.coeffs[{i}]"))?;
            }
        }
        let centre = |key: &str| {
            lens_f32(d.get(key).and_then(f).unwrap_or(0.0), &|| {
                format!("{at}.{name}.{key}")
            })
        };
        Ok(ChannelDistortion {
            center: Vec2::new(centre("center_x")?, centre("center_y")?),
            coeffs,
        })
    };
    let green = channel("distortion")?;
    let red = if eye.get("distortion_red").is_some() {
        channel("distortion_red")?
    } else {
        green
    };
    let blue = if eye.get("distortion_blue").is_some() {
        channel("distortion_blue")?
    } else {
        green
    };
    Ok(EyeLens {
        channels: [red, green, blue],
        grow_for_undistort: num("grow_for_undistort", 0.5)?.max(0.0),
        undistort_r2_cutoff: num("undistort_r2_cutoff", 1.0)?.max(0.01),
        aspect_x_over_y: aspect,
    })
}

/// Field of view from the eye's pinhole intrinsics (normalised to the eye's half of the
/// panel, scaled by 1 + grow_for_undistort).
fn eye_fov(eye: &Value) -> Result<Fov, ViveError> {
    let bad = |why: &str| ViveError::Config(format!("intrinsics: {why}"));
    let m = eye
        .get("intrinsics")
        .and_then(Value::as_array)
        .filter(|r| r.len() == 3)
        .ok_or_else(|| bad("missing or not 3x3"))?;
    let at = |r: usize, c: usize| -> Result<f64, ViveError> {
        m[r].as_array()
            .and_then(|row| row.get(c))
            .and_then(f)
            .ok_or_else(|| bad("not numbers"))
    };
    let grow = eye.get("grow_for_undistort").and_then(f).unwrap_or(0.5) + 1.0;
    let (fx, cx) = (at(0, 0)? / grow, at(0, 2)? / grow);
    let (fy, cy) = (at(1, 1)? / grow, at(1, 2)? / grow);
    if fx <= 0.0 || fy <= 0.0 {
        return Err(bad("focal lengths must be positive"));
    }
    let fov = Fov {
        angle_left: -((1.0 - cx) / fx).atan() as f32,
        angle_right: ((1.0 + cx) / fx).atan() as f32,
        angle_up: ((1.0 + cy) / fy).atan() as f32,
        angle_down: -((1.0 - cy) / fy).atan() as f32,
    };
    if !fov.is_valid() {
        return Err(bad("gives an impossible field of view"));
    }
    Ok(fov)
}

/// Reads the compressed config over feature reports 0x10/0x11 and inflates it.
pub fn read_config(t: &mut dyn HidTransport) -> Result<String, ViveError> {
    let mut buf = [0u8; FEATURE_REPORT_LEN];
    buf[0] = CONFIG_START_REPORT_ID;
    t.get_feature(&mut buf)?;
    let mut compressed = Vec::with_capacity(4096);
    loop {
        let mut buf = [0u8; FEATURE_REPORT_LEN];
        buf[0] = CONFIG_READ_REPORT_ID;
        let n = t.get_feature(&mut buf)?;
        let chunk = parse_config_chunk(&buf[..n])?;
        if chunk.is_empty() {
            break;
        }
        compressed.extend_from_slice(chunk);
        if compressed.len() > MAX_COMPRESSED {
            return Err(ViveError::Config(format!(
                "config transfer exceeds {MAX_COMPRESSED} bytes"
            )));
        }
    }
    inflate(&compressed)
}

pub fn inflate(compressed: &[u8]) -> Result<String, ViveError> {
    let mut out = String::new();
    flate2::read::ZlibDecoder::new(compressed)
        .take(MAX_INFLATED + 1)
        .read_to_string(&mut out)
        .map_err(|e| ViveError::Config(format!("config does not inflate: {e}")))?;
    if out.len() as u64 > MAX_INFLATED {
        return Err(ViveError::Config("inflated config is too large".into()));
    }
    Ok(out)
}

pub fn deflate(json: &str) -> Vec<u8> {
    use std::io::Write;
    let mut e = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(json.as_bytes())
        .and_then(|_| e.finish())
        .expect("compressing into memory does not fail")
}

#[cfg(test)]
mod tests {
    use super::super::protocol::encode_config_chunks;
    use super::*;
    use crate::hid::ReplayTransport;

    pub const FIXTURE: &str = include_str!("../../fixtures/vive-config.json");

    #[test]
    fn parses_the_fixture() {
        let c = ViveConfig::parse(FIXTURE).unwrap();
        assert_eq!(c.model_number, "Vive MV");
        assert_eq!(c.variant, Variant::Vive);
        assert_eq!(c.serial, "LHR-LEASE001");
        assert_eq!(c.imu.gyro_bias, DVec3::new(0.0041, -0.0027, 0.0013));
        assert_eq!(c.imu.acc_scale.y, 1.0035);
        assert_eq!((c.eye_width, c.eye_height), (1080, 1200));
        assert!((c.lens_separation_m - 0.0623).abs() < 1e-6);
        assert!(c.defaulted.is_empty(), "{:?}", c.defaulted);
        let LensModel::Polynomial(l) = c.lens else {
            panic!("polynomial lens expected")
        };
        // red, green, blue of the left eye, and the right eye's green centre.
        assert_eq!(l[0].channels[0].coeffs, [-0.2052, 0.0478, 0.0, 0.0]);
        assert_eq!(l[0].channels[1].coeffs, [-0.2203, 0.0501, 0.0, 0.0]);
        assert_eq!(l[0].channels[2].coeffs, [-0.2381, 0.0533, 0.0, 0.0]);
        assert_eq!(l[1].channels[1].center, Vec2::new(-0.0198, 0.0027));
        assert!((l[0].grow_for_undistort - 0.6).abs() < 1e-6);
        assert!((l[0].aspect_x_over_y - 0.9).abs() < 1e-6);
        // Each eye sees more towards its outer side than towards the nose.
        assert!(c.fov.iter().all(Fov::is_valid));
        let deg = |r: f32| r.to_degrees();
        assert!(deg(c.fov[0].angle_right - c.fov[0].angle_left) > 90.0);
        assert!((c.fov[0].angle_left + c.fov[1].angle_right).abs() < 0.01);
    }

    /// The lab's emulated Vive Pro and Index (`cargo xtask lab --hmd`) carry their own
    /// configs: each parses as its model, with its panel, lens and a field of view of
    /// its own.
    #[test]
    fn the_lab_models_configs_parse_as_their_models() {
        let vive = ViveConfig::parse(FIXTURE).unwrap();
        for (json, variant, serial) in [
            (
                include_str!("../../fixtures/vive-pro-config.json"),
                Variant::VivePro,
                "LHR-LEASE201",
            ),
            (
                include_str!("../../fixtures/index-config.json"),
                Variant::Index,
                "LHR-LEASE301",
            ),
        ] {
            let c = ViveConfig::parse(json).unwrap();
            assert_eq!(c.variant, variant);
            assert_eq!(c.serial, serial);
            assert_eq!((c.eye_width, c.eye_height), (1440, 1600));
            assert!(c.defaulted.is_empty(), "{:?}", c.defaulted);
            assert!(c.fov.iter().all(Fov::is_valid));
            assert!((c.fov[0].angle_left + c.fov[1].angle_right).abs() < 0.01);
            assert_ne!(c.lens, vive.lens);
            assert_ne!(c.fov, vive.fov);
        }
    }

    #[test]
    fn missing_keys_take_defaults_and_model_is_required() {
        let c = ViveConfig::parse(r#"{"model_number": "Index"}"#).unwrap();
        assert_eq!(c.variant, Variant::Index);
        assert_eq!(c.imu, FactoryImu::IDENTITY);
        assert_eq!(c.lens, LensModel::None);
        assert!(c.defaulted.contains(&"tracking_to_eye_transform"));
        assert!(c.defaulted.contains(&"gyro_bias"));
        assert!(matches!(
            ViveConfig::parse(r#"{"acc_bias": [0,0,0]}"#),
            Err(ViveError::MissingKey("model_number"))
        ));
        assert!(ViveConfig::parse("not json").is_err());
        assert!(ViveConfig::parse("[1,2]").is_err());
        assert!(ViveConfig::parse(r#"{"model_number": "Rift"}"#).is_err());
        // Wrong types are defaults, not crashes; impossible values are errors.
        let c =
            ViveConfig::parse(r#"{"model_number": "Vive", "acc_bias": "x", "device": 5}"#).unwrap();
        assert!(c.defaulted.contains(&"acc_bias"));
        assert!(ViveConfig::parse(r#"{"model_number": "Vive", "acc_scale": [0, 1, 1]}"#).is_err());
        let bad_intrinsics = r#"{"model_number": "Vive", "tracking_to_eye_transform": [
            {"intrinsics": [[-1,0,0],[0,1,0],[0,0,-1]]}, {"intrinsics": [[1,0,0],[0,1,0],[0,0,-1]]}]}"#;
        assert!(ViveConfig::parse(bad_intrinsics).is_err());
    }

    #[test]
    fn lens_values_beyond_f32_are_refused_by_name() {
        // Finite as f64, infinite as f32: each would reach the distortion mesh as NaN.
        let eye =
            |lens: &str| format!(r#"{{"intrinsics": [[0.9,0,0],[0,0.9,0],[0,0,-1]], {lens}}}"#);
        let config = |left: &str| {
            format!(
                r#"{{"model_number": "Vive MV", "tracking_to_eye_transform": [{}, {}]}}"#,
                eye(left),
                eye(r#""distortion": {"coeffs": [-0.2, 0.05, 0, 0]}"#)
            )
        };
        assert!(
            ViveConfig::parse(&config(r#""distortion": {"coeffs": [-0.2, 0.05, 0, 0]}"#)).is_ok()
        );
        let cases = [
            (
                r#""distortion": {"coeffs": [-0.2, 1e39, 0, 0]}"#,
                "tracking_to_eye_transform[0].distortion.coeffs[1] = 1e39",
            ),
            (
                r#""distortion_red": {"center_x": -4e38, "coeffs": [0, 0, 0, 0]}"#,
                "tracking_to_eye_transform[0].distortion_red.center_x = -4e38",
            ),
            (
                r#""grow_for_undistort": 1e300"#,
                "tracking_to_eye_transform[0].grow_for_undistort = 1e300",
            ),
            (
                r#""undistort_r2_cutoff": 3.5e38"#,
                "tracking_to_eye_transform[0].undistort_r2_cutoff = 3.5e38",
            ),
        ];
        for (lens, why) in cases {
            let e = ViveConfig::parse(&config(lens)).unwrap_err().to_string();
            assert!(e.contains(why) && e.contains("32-bit"), "{lens}: {e}");
        }
        // The largest f32 itself is still a number (if an absurd one).
        assert!(
            ViveConfig::parse(&config(r#""distortion": {"coeffs": [3.4e38, 0, 0, 0]}"#)).is_ok()
        );
    }

    #[test]
    fn config_transfer_over_feature_reports() {
        let z = deflate(FIXTURE);
        let mut t = ReplayTransport::new("capture").feature(&[CONFIG_START_REPORT_ID, 0]);
        for c in encode_config_chunks(&z) {
            t = t.feature(&c);
        }
        assert_eq!(read_config(&mut t).unwrap(), FIXTURE);
        // A transfer that does not inflate.
        let mut t = ReplayTransport::new("capture").feature(&[CONFIG_START_REPORT_ID]);
        for c in encode_config_chunks(b"definitely not zlib") {
            t = t.feature(&c);
        }
        assert!(matches!(read_config(&mut t), Err(ViveError::Config(_))));
        // A device that stops answering mid-transfer.
        let mut t = ReplayTransport::new("capture").feature(&[CONFIG_START_REPORT_ID]);
        t = t.feature(&encode_config_chunks(&z)[0]);
        assert!(matches!(read_config(&mut t), Err(ViveError::Hid(_))));
        // Truncated compressed data.
        assert!(inflate(&z[..z.len() / 2]).is_err());
    }
}
