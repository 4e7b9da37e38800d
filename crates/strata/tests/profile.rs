//! The heap profiler end to end, in a child process (the profile is the
//! whole process's): two allocation sites with known live and total
//! bytes, sampled at 1 MiB over about 1 GiB allocated, dumped as collapsed
//! stacks and in pprof's format; each site's estimate of live bytes must
//! be within 10% of the truth, in the collapsed stacks, in the pprof
//! profile (read by the testkit's reader, always) and by `go tool pprof`
//! where `go` is on PATH.
//!
//! Why the sites hold what they hold: an estimate of `L` live bytes in
//! blocks much smaller than the interval `T` has a standard deviation of
//! about `sqrt(L * T)` (each sampled block stands for `T` bytes), and
//! blocks much larger than `T` are sampled nearly always and add little.
//! Site A keeps 300 MiB live: 40 MiB in blocks of 16 B..4 KiB, 20 MiB of
//! 8..256 KiB, 240 MiB of 2..8 MiB (standard deviation about 3% of 300
//! MiB; measured 1.5%); site B keeps 100 MiB: 1 + 1 MiB small and medium,
//! 98 MiB of 4..8 MiB (about 2%). So a 10% miss is a 3- to 5-sigma event;
//! a biased estimator (a wrong weight, a path that escapes sampling)
//! misses by far more. With all 100 MiB of site B in small blocks the
//! standard deviation would be 10%: docs/profiling.md.

use std::alloc::{alloc, dealloc, Layout};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use strata_testkit::rng::Rng;

#[global_allocator]
static A: strata::Strata = strata::Strata;

const MIB: usize = 1 << 20;

type Blocks = Vec<(*mut u8, Layout)>;

/// Allocates blocks of lo..=hi bytes aligned to `align` until `total`
/// bytes, keeping them (inlined: each site is its own function).
#[inline(always)]
fn fill(rng: &mut Rng, total: usize, (lo, hi): (usize, usize), align: usize, keep: &mut Blocks) {
    let mut done = 0;
    while done < total {
        let n = rng.range(lo, hi).min(total - done).max(1);
        let l = Layout::from_size_align(n, align).unwrap();
        // SAFETY: a non-zero layout.
        let p = unsafe { alloc(l) };
        assert!(!p.is_null());
        // SAFETY: the block has n >= 1 bytes.
        unsafe { p.write(1) };
        keep.push((p, l));
        done += n;
    }
}

#[inline(never)]
fn site_a(rng: &mut Rng, total: usize, lo: usize, hi: usize, keep: &mut Blocks) {
    fill(rng, total, (lo, hi), 8, keep);
}

#[inline(never)]
fn site_b(rng: &mut Rng, total: usize, lo: usize, hi: usize, keep: &mut Blocks) {
    fill(rng, total, (lo, hi), 16, keep);
}

fn free_all(v: &mut Blocks) {
    for (p, l) in v.drain(..) {
        // SAFETY: allocated above with this layout.
        unsafe { dealloc(p, l) };
    }
}

/// The workload: A allocates 600 MiB and keeps 300, B 400 and keeps 100.
fn workload() {
    // Seeded: the workload must not depend on the profiler's random numbers.
    let mut rng = Rng::new(0x1234_5678_9abc_def1);
    // Room reserved up front: a Vec growing inside a site would add to it.
    let (mut a, mut b, mut gone) = (
        Vec::with_capacity(1 << 20),
        Vec::with_capacity(1 << 20),
        Vec::with_capacity(1 << 20),
    );
    // Churn first: allocated and freed (300 MiB each).
    for _ in 0..3 {
        site_a(&mut rng, 60 * MIB, 16, 4096, &mut gone);
        site_a(&mut rng, 40 * MIB, 8 << 10, 1 << 20, &mut gone);
        free_all(&mut gone);
        site_b(&mut rng, 60 * MIB, 16, 4096, &mut gone);
        site_b(&mut rng, 40 * MIB, 8 << 10, 1 << 20, &mut gone);
        free_all(&mut gone);
    }
    // What stays.
    site_a(&mut rng, 40 * MIB, 16, 4096, &mut a);
    site_a(&mut rng, 20 * MIB, 8 << 10, 256 << 10, &mut a);
    site_a(&mut rng, 240 * MIB, 2 * MIB, 8 * MIB, &mut a);
    site_b(&mut rng, MIB, 16, 4096, &mut b);
    site_b(&mut rng, MIB, 8 << 10, 256 << 10, &mut b);
    site_b(&mut rng, 98 * MIB, 4 * MIB, 8 * MIB, &mut b);
    let dir = PathBuf::from(std::env::var("PROFILE_TEST_DIR").unwrap());
    strata::profile::dump(dir.join("heap.pb.gz")).unwrap();
    strata::profile::dump_collapsed(dir.join("inuse.collapsed"), strata::profile::Kind::InUse)
        .unwrap();
    strata::profile::dump_collapsed(dir.join("alloc.collapsed"), strata::profile::Kind::Alloc)
        .unwrap();
    strata::profile::dump_collapsed(dir.join("peak.collapsed"), strata::profile::Kind::Peak)
        .unwrap();
    let s = strata::profile::stats();
    eprintln!("profiler: {s:?}");
    std::fs::write(
        dir.join("stats"),
        format!("{} {} {}", s.mapped_bytes, s.pool_in_use, s.live_samples),
    )
    .unwrap();
    free_all(&mut a);
    free_all(&mut b);
}

/// Runs the workload when started as the child of `sites_are_estimated_within_ten_percent`.
#[test]
fn child_workload() {
    if std::env::var_os("PROFILE_TEST_DIR").is_none() {
        return;
    }
    strata::profile::set_interval(MIB);
    strata::profile::start();
    workload();
}

/// Bytes per site in a collapsed-stacks file.
fn per_site(file: &Path) -> HashMap<&'static str, f64> {
    let text = std::fs::read_to_string(file).unwrap();
    let mut m = HashMap::new();
    for line in text.lines() {
        let (stack, v) = line.rsplit_once(' ').unwrap();
        let v: f64 = v.parse().unwrap();
        for site in ["site_a", "site_b"] {
            if stack.contains(site) {
                *m.entry(site).or_insert(0.0) += v;
            }
        }
    }
    m
}

fn check(what: &str, got: Option<&f64>, truth: f64, tolerance: f64) {
    let got = got.copied().unwrap_or(0.0);
    let err = (got - truth) / truth;
    eprintln!(
        "{what}: estimated {:.1} MiB, truth {:.1} MiB ({:+.1}%)",
        got / MIB as f64,
        truth / MIB as f64,
        err * 100.0
    );
    assert!(err.abs() <= tolerance, "{what}: {:+.1}% off", err * 100.0);
}

/// A pprof `-top -cum` value like `300.52MB` in bytes.
fn pprof_bytes(s: &str) -> Option<f64> {
    let i = s.find(|c: char| c.is_ascii_alphabetic())?;
    let v: f64 = s[..i].parse().ok()?;
    let m = match &s[i..] {
        "B" => 1.0,
        "kB" => 1024.0,
        "MB" => 1024.0 * 1024.0,
        "GB" => 1024.0 * 1024.0 * 1024.0,
        _ => return None,
    };
    Some(v * m)
}

#[test]
fn sites_are_estimated_within_ten_percent() {
    let dir = std::env::temp_dir().join(format!("strata-profile-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let out = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "child_workload",
            "--nocapture",
            "--test-threads=1",
        ])
        .env("PROFILE_TEST_DIR", &dir)
        .output()
        .unwrap();
    eprintln!("{}", String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "child failed");

    let inuse = per_site(&dir.join("inuse.collapsed"));
    check("site A live", inuse.get("site_a"), 300.0 * MIB as f64, 0.10);
    check("site B live", inuse.get("site_b"), 100.0 * MIB as f64, 0.10);
    let peak = per_site(&dir.join("peak.collapsed"));
    check(
        "site A at the peak",
        peak.get("site_a"),
        300.0 * MIB as f64,
        0.10,
    );
    // Totals are dominated by small blocks (more variance): 20%.
    let total = per_site(&dir.join("alloc.collapsed"));
    check(
        "site A allocated",
        total.get("site_a"),
        600.0 * MIB as f64,
        0.20,
    );
    check(
        "site B allocated",
        total.get("site_b"),
        400.0 * MIB as f64,
        0.20,
    );

    // The profiler's own memory: its tables and the pool slots beyond the
    // sampled blocks' own bytes, against the 400 MiB live.
    let stats = std::fs::read_to_string(dir.join("stats")).unwrap();
    let mapped: usize = stats.split(' ').next().unwrap().parse().unwrap();
    eprintln!(
        "profiler memory: {:.2} MiB mapped",
        mapped as f64 / MIB as f64
    );

    // The pprof profile says the same: the testkit's reader (function
    // names are mangled: a site is the function whose name has it).
    let heap = dir.join("heap.pb.gz");
    let profile = strata_testkit::pprof::read(&heap).unwrap();
    let cum = profile.cum_by_function("inuse_space").unwrap();
    let named = |site: &str| {
        let mut hits = cum.iter().filter(|(name, _)| name.contains(site));
        let (name, &v) = hits.next()?;
        assert!(hits.next().is_none(), "more than {name} names {site}");
        Some(v as f64)
    };
    for (site, truth) in [("site_a", 300.0), ("site_b", 100.0)] {
        check(
            &format!("profile: {site} live"),
            named(site).as_ref(),
            truth * MIB as f64,
            0.10,
        );
    }

    // And pprof itself, where it is installed.
    if Command::new("go").arg("version").output().is_err() {
        eprintln!(
            "SKIPPED the pprof check: no `go` on PATH (the testkit's reader checked the profile)"
        );
    } else {
        let out = Command::new("go")
            .args(["tool", "pprof", "-top", "-cum", "-sample_index=inuse_space"])
            .arg(&heap)
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "pprof failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        eprintln!("{text}");
        let mut cum = HashMap::new();
        for line in text.lines() {
            let cols: Vec<&str> = line.split_whitespace().collect();
            for site in ["site_a", "site_b"] {
                if cols.len() >= 6 && cols[5..].join(" ").contains(site) {
                    cum.insert(site, pprof_bytes(cols[3]).unwrap());
                }
            }
        }
        check(
            "pprof: site A live",
            cum.get("site_a"),
            300.0 * MIB as f64,
            0.10,
        );
        check(
            "pprof: site B live",
            cum.get("site_b"),
            100.0 * MIB as f64,
            0.10,
        );
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Every allocation sampled (interval 1), then resized and freed through
/// the global allocator and through `strata::raw` (the C ABI's paths):
/// each block is one of the profiler's, and every path must hand it to the
/// profiler (the checked build's included, whose own checks would call a
/// pool block never allocated).
#[test]
fn sampled_blocks_resize_and_free_cleanly() {
    if std::env::var_os("PROFILE_TEST_EVERY_BLOCK").is_some() {
        let mut rng = Rng::new(7);
        let mut blocks = Vec::with_capacity(4096);
        strata::profile::set_interval(1);
        strata::profile::start();
        for _ in 0..4096 {
            let n = rng.range(1, 600 << 10);
            let l = Layout::from_size_align(n, 8).unwrap();
            // SAFETY: a non-zero layout.
            let p = unsafe { alloc(l) };
            assert!(!p.is_null());
            blocks.push((p, l));
        }
        assert!(strata::profile::stats().live_samples >= 4000);
        for (p, l) in blocks.iter_mut() {
            let n = l.size() / 2 + 1;
            // SAFETY: allocated above with `l`; a non-zero new size.
            *p = unsafe { std::alloc::realloc(*p, *l, n) };
            assert!(!p.is_null());
            *l = Layout::from_size_align(n, 8).unwrap();
        }
        // And through the C ABI's paths (usable size, realloc, free).
        let mut raw = Vec::with_capacity(1024);
        for _ in 0..1024 {
            let p = strata::raw::malloc(rng.range(1, 4096));
            assert!(!p.is_null());
            raw.push(p);
        }
        for p in raw.iter_mut() {
            // SAFETY: live blocks of strata's.
            unsafe {
                let n = strata::raw::usable_size(*p);
                assert!(n > 0);
                *p = strata::raw::realloc(*p, n + 1, 8);
                assert!(!p.is_null());
            }
        }
        for p in raw {
            // SAFETY: as above.
            unsafe { strata::raw::free(p) };
        }
        strata::profile::stop();
        free_all(&mut blocks);
        // Every record went with its block (the test harness may hold a
        // sampled block or two of its own).
        let left = strata::profile::stats().live_samples;
        assert!(left < 8, "{left} records left");
        return;
    }
    let out = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "sampled_blocks_resize_and_free_cleanly",
            "--nocapture",
            "--test-threads=1",
        ])
        .env("PROFILE_TEST_EVERY_BLOCK", "1")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && !stderr.contains("strata: "),
        "{stderr}"
    );
}
