//! The Opal simulator over real HTTP, driven with plain reqwest (not the operator's client):
//! auth, every pagination style, grant semantics, indirect access, the rate limiter, fault
//! injection, the audit log, latency and direct state access.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use chrono::{TimeDelta, TimeZone, Utc};
use opal_operator::sim::opal::{
    AccessLevel, BucketConfig, DuplicateGrant, FaultConfig, FixtureBundle, FixtureResource,
    FixtureUser, GrantTarget, InjectedFault, NewRequest, OrgFixture, RateLimitConfig,
    RunningOpalSim, SimConfig, TimeoutOutcome, UnexplainedRepeat,
};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

const ADD_GROUP_USER: &str = "POST /groups/{group_id}/users/{user_id}";

fn example_fixture() -> OrgFixture {
    OrgFixture::from_path(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/examples/opal-sim-fixture.yaml"
    ))
    .expect("example fixture loads")
}

fn quiet_config() -> SimConfig {
    SimConfig {
        rate_limit: RateLimitConfig::disabled(),
        ..SimConfig::default()
    }
}

async fn start(fixture: OrgFixture, config: SimConfig) -> RunningOpalSim {
    RunningOpalSim::start(fixture, config)
        .await
        .expect("simulator starts")
}

/// A bare HTTP client pointed at the simulator.
struct Api {
    client: reqwest::Client,
    base: String,
    token: String,
}

/// One answer: status, headers, and the body as JSON (`Null` when empty).
struct Answer {
    status: StatusCode,
    headers: reqwest::header::HeaderMap,
    body: Value,
}

impl Api {
    fn new(sim: &RunningOpalSim) -> Self {
        Self {
            client: reqwest::Client::new(),
            base: sim.base_url(),
            token: sim.token(),
        }
    }

    async fn send(&self, method: Method, path: &str, body: Option<Value>) -> Answer {
        self.try_send(method, path, body)
            .await
            .unwrap_or_else(|err| panic!("{path}: {err}"))
    }

    async fn try_send(
        &self,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> Result<Answer, reqwest::Error> {
        let mut request = self
            .client
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(&self.token);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await?;
        let status = response.status();
        let headers = response.headers().clone();
        let text = response.text().await?;
        let body = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or(Value::String(text))
        };
        Ok(Answer {
            status,
            headers,
            body,
        })
    }

    async fn get(&self, path: &str) -> Value {
        let answer = self.send(Method::GET, path, None).await;
        assert_eq!(answer.status, StatusCode::OK, "GET {path}: {}", answer.body);
        answer.body
    }
}

fn join(path: &str, param: &str, value: &str) -> String {
    let separator = if path.contains('?') { '&' } else { '?' };
    let encoded: String = url::form_urlencoded::byte_serialize(value.as_bytes()).collect();
    format!("{path}{separator}{param}={encoded}")
}

/// Follows a cursor-paginated list to its end (bounded), returning the ids in order and the
/// number of pages.
async fn walk(
    api: &Api,
    path: &str,
    items: impl Fn(&Value) -> Vec<Value>,
    next: impl Fn(&Value) -> Option<String>,
    cursor_param: &str,
    id: impl Fn(&Value) -> String,
) -> (Vec<String>, usize) {
    let mut ids = Vec::new();
    let mut url = path.to_owned();
    for page in 1..=2000 {
        let body = api.get(&url).await;
        ids.extend(items(&body).iter().map(&id));
        match next(&body) {
            Some(cursor) => url = join(path, cursor_param, &cursor),
            None => return (ids, page),
        }
    }
    panic!("{path}: pagination did not end");
}

fn results(body: &Value) -> Vec<Value> {
    body["results"].as_array().cloned().unwrap_or_default()
}

fn next_field(body: &Value) -> Option<String> {
    body["next"].as_str().map(str::to_owned)
}

fn field(name: &'static str) -> impl Fn(&Value) -> String {
    move |item: &Value| {
        item[name]
            .as_str()
            .unwrap_or_else(|| panic!("item has {name}: {item}"))
            .to_owned()
    }
}

fn assert_unique(ids: &[String]) {
    let unique: BTreeSet<&String> = ids.iter().collect();
    assert_eq!(unique.len(), ids.len(), "duplicates in {ids:?}");
}

#[tokio::test]
async fn requests_without_the_right_token_get_401_with_a_body() {
    let sim = start(example_fixture(), quiet_config()).await;
    let client = reqwest::Client::new();
    let url = format!("{}/users", sim.base_url());

    let missing = client.get(&url).send().await.expect("answered");
    assert_eq!(missing.status(), StatusCode::UNAUTHORIZED);
    let body: Value = missing.json().await.expect("JSON error body");
    assert_eq!(body["code"], 401);
    assert!(body["message"].as_str().is_some_and(|m| !m.is_empty()));

    let wrong = client
        .get(&url)
        .bearer_auth("not-the-token")
        .send()
        .await
        .expect("answered");
    assert_eq!(wrong.status(), StatusCode::UNAUTHORIZED);

    let right = client
        .get(&url)
        .bearer_auth(sim.token())
        .send()
        .await
        .expect("answered");
    assert_eq!(right.status(), StatusCode::OK);

    let counters = sim.counters();
    assert_eq!(counters.total, 3);
    assert_eq!(counters.status(401), 2);
    assert_eq!(counters.calls_with_status("GET /users", 200), 1);
    sim.shutdown().await;
}

#[tokio::test]
async fn standard_pages_visit_every_item_exactly_once() {
    let fixture = OrgFixture::synthetic(57, 6, 4, 4, 7);
    let sim = start(
        fixture,
        SimConfig {
            page_cap: Some(4),
            ..quiet_config()
        },
    )
    .await;
    let api = Api::new(&sim);
    let state = sim.state();

    let (users, pages) = walk(
        &api,
        "/users",
        results,
        next_field,
        "cursor",
        field("user_id"),
    )
    .await;
    assert_eq!(pages, 15);
    assert_unique(&users);
    let expected: Vec<String> = state.users().into_iter().map(|u| u.user_id).collect();
    assert_eq!(users, expected);

    let group = state.group_id("group-00003").expect("group");
    let (members, _) = walk(
        &api,
        &format!("/groups/{group}/users?page_size=3"),
        results,
        next_field,
        "cursor",
        field("user_id"),
    )
    .await;
    assert_unique(&members);
    let expected: Vec<String> = state
        .group_members(&group)
        .into_iter()
        .map(|grant| grant.user_id)
        .collect();
    assert!(expected.len() > 4, "enough members to need pages");
    assert_eq!(members, expected);

    let user = expected[0].clone();
    let (groups, _) = walk(
        &api,
        &format!("/groups/users/{user}"),
        results,
        next_field,
        "cursor",
        field("group_id"),
    )
    .await;
    assert_eq!(groups.len(), 4);
    assert_unique(&groups);

    // The previous cursor leads back to the page before.
    let first = api.get("/users").await;
    let next = next_field(&first).expect("second page");
    let second = api.get(&join("/users", "cursor", &next)).await;
    let previous = second["previous"].as_str().expect("previous cursor");
    let back = api.get(&join("/users", "cursor", previous)).await;
    assert_eq!(back["results"], first["results"]);
    assert!(first["previous"].is_null());
    sim.shutdown().await;
}

#[tokio::test]
async fn a_walk_neither_skips_nor_repeats_while_users_are_added() {
    let sim = start(
        OrgFixture::synthetic(30, 1, 1, 1, 3),
        SimConfig {
            page_cap: Some(5),
            ..quiet_config()
        },
    )
    .await;
    let api = Api::new(&sim);
    let state = sim.state();
    let before: Vec<String> = state.users().into_iter().map(|u| u.user_id).collect();

    let mut seen = Vec::new();
    let mut url = "/users".to_owned();
    for page in 0..100 {
        let body = api.get(&url).await;
        seen.extend(results(&body).iter().map(field("user_id")));
        // Someone is hired while the walk is under way.
        state
            .add_user(FixtureUser {
                email: format!("hire{page}@example.com"),
                first_name: "New".into(),
                last_name: format!("Hire{page}"),
                ..FixtureUser::default()
            })
            .expect("user added");
        match next_field(&body) {
            Some(cursor) => url = join("/users", "cursor", &cursor),
            None => break,
        }
    }
    assert_unique(&seen);
    for user in &before {
        assert!(seen.contains(user), "{user} was skipped");
    }
    sim.shutdown().await;
}

#[tokio::test]
async fn limit_style_lists_follow_next_cursors() {
    let fixture = OrgFixture::synthetic(40, 2, 2, 2, 11);
    let sim = start(fixture, quiet_config()).await;
    let api = Api::new(&sim);
    let state = sim.state();
    let resource = state.resource_id("role-00000").expect("resource");

    let (users, pages) = walk(
        &api,
        &format!("/resources/{resource}/users?limit=3"),
        results,
        next_field,
        "cursor",
        field("user_id"),
    )
    .await;
    assert_unique(&users);
    let expected: Vec<String> = state
        .resource_access(&resource)
        .into_iter()
        .map(|access| access.user_id)
        .collect();
    assert!(expected.len() > 3, "needs several pages");
    assert_eq!(users, expected);
    assert_eq!(pages, expected.len().div_ceil(3));

    let user = expected[0].clone();
    let (resources, _) = walk(
        &api,
        &format!("/resources/users/{user}?limit=1&include_unmanaged=false"),
        results,
        next_field,
        "cursor",
        field("resource_id"),
    )
    .await;
    assert!(resources.contains(&resource));
    assert_unique(&resources);
    sim.shutdown().await;
}

fn many_bundles(count: usize) -> OrgFixture {
    let mut fixture = example_fixture();
    fixture.bundles = (0..count)
        .map(|index| FixtureBundle {
            name: format!("bundle {index:02}"),
            ..FixtureBundle::default()
        })
        .collect();
    fixture
}

#[tokio::test]
async fn bundle_requests_and_relay_styles_walk_to_the_end() {
    let sim = start(
        many_bundles(11),
        SimConfig {
            page_cap: Some(4),
            ..quiet_config()
        },
    )
    .await;
    let api = Api::new(&sim);
    let state = sim.state();

    let first = api.get("/bundles?page_size=3").await;
    assert_eq!(first["total_count"], 11);
    let (bundles, pages) = walk(
        &api,
        "/bundles?page_size=3",
        |body| body["bundles"].as_array().cloned().unwrap_or_default(),
        next_field,
        "cursor",
        field("bundle_id"),
    )
    .await;
    assert_eq!(bundles.len(), 11);
    assert_eq!(pages, 4);
    assert_unique(&bundles);

    let requester = state
        .user_by_email("erin.park@acme.example")
        .expect("erin")
        .user_id;
    let warehouse = state.resource_id("Analytics Warehouse").expect("resource");
    for index in 0..10 {
        state
            .add_pending_request(NewRequest {
                requester_id: requester.clone(),
                target_user_id: None,
                reason: format!("reason {index}"),
                duration_minutes: 60,
                items: vec![(GrantTarget::Resource(warehouse.clone()), String::new())],
            })
            .expect("request added");
    }
    let all: Vec<String> = state.requests().into_iter().map(|r| r.id).collect();
    assert_eq!(all.len(), 13);

    let (requests, _) = walk(
        &api,
        "/requests?page_size=3",
        |body| body["requests"].as_array().cloned().unwrap_or_default(),
        |body| body["cursor"].as_str().map(str::to_owned),
        "cursor",
        field("id"),
    )
    .await;
    assert_eq!(requests, all);

    let edges = |body: &Value| {
        body["edges"]
            .as_array()
            .cloned()
            .unwrap_or_default()
            .into_iter()
            .map(|edge| edge["node"].clone())
            .collect()
    };
    let (forward, pages) = walk(
        &api,
        "/requests/relay?first=4",
        edges,
        |body| {
            (body["pageInfo"]["hasNextPage"] == true)
                .then(|| body["pageInfo"]["endCursor"].as_str().map(str::to_owned))
                .flatten()
        },
        "after",
        field("id"),
    )
    .await;
    assert_eq!(forward, all);
    assert_eq!(pages, 4);
    let relay = api.get("/requests/relay?first=2").await;
    assert_eq!(relay["totalCount"], 13);

    // Backwards with last/before yields the same items, page by page from the end.
    let mut backward = Vec::new();
    let mut url = "/requests/relay?last=5".to_owned();
    for _ in 0..20 {
        let body = api.get(&url).await;
        let mut page: Vec<String> = edges(&body).iter().map(field("id")).collect();
        page.extend(backward);
        backward = page;
        if body["pageInfo"]["hasPreviousPage"] != true {
            break;
        }
        let start = body["pageInfo"]["startCursor"]
            .as_str()
            .expect("start cursor");
        url = join("/requests/relay?last=5", "before", start);
    }
    assert_eq!(backward, all);
    sim.shutdown().await;
}

#[tokio::test]
async fn data_cursor_style_lists_one_users_direct_grants() {
    let mut fixture = example_fixture();
    fixture.resources.push(FixtureResource {
        name: "Multi-role".into(),
        ..FixtureResource::default()
    });
    let sim = start(
        fixture,
        SimConfig {
            page_cap: Some(1),
            ..quiet_config()
        },
    )
    .await;
    let api = Api::new(&sim);
    let state = sim.state();
    let resource = state.resource_id("Multi-role").expect("resource");
    let user = state
        .user_by_email("bob.okafor@acme.example")
        .expect("bob")
        .user_id;
    for level in ["", "reader", "writer"] {
        state
            .add_resource_user(&resource, &user, AccessLevel::new("", level), None)
            .expect("grant");
    }
    let path = format!("/resources/{resource}/users/{user}");
    let first = api.get(&path).await;
    assert_eq!(first["total_count"], 3);
    let (levels, pages) = walk(
        &api,
        &path,
        |body| body["data"].as_array().cloned().unwrap_or_default(),
        |body| body["cursor"].as_str().map(str::to_owned),
        "cursor",
        |item| {
            item["access_level"]["access_level_remote_id"]
                .as_str()
                .unwrap_or("?")
                .to_owned()
        },
    )
    .await;
    assert_eq!(levels, ["", "reader", "writer"]);
    assert_eq!(pages, 3);

    let unknown = "00000000-0000-4000-8000-000000000000";
    let missing_user = api
        .send(
            Method::GET,
            &format!("/resources/{resource}/users/{unknown}"),
            None,
        )
        .await;
    assert_eq!(missing_user.status, StatusCode::NOT_FOUND);
    let missing_resource = api
        .send(
            Method::GET,
            &format!("/resources/{unknown}/users/{user}"),
            None,
        )
        .await;
    assert_eq!(missing_resource.status, StatusCode::NOT_FOUND);
    sim.shutdown().await;
}

#[tokio::test]
async fn grants_follow_the_configured_duplicate_and_removal_rules() {
    let sim = start(example_fixture(), quiet_config()).await;
    let api = Api::new(&sim);
    let state = sim.state();
    let start_time = Utc
        .with_ymd_and_hms(2030, 1, 2, 3, 4, 5)
        .single()
        .expect("time");
    state.freeze_clock(start_time);
    let group = state.group_id("Sales").expect("group");
    let user = state
        .user_by_email("erin.park@acme.example")
        .expect("erin")
        .user_id;
    let path = format!("/groups/{group}/users/{user}");

    let added = api
        .send(Method::POST, &path, Some(json!({ "duration_minutes": 90 })))
        .await;
    assert_eq!(added.status, StatusCode::OK, "{}", added.body);
    assert_eq!(added.body["user_id"], user.as_str());
    assert_eq!(added.body["access_level"]["access_level_remote_id"], "");
    assert_eq!(added.body["expiration_date"], "2030-01-02T04:34:05.000Z");
    let events_after_add = state.events().len();

    // Default: a duplicate add is answered with the existing grant and changes nothing.
    let again = api
        .send(Method::POST, &path, Some(json!({ "duration_minutes": 0 })))
        .await;
    assert_eq!(again.status, StatusCode::OK);
    assert_eq!(again.body["expiration_date"], "2030-01-02T04:34:05.000Z");
    assert_eq!(state.events().len(), events_after_add);

    sim.set_duplicate_grant(DuplicateGrant::Conflict);
    let conflict = api
        .send(Method::POST, &path, Some(json!({ "duration_minutes": 0 })))
        .await;
    assert_eq!(conflict.status, StatusCode::CONFLICT);
    assert_eq!(conflict.body["code"], 409);
    assert_eq!(
        state
            .group_members(&group)
            .iter()
            .filter(|g| g.user_id == user)
            .count(),
        1
    );

    // A second level is a separate grant; removing one level leaves the other.
    let second = api
        .send(
            Method::POST,
            &path,
            Some(json!({ "duration_minutes": 0, "access_level_remote_id": "member-plus" })),
        )
        .await;
    assert_eq!(second.status, StatusCode::OK);
    let removed = api
        .send(
            Method::DELETE,
            &format!("{path}?access_level_remote_id=member-plus"),
            None,
        )
        .await;
    assert_eq!(removed.status, StatusCode::OK);
    assert!(removed.body.is_null(), "no body: {}", removed.body);
    let levels: Vec<String> = state
        .group_members(&group)
        .into_iter()
        .filter(|grant| grant.user_id == user)
        .map(|grant| grant.access_level.remote_id)
        .collect();
    assert_eq!(levels, [""]);

    let gone = api.send(Method::DELETE, &path, None).await;
    assert_eq!(gone.status, StatusCode::OK);
    let absent = api.send(Method::DELETE, &path, None).await;
    assert_eq!(absent.status, StatusCode::NOT_FOUND);
    assert_eq!(absent.body["code"], 404);

    for (body, why) in [
        (json!({}), "missing duration"),
        (json!({ "duration_minutes": 525_961 }), "too long"),
        (json!({ "duration_minutes": -5 }), "negative on POST"),
        (json!({ "duration_minutes": "sixty" }), "wrong type"),
    ] {
        let answer = api.send(Method::POST, &path, Some(body)).await;
        assert_eq!(answer.status, StatusCode::BAD_REQUEST, "{why}");
    }
    let malformed = reqwest::Client::new()
        .post(format!("{}{path}", sim.base_url()))
        .bearer_auth(sim.token())
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .expect("answered");
    assert_eq!(malformed.status(), StatusCode::BAD_REQUEST);

    let unknown = "00000000-0000-4000-8000-000000000000";
    for path in [
        format!("/groups/{unknown}/users/{user}"),
        format!("/groups/{group}/users/{unknown}"),
    ] {
        let answer = api
            .send(Method::POST, &path, Some(json!({ "duration_minutes": 0 })))
            .await;
        assert_eq!(answer.status, StatusCode::NOT_FOUND, "{path}");
    }

    // A declared access level is enforced on resources that list levels.
    let production = state.resource_id("AWS Production").expect("resource");
    let undeclared = api
        .send(
            Method::POST,
            &format!("/resources/{production}/users/{user}"),
            Some(json!({ "duration_minutes": 0, "access_level_remote_id": "arn:nope" })),
        )
        .await;
    assert_eq!(undeclared.status, StatusCode::BAD_REQUEST);

    // PUT changes the duration; a negative duration revokes a group membership.
    api.send(Method::POST, &path, Some(json!({ "duration_minutes": 0 })))
        .await;
    let updated = api
        .send(Method::PUT, &path, Some(json!({ "duration_minutes": 30 })))
        .await;
    assert_eq!(updated.status, StatusCode::OK);
    assert_eq!(updated.body["expiration_date"], "2030-01-02T03:34:05.000Z");
    let revoked = api
        .send(Method::PUT, &path, Some(json!({ "duration_minutes": -1 })))
        .await;
    assert_eq!(revoked.status, StatusCode::OK);
    assert!(
        state
            .group_members(&group)
            .iter()
            .all(|g| g.user_id != user)
    );
    let resource_negative = api
        .send(
            Method::PUT,
            &format!("/resources/{production}/users/{user}"),
            Some(json!({ "duration_minutes": -1 })),
        )
        .await;
    assert_eq!(resource_negative.status, StatusCode::BAD_REQUEST);

    // Timed grants lapse with the simulator's clock.
    api.send(Method::POST, &path, Some(json!({ "duration_minutes": 10 })))
        .await;
    assert!(
        state
            .group_members(&group)
            .iter()
            .any(|g| g.user_id == user)
    );
    state.advance_clock(TimeDelta::minutes(11));
    assert!(
        state
            .group_members(&group)
            .iter()
            .all(|g| g.user_id != user)
    );
    let listed = api.get(&format!("/groups/{group}/users")).await;
    assert!(
        results(&listed)
            .iter()
            .all(|member| member["user_id"] != user.as_str())
    );
    sim.shutdown().await;
}

#[tokio::test]
async fn resource_users_include_access_through_groups() {
    let sim = start(example_fixture(), quiet_config()).await;
    let api = Api::new(&sim);
    let state = sim.state();
    let staging = state.resource_id("AWS Staging").expect("resource");
    let sales = state.group_id("Sales").expect("group");
    let carol = state
        .user_by_email("carol.schmidt@acme.example")
        .expect("carol")
        .user_id;
    let access_of = |body: &Value| {
        results(body)
            .into_iter()
            .find(|entry| entry["user_id"] == carol.as_str())
    };

    assert!(access_of(&api.get(&format!("/resources/{staging}/users")).await).is_none());
    state
        .link_group_resource(&sales, &staging, "")
        .expect("link");
    let added = api
        .send(
            Method::POST,
            &format!("/groups/{sales}/users/{carol}"),
            Some(json!({ "duration_minutes": 0 })),
        )
        .await;
    assert_eq!(added.status, StatusCode::OK);
    let indirect = access_of(&api.get(&format!("/resources/{staging}/users")).await)
        .expect("access through Sales");
    assert_eq!(indirect["has_direct_access"], false);
    assert_eq!(indirect["num_access_paths"], 1);

    let direct = api
        .send(
            Method::POST,
            &format!("/resources/{staging}/users/{carol}"),
            Some(json!({ "duration_minutes": 0 })),
        )
        .await;
    assert_eq!(direct.status, StatusCode::OK);
    let both = access_of(&api.get(&format!("/resources/{staging}/users")).await).expect("access");
    assert_eq!(both["has_direct_access"], true);
    assert_eq!(both["num_access_paths"], 2);

    // Removing the direct grant leaves the group path.
    let removed = api
        .send(
            Method::DELETE,
            &format!("/resources/{staging}/users/{carol}"),
            None,
        )
        .await;
    assert_eq!(removed.status, StatusCode::OK);
    let remaining =
        access_of(&api.get(&format!("/resources/{staging}/users")).await).expect("still reachable");
    assert_eq!(remaining["has_direct_access"], false);
    assert_eq!(remaining["num_access_paths"], 1);
    assert!(
        state
            .resource_direct_users(&staging)
            .iter()
            .all(|g| g.user_id != carol)
    );

    let mine = api.get(&format!("/resources/users/{carol}")).await;
    assert!(
        results(&mine)
            .iter()
            .any(|entry| entry["resource_id"] == staging.as_str())
    );
    sim.shutdown().await;
}

#[tokio::test]
async fn the_rate_limiter_answers_429_beyond_the_bucket() {
    let sim = start(
        example_fixture(),
        SimConfig {
            rate_limit: RateLimitConfig {
                enabled: true,
                overall: BucketConfig {
                    per_second: 0.5,
                    burst: 5.0,
                },
                writes: BucketConfig::per_second(50.0),
                retry_after_header: true,
            },
            ..SimConfig::default()
        },
    )
    .await;
    let api = Api::new(&sim);
    let mut statuses = Vec::new();
    let mut retry_after = None;
    for _ in 0..12 {
        let answer = api.send(Method::GET, "/tags", None).await;
        if answer.status == StatusCode::TOO_MANY_REQUESTS {
            retry_after = answer.headers.get("retry-after").cloned();
        }
        statuses.push(answer.status.as_u16());
    }
    let ok = statuses.iter().filter(|s| **s == 200).count();
    let limited = statuses.iter().filter(|s| **s == 429).count();
    assert!(
        (5..=6).contains(&ok),
        "burst of 5 (plus at most one refill): {statuses:?}"
    );
    assert_eq!(ok + limited, 12);
    let seconds: u64 = retry_after
        .expect("Retry-After on limiter 429s when configured")
        .to_str()
        .expect("ascii")
        .parse()
        .expect("whole seconds");
    assert!((1..=2).contains(&seconds));
    let counters = sim.counters();
    assert_eq!(counters.rate_limited, limited as u64);
    assert_eq!(counters.too_many_requests, limited as u64);
    assert_eq!(counters.calls_with_status("GET /tags", 429), limited as u64);
    assert_eq!(counters.injected_faults, 0);

    // Disabling the limiter lets everything through.
    sim.set_rate_limit(RateLimitConfig::disabled());
    assert_eq!(
        api.send(Method::GET, "/tags", None).await.status,
        StatusCode::OK
    );
    sim.shutdown().await;
}

#[tokio::test]
async fn the_write_bucket_limits_group_and_resource_writes_only() {
    let sim = start(
        example_fixture(),
        SimConfig {
            rate_limit: RateLimitConfig {
                enabled: true,
                overall: BucketConfig::per_second(1000.0),
                writes: BucketConfig {
                    per_second: 0.01,
                    burst: 2.0,
                },
                retry_after_header: false,
            },
            ..SimConfig::default()
        },
    )
    .await;
    let api = Api::new(&sim);
    let state = sim.state();
    let group = state.group_id("Engineering").expect("group");
    let users: Vec<String> = state.users().into_iter().map(|u| u.user_id).collect();
    let mut statuses = Vec::new();
    for user in users.iter().take(4) {
        let answer = api
            .send(
                Method::POST,
                &format!("/groups/{group}/users/{user}"),
                Some(json!({ "duration_minutes": 0 })),
            )
            .await;
        if answer.status == StatusCode::TOO_MANY_REQUESTS {
            assert!(answer.headers.get("retry-after").is_none());
        }
        statuses.push(answer.status.as_u16());
    }
    assert_eq!(statuses, [200, 200, 429, 429]);
    // Reads and writes elsewhere are not in the write bucket.
    assert_eq!(
        api.send(Method::GET, &format!("/groups/{group}"), None)
            .await
            .status,
        StatusCode::OK
    );
    let tag = api
        .send(
            Method::POST,
            "/tag",
            Some(json!({ "tag_key": "unlimited" })),
        )
        .await;
    assert_eq!(tag.status, StatusCode::OK);
    let counters = sim.counters();
    assert_eq!(counters.rate_limited, 2);
    assert_eq!(counters.calls_with_status(ADD_GROUP_USER, 429), 2);
    assert_eq!(counters.writes(), 5);
    sim.shutdown().await;
}

#[tokio::test]
async fn injected_faults_are_answered_and_counted() {
    let sim = start(example_fixture(), quiet_config()).await;
    let api = Api::new(&sim);

    sim.inject_faults(
        Some("GET /owners"),
        [
            InjectedFault::ServerError(503),
            InjectedFault::TooManyRequests {
                retry_after: Some(Duration::from_millis(1500)),
            },
            InjectedFault::TooManyRequests { retry_after: None },
            InjectedFault::Timeout(Duration::from_millis(20), TimeoutOutcome::GatewayTimeout),
            InjectedFault::ConnectionReset,
            InjectedFault::Timeout(Duration::from_millis(20), TimeoutOutcome::Drop),
        ],
    );
    // Other routes are unaffected by faults scripted for one route.
    assert_eq!(
        api.send(Method::GET, "/tags", None).await.status,
        StatusCode::OK
    );

    let unavailable = api.send(Method::GET, "/owners", None).await;
    assert_eq!(unavailable.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(unavailable.body["code"], 503);
    let throttled = api.send(Method::GET, "/owners", None).await;
    assert_eq!(throttled.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(
        throttled
            .headers
            .get("retry-after")
            .and_then(|v| v.to_str().ok()),
        Some("2")
    );
    let throttled_bare = api.send(Method::GET, "/owners", None).await;
    assert_eq!(throttled_bare.status, StatusCode::TOO_MANY_REQUESTS);
    assert!(throttled_bare.headers.get("retry-after").is_none());
    let timed_out = api.send(Method::GET, "/owners", None).await;
    assert_eq!(timed_out.status, StatusCode::GATEWAY_TIMEOUT);
    assert!(
        api.try_send(Method::GET, "/owners", None).await.is_err(),
        "reset"
    );
    assert!(
        api.try_send(Method::GET, "/owners", None).await.is_err(),
        "dropped after hold"
    );
    assert_eq!(
        api.send(Method::GET, "/owners", None).await.status,
        StatusCode::OK
    );

    let counters = sim.counters();
    assert_eq!(counters.injected_faults, 6);
    assert_eq!(counters.dropped_connections, 2);
    assert_eq!(counters.too_many_requests, 2);
    assert_eq!(counters.rate_limited, 0);
    assert_eq!(counters.calls("GET /owners"), 7);
    assert_eq!(counters.calls_with_status("GET /owners", 200), 1);

    // Random faults: every request fails at rate 1, none at rate 0.
    sim.reset_counters();
    sim.set_faults(FaultConfig {
        server_error_rate: 1.0,
        server_error_statuses: vec![502],
        ..FaultConfig::none()
    });
    for _ in 0..3 {
        assert_eq!(
            api.send(Method::GET, "/tags", None).await.status,
            StatusCode::BAD_GATEWAY
        );
    }
    sim.set_faults(FaultConfig {
        too_many_requests_rate: 0.5,
        ..FaultConfig::none()
    });
    let mut failed = 0;
    for _ in 0..40 {
        if api.send(Method::GET, "/tags", None).await.status != StatusCode::OK {
            failed += 1;
        }
    }
    assert!(failed > 0 && failed < 40, "about half fail: {failed}");
    let counters = sim.counters();
    assert_eq!(counters.injected_faults, 3 + failed);
    assert_eq!(counters.status(502), 3);
    assert_eq!(counters.too_many_requests, failed);
    sim.shutdown().await;
}

#[tokio::test]
async fn a_lost_answer_makes_the_change_and_withholds_the_reply() {
    let sim = start(example_fixture(), quiet_config()).await;
    let api = Api::new(&sim);
    let state = sim.state();
    let group = state.group_id("Sales").expect("group");
    let user = state
        .user_by_email("erin.park@acme.example")
        .expect("erin")
        .user_id;
    let add = format!("/groups/{group}/users/{user}");
    let is_member = || {
        state
            .group_members(&group)
            .iter()
            .any(|m| m.user_id == user)
    };
    assert!(!is_member());

    sim.inject_faults(Some(ADD_GROUP_USER), [InjectedFault::LostAnswer]);
    let lost = api
        .try_send(Method::POST, &add, Some(json!({ "duration_minutes": 0 })))
        .await;
    assert!(lost.is_err(), "the client hears nothing");
    assert!(is_member(), "but the membership was made");

    // The client cannot tell, so it asks again; the repeat is explained by the lost answer.
    let again = api
        .send(Method::POST, &add, Some(json!({ "duration_minutes": 0 })))
        .await;
    assert_eq!(again.status, StatusCode::OK);
    let key = format!("POST /v1{add}");
    let counters = sim.counters();
    assert_eq!(counters.lost_answers, 1);
    assert_eq!(counters.dropped_connections, 1);
    assert_eq!(counters.injected_faults, 1);
    assert_eq!(counters.handled_writes.get(&key), Some(&2));
    assert_eq!(counters.lost_write_answers.get(&key), Some(&1));
    assert!(counters.unexplained_repeats().is_empty());

    // A third ask, after an answer was heard, is a repeat nothing explains.
    api.send(Method::POST, &add, Some(json!({ "duration_minutes": 0 })))
        .await;
    let repeats = sim.counters().unexplained_repeats();
    assert_eq!(
        repeats,
        vec![UnexplainedRepeat {
            write: key,
            handled: 3,
            lost: 1,
        }]
    );
    sim.shutdown().await;
}

#[tokio::test]
async fn random_lost_answers_hit_writes_only_and_follow_the_seed() {
    let group_adds = |sim: &RunningOpalSim| {
        let state = sim.state();
        let group = state.group_id("Sales").expect("group");
        state
            .users()
            .into_iter()
            .map(|user| format!("/groups/{group}/users/{}", user.user_id))
            .collect::<Vec<_>>()
    };
    let config = |seed| SimConfig {
        faults: FaultConfig {
            lost_answer_rate: 0.5,
            ..FaultConfig::none()
        },
        seed,
        ..quiet_config()
    };
    let mut outcomes = Vec::new();
    for seed in [1, 1, 2] {
        let sim = start(example_fixture(), config(seed)).await;
        let api = Api::new(&sim);
        for _ in 0..10 {
            assert!(api.get("/groups").await["results"].is_array());
        }
        let mut heard = Vec::new();
        for add in group_adds(&sim) {
            let answer = api
                .try_send(Method::POST, &add, Some(json!({ "duration_minutes": 0 })))
                .await;
            heard.push(answer.is_ok());
        }
        let counters = sim.counters();
        let lost = heard.iter().filter(|ok| !**ok).count() as u64;
        assert!(
            lost > 0 && lost < heard.len() as u64,
            "about half: {heard:?}"
        );
        assert_eq!(counters.lost_answers, lost);
        assert_eq!(counters.calls_with_status("GET /groups", 200), 10);
        // Every write was acted on, heard or not.
        assert_eq!(counters.handled_write_count(), heard.len() as u64);
        let members = sim
            .state()
            .group_members(&sim.state().group_id("Sales").expect("group"));
        assert_eq!(members.len(), heard.len());
        outcomes.push(heard);
        sim.shutdown().await;
    }
    assert_eq!(
        outcomes[0], outcomes[1],
        "the same seed loses the same answers"
    );
    assert_ne!(outcomes[0], outcomes[2], "another seed loses others");
}

#[tokio::test]
async fn every_write_records_an_audit_event() {
    let sim = start(example_fixture(), quiet_config()).await;
    let api = Api::new(&sim);
    let state = sim.state();
    assert!(state.events().is_empty());
    let group = state.group_id("Sales").expect("group");
    let resource = state.resource_id("AWS Staging").expect("resource");
    let user = state
        .user_by_email("erin.park@acme.example")
        .expect("erin")
        .user_id;

    let writes = [
        (
            Method::POST,
            format!("/groups/{group}/users/{user}"),
            Some(json!({ "duration_minutes": 0 })),
        ),
        (
            Method::POST,
            format!("/resources/{resource}/users/{user}"),
            Some(json!({ "duration_minutes": 60 })),
        ),
        (
            Method::PUT,
            format!("/resources/{resource}/users/{user}"),
            Some(json!({ "duration_minutes": 120 })),
        ),
        (
            Method::DELETE,
            format!("/resources/{resource}/users/{user}"),
            None,
        ),
        (
            Method::DELETE,
            format!("/groups/{group}/users/{user}"),
            None,
        ),
        (
            Method::PUT,
            format!("/groups/{group}/visibility"),
            Some(json!({ "visibility": "GLOBAL" })),
        ),
    ];
    for (method, path, body) in writes {
        let answer = api.send(method.clone(), &path, body).await;
        assert_eq!(
            answer.status,
            StatusCode::OK,
            "{method} {path}: {}",
            answer.body
        );
    }
    let types: Vec<String> = state.events().into_iter().map(|e| e.event_type).collect();
    assert_eq!(
        types,
        [
            "GROUP_VISIBILITY_UPDATED",
            "GROUP_USER_REMOVED",
            "RESOURCE_USER_REMOVED",
            "RESOURCE_USER_UPDATED",
            "RESOURCE_USER_ADDED",
            "GROUP_USER_ADDED",
        ]
    );

    let feed = api.get("/events").await;
    let feed_items = results(&feed);
    let served: Vec<&str> = feed_items
        .iter()
        .filter_map(|event| event["event_type"].as_str())
        .collect();
    assert_eq!(served, types);
    let added = &feed_items[5];
    assert_eq!(added["actor_user_id"], state.actor_user_id().as_str());
    assert_eq!(added["sub_events"][0]["group_id"], group.as_str());
    assert_eq!(added["sub_events"][0]["user_id"], user.as_str());

    let filtered = api
        .get(&format!(
            "/events?object_filter={resource}&event_type_filter=RESOURCE_USER_ADDED"
        ))
        .await;
    assert_eq!(results(&filtered).len(), 1);
    let by_group = api.get(&format!("/events?object_filter={group}")).await;
    assert_eq!(results(&by_group).len(), 3);
    let future = api.get("/events?start_date_filter=2999-01-01").await;
    assert!(results(&future).is_empty());
    let today = state.now().format("%Y-%m-%d").to_string();
    let until_today = api.get(&format!("/events?end_date_filter={today}")).await;
    assert_eq!(results(&until_today).len(), 6);

    let event_id = added["event_id"].as_str().expect("id");
    let one = api.get(&format!("/events/{event_id}")).await;
    assert_eq!(one["event_type"], "GROUP_USER_ADDED");
    let unknown = api
        .send(
            Method::GET,
            "/events/00000000-0000-4000-8000-000000000000",
            None,
        )
        .await;
    assert_eq!(unknown.status, StatusCode::NOT_FOUND);
    sim.shutdown().await;
}

#[tokio::test]
async fn configured_latency_delays_answers() {
    let sim = start(example_fixture(), quiet_config()).await;
    let api = Api::new(&sim);
    let latency = Duration::from_millis(120);
    sim.set_latency(latency);
    let began = Instant::now();
    assert_eq!(
        api.send(Method::GET, "/tags", None).await.status,
        StatusCode::OK
    );
    // Only a lower bound: the answer cannot come before the latency has passed.
    assert!(began.elapsed() >= latency);
    assert_eq!(sim.config().latency, latency);
    assert_eq!(sim.counters().calls_with_status("GET /tags", 200), 1);
    sim.shutdown().await;
}

#[tokio::test]
async fn approving_a_request_grants_what_it_asked_for() {
    let sim = start(example_fixture(), quiet_config()).await;
    let api = Api::new(&sim);
    let state = sim.state();
    let frozen = Utc
        .with_ymd_and_hms(2031, 5, 6, 7, 8, 9)
        .single()
        .expect("time");
    state.freeze_clock(frozen);
    let dan = state
        .user_by_email("dan.rossi@acme.example")
        .expect("dan")
        .user_id;
    let warehouse = state.resource_id("Analytics Warehouse").expect("resource");
    let created = api
        .send(
            Method::POST,
            "/requests",
            Some(json!({
                "resources": [{ "id": warehouse }],
                "groups": [],
                "target_user_id": dan,
                "reason": "reporting",
                "duration_minutes": 45,
            })),
        )
        .await;
    assert_eq!(created.status, StatusCode::OK, "{}", created.body);
    let id = created.body["id"].as_str().expect("id").to_owned();
    assert_eq!(state.request(&id).expect("stored").status, "PENDING");
    assert!(
        state
            .resource_direct_users(&warehouse)
            .iter()
            .all(|g| g.user_id != dan)
    );

    let pending = api
        .get(&format!(
            "/requests?show_pending_only=true&resource_id={warehouse}"
        ))
        .await;
    assert!(
        pending["requests"]
            .as_array()
            .expect("list")
            .iter()
            .any(|r| r["id"] == id.as_str())
    );

    let approved = api
        .send(
            Method::POST,
            &format!("/requests/{id}/approve"),
            Some(json!({ "level": "REGULAR", "comment": "fine" })),
        )
        .await;
    assert_eq!(approved.status, StatusCode::OK);
    assert_eq!(approved.body["request"]["status"], "APPROVED");
    let grant = state
        .resource_direct_users(&warehouse)
        .into_iter()
        .find(|g| g.user_id == dan)
        .expect("granted");
    assert_eq!(grant.expiration_date, Some(frozen + TimeDelta::minutes(45)));

    let twice = api
        .send(
            Method::POST,
            &format!("/requests/{id}/approve"),
            Some(json!({ "level": "ADMIN" })),
        )
        .await;
    assert_eq!(twice.status, StatusCode::BAD_REQUEST);
    let comments = api.get(&format!("/requests/{id}/comments")).await;
    assert_eq!(comments["comments"][0]["comment"], "fine");
    let bad_level = api
        .send(
            Method::POST,
            &format!("/requests/{id}/deny"),
            Some(json!({ "level": "REGULAR" })),
        )
        .await;
    assert_eq!(
        bad_level.status,
        StatusCode::BAD_REQUEST,
        "deny needs a comment"
    );

    // Objects with auto-approval are granted on creation.
    let data_readers = state.group_id("Data Readers").expect("group");
    let auto = api
        .send(
            Method::POST,
            "/requests",
            Some(json!({
                "resources": [],
                "groups": [{ "id": data_readers }],
                "target_user_id": dan,
                "reason": "auto",
                "duration_minutes": -1,
            })),
        )
        .await;
    let auto_id = auto.body["id"].as_str().expect("id");
    assert_eq!(state.request(auto_id).expect("stored").status, "APPROVED");
    assert!(
        state
            .group_members(&data_readers)
            .iter()
            .any(|g| g.user_id == dan)
    );
    sim.shutdown().await;
}

#[tokio::test]
async fn state_access_injects_drift_without_counting_calls() {
    let sim = start(example_fixture(), quiet_config()).await;
    let api = Api::new(&sim);
    let state = sim.state();
    let group = state.group_id("Engineering").expect("group");
    let carol = state
        .user_by_email("carol.schmidt@acme.example")
        .expect("carol")
        .user_id;
    state
        .add_group_member(&group, &carol, AccessLevel::default(), None)
        .expect("added");
    state
        .set_user_hr_status(&carol, Some("DEPROVISIONED"))
        .expect("status");
    assert!(state.set_user_hr_status(&carol, Some("RETIRED")).is_err());
    assert!(state.events().is_empty(), "drift records no events");
    assert_eq!(sim.counters().total, 0);

    let members = api.get(&format!("/groups/{group}/users")).await;
    assert!(
        results(&members)
            .iter()
            .any(|m| m["user_id"] == carol.as_str())
    );
    let user = api.get("/user?email=carol.schmidt@acme.example").await;
    assert_eq!(user["hr_idp_status"], "DEPROVISIONED");

    assert!(state.remove_group_member(&group, &carol, ""));
    assert!(!state.remove_group_member(&group, &carol, ""));
    let members = api.get(&format!("/groups/{group}/users")).await;
    assert!(
        results(&members)
            .iter()
            .all(|m| m["user_id"] != carol.as_str())
    );
    assert_eq!(sim.counters().total, 3);
    sim.shutdown().await;
}

#[tokio::test]
async fn query_parameters_are_validated_or_ignored() {
    let sim = start(OrgFixture::synthetic(1100, 1, 1, 0, 5), quiet_config()).await;
    let api = Api::new(&sim);
    let page = api.get("/users?page_size=5000&unknown_param=1").await;
    assert_eq!(
        results(&page).len(),
        1000,
        "clamped to the documented maximum"
    );
    let default = api.get("/users").await;
    assert_eq!(results(&default).len(), 200);
    for bad in [
        "/users?page_size=0",
        "/users?page_size=ten",
        "/users?cursor=%%%",
        "/user",
    ] {
        let answer = api.send(Method::GET, bad, None).await;
        assert_eq!(answer.status, StatusCode::BAD_REQUEST, "{bad}");
    }
    let unknown_path = api.send(Method::GET, "/no-such-thing", None).await;
    assert_eq!(unknown_path.status, StatusCode::NOT_FOUND);
    assert_eq!(sim.counters().calls("GET <unmatched>"), 1);
    sim.shutdown().await;
}

#[tokio::test]
async fn fixtures_load_and_synthetic_orgs_are_deterministic() {
    let fixture = example_fixture();
    assert!(fixture.users.len() >= 5);
    assert_eq!(
        OrgFixture::synthetic(20, 4, 3, 2, 9),
        OrgFixture::synthetic(20, 4, 3, 2, 9)
    );
    assert_ne!(
        OrgFixture::synthetic(20, 4, 3, 2, 9),
        OrgFixture::synthetic(20, 4, 3, 2, 10)
    );
    let json = serde_json::to_string(&fixture).expect("serialises");
    assert_eq!(
        OrgFixture::from_json_str(&json).expect("round trip"),
        fixture
    );
    let broken = OrgFixture::from_yaml_str("users:\n  - email: a@example.com\n    colour: blue\n");
    assert!(broken.is_err(), "unknown keys are rejected");
    let dangling = OrgFixture::from_yaml_str("memberships:\n  - {group: nope, user: nobody}\n")
        .expect("parses");
    let error = RunningOpalSim::start(dangling, SimConfig::default())
        .await
        .expect_err("unknown references fail");
    assert_eq!(error.label(), "fixture_reference");
}

#[tokio::test]
async fn shutdown_stops_the_server() {
    let sim = start(example_fixture(), quiet_config()).await;
    let api = Api::new(&sim);
    assert_eq!(
        api.send(Method::GET, "/tags", None).await.status,
        StatusCode::OK
    );
    sim.shutdown().await;
    let fresh = reqwest::Client::new();
    assert!(
        fresh
            .get(format!("{}/tags", api.base))
            .send()
            .await
            .is_err()
    );
}

#[tokio::test]
async fn bulk_updates_apply_all_or_nothing() {
    let sim = start(example_fixture(), quiet_config()).await;
    let api = Api::new(&sim);
    let state = sim.state();
    let warehouse = state.resource_id("Analytics Warehouse").expect("resource");
    let schema = state
        .resource_id("Analytics Reporting Schema")
        .expect("resource");
    let engineering = state.group_id("Engineering").expect("group");

    let cycle = api
        .send(
            Method::PUT,
            "/resources",
            Some(json!({ "resources": [
                { "resource_id": warehouse, "name": "Renamed", "parent_resource_id": schema },
            ]})),
        )
        .await;
    assert_eq!(cycle.status, StatusCode::BAD_REQUEST);
    let unknown = api
        .send(
            Method::PUT,
            "/groups",
            Some(json!({ "groups": [
                { "group_id": engineering, "name": "Renamed" },
                { "group_id": "00000000-0000-4000-8000-000000000000", "name": "Ghost" },
            ]})),
        )
        .await;
    assert_eq!(unknown.status, StatusCode::NOT_FOUND);
    assert_eq!(
        state.resource(&warehouse).expect("resource")["name"],
        "Analytics Warehouse"
    );
    assert_eq!(
        state.group(&engineering).expect("group")["name"],
        "Engineering"
    );

    let applied = api
        .send(
            Method::PUT,
            "/resources",
            Some(json!({ "resources": [
                { "resource_id": schema, "parent_resource_id": null, "description": "flat" },
            ]})),
        )
        .await;
    assert_eq!(applied.status, StatusCode::OK);
    assert_eq!(
        applied.body["resources"][0]["parent_resource_id"],
        Value::Null
    );
    let warehouse_now = state.resource(&warehouse).expect("resource");
    assert_eq!(warehouse_now["descendant_resource_ids"], json!([]));
    let schema_now = state.resource(&schema).expect("resource");
    assert_eq!(schema_now["description"], "flat");
    assert!(schema_now.get("parent_resource_id").is_none());
    assert!(
        state
            .events()
            .iter()
            .any(|e| e.event_type == "RESOURCE_UPDATED")
    );
    sim.shutdown().await;
}
