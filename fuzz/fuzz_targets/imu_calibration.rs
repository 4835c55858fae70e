//! IMU calibration at rest: any sample stream (time running backwards, gaps, NaN and
//! infinite readings) splits into rest periods and estimates without a panic; every
//! sample of a rest period is at rest by the detector's own rules; a run names exactly
//! the sides it has not seen, and one that finishes gives values a headset could have.
//!
//! Input: three header bytes (minimum rest in 0.1 s, gyro tolerance in 2 mrad/s steps,
//! the run's goal: 0 for six sides, else a gyro-only still time in 0.1 s), then samples
//! of 14 bytes: i16 time step (100 µs units), 3 × i16 gyro (0.1 mrad/s), 3 × i16 accel
//! (mm/s²), little-endian; i16::MIN in a gyro or accel x stands for NaN or infinity.
#![no_main]
use glam::DVec3;
use leasehold_drivers::calibration::{
    Face, ImuCalibration, ImuGoal, ImuRun, ImuRunError, MAX_REST_GAP_NS, estimate_imu, rest_periods,
};
use leasehold_drivers::motion::{GRAVITY, ImuSample};
use libfuzzer_sys::fuzz_target;

fn samples(data: &[u8]) -> Vec<ImuSample> {
    let mut t = 0u64;
    data.chunks_exact(14)
        .map(|c| {
            let v = |i: usize| i16::from_le_bytes([c[2 * i], c[2 * i + 1]]);
            t = t.saturating_add_signed(i64::from(v(0)) * 100_000);
            let gyro = DVec3::new(f64::from(v(1)), f64::from(v(2)), f64::from(v(3))) * 1e-4;
            let accel = DVec3::new(f64::from(v(4)), f64::from(v(5)), f64::from(v(6))) * 1e-3;
            ImuSample {
                time_ns: t,
                gyro: if v(1) == i16::MIN {
                    DVec3::new(f64::NAN, gyro.y, gyro.z)
                } else {
                    gyro
                },
                accel: if v(4) == i16::MIN {
                    DVec3::new(f64::INFINITY, accel.y, accel.z)
                } else {
                    accel
                },
            }
        })
        .collect()
}

fuzz_target!(|data: &[u8]| {
    let Some((&[rest_ds, tol_step, goal_ds], rest)) = data.split_first_chunk::<3>() else {
        return;
    };
    let samples = samples(rest);
    let min_ns = u64::from(rest_ds) * 100_000_000;
    let gyro_tol = (f64::from(tol_step) + 1.0) * 0.002;

    let rests = rest_periods(&samples, min_ns, gyro_tol);
    let size = std::mem::size_of::<ImuSample>();
    let mut end = 0;
    for r in &rests {
        assert!(!r.is_empty());
        // Disjoint slices of the input, in order.
        let start = (r.as_ptr() as usize - samples.as_ptr() as usize) / size;
        assert!(start >= end && start + r.len() <= samples.len());
        end = start + r.len();
        for s in r.iter() {
            assert!((s.accel.length() - GRAVITY).abs() < 0.5, "{s:?}");
            assert!(s.gyro.is_finite(), "{s:?}");
        }
        for w in r.windows(2) {
            assert!(w[1].time_ns >= w[0].time_ns);
            assert!(w[1].time_ns - w[0].time_ns <= MAX_REST_GAP_NS);
        }
    }
    if let Some(e) = estimate_imu(&rests) {
        assert_eq!(
            e.rest_samples as usize,
            rests.iter().map(|r| r.len()).sum::<usize>()
        );
        assert!(e.gyro_bias.is_finite());
        let mut faces = e.faces.clone();
        faces.sort();
        faces.dedup();
        assert_eq!(faces.len(), e.faces.len(), "each side once");
        assert!(e.accel.is_none() || e.faces.len() == 6);
        assert_eq!(e.faces.len() + e.missing_faces().len(), 6);
    }

    let goal = match goal_ds {
        0 => ImuGoal::SixSides,
        n => ImuGoal::GyroOnly {
            still_ns: u64::from(n) * 100_000_000,
        },
    };
    let mut run = ImuRun::new(goal);
    for s in &samples {
        run.push(*s);
    }
    let p = run.progress();
    if goal == ImuGoal::SixSides {
        assert_eq!(p.seen.len() + p.missing.len(), 6);
        assert!(
            p.missing
                .iter()
                .all(|f| Face::ALL.contains(f) && !p.seen.contains(f))
        );
    } else {
        assert!(p.missing.is_empty());
    }
    match run.finish() {
        Ok(e) => {
            let (accel_bias, accel_scale) = match goal {
                ImuGoal::SixSides => e.accel.expect("six sides give the accelerometer"),
                ImuGoal::GyroOnly { .. } => e.accel.unwrap_or((DVec3::ZERO, DVec3::ONE)),
            };
            let cal = ImuCalibration {
                gyro_bias: e.gyro_bias.to_array(),
                accel_bias: accel_bias.to_array(),
                accel_scale: accel_scale.to_array(),
                samples: e.rest_samples,
            };
            assert!(cal.is_sane(), "{cal:?}");
        }
        Err(ImuRunError::MissingSides { seen, missing }) => {
            assert_eq!(goal, ImuGoal::SixSides);
            assert!(!p.complete);
            assert_eq!((seen, missing), (p.seen, p.missing));
        }
        Err(ImuRunError::NeverStill { samples: n }) => {
            assert_eq!(n, samples.len());
            assert!(!p.complete);
        }
        Err(ImuRunError::Implausible(cal)) => assert!(!cal.is_sane()),
    }
});
