//! Validation of a sized small free against the pagemap: the check the
//! default build runs for pointers outside the heap's arena (see
//! `strata_pageheap`'s `in_arena`) and the `checked` build runs on every free.
//!
//! It reports (and refuses) a pointer that is in no span of strata's, in a
//! large block, in a span of another size class, or not at an object
//! boundary.

use crate::bad_free::{report, BadFreeKind};
use crate::layers::Pages;

/// The size class of the small-object span holding `addr` (0 if none), and
/// whether `addr` is where an object of it starts (not an interior
/// pointer): one pagemap walk and a multiplication
/// (`strata_central::is_object_offset`).
#[inline(always)]
pub(crate) fn small_object_at(pages: &Pages, addr: usize) -> (u8, bool) {
    let (class, start) = pages.small_span_of(addr);
    let at_start =
        class != 0 && addr >= start && strata_central::is_object_offset(class, addr - start);
    (class, at_start)
}

/// Checks a `dealloc` of `p` with a layout of `class`; reports and returns
/// false if it must not be freed.
pub(crate) fn valid_small_free(pages: &Pages, p: *mut u8, class: u8) -> bool {
    // The same walk and object-boundary test as `raw::free`.
    let (page_class, at_start) = small_object_at(pages, p as usize);
    if page_class == 0 {
        let kind = match pages.large_span(p as usize) {
            Ok(_) => BadFreeKind::WrongLayout,
            Err(why) => why.into(),
        };
        report(p, kind);
        return false;
    }
    if page_class != class {
        report(p, BadFreeKind::WrongLayout);
        return false;
    }
    if !at_start {
        report(p, BadFreeKind::Interior);
        return false;
    }
    true
}
