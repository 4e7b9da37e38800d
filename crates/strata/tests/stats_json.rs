//! The machine-readable statistics: `strata::write_stats_json` (parsed
//! back with serde_json), `Stats::write_json`, glibc's views
//! (`Stats::mallinfo`, `write_malloc_info`), and that writing them into a
//! stack buffer allocates nothing.

use std::alloc::{GlobalAlloc, Layout};
use std::cell::Cell;
use std::sync::Mutex;

use serde_json::Value;

/// strata, counting the allocations each thread makes.
struct Counting;

std::thread_local! {
    static ALLOCS: Cell<usize> = const { Cell::new(0) };
}

// SAFETY: forwards every call to strata unchanged.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        ALLOCS.with(|a| a.set(a.get() + 1));
        // SAFETY: forwarded contract.
        unsafe { strata::Strata.alloc(l) }
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        // SAFETY: forwarded contract.
        unsafe { strata::Strata.dealloc(p, l) }
    }
    unsafe fn alloc_zeroed(&self, l: Layout) -> *mut u8 {
        ALLOCS.with(|a| a.set(a.get() + 1));
        // SAFETY: forwarded contract.
        unsafe { strata::Strata.alloc_zeroed(l) }
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, n: usize) -> *mut u8 {
        ALLOCS.with(|a| a.set(a.get() + 1));
        // SAFETY: forwarded contract.
        unsafe { strata::Strata.realloc(p, l, n) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// The tests read process-wide figures: one at a time.
static SERIAL: Mutex<()> = Mutex::new(());

fn report() -> Value {
    let mut s = String::new();
    strata::write_stats_json(&mut s).unwrap();
    serde_json::from_str(&s).unwrap_or_else(|e| panic!("not JSON ({e}): {s}"))
}

#[test]
fn the_report_is_json_with_every_figure() {
    let _g = SERIAL.lock().unwrap();
    // black_box: an allocation nothing reads is removed by the optimizer.
    let big = std::hint::black_box(vec![7u8; 10 << 20]);
    // Small objects parked in another thread's cache while the report is
    // written.
    let (parked, go) = (
        std::sync::Arc::new(std::sync::Barrier::new(2)),
        std::sync::Arc::new(std::sync::Barrier::new(2)),
    );
    let t = {
        let (parked, go) = (parked.clone(), go.clone());
        std::thread::spawn(move || {
            let v: Vec<Box<[u8; 48]>> = (0..20_000).map(|_| Box::new([1; 48])).collect();
            drop(v);
            parked.wait();
            go.wait();
        })
    };
    parked.wait();
    let r = report();
    go.wait();
    t.join().unwrap();

    assert_eq!(r["version"], 1);
    let stats = &r["stats"];
    let fields = stats.as_object().unwrap();
    assert_eq!(fields.len(), 31, "{fields:?}");
    assert!(fields.values().all(Value::is_u64));
    assert!(stats["allocated_bytes"].as_u64().unwrap() >= 10 << 20);
    assert!(stats["resident_bytes"].as_u64().unwrap() >= 10 << 20);
    assert!(stats["peak_resident_bytes"].as_u64() >= stats["resident_bytes"].as_u64());

    // Every setting, as get_option reads it back.
    let options = r["options"].as_object().unwrap();
    assert_eq!(options.len(), strata::option_names().count());
    assert_eq!(
        options["decay_ms"].as_str().unwrap(),
        strata::get_option("decay_ms").unwrap().to_string()
    );

    // Size classes in use, in order, with their figures.
    let classes = r["size_classes"].as_array().unwrap();
    assert!(!classes.is_empty());
    let mut last = 0;
    for c in classes {
        let class = c["class"].as_u64().unwrap();
        assert!(class > last);
        last = class;
        let (size, _) = strata::class_stats(class as u8).unwrap();
        assert_eq!(c["size"].as_u64().unwrap(), size as u64);
        assert!(c["spans"].as_u64().unwrap() > 0 || c["transfer_objects"].as_u64().unwrap() > 0);
        assert_eq!(
            c["free_objects"].as_u64(),
            Some(
                c["transfer_objects"].as_u64().unwrap() + c["span_free_objects"].as_u64().unwrap()
            )
        );
    }
    let c48 = classes
        .iter()
        .find(|c| c["size"] == 48)
        .expect("the 48-byte class the thread used is not listed");
    assert!(c48["span_bytes"].as_u64().unwrap() >= 8192);
    // The waiting thread's cache still holds 48-byte objects it freed, and
    // the classes' objects in thread caches add up to the caches' bytes
    // (within what this thread's own allocations moved while the report
    // was written).
    assert!(c48["thread_cache_objects"].as_u64().unwrap() > 0, "{c48}");
    let in_caches: u64 = classes
        .iter()
        .map(|c| c["thread_cache_objects"].as_u64().unwrap() * c["size"].as_u64().unwrap())
        .sum();
    let cached = stats["thread_cache_bytes"].as_u64().unwrap();
    assert!(
        in_caches.abs_diff(cached) <= 64 << 10,
        "{in_caches} bytes in the classes' thread-cache objects, {cached} in the caches"
    );

    // The other thread's cache held objects when the report was written.
    let caches = &r["thread_caches"];
    let bytes: Vec<u64> = caches["bytes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b.as_u64().unwrap())
        .collect();
    assert_eq!(caches["live"].as_u64().unwrap() as usize, bytes.len());
    assert!(bytes.len() >= 2, "{caches}");
    assert!(bytes.windows(2).all(|w| w[0] >= w[1]), "not largest first");
    assert!(bytes[0] >= 48, "no cache counted its objects: {caches}");
    drop(big);
}

#[test]
fn writing_into_a_stack_buffer_allocates_nothing() {
    let _g = SERIAL.lock().unwrap();
    let mut buf = [0u8; 64 << 10];
    let before = ALLOCS.with(Cell::get);
    let mut w = strata::SliceWriter::new(&mut buf);
    strata::write_stats_json(&mut w).unwrap();
    let stats = strata::stats();
    let mut small = [0u8; 100];
    let mut cut = strata::SliceWriter::new(&mut small);
    stats.write_json(&mut cut).unwrap();
    let mut xml = [0u8; 16 << 10];
    let mut xw = strata::SliceWriter::new(&mut xml);
    strata::write_malloc_info(&stats, &mut xw).unwrap();
    assert_eq!(ALLOCS.with(Cell::get), before, "the writers allocated");
    assert!(w.needed() < 64 << 10 && w.written().len() == w.needed());
    // Cut short, the length of the whole text is still known.
    assert_eq!(cut.written().len(), 100);
    let mut whole = String::new();
    stats.write_json(&mut whole).unwrap();
    assert_eq!(cut.needed(), whole.len());
    assert!(xw.needed() < xml.len());
}

#[test]
fn mallinfo_and_malloc_info_agree_with_the_statistics() {
    let _g = SERIAL.lock().unwrap();
    let big = std::hint::black_box(vec![1u8; 10 << 20]);
    let stats = strata::stats();
    let m = stats.mallinfo();
    assert!(m.uordblks >= 10 << 20, "{m:?}");
    assert_eq!(m.arena, m.uordblks + m.fordblks);
    assert_eq!(m.uordblks + m.hblkhd, stats.allocated_bytes);
    assert_eq!(m.hblkhd, stats.huge_in_use_bytes);
    assert!(m.fordblks >= m.fsmblks);

    let mut xml = String::new();
    strata::write_malloc_info(&stats, &mut xml).unwrap();
    assert!(xml.starts_with("<malloc version=\"1\">\n<heap nr=\"0\">\n<sizes>\n"));
    assert!(xml.ends_with("</malloc>\n"));
    strata_testkit::xml::assert_well_nested(&xml);
    for line in [
        format!(
            "<total type=\"mmap\" count=\"{}\" size=\"{}\"/>",
            m.hblks, m.hblkhd
        ),
        format!("<system type=\"current\" size=\"{}\"/>", m.arena),
        format!(
            "<total type=\"fast\" count=\"{}\" size=\"{}\"/>",
            m.smblks, m.fsmblks
        ),
    ] {
        assert!(xml.contains(&line), "{line} missing from\n{xml}");
    }
    drop(big);
}

/// What a thread frees through its fast path stops counting as allocated
/// at once, for any thread that reads the figures: every cache is counted
/// as it holds now, and a span's tail (too short for an object) is not
/// counted as held.
#[test]
fn freed_objects_stop_counting_as_allocated() {
    use std::sync::{Arc, Barrier};
    let _g = SERIAL.lock().unwrap();
    for size in [48usize, 1000, 10_000] {
        let before = strata::stats().allocated_bytes;
        let (freed, read) = (Arc::new(Barrier::new(2)), Arc::new(Barrier::new(2)));
        // A fresh thread, whose frees all go to its cache through the fast
        // path; it waits, frees made, while this thread reads the figures.
        let t = {
            let (freed, read) = (freed.clone(), read.clone());
            std::thread::spawn(move || {
                let n = (10 << 20) / size;
                let blocks: Vec<Vec<u8>> = (0..n).map(|i| vec![i as u8; size]).collect();
                let during = strata::stats().allocated_bytes;
                drop(blocks);
                freed.wait();
                read.wait();
                during
            })
        };
        freed.wait();
        let after = strata::stats();
        read.wait();
        let during = t.join().unwrap();
        assert!(
            during >= before + (10 << 20) - size,
            "{size} B: {before} before, {during} during"
        );
        // What the cache's refills carved but did not hand out, and the
        // vector of blocks, are the slack.
        assert!(
            after.allocated_bytes < before + (512 << 10),
            "{size} B: {before} before, {during} during, after: {after:?}"
        );
        assert_eq!(
            after.in_use_bytes,
            after.allocated_bytes
                + after.central_free_bytes
                + after.thread_cache_bytes
                + after.span_tail_bytes,
            "{after:?}"
        );
        let m = after.mallinfo();
        assert!(m.uordblks < before + (512 << 10), "{m:?}");
    }
}
