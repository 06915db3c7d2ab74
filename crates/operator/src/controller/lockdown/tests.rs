//! The release and record paths against a scripted API: every request they make, in order, with
//! what they send, and that they send nothing else.

use std::collections::BTreeSet;

use base64::Engine;
use serde_json::{Value, json};

use super::*;
use crate::controller::mock_api::{self, OPERATOR_NAMESPACE, status_answer};
use crate::engine::{HrState, OpalState};

const UID: &str = "5f1c0a2e-uid-1";
const LOCKDOWN_PATH: &str = "/apis/opal-operator.io/v1alpha1/namespaces/team-a/lockdowns/ld";

fn record_path() -> String {
    format!(
        "/api/v1/namespaces/{OPERATOR_NAMESPACE}/secrets/{}",
        record_secret_name(UID)
    )
}

fn lockdown_json(restore: bool, revoked_count: i32) -> Value {
    json!({
        "apiVersion": "opal-operator.io/v1alpha1",
        "kind": "Lockdown",
        "metadata": {
            "name": "ld", "namespace": "team-a", "uid": UID,
            "deletionTimestamp": "2026-06-15T12:00:00Z",
            "finalizers": [FINALIZER],
        },
        "spec": {
            "subjects": [{"email": "ada@example.com"}],
            "reason": "incident", "duration": "4h", "restoreOnRelease": restore,
        },
        "status": {"phase": "Active", "revokedCount": revoked_count},
    })
}

fn lockdown(restore: bool, revoked_count: i32) -> Lockdown {
    serde_json::from_value(lockdown_json(restore, revoked_count)).expect("lockdown")
}

fn grant(user: &str) -> RevokedGrant {
    RevokedGrant {
        user_id: user.to_owned(),
        email: format!("{user}@example.com"),
        kind: TargetKind::Group,
        target_id: "g-eng".to_owned(),
        target_name: "eng".to_owned(),
        access_level_remote_id: String::new(),
        expiration_date: None,
    }
}

fn record_secret(owner: &str, uid: &str, grants: &[RevokedGrant]) -> Value {
    let data = base64::engine::general_purpose::STANDARD
        .encode(serde_json::to_vec(grants).expect("record"));
    json!({
        "apiVersion": "v1", "kind": "Secret",
        "metadata": {
            "name": record_secret_name(UID), "namespace": OPERATOR_NAMESPACE,
            "annotations": {RECORD_UID_ANNOTATION: uid, RECORD_OWNER_ANNOTATION: owner},
        },
        "data": {RECORD_KEY: data},
    })
}

fn world() -> World {
    World {
        hr: HrState::Snapshot(Vec::new()),
        last_good_employee_count: None,
        opal: OpalState::default(),
        mappings: Vec::new(),
        policies: Vec::new(),
        lockdowns: Vec::new(),
        operator_namespace: OPERATOR_NAMESPACE.to_owned(),
    }
}

fn now() -> DateTime<Utc> {
    "2026-06-15T12:05:00Z".parse().expect("time")
}

fn is_lifecycle_apply(seen: &mock_api::Seen) -> bool {
    seen.method == "PATCH"
        && seen.path == format!("{LOCKDOWN_PATH}/status")
        && seen
            .query
            .contains("fieldManager=opal-operator%2Flockdown-lifecycle")
        && seen.query.contains("force=true")
}

#[tokio::test]
async fn a_release_without_restore_marks_released_then_removes_the_record() {
    let (kube, mut api) = mock_api::client();
    let context = mock_api::sync_context(kube);
    let object = lockdown(false, 2);
    let (world, granted) = (world(), BTreeSet::new());
    let release = release(&context, &object, &world, &granted, now());
    let script = async {
        let read = api.answer(200, lockdown_json(false, 2)).await;
        assert_eq!(
            (read.method.as_str(), read.path.as_str()),
            ("GET", LOCKDOWN_PATH)
        );
        let mark = api.answer(200, lockdown_json(false, 2)).await;
        assert!(is_lifecycle_apply(&mark), "{mark:?}");
        assert_eq!(mark.body["status"]["phase"], "Released");
        assert_eq!(mark.body["status"]["releasedAt"], "2026-06-15T12:05:00Z");
        assert_eq!(mark.body["status"]["releaseFailures"], json!([]));
        let delete = api.answer(404, status_answer(404, "NotFound")).await;
        assert_eq!(delete.method, "DELETE");
        assert_eq!(delete.path, record_path());
        api
    };
    let (report, api) = tokio::join!(release, script);
    assert!(report.failures.is_empty(), "{:?}", report.failures);
    assert!(!report.restore_requested);
    drop(context);
    assert!(api.no_more_requests().await, "nothing else is sent");
}

#[tokio::test]
async fn a_forged_record_is_refused_and_the_lockdown_keeps_its_finalizer() {
    let (kube, mut api) = mock_api::client();
    let context = mock_api::sync_context(kube);
    let object = lockdown(true, 1);
    let (world, granted) = (world(), BTreeSet::new());
    let release = release(&context, &object, &world, &granted, now());
    let script = async {
        // A tenant's Secret under the record's name, bound to another lockdown.
        let read = api
            .answer(
                200,
                record_secret("team-a/other", "another-uid", &[grant("u1")]),
            )
            .await;
        assert_eq!(
            (read.method.as_str(), read.path.clone()),
            ("GET", record_path())
        );
        api.answer(200, lockdown_json(true, 1)).await;
        let mark = api.answer(200, lockdown_json(true, 1)).await;
        assert!(is_lifecycle_apply(&mark), "{mark:?}");
        assert_eq!(mark.body["status"]["phase"], "Failed");
        let failures = mark.body["status"]["releaseFailures"].to_string();
        assert!(
            failures.contains("not bound to Lockdown team-a/ld"),
            "{failures}"
        );
        api
    };
    let (report, api) = tokio::join!(release, script);
    assert!(report.record_rejected);
    assert_eq!(report.restored, 0);
    drop(context);
    // No DELETE of the record, no removal of the finalizer, and no Opal call (the client points
    // at a closed port, so a restore attempt would have failed the release differently).
    assert!(api.no_more_requests().await);
}

#[tokio::test]
async fn a_missing_record_with_revocations_recorded_fails_the_release() {
    let (kube, mut api) = mock_api::client();
    let context = mock_api::sync_context(kube);
    let object = lockdown(true, 3);
    let (world, granted) = (world(), BTreeSet::new());
    let release = release(&context, &object, &world, &granted, now());
    let script = async {
        api.answer(404, status_answer(404, "NotFound")).await;
        api.answer(200, lockdown_json(true, 3)).await;
        let mark = api.answer(200, lockdown_json(true, 3)).await;
        assert_eq!(mark.body["status"]["phase"], "Failed");
        assert!(
            mark.body["status"]["releaseFailures"]
                .to_string()
                .contains("3"),
            "{mark:?}"
        );
        api
    };
    let (report, api) = tokio::join!(release, script);
    assert!(!report.failures.is_empty());
    drop(context);
    assert!(api.no_more_requests().await);
}

#[tokio::test]
async fn appending_to_a_record_keeps_it_bound_and_free_of_duplicates() {
    let (kube, mut api) = mock_api::client();
    let records = Records::new(&kube, OPERATOR_NAMESPACE);
    let object = lockdown(true, 1);
    let append = records.append(&object, vec![grant("u1"), grant("u2"), grant("u2")]);
    let script = async {
        api.answer(200, record_secret("team-a/ld", UID, &[grant("u1")]))
            .await;
        let write = api
            .answer(200, json!({"apiVersion": "v1", "kind": "Secret"}))
            .await;
        assert_eq!(write.method, "PATCH");
        assert_eq!(write.path, record_path());
        assert!(
            write.query.contains("fieldManager=opal-operator"),
            "{}",
            write.query
        );
        let annotations = &write.body["metadata"]["annotations"];
        assert_eq!(annotations[RECORD_UID_ANNOTATION], UID);
        assert_eq!(annotations[RECORD_OWNER_ANNOTATION], "team-a/ld");
        let stored = base64::engine::general_purpose::STANDARD
            .decode(write.body["data"][RECORD_KEY].as_str().expect("data"))
            .expect("base64");
        let stored: Vec<RevokedGrant> = serde_json::from_slice(&stored).expect("record");
        assert_eq!(stored, [grant("u1"), grant("u2")]);
        api
    };
    let (record, api) = tokio::join!(append, script);
    assert_eq!(record.expect("appended").len(), 2);
    drop(records);
    drop(kube);
    assert!(api.no_more_requests().await);
}
