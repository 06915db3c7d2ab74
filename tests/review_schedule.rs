//! ReviewSchedule campaigns against the Opal simulator over real HTTP: the UAR a run creates
//! (checked with plain reqwest, not the operator's client), exactly one review across a lost
//! answer to `POST /uar` and across a reset connection, and the refresh that moves expired and
//! vanished reviews to history.

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use chrono::{DateTime, Duration, TimeZone, Utc};
use opal_operator::controller::review::{
    NO_COMPLETION_DATA, RunReason, ScopeUsers, record_campaign, refresh_campaigns,
    resolve_scope_users, start_campaign, uar_request,
};
use opal_operator::crd::{
    Campaign, CampaignState, FilterOperator, ReminderSpec, ReviewScheduleSpec,
    ReviewScheduleStatus, ReviewScope, ReviewerAssignment, TagSelector,
};
use opal_operator::engine::ObjectKey;
use opal_operator::http::RetryConfig;
use opal_operator::opal::{ApiToken, Client, ClientConfig};
use opal_operator::sim::opal::{
    FixtureUser, InjectedFault, OrgFixture, RateLimitConfig, RunningOpalSim, SimConfig,
};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

const CREATE_ROUTE: &str = "POST /uar";
const GET_ROUTE: &str = "GET /uar/{uar_id}";
const MAX_ATTEMPTS: u32 = 3;

fn fixture() -> OrgFixture {
    OrgFixture {
        users: ["ada@example.com", "grace@example.com"]
            .into_iter()
            .map(|email| FixtureUser {
                email: email.to_owned(),
                first_name: "Test".to_owned(),
                last_name: "User".to_owned(),
                ..FixtureUser::default()
            })
            .collect(),
        ..OrgFixture::default()
    }
}

async fn start_sim() -> RunningOpalSim {
    RunningOpalSim::start(
        fixture(),
        SimConfig {
            rate_limit: RateLimitConfig::disabled(),
            ..SimConfig::default()
        },
    )
    .await
    .expect("simulator starts")
}

/// The operator's client, pointed at `base_url` (the simulator or the proxy in front of it).
fn client(sim: &RunningOpalSim, base_url: String) -> Client {
    let config = ClientConfig {
        base_url,
        request_timeout_ms: 5_000,
        retry: RetryConfig {
            max_attempts: MAX_ATTEMPTS,
            initial_backoff_ms: 5,
            max_backoff_ms: 20,
            max_total_delay_ms: 5_000,
        },
        ..ClientConfig::default()
    };
    Client::new(config, ApiToken::new(sim.token()).expect("token")).expect("client")
}

/// Every UAR the simulator lists, read with plain reqwest.
async fn listed_uars(sim: &RunningOpalSim) -> Vec<Value> {
    let page: Value = reqwest::Client::new()
        .get(format!("{}/uars", sim.base_url()))
        .query(&[("page_size", "1000")])
        .bearer_auth(sim.token())
        .send()
        .await
        .expect("GET /uars")
        .error_for_status()
        .expect("GET /uars succeeds")
        .json()
        .await
        .expect("JSON page");
    assert_eq!(page["next"], Value::Null, "one page holds every UAR");
    page["results"].as_array().expect("results").clone()
}

async fn uar_by_id(sim: &RunningOpalSim, uar_id: &str) -> Value {
    reqwest::Client::new()
        .get(format!("{}/uar/{uar_id}", sim.base_url()))
        .bearer_auth(sim.token())
        .send()
        .await
        .expect("GET /uar/{id}")
        .error_for_status()
        .expect("GET /uar/{id} succeeds")
        .json()
        .await
        .expect("JSON UAR")
}

fn at(y: i32, mo: u32, d: u32, h: u32, mi: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(y, mo, d, h, mi, 0)
        .single()
        .expect("valid time")
}

fn spec(deadline: &str) -> ReviewScheduleSpec {
    ReviewScheduleSpec {
        schedule: "0 9 1 1,4,7,10 *".to_owned(),
        time_zone: "Europe/Berlin".to_owned(),
        scope: Some(ReviewScope {
            tags: vec![TagSelector {
                key: "env".to_owned(),
                value: Some("prod".to_owned()),
            }],
            names: vec!["payments".to_owned()],
            apps: vec!["5a1f3c2e-0000-4000-8000-000000000001".to_owned()],
            group_types: vec!["OKTA_GROUP".to_owned()],
            resource_types: vec!["AWS_IAM_ROLE".to_owned()],
            users: vec!["Ada@Example.com".to_owned()],
            filter_operator: FilterOperator::All,
            include_group_bindings: true,
        }),
        reviewer_assignment: ReviewerAssignment::ByApprovers,
        deadline: deadline.to_owned(),
        reminders: Some(ReminderSpec {
            days_before_deadline: vec![7, 1],
            include_manager: true,
        }),
        escalation: None,
        outcomes: Vec::new(),
        self_review_allowed: false,
        instantly_action_reviews: true,
        notify_reviewers: true,
        suspend: false,
    }
}

fn key() -> ObjectKey {
    ObjectKey::new("team-a", "quarterly")
}

/// 2030-01-01 09:00 in Europe/Berlin.
fn due_at() -> DateTime<Utc> {
    at(2030, 1, 1, 8, 0)
}

#[tokio::test]
async fn a_campaign_creates_one_uar_with_the_requested_settings() {
    let sim = start_sim().await;
    let opal = client(&sim, sim.base_url());
    let spec = spec("14d");
    let users = resolve_scope_users(&opal, &spec).await.expect("users");
    let ada = sim
        .state()
        .user_by_email("ada@example.com")
        .expect("ada")
        .user_id;
    assert_eq!(users.id("ada@example.com"), Some(ada.as_str()));
    let started_at = due_at() + Duration::seconds(3);
    let reason = RunReason::Scheduled { due_at: due_at() };
    let request = uar_request(&key(), &spec, &reason, started_at, &users).expect("request");

    let campaign = start_campaign(&opal, &request, started_at)
        .await
        .expect("campaign");
    assert_eq!(campaign.name, "team-a/quarterly 2030-01-01 09:00");
    assert_eq!(campaign.started_at, started_at);
    assert_eq!(
        campaign.deadline,
        at(2030, 1, 15, 8, 0) + Duration::seconds(3)
    );
    assert_eq!(campaign.state, CampaignState::Running);
    assert_eq!(campaign.progress, NO_COMPLETION_DATA);

    let uars = listed_uars(&sim).await;
    assert_eq!(uars.len(), 1, "{uars:#?}");
    let uar = &uars[0];
    assert_eq!(uar["uar_id"], campaign.uar_id.as_str());
    assert_eq!(uar["name"], "team-a/quarterly 2030-01-01 09:00");
    let deadline: DateTime<Utc> = uar["deadline"]
        .as_str()
        .expect("deadline")
        .parse()
        .expect("RFC 3339");
    assert_eq!(deadline, campaign.deadline);
    assert_eq!(uar["reviewer_assignment_policy"], "BY_APPROVERS");
    assert_eq!(uar["time_zone"], "Europe/Berlin");
    assert_eq!(uar["self_review_allowed"], false);
    assert_eq!(uar["instantly_action_reviews"], true);
    assert_eq!(uar["send_reviewer_assignment_notification"], true);
    assert_eq!(
        uar["uar_scope"],
        json!({
            "filter_operator": "ALL",
            "users": [ada],
            "apps": ["5a1f3c2e-0000-4000-8000-000000000001"],
            "group_types": ["OKTA_GROUP"],
            "resource_types": ["AWS_IAM_ROLE"],
            "include_group_bindings": true,
            "tags": [{"key": "env", "value": "prod"}],
            "names": ["payments"],
        })
    );
    assert_eq!(&uar_by_id(&sim, &campaign.uar_id).await, uar);

    // Starting the same run again finds the review instead of opening a second one.
    let again = start_campaign(&opal, &request, started_at + Duration::minutes(5))
        .await
        .expect("found again");
    assert_eq!(again.uar_id, campaign.uar_id);
    assert_eq!(again.deadline, campaign.deadline);
    assert_eq!(listed_uars(&sim).await.len(), 1);
    assert_eq!(sim.counters().calls(CREATE_ROUTE), 1);
    sim.shutdown().await;
}

#[tokio::test]
async fn an_unknown_scope_user_starts_nothing() {
    let sim = start_sim().await;
    let opal = client(&sim, sim.base_url());
    let mut spec = spec("14d");
    if let Some(scope) = spec.scope.as_mut() {
        scope.users.push("nobody@example.com".to_owned());
    }
    let error = resolve_scope_users(&opal, &spec)
        .await
        .expect_err("unknown user");
    assert_eq!(error.label(), "unknown_scope_user");
    assert!(error.to_string().contains("nobody@example.com"), "{error}");
    // Without the lookup the request cannot be built either: the scope would widen.
    let reason = RunReason::Scheduled { due_at: due_at() };
    let error = uar_request(&key(), &spec, &reason, due_at(), &ScopeUsers::default())
        .expect_err("unresolved users");
    assert_eq!(error.label(), "unknown_scope_user");
    assert_eq!(sim.counters().calls(CREATE_ROUTE), 0);
    assert!(listed_uars(&sim).await.is_empty());
    sim.shutdown().await;
}

/// A loopback TCP proxy in front of the simulator. Once armed, it forwards the next
/// `POST /v1/uar` to the simulator, lets the simulator act and answer, and closes the client's
/// connection instead of passing the answer on: the review exists but the caller never hears.
/// (The simulator's own faults all fire before the request is handled, so none of them loses
/// an answer after the fact.)
struct AnswerLosingProxy {
    addr: SocketAddr,
    armed: Arc<AtomicBool>,
    lost: Arc<AtomicUsize>,
    task: JoinHandle<()>,
}

impl AnswerLosingProxy {
    async fn start(upstream: SocketAddr) -> Self {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
            .await
            .expect("proxy binds");
        let addr = listener.local_addr().expect("proxy address");
        let armed = Arc::new(AtomicBool::new(false));
        let lost = Arc::new(AtomicUsize::new(0));
        let task = tokio::spawn({
            let armed = armed.clone();
            let lost = lost.clone();
            async move {
                while let Ok((client, _)) = listener.accept().await {
                    tokio::spawn(relay(client, upstream, armed.clone(), lost.clone()));
                }
            }
        });
        Self {
            addr,
            armed,
            lost,
            task,
        }
    }

    fn base_url(&self) -> String {
        format!("http://{}/v1", self.addr)
    }

    fn lose_next_create_answer(&self) {
        self.armed.store(true, Ordering::SeqCst);
    }

    fn lost_answers(&self) -> usize {
        self.lost.load(Ordering::SeqCst)
    }
}

impl Drop for AnswerLosingProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn relay(
    client: TcpStream,
    upstream: SocketAddr,
    armed: Arc<AtomicBool>,
    lost: Arc<AtomicUsize>,
) {
    let Ok(server) = TcpStream::connect(upstream).await else {
        return;
    };
    let (mut client_read, mut client_write) = client.into_split();
    let (mut server_read, mut server_write) = server.into_split();
    let swallow = Arc::new(AtomicBool::new(false));
    let requests = {
        let swallow = swallow.clone();
        async move {
            let mut buffer = vec![0_u8; 64 * 1024];
            loop {
                let read = match client_read.read(&mut buffer).await {
                    Ok(0) | Err(_) => return,
                    Ok(read) => read,
                };
                let chunk = &buffer[..read];
                // HTTP/1.1 without pipelining: whatever the server sends next answers this.
                if chunk.starts_with(b"POST /v1/uar ") && armed.swap(false, Ordering::SeqCst) {
                    swallow.store(true, Ordering::SeqCst);
                }
                if server_write.write_all(chunk).await.is_err() {
                    return;
                }
            }
        }
    };
    let answers = async move {
        let mut buffer = vec![0_u8; 64 * 1024];
        loop {
            let read = match server_read.read(&mut buffer).await {
                Ok(0) | Err(_) => return,
                Ok(read) => read,
            };
            if swallow.load(Ordering::SeqCst) {
                lost.fetch_add(1, Ordering::SeqCst);
                return;
            }
            if client_write.write_all(&buffer[..read]).await.is_err() {
                return;
            }
        }
    };
    // Either side ending drops both sockets, which closes the client's connection.
    tokio::select! {
        () = requests => {}
        () = answers => {}
    }
}

#[tokio::test]
async fn a_retry_after_a_lost_answer_finds_the_review_instead_of_opening_another() {
    let sim = start_sim().await;
    let proxy = AnswerLosingProxy::start(sim.addr()).await;
    let opal = client(&sim, proxy.base_url());
    let spec = spec("14d");
    let users = resolve_scope_users(&opal, &spec).await.expect("users");
    let started_at = due_at();
    let reason = RunReason::Scheduled { due_at: due_at() };
    let request = uar_request(&key(), &spec, &reason, started_at, &users).expect("request");

    proxy.lose_next_create_answer();
    let error = start_campaign(&opal, &request, started_at)
        .await
        .expect_err("the answer was lost");
    assert_eq!(proxy.lost_answers(), 1);
    assert_eq!(
        sim.counters().calls(CREATE_ROUTE),
        1,
        "not replayed: {error}"
    );
    let created = listed_uars(&sim).await;
    assert_eq!(
        created.len(),
        1,
        "Opal acted although the caller never heard"
    );

    // The next reconcile retries the same run, a little later.
    let retried_at = started_at + Duration::seconds(30);
    let campaign = start_campaign(&opal, &request, retried_at)
        .await
        .expect("retry");
    assert_eq!(campaign.uar_id, created[0]["uar_id"].as_str().expect("id"));
    assert_eq!(campaign.name, "team-a/quarterly 2030-01-01 09:00");
    assert_eq!(sim.counters().calls(CREATE_ROUTE), 1, "no second POST /uar");
    assert_eq!(listed_uars(&sim).await.len(), 1);
    sim.shutdown().await;
}

#[tokio::test]
async fn a_reset_before_opal_acts_is_retried_into_one_review() {
    let sim = start_sim().await;
    let opal = client(&sim, sim.base_url());
    let spec = spec("14d");
    let users = resolve_scope_users(&opal, &spec).await.expect("users");
    let reason = RunReason::RunNow {
        token: "incident-42".to_owned(),
    };
    let request = uar_request(&key(), &spec, &reason, due_at(), &users).expect("request");
    assert_eq!(request.name, "team-a/quarterly run-now incident-42");

    sim.inject_faults(Some(CREATE_ROUTE), [InjectedFault::ConnectionReset]);
    start_campaign(&opal, &request, due_at())
        .await
        .expect_err("connection reset");
    assert!(listed_uars(&sim).await.is_empty());
    let campaign = start_campaign(&opal, &request, due_at() + Duration::seconds(10))
        .await
        .expect("retry");
    let uars = listed_uars(&sim).await;
    assert_eq!(uars.len(), 1);
    assert_eq!(uars[0]["uar_id"], campaign.uar_id.as_str());
    assert_eq!(uars[0]["name"], "team-a/quarterly run-now incident-42");
    sim.shutdown().await;
}

#[tokio::test]
async fn refresh_moves_expired_and_vanished_reviews_to_history() {
    let sim = start_sim().await;
    let opal = client(&sim, sim.base_url());
    let spec = spec("72h");
    let users = resolve_scope_users(&opal, &spec).await.expect("users");
    let started_at = due_at();
    let reason = RunReason::Scheduled { due_at: due_at() };
    let request = uar_request(&key(), &spec, &reason, started_at, &users).expect("request");
    let campaign = start_campaign(&opal, &request, started_at)
        .await
        .expect("campaign");
    assert_eq!(campaign.deadline, started_at + Duration::hours(72));

    let mut status = ReviewScheduleStatus::default();
    record_campaign(&mut status, campaign.clone(), &reason, at(2030, 4, 1, 7, 0));
    // A review someone removed in Opal since the operator recorded it.
    let vanished = Campaign {
        uar_id: "0b9e6f1a-0000-4000-8000-00000000dead".to_owned(),
        name: "team-a/quarterly 2029-10-01 09:00".to_owned(),
        started_at: at(2029, 10, 1, 7, 0),
        deadline: at(2030, 6, 1, 0, 0),
        state: CampaignState::Running,
        progress: NO_COMPLETION_DATA.to_owned(),
    };
    status.active_campaigns.push(vanished.clone());

    refresh_campaigns(&opal, &mut status, started_at + Duration::hours(1))
        .await
        .expect("refresh");
    assert_eq!(status.active_campaigns, vec![campaign.clone()]);
    assert_eq!(status.history.len(), 1);
    assert_eq!(status.history[0].uar_id, vanished.uar_id);
    assert_eq!(status.history[0].state, CampaignState::Unknown);
    assert!(
        status.history[0].progress.contains("no longer exists"),
        "{}",
        status.history[0].progress
    );

    // Past the deadline, but Opal cannot be asked: the campaign stays until it can.
    let expired = started_at + Duration::hours(73);
    sim.inject_faults(
        Some(GET_ROUTE),
        (0..MAX_ATTEMPTS).map(|_| InjectedFault::ServerError(503)),
    );
    let error = refresh_campaigns(&opal, &mut status, expired)
        .await
        .expect_err("Opal unavailable");
    assert_eq!(error.label(), "server_error");
    assert_eq!(status.active_campaigns, vec![campaign.clone()]);
    assert_eq!(status.history.len(), 1);

    refresh_campaigns(&opal, &mut status, expired)
        .await
        .expect("refresh");
    assert!(status.active_campaigns.is_empty());
    let ids: Vec<&str> = status.history.iter().map(|c| c.uar_id.as_str()).collect();
    assert_eq!(
        ids,
        [campaign.uar_id.as_str(), vanished.uar_id.as_str()],
        "newest first"
    );
    let past_due = &status.history[0];
    assert_eq!(past_due.state, CampaignState::PastDue);
    assert_eq!(past_due.deadline, campaign.deadline);
    assert!(
        past_due.progress.contains("no completion"),
        "{}",
        past_due.progress
    );
    assert_eq!(status.last_run, Some(started_at));
    assert_eq!(status.next_run, Some(at(2030, 4, 1, 7, 0)));
    sim.shutdown().await;
}
