//! EDID blobs from the kernel: any bytes parse or fail cleanly.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(e) = leasehold_drivers::edid::Edid::parse(data) {
        let _ = leasehold_drivers::profile::for_edid(&e);
    }
});
