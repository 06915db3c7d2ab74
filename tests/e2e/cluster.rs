//! Trials that check the harness itself: the API server is the expected release, clients and
//! kubeconfig authenticate, RBAC is enforced and every trial gets its own namespace.

use std::time::{Duration, Instant};

use k8s_openapi::api::authentication::v1::{SelfSubjectReview, TokenRequest, TokenRequestSpec};
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, ServiceAccount};
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding, PolicyRule, RoleRef, Subject};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{ListParams, PostParams};
use kube::config::Kubeconfig;
use kube::{Api, Client};
use libtest_mimic::Failed;

use super::{E2eTrial, TRIAL_LABEL, TestContext};

const MINIMUM_SERVER_VERSION: (u32, u32) = (1, 36);
// RBAC changes reach the authorizer through an informer, a little after the write returns.
const RBAC_PROPAGATION_TIMEOUT: Duration = Duration::from_secs(30);
const POLL_INTERVAL: Duration = Duration::from_millis(200);

pub fn trials() -> Vec<E2eTrial> {
    vec![
        e2e_trial!(server_version_is_at_least_1_36),
        e2e_trial!(kubeconfig_authenticates_as_cluster_admin),
        e2e_trial!(service_account_token_is_subject_to_rbac),
        e2e_trial!(each_trial_gets_a_fresh_namespace),
    ]
}

fn object_meta(name: &str) -> ObjectMeta {
    ObjectMeta {
        name: Some(name.to_owned()),
        ..ObjectMeta::default()
    }
}

/// Who the server thinks `client` is: user name and groups.
async fn whoami(client: Client) -> Result<(String, Vec<String>), Failed> {
    let review = Api::<SelfSubjectReview>::all(client)
        .create(&PostParams::default(), &SelfSubjectReview::default())
        .await?;
    let user = review
        .status
        .and_then(|status| status.user_info)
        .ok_or("SelfSubjectReview returned no user info")?;
    Ok((
        user.username.unwrap_or_default(),
        user.groups.unwrap_or_default(),
    ))
}

fn parse_git_version(git_version: &str) -> Option<(u32, u32)> {
    let mut parts = git_version.strip_prefix('v')?.split('.');
    let major = parts.next()?.parse().ok()?;
    let minor = parts.next()?.parse().ok()?;
    Some((major, minor))
}

async fn server_version_is_at_least_1_36(ctx: TestContext) -> Result<(), Failed> {
    let info = ctx.client.apiserver_version().await?;
    let (major, minor) = parse_git_version(&info.git_version)
        .ok_or_else(|| format!("unparsable gitVersion {:?}", info.git_version))?;
    if (major, minor) < MINIMUM_SERVER_VERSION {
        return Err(format!("server is {}, need at least v1.36", info.git_version).into());
    }
    // Helm and kubectl read major/minor rather than gitVersion, so they must agree.
    assert_eq!(
        (info.major.as_str(), info.minor.as_str()),
        (major.to_string().as_str(), minor.to_string().as_str()),
        "/version major/minor disagree with gitVersion {}",
        info.git_version
    );
    Ok(())
}

async fn kubeconfig_authenticates_as_cluster_admin(ctx: TestContext) -> Result<(), Failed> {
    let kubeconfig = Kubeconfig::read_from(ctx.kubeconfig_path())?;
    let servers: Vec<_> = kubeconfig
        .clusters
        .iter()
        .filter_map(|cluster| cluster.cluster.as_ref()?.server.clone())
        .collect();
    assert_eq!(servers, [ctx.cluster.server_url()]);
    assert!(ctx.cluster.server_url().starts_with("https://127.0.0.1:"));

    let (username, groups) = whoami(ctx.client).await?;
    assert_eq!(username, "admin");
    assert!(
        groups.iter().any(|group| group == "system:masters"),
        "admin groups: {groups:?}"
    );
    Ok(())
}

async fn service_account_token_is_subject_to_rbac(ctx: TestContext) -> Result<(), Failed> {
    let account = "namespace-reader";
    let username = format!("system:serviceaccount:{}:{account}", ctx.namespace);
    let service_accounts: Api<ServiceAccount> = Api::namespaced(ctx.client.clone(), &ctx.namespace);
    service_accounts
        .create(
            &PostParams::default(),
            &ServiceAccount {
                metadata: object_meta(account),
                ..ServiceAccount::default()
            },
        )
        .await?;
    let token_request = TokenRequest {
        spec: Some(TokenRequestSpec {
            expiration_seconds: Some(600),
            ..TokenRequestSpec::default()
        }),
        ..TokenRequest::default()
    };
    let token = service_accounts
        .create_token_request(account, &PostParams::default(), &token_request)
        .await?
        .status
        .and_then(|status| status.token)
        .ok_or("TokenRequest returned no token")?;
    let account_client = ctx.cluster.client_with_token(&token).await?;

    let (authenticated_as, _) = whoami(account_client.clone()).await?;
    assert_eq!(authenticated_as, username);

    let namespaces: Api<Namespace> = Api::all(account_client);
    match namespaces.list(&ListParams::default()).await {
        Err(kube::Error::Api(status)) if status.code == 403 => {
            assert!(
                status.message.contains(&username),
                "403 message does not name the account: {}",
                status.message
            );
        }
        other => {
            return Err(format!("expected 403 Forbidden before any binding, got {other:?}").into());
        }
    }

    // Cluster-scoped names carry the namespace so parallel trials never collide.
    let role_name = format!("{}-namespace-reader", ctx.namespace);
    Api::<ClusterRole>::all(ctx.client.clone())
        .create(
            &PostParams::default(),
            &ClusterRole {
                metadata: object_meta(&role_name),
                rules: Some(vec![PolicyRule {
                    api_groups: Some(vec![String::new()]),
                    resources: Some(vec!["namespaces".to_owned()]),
                    verbs: vec!["get".to_owned(), "list".to_owned()],
                    ..PolicyRule::default()
                }]),
                ..ClusterRole::default()
            },
        )
        .await?;
    Api::<ClusterRoleBinding>::all(ctx.client.clone())
        .create(
            &PostParams::default(),
            &ClusterRoleBinding {
                metadata: object_meta(&role_name),
                role_ref: RoleRef {
                    api_group: Some("rbac.authorization.k8s.io".to_owned()),
                    kind: "ClusterRole".to_owned(),
                    name: role_name.clone(),
                },
                subjects: Some(vec![Subject {
                    kind: "ServiceAccount".to_owned(),
                    name: account.to_owned(),
                    namespace: Some(ctx.namespace.clone()),
                    ..Subject::default()
                }]),
            },
        )
        .await?;

    let started = Instant::now();
    let listed = loop {
        match namespaces.list(&ListParams::default()).await {
            Ok(list) => break list,
            Err(kube::Error::Api(status))
                if status.code == 403 && started.elapsed() < RBAC_PROPAGATION_TIMEOUT =>
            {
                tokio::time::sleep(POLL_INTERVAL).await;
            }
            Err(error) => {
                return Err(format!(
                    "still not allowed {:?} after the binding: {error}",
                    started.elapsed()
                )
                .into());
            }
        }
    };
    assert!(
        listed
            .items
            .iter()
            .any(|namespace| namespace.metadata.name.as_deref() == Some(ctx.namespace.as_str())),
        "the bound account cannot see its own namespace {}",
        ctx.namespace
    );
    Ok(())
}

async fn each_trial_gets_a_fresh_namespace(ctx: TestContext) -> Result<(), Failed> {
    let namespace = Api::<Namespace>::all(ctx.client.clone())
        .get(&ctx.namespace)
        .await?;
    let phase = namespace.status.and_then(|status| status.phase);
    assert_eq!(phase.as_deref(), Some("Active"));
    let label = namespace
        .metadata
        .labels
        .unwrap_or_default()
        .remove(TRIAL_LABEL);
    assert_eq!(
        label.as_deref(),
        Some("cluster-each-trial-gets-a-fresh-namespace")
    );
    assert!(
        ctx.namespace
            .starts_with("e2e-cluster-each-trial-gets-a-fresh-namespace-"),
        "namespace {} is not named after its trial",
        ctx.namespace
    );

    let config_maps: Api<ConfigMap> = Api::namespaced(ctx.client.clone(), &ctx.namespace);
    let before = config_maps.list(&ListParams::default()).await?;
    assert!(
        before.items.is_empty(),
        "a fresh namespace already holds {:?}",
        before.items
    );
    config_maps
        .create(
            &PostParams::default(),
            &ConfigMap {
                metadata: object_meta("marker"),
                ..ConfigMap::default()
            },
        )
        .await?;
    let after = config_maps.list(&ListParams::default()).await?;
    let names: Vec<_> = after
        .items
        .iter()
        .filter_map(|config_map| config_map.metadata.name.as_deref())
        .collect();
    assert_eq!(names, ["marker"]);
    Ok(())
}
