//! HR credentials: referenced from the configuration by environment variable or file, held in a
//! wrapper that never prints them.

use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::error::HrisError;

const REDACTED: &str = "[redacted]";

/// A credential value (API key, client secret, refresh token, webhook key). `Debug` and `Display`
/// print `[redacted]`; it cannot be serialized.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(Arc<str>);

impl Secret {
    /// Wraps a value, trimming surrounding whitespace (values read from files often end in `\n`).
    pub fn new(value: impl AsRef<str>) -> Result<Self, HrisError> {
        let value = value.as_ref().trim();
        if value.is_empty() {
            return Err(HrisError::Config("a credential is empty".into()));
        }
        Ok(Self(Arc::from(value)))
    }

    pub(crate) fn expose(&self) -> &str {
        &self.0
    }

    /// Replaces any occurrence of the secret in text that may reach logs or errors.
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

/// Where a credential is read from; the configuration never holds the value itself.
/// YAML: `{env: BAMBOOHR_API_KEY}` or `{file: /var/run/secrets/hris/api-key}`.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(try_from = "SecretRefFields", into = "SecretRefFields")]
pub enum SecretRef {
    /// An environment variable of the operator process.
    Env(String),
    /// A file, typically a mounted Kubernetes Secret key.
    File(PathBuf),
}

/// The YAML form: a map with exactly one of `env` and `file` (YAML libraries disagree on how a
/// plain enum looks, a map is unambiguous).
#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct SecretRefFields {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    env: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    file: Option<PathBuf>,
}

impl TryFrom<SecretRefFields> for SecretRef {
    type Error = String;

    fn try_from(fields: SecretRefFields) -> Result<Self, Self::Error> {
        match (fields.env, fields.file) {
            (Some(name), None) if !name.trim().is_empty() => Ok(Self::Env(name)),
            (None, Some(path)) if !path.as_os_str().is_empty() => Ok(Self::File(path)),
            _ => Err("a credential reference needs exactly one of `env` or `file`".into()),
        }
    }
}

impl From<SecretRef> for SecretRefFields {
    fn from(reference: SecretRef) -> Self {
        match reference {
            SecretRef::Env(name) => Self {
                env: Some(name),
                file: None,
            },
            SecretRef::File(path) => Self {
                env: None,
                file: Some(path),
            },
        }
    }
}

impl SecretRef {
    /// Reads the credential now.
    pub fn resolve(&self) -> Result<Secret, HrisError> {
        let failed = |message: String| HrisError::Secret {
            reference: self.to_string(),
            message,
        };
        let value = match self {
            Self::Env(name) => std::env::var(name).map_err(|err| failed(err.to_string()))?,
            Self::File(path) => {
                std::fs::read_to_string(path).map_err(|err| failed(err.to_string()))?
            }
        };
        Secret::new(value).map_err(|_| failed("the value is empty".into()))
    }
}

impl fmt::Display for SecretRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Env(name) => write!(f, "environment variable {name}"),
            Self::File(path) => write!(f, "file {}", path.display()),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::*;

    #[test]
    fn debug_and_display_hide_the_value() {
        let secret = Secret::new("key-abcdef").expect("secret");
        assert_eq!(format!("{secret:?}"), "[redacted]");
        assert_eq!(secret.to_string(), "[redacted]");
        assert_eq!(secret.redact_from("x key-abcdef y"), "x [redacted] y");
        assert!(Secret::new(" \n").is_err());
    }

    #[test]
    fn resolves_files_and_names_missing_references() {
        let mut file = tempfile::NamedTempFile::new().expect("temp file");
        writeln!(file, "s3cr3t").expect("write");
        let reference = SecretRef::File(file.path().to_owned());
        assert_eq!(reference.resolve().expect("resolve").expose(), "s3cr3t");

        let missing = SecretRef::Env("OPAL_OPERATOR_TEST_SURELY_UNSET_VARIABLE".into());
        let error = missing.resolve().expect_err("unset variable");
        assert_eq!(error.label(), "secret");
        assert!(
            error
                .to_string()
                .contains("OPAL_OPERATOR_TEST_SURELY_UNSET_VARIABLE")
        );
    }

    #[test]
    fn references_parse_from_yaml() {
        let reference: SecretRef = serde_yaml::from_str("env: BAMBOO_KEY").expect("env");
        assert_eq!(reference, SecretRef::Env("BAMBOO_KEY".into()));
        let reference: SecretRef = serde_yaml::from_str("file: /run/key").expect("file");
        assert_eq!(reference, SecretRef::File("/run/key".into()));
        assert!(serde_yaml::from_str::<SecretRef>("value: inline").is_err());
        assert!(serde_yaml::from_str::<SecretRef>("{env: A, file: /b}").is_err());
        assert!(serde_yaml::from_str::<SecretRef>("{}").is_err());
        assert_eq!(
            serde_yaml::to_string(&SecretRef::Env("K".into())).expect("encode"),
            "env: K\n"
        );
    }
}
