//! Opal's enumerations. Every one decodes unknown values into `Unknown(String)`.

use super::wire::open_enum;

open_enum! {
    /// Kind of Opal group (`GroupTypeEnum`).
    pub enum GroupType {
        ActiveDirectoryGroup => "ACTIVE_DIRECTORY_GROUP",
        AwsSsoGroup => "AWS_SSO_GROUP",
        DatabricksAccountGroup => "DATABRICKS_ACCOUNT_GROUP",
        DuoGroup => "DUO_GROUP",
        GitHubTeam => "GIT_HUB_TEAM",
        GitLabGroup => "GIT_LAB_GROUP",
        GoogleGroupsGroup => "GOOGLE_GROUPS_GROUP",
        GoogleGroupsGkeGroup => "GOOGLE_GROUPS_GKE_GROUP",
        LdapGroup => "LDAP_GROUP",
        OktaGroup => "OKTA_GROUP",
        OktaGroupRule => "OKTA_GROUP_RULE",
        TailscaleGroup => "TAILSCALE_GROUP",
        OpalGroup => "OPAL_GROUP",
        OpalAccessRule => "OPAL_ACCESS_RULE",
        AzureAdSecurityGroup => "AZURE_AD_SECURITY_GROUP",
        AzureAdMicrosoft365Group => "AZURE_AD_MICROSOFT_365_GROUP",
        ConnectorGroup => "CONNECTOR_GROUP",
        SnowflakeRole => "SNOWFLAKE_ROLE",
        WorkdayUserSecurityGroup => "WORKDAY_USER_SECURITY_GROUP",
        PagerdutyOnCallSchedule => "PAGERDUTY_ON_CALL_SCHEDULE",
        IncidentioOnCallSchedule => "INCIDENTIO_ON_CALL_SCHEDULE",
        RootlyOnCallSchedule => "ROOTLY_ON_CALL_SCHEDULE",
        DevinGroup => "DEVIN_GROUP",
        GitHubEnterpriseTeam => "GIT_HUB_ENTERPRISE_TEAM",
        GrafanaTeam => "GRAFANA_TEAM",
        ClickhouseRole => "CLICKHOUSE_ROLE",
        SlackUserGroup => "SLACK_USER_GROUP",
        TwingateGroup => "TWINGATE_GROUP",
        TwingateGroupSynced => "TWINGATE_GROUP_SYNCED",
        ZendeskGroup => "ZENDESK_GROUP",
        ZendeskOrganization => "ZENDESK_ORGANIZATION",
        HubspotTeam => "HUBSPOT_TEAM",
    }
}

open_enum! {
    /// Kind of Opal resource (`ResourceTypeEnum`).
    pub enum ResourceType {
        AwsIamRole => "AWS_IAM_ROLE",
        AwsEc2Instance => "AWS_EC2_INSTANCE",
        AwsEksCluster => "AWS_EKS_CLUSTER",
        AwsRdsPostgresCluster => "AWS_RDS_POSTGRES_CLUSTER",
        AwsRdsPostgresInstance => "AWS_RDS_POSTGRES_INSTANCE",
        AwsRdsMysqlCluster => "AWS_RDS_MYSQL_CLUSTER",
        AwsRdsMysqlInstance => "AWS_RDS_MYSQL_INSTANCE",
        AwsAccount => "AWS_ACCOUNT",
        AwsSsoPermissionSet => "AWS_SSO_PERMISSION_SET",
        AwsOrganizationalUnit => "AWS_ORGANIZATIONAL_UNIT",
        AzureManagementGroup => "AZURE_MANAGEMENT_GROUP",
        AzureResourceGroup => "AZURE_RESOURCE_GROUP",
        AzureSubscription => "AZURE_SUBSCRIPTION",
        AzureVirtualMachine => "AZURE_VIRTUAL_MACHINE",
        AzureStorageAccount => "AZURE_STORAGE_ACCOUNT",
        AzureStorageContainer => "AZURE_STORAGE_CONTAINER",
        AzureSqlServer => "AZURE_SQL_SERVER",
        AzureSqlManagedInstance => "AZURE_SQL_MANAGED_INSTANCE",
        AzureSqlDatabase => "AZURE_SQL_DATABASE",
        AzureSqlManagedDatabase => "AZURE_SQL_MANAGED_DATABASE",
        AzureUserAssignedManagedIdentity => "AZURE_USER_ASSIGNED_MANAGED_Identity",
        AzureEntraIdRole => "AZURE_ENTRA_ID_ROLE",
        AzureEnterpriseApp => "AZURE_ENTERPRISE_APP",
        Custom => "CUSTOM",
        CustomConnector => "CUSTOM_CONNECTOR",
        DatabricksAccountServicePrincipal => "DATABRICKS_ACCOUNT_SERVICE_PRINCIPAL",
        GcpOrganization => "GCP_ORGANIZATION",
        GcpBucket => "GCP_BUCKET",
        GcpComputeInstance => "GCP_COMPUTE_INSTANCE",
        GcpFolder => "GCP_FOLDER",
        GcpGkeCluster => "GCP_GKE_CLUSTER",
        GcpProject => "GCP_PROJECT",
        GcpCloudSqlPostgresInstance => "GCP_CLOUD_SQL_POSTGRES_INSTANCE",
        GcpCloudSqlMysqlInstance => "GCP_CLOUD_SQL_MYSQL_INSTANCE",
        GcpBigQueryDataset => "GCP_BIG_QUERY_DATASET",
        GcpBigQueryTable => "GCP_BIG_QUERY_TABLE",
        GcpServiceAccount => "GCP_SERVICE_ACCOUNT",
        GitHubRepo => "GIT_HUB_REPO",
        GitHubOrgRole => "GIT_HUB_ORG_ROLE",
        GitLabProject => "GIT_LAB_PROJECT",
        GoogleWorkspaceRole => "GOOGLE_WORKSPACE_ROLE",
        MongoInstance => "MONGO_INSTANCE",
        MongoAtlasInstance => "MONGO_ATLAS_INSTANCE",
        NetsuiteRole => "NETSUITE_ROLE",
        DatadogRole => "DATADOG_ROLE",
        OktaApp => "OKTA_APP",
        OktaRole => "OKTA_ROLE",
        OpalRole => "OPAL_ROLE",
        OpalScopedRole => "OPAL_SCOPED_ROLE",
        PagerdutyRole => "PAGERDUTY_ROLE",
        TailscaleSsh => "TAILSCALE_SSH",
        SalesforcePermissionSet => "SALESFORCE_PERMISSION_SET",
        SalesforceProfile => "SALESFORCE_PROFILE",
        SalesforceRole => "SALESFORCE_ROLE",
        SnowflakeDatabase => "SNOWFLAKE_DATABASE",
        SnowflakeSchema => "SNOWFLAKE_SCHEMA",
        SnowflakeTable => "SNOWFLAKE_TABLE",
        WorkdayRole => "WORKDAY_ROLE",
        MysqlInstance => "MYSQL_INSTANCE",
        MariadbInstance => "MARIADB_INSTANCE",
        PostgresInstance => "POSTGRES_INSTANCE",
        TeleportRole => "TELEPORT_ROLE",
        IlevelAdvancedRole => "ILEVEL_ADVANCED_ROLE",
        DatastaxAstraRole => "DATASTAX_ASTRA_ROLE",
        CoupaRole => "COUPA_ROLE",
        CursorOrganization => "CURSOR_ORGANIZATION",
        OpenaiPlatformProject => "OPENAI_PLATFORM_PROJECT",
        OpenaiPlatformServiceAccount => "OPENAI_PLATFORM_SERVICE_ACCOUNT",
        AnthropicWorkspace => "ANTHROPIC_WORKSPACE",
        GitHubOrg => "GIT_HUB_ORG",
        OracleFusionRole => "ORACLE_FUSION_ROLE",
        DevinOrganization => "DEVIN_ORGANIZATION",
        DevinRole => "DEVIN_ROLE",
        VaultSecret => "VAULT_SECRET",
        VaultPolicy => "VAULT_POLICY",
        VaultOidcRole => "VAULT_OIDC_ROLE",
        GitHubEnterpriseRole => "GIT_HUB_ENTERPRISE_ROLE",
        GrafanaFolder => "GRAFANA_FOLDER",
        GrafanaDashboard => "GRAFANA_DASHBOARD",
        GrafanaBasicRole => "GRAFANA_BASIC_ROLE",
        GrafanaRole => "GRAFANA_ROLE",
        ClickhouseDatabase => "CLICKHOUSE_DATABASE",
        ClickhouseTable => "CLICKHOUSE_TABLE",
        TwingateResource => "TWINGATE_RESOURCE",
        ZendeskRole => "ZENDESK_ROLE",
        HubspotRole => "HUBSPOT_ROLE",
    }
}

open_enum! {
    /// State of pushing a grant to the end system (`PropagationStatusEnum`).
    pub enum PropagationStatusCode {
        Success => "SUCCESS",
        ErrRemoteInternalError => "ERR_REMOTE_INTERNAL_ERROR",
        ErrRemoteUserNotFound => "ERR_REMOTE_USER_NOT_FOUND",
        ErrRemoteUserNotLinked => "ERR_REMOTE_USER_NOT_LINKED",
        ErrRemoteResourceNotFound => "ERR_REMOTE_RESOURCE_NOT_FOUND",
        ErrRemoteThrottle => "ERR_REMOTE_THROTTLE",
        ErrNotAuthorizedToQueryResource => "ERR_NOT_AUTHORIZED_TO_QUERY_RESOURCE",
        ErrRemoteProvisioningViaIdpFailed => "ERR_REMOTE_PROVISIONING_VIA_IDP_FAILED",
        ErrIdpEmailUpdateConflict => "ERR_IDP_EMAIL_UPDATE_CONFLICT",
        ErrTimeout => "ERR_TIMEOUT",
        ErrUnknown => "ERR_UNKNOWN",
        ErrOpalInternalError => "ERR_OPAL_INTERNAL_ERROR",
        ErrOrgReadOnly => "ERR_ORG_READ_ONLY",
        ErrOperationUnsupported => "ERR_OPERATION_UNSUPPORTED",
        Pending => "PENDING",
        PendingManualPropagation => "PENDING_MANUAL_PROPAGATION",
        PendingTicketCreation => "PENDING_TICKET_CREATION",
        ErrTicketCreationSkipped => "ERR_TICKET_CREATION_SKIPPED",
        ErrDryRunModeEnabled => "ERR_DRY_RUN_MODE_ENABLED",
        ErrHrIdpProviderNotLinked => "ERR_HR_IDP_PROVIDER_NOT_LINKED",
        ErrRemoteUnrecoverableError => "ERR_REMOTE_UNRECOVERABLE_ERROR",
    }
}

open_enum! {
    /// Lifecycle state of an access request (`RequestStatusEnum`).
    pub enum RequestStatus {
        Pending => "PENDING",
        Approved => "APPROVED",
        Denied => "DENIED",
        Canceled => "CANCELED",
    }
}

open_enum! {
    /// A user's status in the HR system or identity provider (`UserHrIdpStatusEnum`).
    pub enum HrIdpStatus {
        Active => "ACTIVE",
        Suspended => "SUSPENDED",
        Deprovisioned => "DEPROVISIONED",
        Deleted => "DELETED",
        NotFound => "NOT_FOUND",
    }
}

open_enum! {
    /// How the owners of one reviewer stage combine (`AND`: all must approve, `OR`: any).
    pub enum ReviewerStageOperator {
        And => "AND",
        Or => "OR",
    }
}

open_enum! {
    /// One reviewer's decision within a request stage.
    pub enum ReviewerDecision {
        Pending => "PENDING",
        Approved => "APPROVED",
        Rejected => "REJECTED",
    }
}

open_enum! {
    /// Authority under which a request is approved or denied (`RequestApprovalEnum`).
    pub enum ApprovalLevel {
        Regular => "REGULAR",
        Admin => "ADMIN",
    }
}

open_enum! {
    /// Who may see a group or resource (`VisibilityTypeEnum`).
    pub enum Visibility {
        Global => "GLOBAL",
        Limited => "LIMITED",
    }
}

open_enum! {
    /// Risk rating of a group or resource (`RiskSensitivityEnum`).
    pub enum RiskSensitivity {
        /// Wire value `UNKNOWN`: Opal has no rating for the item.
        Unrated => "UNKNOWN",
        Critical => "CRITICAL",
        High => "HIGH",
        Medium => "MEDIUM",
        Low => "LOW",
        None => "NONE",
    }
}

open_enum! {
    /// Ticketing system used for ticket propagation (`TicketingProviderEnum`).
    pub enum TicketingProvider {
        Jira => "JIRA",
        Linear => "LINEAR",
        ServiceNow => "SERVICE_NOW",
    }
}

open_enum! {
    /// Chat system of a message channel (`MessageChannelProviderEnum`).
    pub enum MessageChannelProvider {
        Slack => "SLACK",
    }
}

open_enum! {
    /// Type of a custom field on a request template (`RequestTemplateCustomFieldTypeEnum`).
    pub enum CustomFieldType {
        ShortText => "SHORT_TEXT",
        LongText => "LONG_TEXT",
        Boolean => "BOOLEAN",
        MultiChoice => "MULTI_CHOICE",
    }
}

open_enum! {
    /// How reviewers are assigned in an access review (`UARReviewerAssignmentPolicyEnum`).
    pub enum ReviewerAssignmentPolicy {
        Manually => "MANUALLY",
        ByOwningTeamAdmin => "BY_OWNING_TEAM_ADMIN",
        ByOwningTeamAdminAll => "BY_OWNING_TEAM_ADMIN_ALL",
        ByManager => "BY_MANAGER",
        ByApprovers => "BY_APPROVERS",
        ByApproversAll => "BY_APPROVERS_ALL",
    }
}

open_enum! {
    /// Which groups a reviewer sees in an access review (`UARScope.group_visibility`).
    pub enum UarGroupVisibility {
        Strict => "STRICT",
        ViewVisibleAndAssigned => "VIEW_VISIBLE_AND_ASSIGNED",
        ViewAll => "VIEW_ALL",
    }
}

open_enum! {
    /// Whether an access-review scope matches any or all of its filters.
    pub enum UarFilterOperator {
        Any => "ANY",
        All => "ALL",
    }
}
