//! A scripted Kubernetes API for controller tests: the code under test talks to a real
//! `kube::Client` over a mocked transport, and the test answers each request it makes in turn
//! and sees exactly what was sent (method, path, query, body).

use http::{Request, Response};
use kube::client::Body;
use kube::runtime::{reflector, watcher};
use serde_json::Value;
use tower_test::mock::{self, Handle};

use super::events::EventSink;
use super::objects::Stores;
use super::opal_events::OwnWrites;
use super::sync::SyncContext;
use crate::crd::Lockdown;
use crate::hris::{HrSource, HrisConfig};
use crate::metrics::Metrics;
use crate::opal::{ApiToken, Client as OpalClient, ClientConfig};
use crate::standalone::Sources;

pub(crate) const OPERATOR_NAMESPACE: &str = "opal-system";

/// One request as the API saw it.
#[derive(Debug)]
pub(crate) struct Seen {
    pub method: String,
    pub path: String,
    pub query: String,
    pub body: Value,
}

impl Seen {
    async fn of(request: Request<Body>) -> Self {
        let method = request.method().to_string();
        let path = request.uri().path().to_owned();
        let query = request.uri().query().unwrap_or_default().to_owned();
        let bytes = request
            .into_body()
            .collect_bytes()
            .await
            .expect("request body");
        let body = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes).expect("JSON request body")
        };
        Self {
            method,
            path,
            query,
            body,
        }
    }
}

/// An HTTP answer with a JSON body.
pub(crate) fn answer(status: u16, body: &Value) -> Response<Body> {
    Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .body(Body::from(serde_json::to_vec(body).expect("JSON answer")))
        .expect("response")
}

pub(crate) struct MockApi {
    handle: Handle<Request<Body>, Response<Body>>,
}

/// A client whose every request the returned [`MockApi`] answers.
pub(crate) fn client() -> (kube::Client, MockApi) {
    let (service, handle) = mock::pair::<Request<Body>, Response<Body>>();
    (
        kube::Client::new(service, OPERATOR_NAMESPACE),
        MockApi { handle },
    )
}

/// How long a test waits for the next request (or for every client to go) before it fails,
/// so that a missing request fails the test instead of hanging it.
const REQUEST_WAIT: std::time::Duration = std::time::Duration::from_secs(30);

type Pending = Option<(
    Request<Body>,
    tower_test::mock::SendResponse<Response<Body>>,
)>;

impl MockApi {
    async fn next(&mut self) -> Pending {
        tokio::time::timeout(REQUEST_WAIT, self.handle.next_request())
            .await
            .expect("the code under test neither sent a request nor let go of its client")
    }

    /// Waits for the next request and answers it with `status` and `body`.
    pub(crate) async fn answer(&mut self, status: u16, body: Value) -> Seen {
        let (request, reply) = self
            .next()
            .await
            .expect("the code under test makes another request");
        let seen = Seen::of(request).await;
        reply.send_response(answer(status, &body));
        seen
    }

    /// Waits for the next request and keeps it unanswered: the caller answers through the
    /// returned handle, or never (an apiserver that hangs).
    pub(crate) async fn hold(&mut self) -> (Seen, tower_test::mock::SendResponse<Response<Body>>) {
        let (request, reply) = self
            .next()
            .await
            .expect("the code under test makes another request");
        (Seen::of(request).await, reply)
    }

    /// Answers every request through `route` until every client is dropped, and returns what
    /// was asked, in order. `route` sees each request before it is answered.
    pub(crate) async fn serve(mut self, mut route: impl FnMut(&Seen) -> (u16, Value)) -> Vec<Seen> {
        let mut seen = Vec::new();
        while let Some((request, reply)) = self.next().await {
            let request = Seen::of(request).await;
            let (status, body) = route(&request);
            reply.send_response(answer(status, &body));
            seen.push(request);
        }
        seen
    }

    /// True once every client is dropped without another request: nothing more was sent.
    pub(crate) async fn no_more_requests(mut self) -> bool {
        self.next().await.is_none()
    }
}

/// A Kubernetes `Status` answer.
pub(crate) fn status_answer(code: u16, reason: &str) -> Value {
    serde_json::json!({
        "kind": "Status", "apiVersion": "v1", "metadata": {},
        "status": "Failure", "message": reason, "reason": reason, "code": code,
    })
}

/// An Opal client pointing at a closed loopback port: a test that expects no Opal call fails
/// loudly if one is made.
pub(crate) fn unreachable_opal() -> OpalClient {
    OpalClient::new(
        ClientConfig {
            base_url: "http://127.0.0.1:9/v1".to_owned(),
            ..ClientConfig::default()
        },
        ApiToken::new("test-token").expect("token"),
    )
    .expect("Opal client")
}

/// A sync context on `kube` with an [`unreachable_opal`] client, empty caches and an HR file
/// nobody reads.
pub(crate) fn sync_context(kube: kube::Client) -> SyncContext {
    sync_context_with(kube, unreachable_opal(), Vec::new())
}

/// A sync context on `kube` and `opal` whose Lockdown cache holds `lockdowns`.
pub(crate) fn sync_context_with(
    kube: kube::Client,
    opal: OpalClient,
    lockdowns: Vec<Lockdown>,
) -> SyncContext {
    let hr: HrisConfig =
        serde_yaml::from_str("{source: file, location: /nonexistent/employees.csv}")
            .expect("HR config");
    let (lockdown_store, mut writer) = reflector::store();
    for lockdown in lockdowns {
        writer.apply_watcher_event(&watcher::Event::Apply(lockdown));
    }
    let stores = Stores {
        role_mappings: reflector::store().0,
        access_policies: reflector::store().0,
        lockdowns: lockdown_store,
        review_schedules: reflector::store().0,
    };
    SyncContext {
        kube: kube.clone(),
        sources: Sources {
            hr: HrSource::from_config(&hr).expect("HR source"),
            opal,
            concurrency: 2,
            operator_namespace: OPERATOR_NAMESPACE.to_owned(),
            safety_defaults: None,
        },
        stores,
        metrics: std::sync::Arc::new(Metrics::new()),
        events: EventSink::new(kube, "test"),
        views: tokio::sync::watch::channel(None).0,
        notifier: None,
        own_writes: OwnWrites::default(),
        leadership: crate::controller::Leadership::sole(),
    }
}
