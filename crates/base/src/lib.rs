//! # strata-base: the building blocks every layer of strata shares
//!
//! Data structures the allocator's layers build on, none of which may
//! allocate, panic on an allocation path, or take a lock another path may
//! hold while it waits:
//!
//! - [`Lock`]: a futex lock that never allocates, with the three bare
//!   operations `pthread_atfork` needs ([`ForkLock`]).
//! - [`List`]: an intrusive doubly linked list of allocator records.
//! - [`MetaPool`]: a pool of fixed-size metadata records carved from memory
//!   mapped straight from the OS (span records, thread caches), reserved
//!   ahead of a lock so that nothing maps under it.
//!
//! Under `--cfg strata_loom` the lock and the pool are built on loom's
//! atomics and checked by the models in `loom_tests.rs`; the
//! [`const_unless_loom`] and [`array_unless_loom`] macros let the layers
//! above write `const` constructors that still build there.

#![cfg_attr(not(test), no_std)]
#![warn(missing_docs)]

mod list;
mod lock;
#[cfg(all(test, strata_loom))]
mod loom_tests;
mod pool;
mod sync;

pub use list::{Iter as ListIter, Linked, List};
pub use lock::{ForkLock, Lock, LockGuard};
pub use pool::MetaPool;
