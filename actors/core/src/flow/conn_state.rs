//! Zeek's connection state summary (`conn_state` in Zeek's conn.log), derived from the
//! flags each side sent, so flowmesh records read like Zeek's to the people who know it.
//! See Zeek's documentation of `Conn::Info$conn_state` for the meaning of each code.

use super::FlowMeta;
use crate::decode::TcpInfo;
use flowmesh_schemas::flow::IPPROTO_TCP;

/// The Zeek `conn_state` code of a flow: `S0`, `S1`, `SF`, `REJ`, `S2`, `S3`, `RSTO`,
/// `RSTR`, `RSTOS0`, `RSTRH`, `SH`, `SHR` or `OTH`. Protocols without connections get
/// `SF` when both sides spoke and `S0` otherwise, as Zeek reports UDP.
pub fn conn_state(meta: &FlowMeta) -> &'static str {
    let (o, r) = (meta.client.index(), meta.client.other().index());
    if meta.key.proto != IPPROTO_TCP {
        return if meta.packets[o] > 0 && meta.packets[r] > 0 {
            "SF"
        } else {
            "S0"
        };
    }
    let has = |side: usize, flag: u8| meta.tcp_flags[side] & flag != 0;
    let (orig_syn, resp_syn) = (has(o, TcpInfo::SYN), has(r, TcpInfo::SYN));
    let (orig_rst, resp_rst) = (has(o, TcpInfo::RST), has(r, TcpInfo::RST));
    let (orig_fin, resp_fin) = (meta.fin[o], meta.fin[r]);
    match (orig_syn, resp_syn) {
        (true, true) => match () {
            _ if orig_rst => "RSTO",
            _ if resp_rst => "RSTR",
            _ if orig_fin && resp_fin => "SF",
            _ if orig_fin => "S2",
            _ if resp_fin => "S3",
            _ => "S1",
        },
        (true, false) => match () {
            _ if orig_rst => "RSTOS0",
            _ if resp_rst => "REJ",
            _ if orig_fin => "SH",
            _ if meta.packets[r] == 0 => "S0",
            _ => "OTH",
        },
        (false, true) => match () {
            _ if resp_rst => "RSTRH",
            _ if resp_fin => "SHR",
            _ => "OTH",
        },
        (false, false) => "OTH",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::flow::Side;
    use flowmesh_schemas::flow::{Endpoint, IPPROTO_UDP};
    use flowmesh_schemas::{FlowKey, Timestamp};
    use std::net::{IpAddr, Ipv4Addr};

    const SYN: u8 = TcpInfo::SYN;
    const ACK: u8 = TcpInfo::ACK;
    const FIN: u8 = TcpInfo::FIN;
    const RST: u8 = TcpInfo::RST;

    /// A flow where the client (`Side::Lo`) sent `orig` flags and the server `resp`.
    fn meta(proto: u8, orig: u8, resp: u8, resp_packets: u64) -> FlowMeta {
        let ep = |a| Endpoint {
            ip: IpAddr::V4(Ipv4Addr::new(10, 0, 0, a)),
            port: 1000,
        };
        FlowMeta {
            key: FlowKey {
                lo: ep(1),
                hi: ep(2),
                proto,
                vlan: None,
            },
            client: Side::Lo,
            midstream: false,
            first_seen: Timestamp(0),
            last_seen: Timestamp(0),
            packets: [1, resp_packets],
            bytes: [60, 60 * resp_packets],
            tcp_flags: [orig, resp],
            fin: [orig & FIN != 0, resp & FIN != 0],
            rst: (orig | resp) & RST != 0,
            syn_seq: [None; 2],
        }
    }

    #[test]
    fn zeek_codes() {
        let t = IPPROTO_TCP;
        let cases = [
            (SYN, 0, 0, "S0"),
            (SYN | ACK, SYN | ACK, 1, "S1"),
            (SYN | ACK | FIN, SYN | ACK | FIN, 1, "SF"),
            (SYN, RST | ACK, 1, "REJ"),
            (SYN | ACK | FIN, SYN | ACK, 1, "S2"),
            (SYN | ACK, SYN | ACK | FIN, 1, "S3"),
            (SYN | ACK | RST, SYN | ACK, 1, "RSTO"),
            (SYN | ACK, SYN | ACK | RST, 1, "RSTR"),
            (SYN | RST, 0, 0, "RSTOS0"),
            (ACK, SYN | ACK | RST, 1, "RSTRH"),
            (SYN | FIN, 0, 0, "SH"),
            (ACK, SYN | ACK | FIN, 1, "SHR"),
            (ACK | 0x08, ACK, 1, "OTH"),
        ];
        for (orig, resp, rp, want) in cases {
            assert_eq!(
                conn_state(&meta(t, orig, resp, rp)),
                want,
                "orig {orig:#x} resp {resp:#x}"
            );
        }
    }

    #[test]
    fn udp_is_sf_when_both_sides_spoke() {
        assert_eq!(conn_state(&meta(IPPROTO_UDP, 0, 0, 1)), "SF");
        assert_eq!(conn_state(&meta(IPPROTO_UDP, 0, 0, 0)), "S0");
    }
}
