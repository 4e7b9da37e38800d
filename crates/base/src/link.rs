//! Free-list links: the first word of every free object points to the next
//! free object. Every layer that reads or writes a link goes through
//! [`read`] and [`write()`], so that the `checked` feature can change how links
//! are stored in one place.
//!
//! - Default build: a link is the plain address.
//! - `checked` build: a link is stored encoded (glibc's "safe-linking"
//!   idea): `next ^ (slot >> 12) ^ secret`, with a per-process secret from
//!   the kernel's `AT_RANDOM` bytes. A use-after-free write into a free
//!   object can then not aim the next allocation at an address of the
//!   attacker's (or the bug's) choosing: the decoded link lands outside user
//!   space or misaligned, and [`read`] stops the program with a message. (A
//!   plain address written over a link always decodes outside user space:
//!   the secret's top bit is set.)

/// Reads the link stored in free object `obj`.
///
/// # Safety
/// `obj` is a free object of at least 8 bytes, 8-byte aligned.
#[inline(always)]
pub unsafe fn read(obj: *mut u8) -> *mut u8 {
    // SAFETY: the caller's contract.
    let stored = unsafe { (obj as *mut usize).read() };
    decode(obj, stored)
}

/// Stores `next` as the link of free object `obj`.
///
/// # Safety
/// `obj` is a free object of at least 8 bytes, 8-byte aligned, owned by the
/// caller.
#[inline(always)]
pub unsafe fn write(obj: *mut u8, next: *mut u8) {
    // SAFETY: the caller's contract.
    unsafe { (obj as *mut usize).write(encode(obj, next)) };
}

#[cfg(not(feature = "checked"))]
#[inline(always)]
fn encode(_slot: *mut u8, next: *mut u8) -> usize {
    next as usize
}

#[cfg(not(feature = "checked"))]
#[inline(always)]
fn decode(_slot: *mut u8, stored: usize) -> *mut u8 {
    stored as *mut u8
}

#[cfg(feature = "checked")]
#[inline(always)]
fn encode(slot: *mut u8, next: *mut u8) -> usize {
    next as usize ^ (slot as usize >> 12) ^ strata_os::process_secret()
}

#[cfg(feature = "checked")]
#[inline(always)]
fn decode(slot: *mut u8, stored: usize) -> *mut u8 {
    let next = stored ^ (slot as usize >> 12) ^ strata_os::process_secret();
    // A real link is null or an 8-aligned user-space address (below 2^57
    // even with 5-level page tables).
    if next & 7 != 0 || next >> 57 != 0 {
        corrupted(slot);
    }
    next as *mut u8
}

#[cfg(feature = "checked")]
#[cold]
fn corrupted(slot: *mut u8) -> ! {
    let a = strata_os::Hex::new(slot as usize);
    strata_os::write_stderr(&[
        b"strata: free list corrupted at ",
        a.as_bytes(),
        b" (a freed object was written: use after free?)\n",
    ]);
    strata_os::fatal(b"")
}
