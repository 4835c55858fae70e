//! Headset profiles (`manifests/headsets/*.toml`): any text parses to a profile or an
//! error, and a profile that parses answers what the compositor asks of it (its EDID
//! manufacturer, its preferred rate, whether a display is this headset).
#![no_main]
use leasehold_drivers::edid::Edid;
use leasehold_drivers::profile::HeadsetProfile;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(p) = HeadsetProfile::parse(text) else {
        return;
    };
    let m = p.manufacturer();
    assert_eq!(&m.0, p.edid.manufacturer.as_bytes());
    assert!(p.preferred_refresh_hz() > 0);
    assert!(p.display.width > 0 && p.display.height > 0);
    let edid = Edid {
        manufacturer: m,
        product: p.edid.products[0],
        serial: 0,
        year: 2016,
        version: (1, 4),
        name: None,
        serial_string: None,
        timings: Vec::new(),
        size_cm: (0, 0),
        extension_blocks: 0,
    };
    assert!(p.matches(&edid));
});
