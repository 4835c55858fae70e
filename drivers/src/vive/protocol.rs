//! The Vive / Vive Pro / Index sensor interface's reports, parsed and (for the lab's
//! emulated headset and tests) encoded. Pure functions over bytes: no I/O.
//!
//! Facts (from the public descriptions in OpenHMD's and Monado's sources):
//! - IMU input report 0x20, 52 bytes: three samples of {accel i16×3, gyro i16×3, time u32
//!   (48 MHz ticks), sequence u8}, little-endian. The three slots are updated round-robin:
//!   a report repeats up to two samples already seen.
//! - Feature 0x01: IMU range modes (gyro, accel): MPU-6500 full scale ±250·2ⁿ °/s and
//!   ±2·2ⁿ g, n ≤ 4.
//! - Feature 0x10 starts a config transfer; feature 0x11 returns {len u8, up to 62 bytes}
//!   chunks until a zero length; the concatenation is zlib-compressed JSON.

use crate::motion::{GRAVITY, ImuSample};
use glam::DVec3;

pub const VALVE_VID: u16 = 0x28de;
/// Vive: the lighthouse FPGA receiver carries the HMD's IMU.
pub const VIVE_SENSORS_PID: u16 = 0x2000;
/// Vive Pro and Index: the headset's sensor board.
pub const LHR_SENSORS_PID: u16 = 0x2300;
/// The IMU is on interface 0 of both.
pub const SENSORS_INTERFACE: i32 = 0;

pub const IMU_REPORT_ID: u8 = 0x20;
pub const IMU_REPORT_LEN: usize = 52;
pub const RANGE_REPORT_ID: u8 = 0x01;
pub const CONFIG_START_REPORT_ID: u8 = 0x10;
pub const CONFIG_READ_REPORT_ID: u8 = 0x11;
pub const FEATURE_REPORT_LEN: usize = 64;
pub const CONFIG_CHUNK_MAX: usize = 62;
pub const TICKS_PER_SECOND: u64 = 48_000_000;

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum ReportError {
    #[error("{what} report is {len} bytes, needs {need}")]
    Truncated {
        what: &'static str,
        len: usize,
        need: usize,
    },
    #[error("expected report {expected:#04x}, got {got:#04x}")]
    WrongReport { expected: u8, got: u8 },
    #[error("IMU range modes out of range: gyro {gyro}, accel {accel} (each 0..=4)")]
    BadRange { gyro: u8, accel: u8 },
    #[error("config chunk claims {len} bytes (at most {CONFIG_CHUNK_MAX})")]
    ConfigChunk { len: usize },
}

/// Full-scale ranges of the IMU.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ImuRange {
    /// rad/s at raw ±32768.
    pub gyro: f64,
    /// m/s² at raw ±32768.
    pub accel: f64,
    pub gyro_mode: u8,
    pub accel_mode: u8,
}

impl ImuRange {
    pub fn from_modes(gyro_mode: u8, accel_mode: u8) -> Result<Self, ReportError> {
        if gyro_mode > 4 || accel_mode > 4 {
            return Err(ReportError::BadRange {
                gyro: gyro_mode,
                accel: accel_mode,
            });
        }
        Ok(Self {
            gyro: (250u32 << gyro_mode) as f64 * std::f64::consts::PI / 180.0,
            accel: (2u32 << accel_mode) as f64 * GRAVITY,
            gyro_mode,
            accel_mode,
        })
    }
}

fn need(what: &'static str, buf: &[u8], n: usize, id: u8) -> Result<(), ReportError> {
    if buf.len() < n {
        return Err(ReportError::Truncated {
            what,
            len: buf.len(),
            need: n,
        });
    }
    if buf[0] != id {
        return Err(ReportError::WrongReport {
            expected: id,
            got: buf[0],
        });
    }
    Ok(())
}

/// Parses feature report 0x01. A device that answers zeros has not initialised its
/// ranges yet: the caller asks again.
pub fn parse_range_report(buf: &[u8]) -> Result<ImuRange, ReportError> {
    need("IMU range", buf, 3, RANGE_REPORT_ID)?;
    ImuRange::from_modes(buf[1], buf[2])
}

pub fn encode_range_report(range: &ImuRange) -> [u8; FEATURE_REPORT_LEN] {
    let mut r = [0u8; FEATURE_REPORT_LEN];
    r[0] = RANGE_REPORT_ID;
    r[1] = range.gyro_mode;
    r[2] = range.accel_mode;
    r
}

/// One raw IMU slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RawImuSample {
    pub accel: [i16; 3],
    pub gyro: [i16; 3],
    pub time: u32,
    pub seq: u8,
}

pub fn parse_imu_report(buf: &[u8]) -> Result<[RawImuSample; 3], ReportError> {
    need("IMU", buf, IMU_REPORT_LEN, IMU_REPORT_ID)?;
    let mut out = [RawImuSample::default(); 3];
    for (i, s) in out.iter_mut().enumerate() {
        let b = &buf[1 + i * 17..1 + (i + 1) * 17];
        let h = |o: usize| i16::from_le_bytes([b[o], b[o + 1]]);
        s.accel = [h(0), h(2), h(4)];
        s.gyro = [h(6), h(8), h(10)];
        s.time = u32::from_le_bytes([b[12], b[13], b[14], b[15]]);
        s.seq = b[16];
    }
    Ok(out)
}

pub fn encode_imu_report(samples: &[RawImuSample; 3]) -> [u8; IMU_REPORT_LEN] {
    let mut r = [0u8; IMU_REPORT_LEN];
    r[0] = IMU_REPORT_ID;
    for (i, s) in samples.iter().enumerate() {
        let b = &mut r[1 + i * 17..1 + (i + 1) * 17];
        for (k, v) in s.accel.iter().chain(&s.gyro).enumerate() {
            b[2 * k..2 * k + 2].copy_from_slice(&v.to_le_bytes());
        }
        b[12..16].copy_from_slice(&s.time.to_le_bytes());
        b[16] = s.seq;
    }
    r
}

/// A sample with its time extended past the 32-bit tick counter's wrap (~89 s).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimedRawSample {
    pub raw: RawImuSample,
    /// 48 MHz device ticks, extended to 64 bits from the first sample the decoder saw.
    pub ticks: u64,
}

/// Turns the report stream into new samples, in order, each once.
#[derive(Debug, Clone, Default)]
pub struct ImuDecoder {
    last_seq: Option<u8>,
    last_time: u32,
    ticks: u64,
    /// Samples skipped as already seen (for diagnostics).
    pub repeats: u64,
    /// Sequence gaps (samples lost between reports).
    pub lost: u64,
}

impl ImuDecoder {
    pub fn feed(&mut self, report: &[u8]) -> Result<Vec<TimedRawSample>, ReportError> {
        let s = parse_imu_report(report)?;
        // Start at the slot with the oldest sequence number.
        let start = if s[0].seq == s[1].seq.wrapping_add(2) {
            1
        } else if s[1].seq == s[2].seq.wrapping_add(2) {
            2
        } else {
            0
        };
        let mut out = Vec::with_capacity(3);
        for k in 0..3 {
            let raw = s[(start + k) % 3];
            if let Some(last) = self.last_seq {
                let behind = last.wrapping_sub(raw.seq);
                if behind <= 2 {
                    self.repeats += 1;
                    continue;
                }
                let ahead = raw.seq.wrapping_sub(last);
                if ahead > 1 && ahead < 128 {
                    self.lost += u64::from(ahead - 1);
                }
                self.ticks += u64::from(raw.time.wrapping_sub(self.last_time));
            } else {
                // The device's own tick count is the time origin.
                self.ticks = u64::from(raw.time);
            }
            self.last_seq = Some(raw.seq);
            self.last_time = raw.time;
            out.push(TimedRawSample {
                raw,
                ticks: self.ticks,
            });
        }
        Ok(out)
    }
}

/// Factory IMU calibration from the device's config, in the raw sensor's axis order:
/// `physical = raw · full_scale / 32768 · scale − bias`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FactoryImu {
    pub acc_bias: DVec3,
    pub acc_scale: DVec3,
    pub gyro_bias: DVec3,
    pub gyro_scale: DVec3,
}

impl FactoryImu {
    pub const IDENTITY: FactoryImu = FactoryImu {
        acc_bias: DVec3::ZERO,
        acc_scale: DVec3::ONE,
        gyro_bias: DVec3::ZERO,
        gyro_scale: DVec3::ONE,
    };
}

/// Sensor axes → OpenXR axes (+X right, +Y up, −Z forward): x = −s0, y = −s2, z = −s1.
fn sensor_to_xr(v: DVec3) -> DVec3 {
    DVec3::new(-v.x, -v.z, -v.y)
}

fn xr_to_sensor(v: DVec3) -> DVec3 {
    DVec3::new(-v.x, -v.z, -v.y)
}

fn i16s(v: [i16; 3]) -> DVec3 {
    DVec3::new(v[0] as f64, v[1] as f64, v[2] as f64)
}

/// Converts a raw sample into physical units in OpenXR axes.
pub fn to_sample(s: &TimedRawSample, range: &ImuRange, f: &FactoryImu) -> ImuSample {
    let accel = i16s(s.raw.accel) * (range.accel / 32768.0) * f.acc_scale - f.acc_bias;
    let gyro = i16s(s.raw.gyro) * (range.gyro / 32768.0) * f.gyro_scale - f.gyro_bias;
    ImuSample {
        time_ns: (s.ticks as u128 * 1_000_000_000 / TICKS_PER_SECOND as u128) as u64,
        gyro: sensor_to_xr(gyro),
        accel: sensor_to_xr(accel),
    }
}

/// The inverse of [`to_sample`] (what a device with this factory calibration would
/// send), saturating at the range's limits. For the emulated headset.
pub fn from_sample(
    s: &ImuSample,
    range: &ImuRange,
    f: &FactoryImu,
    seq: u8,
    time: u32,
) -> RawImuSample {
    let q = |v: DVec3, bias: DVec3, scale: DVec3, full: f64| {
        let raw = (xr_to_sensor(v) + bias) / scale / (full / 32768.0);
        let c = |x: f64| x.round().clamp(-32768.0, 32767.0) as i16;
        [c(raw.x), c(raw.y), c(raw.z)]
    };
    RawImuSample {
        accel: q(s.accel, f.acc_bias, f.acc_scale, range.accel),
        gyro: q(s.gyro, f.gyro_bias, f.gyro_scale, range.gyro),
        time,
        seq,
    }
}

/// Feature-report chunks that carry `compressed` config data (then the empty chunk).
pub fn encode_config_chunks(compressed: &[u8]) -> Vec<[u8; FEATURE_REPORT_LEN]> {
    let mut out: Vec<_> = compressed
        .chunks(CONFIG_CHUNK_MAX)
        .map(|c| {
            let mut r = [0u8; FEATURE_REPORT_LEN];
            r[0] = CONFIG_READ_REPORT_ID;
            r[1] = c.len() as u8;
            r[2..2 + c.len()].copy_from_slice(c);
            r
        })
        .collect();
    let mut end = [0u8; FEATURE_REPORT_LEN];
    end[0] = CONFIG_READ_REPORT_ID;
    out.push(end);
    out
}

/// The payload of one config chunk (empty at the end of the transfer).
pub fn parse_config_chunk(buf: &[u8]) -> Result<&[u8], ReportError> {
    need("config read", buf, 2, CONFIG_READ_REPORT_ID)?;
    let len = buf[1] as usize;
    if len > CONFIG_CHUNK_MAX {
        return Err(ReportError::ConfigChunk { len });
    }
    if buf.len() < 2 + len {
        return Err(ReportError::Truncated {
            what: "config read",
            len: buf.len(),
            need: 2 + len,
        });
    }
    Ok(&buf[2..2 + len])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(seq: u8, time: u32) -> RawImuSample {
        RawImuSample {
            accel: [seq as i16, -1, 2],
            gyro: [3, -4, 5],
            time,
            seq,
        }
    }

    #[test]
    fn report_round_trip() {
        let s = [raw(7, 100), raw(8, 48_100), raw(9, 96_100)];
        let r = encode_imu_report(&s);
        assert_eq!(parse_imu_report(&r).unwrap(), s);
        assert_eq!(
            parse_imu_report(&r[..51]),
            Err(ReportError::Truncated {
                what: "IMU",
                len: 51,
                need: 52
            })
        );
        let mut wrong = r;
        wrong[0] = 0x21;
        assert!(matches!(
            parse_imu_report(&wrong),
            Err(ReportError::WrongReport { .. })
        ));
    }

    #[test]
    fn round_robin_slots_give_each_sample_once_in_order() {
        let mut d = ImuDecoder::default();
        let t = |i: u32| i * 48_000;
        // Slot i holds samples i, i+3, i+6…; each report updates one slot.
        let mut slots = [raw(0, t(0)), raw(1, t(1)), raw(2, t(2))];
        let mut seen = Vec::new();
        for s in d.feed(&encode_imu_report(&slots)).unwrap() {
            seen.push(s.raw.seq);
        }
        for n in 3u32..700 {
            slots[(n % 3) as usize] = raw((n % 256) as u8, t(n));
            for s in d.feed(&encode_imu_report(&slots)).unwrap() {
                seen.push(s.raw.seq);
                assert_eq!(s.ticks, u64::from(n) * 48_000);
            }
        }
        let expect: Vec<u8> = (0u32..700).map(|n| (n % 256) as u8).collect();
        assert_eq!(seen, expect);
        assert!(d.repeats > 0);
        assert_eq!(d.lost, 0);
    }

    #[test]
    fn tick_counter_wraps() {
        let mut d = ImuDecoder::default();
        let near = u32::MAX - 20_000;
        d.feed(&encode_imu_report(&[
            raw(0, near - 96_000),
            raw(1, near - 48_000),
            raw(2, near),
        ]))
        .unwrap();
        let out = d
            .feed(&encode_imu_report(&[
                raw(3, near.wrapping_add(48_000)),
                raw(1, near - 48_000),
                raw(2, near),
            ]))
            .unwrap();
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].ticks, u64::from(near) + 48_000);
    }

    #[test]
    fn sample_conversion_round_trips_within_quantisation() {
        let range = ImuRange::from_modes(1, 1).unwrap();
        assert!((range.gyro - 8.726646).abs() < 1e-5);
        assert!((range.accel - 39.2266).abs() < 1e-4);
        let f = FactoryImu {
            acc_bias: DVec3::new(0.06, -0.03, 0.12),
            acc_scale: DVec3::new(0.998, 1.003, 0.997),
            gyro_bias: DVec3::new(0.004, -0.003, 0.001),
            gyro_scale: DVec3::ONE,
        };
        let s = ImuSample {
            time_ns: 0,
            gyro: DVec3::new(0.5, -1.25, 2.0),
            accel: DVec3::new(0.1, 9.8, -0.4),
        };
        let r = from_sample(&s, &range, &f, 1, 0);
        let back = to_sample(&TimedRawSample { raw: r, ticks: 0 }, &range, &f);
        assert!((back.gyro - s.gyro).length() < 2.0 * range.gyro / 32768.0);
        assert!((back.accel - s.accel).length() < 2.0 * range.accel / 32768.0);
        // Gravity on the sensor's third axis is +Y in OpenXR axes.
        assert!(r.accel[2].abs() > 7000 && r.accel[2] < 0, "{r:?}");
        assert_eq!(parse_range_report(&encode_range_report(&range)), Ok(range));
        assert!(parse_range_report(&[1, 5, 0]).is_err());
    }

    #[test]
    fn config_chunks() {
        let data: Vec<u8> = (0..200u8).collect();
        let chunks = encode_config_chunks(&data);
        assert_eq!(chunks.len(), 5);
        let joined: Vec<u8> = chunks
            .iter()
            .flat_map(|c| parse_config_chunk(c).unwrap().to_vec())
            .collect();
        assert_eq!(joined, data);
        assert_eq!(
            parse_config_chunk(&[0x11, 63]),
            Err(ReportError::ConfigChunk { len: 63 })
        );
        assert!(parse_config_chunk(&[0x11, 10, 1, 2]).is_err());
    }
}
