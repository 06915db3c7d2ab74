//! Email against a real SMTP server (Debian's python3-aiosmtpd, started by the test through
//! `scripts/notify-smtp-sink.py`): STARTTLS with AUTH, implicit TLS, a plaintext loopback relay,
//! a certificate the client does not trust, no plaintext fallback when STARTTLS is missing, and a
//! permanent 550 refusal. Messages are checked header by header and part by part.

mod notify_support;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::Duration;

use notify_support::*;
use opal_operator::notify::{DeliveryOutcome, Receipt, render};
use serde_json::Value;

const SMTP_PASSWORD: &str = "smtp-password-Sm19Zq";

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// Installs python3-aiosmtpd if missing (idempotent; quiet once installed).
fn ensure_smtp_server_installed() {
    static INSTALLED: OnceLock<()> = OnceLock::new();
    INSTALLED.get_or_init(|| {
        let status = Command::new("bash")
            .arg(repo().join("scripts/notify-test-deps.sh"))
            .status()
            .expect("run scripts/notify-test-deps.sh");
        assert!(
            status.success(),
            "scripts/notify-test-deps.sh failed: {status}"
        );
    });
}

/// A self-signed certificate for 127.0.0.1, as PEM files.
struct TlsFiles {
    cert: PathBuf,
    key: PathBuf,
}

fn tls_files(dir: &Path) -> TlsFiles {
    let generated =
        rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_owned()]).expect("certificate");
    let files = TlsFiles {
        cert: dir.join("smtp-cert.pem"),
        key: dir.join("smtp-key.pem"),
    };
    std::fs::write(&files.cert, generated.cert.pem()).expect("cert");
    std::fs::write(&files.key, generated.signing_key.serialize_pem()).expect("key");
    files
}

/// The SMTP server process. Killed (by its own handle) when dropped.
struct SmtpSink {
    child: Child,
    port: u16,
    dir: tempfile::TempDir,
}

impl SmtpSink {
    fn start(mode: &str, tls: Option<&TlsFiles>, user: Option<&str>) -> Self {
        ensure_smtp_server_installed();
        let dir = tempfile::tempdir().expect("mail dir");
        let mut command = Command::new("/usr/bin/python3");
        command
            .arg(repo().join("scripts/notify-smtp-sink.py"))
            .arg("--dir")
            .arg(dir.path())
            .arg("--mode")
            .arg(mode)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        if let Some(tls) = tls {
            command
                .arg("--cert")
                .arg(&tls.cert)
                .arg("--key")
                .arg(&tls.key);
        }
        if let Some(user) = user {
            command.args(["--user", user, "--password", SMTP_PASSWORD]);
        }
        let mut child = command.spawn().expect("start the SMTP server");
        let stdout = child.stdout.take().expect("stdout");
        let (ready, announced) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut line = String::new();
            let _ = BufReader::new(stdout).read_line(&mut line);
            let _ = ready.send(line);
        });
        let line = announced
            .recv_timeout(Duration::from_secs(30))
            .expect("the SMTP server announces its port");
        let port = line
            .trim()
            .strip_prefix("READY ")
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| panic!("unexpected first line {line:?}"));
        Self { child, port, dir }
    }

    /// Waits (bounded) for `count` messages and returns them in arrival order.
    async fn messages(&self, count: usize) -> Vec<Value> {
        let deadline = tokio::time::Instant::now() + REPORT_WAIT;
        loop {
            let mut files: Vec<PathBuf> = std::fs::read_dir(self.dir.path())
                .expect("read mail dir")
                .filter_map(|entry| entry.ok().map(|e| e.path()))
                .filter(|path| path.extension().is_some_and(|ext| ext == "json"))
                .collect();
            if files.len() >= count {
                files.sort();
                return files
                    .iter()
                    .map(|path| {
                        serde_json::from_slice(&std::fs::read(path).expect("read message"))
                            .expect("message json")
                    })
                    .collect();
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "only {} message(s) arrived",
                files.len()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    fn received(&self) -> usize {
        std::fs::read_dir(self.dir.path())
            .expect("read mail dir")
            .filter(|entry| {
                entry
                    .as_ref()
                    .is_ok_and(|e| e.path().extension().is_some_and(|ext| ext == "json"))
            })
            .count()
    }
}

impl Drop for SmtpSink {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn email_yaml(port: u16, security: &str, extra: &str, attempts: u32) -> String {
    format!(
        "channels:\n  mail:\n    type: email\n    host: 127.0.0.1\n    port: {port}\n    security: {security}\n    from: Opal Operator <opal-operator@example.com>\n    to: [secops@example.com]\n{extra}outbox:\n  requestTimeoutMs: 10000\n  retry:\n    maxAttempts: {attempts}\n    initialBackoffMs: 10\n    maxBackoffMs: 50\n"
    )
}

fn credentials(secrets: &SecretFiles) -> String {
    format!(
        "    username: opal\n    password: {}\n",
        secrets.reference("smtp", SMTP_PASSWORD)
    )
}

fn normalized(text: &str) -> String {
    text.replace("\r\n", "\n").trim_end().to_owned()
}

fn part<'a>(message: &'a Value, content_type: &str) -> &'a str {
    message["parts"]
        .as_array()
        .expect("parts")
        .iter()
        .find(|p| p["content_type"] == content_type)
        .and_then(|p| p["body"].as_str())
        .unwrap_or_else(|| panic!("no {content_type} part in {message}"))
}

#[tokio::test]
async fn starttls_with_auth_delivers_plain_and_html_with_the_right_headers() {
    let secrets = SecretFiles::new();
    let tls = tls_files(secrets.path("").as_path());
    let sink = SmtpSink::start("starttls", Some(&tls), Some("opal"));
    let extra = format!(
        "{}    caFile: {}\n",
        credentials(&secrets),
        tls.cert.display()
    );
    let outbox = outbox(&email_yaml(sink.port, "startTls", &extra, 3)).await;
    let note = lockdown_activated("eve").with_recipient("alice@example.com");
    let report = deliver(&outbox, "mail", note.clone()).await;
    let expected_id = format!("<{}@opal-operator>", note.idempotency_key());
    assert!(
        matches!(&report.outcome, DeliveryOutcome::Delivered(Receipt::Sent { message_id }) if *message_id == expected_id),
        "{report:?}"
    );

    let messages = sink.messages(1).await;
    let message = &messages[0];
    assert_eq!(message["tls"], true, "STARTTLS was used");
    assert_eq!(message["auth_user"], "opal");
    assert_eq!(message["mail_from"], "opal-operator@example.com");
    assert_eq!(
        message["rcpt_tos"],
        serde_json::json!(["secops@example.com", "alice@example.com"])
    );
    let headers = &message["headers"];
    assert_eq!(
        headers["Subject"],
        "[opal-operator] [critical] Lockdown eve activated for eve@example.com"
    );
    assert_eq!(headers["From"], "Opal Operator <opal-operator@example.com>");
    assert_eq!(headers["To"], "secops@example.com, alice@example.com");
    assert_eq!(headers["Message-ID"], expected_id.as_str());
    assert_eq!(headers["X-Opal-Operator-Key"], note.idempotency_key());
    assert_eq!(message["content_type"], "multipart/alternative");
    let content = render::email(&note);
    assert_eq!(
        normalized(part(message, "text/plain")),
        normalized(&content.plain)
    );
    assert_eq!(
        normalized(part(message, "text/html")),
        normalized(&content.html)
    );
    assert!(
        part(message, "text/plain")
            .contains("Eve Adams <eve@example.com> → group \"prod-admins\" (admin)")
    );
    assert!(
        part(message, "text/html")
            .contains("<a href=\"https://app.opal.dev/users/eve\">Opal user</a>")
    );
}

#[tokio::test]
async fn implicit_tls_delivers() {
    let secrets = SecretFiles::new();
    let tls = tls_files(secrets.path("").as_path());
    let sink = SmtpSink::start("smtps", Some(&tls), Some("opal"));
    let extra = format!(
        "{}    caFile: {}\n",
        credentials(&secrets),
        tls.cert.display()
    );
    let outbox = outbox(&email_yaml(sink.port, "tls", &extra, 3)).await;
    let note = offboarded("bob@example.com");
    assert!(deliver(&outbox, "mail", note.clone()).await.is_delivered());
    let message = &sink.messages(1).await[0];
    assert_eq!(message["tls"], true);
    assert_eq!(message["auth_user"], "opal");
    assert_eq!(
        message["headers"]["Subject"],
        "[opal-operator] [warning] Offboarded Bob Stone <bob@example.com>"
    );
    assert!(part(message, "text/plain").contains("Termination date: 2026-02-28"));
}

#[tokio::test]
async fn plaintext_loopback_relay_delivers() {
    let sink = SmtpSink::start("plain", None, None);
    let outbox = outbox(&email_yaml(sink.port, "none", "", 3)).await;
    assert!(
        deliver(&outbox, "mail", review_launched("uar-5"))
            .await
            .is_delivered()
    );
    let message = &sink.messages(1).await[0];
    assert_eq!(message["tls"], false);
    assert_eq!(message["auth_user"], Value::Null);
    assert_eq!(
        message["headers"]["Subject"],
        "[opal-operator] [info] Access review \"Q1 access review\" launched"
    );
}

#[tokio::test]
async fn an_untrusted_certificate_is_refused_without_revealing_the_password() {
    let secrets = SecretFiles::new();
    let tls = tls_files(secrets.path("").as_path());
    let sink = SmtpSink::start("starttls", Some(&tls), Some("opal"));
    let outbox = outbox(&email_yaml(
        sink.port,
        "startTls",
        &credentials(&secrets),
        1,
    ))
    .await;
    let report = deliver(&outbox, "mail", lockdown_activated("eve")).await;
    let DeliveryOutcome::Failed(error) = &report.outcome else {
        panic!("an unknown issuer must not be accepted: {report:?}");
    };
    let text = error.to_string();
    assert!(text.to_ascii_lowercase().contains("certificate"), "{text}");
    assert!(!text.contains(SMTP_PASSWORD) && !format!("{error:?}").contains(SMTP_PASSWORD));
    assert_eq!(sink.received(), 0);
}

#[tokio::test]
async fn starttls_is_never_skipped_when_the_server_lacks_it() {
    let secrets = SecretFiles::new();
    let tls = tls_files(secrets.path("").as_path());
    let sink = SmtpSink::start("plain", None, None);
    let extra = format!("    caFile: {}\n", tls.cert.display());
    let outbox = outbox(&email_yaml(sink.port, "startTls", &extra, 1)).await;
    let report = deliver(&outbox, "mail", lockdown_activated("eve")).await;
    assert!(!report.is_delivered(), "{report:?}");
    assert_eq!(sink.received(), 0, "nothing was sent in plaintext");
}

#[tokio::test]
async fn a_refused_recipient_is_a_permanent_failure_with_the_server_reply() {
    let sink = SmtpSink::start("plain", None, None);
    let outbox = outbox(&email_yaml(sink.port, "none", "", 4)).await;
    let report = deliver(
        &outbox,
        "mail",
        offboarded("bob@example.com").with_recipient("blocked@example.com"),
    )
    .await;
    let DeliveryOutcome::Failed(error) = &report.outcome else {
        panic!("expected a refusal: {report:?}");
    };
    assert_eq!(report.attempts, 1, "a 5xx reply is not retried");
    assert_eq!(error.label(), "smtp_permanent");
    assert!(error.to_string().contains("550"), "{error}");
    assert!(error.to_string().contains("mailbox unavailable"), "{error}");
    assert_eq!(sink.received(), 0);
}
