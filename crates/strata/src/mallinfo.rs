//! glibc's views of the statistics: `struct mallinfo2` ([`MallInfo`]) and
//! the XML of `malloc_info` ([`write_malloc_info`]), both computed from a
//! [`Stats`] snapshot, so that they agree with [`crate::stats`] and with
//! each other.
//!
//! # The mapping
//! glibc describes arenas of chunks plus blocks in mappings of their own;
//! strata has a heap of spans plus huge blocks in mappings of their own
//! (32 MiB and more). Its memory maps onto glibc's fields so that glibc's
//! own identities hold: `arena == uordblks + fordblks`, and the program's
//! memory in use is `uordblks + hblkhd`.
//!
//! | field | strata |
//! |---|---|
//! | `arena` | bytes mapped for the heap: `mapped_bytes - huge_in_use_bytes` (spans in use and free, huge mappings kept for reuse) |
//! | `ordblks` | free spans (`free_spans`) |
//! | `smblks` | free small objects in the central lists and transfer caches (`central_free_objects`) |
//! | `hblks` | huge blocks in use (`huge_blocks`) |
//! | `hblkhd` | their bytes (`huge_in_use_bytes`) |
//! | `usmblks` | the most memory strata has held resident (`peak_resident_bytes`); glibc leaves it 0, and it once meant the high-water mark of the heap |
//! | `fsmblks` | the bytes of those free small objects (`central_free_bytes`) |
//! | `uordblks` | bytes allocated and in use by the program outside huge blocks: `allocated_bytes - huge_in_use_bytes` |
//! | `fordblks` | free bytes strata holds in the heap: `arena - uordblks` (free spans, cached huge mappings, free objects in the central layer and the thread caches, and the spans' tails, `span_tail_bytes`) |
//! | `keepcost` | free memory that `malloc_trim(0)` gives back to the OS at least: `free_dirty_bytes + huge_cached_bytes` |
//!
//! `malloc_info` writes one heap (`nr="0"`) whose `<sizes>` list the free
//! objects of each size class in the central layer (`from` is one past the
//! next smaller class, `to` the class size); `fast` is `smblks`/`fsmblks`,
//! `rest` is the other free memory (`ordblks`, `fordblks - fsmblks`),
//! `mmap` is `hblks`/`hblkhd`, and `system` `current`/`max` are `arena`
//! and the larger of `usmblks` and `arena` (strata keeps no peak of its
//! mapped bytes; a peak of resident bytes can be below what is mapped now).
//!
//! # Invariants
//! - Nothing here allocates or holds a lock while the writer runs.

use core::fmt::{self, Write};

use crate::Stats;

/// glibc's `struct mallinfo2`, field for field (`#[repr(C)]`: the C ABI
/// returns it as is), filled as the module docs say.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MallInfo {
    /// Bytes mapped for the heap (not counting huge blocks in use).
    pub arena: usize,
    /// Free spans.
    pub ordblks: usize,
    /// Free small objects in the central lists and transfer caches.
    pub smblks: usize,
    /// Huge blocks (mappings of their own) in use.
    pub hblks: usize,
    /// Bytes of huge blocks in use.
    pub hblkhd: usize,
    /// Peak resident bytes.
    pub usmblks: usize,
    /// Bytes of the free small objects counted in `smblks`.
    pub fsmblks: usize,
    /// Bytes in use by the program, huge blocks aside.
    pub uordblks: usize,
    /// Free bytes held in the heap: `arena - uordblks`.
    pub fordblks: usize,
    /// Free bytes `malloc_trim(0)` returns to the OS at least.
    pub keepcost: usize,
}

impl Stats {
    /// glibc's `mallinfo2` view of these statistics (see the module docs
    /// of the mapping).
    pub fn mallinfo(&self) -> MallInfo {
        let arena = self.mapped_bytes.saturating_sub(self.huge_in_use_bytes);
        let uordblks = self
            .allocated_bytes
            .saturating_sub(self.huge_in_use_bytes)
            .min(arena);
        MallInfo {
            arena,
            ordblks: self.free_spans,
            smblks: self.central_free_objects,
            hblks: self.huge_blocks,
            hblkhd: self.huge_in_use_bytes,
            usmblks: self.peak_resident_bytes,
            fsmblks: self.central_free_bytes,
            uordblks,
            fordblks: arena - uordblks,
            keepcost: self.free_dirty_bytes + self.huge_cached_bytes,
        }
    }
}

/// Writes glibc's `malloc_info` XML for `stats` and the size classes as
/// they are now:
///
/// ```text
/// <malloc version="1">
/// <heap nr="0">
/// <sizes>
/// <size from="17" to="32" total="4096" count="128"/>
/// ...
/// </sizes>
/// <total type="fast" count="..." size="..."/>
/// <total type="rest" count="..." size="..."/>
/// <system type="current" size="..."/>
/// <system type="max" size="..."/>
/// <aspace type="total" size="..."/>
/// <aspace type="mprotect" size="..."/>
/// </heap>
/// <total type="fast" .../><total type="rest" .../><total type="mmap" .../>
/// <system .../><aspace .../>
/// </malloc>
/// ```
///
/// Class figures are read one class at a time, each copied out before it
/// is written.
pub fn write_malloc_info(stats: &Stats, w: &mut impl Write) -> fmt::Result {
    let m = stats.mallinfo();
    w.write_str("<malloc version=\"1\">\n<heap nr=\"0\">\n<sizes>\n")?;
    let mut from = 1;
    for class in 1..strata_central::NUM_CLASSES as u8 {
        let size = strata_central::class_size_of(class);
        let c = crate::global::class_stats(class);
        let count = c.span_free_objects + c.transfer_objects;
        if count > 0 {
            writeln!(
                w,
                "<size from=\"{from}\" to=\"{size}\" total=\"{}\" count=\"{count}\"/>",
                count * size
            )?;
        }
        from = size + 1;
    }
    w.write_str("</sizes>\n")?;
    let totals = |w: &mut dyn Write| -> fmt::Result {
        write!(
            w,
            "<total type=\"fast\" count=\"{}\" size=\"{}\"/>\n\
             <total type=\"rest\" count=\"{}\" size=\"{}\"/>\n",
            m.smblks,
            m.fsmblks,
            m.ordblks,
            m.fordblks - m.fsmblks.min(m.fordblks),
        )
    };
    let system = |w: &mut dyn Write| -> fmt::Result {
        write!(
            w,
            "<system type=\"current\" size=\"{}\"/>\n\
             <system type=\"max\" size=\"{}\"/>\n\
             <aspace type=\"total\" size=\"{}\"/>\n\
             <aspace type=\"mprotect\" size=\"{}\"/>\n",
            m.arena,
            m.usmblks.max(m.arena),
            m.arena,
            m.arena
        )
    };
    totals(w)?;
    system(w)?;
    w.write_str("</heap>\n")?;
    totals(w)?;
    writeln!(
        w,
        "<total type=\"mmap\" count=\"{}\" size=\"{}\"/>",
        m.hblks, m.hblkhd
    )?;
    system(w)?;
    w.write_str("</malloc>\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn glibc_identities_hold() {
        let s = Stats {
            mapped_bytes: 100 << 20,
            in_use_bytes: 80 << 20,
            allocated_bytes: 70 << 20,
            free_dirty_bytes: 12 << 20,
            free_clean_bytes: 8 << 20,
            free_spans: 5,
            central_free_bytes: 6 << 20,
            central_free_objects: 600,
            thread_cache_bytes: 4 << 20,
            huge_in_use_bytes: 40 << 20,
            huge_blocks: 1,
            peak_resident_bytes: 120 << 20,
            ..Stats::default()
        };
        let m = s.mallinfo();
        assert_eq!(m.arena, 60 << 20);
        assert_eq!(m.uordblks, 30 << 20);
        assert_eq!(m.arena, m.uordblks + m.fordblks);
        assert_eq!(m.uordblks + m.hblkhd, s.allocated_bytes);
        // Free spans, central and thread-cache objects: all free memory.
        assert_eq!(m.fordblks, (12 + 8 + 6 + 4) << 20);
        assert_eq!((m.hblks, m.hblkhd), (1, 40 << 20));
        assert_eq!((m.smblks, m.fsmblks), (600, 6 << 20));
        assert_eq!((m.ordblks, m.keepcost, m.usmblks), (5, 12 << 20, 120 << 20));
    }
}
