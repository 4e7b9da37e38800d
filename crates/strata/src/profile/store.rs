//! The profiler's tables, in memory mapped from the OS (never from the
//! global allocator): the live sampled blocks by address, and the stacks
//! they were allocated from with what each stack accounts for.
//!
//! # Invariants
//! - [`OsVec`] owns one private anonymous mapping (or none); its first
//!   `len` elements are initialised. It grows by `mremap`, so a pointer
//!   into it is valid only until the next push.
//! - [`Records`] is an open-addressing table with linear probing and
//!   backward-shift deletion (no tombstones): every record sits between its
//!   home slot and the first empty slot after it. It is never more than
//!   half full.
//! - A stack's frames, `frames[at..at + depth]`, never change once written.

use core::mem::size_of;
use core::ptr;

/// A growable array of `Copy` values in an OS mapping.
pub(crate) struct OsVec<T: Copy> {
    ptr: *mut T,
    len: usize,
    cap: usize,
}

// SAFETY: an OsVec owns its mapping; it is used under the profiler's lock
// or by one dumping thread.
unsafe impl<T: Copy + Send> Send for OsVec<T> {}

/// Maps `bytes` (a multiple of the page size) of zeroed memory, or null.
pub(crate) fn map_zeroed(bytes: usize) -> *mut u8 {
    strata_os::map_anonymous(bytes, strata_os::Protection::ReadWrite)
        .map_or(ptr::null_mut(), |p| p.as_ptr())
}

/// Unmaps what [`map_zeroed`] returned.
///
/// # Safety
/// `p` and `bytes` are a mapping of [`map_zeroed`]'s that nothing uses.
pub(crate) unsafe fn unmap(p: *mut u8, bytes: usize) {
    if let Some(p) = ptr::NonNull::new(p) {
        // SAFETY: caller's contract.
        unsafe { strata_os::unmap_anonymous(p, bytes) };
    }
}

fn page_round(bytes: usize) -> usize {
    bytes.next_multiple_of(strata_os::os_page_size())
}

impl<T: Copy> OsVec<T> {
    pub(crate) const fn new() -> Self {
        OsVec {
            ptr: ptr::null_mut(),
            len: 0,
            cap: 0,
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// Bytes mapped.
    pub(crate) fn mapped(&self) -> usize {
        page_round(self.cap * size_of::<T>())
    }

    /// Room for `extra` more elements; false if the OS refused.
    pub(crate) fn reserve(&mut self, extra: usize) -> bool {
        let need = self.len + extra;
        if need <= self.cap {
            return true;
        }
        let cap = need.max(self.cap * 2).max(4096 / size_of::<T>().max(1));
        let bytes = page_round(cap * size_of::<T>());
        let p = if self.ptr.is_null() {
            map_zeroed(bytes)
        } else {
            // SAFETY: our mapping of `mapped()` bytes, moved if need be;
            // the old address is not used after a success.
            let q = unsafe {
                libc::mremap(self.ptr.cast(), self.mapped(), bytes, libc::MREMAP_MAYMOVE)
            };
            if q == libc::MAP_FAILED {
                ptr::null_mut()
            } else {
                q.cast()
            }
        };
        if p.is_null() {
            return false;
        }
        self.ptr = p.cast();
        self.cap = bytes / size_of::<T>();
        true
    }

    /// Appends `v`; false (and nothing appended) if the OS refused room.
    pub(crate) fn push(&mut self, v: T) -> bool {
        if !self.reserve(1) {
            return false;
        }
        // SAFETY: len < cap after reserve.
        unsafe { self.ptr.add(self.len).write(v) };
        self.len += 1;
        true
    }

    pub(crate) fn as_slice(&self) -> &[T] {
        if self.ptr.is_null() {
            return &[];
        }
        // SAFETY: the first `len` elements are initialised.
        unsafe { core::slice::from_raw_parts(self.ptr, self.len) }
    }

    pub(crate) fn as_mut_slice(&mut self) -> &mut [T] {
        if self.ptr.is_null() {
            return &mut [];
        }
        // SAFETY: as above, and we hold the vector mutably.
        unsafe { core::slice::from_raw_parts_mut(self.ptr, self.len) }
    }

    pub(crate) fn clear(&mut self) {
        self.len = 0;
    }

    /// Keeps the first `n` elements (all if there are fewer).
    pub(crate) fn truncate(&mut self, n: usize) {
        self.len = self.len.min(n);
    }
}

impl<T: Copy> Drop for OsVec<T> {
    fn drop(&mut self) {
        // SAFETY: our mapping, not used any more.
        unsafe { unmap(self.ptr.cast(), self.mapped()) };
    }
}

/// One live sampled block.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Record {
    /// The block's address (0: an empty table slot).
    pub(crate) addr: usize,
    /// Bytes asked for.
    pub(crate) size: usize,
    /// 1 / the probability it was sampled with: the blocks it stands for.
    pub(crate) weight: f64,
    /// Its stack, an index into [`Stacks`].
    pub(crate) stack: u32,
    /// Its profiler pool bucket plus one, or 0 for a block of the heap's.
    pub(crate) pooled: u32,
}

/// Live sampled blocks by address.
pub(crate) struct Records {
    slots: OsVec<Record>,
    len: usize,
}

fn home(addr: usize, mask: usize) -> usize {
    ((addr >> 4).wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 20) & mask
}

impl Records {
    pub(crate) const fn new() -> Self {
        Records {
            slots: OsVec::new(),
            len: 0,
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.len
    }

    pub(crate) fn mapped(&self) -> usize {
        self.slots.mapped()
    }

    fn table(&mut self) -> &mut [Record] {
        self.slots.as_mut_slice()
    }

    /// Adds `r` (whose address is not in the table); false if the OS
    /// refused room.
    pub(crate) fn insert(&mut self, r: Record) -> bool {
        let cap = self.slots.len();
        if (self.len + 1) * 2 > cap && !self.grow(cap.max(512) * 2) {
            return false;
        }
        self.place(r);
        self.len += 1;
        true
    }

    fn place(&mut self, r: Record) {
        let t = self.table();
        let mask = t.len() - 1;
        let mut i = home(r.addr, mask);
        while t[i].addr != 0 {
            i = (i + 1) & mask;
        }
        t[i] = r;
    }

    fn grow(&mut self, cap: usize) -> bool {
        let mut new = OsVec::<Record>::new();
        if !new.reserve(cap) {
            return false;
        }
        // A fresh mapping reads as zero: all slots empty.
        while new.len() < cap {
            new.push(Record::default());
        }
        let old = core::mem::replace(&mut self.slots, new);
        for &r in old.as_slice() {
            if r.addr != 0 {
                self.place(r);
            }
        }
        true
    }

    fn find(&self, addr: usize) -> Option<usize> {
        let t = self.slots.as_slice();
        if t.is_empty() || addr == 0 {
            return None;
        }
        let mask = t.len() - 1;
        let mut i = home(addr, mask);
        loop {
            match t[i].addr {
                0 => return None,
                a if a == addr => return Some(i),
                _ => i = (i + 1) & mask,
            }
        }
    }

    pub(crate) fn get(&self, addr: usize) -> Option<Record> {
        self.find(addr).map(|i| self.slots.as_slice()[i])
    }

    /// Takes the record of `addr` out of the table.
    pub(crate) fn remove(&mut self, addr: usize) -> Option<Record> {
        let mut i = self.find(addr)?;
        let t = self.table();
        let mask = t.len() - 1;
        let r = t[i];
        // Backward-shift: move later records of the run into the hole if
        // their home is not between the hole and themselves.
        let mut j = i;
        loop {
            j = (j + 1) & mask;
            if t[j].addr == 0 {
                break;
            }
            let h = home(t[j].addr, mask);
            let between = if i <= j {
                i < h && h <= j
            } else {
                i < h || h <= j
            };
            if !between {
                t[i] = t[j];
                i = j;
            }
        }
        t[i] = Record::default();
        self.len -= 1;
        Some(r)
    }
}

/// What one stack accounts for: estimates (sampled blocks and bytes, each
/// weighted by 1 / its probability).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub(crate) struct Counts {
    pub(crate) alloc_objects: f64,
    pub(crate) alloc_bytes: f64,
    pub(crate) live_objects: f64,
    pub(crate) live_bytes: f64,
    pub(crate) peak_objects: f64,
    pub(crate) peak_bytes: f64,
}

#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Stack {
    hash: u64,
    pub(crate) at: u32,
    pub(crate) depth: u32,
    pub(crate) counts: Counts,
}

/// The most stacks kept; later new stacks count under stack 0, the empty
/// one (shown as `(other stacks)`). Bounds the tables at about 6 MiB.
pub(crate) const MAX_STACKS: usize = 1 << 16;
/// The most frames kept over all stacks.
const MAX_FRAMES: usize = 1 << 19;

/// Distinct stacks, each with its [`Counts`].
pub(crate) struct Stacks {
    pub(crate) list: OsVec<Stack>,
    pub(crate) frames: OsVec<usize>,
    /// Open-addressing index: stack id + 1, or 0.
    index: OsVec<u32>,
}

fn hash_frames(frames: &[usize]) -> u64 {
    let mut h = 0xcbf2_9ce4_8422_2325u64 ^ frames.len() as u64;
    for &f in frames {
        h = (h ^ f as u64)
            .wrapping_mul(0x0000_0100_0000_01B3)
            .rotate_left(29);
    }
    h
}

impl Stacks {
    pub(crate) const fn new() -> Self {
        Stacks {
            list: OsVec::new(),
            frames: OsVec::new(),
            index: OsVec::new(),
        }
    }

    pub(crate) fn mapped(&self) -> usize {
        self.list.mapped() + self.frames.mapped() + self.index.mapped()
    }

    pub(crate) fn frames_of(&self, s: &Stack) -> &[usize] {
        &self.frames.as_slice()[s.at as usize..(s.at + s.depth) as usize]
    }

    /// The id of the stack `frames`, added if new; 0 (the catch-all
    /// stack) when the tables are full or the OS refused room.
    pub(crate) fn intern(&mut self, frames: &[usize]) -> u32 {
        if self.list.len() == 0 && !self.list.push(Stack::default()) {
            return 0;
        }
        let hash = hash_frames(frames);
        if self.index.len() < 2 * self.list.len() && !self.grow_index() {
            return 0;
        }
        let mask = self.index.len() - 1;
        let mut i = (hash as usize) & mask;
        loop {
            let id = self.index.as_slice()[i];
            if id == 0 {
                break;
            }
            let s = self.list.as_slice()[id as usize - 1];
            if s.hash == hash && self.frames_of(&s) == frames {
                return id - 1;
            }
            i = (i + 1) & mask;
        }
        let id = self.list.len();
        if id >= MAX_STACKS
            || self.frames.len() + frames.len() > MAX_FRAMES
            || !self.frames.reserve(frames.len())
            || !self.list.reserve(1)
        {
            return 0;
        }
        let at = self.frames.len() as u32;
        for &f in frames {
            self.frames.push(f);
        }
        self.list.push(Stack {
            hash,
            at,
            depth: frames.len() as u32,
            counts: Counts::default(),
        });
        self.index.as_mut_slice()[i] = id as u32 + 1;
        id as u32
    }

    fn grow_index(&mut self) -> bool {
        let cap = (self.index.len() * 2).max(1024);
        let mut new = OsVec::<u32>::new();
        if !new.reserve(cap) {
            return false;
        }
        while new.len() < cap {
            new.push(0);
        }
        let mask = cap - 1;
        for (id, s) in self.list.as_slice().iter().enumerate().skip(1) {
            let mut i = (s.hash as usize) & mask;
            while new.as_slice()[i] != 0 {
                i = (i + 1) & mask;
            }
            new.as_mut_slice()[i] = id as u32 + 1;
        }
        self.index = new;
        true
    }

    pub(crate) fn counts_mut(&mut self, id: u32) -> &mut Counts {
        &mut self.list.as_mut_slice()[id as usize].counts
    }

    /// Copies every stack's live counts into its peak counts.
    pub(crate) fn snapshot_peak(&mut self) {
        for s in self.list.as_mut_slice() {
            s.counts.peak_objects = s.counts.live_objects;
            s.counts.peak_bytes = s.counts.live_bytes;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_insert_find_remove() {
        let mut r = Records::new();
        let addrs: std::vec::Vec<usize> = (1..5000).map(|i| i * 4096 + (i % 7) * 16).collect();
        for &a in &addrs {
            assert!(r.insert(Record {
                addr: a,
                size: a / 2,
                ..Record::default()
            }));
        }
        assert_eq!(r.len(), addrs.len());
        for &a in addrs.iter().step_by(3) {
            assert_eq!(r.remove(a).map(|x| x.size), Some(a / 2));
        }
        for (i, &a) in addrs.iter().enumerate() {
            assert_eq!(r.get(a).is_some(), i % 3 != 0, "{a:#x}");
        }
        assert!(r.get(12345).is_none());
    }

    #[test]
    fn stacks_are_interned() {
        let mut s = Stacks::new();
        let a = s.intern(&[1, 2, 3]);
        let b = s.intern(&[1, 2, 4]);
        assert_ne!(a, b);
        assert_ne!(a, 0);
        assert_eq!(s.intern(&[1, 2, 3]), a);
        for i in 0..3000 {
            s.intern(&[i, i + 1]);
        }
        assert_eq!(s.intern(&[1, 2, 4]), b);
        assert_eq!(s.frames_of(&s.list.as_slice()[b as usize]), &[1, 2, 4]);
    }
}
