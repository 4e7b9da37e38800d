//! The `checked` build's extra detections, one test per kind:
//! `cargo test -p strata --features checked --test checked`.
//!
//! The quarantine is shared by the whole process, so a test that writes a
//! freed block runs in a child process of its own: the block may leave the
//! quarantine on any thread, and is reported there.
#![cfg(feature = "checked")]

mod common;

#[global_allocator]
static GLOBAL: strata::Strata = strata::Strata;

use std::alloc::{alloc, dealloc, realloc, Layout};
use std::hint::black_box;
use std::os::unix::process::ExitStatusExt;
use std::process::Command;

use strata::{BadFree, BadFreeKind};

use common::hook::caught;

#[test]
fn double_free_of_a_small_object() {
    for size in [8usize, 24, 100, 3000, 200_000] {
        let l = Layout::from_size_align(size, 8).unwrap();
        // black_box: a release build may drop an allocation nobody uses,
        // and with it the frees.
        // SAFETY: non-zero layout; the second free is the bad one.
        let seen = caught(|| unsafe {
            let p = black_box(alloc(l));
            dealloc(p, l);
            dealloc(black_box(p), l);
        });
        assert_eq!(seen.len(), 1, "size {size}: {seen:?}");
        assert_eq!(seen[0].kind, BadFreeKind::DoubleFree, "size {size}");
    }
}

#[test]
fn aligned_interior_pointer_of_a_small_object() {
    let l = Layout::from_size_align(96, 8).unwrap();
    // SAFETY: non-zero layout.
    let p = unsafe { alloc(l) };
    let q = p.wrapping_add(32);
    // SAFETY: a bad free, refused.
    let seen = caught(|| unsafe { dealloc(q, l) });
    assert_eq!(
        seen,
        vec![BadFree {
            ptr: q as usize,
            kind: BadFreeKind::Interior
        }]
    );
    // SAFETY: the live block.
    unsafe { dealloc(p, l) };
}

#[test]
fn small_dealloc_with_the_wrong_layout() {
    let l = Layout::from_size_align(64, 8).unwrap();
    // SAFETY: non-zero layout.
    let p = unsafe { alloc(l) };
    let wrong = Layout::from_size_align(2000, 8).unwrap();
    // SAFETY: a bad free, refused.
    let seen = caught(|| unsafe { dealloc(p, wrong) });
    assert_eq!(
        seen,
        vec![BadFree {
            ptr: p as usize,
            kind: BadFreeKind::WrongLayout
        }]
    );
    // SAFETY: the live block.
    unsafe { dealloc(p, l) };
}

#[test]
fn small_dealloc_of_a_pointer_never_allocated() {
    let local = [0u64; 8];
    let p = local.as_ptr() as *mut u8;
    // SAFETY: a bad free, refused.
    let seen = caught(|| unsafe { dealloc(p, Layout::from_size_align(64, 8).unwrap()) });
    assert_eq!(
        seen,
        vec![BadFree {
            ptr: p as usize,
            kind: BadFreeKind::NeverAllocated
        }]
    );
}

/// Runs test `name` alone in a child process; `true` in that child.
fn alone(name: &str) -> bool {
    common::in_child("STRATA_CHECKED_ALONE", name, &[])
}

/// Runs test `name` in a child process that is expected to die; `None` in
/// that child (which then runs the body), the child's signal in the parent.
fn dies(name: &str) -> Option<Option<i32>> {
    if std::env::var("STRATA_CHECKED_DIES").as_deref() == Ok(name) {
        return None;
    }
    let out = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", name, "--nocapture", "--test-threads=1"])
        .env("STRATA_CHECKED_DIES", name)
        .output()
        .unwrap();
    Some(out.status.signal())
}

fn one(kind: BadFreeKind, p: *mut u8, seen: Vec<BadFree>) {
    assert_eq!(
        seen,
        vec![BadFree {
            ptr: p as usize,
            kind
        }]
    );
}

const SIZES: [usize; 10] = [0, 1, 8, 24, 40, 100, 1000, 4096, 200_000, 300_000];

#[test]
fn a_one_byte_overrun_is_found_on_free() {
    for size in SIZES {
        let l = Layout::from_size_align(size.max(1), 8).unwrap();
        // SAFETY: non-zero layout; one byte past it is inside the object's
        // room for the size word (or a large block's slack), so only this
        // block's marks are written.
        let p = unsafe { alloc(l) };
        unsafe { p.add(l.size()).write(0) };
        one(
            BadFreeKind::HeapOverflow,
            p,
            caught(|| unsafe { dealloc(p, l) }),
        );
        // Through the C-style free too, with a byte that is not zero.
        let p = strata::raw::alloc(size, 8);
        unsafe { p.add(size).write(b'x') };
        one(
            BadFreeKind::HeapOverflow,
            p,
            caught(|| unsafe { strata::raw::free(p) }),
        );
    }
}

/// A 32-byte overrun may reach the next object, so it runs alone, and
/// every report is recorded till the process ends: the next object, if it
/// is free, is reported as written after free when strata next checks it.
#[test]
fn a_32_byte_overrun_is_found_on_free() {
    if !alone("a_32_byte_overrun_is_found_on_free") {
        return;
    }
    let mut overrun = Vec::new();
    let seen = caught(|| {
        for size in SIZES {
            let p = strata::raw::alloc(size, 8);
            // SAFETY: deliberately past the block (into its slack, its
            // marks, or the next object, which nobody uses in this process).
            unsafe {
                p.add(size).write_bytes(b'x', 32);
                strata::raw::free(p);
            }
            overrun.push(p as usize);
        }
    });
    strata::set_bad_free_hook(Some(|_| {}));
    for p in overrun {
        let kinds: Vec<_> = seen.iter().filter(|b| b.ptr == p).map(|b| b.kind).collect();
        assert_eq!(kinds, [BadFreeKind::HeapOverflow], "{p:#x}: {seen:?}");
    }
}

/// A run of writes past a large block meets its guard page.
#[test]
fn a_run_past_a_large_block_faults() {
    let Some(signal) = dies("a_run_past_a_large_block_faults") else {
        let l = Layout::from_size_align(1 << 20, 8).unwrap();
        // SAFETY: deliberately writes up to 1 MiB past the block; the guard
        // page stops it. Volatile, so that every write happens.
        unsafe {
            let p = alloc(l);
            for i in (0..2 << 20).step_by(64) {
                p.add(i).write_volatile(1);
            }
        }
        unreachable!("wrote 1 MiB past a large block");
    };
    assert_eq!(signal, Some(libc::SIGSEGV));
}

/// A large block's guard page is made writable again when it is freed: the
/// pages are reused, and a block that takes them can write all of itself.
#[test]
fn freed_large_blocks_are_writable_again() {
    for size in [300 << 10, 1 << 20, 40 << 20] {
        let l = Layout::from_size_align(size, 8).unwrap();
        // SAFETY: non-zero layouts; every write is inside its block.
        unsafe {
            let p = alloc(l);
            dealloc(p, l);
            let big = Layout::from_size_align(size + (64 << 10), 8).unwrap();
            let q = alloc(big);
            q.write_bytes(7, big.size());
            let r = alloc(l);
            r.write_bytes(7, size);
            dealloc(q, big);
            dealloc(r, l);
        }
    }
}

#[test]
fn dealloc_with_another_size_of_the_same_class() {
    let l = Layout::from_size_align(100, 8).unwrap();
    let near = Layout::from_size_align(104, 8).unwrap();
    // SAFETY: non-zero layout; the bad free is refused.
    let p = unsafe { alloc(l) };
    one(
        BadFreeKind::WrongLayout,
        p,
        caught(|| unsafe { dealloc(p, near) }),
    );
    // SAFETY: the live block, freed with its layout.
    unsafe { dealloc(p, l) };
}

#[test]
fn every_block_handed_out_reads_as_zero() {
    let sizes = [1usize, 16, 40, 100, 1000, 4000, 70_000, 300_000, 3 << 20];
    for round in 0..3 {
        let mut live = Vec::new();
        for &size in &sizes {
            for _ in 0..20 {
                let l = Layout::from_size_align(size, 16).unwrap();
                // SAFETY: non-zero layout; reads and writes inside it.
                let p = unsafe { alloc(l) };
                let bytes = unsafe { std::slice::from_raw_parts_mut(p, size) };
                common::assert_zero(bytes, &format!("round {round}, {size} bytes"));
                bytes.fill(0xA5);
                live.push((p, l));
            }
        }
        for (p, l) in live {
            // SAFETY: live blocks of these layouts.
            unsafe { dealloc(p, l) };
        }
    }
}

#[test]
fn a_freed_block_is_not_the_next_one_handed_out() {
    let l = Layout::from_size_align(48, 8).unwrap();
    // SAFETY: non-zero layout; the freed block is only compared.
    unsafe {
        let p = alloc(l);
        dealloc(p, l);
        let next: Vec<*mut u8> = (0..100).map(|_| alloc(l)).collect();
        assert!(!next.contains(&p), "a freed block came back at once");
        for q in next {
            dealloc(q, l);
        }
    }
}

#[test]
fn double_free_with_another_free_between() {
    let l = Layout::from_size_align(32, 8).unwrap();
    // SAFETY: non-zero layout; the third free is the bad one.
    let (a, seen) = unsafe {
        let a = alloc(l);
        let b = alloc(l);
        dealloc(a, l);
        dealloc(b, l);
        (a, caught(|| dealloc(a, l)))
    };
    one(BadFreeKind::DoubleFree, a, seen);
}

#[test]
fn write_after_free_then_free_again() {
    if !alone("write_after_free_then_free_again") {
        return;
    }
    // Poison covers an object's first KiB (and its last word).
    for (size, at) in [(24usize, 23usize), (200, 199), (3000, 1000), (3000, 3064)] {
        let l = Layout::from_size_align(size, 8).unwrap();
        // SAFETY: deliberately writes a freed object (inside the object)
        // and frees it again; refused. The object is still in quarantine,
        // and is reported again when it leaves.
        let (p, seen) = unsafe {
            let p = alloc(l);
            dealloc(p, l);
            p.add(at).write(0x42);
            (
                p,
                caught(|| {
                    dealloc(p, l);
                    strata::release_free_memory();
                }),
            )
        };
        let again = BadFree {
            ptr: p as usize,
            kind: BadFreeKind::WriteAfterFree,
        };
        assert_eq!(seen, [again, again]);
    }
}

#[test]
fn write_after_free_is_found_when_the_block_leaves_quarantine() {
    if !alone("write_after_free_is_found_when_the_block_leaves_quarantine") {
        return;
    }
    let l = Layout::from_size_align(200, 8).unwrap();
    let mut p = std::ptr::null_mut();
    let seen = caught(|| {
        // SAFETY: deliberately writes a freed block (inside its bytes).
        unsafe {
            p = alloc(l);
            dealloc(p, l);
            p.add(64).write(0x42);
        }
        strata::release_free_memory();
    });
    one(BadFreeKind::WriteAfterFree, p, seen);
    // The same found by later frees pushing it out.
    let seen = caught(|| {
        // SAFETY: as above, then plain allocations and frees.
        unsafe {
            p = alloc(l);
            dealloc(p, l);
            p.add(100).write(0x42);
            let more: Vec<*mut u8> = (0..1000).map(|_| alloc(l)).collect();
            for q in more {
                dealloc(q, l);
            }
        }
    });
    one(BadFreeKind::WriteAfterFree, p, seen);
}

#[test]
fn realloc_moves_the_block_and_keeps_its_bytes() {
    for (from, to) in [
        (24usize, 30usize),
        (100, 20),
        (1000, 300_000),
        (300_000, 400_000),
    ] {
        let l = Layout::from_size_align(from, 8).unwrap();
        // SAFETY: non-zero layouts; reads and writes inside the blocks.
        unsafe {
            let p = alloc(l);
            p.write_bytes(9, from);
            let q = realloc(p, l, to);
            assert_ne!(p, q, "{from} -> {to}: resized in place");
            let kept = from.min(to);
            assert!(std::slice::from_raw_parts(q, kept).iter().all(|&b| b == 9));
            if to > from {
                common::assert_zero(std::slice::from_raw_parts(q.add(from), to - from), "grown");
            }
            dealloc(q, Layout::from_size_align(to, 8).unwrap());
        }
    }
}

#[test]
fn the_usable_size_is_the_size_asked_for() {
    for size in SIZES {
        let p = strata::raw::alloc(size, 8);
        // SAFETY: a live block.
        unsafe {
            assert_eq!(strata::raw::usable_size(p), size);
            strata::raw::free(p);
        }
        let l = Layout::from_size_align(size.max(1), 8).unwrap();
        assert_eq!(strata::usable_size(l), l.size());
    }
}

#[test]
fn realloc_of_a_freed_block() {
    let p = strata::raw::alloc(64, 8);
    // SAFETY: p is freed, then deliberately resized.
    unsafe { strata::raw::free(p) };
    let mut q = p;
    let seen = caught(|| q = unsafe { strata::raw::realloc(p, 128, 8) });
    assert!(q.is_null());
    one(BadFreeKind::DoubleFree, p, seen);
}

/// A 48-byte span is one 8 KiB page of 170 objects and 32 bytes left over:
/// an address 8160 bytes in is a multiple of 48 but no object's.
#[test]
fn free_past_the_last_object_of_a_span() {
    let p = strata::raw::alloc(40, 8); // the 48-byte class, with the size word
    let past = ((p as usize & !8191) + 8160) as *mut u8;
    one(
        BadFreeKind::Interior,
        past,
        caught(|| unsafe { strata::raw::free(past) }),
    );
    // SAFETY: the live block.
    unsafe { strata::raw::free(p) };
}

/// A use-after-free write over a free object's first word (the one a
/// free-list link would use) cannot redirect allocation: thread and
/// transfer caches keep free objects as arrays of pointers and spans as a
/// bitmap, and none reads anything out of them. The forged address is
/// never handed out, and the
/// object itself comes back in use unharmed (its tag and poison are intact)
/// once the class's free objects are taken.
#[test]
fn overwritten_first_word_of_a_free_object_does_not_redirect_allocation() {
    if !alone("overwritten_first_word_of_a_free_object_does_not_redirect_allocation") {
        return;
    }
    let l = Layout::from_size_align(48, 8).unwrap();
    let target = [0u64; 8];
    let t = target.as_ptr() as *mut u8;
    let seen = caught(|| {
        // black_box: in a release build the comparisons with a freed
        // pointer may otherwise be folded away.
        // SAFETY: deliberately writes into a freed object's first word
        // (which the checked build does not poison), then allocates.
        unsafe {
            let a = black_box(alloc(l));
            dealloc(a, l);
            let a = black_box(a);
            (a as *mut usize).write(t as usize);
            let mut live = Vec::new();
            let mut came_back = false;
            for _ in 0..5000 {
                let q = black_box(alloc(l));
                assert_ne!(q, t, "allocation followed a forged word");
                came_back |= q == a;
                live.push(q);
                if live.len() == 50 {
                    for q in live.drain(..) {
                        dealloc(q, l);
                    }
                }
            }
            // Lists and transfer caches hand out their newest objects
            // first, so an object that left the quarantine may wait under
            // others while the loop above keeps 50 live. Taking without
            // giving back empties every list of the class before a new
            // span is carved: the object must be among what comes out.
            for _ in 0..20_000 {
                if came_back {
                    break;
                }
                let q = black_box(alloc(l));
                assert_ne!(q, t, "allocation followed a forged word");
                came_back |= q == a;
                live.push(q);
            }
            assert!(came_back, "the object never came back");
            for q in live {
                dealloc(q, l);
            }
        }
    });
    assert_eq!(seen, vec![]);
}
