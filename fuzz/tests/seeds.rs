//! Seed-corpus generator: extracts frames, TCP streams and UDP datagrams from the real
//! captures in `$FLOWMESH_CORPUS/pcaps` (default `/work/shared/corpus`) and writes them,
//! encoded in each target's input format, to `fuzz/corpus/<target>/`. Every seed is also
//! replayed through its target body, so a format mismatch or a crash shows up here.
//!
//! Run: `cargo test --manifest-path fuzz/Cargo.toml --test seeds -- --ignored --nocapture`

use flowmesh_core::capture::{CaptureReader, LinkType};
use flowmesh_core::decode::{DecodeConfig, Decoder};
use flowmesh_core::quic::QuicInitialTracker;
use flowmesh_fuzz::*;
use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

type FlowId = (IpAddr, u16, IpAddr, u16, u8);

#[derive(Default)]
struct Flow {
    /// (from the first sender, seq, payload) for TCP; seq unused for UDP.
    pkts: Vec<(bool, u32, Vec<u8>)>,
}

fn write(dir: &Path, target: &str, name: &str, bytes: &[u8], total: &mut usize) {
    let d = dir.join(target);
    std::fs::create_dir_all(&d).expect("mkdir");
    std::fs::write(d.join(name), bytes).expect("write seed");
    *total += bytes.len();
}

fn stream(f: &Flow, dir: bool) -> Vec<u8> {
    let mut s = Vec::new();
    for (d, _, p) in &f.pkts {
        if *d == dir && s.len() < 16 * 1024 {
            s.extend_from_slice(p);
        }
    }
    s
}

/// The body of the first handshake message of type `ty` in a record stream.
fn hs_body(s: &[u8], ty: u8) -> Option<&[u8]> {
    if s.len() < 9 || s[0] != 22 || s[5] != ty {
        return None;
    }
    let len = (usize::from(s[6]) << 16) | (usize::from(s[7]) << 8) | usize::from(s[8]);
    s.get(9..9 + len)
}

#[test]
#[ignore = "writes fuzz/corpus; run explicitly"]
fn generate_seeds() {
    let root = std::env::var("FLOWMESH_CORPUS").unwrap_or_else(|_| "/work/shared/corpus".into());
    let pcaps = PathBuf::from(root).join("pcaps");
    let out = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("corpus");
    let mut total = 0usize;
    let mut names: Vec<_> = std::fs::read_dir(&pcaps)
        .expect("pcap dir")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .collect();
    names.sort();
    let mut all: Vec<(String, Vec<u8>)> = Vec::new();
    for path in names {
        let stem = path
            .file_stem()
            .unwrap_or_default()
            .to_string_lossy()
            .to_string();
        let bytes = std::fs::read(&path).expect("read pcap");
        write(&out, "capture_file", &stem, &bytes, &mut total);
        let Ok(reader) = CaptureReader::new(&bytes) else {
            continue;
        };
        let mut dec = Decoder::new(DecodeConfig::default());
        let mut flows: BTreeMap<FlowId, Flow> = BTreeMap::new();
        let mut shard_in = Vec::new();
        let mut last_ts = None;
        for (i, f) in reader.flatten().enumerate() {
            if i < 24 {
                write(
                    &out,
                    "decode_frame",
                    &format!("{stem}_{i}"),
                    &encode_decode_frame(f.link, f.data),
                    &mut total,
                );
            }
            if i < 400 && shard_in.len() < 96 * 1024 {
                let dt = match last_ts {
                    Some(t) if f.ts.0 - t > 1_000_000_000 => 10,
                    Some(t) if f.ts.0 - t > 1_000_000 => 1,
                    _ => 0,
                };
                last_ts = Some(f.ts.0);
                encode_shard_frame(&mut shard_in, f.link, dt, f.data);
            }
            let Ok(Some(p)) = dec.decode(f.ts, f.link, f.data, f.orig_len) else {
                continue;
            };
            if p.proto != 6 && p.proto != 17 {
                continue;
            }
            let fwd = (p.src, p.src_port, p.dst, p.dst_port, p.proto);
            let rev = (p.dst, p.dst_port, p.src, p.src_port, p.proto);
            let (key, dir) = if flows.contains_key(&rev) {
                (rev, false)
            } else {
                (fwd, true)
            };
            let seq = p
                .tcp
                .map(|t| t.seq.wrapping_add(u32::from(t.flags & 2 != 0)))
                .unwrap_or(0);
            let e = flows.entry(key).or_default();
            if e.pkts.len() < 64 && (!p.payload.is_empty() || p.proto == 6) {
                e.pkts.push((dir, seq, p.payload.to_vec()));
            }
        }
        write(&out, "shard", &stem, &shard_in, &mut total);
        write(&out, "route", &stem, &shard_in, &mut total);
        for (fi, (key, f)) in flows.iter().enumerate().take(6) {
            if key.4 == 6 {
                for dir in [true, false] {
                    let s = stream(f, dir);
                    if s.is_empty() {
                        continue;
                    }
                    write(
                        &out,
                        "tls_hello",
                        &format!("{stem}_{fi}_{dir}"),
                        &encode_tls(0, 0, &s),
                        &mut total,
                    );
                    write(
                        &out,
                        "tls_hello",
                        &format!("{stem}_{fi}_{dir}_c7"),
                        &encode_tls(0, 7, &s),
                        &mut total,
                    );
                    if let Some(b) = hs_body(&s, 1) {
                        write(
                            &out,
                            "tls_hello",
                            &format!("{stem}_{fi}_ch"),
                            &encode_tls(2, 0, b),
                            &mut total,
                        );
                        let mut hm = s[5..9].to_vec();
                        hm.extend_from_slice(b);
                        write(
                            &out,
                            "tls_hello",
                            &format!("{stem}_{fi}_chm"),
                            &encode_tls(1, 3, &hm),
                            &mut total,
                        );
                    }
                    if let Some(b) = hs_body(&s, 2) {
                        write(
                            &out,
                            "tls_hello",
                            &format!("{stem}_{fi}_sh"),
                            &encode_tls(3, 0, b),
                            &mut total,
                        );
                    }
                    // Reassembly: the direction's segments at their real sequence numbers.
                    let segs: Vec<(u32, &[u8])> = f
                        .pkts
                        .iter()
                        .filter(|(d, _, p)| *d == dir && !p.is_empty())
                        .map(|(_, q, p)| (*q, &p[..]))
                        .collect();
                    if let Some(&(isn, _)) = segs.first() {
                        let rel: Vec<(u32, &[u8])> = segs
                            .iter()
                            .map(|&(q, p)| (q.wrapping_sub(isn), p))
                            .collect();
                        write(
                            &out,
                            "reassembly",
                            &format!("{stem}_{fi}_{dir}"),
                            &encode_reassembly_free(isn, &rel),
                            &mut total,
                        );
                    }
                }
            } else {
                let dgrams: Vec<(bool, &[u8])> =
                    f.pkts.iter().map(|(d, _, p)| (*d, &p[..])).collect();
                if flowmesh_core::quic::probe_quic_initial(
                    dgrams.first().map(|d| d.1).unwrap_or(&[]),
                ) {
                    write(
                        &out,
                        "quic_initial",
                        &format!("{stem}_{fi}_raw"),
                        &encode_quic_raw(&dgrams[..dgrams.len().min(8)]),
                        &mut total,
                    );
                    // Protected seed: the decrypted CRYPTO streams, re-sealed in chunks.
                    let mut t = QuicInitialTracker::new();
                    for (c, d) in &dgrams {
                        t.on_datagram(*c, d);
                    }
                    let mut pkts = Vec::new();
                    for c in [true, false] {
                        for (k, chunk) in t.crypto_stream(c).chunks(1000).enumerate() {
                            pkts.push(QPacket {
                                from_client: c,
                                coalesce: false,
                                pn: k as u32,
                                frames: vec![
                                    QFrame::Crypto((k * 1000) as u16, chunk.to_vec()),
                                    QFrame::Padding(20),
                                ],
                            });
                        }
                    }
                    let dcid = t.key_dcid().unwrap_or(&[1, 2, 3, 4, 5, 6, 7, 8]).to_vec();
                    write(
                        &out,
                        "quic_initial",
                        &format!("{stem}_{fi}_prot"),
                        &encode_quic_protected(false, &dcid, &[9, 9, 9, 9], &pkts),
                        &mut total,
                    );
                    write(
                        &out,
                        "quic_initial",
                        &format!("{stem}_{fi}_prot2"),
                        &encode_quic_protected(true, &dcid, &[], &pkts),
                        &mut total,
                    );
                }
                if let Some((_, _, p)) = f.pkts.first() {
                    let cuts: Vec<u8> = (0..40u8).map(|i| i.wrapping_mul(37)).collect();
                    let p = &p[..p.len().min(1400)];
                    write(
                        &out,
                        "defrag",
                        &format!("{stem}_{fi}_v4"),
                        &encode_defrag_cut(false, key.1, key.3, p, &cuts),
                        &mut total,
                    );
                    write(
                        &out,
                        "defrag",
                        &format!("{stem}_{fi}_v6"),
                        &encode_defrag_cut(true, key.1, key.3, p, &cuts),
                        &mut total,
                    );
                    let mut dg = key.1.to_be_bytes().to_vec();
                    dg.extend_from_slice(&key.3.to_be_bytes());
                    dg.extend_from_slice(&((8 + p.len()) as u16).to_be_bytes());
                    dg.extend_from_slice(&[0, 0]);
                    dg.extend_from_slice(p);
                    for v6 in [false, true] {
                        write(
                            &out,
                            "route",
                            &format!("{stem}_{fi}_{v6}"),
                            &encode_route_train(v6, 17, &dg, 512),
                            &mut total,
                        );
                    }
                }
            }
        }
        all.push((stem, shard_in));
    }
    // Hand-made seeds for the structured modes.
    let buf: Vec<u8> = (0..300u16).map(|i| (i * 7) as u8).collect();
    let mut cut = vec![
        1u8, 0x01, 0x00, 8, 0x01, 0x00, 0x00, 0x10, 0x00, 1, 0x01, 0x2c,
    ];
    cut.extend_from_slice(&buf);
    for (s, l) in [(16u16, 100u8), (116, 100), (216, 100), (66, 100), (10, 20)] {
        cut.extend_from_slice(&s.to_be_bytes());
        cut.push(l);
    }
    write(&out, "reassembly", "cut_mode", &cut, &mut total);
    let mut free = vec![1u8];
    for (i, off) in [0u16, 2, 1, 2].iter().enumerate() {
        free.push(if i == 3 { 0 } else { 2 });
        free.extend_from_slice(&off.to_be_bytes());
        free.push(1);
        free.push(16);
        free.extend_from_slice(&[i as u8; 16]);
    }
    write(&out, "defrag", "free_mode", &free, &mut total);
    let _ = LinkType::Raw;
    eprintln!("wrote {total} bytes of seeds under {}", out.display());

    // Replay every seed through its target body.
    for target in [
        "decode_frame",
        "capture_file",
        "defrag",
        "reassembly",
        "tls_hello",
        "quic_initial",
        "shard",
        "route",
    ] {
        let run: fn(&[u8]) = match target {
            "decode_frame" => run_decode_frame,
            "capture_file" => run_capture_file,
            "defrag" => run_defrag,
            "reassembly" => run_reassembly,
            "tls_hello" => run_tls_hello,
            "quic_initial" => run_quic_initial,
            "route" => run_route,
            _ => run_shard,
        };
        let mut n = 0;
        for e in std::fs::read_dir(out.join(target))
            .expect("seed dir")
            .flatten()
        {
            run(&std::fs::read(e.path()).expect("seed"));
            n += 1;
        }
        eprintln!("{target}: {n} seeds replayed");
    }
}

/// The protected mode really reaches the CRYPTO reassembly behind the AEAD.
#[test]
fn protected_quic_mode_reaches_crypto_stream() {
    let pkts = [
        QPacket {
            from_client: true,
            coalesce: false,
            pn: 1,
            frames: vec![
                QFrame::Crypto(4, b"efgh".to_vec()),
                QFrame::Ping,
                QFrame::Padding(30),
            ],
        },
        QPacket {
            from_client: true,
            coalesce: false,
            pn: 0,
            frames: vec![QFrame::Crypto(0, b"abcd".to_vec())],
        },
        QPacket {
            from_client: false,
            coalesce: false,
            pn: 0,
            frames: vec![QFrame::Crypto(0, b"srv".to_vec())],
        },
    ];
    for v2 in [false, true] {
        let input = encode_quic_protected(v2, &[1, 2, 3, 4, 5, 6, 7, 8], &[9, 9], &pkts);
        let t = quic_tracker_from(&input);
        assert_eq!(t.crypto_stream(true), b"abcdefgh");
        assert_eq!(t.crypto_stream(false), b"srv");
        run_quic_initial(&input);
    }
}
