//! The apply step between a scripted apiserver and the Opal simulator: a lockdown's revocations
//! are recorded before they are made, made, confirmed, and the lockdown marked Active.

use std::sync::Mutex;

use opal_sims::opal::{OrgFixture, RunningOpalSim, SimConfig};
use serde_json::{Value, json};

use super::*;
use crate::controller::lockdown::{RECORD_KEY, record_secret_name};
use crate::controller::mock_api::{self, OPERATOR_NAMESPACE, status_answer};
use crate::crd::Lockdown;
use crate::opal::{ApiToken, Client, ClientConfig};
use crate::reconcile::{ObservationScope, observe_opal};

const UID: &str = "9a7d-uid-incident";
const FIXTURE: &str = r#"
users:
  - {email: ada@example.com, first_name: Ada, last_name: Lovelace}
  - {email: bob@example.com, first_name: Bob, last_name: Okafor}
groups:
  - {name: eng}
  - {name: legacy}
memberships:
  - {group: eng, user: ada@example.com}
  - {group: legacy, user: ada@example.com}
  - {group: eng, user: bob@example.com}
"#;

fn lockdown_json() -> Value {
    json!({
        "apiVersion": "opal-operator.io/v1alpha1", "kind": "Lockdown",
        "metadata": {
            "name": "incident", "namespace": OPERATOR_NAMESPACE, "uid": UID,
            "resourceVersion": "7", "generation": 1,
            "creationTimestamp": "2026-06-15T12:00:00Z",
        },
        "spec": {"subjects": [{"email": "ada@example.com"}], "reason": "stolen laptop"},
    })
}

fn opal_client(sim: &RunningOpalSim) -> Client {
    Client::new(
        ClientConfig {
            base_url: sim.base_url(),
            ..ClientConfig::default()
        },
        ApiToken::new(opal_sims::opal::DEFAULT_TOKEN).expect("token"),
    )
    .expect("client")
}

#[tokio::test]
async fn a_lockdown_is_recorded_before_it_revokes_then_confirmed_and_marked_active() {
    let fixture = OrgFixture::from_yaml_str(FIXTURE).expect("fixture");
    let sim = RunningOpalSim::start(fixture, SimConfig::default())
        .await
        .expect("simulator");
    let state = sim.state();
    let ada = state.user_by_email("ada@example.com").expect("ada").user_id;
    let bob = state.user_by_email("bob@example.com").expect("bob").user_id;

    let object: Lockdown = serde_json::from_value(lockdown_json()).expect("lockdown");
    let (kube, api) = mock_api::client();
    let context = mock_api::sync_context_with(kube, opal_client(&sim), vec![object]);
    let inputs = context.stores.inputs(OPERATOR_NAMESPACE, None, Utc::now());
    let hr = HrState::Snapshot(Vec::new());
    let scope = ObservationScope::new(&inputs.mappings, &inputs.lockdowns, &hr, Vec::new());
    let opal = observe_opal(&context.sources.opal, &scope, 2)
        .await
        .expect("Opal read");
    let world = world_from(&context, &inputs, hr, opal, None);

    let record_path = format!(
        "/api/v1/namespaces/{OPERATOR_NAMESPACE}/secrets/{}",
        record_secret_name(UID)
    );
    let lockdown_path = format!(
        "/apis/opal-operator.io/v1alpha1/namespaces/{OPERATOR_NAMESPACE}/lockdowns/incident"
    );
    // What Opal held for ada when the record was written.
    let held_at_record: Mutex<Option<usize>> = Mutex::new(None);
    let route = |seen: &mock_api::Seen| -> (u16, Value) {
        match (seen.method.as_str(), seen.path.as_str()) {
            ("GET", path) if path == record_path => (404, status_answer(404, "NotFound")),
            ("PATCH", path) if path == record_path => {
                *held_at_record.lock().expect("lock") = Some(state.user_grants(&ada).len());
                (200, seen.body.clone())
            }
            ("GET", path) if path == lockdown_path => (200, lockdown_json()),
            ("PATCH", path) if path == format!("{lockdown_path}/status") => (200, lockdown_json()),
            ("POST", path) if path.ends_with("/events") => (201, json!({})),
            _ => (404, status_answer(404, "NotFound")),
        }
    };
    let sync = async move {
        let mut loop_state = LoopState {
            cache: None,
            last_good_employee_count: None,
            last_view: None,
            released: BTreeSet::new(),
        };
        let view = apply::apply(
            &context,
            &mut loop_state,
            world,
            &inputs,
            None,
            &Batch::default(),
            Instant::now(),
        )
        .await;
        // Last client gone: the scripted API stops serving.
        drop(context);
        view
    };
    let (view, seen) = tokio::join!(sync, api.serve(route));

    // Opal: ada lost both grants, bob kept his.
    assert!(state.user_grants(&ada).is_empty());
    assert_eq!(state.user_grants(&bob).len(), 1);
    // The record was written while ada still held both grants, and names both.
    assert_eq!(*held_at_record.lock().expect("lock"), Some(2));
    let write = seen
        .iter()
        .find(|s| s.method == "PATCH" && s.path == record_path)
        .expect("the record is written");
    let data = write.body["data"][RECORD_KEY]
        .as_str()
        .expect("record data");
    let bytes =
        base64::Engine::decode(&base64::engine::general_purpose::STANDARD, data).expect("base64");
    let record: Vec<RevokedGrant> = serde_json::from_slice(&bytes).expect("record");
    let mut names: Vec<&str> = record.iter().map(|g| g.target_name.as_str()).collect();
    names.sort_unstable();
    assert_eq!(names, ["eng", "legacy"]);
    // Marked Active after the record, once, with a time to lockdown.
    let position = |phase: &str| {
        seen.iter().position(|s| {
            s.path == format!("{lockdown_path}/status") && s.body["status"]["phase"] == phase
        })
    };
    let active = position("Active").expect("marked Active");
    let recorded = seen
        .iter()
        .position(|s| s.method == "PATCH" && s.path == record_path)
        .expect("recorded");
    assert!(recorded < active);
    assert!(seen[active].body["status"]["timeToLockdownMs"].is_i64());
    let findings = &view.plan.lockdowns[&ObjectKey::new(OPERATOR_NAMESPACE, "incident")];
    assert!(findings.active && findings.to_revoke == 0, "{findings:?}");
    assert!(view.error.is_none());
    sim.shutdown().await;
}
