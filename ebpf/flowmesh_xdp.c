// SPDX-License-Identifier: Apache-2.0
/*
 * flowmesh XDP program: parses each frame to L4, consults the bypass map, and redirects
 * everything else to the AF_XDP socket of the receive queue.
 *
 * Verdicts:
 * - not IPv4/IPv6 (ARP, LLDP, a third VLAN tag, ...), or a truncated/malformed Ethernet,
 *   VLAN or IP header: XDP_PASS, counted in FM_CNT_UNPARSED;
 * - IP fragments (IPv4 MF or offset != 0, any IPv6 Fragment header) and IP packets whose
 *   TCP/UDP header cannot be reached (more than FM_MAX_EXT_HDRS IPv6 extension headers,
 *   truncated headers): redirected without a bypass lookup, because user space must
 *   defragment or judge them (a sensor must not be blinded by extra extension headers);
 * - a packet of a bypassed flow: counted in its map value, then XDP_PASS or XDP_DROP per
 *   the `config` map; never redirected, except TCP segments with FIN or RST, which are not
 *   counted in the map and go to user space so it sees the flow end;
 * - everything else: bpf_redirect_map(&xsks, rx_queue_index, XDP_PASS).
 *
 * Build: clang -O2 -g -target bpf -mcpu=v3 (atomic OR needs BPF ISA v3, Linux 5.12+).
 */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <linux/tcp.h>
#include <linux/udp.h>
#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>

#include "flowmesh_xdp.h"

/* IPv6 extension headers skipped on the way to the transport header (IANA numbers). */
#define NH_HOP_BY_HOP 0
#define NH_ROUTING 43
#define NH_FRAGMENT 44
#define NH_AH 51
#define NH_DEST_OPTS 60
#define NH_MOBILITY 135
#define NH_HIP 139
#define NH_SHIM6 140

/* Extension headers skipped before giving up on finding L4 (the verifier needs a bound). */
#define FM_MAX_EXT_HDRS 4
/* VLAN tags followed: 802.1Q, and QinQ (802.1ad outer tag, or the pre-standard 0x9100). */
#define FM_MAX_VLAN_TAGS 2
#define ETH_P_QINQ_OLD 0x9100

#define IP_MF 0x2000
#define IP_OFFSET 0x1FFF

#define TCP_FLAG_FIN 0x01
#define TCP_FLAG_RST 0x04

/* One AF_XDP socket per receive queue, indexed by queue id. */
struct {
	__uint(type, BPF_MAP_TYPE_XSKMAP);
	__uint(max_entries, FM_XSKS_DEFAULT);
	__type(key, __u32);
	__type(value, __u32);
} xsks SEC(".maps");

/*
 * Flows user space no longer needs to see. A plain preallocated HASH rather than an
 * LRU_HASH: the map is bounded either way, but an LRU map silently evicts an entry (and
 * its counters) when user space inserts into a full map, and its per-CPU free lists can
 * evict before the map is full. With HASH an insert into a full map fails (E2BIG) and user
 * space keeps that flow for itself; entries leave when user space takes them at the end
 * of the flow (FIN/RST, which this program sends up, or its idle timeout). Only user
 * space inserts or deletes; this program only looks up and updates values in place.
 */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, FM_BYPASS_DEFAULT);
	__type(key, struct fm_bypass_key);
	__type(value, struct fm_bypass_value);
} bypass SEC(".maps");

/* Settings written by user space before the program is attached. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct fm_config);
} config SEC(".maps");

/* Per-CPU counters: one struct per CPU, so plain increments are race free. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct fm_counters);
} counters SEC(".maps");

struct vlan_hdr {
	__be16 tci;
	__be16 proto;
};

/* What parsing found. */
enum parse_result {
	PARSE_OK,	    /* key and flags filled in */
	PARSE_UNPARSED,	    /* pass to the kernel */
	PARSE_FRAGMENT,	    /* redirect, no bypass lookup */
	PARSE_L4_UNREACHED, /* redirect, no bypass lookup */
};

/* The fields of one packet, in packet (not canonical) order. Words keep stack access aligned. */
struct pkt {
	__u32 src[4]; /* IPv6, or IPv4-mapped */
	__u32 dst[4];
	__u16 sport;  /* host order */
	__u16 dport;
	__u16 vlan;
	__u8 proto;
	__u8 tcp_flags;
};

/* Sets an IPv4-mapped IPv6 address (::ffff:a.b.c.d) from a network-order IPv4 address. */
static __always_inline void v4_mapped(__u32 *out, __u32 addr_be)
{
	out[0] = 0;
	out[1] = 0;
	out[2] = bpf_htonl(0x0000ffff);
	out[3] = addr_be;
}

static __always_inline int is_v6_ext(__u8 nh)
{
	return nh == NH_HOP_BY_HOP || nh == NH_ROUTING || nh == NH_DEST_OPTS || nh == NH_AH ||
	       nh == NH_MOBILITY || nh == NH_HIP || nh == NH_SHIM6;
}

/* Reads ports (and TCP flags) of the transport header at l4. */
static __always_inline enum parse_result parse_l4(void *l4, void *data_end, struct pkt *p)
{
	if (p->proto == IPPROTO_TCP) {
		struct tcphdr *th = l4;
		if ((void *)(th + 1) > data_end)
			return PARSE_L4_UNREACHED;
		p->sport = bpf_ntohs(th->source);
		p->dport = bpf_ntohs(th->dest);
		/* The flag byte: CWR ECE URG ACK PSH RST SYN FIN (RFC 9293 §3.1). */
		p->tcp_flags = ((__u8 *)th)[13];
	} else if (p->proto == IPPROTO_UDP) {
		struct udphdr *uh = l4;
		if ((void *)(uh + 1) > data_end)
			return PARSE_L4_UNREACHED;
		p->sport = bpf_ntohs(uh->source);
		p->dport = bpf_ntohs(uh->dest);
	}
	/* Other protocols (ICMP, ESP, GRE, ...) have no ports: 0, as in flowmesh's FlowKey. */
	return PARSE_OK;
}

static __always_inline enum parse_result parse_ipv4(void *cur, void *data_end, struct pkt *p)
{
	struct iphdr *iph = cur;
	if ((void *)(iph + 1) > data_end)
		return PARSE_UNPARSED;
	if (iph->version != 4 || iph->ihl < 5)
		return PARSE_UNPARSED;
	__u32 hlen = iph->ihl * 4;
	if (cur + hlen > data_end)
		return PARSE_UNPARSED;
	/* Any fragment, first or later: only user space can reassemble it. */
	if (iph->frag_off & bpf_htons(IP_MF | IP_OFFSET))
		return PARSE_FRAGMENT;
	v4_mapped(p->src, iph->saddr);
	v4_mapped(p->dst, iph->daddr);
	p->proto = iph->protocol;
	return parse_l4(cur + hlen, data_end, p);
}

static __always_inline enum parse_result parse_ipv6(void *cur, void *data_end, struct pkt *p)
{
	struct ipv6hdr *ip6 = cur;
	if ((void *)(ip6 + 1) > data_end)
		return PARSE_UNPARSED;
	if (ip6->version != 6)
		return PARSE_UNPARSED;
	__builtin_memcpy(p->src, &ip6->saddr, 16);
	__builtin_memcpy(p->dst, &ip6->daddr, 16);
	__u8 nh = ip6->nexthdr;
	void *l4 = ip6 + 1;
#pragma unroll
	for (int i = 0; i < FM_MAX_EXT_HDRS; i++) {
		if (nh == NH_FRAGMENT)
			return PARSE_FRAGMENT;
		if (!is_v6_ext(nh))
			break;
		__u8 *eh = l4;
		if ((void *)(eh + 2) > data_end)
			return PARSE_L4_UNREACHED;
		/* RFC 8200 §4: 8-octet units past the first 8; AH (RFC 4302 §2.2): 4-octet units minus 2. */
		__u32 len = nh == NH_AH ? ((__u32)eh[1] + 2) * 4 : ((__u32)eh[1] + 1) * 8;
		nh = eh[0];
		l4 = eh + len;
	}
	if (nh == NH_FRAGMENT)
		return PARSE_FRAGMENT;
	if (is_v6_ext(nh))
		return PARSE_L4_UNREACHED;
	p->proto = nh;
	return parse_l4(l4, data_end, p);
}

static __always_inline enum parse_result parse(void *data, void *data_end, struct pkt *p)
{
	struct ethhdr *eth = data;
	if ((void *)(eth + 1) > data_end)
		return PARSE_UNPARSED;
	__be16 proto = eth->h_proto;
	void *cur = eth + 1;
	p->vlan = FM_VLAN_NONE;
#pragma unroll
	for (int i = 0; i < FM_MAX_VLAN_TAGS; i++) {
		if (proto != bpf_htons(ETH_P_8021Q) && proto != bpf_htons(ETH_P_8021AD) &&
		    proto != bpf_htons(ETH_P_QINQ_OLD))
			break;
		struct vlan_hdr *vh = cur;
		if ((void *)(vh + 1) > data_end)
			return PARSE_UNPARSED;
		/* VID 0 is a priority tag, not a VLAN (IEEE 802.1Q §9.6): the outermost real one counts. */
		__u16 vid = bpf_ntohs(vh->tci) & 0x0fff;
		if (p->vlan == FM_VLAN_NONE && vid != 0)
			p->vlan = vid;
		proto = vh->proto;
		cur = vh + 1;
	}
	if (proto == bpf_htons(ETH_P_IP))
		return parse_ipv4(cur, data_end, p);
	if (proto == bpf_htons(ETH_P_IPV6))
		return parse_ipv6(cur, data_end, p);
	return PARSE_UNPARSED;
}

/* Compares (address, port) endpoints as big-endian bytes: <0, 0, >0. */
static __always_inline int endpoint_cmp(const __u32 *a, __u16 pa, const __u32 *b, __u16 pb)
{
#pragma unroll
	for (int i = 0; i < 4; i++) {
		__u32 x = bpf_ntohl(a[i]);
		__u32 y = bpf_ntohl(b[i]);
		if (x != y)
			return x < y ? -1 : 1;
	}
	if (pa != pb)
		return pa < pb ? -1 : 1;
	return 0;
}

/* Builds the symmetric key; returns the direction (0 = the packet was sent by "a"). */
static __always_inline __u32 make_key(const struct pkt *p, struct fm_bypass_key *k)
{
	__u32 dir = endpoint_cmp(p->src, p->sport, p->dst, p->dport) > 0;
	const __u32 *a = dir ? p->dst : p->src;
	const __u32 *b = dir ? p->src : p->dst;
	__builtin_memcpy(k->addr_a, a, 16);
	__builtin_memcpy(k->addr_b, b, 16);
	k->port_a = dir ? p->dport : p->sport;
	k->port_b = dir ? p->sport : p->dport;
	k->vlan = p->vlan;
	k->proto = p->proto;
	k->pad = 0;
	return dir;
}

/* Counts a packet of a bypassed flow in its shared map value. */
static __always_inline void count_bypassed(struct fm_bypass_value *v, __u32 dir, __u64 len,
					   __u8 tcp_flags)
{
	dir &= 1;
	__sync_fetch_and_add(&v->packets[dir], 1);
	__sync_fetch_and_add(&v->bytes[dir], len);
	/* Read first: the OR is an atomic read-modify-write of a line all CPUs share. */
	if ((v->tcp_flags[dir] & tcp_flags) != tcp_flags)
		__sync_fetch_and_or(&v->tcp_flags[dir], (__u32)tcp_flags);
	/* A racing store from another CPU is as recent as ours: no atomic needed. */
	v->last_seen_ns = bpf_ktime_get_ns();
}

SEC("xdp")
int flowmesh_xdp(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	__u32 zero = 0;

	struct fm_counters *cnt = bpf_map_lookup_elem(&counters, &zero);
	if (!cnt)
		return XDP_PASS; /* cannot happen: a one-entry array always has entry 0 */
	cnt->c[FM_CNT_SEEN]++;

	struct pkt p = {};
	switch (parse(data, data_end, &p)) {
	case PARSE_UNPARSED:
		cnt->c[FM_CNT_UNPARSED]++;
		return XDP_PASS;
	case PARSE_FRAGMENT:
		cnt->c[FM_CNT_FRAGMENTS]++;
		goto redirect;
	case PARSE_L4_UNREACHED:
		cnt->c[FM_CNT_L4_UNREACHED]++;
		goto redirect;
	case PARSE_OK:
		break;
	}

	struct fm_bypass_key key = {};
	__u32 dir = make_key(&p, &key);
	struct fm_bypass_value *v = bpf_map_lookup_elem(&bypass, &key);
	if (v) {
		if (p.proto == IPPROTO_TCP && (p.tcp_flags & (TCP_FLAG_FIN | TCP_FLAG_RST))) {
			cnt->c[FM_CNT_BYPASS_FIN_RST]++;
			goto redirect;
		}
		__u64 len = data_end - data;
		count_bypassed(v, dir, len, p.proto == IPPROTO_TCP ? p.tcp_flags : 0);
		cnt->c[FM_CNT_BYPASS_PACKETS]++;
		cnt->c[FM_CNT_BYPASS_BYTES] += len;
		struct fm_config *cfg = bpf_map_lookup_elem(&config, &zero);
		if (cfg && cfg->bypass_action == FM_BYPASS_DROP)
			return XDP_DROP;
		return XDP_PASS;
	}

redirect:;
	/* The low bits of the flags are the verdict when the queue has no socket. */
	long rc = bpf_redirect_map(&xsks, ctx->rx_queue_index, XDP_PASS);
	if (rc == XDP_REDIRECT)
		cnt->c[FM_CNT_REDIRECTED]++;
	else
		cnt->c[FM_CNT_REDIRECT_FAILED]++;
	return rc;
}

/* No GPL-only helper is used, so the project's own licence applies. */
char _license[] SEC("license") = "Apache-2.0";
