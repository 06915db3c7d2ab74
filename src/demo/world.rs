//! The simulated world the story runs in: the simulators, the operator's clients built on them,
//! and the sample org's HR export and manifests.

use super::*;

/// The simulators, the client side built on them, and the rules.
pub(super) struct DemoWorld {
    pub(super) fixture: OrgFixture,
    pub(super) opal: RunningOpalSim,
    pub(super) hr: BambooHrSim,
    pub(super) sources: Sources,
    pub(super) manifests: Manifests,
    pub(super) initial_employees: usize,
    pub(super) unmatched: Vec<String>,
    /// Opal target names by id.
    pub(super) target_names: BTreeMap<GrantTarget, String>,
}

impl DemoWorld {
    pub(super) async fn start(dir: &Path) -> Result<Self, DemoError> {
        let config = OperatorConfig::from_path(&dir.join("config.yaml"))?;
        let manifests = Manifests::load_dir(&dir.join("manifests"))?;
        let employees = read_employees(&dir.join("employees.csv")).await?;
        let fixture = OrgFixture::from_path(dir.join("opal-org.yaml"))?;

        // Opal's own rate limits are lifted (simulator and client alike) so the story runs in
        // seconds; the loop, the client and the wire format are the production ones.
        let opal = RunningOpalSim::start(
            fixture.clone(),
            SimConfig {
                rate_limit: crate::sim::opal::RateLimitConfig::disabled(),
                ..SimConfig::default()
            },
        )
        .await?;
        let client = Client::new(
            ClientConfig {
                base_url: opal.base_url(),
                rate_limit: RateLimitConfig {
                    requests_per_second: 5_000,
                    writes_per_second: 5_000,
                    burst: 500,
                },
                ..ClientConfig::default()
            },
            ApiToken::new(opal.token())?,
        )?;

        let initial_employees = employees.len();
        let opal_emails: BTreeSet<String> = fixture
            .users
            .iter()
            .map(|user| user.email.to_lowercase())
            .collect();
        let today = demo_clock().date_naive();
        let unmatched = employees
            .iter()
            .filter(|e| is_working(e, today) && !opal_emails.contains(&e.email.to_lowercase()))
            .map(|e| e.email.clone())
            .collect();
        let hr = BambooHrSim::start(employees, BambooHrSimConfig::default())
            .await
            .map_err(DemoError::HrSim)?;
        let mut hr_config = hr.client_config();
        // Fail fast when the simulated HR system is down: one retry after its Retry-After.
        hr_config.http = HttpConfig {
            retry: RetryConfig {
                max_attempts: 3,
                initial_backoff_ms: 50,
                max_backoff_ms: 200,
                max_total_delay_ms: 1_500,
            },
            ..HttpConfig::default()
        };
        let hr_client = |error| DemoError::HrClient(Box::new(error));
        let api_key = Secret::new(hr.api_key()).map_err(|error| hr_client(error.into()))?;
        let hr_source = BambooHrSource::new(&hr_config, api_key).map_err(hr_client)?;

        let state = opal.state();
        let mut target_names = BTreeMap::new();
        for group in &fixture.groups {
            if let Some(id) = state.group_id(&group.name) {
                target_names.insert(GrantTarget::Group(id), super::group(&group.name));
            }
        }
        for resource in &fixture.resources {
            if let Some(id) = state.resource_id(&resource.name) {
                target_names.insert(GrantTarget::Resource(id), super::resource(&resource.name));
            }
        }
        Ok(Self {
            sources: Sources {
                hr: HrSource::BambooHr(hr_source),
                opal: client,
                concurrency: config.sync.concurrency,
                operator_namespace: config.operator_namespace,
                safety_defaults: config.safety_defaults,
            },
            fixture,
            opal,
            hr,
            manifests,
            initial_employees,
            unmatched,
            target_names,
        })
    }

    pub(super) fn state(&self) -> SimState {
        self.opal.state()
    }

    pub(super) fn roster(&self) -> &Roster {
        self.hr.roster()
    }

    pub(super) fn user_id(&self, email: &str) -> Result<String, DemoError> {
        self.state()
            .user_by_email(email)
            .map(|user| user.user_id)
            .ok_or_else(|| DemoError::SampleOrg(format!("no Opal user {email}")))
    }

    pub(super) fn group_id(&self, name: &str) -> Result<String, DemoError> {
        self.state()
            .group_id(name)
            .ok_or_else(|| DemoError::SampleOrg(format!("no Opal group {name}")))
    }

    pub(super) fn resource_id(&self, name: &str) -> Result<String, DemoError> {
        self.state()
            .resource_id(name)
            .ok_or_else(|| DemoError::SampleOrg(format!("no Opal resource {name}")))
    }

    pub(super) fn employee(&self, email: &str) -> Result<Employee, DemoError> {
        self.roster()
            .employees()
            .into_iter()
            .find(|e| e.email.eq_ignore_ascii_case(email))
            .ok_or_else(|| DemoError::SampleOrg(format!("no employee {email}")))
    }

    pub(super) fn employee_id(&self, email: &str) -> Result<String, DemoError> {
        self.employee(email).map(|e| e.id)
    }

    /// The direct grant `email` holds on the target labelled `group/<name>` or
    /// `resource/<name>`, if any.
    pub(super) fn holding(&self, email: &str, label: &str) -> Option<GrantSnapshot> {
        let state = self.state();
        let user = state.user_by_email(email)?;
        state
            .user_grants(&user.user_id)
            .into_iter()
            .find(|grant| self.label(&grant.target) == label)
    }

    pub(super) fn label(&self, target: &GrantTarget) -> String {
        self.target_names
            .get(target)
            .cloned()
            .unwrap_or_else(|| match target {
                GrantTarget::Group(id) => format!("group/{id}"),
                GrantTarget::Resource(id) => format!("resource/{id}"),
            })
    }

    pub(super) fn final_access(&self) -> BTreeMap<String, Vec<HeldGrant>> {
        let state = self.state();
        let mut access: BTreeMap<String, Vec<HeldGrant>> = state
            .users()
            .into_iter()
            .map(|user| (user.email.to_lowercase(), Vec::new()))
            .collect();
        let email_of: BTreeMap<String, String> = state
            .users()
            .into_iter()
            .map(|user| (user.user_id, user.email.to_lowercase()))
            .collect();
        for grant in state.all_grants() {
            if let Some(email) = email_of.get(&grant.user_id) {
                access.entry(email.clone()).or_default().push(HeldGrant {
                    target: self.label(&grant.target),
                    access_level: grant.access_level.remote_id.clone(),
                    expires: grant.expiration_date.is_some(),
                });
            }
        }
        for grants in access.values_mut() {
            grants.sort();
        }
        access
    }
}

/// Reads the HR export with the operator's own file source, as `plan` would.
pub(super) async fn read_employees(path: &Path) -> Result<Vec<Employee>, DemoError> {
    let config = FileConfig {
        location: path.display().to_string(),
        format: Some(FileFormat::Csv),
        records: None,
        delimiter: None,
        columns: Default::default(),
        bearer_token: None,
        invalid_rows: InvalidRowPolicy::Reject,
        http: HttpConfig::default(),
    };
    let error = |source| DemoError::Employees {
        path: path.display().to_string(),
        source: Box::new(source),
    };
    let source = FileSource::new(&config, None).map_err(error)?;
    Ok(source.snapshot().await.map_err(error)?.employees)
}

pub(super) fn is_working(employee: &Employee, today: NaiveDate) -> bool {
    employee.status == EmploymentStatus::Active && employee.start_date.is_none_or(|d| d <= today)
}
