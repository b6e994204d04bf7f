//! Who may reach what, decided by role assignments at scopes: a matrix of cases against a
//! live gateway and a real sshd. Every refusal must name its reason and leave an audit
//! record; every allowed connection must really reach sshd.
//!
//! Longer than 600 lines because the matrix reads best as one table of cases.

use anyhow::{Context, Result, bail, ensure};
use rampart_e2e::{Gateway, Session, Sshd};

const SUB: &str = "/subscriptions/default";
const RG_APPS: &str = "/subscriptions/default/resourceGroups/apps";
const RG_DATA: &str = "/subscriptions/default/resourceGroups/data";
const VM_WEB: &str =
    "/subscriptions/default/resourceGroups/apps/providers/Microsoft.Compute/virtualMachines/web1";
const NIC_WEB: &str =
    "/subscriptions/default/resourceGroups/apps/providers/Microsoft.Network/networkInterfaces/web1-nic";
const VM_DB: &str =
    "/subscriptions/default/resourceGroups/data/providers/Microsoft.Compute/virtualMachines/db1";
const NIC_DB: &str =
    "/subscriptions/default/resourceGroups/data/providers/Microsoft.Network/networkInterfaces/db1-nic";
const BASTION: &str =
    "/subscriptions/default/resourceGroups/default/providers/Microsoft.Network/bastionHosts/default";

/// A role, its scope, and an optional condition `networks|ports`.
type Grant = (&'static str, &'static str, &'static str);

enum Action {
    /// Tunnel by resource ID.
    Resource(&'static str),
    /// Tunnel by IP to the sshd port (`None`) or another port.
    Ip(&'static str, Option<u16>),
    /// Any `rampart` command.
    Cli(&'static [&'static str]),
    /// A `rampart` command given this standard input.
    CliInput(&'static [&'static str], &'static str),
    /// A list command whose output must show `shown` and not `hidden`.
    Lists(&'static [&'static str], &'static str, &'static str),
}

enum Expect {
    Allowed,
    Refused(&'static str),
}

struct Case {
    name: &'static str,
    grants: &'static [Grant],
    action: Action,
    expect: Expect,
}

const READER: &str = "Reader";

fn cases() -> Vec<Case> {
    use Action::*;
    use Expect::*;
    vec![
        // Connect by resource ID: Reader on VM, NIC and bastion, or above them.
        Case {
            name: "no roles at all",
            grants: &[],
            action: Resource(VM_WEB),
            expect: Refused("no Reader role (or any role that reads it) on the virtual machine"),
        },
        Case {
            name: "Reader on the VM only",
            grants: &[(READER, VM_WEB, "")],
            action: Resource(VM_WEB),
            expect: Refused("on the network interface"),
        },
        Case {
            name: "Reader on VM and NIC, not the bastion",
            grants: &[(READER, VM_WEB, ""), (READER, NIC_WEB, "")],
            action: Resource(VM_WEB),
            expect: Refused("on the bastion"),
        },
        Case {
            name: "Reader on VM and bastion, not the NIC",
            grants: &[(READER, VM_WEB, ""), (READER, BASTION, "")],
            action: Resource(VM_WEB),
            expect: Refused("on the network interface"),
        },
        Case {
            name: "Reader on NIC and bastion, not the VM",
            grants: &[(READER, NIC_WEB, ""), (READER, BASTION, "")],
            action: Resource(VM_WEB),
            expect: Refused("on the virtual machine"),
        },
        Case {
            name: "all three at resource scope",
            grants: &[(READER, VM_WEB, ""), (READER, NIC_WEB, ""), (READER, BASTION, "")],
            action: Resource(VM_WEB),
            expect: Allowed,
        },
        Case {
            name: "Reader on the resource group, not the bastion",
            grants: &[(READER, RG_APPS, "")],
            action: Resource(VM_WEB),
            expect: Refused("on the bastion"),
        },
        Case {
            name: "Reader on the resource group and the bastion (parent scope)",
            grants: &[(READER, RG_APPS, ""), (READER, BASTION, "")],
            action: Resource(VM_WEB),
            expect: Allowed,
        },
        Case {
            name: "Reader on the subscription (parent of all)",
            grants: &[(READER, SUB, "")],
            action: Resource(VM_WEB),
            expect: Allowed,
        },
        Case {
            name: "Reader on the wrong resource group",
            grants: &[(READER, RG_DATA, ""), (READER, BASTION, "")],
            action: Resource(VM_WEB),
            expect: Refused("on the virtual machine"),
        },
        Case {
            name: "Reader on another VM and its NIC",
            grants: &[(READER, VM_DB, ""), (READER, NIC_DB, ""), (READER, BASTION, "")],
            action: Resource(VM_WEB),
            expect: Refused("on the network interface"),
        },
        Case {
            name: "VM User Login without Reader on the VM",
            grants: &[("Virtual Machine User Login", RG_APPS, ""), (READER, BASTION, "")],
            action: Resource(VM_WEB),
            expect: Refused("on the virtual machine"),
        },
        Case {
            name: "Contributor on the resource group",
            grants: &[("Contributor", RG_APPS, ""), (READER, BASTION, "")],
            action: Resource(VM_WEB),
            expect: Allowed,
        },
        Case {
            name: "custom role that reads network resources",
            grants: &[("Network Viewer", SUB, ""), (READER, VM_WEB, "")],
            action: Resource(VM_WEB),
            expect: Allowed,
        },
        Case {
            name: "custom role alone lacks the VM",
            grants: &[("Network Viewer", SUB, "")],
            action: Resource(VM_WEB),
            expect: Refused("on the virtual machine"),
        },
        // Connect by IP: Reader on the bastion, narrowed by the assignment's condition.
        Case {
            name: "IP: no roles",
            grants: &[],
            action: Ip("127.0.0.1", None),
            expect: Refused("on the bastion"),
        },
        Case {
            name: "IP: Reader on a VM only",
            grants: &[(READER, VM_WEB, "")],
            action: Ip("127.0.0.1", None),
            expect: Refused("on the bastion"),
        },
        Case {
            name: "IP: Reader on the bastion",
            grants: &[(READER, BASTION, "")],
            action: Ip("127.0.0.1", None),
            expect: Allowed,
        },
        Case {
            name: "IP: Reader on the bastion's resource group",
            grants: &[(READER, "/subscriptions/default/resourceGroups/default", "")],
            action: Ip("127.0.0.1", None),
            expect: Allowed,
        },
        Case {
            name: "IP: condition allows another network",
            grants: &[(READER, BASTION, "10.0.0.0/8|")],
            action: Ip("127.0.0.1", None),
            expect: Refused("allows IP-based connections only to networks 10.0.0.0/8"),
        },
        Case {
            name: "IP: condition allows another port",
            grants: &[(READER, BASTION, "127.0.0.0/8|22")],
            action: Ip("127.0.0.1", None),
            expect: Refused("ports 22"),
        },
        Case {
            name: "IP: condition covers network and port",
            grants: &[(READER, BASTION, "127.0.0.0/8|SSHD")],
            action: Ip("127.0.0.1", None),
            expect: Allowed,
        },
        Case {
            name: "IP: one unconditioned assignment is enough",
            grants: &[(READER, BASTION, "10.0.0.0/8|"), (READER, SUB, "")],
            action: Ip("127.0.0.1", None),
            expect: Allowed,
        },
        Case {
            name: "IP: condition network, wrong address",
            grants: &[(READER, BASTION, "127.0.0.2/32|")],
            action: Ip("127.0.0.1", None),
            expect: Refused("127.0.0.1 port"),
        },
        // Malformed and unknown resource IDs.
        Case {
            name: "malformed resource ID",
            grants: &[(READER, SUB, "")],
            action: Resource("/subscriptions/default/virtualMachines/web1"),
            expect: Refused("malformed resource ID"),
        },
        Case {
            name: "unknown VM",
            grants: &[(READER, SUB, "")],
            action: Resource(
                "/subscriptions/default/resourceGroups/apps/providers/Microsoft.Compute/virtualMachines/nope",
            ),
            expect: Refused("is not registered in the inventory"),
        },
        Case {
            name: "a bastion is not a target",
            grants: &[(READER, SUB, "")],
            action: Resource(BASTION),
            expect: Refused("is not a virtual machine or a scale-set instance"),
        },
        Case {
            name: "unknown subscription in the ID",
            grants: &[(READER, SUB, "")],
            action: Resource(
                "/subscriptions/other/resourceGroups/apps/providers/Microsoft.Compute/virtualMachines/web1",
            ),
            expect: Refused("subscription 'other' was not found"),
        },
        // Reads list and show only what the caller may see.
        Case {
            name: "vm list shows only readable machines",
            grants: &[(READER, RG_APPS, "")],
            action: Lists(&["vm", "list"], "web1", "db1"),
            expect: Allowed,
        },
        Case {
            name: "nic list shows only readable NICs",
            grants: &[(READER, RG_DATA, "")],
            action: Lists(&["network", "nic", "list"], "db1-nic", "web1-nic"),
            expect: Allowed,
        },
        Case {
            name: "bastion list hides unreadable bastions",
            grants: &[(READER, RG_APPS, "")],
            action: Lists(&["network", "bastion", "list"], "[]", "\"default\""),
            expect: Allowed,
        },
        Case {
            name: "account list shows no subscription without roles",
            grants: &[],
            action: Lists(&["account", "list"], "[]", "default"),
            expect: Allowed,
        },
        Case {
            name: "vm show of an unreadable VM",
            grants: &[(READER, RG_APPS, "")],
            action: Cli(&["vm", "show", "-n", "db1", "-g", "data"]),
            expect: Refused("Microsoft.Compute/virtualMachines/read"),
        },
        Case {
            name: "nic show of an unreadable NIC",
            grants: &[(READER, RG_APPS, "")],
            action: Cli(&["network", "nic", "show", "-n", "db1-nic", "-g", "data"]),
            expect: Refused("Microsoft.Network/networkInterfaces/read"),
        },
        Case {
            name: "bastion show without read",
            grants: &[(READER, RG_APPS, "")],
            action: Cli(&["network", "bastion", "show", "-n", "default", "-g", "default"]),
            expect: Refused("Microsoft.Network/bastionHosts/read"),
        },
        Case {
            name: "audit list without any role",
            grants: &[],
            action: Cli(&["audit", "list"]),
            expect: Refused("Microsoft.Insights/logs/read"),
        },
        // Changes need Contributor or Owner at the scope.
        Case {
            name: "Reader changes bastion settings",
            grants: &[(READER, SUB, "")],
            action: Cli(&[
                "network",
                "bastion",
                "update",
                "-n",
                "default",
                "-g",
                "default",
                "--enable-ip-connect",
                "false",
            ]),
            expect: Refused("Microsoft.Network/bastionHosts/write"),
        },
        Case {
            name: "Reader deletes the bastion",
            grants: &[(READER, SUB, "")],
            action: Cli(&["network", "bastion", "delete", "-n", "default", "-g", "default"]),
            expect: Refused("Microsoft.Network/bastionHosts/delete"),
        },
        Case {
            name: "Reader registers a VM",
            grants: &[(READER, SUB, "")],
            action: Cli(&[
                "vm",
                "register",
                "-n",
                "x1",
                "-g",
                "apps",
                "--os-type",
                "linux",
                "--private-ip-address",
                "10.1.1.1",
            ]),
            expect: Refused("Microsoft.Compute/virtualMachines/write"),
        },
        Case {
            name: "Reader unregisters a VM",
            grants: &[(READER, SUB, "")],
            action: Cli(&["vm", "unregister", "-n", "db1", "-g", "data"]),
            expect: Refused("Microsoft.Compute/virtualMachines/delete"),
        },
        Case {
            name: "Contributor registers in its resource group",
            grants: &[("Contributor", RG_APPS, "")],
            action: Cli(&[
                "vm",
                "register",
                "-n",
                "x2",
                "-g",
                "apps",
                "--os-type",
                "linux",
                "--private-ip-address",
                "10.1.1.2",
            ]),
            expect: Allowed,
        },
        Case {
            name: "Contributor registers in another resource group",
            grants: &[("Contributor", RG_APPS, "")],
            action: Cli(&[
                "vm",
                "register",
                "-n",
                "x3",
                "-g",
                "data",
                "--os-type",
                "linux",
                "--private-ip-address",
                "10.1.1.3",
            ]),
            expect: Refused("at /subscriptions/"),
        },
        Case {
            name: "Contributor assigns a role",
            grants: &[("Contributor", SUB, "")],
            action: Cli(&[
                "role",
                "assignment",
                "create",
                "--assignee",
                "admin",
                "--role",
                "Reader",
                "--scope",
                RG_APPS,
            ]),
            expect: Refused("it needs e.g. Owner"),
        },
        Case {
            name: "Owner of a group assigns within it",
            grants: &[("Owner", RG_APPS, "")],
            action: Cli(&[
                "role",
                "assignment",
                "create",
                "--assignee",
                "admin",
                "--role",
                "Reader",
                "--scope",
                RG_APPS,
            ]),
            expect: Allowed,
        },
        Case {
            name: "Owner of a group assigns at the subscription",
            grants: &[("Owner", RG_APPS, "")],
            action: Cli(&[
                "role",
                "assignment",
                "create",
                "--assignee",
                "admin",
                "--role",
                "Reader",
                "--scope",
                SUB,
            ]),
            expect: Refused("Microsoft.Authorization/roleAssignments/write"),
        },
        Case {
            name: "Reader creates a user",
            grants: &[(READER, SUB, "")],
            action: CliInput(
                &["ad", "user", "create", "--user-principal-name", "eve", "--password-stdin"],
                "a-long-Passw0rd-for-eve",
            ),
            expect: Refused("Microsoft.Authorization/users/write"),
        },
        Case {
            name: "Reader creates a role",
            grants: &[(READER, SUB, "")],
            action: Cli(&[
                "role",
                "definition",
                "create",
                "--role-definition",
                r#"{"name":"Mine","actions":["*"]}"#,
            ]),
            expect: Refused("Microsoft.Authorization/roleDefinitions/write"),
        },
    ]
}

fn run_case(gw: &Gateway, sshd: &Sshd, n: usize, case: &Case) -> Result<()> {
    let user: Session = gw.new_user(&format!("user{n:02}"))?;
    for (role, scope, condition) in case.grants {
        let mut args = vec!["role", "assignment", "create", "--assignee"];
        let upn = format!("user{n:02}");
        args.extend([upn.as_str(), "--role", role, "--scope", scope]);
        let sshd_port = sshd.port.to_string();
        let (nets, ports) = condition.split_once('|').unwrap_or(("", ""));
        let ports = ports.replace("SSHD", &sshd_port);
        if !nets.is_empty() {
            args.extend(["--condition-networks", nets]);
        }
        if !ports.is_empty() {
            args.extend(["--condition-ports", ports.as_str()]);
        }
        gw.ok(&args).with_context(|| format!("assigning {role} at {scope}"))?;
    }
    let refused_before = refused_count(gw)?;
    let port = sshd.port.to_string();
    let outcome: Result<String, String> = match &case.action {
        // A user without roles sees no subscription, so the tunnels name it.
        Action::Resource(id) => tunnel(
            user.tunnel_with(&[
                "-n",
                "default",
                "-g",
                "default",
                "--subscription",
                "default",
                "--target-resource-id",
                id,
                "--resource-port",
                &port,
            ]),
            sshd,
        ),
        Action::Ip(ip, p) => tunnel(
            user.tunnel_with(&[
                "-n",
                "default",
                "-g",
                "default",
                "--subscription",
                "default",
                "--target-ip-address",
                ip,
                "--resource-port",
                &p.unwrap_or(sshd.port).to_string(),
            ]),
            sshd,
        ),
        Action::CliInput(args, input) => {
            use std::io::Write;
            let mut child = user
                .cli()
                .args(*args)
                .stdin(std::process::Stdio::piped())
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()?;
            if let Some(mut stdin) = child.stdin.take() {
                writeln!(stdin, "{input}")?;
            }
            let out = child.wait_with_output()?;
            if out.status.success() {
                Ok(String::from_utf8_lossy(&out.stdout).into_owned())
            } else {
                Err(String::from_utf8_lossy(&out.stderr).into_owned())
            }
        }
        Action::Cli(args) => {
            let out = user.run(args)?;
            if out.status.success() {
                Ok(String::from_utf8_lossy(&out.stdout).into_owned())
            } else {
                Err(String::from_utf8_lossy(&out.stderr).into_owned())
            }
        }
        Action::Lists(args, shown, hidden) => {
            let out = user.ok(args)?;
            ensure!(out.contains(shown) && !out.contains(hidden), "listing {args:?} showed: {out}");
            Ok(out)
        }
    };
    match (&case.expect, outcome) {
        (Expect::Allowed, Ok(_)) => Ok(()),
        (Expect::Allowed, Err(e)) => bail!("should be allowed, was refused: {e}"),
        (Expect::Refused(_), Ok(out)) => bail!("should be refused, was allowed: {out}"),
        (Expect::Refused(reason), Err(message)) => {
            ensure!(message.contains(reason), "the refusal does not name '{reason}': {message}");
            let after = refused_count(gw)?;
            ensure!(after > refused_before, "the refusal left no audit record");
            Ok(())
        }
    }
}

/// Opens the tunnel and runs one ssh command through it; `Err` holds the refusal.
fn tunnel(t: Result<rampart_e2e::Tunnel>, sshd: &Sshd) -> Result<String, String> {
    let t = t.map_err(|e| e.to_string())?;
    sshd.ssh(t.port, "echo reached").map_err(|e| format!("tunnel opened but ssh failed: {e}"))
}

fn refused_count(gw: &Gateway) -> Result<usize> {
    let out = gw.ok(&["audit", "list", "--result", "refused", "--limit", "100000"])?;
    let records: Vec<serde_json::Value> = serde_json::from_str(&out)?;
    Ok(records.len())
}

#[test]
fn denial_matrix() -> Result<()> {
    let gw = Gateway::start(&[])?;
    let sshd = Sshd::start()?;
    let port = sshd.port.to_string();
    gw.allow_loopback()?;
    for (name, group) in [("web1", "apps"), ("db1", "data")] {
        gw.ok(&[
            "vm",
            "register",
            "-n",
            name,
            "-g",
            group,
            "--os-type",
            "linux",
            "--private-ip-address",
            "127.0.0.1",
            "--port-ssh",
            &port,
        ])?;
    }
    gw.ok(&[
        "role", "definition", "create", "--role-definition",
        r#"{"name": "Network Viewer", "description": "reads network resources", "actions": ["Microsoft.Network/*/read"]}"#,
    ])?;
    let cases = cases();
    ensure!(cases.len() >= 40, "the matrix has only {} cases", cases.len());
    let mut failures = vec![];
    for (n, case) in cases.iter().enumerate() {
        if let Err(e) = run_case(&gw, &sshd, n, case) {
            failures.push(format!("case {n} '{}': {e:#}", case.name));
        }
    }
    ensure!(
        failures.is_empty(),
        "{} of {} cases failed:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
    Ok(())
}

#[test]
fn a_deleted_assignment_refuses_the_next_connection_of_an_open_tunnel() -> Result<()> {
    let gw = Gateway::start(&[])?;
    let sshd = Sshd::start()?;
    gw.allow_loopback()?;
    let user = gw.new_user("temp")?;
    let created: serde_json::Value = serde_json::from_str(&gw.ok(&[
        "role",
        "assignment",
        "create",
        "--assignee",
        "temp",
        "--role",
        "Reader",
        "--scope",
        BASTION,
    ])?)?;
    let id = created["id"].as_str().unwrap_or_default().to_string();
    let tunnel = user.tunnel("127.0.0.1", sshd.port)?;
    ensure!(sshd.ssh(tunnel.port, "echo before")?.trim() == "before");
    gw.ok(&["role", "assignment", "delete", "--ids", &id])?;
    ensure!(
        sshd.ssh(tunnel.port, "echo after").is_err(),
        "the tunnel still worked after the role was removed"
    );
    tunnel.said("no Reader role")?;
    let err = user.refused(&[
        "tunnel",
        "-n",
        "default",
        "-g",
        "default",
        "--target-ip-address",
        "127.0.0.1",
        "--resource-port",
        "22",
        "--port",
        "0",
    ])?;
    ensure!(err.contains("on the bastion"), "{err}");
    Ok(())
}
