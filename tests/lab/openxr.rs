//! hello_xr on the leased headset output: the runtime finds the headset's display by
//! itself (no LEASEHOLD_TARGET), leases it as DRM master (no desktop runs here), renders
//! into its scanout buffers and commits fence-gated page flips; every frame the
//! compositor presented is a completed flip. With the whole emulated headset, the views
//! follow its IMU and it is unplugged and plugged in again mid-run.

use leasehold_tests::init_tracing;
use std::process::Command;

use leasehold_tests::report_field as field;

#[test]
fn hello_xr_runs_on_the_leased_headset_with_a_flip_per_frame() {
    init_tracing();
    let (mut cmd, report) = crate::common::hello_xr_command("leasehold-lab-hello-xr");
    cmd.env("LEASEHOLD_LOG", crate::headset::log_filter());
    // The runtime is the lessor itself here (DRM master): nobody else can revoke its
    // lease; the lessor groups (sway, Xorg) take that part.
    let run = if std::env::var_os("LEASEHOLD_LAB_HMD").is_some() {
        crate::headset::hello_xr_follows_the_headset(cmd, &report, None)
    } else {
        crate::common::run_hello_xr(cmd, &report)
    };
    let (text, report) = (run.log, run.report);
    assert!(
        text.contains("display chosen") && text.contains("through direct (DRM master"),
        "the runtime found the headset's display and leased it as master by itself:\n{text}"
    );
    assert!(
        text.contains("render path"),
        "the KMS target said which render path it uses:\n{text}"
    );
    // lavapipe in the lab's kernel exports and imports sync_files: the compositor's GPU
    // waits for hello_xr's rendering, the CPU never does.
    assert!(
        text.contains("sync=\"GPU: the release exports a sync_file"),
        "GPU-side synchronisation with the app:\n{text}"
    );
    let (frames, flips) = (field(&report, "compositor_frames"), field(&report, "flips"));
    assert!(field(&report, "app_frames_shown") >= 1.0, "{report}");
    // One fence-gated flip per presented frame, none lost, none extra: the frames the
    // report counts, plus the loop's first (empty) frame that finds the vblank phase.
    assert_eq!(flips, frames + 1.0, "{report}");
}

#[test]
fn leasehold_demo_shows_on_the_headset() {
    init_tracing();
    let cli = std::env::var("LEASEHOLD_CLI")
        .expect("LEASEHOLD_CLI must name the leasehold binary (cargo xtask test sets it)");
    let out_dir = std::env::temp_dir().join("leasehold-lab-demo");
    let out = Command::new(&cli)
        .args(["demo", "--display", "--seconds", "30", "--out"])
        .arg(&out_dir)
        .env("NO_COLOR", "1")
        .output()
        .expect("run leasehold demo");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "demo --display failed:\n{stdout}\n{stderr}"
    );
    tracing::info!("{stdout}");
    assert!(stdout.contains("page flips"), "{stdout}");
    let report = std::fs::read_to_string(out_dir.join("frames.json")).unwrap();
    assert!(
        report.contains("KMS"),
        "composited on the KMS target: {report}"
    );
    assert!(field(&report, "app_frames_shown") >= 1.0, "{report}");
    assert_eq!(
        field(&report, "flips"),
        field(&report, "compositor_frames") + 1.0,
        "a flip per presented frame (plus the anchor frame): {report}"
    );
}

/// The GPU-side synchronisation with the app (its release's sync_file waited on by the
/// compositor's queue; lavapipe in the lab's kernel has it, the host's does not) under
/// the Khronos Vulkan validation layer, on hello_xr's device (where the runtime signals
/// and exports at release) and on the compositor's (where it imports and waits): no
/// report from either, and the app's frames shown.
#[test]
fn gpu_side_synchronisation_passes_vulkan_validation() {
    init_tracing();
    let (mut cmd, report) = crate::common::hello_xr_command("leasehold-lab-hello-xr-validation");
    cmd.env(
        "LEASEHOLD_LOG",
        format!(
            "{},{}=debug",
            crate::common::HELLO_XR_LOG,
            leasehold_compositor::vk::app::OBJECTS_LOG
        ),
    )
    .env("VK_INSTANCE_LAYERS", "VK_LAYER_KHRONOS_validation")
    .env("LEASEHOLD_VK_VALIDATION", "1")
    .env("NO_COLOR", "1");
    let mut shown = 0u32;
    let steps = vec![crate::common::Step {
        what: "30 composited frames".into(),
        action: Box::new(|| {}),
        until: Box::new(move |l: &str| {
            shown += l.contains("compositor frame") as u32;
            shown >= 30
        }),
        secs: 240,
    }];
    let run = crate::common::run_hello_xr_steps(cmd, &report, steps);
    assert!(
        run.log
            .contains("sync=\"GPU: the release exports a sync_file"),
        "GPU-side synchronisation with the app:\n{}",
        run.log
    );
    // On hello_xr's device the layer reports both hello_xr's own use of it and the
    // runtime's (its images, memory, command buffers, fences and semaphores there, and
    // the queue both submit to). A message that names only hello_xr's own objects is
    // hello_xr's (on a loaded machine its one-second fence waits give up while its frame
    // still runs, and it then reuses a pending command buffer); every other one fails.
    let (runtime_msgs, own) = attribute_validation(&run.log);
    if !own.is_empty() {
        tracing::warn!(
            messages = own.len(),
            first = %own[0],
            "validation messages about hello_xr's own objects (not the runtime's)"
        );
    }
    assert!(
        runtime_msgs.is_empty(),
        "the Vulkan validation layer reported on the runtime's use of hello_xr's device:\n{}",
        runtime_msgs.join("\n")
    );
    assert_eq!(
        field(&run.report, "vk_validation_messages"),
        0.0,
        "the Vulkan validation layer reported on the compositor's device: {}",
        run.report
    );
    assert!(
        field(&run.report, "app_frames_shown") >= 1.0,
        "{}",
        run.report
    );
}

/// The validation layer's messages in `log`, as (the runtime's or unattributable, about
/// the app's own objects only). The runtime names its objects on the app's device in
/// [`leasehold_compositor::vk::app::OBJECTS_LOG`] records; a message is the app's own
/// only if it names objects, none of them the runtime's, none the queue or device both
/// use.
fn attribute_validation(log: &str) -> (Vec<String>, Vec<String>) {
    let hex = |w: &str| {
        let w = w.trim_matches(|c: char| !c.is_ascii_hexdigit() && c != 'x');
        w.starts_with("0x").then(|| w.to_ascii_lowercase())
    };
    let ours: std::collections::HashSet<String> = log
        .lines()
        .filter(|l| l.contains("runtime objects on the app's device"))
        .flat_map(|l| {
            l.split(|c: char| c.is_whitespace() || c == '=')
                .filter_map(hex)
        })
        .filter(|h| h != "0x0")
        .collect();
    let (mut runtime, mut own) = (Vec::new(), Vec::new());
    for l in log
        .lines()
        .filter(|l| l.contains("Validation Error") || l.contains("Validation Warning"))
    {
        let handles: Vec<String> = l
            .split("handle = ")
            .skip(1)
            .filter_map(|rest| hex(rest.split([',', ';', ' ']).next().unwrap_or("")))
            .collect();
        let shared = l.contains("VK_OBJECT_TYPE_QUEUE") || l.contains("VK_OBJECT_TYPE_DEVICE;");
        if handles.is_empty() || shared || handles.iter().any(|h| ours.contains(h)) {
            runtime.push(l.to_string());
        } else {
            own.push(l.to_string());
        }
    }
    (runtime, own)
}

#[test]
fn validation_messages_are_attributed_to_the_runtime_unless_they_name_only_app_objects() {
    let log = "\
        DEBUG leasehold_compositor::vk::app::objects: runtime objects on the app's device image=0xaa memory=0xbb command_buffer=0x5cc\n\
        DEBUG leasehold_compositor::vk::app::objects: runtime objects on the app's device fence=0xdd semaphore=0x0\n\
        Validation Error: [ VUID-vkCmdPipelineBarrier-commandBuffer-recording ] Object 0: handle = 0x55d0c8a0f0e0, type = VK_OBJECT_TYPE_COMMAND_BUFFER; | vkCmdPipelineBarrier()\n\
        Validation Error: [ VUID-x ] Object 0: handle = 0x5cc, type = VK_OBJECT_TYPE_COMMAND_BUFFER; | mine\n\
        Validation Error: [ VUID-y ] Object 0: handle = 0x1234, type = VK_OBJECT_TYPE_QUEUE; | shared\n\
        Validation Warning: [ VUID-z ] no object at all\n";
    let (runtime, own) = attribute_validation(log);
    assert_eq!(own.len(), 1, "{own:?}");
    assert!(own[0].contains("0x55d0c8a0f0e0"));
    assert_eq!(runtime.len(), 3, "{runtime:?}");
}
