//! The rounds of a run, and the checks between them.
//!
//! A round:
//! 1. the main thread makes one huge block (alloc, then realloc within or
//!    out of the huge range) and adds it to the survivors of the last round;
//! 2. the survivors are dealt at random into the inboxes (crossbeam
//!    channels) of this round's worker threads, which are created now
//!    (`std::thread::scope`) and run [`crate::worker::run`];
//! 3. the workers' survivors (half of what each held) are checked, partly
//!    re-filled, resized or freed on a fresh rayon pool (built and joined
//!    with `build_scoped`), which also checks every block in the shared
//!    slots;
//! 4. `strata::stats()` is checked against itself and what the engine holds
//!    and, every few rounds, `release_free_memory()` must leave little dirty
//!    memory.
//!
//! At the end everything is freed (checked), memory is released, and the
//! stats and VmRSS must show it.

use std::alloc::Layout;
use std::sync::atomic::{AtomicBool, AtomicUsize};
use std::sync::Mutex;
use std::time::Instant;

use rayon::prelude::*;
use strata_testkit::rng::{derive, Rng};

use crate::block::{Block, Kind, HUGE_MIN};
use crate::config::{Config, Length};
use crate::health;
use crate::report::{RoundReport, Summary};
use crate::tally::{Budget, Tally};
use crate::watchdog::Progress;
use crate::worker::{self, random_size, Shared};

/// The main thread's huge block of the round: allocated (plain or zeroed,
/// random alignment), then resized within the huge range (mremap) or below it.
fn huge_block(
    cfg: &Config,
    rng: &mut Rng,
    budget: &Budget,
    t: &mut Tally,
) -> Result<Option<Block>, String> {
    if cfg.max_large < HUGE_MIN {
        return Ok(None);
    }
    let size = rng.range(HUGE_MIN, cfg.max_large);
    if !budget.try_alloc(size) {
        return Ok(None);
    }
    let kind = if rng.one_in(2) {
        Kind::Zeroed
    } else {
        Kind::Plain
    };
    let layout = Layout::from_size_align(size, 1 << rng.range(0, 16)).map_err(|e| e.to_string())?;
    let b = Block::new(layout, kind, rng.next_u64(), t)?;
    let new = if rng.one_in(4) {
        rng.log_uniform(cfg.max_small, HUGE_MIN - 1)
    } else {
        rng.range(HUGE_MIN, cfg.max_large)
    };
    if !budget.try_resize(size, new) {
        return Ok(Some(b));
    }
    b.realloc(new, rng.next_u64(), t).map(Some)
}

/// Runs the workers of one round; returns their survivors.
fn run_workers(
    sh: &Shared<'_>,
    mut incoming: Vec<Block>,
    rng: &mut Rng,
) -> Result<(Vec<Block>, Tally), String> {
    let (txs, rxs): (Vec<_>, Vec<_>) = (0..sh.threads)
        .map(|_| crossbeam_channel::unbounded())
        .unzip();
    while !incoming.is_empty() {
        let b = incoming.swap_remove(rng.below(incoming.len()));
        let to = rng.below(sh.threads);
        txs[to]
            .send(b)
            .map_err(|_| "inbox closed before the round")?;
    }
    let sh = Shared {
        inboxes: &txs,
        ..*sh
    };
    let results: Vec<_> = std::thread::scope(|s| {
        let handles: Vec<_> = rxs
            .iter()
            .enumerate()
            .map(|(i, rx)| {
                let sh = &sh;
                std::thread::Builder::new()
                    .name(format!("stress-r{}-t{i}", sh.round))
                    .spawn_scoped(s, move || worker::run(sh, i, rx))
                    .expect("spawn a worker thread")
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap_or_else(|p| std::panic::resume_unwind(p)))
            .collect()
    });
    let mut survivors = Vec::new();
    let mut tally = Tally::default();
    for r in results {
        let out = r?;
        survivors.extend(out.survivors);
        tally += out.tally;
    }
    // Nothing may be left in flight.
    for rx in &rxs {
        if let Ok(b) = rx.try_recv() {
            return Err(format!("{} was left in an inbox after the round", b.name()));
        }
    }
    Ok((survivors, tally))
}

/// On a fresh rayon pool: checks every survivor, re-fills a quarter, resizes
/// or frees one in sixteen each; checks every slot and re-fills one in eight.
fn rayon_phase(
    cfg: &Config,
    round: usize,
    survivors: Vec<Block>,
    slots: &[Mutex<Option<Block>>],
    budget: &Budget,
    progress: &Progress,
) -> Result<(Vec<Block>, Tally), String> {
    const TAG: u64 = 0x7261_796F_6E00_0000;
    let ctx = |what: String, e: String| {
        format!(
            "seed {:#018x}, round {round}, rayon phase, {what}: {e}",
            cfg.seed
        )
    };
    let work = |pool: &rayon::ThreadPool| {
        pool.install(|| {
            let kept: Vec<Result<(Option<Block>, Tally), String>> = survivors
                .into_par_iter()
                .enumerate()
                .map(|(i, mut b)| {
                    progress.beat();
                    let mut t = Tally::default();
                    let mut rng = Rng::new(derive(cfg.seed, round as u64, TAG ^ i as u64));
                    let when = "checked by a rayon thread";
                    let r = match rng.below(16) {
                        0 => {
                            let size = b.size();
                            b.free(when, &mut t).map(|()| {
                                budget.freed(size);
                                None
                            })
                        }
                        1 => {
                            let (old, new) = (b.size(), random_size(cfg, &mut rng));
                            b.verify(when, &mut t).and_then(|()| {
                                if budget.try_resize(old, new) {
                                    b.realloc(new, rng.next_u64(), &mut t).map(Some)
                                } else {
                                    Ok(Some(b))
                                }
                            })
                        }
                        2..=5 => b.reseed(rng.next_u64(), when, &mut t).map(|()| Some(b)),
                        _ => b.verify(when, &mut t).map(|()| Some(b)),
                    };
                    r.map(|b| (b, t))
                        .map_err(|e| ctx(format!("survivor {i}"), e))
                })
                .collect();
            let slotted: Vec<Result<Tally, String>> = slots
                .par_iter()
                .enumerate()
                .map(|(i, m)| {
                    progress.beat();
                    let mut t = Tally::default();
                    let mut rng = Rng::new(derive(cfg.seed, round as u64, !TAG ^ i as u64));
                    let mut g = m.lock().map_err(|_| "slot lock poisoned".to_string())?;
                    if let Some(b) = g.as_mut() {
                        let when = "slot checked by a rayon thread";
                        let r = if rng.one_in(8) {
                            b.reseed(rng.next_u64(), when, &mut t)
                        } else {
                            b.verify(when, &mut t)
                        };
                        r.map_err(|e| ctx(format!("slot {i}"), e))?;
                    }
                    Ok(t)
                })
                .collect();
            (kept, slotted)
        })
    };
    let (kept, slotted) = rayon::ThreadPoolBuilder::new()
        .num_threads(cfg.rayon_threads)
        .thread_name(move |i| format!("stress-r{round}-rayon{i}"))
        .build_scoped(|t| t.run(), work)
        .map_err(|e| format!("cannot build the rayon pool: {e}"))?;
    let mut tally = Tally::default();
    let mut out = Vec::with_capacity(kept.len());
    for r in kept {
        let (b, t) = r?;
        out.extend(b);
        tally += t;
    }
    for r in slotted {
        tally += r?;
    }
    Ok((out, tally))
}

/// Runs the stress engine with `cfg`, calling `progress` after every round.
/// Returns the summary, or the first failure (a message naming the seed,
/// round, thread and what was wrong). On failure, blocks are leaked, not
/// freed.
pub fn run(cfg: &Config, report: impl FnMut(&RoundReport)) -> Result<Summary, String> {
    struct Finish<'a>(&'a Progress);
    impl Drop for Finish<'_> {
        fn drop(&mut self) {
            self.0.finish();
        }
    }
    let progress = Progress::default();
    std::thread::scope(|s| {
        std::thread::Builder::new()
            .name("stress-watchdog".into())
            .spawn_scoped(s, || progress.watch(cfg.seed, cfg.hang_limit))
            .expect("spawn the watchdog thread");
        let _finish = Finish(&progress);
        run_rounds(cfg, &progress, report)
    })
}

fn run_rounds(
    cfg: &Config,
    progress: &Progress,
    mut report: impl FnMut(&RoundReport),
) -> Result<Summary, String> {
    let start = Instant::now();
    let rss_before = health::rss();
    let budget = Budget::new(cfg.budget, HUGE_MIN);
    let slots: Vec<Mutex<Option<Block>>> = (0..cfg.slots).map(|_| Mutex::new(None)).collect();
    let stop = AtomicBool::new(false);
    let mut survivors: Vec<Block> = Vec::new();
    let mut total = Tally::default();
    let mut round = 0;
    loop {
        let done = match cfg.length {
            Length::Rounds(n) => round >= n,
            Length::For(d) => round > 0 && start.elapsed() >= d,
        };
        if done {
            break;
        }
        let t0 = Instant::now();
        progress.enter_round(round);
        let mut rng = Rng::new(derive(cfg.seed, round as u64, u64::MAX));
        let threads = rng.range(cfg.min_threads, cfg.max_threads);
        let mut tally = Tally::default();
        let huge = huge_block(cfg, &mut rng, &budget, &mut tally)
            .map_err(|e| format!("seed {:#018x}, round {round}, main thread: {e}", cfg.seed))?;
        survivors.extend(huge);
        let active = AtomicUsize::new(threads);
        let sh = Shared {
            cfg,
            round,
            threads,
            slots: &slots,
            inboxes: &[],
            budget: &budget,
            active: &active,
            stop: &stop,
            progress,
        };
        let (s, t) = run_workers(&sh, std::mem::take(&mut survivors), &mut rng)?;
        tally += t;
        let (s, t) = rayon_phase(cfg, round, s, &slots, &budget, progress)?;
        tally += t;
        survivors = s;
        let released = cfg.release_every > 0 && round % cfg.release_every == cfg.release_every - 1;
        if released {
            health::release_and_check(cfg.max_free_dirty_after_release)
                .map_err(|e| format!("seed {:#018x}, after round {round}: {e}", cfg.seed))?;
        }
        let stats = strata::stats();
        health::check_stats(&stats, budget.bytes(), budget.huge_bytes())
            .map_err(|e| format!("seed {:#018x}, after round {round}: {e}", cfg.seed))?;
        total += tally;
        report(&RoundReport {
            round,
            threads,
            tally,
            live_blocks: budget.blocks(),
            live_bytes: budget.bytes(),
            stats,
            rss: health::rss(),
            released,
            elapsed: t0.elapsed(),
        });
        round += 1;
    }
    // Free everything (checked), then everything must show as free.
    let fail = |e: String| format!("seed {:#018x}, end of run: {e}", cfg.seed);
    let mut t = Tally::default();
    for b in survivors
        .drain(..)
        .chain(slots.iter().filter_map(|m| m.lock().ok()?.take()))
    {
        let size = b.size();
        b.free("checked at the end of the run", &mut t)
            .map_err(fail)?;
        budget.freed(size);
    }
    total += t;
    if budget.blocks() != 0 || budget.bytes() != 0 {
        return Err(fail(format!(
            "the engine lost track of {} blocks ({} bytes)",
            budget.blocks(),
            budget.bytes()
        )));
    }
    let stats = health::release_and_check(cfg.max_free_dirty_after_release).map_err(fail)?;
    health::check_stats(&stats, 0, 0).map_err(fail)?;
    let rss_after = match rss_before {
        Some(b) => Some(health::check_rss_dropped(b, cfg.rss_slack).map_err(fail)?),
        None => None,
    };
    Ok(Summary {
        seed: cfg.seed,
        rounds: round,
        tally: total,
        elapsed: start.elapsed(),
        peak_live: budget.peak(),
        rss_before,
        peak_rss: health::peak_rss(),
        rss_after,
        stats: strata::stats(),
    })
}
