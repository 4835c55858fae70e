//! The runtime's C ABI as an application could drive it: random sequences of OpenXR calls
//! (instances, headless sessions and their frame loop, spaces, paths, actions, debug
//! messengers, events) with random handles (live, destroyed, made up, of another type),
//! random structure types, null pointers and random strings, through the entry points the
//! runtime's negotiated xrGetInstanceProcAddr hands out. No call may panic (the runtime
//! turns a panic into XR_ERROR_RUNTIME_FAILURE, which no call here may return), crash or
//! hang, and every object is gone when the instances are.
#![no_main]
use leasehold_openxr::abi;
use libfuzzer_sys::fuzz_target;
use openxr_sys as xr;
use openxr_sys::Handle as _;
use std::ffi::{CStr, CString, c_char};
use std::sync::OnceLock;

type Gipa = xr::pfn::GetInstanceProcAddr;

fn gipa() -> Gipa {
    static G: OnceLock<usize> = OnceLock::new();
    let f = *G.get_or_init(|| {
        // SAFETY: set once before any runtime call: the runtime logs nothing while fuzzed.
        unsafe { std::env::set_var("LEASEHOLD_LOG", "off") };
        let info = xr::NegotiateLoaderInfo {
            struct_type: xr::LoaderInterfaceStructs::LOADER_INFO,
            struct_version: xr::LOADER_INFO_STRUCT_VERSION as u32,
            struct_size: std::mem::size_of::<xr::NegotiateLoaderInfo>(),
            min_interface_version: 1,
            max_interface_version: xr::CURRENT_LOADER_RUNTIME_VERSION as u32,
            min_api_version: xr::Version::new(1, 0, 0),
            max_api_version: xr::Version::new(1, 1, 0),
        };
        let mut req = xr::NegotiateRuntimeRequest {
            struct_type: xr::LoaderInterfaceStructs::RUNTIME_REQUEST,
            struct_version: xr::RUNTIME_INFO_STRUCT_VERSION as u32,
            struct_size: std::mem::size_of::<xr::NegotiateRuntimeRequest>(),
            runtime_interface_version: 0,
            runtime_api_version: xr::Version::new(0, 0, 0),
            get_instance_proc_addr: None,
        };
        // SAFETY: valid negotiation structures.
        let r = unsafe { abi::xrNegotiateLoaderRuntimeInterface(&info, &mut req) };
        assert_eq!(r, xr::Result::SUCCESS);
        req.get_instance_proc_addr.unwrap() as usize
    });
    // SAFETY: the pointer stored above is the runtime's xrGetInstanceProcAddr.
    unsafe { std::mem::transmute::<usize, Gipa>(f) }
}

/// An entry point by name (`None` where the runtime does not hand it out).
fn proc<T>(instance: xr::Instance, name: &CStr) -> Option<T> {
    let mut f = None;
    // SAFETY: a NUL-terminated name and a writable slot.
    let r = unsafe { gipa()(instance, name.as_ptr(), &mut f) };
    check(r);
    // SAFETY: every OpenXR function pointer has one representation; `T` is the PFN
    // type of `name`.
    f.filter(|_| r == xr::Result::SUCCESS)
        .map(|f| unsafe { std::mem::transmute_copy::<xr::pfn::VoidFunction, T>(&f) })
}

fn check(r: xr::Result) {
    assert_ne!(
        r,
        xr::Result::ERROR_RUNTIME_FAILURE,
        "an entry point failed internally (a panic in the runtime)"
    );
}

/// The fuzz input, read as a program.
struct Bytes<'a>(&'a [u8]);

impl Bytes<'_> {
    fn u8(&mut self) -> u8 {
        let (b, rest) = self.0.split_first().map_or((0, &[][..]), |(b, r)| (*b, r));
        self.0 = rest;
        b
    }
    fn u32(&mut self) -> u32 {
        u32::from_le_bytes([self.u8(), self.u8(), self.u8(), self.u8()])
    }
    fn f32(&mut self) -> f32 {
        f32::from_bits(self.u32())
    }
    fn string(&mut self) -> CString {
        let n = (self.u8() % 24) as usize;
        let s: Vec<u8> = (0..n).map(|_| self.u8()).filter(|&b| b != 0).collect();
        CString::new(s).unwrap()
    }
    fn done(&self) -> bool {
        self.0.is_empty()
    }
}

/// Handles the program has seen: live, destroyed and made-up ones, mixed on purpose.
#[derive(Default)]
struct Pool {
    instances: Vec<u64>,
    sessions: Vec<u64>,
    spaces: Vec<u64>,
    sets: Vec<u64>,
    actions: Vec<u64>,
    messengers: Vec<u64>,
    paths: Vec<u64>,
    /// xrWaitFrame paces to the display (up to a period of sleep): a few per input.
    frames: u32,
}

fn pick(b: &mut Bytes, from: &[u64]) -> u64 {
    let k = b.u8();
    match k % 8 {
        0 => 0,
        1 => u64::from(b.u32()) << 32 | u64::from(b.u32()),
        _ if from.is_empty() => u64::from(k),
        _ => from[k as usize % from.len()],
    }
}

/// A structure type: usually the right one, sometimes another.
fn ty(b: &mut Bytes, right: xr::StructureType) -> xr::StructureType {
    if b.u8() % 8 == 0 {
        xr::StructureType::from_raw(b.u32() as i32 % 200)
    } else {
        right
    }
}

fn fixed<const N: usize>(s: &CStr) -> [c_char; N] {
    let mut out = [0 as c_char; N];
    for (o, c) in out.iter_mut().zip(s.to_bytes().iter().take(N - 1)) {
        *o = *c as c_char;
    }
    out
}

unsafe extern "system" fn messenger_callback(
    _: xr::DebugUtilsMessageSeverityFlagsEXT,
    _: xr::DebugUtilsMessageTypeFlagsEXT,
    _: *const xr::DebugUtilsMessengerCallbackDataEXT,
    _: *mut std::ffi::c_void,
) -> xr::Bool32 {
    xr::FALSE
}

fn step(b: &mut Bytes, p: &mut Pool) {
    let null = xr::Instance::NULL;
    let op = b.u8() % 20;
    let inst = xr::Instance::from_raw(pick(b, &p.instances));
    let sess = xr::Session::from_raw(pick(b, &p.sessions));
    // SAFETY (all blocks below): each call passes pointers to live, correctly sized
    // structures or deliberately null ones; handles may be invalid on purpose.
    unsafe {
        match op {
            0 => {
                let create: xr::pfn::CreateInstance = proc(null, c"xrCreateInstance").unwrap();
                let mut names: Vec<*const c_char> = Vec::new();
                let exts = [
                    c"XR_MND_headless",
                    c"XR_EXT_debug_utils",
                    c"XR_KHR_convert_timespec_time",
                    c"XR_EXT_local_floor",
                    c"XR_KHR_locate_spaces",
                    c"XR_KHR_visibility_mask",
                    c"XR_FB_display_refresh_rate",
                ];
                let mask = b.u8();
                for (i, e) in exts.iter().enumerate() {
                    if mask & (1 << i) != 0 || i < 2 {
                        names.push(e.as_ptr());
                    }
                }
                let mut info = xr::InstanceCreateInfo {
                    ty: ty(b, xr::StructureType::INSTANCE_CREATE_INFO),
                    next: std::ptr::null(),
                    create_flags: xr::InstanceCreateFlags::EMPTY,
                    application_info: xr::ApplicationInfo {
                        application_name: fixed(c"fuzz"),
                        application_version: 1,
                        engine_name: fixed(&b.string()),
                        engine_version: 0,
                        api_version: xr::Version::new(1, u16::from(b.u8() % 3), 0),
                    },
                    enabled_api_layer_count: 0,
                    enabled_api_layer_names: std::ptr::null(),
                    enabled_extension_count: names.len() as u32,
                    enabled_extension_names: names.as_ptr(),
                };
                if b.u8() % 16 == 0 {
                    info.enabled_extension_names = std::ptr::null();
                }
                let mut h = xr::Instance::NULL;
                let r = create(&info, &mut h);
                check(r);
                if r == xr::Result::SUCCESS {
                    p.instances.push(h.into_raw());
                }
            }
            1 => {
                if let Some(f) = proc::<xr::pfn::DestroyInstance>(inst, c"xrDestroyInstance") {
                    check(f(inst));
                }
            }
            2 => {
                let (Some(get_system), Some(create)) = (
                    proc::<xr::pfn::GetSystem>(inst, c"xrGetSystem"),
                    proc::<xr::pfn::CreateSession>(inst, c"xrCreateSession"),
                ) else {
                    return;
                };
                let gi = xr::SystemGetInfo {
                    ty: ty(b, xr::StructureType::SYSTEM_GET_INFO),
                    next: std::ptr::null(),
                    form_factor: xr::FormFactor::from_raw(1 + (b.u8() % 3) as i32),
                };
                let mut system = xr::SystemId::NULL;
                check(get_system(inst, &gi, &mut system));
                let ci = xr::SessionCreateInfo {
                    ty: ty(b, xr::StructureType::SESSION_CREATE_INFO),
                    next: std::ptr::null(),
                    create_flags: xr::SessionCreateFlags::EMPTY,
                    system_id: system,
                };
                let mut s = xr::Session::NULL;
                let r = create(inst, &ci, &mut s);
                check(r);
                if r == xr::Result::SUCCESS {
                    p.sessions.push(s.into_raw());
                }
            }
            3 => {
                if let Some(f) = proc::<xr::pfn::DestroySession>(inst, c"xrDestroySession") {
                    check(f(sess));
                }
            }
            4 => {
                if let Some(f) = proc::<xr::pfn::BeginSession>(inst, c"xrBeginSession") {
                    let info = xr::SessionBeginInfo {
                        ty: ty(b, xr::StructureType::SESSION_BEGIN_INFO),
                        next: std::ptr::null(),
                        primary_view_configuration_type: xr::ViewConfigurationType::from_raw(
                            1 + (b.u8() % 3) as i32,
                        ),
                    };
                    check(f(sess, &info));
                }
            }
            5 => {
                let name: &CStr = match b.u8() % 2 {
                    0 => c"xrRequestExitSession",
                    _ => c"xrEndSession",
                };
                if let Some(f) = proc::<xr::pfn::EndSession>(inst, name) {
                    check(f(sess));
                }
            }
            6 if p.frames < 2 => {
                p.frames += 1;
                // A frame: wait (only when it cannot block: once per begun frame), begin,
                // end with zero layers or a made-up layer pointer list.
                let (Some(wait), Some(begin), Some(end)) = (
                    proc::<xr::pfn::WaitFrame>(inst, c"xrWaitFrame"),
                    proc::<xr::pfn::BeginFrame>(inst, c"xrBeginFrame"),
                    proc::<xr::pfn::EndFrame>(inst, c"xrEndFrame"),
                ) else {
                    return;
                };
                let mut st = xr::FrameState {
                    ty: ty(b, xr::StructureType::FRAME_STATE),
                    next: std::ptr::null_mut(),
                    predicted_display_time: xr::Time::from_nanos(0),
                    predicted_display_period: xr::Duration::from_nanos(0),
                    should_render: xr::FALSE,
                };
                check(wait(sess, std::ptr::null(), &mut st));
                check(begin(sess, std::ptr::null()));
                let layers: [*const xr::CompositionLayerBaseHeader; 1] = [std::ptr::null()];
                let info = xr::FrameEndInfo {
                    ty: ty(b, xr::StructureType::FRAME_END_INFO),
                    next: std::ptr::null(),
                    display_time: st.predicted_display_time,
                    environment_blend_mode: xr::EnvironmentBlendMode::from_raw(
                        1 + (b.u8() % 3) as i32,
                    ),
                    layer_count: (b.u8() % 2) as u32,
                    layers: layers.as_ptr(),
                };
                check(end(sess, &info));
            }
            7 => {
                if let Some(f) =
                    proc::<xr::pfn::CreateReferenceSpace>(inst, c"xrCreateReferenceSpace")
                {
                    let info = xr::ReferenceSpaceCreateInfo {
                        ty: ty(b, xr::StructureType::REFERENCE_SPACE_CREATE_INFO),
                        next: std::ptr::null(),
                        reference_space_type: xr::ReferenceSpaceType::from_raw((b.u8() % 5) as i32),
                        pose_in_reference_space: xr::Posef {
                            orientation: xr::Quaternionf {
                                x: b.f32(),
                                y: 0.0,
                                z: 0.0,
                                w: 1.0,
                            },
                            position: xr::Vector3f {
                                x: b.f32(),
                                y: 0.0,
                                z: 0.0,
                            },
                        },
                    };
                    let mut s = xr::Space::NULL;
                    let r = f(sess, &info, &mut s);
                    check(r);
                    if r == xr::Result::SUCCESS {
                        p.spaces.push(s.into_raw());
                    }
                }
            }
            8 => {
                if let Some(f) = proc::<xr::pfn::LocateSpace>(inst, c"xrLocateSpace") {
                    let mut loc = xr::SpaceLocation {
                        ty: ty(b, xr::StructureType::SPACE_LOCATION),
                        next: std::ptr::null_mut(),
                        location_flags: xr::SpaceLocationFlags::EMPTY,
                        pose: xr::Posef::IDENTITY,
                    };
                    let a = xr::Space::from_raw(pick(b, &p.spaces));
                    let c = xr::Space::from_raw(pick(b, &p.spaces));
                    check(f(a, c, xr::Time::from_nanos(i64::from(b.u32())), &mut loc));
                }
            }
            9 => {
                if let Some(f) = proc::<xr::pfn::LocateSpaces>(inst, c"xrLocateSpaces") {
                    let spaces: Vec<xr::Space> = (0..b.u8() % 4)
                        .map(|_| xr::Space::from_raw(pick(b, &p.spaces)))
                        .collect();
                    let mut data = vec![xr::SpaceLocationData::default(); spaces.len()];
                    let mut vel = vec![xr::SpaceVelocityData::default(); spaces.len()];
                    let mut velocities = xr::SpaceVelocities {
                        ty: xr::StructureType::SPACE_VELOCITIES,
                        next: std::ptr::null_mut(),
                        velocity_count: vel.len() as u32,
                        velocities: vel.as_mut_ptr(),
                    };
                    let mut out = xr::SpaceLocations {
                        ty: ty(b, xr::StructureType::SPACE_LOCATIONS),
                        next: if b.u8() % 2 == 0 {
                            (&mut velocities as *mut xr::SpaceVelocities).cast()
                        } else {
                            std::ptr::null_mut()
                        },
                        location_count: data.len() as u32,
                        locations: data.as_mut_ptr(),
                    };
                    let info = xr::SpacesLocateInfo {
                        ty: ty(b, xr::StructureType::SPACES_LOCATE_INFO),
                        next: std::ptr::null(),
                        base_space: xr::Space::from_raw(pick(b, &p.spaces)),
                        time: xr::Time::from_nanos(i64::from(b.u32()) + 1),
                        space_count: spaces.len() as u32,
                        spaces: spaces.as_ptr(),
                    };
                    check(f(sess, &info, &mut out));
                }
            }
            10 => {
                if let Some(f) = proc::<xr::pfn::DestroySpace>(inst, c"xrDestroySpace") {
                    check(f(xr::Space::from_raw(pick(b, &p.spaces))));
                }
            }
            11 => {
                if let Some(f) = proc::<xr::pfn::StringToPath>(inst, c"xrStringToPath") {
                    let s = b.string();
                    let mut path = xr::Path::NULL;
                    let r = f(inst, s.as_ptr(), &mut path);
                    check(r);
                    if r == xr::Result::SUCCESS {
                        p.paths.push(path.into_raw());
                    }
                }
            }
            12 => {
                if let Some(f) = proc::<xr::pfn::PathToString>(inst, c"xrPathToString") {
                    let mut buf = [0 as c_char; 64];
                    let mut n = 0;
                    let cap = u32::from(b.u8() % 70);
                    check(f(
                        inst,
                        xr::Path::from_raw(pick(b, &p.paths)),
                        cap.min(64),
                        &mut n,
                        buf.as_mut_ptr(),
                    ));
                }
            }
            13 => {
                if let Some(f) = proc::<xr::pfn::CreateActionSet>(inst, c"xrCreateActionSet") {
                    let name = b.string();
                    let info = xr::ActionSetCreateInfo {
                        ty: ty(b, xr::StructureType::ACTION_SET_CREATE_INFO),
                        next: std::ptr::null(),
                        action_set_name: fixed(&name),
                        localized_action_set_name: fixed(&name),
                        priority: b.u32(),
                    };
                    let mut h = xr::ActionSet::NULL;
                    let r = f(inst, &info, &mut h);
                    check(r);
                    if r == xr::Result::SUCCESS {
                        p.sets.push(h.into_raw());
                    }
                }
            }
            14 => {
                if let Some(f) = proc::<xr::pfn::CreateAction>(inst, c"xrCreateAction") {
                    let name = b.string();
                    let subs: Vec<xr::Path> = (0..b.u8() % 3)
                        .map(|_| xr::Path::from_raw(pick(b, &p.paths)))
                        .collect();
                    let info = xr::ActionCreateInfo {
                        ty: ty(b, xr::StructureType::ACTION_CREATE_INFO),
                        next: std::ptr::null(),
                        action_name: fixed(&name),
                        action_type: xr::ActionType::from_raw(
                            [1, 2, 3, 4, 100][(b.u8() % 5) as usize],
                        ),
                        count_subaction_paths: subs.len() as u32,
                        subaction_paths: subs.as_ptr(),
                        localized_action_name: fixed(&name),
                    };
                    let mut h = xr::Action::NULL;
                    let set = xr::ActionSet::from_raw(pick(b, &p.sets));
                    let r = f(set, &info, &mut h);
                    check(r);
                    if r == xr::Result::SUCCESS {
                        p.actions.push(h.into_raw());
                    }
                }
            }
            15 => {
                if let Some(f) = proc::<xr::pfn::SuggestInteractionProfileBindings>(
                    inst,
                    c"xrSuggestInteractionProfileBindings",
                ) {
                    let bindings: Vec<xr::ActionSuggestedBinding> = (0..b.u8() % 3)
                        .map(|_| xr::ActionSuggestedBinding {
                            action: xr::Action::from_raw(pick(b, &p.actions)),
                            binding: xr::Path::from_raw(pick(b, &p.paths)),
                        })
                        .collect();
                    let info = xr::InteractionProfileSuggestedBinding {
                        ty: ty(b, xr::StructureType::INTERACTION_PROFILE_SUGGESTED_BINDING),
                        next: std::ptr::null(),
                        interaction_profile: xr::Path::from_raw(pick(b, &p.paths)),
                        count_suggested_bindings: bindings.len() as u32,
                        suggested_bindings: bindings.as_ptr(),
                    };
                    check(f(inst, &info));
                }
            }
            16 => {
                let (Some(attach), Some(sync)) = (
                    proc::<xr::pfn::AttachSessionActionSets>(inst, c"xrAttachSessionActionSets"),
                    proc::<xr::pfn::SyncActions>(inst, c"xrSyncActions"),
                ) else {
                    return;
                };
                let sets: Vec<xr::ActionSet> = (0..b.u8() % 3)
                    .map(|_| xr::ActionSet::from_raw(pick(b, &p.sets)))
                    .collect();
                let info = xr::SessionActionSetsAttachInfo {
                    ty: ty(b, xr::StructureType::SESSION_ACTION_SETS_ATTACH_INFO),
                    next: std::ptr::null(),
                    count_action_sets: sets.len() as u32,
                    action_sets: sets.as_ptr(),
                };
                check(attach(sess, &info));
                let active: Vec<xr::ActiveActionSet> = sets
                    .iter()
                    .map(|s| xr::ActiveActionSet {
                        action_set: *s,
                        subaction_path: xr::Path::NULL,
                    })
                    .collect();
                let si = xr::ActionsSyncInfo {
                    ty: ty(b, xr::StructureType::ACTIONS_SYNC_INFO),
                    next: std::ptr::null(),
                    count_active_action_sets: active.len() as u32,
                    active_action_sets: active.as_ptr(),
                };
                check(sync(sess, &si));
            }
            17 => {
                if let Some(f) =
                    proc::<xr::pfn::GetActionStateBoolean>(inst, c"xrGetActionStateBoolean")
                {
                    let info = xr::ActionStateGetInfo {
                        ty: ty(b, xr::StructureType::ACTION_STATE_GET_INFO),
                        next: std::ptr::null(),
                        action: xr::Action::from_raw(pick(b, &p.actions)),
                        subaction_path: xr::Path::from_raw(pick(b, &p.paths)),
                    };
                    let mut st = xr::ActionStateBoolean {
                        ty: ty(b, xr::StructureType::ACTION_STATE_BOOLEAN),
                        next: std::ptr::null_mut(),
                        current_state: xr::FALSE,
                        changed_since_last_sync: xr::FALSE,
                        last_change_time: xr::Time::from_nanos(0),
                        is_active: xr::FALSE,
                    };
                    check(f(sess, &info, &mut st));
                }
            }
            18 => {
                let (Some(create), Some(destroy), Some(submit)) = (
                    proc::<xr::pfn::CreateDebugUtilsMessengerEXT>(
                        inst,
                        c"xrCreateDebugUtilsMessengerEXT",
                    ),
                    proc::<xr::pfn::DestroyDebugUtilsMessengerEXT>(
                        inst,
                        c"xrDestroyDebugUtilsMessengerEXT",
                    ),
                    proc::<xr::pfn::SubmitDebugUtilsMessageEXT>(
                        inst,
                        c"xrSubmitDebugUtilsMessageEXT",
                    ),
                ) else {
                    return;
                };
                match b.u8() % 3 {
                    0 => {
                        let info = xr::DebugUtilsMessengerCreateInfoEXT {
                            ty: ty(b, xr::StructureType::DEBUG_UTILS_MESSENGER_CREATE_INFO_EXT),
                            next: std::ptr::null(),
                            message_severities: xr::DebugUtilsMessageSeverityFlagsEXT::from_raw(
                                u64::from(b.u8()),
                            ),
                            message_types: xr::DebugUtilsMessageTypeFlagsEXT::from_raw(u64::from(
                                b.u8(),
                            )),
                            user_callback: Some(messenger_callback),
                            user_data: std::ptr::null_mut(),
                        };
                        let mut m = xr::DebugUtilsMessengerEXT::NULL;
                        let r = create(inst, &info, &mut m);
                        check(r);
                        if r == xr::Result::SUCCESS {
                            p.messengers.push(m.into_raw());
                        }
                    }
                    1 => check(destroy(xr::DebugUtilsMessengerEXT::from_raw(pick(
                        b,
                        &p.messengers,
                    )))),
                    _ => {
                        let msg = b.string();
                        let objects = [xr::DebugUtilsObjectNameInfoEXT {
                            ty: xr::StructureType::DEBUG_UTILS_OBJECT_NAME_INFO_EXT,
                            next: std::ptr::null(),
                            object_type: xr::ObjectType::SESSION,
                            object_handle: sess.into_raw(),
                            object_name: std::ptr::null(),
                        }];
                        let data = xr::DebugUtilsMessengerCallbackDataEXT {
                            ty: ty(
                                b,
                                xr::StructureType::DEBUG_UTILS_MESSENGER_CALLBACK_DATA_EXT,
                            ),
                            next: std::ptr::null(),
                            message_id: msg.as_ptr(),
                            function_name: msg.as_ptr(),
                            message: msg.as_ptr(),
                            object_count: (b.u8() % 2) as u32,
                            objects: objects.as_ptr().cast_mut(),
                            session_label_count: 0,
                            session_labels: std::ptr::null_mut(),
                        };
                        check(submit(
                            inst,
                            xr::DebugUtilsMessageSeverityFlagsEXT::from_raw(1 << (b.u8() % 16)),
                            xr::DebugUtilsMessageTypeFlagsEXT::GENERAL,
                            &data,
                        ));
                    }
                }
            }
            _ => {
                if let Some(f) = proc::<xr::pfn::PollEvent>(inst, c"xrPollEvent") {
                    let mut buf = xr::EventDataBuffer {
                        ty: ty(b, xr::StructureType::EVENT_DATA_BUFFER),
                        next: std::ptr::null(),
                        varying: [0; 4000],
                    };
                    check(f(inst, &mut buf));
                }
            }
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let mut b = Bytes(data);
    let mut pool = Pool::default();
    let mut steps = 0;
    while !b.done() && steps < 64 {
        step(&mut b, &mut pool);
        steps += 1;
    }
    // Destroying the instances takes everything with them.
    for &i in &pool.instances {
        let inst = xr::Instance::from_raw(i);
        if let Some(f) = proc::<xr::pfn::DestroyInstance>(inst, c"xrDestroyInstance") {
            // SAFETY: a handle this input created (perhaps destroyed already).
            check(unsafe { f(inst) });
        }
    }
    // Destroying every instance drops everything it owned.
    for (kind, n) in leasehold_openxr::core::live() {
        assert_eq!(n, 0, "{kind} outlived their instance");
    }
});
