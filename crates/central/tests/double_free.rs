//! A second free that reaches a span is refused: the object is already free
//! in its span (its bit in the span's bitmap is set, however many frees
//! came between), or the span has no object out. The program stops with a
//! message (each case in a child process of its own) instead of handing the
//! object out twice or the span back to the page heap while another of its
//! objects is live.

use std::os::unix::process::ExitStatusExt;
use std::process::Command;

use strata_central::{class_index, Central};
use strata_os::SystemOs;
use strata_pageheap::PageHeap;

/// In the parent, runs test `name` in a child process, checks that the
/// child was stopped by `abort` with the report naming the object it
/// printed (`object 0x...`), and returns true; in the child, returns false
/// and the test body runs.
fn refused_in_child(name: &str) -> bool {
    const MARKER: &str = "STRATA_CENTRAL_DOUBLE_FREE";
    if std::env::var(MARKER).as_deref() == Ok(name) {
        return false;
    }
    let out = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", name, "--nocapture", "--test-threads=1"])
        .env(MARKER, name)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        out.status.signal(),
        Some(libc::SIGABRT),
        "{name}: {:?}\n{err}",
        out.status
    );
    let obj = err.lines().find_map(|l| l.strip_prefix("object "));
    let obj = obj.expect("the child names its object");
    let report = format!("strata: free({obj}): block is not allocated (double free?)");
    assert!(err.contains(&report), "stderr: {err}");
    true
}

fn central() -> &'static Central<PageHeap<SystemOs>> {
    Box::leak(Box::new(Central::new(PageHeap::new(SystemOs::new()))))
}

#[test]
fn the_span_last_freed_object_freed_again() {
    if refused_in_child("the_span_last_freed_object_freed_again") {
        return;
    }
    let central = central();
    let class = class_index(48, 8);
    let (a, b) = (
        central.alloc_one(class).unwrap(),
        central.alloc_one(class).unwrap(),
    );
    eprintln!("object {:#x}", a.as_ptr() as usize);
    // SAFETY: `a` is live and given up once; the second free is the bad
    // one, refused before anything is touched. `b` stays live.
    unsafe {
        central.free_one(class, a.as_ptr());
        central.free_one(class, a.as_ptr());
    }
    let _ = b;
    unreachable!("the second free was accepted");
}

#[test]
fn a_free_after_the_span_went_back_to_the_page_heap() {
    if refused_in_child("a_free_after_the_span_went_back_to_the_page_heap") {
        return;
    }
    let central = central();
    let class = class_index(48, 8);
    let mut objs = [core::ptr::null_mut(); 2];
    assert_eq!(central.alloc_batch(class, &mut objs), 2);
    eprintln!("object {:#x}", objs[0] as usize);
    // SAFETY: both objects are live and given up (the span, with nothing
    // out, goes back to the page heap); the third free is the bad one.
    unsafe {
        central.free_one(class, objs[0]);
        central.free_one(class, objs[1]);
        central.free_one(class, objs[0]);
    }
    unreachable!("the second free was accepted");
}

#[test]
fn an_object_freed_again_after_others_of_its_span() {
    if refused_in_child("an_object_freed_again_after_others_of_its_span") {
        return;
    }
    let central = central();
    let class = class_index(48, 8);
    let mut objs = [core::ptr::null_mut(); 8];
    assert_eq!(central.alloc_batch(class, &mut objs), 8);
    eprintln!("object {:#x}", objs[2] as usize);
    // SAFETY: objects 2 to 5 are live and given up once each; the free of
    // object 2 again, after three others of its span, is the bad one. The
    // rest stay live, so the span stays with its class.
    unsafe {
        for &o in &objs[2..6] {
            central.free_one(class, o);
        }
        central.free_one(class, objs[2]);
    }
    unreachable!("the second free was accepted");
}
