//! Catching refused frees in tests: install a recording hook, run the bad
//! free, and get back what strata reported (the free itself is ignored).

use std::sync::Mutex;

use strata::BadFree;

static SEEN: Mutex<Vec<BadFree>> = Mutex::new(Vec::new());
/// The hook is process-wide: tests that install it run one at a time.
static SERIAL: Mutex<()> = Mutex::new(());

fn record(b: BadFree) {
    SEEN.lock().unwrap().push(b);
}

/// Runs `f` with the recording hook installed and returns what it saw.
pub fn caught(f: impl FnOnce()) -> Vec<BadFree> {
    let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    SEEN.lock().unwrap().clear();
    strata::set_bad_free_hook(Some(record));
    f();
    strata::set_bad_free_hook(None);
    std::mem::take(&mut *SEEN.lock().unwrap())
}
