//! A fake page heap for the central layer's tests: spans come from the system
//! allocator, records are boxed, and `span_of` is a search in an ordered map.

use std::alloc::{GlobalAlloc, Layout, System};
use std::boxed::Box;
use std::collections::BTreeMap;
use std::sync::Mutex;
use std::vec::Vec;

use core::ptr::NonNull;

use strata_pageheap::{Span, PAGE_SHIFT, PAGE_SIZE};

use crate::PageSource;

pub(crate) struct FakePages {
    spans: Mutex<BTreeMap<usize, (Box<Span>, usize)>>,
    /// Tables handed out by `map_table`, freed with the fake.
    pub(crate) tables: Mutex<Vec<(usize, Layout)>>,
}

impl FakePages {
    pub(crate) fn new() -> Self {
        FakePages {
            spans: Mutex::new(BTreeMap::new()),
            tables: Mutex::new(Vec::new()),
        }
    }

    pub(crate) fn live_spans(&self) -> usize {
        self.spans.lock().unwrap().len()
    }
}

// SAFETY: spans are exclusive allocations from System, and the map finds the
// span of any address inside one.
unsafe impl PageSource for FakePages {
    fn alloc_span(&self, npages: usize, size_class: u8) -> Option<NonNull<Span>> {
        let len = npages * PAGE_SIZE;
        // SAFETY: non-zero size, valid alignment.
        let mem = unsafe { System.alloc(Layout::from_size_align(len, PAGE_SIZE).unwrap()) };
        if mem.is_null() {
            return None;
        }
        let mut rec = Box::new(Span::detached(
            mem as usize >> PAGE_SHIFT,
            npages,
            size_class,
        ));
        let p = NonNull::from(&mut *rec);
        self.spans.lock().unwrap().insert(mem as usize, (rec, len));
        Some(p)
    }

    unsafe fn free_span(&self, span: NonNull<Span>) {
        // SAFETY: the caller returns a span of ours.
        let start = unsafe { span.as_ref().start_addr() };
        let (rec, len) = self
            .spans
            .lock()
            .unwrap()
            .remove(&start)
            .expect("span not from this fake");
        assert_eq!(rec.allocated, 0, "span returned with objects in use");
        // SAFETY: allocated above with this layout.
        unsafe {
            System.dealloc(
                start as *mut u8,
                Layout::from_size_align(len, PAGE_SIZE).unwrap(),
            )
        };
    }

    fn span_of(&self, addr: usize) -> Option<NonNull<Span>> {
        let mut map = self.spans.lock().unwrap();
        let (start, (rec, len)) = map.range_mut(..=addr).next_back()?;
        (addr < start + *len).then(|| NonNull::from(&mut **rec))
    }

    fn map_table(&self, bytes: usize) -> Option<NonNull<u8>> {
        let layout = Layout::from_size_align(bytes, PAGE_SIZE).ok()?;
        // SAFETY: non-zero size (a table holds at least one batch).
        let mem = NonNull::new(unsafe { System.alloc_zeroed(layout) })?;
        self.tables
            .lock()
            .unwrap()
            .push((mem.as_ptr() as usize, layout));
        Some(mem)
    }
}

impl Drop for FakePages {
    fn drop(&mut self) {
        for (addr, layout) in self.tables.get_mut().unwrap().drain(..) {
            // SAFETY: allocated in `map_table` with this layout; the central
            // layer that used it is gone with its page source.
            unsafe { System.dealloc(addr as *mut u8, layout) };
        }
    }
}

/// Takes up to `n` objects of `class` from `central`, as addresses.
pub(crate) fn alloc(central: &crate::Central<FakePages>, class: u8, n: usize) -> Vec<usize> {
    let mut out = std::vec![core::ptr::null_mut(); n];
    let got = central.alloc_batch(class, &mut out);
    out[..got].iter().map(|&p| p as usize).collect()
}

/// Gives the objects at `objs` back to `central` as one batch.
///
/// # Safety
/// As for [`crate::Central::free_batch`].
pub(crate) unsafe fn free(central: &crate::Central<FakePages>, class: u8, objs: &[usize]) {
    let ptrs: Vec<*mut u8> = objs.iter().map(|&o| o as *mut u8).collect();
    // SAFETY: forwarded contract.
    unsafe { central.free_batch(class, &ptrs) }
}
