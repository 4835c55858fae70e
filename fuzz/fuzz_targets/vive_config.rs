//! The headset's config JSON: any text parses to a config or an error, never a panic,
//! and a parsed config's lens model can be sampled everywhere.
#![no_main]
use leasehold_drivers::vive::config::ViveConfig;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(c) = ViveConfig::parse(text) {
        for eye in 0..2 {
            for (u, v) in [(0.0, 0.0), (0.5, 0.5), (1.0, 0.3)] {
                let _ = c.lens.sample_uv(eye, u, v);
            }
        }
    }
});
