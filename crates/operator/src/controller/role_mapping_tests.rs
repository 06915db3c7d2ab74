//! The RoleMapping controller's finalizer handling against a scripted API: the finalizer is
//! added for `revokeOnDelete`, a deletion is held while the plan still has revocations for the
//! mapping, and released once it has none.

use std::collections::BTreeMap;

use serde_json::{Value, json};
use tokio::sync::{mpsc, watch};

use super::*;
use crate::controller::events::EventSink;
use crate::controller::leader::Leadership;
use crate::controller::mock_api::{self, MockApi};
use crate::controller::objects::fingerprint;
use crate::controller::sync::{SyncRequest, SyncTrigger, SyncView};
use crate::engine::{MappingFindings, ObjectKey, Plan};
use crate::metrics::Metrics;

const PATH: &str = "/apis/opal-operator.io/v1alpha1/namespaces/team-a/rolemappings/eng";

fn mapping_json(deleting: bool, finalizers: &[&str]) -> Value {
    let mut metadata = json!({
        "name": "eng", "namespace": "team-a", "uid": "rm-1",
        "resourceVersion": "41", "generation": 3, "finalizers": finalizers,
    });
    if deleting {
        metadata["deletionTimestamp"] = json!("2026-06-15T12:00:00Z");
    }
    json!({
        "apiVersion": "opal-operator.io/v1alpha1", "kind": "RoleMapping",
        "metadata": metadata,
        "spec": {
            "selector": {"matchLabels": {"department": "Engineering"}},
            "grants": [{"group": {"name": "eng"}}],
            "revokeOnDelete": true,
        },
    })
}

fn mapping(deleting: bool, finalizers: &[&str]) -> Arc<RoleMapping> {
    Arc::new(serde_json::from_value(mapping_json(deleting, finalizers)).expect("mapping"))
}

/// A view planned from `object` in which it still has `to_revoke` revocations.
fn view_of(object: &RoleMapping, to_revoke: usize) -> SyncView {
    let key = ObjectKey::new("team-a", "eng");
    let mut plan = Plan::default();
    plan.mappings.insert(
        key.clone(),
        MappingFindings {
            to_revoke,
            enforced: true,
            ..MappingFindings::default()
        },
    );
    SyncView::of_plan(
        plan,
        BTreeMap::from([((Kind::RoleMapping, key), fingerprint(object))]),
    )
}

struct Harness {
    context: Arc<ReportContext>,
    api: MockApi,
    requests: mpsc::UnboundedReceiver<SyncRequest>,
}

fn harness(view: Option<SyncView>) -> Harness {
    let (kube, api) = mock_api::client();
    let (trigger, requests) = SyncTrigger::channel();
    let (_, views) = watch::channel(view.map(Arc::new));
    let context = Arc::new(ReportContext {
        kube: kube.clone(),
        events: EventSink::new(kube, "test"),
        views,
        trigger,
        leadership: Leadership::sole(),
        operator_namespace: mock_api::OPERATOR_NAMESPACE.to_owned(),
        metrics: Arc::new(Metrics::new()),
        opal: mock_api::unreachable_opal(),
    });
    Harness {
        context,
        api,
        requests,
    }
}

#[tokio::test]
async fn revoke_on_delete_adds_the_finalizer_guarded_by_the_resource_version() {
    let Harness {
        context,
        mut api,
        mut requests,
    } = harness(None);
    let reconcile = reconcile_role_mapping(mapping(false, &[]), context.clone());
    let script = async {
        let patch = api.answer(200, mapping_json(false, &[REVOKE])).await;
        assert_eq!(
            (patch.method.as_str(), patch.path.as_str()),
            ("PATCH", PATH)
        );
        assert_eq!(patch.body["metadata"]["finalizers"], json!([REVOKE]));
        assert_eq!(patch.body["metadata"]["resourceVersion"], "41");
        api
    };
    let (result, api) = tokio::join!(reconcile, script);
    assert!(result.is_ok());
    // No plan has been made yet: no status is written until the first sync's view.
    assert!(requests.try_recv().is_err());
    drop(context);
    assert!(api.no_more_requests().await);
}

#[tokio::test]
async fn a_deletion_is_held_while_the_plan_still_revokes_for_the_mapping() {
    let object = mapping(true, &[REVOKE]);
    let Harness {
        context,
        mut api,
        mut requests,
    } = harness(Some(view_of(&object, 2)));
    let reconcile = reconcile_role_mapping(object, context.clone());
    let script = async {
        // The only request is the Warning Event; the finalizer stays.
        let event = api.answer(201, json!({})).await;
        assert_eq!(event.method, "POST");
        assert!(
            event.path.ends_with("/namespaces/team-a/events"),
            "{}",
            event.path
        );
        assert_eq!(event.body["reason"], "DeletionHeld");
        assert_eq!(event.body["type"], "Warning");
        api
    };
    let (result, api) = tokio::join!(reconcile, script);
    assert!(result.is_ok());
    assert!(matches!(requests.try_recv(), Ok(SyncRequest::Full { .. })));
    drop(context);
    assert!(api.no_more_requests().await);
}

#[tokio::test]
async fn the_finalizer_goes_once_nothing_of_the_mapping_is_left_to_revoke() {
    let object = mapping(true, &[REVOKE, "example.com/other"]);
    let Harness {
        context, mut api, ..
    } = harness(Some(view_of(&object, 0)));
    let reconcile = reconcile_role_mapping(object, context.clone());
    let script = async {
        let patch = api
            .answer(200, mapping_json(true, &["example.com/other"]))
            .await;
        assert_eq!(
            (patch.method.as_str(), patch.path.as_str()),
            ("PATCH", PATH)
        );
        assert_eq!(
            patch.body["metadata"]["finalizers"],
            json!(["example.com/other"]),
            "only our finalizer is removed"
        );
        api
    };
    let (result, api) = tokio::join!(reconcile, script);
    assert!(result.is_ok());
    drop(context);
    assert!(api.no_more_requests().await);
}

const REVOKE: &str = objects::REVOKE_ON_DELETE_FINALIZER;
