//! How the shared library is linked, for a small program's footprint
//! (docs/performance.md, "Memory that follows the live heap"):
//!
//! - **GCC's unwinder inside.** `libgcc_eh.a` is linked in whole, so the
//!   library does not load `libgcc_s.so` into every program it is preloaded
//!   in (about 80 KiB resident). Rust's standard library needs an unwinder
//!   for its panic machinery, and the profiler's fallback stack walk uses
//!   it; strata never unwinds across its C entry points. Its symbols stay
//!   local (a cdylib exports only the C ABI), so a C++ program's exceptions
//!   still go through the program's own `libgcc_s`.
//! - **Hot code first.** `layout/hot.ld` (written by `layout/generate.sh`)
//!   puts the functions small programs run, and the PLT, at the start of
//!   the text. The kernel maps a library's text 64 KiB around each page a
//!   program first runs; scattered through 450 KiB, strata's 40 KiB of
//!   common code made about 400 KiB resident, and grouped about 100. The
//!   script only inserts an output section (`INSERT BEFORE .text`), which
//!   GNU ld and lld accept; mold and gold do not, so it is left out when
//!   `RUSTFLAGS` pick either.
//!
//! Both only for GNU/Linux targets; `STRATA_PLAIN_LINK=1` at build time
//! links the library as Rust does by default.

use std::path::{Path, PathBuf};
use std::process::Command;

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-changed=layout/hot.ld");
    println!("cargo:rerun-if-env-changed=STRATA_PLAIN_LINK");
    println!("cargo:rerun-if-env-changed=CC");
    let var = |k: &str| std::env::var(k).unwrap_or_default();
    if var("CARGO_CFG_TARGET_OS") != "linux"
        || var("CARGO_CFG_TARGET_ENV") != "gnu"
        || var("STRATA_PLAIN_LINK") == "1"
    {
        return;
    }
    if let Some(archive) = libgcc_eh() {
        println!(
            "cargo:rustc-cdylib-link-arg=-Wl,--whole-archive,{},--no-whole-archive",
            archive.display()
        );
    }
    let flags = var("CARGO_ENCODED_RUSTFLAGS");
    if !flags.contains("mold") && !flags.contains("gold") {
        let script = Path::new(&var("CARGO_MANIFEST_DIR")).join("layout/hot.ld");
        println!("cargo:rustc-cdylib-link-arg=-Wl,-T,{}", script.display());
    }
}

/// GCC's static unwinder, if the C compiler knows it.
fn libgcc_eh() -> Option<PathBuf> {
    let cc = std::env::var("CC").unwrap_or_else(|_| "cc".into());
    let out = Command::new(cc)
        .arg("-print-file-name=libgcc_eh.a")
        .output()
        .ok()?;
    // A compiler without the archive prints its bare name back.
    let path = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
    (out.status.success() && path.is_absolute() && path.exists()).then_some(path)
}
