//! Copying batches of object pointers between stacks and tables without
//! calling the C library's `memcpy`.
//!
//! A small program that runs under `LD_PRELOAD` pays for every 64 KiB
//! window of libc's text that a call of the allocator faults in (the
//! kernel maps already cached file pages around each fault). `memcpy`
//! lies apart from what such a program otherwise runs, so the batches of
//! at most a few dozen pointers that the thread caches and transfer caches
//! move would make one more window resident for some placements of libc
//! (measurements: docs/performance.md, "Libc pages a small program
//! touches"). The compiler turns a plain copy loop back into a call to
//! `memcpy`; the loop here passes its index through an empty `asm`
//! statement, which hides the loop's shape from that rewrite without
//! emitting an instruction.
//!
//! # Invariants
//! - Copies exactly `n` pointers, front to back, two at a time; reads
//!   nothing past `src + n` and writes nothing past `dst + n`.

/// Copies `n` pointers from `src` to `dst`.
///
/// # Safety
/// `src[..n]` is readable, `dst[..n]` writable, both aligned for pointers,
/// and the two ranges do not overlap.
#[inline(always)]
pub unsafe fn copy_pointers(src: *const *mut u8, dst: *mut *mut u8, n: usize) {
    let mut i = 0;
    while i + 2 <= n {
        // SAFETY: i + 2 <= n: both pairs are in the caller's ranges.
        unsafe {
            let pair = src.add(i).cast::<[*mut u8; 2]>().read_unaligned();
            dst.add(i).cast::<[*mut u8; 2]>().write_unaligned(pair);
        }
        i += 2;
        #[cfg(target_arch = "x86_64")]
        // SAFETY: the statement is empty: no memory, stack or flags used.
        unsafe {
            core::arch::asm!("/* {0} */", inout(reg) i, options(pure, nomem, nostack, preserves_flags));
        }
    }
    if i < n {
        // SAFETY: i < n: in the caller's ranges.
        unsafe { dst.add(i).write(src.add(i).read()) };
    }
}

#[cfg(all(test, not(strata_loom)))]
mod tests {
    use super::copy_pointers;

    #[test]
    fn copies_every_length_exactly() {
        for n in 0..40usize {
            let src: Vec<*mut u8> = (1..=n).map(|v| v as *mut u8).collect();
            // One guard entry past the end must stay untouched.
            let mut dst = vec![usize::MAX as *mut u8; n + 1];
            // SAFETY: both vectors hold at least n pointers and are distinct.
            unsafe { copy_pointers(src.as_ptr(), dst.as_mut_ptr(), n) };
            assert_eq!(&dst[..n], &src[..], "length {n}");
            assert_eq!(dst[n], usize::MAX as *mut u8, "wrote past {n}");
        }
    }
}
