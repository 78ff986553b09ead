//! Reading Prometheus text exposition (what a daemon's `/metrics` answers): counter sums
//! and histogram buckets, and percentiles from the buckets' difference between two
//! scrapes, interpolated inside a bucket as Prometheus' `histogram_quantile` does.

/// The value of one sample line `name{labels} value` or `name value`, if its metric name
/// is `name`.
fn sample<'a>(line: &'a str, name: &str) -> Option<(&'a str, f64)> {
    let rest = line.strip_prefix(name)?;
    let (labels, value) = match rest.strip_prefix('{') {
        Some(r) => {
            let end = r.find('}')?;
            (&r[..end], &r[end + 1..])
        }
        None if rest.starts_with(' ') => ("", rest),
        None => return None,
    };
    Some((labels, value.split_whitespace().next()?.parse().ok()?))
}

/// The sum of every series of `name` (all label sets); 0 when there is none.
pub fn sum(text: &str, name: &str) -> f64 {
    text.lines()
        .filter_map(|l| sample(l, name))
        .map(|(_, v)| v)
        .sum()
}

/// Cumulative bucket counts of histogram `name`, summed over label sets, by upper bound
/// (`+Inf` last), in increasing order.
pub fn buckets(text: &str, name: &str) -> Vec<(f64, f64)> {
    let bucket = format!("{name}_bucket");
    let mut out: Vec<(f64, f64)> = Vec::new();
    for (labels, v) in text.lines().filter_map(|l| sample(l, &bucket)) {
        let Some(le) = labels
            .split(',')
            .find_map(|kv| kv.trim().strip_prefix("le=\""))
            .and_then(|s| s.strip_suffix('"'))
            .and_then(|s| s.parse::<f64>().ok())
        else {
            continue;
        };
        match out.iter_mut().find(|(b, _)| *b == le) {
            Some((_, c)) => *c += v,
            None => out.push((le, v)),
        }
    }
    out.sort_by(|a, b| a.0.total_cmp(&b.0));
    out
}

/// `after - before`, bucket by bucket (buckets missing before count 0).
pub fn delta(before: &[(f64, f64)], after: &[(f64, f64)]) -> Vec<(f64, f64)> {
    after
        .iter()
        .map(|&(le, c)| {
            let was = before.iter().find(|(b, _)| *b == le).map_or(0.0, |x| x.1);
            (le, (c - was).max(0.0))
        })
        .collect()
}

/// The `q` quantile (0..=1) of cumulative `buckets`: linear inside the bucket it falls in,
/// from the previous bound (0 for the first). `None` without observations; the highest
/// finite bound when it falls in the `+Inf` bucket (the true value is above it).
pub fn quantile(buckets: &[(f64, f64)], q: f64) -> Option<f64> {
    let total = buckets.last()?.1;
    if total <= 0.0 {
        return None;
    }
    let rank = q.clamp(0.0, 1.0) * total;
    let (mut lower, mut below) = (0.0, 0.0);
    for &(le, count) in buckets {
        if count >= rank && count > below {
            if le.is_infinite() {
                return Some(lower);
            }
            return Some(lower + (le - lower) * (rank - below) / (count - below));
        }
        if le.is_finite() {
            lower = le;
        }
        below = count;
    }
    Some(lower)
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = "\
# TYPE flowmesh_capture_bytes_total counter
flowmesh_capture_bytes_total 1500
flowmesh_capture_bytes_total_extra 7
# TYPE lat histogram
lat_bucket{le=\"0.01\"} 2
lat_bucket{le=\"0.1\"} 6
lat_bucket{le=\"1\"} 10
lat_bucket{le=\"+Inf\"} 10
lat_sum 3.2
lat_count 10
drops{reason=\"a\"} 3
drops{reason=\"b\"} 4
";

    #[test]
    fn sums_add_label_sets_and_ignore_longer_names() {
        assert_eq!(sum(TEXT, "flowmesh_capture_bytes_total"), 1500.0);
        assert_eq!(sum(TEXT, "drops"), 7.0);
        assert_eq!(sum(TEXT, "absent"), 0.0);
    }

    #[test]
    fn buckets_come_sorted_with_inf_last() {
        let b = buckets(TEXT, "lat");
        assert_eq!(
            b,
            vec![(0.01, 2.0), (0.1, 6.0), (1.0, 10.0), (f64::INFINITY, 10.0)]
        );
    }

    #[test]
    fn quantiles_interpolate_inside_their_bucket() {
        let b = buckets(TEXT, "lat");
        // rank 5 of 10: 3 of the 4 observations between 0.01 and 0.1.
        let p50 = quantile(&b, 0.5).expect("observations");
        assert!((p50 - (0.01 + 0.09 * 0.75)).abs() < 1e-12, "{p50}");
        assert!((quantile(&b, 0.1).expect("obs") - 0.005).abs() < 1e-12);
        assert_eq!(quantile(&b, 1.0), Some(1.0));
        assert_eq!(quantile(&[(1.0, 0.0), (f64::INFINITY, 0.0)], 0.5), None);
    }

    #[test]
    fn a_quantile_past_the_last_bound_reports_that_bound() {
        let b = [(0.5, 1.0), (1.0, 1.0), (f64::INFINITY, 4.0)];
        assert_eq!(quantile(&b, 0.9), Some(1.0));
    }

    #[test]
    fn deltas_subtract_the_earlier_scrape() {
        let before = [(0.1, 1.0), (f64::INFINITY, 2.0)];
        let after = [(0.01, 1.0), (0.1, 4.0), (f64::INFINITY, 5.0)];
        assert_eq!(
            delta(&before, &after),
            vec![(0.01, 1.0), (0.1, 3.0), (f64::INFINITY, 3.0)]
        );
    }
}
