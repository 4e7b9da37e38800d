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

/// A use-after-free write over a free object's link cannot redirect the next
/// allocation: the encoded link decodes to garbage and strata stops.
#[test]
fn overwritten_free_list_link_stops_the_program() {
    if std::env::var_os("STRATA_LINK_CHILD").is_some() {
        let l = Layout::from_size_align(48, 8).unwrap();
        // SAFETY: deliberately corrupts a freed object's link.
        unsafe {
            let a = alloc(l);
            let b = alloc(l);
            dealloc(b, l);
            dealloc(a, l);
            // `a` heads this thread's list; aim its link at a stack address.
            let target = [0u64; 8];
            (a as *mut usize).write(target.as_ptr() as usize);
            let _ = alloc(l);
            let _ = alloc(l);
        }
        unreachable!("strata followed a forged link");
    }
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "overwritten_free_list_link_stops_the_program",
            "--nocapture",
            "--test-threads=1",
        ])
        .env("STRATA_LINK_CHILD", "1")
        .output()
        .unwrap();
    use std::os::unix::process::ExitStatusExt;
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        out.status.signal(),
        Some(libc::SIGABRT),
        "status {:?}, stderr {err}",
        out.status
    );
    assert!(
        err.contains("strata: free list corrupted at 0x"),
        "stderr: {err}"
    );
}
