//! Credentials, for every client: where the configuration says they come from, and a wrapper
//! that keeps their values out of logs, errors and `Debug` output.
//!
//! A reference is written as a map with exactly one key. [`LocalSecretRef`] (`{env: NAME}` or
//! `{file: /path}`) is read by the process itself; [`SecretRef`] adds `{secretKeyRef: {name,
//! key}}`, a key of a Kubernetes Secret in the operator namespace, where the reader has a
//! cluster to ask ([`KubeSecretSource`]).

use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;

use futures::future::BoxFuture;
use serde::{Deserialize, Serialize};

/// What replaces a credential in text.
pub const REDACTED: &str = "[redacted]";

/// Why a credential could not be had. Never carries the value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SecretError {
    #[error("a credential is empty")]
    Empty,
    #[error("{reference}: {reason}")]
    Unreadable { reference: String, reason: String },
}

/// A credential value (token, password, signing key, or a URL that embeds one). `Debug` and
/// `Display` print `[redacted]`; it cannot be serialized.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(Arc<str>);

impl Secret {
    /// Wraps a value, trimming surrounding whitespace (values read from files and Secrets often
    /// end in a newline). An empty value is refused without echoing anything.
    pub fn new(value: impl AsRef<str>) -> Result<Self, SecretError> {
        let value = value.as_ref().trim();
        if value.is_empty() {
            return Err(SecretError::Empty);
        }
        Ok(Self(Arc::from(value)))
    }

    pub(crate) fn expose(&self) -> &str {
        &self.0
    }

    /// Replaces any occurrence of the value in text that may reach logs or errors.
    pub(crate) fn redact_from(&self, text: &str) -> String {
        text.replace(&*self.0, REDACTED)
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

/// A credential the process reads itself: an environment variable or a file (typically a
/// mounted Secret volume).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "RefFields", into = "RefFields")]
pub enum LocalSecretRef {
    Env(String),
    File(PathBuf),
}

impl LocalSecretRef {
    /// Reads the credential now.
    pub fn resolve(&self) -> Result<Secret, SecretError> {
        let unreadable = |reason: String| SecretError::Unreadable {
            reference: self.to_string(),
            reason,
        };
        let value = match self {
            Self::Env(name) => std::env::var(name).map_err(|err| match err {
                std::env::VarError::NotPresent => unreadable("not set".to_owned()),
                std::env::VarError::NotUnicode(_) => unreadable("not valid UTF-8".to_owned()),
            })?,
            Self::File(path) => {
                std::fs::read_to_string(path).map_err(|err| unreadable(err.kind().to_string()))?
            }
        };
        Secret::new(value).map_err(|_| unreadable("the value is empty".to_owned()))
    }
}

impl fmt::Display for LocalSecretRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Env(name) => write!(f, "environment variable {name}"),
            Self::File(path) => write!(f, "file {}", path.display()),
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

/// A credential read by the process or from a Kubernetes Secret in the operator namespace.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "RefFields", into = "RefFields")]
pub enum SecretRef {
    Local(LocalSecretRef),
    SecretKeyRef(SecretKeySelector),
}

impl SecretRef {
    /// An environment variable of the operator process.
    pub fn env(name: impl Into<String>) -> Self {
        Self::Local(LocalSecretRef::Env(name.into()))
    }

    /// A file.
    pub fn file(path: impl Into<PathBuf>) -> Self {
        Self::Local(LocalSecretRef::File(path.into()))
    }

    /// Reads the credential now, asking `kube` for Secret keys.
    pub async fn resolve(&self, kube: &dyn KubeSecretSource) -> Result<Secret, SecretError> {
        match self {
            Self::Local(local) => local.resolve(),
            Self::SecretKeyRef(selector) => {
                let unreadable = |reason: String| SecretError::Unreadable {
                    reference: self.to_string(),
                    reason,
                };
                let value = kube
                    .read(&selector.name, &selector.key)
                    .await
                    .map_err(unreadable)?;
                Secret::new(value).map_err(|_| unreadable("the value is empty".to_owned()))
            }
        }
    }
}

impl fmt::Display for SecretRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Local(local) => local.fmt(f),
            Self::SecretKeyRef(selector) => {
                write!(f, "Secret {}/key {}", selector.name, selector.key)
            }
        }
    }
}

/// The written form of both reference types: a map with exactly one key. (YAML would otherwise
/// spell an enum as a tag such as `!env NAME`.)
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct RefFields {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    env: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    file: Option<PathBuf>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    secret_key_ref: Option<SecretKeySelector>,
}

impl TryFrom<RefFields> for LocalSecretRef {
    type Error = String;

    fn try_from(fields: RefFields) -> Result<Self, Self::Error> {
        match (fields.env, fields.file, fields.secret_key_ref) {
            (Some(name), None, None) if !name.trim().is_empty() => Ok(Self::Env(name)),
            (None, Some(path), None) if !path.as_os_str().is_empty() => Ok(Self::File(path)),
            (_, _, Some(_)) => Err(
                "this credential is read by the process itself: give `env` or `file`, not `secretKeyRef`"
                    .to_owned(),
            ),
            _ => Err("a credential reference needs exactly one of `env` or `file`".to_owned()),
        }
    }
}

impl TryFrom<RefFields> for SecretRef {
    type Error = String;

    fn try_from(mut fields: RefFields) -> Result<Self, Self::Error> {
        let given = usize::from(fields.env.is_some())
            + usize::from(fields.file.is_some())
            + usize::from(fields.secret_key_ref.is_some());
        if given != 1 {
            return Err(
                "a credential reference needs exactly one of `env`, `file` and `secretKeyRef`"
                    .to_owned(),
            );
        }
        match fields.secret_key_ref.take() {
            Some(selector) => Ok(Self::SecretKeyRef(selector)),
            None => LocalSecretRef::try_from(fields).map(Self::Local),
        }
    }
}

impl From<LocalSecretRef> for RefFields {
    fn from(reference: LocalSecretRef) -> Self {
        match reference {
            LocalSecretRef::Env(name) => Self {
                env: Some(name),
                ..Self::default()
            },
            LocalSecretRef::File(path) => Self {
                file: Some(path),
                ..Self::default()
            },
        }
    }
}

impl From<SecretRef> for RefFields {
    fn from(reference: SecretRef) -> Self {
        match reference {
            SecretRef::Local(local) => local.into(),
            SecretRef::SecretKeyRef(selector) => Self {
                secret_key_ref: Some(selector),
                ..Self::default()
            },
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
    use std::io::Write;

    use super::*;

    #[test]
    fn values_are_hidden_in_debug_display_and_redacted_text() {
        let secret = Secret::new("xoxb-very-secret\n").expect("secret");
        assert_eq!(format!("{secret:?}"), REDACTED);
        assert_eq!(secret.to_string(), REDACTED);
        assert_eq!(secret.expose(), "xoxb-very-secret");
        assert_eq!(secret.redact_from("x xoxb-very-secret y"), "x [redacted] y");
        assert_eq!(Secret::new(" \n"), Err(SecretError::Empty));
    }

    #[test]
    fn the_redactor_removes_urls_and_their_parts() {
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
    fn references_parse_from_their_one_key_maps() {
        let env: SecretRef = serde_yaml::from_str("env: SLACK_TOKEN").expect("env");
        assert_eq!(env, SecretRef::env("SLACK_TOKEN"));
        let file: SecretRef = serde_yaml::from_str("file: /var/run/x").expect("file");
        assert_eq!(file, SecretRef::file("/var/run/x"));
        let kube: SecretRef =
            serde_yaml::from_str("secretKeyRef: {name: slack, key: token}").expect("kube");
        assert_eq!(
            kube,
            SecretRef::SecretKeyRef(SecretKeySelector {
                name: "slack".into(),
                key: "token".into()
            })
        );
        for bad in ["value: inline", "{env: A, file: /b}", "{}", "env: ' '"] {
            assert!(serde_yaml::from_str::<SecretRef>(bad).is_err(), "{bad}");
            assert!(
                serde_yaml::from_str::<LocalSecretRef>(bad).is_err(),
                "{bad}"
            );
        }
        let local_only = serde_yaml::from_str::<LocalSecretRef>("secretKeyRef: {name: s, key: k}")
            .expect_err("a local reference cannot name a Kubernetes Secret");
        assert!(
            local_only.to_string().contains("`env` or `file`"),
            "{local_only}"
        );
        for reference in [env, file, kube] {
            let text = serde_yaml::to_string(&reference).expect("write");
            assert_eq!(
                serde_yaml::from_str::<SecretRef>(&text).expect("read"),
                reference
            );
        }
        assert_eq!(
            serde_yaml::to_string(&LocalSecretRef::Env("K".into())).expect("write"),
            "env: K\n"
        );
    }

    #[tokio::test]
    async fn resolves_each_source_and_names_what_is_missing_without_values() {
        let mut file = tempfile::NamedTempFile::new().expect("temp file");
        writeln!(file, "file-secret-value").expect("write");
        let secret = SecretRef::file(file.path())
            .resolve(&NoKubeSecrets)
            .await
            .expect("file");
        assert_eq!(secret.expose(), "file-secret-value");

        let path_value = std::env::var("PATH").expect("PATH is set");
        let from_env = SecretRef::env("PATH")
            .resolve(&NoKubeSecrets)
            .await
            .expect("env");
        assert_eq!(from_env.expose(), path_value.trim());

        let missing = LocalSecretRef::Env("OPAL_OPERATOR_TEST_SURELY_UNSET_VARIABLE".into())
            .resolve()
            .expect_err("unset");
        assert!(
            missing
                .to_string()
                .contains("OPAL_OPERATOR_TEST_SURELY_UNSET_VARIABLE"),
            "{missing}"
        );

        let kube = SecretRef::SecretKeyRef(SecretKeySelector {
            name: "s".into(),
            key: "k".into(),
        });
        let err = kube.resolve(&NoKubeSecrets).await.expect_err("kube");
        assert!(err.to_string().contains("Secret s/key k"), "{err}");
    }
}
