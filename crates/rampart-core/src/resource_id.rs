//! ARM-style resource IDs: `/subscriptions/{sub}/resourceGroups/{rg}/providers/{ns}/{type}/{name}`.
//!
//! Keywords and provider names compare case-insensitively, as in Azure Resource Manager.
//! Names keep the case they were given, and compare case-insensitively too.

use std::fmt;
use std::str::FromStr;

/// The provider namespace and type of a bastion.
pub const BASTION_TYPE: (&str, &str) = ("Microsoft.Network", "bastionHosts");

/// A resource inside a resource group (nested types such as scale-set instances come with the
/// inventory).
#[derive(Debug, Clone)]
pub struct ResourceId {
    pub subscription: String,
    pub resource_group: String,
    pub namespace: String,
    pub resource_type: String,
    pub name: String,
}

impl ResourceId {
    pub fn bastion(subscription: &str, resource_group: &str, name: &str) -> Self {
        ResourceId {
            subscription: subscription.to_string(),
            resource_group: resource_group.to_string(),
            namespace: BASTION_TYPE.0.to_string(),
            resource_type: BASTION_TYPE.1.to_string(),
            name: name.to_string(),
        }
    }

    pub fn is_bastion(&self) -> bool {
        self.namespace.eq_ignore_ascii_case(BASTION_TYPE.0)
            && self.resource_type.eq_ignore_ascii_case(BASTION_TYPE.1)
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
        )
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
        if parts.len() != 8 {
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
        for name in [parts[1], parts[3], parts[5], parts[6], parts[7]] {
            validate_name(name)?;
        }
        Ok(ResourceId {
            subscription: parts[1].to_string(),
            resource_group: parts[3].to_string(),
            namespace: parts[5].to_string(),
            resource_type: parts[6].to_string(),
            name: parts[7].to_string(),
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
