//! What a round and a run report: the progress line and the summary.

use std::fmt;
use std::time::Duration;

use strata::Stats;

use crate::health::mib;
use crate::tally::Tally;

/// What one round did, for the progress line.
#[derive(Clone, Debug)]
pub struct RoundReport {
    /// The round number (from 0).
    pub round: usize,
    /// Worker threads in the round.
    pub threads: usize,
    /// What the round did.
    pub tally: Tally,
    /// Blocks live at the end of the round.
    pub live_blocks: usize,
    /// Bytes live at the end of the round.
    pub live_bytes: usize,
    /// strata's accounting at the end of the round.
    pub stats: Stats,
    /// Resident memory at the end of the round.
    pub rss: Option<usize>,
    /// Whether memory was released and checked this round.
    pub released: bool,
    /// How long the round took.
    pub elapsed: Duration,
}

impl fmt::Display for RoundReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "round {:>4}: {} threads, {:>6} allocs ({} huge), {:>6} frees, {:>5} reallocs, \
             {:>7} checks; live {} in {} blocks; mapped {}, in use {}, rss {}{} ({:.2} s)",
            self.round,
            self.threads,
            self.tally.blocks,
            self.tally.huge,
            self.tally.frees,
            self.tally.reallocs,
            self.tally.checks,
            mib(self.live_bytes),
            self.live_blocks,
            mib(self.stats.mapped_bytes),
            mib(self.stats.in_use_bytes),
            self.rss.map_or("?".into(), mib),
            if self.released { ", released" } else { "" },
            self.elapsed.as_secs_f64()
        )
    }
}

/// What a whole run did.
#[derive(Clone, Debug)]
pub struct Summary {
    /// The run seed.
    pub seed: u64,
    /// Rounds run.
    pub rounds: usize,
    /// Everything done, summed.
    pub tally: Tally,
    /// Wall time.
    pub elapsed: Duration,
    /// The most bytes live at once.
    pub peak_live: usize,
    /// VmRSS before the run.
    pub rss_before: Option<usize>,
    /// VmHWM (peak RSS of the process).
    pub peak_rss: Option<usize>,
    /// VmRSS after everything was freed and released.
    pub rss_after: Option<usize>,
    /// strata's accounting after everything was freed and released.
    pub stats: Stats,
}

impl fmt::Display for Summary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let t = &self.tally;
        let m = |v: Option<usize>| v.map_or("?".into(), mib);
        writeln!(
            f,
            "seed {:#018x}: {} rounds in {:.1} s, no failure",
            self.seed,
            self.rounds,
            self.elapsed.as_secs_f64()
        )?;
        writeln!(
            f,
            "blocks: {} allocated ({} zeroed, {} aligned > 16, {} huge), {} freed, {} reallocs, \
             {} slot swaps, {} hand-offs",
            t.blocks, t.zeroed, t.aligned, t.huge, t.frees, t.reallocs, t.swaps, t.handoffs
        )?;
        writeln!(
            f,
            "bytes: {} allocated, peak live {}",
            mib(t.bytes as usize),
            mib(self.peak_live)
        )?;
        writeln!(
            f,
            "checks: {} ({} checked)",
            t.checks,
            mib(t.checked_bytes as usize)
        )?;
        write!(
            f,
            "memory: rss before {}, peak {}, after release {}; strata mapped {}, in use {}, \
             free dirty {}, released in total {}, huge blocks resized by mremap {}",
            m(self.rss_before),
            m(self.peak_rss),
            m(self.rss_after),
            mib(self.stats.mapped_bytes),
            mib(self.stats.in_use_bytes),
            mib(self.stats.free_dirty_bytes),
            mib(self.stats.released_bytes_total as usize),
            self.stats.huge_remaps
        )
    }
}
