#!/usr/bin/env python3
"""Writes a large synthetic pcap with a realistic flow mix, for throughput and memory
measurements of `flowmesh replay` (until loadgen exists).

usage: make-big-pcap.py OUT.pcap SIZE_MB [--concurrent N] [--seed S] [--sample PCAP]

Traffic (Ethernet, IPv4, microsecond pcap, little-endian):
  * ~94% TLS over TCP port 443. The handshake flights are replayed byte for byte from
    the TLS connections of the sample capture (default samples/chromium-tls13.pcap; each
    flow picks one of its connections): the client's ClientHello flight, the server's
    first flight (ServerHello, ChangeCipherSpec, encrypted records, exactly as captured)
    and the client's second flight, so every handshake is complete (SNI, offered ALPN,
    JA3, JA3S, JA4 all available). Then 1-8 request/response exchanges of TLS application-data
    records (16406-byte records, the last one shorter): small requests, a few uploads,
    responses as a small record followed by a heavy-tailed body (lognormal, median 3 KB,
    mean about 22 KB, a few flows carrying MBs, capped at 64 MB).
  * ~3% plain HTTP/1.1 on port 80 (a GET request, response headers, a body).
  * ~3% DNS over UDP port 53 (one or two query/response pairs, A and AAAA).
  TCP follows a Linux stack: SYN options (MSS, SACK, timestamps, window scale), the
  timestamp option on every segment, 1448-byte segments for bulk and shorter ones at the
  end of each write, PSH on the last segment of a write, the receiver ACKing every two
  segments (or once at the end of a message unless its reply carries the ACK). Most
  connections close with FIN/FIN/ACK (either side first), a few with RST.
  IPv4, TCP and UDP checksums are correct.

Addresses: clients spread over 10.0.0.0/8 with ephemeral ports, servers drawn from a pool
of 4096 addresses in 198.18.0.0/15 (the benchmarking range), so a symmetric hash spreads
flows evenly. No two open flows share a 5-tuple.

Interleaving: `--concurrent` flows (default 20000) are open at once; every next packet
comes from a random open flow, so consecutive packets hit unrelated flow-table entries.
A flow is drawn with weight 1 + (its packets / 32), so big transfers finish inside the
file instead of starving. Open flows ramp up over the first 8 packets per flow slot.
Once the planned bytes reach SIZE_MB (MiB) no new flow starts and the open ones run to
completion, reweighted by the packets each has left so that most stay open until near
the end; the file ends at SIZE_MB plus the rest of the last flow (~0.05%), and every TCP
flow is closed (UDP flows have no close and are still open at the end).

With many concurrent flows in a file of ~1 GB a flow lives for a good part of the file
(a 20-packet flow among 20000 gets one packet in 20000, so it spans ~0.4 M of the file's
~1.5 M packets): at 1.2 GB there are only ~1.4x --concurrent flows, the first half of
the file is steady state with new flows arriving and the second half the drain (still
>80% of --concurrent open until ~85% of the file). A bigger file or a smaller
--concurrent gives more flows. Timestamps advance 1 or 2 us per packet (1.2 GB spans
about 2.3 s; RTTs come out at tens of ms).

Deterministic for a given seed (`--seed`, default 1), sample and arguments. Pure Python 3
(3.9+), no dependencies; about 20 s per GB. Prints a one-line summary to stderr.
"""
import argparse
import math
import random
import struct
import sys
import time

MSS = 1448  # 1500 - 20 (IPv4) - 32 (TCP with timestamps)
REC = 16406  # a full TLS 1.3 application-data record: 5 + 16384 + 1 + 16 (AEAD tag)
MIN_REC = 22  # the smallest such record: 5 + 1 + 16
MAX_BODY = 64 << 20
WEIGHT_PACKETS = 32  # one draw slot per this many packets of a flow
RAMP_PACKETS = 8  # packets per flow slot over which the open flows ramp up
SERVERS = 4096
SHARE_HTTP = 0.03
SHARE_DNS = 0.03

CLIENT_MAC = b"\x02\x00\x5e\x10\x00\x01"
SERVER_MAC = b"\x02\x00\x5e\x20\x00\x01"

PCAP_REC = struct.Struct("<IIII")
# Ethernet + IPv4 + TCP with the timestamp option (NOP NOP TS): 66 bytes.
TCP_HDR = struct.Struct("!6s6sHBBHHHBBH4s4sHHIIBBHHHHHII")
# SYN/SYN-ACK: MSS, SACK permitted, timestamps, NOP, window scale: 74 bytes.
SYN_HDR = struct.Struct("!6s6sHBBHHHBBH4s4sHHIIBBHHHHHHHIIBBBB")
# Ethernet + IPv4 + UDP: 42 bytes.
UDP_HDR = struct.Struct("!6s6sHBBHHHBBH4s4sHHHH")
U16 = struct.Struct("!H")
TLS_HDR = struct.Struct("!BHH")


# --- the sample capture -------------------------------------------------------------

def read_pcap(path):
    """Yields (ts_sec, ts_frac, frame) from a classic pcap file (Ethernet)."""
    data = open(path, "rb").read()
    magic = data[:4]
    if magic in (b"\xd4\xc3\xb2\xa1", b"\x4d\x3c\xb2\xa1"):
        end = "<"
    elif magic in (b"\xa1\xb2\xc3\xd4", b"\xa1\xb2\x3c\x4d"):
        end = ">"
    else:
        raise SystemExit(f"{path}: not a classic pcap file (pcapng is not supported here)")
    if struct.unpack_from(end + "I", data, 20)[0] != 1:
        raise SystemExit(f"{path}: link type is not Ethernet")
    rec = struct.Struct(end + "IIII")
    off = 24
    while off + 16 <= len(data):
        sec, frac, incl, _ = rec.unpack_from(data, off)
        yield sec, frac, data[off + 16: off + 16 + incl]
        off += 16 + incl


def tls_handshakes(path):
    """Returns the handshake flights of every TLS connection in the sample.

    A connection is followed from its SYN; its payload is split into flights (runs of
    payload in one direction). The flights kept are those up to the first one that
    starts with application data or an alert: for TLS 1.3 the ClientHello, the server's
    first flight (ServerHello, ChangeCipherSpec, encrypted handshake records) and the
    client's ChangeCipherSpec + Finished. Each result is a list of (direction, bytes),
    direction 0 = client to server."""
    conns = {}  # (client ip, client port, server ip, server port) -> [next seq, next seq, segments]
    order = []
    for _, _, fr in read_pcap(path):
        off = 12
        eth = fr[off:off + 2]
        while eth in (b"\x81\x00", b"\x88\xa8"):
            off += 4
            eth = fr[off:off + 2]
        ip = off + 2
        if eth != b"\x08\x00" or len(fr) < ip + 20 or fr[ip + 9] != 6:
            continue
        ihl = (fr[ip] & 0x0F) * 4
        total = int.from_bytes(fr[ip + 2:ip + 4], "big")
        tcp = ip + ihl
        src, dst = fr[ip + 12:ip + 16], fr[ip + 16:ip + 20]
        sport, dport, seq = struct.unpack_from("!HHI", fr, tcp)
        flags = fr[tcp + 13]
        payload = fr[tcp + (fr[tcp + 12] >> 4) * 4: ip + total]
        if flags & 0x12 == 0x02:  # SYN: a new connection, this side is the client
            key = (src, sport, dst, dport)
            conns[key] = [seq + 1, None, []]
            order.append(key)
            continue
        if (src, sport, dst, dport) in conns:
            c, d = conns[(src, sport, dst, dport)], 0
        elif (dst, dport, src, sport) in conns:
            c, d = conns[(dst, dport, src, sport)], 1
        else:
            continue
        if flags & 0x12 == 0x12:
            c[1] = seq + 1
            continue
        if not payload or c[d] is None:
            continue
        skip = (c[d] - seq) & 0xFFFFFFFF  # bytes already seen (retransmission)
        if skip >= 1 << 31:
            continue  # a hole: keep what is in order
        if skip < len(payload):
            c[2].append((d, payload[skip:]))
            c[d] = (seq + len(payload)) & 0xFFFFFFFF
    out = []
    for key in order:
        flights = []
        for d, p in conns[key][2]:
            if flights and flights[-1][0] == d:
                flights[-1][1] += p
            else:
                flights.append([d, p])
        kept = []
        for d, p in flights:
            if p[0] not in (0x14, 0x16):
                break
            kept.append((d, bytes(p)))
        if (len(kept) >= 2 and kept[0][0] == 0 and kept[0][1][5:6] == b"\x01"
                and kept[1][1][:1] == b"\x16" and kept[1][1][5:6] == b"\x02"):
            out.append(kept)
    if not out:
        raise SystemExit(f"{path}: no TCP connection with a ClientHello and a ServerHello")
    return out


# --- traffic model --------------------------------------------------------------------

DNS_NAMES = [
    "www.example.com", "api.example.net", "cdn.example.org", "static.example.com",
    "mail.example.net", "login.example.org", "img.example.com", "updates.example.net",
]
HTTP_PATHS = ["/", "/index.html", "/static/app.js", "/img/logo.png", "/api/v1/items",
              "/download/file.bin", "/favicon.ico", "/css/site.css"]


def dns_name(name):
    return b"".join(bytes([len(p)]) + p.encode() for p in name.split(".")) + b"\x00"


def dns_pair(rng, qtype):
    """A DNS query and its response (A: 1-4 addresses, AAAA: 1-2)."""
    qid = rng.getrandbits(16)
    question = dns_name(rng.choice(DNS_NAMES)) + struct.pack("!HH", qtype, 1)
    query = struct.pack("!HHHHHH", qid, 0x0100, 1, 0, 0, 0) + question
    n = rng.randint(1, 4 if qtype == 1 else 2)
    size = 4 if qtype == 1 else 16
    answers = b"".join(struct.pack("!HHHIH", 0xC00C, qtype, 1, rng.randint(30, 3600), size)
                       + rng.randbytes(size) for _ in range(n))
    resp = struct.pack("!HHHHHH", qid, 0x8180, 1, n, 0, 0) + question + answers
    return query, resp


def tls_size(n):
    """n rounded up so that its last TLS record is at least MIN_REC bytes."""
    rem = n % REC
    return n + MIN_REC - rem if 0 < rem < MIN_REC else n


def lognormal(rng, median, sigma, lo, hi):
    return int(min(hi, max(lo, rng.lognormvariate(math.log(median), sigma))))


def plan_tls(rng, handshakes):
    """Messages of one TLS connection: [(direction, [write, ...]), ...]; a write is
    bytes (sent as is) or ("tls", wire bytes) for application-data records."""
    msgs = [(d, [b]) for d, b in rng.choice(handshakes)]
    exchanges = 1
    while exchanges < 8 and rng.random() < 0.35:
        exchanges += 1
    for _ in range(exchanges):
        if rng.random() < 0.03:  # an upload: big request, small response
            msgs.append((0, [("tls", tls_size(lognormal(rng, 40_000, 1.5, 2_000, MAX_BODY)))]))
            msgs.append((1, [("tls", tls_size(rng.randint(60, 400)))]))
            continue
        msgs.append((0, [("tls", tls_size(lognormal(rng, 450, 0.8, 60, 16_000)))]))
        head = ("tls", tls_size(rng.randint(80, 700)))
        body = lognormal(rng, 3_000, 2.0, 0, MAX_BODY)
        msgs.append((1, [head, ("tls", tls_size(body))] if body >= 100 else [head]))
    return msgs


def plan_http(rng):
    msgs = []
    for _ in range(1 if rng.random() < 0.7 else rng.randint(2, 4)):
        host = rng.choice(DNS_NAMES)
        req = (f"GET {rng.choice(HTTP_PATHS)} HTTP/1.1\r\nHost: {host}\r\n"
               f"User-Agent: Mozilla/5.0 (X11; Linux x86_64; rv:128.0) "
               f"Gecko/20100101 Firefox/128.0\r\n"
               f"Accept: */*\r\nAccept-Encoding: gzip, deflate\r\nConnection: keep-alive\r\n\r\n")
        body = lognormal(rng, 3_000, 2.0, 0, MAX_BODY)
        head = (f"HTTP/1.1 200 OK\r\nServer: nginx/1.24.0\r\n"
                f"Date: Tue, 14 Nov 2023 22:13:20 GMT\r\n"
                f"Content-Type: application/octet-stream\r\nContent-Length: {body}\r\n"
                f"Connection: keep-alive\r\n\r\n")
        msgs.append((0, [req.encode()]))
        msgs.append((1, [head.encode(), ("raw", body)] if body else [head.encode()]))
    return msgs


def write_len(w):
    return len(w) if isinstance(w, bytes) else w[1]


def tcp_cost(msgs):
    """(packets, bytes in the file) of a TCP connection with these messages."""
    packets, size = 3 + 3, 2 * (16 + 74) + 4 * (16 + 66)  # handshake + close
    for i, (d, writes) in enumerate(msgs):
        segs = 0
        for w in writes:
            n = write_len(w)
            segs += -(-n // MSS)
            size += n
        acks = segs // 2
        if segs % 2 and (i + 1 == len(msgs) or msgs[i + 1][0] == d):
            acks += 1
        packets += segs + acks
        size += (segs + acks) * (16 + 66)
    return packets, size


# --- the generator --------------------------------------------------------------------

def ones_sum(addr):
    return int.from_bytes(addr, "big") % 0xFFFF


def generate(out, limit, concurrent, seed, handshakes):
    rng = random.Random(seed)
    rnd, bits = rng.random, rng.getrandbits

    # Payload sources: 1 MiB of random bytes, and a period of 64 full TLS records;
    # each followed by one segment's worth of its own start so any slice of up to MSS
    # bytes from an offset inside the period is contiguous.
    raw = rng.randbytes(1 << 20)
    raw_period = len(raw)
    raw_mv = memoryview(raw + raw[:MSS])
    tls = b"".join(TLS_HDR.pack(0x17, 0x0303, REC - 5) + rng.randbytes(REC - 5) for _ in range(64))
    tls_period = len(tls)
    tls_mv = memoryview(tls + tls[:MSS])

    buf = bytearray(1 << 23)
    mv = memoryview(buf)
    flush_at = len(buf) - 2 * (16 + 1514)
    f = open(out, "wb")
    f.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1))
    t0 = 1_700_000_000 * 1_000_000
    st = {"o": 0, "t": t0, "pk": 0, "bytes": 24}

    def flush():
        f.write(mv[:st["o"]])
        st["bytes"] += st["o"]
        st["o"] = 0

    class Conn:
        __slots__ = ("mac", "addr", "ipsum", "psum", "port", "seq", "ipid", "tsb", "win", "key")

    def new_conn(cip, cport, sip, sport, proto):
        c = Conn()
        ca, sa = cip.to_bytes(4, "big"), sip.to_bytes(4, "big")
        c.mac = ((SERVER_MAC, CLIENT_MAC), (CLIENT_MAC, SERVER_MAC))  # (dst, src) per direction
        c.addr = ((ca, sa), (sa, ca))
        base = (0x4500 + 0x4000 + (64 << 8 | proto) + ones_sum(ca) + ones_sum(sa))
        c.ipsum = (base, base)
        c.psum = (ones_sum(ca) + ones_sum(sa) + proto,) * 2
        c.port = ((cport, sport), (sport, cport))
        c.seq = [bits(32), bits(32)]
        c.ipid = [bits(16), bits(16)]
        c.tsb = (bits(32), bits(32))
        c.win = (rng.randint(400, 2000), rng.randint(400, 2000))
        return c

    def tcp(c, d, flags, payload):
        """Writes one TCP segment with the timestamp option; returns its payload length."""
        o = st["o"]
        n = len(payload)
        t = st["t"] = st["t"] + 1 + bits(1)
        st["pk"] += 1
        F = o + 16
        PCAP_REC.pack_into(buf, o, t // 1_000_000, t % 1_000_000, 66 + n, 66 + n)
        ipid = c.ipid[d] = (c.ipid[d] + 1) & 0xFFFF
        tlen = 52 + n
        ms = t >> 10
        dst, src = c.mac[d]
        sa, da = c.addr[d]
        sp, dp = c.port[d]
        TCP_HDR.pack_into(buf, F, dst, src, 0x0800, 0x45, 0, tlen, ipid, 0x4000, 64, 6,
                          0xFFFF - (c.ipsum[d] + tlen + ipid) % 0xFFFF, sa, da,
                          sp, dp, c.seq[d], c.seq[1 - d], 0x80, flags, c.win[d], 0, 0,
                          0x0101, 0x080A, (c.tsb[d] + ms) & 0xFFFFFFFF,
                          (c.tsb[1 - d] + ms - 1) & 0xFFFFFFFF)
        end = F + 66 + n
        buf[F + 66:end] = payload
        s = int.from_bytes(mv[F + 34:end], "big")
        if n & 1:
            s <<= 8
        U16.pack_into(buf, F + 50, 0xFFFF - (c.psum[d] + 32 + n + s) % 0xFFFF)
        c.seq[d] = (c.seq[d] + n + (flags & 1)) & 0xFFFFFFFF  # FIN takes a sequence number
        st["o"] = end
        if end > flush_at:
            flush()

    def syn(c, d):
        o = st["o"]
        t = st["t"] = st["t"] + 1 + bits(1)
        st["pk"] += 1
        F = o + 16
        PCAP_REC.pack_into(buf, o, t // 1_000_000, t % 1_000_000, 74, 74)
        ipid = c.ipid[d] = (c.ipid[d] + 1) & 0xFFFF
        dst, src = c.mac[d]
        sa, da = c.addr[d]
        sp, dp = c.port[d]
        ms = t >> 10
        SYN_HDR.pack_into(buf, F, dst, src, 0x0800, 0x45, 0, 60, ipid, 0x4000, 64, 6,
                          0xFFFF - (c.ipsum[d] + 60 + ipid) % 0xFFFF, sa, da,
                          sp, dp, c.seq[d], c.seq[1 - d] if d else 0, 0xA0,
                          0x12 if d else 0x02, 65160 if d else 64240, 0, 0,
                          0x0204, 0x05B4, 0x0402, 0x080A, (c.tsb[d] + ms) & 0xFFFFFFFF,
                          (c.tsb[1 - d] + ms) & 0xFFFFFFFF if d else 0, 1, 3, 3, 7)
        s = int.from_bytes(mv[F + 34:F + 74], "big")
        U16.pack_into(buf, F + 50, 0xFFFF - (c.psum[d] + 40 + s) % 0xFFFF)
        c.seq[d] = (c.seq[d] + 1) & 0xFFFFFFFF
        st["o"] = F + 74
        if st["o"] > flush_at:
            flush()

    def udp(c, d, payload):
        o = st["o"]
        n = len(payload)
        t = st["t"] = st["t"] + 1 + bits(1)
        st["pk"] += 1
        F = o + 16
        PCAP_REC.pack_into(buf, o, t // 1_000_000, t % 1_000_000, 42 + n, 42 + n)
        ipid = c.ipid[d] = (c.ipid[d] + 1) & 0xFFFF
        dst, src = c.mac[d]
        sa, da = c.addr[d]
        sp, dp = c.port[d]
        UDP_HDR.pack_into(buf, F, dst, src, 0x0800, 0x45, 0, 28 + n, ipid, 0, 64, 17,
                          0xFFFF - (c.ipsum[d] - 0x4000 + 28 + n + ipid) % 0xFFFF, sa, da,
                          sp, dp, 8 + n, 0)
        end = F + 42 + n
        buf[F + 42:end] = payload
        s = int.from_bytes(mv[F + 34:end], "big")
        if n & 1:
            s <<= 8
        U16.pack_into(buf, F + 40, 0xFFFF - (c.psum[d] + 8 + n + s) % 0xFFFF)
        st["o"] = end
        if end > flush_at:
            flush()

    live = set()  # 5-tuples of open flows

    def tcp_flow(c, msgs, key):
        syn(c, 0)
        yield True
        syn(c, 1)
        yield True
        tcp(c, 0, 0x10, b"")
        yield True
        last = len(msgs) - 1
        for i, (d, writes) in enumerate(msgs):
            unacked = 0
            for w in writes:
                if isinstance(w, bytes):
                    for x in range(0, len(w), MSS):
                        seg = w[x:x + MSS]
                        tcp(c, d, 0x18 if x + MSS >= len(w) else 0x10, seg)
                        yield True
                        unacked += 1
                        if unacked == 2:
                            tcp(c, 1 - d, 0x10, b"")
                            unacked = 0
                            yield True
                    continue
                kind, n = w
                if kind == "tls":
                    full = n - n % REC
                    rem = n - full
                    tail = TLS_HDR.pack(0x17, 0x0303, rem - 5) + raw[:rem - 5] if rem else b""
                    src, period = tls_mv, tls_period
                else:
                    full, tail, src, period = n, b"", raw_mv, raw_period
                x = 0
                while x < n:
                    m = n - x if n - x < MSS else MSS
                    if x + m <= full:
                        p = x % period
                        seg = src[p:p + m]
                    elif x >= full:
                        seg = tail[x - full:x - full + m]
                    else:
                        p = x % period
                        seg = bytes(src[p:p + full - x]) + tail[:x + m - full]
                    x += m
                    tcp(c, d, 0x18 if x == n else 0x10, seg)
                    yield True
                    unacked += 1
                    if unacked == 2:
                        tcp(c, 1 - d, 0x10, b"")
                        unacked = 0
                        yield True
            if unacked and (i == last or msgs[i + 1][0] == d):
                tcp(c, 1 - d, 0x10, b"")
                yield True
        live.discard(key)
        r = rnd()
        if r < 0.04:  # abortive close by either side
            tcp(c, 0 if r < 0.025 else 1, 0x14, b"")
            yield False
            return
        first = 0 if r < 0.6 else 1
        tcp(c, first, 0x11, b"")
        yield True
        tcp(c, 1 - first, 0x11, b"")
        yield True
        tcp(c, first, 0x10, b"")
        yield False

    def dns_flow(c, pairs, key):
        for i, (q, a) in enumerate(pairs):
            udp(c, 0, q)
            yield True
            udp(c, 1, a)
            if i == len(pairs) - 1:
                live.discard(key)
                yield False
            else:
                yield True

    counts = {"tls": 0, "http": 0, "dns": 0}

    def new_flow():
        """Starts a flow; returns (generator, planned packets, planned file bytes)."""
        while True:
            cip = (10 << 24) | bits(24)
            if cip & 0xFF in (0, 255):
                continue
            sip = (198 << 24) | (18 << 16) | server_pool[int(rnd() * SERVERS)]
            cport = 32768 + int(rnd() * 28232)
            r = rnd()
            sport = 53 if r < SHARE_DNS else 80 if r < SHARE_DNS + SHARE_HTTP else 443
            key = (cip, cport, sip, sport)
            if key not in live:
                break
        live.add(key)
        if sport == 53:
            counts["dns"] += 1
            c = new_conn(cip, cport, sip, sport, 17)
            pairs = [dns_pair(rng, 1)] + ([dns_pair(rng, 28)] if rnd() < 0.5 else [])
            size = sum(2 * 16 + 84 + len(q) + len(a) for q, a in pairs)
            return dns_flow(c, pairs, key), 2 * len(pairs), size
        if sport == 80:
            counts["http"] += 1
            msgs = plan_http(rng)
        else:
            counts["tls"] += 1
            msgs = plan_tls(rng, handshakes)
        c = new_conn(cip, cport, sip, sport, 6)
        packets, size = tcp_cost(msgs)
        return tcp_flow(c, msgs, key), packets, size

    # 4096 servers spread over 198.18.0.0/15 (host bits of the /15).
    server_pool = rng.sample(range(1, 0x1FFFF), SERVERS)

    # Draw slots: each open flow is a [generator, packets left] list, referenced from
    # one or more slots; a uniformly random slot gives the next packet.
    slots = []
    active = 0
    flows = 0
    planned = 24
    ramp = concurrent * RAMP_PACKETS
    creating = True
    rebuild_at = 0
    while True:
        if creating:
            pk = st["pk"]
            target = concurrent if pk >= ramp else 1 + concurrent * pk // ramp
            while active < target:
                g, packets, size = new_flow()
                slots.extend([[g, packets]] * (1 + packets // WEIGHT_PACKETS))
                active += 1
                flows += 1
                planned += size
                if planned >= limit:
                    creating = False
                    break
        elif st["pk"] >= rebuild_at and slots:
            # Draining: no new flows. Give each open flow slots in proportion to the
            # packets it has left, so they all end near the end of the file and the
            # number of open flows stays high until then. Reweighted as they progress.
            flows_open = {id(e): e for e in slots if e[1] > -8}.values()
            left = sum(max(1, e[1]) for e in flows_open)
            unit = max(1, left // (32 * len(flows_open)))
            slots = [e for e in flows_open for _ in range(max(1, e[1] // unit))]
            rebuild_at = st["pk"] + max(1000, left // 8)
        if not slots:
            break
        i = int(rnd() * len(slots))
        e = slots[i]
        r = next(e[0], None)
        if r:
            e[1] -= 1
            continue
        # The flow wrote its last packet (False) or had already finished (None, a
        # leftover slot): drop this slot.
        e[1] = -8
        last = slots.pop()
        if i < len(slots):
            slots[i] = last
        if r is False:
            active -= 1
    flush()
    f.close()
    return st["pk"], flows, st["bytes"], (st["t"] - t0) / 1e6, counts


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("out")
    ap.add_argument("size_mb", type=float)
    ap.add_argument("--concurrent", type=int, default=20000,
                    help="open flows at once (default 20000)")
    ap.add_argument("--seed", type=int, default=1, help="random seed (default 1)")
    ap.add_argument("--sample", default="samples/chromium-tls13.pcap",
                    help="capture whose TLS handshakes are replayed")
    a = ap.parse_args()
    if a.concurrent < 1:
        ap.error("--concurrent must be at least 1")
    handshakes = tls_handshakes(a.sample)
    started = time.monotonic()
    packets, flows, size, span, counts = generate(a.out, int(a.size_mb * (1 << 20)),
                                                  a.concurrent, a.seed, handshakes)
    elapsed = time.monotonic() - started
    other = counts["http"] + counts["dns"]
    print(f"{a.out}: {packets} packets, {flows} flows, {size} bytes ({size / 1e6:.0f} MB, "
          f"{(size - 24) / packets - 16:.0f} B/packet avg frame), "
          f"TLS {counts['tls']} / other {other} (HTTP {counts['http']}, DNS {counts['dns']}), "
          f"{span:.1f} s of traffic, {len(handshakes)} sample handshakes, "
          f"seed {a.seed}, written in {elapsed:.1f} s", file=sys.stderr)


if __name__ == "__main__":
    main()
