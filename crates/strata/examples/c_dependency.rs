//! A Rust program whose C dependency allocates from strata: built with
//! the `override` feature, the program exports `malloc`, `free`, ... itself,
//! so the C code linked into it (`tests/c/c_dependency.c`) is served by
//! strata, and `strata::stats()` sees its blocks.
//!
//! The C part is a static library the test builds first
//! (`tests/c_override.rs` does all of it):
//!
//! ```text
//! cc -c -Icrates/malloc/include crates/strata/tests/c/c_dependency.c -o DIR/c_dependency.o
//! ar rcs DIR/libstrata_cdep.a DIR/c_dependency.o
//! cargo rustc -p strata --example c_dependency --features override -- -L native=DIR -l static=strata_cdep
//! ```
//!
//! Prints `ALL OK` and exits 0 when every check passes; panics otherwise.

#[global_allocator]
static GLOBAL: strata::Strata = strata::Strata;

use core::ffi::{c_char, c_int, c_void};

// Linked with `-l static=strata_cdep` (see the module docs).
extern "C" {
    fn cdep_alloc(count: usize, size: usize) -> *mut *mut c_void;
    fn cdep_free(v: *mut *mut c_void, count: usize, size: usize) -> usize;
    fn cdep_usable_size(n: usize) -> usize;
    fn cdep_realloc_and_align() -> c_int;
    fn cdep_set_decay_ms(value: *const c_char) -> c_int;
}

fn main() {
    const COUNT: usize = 1000;
    const SIZE: usize = 10_000;
    strata::release_free_memory();
    let before = strata::stats();
    // SAFETY: the C library's functions, called as their contracts say.
    let v = unsafe { cdep_alloc(COUNT, SIZE) };
    assert!(!v.is_null(), "the C library ran out of memory");
    let during = strata::stats();
    let grew = during.allocated_bytes - before.allocated_bytes;
    println!("C blocks: {COUNT} x {SIZE} bytes; strata's allocated bytes grew by {grew}");
    assert!(
        grew >= COUNT * SIZE,
        "the C library's {} bytes are not in strata's statistics (+{grew})",
        COUNT * SIZE
    );
    // SAFETY: as above; v holds COUNT blocks of SIZE bytes.
    let intact = unsafe { cdep_free(v, COUNT, SIZE) };
    assert_eq!(intact, COUNT, "blocks corrupted");
    // Freed objects sit in this thread's cache until it publishes its size:
    // flush it, and the spans go back to the page heap.
    strata::release_free_memory();
    let after = strata::stats();
    assert!(
        after.allocated_bytes < during.allocated_bytes - COUNT * SIZE / 2,
        "the C library's frees did not reach strata"
    );
    // strata's size classes, not glibc's chunk sizes (glibc gives 24).
    // SAFETY: as above.
    let usable = unsafe { cdep_usable_size(24) };
    println!("malloc_usable_size(malloc(24)) from C: {usable}");
    assert_eq!(usable, 32);
    // SAFETY: as above.
    assert_eq!(unsafe { cdep_realloc_and_align() }, 1);
    // strata's own C functions are exported as well.
    // SAFETY: a NUL-terminated string.
    assert_eq!(unsafe { cdep_set_decay_ms(c"250".as_ptr()) }, 0);
    assert_eq!(strata::config().decay_ms, 250);
    // SAFETY: as above.
    assert_eq!(unsafe { cdep_set_decay_ms(c"soon".as_ptr()) }, -1);
    assert_eq!(
        std::io::Error::last_os_error().raw_os_error(),
        Some(libc::EINVAL)
    );
    println!("ALL OK");
}
