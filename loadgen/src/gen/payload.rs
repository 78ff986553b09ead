//! Application payloads that are not TLS handshakes: DNS messages (RFC 1035 §4),
//! HTTP/1.1 requests and responses, and streams of TLS application_data records.

use crate::rng::Rng;

/// Size of a full TLS 1.3 application_data record on the wire: header, 16384 bytes, type byte, tag.
pub const RECORD: u64 = 5 + 16384 + 1 + 16;

/// Rounds a response length so that its last record holds at least a tag and a type byte.
pub fn record_stream_len(len: u64) -> u64 {
    let rem = len % RECORD;
    if rem != 0 && rem < 5 + 17 {
        len + (5 + 17 - rem)
    } else {
        len.max(5 + 17)
    }
}

/// Writes bytes `[offset, offset + buf.len())` of a stream of application_data records of
/// total length `total`: record headers at each record boundary, opaque ciphertext taken
/// from `pool` elsewhere.
pub fn fill_records(offset: u64, total: u64, pool: &[u8], buf: &mut [u8]) {
    let start = (offset % pool.len() as u64) as usize;
    let mut done = 0;
    while done < buf.len() {
        let from = (start + done) % pool.len();
        let n = (buf.len() - done).min(pool.len() - from);
        buf[done..done + n].copy_from_slice(&pool[from..from + n]);
        done += n;
    }
    let end = offset + buf.len() as u64;
    let mut rec = offset / RECORD * RECORD;
    while rec < end {
        let body = (total - rec).min(RECORD) - 5;
        let hdr = [0x17, 0x03, 0x03, (body >> 8) as u8, body as u8];
        for (k, b) in hdr.iter().enumerate() {
            let pos = rec + k as u64;
            if pos >= offset && pos < end {
                buf[(pos - offset) as usize] = *b;
            }
        }
        rec += RECORD;
    }
}

/// A DNS query for `name` (type A or AAAA), recursion desired.
pub fn dns_query(id: u16, name: &str, aaaa: bool, out: &mut Vec<u8>) {
    out.clear();
    out.extend_from_slice(&id.to_be_bytes());
    out.extend_from_slice(&[0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0]);
    qname(name, out);
    out.extend_from_slice(&[0, if aaaa { 28 } else { 1 }, 0, 1]);
}

fn qname(name: &str, out: &mut Vec<u8>) {
    for label in name.split('.').filter(|l| !l.is_empty()) {
        out.push(label.len().min(63) as u8);
        out.extend_from_slice(&label.as_bytes()[..label.len().min(63)]);
    }
    out.push(0);
}

/// The answer to a query built by [`dns_query`]: the question echoed and `answers` records
/// pointing at the question name (compression pointer 0xc00c).
pub fn dns_response(query: &[u8], answers: u16, rng: &mut Rng, out: &mut Vec<u8>) {
    out.clear();
    out.extend_from_slice(query);
    out[2] = 0x81;
    out[3] = 0x80;
    out[6..8].copy_from_slice(&answers.to_be_bytes());
    let aaaa = query.get(query.len() - 3) == Some(&28);
    for _ in 0..answers {
        out.extend_from_slice(&[0xc0, 0x0c, 0, if aaaa { 28 } else { 1 }, 0, 1]);
        out.extend_from_slice(&(rng.range(30, 3600) as u32).to_be_bytes());
        let n = if aaaa { 16 } else { 4 };
        out.extend_from_slice(&(n as u16).to_be_bytes());
        let at = out.len();
        out.resize(at + n, 0);
        rng.fill(&mut out[at..]);
    }
}

/// An HTTP/1.1 GET request.
pub fn http_request(host: &str, path: &str, out: &mut Vec<u8>) {
    out.clear();
    out.extend_from_slice(
        format!(
            "GET {path} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: Mozilla/5.0 (X11; Linux x86_64)\r\nAccept: */*\r\nAccept-Encoding: gzip\r\nConnection: close\r\n\r\n"
        )
        .as_bytes(),
    );
}

/// An HTTP/1.1 200 response with a `body_len`-byte text body.
pub fn http_response(body_len: usize, out: &mut Vec<u8>) {
    out.clear();
    out.extend_from_slice(
        format!(
            "HTTP/1.1 200 OK\r\nServer: nginx/1.22.1\r\nContent-Type: text/html\r\nContent-Length: {body_len}\r\nConnection: close\r\n\r\n"
        )
        .as_bytes(),
    );
    let at = out.len();
    out.resize(at + body_len, b'x');
    for (i, b) in out[at..].iter_mut().enumerate() {
        if i % 64 == 63 {
            *b = b'\n';
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_are_framed_across_segment_boundaries() {
        let pool: Vec<u8> = (0..=255u8).cycle().take(4096).collect();
        let total = record_stream_len(40_000);
        let mut whole = vec![0u8; total as usize];
        fill_records(0, total, &pool, &mut whole);
        // the same stream written in 1448-byte pieces is identical
        let mut pieces = vec![0u8; total as usize];
        for (i, c) in pieces.chunks_mut(1448).enumerate() {
            fill_records(i as u64 * 1448, total, &pool, c);
        }
        assert_eq!(whole, pieces);
        // walk the records
        let mut at = 0usize;
        while at < whole.len() {
            assert_eq!(&whole[at..at + 3], &[0x17, 3, 3]);
            at += 5 + u16::from_be_bytes([whole[at + 3], whole[at + 4]]) as usize;
        }
        assert_eq!(at, whole.len());
    }

    #[test]
    fn dns_answer_echoes_question() {
        let mut q = Vec::new();
        dns_query(0x1234, "www.example.org", false, &mut q);
        assert_eq!(q.len(), 12 + 17 + 4);
        let mut r = Vec::new();
        dns_response(&q, 2, &mut Rng::new(1), &mut r);
        assert_eq!(&r[..2], &[0x12, 0x34]);
        assert_eq!(r.len(), q.len() + 2 * 16);
    }
}
