//! A block of memory from the global allocator (strata), with the layout it
//! was allocated with and the seed of the pattern it carries. Every way a
//! block is made, resized, passed on or freed checks what it must.

use std::alloc::{self, Layout};
use std::fmt::Write as _;
use std::ptr::NonNull;

use crate::pattern::{self, Mismatch};
use crate::tally::Tally;

/// Blocks up to this size are checked zero byte by byte after
/// `alloc_zeroed`; bigger ones are sampled (first and last word, one word per
/// 4 KiB).
pub const ZERO_CHECK_ALL_MAX: usize = 256 * 1024;

/// Blocks of at least this many bytes get a mapping of their own in strata.
pub const HUGE_MIN: usize = strata_pageheap::HUGE_MIN;

/// How a block is first allocated.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// `std::alloc::alloc`.
    Plain,
    /// `std::alloc::alloc_zeroed`: checked zero before it is filled.
    Zeroed,
}

/// A live block, owned by exactly one holder at a time (a worker, a slot, a
/// channel, the survivors list). It has no `Drop`: it is freed only through
/// [`Block::free`], which checks it first; a block dropped on a failure path
/// is leaked, never freed unchecked.
#[derive(Debug)]
pub struct Block {
    ptr: NonNull<u8>,
    layout: Layout,
    seed: u64,
}

// SAFETY: a Block owns its memory exclusively (like a Box<[u8]>), and the
// global allocator may be called from any thread, so moving a block to
// another thread and freeing it there is sound.
unsafe impl Send for Block {}

/// Describes a mismatch for a failure message.
pub fn describe(m: &Mismatch, size: usize) -> String {
    format!(
        "byte {} of {} (4 KiB page {} of the block) is {:#04x}, expected {:#04x}; \
         the 8-byte word there reads {:#018x}; {} bad byte(s) in that 4 KiB chunk",
        m.offset,
        size,
        m.offset / pattern::CHUNK,
        m.found,
        m.expected,
        m.found_word,
        m.bad_in_chunk
    )
}

impl Block {
    /// Allocates a block with `layout` and fills it with the pattern of
    /// `seed`, after checking its alignment (and, for [`Kind::Zeroed`], that
    /// it reads as zero).
    pub fn new(layout: Layout, kind: Kind, seed: u64, tally: &mut Tally) -> Result<Block, String> {
        let raw = match kind {
            // SAFETY: layouts made by the engine never have size 0.
            Kind::Plain => unsafe { alloc::alloc(layout) },
            // SAFETY: as above.
            Kind::Zeroed => unsafe { alloc::alloc_zeroed(layout) },
        };
        let Some(ptr) = NonNull::new(raw) else {
            return Err(format!("{kind:?} allocation of {layout:?} returned null"));
        };
        let b = Block { ptr, layout, seed };
        b.check_align(&format!("{kind:?} allocation"))?;
        tally.blocks += 1;
        tally.bytes += layout.size() as u64;
        tally.aligned += u64::from(layout.align() > 16);
        tally.huge += u64::from(layout.size() >= HUGE_MIN);
        if kind == Kind::Zeroed {
            tally.zeroed += 1;
            tally.checks += 1;
            // SAFETY: a live block of layout.size() bytes that
            // alloc_zeroed initialised (to zero, if strata is right).
            let buf = unsafe { core::slice::from_raw_parts(ptr.as_ptr(), layout.size()) };
            let r = if layout.size() <= ZERO_CHECK_ALL_MAX {
                tally.checked_bytes += layout.size() as u64;
                pattern::check_zero_all(buf)
            } else {
                pattern::check_zero_sampled(buf, seed).map(|n| {
                    tally.checked_bytes += n as u64;
                })
            };
            if let Err(m) = r {
                return Err(format!(
                    "alloc_zeroed gave a block that is not zero: {}: {}",
                    b.name(),
                    describe(&m, layout.size())
                ));
            }
        }
        b.fill();
        Ok(b)
    }

    /// The block's layout.
    pub fn layout(&self) -> Layout {
        self.layout
    }

    /// The block's address.
    pub fn as_ptr(&self) -> *mut u8 {
        self.ptr.as_ptr()
    }

    /// The block's size in bytes.
    pub fn size(&self) -> usize {
        self.layout.size()
    }

    /// A one-line description for failure messages.
    pub fn name(&self) -> String {
        let mut s = String::new();
        let _ = write!(
            s,
            "block {:p} (size {}, align {}, pattern seed {:#018x})",
            self.ptr,
            self.layout.size(),
            self.layout.align(),
            self.seed
        );
        s
    }

    fn base(&self) -> u64 {
        pattern::base(self.ptr.as_ptr() as usize, self.layout.size(), self.seed)
    }

    fn check_align(&self, what: &str) -> Result<(), String> {
        if (self.ptr.as_ptr() as usize) % self.layout.align() != 0 {
            return Err(format!(
                "{what}: {} is not aligned to {}",
                self.name(),
                self.layout.align()
            ));
        }
        Ok(())
    }

    fn fill(&self) {
        // SAFETY: the block is live and owned by self.
        unsafe { pattern::fill(self.ptr.as_ptr(), self.layout.size(), self.base()) };
    }

    /// Checks the block's whole pattern.
    pub fn verify(&self, when: &str, tally: &mut Tally) -> Result<(), String> {
        tally.checks += 1;
        tally.checked_bytes += self.layout.size() as u64;
        // SAFETY: the block is live, owned by self, and was filled.
        let buf = unsafe { core::slice::from_raw_parts(self.ptr.as_ptr(), self.layout.size()) };
        pattern::check(buf, self.base()).map_err(|m| {
            format!(
                "{when}: {} lost its contents: {}",
                self.name(),
                describe(&m, self.layout.size())
            )
        })
    }

    /// Checks the block, then fills it with the pattern of a new seed (as a
    /// thread that did not allocate it writes all of it).
    pub fn reseed(&mut self, seed: u64, when: &str, tally: &mut Tally) -> Result<(), String> {
        self.verify(when, tally)?;
        self.seed = seed;
        self.fill();
        Ok(())
    }

    /// Resizes the block with `std::alloc::realloc`, checks that the first
    /// `min(old, new)` bytes still hold the old pattern (of the old address,
    /// size and seed) and the new alignment, then fills it with the pattern
    /// of `seed`. On failure the block is leaked.
    pub fn realloc(self, new_size: usize, seed: u64, tally: &mut Tally) -> Result<Block, String> {
        let old = self.name();
        let old_base = self.base();
        let old_size = self.layout.size();
        let new_layout = Layout::from_size_align(new_size, self.layout.align())
            .map_err(|e| format!("bad realloc size {new_size} for {old}: {e}"))?;
        // SAFETY: the block was allocated with self.layout by the global
        // allocator; new_size is non-zero and fits a Layout with that align.
        let raw = unsafe { alloc::realloc(self.ptr.as_ptr(), self.layout, new_size) };
        let Some(ptr) = NonNull::new(raw) else {
            return Err(format!(
                "realloc of {old} to {new_size} bytes returned null"
            ));
        };
        let b = Block {
            ptr,
            layout: new_layout,
            seed,
        };
        b.check_align(&format!("realloc of {old}"))?;
        let keep = old_size.min(new_size);
        tally.reallocs += 1;
        tally.checks += 1;
        tally.checked_bytes += keep as u64;
        tally.huge += u64::from(new_size >= HUGE_MIN && old_size < HUGE_MIN);
        // SAFETY: the first `keep` bytes of the new block are initialised
        // (copied or kept by realloc).
        let buf = unsafe { core::slice::from_raw_parts(ptr.as_ptr(), keep) };
        if let Err(m) = pattern::check(buf, old_base) {
            return Err(format!(
                "realloc of {old} to {new_size} bytes (now at {ptr:p}) did not keep the first \
                 {keep} bytes: {}",
                describe(&m, old_size)
            ));
        }
        b.fill();
        Ok(b)
    }

    /// Checks the block, then frees it with `std::alloc::dealloc`. A block
    /// that fails its check is leaked, not freed.
    pub fn free(self, when: &str, tally: &mut Tally) -> Result<(), String> {
        self.verify(when, tally)?;
        tally.frees += 1;
        // SAFETY: allocated by the global allocator with self.layout, and
        // self is consumed, so it is freed once.
        unsafe { alloc::dealloc(self.ptr.as_ptr(), self.layout) };
        Ok(())
    }
}
