//! Dumps named after `STRATA_PROFILE`'s prefix: at exit, and on a signal
//! (`STRATA_PROFILE_SIGNAL=USR2`).
//!
//! The signal handler does nothing but count the request on a futex word
//! and wake a thread of the profiler's, started when the handler is
//! installed, that writes the dump: a dump reads files, takes the dynamic
//! loader's lock (symbols) and the profiler's, none of which a handler may
//! do. That thread is a raw pthread with every signal blocked, like the
//! background release thread.
//!
//! Files: `<prefix>.<pid>.heap.pb.gz` at exit and
//! `<prefix>.<pid>.<n>.heap.pb.gz` for the `n`th signal, each with
//! `.inuse.collapsed`, `.alloc.collapsed` and `.peak.collapsed` beside it
//! (the same name with that ending instead of `.heap.pb.gz`).
//!
//! # Invariants
//! - The prefix is written once, at the allocator's start, before any
//!   dump can read it.

use core::cell::UnsafeCell;
use core::ffi::{c_int, CStr};
use core::sync::atomic::AtomicU32;

use crate::sync::statics::{AtomicBool, Ordering};

use super::dump::{self, Kind};

/// The prefix, NUL-terminated (empty: none set).
struct Prefix(UnsafeCell<[u8; 512]>);

// SAFETY: written once at start-up (`set_prefix_from_env`, under the
// allocator's one-time initialisation), read afterwards only.
unsafe impl Sync for Prefix {}

static PREFIX: Prefix = Prefix(UnsafeCell::new([0; 512]));

/// Dump requests the signal handler counted (a futex word).
static REQUESTS: AtomicU32 = AtomicU32::new(0);
static THREAD_STARTED: AtomicBool = AtomicBool::new(false);

fn prefix() -> &'static [u8] {
    // SAFETY: see `Prefix`.
    let p = unsafe { &*PREFIX.0.get() };
    let n = p.iter().position(|&b| b == 0).unwrap_or(0);
    &p[..n]
}

/// Reads `STRATA_PROFILE`; true if it names a prefix (profiling on, dump
/// at exit).
pub(super) fn set_prefix_from_env() -> bool {
    // SAFETY: getenv returns null or a NUL-terminated string.
    let v = unsafe { libc::getenv(c"STRATA_PROFILE".as_ptr()) };
    if v.is_null() {
        return false;
    }
    // SAFETY: non-null result of getenv.
    let v = unsafe { CStr::from_ptr(v) }.to_bytes();
    set_prefix(v)
}

fn set_prefix(v: &[u8]) -> bool {
    // SAFETY: see `Prefix`: this runs once, before any reader.
    let p = unsafe { &mut *PREFIX.0.get() };
    if v.is_empty() || v.len() >= p.len() - 1 {
        return false;
    }
    p[..v.len()].copy_from_slice(v);
    p[v.len()] = 0;
    true
}

/// Parses `USR2`, `SIGUSR2` or a number.
fn signal_number(v: &[u8]) -> Option<c_int> {
    let name = v.strip_prefix(b"SIG").unwrap_or(v);
    match name {
        b"USR1" => Some(libc::SIGUSR1),
        b"USR2" => Some(libc::SIGUSR2),
        b"PROF" => Some(libc::SIGPROF),
        b"URG" => Some(libc::SIGURG),
        _ => crate::config::parse_size(name)
            .filter(|&n| n > 0 && n < 65)
            .map(|n| n as c_int),
    }
}

/// Reads `STRATA_PROFILE_SIGNAL`; installs the handler and starts the
/// dumping thread. True if installed.
pub(super) fn install_from_env() -> bool {
    // SAFETY: as in set_prefix_from_env.
    let v = unsafe { libc::getenv(c"STRATA_PROFILE_SIGNAL".as_ptr()) };
    if v.is_null() {
        return false;
    }
    // SAFETY: non-null result of getenv.
    let Some(sig) = signal_number(unsafe { CStr::from_ptr(v) }.to_bytes()) else {
        strata_os::write_stderr(&[b"strata: STRATA_PROFILE_SIGNAL: not a signal\n"]);
        return false;
    };
    if prefix().is_empty() {
        set_prefix(b"strata-profile");
    }
    if !start_thread() {
        return false;
    }
    // SAFETY: a handler that only touches an atomic and makes a system
    // call (both async-signal-safe); the struct is fully initialised.
    unsafe {
        let mut act: libc::sigaction = core::mem::zeroed();
        act.sa_sigaction = on_signal as *const () as usize;
        act.sa_flags = libc::SA_RESTART;
        libc::sigemptyset(&mut act.sa_mask);
        libc::sigaction(sig, &act, core::ptr::null_mut()) == 0
    }
}

extern "C" fn on_signal(_sig: c_int) {
    REQUESTS.fetch_add(1, Ordering::Release);
    strata_os::futex::wake_one(&REQUESTS);
}

fn start_thread() -> bool {
    if THREAD_STARTED.swap(true, Ordering::AcqRel) {
        return true;
    }
    // Symbolising walks ELF tables in OS mappings, not on the stack, but
    // give it room.
    if !crate::background::spawn_quiet(run, core::ptr::null_mut(), 256 * 1024) {
        THREAD_STARTED.store(false, Ordering::Release);
        return false;
    }
    true
}

extern "C" fn run(_: *mut libc::c_void) -> *mut libc::c_void {
    // SAFETY: a NUL-terminated name for this thread.
    unsafe { libc::pthread_setname_np(libc::pthread_self(), c"strata-profile".as_ptr()) };
    let mut done = 0u32;
    let mut seq = 0u64;
    loop {
        let now = REQUESTS.load(Ordering::Acquire);
        if now == done {
            strata_os::futex::wait(&REQUESTS, now);
            continue;
        }
        done = now;
        seq += 1;
        dump_to_prefix(Some(seq));
    }
}

/// A fork child has no dumping thread: the next install starts one.
pub(super) fn forget_after_fork() {
    THREAD_STARTED.store(false, Ordering::Release);
}

/// A path built in place: `<prefix>.<pid>[.<seq>]<ending>`, NUL-terminated.
struct PathBuf {
    buf: [u8; 600],
    len: usize,
}

impl PathBuf {
    fn push(&mut self, b: &[u8]) {
        let n = b.len().min(self.buf.len() - 1 - self.len);
        self.buf[self.len..self.len + n].copy_from_slice(&b[..n]);
        self.len += n;
        self.buf[self.len] = 0;
    }

    fn as_cstr(&self) -> &CStr {
        CStr::from_bytes_until_nul(&self.buf[..=self.len]).unwrap_or(c"")
    }
}

/// Writes the profile and the three collapsed-stack files under the prefix.
pub(super) fn dump_to_prefix(seq: Option<u64>) {
    let pre = prefix();
    if pre.is_empty() {
        return;
    }
    let mut base = PathBuf {
        buf: [0; 600],
        len: 0,
    };
    base.push(pre);
    base.push(b".");
    // SAFETY: getpid has no preconditions.
    base.push(strata_os::Dec::new(unsafe { libc::getpid() } as u64).as_bytes());
    if let Some(n) = seq {
        base.push(b".");
        base.push(strata_os::Dec::new(n).as_bytes());
    }
    let at = base.len;
    let mut path = |ending: &[u8]| {
        base.len = at;
        base.push(ending);
        PathBuf {
            buf: base.buf,
            len: base.len,
        }
    };
    let heap = path(b".heap.pb.gz");
    let _ = dump::dump_cstr(heap.as_cstr());
    for (kind, ending) in [
        (Kind::InUse, b".inuse.collapsed" as &[u8]),
        (Kind::Alloc, b".alloc.collapsed"),
        (Kind::Peak, b".peak.collapsed"),
    ] {
        let p = path(ending);
        let _ = dump::dump_collapsed_cstr(p.as_cstr(), kind);
    }
}

#[cfg(test)]
mod tests {
    use super::signal_number;

    #[test]
    fn signal_names() {
        assert_eq!(signal_number(b"USR2"), Some(libc::SIGUSR2));
        assert_eq!(signal_number(b"SIGUSR1"), Some(libc::SIGUSR1));
        assert_eq!(signal_number(b"12"), Some(12));
        assert_eq!(signal_number(b"HUP?"), None);
        assert_eq!(signal_number(b"0"), None);
    }
}
