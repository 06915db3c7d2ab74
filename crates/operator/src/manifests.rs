//! Custom resources read from manifest files (for `plan` and `run --standalone`): every
//! `*.yaml` / `*.yml` under a directory, multi-document, any of the four kinds. Other kinds
//! (Kustomizations, ConfigMaps, …) are skipped and listed.

use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde_json::Value;

use chrono::{DateTime, Utc};

use crate::crd::{
    API_GROUP, AccessPolicy, Lockdown, LockdownPhase, LockdownStatus, ReviewSchedule, RoleMapping,
    annotations,
};
use crate::engine::{LockdownInput, MappingInput, ObjectKey, Plan, PolicyInput};

/// Why manifests cannot be used; names the file and document.
#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}, document {document}: {message}")]
    Invalid {
        path: String,
        document: usize,
        message: String,
    },
    #[error("{kind} {key} is defined twice ({first} and {second})")]
    Duplicate {
        kind: &'static str,
        key: String,
        first: String,
        second: String,
    },
}

impl ManifestError {
    pub fn label(&self) -> &'static str {
        match self {
            ManifestError::Read { .. } => "read",
            ManifestError::Invalid { .. } => "invalid",
            ManifestError::Duplicate { .. } => "duplicate",
        }
    }
}

/// The custom resources found, plus what was skipped.
#[derive(Clone, Debug, Default)]
pub struct Manifests {
    pub role_mappings: Vec<RoleMapping>,
    pub access_policies: Vec<AccessPolicy>,
    pub review_schedules: Vec<ReviewSchedule>,
    pub lockdowns: Vec<Lockdown>,
    /// `path: kind name` of documents of other kinds.
    pub skipped: Vec<String>,
}

/// Namespace given to objects whose manifest names none, as `kubectl apply` would.
pub const DEFAULT_NAMESPACE: &str = "default";

impl Manifests {
    /// Reads every manifest under `dir` (recursively, in path order).
    pub fn load_dir(dir: &Path) -> Result<Self, ManifestError> {
        let mut files = Vec::new();
        collect_yaml_files(dir, &mut files)?;
        files.sort();
        let mut manifests = Self::default();
        let mut origins: Vec<(&'static str, String, String)> = Vec::new();
        for path in files {
            let text = std::fs::read_to_string(&path).map_err(|source| ManifestError::Read {
                path: path.display().to_string(),
                source,
            })?;
            manifests.add_documents(&path.display().to_string(), &text, &mut origins)?;
        }
        Ok(manifests)
    }

    /// Parses one multi-document YAML text (`origin` names it in errors).
    pub fn from_yaml_str(origin: &str, text: &str) -> Result<Self, ManifestError> {
        let mut manifests = Self::default();
        manifests.add_documents(origin, text, &mut Vec::new())?;
        Ok(manifests)
    }

    fn add_documents(
        &mut self,
        path: &str,
        text: &str,
        origins: &mut Vec<(&'static str, String, String)>,
    ) -> Result<(), ManifestError> {
        for (index, document) in serde_yaml::Deserializer::from_str(text).enumerate() {
            let number = index + 1;
            let invalid = |message: String| ManifestError::Invalid {
                path: path.to_owned(),
                document: number,
                message,
            };
            let value = Value::deserialize(document).map_err(|e| invalid(e.to_string()))?;
            if value.is_null() {
                continue;
            }
            let api_version = value["apiVersion"].as_str().unwrap_or_default();
            let kind = value["kind"].as_str().unwrap_or_default().to_owned();
            let group = api_version.split('/').next().unwrap_or_default();
            if group != API_GROUP {
                let name = value["metadata"]["name"].as_str().unwrap_or("?");
                self.skipped.push(format!("{path}: {kind} {name}"));
                continue;
            }
            if api_version != format!("{API_GROUP}/v1alpha1") {
                return Err(invalid(format!("unsupported apiVersion {api_version}")));
            }
            let origin = format!("{path} document {number}");
            match kind.as_str() {
                "RoleMapping" => {
                    let object: RoleMapping = parse_object(&kind, value).map_err(invalid)?;
                    note_origin(origins, "RoleMapping", &key_of(&object.metadata), origin)?;
                    self.role_mappings.push(object);
                }
                "AccessPolicy" => {
                    let object: AccessPolicy = parse_object(&kind, value).map_err(invalid)?;
                    note_origin(origins, "AccessPolicy", &key_of(&object.metadata), origin)?;
                    self.access_policies.push(object);
                }
                "ReviewSchedule" => {
                    let object: ReviewSchedule = parse_object(&kind, value).map_err(invalid)?;
                    note_origin(origins, "ReviewSchedule", &key_of(&object.metadata), origin)?;
                    self.review_schedules.push(object);
                }
                "Lockdown" => {
                    let object: Lockdown = parse_object(&kind, value).map_err(invalid)?;
                    note_origin(origins, "Lockdown", &key_of(&object.metadata), origin)?;
                    self.lockdowns.push(object);
                }
                other => return Err(invalid(format!("unknown kind {other:?} in {API_GROUP}"))),
            }
        }
        Ok(())
    }

    /// The mappings as the planner sees them (paused by annotation).
    pub fn mapping_inputs(&self) -> Vec<MappingInput> {
        self.role_mappings
            .iter()
            .map(|object| MappingInput {
                key: key_of(&object.metadata),
                rules: object.spec.rules(),
                paused: is_paused(&object.metadata),
                deleting: object.metadata.deletion_timestamp.is_some(),
            })
            .collect()
    }

    /// The policies as the planner sees them (plan approval by annotation).
    pub fn policy_inputs(&self) -> Vec<PolicyInput> {
        self.access_policies
            .iter()
            .map(|object| PolicyInput {
                key: key_of(&object.metadata),
                rules: object.spec.rules(),
                approved_plan_hash: annotation(&object.metadata, annotations::APPROVE_PLAN),
            })
            .collect()
    }

    /// Notes when each lockdown first took effect, as the controller records it in status, so
    /// that a `duration` counts from then rather than from every sync.
    pub fn record_lockdown_activations(&mut self, plan: &Plan, at: DateTime<Utc>) {
        for lockdown in &mut self.lockdowns {
            let active = plan
                .lockdowns
                .get(&key_of(&lockdown.metadata))
                .is_some_and(|findings| findings.active);
            if active {
                let status = lockdown.status.get_or_insert_with(LockdownStatus::default);
                if status.activated_at.is_none() {
                    status.activated_at = Some(at);
                }
            }
        }
    }

    /// The lockdowns as the planner sees them; activation time comes from their status.
    pub fn lockdown_inputs(&self) -> Vec<LockdownInput> {
        self.lockdowns
            .iter()
            .map(|object| LockdownInput {
                key: key_of(&object.metadata),
                rules: object.spec.rules(),
                activated_at: object.status.as_ref().and_then(|s| s.activated_at),
                released: object
                    .status
                    .as_ref()
                    .is_some_and(|s| s.phase == Some(LockdownPhase::Released)),
                deleting: object.metadata.deletion_timestamp.is_some(),
            })
            .collect()
    }
}

fn parse_object<T: serde::de::DeserializeOwned>(kind: &str, value: Value) -> Result<T, String> {
    serde_path_to_error::deserialize(value).map_err(|error| {
        let field = error.path().to_string();
        format!("{kind} field `{field}`: {}", error.into_inner())
    })
}

type ObjectMeta = k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

/// The key an object read from a file has (`default` when it names no namespace).
pub fn key_of(metadata: &ObjectMeta) -> ObjectKey {
    ObjectKey::new(
        metadata.namespace.as_deref().unwrap_or(DEFAULT_NAMESPACE),
        metadata.name.as_deref().unwrap_or_default(),
    )
}

fn annotation(metadata: &ObjectMeta, key: &str) -> Option<String> {
    metadata.annotations.as_ref()?.get(key).cloned()
}

fn is_paused(metadata: &ObjectMeta) -> bool {
    annotation(metadata, annotations::PAUSED).as_deref() == Some("true")
}

fn note_origin(
    origins: &mut Vec<(&'static str, String, String)>,
    kind: &'static str,
    key: &ObjectKey,
    origin: String,
) -> Result<(), ManifestError> {
    let key = key.to_string();
    if let Some((_, _, first)) = origins
        .iter()
        .find(|(k, name, _)| *k == kind && *name == key)
    {
        return Err(ManifestError::Duplicate {
            kind,
            key,
            first: first.clone(),
            second: origin,
        });
    }
    origins.push((kind, key, origin));
    Ok(())
}

fn collect_yaml_files(dir: &Path, files: &mut Vec<PathBuf>) -> Result<(), ManifestError> {
    let read_error = |source| ManifestError::Read {
        path: dir.display().to_string(),
        source,
    };
    for entry in std::fs::read_dir(dir).map_err(read_error)? {
        let path = entry.map_err(read_error)?.path();
        if path.is_dir() {
            collect_yaml_files(&path, files)?;
        } else if path
            .extension()
            .is_some_and(|ext| ext == "yaml" || ext == "yml")
        {
            files.push(path);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const MANIFESTS: &str = r#"
apiVersion: opal-operator.io/v1alpha1
kind: RoleMapping
metadata:
  name: eng
  namespace: opal-system
  annotations:
    opal-operator.io/paused: "true"
spec:
  selector: {matchLabels: {department: Engineering}}
  grants: [{group: {name: eng-all}}]
---
apiVersion: opal-operator.io/v1alpha1
kind: AccessPolicy
metadata:
  name: baseline
  annotations:
    opal-operator.io/approve-plan: abc123
spec:
  safety: {maxRevocations: 10}
---
apiVersion: kustomize.config.k8s.io/v1beta1
kind: Kustomization
metadata: {name: ignored}
---
"#;

    #[test]
    fn reads_the_four_kinds_and_skips_others() {
        let manifests = Manifests::from_yaml_str("inline", MANIFESTS).expect("valid manifests");
        let mappings = manifests.mapping_inputs();
        assert_eq!(mappings.len(), 1);
        assert_eq!(mappings[0].key, ObjectKey::new("opal-system", "eng"));
        assert!(mappings[0].paused);
        let policies = manifests.policy_inputs();
        assert_eq!(policies[0].key.namespace, DEFAULT_NAMESPACE);
        assert_eq!(policies[0].approved_plan_hash.as_deref(), Some("abc123"));
        assert_eq!(manifests.skipped, ["inline: Kustomization ignored"]);
    }

    #[test]
    fn a_lockdown_duration_counts_from_its_first_active_sync() {
        let text = "apiVersion: opal-operator.io/v1alpha1\nkind: Lockdown\nmetadata: {name: ld, namespace: sec}\nspec:\n  subjects: [{email: a@example.com}]\n  reason: drill\n  duration: 1h\n";
        let mut manifests = Manifests::from_yaml_str("ld.yaml", text).expect("valid");
        let world = |manifests: &Manifests| crate::engine::World {
            hr: crate::engine::HrState::Snapshot(Vec::new()),
            last_good_employee_count: None,
            opal: crate::engine::OpalState::default(),
            mappings: Vec::new(),
            policies: Vec::new(),
            lockdowns: manifests.lockdown_inputs(),
            operator_namespace: "sec".to_owned(),
        };
        let start = DateTime::parse_from_rfc3339("2026-12-01T09:00:00Z")
            .expect("time")
            .with_timezone(&Utc);
        let first = crate::engine::plan(&world(&manifests), start);
        manifests.record_lockdown_activations(&first, start);
        let later = start + chrono::Duration::minutes(61);
        let next = crate::engine::plan(&world(&manifests), later);
        manifests.record_lockdown_activations(&next, later);
        let findings = &next.lockdowns[&ObjectKey::new("sec", "ld")];
        assert!(
            !findings.active,
            "an hour after activation the lockdown has ended"
        );
        assert_eq!(
            findings.expires_at,
            Some(start + chrono::Duration::hours(1))
        );
    }

    #[test]
    fn bad_documents_name_file_document_and_field() {
        let bad = MANIFESTS.replace("maxRevocations: 10", "maxRevocations: ten");
        let error = Manifests::from_yaml_str("policies.yaml", &bad)
            .expect_err("a string count must be rejected")
            .to_string();
        assert!(error.contains("policies.yaml, document 2"), "{error}");
        assert!(error.contains("spec.safety.maxRevocations"), "{error}");

        let twice = format!(
            "{MANIFESTS}{}",
            MANIFESTS.split("---").next().unwrap_or_default()
        );
        let error = Manifests::from_yaml_str("dup.yaml", &twice)
            .expect_err("duplicates must be rejected")
            .to_string();
        assert!(
            error.contains("RoleMapping opal-system/eng is defined twice"),
            "{error}"
        );

        let unknown = MANIFESTS
            .replace("kind: Lockdown", "kind: Lockdwn")
            .replace("kind: AccessPolicy", "kind: AccessPolcy");
        let error = Manifests::from_yaml_str("k.yaml", &unknown)
            .expect_err("unknown kinds in our group must be rejected")
            .to_string();
        assert!(error.contains("unknown kind \"AccessPolcy\""), "{error}");
    }
}
