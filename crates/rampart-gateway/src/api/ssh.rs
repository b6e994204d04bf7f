//! Identity sign-in: the gateway as an SSH certificate authority. A user holding Virtual
//! Machine User Login or Administrator Login on a registered VM gets a certificate valid for
//! minutes, for a key pair made on their machine. User Login allows the user's own name as
//! the login; Administrator Login also allows any name asked for (root included).

use std::str::FromStr;

use axum::Json;
use axum::extract::State;
use chrono::Utc;
use rampart_core::rbac::{LOGIN_ACTION, LOGIN_AS_ADMIN_ACTION, VM_ADMIN_LOGIN, VM_USER_LOGIN};
use rampart_core::{
    AuditEvent, AuditResult, ConnectTarget, Machine, Refusal, RefusalReason, ResourceId, Scope,
    authorize_connect, parse_target_ip,
};
use rampart_proto::api::{SshCertificate, SshCertificateRequest};
use rampart_ssh::CertificateRequest;

use super::bastions::resolve_subscription;
use super::caller::Caller;
use super::{ApiError, AppState, JsonBody};
use crate::server::Gateway;

/// The login a user gets by default: their user name up to any `@`, as a Unix account name.
pub fn default_login(username: &str) -> String {
    let base = username.split('@').next().unwrap_or(username).to_ascii_lowercase();
    base.chars()
        .map(|c| if c.is_ascii_alphanumeric() || c == '_' || c == '-' { c } else { '_' })
        .take(32)
        .collect()
}

/// `GET /api/ssh/ca`: the public key a VM's sshd trusts (`TrustedUserCAKeys`).
pub async fn ca_public_key(State(gw): State<AppState>, _caller: Caller) -> String {
    format!("{}\n", gw.ssh_ca.public_key())
}

/// The registered machine named by resource ID, or the one holding this private IP.
async fn target_machine(gw: &Gateway, sub: &str, req: &SshCertificateRequest) -> Result<Machine, ApiError> {
    match (&req.target_resource_id, &req.target_ip_address) {
        (Some(id), None) => Ok(gw.admission.resolve_machine(id).await?),
        (None, Some(ip)) => {
            let ip = parse_target_ip(ip).map_err(|r| ApiError::refused(&Refusal::new(r)))?;
            let machines = gw.store.list_machines(sub, None).await?;
            machines.into_iter().find(|m| m.nic.private_ip == ip).ok_or_else(|| {
                ApiError::refused(&Refusal::new(RefusalReason::TargetNotFound {
                    id: format!(
                        "{ip} (identity sign-in needs a registered VM, whose login roles apply; use --auth-type ssh-key or password for an unregistered address)"
                    ),
                }))
            })
        }
        _ => Err(ApiError::bad_request(
            "InvalidTarget",
            "give exactly one of --target-ip-address and --target-resource-id",
        )),
    }
}

pub async fn issue_certificate(
    State(gw): State<AppState>,
    caller: Caller,
    JsonBody(req): JsonBody<SshCertificateRequest>,
) -> Result<Json<SshCertificate>, ApiError> {
    let target_text = req.target_resource_id.clone().or(req.target_ip_address.clone()).unwrap_or_default();
    let result = sign(&gw, &caller, &req).await;
    match result {
        Ok(cert) => {
            let what =
                format!("SSH certificate for login '{}' valid until {}", cert.principal, cert.valid_before);
            caller.record(&gw, AuditEvent::Certificate, &cert.target_resource_id, what).await?;
            Ok(Json(cert))
        }
        Err(e) => {
            let mut entry = caller.entry(AuditEvent::Certificate, AuditResult::Refused);
            entry.target_resource_id = Some(target_text.chars().take(512).collect());
            entry.reason_code = Some(e.code.clone());
            entry.reason = Some(e.message.clone());
            gw.store.append_audit(&entry).await?;
            Err(e)
        }
    }
}

pub(crate) async fn sign(
    gw: &Gateway,
    caller: &Caller,
    req: &SshCertificateRequest,
) -> Result<SshCertificate, ApiError> {
    let mut bastion = ResourceId::from_str(&req.bastion_id)
        .map_err(|e| ApiError::bad_request("InvalidResourceId", e.to_string()))?;
    bastion.subscription = resolve_subscription(gw, &bastion.subscription).await?.id;
    let machine = target_machine(gw, &bastion.subscription, req).await?;
    let principal = caller.principal();
    authorize_connect(
        &principal,
        &bastion,
        ConnectTarget::Resource { machine: &machine.id, nic: &machine.nic.id },
    )
    .map_err(|r| ApiError::refused(&r))?;
    let scope = Scope::Resource(machine.id.parent().unwrap_or_else(|| machine.id.clone()));
    let vm_scope = Scope::Resource(machine.id.clone());
    let admin = principal.may_data(LOGIN_AS_ADMIN_ACTION, &vm_scope)
        || principal.may_data(LOGIN_AS_ADMIN_ACTION, &scope);
    let user =
        admin || principal.may_data(LOGIN_ACTION, &vm_scope) || principal.may_data(LOGIN_ACTION, &scope);
    let own = default_login(caller.name());
    let login = req.username.clone().unwrap_or_else(|| own.clone());
    if !user {
        return Err(ApiError::refused(&Refusal::new(RefusalReason::MissingPermission {
            user: caller.name().to_string(),
            action: LOGIN_ACTION.to_string(),
            scope: machine.id.to_string(),
            suggestion: "Virtual Machine User Login or Virtual Machine Administrator Login",
        })));
    }
    if !admin && login != own {
        return Err(ApiError::refused(&Refusal::new(RefusalReason::MissingPermission {
            user: caller.name().to_string(),
            action: format!(
                "{LOGIN_AS_ADMIN_ACTION} (logging in as '{login}'; {VM_USER_LOGIN} allows only '{own}')"
            ),
            scope: machine.id.to_string(),
            suggestion: VM_ADMIN_LOGIN,
        })));
    }
    let now = u64::try_from(Utc::now().timestamp()).unwrap_or(0);
    let valid_before = now + gw.config.ssh_certificate_ttl.as_secs();
    let certificate = gw
        .ssh_ca
        .sign(&CertificateRequest {
            public_key: &req.public_key,
            principals: std::slice::from_ref(&login),
            key_id: &format!("rampart:{}:{}", caller.name(), machine.id),
            // A minute of slack for clocks that disagree.
            valid_after: now.saturating_sub(60),
            valid_before,
            serial: u64::try_from(Utc::now().timestamp_micros()).unwrap_or(0),
        })
        .map_err(|e| ApiError::bad_request("InvalidPublicKey", e.to_string()))?;
    Ok(SshCertificate {
        certificate,
        principal: login,
        valid_before,
        target_resource_id: machine.id.to_string(),
    })
}
