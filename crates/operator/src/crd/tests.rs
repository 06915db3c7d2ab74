//! Schema checks for the generated CRDs. Server-side behaviour (admission, CEL cost, defaults)
//! is tested against a real kube-apiserver in `tests/e2e`; these tests catch generator traps
//! early and pin the rule logic.

use std::path::Path;

use kube::core::cel::validate_cel_schema;
use serde_json::{Value, json};

use super::*;

fn schema_of(crd: &CustomResourceDefinition) -> Value {
    let version = &crd.spec.versions[0];
    let schema = version
        .schema
        .as_ref()
        .and_then(|s| s.open_api_v3_schema.as_ref())
        .expect("derived CRD has a schema");
    serde_json::to_value(schema).expect("schema serializes")
}

/// Visits every schema node with its JSON path.
fn walk(path: &str, node: &Value, visit: &mut dyn FnMut(&str, &serde_json::Map<String, Value>)) {
    match node {
        Value::Object(map) => {
            visit(path, map);
            for (key, child) in map {
                walk(&format!("{path}/{key}"), child, visit);
            }
        }
        Value::Array(items) => {
            for (index, child) in items.iter().enumerate() {
                walk(&format!("{path}/{index}"), child, visit);
            }
        }
        _ => {}
    }
}

#[test]
fn checked_in_crds_match_the_generated_ones() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../crds");
    let rendered = render_crds().expect("CRDs render");
    assert_eq!(rendered.len(), 4);
    for crd in rendered {
        let path = dir.join(&crd.file_name);
        let checked_in = std::fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
        assert!(
            checked_in == crd.yaml,
            "{} differs from the generated CRD; run `cargo run -- crds --out-dir crds` and commit",
            path.display()
        );
    }
    let files = std::fs::read_dir(&dir).expect("crds/ exists").count();
    assert_eq!(files, 4, "crds/ holds exactly the four CRDs");
}

#[test]
fn every_kind_has_names_category_status_and_columns() {
    let expected = [
        ("RoleMapping", "rolemappings", "rm"),
        ("AccessPolicy", "accesspolicies", "ap"),
        ("ReviewSchedule", "reviewschedules", "rvs"),
        ("Lockdown", "lockdowns", "ld"),
    ];
    let crds = all_crds();
    for (crd, (kind, plural, short)) in crds.iter().zip(expected) {
        let names = &crd.spec.names;
        assert_eq!(names.kind, kind);
        assert_eq!(names.plural, plural);
        assert_eq!(names.short_names.as_deref(), Some(&[short.to_owned()][..]));
        assert_eq!(names.categories.as_deref(), Some(&["opal".to_owned()][..]));
        assert_eq!(crd.spec.scope, "Namespaced");
        assert_eq!(crd.spec.group, API_GROUP);
        let version = &crd.spec.versions[0];
        assert_eq!(version.name, "v1alpha1");
        assert!(
            version
                .subresources
                .as_ref()
                .is_some_and(|s| s.status.is_some())
        );
        let columns = version
            .additional_printer_columns
            .as_ref()
            .expect("printer columns");
        assert!(columns.iter().any(|c| c.name == "Age"));
    }
}

#[test]
fn schemas_avoid_constructs_the_apiserver_rejects_or_mis_stores() {
    for crd in all_crds() {
        let name = crd.metadata.name.clone().unwrap_or_default();
        let schema = schema_of(&crd);
        walk("", &schema, &mut |path, node| {
            assert!(
                !node.contains_key("$ref"),
                "{name}{path}: $ref is not supported"
            );
            if let Some(Value::String(format)) = node.get("format") {
                assert!(
                    !format.starts_with("uint") && format != "int8" && format != "int16",
                    "{name}{path}: format {format} has no upper bound on the server"
                );
            }
            if let Some(Value::Array(values)) = node.get("enum") {
                assert!(
                    !values.contains(&Value::Null),
                    "{name}{path}: null listed in enum"
                );
            }
            if node.contains_key("properties") {
                assert_eq!(
                    node.get("type"),
                    Some(&json!("object")),
                    "{name}{path}: untyped object"
                );
            }
        });
    }
}

#[test]
fn every_field_is_described() {
    for crd in all_crds() {
        let name = crd.metadata.name.clone().unwrap_or_default();
        let schema = schema_of(&crd);
        walk("", &schema, &mut |path, node| {
            if let Some(Value::Object(properties)) = node.get("properties") {
                for (field, child) in properties {
                    if ["apiVersion", "kind", "metadata"].contains(&field.as_str())
                        && path.is_empty()
                    {
                        continue;
                    }
                    assert!(
                        child
                            .get("description")
                            .and_then(Value::as_str)
                            .is_some_and(|d| !d.is_empty()),
                        "{name}{path}/properties/{field} has no description"
                    );
                }
            }
        });
    }
}

/// `kubectl explain` prints a description as written, so a line break inside a paragraph would
/// show as a ragged wrap; only paragraph breaks and list items may start a line.
#[test]
fn descriptions_read_as_paragraphs() {
    for crd in all_crds() {
        let name = crd.metadata.name.clone().unwrap_or_default();
        walk("", &schema_of(&crd), &mut |path, node| {
            let Some(description) = node.get("description").and_then(Value::as_str) else {
                return;
            };
            let lines: Vec<&str> = description.split('\n').collect();
            for pair in lines.windows(2) {
                let next = pair[1].trim_start();
                let allowed = pair[0].is_empty()
                    || next.is_empty()
                    || next.starts_with("- ")
                    || next.starts_with("* ")
                    || next.split_once(". ").is_some_and(|(number, _)| {
                        !number.is_empty() && number.bytes().all(|b| b.is_ascii_digit())
                    });
                assert!(
                    allowed,
                    "{name}{path}: a paragraph is broken before {next:?} in {description:?}"
                );
            }
        });
    }
}

#[test]
fn conditions_merge_by_type() {
    for crd in all_crds() {
        let schema = schema_of(&crd);
        let conditions = &schema["properties"]["status"]["properties"]["conditions"];
        assert_eq!(conditions["x-kubernetes-list-type"], json!("map"));
        assert_eq!(conditions["x-kubernetes-list-map-keys"], json!(["type"]));
    }
}

fn rule_errors<T: schemars::JsonSchema>(value: Value) -> Vec<String> {
    match validate_cel_schema::<T>(&value, None) {
        Ok(()) => Vec::new(),
        Err(errors) => vec![errors.to_string()],
    }
}

#[test]
fn target_ref_needs_exactly_one_of_name_and_id() {
    assert!(rule_errors::<TargetRef>(json!({"name": "eng"})).is_empty());
    assert!(
        rule_errors::<TargetRef>(json!({"id": "2b5f3cfc-3f9e-4e4c-9b0d-6c0f1f1a0a01"})).is_empty()
    );
    let both = rule_errors::<TargetRef>(
        json!({"name": "eng", "id": "2b5f3cfc-3f9e-4e4c-9b0d-6c0f1f1a0a01"}),
    );
    assert!(
        both.iter().any(|e| e.contains("exactly one of name or id")),
        "{both:?}"
    );
    assert!(!rule_errors::<TargetRef>(json!({})).is_empty());
}

#[test]
fn access_target_needs_exactly_one_of_group_and_resource() {
    assert!(rule_errors::<AccessTarget>(json!({"group": {"name": "eng"}})).is_empty());
    let both =
        rule_errors::<AccessTarget>(json!({"group": {"name": "a"}, "resource": {"name": "b"}}));
    assert!(
        both.iter()
            .any(|e| e.contains("exactly one of group or resource")),
        "{both:?}"
    );
    assert!(!rule_errors::<AccessTarget>(json!({})).is_empty());
}

#[test]
fn selector_rules() {
    let ok = json!({"matchLabels": {"department": "Engineering"}, "matchExpressions": []});
    assert!(rule_errors::<EmployeeSelector>(ok).is_empty());
    let custom = json!({"matchLabels": {"custom.clearance": "secret"}, "matchExpressions": []});
    assert!(rule_errors::<EmployeeSelector>(custom).is_empty());
    let empty = rule_errors::<EmployeeSelector>(json!({"matchLabels": {}, "matchExpressions": []}));
    assert!(
        empty.iter().any(|e| e.contains("at least one")),
        "{empty:?}"
    );
    let bad_key = rule_errors::<EmployeeSelector>(
        json!({"matchLabels": {"dept": "x"}, "matchExpressions": []}),
    );
    assert!(
        bad_key.iter().any(|e| e.contains("unknown attribute key")),
        "{bad_key:?}"
    );

    let requirement = |operator: &str, values: Value| {
        rule_errors::<AttributeRequirement>(
            json!({"key": "title", "operator": operator, "values": values}),
        )
    };
    assert!(requirement("In", json!(["SRE"])).is_empty());
    assert!(!requirement("In", json!([])).is_empty());
    assert!(requirement("Exists", json!([])).is_empty());
    assert!(!requirement("DoesNotExist", json!(["x"])).is_empty());
    assert!(requirement("Matches", json!(["^Senior .*"])).is_empty());
    assert!(!requirement("Matches", json!(["a", "b"])).is_empty());
}

#[test]
fn offboarding_after_only_with_after_timing() {
    let ok = json!({"revoke": "All", "when": "After", "after": "72h", "notify": []});
    assert!(rule_errors::<OffboardingSpec>(ok).is_empty());
    let missing =
        rule_errors::<OffboardingSpec>(json!({"revoke": "All", "when": "After", "notify": []}));
    assert!(
        missing.iter().any(|e| e.contains("after is required")),
        "{missing:?}"
    );
    let stray = json!({"revoke": "All", "when": "Immediately", "after": "1h", "notify": []});
    assert!(!rule_errors::<OffboardingSpec>(stray).is_empty());
    let bad = json!({"revoke": "All", "when": "After", "after": "3d", "notify": []});
    assert!(!rule_errors::<OffboardingSpec>(bad).is_empty());
}

#[test]
fn lockdown_needs_exactly_one_expiry_and_one_id_per_subject() {
    let spec = |extra: Value| {
        let mut base = json!({
            "subjects": [{"email": "mallory@example.com"}],
            "breakGlass": [], "reason": "credential leak", "restoreOnRelease": true, "notify": []
        });
        if let (Value::Object(base), Value::Object(extra)) = (&mut base, extra) {
            base.extend(extra);
        }
        rule_errors::<LockdownSpec>(base)
    };
    assert!(spec(json!({"duration": "4h"})).is_empty());
    assert!(spec(json!({"expiresAt": "2030-01-01T00:00:00Z"})).is_empty());
    let neither = spec(json!({}));
    assert!(
        neither
            .iter()
            .any(|e| e.contains("exactly one of expiresAt or duration")),
        "{neither:?}"
    );
    assert!(!spec(json!({"duration": "4h", "expiresAt": "2030-01-01T00:00:00Z"})).is_empty());

    assert!(rule_errors::<LockdownSubject>(json!({"hrisId": "E100"})).is_empty());
    let two = rule_errors::<LockdownSubject>(json!({"email": "a@b.c", "hrisId": "E100"}));
    assert!(
        two.iter().any(|e| e.contains("exactly one of email")),
        "{two:?}"
    );
}

#[test]
fn review_schedule_cron_rule() {
    let spec = |schedule: &str| {
        rule_errors::<ReviewScheduleSpec>(json!({
            "schedule": schedule, "timeZone": "UTC", "reviewerAssignment": "ByManager",
            "deadline": "14d", "outcomes": [], "selfReviewAllowed": false,
            "instantlyActionReviews": false, "notifyReviewers": true, "suspend": false
        }))
    };
    for good in [
        "0 9 1 1,4,7,10 *",
        "*/15 * * * *",
        "30 8 * * MON-FRI",
        "0 0 1 */3 *",
    ] {
        assert!(spec(good).is_empty(), "{good} should be accepted");
    }
    for bad in [
        "0 9 * *",
        "61 * * * *",
        "0 25 * * *",
        "every monday",
        "0 9 * * * *",
    ] {
        let errors = spec(bad);
        assert!(
            errors.iter().any(|e| e.contains("five-field cron")),
            "{bad}: {errors:?}"
        );
    }
}
