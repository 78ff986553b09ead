#!/usr/bin/env python3
"""Writes a large synthetic pcap for memory and throughput measurements (until loadgen exists).

Each flow is a TCP connection from a distinct client address/port to one of a few servers:
SYN, SYN-ACK, ACK, a real TLS ClientHello (taken from a sample capture, SNI unchanged),
a ServerHello-sized reply, then bulk data segments, then FIN/FIN/ACK. Checksums are left
zero (flowmesh does not verify them). Deterministic: no randomness.

usage: make-big-pcap.py OUT.pcap SIZE_MB [--concurrent N]
"""
import struct
import sys

def client_hello_from(sample_path):
    """Returns the first TLS ClientHello record of the sample, joined across TCP segments."""
    data = open(sample_path, "rb").read()
    off = 24
    hello, want, port = b"", None, None
    while off + 16 <= len(data):
        _, _, incl, _ = struct.unpack_from("<IIII", data, off)
        frame = data[off + 16: off + 16 + incl]
        off += 16 + incl
        if len(frame) < 54 or frame[12:14] != b"\x08\x00":
            continue
        ihl = (frame[14] & 0x0F) * 4
        tcp = 14 + ihl
        sport = frame[tcp:tcp + 2]
        doff = (frame[tcp + 12] >> 4) * 4
        payload = frame[tcp + doff:]
        if want is None and payload[:1] == b"\x16" and payload[5:6] == b"\x01":
            want, port = 5 + int.from_bytes(payload[3:5], "big"), sport
        if want is not None and sport == port and payload:
            hello += payload
            if len(hello) >= want:
                return hello[:want]
    raise SystemExit("no complete ClientHello in " + sample_path)

def main():
    out, size_mb = sys.argv[1], int(sys.argv[2])
    concurrent = 1000
    if "--concurrent" in sys.argv:
        concurrent = int(sys.argv[sys.argv.index("--concurrent") + 1])
    sample = sys.argv[sys.argv.index("--sample") + 1] if "--sample" in sys.argv else "samples/chromium-tls13.pcap"
    hello = client_hello_from(sample)
    # A ClientHello over 1460 bytes is sent in two segments, as a real stack would.
    hello_parts = [hello[i:i + 1448] for i in range(0, len(hello), 1448)]
    limit = size_mb * 1024 * 1024
    f = open(out, "wb", buffering=1 << 22)
    f.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1))
    written = 24
    ts = [1_700_000_000, 0]
    bulk = bytes(1400)
    smac, dmac = b"\x02\x00\x00\x00\x00\x01", b"\x02\x00\x00\x00\x00\x02"

    def frame(src, dst, sport, dport, seq, ack, flags, payload):
        nonlocal written
        ip_len = 20 + 20 + len(payload)
        ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, ip_len, 0, 0x4000, 64, 6, 0, src, dst)
        tcp = struct.pack("!HHIIBBHHH", sport, dport, seq & 0xFFFFFFFF, ack & 0xFFFFFFFF, 0x50, flags, 65535, 0, 0)
        pkt = dmac + smac + b"\x08\x00" + ip + tcp + payload
        ts[1] += 7
        if ts[1] >= 1_000_000:
            ts[0] += 1
            ts[1] -= 1_000_000
        f.write(struct.pack("<IIII", ts[0], ts[1], len(pkt), len(pkt)))
        f.write(pkt)
        written += 16 + len(pkt)

    # Flows advance in lockstep, `concurrent` at a time, so that many are open at once.
    n = 0
    while written < limit:
        batch = []
        for k in range(concurrent):
            n += 1
            c = struct.pack("!BBBB", 10, (n >> 16) & 0xFF, (n >> 8) & 0xFF, n & 0xFF)
            s = struct.pack("!BBBB", 192, 0, 2, 1 + n % 4)
            batch.append((c, s, 1024 + n % 60000, 443, n * 7919, n * 104729))
        for c, s, cp, sp, cs, ss in batch:
            frame(c, s, cp, sp, cs, 0, 0x02, b"")
        for c, s, cp, sp, cs, ss in batch:
            frame(s, c, sp, cp, ss, cs + 1, 0x12, b"")
        for c, s, cp, sp, cs, ss in batch:
            frame(c, s, cp, sp, cs + 1, ss + 1, 0x10, b"")
        for c, s, cp, sp, cs, ss in batch:
            seq = cs + 1
            for part in hello_parts:
                frame(c, s, cp, sp, seq, ss + 1, 0x18, part)
                seq += len(part)
        for c, s, cp, sp, cs, ss in batch:
            for i in range(20):
                frame(s, c, sp, cp, ss + 1 + i * 1400, cs + 1 + len(hello), 0x10, bulk)
        for c, s, cp, sp, cs, ss in batch:
            frame(c, s, cp, sp, cs + 1 + len(hello), ss + 1 + 20 * 1400, 0x11, b"")
            frame(s, c, sp, cp, ss + 1 + 20 * 1400, cs + 2 + len(hello), 0x11, b"")
    f.close()
    print(f"{out}: {written / 1e6:.0f} MB, {n} flows", file=sys.stderr)

main()
