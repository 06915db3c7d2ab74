//! HR change hooks (BambooHR, Workday): which employees to re-read from the HR system.

use std::collections::BTreeSet;

use serde::Deserialize;

use super::HookError;

/// Receives the employees an HR hook says changed. The hook only names them: the operator
/// reads their records from the HR system itself, so a forged or replayed list can cost a
/// refresh and never changes what anyone is granted.
pub trait HrChangeSink: Send + Sync {
    /// `source` is `bamboohr` or `workday`; `employee_ids` are that system's employee IDs.
    fn employees_changed(&self, source: &'static str, employee_ids: BTreeSet<String>);
}

/// Our Workday hook's body (Workday has no standard signed outbound webhook, so an
/// integration — a Workday Studio or EIB step, or a relay — sends this).
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct WorkdayNotification {
    worker_ids: Vec<String>,
}

/// `{"workerIds": ["21001", …]}`: the IDs, trimmed; empty ones are an error.
pub(super) fn parse_workday(body: &[u8]) -> Result<BTreeSet<String>, HookError> {
    let notification: WorkdayNotification = serde_json::from_slice(body).map_err(|error| {
        HookError::Malformed(format!("expected {{\"workerIds\": [\"…\"]}}: {error}"))
    })?;
    notification
        .worker_ids
        .into_iter()
        .enumerate()
        .map(|(index, id)| {
            let id = id.trim();
            if id.is_empty() {
                Err(HookError::Malformed(format!("workerIds[{index}] is empty")))
            } else {
                Ok(id.to_owned())
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn worker_ids_are_read_trimmed_and_deduplicated() {
        let ids = parse_workday(br#"{"workerIds":[" 21001","21002","21001"],"sentBy":"studio"}"#)
            .expect("valid");
        assert_eq!(ids.into_iter().collect::<Vec<_>>(), ["21001", "21002"]);
        assert_eq!(
            parse_workday(br#"{"workerIds":[]}"#).expect("valid").len(),
            0
        );
    }

    #[test]
    fn malformed_bodies_say_what_is_wrong() {
        for (body, problem) in [
            (&b"{"[..], "EOF"),
            (br#"{"workers":["1"]}"#, "missing field `workerIds`"),
            (br#"{"workerIds":[1]}"#, "invalid type: integer"),
            (br#"{"workerIds":"1"}"#, "invalid type: string"),
            (br#"{"workerIds":["1"," "]}"#, "workerIds[1] is empty"),
        ] {
            let error = parse_workday(body).expect_err("malformed");
            assert!(matches!(error, HookError::Malformed(_)));
            assert!(error.to_string().contains(problem), "{error}");
        }
    }
}
