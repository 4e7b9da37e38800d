//! Tests of the system OS layer against the real kernel: mappings,
//! release, zeroing by residency, populate and remap.

use super::zero::nonresident_reads_zero;
use super::*;

#[test]
fn map_is_zero_and_aligned() {
    let os = SystemOs::new();
    for align in [4096usize, 1 << 16, 1 << 21, 1 << 30] {
        let p = os.map(1 << 20, align).unwrap();
        assert_eq!(p.as_ptr() as usize % align, 0);
        // SAFETY: freshly mapped 1 MiB.
        let s = unsafe { core::slice::from_raw_parts(p.as_ptr(), 1 << 20) };
        assert!(s.iter().all(|&b| b == 0));
        // SAFETY: mapped above.
        unsafe { os.unmap(p, 1 << 20) };
    }
    assert_eq!(os.counters().snapshot().mapped_bytes, 0);
}

#[test]
fn reserve_then_commit_parts_reads_zero_and_keeps_the_rest_reserved() {
    let os = SystemOs::new();
    let len = 1usize << 32;
    let p = os.reserve(len, len).unwrap();
    let base = p.as_ptr() as usize;
    assert_eq!(base % len, 0);
    assert_eq!(
        os.counters().snapshot().mapped_bytes,
        0,
        "reserving maps nothing"
    );
    let part = 2 << 20;
    for off in [0, 6 << 20, len - part] {
        let q = NonNull::new((base + off) as *mut u8).unwrap();
        // SAFETY: an uncommitted, page-aligned part of our reservation.
        unsafe { os.commit(q, part) }.unwrap();
        // SAFETY: just committed.
        let s = unsafe { core::slice::from_raw_parts_mut(q.as_ptr(), part) };
        assert!(s.iter().all(|&b| b == 0));
        s.fill(0x5A);
    }
    assert_eq!(os.counters().snapshot().mapped_bytes, 3 * part as u64);
    // The part between commits is still reserved: no access. mincore
    // succeeds on it (it is mapped) and finds nothing resident.
    let mut v = [1u8; 4];
    // SAFETY: 4 pages of our reservation; 4 bytes of output.
    let rc = unsafe {
        libc::mincore(
            (base + part) as *mut _,
            4 * os_page_size(),
            v.as_mut_ptr().cast(),
        )
    };
    assert_eq!(rc, 0);
    assert_eq!(v, [0; 4]);
    // A commit larger than memory and swap is refused under the
    // kernel's default heuristic (not under "always overcommit") and
    // leaves the reservation as it was.
    let mode = std::fs::read_to_string("/proc/sys/vm/overcommit_memory").unwrap_or_default();
    if mode.trim() != "1" {
        let big = 1usize << 46;
        let r = os.reserve(big, 4096).unwrap();
        // SAFETY: our whole, uncommitted reservation.
        assert!(unsafe { os.commit(r, big) }.is_err());
        // SAFETY: a small part of it still commits.
        unsafe { os.commit(r, part) }.unwrap();
        raw_unmap(r.as_ptr(), big);
    }
    raw_unmap(p.as_ptr(), len);
}

#[test]
fn release_reads_zero_afterwards() {
    let os = SystemOs::new();
    let len = 1 << 20;
    let p = os.map(len, 4096).unwrap();
    // SAFETY: we own the mapping.
    unsafe {
        p.as_ptr().write_bytes(0xAB, len);
        os.release(p, len).unwrap();
        assert!(core::slice::from_raw_parts(p.as_ptr(), len)
            .iter()
            .all(|&b| b == 0));
        os.unmap(p, len);
    }
}

#[test]
fn zero_clears_resident_pages_of_a_used_range_and_writes_only_those() {
    let os = SystemOs::new();
    let len = 8 << 20;
    let p = os.map(len, 4096).unwrap();
    let page = os_page_size();
    let pages = len / page;
    // SAFETY: we own the mapping.
    unsafe {
        // Half the range used (so clearing beats dropping), plus the last page.
        for i in (0..pages / 2).chain([pages - 1]) {
            p.as_ptr().add(i * page + 5).write(7);
        }
        let written = os.zero(p, len);
        assert!(core::slice::from_raw_parts(p.as_ptr(), len)
            .iter()
            .all(|&b| b == 0));
        if nonresident_reads_zero() {
            // The used pages, not the whole range (THP could add a little).
            assert!(
                written >= (pages / 2 + 1) * page && written < len,
                "wrote {written}"
            );
        }
        os.unmap(p, len);
    }
}

/// Pages zero() cleared stay resident; if the program does not use them
/// before the next zero(), they must not be cleared again (the calloc
/// loop that re-zeroes memory nobody touched), only dropped.
#[test]
fn zero_never_clears_a_range_twice_when_unused_in_between() {
    let os = SystemOs::new();
    let len = 8 << 20;
    let p = os.map(len, 4096).unwrap();
    // SAFETY: we own the mapping.
    unsafe {
        p.as_ptr().write_bytes(0x33, len);
        let first = os.zero(p, len);
        assert!(core::slice::from_raw_parts(p.as_ptr(), len)
            .iter()
            .all(|&b| b == 0));
        if nonresident_reads_zero() {
            assert!(first >= len / 2, "a used range is cleared: wrote {first}");
        }
        for _ in 0..3 {
            assert_eq!(os.zero(p, len), 0, "cleared again although unused");
            assert!(core::slice::from_raw_parts(p.as_ptr(), len)
                .iter()
                .all(|&b| b == 0));
        }
        // Used again (first page written): cleared again.
        p.as_ptr().write_bytes(0x44, len);
        let again = os.zero(p, len);
        assert!(core::slice::from_raw_parts(p.as_ptr(), len)
            .iter()
            .all(|&b| b == 0));
        if nonresident_reads_zero() {
            assert!(again >= len / 2, "wrote {again}");
        }
        os.unmap(p, len);
    }
}

#[test]
fn zero_drops_a_sparsely_used_range() {
    let os = SystemOs::new();
    let len = 8 << 20;
    let p = os.map(len, 4096).unwrap();
    let page = os_page_size();
    // SAFETY: we own the mapping.
    unsafe {
        // With transparent huge pages `always` (Debian's kernels), each
        // touch below would make 2 MiB resident and the range dense.
        libc::madvise(p.as_ptr().cast(), len, libc::MADV_NOHUGEPAGE);
        // The first page (sampled) and a few more: under 1/8 resident.
        for i in [0usize, 17, 1000, len / page - 1] {
            p.as_ptr().add(i * page + 5).write(7);
        }
        let releases = os.counters().snapshot().releases;
        assert_eq!(os.zero(p, len), 0);
        assert!(os.counters().snapshot().releases > releases);
        assert!(core::slice::from_raw_parts(p.as_ptr(), len)
            .iter()
            .all(|&b| b == 0));
        os.unmap(p, len);
    }
}

#[test]
fn zero_of_a_barely_touched_range_drops_it_instead_of_writing() {
    let os = SystemOs::new();
    let len = 8 << 20;
    let p = os.map(len, 4096).unwrap();
    // SAFETY: we own the mapping.
    unsafe {
        // A page between the sampled ones.
        p.as_ptr().add(len / 3 + 100).write(1);
        let released_before = os.counters().snapshot().releases;
        let written = os.zero(p, len);
        assert_eq!(written, 0);
        assert_eq!(os.counters().snapshot().releases, released_before + 1);
        assert!(core::slice::from_raw_parts(p.as_ptr(), len)
            .iter()
            .all(|&b| b == 0));
        os.unmap(p, len);
    }
}

#[test]
fn populate_keeps_contents() {
    let os = SystemOs::new();
    let len = 1 << 20;
    let p = os.map(len, 4096).unwrap();
    // SAFETY: we own the mapping.
    unsafe {
        p.as_ptr().write(42);
        os.populate(p, len).unwrap();
        assert_eq!(p.as_ptr().read(), 42);
        os.unmap(p, len);
    }
}

/// The fallback of `populate` (kernels before 5.14) touches only bytes
/// inside the range, and loses no store another thread makes meanwhile,
/// even to the bytes it touches.
#[test]
fn touching_pages_keeps_every_concurrent_store() {
    use std::sync::atomic::{AtomicBool, AtomicU8 as StdAtomicU8};
    let os = SystemOs::new();
    let page = os_page_size();
    let len = 64 * page;
    let p = os.map(len, 4096).unwrap().as_ptr() as usize;
    // The range starts 100 bytes into the first page and ends 100 bytes
    // into the last: the bytes before and after belong to a neighbour.
    let (first, end) = (p + 100, p + len - page + 100);
    let stop = AtomicBool::new(false);
    std::thread::scope(|s| {
        // A neighbour counts up in the first byte of the first page (before the range), and the
        // owner in the first byte of every page of the range.
        let writer = s.spawn(|| {
            let mut n = 0u32;
            while !stop.load(Ordering::Relaxed) || n < 1000 {
                for at in [p, first + page - 100, first + 5 * page - 100] {
                    // SAFETY: inside our mapping; accessed atomically only.
                    let b = unsafe { StdAtomicU8::from_ptr(at as *mut u8) };
                    b.fetch_add(1, Ordering::Relaxed);
                }
                n += 1;
            }
            n
        });
        for _ in 0..2000 {
            // SAFETY: [first, end) is ours, mapped and writable.
            unsafe { touch_pages(first, end, page) };
        }
        stop.store(true, Ordering::Relaxed);
        let n = writer.join().unwrap();
        for at in [p, first + page - 100, first + 5 * page - 100] {
            // SAFETY: as above.
            let v = unsafe { StdAtomicU8::from_ptr(at as *mut u8) }.load(Ordering::Relaxed);
            assert_eq!(v, n as u8, "a store at {:#x} was lost", at - p);
        }
    });
    // Everything else reads as before: zero.
    // SAFETY: our mapping.
    let bytes = unsafe { core::slice::from_raw_parts(p as *const u8, len) };
    let touched_by_writer = [0, first + page - 100 - p, first + 5 * page - 100 - p];
    for (i, &b) in bytes.iter().enumerate() {
        if !touched_by_writer.contains(&i) {
            assert_eq!(b, 0, "byte {i} changed");
        }
    }
    // And every page of the range is resident now.
    let mut vec = std::vec![0u8; len / page];
    // SAFETY: our mapping; one byte per page of output.
    assert_eq!(
        unsafe { libc::mincore(p as *mut _, len, vec.as_mut_ptr().cast()) },
        0
    );
    assert!(vec[..63].iter().all(|&v| v & 1 == 1), "{vec:?}");
    // SAFETY: our mapping.
    unsafe { os.unmap(NonNull::new(p as *mut u8).unwrap(), len) };
}

/// `release` refuses a range that is not whole OS pages, and releases
/// nothing of it: madvise would round the length up into a neighbour.
#[test]
fn release_refuses_partial_pages() {
    let os = SystemOs::new();
    let page = os_page_size();
    let p = os.map(4 * page, 4096).unwrap();
    // SAFETY: our mapping.
    unsafe {
        p.as_ptr().write_bytes(0x5A, 4 * page);
        let mid = NonNull::new(p.as_ptr().add(page / 2)).unwrap();
        assert_eq!(os.release(mid, 2 * page), Err(OsError::InvalidRequest));
        assert_eq!(os.release(p, page + 8), Err(OsError::InvalidRequest));
        assert!(core::slice::from_raw_parts(p.as_ptr(), 4 * page)
            .iter()
            .all(|&b| b == 0x5A));
        os.unmap(p, 4 * page);
    }
}

/// `zero` of a range that is not OS-page aligned clears all of it: the
/// partial pages at the ends by stores, the rest by residency.
#[test]
fn zero_of_an_unaligned_range_clears_it_all_and_nothing_more() {
    let os = SystemOs::new();
    let page = os_page_size();
    let len = 4 << 20;
    let p = os.map(len, 4096).unwrap();
    // SAFETY: our mapping.
    unsafe {
        p.as_ptr().write_bytes(0x77, len);
        let (off, n) = (page / 2 + 8, len - page - 16);
        os.zero(NonNull::new(p.as_ptr().add(off)).unwrap(), n);
        let s = core::slice::from_raw_parts(p.as_ptr(), len);
        assert!(s[..off].iter().all(|&b| b == 0x77));
        assert!(s[off..off + n].iter().all(|&b| b == 0));
        assert!(s[off + n..].iter().all(|&b| b == 0x77));
        os.unmap(p, len);
    }
}

/// After a failed fixed move, a target that the kernel unmapped is taken
/// back and given up; one that is still mapped is left alone.
#[test]
fn a_failed_move_target_is_reclaimed_or_left_alone() {
    let page = os_page_size();
    // A hole: reclaimed, then unmapped (mapping it again there works).
    // Other tests map concurrently and may land in the hole between the
    // two steps, so a refusal is retried on a new hole; a reclaim that
    // never gives the hole up fails every time.
    let given_up = (0..8).any(|_| {
        let hole = raw_map(16 * page, libc::PROT_NONE).unwrap().as_ptr();
        raw_unmap(hole, 16 * page);
        reclaim_failed_target(hole, 16 * page);
        // SAFETY: MAP_FIXED_NOREPLACE maps only where nothing is.
        let again = unsafe {
            libc::mmap(
                hole.cast(),
                16 * page,
                libc::PROT_READ,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | MAP_FIXED_NOREPLACE,
                -1,
                0,
            )
        };
        if again == hole.cast() {
            raw_unmap(hole, 16 * page);
            return true;
        }
        if again != libc::MAP_FAILED {
            // An old kernel that treats the flag as a hint: not our hole.
            raw_unmap(again.cast(), 16 * page);
        }
        false
    });
    assert!(given_up, "the reclaimed hole was not given up");
    // Someone else's mapping in the range: left as it is.
    let theirs = raw_map(16 * page, libc::PROT_READ | libc::PROT_WRITE)
        .unwrap()
        .as_ptr();
    // SAFETY: a mapping of ours standing for another thread's.
    unsafe { theirs.add(5 * page).write(42) };
    reclaim_failed_target(theirs, 16 * page);
    // SAFETY: still mapped, contents kept.
    assert_eq!(unsafe { theirs.add(5 * page).read() }, 42);
    raw_unmap(theirs, 16 * page);
}

/// A move that the kernel refuses (here: a source that is not mapped)
/// leaves no trace: no reservation left behind, the caller told.
#[test]
fn a_refused_aligned_move_fails_cleanly() {
    let os = SystemOs::new();
    let page = os_page_size();
    let hole = raw_map(64 * page, libc::PROT_NONE).unwrap();
    raw_unmap(hole.as_ptr(), 64 * page);
    // SAFETY: deliberately not a mapping: the kernel refuses (EFAULT).
    let r = unsafe { os.remap(hole, 16 * page, 32 * page, 1 << 21, &mut |_, _| true) };
    assert!(r.is_err());
}

#[test]
fn remap_grows_and_keeps_contents() {
    let os = SystemOs::new();
    let p = os.map(1 << 20, 4096).unwrap();
    // SAFETY: we own the mapping.
    unsafe {
        p.as_ptr().add(12345).write(9);
        let q = os
            .remap(p, 1 << 20, 64 << 20, 4096, &mut |_, _| true)
            .unwrap();
        assert_eq!(q.as_ptr().add(12345).read(), 9);
        assert_eq!(q.as_ptr().add((64 << 20) - 1).read(), 0);
        // Keep a strong alignment across a move.
        let blocker = os.map(4096, 4096).unwrap();
        let r = os
            .remap(q, 64 << 20, 256 << 20, 1 << 21, &mut |_, _| true)
            .unwrap();
        assert_eq!(r.as_ptr() as usize % (1 << 21), 0);
        assert_eq!(r.as_ptr().add(12345).read(), 9);
        let s = os
            .remap(r, 256 << 20, 8 << 20, 1 << 21, &mut |_, _| true)
            .unwrap();
        assert_eq!(s, r, "shrinking stays in place");
        assert_eq!(s.as_ptr().add(12345).read(), 9);
        os.unmap(s, 8 << 20);
        os.unmap(blocker, 4096);
    }
}

/// `prepare` sees the place the mapping will have before anything moves,
/// and refusing it leaves the mapping where and as it was.
#[test]
fn remap_asks_before_it_moves() {
    let os = SystemOs::new();
    let len = 1 << 20;
    // The page after the mapping is taken (a read-only page split off the
    // end of the same mapping), so growth has to move.
    let p = os.map(len + 4096, 1 << 21).unwrap();
    let after = NonNull::new(p.as_ptr().wrapping_add(len)).unwrap();
    // SAFETY: the last page of our mapping.
    assert_eq!(
        unsafe { libc::mprotect(after.as_ptr().cast(), 4096, libc::PROT_READ) },
        0
    );
    // SAFETY: our mapping, one kernel mapping.
    unsafe {
        p.as_ptr().add(777).write(5);
        let mut asked = std::vec::Vec::new();
        let r = os.remap(p, len, 4 * len, 1 << 21, &mut |q, n| {
            asked.push((q.as_ptr() as usize, n));
            false
        });
        assert!(r.is_err());
        assert!(!asked.is_empty() && asked.iter().all(|&(_, n)| n == 4 * len));
        assert_eq!(p.as_ptr().add(777).read(), 5, "refused, yet moved");
        let mut last = 0;
        let q = os
            .remap(p, len, 4 * len, 1 << 21, &mut |q, _| {
                last = q.as_ptr() as usize;
                true
            })
            .unwrap();
        assert_eq!(q.as_ptr() as usize, last, "moved somewhere not announced");
        assert_eq!(q.as_ptr() as usize % (1 << 21), 0);
        assert_eq!(q.as_ptr().add(777).read(), 5);
        os.unmap(q, 4 * len);
        raw_unmap(after.as_ptr(), 4096);
    }
}

#[test]
fn impossible_requests_fail() {
    let os = SystemOs::new();
    assert_eq!(os.map(0, 4096), Err(OsError::InvalidRequest));
    assert!(os.map(usize::MAX & !4095, 4096).is_err());
    assert_eq!(os.map(4096, 3), Err(OsError::InvalidRequest));
}

#[test]
fn page_sizes_from_4_to_64_kib_are_accepted() {
    for size in [4 << 10, 16 << 10, 64 << 10] {
        assert_eq!(check_page_size(size), Ok(()), "{size}");
    }
}

#[test]
fn page_sizes_the_heap_cannot_serve_are_refused_with_their_reason() {
    let larger =
        "strata: this kernel's page size is larger than 64 KiB, which strata does not support\n";
    assert_eq!(check_page_size(128 << 10), Err(larger));
    assert_eq!(check_page_size(256 << 10), Err(larger));
    assert_eq!(
        check_page_size(0),
        Err("strata: the kernel did not report its page size, which strata needs\n")
    );
    let odd =
        "strata: this kernel's page size is not a power of two, which strata does not support\n";
    for size in [3 << 10, 12 << 10, (64 << 10) + 1, usize::MAX] {
        assert_eq!(check_page_size(size), Err(odd), "{size}");
    }
}

#[test]
fn this_kernel_page_size_is_one_strata_serves() {
    let page = os_page_size();
    assert_eq!(check_page_size(page), Ok(()));
    // SAFETY: sysconf has no preconditions.
    let asked = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    assert_eq!(
        page as libc::c_long, asked,
        "the cached size is the kernel's"
    );
}

/// The clock is read in the vDSO itself wherever the kernel maps one, and
/// it is the same clock libc reads: a vDSO reading lies between two of
/// libc's.
#[test]
fn the_clock_comes_from_the_vdso_and_agrees_with_libc() {
    // SAFETY: getauxval has no preconditions.
    let has_vdso = unsafe { libc::getauxval(libc::AT_SYSINFO_EHDR) } != 0;
    assert_eq!(super::vdso::in_use(), has_vdso);
    let libc_ns = || {
        // SAFETY: a timespec of zeros is valid.
        let mut ts: libc::timespec = unsafe { core::mem::zeroed() };
        // SAFETY: writes into `ts`.
        assert_eq!(
            unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) },
            0
        );
        ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
    };
    for _ in 0..1000 {
        let before = libc_ns();
        let ours = monotonic_ns();
        let after = libc_ns();
        assert!(before <= ours && ours <= after, "{before} {ours} {after}");
    }
    // The coarse clock ticks at most a few ms behind the precise one.
    let coarse = monotonic_ms();
    let precise = libc_ns() / 1_000_000;
    assert!(
        coarse <= precise && precise - coarse < 100,
        "{coarse} {precise}"
    );
}

/// The lookup finds the vDSO's functions by name and nothing else.
#[test]
fn the_vdso_lookup_finds_only_what_is_there() {
    // SAFETY: getauxval has no preconditions.
    if unsafe { libc::getauxval(libc::AT_SYSINFO_EHDR) } == 0 {
        assert_eq!(super::vdso::find("__vdso_clock_gettime"), None);
        return;
    }
    let clock = super::vdso::find("__vdso_clock_gettime").expect("clock_gettime");
    let time = super::vdso::find("__vdso_gettimeofday").expect("gettimeofday");
    assert_ne!(clock, time);
    for absent in [
        "",
        "__vdso_",
        "__vdso_clock_gettimex",
        "clock_gettime_",
        "malloc",
    ] {
        assert_eq!(super::vdso::find(absent), None, "{absent:?}");
    }
}
