//! Notifications from the running operator: a lockdown and an offboarding are posted to Slack
//! (credentials read from a Kubernetes Secret), the operator namespace's AccessPolicy shows
//! `NotificationsDegraded`, and a failing Slack turns it on without holding up access changes.

use std::collections::BTreeMap;
use std::time::Duration;

use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, PostParams};
use libtest_mimic::Failed;
use opal_operator::crd::{AccessPolicy, Lockdown, LockdownPhase};
use opal_operator::http::RetryConfig;
use opal_operator::notify::{ChannelConfig, NotifyConfig, OutboxConfig, SlackApiConfig};
use opal_operator::secret::{SecretKeySelector, SecretRef};
use opal_operator::sim::notify::FaultConfig;
use opal_operator::sim::notify::slack::{SlackSim, SlackSimConfig};
use serde_json::json;

use super::harness::{
    InProcessOperator, OperatorOptions, Org, api, condition, eventually, notify_bamboohr_change,
};
use crate::trials::{E2eTrial, TestContext};

pub fn trials() -> Vec<E2eTrial> {
    vec![e2e_trial!(
        lockdowns_and_offboardings_are_announced_and_a_failing_channel_shows
    )]
}

const CHANNEL: &str = "security-slack";
const SLACK_CONVERSATION: &str = "C0SECURITY";

async fn lockdowns_and_offboardings_are_announced_and_a_failing_channel_shows(
    ctx: TestContext,
) -> Result<(), Failed> {
    let slack = SlackSim::start(SlackSimConfig {
        bot_token: "xoxb-e2e".into(),
        channels: vec![SLACK_CONVERSATION.into()],
        ..SlackSimConfig::default()
    })
    .await?;
    // The token lives in a Secret of the operator namespace, read through the API.
    let secret: Secret = serde_json::from_value(json!({
        "metadata": {"name": "notify-credentials", "namespace": ctx.namespace},
        "stringData": {"slack-token": "xoxb-e2e"},
    }))?;
    Api::<Secret>::namespaced(ctx.client.clone(), &ctx.namespace)
        .create(&PostParams::default(), &secret)
        .await?;
    let defaults = NotifyConfig::default();
    let notify = NotifyConfig {
        channels: BTreeMap::from([(
            CHANNEL.to_owned(),
            ChannelConfig::Slack(SlackApiConfig {
                api_url: slack.api_url(),
                token: SecretRef::SecretKeyRef(SecretKeySelector {
                    name: "notify-credentials".into(),
                    key: "slack-token".into(),
                }),
                channel: Some(SLACK_CONVERSATION.into()),
                direct_messages: false,
            }),
        )]),
        // Give up quickly so a failing channel shows within the trial.
        outbox: OutboxConfig {
            retry: RetryConfig {
                max_attempts: 2,
                initial_backoff_ms: 50,
                max_backoff_ms: 200,
                ..defaults.outbox.retry.clone()
            },
            ..defaults.outbox
        },
    };
    let mut org =
        Org::start_with(&ctx.namespace, "3s", Some(serde_json::to_value(&notify)?)).await?;
    for policy in &mut org.manifests.access_policies {
        if let Some(offboarding) = &mut policy.spec.offboarding {
            offboarding.notify = vec![CHANNEL.into()];
        }
    }
    org.apply_manifests(&ctx.client).await?;
    // Under the chart's identity, the chart must let the operator read the Secret its config
    // names, and nothing else.
    let chart_values = [
        "--set-json".to_owned(),
        format!("config.notify={}", serde_json::to_string(&notify)?),
    ];
    let operator = InProcessOperator::start_with_chart_values(
        &ctx,
        &org,
        OperatorOptions {
            interval: Duration::from_secs(3),
            lease: false,
            identity: "e2e-notify".into(),
        },
        &chart_values,
    )
    .await?;
    let policies = api::<AccessPolicy>(&ctx.client, &ctx.namespace);
    let policy_name = org
        .manifests
        .access_policies
        .iter()
        .find(|p| p.spec.offboarding.is_some())
        .and_then(|p| p.metadata.name.clone())
        .ok_or("the sample org has an offboarding policy")?;
    eventually(
        "NotificationsDegraded is reported False",
        Duration::from_secs(90),
        || async {
            operator.check_running()?;
            let policy = policies.get(&policy_name).await?;
            Ok(policy.status.and_then(|s| {
                condition(&s.conditions, "NotificationsDegraded")
                    .filter(|c| c.status == opal_operator::crd::ConditionStatus::False)
                    .map(|_| ())
            }))
        },
    )
    .await?;

    // A lockdown announces itself.
    let locked = "ines.silva@acme.example";
    let lockdowns = api::<Lockdown>(&ctx.client, &ctx.namespace);
    let lockdown: Lockdown = serde_json::from_value(json!({
        "apiVersion": "opal-operator.io/v1alpha1",
        "kind": "Lockdown",
        "metadata": {"name": "notify-incident", "namespace": ctx.namespace},
        "spec": {"subjects": [{"email": locked}], "reason": "credential leak", "duration": "1h", "notify": [CHANNEL]},
    }))?;
    lockdowns.create(&PostParams::default(), &lockdown).await?;
    eventually(
        "the lockdown is Active",
        Duration::from_secs(60),
        || async {
            let object = lockdowns.get("notify-incident").await?;
            Ok(object
                .status
                .filter(|s| s.phase == Some(LockdownPhase::Active))
                .map(|_| ()))
        },
    )
    .await?;
    let posted = |needle: String| {
        let slack = &slack;
        async move {
            Ok::<_, Failed>(slack.posts().iter().any(|post| {
                post.channel == SLACK_CONVERSATION
                    && serde_json::to_string(&post.blocks)
                        .unwrap_or_default()
                        .contains(&needle)
            }))
        }
    };
    eventually(
        "Slack hears about the lockdown",
        Duration::from_secs(20),
        || async { Ok(posted(locked.to_owned()).await?.then_some(())) },
    )
    .await?;

    // An offboarding announces itself (the sample policy revokes on the termination date).
    let leaver_id = "1072";
    let leaver = org
        .hr
        .roster()
        .get(leaver_id)
        .ok_or("employee 1072 is in the sample org")?;
    org.hr
        .roster()
        .terminate(leaver_id, chrono::Utc::now().date_naive());
    notify_bamboohr_change(&operator, leaver_id, &["status", "terminationDate"]).await?;
    eventually(
        "Slack hears about the offboarding",
        Duration::from_secs(30),
        || async {
            operator.check_running()?;
            Ok(posted(leaver.email.clone()).await?.then_some(()))
        },
    )
    .await?;

    // Slack starts failing: access changes go on, the policy says notifications are degraded.
    slack.set_faults(FaultConfig {
        server_error_rate: 1.0,
        server_error_statuses: vec![503],
        ..FaultConfig::default()
    });
    let second: Lockdown = serde_json::from_value(json!({
        "apiVersion": "opal-operator.io/v1alpha1",
        "kind": "Lockdown",
        "metadata": {"name": "notify-incident-2", "namespace": ctx.namespace},
        "spec": {"subjects": [{"email": "erik.volkov@acme.example"}], "reason": "phishing", "duration": "1h", "notify": [CHANNEL]},
    }))?;
    lockdowns.create(&PostParams::default(), &second).await?;
    eventually(
        "the second lockdown is Active despite Slack",
        Duration::from_secs(60),
        || async {
            let object = lockdowns.get("notify-incident-2").await?;
            Ok(object
                .status
                .filter(|s| s.phase == Some(LockdownPhase::Active))
                .map(|_| ()))
        },
    )
    .await?;
    let degraded = eventually(
        "NotificationsDegraded turns True",
        Duration::from_secs(60),
        || async {
            operator.check_running()?;
            let policy = policies.get(&policy_name).await?;
            Ok(policy.status.and_then(|s| {
                condition(&s.conditions, "NotificationsDegraded")
                    .filter(|c| c.status == opal_operator::crd::ConditionStatus::True)
                    .cloned()
            }))
        },
    )
    .await?;
    if !degraded.message.contains(CHANNEL) {
        return Err(format!(
            "the condition should name the channel: {}",
            degraded.message
        )
        .into());
    }
    operator.stop().await
}
