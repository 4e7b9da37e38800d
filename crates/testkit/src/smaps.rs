//! What the kernel says about this process's mappings, from
//! `/proc/self/smaps`. The layers check their huge-page policy with it (the
//! `hg` flag `MADV_HUGEPAGE` sets, the `nh` flag `MADV_NOHUGEPAGE` sets).

use std::fs;

/// How many bytes of `[start, start + len)` lie in mappings flagged `hg`
/// (`MADV_HUGEPAGE`). Panics if some byte of the range is in no mapping,
/// or if `/proc/self/smaps` cannot be read.
pub fn huge_page_hinted_bytes(start: usize, len: usize) -> usize {
    flagged_bytes(start, len, "hg")
}

/// How many bytes of `[start, start + len)` lie in mappings flagged `nh`
/// (`MADV_NOHUGEPAGE`: no transparent huge pages, whatever the system's
/// setting). Panics as [`huge_page_hinted_bytes`] does.
pub fn no_huge_page_bytes(start: usize, len: usize) -> usize {
    flagged_bytes(start, len, "nh")
}

/// How many bytes of `[start, start + len)` lie in mappings whose `VmFlags`
/// include `flag`.
fn flagged_bytes(start: usize, len: usize, flag: &str) -> usize {
    let smaps = fs::read_to_string("/proc/self/smaps").expect("reading /proc/self/smaps");
    let end = start + len;
    let (mut covered, mut hinted) = (0, 0);
    let mut current: Option<(usize, usize)> = None;
    for line in smaps.lines() {
        let first = line.split_whitespace().next().unwrap_or("");
        if let Some((a, b)) = first.split_once('-') {
            if let (Ok(a), Ok(b)) = (usize::from_str_radix(a, 16), usize::from_str_radix(b, 16)) {
                current = Some((a.max(start), b.min(end)));
                continue;
            }
        }
        if let (Some(flags), Some((a, b))) = (line.strip_prefix("VmFlags:"), current) {
            if a < b {
                covered += b - a;
                if flags.split_whitespace().any(|f| f == flag) {
                    hinted += b - a;
                }
            }
            current = None;
        }
    }
    assert_eq!(covered, len, "{start:#x}+{len:#x} is not all mapped");
    hinted
}

#[cfg(test)]
mod tests {
    use super::{huge_page_hinted_bytes, no_huge_page_bytes};

    #[test]
    fn a_hinted_mapping_is_seen_and_a_plain_one_is_not() {
        let len = 4 << 20;
        // SAFETY: a fresh private mapping, advised and unmapped here only.
        unsafe {
            let p = libc::mmap(
                core::ptr::null_mut(),
                2 * len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            );
            assert_ne!(p, libc::MAP_FAILED);
            let a = p as usize;
            assert_eq!(libc::madvise(p, len, libc::MADV_HUGEPAGE), 0);
            assert_eq!(huge_page_hinted_bytes(a, len), len);
            assert_eq!(huge_page_hinted_bytes(a + len, len), 0);
            assert_eq!(huge_page_hinted_bytes(a + len / 2, len), len / 2);
            assert_eq!(no_huge_page_bytes(a, 2 * len), 0);
            assert_eq!(libc::madvise(p, len, libc::MADV_NOHUGEPAGE), 0);
            assert_eq!(no_huge_page_bytes(a, 2 * len), len);
            assert_eq!(huge_page_hinted_bytes(a, len), 0);
            libc::munmap(p, 2 * len);
        }
    }
}
