//! Every frame loadgen generates fits a 1500-byte MTU, as real hosts send before path MTU
//! discovery: full TCP segments carry the MSS of the address family less the timestamp
//! option, and QUIC servers split their first flight into datagrams of at most 1452 bytes.
//! So generated captures can be sent onto ordinary links (`loadgen send`) unchanged.

use flowmesh_loadgen::gen::{generate_pcap_bytes, GenOptions, Profile};
use flowmesh_loadgen::send::PcapFile;
use std::path::PathBuf;

const MTU: usize = 1500;

/// Bytes of Ethernet header in front of the IP packet: 14 plus 4 per VLAN tag.
fn l2_len(frame: &[u8]) -> usize {
    let mut at = 12;
    while frame.len() >= at + 2 && matches!(frame[at..at + 2], [0x81, 0x00] | [0x88, 0xa8]) {
        at += 4;
    }
    at + 2
}

fn largest_ip_packet(profile: Profile, flows: u64) -> (usize, usize) {
    let pcap = generate_pcap_bytes(&GenOptions {
        profile,
        flows: Some(flows),
        bytes: None,
        seed: 7,
        out: PathBuf::new(),
        impairments: None,
        nanos: false,
    })
    .expect("generate the profile");
    let file = PcapFile::parse(&pcap).expect("parse the generated capture");
    let mut frames = 0;
    let mut largest = 0;
    for f in file.frames() {
        frames += 1;
        largest = largest.max(f.len() - l2_len(f));
    }
    (frames, largest)
}

#[test]
fn every_profile_fits_a_1500_byte_mtu() {
    for (profile, flows) in [
        (Profile::Mixed, 400),
        (Profile::Handshakes, 600),
        (Profile::OooHeavy, 300),
        (Profile::SynFlood, 300),
        (Profile::ManyFlows, 2_000),
    ] {
        let (frames, largest) = largest_ip_packet(profile, flows);
        assert!(frames > 0, "{profile:?} generated nothing");
        assert!(
            largest <= MTU,
            "{profile:?}: an IP packet of {largest} bytes does not fit MTU {MTU}"
        );
        // Full-size segments exist, so the bound is met with no room to spare on TCP.
        if matches!(profile, Profile::Mixed | Profile::OooHeavy) {
            assert!(largest >= MTU - 52, "{profile:?}: largest {largest}");
        }
    }
}
