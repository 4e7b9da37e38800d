//! The shadow model of the central layer: the live objects of every class
//! (where, filled with which tag), and the conservation laws the class
//! statistics and the page heap's accounting must obey.

use std::collections::BTreeMap;

use strata_central::{class_size_of, Central, CLASSES, NUM_CLASSES};
use strata_pageheap::{PageHeap, PAGE_SIZE};

use super::os::TestOs;

/// The central layer under test, over the real page heap.
pub type Under<O> = Central<PageHeap<O>>;

pub struct Model {
    /// Live objects of each class in allocation order: (address, tag).
    live: Vec<Vec<(usize, u8)>>,
    /// Live objects by address, with their size, for disjointness.
    by_addr: BTreeMap<usize, usize>,
    next_tag: u8,
}

impl Model {
    pub fn new() -> Self {
        Model {
            live: vec![Vec::new(); NUM_CLASSES],
            by_addr: BTreeMap::new(),
            next_tag: 0,
        }
    }

    /// A fresh non-zero tag to fill an object with.
    pub fn tag(&mut self) -> u8 {
        self.next_tag = self.next_tag % 251 + 1;
        self.next_tag
    }

    /// Records a new live object, checking that it overlaps no other.
    pub fn add(&mut self, class: u8, addr: usize, tag: u8) {
        let size = class_size_of(class);
        if let Some((&a, &s)) = self.by_addr.range(..=addr).next_back() {
            assert!(
                a + s <= addr,
                "object {addr:#x} (class {class}) overlaps live object {a:#x} of {s} bytes"
            );
        }
        if let Some((&a, _)) = self.by_addr.range(addr..).next() {
            assert!(
                addr + size <= a,
                "object {addr:#x} (class {class}, {size} bytes) overlaps live object {a:#x}"
            );
        }
        self.by_addr.insert(addr, size);
        self.live[class as usize].push((addr, tag));
    }

    pub fn count(&self, class: u8) -> usize {
        self.live[class as usize].len()
    }

    /// Takes `k` live objects of `class`, starting at the `start`-th (modulo
    /// their number), out of the model, checking their contents.
    pub fn take(&mut self, class: u8, start: usize, k: usize) -> Vec<usize> {
        let v = &mut self.live[class as usize];
        let len = v.len();
        v.rotate_left(start % len.max(1));
        let out: Vec<(usize, u8)> = v.drain(..k).collect();
        let size = class_size_of(class);
        out.iter()
            .map(|&(addr, tag)| {
                self.by_addr.remove(&addr);
                expect_bytes(addr, size, tag, "contents of a live object before free");
                addr
            })
            .collect()
    }

    /// Checks the contents of every live object.
    pub fn check_contents(&self) {
        for (class, v) in self.live.iter().enumerate() {
            for &(addr, tag) in v {
                expect_bytes(addr, class_size_of(class as u8), tag, "a live object");
            }
        }
    }

    /// The checks run after every step: for every class, the objects of its
    /// spans are free in a span, parked in the transfer cache, or live, and
    /// nowhere else; the page heap holds exactly the classes' spans in use.
    pub fn check<O: TestOs>(&self, central: &Under<O>) {
        let heap = central.pages();
        if let Err(e) = heap.check_invariants() {
            panic!("page heap check_invariants: {e}");
        }
        let mut span_bytes = 0;
        for class in 1..NUM_CLASSES as u8 {
            let info = &CLASSES[class as usize];
            let st = central.class_stats(class);
            let bytes = span_bytes_of(heap, class);
            assert_eq!(
                st.span_free_objects + st.transfer_objects + self.count(class),
                st.spans * (bytes / info.size as usize),
                "class {class} does not conserve its objects: {st:?}, {} live",
                self.count(class)
            );
            assert!(
                st.transfer_objects * info.size as usize <= strata_central::TRANSFER_BUDGET,
                "class {class} parked past the transfer budget"
            );
            span_bytes += st.spans * bytes;
        }
        let st = heap.stats();
        assert_eq!(
            st.in_use_bytes, span_bytes,
            "heap in use != the classes' spans"
        );
        assert_eq!(
            st.mapped_bytes,
            st.in_use_bytes + st.free_dirty_bytes + st.free_clean_bytes,
            "page heap: mapped != in use + free: {st:?}"
        );
        assert!(
            heap.os().mapped() >= st.mapped_bytes,
            "the OS maps less than the heap"
        );
    }
}

/// Fills `[addr, addr + len)` with `tag`.
pub fn fill(addr: usize, len: usize, tag: u8) {
    // SAFETY: callers pass a live object of at least `len` bytes they own.
    unsafe { std::ptr::write_bytes(addr as *mut u8, tag, len) };
}

/// Asserts that `[addr, addr + len)` holds only `tag` bytes. Compares in
/// chunks with `==` on byte slices (a `memcmp`, fast in debug builds too).
pub fn expect_bytes(addr: usize, len: usize, tag: u8, what: &str) {
    let pattern = [tag; 4096];
    let mut off = 0;
    while off < len {
        let n = (len - off).min(pattern.len());
        // SAFETY: callers pass a live object of at least `len` bytes.
        let s = unsafe { std::slice::from_raw_parts((addr + off) as *const u8, n) };
        if s != &pattern[..n] {
            let i = s.iter().position(|&x| x != tag).unwrap_or(0);
            panic!(
                "{what}: byte {:#x} of the object at {addr:#x} is {:#x}, expected {tag:#x}",
                off + i,
                s[i]
            );
        }
        off += n;
    }
}

/// Bytes of a span of `class`: the class's pages, rounded up to whole OS
/// pages by the page heap (on kernels with 16 or 64 KiB pages).
pub fn span_bytes_of<O: TestOs>(heap: &strata_pageheap::PageHeap<O>, class: u8) -> usize {
    let pages = CLASSES[class as usize].pages as usize * PAGE_SIZE;
    pages.next_multiple_of(heap.os().page_size().max(PAGE_SIZE))
}
