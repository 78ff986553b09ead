//! Tests of the defragmentation engine: orders, duplicates, overlaps, timeouts, caps.

use super::*;
use proptest::prelude::*;

const LIMITS: DefragLimits = DefragLimits {
    max_datagrams: 16,
    max_bytes: 1 << 20,
    max_fragments: 64,
    timeout_ns: 30_000_000_000,
};

fn key(id: u16) -> FragKey {
    FragKey::V4 {
        src: Ipv4Addr::new(10, 0, 0, 1),
        dst: Ipv4Addr::new(10, 0, 0, 2),
        proto: 17,
        id,
        vlan: None,
    }
}

fn datagram(n: usize) -> Vec<u8> {
    (0..n).map(|i| (i * 7 + 3) as u8).collect()
}

/// Splits `data` into fragments of `size` (a multiple of 8).
fn split(data: &[u8], size: usize) -> Vec<(u32, bool, Vec<u8>)> {
    let chunks: Vec<_> = data.chunks(size).collect();
    chunks
        .iter()
        .enumerate()
        .map(|(i, c)| ((i * size) as u32, i + 1 < chunks.len(), c.to_vec()))
        .collect()
}

fn feed(
    d: &mut Defragmenter,
    st: &mut DefragStats,
    now: i64,
    k: FragKey,
    f: &(u32, bool, Vec<u8>),
) -> Result<Outcome, FragDropReason> {
    d.insert(
        Timestamp(now),
        k,
        Fragment {
            offset: f.0,
            more: f.1,
            data: &f.2,
            next_header: 17,
            wire_len: 100,
        },
        st,
    )
}

fn complete(o: Result<Outcome, FragDropReason>) -> Option<Vec<u8>> {
    match o {
        Ok(Outcome::Complete(r)) => Some(r.data),
        _ => None,
    }
}

#[test]
fn in_order_and_reverse() {
    let data = datagram(1000);
    let frags = split(&data, 240);
    for order in [false, true] {
        let mut d = Defragmenter::new(LIMITS);
        let mut st = DefragStats::default();
        let mut seq: Vec<_> = frags.clone();
        if order {
            seq.reverse();
        }
        let n = seq.len();
        for (i, f) in seq.iter().enumerate() {
            let out = feed(&mut d, &mut st, 1, key(1), f);
            if i + 1 < n {
                assert!(matches!(out, Ok(Outcome::Held)));
            } else {
                let Ok(Outcome::Complete(r)) = out else {
                    panic!("incomplete")
                };
                assert_eq!(r.data, data);
                assert_eq!(r.next_header, 17);
                assert_eq!(r.wire_len, 100 * n as u32);
            }
        }
        assert_eq!(d.in_progress(), 0);
        assert_eq!(d.buffered_bytes(), 0);
        assert_eq!(st.reassembled, 1);
    }
}

#[test]
fn overlap_first_copy_wins_and_conflicts_counted() {
    let mut d = Defragmenter::new(LIMITS);
    let mut st = DefragStats::default();
    assert!(matches!(
        feed(&mut d, &mut st, 1, key(2), &(0, true, vec![1; 16])),
        Ok(Outcome::Held)
    ));
    // Overlaps bytes 8..16 with different content, then extends to 24.
    assert!(matches!(
        feed(&mut d, &mut st, 1, key(2), &(8, true, vec![2; 16])),
        Ok(Outcome::Held)
    ));
    let out =
        complete(feed(&mut d, &mut st, 1, key(2), &(24, false, vec![3; 4]))).expect("complete");
    let mut want = vec![1u8; 16];
    want.extend_from_slice(&[2; 8]);
    want.extend_from_slice(&[3; 4]);
    assert_eq!(out, want);
    assert_eq!(st.overlap_bytes, 8);
    assert_eq!(st.overlap_conflict_bytes, 8);
}

#[test]
fn duplicates_counted() {
    let mut d = Defragmenter::new(LIMITS);
    let mut st = DefragStats::default();
    let f = (0, true, vec![9; 8]);
    feed(&mut d, &mut st, 1, key(3), &f).expect("held");
    feed(&mut d, &mut st, 1, key(3), &f).expect("held");
    assert_eq!(
        (st.duplicates, st.overlap_bytes, st.overlap_conflict_bytes),
        (1, 8, 0)
    );
}

#[test]
fn bad_fragments() {
    let mut d = Defragmenter::new(LIMITS);
    let mut st = DefragStats::default();
    assert_eq!(
        feed(&mut d, &mut st, 1, key(4), &(0, true, vec![0; 7])).err(),
        Some(FragDropReason::BadFragment)
    );
    assert_eq!(
        feed(&mut d, &mut st, 1, key(4), &(0, true, vec![])).err(),
        Some(FragDropReason::BadFragment)
    );
    assert_eq!(
        feed(&mut d, &mut st, 1, key(4), &(65528, false, vec![0; 8])).err(),
        Some(FragDropReason::TooLarge)
    );
    // Two different last fragments.
    feed(&mut d, &mut st, 1, key(4), &(16, false, vec![0; 8])).expect("held");
    assert_eq!(
        feed(&mut d, &mut st, 1, key(4), &(16, false, vec![0; 4])).err(),
        Some(FragDropReason::Inconsistent)
    );
    assert_eq!(d.in_progress(), 0, "inconsistent train dropped");
    // Data beyond the declared end.
    feed(&mut d, &mut st, 1, key(5), &(8, false, vec![0; 4])).expect("held");
    assert_eq!(
        feed(&mut d, &mut st, 1, key(5), &(8, true, vec![0; 8])).err(),
        Some(FragDropReason::Inconsistent)
    );
    assert_eq!(st.trains_dropped, 2);
}

#[test]
fn timeout_expires_trains() {
    let mut d = Defragmenter::new(LIMITS);
    let mut st = DefragStats::default();
    feed(&mut d, &mut st, 0, key(6), &(0, true, vec![0; 8])).expect("held");
    d.expire(Timestamp(LIMITS.timeout_ns - 1), &mut st);
    assert_eq!(d.in_progress(), 1);
    d.expire(Timestamp(LIMITS.timeout_ns), &mut st);
    assert_eq!((d.in_progress(), st.expired, d.buffered_bytes()), (0, 1, 0));
    // A late last fragment starts a new train instead of completing the old one.
    feed(&mut d, &mut st, 0, key(7), &(0, true, vec![0; 8])).expect("held");
    let late = feed(
        &mut d,
        &mut st,
        LIMITS.timeout_ns + 5,
        key(7),
        &(8, false, vec![0; 8]),
    );
    assert!(matches!(late, Ok(Outcome::Held)));
    assert_eq!(st.expired, 2);
}

#[test]
fn datagram_cap_evicts_oldest() {
    let mut d = Defragmenter::new(DefragLimits {
        max_datagrams: 2,
        ..LIMITS
    });
    let mut st = DefragStats::default();
    for id in 0..3 {
        feed(
            &mut d,
            &mut st,
            i64::from(id),
            key(id),
            &(0, true, vec![0; 8]),
        )
        .expect("held");
    }
    assert_eq!((d.in_progress(), st.evicted), (2, 1));
    // key(0) was the oldest: its last fragment now starts a new train.
    assert!(matches!(
        feed(&mut d, &mut st, 3, key(0), &(8, false, vec![0; 8])),
        Ok(Outcome::Held)
    ));
    assert!(complete(feed(&mut d, &mut st, 3, key(2), &(8, false, vec![0; 8]))).is_some());
}

#[test]
fn byte_cap_evicts_then_refuses() {
    let mut d = Defragmenter::new(DefragLimits {
        max_bytes: 1000,
        ..LIMITS
    });
    let mut st = DefragStats::default();
    feed(&mut d, &mut st, 0, key(1), &(0, true, vec![0; 800])).expect("held");
    feed(&mut d, &mut st, 1, key(2), &(0, true, vec![0; 800])).expect("held");
    assert_eq!(
        (d.in_progress(), st.evicted, d.buffered_bytes()),
        (1, 1, 800)
    );
    assert_eq!(
        feed(&mut d, &mut st, 2, key(3), &(0, true, vec![0; 1008])).err(),
        Some(FragDropReason::MemoryLimit)
    );
    assert!(d.buffered_bytes() <= 1000);
    assert_eq!(d.in_progress(), 0);
}

#[test]
fn fragment_count_cap() {
    let mut d = Defragmenter::new(DefragLimits {
        max_fragments: 4,
        ..LIMITS
    });
    let mut st = DefragStats::default();
    for i in 0..4u32 {
        feed(&mut d, &mut st, 0, key(1), &(i * 8, true, vec![0; 8])).expect("held");
    }
    assert_eq!(
        feed(&mut d, &mut st, 0, key(1), &(32, true, vec![0; 8])).err(),
        Some(FragDropReason::TooManyFragments)
    );
    assert_eq!(d.in_progress(), 0);
}

#[test]
fn merge_intervals() {
    let mut v = vec![];
    merge(&mut v, (16, 24));
    merge(&mut v, (0, 8));
    assert_eq!(v, vec![(0, 8), (16, 24)]);
    merge(&mut v, (8, 16));
    assert_eq!(v, vec![(0, 24)]);
    merge(&mut v, (4, 40));
    assert_eq!(v, vec![(0, 40)]);
}

proptest! {
    #[test]
    fn any_permutation_with_duplicates_reassembles(
        len in 1usize..3000,
        size_units in 1usize..40,
        order in proptest::collection::vec(any::<proptest::sample::Index>(), 1..80),
    ) {
        let data = datagram(len);
        let frags = split(&data, size_units * 8);
        // Every fragment at least once, in a random order, then random duplicates
        // interleaved before the datagram completes.
        let mut seq: Vec<usize> = (0..frags.len()).collect();
        for (i, ix) in order.iter().enumerate() {
            let j = ix.index(seq.len());
            if i % 2 == 0 {
                let k = i % seq.len();
                seq.swap(k, j);
            } else {
                let dup = seq[j];
                seq.insert(j, dup);
            }
        }
        let mut d = Defragmenter::new(DefragLimits { max_fragments: 1024, ..LIMITS });
        let mut st = DefragStats::default();
        let mut done = None;
        for &i in &seq {
            match feed(&mut d, &mut st, 1, key(9), &frags[i]) {
                Ok(Outcome::Complete(r)) => { done = Some(r.data); break; }
                Ok(Outcome::Held) => {}
                Err(e) => prop_assert!(false, "dropped: {e:?}"),
            }
        }
        prop_assert_eq!(done, Some(data));
        prop_assert_eq!(st.overlap_conflict_bytes, 0);
        prop_assert_eq!(d.buffered_bytes(), 0);
    }

    #[test]
    fn random_fragments_respect_bounds(
        frags in proptest::collection::vec((0u32..70_000, any::<bool>(), 0usize..600, 0u16..4), 1..200),
    ) {
        let limits = DefragLimits { max_datagrams: 3, max_bytes: 100_000, max_fragments: 50, timeout_ns: 10 };
        let mut d = Defragmenter::new(limits);
        let mut st = DefragStats::default();
        for (t, (off, more, n, id)) in frags.iter().enumerate() {
            let data = vec![0u8; *n];
            let _ = d.insert(Timestamp(t as i64), key(*id), Fragment { offset: off & !7, more: *more, data: &data, next_header: 6, wire_len: 1 }, &mut st);
            prop_assert!(d.in_progress() <= 3);
            prop_assert!(d.buffered_bytes() <= 100_000);
        }
    }
}
