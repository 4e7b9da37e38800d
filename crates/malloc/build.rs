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
//!   script describes `.text` and inserts it after `.fini`, and lld puts
//!   every other text input section after the listed ones, in the same
//!   output section (valgrind reads symbols from `.text` only). GNU ld
//!   would make a second `.text` instead, so the script is used only where
//!   the linker is Rust's own lld: x86-64 Linux from Rust 1.90 on, with
//!   no other linker chosen. The same script puts the few statics every
//!   program writes outside the static heap first in `.bss`, on the page
//!   the end of `.data` makes resident anyway.
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
    println!("cargo:rerun-if-env-changed=RUSTC_LINKER");
    if var("CARGO_CFG_TARGET_OS") != "linux"
        || var("CARGO_CFG_TARGET_ENV") != "gnu"
        || var("STRATA_PLAIN_LINK") == "1"
    {
        return;
    }
    // The `rustc-env` variables tell tests/footprint.rs what is in effect.
    if let Some(archive) = libgcc_eh() {
        println!(
            "cargo:rustc-cdylib-link-arg=-Wl,--whole-archive,{},--no-whole-archive",
            archive.display()
        );
        println!("cargo:rustc-env=STRATA_UNWINDER_INSIDE=1");
    }
    if links_with_rust_lld() {
        let script = Path::new(&var("CARGO_MANIFEST_DIR")).join("layout/hot.ld");
        println!("cargo:rustc-cdylib-link-arg=-Wl,-T,{}", script.display());
        println!("cargo:rustc-env=STRATA_HOT_LAYOUT=1");
    }
}

/// An environment variable of the build, empty if unset.
fn var(k: &str) -> String {
    std::env::var(k).unwrap_or_default()
}

/// Whether the library is linked by Rust's own lld: rustc's default on
/// x86-64 Linux from 1.90, unless a linker or linker flavour was chosen.
fn links_with_rust_lld() -> bool {
    if var("TARGET") != "x86_64-unknown-linux-gnu" || std::env::var_os("RUSTC_LINKER").is_some() {
        return false;
    }
    let flags = var("CARGO_ENCODED_RUSTFLAGS");
    let chosen = ["fuse-ld", "linker", "link-self-contained"];
    if chosen.iter().any(|f| flags.contains(f)) {
        return false;
    }
    let Ok(out) = Command::new(var("RUSTC")).arg("-vV").output() else {
        return false;
    };
    // "release: 1.95.0" (or "1.95.0-nightly").
    let text = String::from_utf8_lossy(&out.stdout);
    let minor = text
        .lines()
        .find_map(|l| l.strip_prefix("release: 1."))
        .and_then(|v| v.split(['.', '-']).next()?.parse::<u32>().ok());
    minor.is_some_and(|m| m >= 90)
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
