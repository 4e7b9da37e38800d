//! Writing a profile: the stacks' counts copied under the profiler's lock,
//! then, with no lock of the allocator's held, their frames symbolised
//! ([`super::symbols`]) and written as pprof's `profile.proto`, gzipped,
//! or as collapsed stacks for flame graphs.
//!
//! The pprof profile has six sample types: `alloc_objects`/`alloc_space`
//! (everything allocated since the start), `inuse_objects`/`inuse_space`
//! (live now, the default) and `peak_objects`/`peak_space` (live when the
//! estimate of live bytes was highest). Frames of the allocator itself
//! (the innermost ones, down to the program's call of `malloc` or of the
//! global allocator) are left out.
//!
//! # Invariants
//! - All memory is the OS's ([`OsVec`], [`Buf`]); a dump allocates nothing
//!   through the global allocator, so it may run at exit, on the profiler's
//!   signal thread, or from a program's own thread alike.

use core::ffi::CStr;
use std::io;
use std::path::Path;

use super::encode::{gzip_stored, write_file, Buf};
use super::store::{Counts, OsVec};
use super::symbols::Symbols;

/// Which profile a collapsed-stacks file shows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// Bytes live now.
    InUse,
    /// Bytes allocated since the start.
    Alloc,
    /// Bytes live at the peak.
    Peak,
}

/// A stack's counts as copied under the lock.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct StackCopy {
    pub(crate) at: u32,
    pub(crate) depth: u32,
    pub(crate) counts: Counts,
}

/// Writes the heap profile (pprof's format, gzipped) to `path`.
pub fn dump(path: impl AsRef<Path>) -> io::Result<()> {
    with_cpath(path.as_ref(), dump_cstr)
}

/// Writes one profile as collapsed stacks to `path`: a line per stack,
/// `outermost;...;innermost bytes`, for flame-graph tools.
pub fn dump_collapsed(path: impl AsRef<Path>, kind: Kind) -> io::Result<()> {
    with_cpath(path.as_ref(), |p| dump_collapsed_cstr(p, kind))
}

fn with_cpath(path: &Path, f: impl FnOnce(&CStr) -> io::Result<()>) -> io::Result<()> {
    use std::os::unix::ffi::OsStrExt;
    let b = path.as_os_str().as_bytes();
    let mut buf = [0u8; 4096];
    if b.len() >= buf.len() || b.contains(&0) {
        return Err(io::Error::from(io::ErrorKind::InvalidInput));
    }
    buf[..b.len()].copy_from_slice(b);
    f(
        CStr::from_bytes_until_nul(&buf)
            .map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?,
    )
}

fn out_of_memory() -> io::Error {
    io::Error::from_raw_os_error(libc::ENOMEM)
}

/// A distinct frame address and what it resolved to.
#[derive(Clone, Copy)]
struct Loc {
    pc: usize,
    object: u32,
    /// Index into `funcs` plus one, or 0.
    func: u32,
    allocator: bool,
}

#[derive(Clone, Copy)]
struct Func {
    name: (u32, u32),
    object: u32,
}

/// Keys (non-zero) to indices, open addressing.
struct IdMap {
    slots: OsVec<(usize, u32)>,
    len: usize,
}

impl IdMap {
    fn new() -> Self {
        IdMap {
            slots: OsVec::new(),
            len: 0,
        }
    }

    /// The value of `key`, or `make()`'s, stored.
    fn get_or(&mut self, key: usize, make: impl FnOnce() -> Option<u32>) -> Option<u32> {
        if (self.len + 1) * 2 > self.slots.len() {
            let cap = (self.slots.len() * 2).max(1024);
            let mut new = OsVec::new();
            if !new.reserve(cap) {
                return None;
            }
            while new.len() < cap {
                new.push((0, 0));
            }
            let old = core::mem::replace(&mut self.slots, new);
            for &(k, v) in old.as_slice() {
                if k != 0 {
                    self.put(k, v);
                }
            }
        }
        let t = self.slots.as_slice();
        let mask = t.len() - 1;
        let mut i = key.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 7 & mask;
        while t[i].0 != 0 {
            if t[i].0 == key {
                return Some(t[i].1);
            }
            i = (i + 1) & mask;
        }
        let v = make()?;
        self.slots.as_mut_slice()[i] = (key, v);
        self.len += 1;
        Some(v)
    }

    fn put(&mut self, key: usize, v: u32) {
        let t = self.slots.as_mut_slice();
        let mask = t.len() - 1;
        let mut i = key.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 7 & mask;
        while t[i].0 != 0 {
            i = (i + 1) & mask;
        }
        t[i] = (key, v);
    }
}

/// Names that belong to the allocator: frames to leave out at a stack's
/// inner end.
fn is_allocator_name(n: &[u8]) -> bool {
    const PREFIXES: [&[u8]; 8] = [
        b"strata",
        b"<strata",
        b"__rust_alloc",
        b"__rust_realloc",
        b"__rdl_",
        b"__rg_",
        b"_ZN6strata",
        b"_ZN18strata_threadcache",
    ];
    PREFIXES.iter().any(|p| n.starts_with(p))
}

/// The profile's stacks, resolved.
struct Prepared {
    stacks: OsVec<StackCopy>,
    frames: OsVec<usize>,
    /// Per frame of `frames`: its index in `locs`.
    frame_loc: OsVec<u32>,
    locs: OsVec<Loc>,
    funcs: OsVec<Func>,
    syms: Symbols,
}

impl Prepared {
    fn new() -> io::Result<Prepared> {
        let mut stacks = OsVec::new();
        let mut frames = OsVec::new();
        if !super::snapshot(&mut stacks, &mut frames) {
            return Err(out_of_memory());
        }
        let mut p = Prepared {
            stacks,
            frames,
            frame_loc: OsVec::new(),
            locs: OsVec::new(),
            funcs: OsVec::new(),
            syms: Symbols::new(),
        };
        let mut by_pc = IdMap::new();
        let mut by_func = IdMap::new();
        if !p.frame_loc.reserve(p.frames.len()) {
            return Err(out_of_memory());
        }
        for k in 0..p.frames.len() {
            let pc = p.frames.as_slice()[k];
            let Prepared {
                locs, funcs, syms, ..
            } = &mut p;
            let loc = by_pc.get_or(pc, || {
                // A return address: the call is the byte before it.
                let r = syms.resolve(pc.wrapping_sub(1));
                let object = r.object.map_or(u32::MAX, |o| o as u32);
                let mut allocator = r.object.is_some_and(|o| syms.is_own_library(o));
                let mut func = 0;
                if let Some((start, name)) = r.function {
                    allocator |= is_allocator_name(syms.text(name));
                    func = by_func.get_or(start, || {
                        funcs
                            .push(Func { name, object })
                            .then_some(funcs.len() as u32)
                    })?;
                }
                let loc = Loc {
                    pc: pc.wrapping_sub(1),
                    object,
                    func,
                    allocator,
                };
                locs.push(loc).then_some(locs.len() as u32 - 1)
            });
            let Some(loc) = loc else {
                return Err(out_of_memory());
            };
            p.frame_loc.push(loc);
        }
        Ok(p)
    }

    /// The locations of stack `s`, innermost first, without the
    /// allocator's frames at the inner end.
    fn program_frames(&self, s: &StackCopy) -> &[u32] {
        let all = &self.frame_loc.as_slice()[s.at as usize..(s.at + s.depth) as usize];
        let skip = all
            .iter()
            .position(|&l| !self.locs.as_slice()[l as usize].allocator)
            .unwrap_or(all.len());
        &all[skip..]
    }

    /// The name of location `l` for collapsed stacks.
    fn write_name(&self, l: u32, out: &mut Buf) {
        let loc = self.locs.as_slice()[l as usize];
        if loc.func != 0 {
            let f = self.funcs.as_slice()[loc.func as usize - 1];
            for &b in self.syms.text(f.name) {
                out.bytes(&[if b == b';' { b':' } else { b }]);
            }
            return;
        }
        // No symbol: object+offset, as addr2line wants it.
        out.bytes(b"[");
        if loc.object != u32::MAX {
            let path = self.syms.object_path(loc.object as usize);
            let base = path.rsplit(|&b| b == b'/').next().unwrap_or(path);
            out.bytes(base);
            let o = self.syms.objects.as_slice()[loc.object as usize];
            out.bytes(b"+");
            out.bytes(strata_os::Hex::new(loc.pc - o.start + o.offset).as_bytes());
        } else {
            out.bytes(strata_os::Hex::new(loc.pc).as_bytes());
        }
        out.bytes(b"]");
    }
}

fn value(c: &Counts, kind: Kind) -> f64 {
    match kind {
        Kind::InUse => c.live_bytes,
        Kind::Alloc => c.alloc_bytes,
        Kind::Peak => c.peak_bytes,
    }
}

/// [`dump_collapsed`] for a C path.
pub fn dump_collapsed_cstr(path: &CStr, kind: Kind) -> io::Result<()> {
    let p = Prepared::new()?;
    let mut out = Buf::new();
    for (id, s) in p.stacks.as_slice().iter().enumerate() {
        let v = value(&s.counts, kind).round();
        if v < 1.0 {
            continue;
        }
        let frames = p.program_frames(s);
        if id == 0 {
            out.bytes(b"(other stacks)");
        } else if frames.is_empty() {
            out.bytes(b"(no stack)");
        }
        for (i, &l) in frames.iter().rev().enumerate() {
            if i > 0 {
                out.bytes(b";");
            }
            p.write_name(l, &mut out);
        }
        out.bytes(b" ");
        out.bytes(strata_os::Dec::new(v as u64).as_bytes());
        out.bytes(b"\n");
    }
    if !out.ok() {
        return Err(out_of_memory());
    }
    write_file(path, out.as_bytes())
}

/// The string table being built: each string's index is its position.
struct Strings {
    buf: Buf,
    n: u64,
}

impl Strings {
    fn add(&mut self, s: &[u8]) -> u64 {
        self.buf.field(6, s);
        self.n += 1;
        self.n - 1
    }
}

/// [`dump`] for a C path.
pub fn dump_cstr(path: &CStr) -> io::Result<()> {
    let p = Prepared::new()?;
    let mut prof = Buf::new();
    let mut msg = Buf::new();
    let mut inner = Buf::new();
    let mut strings = Strings {
        buf: Buf::new(),
        n: 0,
    };
    strings.add(b"");
    let space = strings.add(b"space");
    let bytes = strings.add(b"bytes");
    let count = strings.add(b"count");
    let mut inuse_space = 0;
    for name in [
        &b"alloc_objects"[..],
        b"alloc_space",
        b"inuse_objects",
        b"inuse_space",
        b"peak_objects",
        b"peak_space",
    ] {
        let unit = if name.ends_with(b"objects") {
            count
        } else {
            bytes
        };
        let t = strings.add(name);
        if name == b"inuse_space" {
            inuse_space = t;
        }
        msg.clear();
        msg.uint(1, t);
        msg.uint(2, unit);
        prof.message(1, &msg);
    }
    // Samples.
    let other = p.locs.len() as u64 + 1; // a location for "(other stacks)"
    let no_stack = other + 1;
    for (id, s) in p.stacks.as_slice().iter().enumerate() {
        let c = &s.counts;
        let vals = [
            c.alloc_objects,
            c.alloc_bytes,
            c.live_objects,
            c.live_bytes,
            c.peak_objects,
            c.peak_bytes,
        ];
        if vals.iter().all(|v| v.round() < 1.0) {
            continue;
        }
        msg.clear();
        inner.clear();
        let frames = p.program_frames(s);
        if id == 0 {
            inner.varint(other);
        } else if frames.is_empty() {
            inner.varint(no_stack);
        }
        for &l in frames {
            inner.varint(l as u64 + 1);
        }
        msg.message(1, &inner);
        inner.clear();
        for v in vals {
            inner.varint(v.round().max(0.0) as u64);
        }
        msg.message(2, &inner);
        prof.message(2, &msg);
    }
    // Mappings.
    for i in 0..p.syms.objects.len() {
        let o = p.syms.objects.as_slice()[i];
        let file = strings.add(p.syms.object_path(i));
        let mut hex = [0u8; 40];
        let id = strings.add(p.syms.build_id_hex(i, &mut hex));
        msg.clear();
        msg.uint(1, i as u64 + 1);
        msg.uint(2, o.start as u64);
        msg.uint(3, o.limit as u64);
        msg.uint(4, o.offset as u64);
        msg.uint(5, file);
        msg.uint(6, id);
        msg.uint(7, 1);
        prof.message(3, &msg);
    }
    // Locations, then the two made-up ones.
    for (i, l) in p.locs.as_slice().iter().enumerate() {
        msg.clear();
        msg.uint(1, i as u64 + 1);
        if l.object != u32::MAX {
            msg.uint(2, l.object as u64 + 1);
        }
        msg.uint(3, l.pc as u64);
        if l.func != 0 {
            inner.clear();
            inner.uint(1, l.func as u64);
            msg.message(4, &inner);
        }
        prof.message(4, &msg);
    }
    let nfuncs = p.funcs.len() as u64;
    for (k, (loc, name)) in [(other, &b"(other stacks)"[..]), (no_stack, b"(no stack)")]
        .into_iter()
        .enumerate()
    {
        let f = nfuncs + 1 + k as u64;
        let s = strings.add(name);
        msg.clear();
        msg.uint(1, f);
        msg.uint(2, s);
        msg.uint(3, s);
        prof.message(5, &msg);
        msg.clear();
        inner.clear();
        inner.uint(1, f);
        msg.uint(1, loc);
        msg.message(4, &inner);
        prof.message(4, &msg);
    }
    // Functions.
    for (i, f) in p.funcs.as_slice().iter().enumerate() {
        let name = strings.add(p.syms.text(f.name));
        let file = if f.object != u32::MAX {
            strings.add(p.syms.object_path(f.object as usize))
        } else {
            0
        };
        msg.clear();
        msg.uint(1, i as u64 + 1);
        msg.uint(2, name);
        msg.uint(3, name);
        msg.uint(4, file);
        prof.message(5, &msg);
    }
    // Time, period, default type, a comment.
    let mut ts: libc::timespec = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes into the struct we pass.
    unsafe { libc::clock_gettime(libc::CLOCK_REALTIME, &mut ts) };
    prof.uint(9, ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64);
    msg.clear();
    msg.uint(1, space);
    msg.uint(2, bytes);
    prof.message(11, &msg);
    prof.uint(12, super::interval() as u64);
    let comment = strings
        .add(b"strata heap profile: byte-weighted Poisson sampling, estimates weighted by 1/p");
    prof.uint(13, comment);
    prof.uint(14, inuse_space);
    prof.bytes(strings.buf.as_bytes());
    if !prof.ok() || !strings.buf.ok() || !msg.ok() || !inner.ok() {
        return Err(out_of_memory());
    }
    let mut gz = Buf::new();
    gzip_stored(prof.as_bytes(), &mut gz);
    if !gz.ok() {
        return Err(out_of_memory());
    }
    write_file(path, gz.as_bytes())
}
