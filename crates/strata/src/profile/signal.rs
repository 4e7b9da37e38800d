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
//! The prefix and the signal can change at run time
//! ([`super::settings`]): a new signal gets the handler and the one before
//! gets back the handler it had before strata's; `0` removes strata's.
//!
//! # Invariants
//! - The prefix and the signal are read and written under `SETTINGS`'
//!   lock, held only to copy or store them (and for the `sigaction` calls
//!   of a move), never across a dump or a thread's creation.
//! - `SETTINGS.signal` is the one signal strata's handler is installed on
//!   (0: none), and `previous` is what that signal had before.

use core::ffi::{c_int, CStr};
use core::sync::atomic::AtomicU32;

use strata_base::{ForkLock, Lock};

use crate::sync::statics::{AtomicBool, Ordering};

use super::dump::{self, Kind};

/// The longest prefix, in bytes.
pub(crate) const PREFIX_MAX: usize = crate::options::OptionText::MAX;

/// Where dumps go and which signal asks for one.
struct Settings {
    prefix: [u8; PREFIX_MAX],
    /// Bytes of `prefix` in use (0: none set).
    len: usize,
    /// The signal strata's handler is on (0: none).
    signal: c_int,
    /// The action `signal` had before strata's handler.
    previous: Option<libc::sigaction>,
}

static SETTINGS: Lock<Settings> = Lock::new(Settings {
    prefix: [0; PREFIX_MAX],
    len: 0,
    signal: 0,
    previous: None,
});

/// Dump requests the signal handler counted (a futex word).
static REQUESTS: AtomicU32 = AtomicU32::new(0);
static THREAD_STARTED: AtomicBool = AtomicBool::new(false);

/// The prefix set (empty: none), copied out.
pub(super) fn prefix(out: &mut [u8; PREFIX_MAX]) -> usize {
    let s = SETTINGS.lock();
    out[..s.len].copy_from_slice(&s.prefix[..s.len]);
    s.len
}

/// Sets the prefix (empty: none); false if it is longer than
/// [`PREFIX_MAX`].
pub(super) fn set_prefix(v: &[u8]) -> bool {
    let mut s = SETTINGS.lock();
    let Some(to) = s.prefix.get_mut(..v.len()) else {
        return false;
    };
    to.copy_from_slice(v);
    s.len = v.len();
    true
}

/// Parses `USR2`, `SIGUSR2` or a number (1..=64).
pub(crate) fn signal_number(v: &[u8]) -> Option<c_int> {
    let name = v.strip_prefix(b"SIG").unwrap_or(v);
    NAMES
        .iter()
        .find(|(n, _)| n.as_bytes() == name)
        .map(|&(_, sig)| sig)
        .or_else(|| {
            crate::options::parse_size(name)
                .filter(|&n| n > 0 && n < 65 && name.iter().all(u8::is_ascii_digit))
                .map(|n| n as c_int)
        })
}

/// The signals known by name.
const NAMES: [(&str, c_int); 4] = [
    ("USR1", libc::SIGUSR1),
    ("USR2", libc::SIGUSR2),
    ("PROF", libc::SIGPROF),
    ("URG", libc::SIGURG),
];

/// The name `sig` is known by, if any.
pub(super) fn signal_name(sig: c_int) -> Option<&'static str> {
    NAMES.iter().find(|&&(_, s)| s == sig).map(|&(n, _)| n)
}

/// The signal strata's handler is on (0: none).
pub(super) fn signal() -> c_int {
    SETTINGS.lock().signal
}

/// Puts strata's handler on `sig` (0: on none), starting the dumping
/// thread first, and gives the signal it was on back the action it had
/// before. False if the thread or the handler could not be set up
/// (nothing changed then).
pub(super) fn set_signal(sig: c_int) -> bool {
    if sig != 0 && !start_thread() {
        return false;
    }
    let mut s = SETTINGS.lock();
    if s.signal == sig {
        return true;
    }
    if sig != 0 {
        // SAFETY: a handler that only touches an atomic and makes a
        // system call (both async-signal-safe); the structs are fully
        // initialised (zeroed is a valid sigaction).
        let previous = unsafe {
            let mut act: libc::sigaction = core::mem::zeroed();
            act.sa_sigaction = on_signal as *const () as usize;
            act.sa_flags = libc::SA_RESTART;
            libc::sigemptyset(&mut act.sa_mask);
            let mut old: libc::sigaction = core::mem::zeroed();
            if libc::sigaction(sig, &act, &mut old) != 0 {
                return false;
            }
            old
        };
        restore(&s);
        s.previous = Some(previous);
        if s.len == 0 {
            let default = b"strata-profile";
            s.prefix[..default.len()].copy_from_slice(default);
            s.len = default.len();
        }
    } else {
        restore(&s);
        s.previous = None;
    }
    s.signal = sig;
    true
}

/// Gives the signal strata's handler is on back its previous action.
fn restore(s: &Settings) {
    if let (true, Some(old)) = (s.signal != 0, s.previous.as_ref()) {
        // SAFETY: an action the kernel gave for this signal.
        unsafe { libc::sigaction(s.signal, old, core::ptr::null_mut()) };
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

/// The settings' lock, for the profiler's `fork` handlers (which also
/// call [`forget_thread`] in the child).
pub(super) fn settings_lock() -> &'static impl ForkLock {
    &SETTINGS
}

/// A fork child has no dumping thread: the next signal set starts one.
pub(super) fn forget_thread() {
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
    let mut pre = [0; PREFIX_MAX];
    let n = prefix(&mut pre);
    if n == 0 {
        return;
    }
    let mut base = PathBuf {
        buf: [0; 600],
        len: 0,
    };
    base.push(&pre[..n]);
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
        assert_eq!(signal_number(b"2k"), None);
        assert_eq!(signal_number(b"URG"), Some(libc::SIGURG));
    }
}
