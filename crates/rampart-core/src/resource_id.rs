//! ARM-style resource IDs: `/subscriptions/{sub}/resourceGroups/{rg}/providers/{ns}/{type}/{name}`.
//!
//! Keywords and provider names compare case-insensitively, as in Azure Resource Manager.
//! Names keep the case they were given, and compare case-insensitively too.

use std::fmt;
use std::str::FromStr;

/// The provider namespace and type of a bastion.
pub const BASTION_TYPE: (&str, &str) = ("Microsoft.Network", "bastionHosts");
pub const VM_TYPE: (&str, &str) = ("Microsoft.Compute", "virtualMachines");
pub const VMSS_TYPE: (&str, &str) = ("Microsoft.Compute", "virtualMachineScaleSets");
pub const NIC_TYPE: (&str, &str) = ("Microsoft.Network", "networkInterfaces");

/// What a resource ID names, for the kinds Rampart knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResourceKind {
    Bastion,
    VirtualMachine,
    ScaleSet,
    /// `…/virtualMachineScaleSets/{ss}/virtualMachines/{instance}`
    ScaleSetInstance,
    NetworkInterface,
    Other,
}

/// A resource inside a resource group, optionally with one nested child (a scale-set
/// instance).
#[derive(Debug, Clone)]
pub struct ResourceId {
    pub subscription: String,
    pub resource_group: String,
    pub namespace: String,
    pub resource_type: String,
    pub name: String,
    /// Child type and name, e.g. `("virtualMachines", "0")`.
    pub child: Option<(String, String)>,
}

impl ResourceId {
    pub fn bastion(subscription: &str, resource_group: &str, name: &str) -> Self {
        ResourceId {
            subscription: subscription.to_string(),
            resource_group: resource_group.to_string(),
            namespace: BASTION_TYPE.0.to_string(),
            resource_type: BASTION_TYPE.1.to_string(),
            name: name.to_string(),
            child: None,
        }
    }

    pub fn of_type(kind: (&str, &str), subscription: &str, resource_group: &str, name: &str) -> Self {
        ResourceId {
            subscription: subscription.to_string(),
            resource_group: resource_group.to_string(),
            namespace: kind.0.to_string(),
            resource_type: kind.1.to_string(),
            name: name.to_string(),
            child: None,
        }
    }

    pub fn vm(subscription: &str, resource_group: &str, name: &str) -> Self {
        Self::of_type(VM_TYPE, subscription, resource_group, name)
    }

    pub fn nic(subscription: &str, resource_group: &str, name: &str) -> Self {
        Self::of_type(NIC_TYPE, subscription, resource_group, name)
    }

    pub fn scale_set_instance(
        subscription: &str,
        resource_group: &str,
        scale_set: &str,
        instance: &str,
    ) -> Self {
        let mut id = Self::of_type(VMSS_TYPE, subscription, resource_group, scale_set);
        id.child = Some(("virtualMachines".to_string(), instance.to_string()));
        id
    }

    fn is(&self, kind: (&str, &str)) -> bool {
        self.namespace.eq_ignore_ascii_case(kind.0) && self.resource_type.eq_ignore_ascii_case(kind.1)
    }

    pub fn kind(&self) -> ResourceKind {
        match &self.child {
            None if self.is(BASTION_TYPE) => ResourceKind::Bastion,
            None if self.is(VM_TYPE) => ResourceKind::VirtualMachine,
            None if self.is(VMSS_TYPE) => ResourceKind::ScaleSet,
            None if self.is(NIC_TYPE) => ResourceKind::NetworkInterface,
            Some((t, _)) if self.is(VMSS_TYPE) && t.eq_ignore_ascii_case("virtualMachines") => {
                ResourceKind::ScaleSetInstance
            }
            _ => ResourceKind::Other,
        }
    }

    pub fn is_bastion(&self) -> bool {
        self.kind() == ResourceKind::Bastion
    }

    /// The ARM action that reads this resource, e.g. `Microsoft.Compute/virtualMachines/read`.
    pub fn read_action(&self) -> String {
        match &self.child {
            Some((t, _)) => format!("{}/{}/{}/read", self.namespace, self.resource_type, t),
            None => format!("{}/{}/read", self.namespace, self.resource_type),
        }
    }

    /// The resource without its child (a scale-set instance's scale set).
    pub fn parent(&self) -> Option<ResourceId> {
        self.child.as_ref().map(|_| ResourceId { child: None, ..self.clone() })
    }
}

impl PartialEq for ResourceId {
    fn eq(&self, other: &Self) -> bool {
        self.to_string().eq_ignore_ascii_case(&other.to_string())
    }
}
impl Eq for ResourceId {}

impl fmt::Display for ResourceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "/subscriptions/{}/resourceGroups/{}/providers/{}/{}/{}",
            self.subscription, self.resource_group, self.namespace, self.resource_type, self.name
        )?;
        if let Some((t, n)) = &self.child {
            write!(f, "/{t}/{n}")?;
        }
        Ok(())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ResourceIdError {
    #[error(
        "malformed resource ID '{id}': expected /subscriptions/{{subscription}}/resourceGroups/{{group}}/providers/{{namespace}}/{{type}}/{{name}} ({why})"
    )]
    Malformed { id: String, why: &'static str },
    #[error("invalid name '{name}' in resource ID: {why}")]
    BadName { name: String, why: &'static str },
}

/// Checks a resource, resource group or subscription name: 1 to 90 characters of letters,
/// digits, `-`, `_`, `.` and `(`/`)`; not ending in `.`.
pub fn validate_name(name: &str) -> Result<(), ResourceIdError> {
    let bad = |why| Err(ResourceIdError::BadName { name: name.to_string(), why });
    if name.is_empty() {
        return bad("it is empty");
    }
    if name.len() > 90 {
        return bad("it is longer than 90 characters");
    }
    if name.ends_with('.') {
        return bad("it ends with '.'");
    }
    if !name.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '(' | ')')) {
        return bad("only letters, digits, '-', '_', '.', '(' and ')' are allowed");
    }
    Ok(())
}

impl FromStr for ResourceId {
    type Err = ResourceIdError;

    fn from_str(id: &str) -> Result<Self, Self::Err> {
        let malformed = |why| ResourceIdError::Malformed { id: id.to_string(), why };
        let rest = id.strip_prefix('/').ok_or_else(|| malformed("it must start with '/'"))?;
        let parts: Vec<&str> = rest.trim_end_matches('/').split('/').collect();
        if parts.len() != 8 && parts.len() != 10 {
            return Err(malformed("wrong number of segments"));
        }
        let keyword = |i: usize, k: &str| parts[i].eq_ignore_ascii_case(k);
        if !keyword(0, "subscriptions") {
            return Err(malformed("missing 'subscriptions'"));
        }
        if !keyword(2, "resourceGroups") {
            return Err(malformed("missing 'resourceGroups'"));
        }
        if !keyword(4, "providers") {
            return Err(malformed("missing 'providers'"));
        }
        for name in &parts[1..] {
            validate_name(name)?;
        }
        Ok(ResourceId {
            subscription: parts[1].to_string(),
            resource_group: parts[3].to_string(),
            namespace: parts[5].to_string(),
            resource_type: parts[6].to_string(),
            name: parts[7].to_string(),
            child: (parts.len() == 10).then(|| (parts[8].to_string(), parts[9].to_string())),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_compares_case_insensitively() {
        let id: ResourceId =
            "/subscriptions/s1/resourcegroups/RG/providers/microsoft.network/BASTIONHOSTS/b1"
                .parse()
                .expect("valid id");
        assert!(id.is_bastion());
        assert_eq!(id, ResourceId::bastion("s1", "rg", "B1"));
        assert_eq!(
            ResourceId::bastion("s1", "rg", "b1").to_string(),
            "/subscriptions/s1/resourceGroups/rg/providers/Microsoft.Network/bastionHosts/b1"
        );
    }

    #[test]
    fn scale_set_instances_and_kinds() {
        let id: ResourceId =
            "/subscriptions/s/resourceGroups/g/providers/Microsoft.Compute/virtualMachineScaleSets/ss/virtualMachines/3"
                .parse()
                .expect("instance id");
        assert_eq!(id.kind(), ResourceKind::ScaleSetInstance);
        assert_eq!(id, ResourceId::scale_set_instance("S", "G", "SS", "3"));
        assert_eq!(id.parent().map(|p| p.kind()), Some(ResourceKind::ScaleSet));
        assert_eq!(ResourceId::vm("s", "g", "vm1").read_action(), "Microsoft.Compute/virtualMachines/read");
        assert_eq!(ResourceId::nic("s", "g", "n").kind(), ResourceKind::NetworkInterface);
    }

    #[test]
    fn malformed_ids_say_why() {
        for bad in [
            "",
            "subscriptions/s/resourceGroups/r/providers/a/b/c",
            "/subscriptions/s/resourceGroups/r",
            "/subs/s/resourceGroups/r/providers/a/b/c",
            "/subscriptions/s/resourceGroups/r/providers/a/b/c d",
            "/subscriptions/s/resourceGroups//providers/a/b/c",
        ] {
            let err = bad.parse::<ResourceId>().expect_err(bad);
            assert!(!err.to_string().is_empty());
        }
    }
}
