//! The memory lifecycle through the real allocator: memory that was dirtied and
//! then released, decayed, cached as a huge mapping or moved by mremap must
//! come back as zeros from `alloc_zeroed`; populate and release do what they
//! say; stats see it all.

#[global_allocator]
static GLOBAL: strata::Strata = strata::Strata;

use std::alloc::{alloc, alloc_zeroed, dealloc, realloc, Layout};
use std::sync::Mutex;

/// Tests here change process-wide settings (decay); run them one at a time.
static SERIAL: Mutex<()> = Mutex::new(());

fn all_zero(p: *const u8, len: usize) -> bool {
    // SAFETY: callers pass live blocks of at least `len` bytes.
    let s = unsafe { std::slice::from_raw_parts(p, len) };
    let (head, words, tail) = unsafe { s.align_to::<u64>() };
    head.iter().all(|&b| b == 0) && words.iter().all(|&w| w == 0) && tail.iter().all(|&b| b == 0)
}

fn dirty(len: usize, align: usize) -> Layout {
    let l = Layout::from_size_align(len, align).unwrap();
    // SAFETY: non-zero layout; the block is written fully then freed.
    unsafe {
        // black_box: otherwise the compiler may drop the whole allocation
        // (written, never read, freed) and the test measures nothing.
        let p = std::hint::black_box(alloc(l));
        assert!(!p.is_null());
        std::ptr::write_bytes(p, 0xEE, len);
        dealloc(std::hint::black_box(p), l);
    }
    l
}

/// The calloc loop of the macOS bug: memory the program used once and then
/// asks for zeroed again and again, never touching it. strata clears it at
/// most once; every later reuse only drops pages (page-table work).
#[test]
#[cfg_attr(
    feature = "checked",
    ignore = "the checked build writes marks into every large block it hands out"
)]
fn a_calloc_loop_of_untouched_memory_clears_it_at_most_once() {
    let _g = SERIAL.lock().unwrap();
    for &len in &[1 << 20, 8 << 20, 64 << 20] {
        let l = dirty(len, 8);
        let before = strata::stats().zeroed_bytes_written;
        for _ in 0..20 {
            // SAFETY: non-zero layout; the block is freed once.
            unsafe {
                let p = alloc_zeroed(l);
                assert!(!p.is_null());
                assert_eq!(p.read_volatile(), 0);
                dealloc(p, l);
            }
        }
        let written = strata::stats().zeroed_bytes_written - before;
        assert!(
            written <= len as u64,
            "{len}: wrote {written} bytes in 20 cycles"
        );
    }
}

#[test]
fn released_memory_comes_back_zero() {
    let _g = SERIAL.lock().unwrap();
    for &len in &[300 << 10, 4 << 20, 40 << 20] {
        let l = dirty(len, 8);
        assert!(strata::release_free_memory() > 0 || strata::stats().free_dirty_bytes == 0);
        // SAFETY: non-zero layout.
        unsafe {
            let p = alloc_zeroed(l);
            assert!(all_zero(p, len), "{len} bytes after release");
            dealloc(p, l);
        }
    }
}

#[test]
fn decayed_memory_comes_back_zero_and_is_released() {
    let _g = SERIAL.lock().unwrap();
    strata::set_decay_ms(0);
    let before = strata::stats().released_bytes_total;
    let l = dirty(8 << 20, 8);
    // Another large operation drives the decay tick.
    let l2 = dirty(1 << 20, 8);
    std::thread::sleep(std::time::Duration::from_millis(20));
    let _ = dirty(2 << 20, 8);
    assert!(
        strata::stats().released_bytes_total > before,
        "decay released nothing"
    );
    // SAFETY: non-zero layouts.
    unsafe {
        for l in [l, l2] {
            let p = alloc_zeroed(l);
            assert!(all_zero(p, l.size()));
            dealloc(p, l);
        }
    }
    strata::set_decay_ms(strata::Config::DEFAULT.decay_ms);
}

#[test]
#[cfg_attr(
    feature = "checked",
    ignore = "the checked build's realloc always copies a block to a new one"
)]
fn huge_blocks_moved_by_mremap_keep_contents_and_come_back_zero() {
    let _g = SERIAL.lock().unwrap();
    let remaps = strata::stats().huge_remaps;
    let mut len = 40 << 20;
    let l = Layout::from_size_align(len, 64).unwrap();
    // SAFETY: non-zero layout; every access stays inside the current length.
    unsafe {
        let mut p = alloc(l);
        std::ptr::write_bytes(p, 0x3C, len);
        for _ in 0..3 {
            let new_len = len * 2;
            p = realloc(p, Layout::from_size_align(len, 64).unwrap(), new_len);
            assert!(!p.is_null());
            assert_eq!(p as usize % 64, 0);
            assert!(std::slice::from_raw_parts(p, len)
                .iter()
                .all(|&b| b == 0x3C));
            std::ptr::write_bytes(p.add(len), 0x3C, new_len - len);
            len = new_len;
        }
        // Shrink back in place.
        p = realloc(p, Layout::from_size_align(len, 64).unwrap(), 33 << 20);
        assert!(std::slice::from_raw_parts(p, 33 << 20)
            .iter()
            .all(|&b| b == 0x3C));
        dealloc(p, Layout::from_size_align(33 << 20, 64).unwrap());
        assert!(
            strata::stats().huge_remaps >= remaps + 3,
            "realloc of huge blocks copied"
        );
        // The cached (dirty) mapping must come back zeroed.
        for size in [33 << 20, 64 << 20] {
            let z = Layout::from_size_align(size, 64).unwrap();
            let q = alloc_zeroed(z);
            assert!(all_zero(q, size), "huge block of {size} bytes after reuse");
            std::ptr::write_bytes(q, 0x77, size);
            dealloc(q, z);
        }
    }
}

#[test]
fn populate_makes_memory_resident() {
    let _g = SERIAL.lock().unwrap();
    let len = 64 << 20;
    let l = Layout::from_size_align(len, 4096).unwrap();
    // SAFETY: non-zero layout; populate covers the block.
    unsafe {
        let p = alloc_zeroed(l);
        assert!(strata::populate(std::ptr::NonNull::new(p).unwrap(), len));
        let page = 4096;
        let mut vec = vec![0u8; len / page];
        assert_eq!(libc::mincore(p.cast(), len, vec.as_mut_ptr().cast()), 0);
        let resident = vec.iter().filter(|&&v| v & 1 != 0).count();
        assert_eq!(resident, len / page, "populate left pages non-resident");
        assert!(all_zero(p, len), "populate changed the contents");
        dealloc(p, l);
    }
}

#[test]
fn stats_account_for_large_blocks() {
    let _g = SERIAL.lock().unwrap();
    let l = Layout::from_size_align(10 << 20, 8).unwrap();
    // SAFETY: non-zero layout. `black_box`: an unused allocation may be
    // elided by the optimiser (release builds).
    unsafe {
        let p = std::hint::black_box(alloc(l));
        assert!(!p.is_null());
        let s = strata::stats();
        assert!(s.in_use_bytes >= 10 << 20);
        assert!(s.mapped_bytes >= s.in_use_bytes);
        assert!(s.mmap_calls > 0);
        dealloc(p, l);
    }
    let s = strata::stats();
    assert!(s.free_dirty_bytes + s.free_clean_bytes >= 10 << 20);
}

#[test]
fn requests_no_machine_could_back_fail() {
    let _g = SERIAL.lock().unwrap();
    for size in [32usize << 40, 1 << 46] {
        let l = Layout::from_size_align(size, 4096).unwrap();
        // SAFETY: non-zero layouts; a null result is what is expected.
        // `black_box`: an allocation only compared with null may be elided
        // by the optimiser and assumed to succeed (release builds).
        unsafe {
            let p = std::hint::black_box(alloc(l));
            assert!(p.is_null(), "alloc of {size} bytes succeeded");
            let z = std::hint::black_box(alloc_zeroed(l));
            assert!(z.is_null(), "alloc_zeroed of {size} bytes succeeded");
        }
    }
}

/// The background release thread must never take a signal meant for the
/// program (one that blocks a signal and waits for it with `sigwait` would
/// see it delivered there, and die of the default action): it runs with the
/// program's signals blocked. Checked in the kernel's view of the thread.
#[test]
fn background_release_thread_blocks_signals() {
    let _g = SERIAL.lock().unwrap();
    assert!(strata::start_background_release());
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    let status = loop {
        let found = std::fs::read_dir("/proc/self/task")
            .unwrap()
            .flatten()
            .find_map(|t| {
                let comm = std::fs::read_to_string(t.path().join("comm")).ok()?;
                (comm.trim() == "strata-release")
                    .then(|| std::fs::read_to_string(t.path().join("status")).unwrap())
            });
        if let Some(s) = found {
            break s;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no strata-release thread"
        );
        std::thread::sleep(std::time::Duration::from_millis(10));
    };
    let blocked = status
        .lines()
        .find_map(|l| l.strip_prefix("SigBlk:"))
        .unwrap()
        .trim();
    let mask = u64::from_str_radix(blocked, 16).unwrap();
    for sig in [
        libc::SIGUSR1,
        libc::SIGUSR2,
        libc::SIGTERM,
        libc::SIGINT,
        libc::SIGALRM,
        libc::SIGCHLD,
    ] {
        assert!(
            mask & (1 << (sig - 1)) != 0,
            "signal {sig} not blocked: SigBlk {blocked}"
        );
    }
}
