//! The kernel's `clock_gettime`, called in the vDSO directly.
//!
//! libc's `clock_gettime` is a thin wrapper over the same vDSO function,
//! but it lives in a part of libc's text that a program using only
//! `malloc` never otherwise runs. Calling it faults in that part: with the
//! kernel's fault-around, up to 64 KiB of libc text per call site region
//! added to a small program's resident set (measured in
//! `docs/performance.md`, "Libc pages a small program touches"). The vDSO
//! is mapped and resident in every process anyway.
//!
//! # Invariants
//! - The vDSO image is found only through `AT_SYSINFO_EHDR` and read only
//!   within what its own headers describe; every table is bounds-checked
//!   against the image's `PT_LOAD` segment before it is read.
//! - Whenever anything is missing or malformed (no vDSO, as under valgrind
//!   or `vdso=0`; no hash table; no such symbol), the answer is "not
//!   found" and callers use libc's `clock_gettime`: never a wrong pointer.
//! - Nothing here allocates, takes a lock or can panic: it may run inside
//!   `malloc`. The lookup runs at most once per thread racing on the first
//!   call; every racer computes the same answer.

use core::sync::atomic::{AtomicUsize, Ordering};

/// The vDSO's `clock_gettime`.
type ClockGettime = unsafe extern "C" fn(libc::clockid_t, *mut libc::timespec) -> libc::c_int;

/// Not looked up yet.
const UNKNOWN: usize = 0;
/// Looked up and not found: use libc's.
const ABSENT: usize = 1;

static CLOCK_GETTIME: AtomicUsize = AtomicUsize::new(UNKNOWN);

/// `clock_gettime(clock, ts)` through the vDSO when it has the function,
/// else through libc. Returns what the call returned.
///
/// # Safety
/// `ts` is valid for a write of a `timespec`.
#[inline]
pub(super) unsafe fn clock_gettime(clock: libc::clockid_t, ts: *mut libc::timespec) -> libc::c_int {
    let mut f = CLOCK_GETTIME.load(Ordering::Relaxed);
    if f == UNKNOWN {
        // x86-64 and RISC-V name it one way, arm64, ppc64 and s390x the
        // other.
        f = find("__vdso_clock_gettime")
            .or_else(|| find("__kernel_clock_gettime"))
            .unwrap_or(ABSENT);
        CLOCK_GETTIME.store(f, Ordering::Relaxed);
    }
    if f == ABSENT {
        // SAFETY: forwarded contract.
        return unsafe { libc::clock_gettime(clock, ts) };
    }
    // SAFETY: `f` is the address of the vDSO's `clock_gettime`, a function
    // of this signature (the kernel's ABI), mapped for the process's life.
    let f: ClockGettime = unsafe { core::mem::transmute::<usize, ClockGettime>(f) };
    // SAFETY: forwarded contract.
    unsafe { f(clock, ts) }
}

/// Whether the vDSO's `clock_gettime` is the one in use.
#[cfg(test)]
pub(super) fn in_use() -> bool {
    let mut ts = core::mem::MaybeUninit::<libc::timespec>::uninit();
    // SAFETY: `ts` is writable.
    unsafe { clock_gettime(libc::CLOCK_MONOTONIC, ts.as_mut_ptr()) };
    CLOCK_GETTIME.load(Ordering::Relaxed) > ABSENT
}

/// The image of the vDSO, as bounds to check reads against.
struct Image {
    /// Where the image's first (only) `PT_LOAD` segment is mapped.
    start: usize,
    end: usize,
    /// What to add to a virtual address of the image to get its address.
    bias: usize,
}

impl Image {
    /// `len` bytes at `addr` lie within the image.
    fn holds(&self, addr: usize, len: usize) -> bool {
        addr >= self.start && addr.checked_add(len).is_some_and(|e| e <= self.end)
    }

    /// Reads a `T` at `addr`, if it lies within the image.
    fn read<T: Copy>(&self, addr: usize) -> Option<T> {
        if !self.holds(addr, size_of::<T>()) || addr % align_of::<T>() != 0 {
            return None;
        }
        // SAFETY: within the mapped, readable vDSO image, aligned.
        Some(unsafe { (addr as *const T).read() })
    }

    /// The image address of a virtual address the image's tables hold
    /// (wrapping: an image linked at a high address has a bias that wraps;
    /// every read is checked against the image's bounds anyway).
    fn at(&self, vaddr: u64) -> Option<usize> {
        Some(usize::try_from(vaddr).ok()?.wrapping_add(self.bias))
    }
}

/// The address of the vDSO's global function `name`, if there is one.
pub(super) fn find(name: &str) -> Option<usize> {
    // SAFETY: getauxval has no preconditions.
    let base = unsafe { libc::getauxval(libc::AT_SYSINFO_EHDR) } as usize;
    if base == 0 {
        return None;
    }
    // SAFETY: the kernel maps the vDSO's ELF header at `base`, readable.
    let eh: libc::Elf64_Ehdr = unsafe { (base as *const libc::Elf64_Ehdr).read() };
    if eh.e_ident[..4] != *b"\x7fELF"
        || eh.e_ident[libc::EI_CLASS] != libc::ELFCLASS64
        || usize::from(eh.e_phentsize) != size_of::<libc::Elf64_Phdr>()
    {
        return None;
    }
    // The program headers follow the ELF header inside the first page,
    // which is mapped; the segments say how far the image goes.
    let phdrs = base.checked_add(usize::try_from(eh.e_phoff).ok()?)?;
    let mut load = None;
    let mut dynamic = None;
    for i in 0..usize::from(eh.e_phnum) {
        let at = phdrs + i * size_of::<libc::Elf64_Phdr>();
        if at + size_of::<libc::Elf64_Phdr>() > base + 4096 {
            return None;
        }
        // SAFETY: within the vDSO's first page, which is mapped.
        let ph: libc::Elf64_Phdr = unsafe { (at as *const libc::Elf64_Phdr).read() };
        match ph.p_type {
            libc::PT_LOAD if load.is_none() => load = Some(ph),
            libc::PT_DYNAMIC => dynamic = Some(ph),
            _ => {}
        }
    }
    let (load, dynamic) = (load?, dynamic?);
    let start = base.checked_add(usize::try_from(load.p_offset).ok()?)?;
    let image = Image {
        start,
        end: start.checked_add(usize::try_from(load.p_filesz).ok()?)?,
        bias: start.wrapping_sub(usize::try_from(load.p_vaddr).ok()?),
    };
    let tables = Tables::read(&image, image.at(dynamic.p_vaddr)?)?;
    tables.lookup(&image, name.as_bytes())
}

/// The dynamic tables a symbol lookup needs, as image addresses.
struct Tables {
    symtab: usize,
    strtab: usize,
    strsz: usize,
    /// How many symbols `symtab` holds.
    count: usize,
}

impl Tables {
    /// Reads the dynamic section at `dynamic`.
    fn read(image: &Image, dynamic: usize) -> Option<Tables> {
        let (mut symtab, mut strtab, mut strsz, mut hash, mut gnu_hash) =
            (None, None, None, None, None);
        for i in 0.. {
            let d: Dyn = image.read(dynamic + i * size_of::<Dyn>())?;
            let v = d.val;
            match d.tag {
                DT_NULL => break,
                DT_SYMTAB => symtab = image.at(v),
                DT_STRTAB => strtab = image.at(v),
                DT_STRSZ => strsz = usize::try_from(v).ok(),
                DT_HASH => hash = image.at(v),
                DT_GNU_HASH => gnu_hash = image.at(v),
                _ => {}
            }
        }
        let count = match (hash, gnu_hash) {
            // The SysV hash table's second word is its chain count, which
            // is the symbol count.
            (Some(h), _) => image.read::<u32>(h + 4)? as usize,
            (None, Some(g)) => gnu_hash_count(image, g)?,
            (None, None) => return None,
        };
        Some(Tables {
            symtab: symtab?,
            strtab: strtab?,
            strsz: strsz?,
            count,
        })
    }

    /// The image address of the defined global function `name`.
    fn lookup(&self, image: &Image, name: &[u8]) -> Option<usize> {
        for i in 0..self.count {
            let sym: libc::Elf64_Sym =
                image.read(self.symtab + i * size_of::<libc::Elf64_Sym>())?;
            let kind = sym.st_info & 0xf;
            let bind = sym.st_info >> 4;
            if kind != STT_FUNC
                || !(bind == STB_GLOBAL || bind == STB_WEAK)
                || sym.st_shndx == 0
                || !self.name_is(image, sym.st_name as usize, name)
            {
                continue;
            }
            let addr = image.at(sym.st_value)?;
            return image.holds(addr, 1).then_some(addr);
        }
        None
    }

    /// The string at `offset` of the string table is `name`.
    fn name_is(&self, image: &Image, offset: usize, name: &[u8]) -> bool {
        if offset.saturating_add(name.len()) >= self.strsz {
            return false;
        }
        let at = self.strtab + offset;
        name.iter()
            .chain(&[0])
            .enumerate()
            .all(|(i, &c)| image.read::<u8>(at + i) == Some(c))
    }
}

/// An entry of the dynamic section (`Elf64_Dyn`).
#[derive(Clone, Copy)]
#[repr(C)]
struct Dyn {
    tag: i64,
    val: u64,
}

const DT_NULL: i64 = 0;
const DT_HASH: i64 = 4;
const DT_STRTAB: i64 = 5;
const DT_SYMTAB: i64 = 6;
const DT_STRSZ: i64 = 10;
const DT_GNU_HASH: i64 = 0x6fff_fef5;
const STT_FUNC: u8 = 2;
const STB_GLOBAL: u8 = 1;
const STB_WEAK: u8 = 2;

/// The symbol count from a GNU hash table at `g`: one past the highest
/// symbol any bucket's chain reaches (chains end at an odd hash).
fn gnu_hash_count(image: &Image, g: usize) -> Option<usize> {
    let nbuckets = image.read::<u32>(g)? as usize;
    let symoffset = image.read::<u32>(g + 4)? as usize;
    let bloom_size = image.read::<u32>(g + 8)? as usize;
    let buckets = g + 16 + bloom_size * 8;
    let chains = buckets + nbuckets * 4;
    let mut last = 0;
    for b in 0..nbuckets {
        last = last.max(image.read::<u32>(buckets + b * 4)? as usize);
    }
    if last < symoffset {
        return Some(symoffset);
    }
    loop {
        let h = image.read::<u32>(chains + (last - symoffset) * 4)?;
        last += 1;
        if h & 1 == 1 {
            return Some(last);
        }
    }
}
