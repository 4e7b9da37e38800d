//! The central layer against a shadow model over a fake page heap.

use std::collections::HashMap;
use std::sync::Arc;
use std::vec::Vec;

use strata_testkit::rng::Rng;

use crate::fake::{alloc, free, FakePages};
use crate::transfer::{FIRST, SECOND};
use crate::{class_size_of, Central, CLASSES, NUM_CLASSES};

#[test]
fn shadow_model() {
    let central = Central::new(FakePages::new());
    let mut rng = Rng::new(0x1234_5678_9abc_def1);
    // live object -> (class, tag)
    let mut live: HashMap<usize, (u8, u8)> = HashMap::new();
    let classes = [1u8, 2, 5, 9, 17, 30, 50, (NUM_CLASSES - 1) as u8];
    for step in 0..4000u32 {
        let class = classes[rng.below(classes.len())];
        let size = class_size_of(class);
        let batch = CLASSES[class as usize].batch as usize;
        if rng.below(2) == 0 {
            let n = if rng.below(2) == 0 {
                batch
            } else {
                1 + rng.below(batch * 2)
            };
            let got = alloc(&central, class, n);
            assert!(!got.is_empty() && got.len() <= n);
            for obj in got {
                assert_eq!(obj % if size >= 16 { 16 } else { 8 }, 0);
                let tag = (step % 251) as u8;
                // SAFETY: a fresh object of `size` bytes.
                unsafe { std::ptr::write_bytes(obj as *mut u8, tag, size) };
                assert!(
                    live.insert(obj, (class, tag)).is_none(),
                    "object handed out twice"
                );
            }
        } else {
            let mine: Vec<usize> = live
                .iter()
                .filter(|(_, v)| v.0 == class)
                .map(|(k, _)| *k)
                .collect();
            if mine.is_empty() {
                continue;
            }
            let n = (1 + rng.below(batch * 2)).min(mine.len());
            let n = if rng.below(2) == 0 && mine.len() >= batch {
                batch
            } else {
                n
            };
            let out = &mine[..n];
            for &obj in out {
                let (_, tag) = live.remove(&obj).unwrap();
                // SAFETY: live object of `size` bytes.
                let s = unsafe { std::slice::from_raw_parts(obj as *const u8, size) };
                assert!(
                    s.iter().all(|&b| b == tag),
                    "object contents changed while live"
                );
            }
            // SAFETY: n live objects of this class, given up.
            unsafe { free(&central, class, out) };
        }
    }
    // Objects never overlap: sort and compare with sizes.
    let mut all: Vec<(usize, usize)> = live.iter().map(|(&k, v)| (k, class_size_of(v.0))).collect();
    all.sort();
    for w in all.windows(2) {
        assert!(w[0].0 + w[0].1 <= w[1].0, "objects overlap");
    }
    for (obj, (class, _)) in live.drain() {
        // SAFETY: live object.
        unsafe { central.free_one(class, obj as *mut u8) };
    }
    // Everything not parked in a transfer cache went back to the fake heap.
    let parked: usize = (1..NUM_CLASSES as u8)
        .map(|c| central.class_stats(c).transfer_objects)
        .sum();
    if parked == 0 {
        assert_eq!(central.pages().live_spans(), 0);
    }
    for c in 1..NUM_CLASSES as u8 {
        let st = central.class_stats(c);
        let per_span = CLASSES[c as usize].objects as usize;
        assert_eq!(
            st.span_free_objects + st.transfer_objects,
            st.spans * per_span,
            "class {c} lost objects"
        );
        assert!(st.uncarved_objects <= st.span_free_objects);
    }
}

/// A class whose spans hold at least two batches, so that a part of a
/// batch cannot empty a span.
fn roomy_class() -> u8 {
    (1..NUM_CLASSES as u8)
        .find(|&c| {
            let i = &CLASSES[c as usize];
            i.batch > 2 && i.objects >= 2 * i.batch as u32
        })
        .unwrap()
}

/// Takes a batch of `class` and gives two of its objects back, which are
/// parked as a part of a batch. Returns the objects still held and the two.
fn park_a_part(central: &Central<FakePages>, class: u8) -> (Vec<usize>, Vec<usize>) {
    let batch = CLASSES[class as usize].batch as usize;
    let mut held = alloc(central, class, batch);
    assert_eq!(held.len(), batch);
    let part: Vec<usize> = held.drain(..2).collect();
    // SAFETY: live objects of this class, given up.
    unsafe { free(central, class, &part) };
    assert_eq!(central.class_stats(class).transfer_objects, 2);
    (held, part)
}

/// Gives back every object in `held` and the parked ones, and checks that
/// every span went back to the page source.
fn give_all_back(central: &Central<FakePages>, class: u8, held: Vec<usize>) {
    for obj in held {
        // SAFETY: live objects of this class.
        unsafe { central.free_one(class, obj as *mut u8) };
    }
    central.drain_transfer_caches();
    assert_eq!(central.class_stats(class).transfer_objects, 0);
    assert_eq!(central.pages().live_spans(), 0);
}

/// A request for less than a batch (a thread cache in slow start) takes
/// what it asks for from a parked batch, and the rest stays parked: no new
/// span, and nothing goes back to a span.
#[test]
fn a_partial_request_takes_from_a_parked_batch_and_leaves_the_rest() {
    let central = Central::new(FakePages::new());
    let class = roomy_class();
    let batch = CLASSES[class as usize].batch as usize;
    let mut held = Vec::new();
    // Take full batches until every carved span is used up.
    while held.len() < batch || central.class_stats(class).span_free_objects > 0 {
        held.extend(alloc(&central, class, batch));
        assert!(held.len() < 100_000);
    }
    let spans = central.class_stats(class).spans;
    let back: Vec<usize> = held.drain(held.len() - batch..).collect();
    // SAFETY: a full batch of live objects of this class, given up.
    unsafe { free(&central, class, &back) };
    assert_eq!(central.class_stats(class).transfer_objects, batch);

    let got = alloc(&central, class, 1);
    assert_eq!(got.len(), 1);
    assert!(back.contains(&got[0]));
    let st = central.class_stats(class);
    assert_eq!(st.spans, spans, "a new span was taken");
    assert_eq!(st.transfer_objects, batch - 1);
    assert_eq!(st.span_free_objects, 0);
    held.extend(got);
    give_all_back(&central, class, held);
}

/// Fewer objects than a batch are parked too, and a request for a batch
/// takes them first and the rest from the spans.
#[test]
fn parts_of_batches_are_parked_and_topped_up_from_spans() {
    let central = Central::new(FakePages::new());
    let class = roomy_class();
    let batch = CLASSES[class as usize].batch as usize;
    let (mut held, part) = park_a_part(&central, class);
    assert!(
        central.class_stats(class).span_free_objects >= batch,
        "the span has objects left"
    );

    let got = alloc(&central, class, batch);
    assert_eq!(got.len(), batch, "topped up from the spans");
    assert!(
        part.iter().all(|p| got.contains(p)),
        "the parked part first"
    );
    let st = central.class_stats(class);
    assert_eq!(st.transfer_objects, 0);
    assert_eq!(st.spans, 1);
    held.extend(got);
    give_all_back(&central, class, held);
}

/// A list that starts out takes its objects from the spans even while
/// others are parked: those are what other threads freed just before, often
/// neighbours of the objects those threads still write.
#[test]
fn a_starting_list_takes_from_the_spans_before_parked_objects() {
    let central = Central::new(FakePages::new());
    let class = roomy_class();
    let (mut held, part) = park_a_part(&central, class);

    let mut out = vec![core::ptr::null_mut(); 2];
    assert_eq!(central.alloc_batch_apart(class, &mut out), 2);
    assert!(
        out.iter().all(|&p| !part.contains(&(p as usize))),
        "a parked object handed to a starting list"
    );
    assert_eq!(central.class_stats(class).transfer_objects, 2);
    held.extend(out.iter().map(|&p| p as usize));
    give_all_back(&central, class, held);
}

/// A list that starts out takes objects never handed out before (a run of
/// addresses no other thread holds) while a span has some, before the
/// spans' free objects, which lie between objects other threads hold.
#[test]
fn a_starting_list_takes_carved_objects_before_free_ones() {
    let central = Central::new(FakePages::new());
    let class = roomy_class();
    let size = class_size_of(class);
    let batch = CLASSES[class as usize].batch as usize;
    let mut held = alloc(&central, class, batch);
    let top = *held.iter().max().unwrap();
    // Every other object goes back to its span: free objects interleaved
    // with objects still out.
    let back: Vec<usize> = held.iter().copied().step_by(2).collect();
    held.retain(|p| !back.contains(p));
    for &obj in &back {
        // SAFETY: live objects of this class, given up once.
        unsafe { central.free_one(class, obj as *mut u8) };
    }
    let before = central.class_stats(class);
    assert_eq!(
        before.span_free_objects - before.uncarved_objects,
        back.len()
    );

    let mut out = vec![core::ptr::null_mut(); 2];
    assert_eq!(central.alloc_batch_apart(class, &mut out), 2);
    let got: Vec<usize> = out.iter().map(|&p| p as usize).collect();
    assert!(
        got.iter().all(|p| !back.contains(p) && *p > top),
        "a starting list took free objects while uncarved ones were left"
    );
    // In the order `take` gives them: the last is the lowest address.
    assert_eq!(got[0], got[1] + size, "not a run of addresses");
    let after = central.class_stats(class);
    assert_eq!(after.uncarved_objects, before.uncarved_objects - 2);
    assert_eq!(after.spans, before.spans, "a new span was taken");
    held.extend(got);
    give_all_back(&central, class, held);
}

#[test]
fn batches_cross_threads() {
    let central = Arc::new(Central::new(FakePages::new()));
    let class = 3u8;
    let batch = CLASSES[class as usize].batch as usize;
    let (tx, rx) = std::sync::mpsc::channel::<Vec<usize>>();
    let producer = {
        let central = central.clone();
        std::thread::spawn(move || {
            for i in 0..2000usize {
                let objs = alloc(&central, class, batch);
                for &o in &objs {
                    // SAFETY: fresh objects.
                    unsafe { (o as *mut usize).add(1).write(i) };
                }
                tx.send(objs).unwrap();
            }
        })
    };
    let mut seen = 0;
    for (i, objs) in rx.iter().enumerate() {
        for &o in &objs {
            // SAFETY: objects sent to us, still live.
            assert_eq!(unsafe { (o as *const usize).add(1).read() }, i);
        }
        seen += objs.len();
        // SAFETY: live objects of this class, given up.
        unsafe { free(&central, class, &objs) };
    }
    producer.join().unwrap();
    assert!(seen >= 2000);
    let st = central.class_stats(class);
    assert_eq!(
        st.span_free_objects + st.transfer_objects,
        st.spans * CLASSES[class as usize].objects as usize
    );
}

/// A full batch is parked and handed out again as it is, and neither the
/// transfer cache nor the move touches the objects: their contents, written
/// before the free, are intact while parked.
#[test]
fn parked_batches_are_pointers_and_leave_objects_alone() {
    let central = Central::new(FakePages::new());
    let class = 5u8;
    let size = class_size_of(class);
    let batch = CLASSES[class as usize].batch as usize;
    let objs = alloc(&central, class, batch);
    assert_eq!(objs.len(), batch);
    for &o in &objs {
        // SAFETY: live objects of `size` bytes.
        unsafe { std::ptr::write_bytes(o as *mut u8, 0xa5, size) };
    }
    // SAFETY: a full batch of live objects, given up.
    unsafe { free(&central, class, &objs) };
    assert_eq!(central.class_stats(class).transfer_objects, batch);
    for &o in &objs {
        // SAFETY: parked objects stay in the fake heap's memory; this
        // reads what the allocator may have written.
        let s = unsafe { std::slice::from_raw_parts(o as *const u8, size) };
        assert!(s.iter().all(|&b| b == 0xa5), "a parked object was written");
    }
    let again = alloc(&central, class, batch);
    assert_eq!(again, objs, "the parked batch, in the same order");
    assert_eq!(central.class_stats(class).transfer_objects, 0);
    for &o in &again {
        // SAFETY: live objects, given back one by one (to their spans).
        unsafe { central.free_one(class, o as *mut u8) };
    }
    central.drain_transfer_caches();
    assert_eq!(central.pages().live_spans(), 0);
}

/// The first two batches of 32 are parked in the class's slice of the
/// shared first table (mapped once, for every class). A cache that is full
/// grows into its slice of the shared second table (six more batches) and
/// then into a table of its own only once a push found it full and objects
/// were taken from it after: batches nobody takes (a program freeing all it
/// holds at its end) go to their spans instead of touching a new table.
/// Every parked batch comes back whole, last parked first.
#[test]
fn first_batches_share_tables_then_move_to_their_own() {
    let central = Central::new(FakePages::new());
    let mapped = || central.pages().tables.lock().unwrap().len();
    let parked = || central.class_stats(class_of_test()).transfer_objects;
    fn class_of_test() -> u8 {
        5
    }
    let class = class_of_test();
    let batch = CLASSES[class as usize].batch as usize;
    assert_eq!(batch, 32, "class 5 moves batches of 32");
    assert_eq!((FIRST, SECOND), (2 * batch, 8 * batch));
    let batches: Vec<Vec<usize>> = (0..14).map(|_| alloc(&central, class, batch)).collect();
    // The spans' bitmaps came from one chunk mapped the same way; the
    // transfer cache's tables are the rest.
    let bitmap_chunks = mapped();
    assert_eq!(bitmap_chunks, 1, "one chunk of bitmaps for a few spans");
    let tables = || mapped() - bitmap_chunks;
    // Fills the first slice, then frees four more that nobody asks for:
    // they go to their spans, and no table is mapped for them.
    for (i, b) in batches[..6].iter().enumerate() {
        // SAFETY: a full batch of live objects, given up.
        unsafe { free(&central, class, b) };
        assert_eq!(tables(), 1, "after batch {i}");
        assert_eq!(parked(), (i + 1).min(2) * batch, "after batch {i}");
    }
    // Taken from while full: the next push that finds it full grows it.
    let taken = alloc(&central, class, batch);
    assert_eq!(taken, batches[1], "the batch parked last");
    // SAFETY: as above (handed out again, given up again).
    unsafe { free(&central, class, &taken) };
    assert_eq!((tables(), parked()), (1, 2 * batch));
    for (i, b) in batches[6..12].iter().enumerate() {
        // SAFETY: as above.
        unsafe { free(&central, class, b) };
        assert_eq!((tables(), parked()), (2, (3 + i) * batch), "after {i}");
    }
    // The second slice is full: one more nobody asks for goes to spans.
    // SAFETY: as above.
    unsafe { free(&central, class, &batches[12]) };
    assert_eq!((tables(), parked()), (2, 8 * batch), "no own table unasked");
    let again = alloc(&central, class, batch);
    assert_eq!(again, batches[11]);
    // SAFETY: as above.
    unsafe {
        free(&central, class, &again);
        free(&central, class, &batches[13]);
    }
    assert_eq!(tables(), 3, "its own table once taken from while full");
    // Other classes park in the shared tables: nothing new is mapped.
    for other in [6u8, 7] {
        let n = CLASSES[other as usize].batch as usize;
        let objs: Vec<Vec<usize>> = (0..2).map(|_| alloc(&central, other, n)).collect();
        for b in &objs {
            // SAFETY: as above.
            unsafe { free(&central, other, b) };
        }
    }
    assert_eq!(tables(), 3);
    let mut back = Vec::new();
    while parked() > 0 {
        let b = alloc(&central, class, batch);
        assert_eq!(b.len(), batch, "parked batches come back whole");
        back.push(b);
    }
    for b in &back {
        for &o in b {
            // SAFETY: live objects, given back one by one (to their spans).
            unsafe { central.free_one(class, o as *mut u8) };
        }
    }
    central.drain_transfer_caches();
    for other in [6u8, 7] {
        let n = CLASSES[other as usize].batch as usize;
        for _ in 0..2 {
            for o in alloc(&central, other, n) {
                // SAFETY: as above.
                unsafe { central.free_one(other, o as *mut u8) };
            }
        }
    }
    central.drain_transfer_caches();
    assert_eq!(central.pages().live_spans(), 0);
}

/// The walks over the transfer caches visit only the classes that ever
/// parked something (they would otherwise write to every class's lock,
/// and so to every page of a static heap's class lists), and still give
/// back everything parked.
#[test]
fn the_walks_visit_only_classes_that_parked() {
    let central = Central::new(FakePages::new());
    assert_eq!(central.parked_classes().count(), 0);
    let last = (NUM_CLASSES - 1) as u8;
    let mut held = Vec::new();
    for class in [3u8, last] {
        let batch = CLASSES[class as usize].batch as usize;
        let mut got = Vec::new();
        while got.len() < 2 * batch {
            got.extend(alloc(&central, class, 2 * batch - got.len()));
        }
        // SAFETY: live objects of this class, given back once.
        unsafe { free(&central, class, &got[..batch]) };
        held.push((class, got.split_off(batch)));
    }
    assert_eq!(central.parked_classes().collect::<Vec<u8>>(), [3, last]);
    assert!(central.drain_transfer_caches() > 0);
    for (class, objs) in held {
        assert_eq!(central.class_stats(class).transfer_objects, 0);
        // SAFETY: live objects of this class, given back once.
        unsafe { free(&central, class, &objs) };
    }
    central.drain_transfer_caches();
    assert_eq!(central.pages().live_spans(), 0);
}
