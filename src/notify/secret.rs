//! Channel credentials: where they come from (environment variable, file, Kubernetes Secret) and
//! a wrapper that keeps them out of logs, errors and `Debug` output.

use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;

use futures::future::BoxFuture;
use serde::{Deserialize, Serialize};

use super::error::NotifyError;

pub(crate) const REDACTED: &str = "[redacted]";

/// A credential (token, password, signing key, routing key, or a URL that embeds one).
/// `Debug` and `Display` print `[redacted]`; it cannot be serialized.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(Arc<str>);

impl Secret {
    /// Wraps a credential, trimming surrounding whitespace (values read from files or Secrets
    /// often end in a newline). An empty value is refused without echoing anything.
    pub fn new(value: impl AsRef<str>) -> Result<Self, NotifyError> {
        let value = value.as_ref().trim();
        if value.is_empty() {
            return Err(NotifyError::Config("a credential is empty".to_owned()));
        }
        Ok(Self(Arc::from(value)))
    }

    pub(crate) fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(REDACTED)
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(REDACTED)
    }
}

/// Where a credential is read from. Written in the operator config as exactly one of
/// `{env: NAME}`, `{file: /path}` or `{secretKeyRef: {name: S, key: K}}`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "SecretRefFields", into = "SecretRefFields")]
pub enum SecretRef {
    /// An environment variable of the operator process.
    Env(String),
    /// A file, typically a mounted Secret volume.
    File(PathBuf),
    /// A key of a Kubernetes Secret in the operator's namespace.
    SecretKeyRef(SecretKeySelector),
}

/// The written form of a [`SecretRef`]: a map with exactly one key. (YAML would otherwise spell
/// an enum as a tag such as `!env NAME`.)
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct SecretRefFields {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    env: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    file: Option<PathBuf>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    secret_key_ref: Option<SecretKeySelector>,
}

impl TryFrom<SecretRefFields> for SecretRef {
    type Error = String;

    fn try_from(fields: SecretRefFields) -> Result<Self, Self::Error> {
        match (fields.env, fields.file, fields.secret_key_ref) {
            (Some(env), None, None) => Ok(Self::Env(env)),
            (None, Some(file), None) => Ok(Self::File(file)),
            (None, None, Some(selector)) => Ok(Self::SecretKeyRef(selector)),
            _ => Err(
                "a credential reference needs exactly one of env, file and secretKeyRef".to_owned(),
            ),
        }
    }
}

impl From<SecretRef> for SecretRefFields {
    fn from(reference: SecretRef) -> Self {
        match reference {
            SecretRef::Env(env) => Self {
                env: Some(env),
                ..Self::default()
            },
            SecretRef::File(file) => Self {
                file: Some(file),
                ..Self::default()
            },
            SecretRef::SecretKeyRef(selector) => Self {
                secret_key_ref: Some(selector),
                ..Self::default()
            },
        }
    }
}

/// A key of a Kubernetes Secret.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SecretKeySelector {
    pub name: String,
    pub key: String,
}

impl fmt::Display for SecretRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Env(name) => write!(f, "environment variable {name}"),
            Self::File(path) => write!(f, "file {}", path.display()),
            Self::SecretKeyRef(selector) => {
                write!(f, "Secret {}/key {}", selector.name, selector.key)
            }
        }
    }
}

/// Reads keys of Kubernetes Secrets. The controller implements it with its kube client; without
/// one, [`NoKubeSecrets`] makes such references a clear error.
pub trait KubeSecretSource: Send + Sync {
    /// The value of `key` in Secret `name`, or a reason it cannot be had (never the value).
    fn read<'a>(&'a self, name: &'a str, key: &'a str) -> BoxFuture<'a, Result<String, String>>;
}

/// A [`KubeSecretSource`] for running without a cluster: every lookup fails.
#[derive(Clone, Copy, Debug, Default)]
pub struct NoKubeSecrets;

impl KubeSecretSource for NoKubeSecrets {
    fn read<'a>(&'a self, _name: &'a str, _key: &'a str) -> BoxFuture<'a, Result<String, String>> {
        Box::pin(async { Err("no Kubernetes client is available to read Secrets".to_owned()) })
    }
}

/// Reads the credential `reference` points at for channel `channel`.
pub async fn resolve_secret(
    channel: &str,
    reference: &SecretRef,
    kube: &dyn KubeSecretSource,
) -> Result<Secret, NotifyError> {
    let failure = |reason: String| NotifyError::Secret {
        channel: channel.to_owned(),
        reason: format!("{reference}: {reason}"),
    };
    let raw = match reference {
        SecretRef::Env(name) => std::env::var(name).map_err(|err| match err {
            std::env::VarError::NotPresent => failure("not set".to_owned()),
            std::env::VarError::NotUnicode(_) => failure("not valid UTF-8".to_owned()),
        })?,
        SecretRef::File(path) => tokio::fs::read_to_string(path)
            .await
            .map_err(|err| failure(err.kind().to_string()))?,
        SecretRef::SecretKeyRef(selector) => kube
            .read(&selector.name, &selector.key)
            .await
            .map_err(failure)?,
    };
    Secret::new(raw).map_err(|_| failure("empty".to_owned()))
}

/// Removes every known credential (and, for URLs, the parts that carry it) from text that may
/// reach logs or errors, such as server answers and transport error messages.
#[derive(Clone, Default)]
pub(crate) struct Redactor {
    needles: Vec<Arc<str>>,
}

impl Redactor {
    pub(crate) fn new() -> Self {
        Self::default()
    }

    /// Adds a credential.
    pub(crate) fn with(mut self, secret: &Secret) -> Self {
        self.push(secret.expose());
        self
    }

    /// Adds a URL that embeds a credential: the whole URL, its path and query, and each query
    /// value, so partial echoes are caught too.
    pub(crate) fn with_url(mut self, secret: &Secret) -> Self {
        self.push(secret.expose());
        if let Ok(url) = url::Url::parse(secret.expose()) {
            if url.path().len() > 1 {
                self.push(url.path());
            }
            if let Some(query) = url.query() {
                self.push(query);
                for (_, value) in url.query_pairs() {
                    self.push(&value);
                }
            }
        }
        self
    }

    fn push(&mut self, needle: &str) {
        // Very short fragments would blank out ordinary words.
        if needle.len() >= 4 {
            self.needles.push(Arc::from(needle));
            self.needles.sort_by_key(|n| std::cmp::Reverse(n.len()));
        }
    }

    pub(crate) fn clean(&self, text: &str) -> String {
        self.needles.iter().fold(text.to_owned(), |acc, needle| {
            acc.replace(&**needle, REDACTED)
        })
    }
}

impl fmt::Debug for Redactor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Redactor({} needles)", self.needles.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_is_hidden_in_debug_and_display() {
        let secret = Secret::new("xoxb-very-secret\n").expect("secret");
        assert_eq!(format!("{secret:?}"), REDACTED);
        assert_eq!(secret.to_string(), REDACTED);
        assert_eq!(secret.expose(), "xoxb-very-secret");
        assert!(Secret::new(" \n").is_err());
    }

    #[test]
    fn redactor_removes_urls_and_their_parts() {
        let url = Secret::new("https://hooks.example/services/T1/B2/abcdefSECRET?token=qwerty123")
            .expect("url");
        let redactor = Redactor::new().with_url(&url);
        let text = format!(
            "failed {} and /services/T1/B2/abcdefSECRET and qwerty123",
            url.expose()
        );
        let cleaned = redactor.clean(&text);
        assert!(!cleaned.contains("abcdefSECRET"), "{cleaned}");
        assert!(!cleaned.contains("qwerty123"), "{cleaned}");
    }

    #[test]
    fn secret_refs_parse_from_yaml() {
        let env: SecretRef = serde_yaml::from_str("env: SLACK_TOKEN").expect("env");
        assert_eq!(env, SecretRef::Env("SLACK_TOKEN".into()));
        let file: SecretRef = serde_yaml::from_str("file: /var/run/x").expect("file");
        assert_eq!(file, SecretRef::File("/var/run/x".into()));
        let kube: SecretRef =
            serde_yaml::from_str("secretKeyRef: {name: slack, key: token}").expect("kube");
        assert_eq!(
            kube,
            SecretRef::SecretKeyRef(SecretKeySelector {
                name: "slack".into(),
                key: "token".into()
            })
        );
        assert!(serde_yaml::from_str::<SecretRef>("value: inline").is_err());
        assert!(serde_yaml::from_str::<SecretRef>("{env: A, file: /b}").is_err());
        assert!(serde_yaml::from_str::<SecretRef>("{}").is_err());
        let round_trip: SecretRef =
            serde_yaml::from_str(&serde_yaml::to_string(&kube).expect("write")).expect("read");
        assert_eq!(round_trip, kube);
    }

    #[tokio::test]
    async fn resolves_files_and_reports_missing_sources_without_values() {
        let dir = std::env::temp_dir().join(format!("notify-secret-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let path = dir.join("token");
        std::fs::write(&path, "file-secret-value\n").expect("write");
        let secret = resolve_secret("ops", &SecretRef::File(path.clone()), &NoKubeSecrets)
            .await
            .expect("file");
        assert_eq!(secret.expose(), "file-secret-value");
        let path_value = std::env::var("PATH").expect("PATH is set");
        let from_env = resolve_secret("ops", &SecretRef::Env("PATH".into()), &NoKubeSecrets)
            .await
            .expect("env");
        assert_eq!(from_env.expose(), path_value.trim());
        let missing = resolve_secret(
            "ops",
            &SecretRef::Env("NOTIFY_TEST_SURELY_UNSET_VAR".into()),
            &NoKubeSecrets,
        )
        .await
        .expect_err("unset");
        assert_eq!(missing.label(), "secret");
        assert!(missing.to_string().contains("NOTIFY_TEST_SURELY_UNSET_VAR"));
        let kube = SecretRef::SecretKeyRef(SecretKeySelector {
            name: "s".into(),
            key: "k".into(),
        });
        let err = resolve_secret("ops", &kube, &NoKubeSecrets)
            .await
            .expect_err("kube");
        assert!(err.to_string().contains("Secret s/key k"));
        std::fs::remove_dir_all(&dir).expect("cleanup");
    }
}
