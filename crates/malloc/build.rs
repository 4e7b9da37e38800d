//! Links GCC's unwinder (`libgcc_eh.a`) into the shared library, so that
//! it does not load `libgcc_s.so` into every program it is preloaded in:
//! about 80 KiB less resident in a small program (docs/performance.md).
//! Rust's standard library needs an unwinder for its panic machinery;
//! strata never unwinds across its C entry points. The unwinder's symbols
//! stay local (a cdylib exports only the C ABI), so a C++ program's
//! exceptions still go through its own `libgcc_s`.
//!
//! Only where the C compiler knows the archive (GNU toolchains on Linux);
//! elsewhere, and with `STRATA_DYNAMIC_LIBGCC=1`, the library links
//! `libgcc_s` as Rust does by default.

use std::path::PathBuf;
use std::process::Command;

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-env-changed=STRATA_DYNAMIC_LIBGCC");
    println!("cargo:rerun-if-env-changed=CC");
    let var = |k: &str| std::env::var(k).unwrap_or_default();
    if var("CARGO_CFG_TARGET_OS") != "linux"
        || var("CARGO_CFG_TARGET_ENV") != "gnu"
        || var("STRATA_DYNAMIC_LIBGCC") == "1"
    {
        return;
    }
    let cc = std::env::var("CC").unwrap_or_else(|_| "cc".into());
    let Ok(out) = Command::new(cc)
        .arg("-print-file-name=libgcc_eh.a")
        .output()
    else {
        return;
    };
    // A compiler without the archive prints its bare name back.
    let path = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
    if out.status.success() && path.is_absolute() && path.exists() {
        println!(
            "cargo:rustc-cdylib-link-arg=-Wl,--whole-archive,{},--no-whole-archive",
            path.display()
        );
    }
}
