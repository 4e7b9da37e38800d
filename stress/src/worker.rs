//! One worker thread of a round: a random mix of allocations (plain,
//! zeroed, over-aligned, large, huge), checked frees, checked reallocs,
//! swaps with the shared slot array and hand-offs to other workers' inboxes.
//! At the end it takes in what was sent to it, frees a random half of its
//! blocks and hands the other half on to the next round.

use std::alloc::Layout;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use crossbeam_channel::{Receiver, Sender};
use strata_testkit::rng::{derive, Rng};

use crate::block::{Block, Kind};
use crate::config::Config;
use crate::tally::{Budget, Tally};
use crate::watchdog::Progress;

/// What the workers of one round share.
pub struct Shared<'a> {
    /// The run's parameters.
    pub cfg: &'a Config,
    /// The round number.
    pub round: usize,
    /// Workers in this round.
    pub threads: usize,
    /// The shared slot array (lives across rounds).
    pub slots: &'a [Mutex<Option<Block>>],
    /// Each worker's inbox, by index.
    pub inboxes: &'a [Sender<Block>],
    /// Live-memory accounting.
    pub budget: &'a Budget,
    /// Workers still in their operation phase (the only phase that sends).
    pub active: &'a AtomicUsize,
    /// Set on the first failure: everyone stops early.
    pub stop: &'a AtomicBool,
    /// The hang detector's heartbeat.
    pub progress: &'a Progress,
}

/// What a worker leaves behind.
pub struct Output {
    /// The half of its blocks that lives on into the next round.
    pub survivors: Vec<Block>,
    /// What it did.
    pub tally: Tally,
}

/// Leaves the operation phase when dropped, also on an early return.
struct Active<'a>(Option<&'a AtomicUsize>);

impl Active<'_> {
    fn leave(&mut self) {
        if let Some(a) = self.0.take() {
            a.fetch_sub(1, Ordering::AcqRel);
        }
    }
}

impl Drop for Active<'_> {
    fn drop(&mut self) {
        self.leave();
    }
}

/// A random size: log-uniform in `1..=max_small`, or one time in
/// `large_one_in` log-uniform in `max_small..=max_large`.
pub fn random_size(cfg: &Config, rng: &mut Rng) -> usize {
    if rng.one_in(cfg.large_one_in) {
        rng.log_uniform(cfg.max_small, cfg.max_large)
    } else {
        rng.log_uniform(1, cfg.max_small)
    }
}

/// A random alignment: one time in four a power of two up to 64 KiB, else
/// 1, 2, 4 or 8.
pub fn random_align(rng: &mut Rng) -> usize {
    if rng.one_in(4) {
        1 << rng.range(0, 16)
    } else {
        1 << rng.range(0, 3)
    }
}

struct Worker<'a, 'b> {
    sh: &'b Shared<'a>,
    me: usize,
    rng: Rng,
    mine: Vec<Block>,
    tally: Tally,
}

impl Worker<'_, '_> {
    fn take_random(&mut self) -> Option<Block> {
        if self.mine.is_empty() {
            return None;
        }
        let i = self.rng.below(self.mine.len());
        Some(self.mine.swap_remove(i))
    }

    fn free(&mut self, b: Block, when: &str) -> Result<(), String> {
        let size = b.size();
        b.free(when, &mut self.tally)?;
        self.sh.budget.freed(size);
        Ok(())
    }

    fn free_random(&mut self) -> Result<(), String> {
        match self.take_random() {
            Some(b) => self.free(b, "checked before free"),
            None => Ok(()),
        }
    }

    fn alloc(&mut self, size: usize, align: usize) -> Result<(), String> {
        if !self.sh.budget.try_alloc(size) {
            return self.free_random();
        }
        let layout = Layout::from_size_align(size, align).map_err(|e| e.to_string())?;
        let kind = if self.rng.one_in(5) {
            Kind::Zeroed
        } else {
            Kind::Plain
        };
        let seed = self.rng.next_u64();
        let b = Block::new(layout, kind, seed, &mut self.tally)?;
        self.mine.push(b);
        Ok(())
    }

    fn realloc_random(&mut self) -> Result<(), String> {
        let Some(b) = self.take_random() else {
            return Ok(());
        };
        let old = b.size();
        let new = if self.rng.one_in(2) {
            // Grow or shrink by a factor between 1/4 and 4.
            let f = self.rng.range(1, 16) as f64 / 4.0;
            ((old as f64 * f) as usize).clamp(1, self.sh.cfg.max_large)
        } else {
            random_size(self.sh.cfg, &mut self.rng)
        };
        if !self.sh.budget.try_resize(old, new) {
            self.mine.push(b);
            return Ok(());
        }
        let seed = self.rng.next_u64();
        let b = b.realloc(new, seed, &mut self.tally)?;
        self.mine.push(b);
        Ok(())
    }

    fn swap_slot(&mut self) -> Result<(), String> {
        let i = self.rng.below(self.sh.slots.len());
        let give = if self.rng.below(10) < 6 {
            self.take_random()
        } else {
            None
        };
        let got = {
            let mut slot = self.sh.slots[i].lock().map_err(|_| "slot lock poisoned")?;
            std::mem::replace(&mut *slot, give)
        };
        self.tally.swaps += 1;
        if let Some(b) = got {
            b.verify("taken from a shared slot", &mut self.tally)?;
            self.mine.push(b);
        }
        Ok(())
    }

    fn hand_off(&mut self) {
        if self.sh.threads < 2 {
            return;
        }
        let Some(b) = self.take_random() else { return };
        let to = (self.me + 1 + self.rng.below(self.sh.threads - 1)) % self.sh.threads;
        match self.sh.inboxes[to].send(b) {
            Ok(()) => self.tally.handoffs += 1,
            // The receiver gave up (it failed): keep the block.
            Err(e) => self.mine.push(e.into_inner()),
        }
    }

    fn receive(&mut self, inbox: &Receiver<Block>) -> Result<(), String> {
        while let Ok(b) = inbox.try_recv() {
            b.verify("received from another thread", &mut self.tally)?;
            self.mine.push(b);
        }
        Ok(())
    }

    fn reseed_random(&mut self) -> Result<(), String> {
        if self.mine.is_empty() {
            return Ok(());
        }
        let i = self.rng.below(self.mine.len());
        let seed = self.rng.next_u64();
        self.mine[i].reseed(seed, "checked before re-filling", &mut self.tally)
    }

    /// Many blocks of one small size at once (whole batches from the
    /// central lists), or many frees at once (spans going back).
    fn burst(&mut self) -> Result<(), String> {
        if self.rng.one_in(2) {
            let size = self.rng.log_uniform(1, 2048);
            let align = random_align(&mut self.rng).min(64);
            for _ in 0..self.rng.range(16, 128) {
                self.alloc(size, align)?;
            }
        } else {
            for _ in 0..self.mine.len() / 2 {
                self.free_random()?;
            }
        }
        Ok(())
    }

    fn op(&mut self) -> Result<(), String> {
        match self.rng.below(100) {
            0..=34 => {
                if self.mine.len() >= self.sh.cfg.blocks_per_thread {
                    return self.free_random();
                }
                let size = random_size(self.sh.cfg, &mut self.rng);
                let align = random_align(&mut self.rng);
                self.alloc(size, align)
            }
            35..=58 => self.free_random(),
            59..=68 => self.realloc_random(),
            69..=81 => self.swap_slot(),
            82..=92 => {
                self.hand_off();
                Ok(())
            }
            93..=98 => self.reseed_random(),
            _ => self.burst(),
        }
    }
}

/// Runs worker `me` of a round: its operations, then the hand-over. Returns
/// its survivors, or a failure message naming the seed, round, thread and
/// operation. On failure, sets `stop` and leaks what it holds.
pub fn run(sh: &Shared<'_>, me: usize, inbox: &Receiver<Block>) -> Result<Output, String> {
    let mut active = Active(Some(sh.active));
    let mut w = Worker {
        sh,
        me,
        rng: Rng::new(derive(sh.cfg.seed, sh.round as u64, me as u64)),
        mine: Vec::with_capacity(sh.cfg.blocks_per_thread * 2),
        tally: Tally::default(),
    };
    let mut step = 0;
    let res: Result<(), String> = (|| {
        while step < sh.cfg.ops_per_thread && !sh.stop.load(Ordering::Relaxed) {
            w.receive(inbox)?;
            w.op()?;
            step += 1;
            if step % 16 == 0 {
                sh.progress.beat();
            }
        }
        // No one sends once every worker has left its operation phase: after
        // that, one more pass empties the inbox for good.
        active.leave();
        while sh.active.load(Ordering::Acquire) != 0 {
            w.receive(inbox)?;
            std::thread::sleep(Duration::from_micros(200));
        }
        w.receive(inbox)?;
        // Half of the blocks (chosen at random) are freed, the rest go on.
        let n = w.mine.len();
        for _ in 0..n / 2 {
            w.free_random()?;
        }
        for b in &w.mine {
            b.verify("checked at the end of the round", &mut w.tally)?;
        }
        Ok(())
    })();
    match res {
        Ok(()) => Ok(Output {
            survivors: std::mem::take(&mut w.mine),
            tally: w.tally,
        }),
        Err(e) => {
            sh.stop.store(true, Ordering::Relaxed);
            // The blocks still held are leaked on purpose: some may be bad.
            Err(format!(
                "seed {:#018x}, round {}, thread {} of {}, op {}: {e}",
                sh.cfg.seed, sh.round, me, sh.threads, step
            ))
        }
    }
}
