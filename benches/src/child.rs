//! The one child-process runner of both benches: runs a closure in a forked
//! child process and brings back a few numbers.
//!
//! Memory behaviour (RSS, page faults, what an allocator keeps mapped) cannot
//! be compared inside one process: whatever one allocator left resident is
//! still there when the next one runs. [`run_in_child`] forks, runs the
//! closure in the child, sends its result back through a pipe as text (each
//! `f64` as the hex of its bits, so it round-trips exactly) and leaves with
//! `_exit`, so nothing of the child's heap, caches or exit handlers touches
//! the parent. [`run_interleaved`] runs every allocator that way, a number
//! of times each, interleaved; the main job's peak-RSS runs
//! ([`crate::rss`]) and the memory scenarios both go through it.
//!
//! Call it from a single-threaded parent that has not used the allocator
//! under test: only the calling thread exists in the child, and every
//! allocator's state starts as the parent's (untouched) state.

use std::io::Write as _;
use std::time::{Duration, Instant};

use crate::measure::{interleaved, median};

/// What a child run produced.
pub type ChildResult = Result<Vec<f64>, String>;

/// Every child run of one allocator on one workload.
#[derive(Clone, Debug)]
pub struct ChildRuns {
    /// Allocator label, e.g. "glibc" or "strata (no decay)".
    pub alloc: &'static str,
    /// One result per child run, in the order they ran.
    pub runs: Vec<ChildResult>,
}

impl ChildRuns {
    /// Per-column medians over the runs; the first error if any run failed.
    pub fn medians(&self) -> Result<Vec<f64>, String> {
        if self.runs.is_empty() {
            return Err("no child run".into());
        }
        let ok: Vec<&Vec<f64>> = self
            .runs
            .iter()
            .map(|r| r.as_ref().map_err(Clone::clone))
            .collect::<Result<_, _>>()?;
        let n = ok[0].len();
        if n == 0 || ok.iter().any(|v| v.len() != n) {
            return Err("no result".into());
        }
        Ok((0..n)
            .map(|c| median(&ok.iter().map(|v| v[c]).collect::<Vec<_>>()))
            .collect())
    }

    /// The median of column `c`; the first error if any run failed.
    pub fn median(&self, c: usize) -> Result<f64, String> {
        self.medians()?
            .get(c)
            .copied()
            .ok_or_else(|| "no result".into())
    }

    /// Smallest and largest value of column `c` over the successful runs.
    pub fn range(&self, c: usize) -> (f64, f64) {
        let vals = self.runs.iter().flatten().filter_map(|v| v.get(c).copied());
        vals.fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| {
            (lo.min(v), hi.max(v))
        })
    }
}

/// Runs `run(i)` for every allocator `allocs[i]`, `reps` times each, every
/// run in a child of its own ([`run_in_child`], killed after `timeout`),
/// in [`interleaved`] order. `ran` hears of each run as it ends (allocator
/// index, repetition, time taken, result), for progress lines.
pub fn run_interleaved(
    allocs: &[&'static str],
    reps: usize,
    timeout: Duration,
    run: impl Fn(usize) -> ChildResult,
    mut ran: impl FnMut(usize, usize, Duration, &ChildResult),
) -> Vec<ChildRuns> {
    let mut out: Vec<ChildRuns> = allocs
        .iter()
        .map(|&alloc| ChildRuns {
            alloc,
            runs: Vec::with_capacity(reps),
        })
        .collect();
    for (rep, i) in interleaved(allocs.len(), reps) {
        let t = Instant::now();
        let r = run_in_child(timeout, || run(i));
        ran(i, rep, t.elapsed(), &r);
        out[i].runs.push(r);
    }
    out
}

/// Encodes a result for the pipe: `ok <hex bits>...` or `err <message>`.
pub fn encode(r: &ChildResult) -> String {
    match r {
        Ok(values) => {
            let mut s = String::from("ok");
            for v in values {
                s.push_str(&format!(" {:x}", v.to_bits()));
            }
            s
        }
        Err(msg) => format!("err {}", msg.replace('\n', " ")),
    }
}

/// Decodes what [`encode`] wrote; a malformed message is an error.
pub fn decode(text: &str) -> ChildResult {
    let text = text.trim_end();
    if let Some(msg) = text.strip_prefix("err ") {
        return Err(msg.to_string());
    }
    let rest = text
        .strip_prefix("ok")
        .ok_or_else(|| format!("child sent no result ({} bytes)", text.len()))?;
    rest.split_whitespace()
        .map(|w| {
            u64::from_str_radix(w, 16)
                .map(f64::from_bits)
                .map_err(|_| format!("child sent a bad number {w:?}"))
        })
        .collect()
}

/// Writes all of `buf` to `fd`, retrying on EINTR and short writes.
fn write_fd(fd: libc::c_int, mut buf: &[u8]) {
    while !buf.is_empty() {
        // SAFETY: `buf` is a valid readable slice of `buf.len()` bytes.
        let n = unsafe { libc::write(fd, buf.as_ptr().cast(), buf.len()) };
        if n < 0 {
            if std::io::Error::last_os_error().kind() == std::io::ErrorKind::Interrupted {
                continue;
            }
            return;
        }
        buf = &buf[n as usize..];
    }
}

/// The child side: run `f`, report, and leave without unwinding or running
/// exit handlers.
fn child_main<F: FnOnce() -> ChildResult>(fd: libc::c_int, f: F) -> ! {
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f))
        .unwrap_or_else(|_| Err("panicked (message on stderr)".to_string()));
    write_fd(fd, encode(&result).as_bytes());
    // SAFETY: _exit ends the process immediately; it is always safe to call.
    unsafe { libc::_exit(0) }
}

/// Describes a `waitpid` status.
fn describe_status(status: libc::c_int) -> String {
    if libc::WIFSIGNALED(status) {
        format!("child killed by signal {}", libc::WTERMSIG(status))
    } else if libc::WIFEXITED(status) {
        format!("child exited with status {}", libc::WEXITSTATUS(status))
    } else {
        format!("child ended with wait status {status:#x}")
    }
}

/// Waits for `pid`, retrying on EINTR; returns its wait status.
fn wait_for(pid: libc::pid_t) -> libc::c_int {
    let mut status = 0;
    loop {
        // SAFETY: `pid` is our own child; `status` is a valid out-pointer.
        let rc = unsafe { libc::waitpid(pid, &mut status, 0) };
        if rc == pid || std::io::Error::last_os_error().kind() != std::io::ErrorKind::Interrupted {
            return status;
        }
    }
}

/// Reads the pipe until EOF or `timeout`; returns the bytes and whether it
/// timed out.
fn read_until_eof(fd: libc::c_int, timeout: Duration) -> (Vec<u8>, bool) {
    let deadline = Instant::now() + timeout;
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return (out, true);
        }
        let mut pfd = libc::pollfd {
            fd,
            events: libc::POLLIN,
            revents: 0,
        };
        let ms = left.as_millis().clamp(1, i32::MAX as u128) as libc::c_int;
        // SAFETY: `pfd` is one valid pollfd.
        let rc = unsafe { libc::poll(&mut pfd, 1, ms) };
        if rc <= 0 {
            continue; // timeout (checked above) or EINTR
        }
        // SAFETY: `buf` is a valid writable buffer of `buf.len()` bytes.
        let n = unsafe { libc::read(fd, buf.as_mut_ptr().cast(), buf.len()) };
        match n {
            0 => return (out, false),
            n if n > 0 => out.extend_from_slice(&buf[..n as usize]),
            _ if std::io::Error::last_os_error().kind() == std::io::ErrorKind::Interrupted => {}
            _ => return (out, false),
        }
    }
}

/// Runs `f` in a forked child and returns what it returned. A child that
/// crashes (signal, abort), panics, or runs past `timeout` (it is then killed
/// with SIGKILL) gives an error describing that.
pub fn run_in_child<F: FnOnce() -> ChildResult>(timeout: Duration, f: F) -> ChildResult {
    // Buffered output would otherwise be written twice.
    let _ = std::io::stdout().flush();
    let _ = std::io::stderr().flush();
    let mut fds = [0 as libc::c_int; 2];
    // SAFETY: `fds` is a valid array of two ints for pipe2 to fill.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(format!("pipe2: {}", std::io::Error::last_os_error()));
    }
    let (rd, wr) = (fds[0], fds[1]);
    // SAFETY: fork has no memory-safety preconditions; the child only runs
    // `child_main`, which ends in `_exit`. The caller is single-threaded (see
    // the module docs), so no lock is held by a thread that does not exist in
    // the child.
    let pid = unsafe { libc::fork() };
    if pid < 0 {
        let e = std::io::Error::last_os_error();
        // SAFETY: both descriptors are ours and open.
        unsafe {
            libc::close(rd);
            libc::close(wr);
        }
        return Err(format!("fork: {e}"));
    }
    if pid == 0 {
        // SAFETY: the read end is ours; the child does not need it.
        unsafe { libc::close(rd) };
        child_main(wr, f);
    }
    // SAFETY: the write end belongs to the child now; closing ours lets the
    // read see EOF when the child exits.
    unsafe { libc::close(wr) };
    let (bytes, timed_out) = read_until_eof(rd, timeout);
    if timed_out {
        // SAFETY: `pid` is our own child, still unreaped, so the id cannot
        // have been reused.
        unsafe { libc::kill(pid, libc::SIGKILL) };
    }
    // SAFETY: the read end is ours and open.
    unsafe { libc::close(rd) };
    let status = wait_for(pid);
    if timed_out {
        return Err(format!("timed out after {timeout:?} (child killed)"));
    }
    let text = String::from_utf8_lossy(&bytes);
    if text.is_empty() || !(libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0) {
        return Err(describe_status(status));
    }
    decode(&text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encoding_round_trips() {
        let values = vec![1.5, f64::NAN, -0.0, 1e300];
        let back = decode(&encode(&Ok(values.clone()))).unwrap();
        assert_eq!(back.len(), 4);
        assert!(back[1].is_nan());
        assert_eq!(back[3], 1e300);
        assert_eq!(
            decode(&encode(&Err("bad\nthing".into()))),
            Err("bad thing".into())
        );
        assert!(decode("garbage").is_err());
    }

    #[test]
    fn medians_and_ranges_of_runs() {
        let runs = ChildRuns {
            alloc: "strata",
            runs: vec![
                Ok(vec![3.0, 10.0]),
                Ok(vec![1.0, 30.0]),
                Ok(vec![2.0, 20.0]),
            ],
        };
        assert_eq!(runs.medians(), Ok(vec![2.0, 20.0]));
        assert_eq!(runs.median(1), Ok(20.0));
        assert_eq!(runs.range(0), (1.0, 3.0));
        let failed = ChildRuns {
            alloc: "glibc",
            runs: vec![Ok(vec![1.0]), Err("T2: broken".into())],
        };
        assert_eq!(failed.median(0), Err("T2: broken".into()));
        assert_eq!(failed.range(0), (1.0, 1.0));
    }

    #[test]
    fn runs_every_allocator_in_a_child_interleaved() {
        let mut order = Vec::new();
        let runs = run_interleaved(
            &["a", "b"],
            2,
            Duration::from_secs(20),
            |i| Ok(vec![i as f64, f64::from(std::process::id())]),
            |i, rep, _, r| order.push((i, rep, r.is_ok())),
        );
        assert_eq!(
            order,
            [(0, 0, true), (1, 0, true), (1, 1, true), (0, 1, true)]
        );
        assert_eq!((runs[1].alloc, runs[1].median(0)), ("b", Ok(1.0)));
        let mut pids = runs
            .iter()
            .flat_map(|r| &r.runs)
            .map(|r| r.as_ref().unwrap()[1]);
        assert!(
            pids.all(|p| p != f64::from(std::process::id())),
            "ran in the parent"
        );
    }

    #[test]
    fn child_results_errors_and_crashes() {
        let t = Duration::from_secs(20);
        let pid = std::process::id();
        let r = run_in_child(t, || Ok(vec![f64::from(std::process::id()), 2.0]));
        let v = r.unwrap();
        assert_ne!(v[0], f64::from(pid), "ran in the parent");
        assert_eq!(v[1], 2.0);
        assert_eq!(run_in_child(t, || Err("nope".into())), Err("nope".into()));
        // SAFETY: abort has no preconditions; it ends the child.
        let crash = run_in_child(t, || unsafe { libc::abort() });
        assert!(crash.unwrap_err().contains("signal"));
        let slow = run_in_child(Duration::from_millis(200), || {
            std::thread::sleep(Duration::from_secs(5));
            Ok(vec![])
        });
        assert!(slow.unwrap_err().contains("timed out"));
    }
}
