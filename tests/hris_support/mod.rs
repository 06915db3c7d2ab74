//! Helpers shared by the `hris_*` test binaries.

use std::collections::BTreeMap;

use opal_operator::hris::{Employee, HrSnapshot, HttpConfig};
use opal_operator::http::RetryConfig;

/// Short timeouts and near-instant backoff, so retry tests stay quick; `attempts` per call.
pub fn fast_http(attempts: u32) -> HttpConfig {
    HttpConfig {
        request_timeout_ms: 10_000,
        connect_timeout_ms: 2_000,
        max_body_bytes: 64 * 1024 * 1024,
        retry: RetryConfig {
            max_attempts: attempts,
            initial_backoff_ms: 1,
            max_backoff_ms: 5,
            max_total_delay_ms: 20_000,
        },
    }
}

/// Asserts the snapshot holds exactly `expected` (any order), naming the first difference.
pub fn assert_same_people(snapshot: &HrSnapshot, expected: &[Employee]) {
    let expected: BTreeMap<&str, &Employee> = expected.iter().map(|e| (e.id.as_str(), e)).collect();
    let actual: BTreeMap<&str, &Employee> = snapshot
        .employees
        .iter()
        .map(|e| (e.id.as_str(), e))
        .collect();
    let missing: Vec<_> = expected
        .keys()
        .filter(|id| !actual.contains_key(*id))
        .collect();
    let extra: Vec<_> = actual
        .keys()
        .filter(|id| !expected.contains_key(*id))
        .collect();
    assert!(missing.is_empty(), "missing from snapshot: {missing:?}");
    assert!(extra.is_empty(), "unexpected in snapshot: {extra:?}");
    for (id, want) in &expected {
        assert_eq!(actual[id], *want, "employee {id} differs");
    }
}
