//! Kernel uevent datagrams: anything parses to a hotplug event or nothing.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = leasehold_drivers::hid::hotplug::parse_uevent(data);
});
