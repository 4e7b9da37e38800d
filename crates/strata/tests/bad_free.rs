//! Frees strata cannot take back are detected and reported, and ignored
//! (nothing corrupted) when a hook returns. Each kind the default build
//! catches has a test; one test checks the default report: a message on
//! stderr and an abort, in a child process.

mod common;

#[global_allocator]
static GLOBAL: strata::Strata = strata::Strata;

use std::alloc::{alloc, dealloc, Layout};

use strata::{BadFree, BadFreeKind};

use common::hook::caught;

fn one(kind: BadFreeKind, ptr: usize, seen: Vec<BadFree>) {
    assert_eq!(seen, vec![BadFree { ptr, kind }]);
}

/// 64 KiB mapped by the test itself: memory strata never saw.
fn foreign_mapping() -> *mut u8 {
    // SAFETY: a private anonymous mapping of our own.
    let p = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            1 << 16,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
            -1,
            0,
        )
    } as *mut u8;
    assert_ne!(p as *mut libc::c_void, libc::MAP_FAILED);
    p
}

#[test]
fn stack_pointer() {
    let local = [0u64; 4];
    let p = local.as_ptr() as *mut u8;
    // SAFETY: a bad free, refused by strata.
    one(
        BadFreeKind::NeverAllocated,
        p as usize,
        caught(|| unsafe { strata::raw::free(p) }),
    );
    assert_eq!(local[0], 0);
}

#[test]
fn memory_of_another_mapping() {
    let p = foreign_mapping();
    // SAFETY: a bad free, refused by strata.
    one(
        BadFreeKind::NeverAllocated,
        p as usize,
        caught(|| unsafe { strata::raw::free(p) }),
    );
    // SAFETY: our mapping.
    unsafe { libc::munmap(p.cast(), 1 << 16) };
}

/// A sized `dealloc` with a small layout names its class and needs no
/// lookup; a pointer outside the heap's arena is still checked (stack,
/// static, another mapping) and never reaches a free list.
#[test]
fn sized_small_free_of_foreign_memory() {
    static STATIC: [u64; 8] = [0; 8];
    let local = [7u64; 8];
    let map = foreign_mapping();
    let foreign = [
        local.as_ptr() as *mut u8,
        STATIC.as_ptr() as *mut u8,
        map,
        map.wrapping_add(4096),
    ];
    for size in [8usize, 32, 64, 1000, 200 << 10] {
        let l = Layout::from_size_align(size, 8).unwrap();
        for &p in &foreign {
            // SAFETY: a bad free, refused by strata.
            one(
                BadFreeKind::NeverAllocated,
                p as usize,
                caught(|| unsafe { dealloc(p, l) }),
            );
        }
        // Nothing reached a free list: none of them is handed out.
        let got: Vec<*mut u8> = (0..2000)
            // SAFETY: non-zero layout.
            .map(|_| unsafe { alloc(l) })
            .collect();
        for p in &got {
            assert!(!foreign.contains(p), "{p:?} handed out after a bad free");
            // SAFETY: a live block of this layout.
            unsafe { dealloc(*p, l) };
        }
    }
    assert_eq!(local[0], 7);
    // SAFETY: our mapping.
    unsafe { libc::munmap(map.cast(), 1 << 16) };
}

#[test]
fn interior_pointer_of_a_large_block() {
    let l = Layout::from_size_align(1 << 20, 8).unwrap();
    // SAFETY: non-zero layout.
    let p = unsafe { alloc(l) };
    // SAFETY: writes inside the block.
    unsafe { p.write_bytes(5, 1 << 20) };
    let q = p.wrapping_add(4096 * 3);
    // SAFETY: a bad free, refused by strata.
    one(
        BadFreeKind::Interior,
        q as usize,
        caught(|| unsafe { strata::raw::free(q) }),
    );
    // SAFETY: also through the sized path.
    one(
        BadFreeKind::Interior,
        q as usize,
        caught(|| unsafe { dealloc(q, l) }),
    );
    // The block is untouched and still ours.
    // SAFETY: the live block.
    unsafe {
        assert!(std::slice::from_raw_parts(p, 1 << 20)
            .iter()
            .all(|&b| b == 5));
        dealloc(p, l);
    }
}

#[test]
fn interior_pointers_into_small_objects() {
    for size in [16usize, 48, 64, 1000, 3072, 40 << 10, 200 << 10] {
        let l = Layout::from_size_align(size, 8).unwrap();
        // SAFETY: non-zero layout.
        let p = unsafe { alloc(l) };
        // Every offset inside the object (`size` itself could be where
        // the next object starts).
        for off in [3, 8, 16, size / 2, size - 8]
            .into_iter()
            .filter(|&o| o < size)
        {
            let q = p.wrapping_add(off);
            // SAFETY: a bad free, refused by strata.
            one(
                BadFreeKind::Interior,
                q as usize,
                caught(|| unsafe { strata::raw::free(q) }),
            );
            // Resized to a size its class holds: refused too, not
            // handed back as if it were a block.
            let mut r = q;
            // SAFETY: a bad realloc, refused by strata.
            let seen = caught(|| r = unsafe { strata::raw::realloc(q, size - off, 8) });
            one(BadFreeKind::Interior, q as usize, seen);
            assert!(r.is_null());
        }
        // SAFETY: the live block, still ours and freed once.
        unsafe { strata::raw::free(p) };
    }
}

/// A second `free(p)` of a small block, while it is still in this thread's
/// cache: caught by the mark `free` leaves in the block (and in the
/// `checked` build by its tag), whatever came in between.
#[test]
fn double_frees_of_small_blocks() {
    type Between = fn(*mut u8);
    let cases: [(usize, Between); 5] = [
        (48, |_| {}),
        (48, |_| {
            // Another block of the class freed in between.
            let q = strata::raw::alloc(48, 8);
            // SAFETY: a live block of ours, freed once.
            unsafe { strata::raw::free(q) };
        }),
        (4096, |_| {}),
        (8, |_| {}),
        (64, |_| {
            // Other sizes allocated and freed in between.
            let others: Vec<*mut u8> = [16, 100, 2000, 64, 300]
                .iter()
                .map(|&n| strata::raw::alloc(n, 8))
                .collect();
            for q in others {
                // SAFETY: live blocks of ours, freed once.
                unsafe { strata::raw::free(q) };
            }
        }),
    ];
    for (size, between) in cases {
        let p = strata::raw::alloc(size, 8);
        // SAFETY: a live block, written and freed once.
        unsafe {
            p.write_bytes(0x5A, size);
            strata::raw::free(p);
        }
        between(p);
        // SAFETY: the bad free, refused by strata.
        let seen = caught(|| unsafe { strata::raw::free(p) });
        one(BadFreeKind::DoubleFree, p as usize, seen);
        // The refused free did not put the block in the cache twice.
        let (a, b) = (strata::raw::alloc(size, 8), strata::raw::alloc(size, 8));
        assert_ne!(a, b, "{size} B: one block handed out twice");
        // SAFETY: two live blocks of ours.
        unsafe {
            strata::raw::free(a);
            strata::raw::free(b);
        }
    }
}

/// A second `free(p)` of a small block after the first went on to its
/// span (the thread's cache flushed, the transfer caches drained), with
/// another block of the span live so the span stays: caught at the free by
/// the span's bitmap, not handed out twice later.
#[test]
fn double_free_of_a_small_block_back_in_its_span() {
    for size in [8usize, 48, 4096] {
        let p = strata::raw::alloc(size, 8);
        let keep = strata::raw::alloc(size, 8);
        // SAFETY: a live block, written and freed once.
        unsafe {
            p.write_bytes(0x5A, size);
            strata::raw::free(p);
        }
        strata::release_free_memory();
        // SAFETY: the bad free, refused by strata.
        let seen = caught(|| unsafe { strata::raw::free(p) });
        one(BadFreeKind::DoubleFree, p as usize, seen);
        // SAFETY: a live block of ours, freed once.
        unsafe { strata::raw::free(keep) };
    }
}

/// A block freed and handed out again is freed normally, even when the
/// program left its first word as `free` found it.
#[test]
fn a_block_reused_after_free_is_freed_again_normally() {
    for size in [8usize, 32, 1024] {
        let p = strata::raw::alloc(size, 8);
        // SAFETY: live blocks of ours, each freed once.
        unsafe { strata::raw::free(p) };
        let q = strata::raw::alloc(size, 8);
        assert!(caught(|| unsafe { strata::raw::free(q) }).is_empty());
    }
}

/// A live block whose first bytes look like the freed mark (its first byte,
/// or its whole first word, stored by the program) is freed normally: the
/// look-alike is checked against the caches and not reported, and the
/// block is not put in the cache twice.
#[test]
fn a_block_that_looks_marked_is_freed_normally() {
    // The mark `free` leaves in a small block's first word (documented in
    // `freed_mark.rs`), and a word that shares only its first byte.
    const MARK: u64 = 0xFFFF_FFFF_DB1E_F4EE;
    for word in [MARK, 0x0000_0000_0000_00EE, MARK ^ (1 << 40)] {
        for size in [8usize, 48, 1024] {
            let p = strata::raw::alloc(size, 8);
            // SAFETY: a live block of at least 8 bytes, 8-aligned.
            unsafe { (p as *mut u64).write(word) };
            // SAFETY: a live block of ours, freed once.
            assert!(caught(|| unsafe { strata::raw::free(p) }).is_empty());
            let (a, b) = (strata::raw::alloc(size, 8), strata::raw::alloc(size, 8));
            assert_ne!(a, b, "{size} B, {word:#x}: one block handed out twice");
            // SAFETY: two live blocks of ours, each freed once.
            unsafe {
                strata::raw::free(a);
                strata::raw::free(b);
            }
        }
    }
}

/// A pointer just past a span's last object is no object's: 8160 bytes into
/// an 8 KiB span of 48-byte objects is a multiple of 48, but the 170th
/// object would end past the span. (The checked build serves 48-byte
/// requests from a larger class, with room for its marks; its probes cover
/// the case.)
#[cfg(not(feature = "checked"))]
#[test]
fn a_pointer_past_the_last_object_of_a_span() {
    let mut held = Vec::new();
    let last = loop {
        let p = strata::raw::alloc(48, 8);
        held.push(p);
        // Spans of 48-byte objects are one 8 KiB page: the last object
        // starts 8112 bytes into it.
        if p as usize % 8192 == 169 * 48 {
            break p;
        }
        assert!(held.len() < 100_000, "no span's last object found");
    };
    let past = last.wrapping_add(48);
    // SAFETY: a bad free, refused by strata.
    let seen = caught(|| unsafe { strata::raw::free(past) });
    one(BadFreeKind::Interior, past as usize, seen);
    for p in held {
        // SAFETY: live blocks of ours, freed once.
        unsafe { strata::raw::free(p) };
    }
}

/// Runs test `name` alone in a child process (`true` in the child, which
/// then runs the test body) and asserts it passed. For tests whose freed
/// memory must not be reused by other tests between two frees.
fn alone(name: &str) -> bool {
    common::in_child("STRATA_BAD_FREE_ALONE", name, &[])
}

/// In a child process: with other tests running, the freed block's pages
/// could be handed to one of them before the second free, which would then
/// free *their* block (a bad free no allocator can tell from a good one).
#[test]
fn double_free_of_a_large_block() {
    if !alone("double_free_of_a_large_block") {
        return;
    }
    for size in [300 << 10, 8 << 20, 40 << 20] {
        let l = Layout::from_size_align(size, 8).unwrap();
        // SAFETY: non-zero layout; the second free is the bad one.
        unsafe {
            let p = alloc(l);
            dealloc(p, l);
            for seen in [caught(|| dealloc(p, l)), caught(|| strata::raw::free(p))] {
                assert_eq!(
                    seen,
                    vec![BadFree {
                        ptr: p as usize,
                        kind: BadFreeKind::DoubleFree
                    }]
                );
            }
        }
    }
}

#[test]
fn large_free_of_a_small_object() {
    let l = Layout::from_size_align(64, 8).unwrap();
    // SAFETY: non-zero layout.
    let p = unsafe { alloc(l) };
    let big = Layout::from_size_align(1 << 20, 8).unwrap();
    // SAFETY: a bad free (wrong layout), refused by strata.
    one(
        BadFreeKind::WrongLayout,
        p as usize,
        caught(|| unsafe { dealloc(p, big) }),
    );
    // SAFETY: the live block, freed correctly.
    unsafe { dealloc(p, l) };
}

/// Without a hook, the default report: a message on stderr, then abort.
#[test]
fn default_report_is_a_message_and_an_abort() {
    if std::env::var_os("STRATA_BAD_FREE_CHILD").is_some() {
        let local = 0u64;
        // SAFETY: deliberately bad; strata aborts.
        unsafe { strata::raw::free(&local as *const u64 as *mut u8) };
        unreachable!("strata did not stop the program");
    }
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "default_report_is_a_message_and_an_abort",
            "--nocapture",
            "--test-threads=1",
        ])
        .env("STRATA_BAD_FREE_CHILD", "1")
        .output()
        .unwrap();
    use std::os::unix::process::ExitStatusExt;
    assert_eq!(
        out.status.signal(),
        Some(libc::SIGABRT),
        "status {:?}",
        out.status
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("strata: free(0x") && err.contains("): pointer was never allocated by strata"),
        "stderr: {err}"
    );
}
