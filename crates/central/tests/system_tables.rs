//! The transfer caches over the real page heap and OS: every class parks
//! the batches it is given, including the classes whose table of pointers
//! is not a whole number of pages (a 576 B class holds 227 batches of 32,
//! a table of 58,112 bytes). Until the page source rounded tables up to
//! whole pages, the OS refused those and such classes never parked a batch
//! (found in a larson-like run: the classes from 576 to 960 B always went
//! back to their spans). A cache grows past its first slice only once it
//! was taken from while full, so each class is asked for a batch between
//! its third and fourth.

use strata_central::{Central, CLASSES, NUM_CLASSES};
use strata_os::SystemOs;
use strata_pageheap::PageHeap;

#[test]
fn every_class_parks_three_batches() {
    // On the heap, not in a static: under loom `new` is not a `const fn`.
    let central = Box::new(Central::new(PageHeap::new(SystemOs::new())));
    let central = &*central;
    for class in 1..NUM_CLASSES as u8 {
        let batch = CLASSES[class as usize].batch as usize;
        let mut batches = Vec::new();
        for _ in 0..4 {
            // A span may give fewer than asked for: ask until full.
            let mut objs = vec![core::ptr::null_mut(); batch];
            let mut got = 0;
            while got < batch {
                let n = central.alloc_batch(class, &mut objs[got..]);
                assert!(n > 0, "class {class}: out of memory");
                got += n;
            }
            batches.push(objs);
        }
        for objs in &batches[..3] {
            // SAFETY: a full batch of live objects of this class, given up.
            unsafe { central.free_batch(class, objs) };
        }
        let mut taken = vec![core::ptr::null_mut(); batch];
        assert_eq!(central.alloc_batch(class, &mut taken), batch);
        // SAFETY: as above: the batch just taken, and the fourth.
        unsafe {
            central.free_batch(class, &taken);
            central.free_batch(class, &batches[3]);
        }
        let parked = central.class_stats(class).transfer_objects;
        assert!(
            parked >= 3 * batch,
            "class {class} ({} B) parked {parked} of {} objects",
            CLASSES[class as usize].size,
            4 * batch
        );
        // Back to the spans, so that the shared budget never fills.
        assert_eq!(central.drain_transfer_caches(), parked);
        let st = central.class_stats(class);
        assert_eq!((st.spans, st.transfer_objects), (0, 0), "class {class}");
    }
}
