//! Helpers shared by the strata integration tests: position-dependent fill
//! patterns with precise mismatch reports, a fast all-zero check, the shared
//! deterministic PRNG (`strata_testkit::rng`), and the `STRATA_LONG_TESTS`
//! switch.
//!
//! Every test binary includes this with `mod common;` and uses a subset of it.
#![allow(dead_code)]

pub mod hook;

use std::sync::mpsc;
use std::thread;
use std::time::Duration;

/// The shared deterministic generator, for shuffles and size choices.
pub use strata_testkit::rng::Rng;

pub const KIB: usize = 1024;
pub const MIB: usize = 1024 * 1024;
pub const GIB: usize = 1024 * 1024 * 1024;

/// `true` when `STRATA_LONG_TESTS` is set (and not `0`): tests then run their
/// bigger variants.
pub fn long_tests() -> bool {
    std::env::var_os("STRATA_LONG_TESTS").is_some_and(|v| !v.is_empty() && v != "0")
}

/// Runs test `name` of this test binary alone in a child process, with `env`
/// set, and asserts that it passed. Returns `true` in that child (which then
/// runs the test's body; it finds `marker` set to `name`) and `false` in
/// the parent. For tests that need a process of their own: settings read
/// once per process, or memory no other test may reuse meanwhile.
pub fn in_child(marker: &str, name: &str, env: &[(&str, &str)]) -> bool {
    in_child_limited(marker, name, env, None)
}

/// [`in_child`], with the child's address space limited (`RLIMIT_AS`) to
/// `limit` bytes from its first instruction, so that strata starts under the
/// limit as a program run with `ulimit -v` does.
pub fn in_child_limited(
    marker: &str,
    name: &str,
    env: &[(&str, &str)],
    limit: Option<usize>,
) -> bool {
    use std::os::unix::process::CommandExt;
    if std::env::var(marker).as_deref() == Ok(name) {
        return true;
    }
    let mut cmd = std::process::Command::new(std::env::current_exe().unwrap());
    cmd.args(["--exact", name, "--nocapture", "--test-threads=1"])
        .env(marker, name);
    for (k, v) in env {
        cmd.env(k, v);
    }
    if let Some(limit) = limit {
        let r = libc::rlimit {
            rlim_cur: limit as libc::rlim_t,
            rlim_max: libc::RLIM_INFINITY,
        };
        // SAFETY: setrlimit is async-signal-safe and reads only `r`, a copy
        // moved into the closure.
        unsafe {
            cmd.pre_exec(move || {
                if libc::setrlimit(libc::RLIMIT_AS, &r) == 0 {
                    Ok(())
                } else {
                    Err(std::io::Error::last_os_error())
                }
            });
        }
    }
    let out = cmd.output().unwrap();
    assert!(
        out.status.success() && String::from_utf8_lossy(&out.stdout).contains("1 passed"),
        "child {name}: {:?}\n{}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    false
}

/// Mixes a user seed into the constant part of the pattern.
fn mix(seed: u64) -> u64 {
    Rng::new(seed).next_u64()
}

/// Word `idx` (< 512) of the 4 KiB template of a pattern whose mixed seed is
/// `s`. Multiplying by an odd constant is a bijection, so the words of one
/// template all differ: a copy shifted by less than 4 KiB is caught, and so is
/// memory that was zeroed or never written.
#[inline]
fn pat(s: u64, idx: usize) -> u64 {
    (idx as u64).wrapping_mul(0x0000_0100_0000_01B3) ^ s
}

/// The first word of every 4 KiB block is a stamp of the block's index instead,
/// so a copy shifted by a multiple of 4 KiB is caught too.
#[inline]
fn stamp(s: u64, block: usize) -> u64 {
    (block as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ s.rotate_left(17) ^ 0x5354_414D_5053
}

const BLOCK: usize = 4096;

/// The template bytes of the pattern `s`, as far as `len` bytes need them.
fn template(s: u64, len: usize) -> [u8; BLOCK] {
    let mut t = [0u8; BLOCK];
    let n = len.min(BLOCK).div_ceil(8);
    for (i, c) in t.chunks_exact_mut(8).take(n).enumerate() {
        c.copy_from_slice(&pat(s, i).to_le_bytes());
    }
    t
}

/// Fills `buf` with the pattern `seed`. Byte `i` of the pattern depends only on
/// `seed` and `i`, so any prefix of a filled buffer can be checked alone. The
/// pattern is built from a 4 KiB template plus a per-block stamp, so filling
/// and checking run at `memcpy`/`memcmp` speed even in debug builds.
pub fn fill(buf: &mut [u8], seed: u64) {
    let s = mix(seed);
    let t = template(s, buf.len());
    for (b, chunk) in buf.chunks_mut(BLOCK).enumerate() {
        let n = chunk.len();
        chunk.copy_from_slice(&t[..n]);
        let k = n.min(8);
        chunk[..k].copy_from_slice(&stamp(s, b).to_le_bytes()[..k]);
    }
}

/// The byte the pattern `seed` has at offset `off`.
pub fn pattern_byte(seed: u64, off: usize) -> u8 {
    let s = mix(seed);
    let (b, o) = (off / BLOCK, off % BLOCK);
    let w = if o < 8 { stamp(s, b) } else { pat(s, o / 8) };
    w.to_le_bytes()[o % 8]
}

/// The offset of the first byte of `buf` that differs from the pattern `seed`.
pub fn first_mismatch(buf: &[u8], seed: u64) -> Option<usize> {
    let s = mix(seed);
    let t = template(s, buf.len());
    for (b, chunk) in buf.chunks(BLOCK).enumerate() {
        let n = chunk.len();
        let k = n.min(8);
        if chunk[..k] != stamp(s, b).to_le_bytes()[..k] || chunk[k..] != t[k..n] {
            let j = (0..n).find(|&j| chunk[j] != pattern_byte(seed, b * BLOCK + j));
            return Some(b * BLOCK + j.unwrap_or(0));
        }
    }
    None
}

/// Panics, naming `what`, the offset and both bytes, unless `buf` holds the
/// pattern `seed`.
#[track_caller]
pub fn check(buf: &[u8], seed: u64, what: &str) {
    if let Some(off) = first_mismatch(buf, seed) {
        panic!(
            "{what}: pattern {seed:#x} broken at byte {off} of {} (buffer at {:p}): \
             expected {:#04x}, found {:#04x}",
            buf.len(),
            buf.as_ptr(),
            pattern_byte(seed, off),
            buf[off],
        );
    }
}

static ZEROS: [u8; 64 * 1024] = [0; 64 * 1024];

/// The offset of the first non-zero byte of `buf` (compared with `memcmp`
/// against a static zero block, so it is fast even in debug builds).
pub fn first_nonzero(buf: &[u8]) -> Option<usize> {
    for (k, c) in buf.chunks(ZEROS.len()).enumerate() {
        if c != &ZEROS[..c.len()] {
            let j = c.iter().position(|b| *b != 0).unwrap_or(0);
            return Some(k * ZEROS.len() + j);
        }
    }
    None
}

/// Panics, naming `what` and the offset, unless every byte of `buf` is zero.
#[track_caller]
pub fn assert_zero(buf: &[u8], what: &str) {
    if let Some(off) = first_nonzero(buf) {
        panic!(
            "{what}: byte {off} of {} (buffer at {:p}, page {} of it) is {:#04x}, expected 0",
            buf.len(),
            buf.as_ptr(),
            off / 4096,
            buf[off],
        );
    }
}

/// Runs `f` on its own thread and panics if it has not finished after
/// `secs` seconds: a hang detector (deadlock in the allocator), not a timing
/// assertion — the limit is far above the expected run time.
pub fn with_deadline<T: Send + 'static>(
    secs: u64,
    what: &str,
    f: impl FnOnce() -> T + Send + 'static,
) -> T {
    let (tx, rx) = mpsc::channel();
    let h = thread::spawn(move || {
        let r = f();
        let _ = tx.send(());
        r
    });
    match rx.recv_timeout(Duration::from_secs(secs)) {
        // The sender is dropped without sending if `f` panicked: join reports it.
        Ok(()) | Err(mpsc::RecvTimeoutError::Disconnected) => match h.join() {
            Ok(v) => v,
            Err(e) => std::panic::resume_unwind(e),
        },
        Err(mpsc::RecvTimeoutError::Timeout) => {
            panic!("{what}: not finished after {secs} s (deadlock or livelock?)")
        }
    }
}
