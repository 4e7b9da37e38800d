//! The CFA programs of a CIE and an FDE, run up to an instruction to get
//! the row of the call-frame table that holds there.

use super::cursor::Cursor;
use super::{Lookup, Rule, RA, RBP, RSP};

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
pub(super) struct Row {
    /// `u64::MAX`: an expression.
    cfa_reg: u64,
    cfa_off: i64,
    ra: Saved,
    bp: Saved,
}

impl Row {
    pub(super) const START: Row = Row {
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

    pub(super) fn rule(&self) -> Lookup {
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

pub(super) struct Program {
    pub(super) code_align: u64,
    pub(super) data_align: i64,
    /// The row after the CIE's instructions (`DW_CFA_restore`).
    pub(super) initial: Row,
}

impl Program {
    /// Runs the instructions in `c` on `row`; with `until = (start, pc)`,
    /// only those at locations up to `pc`, counting from `start`.
    pub(super) fn run(
        &self,
        mut c: Cursor,
        row: &mut Row,
        until: Option<(usize, usize)>,
    ) -> Option<()> {
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
                    // DW_CFA_register, DW_CFA_val_offset: a register
                    // and a ULEB operand, neither a rule handled here.
                    0x09 | 0x14 => {
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
