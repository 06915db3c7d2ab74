//! The edge where specs become the engine's rules: every option pair and string is read once
//! here. What cannot be read becomes a problem the plan reports (the apiserver's CEL rejects
//! most of these; manifests read from files for `plan` and `run --standalone` skipped it).

use crate::engine::{
    BusinessWindow, ObjectKey, OnCallCondition, PolicyRequestRules, RequestConditions,
    RequestRule as EngineRequestRule, RequestVerdict, RouteEscalation, RoutePlan,
};
use crate::engine::{
    CompiledSelector, Enforcement as EngineEnforcement, GrantRule, LevelRef, LockEnd, LockScope,
    LockdownRules, MappingRules, Membership, OffboardingRules,
    OffboardingScope as EngineOffboardingScope, OffboardingWhen, PolicyRules, Requirement,
    SafetyRules, SelectorError, Subject, Target, TargetKind, TargetRef as EngineTargetRef,
    TenancyGrant, parse_go_duration,
};

use super::{
    AccessLevelRef, AccessPolicySpec, AccessTarget, BusinessHours, EmployeeSelector, Enforcement,
    LockdownScopeMode, LockdownSpec, LockdownSubject, MembershipMode, OffboardingScope,
    OffboardingSpec, OffboardingTiming, RequestAction, RequestRule, RoleMappingSpec, SafetySpec,
    SelectorOperator, TargetRef, TenancyRule, Weekday,
};

impl TargetRef {
    /// `at` names this reference in the spec, for the problem when it is not exactly one of
    /// a name and an id.
    pub fn to_engine(&self, at: &str) -> Result<EngineTargetRef, String> {
        match (&self.id, &self.name) {
            (Some(id), None) => Ok(EngineTargetRef::Id(id.clone())),
            (None, Some(name)) => Ok(EngineTargetRef::Name(name.clone())),
            _ => Err(format!("{at}: set exactly one of name or id")),
        }
    }
}

impl AccessTarget {
    /// The group or resource this names.
    pub fn to_target(&self, at: &str) -> Result<Target, String> {
        match (&self.group, &self.resource) {
            (Some(group), None) => Ok(Target {
                kind: TargetKind::Group,
                by: group.to_engine(&format!("{at}.group"))?,
            }),
            (None, Some(resource)) => Ok(Target {
                kind: TargetKind::Resource,
                by: resource.to_engine(&format!("{at}.resource"))?,
            }),
            _ => Err(format!("{at}: set exactly one of group or resource")),
        }
    }

    fn to_grant(&self, at: &str) -> Result<GrantRule, String> {
        let level = match &self.access_level {
            None => LevelRef::Default,
            Some(AccessLevelRef {
                remote_id: Some(remote_id),
                name: None,
            }) => LevelRef::RemoteId(remote_id.clone()),
            Some(AccessLevelRef {
                remote_id: None,
                name: Some(name),
            }) => LevelRef::Name(name.clone()),
            Some(_) => {
                return Err(format!(
                    "{at}.accessLevel: set exactly one of remoteId or name"
                ));
            }
        };
        Ok(GrantRule {
            target: self.to_target(at)?,
            level,
        })
    }
}

impl EmployeeSelector {
    pub fn compile(&self) -> Result<CompiledSelector, SelectorError> {
        let mut requirements =
            Vec::with_capacity(self.match_labels.len() + self.match_expressions.len());
        for (key, value) in &self.match_labels {
            requirements.push(Requirement::equals(key, value));
        }
        for (index, expression) in self.match_expressions.iter().enumerate() {
            let key = expression.key.as_str();
            requirements.push(match expression.operator {
                SelectorOperator::In => Requirement::one_of(key, &expression.values),
                SelectorOperator::NotIn => Requirement::none_of(key, &expression.values),
                SelectorOperator::Exists => Requirement::Exists {
                    key: key.to_owned(),
                },
                SelectorOperator::DoesNotExist => Requirement::DoesNotExist {
                    key: key.to_owned(),
                },
                SelectorOperator::Matches => Requirement::matches(
                    key,
                    expression.values.first().map(String::as_str).unwrap_or(""),
                    format!("matchExpressions[{index}] ({key})"),
                )?,
            });
        }
        Ok(CompiledSelector::new(requirements))
    }
}

impl RoleMappingSpec {
    pub fn rules(&self) -> MappingRules {
        let mut invalid = Vec::new();
        let grants = self
            .grants
            .iter()
            .enumerate()
            .filter_map(|(index, grant)| {
                grant
                    .to_grant(&format!("grants[{index}]"))
                    .map_err(|problem| invalid.push(problem))
                    .ok()
            })
            .collect();
        let pre_start_days = match self.pre_start_days {
            None => 0,
            Some(days) => u32::try_from(days).unwrap_or_else(|_| {
                invalid.push(format!(
                    "preStartDays {days} is negative; grants wait for the start date"
                ));
                0
            }),
        };
        MappingRules {
            selector: self.selector.compile(),
            grants,
            membership: match self.membership {
                MembershipMode::Authoritative => Membership::Authoritative,
                MembershipMode::Additive => Membership::Additive,
            },
            enforcement: self.enforcement.to_engine(),
            exceptions: self.exceptions.clone(),
            revoke_on_delete: self.revoke_on_delete,
            pre_start_days,
            invalid,
        }
    }
}

impl Enforcement {
    pub fn to_engine(self) -> EngineEnforcement {
        match self {
            Enforcement::Enforce => EngineEnforcement::Enforce,
            Enforcement::Observe => EngineEnforcement::Observe,
        }
    }
}

impl SafetySpec {
    pub fn rules(&self) -> SafetyRules {
        let mut invalid = Vec::new();
        let mut count = |name: &str, value: Option<i32>| {
            value.and_then(|v| {
                usize::try_from(v)
                    .map_err(|_| invalid.push(format!("{name} {v} is negative")))
                    .ok()
            })
        };
        let gate = self.hris_flood_gate.as_ref();
        SafetyRules {
            max_revocations: count("maxRevocations", self.max_revocations),
            max_revocation_percent: count("maxRevocationPercent", self.max_revocation_percent),
            min_employees: count(
                "hrisFloodGate.minEmployees",
                gate.and_then(|g| g.min_employees),
            ),
            max_shrink_percent: count(
                "hrisFloodGate.maxShrinkPercent",
                gate.and_then(|g| g.max_shrink_percent),
            ),
            protected_users: self.protected_users.clone(),
            invalid,
        }
    }
}

impl OffboardingSpec {
    pub fn rules(&self) -> Result<OffboardingRules, String> {
        let when = match (self.when, &self.after) {
            (OffboardingTiming::Immediately, None) => OffboardingWhen::Immediately,
            (OffboardingTiming::OnTerminationDate, None) => OffboardingWhen::OnTerminationDate,
            (OffboardingTiming::After, Some(after)) => parse_go_duration(after)
                .map(OffboardingWhen::After)
                .map_err(|error| format!("offboarding.after: {error}"))?,
            (OffboardingTiming::After, None) => {
                return Err("offboarding.after is required when `when` is After".to_owned());
            }
            (_, Some(_)) => {
                return Err("offboarding.after is allowed only when `when` is After".to_owned());
            }
        };
        Ok(OffboardingRules {
            scope: match self.revoke {
                OffboardingScope::Governed => EngineOffboardingScope::Governed,
                OffboardingScope::All => EngineOffboardingScope::All,
            },
            when,
        })
    }
}

impl TenancyRule {
    pub fn rules(&self) -> TenancyGrant {
        TenancyGrant {
            namespaces: self.namespaces.clone(),
            target_tags: self.target_tags.clone(),
            target_names: self.target_names.clone(),
            target_ids: self.target_ids.clone(),
            allow_lockdowns: self.allow_lockdowns,
        }
    }
}

impl BusinessHours {
    fn window(&self, at: &str) -> Result<BusinessWindow, String> {
        let zone: chrono_tz::Tz = self.time_zone.parse().map_err(|_| {
            format!(
                "{at}.timeZone: {:?} is not an IANA time zone",
                self.time_zone
            )
        })?;
        let minute = |field: &str, text: &str| -> Result<u32, String> {
            let (hours, minutes) = text
                .split_once(':')
                .and_then(|(h, m)| Some((h.parse::<u32>().ok()?, m.parse::<u32>().ok()?)))
                .filter(|(h, m)| *m < 60 && (*h < 24 || (*h == 24 && *m == 0)))
                .ok_or_else(|| format!("{at}.{field}: {text:?} is not HH:MM"))?;
            Ok(hours * 60 + minutes)
        };
        let start_minute = minute("start", &self.start)?;
        let end_minute = minute("end", &self.end)?;
        if start_minute >= end_minute {
            return Err(format!("{at}: start must be before end"));
        }
        if self.days.is_empty() {
            return Err(format!("{at}.days: name at least one day"));
        }
        Ok(BusinessWindow {
            zone,
            days: self.days.iter().map(|day| day.to_chrono()).collect(),
            start_minute,
            end_minute,
        })
    }
}

impl Weekday {
    fn to_chrono(self) -> chrono::Weekday {
        match self {
            Weekday::Mon => chrono::Weekday::Mon,
            Weekday::Tue => chrono::Weekday::Tue,
            Weekday::Wed => chrono::Weekday::Wed,
            Weekday::Thu => chrono::Weekday::Thu,
            Weekday::Fri => chrono::Weekday::Fri,
            Weekday::Sat => chrono::Weekday::Sat,
            Weekday::Sun => chrono::Weekday::Sun,
        }
    }
}

fn optional_duration(at: &str, text: Option<&String>) -> Result<Option<chrono::Duration>, String> {
    text.map(|text| parse_go_duration(text).map_err(|e| format!("{at}: {e}")))
        .transpose()
}

impl RequestRule {
    fn to_engine(&self, at: &str) -> Result<EngineRequestRule, String> {
        let matching = &self.match_;
        let requester = matching
            .requester
            .as_ref()
            .map(|selector| {
                selector
                    .compile()
                    .map_err(|e| format!("{at}.match.requester: {e}"))
            })
            .transpose()?;
        let targets = matching
            .targets
            .iter()
            .enumerate()
            .map(|(index, target)| target.to_target(&format!("{at}.match.targets[{index}]")))
            .collect::<Result<Vec<_>, _>>()?;
        let verdict = match (self.action, &self.route) {
            (RequestAction::AutoApprove, None) => RequestVerdict::AutoApprove,
            (RequestAction::Deny, None) => RequestVerdict::Deny,
            (RequestAction::Route, Some(route)) => RequestVerdict::Route(RoutePlan {
                channel: route.channel.clone(),
                approvers: route
                    .approvers
                    .iter()
                    .map(|email| email.trim().to_lowercase())
                    .collect(),
                requester_manager: route.requester_manager,
                wait_at_most: optional_duration(
                    &format!("{at}.route.waitAtMost"),
                    route.wait_at_most.as_ref(),
                )?,
                escalation: route
                    .escalation
                    .as_ref()
                    .map(|escalation| {
                        parse_go_duration(&escalation.after)
                            .map_err(|e| format!("{at}.route.escalation.after: {e}"))
                            .map(|after| RouteEscalation {
                                channel: escalation.pager_duty.clone(),
                                after,
                            })
                    })
                    .transpose()?,
            }),
            (RequestAction::Route, None) => {
                return Err(format!("{at}.route: required when action is Route"));
            }
            (_, Some(_)) => return Err(format!("{at}.route: set only when action is Route")),
        };
        let grant_at_most =
            optional_duration(&format!("{at}.grantAtMost"), self.grant_at_most.as_ref())?;
        if grant_at_most.is_some_and(|most| most <= chrono::Duration::zero()) {
            return Err(format!("{at}.grantAtMost: must be a positive duration"));
        }
        if grant_at_most.is_some() && self.action == RequestAction::Deny {
            return Err(format!("{at}.grantAtMost: a Deny rule approves nothing"));
        }
        Ok(EngineRequestRule {
            name: self.name.clone(),
            grant_at_most,
            conditions: RequestConditions {
                requester,
                targets,
                target_tags: matching.target_tags.clone(),
                max_sensitivity: matching.max_sensitivity,
                duration_at_most: optional_duration(
                    &format!("{at}.match.durationAtMost"),
                    matching.duration_at_most.as_ref(),
                )?,
                duration_above: optional_duration(
                    &format!("{at}.match.durationAbove"),
                    matching.duration_above.as_ref(),
                )?,
                business_hours: matching
                    .business_hours
                    .as_ref()
                    .map(|hours| hours.window(&format!("{at}.match.businessHours")))
                    .transpose()?,
                requester_on_call: matching
                    .requester_on_call
                    .as_ref()
                    .map(|on_call| {
                        let max_escalation_level = on_call
                            .max_escalation_level
                            .map(|level| {
                                u32::try_from(level).ok().filter(|level| *level > 0).ok_or_else(
                                    || {
                                        format!(
                                            "{at}.match.requesterOnCall.maxEscalationLevel: {level} is not a level (1 or more)"
                                        )
                                    },
                                )
                            })
                            .transpose()?;
                        if on_call.escalation_policy_ids.is_empty() && on_call.schedule_ids.is_empty()
                        {
                            return Err(format!(
                                "{at}.match.requesterOnCall: name at least one escalation policy or schedule"
                            ));
                        }
                        Ok(OnCallCondition {
                            channel: on_call.channel.clone(),
                            escalation_policy_ids: on_call.escalation_policy_ids.clone(),
                            schedule_ids: on_call.schedule_ids.clone(),
                            max_escalation_level,
                        })
                    })
                    .transpose()?,
            },
            verdict,
        })
    }
}

impl AccessPolicySpec {
    /// The `requests` rules as the engine reads them. A rule that cannot be read is left out
    /// (it matches nothing) and comes back with its index and why, for the policy's status.
    pub fn request_rules(&self, policy: ObjectKey) -> PolicyRequestRules {
        let mut rules = Vec::new();
        let mut invalid = Vec::new();
        for (index, rule) in self.requests.iter().enumerate() {
            match rule.to_engine(&format!("requests[{index}]")) {
                Ok(rule) => rules.push(rule),
                Err(why) => invalid.push((index, why)),
            }
        }
        PolicyRequestRules {
            policy,
            rules,
            invalid,
        }
    }

    pub fn rules(&self) -> PolicyRules {
        PolicyRules {
            safety: self.safety.as_ref().map(SafetySpec::rules),
            offboarding: self.offboarding.as_ref().map(OffboardingSpec::rules),
            tenancy: self.tenancy.iter().map(TenancyRule::rules).collect(),
        }
    }
}

impl LockdownSubject {
    pub fn to_subject(&self, at: &str) -> Result<Subject, String> {
        let set = [
            self.email.is_some(),
            self.opal_user_id.is_some(),
            self.hris_id.is_some(),
            self.group.is_some(),
            self.resource.is_some(),
        ];
        if set.iter().filter(|is_set| **is_set).count() != 1 {
            return Err(format!(
                "{at}: set exactly one of email, opalUserId, hrisId, group or resource"
            ));
        }
        if let Some(email) = &self.email {
            return Ok(Subject::Email(email.clone()));
        }
        if let Some(id) = &self.opal_user_id {
            return Ok(Subject::OpalUserId(id.clone()));
        }
        if let Some(id) = &self.hris_id {
            return Ok(Subject::HrisId(id.clone()));
        }
        let target = AccessTarget {
            group: self.group.clone(),
            resource: self.resource.clone(),
            access_level: None,
        };
        target.to_target(at).map(Subject::Target)
    }
}

impl LockdownSpec {
    pub fn rules(&self) -> LockdownRules {
        let mut invalid = Vec::new();
        let subjects = self
            .subjects
            .iter()
            .enumerate()
            .filter_map(|(index, subject)| {
                subject
                    .to_subject(&format!("subjects[{index}]"))
                    .map_err(|problem| invalid.push(problem))
                    .ok()
            })
            .collect();
        let scope = match &self.scope {
            Some(scope) if scope.mode == LockdownScopeMode::Targets => LockScope::Targets(
                scope
                    .targets
                    .iter()
                    .enumerate()
                    .filter_map(|(index, target)| {
                        target
                            .to_target(&format!("scope.targets[{index}]"))
                            .map_err(|problem| invalid.push(problem))
                            .ok()
                    })
                    .collect(),
            ),
            _ => LockScope::Everything,
        };
        let end = match (&self.expires_at, &self.duration) {
            (None, None) => LockEnd::Never,
            (Some(at), None) => LockEnd::At(*at),
            (None, Some(duration)) => match parse_go_duration(duration) {
                Ok(duration) => LockEnd::After(duration),
                Err(error) => LockEnd::Invalid(error.to_string()),
            },
            (Some(_), Some(_)) => {
                LockEnd::Invalid("set exactly one of expiresAt or duration".to_owned())
            }
        };
        LockdownRules {
            subjects,
            scope,
            break_glass: self.break_glass.clone(),
            end,
            invalid,
        }
    }
}

#[cfg(test)]
mod tests {
    use chrono::{Duration, TimeZone, Utc};
    use serde_json::json;

    use super::*;
    use crate::engine::OffboardingScope as Scope;

    fn from_json<T: serde::de::DeserializeOwned>(value: serde_json::Value) -> T {
        serde_json::from_value(value).expect("spec shape")
    }

    #[test]
    fn a_mapping_reads_into_enums_and_its_unreadable_parts_are_problems() {
        let spec: RoleMappingSpec = from_json(json!({
            "selector": {"matchExpressions": [
                {"key": "title", "operator": "Matches", "values": ["Eng.*"]}
            ]},
            "grants": [
                {"group": {"name": "eng"}},
                {"resource": {"id": "4b3c2a1d-0000-4000-8000-000000000001"},
                 "accessLevel": {"name": "Admin"}},
                {"group": {"name": "both"}, "resource": {"name": "both"}},
                {"group": {"name": "x", "id": "4b3c2a1d-0000-4000-8000-000000000002"}},
                {"group": {"name": "lvl"}, "accessLevel": {}},
            ],
            "preStartDays": -3,
        }));
        let rules = spec.rules();
        assert!(rules.selector.is_ok());
        assert_eq!(
            rules.grants,
            [
                GrantRule {
                    target: Target::group_named("eng"),
                    level: LevelRef::Default,
                },
                GrantRule {
                    target: Target {
                        kind: TargetKind::Resource,
                        by: EngineTargetRef::Id("4b3c2a1d-0000-4000-8000-000000000001".into()),
                    },
                    level: LevelRef::Name("Admin".into()),
                },
            ]
        );
        assert_eq!(
            rules.invalid,
            [
                "grants[2]: set exactly one of group or resource",
                "grants[3].group: set exactly one of name or id",
                "grants[4].accessLevel: set exactly one of remoteId or name",
                "preStartDays -3 is negative; grants wait for the start date",
            ]
        );
        assert_eq!(rules.pre_start_days, 0);
        assert_eq!(rules.membership, Membership::Authoritative);
    }

    #[test]
    fn a_selector_regex_that_cannot_compile_names_its_place() {
        let selector: EmployeeSelector = from_json(json!({"matchExpressions": [
            {"key": "department", "operator": "In", "values": ["Eng"]},
            {"key": "title", "operator": "Matches", "values": ["("]},
        ]}));
        let error = selector.compile().expect_err("unclosed group");
        assert!(
            error
                .to_string()
                .starts_with("matchExpressions[1] (title): invalid regular expression"),
            "{error}"
        );
    }

    #[test]
    fn safety_limits_that_are_negative_are_problems_not_lifted_limits() {
        let safety: SafetySpec = from_json(json!({
            "maxRevocations": -1,
            "maxRevocationPercent": 10,
            "hrisFloodGate": {"minEmployees": -5, "maxShrinkPercent": 20},
        }));
        let rules = safety.rules();
        assert_eq!(rules.max_revocations, None);
        assert_eq!(rules.max_revocation_percent, Some(10));
        assert_eq!(rules.max_shrink_percent, Some(20));
        assert_eq!(
            rules.invalid,
            [
                "maxRevocations -1 is negative",
                "hrisFloodGate.minEmployees -5 is negative"
            ]
        );
    }

    #[test]
    fn offboarding_timing_and_delay_read_together() {
        let read = |value| from_json::<OffboardingSpec>(value).rules();
        assert_eq!(
            read(json!({"revoke": "All", "when": "After", "after": "72h"})),
            Ok(OffboardingRules {
                scope: Scope::All,
                when: OffboardingWhen::After(Duration::hours(72)),
            })
        );
        assert_eq!(
            read(json!({})),
            Ok(OffboardingRules {
                scope: Scope::Governed,
                when: OffboardingWhen::Immediately,
            })
        );
        let unreadable = read(json!({"when": "After", "after": "3 days"})).expect_err("bad delay");
        assert!(
            unreadable.starts_with("offboarding.after: "),
            "{unreadable}"
        );
        assert!(
            read(json!({"when": "After"})).is_err(),
            "a delay is required"
        );
        assert!(
            read(json!({"when": "OnTerminationDate", "after": "1h"})).is_err(),
            "a delay without After is not silently dropped"
        );
    }

    #[test]
    fn lockdown_subjects_scope_and_end_read_into_enums() {
        let at = Utc
            .with_ymd_and_hms(2026, 6, 15, 12, 0, 0)
            .single()
            .expect("time");
        let spec: LockdownSpec = from_json(json!({
            "subjects": [
                {"email": "ada@example.com"},
                {"hrisId": "E3"},
                {"resource": {"name": "prod-db"}},
                {"email": "x@example.com", "opalUserId": "u9"},
                {},
            ],
            "scope": {"mode": "Targets", "targets": [{"group": {"name": "eng"}}, {}]},
            "reason": "incident",
            "expiresAt": at,
        }));
        let rules = spec.rules();
        assert_eq!(
            rules.subjects,
            [
                Subject::Email("ada@example.com".into()),
                Subject::HrisId("E3".into()),
                Subject::Target(Target::resource_named("prod-db")),
            ]
        );
        assert_eq!(
            rules.scope,
            LockScope::Targets(vec![Target::group_named("eng")])
        );
        assert_eq!(rules.end, LockEnd::At(at));
        assert_eq!(rules.invalid.len(), 3, "{:?}", rules.invalid);
        assert!(rules.invalid[0].starts_with("subjects[3]: set exactly one of"));
        assert!(rules.invalid[2].starts_with("scope.targets[1]: set exactly one of"));
    }

    #[test]
    fn a_lockdown_end_that_cannot_be_read_is_invalid_never_endless() {
        let end = |value| from_json::<LockdownSpec>(value).rules().end;
        assert_eq!(
            end(json!({"subjects": [], "reason": "r", "duration": "90m"})),
            LockEnd::After(Duration::minutes(90))
        );
        assert!(matches!(
            end(json!({"subjects": [], "reason": "r", "duration": "soon"})),
            LockEnd::Invalid(_)
        ));
        assert!(matches!(
            end(json!({"subjects": [], "reason": "r", "duration": "1h",
                       "expiresAt": "2026-06-15T12:00:00Z"})),
            LockEnd::Invalid(_)
        ));
        assert_eq!(end(json!({"subjects": [], "reason": "r"})), LockEnd::Never);
    }

    #[test]
    fn request_rules_read_into_conditions_and_unreadable_ones_match_nothing() {
        let spec: AccessPolicySpec = from_json(json!({"requests": [
            {"name": "short", "action": "AutoApprove", "match": {
                "durationAtMost": "8h",
                "maxSensitivity": "Medium",
                "businessHours": {"timeZone": "Europe/Berlin", "days": ["Mon", "Fri"],
                                  "start": "08:00", "end": "24:00"},
                "requesterOnCall": {"channel": "pd", "escalationPolicyIds": ["P1"],
                                    "maxEscalationLevel": 1}}},
            {"name": "bad-zone", "action": "Deny", "match": {
                "businessHours": {"timeZone": "Mars/Olympus", "days": ["Mon"],
                                  "start": "08:00", "end": "17:00"}}},
            {"name": "bad-duration", "action": "Deny", "match": {"durationAbove": "a week"}},
            {"name": "route-without-route", "action": "Route"},
            {"name": "desk", "action": "Route", "route": {"channel": "jsm"}, "grantAtMost": "2h"},
            {"name": "limited-deny", "action": "Deny", "grantAtMost": "2h"},
            {"name": "zero-limit", "action": "AutoApprove", "grantAtMost": "0s"}
        ]}));
        let rules = spec.request_rules(ObjectKey::new("opal-system", "jit"));
        let names: Vec<&str> = rules.rules.iter().map(|rule| rule.name.as_str()).collect();
        assert_eq!(names, ["short", "desk"]);
        let short = &rules.rules[0].conditions;
        assert_eq!(short.duration_at_most, Some(Duration::hours(8)));
        let window = short.business_hours.as_ref().expect("window");
        assert_eq!((window.start_minute, window.end_minute), (480, 1440));
        assert_eq!(
            short
                .requester_on_call
                .as_ref()
                .map(|c| c.max_escalation_level),
            Some(Some(1))
        );
        assert_eq!(
            rules.rules[1].verdict,
            RequestVerdict::Route(RoutePlan {
                channel: "jsm".to_owned(),
                ..Default::default()
            })
        );
        assert_eq!(rules.rules[0].grant_at_most, None);
        assert_eq!(rules.rules[1].grant_at_most, Some(Duration::hours(2)));
        let invalid: Vec<(usize, bool)> = rules
            .invalid
            .iter()
            .map(|(index, why)| (*index, why.starts_with(&format!("requests[{index}]"))))
            .collect();
        assert_eq!(
            invalid,
            [(1, true), (2, true), (3, true), (5, true), (6, true)],
            "{:?}",
            rules.invalid
        );
        assert!(rules.invalid[0].1.contains("Mars/Olympus"));
        assert!(rules.invalid[3].1.contains("a Deny rule approves nothing"));
        assert!(rules.invalid[4].1.contains("positive"));
    }
}
