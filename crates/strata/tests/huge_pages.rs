//! `STRATA_HUGE_PAGES_AFTER` and `strata::set_huge_pages_after`, read back
//! from the kernel: whether the memory of small objects lies in a mapping
//! flagged `hg` (`MADV_HUGEPAGE`) in `/proc/self/smaps`. Each case runs in a
//! child process of its own, since the setting is read once per process.

#[global_allocator]
static GLOBAL: strata::Strata = strata::Strata;

mod common;

/// Whether the mapping holding `addr` is flagged `hg`.
fn hinted(addr: usize) -> bool {
    strata_testkit::smaps::huge_page_hinted_bytes(addr, 1) == 1
}

/// 4 MiB of 64 KiB objects (a small size class): the heap grows by 2 MiB at
/// a time for them, so the last ones lie in growth made after start-up.
/// Returns whether the last object's memory asks for huge pages.
fn small_objects_hinted() -> bool {
    let blocks: Vec<Vec<u8>> = (0..64).map(|i| vec![i as u8; 64 << 10]).collect();
    let last = blocks.last().unwrap();
    assert!(last.iter().all(|&b| b == 63));
    hinted(last.as_ptr() as usize)
}

/// Runs this test binary's `name` in a child with `env` set; with no `env`,
/// `STRATA_HUGE_PAGES_AFTER` is empty there (an empty value is ignored, so
/// the default holds whatever the parent's environment says).
fn in_child(name: &str, env: &[(&str, &str)]) -> bool {
    let env = if env.is_empty() {
        &[("STRATA_HUGE_PAGES_AFTER", "")]
    } else {
        env
    };
    common::in_child("STRATA_HUGE_TEST", name, env)
}

#[test]
fn by_default_small_objects_do_not_ask_for_huge_pages() {
    if !in_child("by_default_small_objects_do_not_ask_for_huge_pages", &[]) {
        return;
    }
    assert_eq!(strata::config().huge_pages_after, usize::MAX);
    assert!(!small_objects_hinted());
}

#[test]
fn the_environment_can_ask_for_huge_pages_from_the_start() {
    if !in_child(
        "the_environment_can_ask_for_huge_pages_from_the_start",
        &[("STRATA_HUGE_PAGES_AFTER", "0")],
    ) {
        return;
    }
    assert_eq!(strata::config().huge_pages_after, 0);
    assert!(small_objects_hinted());
}

#[test]
fn a_running_program_can_ask_for_huge_pages() {
    if !in_child("a_running_program_can_ask_for_huge_pages", &[]) {
        return;
    }
    strata::set_huge_pages_after(0);
    assert_eq!(strata::config().huge_pages_after, 0);
    assert!(small_objects_hinted());
}

#[test]
fn a_threshold_with_a_suffix_is_read() {
    if !in_child(
        "a_threshold_with_a_suffix_is_read",
        &[("STRATA_HUGE_PAGES_AFTER", "64m")],
    ) {
        return;
    }
    assert_eq!(strata::config().huge_pages_after, 64 << 20);
    // The heap is still far below 64 MiB: nothing asks yet.
    assert!(!small_objects_hinted());
}
