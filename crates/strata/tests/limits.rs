//! Under an address-space limit (`RLIMIT_AS`, `ulimit -v`), running out is
//! a null pointer, never an abort, whatever the pattern (small, medium,
//! large and huge blocks, a block grown by `realloc`), and whatever runs out
//! (the memory itself, or strata's metadata: span records, pagemap nodes,
//! transfer tables, thread caches). After the program frees what it holds,
//! the memory can be had again.
//!
//! Each test runs in a child process that starts under the limit.

#[global_allocator]
static GLOBAL: strata::Strata = strata::Strata;

mod common;

use std::alloc::{alloc, dealloc, realloc, Layout};
use std::ptr;

/// The child's whole address space: its binary, libraries, stacks and heap.
const LIMIT: usize = 768 << 20;

fn in_child(name: &str) -> bool {
    common::in_child_limited("STRATA_LIMIT_TEST", name, &[], Some(LIMIT))
}

/// A chain of blocks, each linked to the previous one through its first
/// word, with its size in the second and a check word in the third and
/// last: no other memory is needed to hold them, so nothing else fails
/// when the allocator runs out.
struct Chain {
    head: *mut usize,
    count: usize,
    bytes: usize,
}

const ALIGN: usize = 16;

fn check_word(p: *mut usize, size: usize) -> usize {
    (p as usize).rotate_left(17) ^ size ^ 0x5a5a_0000_1234
}

/// Allocates blocks of `size(i)` bytes until the allocator says no.
fn exhaust(size: impl Fn(usize) -> usize) -> Chain {
    let mut c = Chain {
        head: ptr::null_mut(),
        count: 0,
        bytes: 0,
    };
    loop {
        let n = size(c.count).max(4 * size_of::<usize>());
        let layout = Layout::from_size_align(n, ALIGN).unwrap();
        // SAFETY: a non-zero layout.
        let p = unsafe { alloc(layout) } as *mut usize;
        if p.is_null() {
            return c;
        }
        // SAFETY: a fresh block of at least 4 words.
        unsafe {
            p.write(c.head as usize);
            p.add(1).write(n);
            p.add(2).write(check_word(p, n));
            (p as *mut u8)
                .add(n - size_of::<usize>())
                .cast::<usize>()
                .write_unaligned(!n);
        }
        c.head = p;
        c.count += 1;
        c.bytes += n;
    }
}

/// Checks every block of the chain and frees it.
fn free_chain(c: Chain) {
    let mut p = c.head;
    let mut seen = 0;
    while !p.is_null() {
        // SAFETY: a live block of the chain, written by `exhaust`.
        unsafe {
            let next = p.read() as *mut usize;
            let n = p.add(1).read();
            assert_eq!(p.add(2).read(), check_word(p, n), "block {p:?} corrupted");
            let last = (p as *mut u8).add(n - size_of::<usize>()).cast::<usize>();
            assert_eq!(last.read_unaligned(), !n, "end of block {p:?} corrupted");
            dealloc(p as *mut u8, Layout::from_size_align_unchecked(n, ALIGN));
            p = next;
        }
        seen += 1;
    }
    assert_eq!(seen, c.count);
}

/// Exhausts, frees, exhausts again: the second time must get about as much.
fn twice(what: &str, size: impl Fn(usize) -> usize + Copy, at_least: usize) {
    let first = exhaust(size);
    assert!(
        first.bytes >= at_least,
        "{what}: only {} MiB before running out",
        first.bytes >> 20
    );
    let (count, bytes) = (first.count, first.bytes);
    free_chain(first);
    strata::release_free_memory();
    let again = exhaust(size);
    assert!(
        again.bytes >= bytes / 10 * 9,
        "{what}: {} MiB the first time, {} MiB after freeing it ({count} then {} blocks)",
        bytes >> 20,
        again.bytes >> 20,
        again.count
    );
    free_chain(again);
    // And the program goes on.
    let v: Vec<u64> = (0..100_000).collect();
    assert_eq!(v.iter().sum::<u64>(), 99_999 * 50_000);
    println!("{what}: {} blocks, {} MiB", count, bytes >> 20);
}

#[test]
fn small_blocks_run_out_with_null_and_come_back() {
    if !in_child("small_blocks_run_out_with_null_and_come_back") {
        return;
    }
    twice("small", |i| 64 + (i % 7) * 48, 256 << 20);
}

#[test]
fn medium_blocks_run_out_with_null_and_come_back() {
    if !in_child("medium_blocks_run_out_with_null_and_come_back") {
        return;
    }
    twice("medium", |i| (24 << 10) + (i % 5) * (20 << 10), 256 << 20);
}

#[test]
fn large_blocks_run_out_with_null_and_come_back() {
    if !in_child("large_blocks_run_out_with_null_and_come_back") {
        return;
    }
    twice("large", |i| (1 << 20) + (i % 9) * (700 << 10), 256 << 20);
}

#[test]
fn huge_blocks_run_out_with_null_and_come_back() {
    if !in_child("huge_blocks_run_out_with_null_and_come_back") {
        return;
    }
    twice("huge", |i| (40 << 20) + (i % 3) * (16 << 20), 256 << 20);
}

/// A block grown by `realloc` until it cannot grow: the failed `realloc`
/// leaves it whole, and everything can be allocated again once it is freed.
#[test]
fn a_block_grown_until_it_cannot_keeps_its_bytes() {
    if !in_child("a_block_grown_until_it_cannot_keeps_its_bytes") {
        return;
    }
    for round in 0..2 {
        let mut n = 4096;
        let layout = Layout::from_size_align(n, ALIGN).unwrap();
        // SAFETY: a non-zero layout.
        let mut p = unsafe { alloc(layout) };
        assert!(!p.is_null());
        // SAFETY: our block of n bytes.
        unsafe { p.write_bytes(1, n) };
        loop {
            let m = n + n / 2;
            // SAFETY: our live block, allocated with this layout.
            let q = unsafe { realloc(p, Layout::from_size_align_unchecked(n, ALIGN), m) };
            if q.is_null() {
                break;
            }
            // SAFETY: our block of m bytes, its first n kept.
            unsafe {
                assert_eq!(q.read(), 1);
                assert_eq!(q.add(n - 1).read(), 1, "{n} -> {m}");
                // Touch a byte per page of what is new: the program uses it.
                let mut at = n;
                while at < m {
                    q.add(at).write(1);
                    at += 4096;
                }
                q.add(m - 1).write(1);
            }
            (p, n) = (q, m);
        }
        assert!(
            n >= 128 << 20,
            "round {round}: grew only to {} MiB",
            n >> 20
        );
        // SAFETY: still our live block.
        unsafe {
            assert_eq!(p.read(), 1);
            assert_eq!(p.add(n - 1).read(), 1);
            dealloc(p, Layout::from_size_align_unchecked(n, ALIGN));
        }
        println!("round {round}: grew to {} MiB", n >> 20);
    }
    // The address space came back.
    twice(
        "large after growth",
        |i| (1 << 20) + (i % 9) * (700 << 10),
        256 << 20,
    );
}

/// Threads started while the address space is short still allocate (a
/// thread whose cache cannot be set up is served by the central lists).
#[test]
fn threads_started_near_the_limit_still_allocate() {
    if !in_child("threads_started_near_the_limit_still_allocate") {
        return;
    }
    // Leave little room: most of the address space taken by huge blocks.
    let mut hold = exhaust(|_| 16 << 20);
    let mut threads = start_churners(8);
    if threads.is_empty() {
        // Not even one thread's stack fitted in what was left: give one
        // block back, which leaves less than 32 MiB.
        pop_block(&mut hold);
        threads = start_churners(8);
    }
    assert!(!threads.is_empty(), "no thread could start");
    for (t, id) in threads {
        let mut out: *mut libc::c_void = ptr::null_mut();
        // SAFETY: `id` is a joinable thread started above, joined once.
        assert_eq!(unsafe { libc::pthread_join(id, &mut out) }, 0);
        let want: u64 = (0..2000u64).map(|i| i ^ t as u64).sum();
        assert_eq!(out as u64, want, "thread {t}");
    }
    free_chain(hold);
}

/// Starts up to `n` threads running [`churn`] with small stacks, through
/// pthread_create itself: std's threads map an alternate signal stack and
/// register thread-local destructors through glibc's malloc, either of
/// which aborts the program when it finds no room, and the question here is
/// whether strata's thread caches cope, not std's runtime. Stops at the
/// first thread that cannot be had (no room for the thread itself: the
/// program's to handle). Returns each thread's index and id.
fn start_churners(n: usize) -> Vec<(usize, libc::pthread_t)> {
    let mut threads = Vec::new();
    for t in 0..n {
        // SAFETY: a zeroed pthread_attr_t is what pthread_attr_init
        // initialises; the attribute lives until pthread_create returns.
        let mut attr: libc::pthread_attr_t = unsafe { std::mem::zeroed() };
        let mut id: libc::pthread_t = 0;
        // SAFETY: `attr` and `id` are valid for writes; `churn` is an
        // extern "C" function that reads only its argument, an integer
        // passed as the pointer.
        let rc = unsafe {
            libc::pthread_attr_init(&mut attr);
            libc::pthread_attr_setstacksize(&mut attr, 64 << 10);
            let rc = libc::pthread_create(&mut id, &attr, churn, t as *mut libc::c_void);
            libc::pthread_attr_destroy(&mut attr);
            rc
        };
        if rc != 0 {
            break;
        }
        threads.push((t, id));
    }
    threads
}

/// Frees the chain's newest block (its head), checking it.
fn pop_block(c: &mut Chain) {
    let p = c.head;
    assert!(!p.is_null());
    // SAFETY: the head is a live block of the chain, written by `exhaust`.
    unsafe {
        let n = p.add(1).read();
        assert_eq!(p.add(2).read(), check_word(p, n), "block {p:?} corrupted");
        c.head = p.read() as *mut usize;
        dealloc(p as *mut u8, Layout::from_size_align_unchecked(n, ALIGN));
        c.count -= 1;
        c.bytes -= n;
    }
}

/// A thread of [`threads_started_near_the_limit_still_allocate`]: 2,000
/// small blocks through the global allocator, one at a time; returns the
/// sum of what they held, or a value no sum takes when a block could not
/// be had.
extern "C" fn churn(arg: *mut libc::c_void) -> *mut libc::c_void {
    let t = arg as u64;
    let layout = Layout::new::<[u64; 8]>();
    let mut sum = 0u64;
    for i in 0..2000u64 {
        // SAFETY: a non-zero layout; the block is written, read and freed
        // with it while live.
        unsafe {
            let p = alloc(layout) as *mut [u64; 8];
            if p.is_null() {
                return usize::MAX as *mut libc::c_void;
            }
            p.write([i ^ t; 8]);
            sum += (*p)[7];
            dealloc(p as *mut u8, layout);
        }
    }
    sum as usize as *mut libc::c_void
}

/// Huge blocks freed and kept for reuse (mappings of their own, cached)
/// never stand in the way of a larger one: when no room is left for it,
/// the cache is given back and the request tried again.
#[test]
fn cached_huge_blocks_make_room_for_a_larger_one() {
    if !in_child("cached_huge_blocks_make_room_for_a_larger_one") {
        return;
    }
    strata::set_decay_ms(u64::MAX); // only the shortage may give them back
    let sizes = [96usize << 20, 100 << 20, 104 << 20, 108 << 20];
    let blocks: Vec<(*mut u8, Layout)> = sizes
        .iter()
        .map(|&n| {
            let l = Layout::from_size_align(n, ALIGN).unwrap();
            // SAFETY: a non-zero layout.
            let p = unsafe { alloc(l) };
            assert!(!p.is_null(), "{n} bytes under a {LIMIT}-byte limit");
            (p, l)
        })
        .collect();
    for (p, l) in blocks {
        // SAFETY: allocated above with `l`.
        unsafe { dealloc(p, l) };
    }
    // 408 MiB are cached; 448 MiB fit in the limit only without them.
    let l = Layout::from_size_align(448 << 20, ALIGN).unwrap();
    // SAFETY: a non-zero layout.
    let p = unsafe { alloc(l) };
    assert!(!p.is_null(), "no room made for 448 MiB");
    // SAFETY: a live block of 448 MiB.
    unsafe {
        p.add((448 << 20) - 1).write(7);
        dealloc(p, l);
    }
}
