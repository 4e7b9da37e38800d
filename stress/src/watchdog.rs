//! A hang detector: if the run makes no progress for a while (a deadlock or
//! livelock in the allocator), print where it was, with the seed, and abort,
//! so that the hang shows as a failure (and a core dump or a debugger can
//! look at the threads) instead of a test that never ends.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// Progress the watchdog watches: a heartbeat that workers and the main
/// thread bump, and where the run is.
#[derive(Debug, Default)]
pub struct Progress {
    beats: AtomicUsize,
    round: AtomicUsize,
    done: AtomicBool,
}

impl Progress {
    /// A heartbeat: the run is moving.
    #[inline]
    pub fn beat(&self) {
        self.beats.fetch_add(1, Ordering::Relaxed);
    }

    /// The run has reached `round`.
    pub fn enter_round(&self, round: usize) {
        self.round.store(round, Ordering::Relaxed);
        self.beat();
    }

    /// The run is over: the watchdog stops.
    pub fn finish(&self) {
        self.done.store(true, Ordering::Relaxed);
    }

    /// Watches until [`Progress::finish`]; aborts the process if no beat
    /// came for `limit`.
    pub fn watch(&self, seed: u64, limit: Duration) {
        let mut last = self.beats.load(Ordering::Relaxed);
        let mut since = Instant::now();
        while !self.done.load(Ordering::Relaxed) {
            std::thread::sleep(Duration::from_millis(100));
            let now = self.beats.load(Ordering::Relaxed);
            if now != last {
                last = now;
                since = Instant::now();
            } else if since.elapsed() > limit {
                eprintln!(
                    "strata-stress: no progress for {} s in round {} (seed {seed:#018x}): \
                     deadlock or livelock? aborting",
                    limit.as_secs(),
                    self.round.load(Ordering::Relaxed)
                );
                std::process::abort();
            }
        }
    }
}
