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
            subject: cert.subject().to_string(),
            issuer: cert.issuer().to_string(),
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
