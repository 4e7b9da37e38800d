//! The fast walker's memo gives exactly what a walk gives: a capture
//! repeated from the memo has the frames libgcc's walker finds, and a
//! capture from the same place and depth on another call path (the same
//! start registers, the same innermost return address) gets its own.

use std::hint::black_box;
use std::sync::{Mutex, MutexGuard};

use strata_os::stack::{capture_keyed_with, fast_walk_fallbacks, Walker};

/// A thread that finds its memo slot held by another thread walks without
/// a memo and gets key 0 (`strata_os::unwind`'s memo, "Slots"), and the
/// test harness runs tests on threads of their own at the same time: the
/// tests here, which look at keys, run one at a time.
static ALONE: Mutex<()> = Mutex::new(());

fn alone() -> MutexGuard<'static, ()> {
    ALONE.lock().unwrap_or_else(|e| e.into_inner())
}

/// A capture's frames and key, and where the capturing function's frame
/// was (to show two paths started from the same stack pointer).
struct Seen {
    frames: Vec<usize>,
    key: u64,
    at: usize,
}

#[inline(never)]
fn leaf(w: Walker) -> Seen {
    let mut out = [0usize; 64];
    let here = 0u8;
    let (n, key) = black_box(capture_keyed_with(w, &mut out, 0));
    Seen {
        frames: out[..n].to_vec(),
        key,
        at: black_box(&here) as *const u8 as usize,
    }
}

#[inline(never)]
fn mid(w: Walker) -> Seen {
    let s = black_box(leaf(w));
    black_box(0u8);
    s
}

/// Two callers of `mid` of the same shape: the same frame size, so `leaf`
/// runs at the same stack pointer under either; only the return address
/// `mid` goes back to differs.
#[inline(never)]
fn via_a(w: Walker) -> Seen {
    let s = black_box(mid(black_box(w)));
    black_box(1u8);
    s
}

#[inline(never)]
fn via_b(w: Walker) -> Seen {
    let s = black_box(mid(black_box(w)));
    black_box(2u8);
    s
}

/// The path through `via_a` (or `via_b`), from one call site, so that
/// every capture of a test reached from here has the same outer frames.
#[inline(never)]
fn path(w: Walker, b: bool) -> Seen {
    let s = if b { via_b(w) } else { via_a(w) };
    black_box(3u8);
    s
}

/// Captures along each path in `ways`, all from the same call site (the
/// loop hidden from the optimiser, which would unroll it into several).
#[inline(never)]
fn run(ways: &[(Walker, bool)]) -> Vec<Seen> {
    let ways = black_box(ways);
    let mut seen = Vec::with_capacity(ways.len());
    let mut i = 0;
    while i < black_box(ways.len()) {
        let (w, b) = ways[i];
        seen.push(path(w, b));
        i += 1;
    }
    seen
}

/// The frames after the first (an address inside the capture function,
/// which differs between walkers).
fn callers(s: &Seen) -> &[usize] {
    &s.frames[1..]
}

#[test]
fn a_repeat_gives_the_frames_of_a_walk() {
    let _alone = alone();
    let fallbacks = fast_walk_fallbacks();
    let seen = run(&[
        (Walker::System, false),
        (Walker::Fast, false),
        (Walker::Fast, false),
    ]);
    let (system, first, again) = (&seen[0], &seen[1], &seen[2]);
    assert_eq!(fast_walk_fallbacks(), fallbacks, "the fast walk gave up");
    assert!(
        system.frames.len() >= 6,
        "only {} frames",
        system.frames.len()
    );
    assert_eq!(system.key, 0, "libgcc's walks have no key");
    assert_ne!(first.key, 0);
    // The second capture repeated the first: the same key and frames.
    assert_eq!(again.key, first.key);
    assert_eq!(again.frames, first.frames);
    assert_eq!(callers(again), callers(system));
}

#[test]
fn another_path_from_the_same_place_gets_its_own_frames() {
    let _alone = alone();
    // Alternating paths, each capture but the first on a memo the other
    // path left.
    let mut ways = vec![(Walker::System, false), (Walker::System, true)];
    for _ in 0..3 {
        ways.extend([(Walker::Fast, false), (Walker::Fast, true)]);
    }
    let seen = run(&ways);
    let (a_system, b_system) = (&seen[0], &seen[1]);
    for pair in seen[2..].chunks(2) {
        let (a, b) = (&pair[0], &pair[1]);
        assert_eq!(
            a.at, b.at,
            "the two paths capture from different stack pointers"
        );
        assert_eq!(a.frames.len(), b.frames.len());
        // The same innermost frames (the capture, leaf's return into mid,
        // mid's into via_a or via_b), then different ones.
        assert_eq!(a.frames[..3], b.frames[..3]);
        assert_ne!(a.frames[3], b.frames[3]);
        assert_ne!(a.key, b.key);
        assert_eq!(callers(a), callers(a_system));
        assert_eq!(callers(b), callers(b_system));
    }
}

#[test]
fn threads_repeat_their_own_stacks() {
    let _alone = alone();
    let handles: Vec<_> = (0..6)
        .map(|t| {
            std::thread::spawn(move || {
                let mut ways = vec![(Walker::System, false), (Walker::System, true)];
                for i in 0..200 {
                    ways.push((Walker::Fast, (i + t) % 3 == 0));
                }
                let seen = run(&ways);
                ways.iter()
                    .zip(&seen)
                    .skip(2)
                    .all(|(&(_, b), s)| callers(s) == callers(&seen[b as usize]))
            })
        })
        .collect();
    for h in handles {
        assert!(h.join().unwrap());
    }
}
