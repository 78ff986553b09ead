//! Client stacks loadgen imitates: cipher, extension, group and signature-algorithm
//! lists as real clients send them.
//!
//! Where the public corpus holds a capture of the stack, the lists are that capture's
//! (the file and client port are named on each profile, and the unit tests in
//! `client_hello.rs` check the fingerprints against the corpus' reference values).
//! Firefox and Safari are not in the corpus: their lists follow those browsers'
//! published hellos and are marked "-like".

/// GREASE placeholder in extension templates: replaced per connection (RFC 8701).
pub const GREASE: u16 = 0x0a0a;
/// Second GREASE extension (BoringSSL sends two different ones, the last carries one byte).
pub const GREASE2: u16 = 0x1a1a;

/// How a stack orders its extensions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Order {
    /// As listed.
    Fixed,
    /// Shuffled per connection except GREASE and pre_shared_key (Chromium since 110).
    Permuted,
}

/// A client TLS stack profile.
#[derive(Debug, Clone, Copy)]
pub struct StackProfile {
    /// Short name used in manifests and on the command line.
    pub name: &'static str,
    /// Cipher suites (GREASE marks a per-connection GREASE value).
    pub ciphers: &'static [u16],
    /// Extensions in the stack's own order.
    pub extensions: &'static [u16],
    /// supported_groups.
    pub groups: &'static [u16],
    /// Groups that get a key_share entry.
    pub key_shares: &'static [u16],
    /// ec_point_formats.
    pub point_formats: &'static [u8],
    /// signature_algorithms.
    pub sig_algs: &'static [u16],
    /// signature_algorithms_cert (50), if sent.
    pub sig_algs_cert: &'static [u16],
    /// supported_versions.
    pub versions: &'static [u16],
    /// ALPN protocols offered.
    pub alpn: &'static [&'static str],
    /// Extension order policy.
    pub order: Order,
    /// Whether the legacy session id is 32 random bytes (TLS 1.3 middlebox compatibility) or empty.
    pub session_id: bool,
    /// compress_certificate algorithms (27).
    pub cert_compression: &'static [u16],
    /// True for a QUIC client (no session id, transport parameters in extension 57).
    pub quic: bool,
}

const CHROMIUM_CIPHERS: &[u16] = &[
    GREASE, 4865, 4866, 4867, 49195, 49199, 49196, 49200, 52393, 52392, 49171, 49172, 156, 157, 47,
    53,
];
const CHROMIUM_SIGS: &[u16] = &[
    GREASE, 2308, 2309, 2310, 1027, 2052, 1025, 1283, 2053, 1281, 2054, 1537,
];

/// Chromium 156 over TCP (pub_chromium_tcp.pcap): GREASE, permuted extensions, X25519MLKEM768.
pub const CHROMIUM: StackProfile = StackProfile {
    name: "chromium",
    ciphers: CHROMIUM_CIPHERS,
    extensions: &[
        GREASE, 0, 23, 65281, 10, 11, 35, 16, 5, 13, 18, 51, 45, 43, 27, 17613, 65037, 51764,
        GREASE2,
    ],
    groups: &[GREASE, 4588, 29, 23, 24],
    key_shares: &[GREASE, 4588, 29],
    point_formats: &[0],
    sig_algs: CHROMIUM_SIGS,
    sig_algs_cert: &[],
    versions: &[GREASE, 772, 771],
    alpn: &["h2", "http/1.1"],
    order: Order::Permuted,
    session_id: true,
    cert_compression: &[2],
    quic: false,
};

/// Chromium 156 over QUIC (pub_quic_chromium.pcap): no GREASE, permuted, MLKEM key share.
pub const CHROMIUM_QUIC: StackProfile = StackProfile {
    name: "chromium-quic",
    ciphers: &[4865, 4866, 4867],
    extensions: &[0, 10, 13, 16, 43, 45, 51, 27, 17613, 57, 65037, 51764],
    groups: &[4588, 29, 23, 24],
    key_shares: &[4588, 29],
    point_formats: &[],
    sig_algs: &[1027, 2052, 1025, 1283, 2053, 1281, 2054, 1537, 513],
    sig_algs_cert: &[],
    versions: &[772],
    alpn: &["h3"],
    order: Order::Permuted,
    session_id: false,
    cert_compression: &[2],
    quic: true,
};

/// aioquic 1.7 (pub_quic_aioquic.pcap): Python QUIC stack.
pub const AIOQUIC: StackProfile = StackProfile {
    name: "aioquic",
    ciphers: &[4866, 4865, 4867],
    extensions: &[51, 43, 13, 10, 0, 16, 57],
    groups: &[23, 24, 29, 30],
    key_shares: &[23],
    point_formats: &[],
    sig_algs: &[1027, 2052, 1025, 1283, 2053, 1281, 513, 2055, 2056],
    sig_algs_cert: &[],
    versions: &[772],
    alpn: &["h3"],
    order: Order::Fixed,
    session_id: false,
    cert_compression: &[],
    quic: true,
};

/// Firefox-like (NSS): ML-KEM hybrid first, delegated credentials, record_size_limit, ECH GREASE.
pub const FIREFOX: StackProfile = StackProfile {
    name: "firefox",
    ciphers: &[
        4865, 4867, 4866, 49195, 49199, 52393, 52392, 49196, 49200, 49162, 49161, 49171, 49172,
        156, 157, 47, 53,
    ],
    extensions: &[
        0, 23, 65281, 10, 11, 35, 16, 5, 34, 51, 43, 13, 45, 28, 27, 65037,
    ],
    groups: &[4588, 29, 23, 24, 25, 256, 257],
    key_shares: &[4588, 29, 23],
    point_formats: &[0],
    sig_algs: &[
        1027, 1283, 1539, 2052, 2053, 2054, 1025, 1281, 1537, 515, 513,
    ],
    sig_algs_cert: &[],
    versions: &[772, 771],
    alpn: &["h2", "http/1.1"],
    order: Order::Fixed,
    session_id: true,
    cert_compression: &[1, 2, 3],
    quic: false,
};

const OPENSSL3_GROUPS: &[u16] = &[29, 23, 30, 25, 24, 256, 257, 258, 259, 260];
const OPENSSL3_SIGS: &[u16] = &[
    1027, 1283, 1539, 2055, 2056, 2057, 2058, 2059, 2052, 2053, 2054, 1025, 1281, 1537, 771, 769,
    770, 1026, 1282, 1538,
];

/// curl 7.88 / OpenSSL 3.0 (pub_curl_vs_openssl_server.pcap, client port 44216).
pub const CURL: StackProfile = StackProfile {
    name: "curl",
    ciphers: &[
        4866, 4867, 4865, 49196, 49200, 159, 52393, 52392, 52394, 49195, 49199, 158, 49188, 49192,
        107, 49187, 49191, 103, 49162, 49172, 57, 49161, 49171, 51, 157, 156, 61, 60, 53, 47, 255,
    ],
    extensions: &[0, 11, 10, 16, 22, 23, 49, 13, 43, 45, 51, 21],
    groups: OPENSSL3_GROUPS,
    key_shares: &[29],
    point_formats: &[0, 1, 2],
    sig_algs: OPENSSL3_SIGS,
    sig_algs_cert: &[],
    versions: &[772, 771, 770, 769],
    alpn: &["h2", "http/1.1"],
    order: Order::Fixed,
    session_id: true,
    cert_compression: &[],
    quic: false,
};

const PYTHON_CIPHERS: &[u16] = &[
    4866, 4867, 4865, 49196, 49200, 49195, 49199, 52393, 52392, 49188, 49192, 49187, 49191, 159,
    158, 107, 103, 255,
];

/// Python 3.11 `ssl` / OpenSSL 3.0 (pub_nginx_many_clients.pcap, client port 42256).
pub const PYTHON: StackProfile = StackProfile {
    name: "python",
    ciphers: PYTHON_CIPHERS,
    extensions: &[0, 11, 10, 35, 22, 23, 13, 43, 45, 51, 21],
    groups: OPENSSL3_GROUPS,
    key_shares: &[29],
    point_formats: &[0, 1, 2],
    sig_algs: OPENSSL3_SIGS,
    sig_algs_cert: &[],
    versions: &[772, 771],
    alpn: &[],
    order: Order::Fixed,
    session_id: true,
    cert_compression: &[],
    quic: false,
};

/// Python requests 2.34 / OpenSSL 3.0 (pub_nginx_many_clients.pcap, client port 42268).
pub const PYTHON_REQUESTS: StackProfile = StackProfile {
    name: "python-requests",
    extensions: &[0, 11, 10, 16, 22, 23, 49, 13, 43, 45, 51, 21],
    alpn: &["http/1.1"],
    ..PYTHON
};

/// Java 17 JSSE (pub_nginx_many_clients.pcap, client port 42278).
pub const JAVA: StackProfile = StackProfile {
    name: "java",
    ciphers: &[
        4866, 4865, 4867, 49196, 49195, 52393, 49200, 52392, 49199, 159, 52394, 163, 158, 162,
        49188, 49192, 49187, 49191, 107, 106, 103, 64, 49162, 49172, 49161, 49171, 57, 56, 51, 50,
        157, 156, 61, 60, 53, 47, 255,
    ],
    extensions: &[0, 5, 10, 11, 17, 23, 35, 13, 43, 45, 50, 51],
    groups: &[29, 23, 24, 25, 30, 256, 257, 258, 259, 260],
    key_shares: &[29, 23],
    point_formats: &[0],
    sig_algs: &[
        1027, 1283, 1539, 2055, 2056, 2052, 2053, 2054, 2057, 2058, 2059, 1025, 1281, 1537, 1026,
        771, 769, 770, 515, 513, 514,
    ],
    sig_algs_cert: &[
        1027, 1283, 1539, 2055, 2056, 2052, 2053, 2054, 2057, 2058, 2059, 1025, 1281, 1537, 1026,
        771, 769, 770, 515, 513, 514,
    ],
    versions: &[772, 771],
    alpn: &[],
    order: Order::Fixed,
    session_id: true,
    cert_compression: &[],
    quic: false,
};

/// Go 1.19 crypto/tls with HTTP/2 (pub_nginx_many_clients.pcap, client port 42294).
pub const GO: StackProfile = StackProfile {
    name: "go",
    ciphers: &[
        49195, 49199, 49196, 49200, 52393, 52392, 49161, 49171, 49162, 49172, 156, 157, 47, 53,
        49170, 10, 4865, 4866, 4867,
    ],
    extensions: &[0, 5, 10, 11, 13, 65281, 16, 18, 43, 51],
    groups: &[29, 23, 24, 25],
    key_shares: &[29],
    point_formats: &[0],
    sig_algs: &[
        2052, 1027, 2055, 2053, 2054, 1025, 1281, 1537, 1283, 1539, 513, 515,
    ],
    sig_algs_cert: &[],
    versions: &[772, 771],
    alpn: &["h2", "http/1.1"],
    order: Order::Fixed,
    session_id: true,
    cert_compression: &[],
    quic: false,
};

/// Safari-like (Apple BoringSSL fork): GREASE, fixed order, legacy CBC suites, duplicate rsa_pss_rsae_sha384.
pub const SAFARI: StackProfile = StackProfile {
    name: "safari",
    ciphers: &[
        GREASE, 4865, 4866, 4867, 49196, 49195, 52393, 49200, 49199, 52392, 49162, 49161, 49172,
        49171, 157, 156, 53, 47, 49160, 49170, 10,
    ],
    extensions: &[
        GREASE, 0, 23, 65281, 10, 11, 16, 5, 13, 18, 51, 45, 43, 27, 21, GREASE2,
    ],
    groups: &[GREASE, 29, 23, 24, 25],
    key_shares: &[GREASE, 29],
    point_formats: &[0],
    sig_algs: &[
        1027, 2052, 1025, 1283, 515, 2053, 2053, 1281, 2054, 1537, 513,
    ],
    sig_algs_cert: &[],
    versions: &[GREASE, 772, 771, 770, 769],
    alpn: &["h2", "http/1.1"],
    order: Order::Fixed,
    session_id: true,
    cert_compression: &[1],
    quic: false,
};

/// Every TCP profile, in the order the generators mix them.
pub const TCP_STACKS: &[StackProfile] = &[
    CHROMIUM,
    FIREFOX,
    CURL,
    GO,
    PYTHON,
    PYTHON_REQUESTS,
    JAVA,
    SAFARI,
];

/// Every QUIC profile.
pub const QUIC_STACKS: &[StackProfile] = &[CHROMIUM_QUIC, AIOQUIC];

/// Share of connections per TCP stack (browsers dominate a campus link).
pub const TCP_WEIGHTS: &[f64] = &[0.45, 0.15, 0.08, 0.08, 0.05, 0.05, 0.04, 0.10];
