//! The quick mode of the stress suite, as ordinary tests (`cargo test -p
//! strata-stress`): a few rounds of the stress engine with strata as the
//! global allocator. The tests take turns (one lock), so that each one's
//! checks of `strata::stats()` and VmRSS see only its own memory.
//!
//! `STRATA_STRESS_SEED` (decimal or `0x` hex) replaces the fixed seeds.

#[global_allocator]
static A: strata::Strata = strata::Strata;

use std::alloc::Layout;
use std::sync::{Mutex, MutexGuard};

use strata_stress::block::{Block, Kind};
use strata_stress::tally::Tally;
use strata_stress::{run, seed_from_env, Config, Length, Summary};

static SERIAL: Mutex<()> = Mutex::new(());

fn serial() -> MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

fn quick(cfg: Config) -> Summary {
    eprintln!("quick stress, seed {:#018x}", cfg.seed);
    match run(&cfg, |r| eprintln!("{r}")) {
        Ok(s) => {
            eprintln!("{s}");
            s
        }
        Err(e) => panic!("{e}"),
    }
}

#[test]
fn quick_stress() {
    let _g = serial();
    let s = quick(Config::quick(seed_from_env().unwrap_or(0x5EED_0001)));
    let t = s.tally;
    assert_eq!(s.rounds, 12);
    assert!(t.blocks > 10_000, "{t:?}");
    assert_eq!(t.frees, t.blocks, "every block is freed by the end: {t:?}");
    assert!(t.huge >= 12, "one huge block per round at least: {t:?}");
    assert!(t.zeroed > 0 && t.aligned > 0 && t.reallocs > 0, "{t:?}");
    assert!(t.swaps > 0 && t.handoffs > 0, "{t:?}");
    assert!(t.checks > t.blocks, "{t:?}");
}

/// More threads per round, fewer operations each: more thread creation and
/// exit, more blocks crossing threads.
#[test]
fn quick_stress_many_short_threads() {
    let _g = serial();
    let mut cfg = Config::quick(seed_from_env().unwrap_or(0x5EED_0002));
    cfg.min_threads = 4;
    cfg.max_threads = 8;
    cfg.ops_per_thread = 1_500;
    cfg.blocks_per_thread = 64;
    cfg.length = Length::Rounds(12);
    let s = quick(cfg);
    assert_eq!(s.tally.frees, s.tally.blocks);
}

/// One allocation in 16 large (1 to 64 MiB), a third of those huge: large
/// spans, huge mappings, mremap and the huge cache under cross-thread frees.
#[test]
fn quick_stress_large_blocks() {
    let _g = serial();
    let mut cfg = Config::quick(seed_from_env().unwrap_or(0x5EED_0003));
    cfg.max_threads = 3;
    cfg.ops_per_thread = 1_500;
    cfg.blocks_per_thread = 48;
    cfg.large_one_in = 16;
    cfg.length = Length::Rounds(8);
    let s = quick(cfg);
    assert_eq!(s.tally.frees, s.tally.blocks);
    assert!(s.tally.huge > 30, "{:?}", s.tally);
}

/// The checks themselves: a block whose contents change is reported at the
/// exact byte, and a non-zero byte in zeroed memory would be too.
#[test]
fn checks_catch_corruption() {
    let _g = serial();
    let mut t = Tally::default();
    for (size, align) in [
        (1, 1),
        (100, 8),
        (5000, 64),
        (300_000, 4096),
        (3 << 20, 65536),
    ] {
        let layout = Layout::from_size_align(size, align).unwrap();
        let b = Block::new(layout, Kind::Zeroed, 42, &mut t).unwrap();
        b.verify("clean", &mut t).unwrap();
        let off = size - 1 - size / 3;
        // SAFETY: off < size, inside the live block this test owns.
        unsafe { *b.as_ptr().add(off) ^= 0x40 };
        let e = b.verify("corrupted", &mut t).unwrap_err();
        assert!(e.contains(&format!("byte {off} of {size}")), "{e}");
        // SAFETY: as above; undoes the change.
        unsafe { *b.as_ptr().add(off) ^= 0x40 };
        b.free("restored", &mut t).unwrap();
    }
}
