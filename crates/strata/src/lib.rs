//! placeholder facade: delegates to the system allocator until the layers land.
use core::alloc::{GlobalAlloc, Layout};
/// The strata allocator.
pub struct Strata;
unsafe impl GlobalAlloc for Strata {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 { unsafe { std::alloc::System.alloc(l) } }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) { unsafe { std::alloc::System.dealloc(p, l) } }
}
