//! Intrusive doubly linked lists of allocator records (spans, thread
//! caches), linked through two pointer fields of each record: no node is
//! ever allocated, so the allocator can keep lists of its own metadata.
//!
//! # Invariants
//! - An element is in at most one list at a time; a list's elements are
//!   valid records for as long as they are in it.
//! - `head` is null exactly when `len == 0`; the first element's `prev` is
//!   null, the last one's `next` is null; `remove` leaves both links null.
//! - A list is reached only under its owner's lock (or by one thread).

use core::ptr;

/// A record that can be in a [`List`]: it has a `prev` and a `next` field.
///
/// # Safety
/// `prev` and `next` return pointers to two distinct `*mut Self` fields of
/// `*this` that nothing but the list writes while the record is in it.
pub unsafe trait Linked: Sized {
    /// The record's `prev` field.
    ///
    /// # Safety
    /// `this` points to a valid record.
    unsafe fn prev(this: *mut Self) -> *mut *mut Self;
    /// The record's `next` field.
    ///
    /// # Safety
    /// `this` points to a valid record.
    unsafe fn next(this: *mut Self) -> *mut *mut Self;
}

/// Implements [`Linked`] for a record type through two of its
/// `*mut Self` fields: `impl_linked!(unsafe Span, prev, next);`. It is an
/// `unsafe impl`: the invoker writes `unsafe` and promises, with a
/// `// SAFETY:` comment, that nothing but the list writes those fields
/// while the record is in a list.
#[macro_export]
macro_rules! impl_linked {
    (unsafe $t:ty, $prev:ident, $next:ident) => {
        // SAFETY: two distinct `*mut Self` fields, written only by the list
        // the record is in (the invoker's promise).
        unsafe impl $crate::Linked for $t {
            #[inline]
            unsafe fn prev(this: *mut Self) -> *mut *mut Self {
                // SAFETY: `this` is valid (caller's contract); no
                // reference is made.
                unsafe { ::core::ptr::addr_of_mut!((*this).$prev) }
            }
            #[inline]
            unsafe fn next(this: *mut Self) -> *mut *mut Self {
                // SAFETY: as above.
                unsafe { ::core::ptr::addr_of_mut!((*this).$next) }
            }
        }
    };
}

/// An intrusive doubly linked list of `T`; pushes at the front.
pub struct List<T> {
    head: *mut T,
    len: usize,
}

// SAFETY: a list is only reached under the lock of its owner, and its
// elements are records owned by the allocator.
unsafe impl<T> Send for List<T> {}

impl<T> List<T> {
    /// An empty list.
    pub const fn new() -> Self {
        List {
            head: ptr::null_mut(),
            len: 0,
        }
    }

    /// Whether the list is empty.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.head.is_null()
    }

    /// Number of elements.
    #[inline]
    pub fn len(&self) -> usize {
        self.len
    }

    /// The first element, or null.
    #[inline]
    pub fn first(&self) -> *mut T {
        self.head
    }
}

impl<T: Linked> List<T> {
    /// Pushes `e` at the front.
    ///
    /// # Safety
    /// `e` is a valid record in no list.
    #[inline]
    pub unsafe fn push(&mut self, e: *mut T) {
        // SAFETY: `e` is valid and unlinked (caller's contract); the head,
        // if any, is a valid member of this list.
        unsafe {
            *T::prev(e) = ptr::null_mut();
            *T::next(e) = self.head;
            if !self.head.is_null() {
                *T::prev(self.head) = e;
            }
        }
        self.head = e;
        self.len += 1;
    }

    /// Unlinks `e`, leaving its links null.
    ///
    /// # Safety
    /// `e` is in this list.
    #[inline]
    pub unsafe fn remove(&mut self, e: *mut T) {
        // SAFETY: `e` and its neighbours are valid members of this list.
        unsafe {
            let (p, n) = (*T::prev(e), *T::next(e));
            if p.is_null() {
                self.head = n;
            } else {
                *T::next(p) = n;
            }
            if !n.is_null() {
                *T::prev(n) = p;
            }
            *T::prev(e) = ptr::null_mut();
            *T::next(e) = ptr::null_mut();
        }
        self.len -= 1;
    }

    /// Iterates the elements (raw pointers; the list must not change
    /// meanwhile).
    pub fn iter(&self) -> Iter<T> {
        Iter { cur: self.head }
    }
}

impl<T> Default for List<T> {
    fn default() -> Self {
        Self::new()
    }
}

/// Iterator over a [`List`].
pub struct Iter<T> {
    cur: *mut T,
}

impl<T: Linked> Iterator for Iter<T> {
    type Item = *mut T;
    fn next(&mut self) -> Option<*mut T> {
        if self.cur.is_null() {
            return None;
        }
        let e = self.cur;
        // SAFETY: members of a list are valid while the list is unchanged.
        self.cur = unsafe { *T::next(e) };
        Some(e)
    }
}

#[cfg(all(test, not(strata_loom)))]
mod tests {
    use super::*;
    use std::vec::Vec;

    struct Rec {
        id: u32,
        prev: *mut Rec,
        next: *mut Rec,
    }

    // SAFETY: nothing else writes `prev` and `next`.
    crate::impl_linked!(unsafe Rec, prev, next);

    fn ids(l: &List<Rec>) -> Vec<u32> {
        // SAFETY: the records outlive the list's use here.
        l.iter().map(|r| unsafe { (*r).id }).collect()
    }

    /// Pushes go to the front; removing the first, a middle and the last
    /// element keeps the rest linked both ways and leaves the removed
    /// element's links null.
    #[test]
    fn push_remove_iterate() {
        let mut recs: Vec<Rec> = (0..4)
            .map(|id| Rec {
                id,
                prev: ptr::null_mut(),
                next: ptr::null_mut(),
            })
            .collect();
        let p: Vec<*mut Rec> = recs.iter_mut().map(|r| r as *mut Rec).collect();
        let mut l: List<Rec> = List::new();
        assert!(l.is_empty() && l.first().is_null());
        // SAFETY: valid records, each pushed once and removed only if in it.
        unsafe {
            for &r in &p {
                l.push(r);
            }
            assert_eq!(ids(&l), [3, 2, 1, 0]);
            l.remove(p[2]);
            assert_eq!(ids(&l), [3, 1, 0]);
            assert!((*p[2]).prev.is_null() && (*p[2]).next.is_null());
            l.remove(p[3]);
            assert_eq!(ids(&l), [1, 0]);
            assert!((*p[1]).prev.is_null(), "the new first has no prev");
            l.remove(p[0]);
            assert_eq!(ids(&l), [1]);
            assert_eq!(l.len(), 1);
            l.remove(p[1]);
        }
        assert_eq!(l.len(), 0);
        assert!(l.is_empty() && l.first().is_null());
    }
}
