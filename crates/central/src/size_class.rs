//! Size classes, computed at compile time.
//!
//! - 8 B, then 16 B steps up to 128 B (every class above 8 B is 16-byte
//!   aligned, as C's `malloc` must be);
//! - above 128 B, eight classes per power of two, so rounding a request up
//!   wastes at most 1/8 of it;
//! - up to [`MAX_SMALL`] = 256 KiB; larger requests go to the page heap.
//!
//! Each class has a span length (pages) chosen so that the tail a span cannot
//! use is at most 1/8 of it, and a batch size: how many objects move between
//! a thread cache and the central layer at once (about 64 KiB worth, 2 to 32).
//!
//! Lookup is O(1): one table indexed by `(size + 7) / 8` up to 1 KiB and one
//! indexed by `(size + 127) / 128` above (every class above 1 KiB is a
//! multiple of 128, every class below a multiple of 8).

use crate::sync::statics::{AtomicU64, Ordering};
use strata_pageheap::PAGE_SIZE;

/// Largest size served from size classes.
pub const MAX_SMALL: usize = 256 * 1024;

/// Number of size classes, class 0 (meaning "not small") included.
pub const NUM_CLASSES: usize = count_classes() + 1;

// Class indices are stored in a byte (pagemap, spans).
const _: () = assert!(NUM_CLASSES <= 255);

/// What the layers need to know about one class.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ClassInfo {
    /// Object size in bytes.
    pub size: u32,
    /// Pages per span.
    pub pages: u16,
    /// Objects moved per batch between thread caches and the central layer.
    pub batch: u16,
    /// Objects per span.
    pub objects: u32,
}

impl ClassInfo {
    /// Bytes of one span of the class.
    pub const fn span_bytes(&self) -> usize {
        self.pages as usize * PAGE_SIZE
    }

    /// Bytes at a span's end too short for another object (at most an
    /// eighth of the span).
    pub const fn tail_bytes(&self) -> usize {
        self.span_bytes() - self.objects as usize * self.size as usize
    }
}

const fn class_size(i: usize) -> usize {
    // i >= 1
    if i == 1 {
        8
    } else if i <= 8 {
        16 * (i - 1) // 16, 32, ..., 112
    } else {
        // i = 9 -> 128; then eight per doubling.
        let j = i - 9;
        let k = j / 8; // doublings past 128
        let r = j % 8;
        let base = 128 << k;
        base + r * (base / 8)
    }
}

const fn count_classes() -> usize {
    let mut i = 1;
    while class_size(i) < MAX_SMALL {
        i += 1;
    }
    i
}

const fn info(size: usize) -> ClassInfo {
    let min_objects = {
        let m = 65536 / size;
        if m < 1 {
            1
        } else if m > 8 {
            8
        } else {
            m
        }
    };
    let mut pages = size.div_ceil(PAGE_SIZE);
    loop {
        let bytes = pages * PAGE_SIZE;
        let objects = bytes / size;
        let waste = bytes - objects * size;
        if waste * 8 <= bytes && objects >= min_objects {
            break;
        }
        pages += 1;
    }
    let batch = {
        let b = 65536 / size;
        if b < 2 {
            2
        } else if b > 32 {
            32
        } else {
            b
        }
    };
    ClassInfo {
        size: size as u32,
        pages: pages as u16,
        batch: batch as u16,
        objects: ((pages * PAGE_SIZE) / size) as u32,
    }
}

/// The table of classes; entry 0 is a placeholder for "not small".
pub static CLASSES: [ClassInfo; NUM_CLASSES] = {
    let mut t = [ClassInfo {
        size: 0,
        pages: 0,
        batch: 0,
        objects: 0,
    }; NUM_CLASSES];
    let mut i = 1;
    while i < NUM_CLASSES {
        t[i] = info(class_size(i));
        i += 1;
    }
    t
};

/// One lookup table for both ranges (tcmalloc's trick): entries
/// `0..=128` are indexed by `(size + 7) / 8` for sizes up to 1 KiB, the rest
/// by `(size + 127) / 128 + 120` above.
const LUT_LEN: usize = (MAX_SMALL + 127 + (120 << 7)) / 128 + 1;

const fn lut_index(size: usize) -> usize {
    if size <= 1024 {
        (size + 7) >> 3
    } else {
        (size + 127 + (120 << 7)) >> 7
    }
}

const fn smallest_class_at_least(size: usize) -> u8 {
    let mut i = 1;
    while class_size(i) < size {
        i += 1;
    }
    i as u8
}

static LUT: [u8; LUT_LEN] = {
    let mut t = [0u8; LUT_LEN];
    let mut i = 0;
    while i <= 128 {
        t[i] = smallest_class_at_least(if i == 0 { 1 } else { i * 8 });
        i += 1;
    }
    // Indexes 129.. cover sizes above 1 KiB in steps of 128.
    let mut i = 129;
    while i < LUT_LEN {
        t[i] = smallest_class_at_least((i - 120) * 128);
        i += 1;
    }
    t
};

/// The class for `size` bytes aligned to `align`, or 0 when no class serves
/// it (larger than [`MAX_SMALL`], or aligned beyond a page). The form the
/// fast paths use: a byte, tested against zero.
#[inline(always)]
pub fn class_index(size: usize, align: usize) -> u8 {
    if align <= 8 && size <= MAX_SMALL {
        // SAFETY: lut_index(size) < LUT_LEN for size <= MAX_SMALL.
        return unsafe { *LUT.get_unchecked(lut_index(size)) };
    }
    class_for_aligned(size, align)
}

/// The class for `size` bytes with alignment at most 8, or 0 when `size`
/// is larger than [`MAX_SMALL`]: a compare, a branch and one table load for
/// requests up to 1 KiB, the common ones (the form C's `malloc` uses: class
/// 0 has no cached objects, so its fast path needs no other test).
#[inline(always)]
pub fn small_class(size: usize) -> u8 {
    // A branch, not the two computed indices and a select that `lut_index`
    // compiles to (three instructions more), and the larger sizes' bound
    // test only on their own path.
    if size <= 1024 {
        // SAFETY: that is lut_index(size) <= 128 for size <= 1024.
        unsafe { *LUT.get_unchecked((size + 7) >> 3) }
    } else {
        if size > MAX_SMALL {
            return 0;
        }
        #[allow(unused_mut)]
        let mut i = lut_index(size);
        // An empty asm statement the index passes through: opaque to the
        // compiler, which otherwise merges this lookup with the first
        // case's into one with a computed shift (two instructions more on
        // the common path). No instruction is emitted.
        #[cfg(target_arch = "x86_64")]
        // SAFETY: the statement is empty: no memory, stack or flags used.
        unsafe {
            core::arch::asm!("/* {0} */", inout(reg) i, options(pure, nomem, nostack, preserves_flags));
        }
        // SAFETY: lut_index(size) < LUT_LEN for size <= MAX_SMALL.
        unsafe { *LUT.get_unchecked(i) }
    }
}

/// The class for `size` bytes with alignment at most 8, or `None` if the
/// request is larger than [`MAX_SMALL`].
#[inline(always)]
pub fn class_for_size(size: usize) -> Option<u8> {
    match class_index(size, 1) {
        0 => None,
        c => Some(c),
    }
}

/// The class for `size` bytes aligned to `align` (a power of two), or `None`
/// if no class can serve it (too large, or alignment beyond a page).
#[inline(always)]
pub fn class_for(size: usize, align: usize) -> Option<u8> {
    match class_index(size, align) {
        0 => None,
        c => Some(c),
    }
}

#[inline(never)]
fn class_for_aligned(size: usize, align: usize) -> u8 {
    if align > PAGE_SIZE || size > MAX_SMALL {
        return 0;
    }
    // Objects sit at span start (page aligned) + k * size, so a class serves
    // `align` exactly when its size is a multiple of `align`.
    let mut c = LUT[lut_index(size.max(align).min(MAX_SMALL))] as usize;
    if size.max(align) > MAX_SMALL {
        return 0;
    }
    while c < NUM_CLASSES {
        if CLASSES[c].size as usize % align == 0 {
            return c as u8;
        }
        c += 1;
    }
    0
}

/// The object size of `class`.
#[inline(always)]
pub fn class_size_of(class: u8) -> usize {
    CLASSES[class as usize].size as usize
}

/// The object-start test for one class, with no division (Granlund and
/// Montgomery's exact division, with Lemire's rotation): for
/// `size = odd << shift`, `(n * inverse).rotate_right(shift)` is `n / size`
/// when `n` is a multiple of `size`, and greater than `u64::MAX / size`
/// otherwise, where `inverse` is the odd part's inverse modulo 2^64. So one
/// compare against the span's object count checks both that `n` is an
/// object boundary and that the object lies inside the span. Class 0 (no
/// small objects) has a count of zero: no offset passes.
struct Divisor {
    inverse: u64,
    /// How many objects a span of the class holds: the class's count,
    /// raised by [`note_span_objects`] where the page heap rounds spans up
    /// to larger OS pages. Only ever raised; zero for class 0.
    count: AtomicU64,
    shift: u32,
}

/// The inverse of odd `d` modulo 2^64 (Newton's iteration: each step
/// doubles the correct low bits, from 3 bits for `x = d`).
const fn inverse_mod_2_64(d: u64) -> u64 {
    let mut x = d;
    let mut i = 0;
    while i < 5 {
        x = x.wrapping_mul(2u64.wrapping_sub(d.wrapping_mul(x)));
        i += 1;
    }
    x
}

impl Divisor {
    /// The test for class `i` (1..NUM_CLASSES), with the class's own count.
    const fn of(i: usize) -> Divisor {
        let d = CLASSES[i].size as u64;
        let shift = d.trailing_zeros();
        Divisor {
            inverse: inverse_mod_2_64(d >> shift),
            count: AtomicU64::new(CLASSES[i].objects as u64),
            shift,
        }
    }

    #[inline(always)]
    fn index(&self, offset: usize) -> u64 {
        (offset as u64)
            .wrapping_mul(self.inverse)
            .rotate_right(self.shift)
    }

    #[inline(always)]
    fn is_object_offset(&self, offset: usize) -> bool {
        self.index(offset) < self.count.load(Ordering::Relaxed)
    }

    fn raise(&self, objects: u32) {
        let count = objects as u64;
        if count > self.count.load(Ordering::Relaxed) {
            self.count.fetch_max(count, Ordering::Relaxed);
        }
    }
}

/// One [`Divisor`] per class, 256 entries so that a `u8` class indexes it
/// without a bounds check (entries past the last class are never used).
static DIVISORS: [Divisor; 256] = {
    let mut t = [const {
        Divisor {
            inverse: 0,
            count: AtomicU64::new(0),
            shift: 0,
        }
    }; 256];
    let mut i = 1;
    while i < NUM_CLASSES {
        t[i] = Divisor::of(i);
        i += 1;
    }
    t
};

/// Whether `offset` bytes from the start of a span of `class` is where one
/// of its objects starts: an object boundary below the span's last object
/// (a free of any other address inside the span is an interior pointer, or
/// one past the objects, in the span's unused tail). Never for class 0, so
/// a caller holding a map's answer for any address (class 0: no small
/// object there) needs no test of its own for that. A load, a multiply, a
/// rotate and a compare.
#[inline]
pub fn is_object_offset(class: u8, offset: usize) -> bool {
    DIVISORS[class as usize].is_object_offset(offset)
}

/// The index of the object of `class` that starts `offset` bytes from its
/// span's start; for an offset that is not an object start, a number no
/// span's count reaches (above `u64::MAX / size`). No division.
#[inline]
pub(crate) fn object_index(class: u8, offset: usize) -> u64 {
    DIVISORS[class as usize].index(offset)
}

/// Records that spans of `class` hold `objects` objects (more than the
/// class's count where spans are rounded up to whole OS pages larger than
/// the heap's), so that [`is_object_offset`] accepts all of them. The
/// bound only grows: with several heaps on different page sizes in one
/// process (tests), it is the largest span's.
pub(crate) fn note_span_objects(class: u8, objects: u32) {
    DIVISORS[class as usize].raise(objects);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn object_offsets_without_division_match_division_everywhere_in_a_span() {
        // On tables of the test's own: other tests' heaps on larger pages
        // raise the shared one's bounds.
        for (c, &i) in CLASSES.iter().enumerate().skip(1) {
            let d = Divisor::of(c);
            let span = i.span_bytes();
            // Wrapped offsets (a stale span record) are never object starts.
            for off in [usize::MAX, usize::MAX - 7, 1 << 63] {
                assert!(!d.is_object_offset(off));
            }
            for off in 0..span + 2 * i.size as usize {
                let size = i.size as usize;
                assert_eq!(
                    d.is_object_offset(off),
                    off % size == 0 && off / size < i.objects as usize,
                    "class {c} (size {size}), offset {off}",
                );
            }
        }
    }

    #[test]
    fn class_zero_has_no_object_offsets() {
        for off in [0, 8, 16, 4096, 8192, usize::MAX] {
            assert!(!is_object_offset(0, off), "{off}");
        }
    }

    #[test]
    fn a_pointer_past_the_last_object_of_a_span_is_no_object() {
        // 48-byte objects in one 8 KiB page: 170 of them, and a 32-byte tail
        // whose start, 8160, is a multiple of 48.
        let class = class_index(48, 8);
        let i = CLASSES[class as usize];
        assert_eq!((i.size, i.pages as usize * PAGE_SIZE), (48, 8192));
        assert_eq!(i.objects, 170);
        let d = Divisor::of(class as usize);
        assert!(d.is_object_offset(169 * 48));
        assert!(!d.is_object_offset(8160));
    }

    #[test]
    fn spans_rounded_up_to_larger_pages_raise_the_bound() {
        // A test of its own (the table is shared by every test's heap).
        let class = NUM_CLASSES - 1;
        let (d, i) = (Divisor::of(class), CLASSES[class]);
        let beyond = i.objects as usize * i.size as usize;
        assert!(!d.is_object_offset(beyond));
        d.raise(i.objects + 1);
        assert!(d.is_object_offset(beyond));
        assert!(!d.is_object_offset(beyond + i.size as usize));
        d.raise(1); // never lowered
        assert!(d.is_object_offset(beyond));
    }

    #[test]
    fn classes_are_increasing_aligned_and_bounded() {
        assert_eq!(CLASSES[NUM_CLASSES - 1].size as usize, MAX_SMALL);
        for c in 1..NUM_CLASSES {
            let i = CLASSES[c];
            if c > 1 {
                assert!(i.size > CLASSES[c - 1].size);
                assert_eq!(i.size % 16, 0, "class {c} not 16-aligned");
            }
            assert!(
                i.objects >= 1 && i.batch >= 2 && i.batch as usize <= crate::transfer::MAX_BATCH
            );
            let span = i.span_bytes();
            assert!(i.tail_bytes() * 8 <= span, "class {c} wastes > 1/8");
            // The pagemap keeps a page's index in its span in one byte.
            assert!(i.pages as usize <= strata_pageheap::MAX_SMALL_SPAN_PAGES);
        }
    }

    #[test]
    fn lookup_is_smallest_fitting_class_with_at_most_one_eighth_waste() {
        for size in 0..=MAX_SMALL {
            let c = class_for_size(size).unwrap();
            let cs = class_size_of(c);
            assert!(cs >= size.max(1), "size {size} -> {cs}");
            if c > 1 {
                assert!(
                    class_size_of(c - 1) < size.max(1),
                    "size {size} not in the smallest class"
                );
            }
            if size >= 128 {
                assert!((cs - size) * 8 <= size, "size {size} -> {cs} wastes > 1/8");
            }
        }
        assert_eq!(class_for_size(MAX_SMALL + 1), None);
    }

    #[test]
    fn aligned_lookup_gives_aligned_classes() {
        let mut align = 1;
        while align <= PAGE_SIZE {
            for size in [1, 7, 8, 9, 24, 100, 1000, 5000, 70_000, MAX_SMALL] {
                if let Some(c) = class_for(size, align) {
                    let cs = class_size_of(c);
                    assert!(
                        cs >= size && cs % align == 0,
                        "size {size} align {align} -> {cs}"
                    );
                }
            }
            align *= 2;
        }
        assert_eq!(class_for(8, 2 * PAGE_SIZE), None);
    }
}
