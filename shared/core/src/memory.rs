//! Handing freed memory back to the system. glibc's allocator keeps what was freed in the
//! middle of its heaps (and in one heap per thread) for reuse, so after a burst (a job's
//! output streaming through the services) the resident size stays at its peak although
//! nothing holds that memory any more. Every service trims its heaps every few seconds:
//! a walk over the free lists, far under a millisecond when there is nothing to give back.

use std::time::Duration;

/// How often the heaps are trimmed.
pub const TRIM_EVERY: Duration = Duration::from_secs(2);

/// Trims the heaps every [`TRIM_EVERY`] for as long as the runtime runs. Must be called
/// inside the runtime.
pub fn trim_regularly() {
    tokio::spawn(async {
        let mut tick = tokio::time::interval(TRIM_EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            trim();
        }
    });
}

/// Gives the heaps' free memory back to the system, where the allocator can.
pub fn trim() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only walks the allocator's own free lists; it has no
    // preconditions.
    unsafe {
        libc::malloc_trim(0);
    }
}
