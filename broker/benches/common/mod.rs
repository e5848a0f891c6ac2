//! What the in-process benches share: the process's RssAnon, `malloc_trim`,
//! and the node jobs a bench runs beside its load.

use std::sync::Arc;
use std::time::Duration;

use shale_broker::Broker;
use shale_broker::tasks::Background;

/// The allocator of the `shale` binary (gateway/src/main.rs), so the benches
/// measure the memory a node would use.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// The process's `RssAnon` in KiB (heap and other anonymous memory, not the
/// page cache of the mapped segments).
pub fn rss_anon_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("RssAnon:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("RssAnon line")
}

pub fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

/// Gives glibc's heap's free pages back to the kernel. Diagnostic only, and
/// since the benches (like the node) allocate through mimalloc it finds
/// little: what RssAnon shows is mimalloc's. `false` where there is no such call.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
pub fn malloc_trim_now() -> bool {
    unsafe extern "C" {
        fn malloc_trim(pad: usize) -> i32;
    }
    // SAFETY: malloc_trim only walks the allocator's own free lists.
    unsafe { malloc_trim(0) == 1 }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
pub fn malloc_trim_now() -> bool {
    false
}

/// The node's own `cluster` (lease renewal), `timers` (fires, checks) and
/// `timer-upkeep` (spills, merges, checkpoints, journal trims) jobs, nothing
/// else (uploads would fill the process with object-store state), running
/// until stopped.
pub fn node_jobs(broker: &Arc<Broker>) -> Background {
    let jobs = broker
        .jobs(Duration::from_secs(1))
        .into_iter()
        .filter(|j| matches!(j.name, "cluster" | "timers" | "timer-upkeep"))
        .collect();
    Background::spawn(jobs)
}
