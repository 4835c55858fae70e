//! What the threads Leasehold starts need from where they are started: real-time
//! scheduling where the process may have it, and the starter's log subscriber (inside an
//! application's process the runtime sets its own only for the duration of each OpenXR
//! call, so a thread that does not carry it over logs to no one).

/// Asks for SCHED_FIFO at `priority` (1–99) for the calling thread. Without the
/// privilege (CAP_SYS_NICE or an rtprio limit) the error says why; the caller decides
/// how to say so.
pub fn request_sched_fifo(priority: u8) -> Result<(), String> {
    use thread_priority::{
        RealtimeThreadSchedulePolicy, ThreadPriority, ThreadSchedulePolicy,
        set_thread_priority_and_policy, thread_native_id,
    };
    let policy = ThreadSchedulePolicy::Realtime(RealtimeThreadSchedulePolicy::Fifo);
    let prio = priority
        .try_into()
        .map(ThreadPriority::Crossplatform)
        .map_err(|e| format!("priority {priority}: {e:?}"))?;
    set_thread_priority_and_policy(thread_native_id(), prio, policy).map_err(|e| format!("{e:?}"))
}

/// `f`, to run on another thread under the log subscriber current here.
pub fn with_starters_logs<R>(f: impl FnOnce() -> R) -> impl FnOnce() -> R {
    let logs = tracing::dispatcher::get_default(|d| d.clone());
    move || tracing::dispatcher::with_default(&logs, f)
}
