//! The runtime through the real Khronos loader (Debian's libopenxr-loader1), driven by the
//! `openxr` crate as an application would.

use openxr as xr;
use std::path::PathBuf;

/// Writes the dev manifest (XR_RUNTIME_JSON, set by .cargo/config.toml) for the runtime
/// library built in this target directory.
fn manifest() -> PathBuf {
    let json = PathBuf::from(std::env::var("XR_RUNTIME_JSON").expect(
        "XR_RUNTIME_JSON is set by .cargo/config.toml; run through cargo (cargo xtask test)",
    ));
    let lib = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .parent()
        .unwrap()
        .join("debug/libleasehold_openxr.so");
    assert!(
        lib.exists(),
        "{} is missing: build the runtime first (cargo build -p leasehold-runtime)",
        lib.display()
    );
    let text = include_str!("../../manifests/openxr/leasehold_openxr.json.in")
        .replace("@LIBRARY_PATH@", &lib.display().to_string());
    // Tests run in parallel processes: write atomically, never a half-written file.
    let tmp = json.with_extension(format!("{}.tmp", std::process::id()));
    std::fs::write(&tmp, text).unwrap();
    std::fs::rename(&tmp, &json).unwrap();
    json
}

fn entry() -> xr::Entry {
    manifest();
    // SAFETY: loads the system's OpenXR loader (a well-behaved C library) by its
    // standard name; it stays loaded for the Entry's lifetime.
    unsafe { xr::Entry::load(&()) }.expect("the Khronos OpenXR loader (libopenxr-loader1)")
}

fn app_info() -> xr::ApplicationInfo<'static> {
    xr::ApplicationInfo {
        application_name: "leasehold-tests",
        application_version: 1,
        engine_name: "none",
        engine_version: 0,
        api_version: xr::Version::new(1, 0, 0),
    }
}

#[test]
fn instance_system_and_views_through_the_loader() {
    leasehold_tests::init_tracing();
    let entry = entry();
    let exts = entry.enumerate_extensions().expect("extensions");
    assert!(
        exts.khr_convert_timespec_time,
        "advertised extensions: {exts:?}"
    );
    assert!(
        !exts.khr_vulkan_enable2,
        "nothing advertised that is not implemented"
    );
    let mut enabled = xr::ExtensionSet::default();
    enabled.khr_convert_timespec_time = true;
    let instance = entry
        .create_instance(&app_info(), &enabled, &[], &())
        .expect("instance");
    let props = instance.properties().unwrap();
    assert_eq!(props.runtime_name, "Leasehold");
    let system = instance
        .system(xr::FormFactor::HEAD_MOUNTED_DISPLAY)
        .expect("an HMD system");
    let sp = instance.system_properties(system).unwrap();
    assert!(sp.system_name.contains("Leasehold"), "{}", sp.system_name);
    assert!(sp.tracking_properties.orientation_tracking);
    assert_eq!(
        instance
            .system(xr::FormFactor::HANDHELD_DISPLAY)
            .unwrap_err(),
        xr::sys::Result::ERROR_FORM_FACTOR_UNSUPPORTED
    );
    let configs = instance.enumerate_view_configurations(system).unwrap();
    assert_eq!(configs, vec![xr::ViewConfigurationType::PRIMARY_STEREO]);
    let views = instance
        .enumerate_view_configuration_views(system, xr::ViewConfigurationType::PRIMARY_STEREO)
        .unwrap();
    assert_eq!(views.len(), 2);
    assert!(views[0].recommended_image_rect_width >= 1080);
    let blend = instance
        .enumerate_environment_blend_modes(system, xr::ViewConfigurationType::PRIMARY_STEREO)
        .unwrap();
    assert_eq!(blend, vec![xr::EnvironmentBlendMode::OPAQUE]);
    assert_eq!(
        instance
            .enumerate_view_configuration_views(system, xr::ViewConfigurationType::PRIMARY_MONO)
            .unwrap_err(),
        xr::sys::Result::ERROR_VIEW_CONFIGURATION_TYPE_UNSUPPORTED
    );
    // Paths.
    let p = instance.string_to_path("/user/hand/left").unwrap();
    assert_eq!(instance.string_to_path("/user/hand/left").unwrap(), p);
    assert_eq!(instance.path_to_string(p).unwrap(), "/user/hand/left");
    assert_eq!(
        instance.string_to_path("/User/Hand").unwrap_err(),
        xr::sys::Result::ERROR_PATH_FORMAT_INVALID
    );
    // Time conversion (the enabled extension) round-trips.
    let now = instance.now().expect("xrConvertTimespecTimeToTimeKHR");
    assert!(now.as_nanos() > 0);
    // No events yet.
    let mut buf = xr::EventDataBuffer::new();
    assert!(instance.poll_event(&mut buf).unwrap().is_none());
}

#[test]
fn errors_the_spec_requires() {
    leasehold_tests::init_tracing();
    let entry = entry();
    // An extension that is not offered.
    let mut bad = xr::ExtensionSet::default();
    bad.khr_vulkan_enable2 = true;
    assert_eq!(
        entry.create_instance(&app_info(), &bad, &[], &()).err(),
        Some(xr::sys::Result::ERROR_EXTENSION_NOT_PRESENT)
    );
    // An API version from the future.
    let mut future = app_info();
    future.api_version = xr::Version::new(1, 7, 0);
    assert_eq!(
        entry
            .create_instance(&future, &xr::ExtensionSet::default(), &[], &())
            .err(),
        Some(xr::sys::Result::ERROR_API_VERSION_UNSUPPORTED)
    );
    // Extension functions are unavailable unless enabled.
    let instance = entry
        .create_instance(&app_info(), &xr::ExtensionSet::default(), &[], &())
        .unwrap();
    let raw = instance.as_raw();
    let gipa = instance.fp().get_instance_proc_addr;
    let mut f = None;
    // SAFETY: calling the runtime's xrGetInstanceProcAddr (through the loader) with a
    // live instance, a NUL-terminated name and a valid out slot.
    let r = unsafe { gipa(raw, c"xrConvertTimespecTimeToTimeKHR".as_ptr(), &mut f) };
    assert_eq!(r, xr::sys::Result::ERROR_FUNCTION_UNSUPPORTED);
    assert!(f.is_none());
    // The two-call idiom: a capacity that is too small.
    let system = instance
        .system(xr::FormFactor::HEAD_MOUNTED_DISPLAY)
        .unwrap();
    let mut count = 0u32;
    let mut one = [xr::sys::ViewConfigurationView {
        ty: xr::sys::ViewConfigurationView::TYPE,
        next: std::ptr::null_mut(),
        recommended_image_rect_width: 0,
        max_image_rect_width: 0,
        recommended_image_rect_height: 0,
        max_image_rect_height: 0,
        recommended_swapchain_sample_count: 0,
        max_swapchain_sample_count: 0,
    }];
    let enumerate = instance.fp().enumerate_view_configuration_views;
    // SAFETY: a valid instance and system, a count slot and one writable element.
    let r = unsafe {
        enumerate(
            raw,
            system,
            xr::ViewConfigurationType::PRIMARY_STEREO,
            1,
            &mut count,
            one.as_mut_ptr(),
        )
    };
    assert_eq!(r, xr::sys::Result::ERROR_SIZE_INSUFFICIENT);
    assert_eq!(count, 2);
    // A wrong structure type in the output array.
    one[0].ty = xr::sys::StructureType::SYSTEM_PROPERTIES;
    let mut two = [one[0], one[0]];
    // SAFETY: as above, with two elements.
    let r = unsafe {
        enumerate(
            raw,
            system,
            xr::ViewConfigurationType::PRIMARY_STEREO,
            2,
            &mut count,
            two.as_mut_ptr(),
        )
    };
    assert_eq!(r, xr::sys::Result::ERROR_VALIDATION_FAILURE);
    // (Stale handles are rejected by the runtime itself — see its unit tests; through
    // this loader a destroyed instance's handle never reaches the runtime.)
}

#[test]
fn a_hundred_instances_leak_nothing() {
    leasehold_tests::init_tracing();
    let entry = entry();
    let fds = || std::fs::read_dir("/proc/self/fd").unwrap().count();
    let threads = || std::fs::read_dir("/proc/self/task").unwrap().count();
    let rss_kb = || {
        std::fs::read_to_string("/proc/self/status")
            .unwrap()
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            .unwrap()
    };
    let cycle = |n: usize| {
        for _ in 0..n {
            let i = entry
                .create_instance(&app_info(), &xr::ExtensionSet::default(), &[], &())
                .unwrap();
            let s = i.system(xr::FormFactor::HEAD_MOUNTED_DISPLAY).unwrap();
            let _ = i.system_properties(s).unwrap();
            let _ = i.string_to_path("/user/head").unwrap();
        }
    };
    // Warm up: the loader parses its manifests, the allocator sizes its arenas.
    cycle(100);
    let (f0, t0, m0) = (fds(), threads(), rss_kb());
    cycle(100);
    let (f1, t1, m1) = (fds(), threads(), rss_kb());
    tracing::info!(
        fds = f1 as i64 - f0 as i64,
        threads = t1 as i64 - t0 as i64,
        rss_kb = m1 as i64 - m0 as i64,
        "after 100 instances"
    );
    assert_eq!(f1, f0, "file descriptors leaked");
    assert_eq!(t1, t0, "threads leaked");
    // Bound: 512 kB over 100 instances (about 5 kB each), after the warm-up.
    assert!(
        m1 < m0 + 512,
        "RSS grew by {} kB over 100 instances (bound 512 kB)",
        m1 - m0
    );
}
