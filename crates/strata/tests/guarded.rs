//! Guarded sampling (`strata::guarded`): each bad use of a guarded block
//! stops the program with a report naming the block and its stacks. Every
//! test runs in a child process of its own, with a rate of 1 (every
//! allocation through a thread cache is guarded while a slot is free), so
//! that which block is guarded never depends on chance, inlining or the
//! build's profile; the parent checks how the child ended and what it
//! wrote.

#[global_allocator]
static GLOBAL: strata::Strata = strata::Strata;

use std::alloc::{alloc, dealloc, realloc, Layout};
use std::os::unix::process::ExitStatusExt;
use std::process::{Command, Output};

use strata::guarded;

const MARKER: &str = "STRATA_GUARDED_CHILD";

/// Runs test `name` in a child process with `env`; `None` in the child
/// (which then runs the body), its output in the parent.
fn child(name: &str, env: &[(&str, &str)]) -> Option<Output> {
    if std::env::var(MARKER).as_deref() == Ok(name) {
        return None;
    }
    let mut cmd = Command::new(std::env::current_exe().unwrap());
    cmd.args(["--exact", name, "--nocapture", "--test-threads=1"])
        .env(MARKER, name);
    for (k, v) in env {
        cmd.env(k, v);
    }
    Some(cmd.output().unwrap())
}

/// Runs `body` in a child process that must be stopped by it (test
/// `name`); the child's output in the parent.
fn dies(name: &str, body: impl FnOnce()) -> Output {
    child(name, &[]).unwrap_or_else(|| {
        // Room for the fault reporter's walk of this thread's stack
        // (std's own alternate stack is a few KiB: an unoptimised walk
        // would be skipped there; see `a_fault_on_a_small_signal_stack`).
        alternate_stack(256 << 10);
        body();
        unreachable!("{name}: the bad use was not stopped")
    })
}

/// Gives this thread an alternate signal stack of `len` bytes (leaked: the
/// process is about to die).
fn alternate_stack(len: usize) {
    let mem = Box::leak(vec![0u8; len].into_boxed_slice());
    let ss = libc::stack_t {
        ss_sp: mem.as_mut_ptr().cast(),
        ss_flags: 0,
        ss_size: len,
    };
    // SAFETY: `mem` lives for the rest of the process.
    assert_eq!(unsafe { libc::sigaltstack(&ss, core::ptr::null_mut()) }, 0);
}

/// Runs `body` in a child process with `env` (test `name`), which must
/// pass.
fn passes(name: &str, env: &[(&str, &str)], body: impl FnOnce()) {
    match child(name, env) {
        Some(out) => assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        ),
        None => body(),
    }
}

fn page() -> usize {
    // SAFETY: sysconf has no preconditions.
    unsafe { libc::sysconf(libc::_SC_PAGESIZE) as usize }
}

/// A guarded block of `l` placed at the end of its page, against the
/// guard page after it (`at_end`), or at its page's start: allocated with a rate of 1 until
/// one lands there (placement alternates, so within a few).
fn guarded_block(l: Layout, at_end: bool) -> *mut u8 {
    guarded::set_rate(1);
    guarded::set_max_per_sec(0);
    for _ in 0..8 {
        // SAFETY: a non-zero layout.
        let p = unsafe { alloc(l) };
        assert!(guarded::is_guarded(p), "no guarded block of {l:?}");
        // A block at the end may leave its alignment's slack before the
        // guard: it is the one not at its page's start.
        if (p as usize % page() != 0) == at_end {
            return p;
        }
    }
    panic!("no guarded block of {l:?} at the right place");
}

/// The child died of `sig` and reported `what` with the allocation stack
/// (and the free stack if `freed`), naming this test's function.
fn assert_report(out: &Output, sig: i32, what: &str, freed: bool) {
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.signal(), Some(sig), "{err}");
    assert!(err.contains("strata: guarded block: "), "{err}");
    assert!(err.contains(what), "{err}");
    assert!(err.contains("strata: allocated by thread "), "{err}");
    assert_eq!(err.contains("strata: freed by thread "), freed, "{err}");
    // Each stack shows at least one frame, not "(no stack trace)".
    assert!(!err.contains("(no stack trace)"), "{err}");
    if sig == libc::SIGSEGV {
        // The faulting thread's own stack, walked from the signal's
        // context: the faulting instruction, then its callers (the test's
        // closure, `dies`, the test, the harness).
        let fault = err
            .split_once("strata: the faulting access:\n")
            .map(|(_, rest)| rest)
            .unwrap_or_else(|| panic!("no faulting access in {err}"));
        let frames = fault.lines().take_while(|l| l.starts_with("    #")).count();
        assert!(frames >= 3, "{frames} frames of the faulting access: {err}");
    }
}

/// 48 bytes aligned to 8 end at the guard page in either build (the
/// `checked` build serves them from its 64-byte class, room for its marks:
/// the block is placed by the request, not by the class).
#[test]
fn an_overflow_faults_and_is_reported() {
    let out = dies("an_overflow_faults_and_is_reported", || {
        let l = Layout::from_size_align(48, 8).unwrap();
        let p = guarded_block(l, true);
        // SAFETY: deliberately one byte past the block: into the guard.
        unsafe { p.add(48).write_volatile(1) };
    });
    assert_report(&out, libc::SIGSEGV, "heap overflow: write at", false);
    assert!(String::from_utf8_lossy(&out.stderr).contains("0 bytes past the end of the block"));
}

#[test]
fn an_underflow_faults_and_is_reported() {
    let out = dies("an_underflow_faults_and_is_reported", || {
        let l = Layout::from_size_align(40, 8).unwrap();
        let p = guarded_block(l, false);
        // SAFETY: deliberately reads a byte before the block: the guard.
        let _ = unsafe { p.sub(1).read_volatile() };
    });
    assert_report(&out, libc::SIGSEGV, "heap underflow: read at", false);
}

/// On an alternate signal stack too small for a walk (glibc's
/// `SIGSTKSZ`), the report still comes out whole, with the faulting
/// instruction as its first frame, and the program stops with the fault's
/// signal: the reporter never overruns the stack it runs on.
#[test]
fn a_fault_on_a_small_signal_stack_is_still_reported() {
    let out =
        child("a_fault_on_a_small_signal_stack_is_still_reported", &[]).unwrap_or_else(|| {
            let l = Layout::from_size_align(40, 8).unwrap();
            let p = guarded_block(l, false);
            alternate_stack(libc::SIGSTKSZ);
            // SAFETY: deliberately reads a byte before the block: the guard.
            let _ = unsafe { p.sub(1).read_volatile() };
            unreachable!("the bad read was not stopped")
        });
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.signal(), Some(libc::SIGSEGV), "{err}");
    assert!(err.contains("heap underflow: read at"), "{err}");
    assert!(
        err.contains("strata: the faulting access:\n    #0 0x"),
        "{err}"
    );
}

#[test]
fn an_overflow_into_slack_is_found_on_free() {
    let out = dies("an_overflow_into_slack_is_found_on_free", || {
        // 40 bytes, aligned to 16 (what malloc promises from 16 bytes up):
        // 8 bytes of slack before the guard when placed at the page's end.
        let l = Layout::from_size_align(40, 8).unwrap();
        let p = guarded_block(Layout::from_size_align(40, 8).unwrap(), true);
        // SAFETY: deliberately writes the slack past the block, still in
        // its page.
        unsafe {
            p.add(40).write_volatile(1);
            dealloc(p, l);
        }
    });
    assert_report(&out, libc::SIGABRT, "heap overflow", false);
}

/// Guarded blocks of each alignment, at both ends of their pages: aligned
/// as asked, their usable size the size asked for, usable in full with no
/// report, and those at the page's end as close to the guard as their
/// alignment (at least C's `malloc`'s: 8, 16 from 16 bytes up) allows.
#[test]
fn guarded_blocks_of_every_alignment_are_aligned_and_usable() {
    passes(
        "guarded_blocks_of_every_alignment_are_aligned_and_usable",
        &[],
        || {
            guarded::set_rate(1);
            guarded::set_max_per_sec(0);
            let page = page();
            for align in [1usize, 8, 16, 64, 4096] {
                for size in [1usize, 12, 24, 48, 100, 1000] {
                    let l = Layout::from_size_align(size, align).unwrap();
                    let floor = if size >= 16 { 16 } else { 8 };
                    let want = align.max(floor);
                    let mut closest = page;
                    for c_path in [false, true] {
                        // Placement alternates: four blocks reach both ends.
                        for _ in 0..4 {
                            // SAFETY: non-zero layout; the block is used
                            // within its size and freed once.
                            unsafe {
                                let p = if c_path {
                                    strata::raw::alloc(size, align)
                                } else {
                                    alloc(l)
                                };
                                assert!(guarded::is_guarded(p), "{l:?}");
                                assert_eq!(p as usize % align, 0, "{l:?}");
                                assert_eq!(strata::raw::usable_size(p), size, "{l:?}");
                                assert!((0..size).all(|i| p.add(i).read() == 0), "{l:?}");
                                p.write_bytes(0x5a, size);
                                assert!((0..size).all(|i| p.add(i).read() == 0x5a));
                                let gap = page - (p as usize + size - 1) % page - 1;
                                closest = closest.min(gap);
                                if c_path {
                                    strata::raw::free(p);
                                } else {
                                    dealloc(p, l);
                                }
                            }
                        }
                    }
                    // The end of the page, less the size, rounded down to
                    // the alignment.
                    assert_eq!(closest, (page - size) % want, "{l:?}");
                }
            }
            // C's malloc: 16-byte alignment from 16 bytes up.
            for size in [8usize, 20, 40] {
                let p = strata::raw::malloc(size);
                assert!(guarded::is_guarded(p));
                let floor = if size >= 16 { 16 } else { 8 };
                assert_eq!(p as usize % floor, 0, "malloc({size})");
                // SAFETY: the live block, used in full, freed once.
                unsafe {
                    p.write_bytes(1, size);
                    strata::raw::free(p);
                }
            }
        },
    );
}

#[test]
fn a_use_after_free_faults_with_both_stacks() {
    let out = dies("a_use_after_free_faults_with_both_stacks", || {
        let l = Layout::from_size_align(100, 8).unwrap();
        let p = guarded_block(l, true);
        // SAFETY: deliberately writes the block after freeing it.
        unsafe {
            dealloc(p, l);
            p.write_volatile(7);
        }
    });
    assert_report(&out, libc::SIGSEGV, "use after free: write at", true);
}

#[test]
fn a_double_free_is_reported_with_both_stacks() {
    let out = dies("a_double_free_is_reported_with_both_stacks", || {
        let l = Layout::from_size_align(24, 8).unwrap();
        let p = guarded_block(l, false);
        // SAFETY: deliberately frees the block twice, through the C path.
        unsafe {
            strata::raw::free(p);
            strata::raw::free(p);
        }
    });
    assert_report(&out, libc::SIGABRT, "double free", true);
}

#[test]
fn an_interior_free_is_reported() {
    let out = dies("an_interior_free_is_reported", || {
        let l = Layout::from_size_align(64, 8).unwrap();
        let p = guarded_block(l, false);
        // SAFETY: deliberately frees a pointer inside the block.
        unsafe { strata::raw::free(p.add(8)) };
    });
    assert_report(&out, libc::SIGABRT, "inside a block", false);
}

/// A fault outside the pool goes to the handler installed before strata's.
#[test]
fn other_faults_go_to_the_handler_before() {
    extern "C" fn handler(_: libc::c_int, _: *mut libc::siginfo_t, _: *mut libc::c_void) {
        let msg = b"the program's own handler\n";
        // SAFETY: write and _exit are async-signal-safe.
        unsafe {
            libc::write(2, msg.as_ptr().cast(), msg.len());
            libc::_exit(42);
        }
    }
    let out = dies("other_faults_go_to_the_handler_before", || {
        // SAFETY: installs a handler of the SA_SIGINFO signature; maps a
        // page nobody may access, then touches it.
        unsafe {
            let mut act: libc::sigaction = std::mem::zeroed();
            act.sa_sigaction = handler as *const () as usize;
            act.sa_flags = libc::SA_SIGINFO;
            libc::sigaction(libc::SIGSEGV, &act, std::ptr::null_mut());
            // The pool (and strata's handler) come with the first guarded
            // block.
            let _ = guarded_block(Layout::from_size_align(32, 8).unwrap(), true);
            assert!(guarded::stats().reserved_bytes > 0);
            let m = libc::mmap(
                std::ptr::null_mut(),
                page(),
                libc::PROT_NONE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            );
            (m as *mut u8).write_volatile(1);
        }
    });
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(42), "{err}");
    assert!(err.contains("the program's own handler"), "{err}");
    assert!(!err.contains("strata: guarded block"), "{err}");
}

#[test]
fn a_forked_child_keeps_using_the_pool() {
    passes("a_forked_child_keeps_using_the_pool", &[], || {
        let l = Layout::from_size_align(40, 8).unwrap();
        let p = guarded_block(l, false);
        // SAFETY: fork; the child uses only the allocator and _exit.
        let pid = unsafe { libc::fork() };
        if pid == 0 {
            // SAFETY: the parent's block, the child's own copy now.
            unsafe { dealloc(p, l) };
            let mut ok = true;
            for _ in 0..2 * guarded::SLOTS {
                // SAFETY: a non-zero layout.
                let q = unsafe { alloc(l) };
                ok &= guarded::is_guarded(q);
                // SAFETY: written within its size, then freed.
                unsafe {
                    q.write_bytes(5, 40);
                    dealloc(q, l);
                }
            }
            // SAFETY: ends the child without running the parent's code.
            unsafe { libc::_exit(if ok { 0 } else { 1 }) };
        }
        let mut status = 0;
        // SAFETY: waits for the child just forked.
        unsafe { libc::waitpid(pid, &mut status, 0) };
        assert!(libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0);
        // SAFETY: the parent's block is still live here.
        unsafe { dealloc(p, l) };
    });
}

#[test]
fn the_pool_is_bounded() {
    passes(
        "the_pool_is_bounded",
        &[
            ("STRATA_GUARDED_RATE", "1"),
            ("STRATA_GUARDED_MAX_PER_SEC", "unlimited"),
        ],
        || {
            assert_eq!(guarded::rate(), 1);
            assert_eq!(guarded::max_per_sec(), 0);
            let l = Layout::from_size_align(16, 8).unwrap();
            // SAFETY: non-zero layout; every block freed below.
            let blocks: Vec<*mut u8> = (0..1000).map(|_| unsafe { alloc(l) }).collect();
            let s = guarded::stats();
            assert!(s.live <= guarded::SLOTS, "{s:?}");
            assert!(s.live >= guarded::SLOTS / 2, "{s:?}");
            assert_eq!(s.reserved_bytes, (2 * guarded::SLOTS + 1) * page());
            assert!(s.max_resident_bytes <= 1 << 20, "{s:?}");
            for p in blocks {
                // SAFETY: allocated above with `l`.
                unsafe { dealloc(p, l) };
            }
        },
    );
}

#[test]
fn realloc_and_alignment_work_on_guarded_blocks() {
    passes("realloc_and_alignment_work_on_guarded_blocks", &[], || {
        let l = Layout::from_size_align(40, 8).unwrap();
        let p = guarded_block(l, true);
        // SAFETY: the live block and what realloc returns, within sizes.
        unsafe {
            assert_eq!(strata::raw::usable_size(p), 40);
            for i in 0..40 {
                p.add(i).write(i as u8);
            }
            // The same class: still moves (no room before the guard).
            let q = realloc(p, l, 48);
            assert_ne!(q, p);
            q.add(47).write(47);
            let r = realloc(q, Layout::from_size_align(48, 8).unwrap(), 1000);
            for i in 0..40 {
                assert_eq!(r.add(i).read(), i as u8);
            }
            dealloc(r, Layout::from_size_align(1000, 8).unwrap());
            // Through the C path as well.
            let c = strata::raw::malloc(24);
            assert!(guarded::is_guarded(c));
            c.write_bytes(9, 24);
            let d = strata::raw::realloc(c, 4000, 8);
            assert!((0..24).all(|i| d.add(i).read() == 9));
            strata::raw::free(d);
            for align in [16usize, 64, 256, 4096] {
                let a = Layout::from_size_align(align.min(200), align).unwrap();
                let p = alloc(a);
                assert_eq!(p as usize % align, 0, "{a:?}");
                p.write_bytes(1, a.size());
                dealloc(p, a);
            }
        }
    });
}

#[test]
fn one_in_rate_allocations_is_guarded() {
    passes("one_in_rate_allocations_is_guarded", &[], || {
        assert_eq!(guarded::stats(), guarded::GuardedStats::default());
        guarded::set_max_per_sec(0);
        guarded::set_rate(100);
        let l = Layout::from_size_align(32, 8).unwrap();
        for _ in 0..100_000 {
            // SAFETY: non-zero layout, freed at once. black_box: a release
            // build may otherwise drop an allocation nobody uses.
            unsafe { dealloc(std::hint::black_box(alloc(l)), l) };
        }
        let n = guarded::stats().allocated;
        // 1000 expected, a standard deviation of about 32.
        assert!((800..1200).contains(&n), "{n} guarded");
        guarded::set_rate(0);
        for _ in 0..100_000 {
            // SAFETY: as above.
            unsafe { dealloc(std::hint::black_box(alloc(l)), l) };
        }
        assert!(guarded::stats().allocated - n < 20);
    });
}

/// Past the budget of guarded blocks a second, the rate's picks are
/// ordinary allocations, counted as skipped; without a budget every pick
/// is guarded again.
#[test]
fn the_budget_bounds_guarded_blocks_a_second() {
    passes("the_budget_bounds_guarded_blocks_a_second", &[], || {
        assert_eq!(guarded::max_per_sec(), guarded::DEFAULT_MAX_PER_SEC);
        guarded::set_max_per_sec(100);
        guarded::set_rate(1);
        let l = Layout::from_size_align(24, 8).unwrap();
        let start = std::time::Instant::now();
        for _ in 0..20_000 {
            // SAFETY: non-zero layout, written, freed at once.
            unsafe {
                let p = std::hint::black_box(alloc(l));
                p.write_bytes(7, 24);
                dealloc(p, l);
            }
        }
        let secs = start.elapsed().as_secs_f64();
        let s = guarded::stats();
        // A burst of a tenth of a second's worth (10), then 100 a second;
        // the clock is coarse (a few ms), hence the slack.
        let most = 10.0 + 100.0 * (secs + 0.02);
        assert!(s.allocated >= 10, "the burst: {s:?}");
        assert!((s.allocated as f64) <= most, "{s:?} in {secs:.3} s");
        assert!(s.skipped > 0 && s.allocated + s.skipped <= 20_000, "{s:?}");
        guarded::set_max_per_sec(0);
        for _ in 0..50 {
            // SAFETY: as above.
            unsafe {
                let p = std::hint::black_box(alloc(l));
                assert!(guarded::is_guarded(p), "no budget: every pick");
                dealloc(p, l);
            }
        }
        guarded::set_rate(0);
    });
}

/// The setting by name, as `strata_set_option` uses it.
#[test]
fn the_rate_is_a_setting() {
    passes("the_rate_is_a_setting", &[], || {
        assert_eq!(
            strata::get_option("guarded_rate").unwrap().to_string(),
            "off"
        );
        strata::set_option("STRATA_GUARDED_RATE", "1000").unwrap();
        assert_eq!(guarded::rate(), 1000);
        assert_eq!(
            strata::get_option("guarded_rate").unwrap().to_string(),
            "1000"
        );
        strata::set_option("guarded_rate", "off").unwrap();
        assert_eq!(guarded::rate(), 0);
    });
}

/// C's `malloc` and `calloc` of 1-7 bytes: the block a sampler hands out is sized to
/// the request, so the word that clears `free`'s mark must go on the
/// object from the list, never on the guarded block (whose slack, checked
/// on free, it would overwrite). Every such block is used in full and
/// freed, with no report.
#[test]
fn tiny_c_blocks_are_guarded_and_freed_cleanly() {
    passes("tiny_c_blocks_are_guarded_and_freed_cleanly", &[], || {
        guarded::set_max_per_sec(0);
        guarded::set_rate(1);
        let mut guarded_seen = 0;
        for round in 0..128 {
            let size = 1 + round % 7;
            // calloc as well: it must clear only the bytes asked for.
            let p = if round % 2 == 0 {
                strata::raw::malloc(size)
            } else {
                strata::raw::alloc_zeroed(size, 1)
            };
            assert!(!p.is_null());
            guarded_seen += guarded::is_guarded(p) as usize;
            // SAFETY: `size` bytes of a live block, then freed once.
            unsafe {
                if round % 2 == 1 {
                    assert!((0..size).all(|i| p.add(i).read() == 0));
                }
                p.write_bytes(0xa5, size);
                assert!((0..size).all(|i| p.add(i).read() == 0xa5));
                strata::raw::free(p);
            }
        }
        // A rate of 1 guards every allocation through a cache (refills
        // included) while a slot is free.
        assert!(guarded_seen >= 64, "{guarded_seen} of 128 guarded");
    });
}
