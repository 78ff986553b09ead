//! `GET /flows`, `GET /flows/{id}`, `GET /fingerprints/top`: reads of the flow store. Store
//! calls block (RocksDB), so they run on actix-web's blocking pool, never on the HTTP
//! workers.

use actix_web::{web, HttpResponse};
use flowmesh_core::storage::{parse_cidr, FlowFilter, FlowId, TopField};
use flowmesh_schemas::{FlowRecord, Timestamp, Transport};
use serde::{Deserialize, Serialize};
use std::net::IpAddr;

use super::error::ApiError;
use super::AppState;

/// Records per page when `limit` is not given.
const DEFAULT_LIMIT: usize = 100;
/// Entries of a top list when `limit` is not given.
const DEFAULT_TOP: usize = 10;
/// Largest top list.
const MAX_TOP: usize = 1000;
/// The window of a top list when `since` is not given.
const DEFAULT_TOP_WINDOW_NS: i64 = 24 * 3600 * 1_000_000_000;

/// A stored flow: the `replay` record plus its id.
#[derive(Debug, Serialize)]
pub struct StoredFlow<'a> {
    /// The flow's id (`GET /flows/{id}`).
    pub flow_id: String,
    /// The record, same fields as `replay` output.
    #[serde(flatten)]
    pub record: &'a FlowRecord,
}

/// Query parameters of `GET /flows`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FlowsParams {
    from: Option<String>,
    to: Option<String>,
    ip: Option<String>,
    cidr: Option<String>,
    port: Option<String>,
    transport: Option<String>,
    sni: Option<String>,
    ja3: Option<String>,
    ja4: Option<String>,
    community_id: Option<String>,
    limit: Option<String>,
    cursor: Option<String>,
}

/// Query parameters of `GET /fingerprints/top`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TopParams {
    field: Option<String>,
    since: Option<String>,
    until: Option<String>,
    limit: Option<String>,
}

/// Parses a time: RFC 3339 UTC (`2024-05-01T12:00:00Z`, fraction allowed) or Unix seconds
/// (`1714564800`, fraction allowed).
pub fn parse_time(s: &str) -> Option<Timestamp> {
    if let Some(t) = Timestamp::parse_rfc3339(s) {
        return Some(t);
    }
    let (secs, frac) = s.split_once('.').unwrap_or((s, ""));
    if secs.is_empty()
        || !secs.bytes().all(|b| b.is_ascii_digit())
        || !frac.bytes().all(|b| b.is_ascii_digit())
        || frac.len() > 9
    {
        return None;
    }
    let secs: i64 = secs.parse().ok()?;
    let nanos: u32 = format!("{frac:0<9}").parse().ok()?;
    Some(Timestamp::from_parts(secs, nanos))
}

fn time_param(name: &str, v: &Option<String>) -> Result<Option<Timestamp>, ApiError> {
    v.as_deref()
        .map(|s| {
            parse_time(s).ok_or_else(|| {
                ApiError::bad_parameter(
                    name,
                    format!(
                        "{s:?} is not a time; use RFC 3339 (2024-05-01T12:00:00Z) or Unix seconds"
                    ),
                )
            })
        })
        .transpose()
}

fn number<T: std::str::FromStr>(
    name: &str,
    v: &Option<String>,
    what: &str,
) -> Result<Option<T>, ApiError> {
    v.as_deref()
        .map(|s| {
            s.parse()
                .map_err(|_| ApiError::bad_parameter(name, format!("{s:?} is not {what}")))
        })
        .transpose()
}

fn text(name: &str, v: &Option<String>) -> Result<Option<String>, ApiError> {
    match v.as_deref() {
        Some("") => Err(ApiError::bad_parameter(name, "must not be empty")),
        other => Ok(other.map(str::to_string)),
    }
}

impl FlowsParams {
    /// The filter, limit and cursor the parameters ask for.
    pub fn parse(&self, max_page: usize) -> Result<(FlowFilter, usize, Option<FlowId>), ApiError> {
        let ip: Option<IpAddr> = number("ip", &self.ip, "an IPv4 or IPv6 address")?;
        let cidr = self
            .cidr
            .as_deref()
            .map(|s| parse_cidr(s).map_err(|e| ApiError::bad_parameter("cidr", e)))
            .transpose()?;
        let transport: Option<Transport> = number(
            "transport",
            &self.transport,
            "a transport (tcp, udp, icmp, icmpv6 or ip-N)",
        )?;
        let ja3 = text("ja3", &self.ja3)?;
        if let Some(j) = &ja3 {
            if j.len() != 32 || !j.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Err(ApiError::bad_parameter(
                    "ja3",
                    format!("{j:?} is not a JA3 hash (32 hex digits)"),
                ));
            }
        }
        let filter = FlowFilter {
            from: time_param("from", &self.from)?,
            to: time_param("to", &self.to)?,
            ip,
            cidr,
            port: number("port", &self.port, "a port (0-65535)")?,
            transport,
            sni: text("sni", &self.sni)?,
            ja3,
            ja4: text("ja4", &self.ja4)?,
            community_id: text("community_id", &self.community_id)?,
        };
        if let (Some(from), Some(to)) = (filter.from, filter.to) {
            if to <= from {
                return Err(ApiError::bad_parameter("to", "must be after `from`"));
            }
        }
        let limit = number::<usize>("limit", &self.limit, "a positive integer")?
            .unwrap_or(DEFAULT_LIMIT.min(max_page));
        if limit == 0 || limit > max_page {
            return Err(ApiError::bad_parameter(
                "limit",
                format!("must be between 1 and {max_page}"),
            ));
        }
        let cursor = self
            .cursor
            .as_deref()
            .map(|c| {
                c.parse::<FlowId>().map_err(|e| {
                    ApiError::bad_parameter(
                        "cursor",
                        format!("{e}; pass `next_cursor` from the previous page unchanged"),
                    )
                })
            })
            .transpose()?;
        Ok((filter, limit, cursor))
    }
}

/// `GET /api/v1/flows`.
pub async fn list(
    state: web::Data<AppState>,
    params: web::Query<FlowsParams>,
) -> Result<HttpResponse, ApiError> {
    let max_page = state.api().max_page;
    let (filter, limit, cursor) = params.parse(max_page)?;
    let store = state.store.clone();
    let page = web::block(move || store.query(&filter, cursor, limit))
        .await
        .map_err(ApiError::internal)?
        .map_err(ApiError::internal)?;
    #[derive(Serialize)]
    struct Body<'a> {
        flows: Vec<StoredFlow<'a>>,
        next_cursor: Option<String>,
    }
    Ok(HttpResponse::Ok().json(Body {
        flows: page
            .flows
            .iter()
            .map(|(id, record)| StoredFlow {
                flow_id: id.to_string(),
                record,
            })
            .collect(),
        next_cursor: page.next_cursor.map(|c| c.to_string()),
    }))
}

/// `GET /api/v1/flows/{id}`.
pub async fn get(
    state: web::Data<AppState>,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id: FlowId = id.parse().map_err(|e| {
        ApiError::bad_parameter("id", format!("{e}; flow ids are the `flow_id` of /flows"))
    })?;
    let store = state.store.clone();
    let record = web::block(move || store.get(id))
        .await
        .map_err(ApiError::internal)?
        .map_err(ApiError::internal)?
        .ok_or_else(|| {
            ApiError::not_found(format!(
                "no flow {id} (expired by retention, or never stored)"
            ))
        })?;
    Ok(HttpResponse::Ok().json(StoredFlow {
        flow_id: id.to_string(),
        record: &record,
    }))
}

/// `GET /api/v1/fingerprints/top`.
pub async fn top(
    state: web::Data<AppState>,
    params: web::Query<TopParams>,
) -> Result<HttpResponse, ApiError> {
    let field: TopField = params
        .field
        .as_deref()
        .ok_or_else(|| {
            ApiError::bad_parameter("field", "is required (ja3, ja3s, ja4, ja4s or sni)")
        })?
        .parse()
        .map_err(|e| ApiError::bad_parameter("field", e))?;
    let until = time_param("until", &params.until)?;
    let since = match time_param("since", &params.since)? {
        Some(t) => t,
        None => until
            .unwrap_or_else(Timestamp::now)
            .add_nanos(-DEFAULT_TOP_WINDOW_NS),
    };
    let limit =
        number::<usize>("limit", &params.limit, "a positive integer")?.unwrap_or(DEFAULT_TOP);
    if limit == 0 || limit > MAX_TOP {
        return Err(ApiError::bad_parameter(
            "limit",
            format!("must be between 1 and {MAX_TOP}"),
        ));
    }
    let store = state.store.clone();
    let top = web::block(move || store.top(field, since, until, limit))
        .await
        .map_err(ApiError::internal)?
        .map_err(ApiError::internal)?;
    #[derive(Serialize)]
    struct Entry {
        value: String,
        count: u64,
    }
    #[derive(Serialize)]
    struct Body {
        field: &'static str,
        since: Timestamp,
        until: Option<Timestamp>,
        top: Vec<Entry>,
    }
    Ok(HttpResponse::Ok().json(Body {
        field: field.as_str(),
        since,
        until,
        top: top
            .into_iter()
            .map(|(value, count)| Entry { value, count })
            .collect(),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_parse_as_rfc3339_or_unix_seconds() {
        let t = parse_time("2024-05-01T12:00:00Z").expect("rfc3339");
        assert_eq!(parse_time("1714564800"), Some(t));
        assert_eq!(
            parse_time("1714564800.25"),
            Some(Timestamp::from_parts(1_714_564_800, 250_000_000))
        );
        for bad in ["", "yesterday", "-5", "1.2.3", "1.0000000001", "12a"] {
            assert_eq!(parse_time(bad), None, "{bad:?}");
        }
    }

    fn params(pairs: &[(&str, &str)]) -> Result<FlowsParams, String> {
        let q = pairs
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("&");
        web::Query::<FlowsParams>::from_query(&q)
            .map(web::Query::into_inner)
            .map_err(|e| e.to_string())
    }

    fn error(pairs: &[(&str, &str)]) -> String {
        let p = params(pairs).expect("known parameters");
        p.parse(1000).expect_err("invalid").message
    }

    #[test]
    fn bad_parameters_say_which_and_why() {
        assert!(error(&[("ip", "10.0.0")]).contains("`ip`"));
        assert!(error(&[("cidr", "10.0.0.0/33")]).contains("`cidr`"));
        assert!(error(&[("port", "70000")]).contains("`port`"));
        assert!(error(&[("transport", "sctp-ish")]).contains("`transport`"));
        assert!(error(&[("ja3", "abc")]).contains("32 hex"));
        assert!(error(&[("limit", "0")]).contains("between 1 and 1000"));
        assert!(error(&[("limit", "1001")]).contains("between 1 and 1000"));
        assert!(error(&[("cursor", "zz")]).contains("`cursor`"));
        assert!(error(&[
            ("from", "2024-05-02T00:00:00Z"),
            ("to", "2024-05-01T00:00:00Z")
        ])
        .contains("after `from`"));
        assert!(error(&[("sni", "")]).contains("empty"));
        let unknown = params(&[("jа4", "x")]).expect_err("unknown parameter");
        assert!(unknown.contains("unknown field"), "{unknown}");
    }

    #[test]
    fn good_parameters_make_the_filter() {
        let p = params(&[
            ("ip", "192.0.2.1"),
            ("port", "443"),
            ("transport", "tcp"),
            ("ja4", "t13d1516h2_8daaf6152771_e5627efa2ab1"),
            ("limit", "5"),
        ])
        .expect("known");
        let (f, limit, cursor) = p.parse(1000).expect("valid");
        assert_eq!(limit, 5);
        assert_eq!(cursor, None);
        assert_eq!(f.port, Some(443));
        assert_eq!(f.transport, Some(Transport::Tcp));
        assert_eq!(f.ip, "192.0.2.1".parse().ok());
    }
}
