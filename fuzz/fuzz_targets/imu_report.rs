//! IMU input reports: any byte string, fed repeatedly, never panics; every sample the
//! decoder yields converts to finite physical values.
#![no_main]
use leasehold_drivers::vive::protocol::{FactoryImu, ImuDecoder, ImuRange, to_sample};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let range = ImuRange::from_modes(1, 1).expect("valid modes");
    let mut d = ImuDecoder::default();
    for report in data.chunks(52).chain(data.chunks(17)) {
        if let Ok(samples) = d.feed(report) {
            for s in &samples {
                let x = to_sample(s, &range, &FactoryImu::IDENTITY);
                assert!(x.gyro.is_finite() && x.accel.is_finite());
            }
        }
    }
    let _ = leasehold_drivers::vive::protocol::parse_range_report(data);
    let _ = leasehold_drivers::vive::protocol::parse_config_chunk(data);
});
