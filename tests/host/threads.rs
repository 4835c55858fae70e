//! The runtime under calls from several threads at once, as the OpenXR specification
//! allows them: xrWaitFrame on one thread while another begins and ends frames,
//! instances created and destroyed (with running sessions) while others run frames, and
//! a debug messenger whose callback calls back into the runtime. Every call returns, the
//! frame calls keep their order, and nothing is left behind.

use super::openxr::app_info;
use leasehold_tests::proc_stats;
use openxr as xr;
use openxr::sys::Handle as _;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock, mpsc};
use std::time::{Duration, Instant};

/// The instance and xrStringToPath the messenger's callback calls back into.
static CALL_BACK_INTO: OnceLock<(u64, xr::sys::pfn::StringToPath)> = OnceLock::new();
static CALLBACKS: AtomicUsize = AtomicUsize::new(0);
static CALLS_FROM_CALLBACK: AtomicUsize = AtomicUsize::new(0);

unsafe extern "system" fn calls_back_in(
    _severity: xr::sys::DebugUtilsMessageSeverityFlagsEXT,
    _types: xr::sys::DebugUtilsMessageTypeFlagsEXT,
    _data: *const xr::sys::DebugUtilsMessengerCallbackDataEXT,
    _user: *mut std::ffi::c_void,
) -> xr::sys::Bool32 {
    CALLBACKS.fetch_add(1, Ordering::SeqCst);
    if let Some(&(instance, string_to_path)) = CALL_BACK_INTO.get() {
        let mut path = xr::sys::Path::NULL;
        // SAFETY: a live instance, a NUL-terminated string and a writable path.
        let r = unsafe {
            string_to_path(
                xr::sys::Instance::from_raw(instance),
                c"/user/hand/left".as_ptr(),
                &mut path,
            )
        };
        if r == xr::sys::Result::SUCCESS {
            CALLS_FROM_CALLBACK.fetch_add(1, Ordering::SeqCst);
        }
    }
    xr::sys::FALSE
}

/// The runtime loaded as the loader loads it (negotiation, then its
/// xrGetInstanceProcAddr), without the loader in between: Debian's loader (1.0.20) allows
/// one instance at a time, and this test needs several.
fn direct_entry() -> xr::Entry {
    let lib = std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .parent()
        .unwrap()
        .join("debug/libleasehold_openxr.so");
    // SAFETY: the runtime library built in this target directory; it stays loaded for the
    // rest of the process (leaked), as the loader keeps it.
    let lib: &'static libloading::Library = Box::leak(Box::new(
        unsafe { libloading::Library::new(&lib) }.unwrap_or_else(|e| {
            panic!("{}: {e} (cargo build -p leasehold-runtime)", lib.display())
        }),
    ));
    type Negotiate = unsafe extern "system" fn(
        *const xr::sys::NegotiateLoaderInfo,
        *mut xr::sys::NegotiateRuntimeRequest,
    ) -> xr::sys::Result;
    // SAFETY: the runtime's one exported symbol, with the loader interface's signature.
    let negotiate = unsafe { lib.get::<Negotiate>(b"xrNegotiateLoaderRuntimeInterface") }
        .expect("xrNegotiateLoaderRuntimeInterface");
    let info = xr::sys::NegotiateLoaderInfo {
        struct_type: xr::sys::LoaderInterfaceStructs::LOADER_INFO,
        struct_version: xr::sys::LOADER_INFO_STRUCT_VERSION as u32,
        struct_size: std::mem::size_of::<xr::sys::NegotiateLoaderInfo>(),
        min_interface_version: 1,
        max_interface_version: xr::sys::CURRENT_LOADER_RUNTIME_VERSION as u32,
        min_api_version: xr::Version::new(1, 0, 0),
        max_api_version: xr::Version::new(1, 0x3ff, 0xfff),
    };
    let mut req = xr::sys::NegotiateRuntimeRequest {
        struct_type: xr::sys::LoaderInterfaceStructs::RUNTIME_REQUEST,
        struct_version: xr::sys::RUNTIME_INFO_STRUCT_VERSION as u32,
        struct_size: std::mem::size_of::<xr::sys::NegotiateRuntimeRequest>(),
        runtime_interface_version: 0,
        runtime_api_version: xr::Version::new(0, 0, 0),
        get_instance_proc_addr: None,
    };
    // SAFETY: valid negotiation structures.
    let negotiated = unsafe { negotiate(&info, &mut req) };
    assert_eq!(negotiated, xr::sys::Result::SUCCESS);
    let gipa = req.get_instance_proc_addr.expect("xrGetInstanceProcAddr");
    // SAFETY: the runtime's xrGetInstanceProcAddr, which hands out its entry points.
    unsafe { xr::Entry::from_get_instance_proc_addr(gipa, &()) }
        .expect("the runtime's entry points")
}

fn headless(entry: &xr::Entry, debug_utils: bool) -> xr::Instance {
    let mut exts = xr::ExtensionSet::default();
    exts.mnd_headless = true;
    exts.ext_debug_utils = debug_utils;
    entry
        .create_instance(&app_info(), &exts, &[], &())
        .expect("a headless instance")
}

fn session(
    instance: &xr::Instance,
) -> (
    xr::Session<xr::Headless>,
    xr::FrameWaiter,
    xr::FrameStream<xr::Headless>,
) {
    let system = instance
        .system(xr::FormFactor::HEAD_MOUNTED_DISPLAY)
        .unwrap();
    // SAFETY: a headless session needs no graphics objects.
    let s = unsafe {
        instance.create_session::<xr::Headless>(system, &xr::headless::SessionCreateInfo {})
    }
    .expect("a headless session");
    s.0.begin(xr::ViewConfigurationType::PRIMARY_STEREO)
        .unwrap();
    s
}

/// Runs `f` on a thread of its own, named for the report if it does not return.
fn spawn(name: &str, f: impl FnOnce() + Send + 'static) -> (String, std::thread::JoinHandle<()>) {
    let h = std::thread::Builder::new()
        .name(name.into())
        .spawn(f)
        .unwrap();
    (name.to_string(), h)
}

#[test]
fn calls_from_several_threads_all_return_and_nothing_leaks() {
    // No `init_tracing` here: the runtime must not take the process's global subscriber
    // (checked at the end).
    let entry = direct_entry();
    // Warm-up (the loader, the runtime's one-time state), then the baseline.
    drop(session(&headless(&entry, true)));
    let (fds0, threads0) = (proc_stats::fds(), proc_stats::threads());

    // The messenger: on an instance of its own; its callback calls xrStringToPath.
    let talker = headless(&entry, true);
    CALL_BACK_INTO
        .set((talker.as_raw().into_raw(), talker.fp().string_to_path))
        .ok();
    let du = talker.exts().ext_debug_utils.unwrap();
    let messenger = super::openxr::messenger(&talker, calls_back_in);

    let deadline = Instant::now() + Duration::from_secs(180);
    let mut threads = Vec::new();

    // 1. One session, xrWaitFrame on one thread, xrBeginFrame/xrEndFrame on another.
    let instance = Arc::new(headless(&entry, false));
    let (s, mut waiter, mut stream) = session(&instance);
    let (tx, rx) = mpsc::sync_channel::<xr::FrameState>(1);
    const FRAMES: usize = 200;
    let ended = Arc::new(AtomicUsize::new(0));
    let last_display = Arc::new(AtomicU64::new(0));
    threads.push(spawn("xrWaitFrame", move || {
        for _ in 0..FRAMES {
            let state = waiter.wait().expect("xrWaitFrame");
            if tx.send(state).is_err() {
                break;
            }
        }
    }));
    {
        let ended = ended.clone();
        let last_display = last_display.clone();
        threads.push(spawn("xrBeginFrame+xrEndFrame", move || {
            for state in rx {
                stream.begin().expect("xrBeginFrame");
                let t = state.predicted_display_time.as_nanos() as u64;
                let before = last_display.swap(t, Ordering::SeqCst);
                assert!(t > before, "display times increase: {before} then {t}");
                stream
                    .end(
                        state.predicted_display_time,
                        xr::EnvironmentBlendMode::OPAQUE,
                        &[],
                    )
                    .expect("xrEndFrame");
                ended.fetch_add(1, Ordering::SeqCst);
            }
            drop(stream);
        }));
    }

    // 2. Instances with running sessions created and destroyed meanwhile, frames and all.
    for t in 0..2 {
        let entry = entry.clone();
        threads.push(spawn(&format!("instance churn {t}"), move || {
            for _ in 0..15 {
                let i = headless(&entry, false);
                let (_s, mut w, mut f) = session(&i);
                for _ in 0..3 {
                    let st = w.wait().expect("xrWaitFrame");
                    f.begin().expect("xrBeginFrame");
                    f.end(
                        st.predicted_display_time,
                        xr::EnvironmentBlendMode::OPAQUE,
                        &[],
                    )
                    .expect("xrEndFrame");
                }
                // The instance goes first, with its session running: one drop.
                // SAFETY: the raw instance is destroyed once; the wrappers are leaked
                // after it rather than destroying their handles again.
                unsafe {
                    assert_eq!(
                        (i.fp().destroy_instance)(i.as_raw()),
                        xr::sys::Result::SUCCESS
                    );
                }
                std::mem::forget((_s, w, f, i));
            }
        }));
    }

    // 3. Runtime warnings for the messenger, whose callback calls back in.
    {
        let talker_raw = talker.as_raw();
        let fp = talker.fp().suggest_interaction_profile_bindings;
        let set = talker.create_action_set("set", "Set", 0).unwrap();
        let action = set.create_action::<bool>("select", "Select", &[]).unwrap();
        let profile = talker
            .string_to_path("/interaction_profiles/khr/simple_controller")
            .unwrap();
        let bad = talker
            .string_to_path("/user/hand/left/input/trigger/value")
            .unwrap();
        let action_raw = action.as_raw().into_raw();
        threads.push(spawn("warnings", move || {
            let binding = xr::sys::ActionSuggestedBinding {
                action: xr::sys::Action::from_raw(action_raw),
                binding: bad,
            };
            let info = xr::sys::InteractionProfileSuggestedBinding {
                ty: xr::sys::InteractionProfileSuggestedBinding::TYPE,
                next: std::ptr::null(),
                interaction_profile: profile,
                count_suggested_bindings: 1,
                suggested_bindings: &binding,
            };
            for _ in 0..50 {
                // SAFETY: a live instance and action, a valid structure.
                let r = unsafe { fp(talker_raw, &info) };
                assert_eq!(r, xr::sys::Result::ERROR_PATH_UNSUPPORTED);
            }
            drop((action, set));
        }));
    }

    // Every thread returns (a deadlock would stop one of them for good).
    for (name, h) in threads {
        while !h.is_finished() {
            assert!(
                Instant::now() < deadline,
                "`{name}` did not return: a call into the runtime blocks"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        h.join()
            .unwrap_or_else(|_| panic!("`{name}` failed (its message is above)"));
    }
    assert_eq!(
        ended.load(Ordering::SeqCst),
        FRAMES,
        "every waited frame ended"
    );
    assert!(
        CALLBACKS.load(Ordering::SeqCst) >= 50,
        "the messenger heard the warnings"
    );
    assert_eq!(
        CALLS_FROM_CALLBACK.load(Ordering::SeqCst),
        CALLBACKS.load(Ordering::SeqCst),
        "every call from inside the callback succeeded"
    );

    s.request_exit().unwrap();
    drop(s);
    drop(instance);
    // SAFETY: the messenger made above, destroyed once.
    unsafe { (du.destroy_debug_utils_messenger)(messenger) };
    drop(talker);
    std::thread::sleep(Duration::from_millis(200));
    let (fds1, threads1) = (proc_stats::fds(), proc_stats::threads());
    assert!(
        fds1 <= fds0,
        "file descriptors: {fds0} before, {fds1} after"
    );
    assert!(
        threads1 <= threads0,
        "threads: {threads0} before, {threads1} after"
    );
    // The runtime took no process-wide logging state: the host can still install its own.
    assert!(
        tracing_subscriber::fmt().try_init().is_ok(),
        "the runtime installed a global tracing subscriber in the host process"
    );
}
