//! The memory limit of the process's control group, read from the cgroup
//! file system without allocating (fixed buffers on the stack).
//!
//! cgroup v2: the smallest `memory.max` or `memory.high` of the process's
//! group and its ancestors, under `/sys/fs/cgroup` (or the hybrid layout's
//! `/sys/fs/cgroup/unified`). cgroup v1: the smallest
//! `memory.limit_in_bytes` or `memory.soft_limit_in_bytes` along the
//! memory controller's path under `/sys/fs/cgroup/memory`. `None` when no
//! limit is set (or nothing can be read: no cgroup file system, a
//! container that hides it).

/// Longest file read (`/proc/self/cgroup` of a process in many
/// hierarchies fits; a longer one is cut, which only loses lines).
const FILE_MAX: usize = 2048;
/// Longest path built.
const PATH_MAX: usize = 512;
/// A v1 "unlimited" reads as a page-rounded `i64::MAX`; anything this
/// large is no limit.
const UNLIMITED: u64 = 1 << 60;

/// The smallest memory limit on the process's control group and its
/// ancestors, in bytes.
pub fn cgroup_memory_limit() -> Option<usize> {
    let mut buf = [0u8; FILE_MAX];
    let n = read_file(b"/proc/self/cgroup\0", &mut buf)?;
    let mut best: Option<u64> = None;
    for line in buf[..n].split(|&b| b == b'\n') {
        let mut parts = line.splitn(3, |&b| b == b':');
        let (Some(id), Some(controllers), Some(path)) = (parts.next(), parts.next(), parts.next())
        else {
            continue;
        };
        if id == b"0" && controllers.is_empty() {
            for base in [&b"/sys/fs/cgroup"[..], b"/sys/fs/cgroup/unified"] {
                best = min_opt(best, walk_up(base, path, &[b"memory.max", b"memory.high"]));
            }
        } else if controllers.split(|&b| b == b',').any(|c| c == b"memory") {
            let files: [&[u8]; 2] = [b"memory.limit_in_bytes", b"memory.soft_limit_in_bytes"];
            best = min_opt(best, walk_up(b"/sys/fs/cgroup/memory", path, &files));
        }
    }
    best.and_then(|b| usize::try_from(b).ok())
}

/// The smallest limit in `files` of the group `path` under `base` and of
/// each of its ancestors.
fn walk_up(base: &[u8], path: &[u8], files: &[&[u8]]) -> Option<u64> {
    let mut best = None;
    let mut path = path;
    loop {
        for &file in files {
            best = min_opt(best, read_limit(base, path, file));
        }
        match path.iter().rposition(|&b| b == b'/') {
            Some(0) if path.len() > 1 => path = b"/",
            Some(i) if i > 0 => path = &path[..i],
            _ => return best,
        }
    }
}

/// `base + path + "/" + file` as a number of bytes, if it holds one that
/// is a limit.
fn read_limit(base: &[u8], path: &[u8], file: &[u8]) -> Option<u64> {
    let mut p = [0u8; PATH_MAX];
    let mut len = 0;
    for part in [base, path, b"/", file] {
        let end = len + part.len();
        if end >= PATH_MAX {
            return None;
        }
        p[len..end].copy_from_slice(part);
        len = end;
    }
    p[len] = 0;
    let mut buf = [0u8; 64];
    let n = read_file(&p[..=len], &mut buf)?;
    let text = buf[..n].trim_ascii();
    let mut v: u64 = 0;
    if text.is_empty() {
        return None;
    }
    for &d in text {
        if !d.is_ascii_digit() {
            return None; // "max": no limit
        }
        v = v.checked_mul(10)?.checked_add(u64::from(d - b'0'))?;
    }
    (v < UNLIMITED).then_some(v)
}

fn min_opt(a: Option<u64>, b: Option<u64>) -> Option<u64> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

/// Reads up to `buf.len()` bytes of the file `path` (NUL-terminated).
///
/// Through the system calls themselves, not libc's `open`, `read` and
/// `close`: the first decay pass of every program reads these files, and
/// libc's wrappers lie in a 64 KiB window of its text that a small program
/// may otherwise never fault in (docs/performance.md, "Libc pages a small
/// program touches").
fn read_file(path: &[u8], buf: &mut [u8]) -> Option<usize> {
    debug_assert_eq!(path.last(), Some(&0));
    let flags = (libc::O_RDONLY | libc::O_CLOEXEC) as usize;
    // SAFETY: `path` is NUL-terminated; openat only reads it.
    let fd = unsafe {
        syscall3(
            libc::SYS_openat as usize,
            libc::AT_FDCWD as usize,
            path.as_ptr() as usize,
            flags,
        )
    };
    if fd < 0 {
        return None;
    }
    let mut n = 0;
    while n < buf.len() {
        // SAFETY: `read` writes at most `buf.len() - n` bytes at `buf[n..]`.
        let r = unsafe {
            syscall3(
                libc::SYS_read as usize,
                fd as usize,
                buf[n..].as_mut_ptr() as usize,
                buf.len() - n,
            )
        };
        if r <= 0 {
            break;
        }
        n += r as usize;
    }
    // SAFETY: the descriptor is ours, opened above and not used after.
    unsafe { syscall3(libc::SYS_close as usize, fd as usize, 0, 0) };
    Some(n)
}

/// System call `nr` with three arguments; a negative result is `-errno`.
///
/// # Safety
/// As the system call's own contract for these arguments.
#[cfg(target_arch = "x86_64")]
unsafe fn syscall3(nr: usize, a: usize, b: usize, c: usize) -> isize {
    let ret: isize;
    // SAFETY: the x86-64 Linux system call convention: number and result
    // in rax, arguments in rdi, rsi, rdx; the kernel clobbers rcx and r11.
    // The caller's contract covers what the call itself does to memory.
    unsafe {
        core::arch::asm!(
            "syscall",
            inlateout("rax") nr as isize => ret,
            in("rdi") a,
            in("rsi") b,
            in("rdx") c,
            lateout("rcx") _,
            lateout("r11") _,
            options(nostack),
        );
    }
    ret
}

/// System call `nr` with three arguments, through libc elsewhere; a
/// negative result is `-1` (errno is not read).
///
/// # Safety
/// As the system call's own contract for these arguments.
#[cfg(not(target_arch = "x86_64"))]
unsafe fn syscall3(nr: usize, a: usize, b: usize, c: usize) -> isize {
    // SAFETY: forwarded contract.
    unsafe { libc::syscall(nr as libc::c_long, a, b, c) as isize }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_limit_is_none_or_plausible() {
        // Whatever this machine's groups say, the answer is a real size.
        if let Some(l) = cgroup_memory_limit() {
            assert!(l >= 1 << 20, "{l}");
        }
    }

    #[test]
    fn unreadable_or_unlimited_files_are_no_limit() {
        assert_eq!(read_limit(b"/nonexistent", b"/x", b"memory.max"), None);
        assert_eq!(walk_up(b"/nonexistent", b"/a/b/c", &[b"memory.max"]), None);
        assert_eq!(min_opt(Some(3), None), Some(3));
        assert_eq!(min_opt(Some(3), Some(2)), Some(2));
    }
}
