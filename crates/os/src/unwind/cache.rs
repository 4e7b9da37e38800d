//! The rule cache: decoded rules in a fixed table of atomic words,
//! direct-mapped by instruction address (see the parent module).

use core::ffi::{c_int, c_void};
use core::sync::atomic::{AtomicU64, Ordering};

use super::eh_frame::decode;
use super::{Lookup, Rule};

/// Entries of the rule cache (a power of two).
const CACHE: usize = 4096;

/// Decoded rules: `tag << 29 | rule`, 0 for an empty entry (see
/// [`pack`]).
static RULES: [AtomicU64; CACHE] = [const { AtomicU64::new(0) }; CACHE];

/// `dl_iterate_phdr`'s count of unloaded objects when [`RULES`] was last
/// checked (`u64::MAX`: never).
static SEEN_SUBS: AtomicU64 = AtomicU64::new(u64::MAX);

fn slot(pc: usize) -> usize {
    (pc ^ (pc >> 12)) & (CACHE - 1)
}

/// Packs a rule for `pc`: bit 0 set, bit 1 the outermost frame, bit 2
/// `cfa_bp`, bits 3..18 the CFA offset in words, bits 18..25 where `rbp`
/// is saved (words below the CFA, 0: unchanged), bits 29.. `pc >> 12`.
/// `None` when it does not fit (then it is decoded every time).
pub(super) fn pack(pc: usize, r: &Rule) -> Option<u64> {
    if pc >> 47 != 0 || r.cfa_off <= 0 || r.cfa_off % 8 != 0 || r.cfa_off >= 8 << 15 {
        return None;
    }
    let end = match r.ra {
        None => 1,
        Some(-8) => 0,
        Some(_) => return None,
    };
    let bp = match r.bp {
        None => 0,
        Some(off) if off < 0 && off % 8 == 0 && off > -(8 << 7) => (-off / 8) as u64,
        Some(_) => return None,
    };
    Some(
        1 | end << 1
            | (r.cfa_bp as u64) << 2
            | ((r.cfa_off / 8) as u64) << 3
            | bp << 18
            | ((pc >> 12) as u64) << 29,
    )
}

pub(super) fn unpack(pc: usize, w: u64) -> Option<Rule> {
    if w & 1 == 0 || w >> 29 != (pc >> 12) as u64 {
        return None;
    }
    let bp = (w >> 18) & 0x7f;
    Some(Rule {
        cfa_bp: w & 4 != 0,
        cfa_off: (((w >> 3) & 0x7fff) * 8) as i64,
        ra: if w & 2 != 0 { None } else { Some(-8) },
        bp: if bp == 0 {
            None
        } else {
            Some(-(bp as i64) * 8)
        },
    })
}

pub(super) fn rule_for(pc: usize) -> Lookup {
    let s = &RULES[slot(pc)];
    if let Some(rule) = unpack(pc, s.load(Ordering::Relaxed)) {
        return Lookup::Found(rule);
    }
    let found = decode(pc);
    if let Lookup::Found(rule) = found {
        if let Some(w) = pack(pc, &rule) {
            s.store(w, Ordering::Relaxed);
        }
    }
    found
}

/// Empties the cache if an object was unloaded since the last walk;
/// returns `dl_iterate_phdr`'s counts of objects added and removed
/// (`None` if it gave none).
pub(super) fn forget_unloaded() -> Option<(u64, u64)> {
    let mut counts = (u64::MAX, u64::MAX);
    // SAFETY: the callback matches dl_iterate_phdr's signature and writes
    // only the pair passed with it.
    unsafe {
        libc::dl_iterate_phdr(
            Some(first_counts),
            &mut counts as *mut (u64, u64) as *mut c_void,
        )
    };
    let (_, subs) = counts;
    if subs == u64::MAX {
        return None;
    }
    if SEEN_SUBS.load(Ordering::Relaxed) != subs {
        for e in &RULES {
            e.store(0, Ordering::Relaxed);
        }
        SEEN_SUBS.store(subs, Ordering::Relaxed);
    }
    Some(counts)
}

unsafe extern "C" fn first_counts(
    info: *mut libc::dl_phdr_info,
    size: usize,
    data: *mut c_void,
) -> c_int {
    if size >= core::mem::size_of::<libc::dl_phdr_info>() {
        // SAFETY: dl_iterate_phdr passes a valid info of `size` bytes, and
        // `data` is the pair forget_unloaded passed.
        unsafe { *(data as *mut (u64, u64)) = ((*info).dlpi_adds, (*info).dlpi_subs) };
    }
    1
}
