//! Runs operations against a real central layer over a real page heap, and
//! the shadow model.
//!
//! Per operation: how many objects a batch returns (what is parked, up to
//! the request, topped up from the spans; else what the spans have, else a
//! new span's worth), that returned lists are null-terminated, each object's alignment,
//! span, class and place in its span, no overlap with any live object,
//! contents unchanged until freed, where freed batches go, and that draining
//! the transfer caches returns every empty span. After every step,
//! [`Model::check`].

use std::ptr;

use strata_central::{class_size_of, Central, ClassStats, CLASSES, NUM_CLASSES};
use strata_pageheap::{PageHeap, SpanState, PAGE_SIZE};

use super::model::{fill, Model, Under};
use super::os::TestOs;
use super::{Limits, Op};

/// Runs `ops` on a fresh central layer over a fresh page heap over a fresh
/// `O`, checking every step, then frees everything and checks that every
/// span went back.
pub fn run_ops<O: TestOs>(ops: &[Op], limits: &Limits) {
    run_ops_on(O::fresh(), ops, limits);
}

/// [`run_ops`] over a given OS layer (a `FakeOs` with 16 or 64 KiB pages).
pub fn run_ops_on<O: TestOs>(os: O, ops: &[Op], limits: &Limits) {
    let central = Central::new(PageHeap::new(os));
    let mut m = Model::new();
    for op in ops {
        step(&central, &mut m, op, limits);
        m.check(&central);
    }
    for class in 1..NUM_CLASSES as u8 {
        let batch = CLASSES[class as usize].batch as usize;
        while m.count(class) > 0 {
            let k = m.count(class).min(batch);
            free_batch(&central, &mut m, class, 0, k, false);
        }
    }
    m.check(&central);
    drain(&central, &m);
    let heap = central.pages();
    assert_eq!(heap.stats().in_use_bytes, 0, "spans left in use");
    heap.release_free_memory();
    let st = heap.stats();
    assert_eq!(st.free_clean_bytes, st.mapped_bytes);
}

/// An operation's object count for a class with batch `batch`.
fn count(n: u8, batch: usize) -> usize {
    if n == 0 {
        batch
    } else {
        1 + (n as usize - 1) % (2 * batch)
    }
}

fn step<O: TestOs>(central: &Under<O>, m: &mut Model, op: &Op, limits: &Limits) {
    let heap = central.pages();
    match *op {
        Op::AllocBatch { class, n } => {
            let batch = CLASSES[class as usize].batch as usize;
            alloc(central, m, class, count(n, batch), false, limits);
        }
        Op::AllocOne { class } => alloc(central, m, class, 1, true, limits),
        Op::FreeBatch {
            class,
            n,
            start,
            reverse,
        } => {
            let batch = CLASSES[class as usize].batch as usize;
            let k = count(n, batch).min(m.count(class));
            if k > 0 {
                free_batch(central, m, class, start as usize, k, reverse);
            }
        }
        Op::FreeOne { class, pick } => {
            if m.count(class) > 0 {
                let obj = m.take(class, pick as usize, 1)[0];
                // SAFETY: a live object of this class, given up.
                unsafe { central.free_one(class, obj as *mut u8) };
            }
        }
        Op::Drain => drain(central, m),
        Op::Advance { ms } => {
            heap.os().advance(ms);
            heap.tick();
        }
        Op::Release => {
            heap.release_free_memory();
            assert_eq!(heap.stats().free_dirty_bytes, 0);
            m.check_contents();
        }
    }
}

fn alloc<O: TestOs>(
    central: &Under<O>,
    m: &mut Model,
    class: u8,
    n: usize,
    one: bool,
    limits: &Limits,
) {
    if central.pages().stats().mapped_bytes >= limits.max_mapped_bytes {
        return;
    }
    let info = &CLASSES[class as usize];
    let before = central.class_stats(class);
    let objs: Vec<*mut u8> = if one {
        central
            .alloc_one(class)
            .map(|p| p.as_ptr())
            .into_iter()
            .collect()
    } else {
        let mut out = vec![ptr::null_mut(); n];
        let got = central.alloc_batch(class, &mut out);
        out.truncate(got);
        out
    };
    let got = objs.len();
    // Parked objects first, up to `n`; a part topped up from the spans; a
    // new span only when neither had any.
    let popped = n.min(before.transfer_objects);
    let expected = if popped > 0 {
        popped + (n - popped).min(before.span_free_objects)
    } else if before.span_free_objects > 0 {
        n.min(before.span_free_objects)
    } else {
        n.min(super::model::span_bytes_of(central.pages(), class) / info.size as usize)
    };
    assert_eq!(
        got, expected,
        "objects of class {class} for {n} asked, {before:?}"
    );
    let after = central.class_stats(class);
    assert_eq!(
        after.transfer_objects,
        before.transfer_objects - popped,
        "transfer cache of class {class}"
    );
    let size = class_size_of(class);
    for &obj in &objs {
        assert!(!obj.is_null(), "a null object in a batch of {got}");
        check_object(central, class, obj as usize);
        let tag = m.tag();
        fill(obj as usize, size, tag);
        m.add(class, obj as usize, tag);
    }
}

/// Checks that `obj` is a well-placed object of `class` in an in-use span.
fn check_object<O: TestOs>(central: &Under<O>, class: u8, obj: usize) {
    let info = &CLASSES[class as usize];
    let size = class_size_of(class);
    let align = (1 << size.trailing_zeros()).min(PAGE_SIZE);
    assert_eq!(obj % align, 0, "object {obj:#x} of {size} bytes misaligned");
    let heap = central.pages();
    assert_eq!(heap.size_class_of(obj), class, "pagemap class of {obj:#x}");
    let span = heap.span_of(obj).expect("an object lies in a span");
    // SAFETY: the page heap's span records are never unmapped.
    let s = unsafe { span.as_ref() };
    assert_eq!(s.state(), SpanState::InUse);
    assert_eq!(s.size_class(), class);
    let bytes = super::model::span_bytes_of(heap, class);
    assert_eq!(s.npages() * PAGE_SIZE, bytes);
    assert!(bytes / size >= info.objects as usize);
    let off = obj - s.start_addr();
    assert_eq!(off % size, 0, "object {obj:#x} not at a multiple of {size}");
    assert!(off / size < bytes / size, "object past its span's last");
}

fn free_batch<O: TestOs>(
    central: &Under<O>,
    m: &mut Model,
    class: u8,
    start: usize,
    k: usize,
    reverse: bool,
) {
    let mut objs = m.take(class, start, k);
    if reverse {
        objs.reverse();
    }
    let ptrs: Vec<*mut u8> = objs.iter().map(|&o| o as *mut u8).collect();
    let batch = CLASSES[class as usize].batch as usize;
    let before = central.class_stats(class);
    // SAFETY: k distinct live objects of this class, given up.
    unsafe { central.free_batch(class, &ptrs) };
    let after = central.class_stats(class);
    assert!(
        after.transfer_objects >= before.transfer_objects,
        "a free of {k} objects of class {class} took objects out of the transfer cache"
    );
    // Parked a batch at a time, the last one in part; each batch parked
    // whole or sent to its spans whole.
    let parked = after.transfer_objects - before.transfer_objects;
    let chunks: Vec<usize> = (0..k).step_by(batch).map(|i| batch.min(k - i)).collect();
    let possible = (0..1usize << chunks.len().min(16)).any(|mask| {
        let sum: usize = (0..chunks.len().min(16))
            .filter(|i| mask >> i & 1 == 1)
            .map(|i| chunks[i])
            .sum();
        sum == parked
    });
    assert!(
        chunks.len() > 16 || possible,
        "a free of {k} objects of class {class} parked {parked} in the transfer cache"
    );
}

/// Drains the transfer caches: every parked object goes back to its span,
/// and a class with no live object keeps no span.
fn drain<O: TestOs>(central: &Under<O>, m: &Model) {
    let stats: Vec<ClassStats> = (1..NUM_CLASSES as u8)
        .map(|c| central.class_stats(c))
        .collect();
    let parked: usize = stats.iter().map(|s| s.transfer_objects).sum();
    assert_eq!(central.drain_transfer_caches(), parked, "objects drained");
    for class in 1..NUM_CLASSES as u8 {
        let st = central.class_stats(class);
        assert_eq!(st.transfer_objects, 0, "class {class} after a drain");
        if m.count(class) == 0 {
            assert_eq!(
                (st.spans, st.span_free_objects),
                (0, 0),
                "class {class} keeps spans with no object live"
            );
        }
    }
}
