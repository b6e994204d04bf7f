//! The rules. Each workspace crate has a row: the workspace crates it may depend on and the
//! kinds of external crate it may not. Dev-dependencies are free (tests may drive anything);
//! build and normal dependencies are checked.

use std::path::Path;

use anyhow::Result;
use serde_json::Value;

/// External crates that do I/O or run async code.
const IO: &[&str] = &[
    "tokio",
    "tokio-util",
    "tokio-rustls",
    "tokio-tungstenite",
    "tungstenite",
    "mio",
    "socket2",
    "hyper",
    "hyper-util",
    "axum",
    "reqwest",
    "rustls",
    "futures",
    "futures-util",
    "async-trait",
    "tower",
];
/// External crates that speak SQL: only the store may.
const SQL: &[&str] =
    &["sqlx", "rusqlite", "libsqlite3-sys", "postgres", "tokio-postgres", "sea-orm", "diesel"];

struct Rule {
    krate: &'static str,
    /// Workspace crates it may depend on.
    may_use: &'static [&'static str],
    /// Whether it may do I/O and async, use SQL, read the clock.
    io: bool,
    sql: bool,
    clock: bool,
}

const fn rule(
    krate: &'static str,
    may_use: &'static [&'static str],
    io: bool,
    sql: bool,
    clock: bool,
) -> Rule {
    Rule { krate, may_use, io, sql, clock }
}

const RULES: &[Rule] = &[
    // The rules of the domain: no I/O, no async, no clock.
    rule("rampart-core", &[], false, false, false),
    // Wire formats, sans I/O.
    rule("rampart-proto", &["rampart-core"], false, false, false),
    rule("rampart-rdg", &[], false, false, false),
    rule("rampart-store", &["rampart-core"], true, true, true),
    rule("rampart-tunnel", &["rampart-proto"], true, false, true),
    rule("rampart-ssh", &[], true, false, true),
    rule("rampart-rdp", &[], true, false, true),
    rule("rampart-oidc", &[], true, false, true),
    rule(
        "rampart-gateway",
        &[
            "rampart-core",
            "rampart-proto",
            "rampart-store",
            "rampart-ssh",
            "rampart-rdp",
            "rampart-oidc",
            "rampart-rdg",
            "rampart-tunnel",
        ],
        true,
        false,
        true,
    ),
    rule("rampart-client", &["rampart-core", "rampart-proto", "rampart-tunnel"], true, false, true),
    rule(
        "rampart-cli",
        &["rampart-core", "rampart-proto", "rampart-gateway", "rampart-client"],
        true,
        false,
        true,
    ),
];

/// Crates that may depend on anything, with the only crates that may depend on them: the
/// benchmarks drive the end-to-end harness; nothing depends on the benchmarks or on xtask.
const LEAVES: &[(&str, &[&str])] =
    &[("rampart-bench", &[]), ("rampart-e2e", &["rampart-bench"]), ("xtask", &[])];

fn is_leaf(name: &str) -> bool {
    LEAVES.iter().any(|(leaf, _)| *leaf == name)
}

fn is_io(name: &str) -> bool {
    IO.contains(&name) || name.starts_with("tokio-")
}

/// Every broken dependency rule in `metadata` (`cargo metadata --no-deps`), named.
pub fn check_dependencies(metadata: &Value) -> Vec<String> {
    let mut violations = Vec::new();
    let packages = metadata["packages"].as_array().cloned().unwrap_or_default();
    let members: Vec<String> = packages.iter().filter_map(|p| p["name"].as_str().map(String::from)).collect();
    for package in &packages {
        let name = package["name"].as_str().unwrap_or_default();
        let rule = RULES.iter().find(|r| r.krate == name);
        if rule.is_none() && !is_leaf(name) {
            violations
                .push(format!("{name} has no rule: give it a row in xtask/src/arch.rs and ARCHITECTURE.md"));
            continue;
        }
        for dep in package["dependencies"].as_array().into_iter().flatten() {
            if dep["kind"].as_str() == Some("dev") {
                continue;
            }
            let dep_name = dep["name"].as_str().unwrap_or_default();
            if let Some((_, users)) = LEAVES.iter().find(|(leaf, _)| *leaf == dep_name)
                && !users.contains(&name)
            {
                violations
                    .push(format!("{name} depends on {dep_name}, which nothing may depend on but {users:?}"));
            }
            let Some(rule) = rule else { continue };
            if members.iter().any(|m| m == dep_name) && !rule.may_use.contains(&dep_name) {
                violations
                    .push(format!("{name} may not depend on {dep_name} (it may use: {:?})", rule.may_use));
            }
            if !rule.io && is_io(dep_name) {
                violations
                    .push(format!("{name} may do no I/O and run no async code, but depends on {dep_name}"));
            }
            if !rule.sql && SQL.contains(&dep_name) {
                violations.push(format!("only rampart-store knows SQL, but {name} depends on {dep_name}"));
            }
            if !rule.clock && dep_name == "chrono" {
                let features: Vec<&str> =
                    dep["features"].as_array().into_iter().flatten().filter_map(Value::as_str).collect();
                if features.contains(&"clock")
                    || features.contains(&"now")
                    || dep["uses_default_features"] != false
                {
                    violations.push(format!("{name} may read no clock, but takes chrono with its clock"));
                }
            }
        }
    }
    violations
}

/// What the CLI may name of the gateway: its public front, never its internals.
const CLI_MAY_NAME: &[&str] = &[
    "rampart_gateway::config",
    "rampart_gateway::Gateway",
    "rampart_gateway::GatewayConfig",
    "rampart_gateway::open_store",
];

/// The source rules: files over 600 lines say why at their top, and the CLI names only the
/// gateway's public front.
pub fn check_sources(root: &Path) -> Result<Vec<String>> {
    let mut violations = Vec::new();
    for dir in ["crates", "tests/e2e", "xtask/src"] {
        for file in rust_files(&root.join(dir))? {
            let text = std::fs::read_to_string(&file)?;
            let shown = file.strip_prefix(root).unwrap_or(&file).display().to_string();
            violations.extend(check_file(&shown, &text));
        }
    }
    Ok(violations)
}

/// The rules for one file's text.
pub fn check_file(path: &str, text: &str) -> Vec<String> {
    let mut violations = Vec::new();
    let lines = text.lines().count();
    let says_why = text.lines().take(12).any(|l| l.contains("Longer than 600 lines because"));
    if lines > 600 && !says_why {
        violations.push(format!(
            "{path} has {lines} lines: split it, or say at its top \"Longer than 600 lines because …\""
        ));
    }
    if path.starts_with("crates/rampart-cli/") {
        for (n, line) in text.lines().enumerate() {
            let mut rest = line;
            while let Some(at) = rest.find("rampart_gateway::") {
                let named = &rest[at..];
                if named.starts_with("rampart_gateway::{")
                    || !CLI_MAY_NAME.iter().any(|ok| named.starts_with(ok))
                {
                    violations.push(format!(
                        "{path}:{}: the CLI names gateway internals ({}); it may use {CLI_MAY_NAME:?}",
                        n + 1,
                        named.split([';', ' ', '(']).next().unwrap_or(named)
                    ));
                }
                rest = &named["rampart_gateway::".len()..];
            }
        }
    }
    violations
}

fn rust_files(dir: &Path) -> Result<Vec<std::path::PathBuf>> {
    let mut files = Vec::new();
    if !dir.exists() {
        return Ok(files);
    }
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if path.file_name().is_some_and(|n| n == "target" || n == "node_modules") {
            continue;
        }
        if path.is_dir() {
            files.extend(rust_files(&path)?);
        } else if path.extension().is_some_and(|e| e == "rs") {
            files.push(path);
        }
    }
    Ok(files)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    /// The workspace as it is passes; the metadata is cargo's own.
    #[test]
    fn this_workspace_keeps_the_rules() {
        let out = std::process::Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
            .args(["metadata", "--format-version", "1", "--no-deps", "--offline"])
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .output()
            .expect("cargo metadata runs");
        let metadata: Value = serde_json::from_slice(&out.stdout).expect("JSON");
        assert_eq!(check_dependencies(&metadata), Vec::<String>::new());
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("root");
        assert_eq!(check_sources(root).expect("sources read"), Vec::<String>::new());
    }

    fn package(name: &str, deps: &[Value]) -> Value {
        json!({ "name": name, "dependencies": deps })
    }

    fn dep(name: &str) -> Value {
        json!({ "name": name, "kind": null, "features": [], "uses_default_features": true })
    }

    fn workspace(extra: &[(&str, Value)]) -> Value {
        let mut packages: Vec<Value> = RULES.iter().map(|r| package(r.krate, &[])).collect();
        packages.extend(LEAVES.iter().map(|(l, _)| package(l, &[])));
        for (krate, d) in extra {
            if let Some(p) = packages.iter_mut().find(|p| p["name"] == *krate)
                && let Some(deps) = p["dependencies"].as_array_mut()
            {
                deps.push(d.clone());
            }
        }
        json!({ "packages": packages })
    }

    #[test]
    fn a_forbidden_dependency_fails_the_check_and_is_named() {
        assert!(check_dependencies(&workspace(&[])).is_empty());
        for (krate, d, says) in [
            ("rampart-core", dep("tokio"), "no I/O"),
            ("rampart-core", dep("rampart-store"), "may not depend on rampart-store"),
            ("rampart-core", dep("chrono"), "no clock"),
            ("rampart-proto", dep("rampart-tunnel"), "may not depend on rampart-tunnel"),
            ("rampart-proto", dep("hyper"), "no I/O"),
            ("rampart-gateway", dep("sqlx"), "only rampart-store knows SQL"),
            ("rampart-gateway", dep("rampart-client"), "may not depend on rampart-client"),
            ("rampart-client", dep("rampart-gateway"), "may not depend on rampart-gateway"),
            ("rampart-cli", dep("rusqlite"), "only rampart-store knows SQL"),
            ("rampart-tunnel", dep("rampart-e2e"), "nothing may depend on"),
        ] {
            let found = check_dependencies(&workspace(&[(krate, d)]));
            assert!(found.iter().any(|v| v.contains(says) && v.contains(krate)), "{krate}: {found:?}");
        }
        // Tests may drive anything.
        let dev = json!({ "name": "tokio", "kind": "dev", "features": [], "uses_default_features": true });
        assert!(check_dependencies(&workspace(&[("rampart-core", dev)])).is_empty());
        // chrono without its clock is fine in core.
        let no_clock =
            json!({ "name": "chrono", "kind": null, "features": ["serde"], "uses_default_features": false });
        assert!(check_dependencies(&workspace(&[("rampart-core", no_clock)])).is_empty());
    }

    #[test]
    fn a_new_crate_needs_a_rule() {
        let mut metadata = workspace(&[]);
        if let Some(p) = metadata["packages"].as_array_mut() {
            p.push(package("rampart-new", &[]));
        }
        assert!(check_dependencies(&metadata).iter().any(|v| v.contains("rampart-new has no rule")));
    }

    #[test]
    fn long_files_say_why_and_the_cli_keeps_to_the_gateways_front() {
        let long = "fn f() {}\n".repeat(601);
        assert_eq!(check_file("crates/x/src/a.rs", &long).len(), 1);
        let explained = format!("//! Longer than 600 lines because it is one table.\n{long}");
        assert!(check_file("crates/x/src/a.rs", &explained).is_empty());
        let ok = "use rampart_gateway::config::Secret;\nlet s = rampart_gateway::open_store(&c);";
        assert!(check_file("crates/rampart-cli/src/commands/serve.rs", ok).is_empty());
        let inner = "use rampart_gateway::lifecycle::Sessions;";
        assert_eq!(check_file("crates/rampart-cli/src/commands/serve.rs", inner).len(), 1);
        assert!(check_file("crates/rampart-gateway/src/x.rs", inner).is_empty());
    }
}
