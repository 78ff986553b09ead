//! The server certificate chain of TLS ≤ 1.2 (RFC 5246 §7.4.2), summarised as
//! [`CertificateInfo`]s. TLS 1.3 encrypts the Certificate message, so it never reaches
//! this code.
//!
//! Invariants: list lengths are validated strictly (the 3-byte list length must fill the
//! message and each 3-byte certificate length must stay inside it); a certificate whose
//! DER does not parse still gets its SHA-256, with empty text fields.

use super::reader::Reader;
use super::MalformedReason;
use flowmesh_schemas::CertificateInfo;
use sha2::{Digest, Sha256};
use std::fmt::Write as _;
use x509_parser::der_parser::asn1_rs::Tag;
use x509_parser::x509::{AttributeTypeAndValue, X509Name};

/// Lowercase hex of a byte string.
pub(crate) fn hex(bytes: &[u8]) -> String {
    let mut s = String::with_capacity(bytes.len().saturating_mul(2));
    for b in bytes {
        let _ = write!(s, "{b:02x}");
    }
    s
}

/// Decodes a Certificate message body:
/// `opaque ASN.1Cert<1..2^24-1>; ASN.1Cert certificate_list<0..2^24-1>` (RFC 5246 §7.4.2).
pub fn parse_certificate_chain(body: &[u8]) -> Result<Vec<CertificateInfo>, MalformedReason> {
    let err = MalformedReason::CertificateLength;
    let mut r = Reader::new(body);
    let list = r.vec24().ok_or(err)?;
    if !r.is_empty() {
        return Err(err);
    }
    let mut l = Reader::new(list);
    let mut out = Vec::new();
    while !l.is_empty() {
        let der = l.vec24().ok_or(err)?;
        out.push(summarise(der));
    }
    Ok(out)
}

/// Summary of one DER certificate.
fn summarise(der: &[u8]) -> CertificateInfo {
    let sha256 = hex(&Sha256::digest(der));
    match x509_parser::parse_x509_certificate(der) {
        Ok((_, cert)) => CertificateInfo {
            subject: rfc4514(cert.subject()),
            issuer: rfc4514(cert.issuer()),
            not_before: rfc3339(cert.validity().not_before.timestamp()),
            not_after: rfc3339(cert.validity().not_after.timestamp()),
            sha256,
        },
        Err(_) => CertificateInfo {
            sha256,
            ..CertificateInfo::default()
        },
    }
}

/// RFC 4514 §2 string form of a distinguished name: RDNs in reverse order (last RDN of
/// the DER SEQUENCE first), separated by `,`; attributes of a multi-valued RDN joined by
/// `+` (also in reverse order, as `openssl -nameopt RFC2253` prints them); the short names of RFC 4514 §3 (CN, L, ST, O, OU, C, STREET, DC, UID), dotted
/// OIDs otherwise; values escaped per §2.4.
pub(crate) fn rfc4514(name: &X509Name<'_>) -> String {
    let rdns: Vec<String> = name
        .iter_rdn()
        .map(|rdn| {
            let mut attrs: Vec<String> = rdn
                .iter()
                .map(|attr| format!("{}={}", attr_name(attr), escape(&attr_text(attr))))
                .collect();
            // As OpenSSL's RFC 2253 output: the whole name is walked backwards.
            attrs.reverse();
            attrs.join("+")
        })
        .collect();
    rdns.into_iter().rev().collect::<Vec<_>>().join(",")
}

/// Short name of an attribute type (RFC 4514 §3), else its dotted OID.
fn attr_name(attr: &AttributeTypeAndValue<'_>) -> String {
    let oid = attr.attr_type().to_id_string();
    let short = match oid.as_str() {
        "2.5.4.3" => "CN",
        "2.5.4.7" => "L",
        "2.5.4.8" => "ST",
        "2.5.4.10" => "O",
        "2.5.4.11" => "OU",
        "2.5.4.6" => "C",
        "2.5.4.9" => "STREET",
        "0.9.2342.19200300.100.1.25" => "DC",
        "0.9.2342.19200300.100.1.1" => "UID",
        _ => return oid,
    };
    short.to_string()
}

/// Text of an attribute value: UTF-8 string types as is, BMPString decoded from
/// UTF-16BE, anything else as lossy UTF-8 of its content octets.
fn attr_text(attr: &AttributeTypeAndValue<'_>) -> String {
    if let Ok(s) = attr.as_str() {
        return s.to_string();
    }
    let bytes = attr.as_slice();
    if attr.attr_value().tag() == Tag::BmpString {
        let units: Vec<u16> = bytes
            .chunks(2)
            .map(|c| {
                u16::from_be_bytes([
                    c.first().copied().unwrap_or(0),
                    c.get(1).copied().unwrap_or(0),
                ])
            })
            .collect();
        return String::from_utf16_lossy(&units);
    }
    String::from_utf8_lossy(bytes).into_owned()
}

/// RFC 4514 §2.4 escaping: `"`, `+`, `,`, `;`, `<`, `>`, `\` anywhere, `#` or space at
/// the start, space at the end, and NUL as `\00`.
fn escape(v: &str) -> String {
    let mut out = String::with_capacity(v.len());
    let last = v.chars().count().saturating_sub(1);
    for (i, c) in v.chars().enumerate() {
        match c {
            '"' | '+' | ',' | ';' | '<' | '>' | '\\' => {
                out.push('\\');
                out.push(c);
            }
            '#' if i == 0 => out.push_str("\\#"),
            ' ' if i == 0 || i == last => out.push_str("\\ "),
            '\0' => out.push_str("\\00"),
            _ => out.push(c),
        }
    }
    out
}

/// Formats a Unix timestamp as an RFC 3339 UTC date-time, e.g. `2026-01-02T03:04:05Z`.
/// Uses the days-to-civil conversion of H. Hinnant's `chrono`-compatible algorithms
/// (proleptic Gregorian calendar); all arithmetic is on `i64` well inside its range
/// for any ASN.1 time (years 0000–9999).
pub(crate) fn rfc3339(ts: i64) -> String {
    let days = ts.div_euclid(86_400);
    let secs = ts.rem_euclid(86_400);
    let (h, m, s) = (secs / 3600, (secs % 3600) / 60, secs % 60);
    let z = days.saturating_add(719_468);
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let mo = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe
        .saturating_add(era.saturating_mul(400))
        .saturating_add(i64::from(mo <= 2));
    format!("{y:04}-{mo:02}-{d:02}T{h:02}:{m:02}:{s:02}Z")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A certificate made with `openssl req -x509 -multivalue-rdn -subj
    /// "/C=US/O=Example, Inc./OU=Ops\\+Dev/CN=host.example+UID=42"`; the expected strings
    /// are `openssl x509 -nameopt RFC2253` output.
    #[test]
    fn certificate_summary_matches_openssl() {
        let der = include_bytes!("testdata/multi_rdn.der");
        let mut body = vec![0, 0, 0, 0, 0, 0];
        let n = der.len();
        body[1..3].copy_from_slice(&u16::try_from(n + 3).expect("small").to_be_bytes());
        body[4..6].copy_from_slice(&u16::try_from(n).expect("small").to_be_bytes());
        body.extend_from_slice(der);
        let chain = parse_certificate_chain(&body).expect("valid chain");
        let c = &chain[0];
        let dn = "CN=host.example+UID=42,OU=Ops\\+Dev,O=Example\\, Inc.,C=US";
        assert_eq!(c.subject, dn);
        assert_eq!(c.issuer, dn);
        assert_eq!(c.not_before, "2026-11-21T17:25:02Z");
        assert_eq!(c.not_after, "2026-12-21T17:25:02Z");
        assert_eq!(
            c.sha256,
            "f1af97b6fde1b75252573c2e59e0c1629495f3ddf5659b7e6d11404491baa4c8"
        );
    }

    #[test]
    fn rfc4514_escaping() {
        assert_eq!(escape("a,b+c"), "a\\,b\\+c");
        assert_eq!(escape("#x "), "\\#x\\ ");
        assert_eq!(escape(" "), "\\ ");
        assert_eq!(escape("plain"), "plain");
    }

    #[test]
    fn rfc3339_known_values() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(rfc3339(1_700_000_000), "2023-11-14T22:13:20Z");
        assert_eq!(rfc3339(-1), "1969-12-31T23:59:59Z");
        assert_eq!(rfc3339(253_402_300_799), "9999-12-31T23:59:59Z");
    }

    #[test]
    fn chain_lengths_are_strict() {
        // One 3-byte "certificate" that is not DER: still hashed.
        let body = [0, 0, 6, 0, 0, 3, 1, 2, 3];
        let chain = parse_certificate_chain(&body).expect("valid lengths");
        assert_eq!(chain.len(), 1);
        assert_eq!(chain[0].subject, "");
        assert_eq!(chain[0].sha256, hex(&Sha256::digest([1u8, 2, 3])));
        // Inner length past the list.
        assert_eq!(
            parse_certificate_chain(&[0, 0, 6, 0, 0, 4, 1, 2, 3]),
            Err(MalformedReason::CertificateLength)
        );
        // Trailing byte after the list.
        assert_eq!(
            parse_certificate_chain(&[0, 0, 0, 9]),
            Err(MalformedReason::CertificateLength)
        );
        assert_eq!(parse_certificate_chain(&[0, 0, 0]), Ok(vec![]));
    }
}
