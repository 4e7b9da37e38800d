//! A stack walk that reads the DWARF call-frame tables itself: the fast
//! walker behind [`crate::stack::capture`].
//!
//! # How a frame is stepped
//! A frame is three registers: the instruction pointer, the stack pointer
//! and `rbp`. The rule for a frame comes from the `.eh_frame` entry (FDE)
//! covering its instruction, found by binary search in the
//! `.eh_frame_hdr` table of the object that contains it
//! (`dl_iterate_phdr`, under the loader's lock, as libgcc does). Its CIE's
//! and FDE's instructions are run up to the instruction to get the rule of
//! the common x86-64 shape: the caller's stack pointer (the CFA) is
//! `rsp` or `rbp` plus an offset, the return address and the saved `rbp`
//! lie at fixed offsets below it. Anything else (a DWARF expression, a
//! signal frame, a register saved in another register, a 64-bit or
//! unusual table) makes the walk give up, and the caller falls back to
//! libgcc's walker for the whole stack.
//!
//! # Cache
//! Decoded rules are kept in a fixed table of atomic words, direct-mapped
//! by instruction address, so a stack seen before costs a few loads per
//! frame. An entry packs the address's upper bits with the rule in one
//! word, so a reader sees a whole entry or none. When an object is
//! unloaded (`dl_iterate_phdr`'s count of removals changes, checked once
//! per walk) the table is cleared: a later object may be loaded at the
//! same addresses.
//!
//! # Invariants
//! - Nothing here allocates, takes a lock other than the loader's (the
//!   same `dl_iterate_phdr` libgcc's walker calls), or panics.
//! - Table reads stay inside the loaded segment that holds the object's
//!   `.eh_frame_hdr` (and must hold its `.eh_frame`), under the loader's
//!   lock. Stack reads stay between the walk's first stack pointer and
//!   the top of the thread's stack, and each frame's CFA is above the
//!   last: a wrong rule gives a wrong trace, never a read elsewhere.

use core::ffi::{c_int, c_void};
use core::sync::atomic::{AtomicU64, Ordering};

/// A frame's registers.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Regs {
    /// The instruction pointer.
    pub ip: usize,
    /// The stack pointer.
    pub sp: usize,
    /// `rbp`.
    pub bp: usize,
}

/// How to find a frame's caller.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Rule {
    /// The CFA is `rbp` (true) or `rsp` (false) plus `cfa_off`.
    cfa_bp: bool,
    cfa_off: i64,
    /// Where the return address is, from the CFA; `None`: undefined, the
    /// outermost frame.
    ra: Option<i64>,
    /// Where the caller's `rbp` is saved, from the CFA; `None`: unchanged.
    bp: Option<i64>,
}

/// What a lookup found for an address.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Lookup {
    Found(Rule),
    /// No object or no FDE covers it: the walk ends there, as libgcc's.
    NoFde,
    /// Something this walker does not handle.
    Unsupported,
}

/// DWARF register numbers of x86-64.
const RBP: u64 = 6;
const RSP: u64 = 7;
const RA: u64 = 16;

/// Largest distance from a stack pointer to the top of its thread's
/// stack this walker believes.
const MAX_STACK: usize = 1 << 30;

/// Walks from `r` (a frame whose instruction pointer is exact, not a
/// return address), writing instruction pointers into `out` after
/// leaving out `skip`; returns how many were written, or `None` if the
/// walk met something it does not handle.
pub(crate) fn walk(mut r: Regs, out: &mut [usize], mut skip: usize) -> Option<usize> {
    let top = stack_top(r.sp)?;
    forget_unloaded();
    let mut len = 0;
    let mut exact = true;
    loop {
        if r.ip == 0 {
            return Some(len);
        }
        if skip > 0 {
            skip -= 1;
        } else {
            let Some(slot) = out.get_mut(len) else {
                return Some(len);
            };
            *slot = r.ip;
            len += 1;
        }
        // A return address may be one past its function's end: look up
        // the call instruction before it.
        let pc = if exact { r.ip } else { r.ip - 1 };
        exact = false;
        let rule = match rule_for(pc) {
            Lookup::Found(rule) => rule,
            Lookup::NoFde => return Some(len),
            Lookup::Unsupported => return None,
        };
        let Some(ra_off) = rule.ra else {
            return Some(len);
        };
        let base = if rule.cfa_bp { r.bp } else { r.sp };
        let cfa = base.checked_add_signed(rule.cfa_off as isize)?;
        if cfa <= r.sp || cfa > top || cfa % 8 != 0 {
            return None;
        }
        let ra = read_stack(cfa, ra_off, r.sp, top)?;
        let bp = match rule.bp {
            None => r.bp,
            Some(off) => read_stack(cfa, off, r.sp, top)?,
        };
        r = Regs {
            ip: ra,
            sp: cfa,
            bp,
        };
    }
}

/// The word at `cfa + off` if it lies within `[lo, top)`.
fn read_stack(cfa: usize, off: i64, lo: usize, top: usize) -> Option<usize> {
    let at = cfa.checked_add_signed(off as isize)?;
    if at < lo || at.checked_add(8)? > top || at % 8 != 0 {
        return None;
    }
    // SAFETY: `[lo, top)` is the calling thread's stack from a live stack
    // pointer up to its top (stack_top), all mapped; the word is aligned.
    Some(unsafe { core::ptr::read_volatile(at as *const usize) })
}

extern "C" {
    /// The main thread's stack pointer at the program's entry (glibc's
    /// dynamic loader): `argc`, with `argv` above it.
    static __libc_stack_end: *const c_void;
}

/// The top of the calling thread's stack, if `sp` is on it: glibc puts a
/// thread's descriptor (`pthread_self`) at the top of the stack it runs
/// on; the main thread's ends at `__libc_stack_end` (plus `argc` and
/// `argv[0]`, mapped above it). `None` on any other stack (a signal's
/// alternate stack, a coroutine's).
fn stack_top(sp: usize) -> Option<usize> {
    // SAFETY: pthread_self has no preconditions.
    let me = unsafe { libc::pthread_self() } as usize;
    if me > sp && me - sp < MAX_STACK {
        return Some(me);
    }
    // SAFETY: the loader sets it before any user code runs; read-only.
    let end = unsafe { __libc_stack_end } as usize;
    if end > sp && end - sp < MAX_STACK {
        return Some(end + 16);
    }
    None
}

// ---------------------------------------------------------------- cache

/// Entries of the rule cache (a power of two).
const CACHE: usize = 4096;

/// Decoded rules: `tag << 29 | rule`, 0 for an empty entry (see
/// [`pack`]).
static RULES: [AtomicU64; CACHE] = [const { AtomicU64::new(0) }; CACHE];

/// `dl_iterate_phdr`'s count of unloaded objects when [`RULES`] was last
/// checked (`u64::MAX`: never).
static SEEN_SUBS: AtomicU64 = AtomicU64::new(u64::MAX);

fn slot(pc: usize) -> usize {
    (pc ^ (pc >> 12)) & (CACHE - 1)
}

/// Packs a rule for `pc`: bit 0 set, bit 1 the outermost frame, bit 2
/// `cfa_bp`, bits 3..18 the CFA offset in words, bits 18..25 where `rbp`
/// is saved (words below the CFA, 0: unchanged), bits 29.. `pc >> 12`.
/// `None` when it does not fit (then it is decoded every time).
fn pack(pc: usize, r: &Rule) -> Option<u64> {
    if pc >> 47 != 0 || r.cfa_off <= 0 || r.cfa_off % 8 != 0 || r.cfa_off >= 8 << 15 {
        return None;
    }
    let end = match r.ra {
        None => 1,
        Some(-8) => 0,
        Some(_) => return None,
    };
    let bp = match r.bp {
        None => 0,
        Some(off) if off < 0 && off % 8 == 0 && off > -(8 << 7) => (-off / 8) as u64,
        Some(_) => return None,
    };
    Some(
        1 | end << 1
            | (r.cfa_bp as u64) << 2
            | ((r.cfa_off / 8) as u64) << 3
            | bp << 18
            | ((pc >> 12) as u64) << 29,
    )
}

fn unpack(pc: usize, w: u64) -> Option<Rule> {
    if w & 1 == 0 || w >> 29 != (pc >> 12) as u64 {
        return None;
    }
    let bp = (w >> 18) & 0x7f;
    Some(Rule {
        cfa_bp: w & 4 != 0,
        cfa_off: (((w >> 3) & 0x7fff) * 8) as i64,
        ra: if w & 2 != 0 { None } else { Some(-8) },
        bp: if bp == 0 {
            None
        } else {
            Some(-(bp as i64) * 8)
        },
    })
}

fn rule_for(pc: usize) -> Lookup {
    let s = &RULES[slot(pc)];
    if let Some(rule) = unpack(pc, s.load(Ordering::Relaxed)) {
        return Lookup::Found(rule);
    }
    let found = decode(pc);
    if let Lookup::Found(rule) = found {
        if let Some(w) = pack(pc, &rule) {
            s.store(w, Ordering::Relaxed);
        }
    }
    found
}

/// Empties the cache if an object was unloaded since the last walk.
fn forget_unloaded() {
    let mut subs = u64::MAX;
    // SAFETY: the callback matches dl_iterate_phdr's signature and writes
    // only the u64 passed with it.
    unsafe { libc::dl_iterate_phdr(Some(first_subs), &mut subs as *mut u64 as *mut c_void) };
    if subs == u64::MAX {
        return;
    }
    if SEEN_SUBS.load(Ordering::Relaxed) != subs {
        for e in &RULES {
            e.store(0, Ordering::Relaxed);
        }
        SEEN_SUBS.store(subs, Ordering::Relaxed);
    }
}

unsafe extern "C" fn first_subs(
    info: *mut libc::dl_phdr_info,
    size: usize,
    data: *mut c_void,
) -> c_int {
    if size >= core::mem::size_of::<libc::dl_phdr_info>() {
        // SAFETY: dl_iterate_phdr passes a valid info of `size` bytes, and
        // `data` is the u64 forget_unloaded passed.
        unsafe { *(data as *mut u64) = (*info).dlpi_subs };
    }
    1
}

// ---------------------------------------------------------------- tables

/// A search under the loader's lock.
struct Search {
    pc: usize,
    found: Lookup,
}

fn decode(pc: usize) -> Lookup {
    let mut s = Search {
        pc,
        found: Lookup::NoFde,
    };
    // SAFETY: the callback matches dl_iterate_phdr's signature and uses
    // only the Search passed with it.
    unsafe { libc::dl_iterate_phdr(Some(search_object), &mut s as *mut Search as *mut c_void) };
    s.found
}

unsafe extern "C" fn search_object(
    info: *mut libc::dl_phdr_info,
    _size: usize,
    data: *mut c_void,
) -> c_int {
    // SAFETY: `data` is decode's Search; `info` is valid for this call,
    // its program headers for as long as the object stays loaded, which
    // the loader's lock (held during the callback) ensures.
    let (s, info) = unsafe { (&mut *(data as *mut Search), &*info) };
    let phdrs = if info.dlpi_phdr.is_null() {
        &[][..]
    } else {
        // SAFETY: as above; dlpi_phnum headers.
        unsafe { core::slice::from_raw_parts(info.dlpi_phdr, info.dlpi_phnum as usize) }
    };
    let base = info.dlpi_addr as usize;
    let seg = |p: &libc::Elf64_Phdr| {
        let lo = base.wrapping_add(p.p_vaddr as usize);
        (lo, lo.wrapping_add(p.p_memsz as usize))
    };
    let inside = phdrs
        .iter()
        .any(|p| p.p_type == libc::PT_LOAD && (seg(p).0..seg(p).1).contains(&s.pc));
    if !inside {
        return 0;
    }
    let Some(hdr) = phdrs.iter().find(|p| p.p_type == libc::PT_GNU_EH_FRAME) else {
        return 1;
    };
    let hdr = seg(hdr).0;
    // The readable loaded segment holding the header bounds every read.
    let Some(data_seg) = phdrs.iter().find(|p| {
        p.p_type == libc::PT_LOAD
            && p.p_flags & libc::PF_R != 0
            && (seg(p).0..seg(p).1).contains(&hdr)
    }) else {
        s.found = Lookup::Unsupported;
        return 1;
    };
    let (lo, hi) = seg(data_seg);
    // A segment's memory size may pass its file size (zero-filled): both
    // are mapped.
    s.found = search_hdr(s.pc, hdr, lo, hi).unwrap_or(Lookup::Unsupported);
    1
}

/// Reads inside `[p, end)` only.
struct Cursor {
    p: usize,
    end: usize,
}

impl Cursor {
    fn bytes<const N: usize>(&mut self) -> Option<[u8; N]> {
        if self.p.checked_add(N)? > self.end {
            return None;
        }
        // SAFETY: `[p, p + N)` is inside `[p, end)`, which the cursor's
        // maker checked lies in a mapped, readable segment.
        let v = unsafe { core::ptr::read_unaligned(self.p as *const [u8; N]) };
        self.p += N;
        Some(v)
    }
    fn u8(&mut self) -> Option<u8> {
        Some(self.bytes::<1>()?[0])
    }
    fn u16(&mut self) -> Option<u16> {
        Some(u16::from_le_bytes(self.bytes()?))
    }
    fn u32(&mut self) -> Option<u32> {
        Some(u32::from_le_bytes(self.bytes()?))
    }
    fn u64(&mut self) -> Option<u64> {
        Some(u64::from_le_bytes(self.bytes()?))
    }
    /// A LEB128 number's low 64 bits, the bits it had and its last byte.
    fn leb(&mut self) -> Option<(u64, u32, u8)> {
        let mut v = 0u64;
        let mut shift = 0;
        loop {
            let b = self.u8()?;
            if shift < 64 {
                v |= ((b & 0x7f) as u64) << shift;
            }
            shift += 7;
            if b & 0x80 == 0 {
                return Some((v, shift, b));
            }
        }
    }
    fn uleb(&mut self) -> Option<u64> {
        self.leb().map(|(v, _, _)| v)
    }
    fn sleb(&mut self) -> Option<i64> {
        let (v, shift, last) = self.leb()?;
        let mut v = v as i64;
        if shift < 64 && last & 0x40 != 0 {
            v |= -1i64 << shift;
        }
        Some(v)
    }
    fn skip(&mut self, n: u64) -> Option<()> {
        let p = self.p.checked_add(usize::try_from(n).ok()?)?;
        if p > self.end {
            return None;
        }
        self.p = p;
        Some(())
    }
    /// A pointer in `DW_EH_PE` encoding `enc`: pc-relative or relative to
    /// `datarel`; `None` for an indirect or other application.
    fn encoded(&mut self, enc: u8, datarel: usize) -> Option<usize> {
        let at = self.p;
        let v = match enc & 0x0f {
            0x00 | 0x04 | 0x0c => self.u64()? as usize,
            0x01 => self.uleb()? as usize,
            0x02 => self.u16()? as usize,
            0x03 => self.u32()? as usize,
            0x09 => self.sleb()? as usize,
            0x0a => self.u16()? as i16 as isize as usize,
            0x0b => self.u32()? as i32 as isize as usize,
            _ => return None,
        };
        let base = match enc & 0xf0 {
            0x00 => 0,
            0x10 => at,
            0x30 => datarel,
            _ => return None,
        };
        Some(base.wrapping_add(v))
    }
}

/// `DW_EH_PE_datarel | DW_EH_PE_sdata4`: the table encoding every linker
/// writes.
const TABLE_ENC: u8 = 0x3b;

/// Finds `pc`'s FDE through the `.eh_frame_hdr` at `hdr`, all of it and
/// the `.eh_frame` in `[lo, hi)`, and decodes its rule.
fn search_hdr(pc: usize, hdr: usize, lo: usize, hi: usize) -> Option<Lookup> {
    let mut c = Cursor { p: hdr, end: hi };
    let [version, ptr_enc, count_enc, table_enc] = c.bytes::<4>()?;
    if version != 1 || table_enc != TABLE_ENC {
        return None;
    }
    c.encoded(ptr_enc, hdr)?;
    let count = c.encoded(count_enc, hdr)?;
    let table = c.p;
    if table.checked_add(count.checked_mul(8)?)? > hi {
        return None;
    }
    let entry = |i: usize| {
        let mut e = Cursor {
            p: table + i * 8,
            end: hi,
        };
        let start = hdr.wrapping_add(e.u32().unwrap_or(0) as i32 as isize as usize);
        let fde = hdr.wrapping_add(e.u32().unwrap_or(0) as i32 as isize as usize);
        (start, fde)
    };
    // The last entry starting at or before pc.
    let (mut a, mut b) = (0, count);
    while a < b {
        let m = a + (b - a) / 2;
        if entry(m).0 <= pc {
            a = m + 1;
        } else {
            b = m;
        }
    }
    if a == 0 {
        return Some(Lookup::NoFde);
    }
    let fde = entry(a - 1).1;
    if fde < lo || fde >= hi {
        return None;
    }
    decode_fde(pc, fde, lo, hi)
}

/// What a CIE says.
struct Cie {
    code_align: u64,
    data_align: i64,
    fde_enc: u8,
    augmented: bool,
    program: Cursor,
}

fn parse_cie(at: usize, lo: usize, hi: usize) -> Option<Cie> {
    if at < lo {
        return None;
    }
    let mut c = Cursor { p: at, end: hi };
    let len = c.u32()?;
    if len == 0 || len == u32::MAX {
        return None;
    }
    c.end = c.p.checked_add(len as usize)?;
    if c.end > hi || c.u32()? != 0 {
        return None;
    }
    let version = c.u8()?;
    if version != 1 && version != 3 {
        return None;
    }
    let mut aug = [0u8; 8];
    let mut n = 0;
    loop {
        let b = c.u8()?;
        if b == 0 {
            break;
        }
        *aug.get_mut(n)? = b;
        n += 1;
    }
    let aug = &aug[..n];
    if !aug.is_empty() && aug[0] != b'z' {
        return None;
    }
    let code_align = c.uleb()?;
    let data_align = c.sleb()?;
    let ra = if version == 1 {
        c.u8()? as u64
    } else {
        c.uleb()?
    };
    if ra != RA {
        return None;
    }
    let mut fde_enc = 0;
    if !aug.is_empty() {
        let data_len = c.uleb()?;
        let data_end = c.p.checked_add(usize::try_from(data_len).ok()?)?;
        for &a in &aug[1..] {
            match a {
                b'R' => fde_enc = c.u8()?,
                b'L' => {
                    c.u8()?;
                }
                b'P' => {
                    let enc = c.u8()?;
                    // Only its size matters: read without following.
                    c.encoded(enc & 0x7f, 0)?;
                }
                // 'S' (a signal frame) and anything newer.
                _ => return None,
            }
        }
        if data_end > c.end {
            return None;
        }
        c.p = data_end;
    }
    Some(Cie {
        code_align,
        data_align,
        fde_enc,
        augmented: !aug.is_empty(),
        program: c,
    })
}

fn decode_fde(pc: usize, fde: usize, lo: usize, hi: usize) -> Option<Lookup> {
    let mut c = Cursor { p: fde, end: hi };
    let len = c.u32()?;
    if len == 0 || len == u32::MAX {
        return None;
    }
    c.end = c.p.checked_add(len as usize)?;
    if c.end > hi {
        return None;
    }
    let id_at = c.p;
    let cie_off = c.u32()? as usize;
    if cie_off == 0 {
        return None;
    }
    let cie = parse_cie(id_at.checked_sub(cie_off)?, lo, hi)?;
    let start = c.encoded(cie.fde_enc, 0)?;
    let range = c.encoded(cie.fde_enc & 0x0f, 0)?;
    if pc < start || pc - start >= range {
        return Some(Lookup::NoFde);
    }
    if cie.augmented {
        let n = c.uleb()?;
        c.skip(n)?;
    }
    let mut row = Row::START;
    let mut prog = Program {
        code_align: cie.code_align,
        data_align: cie.data_align,
        initial: Row::START,
    };
    prog.run(cie.program, &mut row, None)?;
    prog.initial = row;
    prog.run(c, &mut row, Some((start, pc)))?;
    Some(row.rule())
}

// ---------------------------------------------------------------- CFA programs

/// Where a register of interest is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Saved {
    /// Unchanged from the callee.
    Same,
    /// Undefined (the return address of the outermost frame).
    Undefined,
    /// At the CFA plus this.
    At(i64),
    /// Anywhere else: not handled.
    Other,
}

/// A row of the CFA table, for the registers this walker follows.
#[derive(Clone, Copy, Debug)]
struct Row {
    /// `u64::MAX`: an expression.
    cfa_reg: u64,
    cfa_off: i64,
    ra: Saved,
    bp: Saved,
}

impl Row {
    const START: Row = Row {
        cfa_reg: RSP,
        cfa_off: 8,
        ra: Saved::Other,
        bp: Saved::Same,
    };

    fn set(&mut self, reg: u64, s: Saved) {
        match reg {
            RA => self.ra = s,
            RBP => self.bp = s,
            _ => {}
        }
    }

    fn rule(&self) -> Lookup {
        let cfa_bp = match self.cfa_reg {
            RSP => false,
            RBP => true,
            _ => return Lookup::Unsupported,
        };
        let ra = match self.ra {
            Saved::At(off) => Some(off),
            Saved::Undefined => None,
            _ => return Lookup::Unsupported,
        };
        let bp = match self.bp {
            Saved::Same => None,
            Saved::At(off) => Some(off),
            _ => return Lookup::Unsupported,
        };
        Lookup::Found(Rule {
            cfa_bp,
            cfa_off: self.cfa_off,
            ra,
            bp,
        })
    }
}

/// Rows kept by `DW_CFA_remember_state`.
const REMEMBERED: usize = 8;

struct Program {
    code_align: u64,
    data_align: i64,
    /// The row after the CIE's instructions (`DW_CFA_restore`).
    initial: Row,
}

impl Program {
    /// Runs the instructions in `c` on `row`; with `until = (start, pc)`,
    /// only those at locations up to `pc`, counting from `start`.
    fn run(&self, mut c: Cursor, row: &mut Row, until: Option<(usize, usize)>) -> Option<()> {
        let mut loc = until.map_or(0, |u| u.0);
        let mut stack = [Row::START; REMEMBERED];
        let mut depth = 0;
        while c.p < c.end {
            let op = c.u8()?;
            let advance = match op >> 6 {
                1 => Some((op & 0x3f) as u64),
                2 => {
                    let off = (c.uleb()? as i64).checked_mul(self.data_align)?;
                    row.set((op & 0x3f) as u64, Saved::At(off));
                    None
                }
                3 => {
                    self.restore(row, (op & 0x3f) as u64);
                    None
                }
                _ => match op {
                    0x00 => None,
                    0x02 => Some(c.u8()? as u64),
                    0x03 => Some(c.u16()? as u64),
                    0x04 => Some(c.u32()? as u64),
                    0x05 => {
                        let reg = c.uleb()?;
                        let off = (c.uleb()? as i64).checked_mul(self.data_align)?;
                        row.set(reg, Saved::At(off));
                        None
                    }
                    0x06 => {
                        let reg = c.uleb()?;
                        self.restore(row, reg);
                        None
                    }
                    0x07 => {
                        row.set(c.uleb()?, Saved::Undefined);
                        None
                    }
                    0x08 => {
                        row.set(c.uleb()?, Saved::Same);
                        None
                    }
                    0x09 => {
                        let reg = c.uleb()?;
                        c.uleb()?;
                        row.set(reg, Saved::Other);
                        None
                    }
                    0x0a => {
                        *stack.get_mut(depth)? = *row;
                        depth += 1;
                        None
                    }
                    0x0b => {
                        depth = depth.checked_sub(1)?;
                        // The CFA rule comes back too, as libgcc reads
                        // it (compilers rely on that in epilogues).
                        *row = stack[depth];
                        None
                    }
                    0x0c => {
                        row.cfa_reg = c.uleb()?;
                        row.cfa_off = c.uleb()? as i64;
                        None
                    }
                    0x0d => {
                        row.cfa_reg = c.uleb()?;
                        None
                    }
                    0x0e => {
                        row.cfa_off = c.uleb()? as i64;
                        None
                    }
                    0x0f => {
                        let n = c.uleb()?;
                        c.skip(n)?;
                        row.cfa_reg = u64::MAX;
                        None
                    }
                    0x10 | 0x16 => {
                        let reg = c.uleb()?;
                        let n = c.uleb()?;
                        c.skip(n)?;
                        row.set(reg, Saved::Other);
                        None
                    }
                    0x11 => {
                        let reg = c.uleb()?;
                        let off = c.sleb()?.checked_mul(self.data_align)?;
                        row.set(reg, Saved::At(off));
                        None
                    }
                    0x12 => {
                        row.cfa_reg = c.uleb()?;
                        row.cfa_off = c.sleb()?.checked_mul(self.data_align)?;
                        None
                    }
                    0x13 => {
                        row.cfa_off = c.sleb()?.checked_mul(self.data_align)?;
                        None
                    }
                    0x14 => {
                        let reg = c.uleb()?;
                        c.uleb()?;
                        row.set(reg, Saved::Other);
                        None
                    }
                    0x15 => {
                        let reg = c.uleb()?;
                        c.sleb()?;
                        row.set(reg, Saved::Other);
                        None
                    }
                    0x2e => {
                        c.uleb()?;
                        None
                    }
                    0x2f => {
                        let reg = c.uleb()?;
                        let off = (c.uleb()? as i64).checked_mul(self.data_align)?;
                        row.set(reg, Saved::At(off.checked_neg()?));
                        None
                    }
                    // DW_CFA_set_loc and anything unknown.
                    _ => return None,
                },
            };
            if let (Some(n), Some((_, pc))) = (advance, until) {
                loc = loc.checked_add(usize::try_from(n.checked_mul(self.code_align)?).ok()?)?;
                if loc > pc {
                    break;
                }
            }
        }
        Some(())
    }

    fn restore(&self, row: &mut Row, reg: u64) {
        match reg {
            RA => row.ra = self.initial.ra,
            RBP => row.bp = self.initial.bp,
            _ => {}
        }
    }
}

#[cfg(all(test, not(strata_loom)))]
mod tests {
    use super::*;

    #[test]
    fn rules_pack_and_unpack() {
        let pc = 0x5555_1234_5678;
        let r = Rule {
            cfa_bp: true,
            cfa_off: 16,
            ra: Some(-8),
            bp: Some(-16),
        };
        let w = pack(pc, &r).unwrap();
        assert_eq!(unpack(pc, w), Some(r));
        assert_eq!(unpack(pc + 4096, w), None);
        let end = Rule {
            cfa_bp: false,
            cfa_off: 8 * 4000,
            ra: None,
            bp: None,
        };
        assert_eq!(unpack(pc, pack(pc, &end).unwrap()), Some(end));
        assert_eq!(pack(pc, &Rule { cfa_off: 12, ..r }), None);
        assert_eq!(pack(pc, &Rule { ra: Some(-16), ..r }), None);
    }

    #[test]
    fn this_function_has_a_rule() {
        let here = this_function_has_a_rule as *const () as usize;
        assert!(matches!(decode(here + 1), Lookup::Found(_)));
        assert_eq!(decode(8), Lookup::NoFde);
    }
}
