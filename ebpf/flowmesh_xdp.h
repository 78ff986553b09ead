/* SPDX-License-Identifier: Apache-2.0 */
/*
 * flowmesh XDP program: the ABI shared by the kernel program (flowmesh_xdp.c) and user
 * space (actors/src/xdp/abi.rs mirrors every struct here, with the same size asserts).
 *
 * Rules for changing this file: plain fixed-width types only, explicit padding (the
 * padding bytes of a map key are hashed, so they must be zero), and update the Rust
 * mirror and both size asserts in the same commit.
 */
#ifndef FLOWMESH_XDP_H
#define FLOWMESH_XDP_H

#include <linux/types.h>

/* VLAN id of an untagged (or only priority-tagged) frame in a bypass key. */
#define FM_VLAN_NONE 0xFFFF

/* Default sizes of the maps; user space overrides them at load time. */
#define FM_XSKS_DEFAULT 64
#define FM_BYPASS_DEFAULT 65536

/*
 * Symmetric flow key of the bypass map. The two endpoints are in canonical order: "a" is
 * the lower of (address as 16 bytes, then port) compared as big-endian bytes; IPv4
 * addresses are stored IPv4-mapped (::ffff:a.b.c.d). Ports are in host byte order (0
 * for protocols without ports). vlan is the outermost non-zero VLAN id, FM_VLAN_NONE
 * when there is none.
 */
struct fm_bypass_key {
	__u8 addr_a[16];
	__u8 addr_b[16];
	__u16 port_a;
	__u16 port_b;
	__u16 vlan;
	__u8 proto;
	__u8 pad; /* always 0 */
};
_Static_assert(sizeof(struct fm_bypass_key) == 40, "fm_bypass_key is 40 bytes");

/*
 * Counters of one bypassed flow. Index 0 = sent by endpoint "a". The value is shared by
 * all CPUs: the program updates it with atomic adds and ors only.
 */
struct fm_bypass_value {
	__u64 packets[2];
	__u64 bytes[2];	      /* frame length, data_end - data */
	__u64 last_seen_ns;   /* bpf_ktime_get_ns (CLOCK_MONOTONIC) of the last packet */
	__u32 tcp_flags[2];   /* OR of the TCP flag bytes seen (low 8 bits used) */
};
_Static_assert(sizeof(struct fm_bypass_value) == 48, "fm_bypass_value is 48 bytes");

/* What the program does with a packet of a bypassed flow (never redirect). */
enum fm_bypass_action {
	FM_BYPASS_PASS = 0, /* XDP_PASS: the kernel stack still sees it */
	FM_BYPASS_DROP = 1, /* XDP_DROP */
};

/* The one entry of the `config` array map. */
struct fm_config {
	__u32 bypass_action; /* enum fm_bypass_action */
	__u32 pad;	     /* always 0 */
};
_Static_assert(sizeof(struct fm_config) == 8, "fm_config is 8 bytes");

/*
 * Per-CPU counters, indexes into fm_counters.c. Every packet counts in FM_CNT_SEEN and in
 * exactly one of REDIRECTED, REDIRECT_FAILED, BYPASS_PACKETS, UNPARSED.
 */
enum fm_counter {
	FM_CNT_SEEN = 0,	    /* packets the program ran on */
	FM_CNT_REDIRECTED = 1,	    /* redirected to the XSK of the receive queue */
	FM_CNT_REDIRECT_FAILED = 2, /* no socket on that queue: XDP_PASS */
	FM_CNT_BYPASS_PACKETS = 3,  /* of bypassed flows: counted in the map, passed or dropped */
	FM_CNT_BYPASS_BYTES = 4,    /* their frame bytes */
	FM_CNT_BYPASS_FIN_RST = 5,  /* FIN/RST of bypassed flows: redirected, not counted in the map */
	FM_CNT_UNPARSED = 6,	    /* not IPv4/IPv6, or a truncated/malformed L2/L3 header: XDP_PASS */
	FM_CNT_FRAGMENTS = 7,	    /* IP fragments: redirected without a bypass lookup */
	FM_CNT_L4_UNREACHED = 8,    /* IPv6 extension-header limit, truncated TCP/UDP header: redirected without a bypass lookup */
	FM_CNT_MAX = 9,
};

/* The one entry of the per-CPU `counters` array map. */
struct fm_counters {
	__u64 c[FM_CNT_MAX];
};
_Static_assert(sizeof(struct fm_counters) == 8 * FM_CNT_MAX, "fm_counters is FM_CNT_MAX words");

#endif /* FLOWMESH_XDP_H */
