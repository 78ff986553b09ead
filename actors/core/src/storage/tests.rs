//! The store's logic on [`MemEngine`]: pagination for every filter kind, the CIDR walk,
//! counters, retention, sequence recovery, and the property that the plan never changes
//! a query's result.

use super::engine::{EngineBatch, Family, KvEngine, MemEngine};
use super::filter::FlowFilter;
use super::keys::{FlowId, TopField};
use super::store::{Store, META_NEXT_SEQ};
use flowmesh_schemas::{EndReason, FlowRecord, Handshake, Timestamp, Transport};
use proptest::prelude::*;
use std::collections::BTreeSet;
use std::net::IpAddr;
use std::time::Duration;

fn record(client: IpAddr, server: IpAddr, ports: (u16, u16), t: i64) -> FlowRecord {
    FlowRecord {
        transport: Transport::Tcp,
        l7: None,
        client_ip: client,
        client_port: ports.0,
        server_ip: server,
        server_port: ports.1,
        vlan: None,
        first_seen: Timestamp(t),
        last_seen: Timestamp(t + 10),
        packets_c2s: 3,
        packets_s2c: 2,
        bytes_c2s: 300,
        bytes_s2c: 200,
        tcp_flags_c2s: 0x1b,
        tcp_flags_s2c: 0x1b,
        end_reason: EndReason::Fin,
        conn_state: "SF".into(),
        community_id: format!("1:{}", ports.0 % 7),
        midstream: false,
        handshakes: Vec::new(),
    }
}

fn handshake(sni: Option<&str>, ja3: &str, ja4: &str) -> Handshake {
    Handshake {
        sni: sni.map(str::to_owned),
        ja3_hash: Some(ja3.to_owned()),
        ja3s_hash: Some(format!("s{ja3}")),
        ja4: Some(ja4.to_owned()),
        ja4s: Some(format!("s_{ja4}")),
        ..Handshake::default()
    }
}

fn ip(s: &str) -> IpAddr {
    s.parse().expect("test address")
}

/// A varied set: times spread over hours (some equal, one before the epoch), v4 and v6,
/// records with one, two or no handshakes.
fn sample() -> Vec<FlowRecord> {
    let mut out = Vec::new();
    for i in 0..120i64 {
        let client = if i % 5 == 0 {
            IpAddr::V6(format!("2001:db8::{:x}", i % 9).parse().expect("v6"))
        } else {
            ip(&format!("10.{}.0.{}", i % 3, i % 11))
        };
        let server = ip(&format!("192.168.{}.1", i % 4));
        let t = if i == 7 { -5 } else { (i / 2) * 60_000_000_000 };
        let mut r = record(
            client,
            server,
            (40_000 + (i % 13) as u16, [443, 80, 8443][i as usize % 3]),
            t,
        );
        if i % 4 != 3 {
            r.handshakes.push(handshake(
                Some(["a.example", "B.example.", "c.test"][i as usize % 3]),
                &format!("{:032x}", i % 5),
                &format!("t13d_{}", i % 6),
            ));
        }
        if i % 10 == 0 {
            r.handshakes
                .push(handshake(None, &format!("{:032x}", 99), "t12d_x"));
        }
        if i % 17 == 0 {
            r.transport = Transport::Udp;
        }
        out.push(r);
    }
    out
}

fn store_with(records: &[FlowRecord]) -> (Store<MemEngine>, Vec<FlowId>) {
    let store = Store::with_engine(MemEngine::new()).expect("open");
    let mut ids = Vec::new();
    for chunk in records.chunks(17) {
        ids.extend(store.write(chunk).expect("write"));
    }
    (store, ids)
}

/// All pages of a query; asserts every page is ascending and pages do not overlap.
fn paged(store: &Store<MemEngine>, filter: &FlowFilter, limit: usize) -> Vec<FlowId> {
    let mut out: Vec<FlowId> = Vec::new();
    let mut cursor = None;
    for _ in 0..10_000 {
        let page = store.query(filter, cursor, limit).expect("query");
        assert!(page.flows.len() <= limit);
        for (id, _) in &page.flows {
            assert!(out.last().is_none_or(|last| last < id), "{filter:?}: order");
            out.push(*id);
        }
        match page.next_cursor {
            Some(c) => cursor = Some(c),
            None => return out,
        }
    }
    panic!("{filter:?}: pagination does not end");
}

fn brute(records: &[FlowRecord], ids: &[FlowId], filter: &FlowFilter) -> Vec<FlowId> {
    let mut v: Vec<FlowId> = ids
        .iter()
        .zip(records)
        .filter(|(_, r)| filter.matches(r))
        .map(|(id, _)| *id)
        .collect();
    v.sort();
    v
}

fn filters() -> Vec<FlowFilter> {
    let f = FlowFilter::default;
    let t = |m: i64| Some(Timestamp(m * 60_000_000_000));
    vec![
        f(),
        FlowFilter {
            from: t(10),
            to: t(30),
            ..f()
        },
        FlowFilter {
            to: Some(Timestamp(0)),
            ..f()
        },
        FlowFilter {
            ip: Some(ip("10.1.0.4")),
            ..f()
        },
        FlowFilter {
            ip: Some(ip("192.168.2.1")),
            from: t(20),
            ..f()
        },
        FlowFilter {
            ip: Some(ip("2001:db8::5")),
            ..f()
        },
        FlowFilter {
            cidr: Some((ip("10.0.0.0"), 8)),
            ..f()
        },
        FlowFilter {
            cidr: Some((ip("10.2.0.0"), 16)),
            to: t(40),
            ..f()
        },
        FlowFilter {
            cidr: Some((ip("2001:db8::"), 32)),
            ..f()
        },
        FlowFilter {
            cidr: Some((ip("::"), 0)),
            transport: Some(Transport::Udp),
            ..f()
        },
        FlowFilter {
            cidr: Some((ip("192.168.0.0"), 16)),
            ja4: Some("t13d_1".into()),
            ..f()
        },
        FlowFilter {
            port: Some(443),
            ..f()
        },
        FlowFilter {
            port: Some(40_003),
            from: t(5),
            ..f()
        },
        FlowFilter {
            transport: Some(Transport::Udp),
            ..f()
        },
        FlowFilter {
            sni: Some("b.EXAMPLE".into()),
            ..f()
        },
        FlowFilter {
            sni: Some("c.test.".into()),
            port: Some(80),
            ..f()
        },
        FlowFilter {
            ja3: Some(format!("{:032X}", 2)),
            ..f()
        },
        FlowFilter {
            ja3: Some(format!("{:032x}", 99)),
            ..f()
        },
        FlowFilter {
            ja4: Some("t13d_3".into()),
            ..f()
        },
        FlowFilter {
            ja4: Some("t12d_x".into()),
            from: t(30),
            ..f()
        },
        FlowFilter {
            community_id: Some("1:3".into()),
            ..f()
        },
        FlowFilter {
            community_id: Some("1:3".into()),
            ja4: Some("t13d_0".into()),
            ..f()
        },
        FlowFilter {
            ja4: Some("none".into()),
            ..f()
        },
    ]
}

#[test]
fn every_filter_kind_pages_to_the_brute_force_result() {
    let records = sample();
    let (store, ids) = store_with(&records);
    assert_eq!(ids.iter().collect::<BTreeSet<_>>().len(), records.len());
    for filter in filters() {
        let expected = brute(&records, &ids, &filter);
        for limit in [1, 2, 3, 7, 50, 1000] {
            assert_eq!(
                paged(&store, &filter, limit),
                expected,
                "{filter:?} limit {limit}"
            );
        }
    }
}

#[test]
fn a_small_scan_budget_ends_pages_early_but_loses_nothing() {
    let records = sample();
    let (store, ids) = store_with(&records);
    let store = store.with_scan_budget(5);
    for filter in filters() {
        let expected = brute(&records, &ids, &filter);
        assert_eq!(paged(&store, &filter, 4), expected, "{filter:?}");
    }
    // A budget-limited page may be empty but still points on.
    let sparse = FlowFilter {
        transport: Some(Transport::Udp),
        ..FlowFilter::default()
    };
    let page = store.query(&sparse, None, 10).expect("query");
    assert!(page.flows.len() < 10 && page.next_cursor.is_some());
}

#[test]
fn cidr_walk_keeps_the_smallest_ids_and_counts_a_flow_once() {
    // Client and server in the same network: one flow, two index entries.
    let records: Vec<FlowRecord> = (0..30)
        .rev()
        .map(|i| {
            record(
                ip(&format!("10.0.0.{i}")),
                ip("10.0.1.1"),
                (1000, 443),
                i * 1000,
            )
        })
        .collect();
    let (store, ids) = store_with(&records);
    let filter = FlowFilter {
        cidr: Some((ip("10.0.0.0"), 16)),
        ..FlowFilter::default()
    };
    let page = store.query(&filter, None, 4).expect("query");
    let mut sorted = ids.clone();
    sorted.sort();
    let got: Vec<FlowId> = page.flows.iter().map(|(id, _)| *id).collect();
    assert_eq!(got, sorted[..4]);
    assert_eq!(page.next_cursor, Some(sorted[3]));
    assert_eq!(paged(&store, &filter, 4), sorted);
}

#[test]
fn cursor_past_the_end_and_empty_ranges() {
    let (store, _) = store_with(&sample());
    let page = store
        .query(&FlowFilter::default(), Some(FlowId::MAX), 10)
        .expect("query");
    assert_eq!(page.flows.len(), 0);
    assert_eq!(page.next_cursor, None);
    let inverted = FlowFilter {
        from: Some(Timestamp(100)),
        to: Some(Timestamp(50)),
        ..FlowFilter::default()
    };
    assert_eq!(paged(&store, &inverted, 10), Vec::<FlowId>::new());
    let last_page = store
        .query(&FlowFilter::default(), None, 1000)
        .expect("query");
    assert_eq!(last_page.flows.len(), 120);
    assert_eq!(last_page.next_cursor, None, "everything fit: no cursor");
}

#[test]
fn get_returns_what_was_written() {
    let records = sample();
    let (store, ids) = store_with(&records);
    for (id, r) in ids.iter().zip(&records) {
        assert_eq!(store.get(*id).expect("get").as_ref(), Some(r));
    }
    assert_eq!(
        store
            .get(FlowId {
                time_ns: 1,
                seq: 999_999
            })
            .expect("get"),
        None
    );
    assert_eq!(
        ids[7].time_ns, 0,
        "a pre-epoch first_seen is stored at time 0"
    );
}

#[test]
fn sequence_recovers_from_meta_and_from_the_last_flow() {
    let records = sample();
    let (store, ids) = store_with(&records);
    let max = ids.iter().map(|id| id.seq).max().expect("ids");
    let engine = store.engine;
    // Meta lowered behind the store's back (e.g. data from a build without it): the last
    // stored flow still bounds the next sequence.
    let mut b = engine.batch();
    b.put(Family::Meta, META_NEXT_SEQ, &0u64.to_le_bytes());
    engine.write(b).expect("write");
    let store = Store::with_engine(engine).expect("reopen");
    let new = store.write(&records[..3]).expect("write");
    // The last flow by key is the latest first_seen, not necessarily the largest seq;
    // the max-merged meta covers that case, so check both paths.
    assert!(new.iter().all(|id| !ids.contains(id)));
    let engine = store.engine;
    let store = Store::with_engine(engine).expect("reopen");
    assert!(store.stats().expect("stats").next_seq > max);
}

#[test]
fn meta_is_never_lowered_by_out_of_order_batches() {
    let store = Store::with_engine(MemEngine::new()).expect("open");
    let engine = &store.engine;
    let mut late = engine.batch();
    late.raise_meta(META_NEXT_SEQ, 10);
    let mut early = engine.batch();
    early.raise_meta(META_NEXT_SEQ, 5);
    engine.write(late).expect("write");
    engine.write(early).expect("write");
    let v = engine
        .get(Family::Meta, META_NEXT_SEQ)
        .expect("get")
        .expect("meta set");
    assert_eq!(v, 10u64.to_le_bytes());
}

#[test]
fn top_counts_each_value_once_per_flow_per_minute_range() {
    let records = sample();
    let (store, _) = store_with(&records);
    let count = |f: &dyn Fn(&FlowRecord) -> Vec<String>, since: i64| {
        let mut m = std::collections::BTreeMap::<String, u64>::new();
        for r in records.iter().filter(|r| r.first_seen.as_nanos() >= since) {
            let distinct: BTreeSet<String> = f(r).into_iter().collect();
            for v in distinct {
                *m.entry(v).or_default() += 1;
            }
        }
        m
    };
    let hs = |g: fn(&Handshake) -> Option<String>| {
        move |r: &FlowRecord| r.handshakes.iter().filter_map(g).collect::<Vec<_>>()
    };
    type Getter = fn(&Handshake) -> Option<String>;
    let cases: [(TopField, Getter); 5] = [
        (TopField::Ja3, |h| h.ja3_hash.clone()),
        (TopField::Ja3s, |h| h.ja3s_hash.clone()),
        (TopField::Ja4, |h| h.ja4.clone()),
        (TopField::Ja4s, |h| h.ja4s.clone()),
        (TopField::Sni, |h| {
            h.sni
                .as_deref()
                .map(|s| s.trim_end_matches('.').to_ascii_lowercase())
        }),
    ];
    for (field, get) in cases {
        for since_min in [0i64, 20] {
            let since = since_min * 60_000_000_000;
            let expected = count(&hs(get), since);
            let top = store.top(field, Timestamp(since), None, 1000).expect("top");
            assert_eq!(
                top.iter()
                    .cloned()
                    .collect::<std::collections::BTreeMap<_, _>>(),
                expected,
                "{field}"
            );
            assert!(top
                .windows(2)
                .all(|w| w[0].1 > w[1].1 || (w[0].1 == w[1].1 && w[0].0 < w[1].0)));
        }
        let top2 = store.top(field, Timestamp(0), None, 2).expect("top");
        assert!(top2.len() <= 2);
    }
    // `until` excludes whole minutes from its (rounded-up) minute on.
    let early = store
        .top(TopField::Ja4, Timestamp(0), Some(Timestamp(1)), 100)
        .expect("top");
    let minute0: u64 = early.iter().map(|(_, c)| c).sum();
    assert!(minute0 > 0);
    assert!(store
        .top(TopField::Ja4, Timestamp(0), Some(Timestamp(0)), 100)
        .expect("top")
        .is_empty());
}

#[test]
fn retention_by_age_and_by_size() {
    let records = sample();
    let (store, ids) = store_with(&records);
    let minute = 60_000_000_000i64;
    let now = Timestamp(100 * minute);
    let report = store
        .apply_retention(now, Some(Duration::from_secs(60 * 70)), None)
        .expect("retention");
    assert_eq!(report.age_cutoff, Some(Timestamp(30 * minute)));
    let keep = FlowFilter {
        from: Some(Timestamp(30 * minute)),
        ..FlowFilter::default()
    };
    let expected = brute(&records, &ids, &keep);
    assert_eq!(paged(&store, &FlowFilter::default(), 9), expected);
    // Index entries below the cutoff are gone from every index family.
    for family in Family::INDEXES {
        store
            .engine
            .scan(family, &[], None, &mut |k, _| {
                let t = super::keys::index_key_time(k).expect("index key");
                assert!(t >= 30 * minute as u64, "{family:?} kept an old entry");
                true
            })
            .expect("scan");
    }
    let top = store
        .top(TopField::Ja4, Timestamp(0), None, 100)
        .expect("top");
    let total: u64 = top.iter().map(|(_, c)| c).sum();
    let expected_total: usize = records
        .iter()
        .filter(|r| r.first_seen.as_nanos() >= 30 * minute)
        .map(|r| {
            r.handshakes
                .iter()
                .filter_map(|h| h.ja4.as_ref())
                .collect::<BTreeSet<_>>()
                .len()
        })
        .sum();
    assert_eq!(total, expected_total as u64);
    // By size: shrink until under a third of the current size, oldest first.
    let before = store.engine.disk_bytes().expect("size");
    let report = store
        .apply_retention(now, None, Some(before / 3))
        .expect("retention");
    assert!(report.size_rounds > 0);
    assert!(report.disk_bytes_after <= before / 3, "{report:?}");
    let left = paged(&store, &FlowFilter::default(), 50);
    assert!(!left.is_empty());
    let cut = report.size_cutoff.expect("size cutoff").as_nanos() as u64;
    assert!(left.iter().all(|id| id.time_ns >= cut));
    assert_eq!(
        left,
        expected
            .into_iter()
            .filter(|id| id.time_ns >= cut)
            .collect::<Vec<_>>()
    );
}

/// A small universe of values, so random filters hit random records often.
fn arb_record() -> impl Strategy<Value = FlowRecord> {
    let ips = prop::sample::select(vec![
        "10.0.0.1",
        "10.0.0.2",
        "10.1.0.1",
        "::1",
        "2001:db8::1",
        "::ffff:10.0.0.1",
    ]);
    let hs = (
        prop::option::of(prop::sample::select(vec!["a.test", "A.TEST.", "b.test"])),
        0u8..3,
        0u8..3,
    )
        .prop_map(|(sni, j3, j4)| handshake(sni, &format!("{j3:032x}"), &format!("ja4_{j4}")));
    (
        ips.clone(),
        ips,
        0u16..4,
        0u16..4,
        -2i64..40,
        prop::collection::vec(hs, 0..3),
        any::<bool>(),
    )
        .prop_map(|(c, s, cp, sp, t, handshakes, udp)| {
            let mut r = record(ip(c), ip(s), (cp, 440 + sp), t);
            r.community_id = format!("1:{}", (cp + sp) % 3);
            r.handshakes = handshakes;
            if udp {
                r.transport = Transport::Udp;
            }
            r
        })
}

fn arb_filter() -> impl Strategy<Value = FlowFilter> {
    let ips = prop::sample::select(vec!["10.0.0.1", "::1", "2001:db8::1", "::ffff:10.0.0.2"]);
    let cidrs = prop::sample::select(vec![
        ("10.0.0.0", 8u8),
        ("10.0.0.0", 24),
        ("::", 0),
        ("2001:db8::", 32),
        ("::ffff:0:0", 96),
    ]);
    (
        (prop::option::of(-3i64..42), prop::option::of(-3i64..42)),
        prop::option::of(ips),
        prop::option::of(cidrs),
        prop::option::of(prop_oneof![0u16..4, 440u16..444]),
        prop::option::of(prop::sample::select(vec!["a.test", "b.test."])),
        prop::option::of(0u8..4),
        prop::option::of(0u8..4),
        prop::option::of(0u16..4),
        prop::option::of(any::<bool>()),
    )
        .prop_map(
            |((from, to), ip_, cidr, port, sni, ja3, ja4, cid, udp)| FlowFilter {
                from: from.map(Timestamp),
                to: to.map(Timestamp),
                ip: ip_.map(ip),
                cidr: cidr.map(|(a, p)| (ip(a), p)),
                port,
                transport: udp.map(|u| if u { Transport::Udp } else { Transport::Tcp }),
                sni: sni.map(str::to_owned),
                ja3: ja3.map(|j| format!("{j:032x}")),
                ja4: ja4.map(|j| format!("ja4_{j}")),
                community_id: cid.map(|c| format!("1:{c}")),
            },
        )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    /// Whatever index the plan picks, and whatever the page size and scan budget, the
    /// paged result is exactly the brute-force filter over every record.
    #[test]
    fn index_choice_never_changes_results(
        records in prop::collection::vec(arb_record(), 0..60),
        filter in arb_filter(),
        limit in 1usize..8,
        budget in prop_oneof![Just(1_000_000usize), 1usize..6],
    ) {
        let (store, ids) = store_with(&records);
        let store = store.with_scan_budget(budget);
        prop_assert_eq!(paged(&store, &filter, limit), brute(&records, &ids, &filter));
    }
}

/// Records of a query, as sorted debug strings (ids differ between stores).
fn found(store: &Store<MemEngine>, filter: &FlowFilter) -> Vec<String> {
    let mut out: Vec<String> = paged(store, filter, 7)
        .into_iter()
        .map(|id| format!("{:?}", store.get(id).expect("get").expect("stored")))
        .collect();
    out.sort();
    out
}

/// Every top list of a store, by field.
fn tops(store: &Store<MemEngine>) -> Vec<Vec<(String, u64)>> {
    TopField::ALL
        .iter()
        .map(|&f| store.top(f, Timestamp(-1), None, 1000).expect("top"))
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(100))]

    /// Live capture stores an interim record of a flow at handshake time and its final
    /// record later, each batch cut anywhere: once the finals are in, queries, counts and
    /// record totals are exactly those of storing the finals alone.
    #[test]
    fn interim_records_leave_what_the_final_records_alone_would(
        flows in prop::collection::vec((arb_record(), any::<bool>(), 0u8..4, 1usize..3), 1..40),
        filter in arb_filter(),
        cut in 1usize..9,
    ) {
        let mut names = BTreeSet::new();
        let mut events: Vec<(usize, FlowRecord)> = Vec::new();
        let mut finals = Vec::new();
        for (i, (mut r, interim, delay, known)) in flows.into_iter().enumerate() {
            r.l7 = Some(flowmesh_schemas::L7::Tls);
            // Two flows cannot share first packet time and Community ID: keep the first.
            if !names.insert((r.first_seen, r.community_id.clone(), r.transport.proto())) {
                continue;
            }
            if interim && !r.handshakes.is_empty() {
                let mut open = r.clone();
                open.end_reason = EndReason::Open;
                open.packets_c2s = 1;
                // The first handshakes, answered before the flow's later ClientHellos.
                open.handshakes.truncate(known);
                events.push((2 * i, open));
            }
            events.push((2 * (i + usize::from(delay)) + 1, r.clone()));
            finals.push(r);
        }
        events.sort_by_key(|(at, _)| *at);
        let with_interims = Store::with_engine(MemEngine::new()).expect("open");
        let records: Vec<FlowRecord> = events.into_iter().map(|(_, r)| r).collect();
        for chunk in records.chunks(cut) {
            with_interims.write(chunk).expect("write");
        }
        let (alone, _) = store_with(&finals);
        prop_assert_eq!(found(&with_interims, &filter), found(&alone, &filter));
        prop_assert_eq!(tops(&with_interims), tops(&alone));
        let (a, b) = (with_interims.stats().expect("stats"), alone.stats().expect("stats"));
        prop_assert_eq!(a.records_written, b.records_written);
        prop_assert_eq!(a.open_records, 0);
        prop_assert_eq!(open_markers(&with_interims.engine), 0);
    }
}

/// A TLS flow with one handshake (JA4 `ja4_a`), ended by FIN.
fn tls_flow() -> FlowRecord {
    let mut r = record(ip("10.0.0.1"), ip("10.0.0.2"), (40_000, 443), 5);
    r.l7 = Some(flowmesh_schemas::L7::Tls);
    r.handshakes.push(handshake(Some("a.test"), "aa", "ja4_a"));
    r
}

#[test]
fn an_interim_record_is_found_by_its_handshakes_until_its_final_one_replaces_it() {
    let store = Store::with_engine(MemEngine::new()).expect("open");
    let mut r = tls_flow();
    let mut open = r.clone();
    open.end_reason = EndReason::Open;
    let by_ja4 = FlowFilter {
        ja4: Some("ja4_a".into()),
        ..FlowFilter::default()
    };
    let first = store.write_records(&[open.clone()]).expect("interim");
    assert_eq!(first.stored_before, [0]);
    assert_eq!(paged(&store, &by_ja4, 10), first.ids);
    assert_eq!(store.get(first.ids[0]).expect("get"), Some(open));
    assert_eq!(store.stats().expect("stats").open_records, 1);
    // The final record adds a second handshake: only that one is new.
    r.handshakes.push(handshake(None, "bb", "ja4_b"));
    let last = store.write_records(&[r.clone()]).expect("final");
    assert_eq!(
        (last.ids.clone(), last.stored_before),
        (first.ids.clone(), vec![1])
    );
    assert_eq!(store.get(first.ids[0]).expect("get"), Some(r.clone()));
    let by_b = FlowFilter {
        ja4: Some("ja4_b".into()),
        ..FlowFilter::default()
    };
    assert_eq!(paged(&store, &by_b, 10), first.ids);
    let top = store
        .top(TopField::Ja4, Timestamp(0), None, 10)
        .expect("top");
    assert_eq!(top, [("ja4_a".to_owned(), 1), ("ja4_b".to_owned(), 1)]);
    let stats = store.stats().expect("stats");
    assert_eq!((stats.records_written, stats.open_records), (1, 0));
    // A final record that lost its handshakes (its worker restarted) keeps the stored ones.
    let mut second = r.clone();
    second.first_seen = Timestamp(6);
    second.end_reason = EndReason::Open;
    let id = store.write(&[second.clone()]).expect("interim")[0];
    second.end_reason = EndReason::Idle;
    let kept = second.handshakes.clone();
    second.handshakes.clear();
    store.write(&[second]).expect("final");
    let stored = store.get(id).expect("get").expect("stored");
    assert_eq!(
        (stored.end_reason, stored.handshakes),
        (EndReason::Idle, kept)
    );
}

/// Retention at 120 s keeping 60 s: drops what was first seen before 60 s.
fn keep_from_one_minute(store: &Store<MemEngine>) {
    store
        .apply_retention(
            Timestamp(120_000_000_000),
            Some(Duration::from_secs(60)),
            None,
        )
        .expect("retention");
}

#[test]
fn a_final_record_whose_interim_one_retention_dropped_is_stored_and_indexed_anew() {
    let store = Store::with_engine(MemEngine::new()).expect("open");
    let r = tls_flow();
    let open = FlowRecord {
        end_reason: EndReason::Open,
        ..r.clone()
    };
    store.write(&[open]).expect("interim");
    keep_from_one_minute(&store);
    assert_eq!(store.stats().expect("stats").open_records, 0);
    let by_ja4 = FlowFilter {
        ja4: Some("ja4_a".into()),
        ..FlowFilter::default()
    };
    assert!(paged(&store, &by_ja4, 10).is_empty());
    // The flow ends after the pass: its record is new, found through every index again.
    let written = store.write_records(&[r]).expect("final");
    assert_eq!(written.stored_before, [0]);
    assert_eq!(paged(&store, &by_ja4, 10), written.ids);
}

/// The Meta keys marking stored interim records.
fn open_markers(engine: &MemEngine) -> usize {
    let mut n = 0;
    let end = super::keys::prefix_end(super::keys::OPEN_MARKER_PREFIX);
    engine
        .scan(
            Family::Meta,
            super::keys::OPEN_MARKER_PREFIX,
            end.as_deref(),
            &mut |_, _| {
                n += 1;
                true
            },
        )
        .expect("scan");
    n
}

#[test]
fn interim_records_a_stopped_process_left_open_are_closed_as_interrupted_at_open() {
    let store = Store::with_engine(MemEngine::new()).expect("open");
    let ended = tls_flow();
    let mut left = tls_flow();
    left.first_seen = Timestamp(7);
    left.handshakes[0].ja4 = Some("ja4_left".into());
    let interim = |r: &FlowRecord| FlowRecord {
        end_reason: EndReason::Open,
        packets_c2s: 1,
        ..r.clone()
    };
    let ids = store
        .write(&[interim(&ended), interim(&left)])
        .expect("interims");
    store.write(std::slice::from_ref(&ended)).expect("final");
    assert_eq!(
        open_markers(&store.engine),
        1,
        "the final record removed its marker"
    );
    let top_before = tops(&store);

    // The process stops here without ending `left`; the next one opens the same data.
    let store = Store::with_engine(store.engine).expect("reopen");
    assert_eq!(store.stats().expect("stats").interrupted_at_open, 1);
    assert_eq!(open_markers(&store.engine), 0);
    assert_eq!(store.get(ids[0]).expect("get"), Some(ended));
    let closed = store.get(ids[1]).expect("get").expect("still stored");
    assert_eq!(
        closed,
        FlowRecord {
            end_reason: EndReason::Interrupted,
            ..interim(&left)
        }
    );
    let by_ja4 = FlowFilter {
        ja4: Some("ja4_left".into()),
        ..FlowFilter::default()
    };
    assert_eq!(paged(&store, &by_ja4, 10), [ids[1]], "still indexed");
    assert_eq!(tops(&store), top_before, "counted once, as before");
    let store = Store::with_engine(store.engine).expect("reopen again");
    assert_eq!(store.stats().expect("stats").interrupted_at_open, 0);
}

#[test]
fn more_interim_records_than_one_close_batch_are_all_closed() {
    let store = Store::with_engine(MemEngine::new()).expect("open");
    let records: Vec<FlowRecord> = (0..2500)
        .map(|i| FlowRecord {
            first_seen: Timestamp(i),
            end_reason: EndReason::Open,
            ..tls_flow()
        })
        .collect();
    let ids = store.write(&records).expect("interims");
    let store = Store::with_engine(store.engine).expect("reopen");
    assert_eq!(store.stats().expect("stats").interrupted_at_open, 2500);
    for id in ids {
        let r = store.get(id).expect("get").expect("stored");
        assert_eq!(r.end_reason, EndReason::Interrupted);
    }
}

#[test]
fn retention_drops_the_open_markers_of_the_interim_records_it_drops() {
    let store = Store::with_engine(MemEngine::new()).expect("open");
    let old = FlowRecord {
        end_reason: EndReason::Open,
        ..tls_flow()
    };
    let recent = FlowRecord {
        first_seen: Timestamp(100_000_000_000),
        ..old.clone()
    };
    store.write(&[old, recent]).expect("interims");
    assert_eq!(open_markers(&store.engine), 2);
    keep_from_one_minute(&store);
    assert_eq!(open_markers(&store.engine), 1);
    let store = Store::with_engine(store.engine).expect("reopen");
    assert_eq!(store.stats().expect("stats").interrupted_at_open, 1);
}
