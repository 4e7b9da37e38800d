//! What every crate's loom models share (built only under `--cfg strata_loom`):
//! the model runner with its default preemption bound, and model threads
//! with stacks big enough for the allocator's structures (loom's own
//! threads have small stacks; a `PageHeap`'s pagemap root alone is 64 KiB).

/// Runs a model with the preemption bound of `LOOM_MAX_PREEMPTIONS`, or 2.
pub fn model(f: impl Fn() + Sync + Send + 'static) {
    let mut b = loom::model::Builder::new();
    if b.preemption_bound.is_none() {
        b.preemption_bound = Some(2);
    }
    b.check(f);
}

/// Spawns a model thread with a 1 MiB stack.
pub fn spawn_big<T: Send + 'static>(
    f: impl FnOnce() -> T + Send + 'static,
) -> loom::thread::JoinHandle<T> {
    loom::thread::Builder::new()
        .stack_size(1 << 20)
        .spawn(f)
        .expect("a model thread")
}

/// Runs `f` on a model thread with a 1 MiB stack and returns its result.
pub fn on_big_stack<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    spawn_big(f).join().expect("a model thread panicked")
}
