//! What a stress run does: the quick mode (a fixed number of rounds, for
//! `cargo test`) and the long mode (rounds until a deadline), and the knobs
//! they share.

use std::time::Duration;

use strata_testkit::rng::mix;

const KIB: usize = 1024;
const MIB: usize = 1024 * KIB;

/// How long a run goes on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Length {
    /// Exactly this many rounds.
    Rounds(usize),
    /// Rounds until this much time has passed (at least one round).
    For(Duration),
}

/// The parameters of a run. Every choice the engine makes comes from
/// generators derived from `seed`, so a run is reproducible as far as thread
/// scheduling allows: each thread's sequence of operations is fixed by the
/// seed, the round and its index, while which blocks reach it from other
/// threads depends on timing.
#[derive(Clone, Debug)]
pub struct Config {
    /// The run seed.
    pub seed: u64,
    /// How long the run goes on.
    pub length: Length,
    /// Fewest worker threads in a round.
    pub min_threads: usize,
    /// Most worker threads in a round (each round picks a number between).
    pub max_threads: usize,
    /// Operations each worker does per round.
    pub ops_per_thread: usize,
    /// Blocks a worker aims to hold; above it, allocating turns into freeing.
    pub blocks_per_thread: usize,
    /// Slots in the shared array that threads swap blocks through.
    pub slots: usize,
    /// At most this many bytes are live at once.
    pub budget: usize,
    /// Normal sizes are log-uniform in `1..=max_small`.
    pub max_small: usize,
    /// One allocation in this many is large: log-uniform in
    /// `max_small..=max_large` (from 32 MiB that is strata's huge path).
    pub large_one_in: usize,
    /// The largest size of a large block.
    pub max_large: usize,
    /// Threads of the per-round rayon pool that checks survivors and slots.
    pub rayon_threads: usize,
    /// Every this many rounds, `release_free_memory()` is called and
    /// `free_dirty_bytes` checked to be small (0: never, only at the end).
    pub release_every: usize,
    /// After everything is freed and released, free dirty bytes must be at
    /// most this.
    pub max_free_dirty_after_release: usize,
    /// After everything is freed and released, VmRSS may exceed the RSS at
    /// start by at most strata's in-use and metadata bytes plus this.
    pub rss_slack: usize,
    /// With no progress for this long, the run aborts (hang detector).
    pub hang_limit: Duration,
}

impl Config {
    /// The quick mode: 12 rounds of 2 to 4 threads, 8000 operations each,
    /// at most 256 MiB live; seconds in release, about 10 s in a debug build
    /// on two cores.
    pub fn quick(seed: u64) -> Self {
        Config {
            seed,
            length: Length::Rounds(12),
            min_threads: 2,
            max_threads: 4,
            ops_per_thread: 8_000,
            blocks_per_thread: 256,
            slots: 256,
            budget: 256 * MIB,
            max_small: MIB,
            large_one_in: 200,
            max_large: 64 * MIB,
            rayon_threads: 2,
            release_every: 2,
            max_free_dirty_after_release: 8 * MIB,
            rss_slack: 48 * MIB,
            hang_limit: Duration::from_secs(120),
        }
    }

    /// The long mode: rounds for `secs` seconds, at most 1 GiB live.
    pub fn long(seed: u64, secs: u64) -> Self {
        Config {
            seed,
            length: Length::For(Duration::from_secs(secs)),
            min_threads: 2,
            max_threads: 8,
            ops_per_thread: 20_000,
            blocks_per_thread: 1_024,
            slots: 1_024,
            budget: 1024 * MIB,
            max_small: MIB,
            large_one_in: 200,
            max_large: 64 * MIB,
            rayon_threads: 3,
            release_every: 4,
            max_free_dirty_after_release: 8 * MIB,
            rss_slack: 48 * MIB,
            hang_limit: Duration::from_secs(120),
        }
    }
}

/// The seed in `STRATA_STRESS_SEED` (decimal or `0x` hex), if set.
///
/// # Panics
/// If the variable is set but is not a number.
pub fn seed_from_env() -> Option<u64> {
    let v = std::env::var("STRATA_STRESS_SEED").ok()?;
    let v = v.trim();
    let parsed = match v.strip_prefix("0x").or_else(|| v.strip_prefix("0X")) {
        Some(hex) => u64::from_str_radix(hex, 16),
        None => v.parse(),
    };
    Some(parsed.unwrap_or_else(|_| panic!("STRATA_STRESS_SEED={v:?} is not a number")))
}

/// A seed from the clock and the process id, for runs that want a new one.
pub fn fresh_seed() -> u64 {
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0);
    mix(t ^ u64::from(std::process::id()).rotate_left(32))
}
