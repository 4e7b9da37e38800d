//! Tests of the system OS layer against the real kernel: mappings,
//! release, zeroing by residency, populate, remap and page moves.

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

/// Pages moved by `move_pages` keep their contents at the target; the
/// source stays mapped, reads as zero and holds no memory.
#[test]
#[cfg(target_os = "linux")]
fn move_pages_moves_contents_and_leaves_zero() {
    let os = SystemOs::new();
    let len = 4 << 20;
    let m = os.map(2 * len, 4096).unwrap();
    let (from, to) = (m, NonNull::new(m.as_ptr().wrapping_add(len)).unwrap());
    // SAFETY: both halves of our mapping.
    unsafe {
        for i in (0..len).step_by(4096) {
            from.as_ptr().add(i).write((i >> 12) as u8 | 1);
            to.as_ptr().add(i).write(0xee);
        }
        os.move_pages(from, to, len).unwrap();
        for i in (0..len).step_by(4096) {
            assert_eq!(to.as_ptr().add(i).read(), (i >> 12) as u8 | 1);
        }
        let mut vec = std::vec![0u8; len / 4096];
        assert_eq!(
            libc::mincore(from.as_ptr().cast(), len, vec.as_mut_ptr()),
            0
        );
        assert!(
            vec.iter().all(|&v| v & 1 == 0),
            "source pages still resident"
        );
        assert!((0..len)
            .step_by(4096)
            .all(|i| from.as_ptr().add(i).read() == 0));
        // Still mapped and writable: no hole was left.
        from.as_ptr().write(7);
        os.unmap(m, 2 * len);
    }
}

#[test]
fn remap_grows_and_keeps_contents() {
    let os = SystemOs::new();
    let p = os.map(1 << 20, 4096).unwrap();
    // SAFETY: we own the mapping.
    unsafe {
        p.as_ptr().add(12345).write(9);
        let q = os.remap(p, 1 << 20, 64 << 20, 4096).unwrap();
        assert_eq!(q.as_ptr().add(12345).read(), 9);
        assert_eq!(q.as_ptr().add((64 << 20) - 1).read(), 0);
        // Keep a strong alignment across a move.
        let blocker = os.map(4096, 4096).unwrap();
        let r = os.remap(q, 64 << 20, 256 << 20, 1 << 21).unwrap();
        assert_eq!(r.as_ptr() as usize % (1 << 21), 0);
        assert_eq!(r.as_ptr().add(12345).read(), 9);
        let s = os.remap(r, 256 << 20, 8 << 20, 1 << 21).unwrap();
        assert_eq!(s, r, "shrinking stays in place");
        assert_eq!(s.as_ptr().add(12345).read(), 9);
        os.unmap(s, 8 << 20);
        os.unmap(blocker, 4096);
    }
}

#[test]
fn impossible_requests_fail() {
    let os = SystemOs::new();
    assert_eq!(os.map(0, 4096), Err(OsError::InvalidRequest));
    assert!(os.map(usize::MAX & !4095, 4096).is_err());
    assert_eq!(os.map(4096, 3), Err(OsError::InvalidRequest));
}
