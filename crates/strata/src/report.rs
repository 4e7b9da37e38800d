//! The whole statistics report as one JSON document
//! ([`crate::write_stats_json`], and `strata_stats_json` in C):
//!
//! ```text
//! {"version":1,
//!  "stats":{"mapped_bytes":...,...},          every field of Stats
//!  "options":{"decay_ms":"1000",...},         every setting, as get_option reads it
//!  "size_classes":[{"class":1,"size":8,"spans":2,"span_bytes":16384,
//!                   "free_objects":1000,"transfer_objects":0,"span_free_objects":1000,
//!                   "uncarved_objects":900,"thread_cache_objects":24},...],
//!                                              classes with spans or parked objects
//!  "thread_caches":{"live":3,"bytes":[40960,1024,0]}}  bytes held, largest first
//! }
//! ```
//!
//! (Without the line breaks.) Numbers are exact integers; `bytes` lists at
//! most [`MAX_LISTED_CACHES`] caches, the largest, while `live` counts all.
//!
//! # Invariants
//! - Allocates nothing itself. Each lock is held only to copy figures out
//!   (a class's lists; the thread-cache registry, into a stack array) and
//!   never while the caller's writer runs, so a writer that allocates does
//!   not deadlock.

use core::fmt::{self, Write};

use crate::config::state;
use crate::options::OPTIONS;

/// The most thread caches the report lists one by one.
pub const MAX_LISTED_CACHES: usize = 256;

/// Writes what it is given as the inside of a JSON string (a setting's
/// value may be a path: quotes, backslashes and control characters are
/// escaped).
struct JsonString<W>(W);

impl<W: Write> Write for JsonString<W> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        for c in s.chars() {
            match c {
                '"' | '\\' => write!(self.0, "\\{c}")?,
                c if (c as u32) < 0x20 => write!(self.0, "\\u{:04x}", c as u32)?,
                c => self.0.write_char(c)?,
            }
        }
        Ok(())
    }
}

/// [`crate::write_stats_json`].
pub(crate) fn write_stats_json(w: &mut impl Write) -> fmt::Result {
    let stats = crate::stats();
    w.write_str("{\"version\":1,\"stats\":")?;
    stats.write_json(w)?;
    w.write_str(",\"options\":{")?;
    let config = state::get();
    for (i, o) in OPTIONS.iter().enumerate() {
        let sep = if i > 0 { "," } else { "" };
        write!(w, "{sep}\"{}\":\"", o.short_name())?;
        write!(JsonString(&mut *w), "{}", o.value(&config))?;
        w.write_char('"')?;
    }
    w.write_str("},\"size_classes\":[")?;
    // Copied out under the registry's lock before anything is written.
    let mut in_caches = [0usize; strata_central::NUM_CLASSES];
    crate::global::add_thread_cache_objects(&mut in_caches);
    let mut first = true;
    for class in 1..strata_central::NUM_CLASSES as u8 {
        let c = crate::global::class_stats(class);
        if c.spans == 0 && c.transfer_objects == 0 {
            continue;
        }
        let info = &strata_central::CLASSES[class as usize];
        let sep = if first { "" } else { "," };
        first = false;
        write!(
            w,
            "{sep}{{\"class\":{class},\"size\":{},\"spans\":{},\"span_bytes\":{},\
             \"free_objects\":{},\"transfer_objects\":{},\"span_free_objects\":{},\
             \"uncarved_objects\":{},\"thread_cache_objects\":{}}}",
            info.size,
            c.spans,
            c.spans * info.span_bytes(),
            c.transfer_objects + c.span_free_objects,
            c.transfer_objects,
            c.span_free_objects,
            c.uncarved_objects,
            in_caches[class as usize],
        )?;
    }
    let mut caches = [0usize; MAX_LISTED_CACHES];
    let mut live = 0;
    crate::global::for_each_thread_cache(|bytes| {
        // Keep the largest: replace the smallest kept once the array is full.
        if live < MAX_LISTED_CACHES {
            caches[live] = bytes;
        } else if let Some(min) = caches.iter_mut().min() {
            *min = (*min).max(bytes);
        }
        live += 1;
    });
    let listed = &mut caches[..live.min(MAX_LISTED_CACHES)];
    listed.sort_unstable_by(|a, b| b.cmp(a));
    write!(w, "],\"thread_caches\":{{\"live\":{live},\"bytes\":[")?;
    for (i, b) in listed.iter().enumerate() {
        let sep = if i > 0 { "," } else { "" };
        write!(w, "{sep}{b}")?;
    }
    w.write_str("]}}")
}
