//! Shared helpers for Leasehold's integration tests.

pub mod uhid;

use std::sync::Once;

/// Routes `tracing` output to the test harness (captured per test, shown on failure).
pub fn init_tracing() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let filter = tracing_subscriber::EnvFilter::try_from_env("LEASEHOLD_LOG")
            .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
        let _ = tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_test_writer()
            .try_init();
    });
}

/// The lines a child prints on stdout and stderr, as they come, through one channel (it
/// closes once both have ended); the readers' threads to join.
pub fn line_readers(
    child: &mut std::process::Child,
) -> (
    std::sync::mpsc::Receiver<String>,
    Vec<std::thread::JoinHandle<()>>,
) {
    use std::io::BufRead;
    let (tx, rx) = std::sync::mpsc::channel();
    let outputs = [
        child
            .stdout
            .take()
            .map(|o| Box::new(o) as Box<dyn std::io::Read + Send>),
        child
            .stderr
            .take()
            .map(|e| Box::new(e) as Box<dyn std::io::Read + Send>),
    ];
    let readers = outputs
        .into_iter()
        .flatten()
        .map(|r| {
            let tx = tx.clone();
            std::thread::spawn(move || {
                for line in std::io::BufReader::new(r).lines().map_while(Result::ok) {
                    let _ = tx.send(line);
                }
            })
        })
        .collect();
    (rx, readers)
}

/// A number from the runtime's frame report (LEASEHOLD_FRAME_REPORT, flat JSON).
pub fn report_field(report: &str, key: &str) -> f64 {
    let at = report
        .find(&format!("\"{key}\":"))
        .unwrap_or_else(|| panic!("{key} in the frame report:\n{report}"));
    report[at + key.len() + 3..]
        .split([',', '\n'])
        .next()
        .unwrap()
        .trim()
        .parse()
        .unwrap_or_else(|e| panic!("{key}: {e}\n{report}"))
}

/// This process's open file descriptors, threads and resident memory (kB), for leak tests.
pub mod proc_stats {
    pub fn fds() -> usize {
        std::fs::read_dir("/proc/self/fd").unwrap().count()
    }

    pub fn threads() -> usize {
        std::fs::read_dir("/proc/self/task").unwrap().count()
    }

    pub fn rss_kb() -> u64 {
        std::fs::read_to_string("/proc/self/status")
            .unwrap()
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap()
    }

    /// Bytes the C heap has handed out and not taken back (small blocks and mmapped ones),
    /// in kB: unlike RSS, free memory the allocator keeps in its arenas does not count.
    pub fn heap_in_use_kb() -> u64 {
        // SAFETY: mallinfo2 reads glibc's allocator statistics and has no preconditions.
        let m = unsafe { libc::mallinfo2() };
        ((m.uordblks + m.hblkhd) / 1024) as u64
    }
}
