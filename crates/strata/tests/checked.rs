//! The `checked` build's extra detections, one test per kind:
//! `cargo test -p strata --features checked --test checked`.
#![cfg(feature = "checked")]

mod common;

#[global_allocator]
static GLOBAL: strata::Strata = strata::Strata;

use std::alloc::{alloc, dealloc, Layout};

use strata::{BadFree, BadFreeKind};

use common::hook::caught;

#[test]
fn double_free_of_a_small_object() {
    for size in [8usize, 24, 100, 3000, 200_000] {
        let l = Layout::from_size_align(size, 8).unwrap();
        // SAFETY: non-zero layout; the second free is the bad one.
        let seen = caught(|| unsafe {
            let p = alloc(l);
            dealloc(p, l);
            dealloc(p, l);
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

#[test]
fn write_after_free_is_found_on_reuse() {
    let l = Layout::from_size_align(200, 8).unwrap();
    let seen = caught(|| {
        // SAFETY: deliberately writes a freed object (inside its bytes), then
        // allocates the class again on this thread until it comes back.
        unsafe {
            let p = alloc(l);
            dealloc(p, l);
            p.add(64).write(0x42);
            let mut again = Vec::new();
            for _ in 0..64 {
                let q = alloc(l);
                again.push(q);
                if q == p {
                    break;
                }
            }
            for q in again {
                dealloc(q, l);
            }
        }
    });
    assert!(
        seen.iter().any(|b| b.kind == BadFreeKind::WriteAfterFree),
        "{seen:?}"
    );
}

/// A use-after-free write over a free object's first word cannot redirect
/// the next allocation. A thread cache keeps its free objects as a stack of
/// pointers and never reads a link out of an object, so the forged word is
/// simply ignored: the next allocations are the two freed objects, in
/// last-freed-first order. (Links exist only in batches on their way
/// through the central layer, and are encoded there: `strata_base::link`.)
#[test]
fn overwritten_first_word_of_a_free_object_does_not_redirect_allocation() {
    let l = Layout::from_size_align(48, 8).unwrap();
    let target = [0u64; 8];
    // SAFETY: deliberately writes into a freed object (its first word, which
    // the checked build does not poison), then allocates normally.
    let (a, b, x, y) = unsafe {
        let a = alloc(l);
        let b = alloc(l);
        dealloc(b, l);
        dealloc(a, l);
        (a as *mut usize).write(target.as_ptr() as usize);
        let x = alloc(l);
        let y = alloc(l);
        (a, b, x, y)
    };
    assert_eq!((x, y), (a, b), "allocation followed a forged word");
    // SAFETY: both are live blocks of this layout.
    unsafe {
        dealloc(x, l);
        dealloc(y, l);
    }
}
