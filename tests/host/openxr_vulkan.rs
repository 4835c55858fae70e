//! Vulkan sessions through the real loader, as an application drives them (the `openxr`
//! crate; the app's Vulkan device from `compositor::vk::scene`, made the
//! XR_KHR_vulkan_enable way): the graphics-requirements rule, swapchain formats and
//! creation errors, the acquire/wait/release cycle and its errors, layers and their
//! errors in xrEndFrame, stale handles, wrong structure types, and 100 instances with a
//! session and swapchains leaking nothing.

use leasehold_compositor::vk::scene::SceneDevice;
use openxr as xr;
use std::ptr;

fn vulkan_instance(entry: &xr::Entry) -> xr::Instance {
    let mut exts = xr::ExtensionSet::default();
    exts.khr_vulkan_enable = true;
    exts.khr_composition_layer_depth = true;
    entry
        .create_instance(&super::openxr::app_info(), &exts, &[], &())
        .expect("instance with XR_KHR_vulkan_enable")
}

fn device(instance: &xr::Instance, system: xr::SystemId) -> SceneDevice {
    let iexts = instance.vulkan_legacy_instance_extensions(system).unwrap();
    let dexts = instance.vulkan_legacy_device_extensions(system).unwrap();
    SceneDevice::new(
        &iexts,
        &dexts,
        |vk| {
            // SAFETY: the VkInstance SceneDevice just created.
            unsafe { instance.vulkan_graphics_device(system, vk as usize as _) }
                .map(|p| p as usize as u64)
                .map_err(|e| e.to_string())
        },
        &[[255, 0, 0, 255]],
    )
    .expect("the app's Vulkan device")
}

type Session = (
    xr::Session<xr::Vulkan>,
    xr::FrameWaiter,
    xr::FrameStream<xr::Vulkan>,
);

fn session(
    instance: &xr::Instance,
    system: xr::SystemId,
    gpu: &SceneDevice,
) -> xr::Result<Session> {
    let (vi, vp, vd, family, index) = gpu.binding();
    // SAFETY: the app's live Vulkan objects; the session is dropped before `gpu`.
    unsafe {
        instance.create_session::<xr::Vulkan>(
            system,
            &xr::vulkan::SessionCreateInfo {
                instance: vi as usize as _,
                physical_device: vp as usize as _,
                device: vd as usize as _,
                queue_family_index: family,
                queue_index: index,
            },
        )
    }
}

fn swapchain_info(format: u32, w: u32, h: u32) -> xr::SwapchainCreateInfo<xr::Vulkan> {
    xr::SwapchainCreateInfo {
        create_flags: xr::SwapchainCreateFlags::EMPTY,
        usage_flags: xr::SwapchainUsageFlags::COLOR_ATTACHMENT
            | xr::SwapchainUsageFlags::TRANSFER_DST,
        format,
        sample_count: 1,
        width: w,
        height: h,
        face_count: 1,
        array_size: 1,
        mip_count: 1,
    }
}

/// A 0.5 m quad 1 m in front of `space`'s origin showing all of a 64x64 swapchain.
fn quad_64<'a>(
    space: &'a xr::Space,
    sc: &'a xr::Swapchain<xr::Vulkan>,
) -> xr::CompositionLayerQuad<'a, xr::Vulkan> {
    xr::CompositionLayerQuad::new()
        .space(space)
        .eye_visibility(xr::EyeVisibility::BOTH)
        .pose(xr::Posef {
            orientation: xr::Quaternionf::IDENTITY,
            position: xr::Vector3f {
                x: 0.0,
                y: 0.0,
                z: -1.0,
            },
        })
        .size(xr::Extent2Df {
            width: 0.5,
            height: 0.5,
        })
        .sub_image(
            xr::SwapchainSubImage::new()
                .swapchain(sc)
                .image_rect(xr::Rect2Di {
                    offset: xr::Offset2Di { x: 0, y: 0 },
                    extent: xr::Extent2Di {
                        width: 64,
                        height: 64,
                    },
                }),
        )
}

const RGBA8_SRGB: u32 = 43;
const D32_SFLOAT: u32 = 126;

#[test]
fn vulkan_sessions_swapchains_and_their_errors() {
    use xr::sys::Result as R;
    leasehold_tests::init_tracing();
    let _vulkan = crate::common::validated();
    let entry = super::openxr::entry();
    let instance = vulkan_instance(&entry);
    let system = instance
        .system(xr::FormFactor::HEAD_MOUNTED_DISPLAY)
        .unwrap();
    let gpu = device(&instance, system);
    // The requirements must be asked for before a session.
    assert_eq!(
        session(&instance, system, &gpu).err(),
        Some(R::ERROR_GRAPHICS_REQUIREMENTS_CALL_MISSING)
    );
    let req = instance
        .graphics_requirements::<xr::Vulkan>(system)
        .unwrap();
    assert!(req.min_api_version_supported <= xr::Version::new(1, 0, 0));
    assert!(req.max_api_version_supported >= xr::Version::new(1, 3, 0));
    let (session, mut waiter, mut stream) = session(&instance, system, &gpu).expect("session");

    let formats = session.enumerate_swapchain_formats().unwrap();
    assert_eq!(
        formats.first(),
        Some(&RGBA8_SRGB),
        "sRGB first: {formats:?}"
    );
    assert!(formats.contains(&D32_SFLOAT), "depth formats: {formats:?}");

    // Creation errors.
    let bad = |info: xr::SwapchainCreateInfo<xr::Vulkan>| session.create_swapchain(&info).err();
    assert_eq!(
        bad(swapchain_info(64, 64, 64)),
        Some(R::ERROR_SWAPCHAIN_FORMAT_UNSUPPORTED)
    );
    assert_eq!(
        bad(xr::SwapchainCreateInfo {
            sample_count: 4,
            ..swapchain_info(RGBA8_SRGB, 64, 64)
        }),
        Some(R::ERROR_FEATURE_UNSUPPORTED)
    );
    assert_eq!(
        bad(swapchain_info(RGBA8_SRGB, 0, 64)),
        Some(R::ERROR_VALIDATION_FAILURE)
    );
    assert_eq!(
        bad(xr::SwapchainCreateInfo {
            face_count: 6,
            ..swapchain_info(RGBA8_SRGB, 64, 64)
        }),
        Some(R::ERROR_FEATURE_UNSUPPORTED)
    );
    assert_eq!(
        bad(xr::SwapchainCreateInfo {
            create_flags: xr::SwapchainCreateFlags::PROTECTED_CONTENT,
            ..swapchain_info(RGBA8_SRGB, 64, 64)
        }),
        Some(R::ERROR_FEATURE_UNSUPPORTED)
    );
    assert_eq!(
        bad(xr::SwapchainCreateInfo {
            usage_flags: xr::SwapchainUsageFlags::DEPTH_STENCIL_ATTACHMENT,
            ..swapchain_info(RGBA8_SRGB, 64, 64)
        }),
        Some(R::ERROR_FEATURE_UNSUPPORTED),
        "depth use of a colour format"
    );
    // A depth swapchain (XR_KHR_composition_layer_depth) is fine.
    let depth = session
        .create_swapchain(&xr::SwapchainCreateInfo {
            usage_flags: xr::SwapchainUsageFlags::DEPTH_STENCIL_ATTACHMENT,
            ..swapchain_info(D32_SFLOAT, 64, 64)
        })
        .expect("depth swapchain");

    let mut sc = session
        .create_swapchain(&swapchain_info(RGBA8_SRGB, 64, 48))
        .expect("swapchain");
    let images = sc.enumerate_images().unwrap();
    assert_eq!(images.len(), 3);
    assert!(images.iter().all(|&i| i != 0) && images[0] != images[1]);

    // The cycle's ordering errors, at the C level (the `openxr` crate asserts some of
    // them itself before the runtime would see the call).
    let fp = instance.fp();
    let raw_sc = sc.as_raw();
    let wait_info = xr::sys::SwapchainImageWaitInfo {
        ty: xr::sys::SwapchainImageWaitInfo::TYPE,
        next: ptr::null(),
        timeout: xr::Duration::INFINITE,
    };
    // SAFETY: a live swapchain and valid (or null, where optional) structures.
    unsafe {
        let mut idx = 99;
        assert_eq!(
            (fp.release_swapchain_image)(raw_sc, ptr::null()),
            R::ERROR_CALL_ORDER_INVALID
        );
        assert_eq!(
            (fp.wait_swapchain_image)(raw_sc, &wait_info),
            R::ERROR_CALL_ORDER_INVALID
        );
        for expect in 0..3 {
            assert_eq!(
                (fp.acquire_swapchain_image)(raw_sc, ptr::null(), &mut idx),
                R::SUCCESS
            );
            assert_eq!(idx, expect);
        }
        assert_eq!(
            (fp.acquire_swapchain_image)(raw_sc, ptr::null(), &mut idx),
            R::ERROR_CALL_ORDER_INVALID,
            "every image is acquired"
        );
        assert_eq!(
            (fp.release_swapchain_image)(raw_sc, ptr::null()),
            R::ERROR_CALL_ORDER_INVALID,
            "not waited"
        );
        let bad_wait = xr::sys::SwapchainImageWaitInfo {
            ty: xr::sys::StructureType::SWAPCHAIN_IMAGE_RELEASE_INFO,
            ..wait_info
        };
        assert_eq!(
            (fp.wait_swapchain_image)(raw_sc, &bad_wait),
            R::ERROR_VALIDATION_FAILURE,
            "wrong structure type"
        );
        for _ in 0..3 {
            assert_eq!((fp.wait_swapchain_image)(raw_sc, &wait_info), R::SUCCESS);
            assert_eq!(
                (fp.release_swapchain_image)(raw_sc, ptr::null()),
                R::SUCCESS
            );
        }
    }
    // A static image is acquired once.
    let mut st = session
        .create_swapchain(&xr::SwapchainCreateInfo {
            create_flags: xr::SwapchainCreateFlags::STATIC_IMAGE,
            ..swapchain_info(RGBA8_SRGB, 32, 32)
        })
        .unwrap();
    assert_eq!(st.enumerate_images().unwrap().len(), 1);
    st.acquire_image().unwrap();
    st.wait_image(xr::Duration::INFINITE).unwrap();
    st.release_image().unwrap();
    let mut idx = 0;
    // SAFETY: a live swapchain and a writable index.
    let r = unsafe { (fp.acquire_swapchain_image)(st.as_raw(), ptr::null(), &mut idx) };
    assert_eq!(r, R::ERROR_CALL_ORDER_INVALID);

    // Wrong structure types at the C level.
    let mut info = xr::sys::SwapchainCreateInfo {
        ty: xr::sys::StructureType::SWAPCHAIN_IMAGE_WAIT_INFO,
        next: ptr::null(),
        create_flags: xr::SwapchainCreateFlags::EMPTY,
        usage_flags: xr::SwapchainUsageFlags::COLOR_ATTACHMENT,
        format: i64::from(RGBA8_SRGB),
        sample_count: 1,
        width: 16,
        height: 16,
        face_count: 1,
        array_size: 1,
        mip_count: 1,
    };
    let mut raw = <xr::sys::Swapchain as xr::sys::Handle>::NULL;
    // SAFETY: valid pointers; the structure type is wrong on purpose.
    let r = unsafe { (fp.create_swapchain)(session.as_raw(), &info, &mut raw) };
    assert_eq!(r, R::ERROR_VALIDATION_FAILURE);
    info.ty = xr::sys::StructureType::SWAPCHAIN_CREATE_INFO;
    // SAFETY: as above, now well-formed.
    let r = unsafe { (fp.create_swapchain)(session.as_raw(), &info, &mut raw) };
    assert_eq!(r, R::SUCCESS);
    let mut wrong = [xr::sys::SwapchainImageVulkanKHR {
        ty: xr::sys::StructureType::SWAPCHAIN_IMAGE_OPENGL_KHR,
        next: ptr::null_mut(),
        image: 0,
    }; 3];
    let mut n = 0;
    // SAFETY: an array of 3 image structures, of the wrong type on purpose.
    let r = unsafe { (fp.enumerate_swapchain_images)(raw, 3, &mut n, wrong.as_mut_ptr().cast()) };
    assert_eq!(r, R::ERROR_VALIDATION_FAILURE);
    // Stale handles after destroy.
    // SAFETY: destroying the swapchain made above, then using its stale handle.
    unsafe {
        assert_eq!((fp.destroy_swapchain)(raw), R::SUCCESS);
        assert_eq!((fp.destroy_swapchain)(raw), R::ERROR_HANDLE_INVALID);
        let mut idx = 0;
        assert_eq!(
            (fp.acquire_swapchain_image)(raw, ptr::null(), &mut idx),
            R::ERROR_HANDLE_INVALID
        );
    }

    // Frames with layers: the session reaches FOCUSED showing the swapchain.
    let space = session
        .create_reference_space(xr::ReferenceSpaceType::LOCAL, xr::Posef::IDENTITY)
        .unwrap();
    session
        .begin(xr::ViewConfigurationType::PRIMARY_STEREO)
        .unwrap();
    let rect = |w: i32, h: i32| xr::Rect2Di {
        offset: xr::Offset2Di { x: 0, y: 0 },
        extent: xr::Extent2Di {
            width: w,
            height: h,
        },
    };
    let fov = xr::Fovf {
        angle_left: -0.8,
        angle_right: 0.8,
        angle_up: 0.8,
        angle_down: -0.8,
    };
    let end = |stream: &mut xr::FrameStream<xr::Vulkan>,
               t: xr::Time,
               sc: &xr::Swapchain<xr::Vulkan>,
               r: xr::Rect2Di,
               n: usize| {
        let views: Vec<_> = (0..n)
            .map(|_| {
                xr::CompositionLayerProjectionView::new()
                    .pose(xr::Posef::IDENTITY)
                    .fov(fov)
                    .sub_image(xr::SwapchainSubImage::new().swapchain(sc).image_rect(r))
            })
            .collect();
        stream.end(
            t,
            xr::EnvironmentBlendMode::OPAQUE,
            &[&xr::CompositionLayerProjection::new()
                .space(&space)
                .views(&views)],
        )
    };
    let mut times = Vec::new();
    for _ in 0..3 {
        let fs = waiter.wait().unwrap();
        times.push((
            fs.predicted_display_time.as_nanos(),
            fs.predicted_display_period.as_nanos(),
        ));
        stream.begin().unwrap();
        sc.acquire_image().unwrap();
        sc.wait_image(xr::Duration::INFINITE).unwrap();
        sc.release_image().unwrap();
        // Errors leave the frame open; the good end closes it.
        assert_eq!(
            end(&mut stream, fs.predicted_display_time, &sc, rect(65, 48), 2).err(),
            Some(R::ERROR_SWAPCHAIN_RECT_INVALID)
        );
        assert_eq!(
            end(&mut stream, fs.predicted_display_time, &sc, rect(64, 48), 1).err(),
            Some(R::ERROR_VALIDATION_FAILURE),
            "a stereo projection needs two views"
        );
        assert_eq!(
            end(
                &mut stream,
                fs.predicted_display_time,
                &depth,
                rect(64, 48),
                2
            )
            .err(),
            Some(R::ERROR_LAYER_INVALID),
            "a depth swapchain that was never released is no colour layer"
        );
        end(&mut stream, fs.predicted_display_time, &sc, rect(64, 48), 2).expect("end frame");
    }
    // Paced by the compositor's display clock: strictly increasing, whole periods apart.
    for w in times.windows(2) {
        let ((t0, p), (t1, _)) = (w[0], w[1]);
        assert!(t1 > t0, "{times:?}");
        let k = ((t1 - t0) as f64 / p as f64).round() as i64;
        assert!(k >= 1 && (t1 - t0 - k * p).abs() < 2, "{times:?}");
    }
    let mut seen = Vec::new();
    let mut buf = xr::EventDataBuffer::new();
    while let Some(ev) = instance.poll_event(&mut buf).unwrap() {
        if let xr::Event::SessionStateChanged(e) = ev {
            seen.push(e.state());
        }
    }
    assert_eq!(seen.last(), Some(&xr::SessionState::FOCUSED), "{seen:?}");
    drop((sc, st, depth, space, stream, waiter, session));
    drop(gpu);
}

#[test]
fn a_hundred_vulkan_instances_with_sessions_and_swapchains_leak_nothing() {
    leasehold_tests::init_tracing();
    let _vulkan = crate::common::validated();
    let entry = super::openxr::entry();
    use leasehold_tests::proc_stats::{fds, heap_in_use_kb, rss_kb, threads};
    // The app's Vulkan device lives across the cycles, as an engine's would (the loader
    // allows one XrInstance at a time, so the one that named the device goes first).
    let gpu = {
        let first = vulkan_instance(&entry);
        let system = first.system(xr::FormFactor::HEAD_MOUNTED_DISPLAY).unwrap();
        device(&first, system)
    };
    // Each cycle: an instance, a Vulkan session (its compositor thread and device), two
    // swapchains, one frame showing one of them, and everything destroyed.
    let cycle = |n: usize| {
        for _ in 0..n {
            let i = vulkan_instance(&entry);
            let s = i.system(xr::FormFactor::HEAD_MOUNTED_DISPLAY).unwrap();
            i.graphics_requirements::<xr::Vulkan>(s).unwrap();
            let (session, mut waiter, mut stream) = session(&i, s, &gpu).unwrap();
            let mut a = session
                .create_swapchain(&swapchain_info(RGBA8_SRGB, 64, 64))
                .unwrap();
            let _b = session
                .create_swapchain(&swapchain_info(RGBA8_SRGB, 32, 32))
                .unwrap();
            let space = session
                .create_reference_space(xr::ReferenceSpaceType::VIEW, xr::Posef::IDENTITY)
                .unwrap();
            session
                .begin(xr::ViewConfigurationType::PRIMARY_STEREO)
                .unwrap();
            let fs = waiter.wait().unwrap();
            stream.begin().unwrap();
            a.acquire_image().unwrap();
            a.wait_image(xr::Duration::INFINITE).unwrap();
            a.release_image().unwrap();
            stream
                .end(
                    fs.predicted_display_time,
                    xr::EnvironmentBlendMode::OPAQUE,
                    &[&quad_64(&space, &a)],
                )
                .unwrap();
        }
    };
    // Warm up: the loader's manifests, the driver's shader caches, the allocator's arenas.
    cycle(5);
    let (f0, t0, m0, h0) = (fds(), threads(), rss_kb(), heap_in_use_kb());
    let started = std::time::Instant::now();
    cycle(100);
    // Threads the driver retires asynchronously get a moment to go.
    let settle = std::time::Instant::now();
    while (fds() != f0 || threads() != t0) && settle.elapsed().as_secs() < 5 {
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let (f1, t1, m1, h1) = (fds(), threads(), rss_kb(), heap_in_use_kb());
    tracing::info!(
        fds = f1 as i64 - f0 as i64,
        threads = t1 as i64 - t0 as i64,
        rss_kb = m1 as i64 - m0 as i64,
        heap_kb = h1 as i64 - h0 as i64,
        secs = started.elapsed().as_secs_f64(),
        "after 100 Vulkan instances"
    );
    assert_eq!(f1, f0, "file descriptors leaked");
    assert_eq!(t1, t0, "threads leaked");
    // The heap in use counts every block handed out and not freed, whatever the arenas
    // keep. Bound: 512 kB over 100 sessions, 5 kB a session. The Debian OpenXR loader
    // (1.0.20) itself keeps about 1.4 kB per xrCreateInstance (heaptrack: all of this
    // test's per-cycle growth is inside libopenxr_loader's instance creation; measured
    // +160 to +240 kB per 100); a session's own objects, command buffers or images
    // (about 25 MB: three 2160x1200 targets, five swapchain images)
    // kept once per session would exceed it many times over.
    assert!(
        h1 < h0 + 512,
        "heap in use grew by {} kB over 100 Vulkan instances (bound 512 kB)",
        h1 as i64 - h0 as i64
    );
    // RSS also sees memory mapped outside the C heap (driver allocations), but moves
    // with the arenas' fragmentation: measured -2 to +20 MB per 100 sessions with nothing
    // kept. A leaked image per session would add gigabytes.
    assert!(
        m1 < m0 + 64 * 1024,
        "RSS grew by {} kB over 100 Vulkan instances (bound 64 MB)",
        m1 - m0
    );
    drop(gpu);
}

static SIGNALS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

extern "C" fn on_signal(_: libc::c_int) {
    SIGNALS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
}

/// A host application whose threads are interrupted by signals all the time (profilers,
/// interval timers, managed runtimes): every thread of the process, the runtime's
/// compositor included, gets SIGUSR1 every millisecond, with a handler installed without
/// SA_RESTART so blocking calls return EINTR. The session runs on, FOCUSED, every call
/// succeeding.
#[test]
fn a_session_survives_a_signal_every_millisecond() {
    use std::sync::atomic::{AtomicBool, Ordering};
    leasehold_tests::init_tracing();
    let _vulkan = crate::common::validated();
    // SAFETY: installs a handler that only increments an atomic (async-signal-safe).
    unsafe {
        let mut sa: libc::sigaction = std::mem::zeroed();
        sa.sa_sigaction = on_signal as extern "C" fn(libc::c_int) as usize;
        sa.sa_flags = 0;
        libc::sigemptyset(&mut sa.sa_mask);
        assert_eq!(libc::sigaction(libc::SIGUSR1, &sa, std::ptr::null_mut()), 0);
    }
    let entry = super::openxr::entry();
    let instance = vulkan_instance(&entry);
    let system = instance
        .system(xr::FormFactor::HEAD_MOUNTED_DISPLAY)
        .unwrap();
    instance
        .graphics_requirements::<xr::Vulkan>(system)
        .unwrap();
    let gpu = device(&instance, system);
    let (session, mut waiter, mut stream) = session(&instance, system, &gpu).unwrap();
    let mut sc = session
        .create_swapchain(&swapchain_info(RGBA8_SRGB, 64, 64))
        .unwrap();
    let space = session
        .create_reference_space(xr::ReferenceSpaceType::LOCAL, xr::Posef::IDENTITY)
        .unwrap();
    let stop = std::sync::Arc::new(AtomicBool::new(false));
    let sender = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            // SAFETY: getpid and gettid have no preconditions.
            let (pid, me) = unsafe { (libc::getpid(), libc::gettid()) };
            while !stop.load(Ordering::Relaxed) {
                for t in std::fs::read_dir("/proc/self/task").unwrap().flatten() {
                    let Some(tid) = t.file_name().to_str().and_then(|s| s.parse::<i32>().ok())
                    else {
                        continue;
                    };
                    if tid != me {
                        // SAFETY: tgkill to a thread of this process with a handled signal.
                        unsafe { libc::syscall(libc::SYS_tgkill, pid, tid, libc::SIGUSR1) };
                    }
                }
                std::thread::sleep(std::time::Duration::from_millis(1));
            }
        })
    };
    session
        .begin(xr::ViewConfigurationType::PRIMARY_STEREO)
        .unwrap();
    let mut states = Vec::new();
    let mut buf = xr::EventDataBuffer::new();
    for frame in 0..90 {
        let fs = waiter
            .wait()
            .unwrap_or_else(|e| panic!("xrWaitFrame, frame {frame}: {e}"));
        stream.begin().unwrap();
        sc.acquire_image().unwrap();
        sc.wait_image(xr::Duration::INFINITE).unwrap();
        sc.release_image().unwrap();
        stream
            .end(
                fs.predicted_display_time,
                xr::EnvironmentBlendMode::OPAQUE,
                &[&quad_64(&space, &sc)],
            )
            .unwrap_or_else(|e| panic!("xrEndFrame, frame {frame}: {e}"));
        while let Some(ev) = instance.poll_event(&mut buf).unwrap() {
            if let xr::Event::SessionStateChanged(e) = ev {
                states.push(e.state());
            }
        }
    }
    stop.store(true, Ordering::Relaxed);
    sender.join().unwrap();
    let signals = SIGNALS.load(Ordering::Relaxed);
    tracing::info!(signals, ?states, "90 frames under signals");
    assert!(signals > 500, "signals delivered: {signals}");
    assert!(
        !states.contains(&xr::SessionState::LOSS_PENDING),
        "the session was lost: {states:?}"
    );
    assert_eq!(
        states.last(),
        Some(&xr::SessionState::FOCUSED),
        "{states:?}"
    );
}
