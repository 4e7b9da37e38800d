//! The stack of layers the process-wide allocator is made of, by type:
//! thread caches over the central lists over the page heap over the system.

use strata_central::Central;
use strata_os::SystemOs;
use strata_pageheap::PageHeap;
use strata_threadcache::{Hooks, Sampler, ThreadCaches};

/// The page heap over the real OS.
pub(crate) type Pages = PageHeap<SystemOs>;

/// The whole allocator: thread caches over the central lists over `Pages`,
/// with the facade's hooks.
pub(crate) type Heap = ThreadCaches<Central<Pages>, FacadeHooks>;

/// What the facade hooks into the thread caches: its one-time start-up
/// when a thread first sets up its cache, and the sampler of the heap
/// profiler and guarded sampling.
pub(crate) struct FacadeHooks;

impl Hooks for FacadeHooks {
    #[inline]
    fn on_first_use() {
        crate::global::ensure_init();
        // A thread made some other way than glibc's pthread_create.
        crate::global::register_fork_handlers_if_threaded();
    }
    const SAMPLER: Sampler = crate::guarded::SAMPLER;
}
