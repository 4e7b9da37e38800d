//! The stack of layers the process-wide allocator is made of, by type:
//! thread caches over the central lists over the page heap over the system.

use strata_central::Central;
use strata_os::SystemOs;
use strata_pageheap::PageHeap;
use strata_threadcache::ThreadCaches;

/// The page heap over the real OS.
pub(crate) type Pages = PageHeap<SystemOs>;

/// The whole allocator: thread caches over the central lists over `Pages`.
pub(crate) type Heap = ThreadCaches<Central<Pages>>;
