# flowmesh flow record: the stored and replicated form of a finished flow.
# Field ordinals are forever: add fields at the end, never renumber.
@0xb7c1e2a4d3f50a11;

struct FlowRecord {
  transport @0 :UInt8;          # IP protocol number
  l7 @1 :L7;
  clientIp @2 :Data;            # 4 or 16 bytes
  clientPort @3 :UInt16;
  serverIp @4 :Data;
  serverPort @5 :UInt16;
  vlan @6 :Int32;               # -1 when untagged
  firstSeenNs @7 :Int64;
  lastSeenNs @8 :Int64;
  packetsC2s @9 :UInt64;
  packetsS2c @10 :UInt64;
  bytesC2s @11 :UInt64;
  bytesS2c @12 :UInt64;
  tcpFlagsC2s @13 :UInt8;
  tcpFlagsS2c @14 :UInt8;
  endReason @15 :EndReason;
  communityId @16 :Text;
  midstream @17 :Bool;
  handshakes @18 :List(Handshake);
  connState @19 :Text;              # Zeek conn_state code

  enum L7 { none @0; tls @1; quic @2; }
  enum EndReason { fin @0; rst @1; idle @2; evicted @3; endOfInput @4; open @5; interrupted @6; }
}

# Optional text is encoded as an unset pointer (hasX() == false).
struct Handshake {
  sni @0 :Text;
  alpn @1 :List(Text);
  alpnSelected @2 :Text;
  tlsVersion @3 :Text;
  serverHelloIsHrr @4 :Bool;
  ja3 @5 :Text;
  ja3Hash @6 :Text;
  ja3s @7 :Text;
  ja3sHash @8 :Text;
  ja4 @9 :Text;
  ja4s @10 :Text;
  cipherSuites @11 :List(UInt16);
  extensions @12 :List(UInt16);
  supportedGroups @13 :List(UInt16);
  ecPointFormats @14 :Data;
  signatureAlgorithms @15 :List(UInt16);
  supportedVersions @16 :List(UInt16);
  serverCipherSuite @17 :Int32;  # -1 when absent
  serverExtensions @18 :List(UInt16);
  certificates @19 :List(Certificate);
  clientHelloError @20 :Text;
  ts @21 :Int64 = -9223372036854775808;  # ns since the epoch; the default when absent
}

struct Certificate {
  subject @0 :Text;
  issuer @1 :Text;
  notBefore @2 :Text;
  notAfter @3 :Text;
  sha256 @4 :Text;
}
