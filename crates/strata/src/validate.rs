//! Validation of a sized small free against the pagemap: the check the
//! default build runs for pointers outside the heap's arena (see
//! `strata_pageheap`'s `in_arena`) and the `checked` build runs on every free.
//!
//! It reports (and refuses) a pointer that is in no span of strata's, in a
//! large block, in a span of another size class, or not at an object
//! boundary.

use strata_central::class_size_of;

use crate::bad_free::{report, BadFreeKind};
use crate::global::pages;

/// Checks a `dealloc` of `p` with a layout of `class`; reports and returns
/// false if it must not be freed.
pub(crate) fn valid_small_free(p: *mut u8, class: u8) -> bool {
    let page_class = pages().size_class_of(p as usize);
    if page_class == 0 {
        let kind = match pages().large_span(p as usize) {
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
    let Some(span) = pages().span_of(p as usize) else {
        report(p, BadFreeKind::NeverAllocated);
        return false;
    };
    // SAFETY: span_of returned a record holding the page.
    let start = unsafe { span.as_ref().start_addr() };
    if (p as usize - start) % class_size_of(class) != 0 {
        report(p, BadFreeKind::Interior);
        return false;
    }
    true
}
