//! The runtime through the real Khronos loader (Debian's libopenxr-loader1), driven by the
//! `openxr` crate as an application would.

use openxr as xr;
use std::path::PathBuf;

/// Writes the dev manifest (XR_RUNTIME_JSON, set by .cargo/config.toml) for the runtime
/// library built in this target directory.
pub fn manifest() -> PathBuf {
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
    let tmp = json.with_extension(format!(
        "{}.{:?}.tmp",
        std::process::id(),
        std::thread::current().id()
    ));
    std::fs::write(&tmp, text).unwrap();
    std::fs::rename(&tmp, &json).unwrap();
    json
}

pub fn entry() -> xr::Entry {
    manifest();
    // SAFETY: loads the system's OpenXR loader (a well-behaved C library) by its
    // standard name; it stays loaded for the Entry's lifetime.
    unsafe { xr::Entry::load(&()) }.expect("the Khronos OpenXR loader (libopenxr-loader1)")
}

pub fn app_info() -> xr::ApplicationInfo<'static> {
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
        exts.khr_vulkan_enable2 && exts.khr_vulkan_enable && exts.khr_composition_layer_depth,
        "the Vulkan bindings are advertised: {exts:?}"
    );
    assert!(
        !exts.khr_opengl_enable && !exts.ext_hand_tracking,
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
    bad.khr_opengl_enable = true;
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
    use leasehold_tests::proc_stats::{fds, rss_kb, threads};
    // Each cycle: an instance with a running headless session and one frame.
    let cycle = |n: usize| {
        for _ in 0..n {
            let i = headless_instance(&entry);
            let s = i.system(xr::FormFactor::HEAD_MOUNTED_DISPLAY).unwrap();
            let _ = i.system_properties(s).unwrap();
            let _ = i.string_to_path("/user/head").unwrap();
            // SAFETY: a headless session needs no graphics objects.
            let (session, mut waiter, mut stream) =
                unsafe { i.create_session::<xr::Headless>(s, &xr::headless::SessionCreateInfo {}) }
                    .unwrap();
            session
                .begin(xr::ViewConfigurationType::PRIMARY_STEREO)
                .unwrap();
            let fs = waiter.wait().unwrap();
            stream.begin().unwrap();
            stream
                .end(
                    fs.predicted_display_time,
                    xr::EnvironmentBlendMode::OPAQUE,
                    &[],
                )
                .unwrap();
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

fn headless_instance(entry: &xr::Entry) -> xr::Instance {
    let mut exts = xr::ExtensionSet::default();
    exts.mnd_headless = true;
    entry
        .create_instance(&app_info(), &exts, &[], &())
        .expect("instance with XR_MND_headless")
}

type HeadlessSession = (
    xr::Session<xr::Headless>,
    xr::FrameWaiter,
    xr::FrameStream<xr::Headless>,
);

fn headless_session(instance: &xr::Instance) -> HeadlessSession {
    let system = instance
        .system(xr::FormFactor::HEAD_MOUNTED_DISPLAY)
        .unwrap();
    // SAFETY: a headless session needs no graphics objects.
    unsafe { instance.create_session::<xr::Headless>(system, &xr::headless::SessionCreateInfo {}) }
        .expect("headless session")
}

/// Polls until no events are left; returns the session states seen.
fn states(instance: &xr::Instance) -> Vec<xr::SessionState> {
    let mut out = Vec::new();
    let mut buf = xr::EventDataBuffer::new();
    while let Some(ev) = instance.poll_event(&mut buf).unwrap() {
        if let xr::Event::SessionStateChanged(e) = ev {
            out.push(e.state());
        }
    }
    out
}

#[test]
fn headless_session_lifecycle_and_frame_pacing() {
    use xr::SessionState as S;
    leasehold_tests::init_tracing();
    let entry = entry();
    let instance = headless_instance(&entry);
    let (session, mut waiter, mut stream) = headless_session(&instance);
    assert_eq!(states(&instance), vec![S::IDLE, S::READY]);
    // Frame calls before the session runs.
    assert_eq!(
        waiter.wait().unwrap_err(),
        xr::sys::Result::ERROR_SESSION_NOT_RUNNING
    );
    assert_eq!(
        session.end().unwrap_err(),
        xr::sys::Result::ERROR_SESSION_NOT_RUNNING
    );
    session
        .begin(xr::ViewConfigurationType::PRIMARY_STEREO)
        .unwrap();
    assert_eq!(
        session
            .begin(xr::ViewConfigurationType::PRIMARY_STEREO)
            .unwrap_err(),
        xr::sys::Result::ERROR_SESSION_RUNNING
    );
    // Ordering: EndFrame without BeginFrame, BeginFrame without WaitFrame.
    assert_eq!(
        stream
            .end(
                xr::Time::from_nanos(1),
                xr::EnvironmentBlendMode::OPAQUE,
                &[]
            )
            .unwrap_err(),
        xr::sys::Result::ERROR_CALL_ORDER_INVALID
    );
    assert_eq!(
        stream.begin().unwrap_err(),
        xr::sys::Result::ERROR_CALL_ORDER_INVALID
    );
    let mut times = Vec::new();
    let mut period = 0;
    for _ in 0..30 {
        let fs = waiter.wait().unwrap();
        times.push(fs.predicted_display_time.as_nanos());
        period = fs.predicted_display_period.as_nanos();
        stream.begin().unwrap();
        stream
            .end(
                fs.predicted_display_time,
                xr::EnvironmentBlendMode::OPAQUE,
                &[],
            )
            .unwrap();
    }
    assert_eq!(
        states(&instance),
        vec![S::SYNCHRONIZED, S::VISIBLE, S::FOCUSED]
    );
    assert!(period > 0);
    for w in times.windows(2) {
        let d = w[1] - w[0];
        assert!(d > 0, "predicted display times strictly increase");
        assert_eq!(
            d % period,
            0,
            "and are whole display periods apart: {d} vs {period}"
        );
    }
    // A frame begun twice is discarded, not an error.
    let fs = waiter.wait().unwrap();
    stream.begin().unwrap();
    let _ = waiter.wait().unwrap();
    // XR_FRAME_DISCARDED is a success code: the open frame is dropped.
    stream
        .begin()
        .expect("begin after begin discards the open frame");
    assert_eq!(
        stream
            .end(
                xr::Time::from_nanos(0),
                xr::EnvironmentBlendMode::OPAQUE,
                &[]
            )
            .unwrap_err(),
        xr::sys::Result::ERROR_TIME_INVALID
    );
    assert_eq!(
        stream
            .end(
                fs.predicted_display_time,
                xr::EnvironmentBlendMode::ADDITIVE,
                &[]
            )
            .unwrap_err(),
        xr::sys::Result::ERROR_ENVIRONMENT_BLEND_MODE_UNSUPPORTED
    );
    stream
        .end(
            fs.predicted_display_time,
            xr::EnvironmentBlendMode::OPAQUE,
            &[],
        )
        .unwrap();
    // Exit: the states walk down, xrEndSession ends in EXITING.
    assert_eq!(
        session.end().unwrap_err(),
        xr::sys::Result::ERROR_SESSION_NOT_STOPPING
    );
    session.request_exit().unwrap();
    assert_eq!(
        states(&instance),
        vec![S::VISIBLE, S::SYNCHRONIZED, S::STOPPING]
    );
    session.end().unwrap();
    assert_eq!(states(&instance), vec![S::IDLE, S::EXITING]);
}

#[test]
fn sessions_need_a_graphics_binding_or_headless() {
    leasehold_tests::init_tracing();
    let entry = entry();
    let instance = entry
        .create_instance(&app_info(), &xr::ExtensionSet::default(), &[], &())
        .unwrap();
    let system = instance
        .system(xr::FormFactor::HEAD_MOUNTED_DISPLAY)
        .unwrap();
    // SAFETY: as above; the runtime must refuse it (XR_MND_headless is not enabled).
    let r = unsafe {
        instance.create_session::<xr::Headless>(system, &xr::headless::SessionCreateInfo {})
    };
    assert_eq!(
        r.err(),
        Some(xr::sys::Result::ERROR_GRAPHICS_DEVICE_INVALID)
    );
}

#[test]
fn reference_spaces_and_views() {
    leasehold_tests::init_tracing();
    let entry = entry();
    let instance = headless_instance(&entry);
    let (session, mut waiter, mut stream) = headless_session(&instance);
    let kinds = session.enumerate_reference_spaces().unwrap();
    assert!(kinds.contains(&xr::ReferenceSpaceType::VIEW));
    assert!(kinds.contains(&xr::ReferenceSpaceType::LOCAL));
    assert!(kinds.contains(&xr::ReferenceSpaceType::STAGE));
    let local = session
        .create_reference_space(xr::ReferenceSpaceType::LOCAL, xr::Posef::IDENTITY)
        .unwrap();
    let view = session
        .create_reference_space(xr::ReferenceSpaceType::VIEW, xr::Posef::IDENTITY)
        .unwrap();
    let stage = session
        .create_reference_space(xr::ReferenceSpaceType::STAGE, xr::Posef::IDENTITY)
        .unwrap();
    let bad = xr::Posef {
        orientation: xr::Quaternionf {
            x: 0.0,
            y: 0.0,
            z: 0.0,
            w: 0.0,
        },
        position: xr::Vector3f::default(),
    };
    assert_eq!(
        session
            .create_reference_space(xr::ReferenceSpaceType::LOCAL, bad)
            .err(),
        Some(xr::sys::Result::ERROR_POSE_INVALID)
    );
    assert_eq!(
        session
            .create_reference_space(xr::ReferenceSpaceType::UNBOUNDED_MSFT, xr::Posef::IDENTITY)
            .err(),
        Some(xr::sys::Result::ERROR_REFERENCE_SPACE_UNSUPPORTED)
    );
    session
        .begin(xr::ViewConfigurationType::PRIMARY_STEREO)
        .unwrap();
    let fs = waiter.wait().unwrap();
    let t = fs.predicted_display_time;
    // STAGE is the floor under LOCAL: eye height below.
    let s = stage.locate(&local, t).unwrap();
    assert!(
        (s.pose.position.y + 1.6).abs() < 1e-4,
        "{:?}",
        s.pose.position
    );
    assert!(s.location_flags.contains(
        xr::SpaceLocationFlags::POSITION_VALID | xr::SpaceLocationFlags::ORIENTATION_VALID
    ));
    // VIEW in LOCAL: the head, orientation tracked, unit quaternion.
    let v = view.locate(&local, t).unwrap();
    let q = v.pose.orientation;
    assert!(((q.x * q.x + q.y * q.y + q.z * q.z + q.w * q.w) - 1.0).abs() < 1e-4);
    assert!(
        v.location_flags
            .contains(xr::SpaceLocationFlags::ORIENTATION_TRACKED)
    );
    // Two views, ipd apart, with the headset's field of view.
    let (state, views) = session
        .locate_views(xr::ViewConfigurationType::PRIMARY_STEREO, t, &local)
        .unwrap();
    assert!(state.contains(xr::ViewStateFlags::ORIENTATION_VALID));
    assert_eq!(views.len(), 2);
    let d = |a: xr::Vector3f, b: xr::Vector3f| {
        ((a.x - b.x).powi(2) + (a.y - b.y).powi(2) + (a.z - b.z).powi(2)).sqrt()
    };
    let ipd = d(views[0].pose.position, views[1].pose.position);
    assert!((ipd - 0.0623).abs() < 1e-3, "ipd {ipd}");
    assert!(views[0].fov.angle_left < 0.0 && views[0].fov.angle_right > 0.0);
    assert_eq!(
        view.locate(&local, xr::Time::from_nanos(0)).err(),
        Some(xr::sys::Result::ERROR_TIME_INVALID)
    );
    stream.begin().unwrap();
    stream
        .end(t, xr::EnvironmentBlendMode::OPAQUE, &[])
        .unwrap();
}

#[test]
fn display_refresh_rates_come_from_the_headset() {
    leasehold_tests::init_tracing();
    let entry = entry();
    let mut exts = xr::ExtensionSet::default();
    exts.mnd_headless = true;
    exts.fb_display_refresh_rate = true;
    let instance = entry
        .create_instance(&app_info(), &exts, &[], &())
        .expect("instance with XR_FB_display_refresh_rate");
    let (session, _waiter, _stream) = headless_session(&instance);
    let fns = instance
        .exts()
        .fb_display_refresh_rate
        .expect("the extension's functions");
    let raw = session.as_raw();
    let mut count = 0u32;
    let mut rates = [0f32; 8];
    let mut current = 0f32;
    // SAFETY: (all calls below) a live session, valid out pointers and capacities.
    unsafe {
        assert_eq!(
            (fns.enumerate_display_refresh_rates)(raw, 8, &mut count, rates.as_mut_ptr()),
            xr::sys::Result::SUCCESS
        );
        assert_eq!(
            (fns.get_display_refresh_rate)(raw, &mut current),
            xr::sys::Result::SUCCESS
        );
        // The simulated Vive runs at 90 Hz only.
        assert_eq!(&rates[..count as usize], &[90.0]);
        assert_eq!(current, 90.0);
        assert_eq!(
            (fns.request_display_refresh_rate)(raw, 144.0),
            xr::sys::Result::ERROR_DISPLAY_REFRESH_RATE_UNSUPPORTED_FB
        );
        assert_eq!(
            (fns.request_display_refresh_rate)(raw, 90.0),
            xr::sys::Result::SUCCESS
        );
        assert_eq!(
            (fns.request_display_refresh_rate)(raw, 0.0),
            xr::sys::Result::SUCCESS
        );
    }
}

static HEARD: std::sync::Mutex<Vec<(u64, String)>> = std::sync::Mutex::new(Vec::new());

unsafe extern "system" fn heard(
    severity: xr::sys::DebugUtilsMessageSeverityFlagsEXT,
    _types: xr::sys::DebugUtilsMessageTypeFlagsEXT,
    data: *const xr::sys::DebugUtilsMessengerCallbackDataEXT,
    _user: *mut std::ffi::c_void,
) -> xr::sys::Bool32 {
    // SAFETY: the runtime passes valid callback data with a NUL-terminated message.
    let msg = unsafe { std::ffi::CStr::from_ptr((*data).message) }
        .to_string_lossy()
        .into_owned();
    HEARD.lock().unwrap().push((severity.into_raw(), msg));
    xr::sys::FALSE
}

/// A messenger on `instance` hearing info, warnings and errors of the general and
/// validation kinds.
pub fn messenger(
    instance: &xr::Instance,
    callback: xr::sys::pfn::DebugUtilsMessengerCallbackEXT,
) -> xr::sys::DebugUtilsMessengerEXT {
    let du = instance.exts().ext_debug_utils.expect("XR_EXT_debug_utils");
    let info = xr::sys::DebugUtilsMessengerCreateInfoEXT {
        ty: xr::sys::DebugUtilsMessengerCreateInfoEXT::TYPE,
        next: std::ptr::null(),
        message_severities: xr::sys::DebugUtilsMessageSeverityFlagsEXT::WARNING
            | xr::sys::DebugUtilsMessageSeverityFlagsEXT::ERROR
            | xr::sys::DebugUtilsMessageSeverityFlagsEXT::INFO,
        message_types: xr::sys::DebugUtilsMessageTypeFlagsEXT::GENERAL
            | xr::sys::DebugUtilsMessageTypeFlagsEXT::VALIDATION,
        user_callback: Some(callback),
        user_data: std::ptr::null_mut(),
    };
    let mut m = <xr::sys::DebugUtilsMessengerEXT as xr::sys::Handle>::NULL;
    // SAFETY: valid structures and output pointer.
    let r = unsafe { (du.create_debug_utils_messenger)(instance.as_raw(), &info, &mut m) };
    assert_eq!(r, xr::sys::Result::SUCCESS);
    m
}

#[test]
fn debug_utils_messengers_hear_submissions_and_runtime_warnings() {
    use xr::sys::Result as R;
    leasehold_tests::init_tracing();
    let entry = entry();
    let mut exts = xr::ExtensionSet::default();
    exts.ext_debug_utils = true;
    exts.mnd_headless = true;
    let instance = entry
        .create_instance(&app_info(), &exts, &[], &())
        .expect("instance with XR_EXT_debug_utils");
    let du = instance
        .exts()
        .ext_debug_utils
        .expect("debug utils functions");
    let m = messenger(&instance, heard);
    // The app's own message comes back.
    let data = xr::sys::DebugUtilsMessengerCallbackDataEXT {
        ty: xr::sys::DebugUtilsMessengerCallbackDataEXT::TYPE,
        next: std::ptr::null(),
        message_id: c"test".as_ptr(),
        function_name: c"test".as_ptr(),
        message: c"hello from the app".as_ptr(),
        object_count: 0,
        objects: std::ptr::null_mut(),
        session_label_count: 0,
        session_labels: std::ptr::null_mut(),
    };
    // SAFETY: valid callback data.
    let r = unsafe {
        (du.submit_debug_utils_message)(
            instance.as_raw(),
            xr::sys::DebugUtilsMessageSeverityFlagsEXT::INFO,
            xr::sys::DebugUtilsMessageTypeFlagsEXT::GENERAL,
            &data,
        )
    };
    assert_eq!(r, R::SUCCESS);
    // A runtime warning reaches it too: a binding no profile has.
    let set = instance.create_action_set("set", "Set", 0).unwrap();
    let action = set.create_action::<bool>("select", "Select", &[]).unwrap();
    let bad = instance
        .string_to_path("/user/hand/left/input/trigger/value")
        .unwrap();
    let r = instance.suggest_interaction_profile_bindings(
        instance
            .string_to_path("/interaction_profiles/khr/simple_controller")
            .unwrap(),
        &[xr::Binding::new(&action, bad)],
    );
    assert_eq!(r.err(), Some(R::ERROR_PATH_UNSUPPORTED));
    let heard_now = HEARD.lock().unwrap().clone();
    assert!(
        heard_now.iter().any(|(_, m)| m == "hello from the app"),
        "{heard_now:?}"
    );
    assert!(
        heard_now.iter().any(|(s, m)| *s
            == xr::sys::DebugUtilsMessageSeverityFlagsEXT::WARNING.into_raw()
            && m.contains("unsupported binding")),
        "{heard_now:?}"
    );
    // Session labels: begin, insert, end.
    let (session, _, _) = headless_session(&instance);
    let label = |name: &std::ffi::CStr| xr::sys::DebugUtilsLabelEXT {
        ty: xr::sys::DebugUtilsLabelEXT::TYPE,
        next: std::ptr::null(),
        label_name: name.as_ptr(),
    };
    // SAFETY: valid session and label structures.
    unsafe {
        let s = session.as_raw();
        assert_eq!(
            (du.session_begin_debug_utils_label_region)(s, &label(c"frame")),
            R::SUCCESS
        );
        assert_eq!(
            (du.session_insert_debug_utils_label)(s, &label(c"mark")),
            R::SUCCESS
        );
        assert_eq!((du.session_end_debug_utils_label_region)(s), R::SUCCESS);
        // Ending with no region open does nothing (as the Khronos loader does it).
        assert_eq!((du.session_end_debug_utils_label_region)(s), R::SUCCESS);
        // (A second destroy is left out: the loader keeps its own messenger table and
        // dereferences the stale handle before the runtime sees it.)
        assert_eq!((du.destroy_debug_utils_messenger)(m), R::SUCCESS);
    }
}

#[test]
fn action_names_are_checked_and_unique() {
    use xr::sys::Result as R;
    leasehold_tests::init_tracing();
    let entry = entry();
    let instance = headless_instance(&entry);
    let set = instance
        .create_action_set("gameplay", "Gameplay", 0)
        .unwrap();
    let err = |r: xr::Result<xr::ActionSet>| r.err();
    assert_eq!(
        err(instance.create_action_set("gameplay", "Other", 0)),
        Some(R::ERROR_NAME_DUPLICATED)
    );
    assert_eq!(
        err(instance.create_action_set("other", "Gameplay", 0)),
        Some(R::ERROR_LOCALIZED_NAME_DUPLICATED)
    );
    assert_eq!(
        err(instance.create_action_set("Bad Name", "Bad", 0)),
        Some(R::ERROR_PATH_FORMAT_INVALID)
    );
    assert_eq!(
        err(instance.create_action_set("", "Empty", 0)),
        Some(R::ERROR_NAME_INVALID)
    );
    let _jump = set.create_action::<bool>("jump", "Jump", &[]).unwrap();
    assert_eq!(
        set.create_action::<bool>("jump", "Hop", &[]).err(),
        Some(R::ERROR_NAME_DUPLICATED)
    );
    assert_eq!(
        set.create_action::<f32>("hop", "Jump", &[]).err(),
        Some(R::ERROR_LOCALIZED_NAME_DUPLICATED)
    );
    // The same names in another set are fine.
    let other = instance.create_action_set("menu", "Menu", 0).unwrap();
    let _jump2 = other.create_action::<bool>("jump", "Jump", &[]).unwrap();
    // A subaction path that is not a top-level user path.
    let bad = instance.string_to_path("/user/hand/left/input").unwrap();
    assert_eq!(
        set.create_action::<bool>("grab", "Grab", &[bad]).err(),
        Some(R::ERROR_PATH_UNSUPPORTED)
    );
}

/// Debian's OpenXR core validation layer (openxr-layer-corevalidation).
const CORE_VALIDATION: &str = "XR_APILAYER_LUNARG_core_validation";

#[test]
fn an_app_that_names_an_api_layer_runs_under_it() {
    use xr::SessionState as S;
    leasehold_tests::init_tracing();
    let dir = std::env::temp_dir().join(format!("leasehold-layer-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let report = dir.join("core-validation.txt");
    // SAFETY: nextest runs each test in a process of its own, so no other thread reads
    // the environment meanwhile; the layer reads these when the instance is created.
    unsafe {
        std::env::set_var("XR_CORE_VALIDATION_EXPORT_TYPE", "text");
        std::env::set_var("XR_CORE_VALIDATION_FILE_NAME", &report);
    }
    let entry = entry();
    let layers = entry.enumerate_layers().unwrap();
    assert!(
        layers.iter().any(|l| l.layer_name == CORE_VALIDATION),
        "the core validation layer is installed (cargo xtask setup): {layers:?}"
    );
    let mut exts = xr::ExtensionSet::default();
    exts.mnd_headless = true;
    let instance = entry
        .create_instance(&app_info(), &exts, &[CORE_VALIDATION], &())
        .expect("an instance that names an API layer in its create info");
    // A whole session under the layer: lifecycle, frames, exit.
    let (session, mut waiter, mut stream) = headless_session(&instance);
    session
        .begin(xr::ViewConfigurationType::PRIMARY_STEREO)
        .unwrap();
    for _ in 0..5 {
        let state = waiter.wait().unwrap();
        stream.begin().unwrap();
        stream
            .end(
                state.predicted_display_time,
                xr::EnvironmentBlendMode::OPAQUE,
                &[],
            )
            .unwrap();
    }
    session.request_exit().unwrap();
    session.end().unwrap();
    assert_eq!(
        states(&instance),
        vec![
            S::IDLE,
            S::READY,
            S::SYNCHRONIZED,
            S::VISIBLE,
            S::FOCUSED,
            S::VISIBLE,
            S::SYNCHRONIZED,
            S::STOPPING,
            S::IDLE,
            S::EXITING
        ]
    );
    let clean = std::fs::read_to_string(&report).unwrap_or_default();
    assert!(
        clean.trim().is_empty(),
        "the core validation layer reported:\n{clean}"
    );
    // The layer is really in the call path: a call it must flag is reported.
    let get_system = instance.fp().get_system;
    let bad = xr::sys::SystemGetInfo {
        ty: xr::sys::StructureType::SESSION_BEGIN_INFO,
        next: std::ptr::null(),
        form_factor: xr::FormFactor::HEAD_MOUNTED_DISPLAY,
    };
    let mut id = xr::sys::SystemId::NULL;
    // SAFETY: a live instance, a readable (wrongly typed) structure and a writable id.
    let r = unsafe { get_system(instance.as_raw(), &bad, &mut id) };
    assert_eq!(r, xr::sys::Result::ERROR_VALIDATION_FAILURE);
    drop((stream, waiter, session, instance));
    let flagged = std::fs::read_to_string(&report).unwrap_or_default();
    assert!(
        flagged.contains("VUID-XrSystemGetInfo-type-type"),
        "the layer saw the wrongly typed structure: {flagged:?}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
