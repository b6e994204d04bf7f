//! Role-based access, as Azure users know it: role definitions are sets of actions
//! (`Microsoft.Compute/virtualMachines/read`, `*/read`, `*`), assigned to a principal at a
//! scope (subscription, resource group, resource); an assignment applies to everything
//! below its scope. An assignment may carry a condition that narrows IP-based connections
//! to some networks and ports (no peer offers role-bound network rules).
//!
//! The decisions are pure functions: the caller passes the principal's assignments and the
//! role definitions, and gets `Ok` or the reason, naming the role and scope that are missing.

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

use ipnet::IpNet;

use crate::policy::{Refusal, RefusalReason};
use crate::resource_id::{ResourceId, ResourceIdError, ResourceKind, validate_name};

/// Where a role assignment applies.
#[derive(Debug, Clone)]
pub enum Scope {
    Subscription(String),
    ResourceGroup { subscription: String, group: String },
    Resource(ResourceId),
}

impl Scope {
    pub fn subscription(&self) -> &str {
        match self {
            Scope::Subscription(s) => s,
            Scope::ResourceGroup { subscription, .. } => subscription,
            Scope::Resource(id) => &id.subscription,
        }
    }

    /// Whether this scope is `other` or lies above it.
    pub fn contains(&self, other: &Scope) -> bool {
        let same = |a: &str, b: &str| a.eq_ignore_ascii_case(b);
        if !same(self.subscription(), other.subscription()) {
            return false;
        }
        match (self, other) {
            (Scope::Subscription(_), _) => true,
            (Scope::ResourceGroup { group, .. }, Scope::ResourceGroup { group: g2, .. }) => same(group, g2),
            (Scope::ResourceGroup { group, .. }, Scope::Resource(id)) => same(group, &id.resource_group),
            (Scope::Resource(a), Scope::Resource(b)) => a == b || b.parent().is_some_and(|p| &p == a),
            _ => false,
        }
    }
}

impl PartialEq for Scope {
    fn eq(&self, other: &Self) -> bool {
        self.to_string().eq_ignore_ascii_case(&other.to_string())
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Scope::Subscription(s) => write!(f, "/subscriptions/{s}"),
            Scope::ResourceGroup { subscription, group } => {
                write!(f, "/subscriptions/{subscription}/resourceGroups/{group}")
            }
            Scope::Resource(id) => id.fmt(f),
        }
    }
}

impl FromStr for Scope {
    type Err = ResourceIdError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let malformed = |why| ResourceIdError::Malformed { id: s.to_string(), why };
        let parts: Vec<&str> = s.trim_end_matches('/').split('/').collect();
        match parts.as_slice() {
            ["", sub_kw, sub] if sub_kw.eq_ignore_ascii_case("subscriptions") => {
                validate_name(sub)?;
                Ok(Scope::Subscription(sub.to_string()))
            }
            ["", sub_kw, sub, rg_kw, rg]
                if sub_kw.eq_ignore_ascii_case("subscriptions")
                    && rg_kw.eq_ignore_ascii_case("resourceGroups") =>
            {
                validate_name(sub)?;
                validate_name(rg)?;
                Ok(Scope::ResourceGroup { subscription: sub.to_string(), group: rg.to_string() })
            }
            _ if parts.len() >= 8 => Ok(Scope::Resource(s.parse()?)),
            _ => Err(malformed("a scope is a subscription, a resource group or a resource ID")),
        }
    }
}

/// A role: what it allows, ARM-style.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoleDefinition {
    pub name: String,
    pub description: String,
    pub actions: Vec<String>,
    pub not_actions: Vec<String>,
    /// Data actions (signing in to a VM) are separate from management actions, as in Azure:
    /// Owner's `*` does not let anyone log in.
    pub data_actions: Vec<String>,
    pub builtin: bool,
}

pub const OWNER: &str = "Owner";
pub const CONTRIBUTOR: &str = "Contributor";
pub const READER: &str = "Reader";
pub const VM_ADMIN_LOGIN: &str = "Virtual Machine Administrator Login";
pub const VM_USER_LOGIN: &str = "Virtual Machine User Login";

/// The data action of signing in to a VM as a regular user, and as an administrator.
pub const LOGIN_ACTION: &str = "Microsoft.Compute/virtualMachines/login/action";
pub const LOGIN_AS_ADMIN_ACTION: &str = "Microsoft.Compute/virtualMachines/loginAsAdmin/action";

fn role(
    name: &str,
    description: &str,
    actions: &[&str],
    not_actions: &[&str],
    data_actions: &[&str],
) -> RoleDefinition {
    let strings = |v: &[&str]| v.iter().map(|a| a.to_string()).collect();
    RoleDefinition {
        name: name.to_string(),
        description: description.to_string(),
        actions: strings(actions),
        not_actions: strings(not_actions),
        data_actions: strings(data_actions),
        builtin: true,
    }
}

/// Azure's built-in roles that matter here, with their documented actions.
pub fn builtin_roles() -> Vec<RoleDefinition> {
    let vm_reads = ["Microsoft.Compute/virtualMachines/*/read", "Microsoft.Network/networkInterfaces/read"];
    vec![
        role(OWNER, "Full access, including assigning roles", &["*"], &[], &[]),
        role(
            CONTRIBUTOR,
            "Full access to manage resources, but not to assign roles",
            &["*"],
            &["Microsoft.Authorization/*/write", "Microsoft.Authorization/*/delete"],
            &[],
        ),
        role(READER, "View everything, change nothing", &["*/read"], &[], &[]),
        role(
            VM_ADMIN_LOGIN,
            "Sign in to virtual machines as administrator",
            &vm_reads,
            &[],
            &[LOGIN_ACTION, LOGIN_AS_ADMIN_ACTION],
        ),
        role(VM_USER_LOGIN, "Sign in to virtual machines as a regular user", &vm_reads, &[], &[LOGIN_ACTION]),
    ]
}

/// Case-insensitive match of an action against a pattern where `*` matches any text.
pub fn action_matches(pattern: &str, action: &str) -> bool {
    fn go(p: &[u8], a: &[u8]) -> bool {
        match p.split_first() {
            None => a.is_empty(),
            Some((b'*', rest)) => (0..=a.len()).any(|i| go(rest, &a[i..])),
            Some((c, rest)) => {
                a.split_first().is_some_and(|(d, tail)| c.eq_ignore_ascii_case(d) && go(rest, tail))
            }
        }
    }
    go(pattern.as_bytes(), action.as_bytes())
}

impl RoleDefinition {
    pub fn permits(&self, action: &str) -> bool {
        self.actions.iter().any(|p| action_matches(p, action))
            && !self.not_actions.iter().any(|p| action_matches(p, action))
    }

    pub fn permits_data(&self, data_action: &str) -> bool {
        self.data_actions.iter().any(|p| action_matches(p, data_action))
    }

    /// Checks a custom role's name and actions.
    pub fn validate(&self) -> Result<(), String> {
        if self.name.trim().is_empty() || self.name.len() > 128 {
            return Err("a role name has 1 to 128 characters".into());
        }
        if self.actions.is_empty() && self.data_actions.is_empty() {
            return Err("a role needs at least one action or data action".into());
        }
        for a in self.actions.iter().chain(&self.not_actions).chain(&self.data_actions) {
            if a.is_empty()
                || a.len() > 256
                || !a.chars().all(|c| c.is_ascii_alphanumeric() || "*/._-".contains(c))
            {
                return Err(format!(
                    "'{a}' is not an action (like Microsoft.Compute/virtualMachines/read or */read)"
                ));
            }
        }
        Ok(())
    }
}

/// Narrows what an assignment allows for IP-based connections.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Condition {
    /// Allowed target networks; empty means any.
    pub networks: Vec<IpNet>,
    /// Allowed target ports; empty means any.
    pub ports: Vec<u16>,
}

impl Condition {
    pub fn covers(&self, ip: IpAddr, port: u16) -> bool {
        (self.networks.is_empty() || self.networks.iter().any(|n| n.contains(&ip)))
            && (self.ports.is_empty() || self.ports.contains(&port))
    }
}

impl fmt::Display for Condition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let nets: Vec<String> = self.networks.iter().map(|n| n.to_string()).collect();
        let ports: Vec<String> = self.ports.iter().map(|p| p.to_string()).collect();
        let or_any = |v: Vec<String>| if v.is_empty() { "any".to_string() } else { v.join(", ") };
        write!(f, "networks {} and ports {}", or_any(nets), or_any(ports))
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct RoleAssignment {
    pub id: String,
    pub principal_id: String,
    pub principal_name: String,
    pub role: String,
    pub scope: Scope,
    pub condition: Option<Condition>,
    /// `Some` for an eligible assignment (just-in-time): it grants nothing until activated.
    pub eligibility: Option<crate::activation::Eligibility>,
}

/// Who is asking, with everything assigned to them and the roles known.
#[derive(Debug, Clone, Copy)]
pub struct Principal<'a> {
    pub name: &'a str,
    pub assignments: &'a [RoleAssignment],
    pub roles: &'a [RoleDefinition],
}

impl Principal<'_> {
    /// Assignments whose scope covers `target` and whose role permits `action`.
    fn granting<'s>(
        &'s self,
        action: &'s str,
        target: &'s Scope,
    ) -> impl Iterator<Item = &'s RoleAssignment> + 's {
        self.assignments.iter().filter(move |a| {
            a.scope.contains(target)
                && self.roles.iter().any(|r| r.name.eq_ignore_ascii_case(&a.role) && r.permits(action))
        })
    }

    pub fn may(&self, action: &str, target: &Scope) -> bool {
        self.granting(action, target).next().is_some()
    }

    /// Whether some assignment at or above `target` grants the data action.
    pub fn may_data(&self, data_action: &str, target: &Scope) -> bool {
        self.assignments.iter().any(|a| {
            a.scope.contains(target)
                && self
                    .roles
                    .iter()
                    .any(|r| r.name.eq_ignore_ascii_case(&a.role) && r.permits_data(data_action))
        })
    }

    /// `Ok` if some assignment allows `action` at `target`, else the reason.
    pub fn check(&self, action: &str, target: &Scope) -> Result<(), RefusalReason> {
        if self.may(action, target) {
            Ok(())
        } else {
            Err(RefusalReason::MissingPermission {
                user: self.name.to_string(),
                action: action.to_string(),
                scope: target.to_string(),
                suggestion: suggest_role(action),
            })
        }
    }
}

/// Whether removing the assignment `id` would leave its scope with nobody able to manage role
/// assignments there: no other standing, unconditional assignment at that scope or above whose
/// role permits `action` (role-assignment write). Removing the last one locks every operator
/// out of granting access again, so the API refuses it, naming why.
pub fn leaves_scope_unmanaged(
    assignments: &[RoleAssignment],
    roles: &[RoleDefinition],
    id: &str,
    action: &str,
) -> bool {
    let manages = |a: &RoleAssignment| {
        a.eligibility.is_none()
            && a.condition.is_none()
            && roles.iter().any(|r| r.name.eq_ignore_ascii_case(&a.role) && r.permits(action))
    };
    let Some(removed) = assignments.iter().find(|a| a.id == id) else { return false };
    manages(removed)
        && !assignments.iter().any(|a| a.id != id && manages(a) && a.scope.contains(&removed.scope))
}

fn suggest_role(action: &str) -> &'static str {
    let lower = action.to_ascii_lowercase();
    if lower.starts_with("microsoft.authorization/") {
        OWNER
    } else if lower.ends_with("/read") {
        READER
    } else if lower.ends_with("/login/action") || lower.ends_with("loginasadmin/action") {
        VM_USER_LOGIN
    } else {
        CONTRIBUTOR
    }
}

/// What a connection goes to, as far as roles are concerned.
#[derive(Debug, Clone, Copy)]
pub enum ConnectTarget<'a> {
    /// A registered machine: its ID and its network interface's ID.
    Resource { machine: &'a ResourceId, nic: &'a ResourceId },
    /// IP-based connection.
    Ip { ip: IpAddr, port: u16 },
}

/// May `principal` connect through `bastion` to `target`? By resource: Reader (or any role
/// that reads) on the machine, its network interface and the bastion, all three named when
/// missing. By IP: read on the bastion through an assignment whose condition, if any, covers
/// the address and port.
pub fn authorize_connect(
    principal: &Principal<'_>,
    bastion: &ResourceId,
    target: ConnectTarget<'_>,
) -> Result<(), Refusal> {
    let bastion_scope = Scope::Resource(bastion.clone());
    let bastion_read = bastion.read_action();
    let mut reasons = Vec::new();
    match target {
        ConnectTarget::Resource { machine, nic } => {
            let what = if machine.kind() == ResourceKind::ScaleSetInstance {
                "scale-set instance"
            } else {
                "virtual machine"
            };
            for (id, what) in [(machine, what), (nic, "network interface"), (bastion, "bastion")] {
                if !principal.may(&id.read_action(), &Scope::Resource(id.clone())) {
                    reasons.push(RefusalReason::MissingReader {
                        user: principal.name.to_string(),
                        what,
                        id: id.to_string(),
                    });
                }
            }
        }
        ConnectTarget::Ip { ip, port } => {
            let granting: Vec<&RoleAssignment> = principal.granting(&bastion_read, &bastion_scope).collect();
            if granting.is_empty() {
                reasons.push(RefusalReason::MissingReader {
                    user: principal.name.to_string(),
                    what: "bastion",
                    id: bastion.to_string(),
                });
            } else if !granting.iter().any(|a| a.condition.as_ref().is_none_or(|c| c.covers(ip, port))) {
                let allowed: Vec<String> =
                    granting.iter().filter_map(|a| a.condition.as_ref()).map(|c| c.to_string()).collect();
                reasons.push(RefusalReason::ConditionNotMet { ip, port, allowed: allowed.join("; ") });
            }
        }
    }
    match Refusal::from_reasons(reasons) {
        Some(r) => Err(r),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn assignment(role: &str, scope: &str, condition: Option<Condition>) -> RoleAssignment {
        RoleAssignment {
            id: "a".into(),
            principal_id: "u".into(),
            principal_name: "alice".into(),
            role: role.into(),
            scope: scope.parse().expect("scope"),
            condition,
            eligibility: None,
        }
    }

    #[test]
    fn the_last_assignment_that_manages_access_at_a_scope_is_kept() {
        const WRITE: &str = "Microsoft.Authorization/roleAssignments/write";
        let roles = builtin_roles();
        let with_id = |id: &str, role: &str, scope: &str| RoleAssignment {
            id: id.into(),
            ..assignment(role, scope, None)
        };
        let sub = "/subscriptions/s";
        let owner = with_id("owner", OWNER, sub);
        let reader = with_id("reader", READER, sub);
        let deeper = with_id("deeper", OWNER, "/subscriptions/s/resourceGroups/g");
        let all = [owner.clone(), reader.clone(), deeper.clone()];
        assert!(leaves_scope_unmanaged(&all, &roles, "owner", WRITE), "the only Owner of the subscription");
        assert!(!leaves_scope_unmanaged(&all, &roles, "reader", WRITE), "a Reader manages nothing");
        assert!(
            !leaves_scope_unmanaged(&all, &roles, "deeper", WRITE),
            "the subscription's Owner still covers it"
        );
        let second = with_id("second", OWNER, sub);
        assert!(!leaves_scope_unmanaged(&[owner, second], &roles, "owner", WRITE), "another Owner remains");
        assert!(!leaves_scope_unmanaged(&all, &roles, "missing", WRITE));
    }

    #[test]
    fn actions_match_like_arm() {
        assert!(action_matches("*/read", "Microsoft.Compute/virtualMachines/read"));
        assert!(action_matches("*", "anything/at/all"));
        assert!(!action_matches("*/read", "Microsoft.Compute/virtualMachines/write"));
        assert!(action_matches(
            "microsoft.compute/VIRTUALMACHINES/*/read",
            "Microsoft.Compute/virtualMachines/x/read"
        ));
        assert!(!action_matches(
            "Microsoft.Compute/virtualMachines/*/read",
            "Microsoft.Compute/virtualMachines/read"
        ));
    }

    #[test]
    fn scopes_contain_what_lies_below() {
        let sub: Scope = "/subscriptions/S".parse().expect("sub");
        let rg: Scope = "/subscriptions/s/resourceGroups/G".parse().expect("rg");
        let vm = Scope::Resource(ResourceId::vm("s", "g", "vm1"));
        let other_rg = Scope::Resource(ResourceId::vm("s", "h", "vm1"));
        assert!(sub.contains(&vm) && rg.contains(&vm) && vm.contains(&vm));
        assert!(!rg.contains(&other_rg) && !vm.contains(&rg));
        let ss = Scope::Resource(ResourceId::of_type(crate::resource_id::VMSS_TYPE, "s", "g", "ss"));
        assert!(ss.contains(&Scope::Resource(ResourceId::scale_set_instance("s", "g", "ss", "0"))));
        assert!("/subscriptions".parse::<Scope>().is_err());
    }

    #[test]
    fn contributor_cannot_assign_roles_and_reader_cannot_write() {
        let roles = builtin_roles();
        let contributor = [assignment(CONTRIBUTOR, "/subscriptions/s", None)];
        let p = Principal { name: "alice", assignments: &contributor, roles: &roles };
        let sub: Scope = "/subscriptions/s".parse().expect("scope");
        assert!(p.check("Microsoft.Network/bastionHosts/write", &sub).is_ok());
        let err = p.check("Microsoft.Authorization/roleAssignments/write", &sub).expect_err("no");
        assert!(err.to_string().contains("Owner"), "{err}");
        let reader = [assignment(READER, "/subscriptions/s", None)];
        let p = Principal { name: "alice", assignments: &reader, roles: &roles };
        assert!(p.check("Microsoft.Network/bastionHosts/write", &sub).is_err());
    }

    #[test]
    fn login_is_a_data_action_that_owner_does_not_imply() {
        let roles = builtin_roles();
        let vm = Scope::Resource(ResourceId::vm("s", "g", "vm1"));
        let owner = [assignment(OWNER, "/subscriptions/s", None)];
        let p = Principal { name: "alice", assignments: &owner, roles: &roles };
        assert!(p.may("Microsoft.Compute/virtualMachines/write", &vm));
        assert!(!p.may_data(LOGIN_ACTION, &vm));
        let user_login = [assignment(VM_USER_LOGIN, "/subscriptions/s/resourceGroups/g", None)];
        let p = Principal { name: "alice", assignments: &user_login, roles: &roles };
        assert!(p.may_data(LOGIN_ACTION, &vm) && !p.may_data(LOGIN_AS_ADMIN_ACTION, &vm));
        let admin_login = [assignment(VM_ADMIN_LOGIN, "/subscriptions/s", None)];
        let p = Principal { name: "alice", assignments: &admin_login, roles: &roles };
        assert!(p.may_data(LOGIN_AS_ADMIN_ACTION, &vm));
    }

    #[test]
    fn connect_by_resource_names_each_missing_reader() {
        let roles = builtin_roles();
        let bastion = ResourceId::bastion("s", "g", "b");
        let vm = ResourceId::vm("s", "g", "vm1");
        let nic = ResourceId::nic("s", "g", "vm1-nic");
        let only_vm = [assignment(READER, &vm.to_string(), None)];
        let p = Principal { name: "alice", assignments: &only_vm, roles: &roles };
        let err = authorize_connect(&p, &bastion, ConnectTarget::Resource { machine: &vm, nic: &nic })
            .expect_err("x");
        assert_eq!(err.code(), "MissingReader,MissingReader");
        assert!(err.to_string().contains("network interface") && err.to_string().contains("bastion"));
        let rg = [assignment(READER, "/subscriptions/s/resourceGroups/g", None)];
        let p = Principal { name: "alice", assignments: &rg, roles: &roles };
        assert!(authorize_connect(&p, &bastion, ConnectTarget::Resource { machine: &vm, nic: &nic }).is_ok());
    }

    #[test]
    fn conditions_narrow_ip_connections() {
        let roles = builtin_roles();
        let bastion = ResourceId::bastion("s", "g", "b");
        let cond = Condition { networks: vec!["10.1.0.0/16".parse().expect("net")], ports: vec![22] };
        let a = [assignment(READER, &bastion.to_string(), Some(cond))];
        let p = Principal { name: "alice", assignments: &a, roles: &roles };
        let ip = |s: &str| s.parse::<IpAddr>().expect("ip");
        assert!(authorize_connect(&p, &bastion, ConnectTarget::Ip { ip: ip("10.1.2.3"), port: 22 }).is_ok());
        let e = authorize_connect(&p, &bastion, ConnectTarget::Ip { ip: ip("10.2.0.1"), port: 22 })
            .expect_err("net");
        assert_eq!(e.code(), "ConditionNotMet");
        let e = authorize_connect(&p, &bastion, ConnectTarget::Ip { ip: ip("10.1.2.3"), port: 3389 })
            .expect_err("p");
        assert!(e.to_string().contains("ports 22"), "{e}");
    }
}
