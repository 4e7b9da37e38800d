//! gperftools' tcmalloc as a peer, loaded at run time from the system's
//! shared library (Debian: `libtcmalloc-minimal4`), so that building the
//! benches needs neither its headers nor a static library.
//!
//! The library is opened `RTLD_LOCAL`: its unprefixed `malloc` and `free`
//! stay out of the process's symbol lookup (glibc keeps serving the process
//! and the `glibc` peer), and it is called only through its prefixed entry
//! points `tc_malloc`, `tc_free`, ... found with `dlsym`. Through
//! [`GlobalAlloc`] (the Rust view) it is what a Rust wrapper of tcmalloc
//! does: `tc_memalign` to allocate, `tc_free_sized` (its sized free) to free.

use core::alloc::{GlobalAlloc, Layout};
use core::ffi::{c_char, c_void, CStr};
use std::sync::OnceLock;

use crate::api::{CMalloc, MALLOC_ALIGN};

/// Where Debian and Ubuntu install the library.
pub const LIBRARY: &str = "/usr/lib/x86_64-linux-gnu/libtcmalloc_minimal.so.4";

type Malloc = unsafe extern "C" fn(usize) -> *mut c_void;
type Calloc = unsafe extern "C" fn(usize, usize) -> *mut c_void;
type Memalign = unsafe extern "C" fn(usize, usize) -> *mut c_void;
type Realloc = unsafe extern "C" fn(*mut c_void, usize) -> *mut c_void;
type Free = unsafe extern "C" fn(*mut c_void);
type FreeSized = unsafe extern "C" fn(*mut c_void, usize);

/// tcmalloc's entry points in the loaded library.
#[derive(Clone, Copy, Debug)]
pub struct Tcmalloc {
    malloc: Malloc,
    calloc: Calloc,
    memalign: Memalign,
    realloc: Realloc,
    free: Free,
    free_sized: FreeSized,
}

/// The last `dlerror()` message.
fn dl_error() -> String {
    // SAFETY: dlerror returns null or a NUL-terminated message valid until
    // the next dl call on this thread.
    let e = unsafe { libc::dlerror() };
    if e.is_null() {
        return "unknown dl error".into();
    }
    // SAFETY: non-null, NUL-terminated (above).
    unsafe { CStr::from_ptr(e) }.to_string_lossy().into_owned()
}

/// The address of `name` (NUL-terminated) in the library `lib`.
fn symbol(lib: *mut c_void, name: &CStr) -> Result<*mut c_void, String> {
    // SAFETY: `lib` is a handle from dlopen, never closed; `name` is a C
    // string.
    let p = unsafe { libc::dlsym(lib, name.as_ptr()) };
    if p.is_null() {
        return Err(format!(
            "{LIBRARY}: no {}: {}",
            name.to_string_lossy(),
            dl_error()
        ));
    }
    Ok(p)
}

fn open() -> Result<Tcmalloc, String> {
    let path = format!("{LIBRARY}\0");
    // SAFETY: a NUL-terminated path; loading runs the library's
    // initialisers, which set up tcmalloc's own heap and nothing else of
    // the process (RTLD_LOCAL: no symbol of it is seen by other objects).
    let lib = unsafe {
        libc::dlopen(
            path.as_ptr().cast::<c_char>(),
            libc::RTLD_NOW | libc::RTLD_LOCAL,
        )
    };
    if lib.is_null() {
        return Err(dl_error());
    }
    // SAFETY (every transmute below): each symbol is the C function of that
    // name in gperftools' API (gperftools/tcmalloc.h), whose signature the
    // target type spells out.
    unsafe {
        Ok(Tcmalloc {
            malloc: core::mem::transmute::<*mut c_void, Malloc>(symbol(lib, c"tc_malloc")?),
            calloc: core::mem::transmute::<*mut c_void, Calloc>(symbol(lib, c"tc_calloc")?),
            memalign: core::mem::transmute::<*mut c_void, Memalign>(symbol(lib, c"tc_memalign")?),
            realloc: core::mem::transmute::<*mut c_void, Realloc>(symbol(lib, c"tc_realloc")?),
            free: core::mem::transmute::<*mut c_void, Free>(symbol(lib, c"tc_free")?),
            free_sized: core::mem::transmute::<*mut c_void, FreeSized>(symbol(
                lib,
                c"tc_free_sized",
            )?),
        })
    }
}

impl Tcmalloc {
    /// The library, opened on the first call; the error says why it is not
    /// there (missing file, missing symbol).
    pub fn load() -> Result<&'static Tcmalloc, String> {
        static LOADED: OnceLock<Result<Tcmalloc, String>> = OnceLock::new();
        LOADED.get_or_init(open).as_ref().map_err(Clone::clone)
    }
}

// SAFETY: tcmalloc's C functions, as gperftools documents them.
unsafe impl CMalloc for &'static Tcmalloc {
    #[inline(always)]
    fn malloc(&self, size: usize) -> *mut u8 {
        // SAFETY: tc_malloc accepts any size.
        unsafe { (self.malloc)(size).cast() }
    }
    #[inline(always)]
    fn calloc(&self, size: usize) -> *mut u8 {
        // SAFETY: tc_calloc accepts any sizes.
        unsafe { (self.calloc)(1, size).cast() }
    }
    #[inline(always)]
    fn memalign(&self, align: usize, size: usize) -> *mut u8 {
        // SAFETY: tc_memalign accepts any power-of-two alignment.
        unsafe { (self.memalign)(align, size).cast() }
    }
    #[inline(always)]
    unsafe fn realloc(&self, p: *mut u8, size: usize) -> *mut u8 {
        // SAFETY: the caller's live block from tcmalloc.
        unsafe { (self.realloc)(p.cast(), size).cast() }
    }
    #[inline(always)]
    unsafe fn free(&self, p: *mut u8) {
        // SAFETY: the caller's block from tcmalloc.
        unsafe { (self.free)(p.cast()) }
    }
}

/// The Rust view: what a `GlobalAlloc` wrapper of tcmalloc calls.
// SAFETY: tc_memalign gives `align`-aligned blocks of `size` bytes;
// tc_free_sized takes the size asked for (blocks over MALLOC_ALIGN aligned go
// to tc_free, their class being that of the rounded size); realloc and
// calloc are taken only where malloc's alignment suffices.
unsafe impl GlobalAlloc for &'static Tcmalloc {
    #[inline(always)]
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        self.memalign(l.align(), l.size())
    }

    #[inline(always)]
    unsafe fn alloc_zeroed(&self, l: Layout) -> *mut u8 {
        if l.align() <= MALLOC_ALIGN {
            return self.calloc(l.size());
        }
        // SAFETY: as alloc; the block is `l.size()` bytes long.
        unsafe {
            let p = self.alloc(l);
            if !p.is_null() {
                p.write_bytes(0, l.size());
            }
            p
        }
    }

    #[inline(always)]
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        // SAFETY: the caller's live block from tcmalloc, of `l.size()`
        // bytes asked for.
        unsafe {
            if l.align() <= MALLOC_ALIGN {
                (self.free_sized)(p.cast(), l.size())
            } else {
                (self.free)(p.cast())
            }
        }
    }

    #[inline(always)]
    unsafe fn realloc(&self, p: *mut u8, l: Layout, new_size: usize) -> *mut u8 {
        if l.align() <= MALLOC_ALIGN {
            // SAFETY: the caller's live block; the new size is not zero.
            return unsafe { CMalloc::realloc(self, p, new_size) };
        }
        // SAFETY: the new layout is valid (GlobalAlloc's contract); the copy
        // fits both blocks and the old one is freed once.
        unsafe {
            let q = self.alloc(Layout::from_size_align_unchecked(new_size, l.align()));
            if !q.is_null() {
                core::ptr::copy_nonoverlapping(p, q, l.size().min(new_size));
                self.dealloc(p, l);
            }
            q
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::Unsized;
    use crate::measure::Deadline;
    use crate::workloads;

    #[test]
    fn both_views_run_when_installed() {
        let Ok(tc) = Tcmalloc::load() else {
            eprintln!("{LIBRARY} not installed: skipped");
            return;
        };
        let dl = Deadline::never();
        assert_eq!(workloads::larson(&tc, 2, 10, 100, 2, dl).ops, 400);
        assert_eq!(
            workloads::realloc_growth(&tc, workloads::Growth::Doubling, 1 << 16, 2, dl).ops,
            26
        );
        let c = Unsized(tc);
        assert_eq!(workloads::larson(&c, 2, 10, 100, 2, dl).ops, 400);
        assert_eq!(
            workloads::zeroed_cycles(&c, 1 << 20, 3, Some(4096), dl).ops,
            3
        );
    }
}
