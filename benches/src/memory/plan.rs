//! The scenarios' parameters in each [`Mode`].

use std::time::Duration;

use super::{Kind, Spec};
use crate::mode::Mode;
use crate::units::{bytes, GIB, MIB};

/// The scenarios for `mode`, in report order.
pub fn specs(mode: Mode) -> Vec<Spec> {
    let reps = mode.pick(3, 1, 1);
    let ms = |f, q, s| Duration::from_millis(mode.pick(f, q, s));
    // `secs`: how long one child run may take beyond a minute of margin.
    let spec = |id, name, title: String, reps, secs: u64, kind| Spec {
        id,
        name,
        title,
        reps,
        timeout: Duration::from_secs(secs + 60),
        kind,
    };
    let mut v = Vec::new();

    let sizes = match mode {
        Mode::Smoke => vec![64 * MIB, 256 * MIB],
        _ => vec![64 * MIB, 256 * MIB, GIB, 4 * GIB],
    };
    let labels: Vec<String> = sizes.iter().map(|&s| bytes(s)).collect();
    let (iters, budget) = (mode.pick(200, 50, 3), ms(1500, 500, 1000));
    let title = format!(
        "alloc_zeroed + dealloc of {}, untouched, x {iters} each (budget {budget:?} a size)",
        labels.join(", ")
    );
    let secs = 2 * sizes.len() as u64;
    let kind = Kind::ZeroedFlat {
        sizes,
        iters,
        budget,
    };
    v.push(spec("T1", "alloc_zeroed flat", title, reps, secs, kind));

    let (size, iters, budget) = (
        100_000_000,
        mode.pick(10_000, 1_000, 10),
        ms(5000, 2000, 1000),
    );
    let title = format!("{iters} x alloc_zeroed(100 MB) + dealloc, never touched");
    let kind = Kind::CallocLoop {
        size,
        iters,
        budget,
    };
    v.push(spec("T2", "calloc 100 MB loop", title, reps, 5, kind));

    let (cycles, budget) = (mode.pick(2_000, 300, 5), ms(6000, 3000, 1000));
    let title = format!("{cycles} x (alloc 8 MiB, copy a 1920x1080x4 frame in, dealloc)");
    let kind = Kind::FrameLoop {
        block: 8 * MIB,
        cycles,
        budget,
    };
    v.push(spec("T3", "8 MB frame loop", title, reps, 15, kind));

    let (cycles, budget) = (mode.pick(500, 100, 5), ms(5000, 2000, 1000));
    let title =
        format!("{cycles} x (alloc_zeroed(64 MiB), write 1 byte in page (i*37) % 16384, dealloc)");
    let kind = Kind::DirtyCalloc {
        size: 64 * MIB,
        cycles,
        budget,
    };
    v.push(spec("T4", "dirty calloc 64 MB", title, reps, 5, kind));

    let total = mode.pick(GIB, GIB, 64 * MIB);
    let title = format!(
        "{} as {} blocks of 64 KiB, every page written, all freed, then release",
        bytes(total),
        total >> 16
    );
    let kind = Kind::Release {
        block: 64 << 10,
        total,
    };
    v.push(spec("T5", "release 64 KiB blocks", title, reps, 0, kind));

    // T6 and its siblings: the same burst in blocks of three sizes, then
    // one small call a millisecond, or none at all with the allocator's
    // background thread on.
    let seconds = mode.pick(5, 2, 1);
    let bursts = [
        ("T6", "decay 256 KiB blocks", 256 << 10, true),
        ("T6b", "decay 64 KiB blocks", 64 << 10, true),
        ("T6c", "decay 2 KiB blocks", 2 << 10, true),
        ("T6d", "decay 256 KiB blocks, no calls", 256 << 10, false),
        ("T6e", "decay 64 KiB blocks, no calls", 64 << 10, false),
        ("T6f", "decay 2 KiB blocks, no calls", 2 << 10, false),
    ];
    for (id, name, block, calls) in bursts {
        let after = if calls {
            format!("{seconds} s of one retained 64 B alloc per ms")
        } else {
            format!("{seconds} s of no call at all, background release on (strata, jemalloc)")
        };
        let title = format!(
            "{} as {} blocks of {} written and freed, then {after}, no release call",
            bytes(total),
            total / block,
            bytes(block)
        );
        let kind = Kind::Decay {
            block,
            total,
            seconds,
            calls,
        };
        v.push(spec(id, name, title, 1, seconds, kind));
    }

    let size = mode.pick(256 * MIB, 256 * MIB, 8 * MIB);
    let title = format!(
        "alloc {}, populate (strata), then write 1 byte per 4 KiB page",
        bytes(size)
    );
    v.push(spec(
        "T7",
        "populate 256 MB",
        title,
        reps,
        0,
        Kind::Populate { size },
    ));

    let (from, to) = (
        mode.pick(64 * MIB, 64 * MIB, MIB),
        mode.pick(GIB, GIB, 4 * MIB),
    );
    let title = format!(
        "alloc {} with a pattern, realloc doubling to {}, new half written each step, \
         pattern verified",
        bytes(from),
        bytes(to)
    );
    let kind = Kind::ReallocDoubling { from, to };
    v.push(spec(
        "T8",
        "realloc doubling 64 MB→1 GiB",
        title,
        reps,
        0,
        kind,
    ));
    v
}
