//! The C ABI of `libstrata_malloc.so`: builds the library, compiles
//! `tests/c/abi_test.c` with the system `cc`, and runs it under
//! `LD_PRELOAD`. The C program checks every exported function's contract
//! (see the comments there); this file checks that it ran to the end.

mod common;

use common::{assert_success, have, run, Alloc, Scratch};
use std::path::Path;
use std::process::Command;

/// Compiles the C test program into `dir`, or says why it cannot.
fn abi_test_binary(dir: &Path) -> Option<std::path::PathBuf> {
    if !have("cc") {
        eprintln!(
            "SKIPPED: no C compiler `cc` on PATH; install gcc or clang to run the C ABI test"
        );
        return None;
    }
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/c/abi_test.c");
    let exe = dir.join("abi_test");
    // The checked build answers `malloc_usable_size` with the size asked
    // for, not the class's (docs/safety.md).
    let build = if cfg!(feature = "checked") {
        "-DSTRATA_CHECKED=1"
    } else {
        "-DSTRATA_CHECKED=0"
    };
    common::compile_c(&src, &exe, &["-ldl", build]);
    Some(exe)
}

/// Runs the C program under strata with `args` and `env` (in a scratch
/// directory named after `name`) and checks that it ran to the end: it
/// exited 0 and said "ALL OK". Returns its stdout, its stderr and how long
/// it took; `None` if it cannot be built here.
fn passes_under_strata(
    name: &str,
    args: &[&str],
    env: &[(&str, &str)],
) -> Option<(String, String, std::time::Duration)> {
    let dir = Scratch::new(name);
    let exe = abi_test_binary(dir.path())?;
    let mut cmd = Command::new(&exe);
    cmd.args(args).envs(env.iter().copied());
    let (out, took) = run(&mut cmd, Alloc::Strata, None);
    assert_success(name, Alloc::Strata, &out);
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(
        stdout.contains("ALL OK"),
        "{name} did not report success:\n{stdout}\n{stderr}"
    );
    Some((stdout, stderr, took))
}

#[test]
fn c_programs_get_glibc_semantics_from_strata() {
    let Some((stdout, stderr, took)) = passes_under_strata("abi", &[], &[]) else {
        return;
    };
    assert!(
        stdout.contains(" 0 failed"),
        "abi_test did not report success:\n{stdout}"
    );
    assert!(
        !stderr.contains("FAIL"),
        "abi_test reported failures:\n{stderr}"
    );
    eprintln!("abi_test under strata: {took:?}; {}", stdout.trim());
}

#[test]
fn c_abi_holds_with_eager_release_and_a_tiny_thread_cache() {
    // The same checks with every slow path busy: a 64 KiB thread cache
    // (constant refills and overflows), free memory released at once, and a
    // background release thread running across the forks.
    passes_under_strata(
        "abi-config",
        &[],
        &[
            ("STRATA_THREAD_CACHE_BYTES", "64k"),
            ("STRATA_DECAY_MS", "0"),
            ("STRATA_BACKGROUND_RELEASE", "1"),
        ],
    );
}

#[test]
fn a_child_forked_by_a_thread_that_never_allocated_can_allocate() {
    // strata registers its fork handlers when the process gets its second
    // thread (global.rs), not at the first allocation: here only the main
    // thread allocates, and the thread that forks never does. Without the
    // handlers in place, some children hang on a lock the main thread held
    // (6 of 100 in one run with the registration taken out).
    passes_under_strata(
        "abi-fork-quiet",
        &["fork_quiet"],
        &[("STRATA_THREAD_CACHE_BYTES", "64k")],
    );
}

#[test]
fn the_c_program_notices_when_strata_is_absent() {
    // Without LD_PRELOAD the same program must fail: proof that its checks
    // (symbol resolution, size classes) tell strata from glibc.
    let dir = Scratch::new("abi-glibc");
    let Some(exe) = abi_test_binary(dir.path()) else {
        return;
    };
    let (out, _) = run(Command::new(&exe).arg("resolve"), Alloc::Glibc, None);
    assert!(!out.status.success(), "abi_test passed under glibc");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("  malloc does not resolve to libstrata_malloc.so"),
        "unexpected failures under glibc:\n{stderr}"
    );
}

#[test]
fn show_stats_prints_statistics_at_exit() {
    let dir = Scratch::new("abi-stats");
    let Some(exe) = abi_test_binary(dir.path()) else {
        return;
    };
    let mut cmd = Command::new(&exe);
    cmd.arg("stats").env("STRATA_SHOW_STATS", "1");
    let (out, _) = run(&mut cmd, Alloc::Strata, None);
    assert_success("abi_test stats", Alloc::Strata, &out);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("strata: statistics") && stderr.contains("mmap calls"),
        "no statistics on stderr:\n{stderr}"
    );
    // And nothing is printed without the variable.
    let mut cmd = Command::new(&exe);
    cmd.arg("stats").env_remove("STRATA_SHOW_STATS");
    let (out, _) = run(&mut cmd, Alloc::Strata, None);
    assert_success("abi_test stats", Alloc::Strata, &out);
    assert!(!String::from_utf8_lossy(&out.stderr).contains("strata: statistics"));
    // `malloc_stats()` prints them on request.
    let mut cmd = Command::new(&exe);
    cmd.arg("malloc_stats").env_remove("STRATA_SHOW_STATS");
    let (out, _) = run(&mut cmd, Alloc::Strata, None);
    assert_success("abi_test malloc_stats", Alloc::Strata, &out);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("strata: statistics") && stderr.contains("large block moves"),
        "malloc_stats printed no statistics:
{stderr}"
    );
}

#[test]
fn the_pair_loop_of_the_readme_runs() {
    // tests/c/pair_loop.c is the README's callgrind subject; keep it working.
    if !have("cc") {
        eprintln!("SKIPPED: no C compiler `cc` on PATH");
        return;
    }
    let dir = Scratch::new("pair-loop");
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/c/pair_loop.c");
    let exe = dir.path().join("pair_loop");
    common::compile_c(&src, &exe, &[]);
    for size in ["0", "32", "5000", "300000"] {
        let (out, _) = run(
            Command::new(&exe).args(["100000", size]),
            Alloc::Strata,
            None,
        );
        assert_success("pair_loop", Alloc::Strata, &out);
    }
}

/// The library's thread slot is initial-exec TLS (`STATIC_TLS`): it must
/// still load with `dlopen` into a running program, from glibc's static TLS
/// surplus, and work on threads that existed before it was loaded and on
/// new ones. (The program's own `malloc` stays glibc's: `RTLD_LOCAL`.)
#[test]
fn the_library_loads_with_dlopen_and_serves_every_thread() {
    use std::ffi::CString;
    let so = CString::new(common::strata_so().to_str().unwrap()).unwrap();
    // SAFETY: dlopen of a shared library built by this test run.
    let handle = unsafe { libc::dlopen(so.as_ptr(), libc::RTLD_NOW | libc::RTLD_LOCAL) };
    assert!(!handle.is_null(), "dlopen failed: {:?}", unsafe {
        // SAFETY: dlerror returns a C string or null.
        std::ffi::CStr::from_ptr(libc::dlerror())
    });
    type Malloc = unsafe extern "C" fn(usize) -> *mut u8;
    type Free = unsafe extern "C" fn(*mut u8);
    type Usable = unsafe extern "C" fn(*mut u8) -> usize;
    // SAFETY: symbols the library exports with these C signatures.
    let (malloc, free, usable) = unsafe {
        let sym = |n: &str| {
            let n = CString::new(n).unwrap();
            let p = libc::dlsym(handle, n.as_ptr());
            assert!(!p.is_null(), "{n:?} not exported");
            p
        };
        (
            std::mem::transmute::<*mut libc::c_void, Malloc>(sym("malloc")),
            std::mem::transmute::<*mut libc::c_void, Free>(sym("free")),
            std::mem::transmute::<*mut libc::c_void, Usable>(sym("malloc_usable_size")),
        )
    };
    let work = move |seed: u8| {
        let mut blocks = Vec::new();
        for i in 0..2000usize {
            let size = 1 + (i * 37) % 5000;
            // SAFETY: the library's malloc; the block is written within its size.
            let p = unsafe { malloc(size) };
            assert!(!p.is_null());
            // SAFETY: as above.
            unsafe {
                assert!(usable(p) >= size);
                p.write_bytes(seed, size);
            }
            blocks.push((p as usize, size));
        }
        for (p, size) in blocks {
            // SAFETY: live blocks of the library, freed once.
            unsafe {
                let s = std::slice::from_raw_parts(p as *const u8, size);
                assert!(s.iter().all(|&b| b == seed));
                free(p as *mut u8);
            }
        }
    };
    work(1);
    let threads: Vec<_> = (2..6u8)
        .map(|s| std::thread::spawn(move || work(s)))
        .collect();
    for t in threads {
        t.join().unwrap();
    }
}

/// Out of memory under an address-space limit set before the program
/// starts: NULL and `ENOMEM` from every allocation function, no abort, and
/// the memory comes back after it is freed (`tests/c/out_of_memory.c`).
#[test]
fn out_of_memory_is_null_and_enomem_and_memory_comes_back() {
    use std::os::unix::process::CommandExt;
    if !have("cc") {
        eprintln!("SKIPPED: no C compiler `cc` on PATH");
        return;
    }
    let dir = Scratch::new("oom");
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/c/out_of_memory.c");
    let exe = dir.path().join("out_of_memory");
    common::compile_c(&src, &exe, &[]);
    let limit = libc::rlimit {
        rlim_cur: 768 << 20,
        rlim_max: libc::RLIM_INFINITY,
    };
    let mut cmd = Command::new(&exe);
    // SAFETY: setrlimit is async-signal-safe and reads only `limit`.
    unsafe {
        cmd.pre_exec(move || {
            if libc::setrlimit(libc::RLIMIT_AS, &limit) == 0 {
                Ok(())
            } else {
                Err(std::io::Error::last_os_error())
            }
        });
    }
    let (out, _) = run(&mut cmd, Alloc::Strata, None);
    assert_success("out_of_memory", Alloc::Strata, &out);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("ALL OK"), "{stdout}");
    eprintln!("{stdout}");
}

/// A C++ program's exceptions unwind through frames that allocate, with
/// strata preloaded: the unwinder linked into the library (`build.rs`) is
/// local to it, so the program's own `libgcc_s` does the unwinding.
#[test]
fn cpp_exceptions_unwind_under_the_library() {
    if !have("c++") {
        eprintln!("SKIPPED: no C++ compiler `c++` on PATH");
        return;
    }
    let dir = Scratch::new("exceptions");
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/c/exceptions.cc");
    let exe = dir.path().join("exceptions");
    common::compile_cxx(&src, &exe);
    let (out, _) = run(&mut Command::new(&exe), Alloc::Strata, None);
    assert_success("exceptions", Alloc::Strata, &out);
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "caught 10000");
}
