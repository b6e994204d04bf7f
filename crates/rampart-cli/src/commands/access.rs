//! `rampart ad user …`, `rampart ad sp …` and `rampart role definition|assignment …`.

use std::io::BufRead;
use std::process::ExitCode;

use anyhow::{Context, Result, anyhow, bail};
use rampart_client::api::{Method, urlencode};
use rampart_proto::api::{
    AssignmentCondition, PasswordChange, RoleAssignmentCreate, RoleAssignmentView, RoleDefinitionView,
    ServicePrincipalCreate, ServicePrincipalCredentials, ServicePrincipalView, UserCreate, UserView,
};

use crate::cli::{
    AdCommand, RoleAssignmentCommand, RoleCommand, RoleDefinitionCommand, SpCommand, SpCredentialCommand,
    UserCommand,
};
use crate::output::print;
use crate::profile::Profile;

const USER_COLUMNS: &[(&str, &str)] =
    &[("UserPrincipalName", "userPrincipalName"), ("DisplayName", "displayName"), ("Id", "id")];
const ROLE_COLUMNS: &[(&str, &str)] = &[("Name", "name"), ("Builtin", "builtin"), ("Actions", "actions")];
const ASSIGNMENT_COLUMNS: &[(&str, &str)] = &[
    ("Principal", "principalName"),
    ("Role", "roleDefinitionName"),
    ("Scope", "scope"),
    ("Condition", "condition"),
    ("Id", "id"),
];

fn read_password() -> Result<String> {
    let mut line = String::new();
    std::io::stdin().lock().read_line(&mut line).context("cannot read the password from standard input")?;
    let password = line.trim_end_matches(['\n', '\r']).to_string();
    if password.is_empty() {
        bail!("no password on standard input");
    }
    Ok(password)
}

async fn mfa(client: &rampart_client::ApiClient, cmd: crate::cli::MfaCommand) -> Result<ExitCode> {
    use crate::cli::MfaCommand;
    use rampart_proto::mfa::{MfaCode, MfaEnrolment, MfaRecoveryCodes};
    let none: Option<&()> = None;
    match cmd {
        MfaCommand::Enable => {
            let started: Option<MfaEnrolment> =
                client.request(Method::POST, "/api/me/mfa/totp", none).await?;
            let started = started.ok_or_else(|| anyhow!("empty answer"))?;
            println!(
                "{}",
                serde_json::json!({ "otpauthUri": started.otpauth_uri, "secret": started.secret })
            );
            eprintln!("add the URI to an authenticator app, then: rampart ad user mfa verify --code CODE");
        }
        MfaCommand::Verify { code } => {
            let done: Option<MfaRecoveryCodes> =
                client.request(Method::POST, "/api/me/mfa/totp/verify", Some(&MfaCode { code })).await?;
            let done = done.ok_or_else(|| anyhow!("empty answer"))?;
            println!("{}", serde_json::json!({ "enabled": true, "recoveryCodes": done.recovery_codes }));
            eprintln!("two-step sign-in is on; keep the recovery codes safe: they are not shown again");
        }
        MfaCommand::Disable { code } => {
            let _: Option<serde_json::Value> =
                client.request(Method::POST, "/api/me/mfa/totp/disable", Some(&MfaCode { code })).await?;
            eprintln!("two-step sign-in is off");
        }
        MfaCommand::Reset { id } => {
            let _: Option<serde_json::Value> =
                client.request(Method::DELETE, &format!("/api/users/{}/mfa", urlencode(&id)), none).await?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

const ACTIVATION_COLUMNS: &[(&str, &str)] = &[
    ("Id", "id"),
    ("Principal", "principalName"),
    ("Role", "roleDefinitionName"),
    ("Scope", "scope"),
    ("State", "state"),
    ("EndsAt", "endsAt"),
];

async fn activation(client: &rampart_client::ApiClient, cmd: RoleCommand) -> Result<ExitCode> {
    use crate::cli::ActivationCommand;
    use rampart_proto::activation::{ActivationRequest, ActivationView};
    let none: Option<&()> = None;
    match cmd {
        RoleCommand::Activate { role, scope, duration, justification, output } => {
            let body = ActivationRequest { role, scope, duration, justification };
            let made: Option<ActivationView> =
                client.request(Method::POST, "/api/roleActivations", Some(&body)).await?;
            if made.as_ref().is_some_and(|m| m.state == "pending") {
                eprintln!(
                    "waiting for an approver: `rampart role activation list --pending` shows it to them"
                );
            }
            print(&made, output, ACTIVATION_COLUMNS)?;
        }
        RoleCommand::Activation(ActivationCommand::List { pending, output }) => {
            let path = if pending { "/api/roleActivations?pending=true" } else { "/api/roleActivations" };
            let list: Option<Vec<ActivationView>> = client.request(Method::GET, path, none).await?;
            print(&list.unwrap_or_default(), output, ACTIVATION_COLUMNS)?;
        }
        RoleCommand::Activation(ActivationCommand::Approve { ids, reason }) => {
            decide(client, "approve", ids, reason).await?
        }
        RoleCommand::Activation(ActivationCommand::Deny { ids, reason }) => {
            decide(client, "deny", ids, reason).await?
        }
        RoleCommand::Activation(ActivationCommand::Revoke { ids, reason }) => {
            decide(client, "revoke", ids, reason).await?
        }
        _ => bail!("not an activation command"),
    }
    Ok(ExitCode::SUCCESS)
}

/// `approve`, `deny` or `revoke` each activation; prints what they became.
async fn decide(
    client: &rampart_client::ApiClient,
    verb: &str,
    ids: Vec<String>,
    reason: Option<String>,
) -> Result<()> {
    use rampart_proto::activation::{ActivationDecision, ActivationView};
    let mut out = Vec::new();
    for id in ids {
        let path = format!("/api/roleActivations/{}/{verb}", urlencode(&id));
        let body = ActivationDecision { reason: reason.clone() };
        let done: Option<ActivationView> = client.request(Method::POST, &path, Some(&body)).await?;
        out.extend(done);
    }
    print(&out, crate::cli::OutputFormat::Json, ACTIVATION_COLUMNS)
}

pub async fn ad(cmd: AdCommand) -> Result<ExitCode> {
    let cmd = match cmd {
        AdCommand::User(cmd) => cmd,
        AdCommand::Sp(cmd) => return sp(cmd).await,
        AdCommand::Group(cmd) => return super::directory::group(cmd).await,
    };
    let profile = Profile::require()?;
    let client = profile.client()?;
    let none: Option<&()> = None;
    match cmd {
        UserCommand::Mfa(cmd) => return mfa(&client, cmd).await,
        UserCommand::Create { user_principal_name, display_name, password_stdin: _, output } => {
            let body = UserCreate { user_principal_name, display_name, password: read_password()? };
            let user: Option<UserView> = client.request(Method::POST, "/api/users", Some(&body)).await?;
            print(&user, output, USER_COLUMNS)?;
        }
        UserCommand::List { output } => {
            let users: Option<Vec<UserView>> = client.request(Method::GET, "/api/users", none).await?;
            print(&users.unwrap_or_default(), output, USER_COLUMNS)?;
        }
        UserCommand::Show { id, output } => {
            let user: Option<UserView> =
                client.request(Method::GET, &format!("/api/users/{}", urlencode(&id)), none).await?;
            print(&user, output, USER_COLUMNS)?;
        }
        UserCommand::Delete { id } => {
            client
                .request::<_, serde_json::Value>(
                    Method::DELETE,
                    &format!("/api/users/{}", urlencode(&id)),
                    none,
                )
                .await?;
            eprintln!("deleted user '{id}'");
        }
        UserCommand::Update { id, password_stdin: _ } => {
            let body = PasswordChange { password: read_password()? };
            let path = format!("/api/users/{}/password", urlencode(&id));
            client.request::<_, serde_json::Value>(Method::PUT, &path, Some(&body)).await?;
            eprintln!("password of '{id}' changed; their sessions were revoked");
        }
    }
    Ok(ExitCode::SUCCESS)
}

const SP_COLUMNS: &[(&str, &str)] =
    &[("AppId", "appId"), ("DisplayName", "displayName"), ("CreatedAt", "createdAt")];

/// `rampart ad sp …`: credentials are printed once, as az prints them.
async fn sp(cmd: SpCommand) -> Result<ExitCode> {
    let profile = Profile::require()?;
    let client = profile.client()?;
    let none: Option<&()> = None;
    match cmd {
        SpCommand::CreateForRbac { name, role, scopes } => {
            let body = ServicePrincipalCreate { display_name: name, role, scopes };
            let created: Option<ServicePrincipalCredentials> =
                client.request(Method::POST, "/api/servicePrincipals", Some(&body)).await?;
            let created = created.ok_or_else(|| anyhow!("empty answer"))?;
            println!("{}", serde_json::to_string_pretty(&created)?);
            eprintln!("the password is shown this once: keep it in a secret store");
        }
        SpCommand::List { output } => {
            let list: Option<Vec<ServicePrincipalView>> =
                client.request(Method::GET, "/api/servicePrincipals", none).await?;
            print(&list.unwrap_or_default(), output, SP_COLUMNS)?;
        }
        SpCommand::Delete { id } => {
            let path = format!("/api/servicePrincipals/{}", urlencode(&id));
            client.request::<_, serde_json::Value>(Method::DELETE, &path, none).await?;
            eprintln!("deleted service principal '{id}'");
        }
        SpCommand::Credential(SpCredentialCommand::Reset { id }) => {
            let path = format!("/api/servicePrincipals/{}/credentials/reset", urlencode(&id));
            let reset: Option<ServicePrincipalCredentials> =
                client.request(Method::POST, &path, none).await?;
            let reset = reset.ok_or_else(|| anyhow!("empty answer"))?;
            println!("{}", serde_json::to_string_pretty(&reset)?);
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn split_list(text: &Option<String>) -> Vec<String> {
    text.as_deref()
        .map(|t| t.split(',').map(str::trim).filter(|s| !s.is_empty()).map(str::to_string).collect())
        .unwrap_or_default()
}

pub async fn role(cmd: RoleCommand) -> Result<ExitCode> {
    let profile = Profile::require()?;
    let client = profile.client()?;
    let none: Option<&()> = None;
    match cmd {
        cmd @ (RoleCommand::Activate { .. } | RoleCommand::Activation(_)) => {
            return activation(&client, cmd).await;
        }
        RoleCommand::Definition(RoleDefinitionCommand::Create { role_definition }) => {
            let text = match role_definition.strip_prefix('@') {
                Some(file) => std::fs::read_to_string(file).with_context(|| format!("cannot read {file}"))?,
                None => role_definition,
            };
            let role: RoleDefinitionView =
                serde_json::from_str(&text).context("--role-definition is not a role definition in JSON")?;
            let created: Option<RoleDefinitionView> =
                client.request(Method::POST, "/api/roleDefinitions", Some(&role)).await?;
            print(&created, crate::cli::OutputFormat::Json, ROLE_COLUMNS)?;
        }
        RoleCommand::Definition(RoleDefinitionCommand::List { output }) => {
            let roles: Option<Vec<RoleDefinitionView>> =
                client.request(Method::GET, "/api/roleDefinitions", none).await?;
            print(&roles.unwrap_or_default(), output, ROLE_COLUMNS)?;
        }
        RoleCommand::Assignment(RoleAssignmentCommand::Create {
            assignee,
            assignee_object_id,
            assignee_principal_type,
            role,
            scope,
            condition_networks,
            condition_ports,
            eligible,
            max_duration,
            require_approval,
            approver,
            require_justification,
            output,
        }) => {
            let ports = split_list(&condition_ports)
                .iter()
                .map(|p| p.parse::<u16>().map_err(|_| anyhow!("'{p}' is not a port")))
                .collect::<Result<Vec<_>>>()?;
            let networks = split_list(&condition_networks);
            let condition = (!networks.is_empty() || !ports.is_empty())
                .then_some(AssignmentCondition { networks, ports });
            let assignee = assignee
                .or(assignee_object_id)
                .ok_or_else(|| anyhow!("give --assignee or --assignee-object-id"))?;
            let eligibility = eligible.then_some(rampart_proto::activation::EligibilitySpec {
                max_duration,
                require_approval,
                approvers: approver,
                require_justification,
            });
            let body = RoleAssignmentCreate {
                assignee,
                assignee_principal_type,
                role,
                scope,
                condition,
                eligibility,
            };
            let created: Option<RoleAssignmentView> =
                client.request(Method::POST, "/api/roleAssignments", Some(&body)).await?;
            print(&created, output, ASSIGNMENT_COLUMNS)?;
        }
        RoleCommand::Assignment(RoleAssignmentCommand::List {
            assignee,
            scope,
            include_eligible,
            output,
        }) => {
            let mut params = vec![];
            if include_eligible {
                params.push("includeEligible=true".to_string());
            }
            if let Some(a) = assignee {
                params.push(format!("assignee={}", urlencode(&a)));
            }
            if let Some(s) = scope {
                params.push(format!("scope={}", urlencode(&s)));
            }
            let qs = if params.is_empty() { String::new() } else { format!("?{}", params.join("&")) };
            let list: Option<Vec<RoleAssignmentView>> =
                client.request(Method::GET, &format!("/api/roleAssignments{qs}"), none).await?;
            print(&list.unwrap_or_default(), output, ASSIGNMENT_COLUMNS)?;
        }
        RoleCommand::Assignment(RoleAssignmentCommand::Delete { ids, assignee, role, scope }) => {
            let ids = match (assignee, role, scope) {
                (Some(assignee), Some(role), Some(scope)) => {
                    let path = format!(
                        "/api/roleAssignments?assignee={}&scope={}&includeEligible=true",
                        urlencode(&assignee),
                        urlencode(&scope)
                    );
                    let list: Option<Vec<RoleAssignmentView>> =
                        client.request(Method::GET, &path, none).await?;
                    let found: Vec<String> = list
                        .unwrap_or_default()
                        .into_iter()
                        .filter(|a| a.role_definition_name.eq_ignore_ascii_case(&role))
                        .map(|a| a.id)
                        .collect();
                    if found.is_empty() {
                        bail!(
                            "no role assignment of {role} to {assignee} at {scope} was found (`rampart role assignment list --assignee {assignee}` shows theirs)"
                        );
                    }
                    found
                }
                _ => ids,
            };
            for id in ids {
                let path = format!("/api/roleAssignments/{}", urlencode(&id));
                client.request::<_, serde_json::Value>(Method::DELETE, &path, none).await?;
                eprintln!("removed role assignment {id}");
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
