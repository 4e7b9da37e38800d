//! Collections growing through every size class into huge spans (so each
//! growth step is a `realloc` across a boundary), then shrinking.

#[global_allocator]
static GLOBAL: strata::Strata = strata::Strata;

mod common;

use common::{check, long_tests, MIB};
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::thread;

fn word(i: u64) -> u64 {
    i.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ 0x0123_4567_89AB_CDEF
}

#[test]
fn vec_u8_grows_byte_by_byte() {
    let target = if long_tests() { 64 * MIB } else { 16 * MIB };
    let seed = 0xB17E;
    let mut pattern = vec![0u8; target];
    common::fill(&mut pattern, seed);
    let mut v: Vec<u8> = Vec::new();
    let mut moves = 0;
    let mut last = v.as_ptr();
    for &b in &pattern {
        v.push(b);
        if v.as_ptr() != last {
            moves += 1;
            last = v.as_ptr();
        }
    }
    assert!(moves > 10, "the vector grew through many reallocations");
    check(&v, seed, "Vec<u8> pushed byte by byte");
}

#[test]
fn vec_u8_extends_in_chunks_to_64_mib() {
    let target = 64 * MIB;
    let seed = 0xC4_0C5;
    // One pattern buffer, appended in chunks of varied odd lengths so that the
    // vector's length crosses every boundary at an unaligned offset.
    let mut pattern = vec![0u8; target];
    common::fill(&mut pattern, seed);
    let mut v: Vec<u8> = Vec::new();
    let mut step = 1usize;
    while v.len() < target {
        let end = (v.len() + step).min(target);
        v.extend_from_slice(&pattern[v.len()..end]);
        step = (step * 3 / 2 + 7) % 70_001;
    }
    assert_eq!(v.len(), target);
    check(&v, seed, "Vec<u8> extended in chunks");
    drop(pattern);
    // Shrink it back down in steps, keeping the prefix.
    for len in [48 * MIB, 33 * MIB + 1, MIB, 300_000, 4097, 100, 1] {
        v.truncate(len);
        v.shrink_to_fit();
        check(&v, seed, "Vec<u8> after truncate + shrink_to_fit");
    }
}

#[test]
fn vec_u64_grows_to_8m_elements() {
    let n = 8 * 1024 * 1024;
    let mut v: Vec<u64> = Vec::new();
    for i in 0..n as u64 {
        v.push(word(i));
    }
    assert_eq!(v.len(), n);
    let bad = v.iter().enumerate().position(|(i, &x)| x != word(i as u64));
    assert_eq!(bad, None, "Vec<u64> of {n} elements at {:p}", v.as_ptr());
}

fn value(i: u64) -> String {
    // Lengths 1..=40 so the strings spread over several small size classes.
    let len = (i % 40 + 1) as usize;
    let mut s = format!("{i:x}-");
    while s.len() < len {
        s.push((b'a' + (i % 26) as u8) as char);
    }
    s
}

fn hash_map_round(seed: u64, n: u64) {
    let key = |i: u64| i.wrapping_mul(0x2545_F491_4F6C_DD1D) ^ seed;
    let mut m: HashMap<u64, String> = HashMap::new();
    for i in 0..n {
        assert!(m.insert(key(i), value(i)).is_none());
    }
    assert_eq!(m.len(), n as usize);
    for i in 0..n {
        assert_eq!(m.get(&key(i)), Some(&value(i)), "HashMap entry {i}");
    }
    // Remove every other entry, then check the rest and the shrunk map.
    for i in (0..n).step_by(2) {
        assert_eq!(m.remove(&key(i)), Some(value(i)));
    }
    m.shrink_to_fit();
    for i in 0..n {
        let expect = (i % 2 == 1).then(|| value(i));
        assert_eq!(
            m.get(&key(i)),
            expect.as_ref(),
            "HashMap entry {i} after removals"
        );
    }
}

fn btree_map_round(seed: u64, n: u64) {
    let mut m: BTreeMap<u64, String> = BTreeMap::new();
    for i in (0..n).rev() {
        m.insert(i ^ seed, value(i));
    }
    assert_eq!(m.len(), n as usize);
    let mut count = 0;
    for (k, v) in &m {
        assert_eq!(*v, value(k ^ seed), "BTreeMap entry {k}");
        count += 1;
    }
    assert_eq!(count, n);
    m.retain(|k, _| k % 3 != 0);
    for (k, v) in &m {
        assert_eq!(*v, value(k ^ seed));
    }
}

#[test]
fn hash_maps_and_btree_maps_with_200k_entries() {
    let n = 200_000;
    let maps = if long_tests() { 8 } else { 2 };
    // Two threads at once, so their caches and the shared heap interleave.
    let handles: Vec<_> = (0..2u64)
        .map(|t| {
            thread::spawn(move || {
                for r in 0..maps {
                    let seed = (t << 32) | r;
                    if r % 2 == 0 {
                        hash_map_round(seed, n);
                    } else {
                        btree_map_round(seed, n);
                    }
                }
            })
        })
        .collect();
    for h in handles {
        h.join().expect("map thread panicked");
    }
}

#[test]
fn vec_deque_grows_and_shrinks() {
    let n = if long_tests() { 4_000_000 } else { 1_000_000 };
    let mut d: VecDeque<u64> = VecDeque::new();
    // Grow at both ends: the front holds n-1..=0 reversed, the back n..2n.
    for i in 0..n {
        d.push_back(word(n + i));
        d.push_front(word(n - 1 - i));
    }
    assert_eq!(d.len(), 2 * n as usize);
    assert!(
        d.iter().enumerate().all(|(i, &x)| x == word(i as u64)),
        "VecDeque after growth"
    );
    // Shrink from both ends with shrink_to_fit along the way (the ring buffer
    // is reallocated while wrapped around).
    let mut lo = 0u64;
    let mut hi = 2 * n;
    while hi - lo > 10 {
        for _ in 0..(hi - lo) / 4 {
            assert_eq!(d.pop_front(), Some(word(lo)));
            lo += 1;
            hi -= 1;
            assert_eq!(d.pop_back(), Some(word(hi)));
        }
        d.shrink_to_fit();
        d.push_front(word(lo - 1));
        lo -= 1;
        assert!(
            d.iter().zip(lo..hi).all(|(&x, i)| x == word(i)),
            "VecDeque after shrink to {}",
            hi - lo
        );
    }
}

#[test]
fn shrink_to_fit_keeps_contents() {
    let sizes = [
        1usize,
        7,
        8,
        9,
        100,
        4095,
        4097,
        40_000,
        262_143,
        262_145,
        300_000,
        4 * MIB + 3,
    ];
    for (k, &cap) in sizes.iter().enumerate() {
        for &len in &sizes[..=k] {
            let seed = (cap * 7 + len) as u64;
            let mut v: Vec<u8> = Vec::with_capacity(cap);
            v.resize(len, 0);
            common::fill(&mut v, seed);
            v.shrink_to_fit();
            assert!(v.capacity() >= len);
            check(
                &v,
                seed,
                &format!("shrink_to_fit from capacity {cap} to {len}"),
            );
            // Grow again after shrinking, then shrink to a boxed slice.
            v.reserve(cap);
            check(&v, seed, "reserve after shrink_to_fit");
            let b = v.into_boxed_slice();
            check(&b, seed, "into_boxed_slice");
        }
    }
    // Strings and other element types.
    let mut s = String::with_capacity(MIB);
    for i in 0..10_000 {
        s.push_str(&value(i));
    }
    let copy = s.clone();
    s.shrink_to_fit();
    assert_eq!(s, copy);
    let mut w: Vec<u64> = (0..100_000).map(word).collect();
    w.truncate(3);
    w.shrink_to_fit();
    assert_eq!(w, [word(0), word(1), word(2)]);
}
