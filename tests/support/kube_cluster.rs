//! A throw-away Kubernetes control plane for end-to-end tests: etcd plus kube-apiserver on
//! loopback with random ports, generated certificates and a kubeconfig, all inside a temporary
//! directory that disappears with the [`KubeCluster`].
//!
//! There is deliberately no controller-manager, scheduler or kubelet: no garbage collection,
//! no namespace finalization and no Pods. Tests check what the operator itself does.

use std::fs::File;
use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use kube::Client;
use kube::config::{KubeConfigOptions, Kubeconfig, KubeconfigError};
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};
use serde_json::json;
use tempfile::TempDir;

/// The script that installs etcd and builds kube-apiserver; named in every "binary missing" error.
pub const INSTALL_SCRIPT: &str = "scripts/install-e2e-deps.sh";

const ETCD_HEALTH_TIMEOUT: Duration = Duration::from_secs(30);
// A cold kube-apiserver on two busy cores needs tens of seconds for its post-start hooks.
const APISERVER_READY_TIMEOUT: Duration = Duration::from_secs(180);
const POLL_INTERVAL: Duration = Duration::from_millis(250);
const PROBE_TIMEOUT: Duration = Duration::from_secs(5);
const LOG_TAIL_LINES: usize = 40;
const SERVICE_CLUSTER_IP_RANGE: &str = "10.96.0.0/16";
const SERVICE_ACCOUNT_ISSUER: &str = "https://kubernetes.default.svc.cluster.local";

#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    #[error(
        "`{binary}` not found in {dir}: run `bash {INSTALL_SCRIPT}` (or set OPAL_E2E_BIN_DIR to a directory holding etcd and kube-apiserver)"
    )]
    BinaryMissing { binary: &'static str, dir: PathBuf },
    #[error("could not locate the e2e binaries with `bash {INSTALL_SCRIPT} --print-bin-dir`: {0}")]
    BinDirUnknown(String),
    #[error("{context}: {source}")]
    Io {
        context: String,
        source: std::io::Error,
    },
    #[error("generating test certificates: {0}")]
    Certificate(#[from] rcgen::Error),
    #[error("encoding the kubeconfig: {0}")]
    KubeconfigEncoding(#[from] serde_yaml::Error),
    #[error("loading the kubeconfig: {0}")]
    Kubeconfig(#[from] KubeconfigError),
    #[error("building a Kubernetes client: {0}")]
    Client(#[from] kube::Error),
    #[error("building the etcd health probe: {0}")]
    Probe(#[from] reqwest::Error),
    #[error("{process} exited during startup with {status}; last lines of its log:\n{log_tail}")]
    ProcessExited {
        process: &'static str,
        status: ExitStatus,
        log_tail: String,
    },
    #[error(
        "{process} not ready after {waited:?} (last probe: {last_probe}); last lines of its log:\n{log_tail}"
    )]
    NotReady {
        process: &'static str,
        waited: Duration,
        last_probe: String,
        log_tail: String,
    },
}

impl ClusterError {
    pub fn label(&self) -> &'static str {
        match self {
            Self::BinaryMissing { .. } => "binary_missing",
            Self::BinDirUnknown(_) => "bin_dir_unknown",
            Self::Io { .. } => "io",
            Self::Certificate(_) => "certificate",
            Self::KubeconfigEncoding(_) => "kubeconfig_encoding",
            Self::Kubeconfig(_) => "kubeconfig",
            Self::Client(_) => "client",
            Self::Probe(_) => "probe",
            Self::ProcessExited { .. } => "process_exited",
            Self::NotReady { .. } => "not_ready",
        }
    }
}

fn io_error(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> ClusterError {
    let context = context.into();
    move |source| ClusterError::Io { context, source }
}

/// Where etcd and kube-apiserver live: `OPAL_E2E_BIN_DIR`, else the cache directory the install
/// script reports (so the cache layout is defined in one place).
pub fn binary_dir() -> Result<PathBuf, ClusterError> {
    if let Some(dir) = std::env::var_os("OPAL_E2E_BIN_DIR") {
        return Ok(PathBuf::from(dir));
    }
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join(INSTALL_SCRIPT);
    let output = Command::new("bash")
        .arg(&script)
        .arg("--print-bin-dir")
        .stdin(Stdio::null())
        .output()
        .map_err(|error| ClusterError::BinDirUnknown(error.to_string()))?;
    if !output.status.success() {
        return Err(ClusterError::BinDirUnknown(format!(
            "{}: {}",
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        )));
    }
    let dir = String::from_utf8_lossy(&output.stdout).trim().to_owned();
    if dir.is_empty() {
        return Err(ClusterError::BinDirUnknown("it printed nothing".to_owned()));
    }
    Ok(PathBuf::from(dir))
}

fn find_binary(dir: &Path, binary: &'static str) -> Result<PathBuf, ClusterError> {
    let path = dir.join(binary);
    if path.is_file() {
        Ok(path)
    } else {
        Err(ClusterError::BinaryMissing {
            binary,
            dir: dir.to_owned(),
        })
    }
}

/// Ports are chosen by binding to port 0 and releasing them just before the servers start;
/// holding all listeners until then keeps the three ports distinct.
fn free_loopback_ports<const N: usize>() -> Result<[u16; N], ClusterError> {
    let listeners = (0..N)
        .map(|_| TcpListener::bind("127.0.0.1:0"))
        .collect::<Result<Vec<_>, _>>()
        .map_err(io_error("reserving a loopback port"))?;
    let mut ports = [0u16; N];
    for (port, listener) in ports.iter_mut().zip(&listeners) {
        *port = listener
            .local_addr()
            .map_err(io_error("reading a reserved port"))?
            .port();
    }
    Ok(ports)
}

/// Files written into the data directory for kube-apiserver and its clients.
struct ClusterPki {
    ca_cert: PathBuf,
    serving_cert: PathBuf,
    serving_key: PathBuf,
    admin_cert: PathBuf,
    admin_key: PathBuf,
    service_account_public_key: PathBuf,
    service_account_signing_key: PathBuf,
}

impl ClusterPki {
    fn generate(dir: &Path) -> Result<Self, ClusterError> {
        std::fs::create_dir_all(dir).map_err(io_error("creating the pki directory"))?;
        let write = |name: &str, contents: String| -> Result<PathBuf, ClusterError> {
            let path = dir.join(name);
            std::fs::write(&path, contents).map_err(io_error(format!("writing {name}")))?;
            Ok(path)
        };

        let ca_key = KeyPair::generate()?;
        let mut ca_params = CertificateParams::new(Vec::<String>::new())?;
        ca_params
            .distinguished_name
            .push(DnType::CommonName, "opal-operator-e2e-ca");
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let ca_cert = ca_params.self_signed(&ca_key)?;
        let ca = Issuer::new(ca_params, ca_key);

        let serving_key = KeyPair::generate()?;
        let mut serving_params =
            CertificateParams::new(vec!["127.0.0.1".to_owned(), "localhost".to_owned()])?;
        serving_params
            .distinguished_name
            .push(DnType::CommonName, "kube-apiserver");
        serving_params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        serving_params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        let serving_cert = serving_params.signed_by(&serving_key, &ca)?;

        // system:masters is the group kube-apiserver always authorizes, whatever RBAC says.
        let admin_key = KeyPair::generate()?;
        let mut admin_params = CertificateParams::new(Vec::<String>::new())?;
        admin_params
            .distinguished_name
            .push(DnType::CommonName, "admin");
        admin_params
            .distinguished_name
            .push(DnType::OrganizationName, "system:masters");
        admin_params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        admin_params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        let admin_cert = admin_params.signed_by(&admin_key, &ca)?;

        // ES256 is one of the algorithms kube-apiserver signs ServiceAccount tokens with.
        let service_account_key = KeyPair::generate()?;

        Ok(Self {
            ca_cert: write("ca.crt", ca_cert.pem())?,
            serving_cert: write("apiserver.crt", serving_cert.pem())?,
            serving_key: write("apiserver.key", serving_key.serialize_pem())?,
            admin_cert: write("admin.crt", admin_cert.pem())?,
            admin_key: write("admin.key", admin_key.serialize_pem())?,
            service_account_public_key: write("sa.pub", service_account_key.public_key_pem())?,
            service_account_signing_key: write("sa.key", service_account_key.serialize_pem())?,
        })
    }
}

/// Everything a test needs to talk to the cluster; cheap to clone and independent of the
/// processes' lifetime (the [`KubeCluster`] owns those).
#[derive(Clone, Debug)]
pub struct ClusterAccess {
    server_url: String,
    ca_cert: PathBuf,
    kubeconfig_path: PathBuf,
}

impl ClusterAccess {
    /// `https://127.0.0.1:<port>`.
    pub fn server_url(&self) -> &str {
        &self.server_url
    }

    /// A kubeconfig for the cluster admin (client certificate in group `system:masters`),
    /// usable by kubectl and helm as well as kube-rs.
    pub fn kubeconfig_path(&self) -> &Path {
        &self.kubeconfig_path
    }

    pub async fn admin_client(&self) -> Result<Client, ClusterError> {
        let kubeconfig = Kubeconfig::read_from(&self.kubeconfig_path)?;
        client_from_kubeconfig(kubeconfig).await
    }

    /// A client that authenticates with a bearer token only, e.g. one from the TokenRequest API.
    pub async fn client_with_token(&self, token: &str) -> Result<Client, ClusterError> {
        let yaml = kubeconfig_yaml(&self.server_url, &self.ca_cert, json!({ "token": token }))?;
        client_from_kubeconfig(Kubeconfig::from_yaml(&yaml)?).await
    }
}

async fn client_from_kubeconfig(kubeconfig: Kubeconfig) -> Result<Client, ClusterError> {
    let config =
        kube::Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default()).await?;
    Ok(Client::try_from(config)?)
}

fn kubeconfig_yaml(
    server_url: &str,
    ca_cert: &Path,
    user: serde_json::Value,
) -> Result<String, ClusterError> {
    let kubeconfig = json!({
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{
            "name": "opal-e2e",
            "cluster": { "server": server_url, "certificate-authority": ca_cert },
        }],
        "users": [{ "name": "opal-e2e-user", "user": user }],
        "contexts": [{
            "name": "opal-e2e",
            "context": { "cluster": "opal-e2e", "user": "opal-e2e-user" },
        }],
        "current-context": "opal-e2e",
    });
    Ok(serde_yaml::to_string(&kubeconfig)?)
}

/// A child process killed when dropped, with its combined output kept in a log file.
struct ManagedProcess {
    name: &'static str,
    child: Child,
    log_path: PathBuf,
}

impl ManagedProcess {
    fn spawn(
        name: &'static str,
        binary: &Path,
        args: &[String],
        log_path: PathBuf,
    ) -> Result<Self, ClusterError> {
        let log = File::create(&log_path).map_err(io_error(format!("creating {name}'s log")))?;
        let stderr = log
            .try_clone()
            .map_err(io_error(format!("duplicating {name}'s log handle")))?;
        let child = Command::new(binary)
            .args(args)
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(stderr)
            .spawn()
            .map_err(io_error(format!("starting {}", binary.display())))?;
        Ok(Self {
            name,
            child,
            log_path,
        })
    }

    /// Fails if the process has already exited, quoting the end of its log.
    fn ensure_running(&mut self) -> Result<(), ClusterError> {
        match self.child.try_wait() {
            Ok(None) => Ok(()),
            Ok(Some(status)) => Err(ClusterError::ProcessExited {
                process: self.name,
                status,
                log_tail: self.log_tail(),
            }),
            Err(source) => Err(ClusterError::Io {
                context: format!("checking on {}", self.name),
                source,
            }),
        }
    }

    fn log_tail(&self) -> String {
        log_tail(&self.log_path, LOG_TAIL_LINES)
    }

    fn not_ready(&self, waited: Duration, last_probe: String) -> ClusterError {
        ClusterError::NotReady {
            process: self.name,
            waited,
            last_probe,
            log_tail: self.log_tail(),
        }
    }
}

impl Drop for ManagedProcess {
    fn drop(&mut self) {
        // Already-exited children make kill() fail harmlessly; wait() reaps either way.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn log_tail(path: &Path, lines: usize) -> String {
    match File::open(path) {
        Ok(file) => {
            let all: Vec<String> = BufReader::new(file).lines().map_while(Result::ok).collect();
            all[all.len().saturating_sub(lines)..].join("\n")
        }
        Err(error) => format!("(log {} unreadable: {error})", path.display()),
    }
}

/// A running etcd + kube-apiserver pair. Dropping it kills both and deletes the data directory,
/// also while unwinding from a panic.
pub struct KubeCluster {
    // Field order is drop order: the API server goes before its etcd, and the directory last.
    apiserver: ManagedProcess,
    etcd: ManagedProcess,
    access: ClusterAccess,
    data_dir: TempDir,
}

impl KubeCluster {
    /// Starts etcd and kube-apiserver and waits (bounded) until `/readyz` answers `ok`.
    pub async fn start() -> Result<Self, ClusterError> {
        // The dev-dependencies enable both of rustls' crypto providers, so it cannot pick one
        // itself; an Err only means a provider is already installed.
        let _ = rustls::crypto::ring::default_provider().install_default();

        let bin_dir = binary_dir()?;
        let etcd_binary = find_binary(&bin_dir, "etcd")?;
        let apiserver_binary = find_binary(&bin_dir, "kube-apiserver")?;

        let data_dir = tempfile::Builder::new()
            .prefix("opal-e2e-")
            .tempdir()
            .map_err(io_error("creating the cluster data directory"))?;
        let root = data_dir.path();
        let pki = ClusterPki::generate(&root.join("pki"))?;
        let [etcd_client_port, etcd_peer_port, apiserver_port] = free_loopback_ports::<3>()?;

        let etcd_url = format!("http://127.0.0.1:{etcd_client_port}");
        let peer_url = format!("http://127.0.0.1:{etcd_peer_port}");
        let mut etcd = ManagedProcess::spawn(
            "etcd",
            &etcd_binary,
            &[
                "--name=e2e".to_owned(),
                format!("--data-dir={}", root.join("etcd").display()),
                format!("--listen-client-urls={etcd_url}"),
                format!("--advertise-client-urls={etcd_url}"),
                format!("--listen-peer-urls={peer_url}"),
                format!("--initial-advertise-peer-urls={peer_url}"),
                format!("--initial-cluster=e2e={peer_url}"),
                "--logger=zap".to_owned(),
                "--log-level=warn".to_owned(),
            ],
            root.join("etcd.log"),
        )?;
        wait_for_etcd(&mut etcd, &etcd_url).await?;

        let server_url = format!("https://127.0.0.1:{apiserver_port}");
        let access = ClusterAccess {
            kubeconfig_path: root.join("kubeconfig"),
            server_url: server_url.clone(),
            ca_cert: pki.ca_cert.clone(),
        };
        let admin_kubeconfig = kubeconfig_yaml(
            &server_url,
            &pki.ca_cert,
            json!({ "client-certificate": pki.admin_cert, "client-key": pki.admin_key }),
        )?;
        std::fs::write(&access.kubeconfig_path, admin_kubeconfig)
            .map_err(io_error("writing the kubeconfig"))?;

        let path_arg = |flag: &str, path: &Path| format!("--{flag}={}", path.display());
        let mut apiserver = ManagedProcess::spawn(
            "kube-apiserver",
            &apiserver_binary,
            &[
                format!("--etcd-servers={etcd_url}"),
                "--bind-address=127.0.0.1".to_owned(),
                "--advertise-address=127.0.0.1".to_owned(),
                format!("--secure-port={apiserver_port}"),
                // Keeps the server from writing anything outside the data directory.
                path_arg("cert-dir", &root.join("apiserver-certs")),
                path_arg("tls-cert-file", &pki.serving_cert),
                path_arg("tls-private-key-file", &pki.serving_key),
                path_arg("client-ca-file", &pki.ca_cert),
                "--authorization-mode=Node,RBAC".to_owned(),
                "--anonymous-auth=false".to_owned(),
                format!("--service-account-issuer={SERVICE_ACCOUNT_ISSUER}"),
                path_arg("service-account-key-file", &pki.service_account_public_key),
                path_arg(
                    "service-account-signing-key-file",
                    &pki.service_account_signing_key,
                ),
                format!("--service-cluster-ip-range={SERVICE_CLUSTER_IP_RANGE}"),
                "--profiling=false".to_owned(),
            ],
            root.join("kube-apiserver.log"),
        )?;
        wait_for_apiserver(&mut apiserver, &mut etcd, &access).await?;

        Ok(Self {
            apiserver,
            etcd,
            access,
            data_dir,
        })
    }

    pub fn access(&self) -> &ClusterAccess {
        &self.access
    }

    /// The data directory holding certificates, kubeconfig, etcd data and both processes' logs.
    pub fn data_dir(&self) -> &Path {
        self.data_dir.path()
    }

    /// The last lines of both processes' logs, for diagnosing failed tests.
    pub fn log_tails(&self) -> String {
        [&self.etcd, &self.apiserver]
            .iter()
            .map(|process| format!("--- {} ---\n{}", process.name, process.log_tail()))
            .collect::<Vec<_>>()
            .join("\n")
    }
}

async fn wait_for_etcd(etcd: &mut ManagedProcess, client_url: &str) -> Result<(), ClusterError> {
    let probe = reqwest::Client::builder().timeout(PROBE_TIMEOUT).build()?;
    let health_url = format!("{client_url}/health");
    let started = Instant::now();
    let mut last_probe = String::from("none yet");
    while started.elapsed() < ETCD_HEALTH_TIMEOUT {
        etcd.ensure_running()?;
        match probe.get(&health_url).send().await {
            Ok(response) => {
                let status = response.status();
                let body = response.text().await.unwrap_or_default();
                if status.is_success() && body.contains(r#""health":"true""#) {
                    return Ok(());
                }
                last_probe = format!("{status}: {body}");
            }
            Err(error) => last_probe = error.to_string(),
        }
        tokio::time::sleep(POLL_INTERVAL).await;
    }
    Err(etcd.not_ready(started.elapsed(), last_probe))
}

async fn wait_for_apiserver(
    apiserver: &mut ManagedProcess,
    etcd: &mut ManagedProcess,
    access: &ClusterAccess,
) -> Result<(), ClusterError> {
    let client = access.admin_client().await?;
    let started = Instant::now();
    let mut last_probe = String::from("none yet");
    while started.elapsed() < APISERVER_READY_TIMEOUT {
        etcd.ensure_running()?;
        apiserver.ensure_running()?;
        let request = http::Request::get("/readyz")
            .body(Vec::new())
            .expect("a GET with a static path is a valid request");
        match tokio::time::timeout(PROBE_TIMEOUT, client.request_text(request)).await {
            Ok(Ok(body)) if body.trim() == "ok" => return Ok(()),
            Ok(Ok(body)) => last_probe = body,
            Ok(Err(error)) => last_probe = error.to_string(),
            Err(_) => last_probe = format!("no answer within {PROBE_TIMEOUT:?}"),
        }
        tokio::time::sleep(POLL_INTERVAL).await;
    }
    Err(apiserver.not_ready(started.elapsed(), last_probe))
}
