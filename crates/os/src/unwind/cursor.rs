//! A reader of call-frame tables in place: little-endian words, LEB128
//! numbers and `DW_EH_PE` pointers, bounded by the range its maker
//! checked is mapped.

/// Reads inside `[p, end)` only.
pub(super) struct Cursor {
    pub(super) p: usize,
    pub(super) end: usize,
}

impl Cursor {
    pub(super) fn bytes<const N: usize>(&mut self) -> Option<[u8; N]> {
        if self.p.checked_add(N)? > self.end {
            return None;
        }
        // SAFETY: `[p, p + N)` is inside `[p, end)`, which the cursor's
        // maker checked lies in a mapped, readable segment.
        let v = unsafe { core::ptr::read_unaligned(self.p as *const [u8; N]) };
        self.p += N;
        Some(v)
    }
    pub(super) fn u8(&mut self) -> Option<u8> {
        Some(self.bytes::<1>()?[0])
    }
    pub(super) fn u16(&mut self) -> Option<u16> {
        Some(u16::from_le_bytes(self.bytes()?))
    }
    pub(super) fn u32(&mut self) -> Option<u32> {
        Some(u32::from_le_bytes(self.bytes()?))
    }
    pub(super) fn u64(&mut self) -> Option<u64> {
        Some(u64::from_le_bytes(self.bytes()?))
    }
    /// A LEB128 number's low 64 bits, the bits it had and its last byte.
    pub(super) fn leb(&mut self) -> Option<(u64, u32, u8)> {
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
    pub(super) fn uleb(&mut self) -> Option<u64> {
        self.leb().map(|(v, _, _)| v)
    }
    pub(super) fn sleb(&mut self) -> Option<i64> {
        let (v, shift, last) = self.leb()?;
        let mut v = v as i64;
        if shift < 64 && last & 0x40 != 0 {
            v |= -1i64 << shift;
        }
        Some(v)
    }
    pub(super) fn skip(&mut self, n: u64) -> Option<()> {
        let p = self.p.checked_add(usize::try_from(n).ok()?)?;
        if p > self.end {
            return None;
        }
        self.p = p;
        Some(())
    }
    /// A pointer in `DW_EH_PE` encoding `enc`: pc-relative or relative to
    /// `datarel`; `None` for an indirect or other application.
    pub(super) fn encoded(&mut self, enc: u8, datarel: usize) -> Option<usize> {
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
