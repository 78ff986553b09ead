//! The flow store on real RocksDB, with records from the corpus captures: every indexed
//! value finds exactly the records having it, across reopen; ids are never reused;
//! retention drops exactly the old flows; counters survive reopen; concurrent writers.

use flowmesh_actors::storage::{
    FlowFilter, FlowId, FlowStore, OpenFlowStore, StorageOptions, StoreError, TopField,
};
use flowmesh_schemas::{FlowRecord, Timestamp};
use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, Ipv4Addr};
use std::path::Path;
use std::time::Duration;

#[path = "support/corpus_records.rs"]
mod support;

const SECOND: i64 = 1_000_000_000;

fn open(dir: &Path) -> FlowStore {
    FlowStore::open(dir, &StorageOptions::default()).expect("flow store opens")
}

/// A store that spills its in-memory index tier every `entries` index entries, so the
/// entries of a test live partly in ingested SST files, partly in memory.
fn open_spilling(dir: &Path, entries: usize) -> FlowStore {
    let options = StorageOptions {
        index_memory_entries: entries,
        ..StorageOptions::default()
    };
    FlowStore::open(dir, &options).expect("flow store opens")
}

/// Corpus records, copied `copies` times: copy `c` is shifted by `c` hours and its client
/// address by `c` in the last octet (IPv4), so each copy has its own times and clients.
fn varied_records(copies: u8) -> Vec<FlowRecord> {
    let base = support::corpus_records();
    assert!(base.len() >= 20, "corpus gave only {} records", base.len());
    let mut out = Vec::new();
    for c in 0..copies {
        for r in &base {
            let mut r = r.clone();
            r.first_seen = r.first_seen.add_nanos(i64::from(c) * 3600 * SECOND);
            r.last_seen = r.last_seen.add_nanos(i64::from(c) * 3600 * SECOND);
            if let IpAddr::V4(v4) = r.client_ip {
                let o = v4.octets();
                r.client_ip = IpAddr::V4(Ipv4Addr::new(o[0], o[1], o[2], o[3].wrapping_add(c)));
            }
            out.push(r);
        }
    }
    out
}

/// Every page of a query, checked: ascending ids, no duplicates across pages.
fn all_pages(store: &FlowStore, filter: &FlowFilter, limit: usize) -> Vec<(FlowId, FlowRecord)> {
    let mut out: Vec<(FlowId, FlowRecord)> = Vec::new();
    let mut cursor = None;
    for _ in 0..100_000 {
        let page = store.query(filter, cursor, limit).expect("query");
        assert!(page.flows.len() <= limit);
        for (id, r) in page.flows {
            if let Some((last, _)) = out.last() {
                assert!(*last < id, "ids out of order or repeated: {last} then {id}");
            }
            out.push((id, r));
        }
        match page.next_cursor {
            Some(c) => cursor = Some(c),
            None => return out,
        }
    }
    panic!("query did not finish: {filter:?}");
}

/// Every filter naming one indexed value present in `records`.
fn filters_for(records: &[FlowRecord]) -> Vec<FlowFilter> {
    let mut f = BTreeSet::new();
    for r in records {
        f.insert(format!("ip={}", r.client_ip));
        f.insert(format!("ip={}", r.server_ip));
        f.insert(format!("port={}", r.client_port));
        f.insert(format!("port={}", r.server_port));
        f.insert(format!("cid={}", r.community_id));
        for h in &r.handshakes {
            if let Some(v) = &h.ja3_hash {
                f.insert(format!("ja3={v}"));
            }
            if let Some(v) = &h.ja4 {
                f.insert(format!("ja4={v}"));
            }
            if let Some(v) = &h.sni {
                f.insert(format!("sni={v}"));
            }
        }
    }
    f.into_iter()
        .map(|s| {
            let (k, v) = s.split_once('=').expect("key=value");
            let mut filter = FlowFilter::default();
            match k {
                "ip" => filter.ip = Some(v.parse().expect("ip")),
                "port" => filter.port = Some(v.parse().expect("port")),
                "cid" => filter.community_id = Some(v.to_owned()),
                "ja3" => filter.ja3 = Some(v.to_owned()),
                "ja4" => filter.ja4 = Some(v.to_owned()),
                _ => filter.sni = Some(v.to_owned()),
            }
            filter
        })
        .collect()
}

/// Checks every filter: the paged result is exactly the stored records that match.
fn check_every_filter(
    store: &FlowStore,
    stored: &BTreeMap<FlowId, FlowRecord>,
    filters: &[FlowFilter],
) {
    for filter in filters {
        let expected: Vec<FlowId> = stored
            .iter()
            .filter(|(_, r)| filter.matches(r))
            .map(|(id, _)| *id)
            .collect();
        assert!(
            !expected.is_empty(),
            "{filter:?} names a value that is present"
        );
        let got = all_pages(store, filter, 7);
        let ids: Vec<FlowId> = got.iter().map(|(id, _)| *id).collect();
        assert_eq!(ids, expected, "{filter:?}");
        for (id, r) in &got {
            assert_eq!(
                Some(r),
                stored.get(id),
                "{filter:?}: record {id} read back differs"
            );
        }
    }
}

#[test]
fn every_indexed_value_finds_exactly_its_records_across_reopen() {
    indexed_values_across_reopen(usize::MAX);
}

#[test]
fn every_indexed_value_finds_exactly_its_records_with_index_spills() {
    // 300 entries: a spill every few batches, and a partial tier left at each reopen.
    indexed_values_across_reopen(300);
}

fn indexed_values_across_reopen(spill_entries: usize) {
    let dir = tempfile::tempdir().expect("tempdir");
    let records = varied_records(3);
    let filters = filters_for(&records);
    let mut stored = BTreeMap::new();
    {
        let store = open_spilling(dir.path(), spill_entries);
        for chunk in records.chunks(50) {
            let ids = store.write(chunk).expect("write");
            assert_eq!(ids.len(), chunk.len());
            stored.extend(ids.into_iter().zip(chunk.iter().cloned()));
        }
        assert_eq!(stored.len(), records.len(), "ids are unique");
        check_every_filter(&store, &stored, &filters);
        // Spills run on their own thread: wait for them, then check again.
        store.engine().spill_frozen();
        let props = store.engine().properties().expect("properties");
        let ip_in_sst = props
            .families
            .iter()
            .find(|(f, _)| *f == flowmesh_core::storage::Family::Ip)
            .map(|(_, p)| p.estimate_num_keys)
            .expect("ip family");
        if spill_entries == usize::MAX {
            assert_eq!(ip_in_sst, 0, "nothing spilled");
        } else {
            assert!(
                ip_in_sst > 0 && props.pending_index_entries > 0,
                "{props:?}"
            );
        }
        check_every_filter(&store, &stored, &filters);
        for (id, r) in stored.iter().take(5) {
            assert_eq!(store.get(*id).expect("get").as_ref(), Some(r));
        }
    }
    let store = open_spilling(dir.path(), spill_entries);
    check_every_filter(&store, &stored, &filters);
    let max_seq = stored.keys().map(|id| id.seq).max().expect("some ids");
    let new_ids = store.write(&records[..10]).expect("write after reopen");
    assert!(
        new_ids.iter().all(|id| id.seq > max_seq),
        "a sequence number was reused"
    );
    // A time range and a CIDR network, with a transport.
    let t0 = records.iter().map(|r| r.first_seen).min().expect("records");
    let filter = FlowFilter {
        from: Some(t0.add_nanos(3600 * SECOND)),
        cidr: Some(("10.0.0.0".parse().expect("ip"), 8)),
        transport: Some(flowmesh_schemas::Transport::Tcp),
        ..FlowFilter::default()
    };
    stored.extend(new_ids.into_iter().zip(records[..10].iter().cloned()));
    let expected: Vec<FlowId> = stored
        .iter()
        .filter(|(_, r)| filter.matches(r))
        .map(|(id, _)| *id)
        .collect();
    let got: Vec<FlowId> = all_pages(&store, &filter, 5)
        .into_iter()
        .map(|(id, _)| id)
        .collect();
    assert_eq!(got, expected);
    assert!(!expected.is_empty());
}

/// Live capture's interim records (end reason `open`), then the final records of the same
/// flows, with tiers of 1 MiB of records and 300 index entries: interim and final records
/// of a flow land in different tiers, some spilled to SST files, some frozen, some active.
/// Options whose in-memory tiers spill every 300 index entries and 1 MiB of records.
fn small_tiers() -> StorageOptions {
    StorageOptions {
        index_memory_entries: 300,
        record_memory_mb: 1,
        ..StorageOptions::default()
    }
}

/// Fingerprinted corpus records, copied 12 times, one per flow (the corpus holds some
/// captures twice, as pcap and pcapng).
fn fingerprinted_flows() -> Vec<FlowRecord> {
    let mut flows = BTreeSet::new();
    varied_records(12)
        .into_iter()
        .filter(|r| r.l7.is_some() && !r.handshakes.is_empty())
        .filter(|r| flows.insert((r.first_seen, r.community_id.clone(), r.vlan)))
        .collect()
}

/// Every read sees the final record under the interim record's id, before and after the
/// spills and across reopen (the index log replayed), and the top counts count each
/// flow once.
#[test]
fn final_records_replace_interim_ones_across_spills_and_reopen() {
    let dir = tempfile::tempdir().expect("tempdir");
    let options = small_tiers();
    let finals = fingerprinted_flows();
    assert!(finals.len() > 100, "{} fingerprinted records", finals.len());
    let interims: Vec<FlowRecord> = finals
        .iter()
        .map(|r| FlowRecord {
            end_reason: flowmesh_schemas::EndReason::Open,
            packets_c2s: 1,
            ..r.clone()
        })
        .collect();
    let filters = filters_for(&finals);
    let mut stored = BTreeMap::new();
    let expected_top = {
        let store = FlowStore::open(dir.path(), &options).expect("opens");
        let mut ids = Vec::new();
        for chunk in interims.chunks(40) {
            ids.extend(store.write(chunk).expect("interims"));
        }
        assert_eq!(store.stats().expect("stats").open_records, finals.len());
        let top = store
            .top(TopField::Ja4, Timestamp(0), None, 1000)
            .expect("top");
        for (chunk, ids) in finals.chunks(40).zip(ids.chunks(40)) {
            let written = store.write_records(chunk).expect("finals");
            assert_eq!(
                written.ids, ids,
                "a final record takes its interim record's id"
            );
            assert!(written.stored_before.iter().all(|&n| n > 0));
            stored.extend(written.ids.into_iter().zip(chunk.iter().cloned()));
        }
        let stats = store.stats().expect("stats");
        assert_eq!(
            (stats.records_written, stats.open_records),
            (finals.len() as u64, 0)
        );
        check_every_filter(&store, &stored, &filters);
        store.engine().spill_frozen();
        check_every_filter(&store, &stored, &filters);
        // The final records added nothing to count: the interim ones counted it all.
        assert_eq!(
            store
                .top(TopField::Ja4, Timestamp(0), None, 1000)
                .expect("top"),
            top
        );
        top
    };
    let store = FlowStore::open(dir.path(), &options).expect("reopens");
    check_every_filter(&store, &stored, &filters);
    for (id, r) in &stored {
        assert_eq!(store.get(*id).expect("get").as_ref(), Some(r));
    }
    let mut flows_per_ja4: BTreeMap<String, u64> = BTreeMap::new();
    for r in &finals {
        let distinct: BTreeSet<&String> =
            r.handshakes.iter().filter_map(|h| h.ja4.as_ref()).collect();
        for v in distinct {
            *flows_per_ja4.entry(v.clone()).or_default() += 1;
        }
    }
    assert_eq!(
        expected_top.into_iter().collect::<BTreeMap<_, _>>(),
        flows_per_ja4
    );
}

/// Interim records left by a process that stopped without their final records, some
/// spilled to SST files and some in memory, are closed as `interrupted` by the next open:
/// same ids, still found by every filter, and closed once.
#[test]
fn interim_records_left_behind_are_closed_as_interrupted_on_open() {
    let dir = tempfile::tempdir().expect("tempdir");
    let options = small_tiers();
    let interims: Vec<FlowRecord> = fingerprinted_flows()
        .into_iter()
        .map(|r| FlowRecord {
            end_reason: flowmesh_schemas::EndReason::Open,
            ..r
        })
        .collect();
    let mut stored = BTreeMap::new();
    {
        let store = FlowStore::open(dir.path(), &options).expect("opens");
        let (first, last) = interims.split_at(interims.len() / 2);
        for (i, half) in [first, last].into_iter().enumerate() {
            for chunk in half.chunks(40) {
                let ids = store.write(chunk).expect("interims");
                stored.extend(ids.into_iter().zip(chunk.iter().map(|r| FlowRecord {
                    end_reason: flowmesh_schemas::EndReason::Interrupted,
                    ..r.clone()
                })));
            }
            if i == 0 {
                // The first half to SST files; the second stays in memory and the log.
                store.engine().flush().expect("flush");
            }
        }
        let pending = store.engine().properties().expect("properties");
        assert!(pending.pending_records > 0, "{} records", interims.len());
    }
    let store = FlowStore::open(dir.path(), &options).expect("reopens");
    assert_eq!(
        store.stats().expect("stats").interrupted_at_open,
        interims.len() as u64
    );
    for (id, r) in &stored {
        assert_eq!(store.get(*id).expect("get").as_ref(), Some(r));
    }
    check_every_filter(&store, &stored, &filters_for(&interims));
    drop(store);
    let store = FlowStore::open(dir.path(), &options).expect("reopens again");
    assert_eq!(store.stats().expect("stats").interrupted_at_open, 0);
}

#[test]
fn retention_by_age_drops_exactly_the_old_flows_and_their_counts() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = open_spilling(dir.path(), 500);
    let records = varied_records(3);
    let ids = store.write(&records).expect("write");
    let t0 = records.iter().map(|r| r.first_seen).min().expect("records");
    // Keep copies 1 and 2: cutoff one hour after the first copy's start, on a minute edge
    // past every record of copy 0 (the corpus spans far less than an hour).
    let cutoff = Timestamp((t0.as_nanos() / (60 * SECOND) + 60) * 60 * SECOND);
    let now = cutoff.add_nanos(24 * 3600 * SECOND);
    let report = store
        .apply_retention(now, Some(Duration::from_secs(24 * 3600)), None)
        .expect("retention");
    assert_eq!(report.age_cutoff, Some(cutoff));
    let kept: BTreeMap<FlowId, FlowRecord> = ids
        .into_iter()
        .zip(records.iter().cloned())
        .filter(|(_, r)| r.first_seen >= cutoff)
        .collect();
    assert_eq!(kept.len(), records.len() * 2 / 3);
    let all = all_pages(&store, &FlowFilter::default(), 100);
    assert_eq!(
        all.into_iter().map(|(id, _)| id).collect::<Vec<_>>(),
        kept.keys().copied().collect::<Vec<_>>()
    );
    let kept_records: Vec<FlowRecord> = kept.values().cloned().collect();
    check_every_filter(&store, &kept, &filters_for(&kept_records));
    // Counts of the dropped minutes are gone: totals equal the kept records' counts.
    let top = store
        .top(TopField::Ja4, Timestamp(0), None, 1000)
        .expect("top");
    let mut expected: BTreeMap<String, u64> = BTreeMap::new();
    for r in &kept_records {
        let distinct: BTreeSet<&String> =
            r.handshakes.iter().filter_map(|h| h.ja4.as_ref()).collect();
        for v in distinct {
            *expected.entry(v.clone()).or_default() += 1;
        }
    }
    assert_eq!(top.into_iter().collect::<BTreeMap<_, _>>(), expected);
    // The old index entries were dropped, not just skipped: the IP index holds at most
    // two entries per kept record.
    let ip_entries = store
        .stats()
        .expect("stats")
        .families
        .iter()
        .find(|(f, _)| *f == flowmesh_core::storage::Family::Ip)
        .map(|(_, s)| s.keys)
        .expect("ip family");
    assert!(
        ip_entries <= 2 * kept.len() as u64,
        "{ip_entries} IP index entries for {} records",
        kept.len()
    );
}

#[test]
fn counts_survive_reopen_and_match_the_records() {
    let dir = tempfile::tempdir().expect("tempdir");
    let records = varied_records(2);
    let before = {
        let store = open(dir.path());
        for chunk in records.chunks(13) {
            store.write(chunk).expect("write");
        }
        store
            .top(TopField::Ja3, Timestamp(0), None, 100)
            .expect("top")
    };
    let store = open(dir.path());
    let after = store
        .top(TopField::Ja3, Timestamp(0), None, 100)
        .expect("top");
    assert_eq!(before, after);
    let mut expected: BTreeMap<String, u64> = BTreeMap::new();
    for r in &records {
        let distinct: BTreeSet<&String> = r
            .handshakes
            .iter()
            .filter_map(|h| h.ja3_hash.as_ref())
            .collect();
        for v in distinct {
            *expected.entry(v.clone()).or_default() += 1;
        }
    }
    assert!(!expected.is_empty());
    assert_eq!(after.into_iter().collect::<BTreeMap<_, _>>(), expected);
    for field in TopField::ALL {
        let top = store.top(field, Timestamp(0), None, 3).expect("top");
        assert!(top.len() <= 3);
        assert!(top.windows(2).all(|w| w[0].1 >= w[1].1), "{field}: {top:?}");
    }
}

#[test]
fn a_bad_cidr_is_an_error() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = open(dir.path());
    let filter = FlowFilter {
        cidr: Some(("10.0.0.0".parse().expect("ip"), 33)),
        ..FlowFilter::default()
    };
    let err = store
        .query(&filter, None, 10)
        .expect_err("a /33 IPv4 network is invalid");
    assert!(matches!(err, StoreError::Filter(_)), "{err}");
    assert!(err.to_string().contains("/33"), "{err}");
}

#[test]
fn concurrent_writers_get_unique_ids_and_all_records_are_stored() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = open_spilling(dir.path(), 5_000);
    let records = varied_records(2);
    let ids: Vec<Vec<FlowId>> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..2)
            .map(|_| {
                s.spawn(|| {
                    let mut ids = Vec::new();
                    for _ in 0..20 {
                        for chunk in records.chunks(16) {
                            ids.extend(store.write(chunk).expect("write"));
                        }
                    }
                    ids
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("writer thread"))
            .collect()
    });
    let all: BTreeSet<FlowId> = ids.iter().flatten().copied().collect();
    assert_eq!(all.len(), 2 * 20 * records.len(), "duplicate ids");
    let stored: BTreeSet<FlowId> = all_pages(&store, &FlowFilter::default(), 1000)
        .into_iter()
        .map(|(id, _)| id)
        .collect();
    assert_eq!(stored, all);
    let next = store.stats().expect("stats").next_seq;
    drop(store);
    let store = open(dir.path());
    assert!(store.stats().expect("stats").next_seq >= next);
}

#[test]
fn a_second_open_of_the_same_directory_names_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let _store = open(dir.path());
    let err = FlowStore::open(dir.path(), &StorageOptions::default()).expect_err("locked");
    let text = err.to_string();
    assert!(text.contains(&dir.path().display().to_string()), "{text}");
    assert!(text.contains("another flowmesh"), "{text}");
}

#[test]
fn retention_by_size_drops_the_oldest_flows_until_under_the_limit() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = open(dir.path());
    let records = varied_records(8);
    let ids = store.write(&records).expect("write");
    store.engine().flush().expect("flush");
    let before = store.stats().expect("stats");
    let flows_bytes = before
        .families
        .iter()
        .find(|(f, _)| *f == flowmesh_core::storage::Family::Flows)
        .map(|(_, s)| s.bytes)
        .expect("flows family");
    assert!(flows_bytes > 0);
    let now = records.iter().map(|r| r.first_seen).max().expect("records");
    let limit = flows_bytes / 2;
    let report = store
        .apply_retention(now, None, Some(limit))
        .expect("retention");
    assert!(report.size_rounds > 0, "{report:?}");
    assert!(
        report.disk_bytes_after < report.disk_bytes_before,
        "{report:?}"
    );
    let cutoff = report.size_cutoff.expect("a size cutoff");
    let expected: Vec<FlowId> = ids
        .iter()
        .zip(&records)
        .filter(|(_, r)| r.first_seen >= cutoff)
        .map(|(id, _)| *id)
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    assert!(!expected.is_empty() && expected.len() < records.len());
    let left: Vec<FlowId> = all_pages(&store, &FlowFilter::default(), 500)
        .into_iter()
        .map(|(id, _)| id)
        .collect();
    assert_eq!(left, expected);
}
