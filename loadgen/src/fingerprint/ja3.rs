//! JA3 and JA3S: decimal field lists joined by `-` and `,`, GREASE removed, then MD5.

use crate::tls::fields::{is_grease, ClientHelloFields, ServerHelloFields};
use md5::{Digest, Md5};
use std::fmt::Write;

fn join<T: std::fmt::Display>(items: impl Iterator<Item = T>) -> String {
    let mut s = String::new();
    for (i, v) in items.enumerate() {
        if i > 0 {
            s.push('-');
        }
        let _ = write!(s, "{v}");
    }
    s
}

/// The JA3 string: `version,ciphers,extensions,groups,point_formats` (GREASE removed).
pub fn ja3(ch: &ClientHelloFields) -> String {
    let ng = |v: &&u16| !is_grease(**v);
    format!(
        "{},{},{},{},{}",
        ch.legacy_version,
        join(ch.ciphers.iter().filter(ng)),
        join(ch.extensions.iter().filter(ng)),
        join(ch.groups.iter().filter(ng)),
        join(ch.point_formats.iter()),
    )
}

/// The JA3S string: `version,cipher,extensions`.
pub fn ja3s(sh: &ServerHelloFields) -> String {
    format!(
        "{},{},{}",
        sh.legacy_version,
        sh.cipher,
        join(sh.extensions.iter())
    )
}

/// Lower-case hex MD5 of `s` (the JA3/JA3S hash).
pub fn md5_hex(s: &str) -> String {
    let d = Md5::digest(s.as_bytes());
    let mut out = String::with_capacity(32);
    for b in d {
        let _ = write!(out, "{b:02x}");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn md5_of_corpus_ja3() {
        // pub_nginx_many_clients.pcap, client port 42294 (Go crypto/tls): string and hash from expected.jsonl.
        let s = "771,49195-49199-49196-49200-52393-52392-49161-49171-49162-49172-156-157-47-53-49170-10-4865-4866-4867,0-5-10-11-13-65281-16-18-43-51,29-23-24-25,0";
        assert_eq!(md5_hex(s), "3fed133de60c35724739b913924b6c24");
    }

    #[test]
    fn grease_removed_and_empty_point_formats_kept_as_empty_field() {
        let ch = ClientHelloFields {
            legacy_version: 0x0303,
            ciphers: vec![0x0a0a, 4865],
            extensions: vec![0x1a1a, 0, 16, 0x2a2a],
            groups: vec![0x3a3a, 29],
            point_formats: vec![],
            sig_algs: vec![],
            versions: vec![],
            sni: None,
            alpn: vec![],
        };
        assert_eq!(ja3(&ch), "771,4865,0-16,29,");
    }
}
