//! Names for return addresses, found at dump time: the loaded objects
//! (`dl_iterate_phdr`: path, load bias, executable segment, GNU build ID,
//! which also become the profile's mappings, so pprof can symbolise from
//! the binaries itself), each object's ELF symbol table read from its file
//! (`.symtab`, else `.dynsym`: a Rust binary exports almost nothing, so
//! `dladdr` alone would name few of its functions), and `dladdr` where the
//! file gives nothing. Rust's legacy mangled names are demangled.
//!
//! # Invariants
//! - Everything lives in OS memory ([`OsVec`], file mappings) owned by the
//!   [`Symbols`] value and released when it drops; nothing is kept between
//!   dumps.
//! - Nothing here takes the profiler's lock: the loader's lock
//!   (`dl_iterate_phdr`, `dladdr`) is taken only after the snapshot was
//!   copied out, so a thread in `dlopen` that allocates never waits for a
//!   dump that waits for it.

use core::ffi::{c_int, c_void, CStr};

use super::store::OsVec;

/// A loaded object.
#[derive(Clone, Copy)]
pub(crate) struct Object {
    /// Its path in `text`.
    name: (u32, u32),
    bias: usize,
    /// The executable segment: `[start, limit)` in memory, at `offset` in
    /// the file.
    pub(crate) start: usize,
    pub(crate) limit: usize,
    pub(crate) offset: usize,
    build_id: [u8; 20],
    build_id_len: u8,
    /// Its symbols in `syms` (loaded on first use).
    syms: (usize, usize),
    loaded: bool,
    /// The file's mapping, for the names of its symbols.
    map: (*const u8, usize),
    strtab: (usize, usize),
}

#[derive(Clone, Copy)]
struct Sym {
    addr: usize,
    size: usize,
    name: u32,
}

/// The objects of the process and their symbols.
pub(crate) struct Symbols {
    pub(crate) objects: OsVec<Object>,
    syms: OsVec<Sym>,
    /// Paths and demangled names.
    text: OsVec<u8>,
    /// The object this code is in.
    own: usize,
}

/// What an address resolves to.
#[derive(Clone, Copy)]
pub(crate) struct Resolved {
    /// The object's index in `objects`, if any.
    pub(crate) object: Option<usize>,
    /// The function's start and its name in `text`, if known.
    pub(crate) function: Option<(usize, (u32, u32))>,
}

extern "C" fn each_object(info: *mut libc::dl_phdr_info, _size: usize, data: *mut c_void) -> c_int {
    // SAFETY: `data` is the `Symbols` passed to dl_iterate_phdr, borrowed
    // by nobody else for the call; `info` is the loader's, valid for it.
    let (s, info) = unsafe { (&mut *(data as *mut Symbols), &*info) };
    let mut exec = None;
    let mut build_id = ([0u8; 20], 0u8);
    for i in 0..info.dlpi_phnum as usize {
        // SAFETY: dlpi_phdr has dlpi_phnum entries.
        let ph = unsafe { &*info.dlpi_phdr.add(i) };
        if ph.p_type == libc::PT_LOAD && ph.p_flags & libc::PF_X != 0 && exec.is_none() {
            let start = info.dlpi_addr as usize + ph.p_vaddr as usize;
            exec = Some((start, start + ph.p_memsz as usize, ph.p_offset as usize));
        }
        if ph.p_type == libc::PT_NOTE {
            let at = info.dlpi_addr as usize + ph.p_vaddr as usize;
            // SAFETY: a loaded note segment, readable for p_memsz bytes.
            let notes =
                unsafe { core::slice::from_raw_parts(at as *const u8, ph.p_memsz as usize) };
            if let Some(id) = gnu_build_id(notes) {
                let n = id.len().min(20);
                build_id.0[..n].copy_from_slice(&id[..n]);
                build_id.1 = n as u8;
            }
        }
    }
    let Some((start, limit, offset)) = exec else {
        return 0;
    };
    let name = if info.dlpi_name.is_null() {
        &[][..]
    } else {
        // SAFETY: the loader's NUL-terminated name.
        unsafe { CStr::from_ptr(info.dlpi_name) }.to_bytes()
    };
    let at = s.text.len() as u32;
    if name.is_empty() {
        // The main program: its path from the kernel.
        let mut buf = [0u8; 512];
        // SAFETY: readlink writes at most buf.len() bytes.
        let n = unsafe {
            libc::readlink(
                c"/proc/self/exe".as_ptr(),
                buf.as_mut_ptr().cast(),
                buf.len(),
            )
        };
        for &b in &buf[..n.max(0) as usize] {
            s.text.push(b);
        }
    } else {
        for &b in name {
            s.text.push(b);
        }
    }
    let len = s.text.len() as u32 - at;
    let own = each_object as *const () as usize;
    if own >= start && own < limit {
        s.own = s.objects.len();
    }
    s.objects.push(Object {
        name: (at, len),
        bias: info.dlpi_addr as usize,
        start,
        limit,
        offset,
        build_id: build_id.0,
        build_id_len: build_id.1,
        syms: (0, 0),
        loaded: false,
        map: (core::ptr::null(), 0),
        strtab: (0, 0),
    });
    0
}

/// The GNU build ID in a note segment.
fn gnu_build_id(mut notes: &[u8]) -> Option<&[u8]> {
    let word = |b: &[u8], i: usize| -> usize {
        u32::from_ne_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]]) as usize
    };
    while notes.len() >= 12 {
        let (namesz, descsz, kind) = (word(notes, 0), word(notes, 4), word(notes, 8));
        let name_end = 12 + namesz.next_multiple_of(4);
        let desc_end = name_end + descsz.next_multiple_of(4);
        if desc_end > notes.len() {
            return None;
        }
        if kind == 3 && namesz == 4 && &notes[12..16] == b"GNU\0" {
            return Some(&notes[name_end..name_end + descsz]);
        }
        notes = &notes[desc_end..];
    }
    None
}

fn read_u<const N: usize>(b: &[u8], at: usize) -> Option<u64> {
    let s = b.get(at..at + N)?;
    let mut v = [0u8; 8];
    v[..N].copy_from_slice(s);
    Some(u64::from_le_bytes(v))
}

impl Symbols {
    /// The objects loaded now.
    pub(crate) fn new() -> Symbols {
        let mut s = Symbols {
            objects: OsVec::new(),
            syms: OsVec::new(),
            text: OsVec::new(),
            own: usize::MAX,
        };
        // SAFETY: the callback matches dl_iterate_phdr's signature and uses
        // `s` only during the call.
        unsafe { libc::dl_iterate_phdr(Some(each_object), &mut s as *mut Symbols as *mut c_void) };
        s
    }

    pub(crate) fn text(&self, r: (u32, u32)) -> &[u8] {
        &self.text.as_slice()[r.0 as usize..(r.0 + r.1) as usize]
    }

    pub(crate) fn object_path(&self, i: usize) -> &[u8] {
        self.text(self.objects.as_slice()[i].name)
    }

    /// The object's build ID as lowercase hex, into `out`.
    pub(crate) fn build_id_hex<'a>(&self, i: usize, out: &'a mut [u8; 40]) -> &'a [u8] {
        let o = &self.objects.as_slice()[i];
        for (k, b) in o.build_id[..o.build_id_len as usize].iter().enumerate() {
            out[2 * k] = b"0123456789abcdef"[(b >> 4) as usize];
            out[2 * k + 1] = b"0123456789abcdef"[(b & 15) as usize];
        }
        &out[..2 * o.build_id_len as usize]
    }

    /// Whether object `i` is a shared library holding this allocator (then
    /// all its frames are the allocator's).
    pub(crate) fn is_own_library(&self, i: usize) -> bool {
        i == self.own && i != 0
    }

    /// Resolves the code address `pc`.
    pub(crate) fn resolve(&mut self, pc: usize) -> Resolved {
        let object = self
            .objects
            .as_slice()
            .iter()
            .position(|o| pc >= o.start && pc < o.limit);
        let mut function = object.and_then(|i| self.lookup_in_file(i, pc));
        if function.is_none() {
            function = self.lookup_dladdr(pc);
        }
        Resolved { object, function }
    }

    fn lookup_in_file(&mut self, i: usize, pc: usize) -> Option<(usize, (u32, u32))> {
        if !self.objects.as_slice()[i].loaded {
            self.load(i);
        }
        let o = self.objects.as_slice()[i];
        let syms = &self.syms.as_slice()[o.syms.0..o.syms.0 + o.syms.1];
        let at = pc.wrapping_sub(o.bias);
        let k = syms.partition_point(|s| s.addr <= at);
        let s = *syms.get(k.checked_sub(1)?)?;
        if s.size != 0 && at >= s.addr + s.size {
            return None;
        }
        // SAFETY: the mapping of the object's file stays until drop; the
        // string table offset was bounds-checked at load.
        let strtab = unsafe { core::slice::from_raw_parts(o.map.0.add(o.strtab.0), o.strtab.1) };
        let raw = strtab.get(s.name as usize..)?;
        let raw = &raw[..raw.iter().position(|&b| b == 0)?];
        Some((s.addr + o.bias, self.add_name(raw)))
    }

    fn lookup_dladdr(&mut self, pc: usize) -> Option<(usize, (u32, u32))> {
        // SAFETY: a zeroed Dl_info is a valid value for dladdr to fill.
        let mut info: libc::Dl_info = unsafe { core::mem::zeroed() };
        // SAFETY: dladdr reads the loader's tables and fills `info`.
        if unsafe { libc::dladdr(pc as *const c_void, &mut info) } == 0 || info.dli_sname.is_null()
        {
            return None;
        }
        // SAFETY: the loader's NUL-terminated name.
        let raw = unsafe { CStr::from_ptr(info.dli_sname) }.to_bytes();
        Some((info.dli_saddr as usize, self.add_name(raw)))
    }

    fn add_name(&mut self, raw: &[u8]) -> (u32, u32) {
        let at = self.text.len();
        if !demangle(raw, &mut self.text) {
            self.text.truncate(at);
            for &b in raw {
                self.text.push(b);
            }
        }
        (at as u32, (self.text.len() - at) as u32)
    }

    /// Reads object `i`'s function symbols from its file.
    fn load(&mut self, i: usize) {
        let mut o = self.objects.as_slice()[i];
        o.loaded = true;
        o.syms = (self.syms.len(), 0);
        let mut path = [0u8; 513];
        let name = self.text(o.name);
        if !name.is_empty() && name.len() < path.len() {
            path[..name.len()].copy_from_slice(name);
            if let Some((map, len)) = map_file(&path[..=name.len()]) {
                o.map = (map, len);
                // SAFETY: a read-only mapping of `len` bytes, ours until drop.
                let file = unsafe { core::slice::from_raw_parts(map, len) };
                if let Some(strtab) = self.read_symbols(file) {
                    o.strtab = strtab;
                }
                o.syms.1 = self.syms.len() - o.syms.0;
                let all = self.syms.as_mut_slice();
                all[o.syms.0..].sort_unstable_by_key(|s| s.addr);
            }
        }
        self.objects.as_mut_slice()[i] = o;
    }

    /// Appends the function symbols of the ELF image `f` (`.symtab`, else
    /// `.dynsym`); returns its string table's place in `f`.
    fn read_symbols(&mut self, f: &[u8]) -> Option<(usize, usize)> {
        if f.get(..6)? != b"\x7fELF\x02\x01" {
            return None; // 64-bit little-endian only
        }
        let shoff = read_u::<8>(f, 0x28)? as usize;
        let shentsize = read_u::<2>(f, 0x3A)? as usize;
        let shnum = read_u::<2>(f, 0x3C)? as usize;
        let section = |k: usize| -> Option<(u32, usize, usize, usize, usize)> {
            let at = shoff + k * shentsize;
            Some((
                read_u::<4>(f, at + 4)? as u32,
                read_u::<8>(f, at + 24)? as usize,
                read_u::<8>(f, at + 32)? as usize,
                read_u::<4>(f, at + 40)? as usize,
                read_u::<8>(f, at + 56)? as usize,
            ))
        };
        let find = |kind: u32| (0..shnum).find(|&k| section(k).is_some_and(|s| s.0 == kind));
        let k = find(2).or_else(|| find(11))?;
        let (_, off, size, link, entsize) = section(k)?;
        let (_, str_off, str_size, _, _) = section(link)?;
        if entsize < 24
            || off.checked_add(size)? > f.len()
            || str_off.checked_add(str_size)? > f.len()
        {
            return None;
        }
        let n = size / entsize;
        if !self.syms.reserve(n) {
            return None;
        }
        for j in 0..n {
            let at = off + j * entsize;
            let info = f[at + 4];
            let value = read_u::<8>(f, at + 8)? as usize;
            if info & 0xf != 2 || value == 0 {
                continue; // functions only
            }
            self.syms.push(Sym {
                addr: value,
                size: read_u::<8>(f, at + 16)? as usize,
                name: read_u::<4>(f, at)? as u32,
            });
        }
        Some((str_off, str_size))
    }
}

impl Drop for Symbols {
    fn drop(&mut self) {
        for o in self.objects.as_slice() {
            if !o.map.0.is_null() {
                // SAFETY: our read-only file mapping, unused from now on.
                unsafe { libc::munmap(o.map.0 as *mut c_void, o.map.1) };
            }
        }
    }
}

/// Maps the file at `path` (NUL-terminated) read-only.
fn map_file(path: &[u8]) -> Option<(*const u8, usize)> {
    let path = CStr::from_bytes_until_nul(path).ok()?;
    // SAFETY: a NUL-terminated path, opened read-only.
    let fd = unsafe { libc::open(path.as_ptr(), libc::O_RDONLY | libc::O_CLOEXEC) };
    if fd < 0 {
        return None;
    }
    // SAFETY: fstat fills the struct we pass; mmap of a file we opened;
    // the descriptor is closed once (the mapping stays).
    unsafe {
        let mut st: libc::stat = core::mem::zeroed();
        let ok = libc::fstat(fd, &mut st) == 0 && st.st_size > 0;
        let len = st.st_size as usize;
        let m = if ok {
            libc::mmap(
                core::ptr::null_mut(),
                len,
                libc::PROT_READ,
                libc::MAP_PRIVATE,
                fd,
                0,
            )
        } else {
            libc::MAP_FAILED
        };
        libc::close(fd);
        (m != libc::MAP_FAILED).then_some((m as *const u8, len))
    }
}

/// Appends the demangled form of a Rust legacy symbol (`_ZN...E`, the
/// default mangling) to `out`; false (with whatever was appended left for
/// the caller to roll back) if `raw` is not one.
fn demangle(raw: &[u8], out: &mut OsVec<u8>) -> bool {
    let Some(mut rest) = raw.strip_prefix(b"_ZN") else {
        return false;
    };
    let mut first = true;
    loop {
        if rest.first() == Some(&b'E') {
            return !first;
        }
        let digits = rest.iter().take_while(|b| b.is_ascii_digit()).count();
        if digits == 0 {
            return false;
        }
        let Some(n) = crate::config::parse_size(&rest[..digits]) else {
            return false;
        };
        let Some(part) = rest.get(digits..digits + n) else {
            return false;
        };
        rest = &rest[digits + n..];
        let is_hash = part.len() == 17
            && part[0] == b'h'
            && part[1..].iter().all(u8::is_ascii_hexdigit)
            && rest.first() == Some(&b'E');
        if is_hash {
            continue;
        }
        if !first {
            out.push(b':');
            out.push(b':');
        }
        first = false;
        decode_part(part, out);
    }
}

/// One path component, with `$..$` escapes and `..` decoded.
fn decode_part(mut p: &[u8], out: &mut OsVec<u8>) {
    if p.starts_with(b"_$") {
        p = &p[1..];
    }
    while let Some(&b) = p.first() {
        if b == b'$' {
            if let Some(end) = p[1..].iter().position(|&c| c == b'$') {
                let code = &p[1..1 + end];
                let c = match code {
                    b"LT" => Some(b'<'),
                    b"GT" => Some(b'>'),
                    b"C" => Some(b','),
                    b"RF" => Some(b'&'),
                    b"BP" => Some(b'*'),
                    b"SP" => Some(b'@'),
                    b"LP" => Some(b'('),
                    b"RP" => Some(b')'),
                    _ => code
                        .strip_prefix(b"u")
                        .and_then(|h| {
                            h.iter().try_fold(0u32, |v, &d| {
                                (d as char).to_digit(16).map(|x| v * 16 + x)
                            })
                        })
                        .filter(|&v| v < 0x80)
                        .map(|v| v as u8),
                };
                if let Some(c) = c {
                    out.push(c);
                    p = &p[end + 2..];
                    continue;
                }
            }
        }
        if p.starts_with(b"..") {
            out.push(b':');
            out.push(b':');
            p = &p[2..];
            continue;
        }
        out.push(b);
        p = &p[1..];
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dm(s: &str) -> Option<std::string::String> {
        let mut out = OsVec::new();
        demangle(s.as_bytes(), &mut out)
            .then(|| std::string::String::from_utf8(out.as_slice().to_vec()).unwrap())
    }

    #[test]
    fn rust_names_demangle() {
        assert_eq!(
            dm("_ZN6strata3raw6malloc17h0123456789abcdefE").as_deref(),
            Some("strata::raw::malloc")
        );
        assert_eq!(
            dm("_ZN59_$LT$strata..Strata$u20$as$u20$core..alloc..GlobalAlloc$GT$5alloc17h0123456789abcdefE")
                .as_deref(),
            Some("<strata::Strata as core::alloc::GlobalAlloc>::alloc")
        );
        assert_eq!(dm("malloc"), None);
        assert_eq!(dm("_ZN3foo"), None);
    }

    #[test]
    fn this_test_resolves_to_a_name() {
        let mut s = Symbols::new();
        assert!(s.objects.len() > 1);
        let pc = rust_names_demangle as *const () as usize + 1;
        let r = s.resolve(pc);
        let (start, name) = r.function.expect("a symbol");
        assert!(start <= pc);
        let name = std::string::String::from_utf8_lossy(s.text(name)).into_owned();
        assert!(name.contains("rust_names_demangle"), "{name}");
        let r = s.resolve(libc::malloc as *const () as usize);
        assert!(r.function.is_some());
    }
}
