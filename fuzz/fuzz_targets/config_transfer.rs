//! The config transfer over feature reports: arbitrary chunk streams (bad lengths,
//! truncation, data that does not inflate) end in a config or an error.
#![no_main]
use leasehold_drivers::hid::ReplayTransport;
use leasehold_drivers::vive::config::read_config;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut t = ReplayTransport::new("fuzz").feature(&[0x10]);
    for chunk in data.chunks(64) {
        let mut r = chunk.to_vec();
        if let Some(b) = r.first_mut() {
            *b = 0x11;
        }
        t = t.feature(&r);
    }
    let _ = read_config(&mut t);
    let _ = leasehold_drivers::vive::config::inflate(data);
});
