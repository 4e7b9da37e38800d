//! Runs operations against a real page heap and the shadow model.
//!
//! Per operation: alignment, the size the heap reports, zeroed blocks read
//! as zero, no overlap with any live block, contents unchanged until the
//! block is freed or resized, double and bad frees refused with the right
//! reason, resizes keep contents (and heap blocks their address), pagemap
//! classes of small-object spans, and that decay and release leave nothing
//! dirty. After every step, [`Model::check`].

use strata_pageheap::{BadPointer, PageHeap, DEFAULT_DECAY_MS, HUGE_MIN, MOVE_MIN, PAGE_SIZE};

use super::model::{expect_bytes, expect_prefix, fill, Block, Kind, Model};
use super::os::TestOs;
use super::{large_pages, BadKind, Limits, Op};

/// Runs `ops` on a fresh heap over a fresh `O`, checking every step, then
/// frees everything and checks that the heap is empty and can give all of it
/// back.
pub fn run_ops<O: TestOs>(ops: &[Op], limits: &Limits) {
    run_ops_on(O::fresh(), ops, limits);
}

/// [`run_ops`] over a given OS layer (a `FakeOs` with 16 or 64 KiB pages).
pub fn run_ops_on<O: TestOs>(os: O, ops: &[Op], limits: &Limits) {
    let heap = PageHeap::new(os);
    // The model checks decay's promise (memory freed less than the delay
    // ago stays resident); the cap on free dirty memory, which breaks it on
    // purpose, has tests of its own (tests/release.rs).
    heap.set_dirty_max(usize::MAX);
    let mut m = Model::new(DEFAULT_DECAY_MS);
    let trace = std::env::var_os("FUZZ_OPS_TRACE").is_some();
    for (i, op) in ops.iter().enumerate() {
        if trace {
            eprintln!("step {i}: {op:?}");
        }
        step(&heap, &mut m, op, limits);
        if trace {
            eprintln!(
                "  {:?}",
                m.blocks()
                    .map(|(_, b)| (b.addr, b.len, b.kind))
                    .collect::<Vec<_>>()
            );
            eprintln!("  {:?}", heap.stats());
        }
        m.check(&heap);
    }
    let live: Vec<u64> = m.blocks().map(|(id, _)| id).collect();
    for id in live {
        free(&heap, &mut m, id);
    }
    m.check(&heap);
    heap.release_free_memory();
    m.clear_dirty();
    m.check(&heap);
    let st = heap.stats();
    assert_eq!(st.in_use_bytes, 0);
    assert_eq!(st.free_dirty_bytes, 0);
    assert_eq!(st.huge_cached_bytes, 0);
    assert_eq!(st.free_clean_bytes, st.mapped_bytes);
}

/// What the heap hands out for `len` bytes: whole OS pages.
fn heap_len<O: TestOs>(heap: &PageHeap<O>, len: usize) -> usize {
    len.next_multiple_of(heap.os().page_size().max(PAGE_SIZE))
}

fn not_small(b: &Block) -> bool {
    !matches!(b.kind, Kind::Small { .. })
}

fn step<O: TestOs>(heap: &PageHeap<O>, m: &mut Model, op: &Op, limits: &Limits) {
    match *op {
        Op::Alloc {
            pages,
            trim,
            align,
            zero,
        } => {
            let len = heap_len(heap, pages * PAGE_SIZE);
            if m.heap_bytes() + len > limits.max_heap_bytes {
                return;
            }
            let p = heap.alloc_large(pages * PAGE_SIZE - trim, align, zero);
            let addr = p.expect("the fake OS has no limit").as_ptr() as usize;
            assert_eq!(addr % align.max(PAGE_SIZE), 0, "misaligned: {op:?}");
            m.large_allocs += 1;
            m.mark_used(addr, addr + len);
            new_block(heap, m, addr, len, zero, Kind::Large);
        }
        Op::AllocHuge {
            extra,
            trim,
            align,
            zero,
        } => {
            if m.huge_ops >= limits.max_huge_ops || m.live_huge() >= limits.max_live_huge {
                return;
            }
            m.huge_ops += 1;
            let asked = HUGE_MIN + extra * PAGE_SIZE;
            let size = if extra > 0 { asked - trim } else { asked };
            let len = heap_len(heap, asked);
            let p = heap.alloc_large(size, align, zero);
            let addr = p.expect("the fake OS has no limit").as_ptr() as usize;
            assert_eq!(addr % align.max(PAGE_SIZE), 0, "misaligned: {op:?}");
            m.huge_allocs += 1;
            new_block(heap, m, addr, len, zero, Kind::Huge);
        }
        Op::Free { pick } => {
            if let Some(id) = m.pick(pick, not_small) {
                free(heap, m, id);
            }
        }
        Op::BadFree { pick, kind } => bad_free(heap, m, pick, kind),
        Op::Resize { pick, size, align } => {
            if let Some(id) = m.pick(pick, not_small) {
                resize(heap, m, id, size, align, limits);
            }
        }
        Op::AllocSmall { pages, class } => {
            let len = heap_len(heap, pages * PAGE_SIZE);
            if m.heap_bytes() + len > limits.max_heap_bytes {
                return;
            }
            let span = heap
                .alloc_small_span(pages, class)
                .expect("the fake OS has no limit");
            // SAFETY: a span the heap just handed to us.
            let s = unsafe { span.as_ref() };
            let addr = s.start_addr();
            assert_eq!(s.npages(), len / PAGE_SIZE);
            assert_eq!(s.size_class(), class);
            assert!(s.state() == strata_pageheap::SpanState::InUse && !s.has_own_mapping());
            assert_eq!(heap.size_class_of(addr + len - 1), class);
            assert_eq!(heap.large_span(addr).err(), Some(BadPointer::SmallObject));
            m.small_spans += 1;
            m.mark_used(addr, addr + len);
            new_block(heap, m, addr, len, false, Kind::Small { class, span });
        }
        Op::FreeSmall { pick } => {
            if let Some(id) = m.pick(pick, |b| !not_small(b)) {
                free(heap, m, id);
            }
        }
        Op::Advance { ms } => {
            heap.os().advance(ms);
            m.clock += ms;
            m.note_time();
            heap.tick();
        }
        Op::AdvancePastDecay => {
            let ms = m.decay.saturating_add(1001).min(1 << 40);
            heap.os().advance(ms);
            m.clock += ms;
            m.note_time();
            heap.tick();
            if m.decay <= 1 << 39 {
                let st = heap.stats();
                assert_eq!(st.free_dirty_bytes, 0, "dirty spans older than the delay");
                assert_eq!(
                    st.huge_cached_bytes, 0,
                    "huge mappings older than the delay"
                );
                m.clear_dirty();
            }
        }
        Op::Release => {
            heap.release_free_memory();
            let st = heap.stats();
            assert_eq!((st.free_dirty_bytes, st.huge_cached_bytes), (0, 0));
            m.clear_dirty();
        }
        Op::SetDecay { ms, release_first } => {
            if release_first {
                heap.release_free_memory();
                m.clear_dirty();
            }
            heap.set_decay_ms(ms);
            m.decay = ms;
            m.note_time();
        }
    }
}

/// Checks a block just handed out and files it in the model.
fn new_block<O: TestOs>(
    heap: &PageHeap<O>,
    m: &mut Model,
    addr: usize,
    len: usize,
    zero: bool,
    kind: Kind,
) {
    if not_small(&Block {
        addr,
        len,
        tag: 0,
        kind,
    }) {
        assert_eq!(
            heap.large_size(addr),
            Ok(len),
            "size of a new {kind:?} block"
        );
        assert_eq!(heap.size_class_of(addr), 0);
    }
    if zero {
        expect_bytes(addr, len, 0, "a block asked zeroed");
    }
    let tag = m.tag();
    fill(addr, len, tag);
    m.insert(Block {
        addr,
        len,
        tag,
        kind,
    });
}

/// Frees a live block after checking its contents; a second free of a large
/// or huge block must be refused.
fn free<O: TestOs>(heap: &PageHeap<O>, m: &mut Model, id: u64) {
    let b = m.remove(id);
    expect_bytes(b.addr, b.len, b.tag, "contents of a live block before free");
    match b.kind {
        Kind::Small { span, .. } => {
            // SAFETY: a live small-object span of ours; no object is in use.
            unsafe { heap.free_small_span(span) };
            assert_eq!(heap.size_class_of(b.addr), 0, "class left after free");
            assert_eq!(heap.size_class_of(b.addr + b.len - 1), 0);
        }
        Kind::Large | Kind::Huge => {
            // SAFETY: a live block we give up.
            assert_eq!(unsafe { heap.free_large(b.addr) }, Ok(()));
            // SAFETY: the block is gone; the heap must refuse this.
            let again = unsafe { heap.free_large(b.addr) };
            assert!(again.is_err(), "double free of {b:?} accepted");
        }
    }
    if b.kind != Kind::Huge {
        m.mark_dirty(b.addr, b.addr + b.len);
    }
    m.bury(b.addr);
}

fn bad_free<O: TestOs>(heap: &PageHeap<O>, m: &mut Model, pick: u8, kind: BadKind) {
    let (addr, want) = match kind {
        BadKind::Dead => {
            let Some(&a) = m.dead.get(pick as usize % m.dead.len().max(1)) else {
                return;
            };
            if m.is_live_start(a) {
                return;
            }
            (a, None)
        }
        BadKind::InteriorFirst | BadKind::InteriorLast => {
            let Some(id) = m.pick(pick, not_small) else {
                return;
            };
            let b = m.get(id);
            let off = match kind {
                BadKind::InteriorFirst => 8 + (pick as usize * 40) % (PAGE_SIZE - 8),
                _ => b.len - 8,
            };
            (b.addr + off, Some(BadPointer::Interior))
        }
        BadKind::InSmall => {
            let Some(id) = m.pick(pick, |b| !not_small(b)) else {
                return;
            };
            let b = m.get(id);
            let off = if pick % 4 == 0 {
                0
            } else {
                (pick as usize * 4099) % b.len
            };
            (b.addr + off, Some(BadPointer::SmallObject))
        }
    };
    // SAFETY: `addr` is not the start of a live large block, so the heap must
    // refuse it and change nothing.
    let r = unsafe { heap.free_large(addr) };
    match want {
        Some(w) => assert_eq!(r, Err(w), "free of {addr:#x} ({kind:?})"),
        None => assert!(r.is_err(), "free of dead address {addr:#x} accepted: {r:?}"),
    }
}

fn resize<O: TestOs>(
    heap: &PageHeap<O>,
    m: &mut Model,
    id: u64,
    size: u8,
    align: usize,
    limits: &Limits,
) {
    let b = m.get(id);
    if b.kind == Kind::Huge {
        if m.huge_ops >= limits.max_huge_ops {
            return;
        }
        m.huge_ops += 1;
        let pages = if size < 128 {
            1 + (size % 32) as usize
        } else {
            HUGE_MIN / PAGE_SIZE + (size % 64) as usize
        };
        let len = heap_len(heap, pages * PAGE_SIZE);
        // SAFETY: a live huge block of ours.
        let p = unsafe { heap.resize_large(b.addr, len, align) };
        let p = p.expect("the fake OS can always remap").as_ptr() as usize;
        // `align` is the operation's, not the block's: a block resized in
        // place stays where it is (`resize_large` asks for the alignment
        // the block was allocated with), so only a moved one is held to it.
        if p != b.addr {
            assert_eq!(
                p % align.max(PAGE_SIZE),
                0,
                "a moved huge block is misaligned"
            );
        }
        expect_prefix(p, b.len, len, b.tag, "contents kept by a huge resize");
        // A huge block keeps its pages while it uses three quarters of
        // them, and grows with a quarter more room: what it has is at
        // least `len`, and either what it had or at most that room.
        let got = heap.large_size(p).expect("a resized huge block");
        assert!(
            got >= len && (got == b.len || got <= heap_len(heap, len.max(b.len + b.len / 4))),
            "a huge block of {} resized to {len} has {got}",
            b.len
        );
        m.remove(id);
        if p != b.addr {
            m.bury(b.addr);
        }
        new_block(heap, m, p, got, false, Kind::Huge);
        return;
    }
    let len = heap_len(heap, large_pages(size) * PAGE_SIZE);
    if len > b.len && m.heap_bytes() + (len - b.len) > limits.max_heap_bytes {
        return;
    }
    // SAFETY: a live large block of ours.
    match unsafe { heap.resize_large(b.addr, len, align) } {
        Some(p) if p.as_ptr() as usize != b.addr => {
            // Moved (growing to `MOVE_MIN` or more, no room after it): copied
            // into a mapping of its own; the old span is freed, dirty.
            let p = p.as_ptr() as usize;
            assert!(
                len >= MOVE_MIN && len > b.len,
                "a heap block of {} bytes moved to grow to {len}",
                b.len
            );
            assert_eq!(p % align.max(PAGE_SIZE), 0, "a moved block is misaligned");
            expect_prefix(p, b.len, b.len, b.tag, "contents kept by a move");
            m.remove(id);
            m.mark_dirty(b.addr, b.addr + b.len);
            m.bury(b.addr);
            m.huge_allocs += 1;
            // A mapping the huge cache kept keeps up to four times the
            // pages as room for a growing block.
            let got = heap.large_size(p).expect("a moved block");
            assert!(
                got >= len && got <= heap_len(heap, 4 * len),
                "a block moved to grow to {len} has {got}"
            );
            new_block(heap, m, p, got, false, Kind::Huge);
        }
        Some(p) => {
            assert_eq!(p.as_ptr() as usize, b.addr, "a heap block resizes in place");
            expect_prefix(b.addr, b.len, len, b.tag, "contents kept by a resize");
            m.remove(id);
            if len < b.len {
                m.mark_dirty(b.addr + len, b.addr + b.len);
            } else {
                m.mark_used(b.addr + b.len, b.addr + len);
            }
            new_block(heap, m, b.addr, len, false, Kind::Large);
        }
        None => {
            assert!(len > b.len, "a shrink in place cannot fail");
            assert_eq!(
                heap.large_size(b.addr),
                Ok(b.len),
                "a failed resize changed the block"
            );
        }
    }
}
