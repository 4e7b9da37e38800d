//! A reader of the heap profiles strata writes (pprof's `profile.proto`,
//! gzipped), so that the profile tests check what a profile says without
//! `go tool pprof`.
//!
//! # What it reads
//! - gzip (RFC 1952) whose deflate stream is made of stored blocks
//!   (RFC 1951 §3.2.4), which is what strata's writer emits; a compressed
//!   block is refused with an error saying so. The CRC-32 and the length
//!   at the end are checked.
//! - Of `profile.proto`: `sample_type`, `sample` (`location_id`, `value`,
//!   packed or not), `location` (`id`, `line.function_id`), `function`
//!   (`id`, `name`) and `string_table`; every other field is skipped by its
//!   wire type.
//!
//! # Invariants
//! - [`Profile::cum_by_function`] counts a sample once per distinct
//!   function name on its stack, as pprof's `cum` column does: a recursive
//!   function's sample is not counted twice.
//! - Malformed input is an `Err` naming what was wrong, never a panic.

use std::collections::{HashMap, HashSet};
use std::path::Path;

/// A decoded profile: the parts the tests need.
#[derive(Clone, Debug, Default)]
pub struct Profile {
    /// Each sample type's name (`inuse_space`...), in value order.
    pub sample_types: Vec<String>,
    /// The samples.
    pub samples: Vec<Sample>,
    /// Location id to the function ids of its lines (innermost first).
    pub locations: HashMap<u64, Vec<u64>>,
    /// Function id to its name.
    pub functions: HashMap<u64, String>,
}

/// One sample: its stack and one value per sample type.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Sample {
    /// Location ids, innermost first.
    pub location_ids: Vec<u64>,
    /// One value per sample type.
    pub values: Vec<i64>,
}

/// Reads and decodes the gzipped profile at `path`.
pub fn read(path: &Path) -> Result<Profile, String> {
    let bytes = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
    Profile::decode(&gunzip(&bytes)?)
}

impl Profile {
    /// Decodes an uncompressed `profile.proto` message.
    pub fn decode(b: &[u8]) -> Result<Profile, String> {
        let mut strings = Vec::new();
        let mut type_names = Vec::new();
        let mut function_names = Vec::new();
        let mut p = Profile::default();
        for f in Fields::new(b) {
            match f? {
                (1, Value::Len(m)) => type_names.push(first_varint(m, 1)?),
                (2, Value::Len(m)) => p.samples.push(decode_sample(m)?),
                (4, Value::Len(m)) => {
                    let (id, functions) = decode_location(m)?;
                    p.locations.insert(id, functions);
                }
                (5, Value::Len(m)) => {
                    function_names.push((first_varint(m, 1)?, first_varint(m, 2)?));
                }
                (6, Value::Len(s)) => strings
                    .push(String::from_utf8(s.to_vec()).map_err(|_| "a string that is not UTF-8")?),
                _ => {}
            }
        }
        let string = |i: u64| {
            strings
                .get(i as usize)
                .cloned()
                .ok_or(format!("string {i} out of the table"))
        };
        for t in type_names {
            p.sample_types.push(string(t)?);
        }
        for (id, name) in function_names {
            p.functions.insert(id, string(name)?);
        }
        Ok(p)
    }

    /// The index of sample type `name` in each sample's values.
    pub fn type_index(&self, name: &str) -> Result<usize, String> {
        self.sample_types
            .iter()
            .position(|t| t == name)
            .ok_or(format!("no sample type {name} in {:?}", self.sample_types))
    }

    /// Function name to the sum of sample type `sample_type` over the
    /// samples with that function on their stack (pprof's `cum`).
    pub fn cum_by_function(&self, sample_type: &str) -> Result<HashMap<String, i64>, String> {
        let k = self.type_index(sample_type)?;
        let mut cum = HashMap::new();
        for s in &self.samples {
            let v = *s
                .values
                .get(k)
                .ok_or(format!("a sample without value {k}: {s:?}"))?;
            let mut seen = HashSet::new();
            for loc in &s.location_ids {
                let functions = self
                    .locations
                    .get(loc)
                    .ok_or(format!("location {loc} is not in the profile"))?;
                for f in functions {
                    let name = self
                        .functions
                        .get(f)
                        .ok_or(format!("function {f} is not in the profile"))?;
                    if seen.insert(name.as_str()) {
                        *cum.entry(name.clone()).or_insert(0) += v;
                    }
                }
            }
        }
        Ok(cum)
    }
}

fn decode_sample(m: &[u8]) -> Result<Sample, String> {
    let mut s = Sample::default();
    for f in Fields::new(m) {
        match f? {
            (1, v) => push_repeated(v, &mut s.location_ids)?,
            (2, v) => {
                let mut values = Vec::new();
                push_repeated(v, &mut values)?;
                s.values.extend(values.into_iter().map(|v| v as i64));
            }
            _ => {}
        }
    }
    Ok(s)
}

/// A location's id and the function id of each of its lines.
fn decode_location(m: &[u8]) -> Result<(u64, Vec<u64>), String> {
    let mut id = 0;
    let mut functions = Vec::new();
    for f in Fields::new(m) {
        match f? {
            (1, Value::Varint(v)) => id = v,
            (4, Value::Len(line)) => functions.push(first_varint(line, 1)?),
            _ => {}
        }
    }
    Ok((id, functions))
}

/// A repeated integer field's values: one varint, or a packed run of them.
fn push_repeated(v: Value<'_>, out: &mut Vec<u64>) -> Result<(), String> {
    match v {
        Value::Varint(x) => out.push(x),
        Value::Len(mut packed) => {
            while !packed.is_empty() {
                out.push(varint(&mut packed)?);
            }
        }
        Value::Fixed => return Err("a fixed-width value in an integer array".into()),
    }
    Ok(())
}

/// The varint field `field` of message `m`, or 0 (proto3's default).
fn first_varint(m: &[u8], field: u64) -> Result<u64, String> {
    for f in Fields::new(m) {
        if let (n, Value::Varint(v)) = f? {
            if n == field {
                return Ok(v);
            }
        }
    }
    Ok(0)
}

/// A field's value, by wire type.
#[derive(Clone, Copy, Debug)]
enum Value<'a> {
    Varint(u64),
    Len(&'a [u8]),
    /// A fixed32 or fixed64, which nothing read here uses.
    Fixed,
}

/// The fields of a message, in order.
struct Fields<'a> {
    rest: &'a [u8],
}

impl<'a> Fields<'a> {
    fn new(m: &'a [u8]) -> Self {
        Fields { rest: m }
    }

    fn field(&mut self) -> Result<(u64, Value<'a>), String> {
        let key = varint(&mut self.rest)?;
        let v = match key & 7 {
            0 => Value::Varint(varint(&mut self.rest)?),
            1 => {
                take(&mut self.rest, 8)?;
                Value::Fixed
            }
            2 => {
                let n = varint(&mut self.rest)?;
                Value::Len(take(&mut self.rest, n as usize)?)
            }
            5 => {
                take(&mut self.rest, 4)?;
                Value::Fixed
            }
            w => return Err(format!("wire type {w} (field {})", key >> 3)),
        };
        Ok((key >> 3, v))
    }
}

impl<'a> Iterator for Fields<'a> {
    type Item = Result<(u64, Value<'a>), String>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.rest.is_empty() {
            return None;
        }
        let f = self.field();
        if f.is_err() {
            self.rest = &[];
        }
        Some(f)
    }
}

fn take<'a>(b: &mut &'a [u8], n: usize) -> Result<&'a [u8], String> {
    if b.len() < n {
        return Err(format!("{n} bytes wanted, {} left", b.len()));
    }
    let (head, tail) = b.split_at(n);
    *b = tail;
    Ok(head)
}

fn varint(b: &mut &[u8]) -> Result<u64, String> {
    let mut v = 0u64;
    for shift in (0..64).step_by(7) {
        let byte = take(b, 1)?[0];
        v |= u64::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            return Ok(v);
        }
    }
    Err("a varint longer than 10 bytes".into())
}

/// The data of a gzip member whose deflate blocks are stored ones.
pub fn gunzip(gz: &[u8]) -> Result<Vec<u8>, String> {
    let mut b = gz;
    let head = take(&mut b, 10).map_err(|_| "shorter than a gzip header")?;
    if head[..3] != [0x1f, 0x8b, 8] {
        return Err("not gzip (deflate)".into());
    }
    let flags = head[3];
    if flags & 4 != 0 {
        let n = take(&mut b, 2)?;
        take(&mut b, usize::from(u16::from_le_bytes([n[0], n[1]])))?;
    }
    for bit in [8, 16] {
        if flags & bit != 0 {
            let end = b.iter().position(|&c| c == 0).ok_or("unterminated name")?;
            take(&mut b, end + 1)?;
        }
    }
    if flags & 2 != 0 {
        take(&mut b, 2)?;
    }
    let mut out = Vec::new();
    loop {
        let h = take(&mut b, 1)?[0];
        if (h >> 1) & 3 != 0 {
            return Err(format!(
                "a compressed deflate block (type {}): only stored blocks are read",
                (h >> 1) & 3
            ));
        }
        let len = take(&mut b, 4)?;
        let n = u16::from_le_bytes([len[0], len[1]]);
        if !n != u16::from_le_bytes([len[2], len[3]]) {
            return Err("a stored block's length and its complement differ".into());
        }
        out.extend_from_slice(take(&mut b, usize::from(n))?);
        if h & 1 != 0 {
            break;
        }
    }
    let tail = take(&mut b, 8).map_err(|_| "no gzip trailer")?;
    let crc = u32::from_le_bytes([tail[0], tail[1], tail[2], tail[3]]);
    let size = u32::from_le_bytes([tail[4], tail[5], tail[6], tail[7]]);
    if crc != crc32(&out) || size != out.len() as u32 {
        return Err("the gzip trailer does not match the data".into());
    }
    Ok(out)
}

/// CRC-32 (IEEE 802.3), bit by bit: test data is small.
fn crc32(data: &[u8]) -> u32 {
    let mut c = !0u32;
    for &b in data {
        c ^= u32::from(b);
        for _ in 0..8 {
            c = if c & 1 != 0 {
                0xEDB8_8320 ^ (c >> 1)
            } else {
                c >> 1
            };
        }
    }
    !c
}

#[cfg(test)]
mod tests {
    use super::*;

    fn put_varint(out: &mut Vec<u8>, mut v: u64) {
        while v >= 0x80 {
            out.push(v as u8 | 0x80);
            v >>= 7;
        }
        out.push(v as u8);
    }

    fn uint(out: &mut Vec<u8>, field: u64, v: u64) {
        put_varint(out, field << 3);
        put_varint(out, v);
    }

    fn bytes(out: &mut Vec<u8>, field: u64, b: &[u8]) {
        put_varint(out, field << 3 | 2);
        put_varint(out, b.len() as u64);
        out.extend_from_slice(b);
    }

    fn packed(values: &[u64]) -> Vec<u8> {
        let mut v = Vec::new();
        for &x in values {
            put_varint(&mut v, x);
        }
        v
    }

    /// Stored blocks of at most 7 bytes, so that several are read.
    fn gzip_stored(data: &[u8]) -> Vec<u8> {
        let mut out = vec![0x1f, 0x8b, 8, 8, 0, 0, 0, 0, 0, 3];
        out.extend_from_slice(b"name\0");
        let chunks: Vec<&[u8]> = data.chunks(7).collect();
        for (i, c) in chunks.iter().enumerate() {
            out.push(u8::from(i + 1 == chunks.len()));
            let n = c.len() as u16;
            out.extend_from_slice(&n.to_le_bytes());
            out.extend_from_slice(&(!n).to_le_bytes());
            out.extend_from_slice(c);
        }
        out.extend_from_slice(&crc32(data).to_le_bytes());
        out.extend_from_slice(&(data.len() as u32).to_le_bytes());
        out
    }

    /// Strings: "", "inuse_space", "bytes", "main", "site_a", "site_b",
    /// "alloc_space". Functions 1..=3 are main, site_a, site_b; location
    /// 10+f has function f, location 20 is site_a inlined into main.
    fn profile() -> Vec<u8> {
        let mut p = Vec::new();
        for t in [6u64, 1] {
            let mut m = Vec::new();
            uint(&mut m, 1, t);
            uint(&mut m, 2, 2);
            bytes(&mut p, 1, &m);
        }
        // Samples: (stack innermost first, [alloc, inuse]).
        let samples: [(&[u64], [u64; 2]); 4] = [
            (&[12, 11], [500, 100]),
            (&[13, 11], [70, 30]),
            (&[12, 12, 11], [9, 7]), // site_a recursing: counted once
            (&[20], [1, 1]),
        ];
        for (i, (stack, values)) in samples.iter().enumerate() {
            let mut m = Vec::new();
            if i % 2 == 0 {
                bytes(&mut m, 1, &packed(stack));
                bytes(&mut m, 2, &packed(values));
            } else {
                // Unpacked, as an older writer would.
                for &l in stack.iter() {
                    uint(&mut m, 1, l);
                }
                for &v in values {
                    uint(&mut m, 2, v);
                }
            }
            bytes(&mut p, 2, &m);
        }
        for (id, functions) in [(11u64, &[1u64][..]), (12, &[2]), (13, &[3]), (20, &[2, 1])] {
            let mut m = Vec::new();
            uint(&mut m, 1, id);
            uint(&mut m, 3, 0x4000 + id); // an address, skipped
            for &f in functions {
                let mut line = Vec::new();
                uint(&mut line, 1, f);
                uint(&mut line, 2, 42);
                bytes(&mut m, 4, &line);
            }
            bytes(&mut p, 4, &m);
        }
        for (id, name) in [(1u64, 3u64), (2, 4), (3, 5)] {
            let mut m = Vec::new();
            uint(&mut m, 1, id);
            uint(&mut m, 2, name);
            uint(&mut m, 3, name);
            bytes(&mut p, 5, &m);
        }
        for s in [
            "",
            "inuse_space",
            "bytes",
            "main",
            "site_a",
            "site_b",
            "alloc_space",
        ] {
            bytes(&mut p, 6, s.as_bytes());
        }
        // A fixed64 and a fixed32 field nothing reads.
        put_varint(&mut p, 20 << 3 | 1);
        p.extend_from_slice(&[0; 8]);
        put_varint(&mut p, 21 << 3 | 5);
        p.extend_from_slice(&[0; 4]);
        p
    }

    #[test]
    fn a_built_profile_reads_back_with_cum_semantics() {
        let dir = std::env::temp_dir().join(format!("testkit-pprof-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("p.pb.gz");
        std::fs::write(&path, gzip_stored(&profile())).unwrap();
        let p = read(&path).unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
        assert_eq!(p.sample_types, ["alloc_space", "inuse_space"]);
        assert_eq!(p.samples.len(), 4);
        assert_eq!(p.samples[1].location_ids, [13, 11]);
        let inuse = p.cum_by_function("inuse_space").unwrap();
        assert_eq!(inuse["main"], 100 + 30 + 7 + 1);
        assert_eq!(inuse["site_a"], 100 + 7 + 1);
        assert_eq!(inuse["site_b"], 30);
        let alloc = p.cum_by_function("alloc_space").unwrap();
        assert_eq!(alloc["site_a"], 510);
        assert!(p.cum_by_function("peak_space").is_err());
    }

    #[test]
    fn damage_is_an_error() {
        let gz = gzip_stored(&profile());
        let mut bad_crc = gz.clone();
        let n = bad_crc.len();
        bad_crc[n - 8] ^= 1;
        assert!(gunzip(&bad_crc).unwrap_err().contains("trailer"));
        assert!(gunzip(&gz[..gz.len() - 3]).is_err());
        assert!(gunzip(b"not gzip at all").is_err());
        // A fixed-Huffman block header.
        let compressed = [0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 3, 0b011, 0, 0, 0, 0, 0];
        assert!(gunzip(&compressed).unwrap_err().contains("stored"));
        // A message cut inside a field, and a sample naming no location.
        let p = profile();
        assert!(Profile::decode(&p[..p.len() - 20]).is_err());
        let mut orphan = p.clone();
        let mut m = Vec::new();
        bytes(&mut m, 1, &packed(&[99]));
        bytes(&mut m, 2, &packed(&[1, 1]));
        bytes(&mut orphan, 2, &m);
        let orphan = Profile::decode(&orphan).unwrap();
        assert!(orphan.cum_by_function("inuse_space").is_err());
    }

    #[test]
    fn crc_of_a_known_string() {
        assert_eq!(crc32(b"123456789"), 0xCBF4_3926);
    }
}
