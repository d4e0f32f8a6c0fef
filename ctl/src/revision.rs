//! New revisions: every configuration the CLI writes gets a revision no
//! earlier one had, so that the filter's revision gauge (a fingerprint of
//! it) names one configuration and the CLI can tell when Envoy runs it.

use std::io::Read;
use std::time::{SystemTime, UNIX_EPOCH};

use parallel_run_core::counters::revision_fingerprint;

/// `2026-12-01T21:30:05Z` for `seconds` since the Unix epoch (UTC).
pub fn rfc3339(seconds: u64) -> String {
    let seconds = i64::try_from(seconds).unwrap_or(i64::MAX);
    let (days, rest) = (seconds.div_euclid(86_400), seconds.rem_euclid(86_400));
    let (year, month, day) = civil_from_days(days);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rest / 3600,
        rest % 3600 / 60,
        rest % 60
    )
}

/// Days since 1970-01-01 to (year, month, day): Howard Hinnant's
/// `civil_from_days`, exact over the whole proleptic Gregorian range
/// (before 1970 too). The audit log's times and the evidence view's.
pub(crate) fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

pub fn now_seconds() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_secs())
}

/// Six hex digits from the system's random source (or, failing that, the
/// clock and the process id).
fn random_suffix() -> String {
    let mut bytes = [0u8; 3];
    let random = std::fs::File::open("/dev/urandom").and_then(|mut f| f.read_exact(&mut bytes));
    if random.is_err() {
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |elapsed| elapsed.subsec_nanos());
        let mixed = nanos ^ std::process::id().rotate_left(16);
        bytes = [(mixed >> 16) as u8, (mixed >> 8) as u8, mixed as u8];
    }
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A revision whose fingerprint none of `taken` has: the UTC time and a
/// random suffix, e.g. `2026-12-01T21:30:05Z.4f2a9c`.
pub fn new_revision(taken: &[&str]) -> String {
    let fingerprints: Vec<u64> = taken.iter().map(|r| revision_fingerprint(r)).collect();
    let time = rfc3339(now_seconds());
    let mut candidate = format!("{time}.{}", random_suffix());
    // A collision of 52-bit fingerprints is astronomically rare; a few
    // tries settle it, and the counter makes the last one distinct.
    for attempt in 0..8u32 {
        if !fingerprints.contains(&revision_fingerprint(&candidate)) {
            break;
        }
        candidate = format!("{time}.{}{attempt}", random_suffix());
    }
    candidate
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_print_as_rfc3339_utc() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(rfc3339(1_796_160_180), "2026-12-01T21:23:00Z");
        assert_eq!(rfc3339(4_102_444_799), "2099-12-31T23:59:59Z");
    }

    #[test]
    fn new_revisions_are_distinct_from_the_taken_ones() {
        let a = new_revision(&[]);
        let b = new_revision(&[&a]);
        assert_ne!(a, b);
        assert_ne!(revision_fingerprint(&a), revision_fingerprint(&b));
        assert_eq!(a.len(), "2026-12-01T21:30:05Z.4f2a9c".len(), "{a}");
    }
}
