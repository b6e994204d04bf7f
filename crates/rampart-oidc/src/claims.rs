//! From validated id_token claims to the principal the gateway knows: a user name qualified
//! by the provider (`alice@corp`), the groups it belongs to, and the domain rule.

use serde_json::{Map, Value};

use crate::{OidcError, Refusal};

/// How one provider's claims are read (its `--username-claim`, `--groups-claim`,
/// `--allowed-domains`).
#[derive(Debug, Clone)]
pub struct ClaimRules {
    pub provider: String,
    pub username_claim: String,
    pub groups_claim: String,
    /// When not empty, the user's e-mail (or a user name with `@`) must be in one of these.
    pub allowed_domains: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FederatedClaims {
    /// The provider's stable ID of the user (`sub`).
    pub subject: String,
    /// `NAME@PROVIDER`: how the user appears in role assignments and the audit log.
    pub principal_name: String,
    /// Group IDs or names as the provider sends them (`ops`, an Entra object ID).
    pub groups: Vec<String>,
}

/// Longest user or group name taken from a token; longer ones are refused, not cut.
const MAX_NAME: usize = 256;
/// More groups than this in one token is refused (Entra sends an overage claim instead).
const MAX_GROUPS: usize = 500;

impl ClaimRules {
    pub fn read(&self, claims: &Map<String, Value>) -> Result<FederatedClaims, OidcError> {
        let invalid = |what: String| OidcError::refused(Refusal::InvalidIdToken, what);
        let subject = claims
            .get("sub")
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .ok_or_else(|| invalid("the id_token has no subject".into()))?;
        let name = claims
            .get(&self.username_claim)
            .and_then(Value::as_str)
            .filter(|s| !s.trim().is_empty())
            .unwrap_or(subject)
            .trim();
        if name.len() > MAX_NAME || name.chars().any(|c| c.is_control() || c.is_whitespace()) {
            return Err(invalid(format!("the '{}' claim is not a usable user name", self.username_claim)));
        }
        if !self.allowed_domains.is_empty() {
            let mail = claims.get("email").and_then(Value::as_str).unwrap_or(name);
            let domain = mail.rsplit_once('@').map(|(_, d)| d.to_ascii_lowercase());
            let allowed = domain
                .as_deref()
                .is_some_and(|d| self.allowed_domains.iter().any(|a| a.eq_ignore_ascii_case(d)));
            if !allowed {
                return Err(OidcError::refused(
                    Refusal::DomainNotAllowed,
                    format!("'{mail}' is not in an allowed domain ({})", self.allowed_domains.join(", ")),
                ));
            }
        }
        let groups = match claims.get(&self.groups_claim) {
            None | Some(Value::Null) => Vec::new(),
            Some(Value::String(one)) => vec![one.clone()],
            Some(Value::Array(many)) => {
                if many.len() > MAX_GROUPS {
                    return Err(invalid(format!("more than {MAX_GROUPS} groups in the token")));
                }
                many.iter().filter_map(Value::as_str).map(str::to_string).collect()
            }
            Some(_) => return Err(invalid(format!("the '{}' claim is not a list", self.groups_claim))),
        };
        if let Some(bad) =
            groups.iter().find(|g| g.is_empty() || g.len() > MAX_NAME || g.chars().any(char::is_control))
        {
            return Err(invalid(format!("group '{}' is not a usable name", bad.escape_debug())));
        }
        // A user name that already has a domain keeps it after the provider: `alice@example.com@corp`.
        Ok(FederatedClaims {
            subject: subject.to_string(),
            principal_name: format!("{name}@{}", self.provider),
            groups,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules(domains: &[&str]) -> ClaimRules {
        ClaimRules {
            provider: "corp".into(),
            username_claim: "preferred_username".into(),
            groups_claim: "groups".into(),
            allowed_domains: domains.iter().map(|d| d.to_string()).collect(),
        }
    }

    fn claims(v: Value) -> Map<String, Value> {
        v.as_object().cloned().unwrap_or_default()
    }

    #[test]
    fn a_user_is_named_after_the_claim_and_the_provider() {
        let c = rules(&[])
            .read(&claims(
                serde_json::json!({"sub": "u1", "preferred_username": "alice", "groups": ["ops", "dev"]}),
            ))
            .expect("claims");
        assert_eq!(c.principal_name, "alice@corp");
        assert_eq!(c.groups, vec!["ops", "dev"]);
        let no_name = rules(&[]).read(&claims(serde_json::json!({"sub": "u1"}))).expect("claims");
        assert_eq!(no_name.principal_name, "u1@corp", "without the claim, the subject names the user");
    }

    #[test]
    fn malformed_claims_are_refused_with_a_reason() {
        for bad in [
            serde_json::json!({}),
            serde_json::json!({"sub": ""}),
            serde_json::json!({"sub": "u", "groups": {"a": 1}}),
            serde_json::json!({"sub": "u", "preferred_username": "two words"}),
            serde_json::json!({"sub": "u", "groups": [""]}),
        ] {
            let e = rules(&[]).read(&claims(bad.clone())).expect_err("refused");
            assert_eq!(e.code(), "IdTokenInvalid", "{bad}");
        }
    }

    #[test]
    fn the_domain_rule_reads_the_mail_address() {
        let r = rules(&["example.com"]);
        assert!(r.read(&claims(serde_json::json!({"sub": "u", "email": "a@EXAMPLE.com"}))).is_ok());
        let e =
            r.read(&claims(serde_json::json!({"sub": "u", "email": "a@evil.test"}))).expect_err("refused");
        assert_eq!(e.code(), "DomainNotAllowed");
        assert!(r.read(&claims(serde_json::json!({"sub": "u"}))).is_err(), "no address, no domain: refused");
    }
}
