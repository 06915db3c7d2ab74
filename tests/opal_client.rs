//! The Opal client over real HTTP against the Opal simulator: pagination styles, retries under
//! injected faults, rate limiting, idempotent grants and token redaction.

use std::collections::HashSet;
use std::hash::Hash;
use std::io::Write;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use chrono::{TimeZone, Utc};
use futures::{StreamExt, TryStreamExt};
use opal_operator::http::{RetryConfig, TransportErrorKind};
use opal_operator::opal::model::{
    ApprovalLevel, CreateRequest, GrantSpec, RequestStatus, RequestedTarget,
};
use opal_operator::opal::{
    ApiToken, AttemptOutcome, CallAttempt, CallObserver, Client, ClientConfig, EventFilter,
    GrantOutcome, GroupFilter, OpalError, OrgRateLimiter, RateLimitConfig, RelayRequestFilter,
    RequestFilter, ResourceFilter, RevokeOutcome,
};
use opal_operator::sim::opal::{
    self as sim, AccessLevel, BucketConfig, DuplicateGrant, FaultConfig, FixtureBundle,
    FixtureMessageChannel, FixtureOwner, FixtureRequest, FixtureRequestItem, FixtureTag,
    FixtureUar, InjectedFault, OrgFixture, RunningOpalSim, SimConfig, TimeoutOutcome,
};

/// A token that must never show up in logs, errors or `Debug` output.
const TOKEN: &str = "opal-test-token-7f3a9c41e2b8d05f";

const GROUP_ROUTE: &str = "GET /groups/{group_id}";
const ADD_GROUP_USER_ROUTE: &str = "POST /groups/{group_id}/users/{user_id}";

fn fixture() -> OrgFixture {
    let mut fixture = OrgFixture::synthetic(23, 7, 4, 2, 11);
    fixture.tags = (0..5)
        .map(|index| FixtureTag {
            key: format!("team-{index}"),
            value: Some("x".to_owned()),
            ..FixtureTag::default()
        })
        .collect();
    fixture.owners.extend((0..4).map(|index| FixtureOwner {
        name: format!("owner-{index}"),
        ..FixtureOwner::default()
    }));
    fixture.bundles = (0..5)
        .map(|index| FixtureBundle {
            name: format!("bundle-{index}"),
            ..FixtureBundle::default()
        })
        .collect();
    fixture.message_channels = (0..3)
        .map(|index| FixtureMessageChannel {
            remote_id: format!("C0{index}"),
            third_party_provider: "SLACK".to_owned(),
            ..FixtureMessageChannel::default()
        })
        .collect();
    fixture.uars = (0..5)
        .map(|index| FixtureUar {
            id: None,
            name: format!("review-{index}"),
            deadline: Utc
                .with_ymd_and_hms(2030, 1, 1, 0, 0, 0)
                .single()
                .expect("valid date"),
            reviewer_assignment_policy: "BY_MANAGER".to_owned(),
            send_reviewer_assignment_notification: false,
            time_zone: "UTC".to_owned(),
            self_review_allowed: false,
            instantly_action_reviews: false,
        })
        .collect();
    let requester = fixture.users[0].email.clone();
    // The token acts as a listed user, who may approve requests.
    fixture.api_user = Some(fixture.users[1].email.clone());
    let group = fixture.groups[0].name.clone();
    fixture.requests = (0..9)
        .map(|index| FixtureRequest {
            requester: requester.clone(),
            reason: format!("reason {index}"),
            status: "PENDING".to_owned(),
            duration_minutes: 60,
            items: vec![FixtureRequestItem {
                group: Some(group.clone()),
                ..FixtureRequestItem::default()
            }],
            ..FixtureRequest::default()
        })
        .collect();
    fixture
}

async fn start(config: SimConfig) -> RunningOpalSim {
    RunningOpalSim::start(
        fixture(),
        SimConfig {
            token: TOKEN.to_owned(),
            ..config
        },
    )
    .await
    .expect("simulator starts")
}

fn config_for(sim: &RunningOpalSim) -> ClientConfig {
    ClientConfig {
        base_url: sim.base_url(),
        request_timeout_ms: 2_000,
        retry: RetryConfig {
            max_attempts: 10,
            initial_backoff_ms: 5,
            max_backoff_ms: 50,
            max_total_delay_ms: 30_000,
        },
        ..ClientConfig::default()
    }
}

fn token() -> ApiToken {
    ApiToken::new(TOKEN).expect("token")
}

/// Records every attempt the client reports.
#[derive(Default)]
struct RecordingObserver {
    attempts: Mutex<Vec<CallAttempt>>,
}

impl RecordingObserver {
    fn attempts(&self) -> Vec<CallAttempt> {
        self.attempts
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    fn outcomes(&self, operation: &str) -> Vec<AttemptOutcome> {
        self.attempts()
            .into_iter()
            .filter(|attempt| attempt.operation == operation)
            .map(|attempt| attempt.outcome)
            .collect()
    }
}

impl CallObserver for RecordingObserver {
    fn on_attempt(&self, attempt: &CallAttempt) {
        self.attempts
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(attempt.clone());
    }
}

fn observed_client(config: ClientConfig) -> (Client, Arc<RecordingObserver>) {
    let observer = Arc::new(RecordingObserver::default());
    let client = Client::builder(config, token())
        .observer(observer.clone())
        .build()
        .expect("client");
    (client, observer)
}

fn assert_unique<T: Eq + Hash + std::fmt::Debug>(items: impl IntoIterator<Item = T>) -> usize {
    let mut seen = HashSet::new();
    let mut count = 0;
    for item in items {
        count += 1;
        assert!(seen.insert(item), "duplicate item in listing");
    }
    count
}

fn pages_for(items: usize, cap: usize) -> u64 {
    items.div_ceil(cap).max(1) as u64
}

#[tokio::test]
async fn every_pagination_style_is_followed_to_the_end_without_duplicates() {
    const CAP: usize = 2;
    let sim = start(SimConfig {
        page_cap: Some(CAP),
        rate_limit: sim::RateLimitConfig::disabled(),
        ..SimConfig::default()
    })
    .await;
    let state = sim.state();
    let client = Client::new(config_for(&sim), token()).expect("client");

    // Standard `{next, previous, results}`.
    let users = client.list_users().await.expect("users");
    assert_eq!(assert_unique(users.iter().map(|u| &u.user_id)), 23);
    let groups = client
        .list_groups(&GroupFilter::default())
        .await
        .expect("groups");
    assert_eq!(assert_unique(groups.iter().map(|g| &g.group_id)), 7);
    let resources = client
        .list_resources(&ResourceFilter::default())
        .await
        .expect("resources");
    assert_eq!(assert_unique(resources.iter().map(|r| &r.resource_id)), 4);
    assert_eq!(
        assert_unique(
            client
                .list_tags()
                .await
                .expect("tags")
                .into_iter()
                .map(|t| t.tag_id)
        ),
        5
    );
    assert_eq!(
        assert_unique(
            client
                .list_owners()
                .await
                .expect("owners")
                .into_iter()
                .map(|o| o.owner_id)
        ),
        5
    );
    assert_eq!(
        assert_unique(
            client
                .list_uars()
                .await
                .expect("uars")
                .into_iter()
                .map(|u| u.uar_id)
        ),
        5
    );

    let group_id = groups[0].group_id.clone();
    let members = client.list_group_users(&group_id).await.expect("members");
    let expected_members = state.group_members(&group_id).len();
    assert!(expected_members > CAP, "fixture must need several pages");
    assert_eq!(
        assert_unique(members.iter().map(|m| (&m.user_id, &m.access_level))),
        expected_members
    );

    let user_id = users[0].user_id.clone();
    let user_groups = client
        .list_user_groups(&user_id)
        .await
        .expect("user groups");
    assert_eq!(assert_unique(user_groups.iter().map(|m| &m.group_id)), 2);

    // `limit` + `cursor` on access lists, with direct and indirect access.
    let resource_id = resources[0].resource_id.clone();
    let access = client
        .list_resource_users(&resource_id)
        .await
        .expect("resource users");
    let expected_access = state.resource_access(&resource_id);
    assert!(expected_access.len() > CAP);
    assert_eq!(
        assert_unique(access.iter().map(|a| (&a.user_id, &a.access_level))),
        expected_access.len()
    );
    for entry in &access {
        let expected = expected_access
            .iter()
            .find(|e| e.user_id == entry.user_id)
            .expect("listed user has access");
        assert_eq!(entry.has_direct_access, expected.has_direct_access);
        assert_eq!(entry.num_access_paths, expected.num_access_paths);
    }
    let user_resources = client
        .list_user_resources(&user_id, true)
        .await
        .expect("user resources");
    let expected_user_access = resources
        .iter()
        .map(|r| {
            state
                .resource_access(&r.resource_id)
                .iter()
                .filter(|a| a.user_id == user_id)
                .count()
        })
        .sum::<usize>();
    assert!(expected_user_access > 0);
    assert_eq!(
        assert_unique(
            user_resources
                .iter()
                .map(|a| (&a.resource_id, &a.access_level))
        ),
        expected_user_access
    );

    // `{data, cursor, total_count}`: three direct grants of one user on one resource.
    let leveled = resources[1].resource_id.clone();
    let arn = resources[1].remote_resource_id.clone().expect("remote id");
    for level in ["", "/read", "/admin"] {
        let remote_id = if level.is_empty() {
            String::new()
        } else {
            format!("{arn}{level}")
        };
        state
            .add_resource_user(&leveled, &user_id, AccessLevel::new("", remote_id), None)
            .expect("seed grant");
    }
    let grants = client
        .resource_user_grants(&leveled, &user_id)
        .await
        .expect("grants");
    assert_eq!(
        assert_unique(
            grants
                .iter()
                .map(|g| g.access_level.access_level_remote_id.clone())
        ),
        3
    );

    // Events (standard style), produced by the simulator's audit log.
    for index in 0..7 {
        let mut fields = serde_json::Map::new();
        fields.insert("user_id".into(), user_id.clone().into());
        fields.insert("note".into(), index.into());
        state.record_event("TEST_EVENT", fields);
    }
    let events = client
        .list_events(&EventFilter::default())
        .await
        .expect("events");
    assert_eq!(
        assert_unique(events.iter().map(|e| &e.event_id)),
        state.events().len()
    );
    let filtered = client
        .list_events(&EventFilter {
            event_type: Some("TEST_EVENT".into()),
            ..EventFilter::default()
        })
        .await
        .expect("filtered events");
    assert_eq!(filtered.len(), 7);

    // Bundles `{next, total_count, bundles}`, requests `{requests, cursor}`, Relay.
    assert_eq!(
        assert_unique(
            client
                .list_bundles()
                .await
                .expect("bundles")
                .into_iter()
                .map(|b| b.bundle_id)
        ),
        5
    );
    let requests = client
        .list_requests(&RequestFilter::default())
        .await
        .expect("requests");
    assert_eq!(assert_unique(requests.iter().map(|r| &r.id)), 9);
    let relay = client
        .list_requests_relay(&RelayRequestFilter::default())
        .await
        .expect("relay");
    assert_eq!(assert_unique(relay.iter().map(|r| &r.id)), 9);

    // Unpaginated named arrays.
    assert_eq!(
        client
            .list_message_channels()
            .await
            .expect("channels")
            .len(),
        3
    );
    assert_eq!(
        client
            .group_resources(&group_id)
            .await
            .expect("group resources")
            .len(),
        1
    );

    let counters = sim.counters();
    for (route, items) in [
        ("GET /users", 23),
        ("GET /groups", 7),
        ("GET /resources", 4),
        ("GET /tags", 5),
        ("GET /owners", 5),
        ("GET /uars", 5),
        ("GET /groups/{group_id}/users", expected_members),
        ("GET /groups/users/{user_id}", 2),
        ("GET /resources/{resource_id}/users", expected_access.len()),
        ("GET /resources/users/{user_id}", expected_user_access),
        ("GET /resources/{resource_id}/users/{user_id}", 3),
        ("GET /bundles", 5),
        ("GET /requests", 9),
        ("GET /requests/relay", 9),
    ] {
        assert_eq!(
            counters.calls(route),
            pages_for(items, CAP),
            "{route} should take one call per page"
        );
    }
    assert_eq!(counters.status(200), counters.total);
    sim.shutdown().await;
}

#[tokio::test]
async fn large_listings_stream_page_by_page() {
    let sim = start(SimConfig {
        page_cap: Some(4),
        ..SimConfig::default()
    })
    .await;
    let client = Client::new(config_for(&sim), token()).expect("client");
    let pages: Vec<_> = client
        .users(&[])
        .into_stream()
        .try_collect()
        .await
        .expect("pages");
    assert_eq!(pages.len(), 6);
    assert!(pages.iter().all(|page| page.len() <= 4));
    assert_eq!(
        assert_unique(pages.iter().flatten().map(|u| &u.user_id)),
        23
    );

    let mut pager = client.group_users(&sim.state().group_id("group-00000").expect("group"));
    let first = pager.next_page().await.expect("page").expect("first page");
    assert_eq!(first.len(), 4);
    assert_eq!(pager.pages_fetched(), 1);
    assert_eq!(sim.counters().calls("GET /groups/{group_id}/users"), 1);
    sim.shutdown().await;
}

#[tokio::test]
async fn a_repeated_cursor_is_an_error_not_a_loop() {
    use axum::routing::get;
    let calls = Arc::new(Mutex::new(0u32));
    let counted = calls.clone();
    let app = axum::Router::new().route(
        "/v1/users",
        get(move || {
            let counted = counted.clone();
            async move {
                *counted.lock().unwrap_or_else(PoisonError::into_inner) += 1;
                axum::Json(serde_json::json!({"next": "same-cursor", "results": []}))
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let server = tokio::spawn(async move { axum::serve(listener, app).await });
    let client = Client::new(
        ClientConfig {
            base_url: format!("http://{addr}/v1"),
            ..ClientConfig::default()
        },
        token(),
    )
    .expect("client");
    let err = client.list_users().await.expect_err("loop detected");
    assert!(matches!(err, OpalError::PaginationLoop { .. }), "{err}");
    assert_eq!(err.label(), "pagination_loop");
    assert_eq!(*calls.lock().unwrap_or_else(PoisonError::into_inner), 2);
    server.abort();
}

/// Runs `count` concurrent `GET /groups/{id}` calls and returns how many succeeded.
async fn concurrent_group_reads(client: &Client, group_id: &str, count: usize) -> usize {
    futures::stream::iter(0..count)
        .map(|_| client.group(group_id))
        .buffer_unordered(16)
        .filter(|result| futures::future::ready(result.is_ok()))
        .count()
        .await
}

#[tokio::test]
async fn injected_429_storm_without_retry_after_completes_and_counts_exactly() {
    let sim = start(SimConfig::default()).await;
    let group_id = sim.state().group_id("group-00001").expect("group");
    sim.set_faults(FaultConfig {
        too_many_requests_rate: 0.3,
        retry_after: None,
        ..FaultConfig::none()
    });
    let mut config = config_for(&sim);
    config.rate_limit = RateLimitConfig {
        requests_per_second: 50,
        writes_per_second: 25,
        burst: 5,
    };
    let (client, observer) = observed_client(config);

    assert_eq!(concurrent_group_reads(&client, &group_id, 60).await, 60);

    let counters = sim.counters();
    assert!(
        counters.too_many_requests > 0,
        "the storm must have happened"
    );
    assert_eq!(counters.rate_limited, 0, "client stayed below the limiter");
    assert_eq!(counters.too_many_requests, counters.injected_faults);
    assert_eq!(counters.calls(GROUP_ROUTE), 60 + counters.too_many_requests);
    let outcomes = observer.outcomes("groups.get");
    assert_eq!(outcomes.len() as u64, counters.calls(GROUP_ROUTE));
    assert_eq!(
        outcomes
            .iter()
            .filter(|outcome| **outcome == AttemptOutcome::Status(429))
            .count() as u64,
        counters.too_many_requests
    );
    assert!(
        observer
            .attempts()
            .iter()
            .all(|a| a.will_retry == (a.outcome == AttemptOutcome::Status(429)))
    );
    sim.shutdown().await;
}

#[tokio::test]
async fn injected_429_storm_with_retry_after_completes_and_waits_as_told() {
    let sim = start(SimConfig::default()).await;
    let group_id = sim.state().group_id("group-00002").expect("group");
    let (client, observer) = observed_client(config_for(&sim));

    // One 429 asking for one second: the retry comes no sooner.
    sim.inject_faults(
        Some(GROUP_ROUTE),
        [InjectedFault::TooManyRequests {
            retry_after: Some(Duration::from_secs(1)),
        }],
    );
    let started = Instant::now();
    client
        .group(&group_id)
        .await
        .expect("succeeds after waiting");
    assert!(started.elapsed() >= Duration::from_secs(1));
    assert_eq!(sim.counters().calls(GROUP_ROUTE), 2);

    sim.reset_counters();
    sim.set_faults(FaultConfig {
        too_many_requests_rate: 0.2,
        retry_after: Some(Duration::from_secs(1)),
        ..FaultConfig::none()
    });
    assert_eq!(concurrent_group_reads(&client, &group_id, 30).await, 30);
    let counters = sim.counters();
    assert!(counters.too_many_requests > 0);
    assert_eq!(counters.rate_limited, 0);
    assert_eq!(counters.calls(GROUP_ROUTE), 30 + counters.too_many_requests);
    assert_eq!(
        observer.outcomes("groups.get").len() as u64,
        2 + counters.calls(GROUP_ROUTE)
    );
    sim.shutdown().await;
}

#[tokio::test]
async fn client_limit_below_the_servers_means_no_server_429s() {
    // The simulator allows 20 req/s (10 for group/resource writes) with a burst of 2; the client
    // is set a little lower, so every request should pass the simulator's limiter.
    let sim = start(SimConfig {
        rate_limit: sim::RateLimitConfig {
            enabled: true,
            overall: BucketConfig {
                per_second: 20.0,
                burst: 2.0,
            },
            writes: BucketConfig {
                per_second: 10.0,
                burst: 2.0,
            },
            retry_after_header: false,
        },
        ..SimConfig::default()
    })
    .await;
    let state = sim.state();
    let group_id = state.group_id("group-00003").expect("group");
    let user_ids: Vec<String> = state.users().into_iter().map(|u| u.user_id).collect();
    let limiter = OrgRateLimiter::new(&RateLimitConfig {
        requests_per_second: 18,
        writes_per_second: 9,
        burst: 1,
    })
    .expect("limiter");
    // Two clients of one organisation share the limiter.
    let clients: Vec<Client> = (0..2)
        .map(|_| {
            Client::builder(config_for(&sim), token())
                .rate_limiter(limiter.clone())
                .build()
                .expect("client")
        })
        .collect();

    let reads = futures::stream::iter(0..30)
        .map(|index| clients[index % 2].group(&group_id))
        .buffer_unordered(16)
        .try_collect::<Vec<_>>();
    let indefinite = GrantSpec::indefinite();
    let writes = futures::stream::iter(user_ids.iter().take(20).enumerate())
        .map(|(index, user_id)| {
            clients[index % 2].grant_group_user(&group_id, user_id, &indefinite)
        })
        .buffer_unordered(16)
        .try_collect::<Vec<_>>();
    let (reads, writes) = futures::join!(reads, writes);
    assert_eq!(reads.expect("reads").len(), 30);
    assert_eq!(writes.expect("writes").len(), 20);

    let counters = sim.counters();
    assert_eq!(counters.total, 50);
    assert_eq!(counters.too_many_requests, 0);
    assert_eq!(counters.rate_limited, 0);
    sim.shutdown().await;
}

#[tokio::test]
async fn server_errors_timeouts_and_resets_are_retried_to_success() {
    let sim = start(SimConfig::default()).await;
    let state = sim.state();
    let group_id = state.group_id("group-00004").expect("group");
    let mut config = config_for(&sim);
    config.request_timeout_ms = 300;
    let (client, observer) = observed_client(config);

    sim.inject_faults(
        Some(GROUP_ROUTE),
        [
            InjectedFault::ServerError(500),
            InjectedFault::ServerError(503),
            InjectedFault::Timeout(Duration::from_secs(2), TimeoutOutcome::GatewayTimeout),
            InjectedFault::ConnectionReset,
            InjectedFault::Timeout(Duration::from_millis(50), TimeoutOutcome::Drop),
            InjectedFault::ServerError(502),
        ],
    );
    let group = client.group(&group_id).await.expect("eventually succeeds");
    assert_eq!(group.group_id, group_id);
    assert_eq!(sim.counters().calls(GROUP_ROUTE), 7);
    let outcomes = observer.outcomes("groups.get");
    assert_eq!(outcomes.len(), 7);
    assert_eq!(outcomes[0], AttemptOutcome::Status(500));
    assert_eq!(outcomes[1], AttemptOutcome::Status(503));
    assert_eq!(
        outcomes[2],
        AttemptOutcome::Transport(TransportErrorKind::Timeout)
    );
    assert!(matches!(outcomes[3], AttemptOutcome::Transport(_)));
    assert!(matches!(outcomes[4], AttemptOutcome::Transport(_)));
    assert_eq!(outcomes[5], AttemptOutcome::Status(502));
    assert_eq!(outcomes[6], AttemptOutcome::Status(200));

    // A grant add is retried after a 5xx; the grant exists exactly once afterwards.
    let user_id = state.users()[5].user_id.clone();
    sim.inject_faults(
        Some(ADD_GROUP_USER_ROUTE),
        [
            InjectedFault::ServerError(502),
            InjectedFault::ConnectionReset,
        ],
    );
    let outcome = client
        .grant_group_user(&group_id, &user_id, &GrantSpec::indefinite())
        .await
        .expect("grant");
    assert!(matches!(outcome, GrantOutcome::Granted(_)));
    assert_eq!(sim.counters().calls(ADD_GROUP_USER_ROUTE), 3);
    assert_eq!(
        state
            .group_members(&group_id)
            .iter()
            .filter(|m| m.user_id == user_id)
            .count(),
        1
    );
    sim.shutdown().await;
}

#[tokio::test]
async fn grants_and_revokes_whose_answer_was_lost_are_retried_to_the_same_end() {
    for duplicate in [DuplicateGrant::ReturnExisting, DuplicateGrant::Conflict] {
        let sim = start(SimConfig {
            duplicate_grant: duplicate,
            ..SimConfig::default()
        })
        .await;
        let state = sim.state();
        let group_id = state.group_id("group-00006").expect("group");
        let user_id = state.users()[7].user_id.clone();
        let memberships = || {
            state
                .group_members(&group_id)
                .iter()
                .filter(|m| m.user_id == user_id)
                .count()
        };
        let (client, observer) = observed_client(config_for(&sim));

        // Opal makes the change and the answer never arrives; the retry meets the grant.
        sim.inject_faults(Some(ADD_GROUP_USER_ROUTE), [InjectedFault::LostAnswer]);
        let granted = client
            .grant_group_user(&group_id, &user_id, &GrantSpec::indefinite())
            .await
            .expect("the retried add succeeds");
        match duplicate {
            DuplicateGrant::ReturnExisting => {
                assert!(matches!(granted, GrantOutcome::Granted(_)), "{granted:?}")
            }
            DuplicateGrant::Conflict => {
                assert!(
                    matches!(granted, GrantOutcome::AlreadyPresent),
                    "{granted:?}"
                )
            }
        }
        assert_eq!(memberships(), 1);
        let outcomes = observer.outcomes("groups.users.add");
        assert_eq!(outcomes.len(), 2, "{outcomes:?}");
        assert!(matches!(outcomes[0], AttemptOutcome::Transport(_)));

        // The same for a removal: the retry finds nothing left to remove.
        sim.inject_faults(
            Some("DELETE /groups/{group_id}/users/{user_id}"),
            [InjectedFault::LostAnswer],
        );
        let revoked = client
            .revoke_group_user(&group_id, &user_id, None)
            .await
            .expect("the retried removal succeeds");
        assert_eq!(revoked, RevokeOutcome::AlreadyAbsent);
        assert_eq!(memberships(), 0);

        let counters = sim.counters();
        assert_eq!(counters.lost_answers, 2);
        assert_eq!(counters.handled_write_count(), 4);
        assert!(counters.unexplained_repeats().is_empty());
        sim.shutdown().await;
    }
}

#[tokio::test]
async fn creations_are_not_repeated_after_ambiguous_failures() {
    let sim = start(SimConfig::default()).await;
    let state = sim.state();
    let group_id = state.group_id("group-00005").expect("group");
    let (client, _observer) = observed_client(config_for(&sim));
    let request = CreateRequest {
        reason: "on-call".into(),
        duration_minutes: 60,
        groups: vec![RequestedTarget {
            id: group_id,
            access_level_remote_id: None,
        }],
        ..CreateRequest::default()
    };
    let before = state.requests().len();

    sim.inject_faults(Some("POST /requests"), [InjectedFault::ServerError(500)]);
    let err = client
        .create_request(&request)
        .await
        .expect_err("not retried");
    assert_eq!(err.status(), Some(500));
    assert_eq!(sim.counters().calls("POST /requests"), 1);

    // A 429 means Opal did not act, so it is retried.
    sim.inject_faults(
        Some("POST /requests"),
        [InjectedFault::TooManyRequests { retry_after: None }],
    );
    let id = client.create_request(&request).await.expect("created");
    assert_eq!(sim.counters().calls("POST /requests"), 3);
    assert_eq!(state.requests().len(), before + 1);

    let approved = client
        .approve_request(&id, &ApprovalLevel::Admin, Some("approved by test"))
        .await
        .expect("approve");
    assert_eq!(approved.status, RequestStatus::Approved);
    let commented = client
        .add_request_comment(&id, "second note")
        .await
        .expect("comment");
    assert_eq!(commented.id, id);
    let comments: Vec<String> = client
        .request_comments(&id)
        .await
        .expect("comments")
        .into_iter()
        .map(|c| c.comment)
        .collect();
    assert_eq!(comments, ["approved by test", "second note"]);
    assert_eq!(sim.counters().calls("POST /requests/{id}/approve"), 1);
    sim.shutdown().await;
}

#[tokio::test]
async fn permanent_client_errors_surface_at_once_with_their_body() {
    let sim = start(SimConfig::default()).await;
    let state = sim.state();
    let group_id = state.group_id("group-00006").expect("group");
    let user_id = state.users()[0].user_id.clone();
    let client = Client::new(config_for(&sim), token()).expect("client");

    let missing = "00000000-0000-4000-8000-000000000000";
    let err = client.group(missing).await.expect_err("unknown group");
    match &err {
        OpalError::Api {
            operation,
            status,
            body,
            attempts,
        } => {
            assert_eq!(*operation, "groups.get");
            assert_eq!(*status, 404);
            assert!(body.contains("not found"), "{body}");
            assert_eq!(*attempts, 1);
        }
        other => panic!("unexpected error {other:?}"),
    }
    assert_eq!(err.label(), "not_found");
    assert_eq!(sim.counters().calls(GROUP_ROUTE), 1);

    let too_long = GrantSpec {
        duration_minutes: 600_000,
        access_level_remote_id: None,
    };
    let err = client
        .add_group_user(&group_id, &user_id, &too_long)
        .await
        .expect_err("bad body");
    assert_eq!(err.status(), Some(400));
    assert_eq!(err.label(), "bad_request");
    assert!(err.to_string().contains("525960"), "{err}");
    assert_eq!(sim.counters().calls(ADD_GROUP_USER_ROUTE), 1);

    assert_eq!(
        client
            .user_by_email("nobody@example.com")
            .await
            .expect("lookup"),
        None
    );
    let found = client
        .user_by_email("user000003@example.com")
        .await
        .expect("lookup")
        .expect("known user");
    assert_eq!(
        client.user_by_id(&found.user_id).await.expect("lookup"),
        Some(found)
    );

    let wrong = Client::new(
        config_for(&sim),
        ApiToken::new("not-the-right-token").expect("token"),
    )
    .expect("client");
    sim.reset_counters();
    let err = wrong.list_users().await.expect_err("unauthorized");
    assert_eq!(err.status(), Some(401));
    assert_eq!(sim.counters().total, 1);
    sim.shutdown().await;
}

#[tokio::test]
async fn grants_and_revokes_are_idempotent() {
    let sim = start(SimConfig::default()).await;
    let state = sim.state();
    let group_id = state.group_id("group-00000").expect("group");
    let resource_id = state.resource_id("role-00001").expect("resource");
    let user_id = state.users()[7].user_id.clone();
    let client = Client::new(config_for(&sim), token()).expect("client");
    state.remove_group_member(&group_id, &user_id, "");

    // Opal's behaviour on a duplicate add is undocumented; the simulator's default is 200.
    let first = client
        .grant_group_user(&group_id, &user_id, &GrantSpec::indefinite())
        .await
        .expect("grant");
    let GrantOutcome::Granted(member) = first else {
        panic!("first grant must be Granted");
    };
    assert_eq!(member.user_id, user_id);
    assert!(matches!(
        client
            .grant_group_user(&group_id, &user_id, &GrantSpec::indefinite())
            .await
            .expect("grant"),
        GrantOutcome::Granted(_)
    ));

    sim.set_duplicate_grant(DuplicateGrant::Conflict);
    assert_eq!(
        client
            .grant_group_user(&group_id, &user_id, &GrantSpec::indefinite())
            .await
            .expect("grant"),
        GrantOutcome::AlreadyPresent
    );
    assert_eq!(
        client
            .revoke_group_user(&group_id, &user_id, None)
            .await
            .expect("revoke"),
        RevokeOutcome::Revoked
    );
    assert_eq!(
        client
            .revoke_group_user(&group_id, &user_id, None)
            .await
            .expect("revoke"),
        RevokeOutcome::AlreadyAbsent
    );
    assert!(
        state
            .group_members(&group_id)
            .iter()
            .all(|m| m.user_id != user_id)
    );

    let admin = format!(
        "{}/admin",
        client
            .resource(&resource_id)
            .await
            .expect("resource")
            .remote_resource_id
            .expect("arn")
    );
    let grant = GrantSpec {
        duration_minutes: 120,
        access_level_remote_id: Some(admin.clone()),
    };
    let GrantOutcome::Granted(granted) = client
        .grant_resource_user(&resource_id, &user_id, &grant)
        .await
        .expect("grant")
    else {
        panic!("first resource grant must be Granted");
    };
    assert_eq!(granted.access_level.access_level_remote_id, admin);
    assert!(granted.expiration_date.is_some());
    assert_eq!(
        client
            .grant_resource_user(&resource_id, &user_id, &grant)
            .await
            .expect("grant"),
        GrantOutcome::AlreadyPresent
    );
    assert_eq!(
        client
            .revoke_resource_user(&resource_id, &user_id, Some(&admin))
            .await
            .expect("revoke"),
        RevokeOutcome::Revoked
    );
    assert_eq!(
        client
            .revoke_resource_user(&resource_id, &user_id, Some(&admin))
            .await
            .expect("revoke"),
        RevokeOutcome::AlreadyAbsent
    );
    assert!(
        state
            .resource_direct_users(&resource_id)
            .iter()
            .all(|g| g.user_id != user_id)
    );
    sim.shutdown().await;
}

/// A `tracing` writer that appends to a shared buffer.
#[derive(Clone, Default)]
struct CapturedLogs(Arc<Mutex<Vec<u8>>>);

impl CapturedLogs {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap_or_else(PoisonError::into_inner)).into_owned()
    }
}

impl Write for CapturedLogs {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test]
async fn the_token_never_appears_in_logs_errors_or_debug_output() {
    use tracing_subscriber::util::SubscriberInitExt;

    let logs = CapturedLogs::default();
    let writer = logs.clone();
    // The test runtime is single-threaded, so this thread-local subscriber sees the client,
    // the HTTP stack and the simulator.
    let _guard = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .finish()
        .set_default();

    let sim = start(SimConfig::default()).await;
    let group_id = sim.state().group_id("group-00001").expect("group");
    let mut config = config_for(&sim);
    config.request_timeout_ms = 300;
    let client = Client::new(config.clone(), token()).expect("client");

    client.list_users().await.expect("users");
    sim.inject_faults(
        Some(GROUP_ROUTE),
        [
            InjectedFault::TooManyRequests {
                retry_after: Some(Duration::from_secs(1)),
            },
            InjectedFault::ConnectionReset,
            InjectedFault::Timeout(Duration::from_secs(1), TimeoutOutcome::Drop),
        ],
    );
    client.group(&group_id).await.expect("group after retries");

    let mut errors: Vec<OpalError> = Vec::new();
    errors.push(client.group("missing").await.expect_err("404"));
    sim.inject_faults(Some("POST /requests"), [InjectedFault::ConnectionReset]);
    errors.push(
        client
            .create_request(&CreateRequest {
                reason: "x".into(),
                ..CreateRequest::default()
            })
            .await
            .expect_err("reset, not retried"),
    );
    let unreachable = Client::new(
        ClientConfig {
            base_url: "http://127.0.0.1:9/v1".into(),
            retry: RetryConfig {
                max_attempts: 2,
                initial_backoff_ms: 1,
                max_backoff_ms: 1,
                max_total_delay_ms: 1_000,
            },
            ..config.clone()
        },
        token(),
    )
    .expect("client");
    errors.push(unreachable.list_users().await.expect_err("connect error"));
    errors.push(ApiToken::new(format!("{TOKEN} x")).expect_err("malformed token"));

    let mut exposed = logs.text();
    assert!(exposed.contains("opal_call"), "client spans were captured");
    assert!(exposed.contains("groups.get"));
    for err in &errors {
        exposed.push_str(&format!("{err}\n{err:?}\n{}\n", err.label()));
    }
    exposed.push_str(&format!(
        "{client:?}\n{unreachable:?}\n{config:?}\n{:?}\n{}\n",
        token(),
        token()
    ));
    assert!(
        !exposed.contains(TOKEN),
        "token leaked somewhere in:\n{exposed}"
    );
    assert!(!exposed.contains(&TOKEN[12..]), "token fragment leaked");
    assert_eq!(errors[2].label(), "connect");
    sim.shutdown().await;
}

#[tokio::test]
async fn every_endpoint_round_trips_against_the_simulator() {
    use opal_operator::opal::model::{
        CreateMessageChannel, CreateUar, MessageChannelProvider, ReviewerAssignmentPolicy,
        ReviewerStage, ReviewerStageOperator, UpdateGroupInfo, UpdateResourceInfo, Visibility,
        VisibilityInfo,
    };

    let sim = start(SimConfig::default()).await;
    let state = sim.state();
    let client = Client::new(config_for(&sim), token()).expect("client");
    let group_id = state.group_id("group-00000").expect("group");
    let resource_id = state.resource_id("role-00000").expect("resource");
    let owner_id = state.owner_id("Security").expect("owner");
    let user_id = state.users()[2].user_id.clone();

    // Groups: configuration.
    let group = client.group(&group_id).await.expect("group");
    assert_eq!(group.name, "group-00000");
    assert_eq!(
        group.group_type,
        Some(opal_operator::opal::model::GroupType::OktaGroup)
    );
    let echoed = client
        .update_groups(&[UpdateGroupInfo {
            group_id: group_id.clone(),
            description: Some("updated by test".into()),
            ..UpdateGroupInfo::default()
        }])
        .await
        .expect("bulk update");
    assert_eq!(echoed.len(), 1);
    assert_eq!(
        client.group(&group_id).await.expect("group").description,
        "updated by test"
    );
    let limited = VisibilityInfo {
        visibility: Visibility::Limited,
        visibility_group_ids: vec![group_id.clone()],
    };
    assert_eq!(
        client
            .set_group_visibility(&group_id, &limited)
            .await
            .expect("set visibility"),
        limited
    );
    assert_eq!(
        client
            .group_visibility(&group_id)
            .await
            .expect("visibility"),
        limited
    );
    let stages = vec![ReviewerStage {
        require_manager_approval: true,
        operator: Some(ReviewerStageOperator::And),
        owner_ids: vec![owner_id.clone()],
        ..ReviewerStage::default()
    }];
    let set = client
        .set_group_reviewer_stages(&group_id, &stages)
        .await
        .expect("set stages");
    assert_eq!(set.len(), 1);
    assert_eq!(set[0].owner_ids, std::slice::from_ref(&owner_id));
    assert_eq!(
        client
            .group_reviewer_stages(&group_id)
            .await
            .expect("stages"),
        set
    );
    let channel_ids: Vec<String> = client
        .list_message_channels()
        .await
        .expect("channels")
        .into_iter()
        .map(|c| c.message_channel_id)
        .collect();
    assert_eq!(
        client
            .set_group_message_channels(&group_id, &channel_ids[..1])
            .await
            .expect("set channels"),
        channel_ids[..1]
    );
    assert_eq!(
        client
            .group_message_channels(&group_id)
            .await
            .expect("channels")
            .len(),
        1
    );

    // Groups: a membership's whole life.
    client
        .add_group_user(&group_id, &user_id, &GrantSpec::indefinite())
        .await
        .expect("add");
    let updated = client
        .update_group_user(
            &group_id,
            &user_id,
            &GrantSpec {
                duration_minutes: 60,
                access_level_remote_id: None,
            },
        )
        .await
        .expect("update");
    assert!(updated.expiration_date.is_some());
    client
        .remove_group_user(&group_id, &user_id, None)
        .await
        .expect("remove");
    assert!(
        state
            .group_members(&group_id)
            .iter()
            .all(|m| m.user_id != user_id)
    );

    // Resources.
    client
        .update_resources(&[UpdateResourceInfo {
            resource_id: resource_id.clone(),
            admin_owner_id: Some(owner_id.clone()),
            description: Some("resource note".into()),
            ..UpdateResourceInfo::default()
        }])
        .await
        .expect("bulk update");
    let resource = client.resource(&resource_id).await.expect("resource");
    assert_eq!(resource.description, "resource note");
    assert_eq!(resource.admin_owner_id.as_deref(), Some(owner_id.as_str()));
    assert_eq!(
        client
            .set_resource_visibility(&resource_id, &limited)
            .await
            .expect("visibility"),
        limited
    );
    assert_eq!(
        client
            .resource_visibility(&resource_id)
            .await
            .expect("visibility"),
        limited
    );
    assert_eq!(
        client
            .set_resource_reviewer_stages(&resource_id, &stages)
            .await
            .expect("stages")
            .len(),
        1
    );
    assert_eq!(
        client
            .resource_reviewer_stages(&resource_id)
            .await
            .expect("stages")
            .len(),
        1
    );
    client
        .set_resource_message_channels(&resource_id, &channel_ids)
        .await
        .expect("channels");
    assert_eq!(
        client
            .resource_message_channels(&resource_id)
            .await
            .expect("channels")
            .len(),
        channel_ids.len()
    );
    client
        .add_resource_user(&resource_id, &user_id, &GrantSpec::indefinite())
        .await
        .expect("add");
    let updated = client
        .update_resource_user(
            &resource_id,
            &user_id,
            &GrantSpec {
                duration_minutes: 30,
                access_level_remote_id: None,
            },
        )
        .await
        .expect("update");
    assert!(updated.expiration_date.is_some());
    client
        .remove_resource_user(&resource_id, &user_id, None)
        .await
        .expect("remove");
    assert!(state.resource_direct_users(&resource_id).is_empty());

    // Owners.
    assert_eq!(
        client.owner(&owner_id).await.expect("owner").name,
        "Security"
    );
    let owner_users = client
        .set_owner_users(&owner_id, std::slice::from_ref(&user_id))
        .await
        .expect("set owner users");
    assert_eq!(owner_users[0].user_id, user_id);
    assert_eq!(
        client.owner_users(&owner_id).await.expect("owner users"),
        owner_users
    );

    // Tags.
    let tag = client.create_tag("env", Some("prod")).await.expect("tag");
    assert_eq!(
        client
            .tag_by_key("env", Some("prod"))
            .await
            .expect("lookup")
            .map(|t| t.tag_id),
        Some(tag.tag_id.clone())
    );
    assert_eq!(
        client.tag_by_key("absent", None).await.expect("lookup"),
        None
    );
    client
        .add_tag_to_user(&tag.tag_id, &user_id)
        .await
        .expect("tag user");
    client
        .add_tag_to_group(&tag.tag_id, &group_id)
        .await
        .expect("tag group");
    client
        .add_tag_to_resource(&tag.tag_id, &resource_id)
        .await
        .expect("tag resource");
    let has_tag =
        |tags: Vec<opal_operator::opal::model::Tag>| tags.iter().any(|t| t.tag_id == tag.tag_id);
    assert!(has_tag(client.user_tags(&user_id).await.expect("tags")));
    assert!(has_tag(client.group_tags(&group_id).await.expect("tags")));
    assert!(has_tag(
        client.resource_tags(&resource_id).await.expect("tags")
    ));
    client
        .remove_tag_from_user(&tag.tag_id, &user_id)
        .await
        .expect("untag");
    client
        .remove_tag_from_group(&tag.tag_id, &group_id)
        .await
        .expect("untag");
    client
        .remove_tag_from_resource(&tag.tag_id, &resource_id)
        .await
        .expect("untag");
    assert!(!has_tag(client.user_tags(&user_id).await.expect("tags")));
    assert!(!has_tag(client.group_tags(&group_id).await.expect("tags")));
    assert!(!has_tag(
        client.resource_tags(&resource_id).await.expect("tags")
    ));

    // Requests: deny one from the fixture.
    let pending = client
        .list_requests(&RequestFilter {
            pending_only: true,
            ..RequestFilter::default()
        })
        .await
        .expect("pending");
    assert_eq!(pending.len(), 9);
    let denied = client
        .deny_request(&pending[0].id, "not justified", None)
        .await
        .expect("deny");
    assert_eq!(denied.status, RequestStatus::Denied);
    assert_eq!(
        client
            .request(&pending[0].id)
            .await
            .expect("request")
            .status,
        RequestStatus::Denied
    );

    // UARs.
    let uar = client
        .create_uar(&CreateUar {
            name: "Quarterly".into(),
            deadline: Utc
                .with_ymd_and_hms(2031, 3, 31, 23, 0, 0)
                .single()
                .expect("date"),
            reviewer_assignment_policy: ReviewerAssignmentPolicy::ByManager,
            send_reviewer_assignment_notification: false,
            time_zone: "Europe/Berlin".into(),
            self_review_allowed: false,
            instantly_action_reviews: None,
            reminder_schedule: vec![7, 1],
            reminder_include_manager: None,
            uar_scope: None,
        })
        .await
        .expect("create uar");
    let fetched = client.uar(&uar.uar_id).await.expect("uar");
    assert_eq!(fetched.name, "Quarterly");
    assert_eq!(
        fetched.reviewer_assignment_policy,
        Some(ReviewerAssignmentPolicy::ByManager)
    );

    // Message channels and bundles.
    let channel = client
        .create_message_channel(&CreateMessageChannel {
            third_party_provider: MessageChannelProvider::Slack,
            remote_id: "C0999".into(),
        })
        .await
        .expect("create channel");
    assert_eq!(
        client
            .message_channel(&channel.message_channel_id)
            .await
            .expect("channel")
            .remote_id,
        "C0999"
    );
    let named = client
        .bundles(Some("bundle-3"))
        .collect_all()
        .await
        .expect("bundles");
    assert_eq!(named.len(), 1);

    // Events: the writes above are in the audit log, filterable by object.
    let about_group = client
        .list_events(&EventFilter {
            object_id: Some(group_id.clone()),
            ..EventFilter::default()
        })
        .await
        .expect("events");
    assert!(
        about_group
            .iter()
            .any(|e| e.event_type == "GROUP_USER_ADDED")
    );
    let one = client.event(&about_group[0].event_id).await.expect("event");
    assert_eq!(one, about_group[0]);

    let counters = sim.counters();
    let unexpected: Vec<_> = counters
        .by_route_status
        .iter()
        .filter(|((route, status), _)| *status >= 300 && route != "GET /tag")
        .collect();
    assert!(unexpected.is_empty(), "{unexpected:?}");
    sim.shutdown().await;
}
