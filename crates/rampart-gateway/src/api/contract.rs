//! What each route takes and answers, for the OpenAPI document: the request body's type,
//! the query parameters, and the success answer's status and type. Bodies are the
//! `rampart-proto` types the handlers (de)serialize, so the document follows the code; every
//! error is an `ErrorBody` (documented once, as each operation's `default` answer).

use rampart_proto::activation::{ActivationDecision, ActivationRequest, ActivationView};
use rampart_proto::api::{
    AuditRecord, AuditVerification, Bastion, BastionChange, ImportResult, LoginRequest, NetworkInterface,
    Node, PasswordChange, PinnedHostKey, RefreshRequest, RoleAssignmentCreate, RoleAssignmentView,
    RoleDefinitionView, ServicePrincipalCreate, ServicePrincipalCredentials, ServicePrincipalView, Session,
    SshCertificate, SshCertificateRequest, Subscription, TokenResponse, UserCreate, UserView, VirtualMachine,
    VmChange, VmRegistration,
};
use rampart_proto::directory::{
    DeviceCodeView, FederatedTokenRequest, GroupCreate, GroupView, IdentityProviderCreate,
    IdentityProviderView,
};
use rampart_proto::mfa::{MfaCode, MfaEnrolment, MfaRecoveryCodes, MfaStatus};
use rampart_proto::recording::{RecordingVerification, RecordingView};
use rampart_proto::shareable::{
    ShareableLinkDelete, ShareableLinkList, ShareableLinkRequest, ShareableLinkTokens,
};
use rampart_proto::tunnel::{CONNECT_PATH, GRANT_PATH, MUX_PATH, STREAM_PATH, TunnelGrant, TunnelRequest};
use schemars::{JsonSchema, Schema, SchemaGenerator};

use super::*;

/// A body's schema, made by the document's generator (so types are shared components).
pub type SchemaFn = fn(&mut SchemaGenerator) -> Schema;

fn of<T: JsonSchema>(g: &mut SchemaGenerator) -> Schema {
    g.subschema_for::<T>()
}

/// The success answer.
pub enum Reply {
    /// JSON of a type, with this status.
    Json(u16, SchemaFn),
    /// 204, no body.
    Empty,
    /// Text of this media type.
    Text(&'static str),
    /// A recording's bytes.
    Recording,
    /// 101: the connection becomes a WebSocket or Rampart's tunnel framing.
    Upgrade,
}

/// A query parameter: name, JSON type, whether required, description.
pub type Param = (&'static str, &'static str, bool, &'static str);

pub struct Contract {
    pub body: Option<SchemaFn>,
    /// The body may be left out (an empty request is accepted).
    pub body_optional: bool,
    pub query: &'static [Param],
    pub reply: Reply,
}

const fn json(status: u16, schema: SchemaFn) -> Contract {
    Contract { body: None, body_optional: false, query: &[], reply: Reply::Json(status, schema) }
}

const fn with_body(body: SchemaFn, reply: Reply) -> Contract {
    Contract { body: Some(body), body_optional: false, query: &[], reply }
}

const fn empty() -> Contract {
    Contract { body: None, body_optional: false, query: &[], reply: Reply::Empty }
}

const GROUP_QUERY: &[Param] = &[("resourceGroup", "string", false, "Only this resource group")];

/// The contract of one route of [`super::ROUTES`]; `None` for a route not described here
/// (a test keeps that from happening).
pub fn of_route(method: &str, path: &str) -> Option<Contract> {
    let c = match (method, path) {
        ("get", HEALTHZ) | ("get", READYZ) => Contract { reply: Reply::Text("text/plain"), ..empty() },
        ("get", METRICS) => Contract { reply: Reply::Text("text/plain"), ..empty() },
        ("get", SSH_CA) => Contract { reply: Reply::Text("text/plain"), ..empty() },
        ("get", OPENAPI) => json(200, of::<serde_json::Value>),
        ("post", LOGIN) => with_body(of::<LoginRequest>, Reply::Json(200, of::<TokenResponse>)),
        ("post", REFRESH) => with_body(of::<RefreshRequest>, Reply::Json(200, of::<TokenResponse>)),
        ("post", LOGOUT) => with_body(of::<RefreshRequest>, Reply::Empty),
        ("post", OIDC_DEVICE) => json(200, of::<DeviceCodeView>),
        ("post", OIDC_TOKEN) => with_body(of::<FederatedTokenRequest>, Reply::Json(200, of::<TokenResponse>)),
        ("get", IDENTITY_PROVIDERS) => json(200, of::<Vec<IdentityProviderView>>),
        ("post", IDENTITY_PROVIDERS) => {
            with_body(of::<IdentityProviderCreate>, Reply::Json(201, of::<IdentityProviderView>))
        }
        ("get", IDENTITY_PROVIDER) => json(200, of::<IdentityProviderView>),
        ("get", GROUPS) => json(200, of::<Vec<GroupView>>),
        ("post", GROUPS) => with_body(of::<GroupCreate>, Reply::Json(201, of::<GroupView>)),
        ("get", MY_MFA) => json(200, of::<MfaStatus>),
        ("post", MY_TOTP) => json(200, of::<MfaEnrolment>),
        ("post", MY_TOTP_VERIFY) => with_body(of::<MfaCode>, Reply::Json(200, of::<MfaRecoveryCodes>)),
        ("post", MY_TOTP_DISABLE) => with_body(of::<MfaCode>, Reply::Empty),
        ("get", SUBSCRIPTIONS) => json(200, of::<Vec<Subscription>>),
        ("get", BASTIONS) | ("get", GROUP_BASTIONS) => json(200, of::<Vec<Bastion>>),
        ("get", BASTION) => json(200, of::<Bastion>),
        ("put", BASTION) => with_body(of::<BastionChange>, Reply::Json(201, of::<Bastion>)),
        ("patch", BASTION) => with_body(of::<BastionChange>, Reply::Json(200, of::<Bastion>)),
        ("get", VMS) => Contract { query: GROUP_QUERY, ..json(200, of::<Vec<VirtualMachine>>) },
        ("post", VM_IMPORT) => with_body(of::<Vec<VmRegistration>>, Reply::Json(200, of::<ImportResult>)),
        ("get", VM) => json(200, of::<VirtualMachine>),
        ("put", VM) => with_body(of::<VmRegistration>, Reply::Json(201, of::<VirtualMachine>)),
        ("patch", VM) => with_body(of::<VmChange>, Reply::Json(200, of::<VirtualMachine>)),
        ("get", VMSS) => json(200, of::<Vec<VirtualMachine>>),
        ("put", VMSS) => with_body(
            of::<rampart_proto::api::ScaleSetRegistration>,
            Reply::Json(201, of::<Vec<VirtualMachine>>),
        ),
        ("get", NICS) => Contract { query: GROUP_QUERY, ..json(200, of::<Vec<NetworkInterface>>) },
        ("get", NIC) => json(200, of::<NetworkInterface>),
        ("get", USERS) => json(200, of::<Vec<UserView>>),
        ("post", USERS) => with_body(of::<UserCreate>, Reply::Json(201, of::<UserView>)),
        ("get", USER) => json(200, of::<UserView>),
        ("put", USER_PASSWORD) => with_body(of::<PasswordChange>, Reply::Empty),
        ("get", SERVICE_PRINCIPALS) => json(200, of::<Vec<ServicePrincipalView>>),
        ("post", SERVICE_PRINCIPALS) => {
            with_body(of::<ServicePrincipalCreate>, Reply::Json(201, of::<ServicePrincipalCredentials>))
        }
        ("post", SERVICE_PRINCIPAL_RESET) => json(200, of::<ServicePrincipalCredentials>),
        ("get", ROLE_DEFINITIONS) => json(200, of::<Vec<RoleDefinitionView>>),
        ("post", ROLE_DEFINITIONS) => {
            with_body(of::<RoleDefinitionView>, Reply::Json(201, of::<RoleDefinitionView>))
        }
        ("get", ROLE_ASSIGNMENTS) => Contract {
            query: &[
                ("assignee", "string", false, "Only this principal's assignments"),
                ("scope", "string", false, "Only assignments at this scope"),
                ("includeEligible", "boolean", false, "Eligible (just-in-time) assignments too"),
            ],
            ..json(200, of::<Vec<RoleAssignmentView>>)
        },
        ("post", ROLE_ASSIGNMENTS) => {
            with_body(of::<RoleAssignmentCreate>, Reply::Json(201, of::<RoleAssignmentView>))
        }
        ("get", ROLE_ACTIVATIONS) => Contract {
            query: &[("pending", "boolean", false, "Only activations waiting for approval")],
            ..json(200, of::<Vec<ActivationView>>)
        },
        ("post", ROLE_ACTIVATIONS) => {
            with_body(of::<ActivationRequest>, Reply::Json(201, of::<ActivationView>))
        }
        ("post", ROLE_ACTIVATION_DECISION) | ("post", ROLE_ACTIVATION_REVOKE) => Contract {
            body_optional: true,
            ..with_body(of::<ActivationDecision>, Reply::Json(200, of::<ActivationView>))
        },
        ("post", GRANT_PATH) => with_body(of::<TunnelRequest>, Reply::Json(200, of::<TunnelGrant>)),
        ("get", CONNECT_PATH) | ("get", MUX_PATH) => Contract { reply: Reply::Upgrade, ..empty() },
        ("post", STREAM_PATH) => Contract { reply: Reply::Text("application/octet-stream"), ..empty() },
        ("get", AUDIT) => Contract {
            query: &[
                ("since", "string", false, "RFC 3339 time: only records at or after it"),
                ("user", "string", false, "Only this user's records"),
                ("result", "string", false, "success or failure"),
                ("target", "string", false, "A target IP address or resource ID"),
                ("limit", "integer", false, "At most this many records"),
            ],
            ..json(200, of::<Vec<AuditRecord>>)
        },
        ("get", AUDIT_VERIFY) => json(200, of::<AuditVerification>),
        ("post", SSH_CERTIFICATES) => {
            with_body(of::<SshCertificateRequest>, Reply::Json(200, of::<SshCertificate>))
        }
        ("get", SESSIONS) => json(200, of::<Vec<Session>>),
        ("get", SHELL) | ("get", SESSION_JOIN) => Contract { reply: Reply::Upgrade, ..empty() },
        ("get", RECORDINGS) => Contract {
            query: &[
                ("user", "string", false, "Only this user's sessions"),
                ("target", "string", false, "Only sessions to this target"),
                ("search", "string", false, "Text the session printed"),
                (
                    "since",
                    "string",
                    false,
                    "RFC 3339 time, or a duration back from now (ISO 8601: P7D, PT4H)",
                ),
            ],
            ..json(200, of::<Vec<RecordingView>>)
        },
        ("get", RECORDING) => json(200, of::<RecordingView>),
        ("get", RECORDING_CONTENT) => Contract { reply: Reply::Recording, ..empty() },
        ("get", RECORDING_VERIFY) => json(200, of::<RecordingVerification>),
        ("get", NODES) => json(200, of::<Vec<Node>>),
        ("get", HOST_KEYS) => json(200, of::<Vec<PinnedHostKey>>),
        ("delete", HOST_KEYS) => Contract {
            query: &[
                ("target", "string", true, "The target's address and port, as listed"),
                ("kind", "string", false, "ssh or rdp; both when absent"),
            ],
            ..empty()
        },
        ("post", LINKS_CREATE) => {
            with_body(of::<ShareableLinkRequest>, Reply::Json(200, of::<ShareableLinkList>))
        }
        ("post", LINKS_GET) => Contract {
            body_optional: true,
            ..with_body(of::<ShareableLinkRequest>, Reply::Json(200, of::<ShareableLinkList>))
        },
        ("post", LINKS_DELETE) => {
            with_body(of::<ShareableLinkDelete>, Reply::Json(200, of::<ShareableLinkList>))
        }
        ("post", LINKS_DELETE_BY_TOKEN) => {
            with_body(of::<ShareableLinkTokens>, Reply::Json(200, of::<ShareableLinkList>))
        }
        ("delete", _) | ("post", NODE_DRAIN) => empty(),
        _ => return None,
    };
    Some(c)
}
