//! The call-frame tables: an object's `.eh_frame_hdr` search table, its
//! CIEs and FDEs, read in place under the loader's lock.

use core::ffi::{c_int, c_void};

use super::cfa::{Program, Row};
use super::cursor::Cursor;
use super::{Lookup, RA};

/// A search under the loader's lock.
struct Search {
    pc: usize,
    found: Lookup,
}

pub(super) fn decode(pc: usize) -> Lookup {
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
pub(super) struct Cie {
    pub(super) code_align: u64,
    pub(super) data_align: i64,
    pub(super) fde_enc: u8,
    pub(super) augmented: bool,
    pub(super) program: Cursor,
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
