//! Authorization by property test: random role assignments at random scopes, checked
//! against a deliberately naive reference that works on strings, not on parsed scopes.

use proptest::prelude::*;
use rampart_core::ResourceId;
use rampart_core::rbac::{Principal, RoleAssignment, RoleDefinition, Scope, builtin_roles};

const SUBS: [&str; 2] = ["s1", "S2"];
const GROUPS: [&str; 2] = ["rg-a", "RG-b"];
const VMS: [&str; 2] = ["vm1", "vm2"];
const ROLES: [&str; 6] =
    ["Owner", "Contributor", "Reader", "Virtual Machine User Login", "Net Reader", "Writer"];
const ACTIONS: [&str; 7] = [
    "Microsoft.Compute/virtualMachines/read",
    "Microsoft.Compute/virtualMachines/write",
    "Microsoft.Network/networkInterfaces/read",
    "Microsoft.Network/bastionHosts/read",
    "Microsoft.Network/bastionHosts/write",
    "Microsoft.Authorization/roleAssignments/write",
    "Microsoft.Compute/virtualMachines/delete",
];

fn roles() -> Vec<RoleDefinition> {
    let mut roles = builtin_roles();
    for (name, actions) in [("Net Reader", vec!["Microsoft.Network/*/read"]), ("Writer", vec!["*/write"])] {
        roles.push(RoleDefinition {
            name: name.into(),
            description: String::new(),
            actions: actions.into_iter().map(String::from).collect(),
            not_actions: vec![],
            data_actions: vec![],
            builtin: false,
        });
    }
    roles
}

/// A scope as text: subscription, resource group, or a VM.
fn scope_text(kind: u8, s: usize, g: usize, v: usize) -> String {
    let sub = format!("/subscriptions/{}", SUBS[s]);
    match kind % 3 {
        0 => sub,
        1 => format!("{sub}/resourceGroups/{}", GROUPS[g]),
        _ => format!(
            "{sub}/resourceGroups/{}/providers/Microsoft.Compute/virtualMachines/{}",
            GROUPS[g], VMS[v]
        ),
    }
}

/// Naive wildcard match by dynamic programming over lower-cased bytes.
fn naive_match(pattern: &str, text: &str) -> bool {
    let (p, t) = (pattern.to_lowercase().into_bytes(), text.to_lowercase().into_bytes());
    let mut dp = vec![vec![false; t.len() + 1]; p.len() + 1];
    dp[0][0] = true;
    for i in 1..=p.len() {
        dp[i][0] = dp[i - 1][0] && p[i - 1] == b'*';
        for j in 1..=t.len() {
            dp[i][j] = if p[i - 1] == b'*' {
                dp[i - 1][j] || dp[i][j - 1]
            } else {
                dp[i - 1][j - 1] && p[i - 1] == t[j - 1]
            };
        }
    }
    dp[p.len()][t.len()]
}

/// The reference: an assignment applies when its scope text, lower-cased, is the target's
/// or a prefix of it ending at a `/`; its role allows the action by its patterns.
fn naive_allows(
    assignments: &[(String, String)],
    action: &str,
    target: &str,
    roles: &[RoleDefinition],
) -> bool {
    let target = target.to_lowercase();
    assignments.iter().any(|(role, scope)| {
        let scope = scope.to_lowercase();
        let covers = target == scope || target.starts_with(&format!("{scope}/"));
        let role = roles.iter().find(|r| r.name.eq_ignore_ascii_case(role));
        covers
            && role.is_some_and(|r| {
                r.actions.iter().any(|p| naive_match(p, action))
                    && !r.not_actions.iter().any(|p| naive_match(p, action))
            })
    })
}

fn assignment() -> impl Strategy<Value = (String, String)> {
    (0..ROLES.len(), any::<u8>(), 0..2usize, 0..2usize, 0..2usize)
        .prop_map(|(r, k, s, g, v)| (ROLES[r].to_string(), scope_text(k, s, g, v)))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(4000))]

    #[test]
    fn decisions_match_the_naive_reference(
        assignments in proptest::collection::vec(assignment(), 0..5),
        action in 0..ACTIONS.len(),
        target in (any::<u8>(), 0..2usize, 0..2usize, 0..2usize),
    ) {
        let roles = roles();
        let parsed: Vec<RoleAssignment> = assignments
            .iter()
            .map(|(role, scope)| RoleAssignment {
                id: "x".into(),
                principal_id: "u".into(),
                principal_name: "alice".into(),
                role: role.clone(),
                scope: scope.parse().expect("generated scopes parse"),
                condition: None,
                eligibility: None,
            })
            .collect();
        let principal = Principal { name: "alice", assignments: &parsed, roles: &roles };
        let target_text = scope_text(target.0, target.1, target.2, target.3);
        let target_scope: Scope = target_text.parse().expect("scope");
        let expected = naive_allows(&assignments, ACTIONS[action], &target_text, &roles);
        prop_assert_eq!(principal.may(ACTIONS[action], &target_scope), expected,
            "assignments {:?}, action {}, target {}", assignments, ACTIONS[action], target_text);
        // A refusal, when there is one, names the action and the scope.
        if let Err(reason) = principal.check(ACTIONS[action], &target_scope) {
            let text = reason.to_string();
            prop_assert!(text.contains(ACTIONS[action]) && text.contains(&target_scope.to_string()));
        }
    }

    #[test]
    fn resource_ids_round_trip_and_never_panic(text in "\\PC{0,200}") {
        if let Ok(id) = text.parse::<ResourceId>() {
            let again: ResourceId = id.to_string().parse().expect("a printed ID parses");
            prop_assert_eq!(again, id);
        }
        let _ = text.parse::<Scope>();
        let _ = rampart_core::parse_target_ip(&text);
    }
}
