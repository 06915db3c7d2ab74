//! Email over SMTP with `lettre`: STARTTLS (required, never silently skipped), implicit TLS, or
//! plaintext to a loopback relay; multipart plain + HTML bodies; the message's idempotency key in
//! `Message-ID` and `X-Opal-Operator-Key`, so receivers and archives can drop duplicates.

use std::fmt;
use std::time::Duration;

use lettre::message::header::{HeaderName, HeaderValue};
use lettre::message::{Mailbox, MultiPart};
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Certificate, Tls, TlsParameters};
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};

use super::config::{EmailConfig, SmtpSecurity};
use super::error::NotifyError;
use super::render::EmailContent;
use crate::secret::{Redactor, Secret};

/// Header carrying the message's idempotency key.
pub const KEY_HEADER: &str = "X-Opal-Operator-Key";

/// Sends email through one SMTP relay.
#[derive(Clone)]
pub struct EmailClient {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
    to: Vec<Mailbox>,
    redactor: Redactor,
}

impl fmt::Debug for EmailClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EmailClient")
            .field("from", &self.from.to_string())
            .field("to", &self.to.len())
            .finish_non_exhaustive()
    }
}

impl EmailClient {
    /// Builds the transport. `ca_file` (if configured) is read here, so a missing file is a
    /// configuration error at start-up, not a delivery failure later.
    pub async fn new(
        channel: &str,
        config: &EmailConfig,
        password: Option<Secret>,
        timeout: Duration,
    ) -> Result<Self, NotifyError> {
        let config_error =
            |problem: String| NotifyError::Config(format!("channel {channel:?}: {problem}"));
        let from: Mailbox = config
            .from
            .parse()
            .map_err(|err| config_error(format!("from: {err}")))?;
        let to = config
            .to
            .iter()
            .map(|to| {
                to.parse::<Mailbox>()
                    .map_err(|err| config_error(format!("to {to:?}: {err}")))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let mut builder = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(&config.host)
            .port(config.effective_port())
            .timeout(Some(timeout));
        let tls = match config.security {
            SmtpSecurity::None => None,
            SmtpSecurity::StartTls | SmtpSecurity::Tls => {
                let mut params = TlsParameters::builder(config.host.clone());
                if let Some(path) = &config.ca_file {
                    let pem = tokio::fs::read(path).await.map_err(|err| {
                        config_error(format!("caFile {}: {}", path.display(), err.kind()))
                    })?;
                    let certificate = Certificate::from_pem(&pem)
                        .map_err(|err| config_error(format!("caFile {}: {err}", path.display())))?;
                    params = params.add_root_certificate(certificate);
                }
                Some(
                    params
                        .build_rustls()
                        .map_err(|err| config_error(format!("TLS: {err}")))?,
                )
            }
        };
        builder = match (config.security, tls) {
            (SmtpSecurity::StartTls, Some(params)) => builder.tls(Tls::Required(params)),
            (SmtpSecurity::Tls, Some(params)) => builder.tls(Tls::Wrapper(params)),
            _ => builder.tls(Tls::None),
        };
        let mut redactor = Redactor::new();
        if let (Some(username), Some(password)) = (&config.username, &password) {
            redactor = redactor.with(password);
            builder = builder.credentials(Credentials::new(
                username.clone(),
                password.expose().to_owned(),
            ));
        }
        Ok(Self {
            transport: builder.build(),
            from,
            to,
            redactor,
        })
    }

    /// Sends one message to the configured recipients plus `extra_recipients`; returns the
    /// `Message-ID` used. Recipients that are not valid addresses are skipped with a warning.
    pub async fn send(
        &self,
        content: &EmailContent,
        extra_recipients: &[String],
        idempotency_key: &str,
    ) -> Result<String, NotifyError> {
        let mut recipients = self.to.clone();
        for raw in extra_recipients {
            match raw.parse::<Mailbox>() {
                Ok(mailbox) if !recipients.iter().any(|r| r.email == mailbox.email) => {
                    recipients.push(mailbox);
                }
                Ok(_) => {}
                Err(err) => {
                    tracing::warn!(recipient = %raw, %err, "skipping invalid email recipient")
                }
            }
        }
        if recipients.is_empty() {
            return Err(NotifyError::Smtp {
                message: "no recipients".to_owned(),
                code: None,
                permanent: true,
            });
        }
        let message_id = format!("<{idempotency_key}@opal-operator>");
        let mut builder = Message::builder()
            .from(self.from.clone())
            .subject(content.subject.clone())
            .message_id(Some(message_id.clone()));
        for recipient in recipients {
            builder = builder.to(recipient);
        }
        let mut message = builder
            .multipart(MultiPart::alternative_plain_html(
                content.plain.clone(),
                content.html.clone(),
            ))
            .map_err(|err| NotifyError::Smtp {
                message: format!("cannot build message: {err}"),
                code: None,
                permanent: true,
            })?;
        message.headers_mut().insert_raw(HeaderValue::new(
            HeaderName::new_from_ascii_str(KEY_HEADER),
            idempotency_key.to_owned(),
        ));
        self.transport
            .send(message)
            .await
            .map_err(|err| self.smtp_error(&err))?;
        Ok(message_id)
    }

    fn smtp_error(&self, err: &lettre::transport::smtp::Error) -> NotifyError {
        let mut message = err.to_string();
        let mut source = std::error::Error::source(err);
        while let Some(cause) = source {
            message.push_str(": ");
            message.push_str(&cause.to_string());
            source = cause.source();
        }
        NotifyError::Smtp {
            message: self.redactor.clean(&message),
            code: err.status().map(u16::from),
            // Only a 5xx reply is final; connection, TLS and timeout failures may pass.
            permanent: err.is_permanent(),
        }
    }
}
