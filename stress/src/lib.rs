//! # strata-stress: a multi-threaded, content-verified stress suite
//!
//! The engine allocates through `std::alloc` (`alloc`, `alloc_zeroed`,
//! `realloc`, `dealloc`, always with an explicit `Layout`), so it tests
//! whatever the process's `#[global_allocator]` is; the quick tests
//! (`tests/quick.rs`) and the long-run binary (`src/bin/strata-stress.rs`)
//! make that `strata::Strata`. Its health checks read `strata::stats()`.
//!
//! What it does (see [`engine`] for the shape of a round):
//! - sizes log-uniform from 1 B to 1 MiB, one in ~200 between 1 MiB and
//!   64 MiB (so from 32 MiB, strata's huge-mapping path), plus one huge
//!   block per round made and resized by the main thread;
//! - every block filled with a pattern derived from its address, size and
//!   seed ([`pattern`]), checked whenever it changes hands, before it is
//!   freed, and (its kept prefix) after every `realloc`;
//! - `alloc_zeroed` blocks checked zero before they are filled;
//! - power-of-two alignments up to 64 KiB, checked;
//! - blocks cross threads through a shared slot array and per-thread
//!   crossbeam inboxes, so most are freed by a thread that did not allocate
//!   them; threads are created and joined every round, and half of each
//!   thread's blocks survive into the next round's threads;
//! - live memory bounded by a budget; after each round and at the end,
//!   `strata::stats()` must be consistent, release must leave little dirty
//!   memory, and VmRSS must drop back.
//!
//! Every random choice comes from a generator derived from the run seed, the
//! round and the thread, and every failure message names the seed.

pub mod block;
pub mod config;
pub mod engine;
pub mod health;
pub mod pattern;
pub mod report;
pub mod tally;
pub mod watchdog;
pub mod worker;

pub use config::{fresh_seed, seed_from_env, Config, Length};
pub use engine::run;
pub use report::{RoundReport, Summary};

// The crate's own unit tests allocate through strata too.
#[cfg(test)]
#[global_allocator]
static TEST_ALLOC: strata::Strata = strata::Strata;
