//! Memory faults (`SIGSEGV`, `SIGBUS`) shown to one reporter before the
//! handler that was there before strata's sees them.
//!
//! A layer that makes pages inaccessible on purpose (guarded sampling)
//! installs a reporter with [`install_fault_reporter`]. On a fault, the
//! reporter is called with the faulting address; it says whether the fault
//! is one it knows (and has reported). Either way the fault then goes on
//! as if strata were not there:
//!
//! - a fault the reporter knows stops the program: the signal's action is
//!   reset to the default first, the previous handler (a crash reporter, a
//!   language runtime) is called if there was one, and when it returns the
//!   faulting instruction runs again and the default action ends the
//!   process with the same signal;
//! - any other fault goes to the previous handler, or, if there was none,
//!   to the default action (restored, and the signal raised again when it
//!   was sent by another process rather than by a fault).
//!
//! The handler is installed with `SA_ONSTACK`, so a thread with an
//! alternate signal stack (Rust's threads have one) reports on it.
//!
//! # Invariants
//! - The previous actions are saved before strata's handler is installed,
//!   and never change afterwards.
//! - The handler allocates nothing, takes no lock, and calls only what a
//!   fault handler may (`sigaction`, `raise`, the reporter, which promises
//!   the same).

use core::cell::UnsafeCell;
use core::ffi::{c_int, c_void};
use core::sync::atomic::{AtomicU8, AtomicUsize, Ordering};

/// What a fault's report needs.
#[derive(Clone, Copy, Debug)]
pub struct Fault {
    /// `SIGSEGV` or `SIGBUS`.
    pub signal: c_int,
    /// The address accessed.
    pub addr: usize,
    /// The faulting instruction's address, if the platform's context
    /// gives it (0 otherwise).
    pub pc: usize,
    /// The stack pointer and `rbp` at the fault, if the platform's
    /// context gives them (0 otherwise): with `pc`, where
    /// [`crate::stack::capture_interrupted`] starts.
    pub sp: usize,
    /// See `sp`.
    pub bp: usize,
    /// Whether the access was a write, a read, or could not be told.
    pub access: Access,
}

/// The kind of a faulting access.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    /// A load.
    Read,
    /// A store.
    Write,
    /// The platform's context does not say.
    Unknown,
}

impl Access {
    /// `read`, `write` or `access`.
    pub fn word(self) -> &'static [u8] {
        match self {
            Access::Read => b"read",
            Access::Write => b"write",
            Access::Unknown => b"access",
        }
    }
}

/// A reporter: returns true if it recognised (and reported) the fault.
pub type FaultReporter = fn(&Fault) -> bool;

const SIGNALS: [c_int; 2] = [libc::SIGSEGV, libc::SIGBUS];

/// The actions in place before strata's, one per signal of [`SIGNALS`].
struct Previous(UnsafeCell<[libc::sigaction; 2]>);

// SAFETY: written only by `install_fault_reporter` before the handler that
// reads it is installed, under the INSTALL once-flag; read-only afterwards.
unsafe impl Sync for Previous {}

// SAFETY: sigaction is plain old data; all zero is SIG_DFL with no flags.
static PREVIOUS: Previous = Previous(UnsafeCell::new(unsafe { core::mem::zeroed() }));

/// The reporter, as a `FaultReporter` address.
static REPORTER: AtomicUsize = AtomicUsize::new(0);

const NOT_INSTALLED: u8 = 0;
const INSTALLING: u8 = 1;
const INSTALLED: u8 = 2;
static INSTALL: AtomicU8 = AtomicU8::new(NOT_INSTALLED);

/// Installs strata's `SIGSEGV` and `SIGBUS` handler, which shows every
/// fault to `reporter` first. Once per process: later calls only replace
/// the reporter. Returns false if the handler could not be installed.
///
/// Install it as late as possible: a runtime that installs its own handler
/// only over the default action (Rust's standard library, for its stack
/// overflow message) then keeps its handler, and strata's calls it.
pub fn install_fault_reporter(reporter: FaultReporter) -> bool {
    REPORTER.store(reporter as usize, Ordering::Release);
    match INSTALL.compare_exchange(
        NOT_INSTALLED,
        INSTALLING,
        Ordering::AcqRel,
        Ordering::Acquire,
    ) {
        Ok(_) => {}
        Err(INSTALLED) => return true,
        // Another thread is installing it right now.
        Err(_) => return true,
    }
    // SAFETY: only this thread, holding INSTALLING, writes PREVIOUS, and
    // no handler of ours is installed yet to read it.
    let prev = unsafe { &mut *PREVIOUS.0.get() };
    for (i, &sig) in SIGNALS.iter().enumerate() {
        // SAFETY: sigaction with a null new action only reads the current
        // one into `prev[i]`.
        if unsafe { libc::sigaction(sig, core::ptr::null(), &mut prev[i]) } != 0 {
            INSTALL.store(NOT_INSTALLED, Ordering::Release);
            return false;
        }
    }
    for &sig in &SIGNALS {
        // SAFETY: a zeroed sigaction is valid; the handler has the
        // SA_SIGINFO signature.
        let ok = unsafe {
            let mut act: libc::sigaction = core::mem::zeroed();
            act.sa_sigaction = on_fault as *const () as usize;
            act.sa_flags = libc::SA_SIGINFO | libc::SA_ONSTACK;
            libc::sigemptyset(&mut act.sa_mask);
            libc::sigaction(sig, &act, core::ptr::null_mut()) == 0
        };
        if !ok {
            INSTALL.store(INSTALLED, Ordering::Release);
            return false;
        }
    }
    INSTALL.store(INSTALLED, Ordering::Release);
    true
}

/// Whether strata's handler is installed.
pub fn fault_reporter_installed() -> bool {
    INSTALL.load(Ordering::Acquire) == INSTALLED
}

extern "C" fn on_fault(sig: c_int, info: *mut libc::siginfo_t, ctx: *mut c_void) {
    let Some(i) = SIGNALS.iter().position(|&s| s == sig) else {
        return;
    };
    // SAFETY: the kernel passes a valid siginfo for a handler installed
    // with SA_SIGINFO; for SIGSEGV and SIGBUS its address field is set.
    let (addr, code) = unsafe { ((*info).si_addr() as usize, (*info).si_code) };
    let (pc, sp, bp, access) = context_of(ctx);
    let fault = Fault {
        signal: sig,
        addr,
        pc,
        sp,
        bp,
        access,
    };
    // A signal sent by a process (kill, raise) carries no fault address.
    let r = REPORTER.load(Ordering::Acquire);
    let known = code > 0 && r != 0 && {
        // SAFETY: only install_fault_reporter stores here, always a
        // FaultReporter.
        let f: FaultReporter = unsafe { core::mem::transmute::<usize, FaultReporter>(r) };
        f(&fault)
    };
    // SAFETY: written before the handler was installed, read-only since.
    let prev = unsafe { &(*PREVIOUS.0.get())[i] };
    let handler = prev.sa_sigaction;
    if known {
        // The program stops: whatever the previous handler does, the
        // faulting instruction runs again under the default action.
        set_default(sig);
    } else if handler == libc::SIG_DFL || handler == libc::SIG_IGN {
        // SAFETY: restores the saved action, a valid sigaction.
        unsafe { libc::sigaction(sig, prev, core::ptr::null_mut()) };
        if code <= 0 {
            // Sent by a process, not by a fault: nothing runs again, so
            // send it again; it is delivered once this handler returns,
            // under the action just restored.
            // SAFETY: raise has no preconditions.
            unsafe { libc::raise(sig) };
        }
        return;
    }
    if handler == libc::SIG_DFL || handler == libc::SIG_IGN {
        return;
    }
    // SAFETY: the previous handler was installed by the program for this
    // signal, with the signature its flags say.
    unsafe {
        if prev.sa_flags & libc::SA_SIGINFO != 0 {
            let f: extern "C" fn(c_int, *mut libc::siginfo_t, *mut c_void) =
                core::mem::transmute(handler);
            f(sig, info, ctx);
        } else {
            let f: extern "C" fn(c_int) = core::mem::transmute(handler);
            f(sig);
        }
    }
}

/// Resets `sig` to its default action.
fn set_default(sig: c_int) {
    // SAFETY: a zeroed sigaction is SIG_DFL with an empty mask.
    unsafe {
        let mut act: libc::sigaction = core::mem::zeroed();
        act.sa_sigaction = libc::SIG_DFL;
        libc::sigaction(sig, &act, core::ptr::null_mut());
    }
}

/// The faulting instruction, the stack pointer, `rbp` and the kind of
/// access, from the context the kernel saved.
#[cfg(all(target_arch = "x86_64", target_env = "gnu"))]
fn context_of(ctx: *mut c_void) -> (usize, usize, usize, Access) {
    if ctx.is_null() {
        return (0, 0, 0, Access::Unknown);
    }
    // SAFETY: for an SA_SIGINFO handler the third argument is the
    // interrupted thread's ucontext_t.
    let regs = unsafe { &(*(ctx as *const libc::ucontext_t)).uc_mcontext.gregs };
    let reg = |r: libc::c_int| regs[r as usize] as usize;
    // The page-fault error code: bit 1 set for a write.
    let access = if reg(libc::REG_ERR) & 2 != 0 {
        Access::Write
    } else {
        Access::Read
    };
    (
        reg(libc::REG_RIP),
        reg(libc::REG_RSP),
        reg(libc::REG_RBP),
        access,
    )
}

#[cfg(not(all(target_arch = "x86_64", target_env = "gnu")))]
fn context_of(_ctx: *mut c_void) -> (usize, usize, usize, Access) {
    (0, 0, 0, Access::Unknown)
}
