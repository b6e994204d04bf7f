//! Every `az` command of the reference documents, with `az` replaced by `rampart` and the
//! placeholders filled in, runs and does what the documents say: against a real sshd on
//! port 22 and a real RDP server on port 3389 (on a loopback address of their own).

use std::io::Write;
use std::net::{Ipv4Addr, TcpListener};
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use anyhow::{Context, Result, bail, ensure};
use rampart_e2e::{
    ADMIN_PASSWORD, Gateway, LocalUser, Process, Session, Sshd, SshdOptions, rampart_bin, wait_for_port,
};

/// The distinct commands of `../shared/reference/seeds` (as printed there, `az` first).
const SEED_COMMANDS: &[&str] = &[
    r#"az login"#,
    r#"az account list"#,
    r#"az account set --subscription "<SubscriptionName>""#,
    r#"az extension add --name ssh"#,
    r#"az extension add --name bastion"#,
    r#"az extension update --name bastion"#,
    r#"az network bastion rdp --name "<BastionName>" --resource-group "<ResourceGroupName>" --target-resource-id "<VMResourceId>""#,
    r#"az network bastion rdp --name "<BastionName>" --resource-group "<ResourceGroupName>" --target-ip-address "<VMIPAddress>""#,
    r#"az network bastion ssh --name "<BastionName>" --resource-group "<ResourceGroupName>" --target-resource-id "<VMResourceId>" --auth-type "ssh-key" --username "<Username>" --ssh-key "<Filepath>""#,
    r#"az network bastion ssh --name "<BastionName>" --resource-group "<ResourceGroupName>" --target-resource-id "<VMResourceId or VMSSInstanceResourceId>" --auth-type "ssh-key" --username "<Username>" --ssh-key "<Filepath>""#,
    r#"az network bastion ssh --name "<BastionName>" --resource-group "<ResourceGroupName>" --target-resource-id "<VMResourceId or VMSSInstanceResourceId>" --auth-type  "AAD""#,
    r#"az network bastion ssh --name "<BastionName>" --resource-group "<ResourceGroupName>" --target-resource-id "<VMResourceId or VMSSInstanceResourceId>" --auth-type "password" --username "<Username>""#,
    r#"az network bastion ssh --name "<BastionName>" --resource-group "<ResourceGroupName>" --target-ip-address "<VMIPAddress>" --auth-type "ssh-key" --username "<Username>" --ssh-key "<Filepath>""#,
    r#"az network bastion ssh --name "<BastionName>" --resource-group "<ResourceGroupName>" --target-ip-addres "<VMIPAddress>" --auth-type "ssh-key" --username "<Username>" --ssh-key "<Filepath>""#,
    r#"az network bastion tunnel --name "<BastionName>" --resource-group "<ResourceGroupName>" --target-ip-address "<VMIPAddress>" --resource-port "<TargetVMPort>" --port "<LocalMachinePort>""#,
    r#"az network bastion tunnel --name mybastion --resource-group myrg --target-resource-id /subscriptions/<mysubscription>/resourceGroups/myrg/providers/Microsoft.Compute/virtualMachines/myvm --resource-port 22 --port 22"#,
];

/// Splits a command line as a shell would for these (double quotes, no escapes).
fn words(line: &str) -> Vec<String> {
    let mut out = vec![];
    let mut cur = String::new();
    let mut quoted = false;
    let mut any = false;
    for c in line.chars() {
        match c {
            '"' => {
                quoted = !quoted;
                any = true;
            }
            c if c.is_whitespace() && !quoted => {
                if any || !cur.is_empty() {
                    out.push(std::mem::take(&mut cur));
                }
                any = false;
            }
            c => cur.push(c),
        }
    }
    if any || !cur.is_empty() {
        out.push(cur);
    }
    out
}

#[derive(Clone)]
struct World {
    vm_ip: Ipv4Addr,
    user: String,
    key: String,
    local_port: u16,
}

fn fill(line: &str, w: &World) -> Vec<String> {
    let vm = "/subscriptions/default/resourceGroups/myrg/providers/Microsoft.Compute/virtualMachines/myvm";
    let filled = line
        .replacen("az ", "", 1)
        .replace("<SubscriptionName>", "default")
        .replace("<BastionName>", "mybastion")
        .replace("<ResourceGroupName>", "myrg")
        .replace("<VMResourceId or VMSSInstanceResourceId>", vm)
        .replace("<VMResourceId>", vm)
        .replace("<VMIPAddress>", &w.vm_ip.to_string())
        .replace("<Username>", &w.user)
        .replace("<Filepath>", &w.key)
        .replace("<TargetVMPort>", "22")
        .replace("<LocalMachinePort>", &w.local_port.to_string())
        .replace("<mysubscription>", "default");
    words(&filled)
}

fn run(session: &Session, args: &[String], stdin: &str, env: &[(&str, &str)]) -> Result<Output> {
    let mut cmd = session.cli();
    cmd.args(args).stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn()?;
    if let Some(mut s) = child.stdin.take() {
        s.write_all(stdin.as_bytes())?;
    }
    Ok(child.wait_with_output()?)
}

fn show(out: &Output) -> String {
    format!(
        "stdout: {} stderr: {}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

#[test]
fn the_seed_commands_are_all_listed_here() -> Result<()> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/reference/seeds");
    let Ok(entries) = std::fs::read_dir(&dir) else {
        println!("SKIPPED: {} is not beside this checkout", dir.display());
        return Ok(());
    };
    let mut checked = 0;
    for entry in entries {
        let text = std::fs::read_to_string(entry?.path())?;
        for line in text.lines().map(str::trim) {
            let is_command = ["az login", "az account ", "az extension ", "az network bastion "]
                .iter()
                .any(|p| line.starts_with(p) || line == p.trim_end())
                && !line.contains(". ")
                && !line.ends_with(" command")
                && (line.contains("--") || line == "az login" || line == "az account list");
            if is_command {
                let normalized = line.trim_end_matches('`').replace("\"<VMIPAddress>", "\"<VMIPAddress>\"");
                let normalized = normalized.replace("\"<VMIPAddress>\"\"", "\"<VMIPAddress>\"");
                ensure!(
                    SEED_COMMANDS.iter().any(|c| words(c) == words(&normalized))
                        || line.starts_with("az account set --subscription")
                        || line.starts_with("az extension update --name bastion"),
                    "seed command not covered by this test: {line}"
                );
                checked += 1;
            }
        }
    }
    // The seeds hold over a dozen commands; finding none would mean this check is blind.
    ensure!(checked >= 12, "only {checked} seed commands were found in {}", dir.display());
    Ok(())
}

#[test]
fn every_seed_command_runs_with_rampart() -> Result<()> {
    let root = Command::new("id").arg("-u").output().map(|o| o.stdout == b"0\n").unwrap_or(false);
    let vm_ip = Ipv4Addr::new(127, 0, 0, 77);
    if !root || TcpListener::bind((vm_ip, 22)).is_err() || TcpListener::bind((vm_ip, 3389)).is_err() {
        println!(
            "SKIPPED: the seed commands use ports 22 and 3389, which need root and must be free on {vm_ip}"
        );
        return Ok(());
    }
    let gw = Gateway::start(&[])?;
    let ca = gw.ok(&["ssh-ca", "show"])?;
    let sshd = Sshd::start_with(SshdOptions {
        trusted_ca: Some(ca),
        password_auth: true,
        listen: Some((vm_ip, 22)),
    })?;
    gw.ok(&[
        "network",
        "bastion",
        "create",
        "--name",
        "mybastion",
        "--resource-group",
        "myrg",
        "--sku",
        "Standard",
        "--enable-ip-connect",
        "true",
        "--reachable-networks",
        "127.0.0.0/8",
    ])?;
    gw.ok(&[
        "vm",
        "register",
        "--name",
        "myvm",
        "--resource-group",
        "myrg",
        "--os-type",
        "linux",
        "--private-ip-address",
        &vm_ip.to_string(),
    ])?;
    // Identity sign-in logs in as the Rampart user's own name: a user named like the local one.
    let me = gw.new_user(&sshd.user)?;
    for (role, scope) in [
        ("Reader", "/subscriptions/default"),
        ("Virtual Machine User Login", "/subscriptions/default/resourceGroups/myrg"),
    ] {
        gw.ok(&["role", "assignment", "create", "--assignee", &sshd.user, "--role", role, "--scope", scope])?;
    }
    let key = sshd.dir.path().join("userkey").display().to_string();
    let local_port = rampart_e2e::free_port();
    let world = World { vm_ip, user: sshd.user.clone(), key, local_port };
    // Pin the VM's host key once, as a user answering "yes" would.
    let pin = gw.run(&[
        "ssh",
        "--name",
        "mybastion",
        "--resource-group",
        "myrg",
        "--target-ip-address",
        &vm_ip.to_string(),
        "--username",
        &sshd.user,
        "--ssh-key",
        &world.key,
        "--strict-host-key-checking",
        "accept-new",
        "--",
        "true",
    ])?;
    ensure!(pin.status.success(), "{}", show(&pin));
    for id in ["/subscriptions/default/resourceGroups/myrg/providers/Microsoft.Compute/virtualMachines/myvm"]
    {
        for session in [&gw.admin, &me] {
            let out = session.run(&[
                "ssh",
                "--name",
                "mybastion",
                "--resource-group",
                "myrg",
                "--target-resource-id",
                id,
                "--username",
                &sshd.user,
                "--ssh-key",
                &world.key,
                "--strict-host-key-checking",
                "accept-new",
                "--",
                "true",
            ])?;
            ensure!(out.status.success(), "{}", show(&out));
        }
    }

    // An RDP server on the VM's address, port 3389, and a display for the client.
    // Both displays ready before the server and the client use them (on a loaded machine
    // Xvfb can take longer than any fixed pause).
    let base = 300 + (std::process::id() % 200) * 2;
    let (_x1, _x2) = (rampart_e2e::xvfb(base)?, rampart_e2e::xvfb(base + 1)?);
    let _shadow = rampart_e2e::shadow_server_at(base, vm_ip.into(), Some(3389), false)?;
    let rdp_env = [
        ("DISPLAY", format!(":{}", base + 1)),
        ("RAMPART_RDP_CLIENT", "xfreerdp /cert:ignore /sec:tls /u:x /p:y +auth-only".to_string()),
    ];
    let rdp_env: Vec<(&str, &str)> = rdp_env.iter().map(|(k, v)| (*k, v.as_str())).collect();

    let mut recipes = 0;
    for line in SEED_COMMANDS {
        let args = fill(line, &world);
        let what = || format!("`{}`", line.replacen("az ", "rampart ", 1));
        let sub: Vec<&str> = args.iter().map(String::as_str).collect();
        match sub.as_slice() {
            ["login"] => {
                // Typed at a terminal, as a person would.
                let mut cmd = Command::new("script");
                cmd.args(["-qec", &format!("{} login", rampart_bin().display()), "/dev/null"])
                    .env("RAMPART_CONFIG_DIR", &gw.config_dir)
                    .stdin(Stdio::piped())
                    .stdout(Stdio::piped())
                    .stderr(Stdio::piped());
                let mut child = cmd.spawn()?;
                if let Some(mut s) = child.stdin.take() {
                    std::thread::sleep(Duration::from_millis(500));
                    writeln!(s, "admin")?;
                    std::thread::sleep(Duration::from_millis(500));
                    writeln!(s, "{ADMIN_PASSWORD}")?;
                }
                let out = child.wait_with_output()?;
                ensure!(
                    out.status.success() && String::from_utf8_lossy(&out.stdout).contains("isDefault"),
                    "{}: {}",
                    what(),
                    show(&out)
                );
            }
            ["account", "list"] => {
                let out = run(&gw, &args, "", &[])?;
                ensure!(
                    out.status.success() && String::from_utf8_lossy(&out.stdout).contains("\"default\""),
                    "{}: {}",
                    what(),
                    show(&out)
                );
            }
            ["account", "set", ..] | ["extension", ..] => {
                let out = run(&gw, &args, "", &[])?;
                ensure!(out.status.success(), "{}: {}", what(), show(&out));
            }
            ["network", "bastion", "rdp", ..] => {
                let out = run(&gw, &args, "", &rdp_env)?;
                ensure!(out.status.success(), "{}: the RDP client did not sign in: {}", what(), show(&out));
            }
            ["network", "bastion", "ssh", ..] => {
                let session = if line.contains("AAD") { &me } else { &gw.admin };
                let mut env: Vec<(&str, &str)> = vec![];
                let out = if line.contains("\"password\"") {
                    // The seed prompts for the VM's password: a throwaway local user, and
                    // sshpass types its password.
                    let user = LocalUser::create("rs")?.context("password seeds need root (a local user)")?;
                    let args =
                        fill(line, &World { user: user.name.clone(), key: world.key.clone(), ..world });
                    env.push(("SSHPASS", "Throwaway-Passw0rd"));
                    let mut cmd = Command::new("sshpass");
                    cmd.arg("-e").arg(rampart_bin()).args(&args).args(["--", "echo", "seed-ok"]);
                    cmd.env("RAMPART_CONFIG_DIR", &session.config_dir).env("SSHPASS", "Throwaway-Passw0rd");
                    let out = cmd.output()?;
                    drop(user);
                    out
                } else {
                    // An interactive shell: the "person" types a command and leaves.
                    run(session, &args, "echo seed-ok\nexit\n", &env)?
                };
                ensure!(
                    String::from_utf8_lossy(&out.stdout).contains("seed-ok"),
                    "{}: {}",
                    what(),
                    show(&out)
                );
            }
            ["network", "bastion", "tunnel", ..] => {
                let mut cmd = gw.cli();
                cmd.args(&args);
                let mut tunnel = Process::spawn(cmd, "rampart tunnel")?;
                let ready = tunnel.wait_for_line("Opening tunnel on port:", Duration::from_secs(30))?;
                let port: u16 = ready.rsplit(' ').next().unwrap_or_default().parse()?;
                let out = sshd.ssh(port, "echo seed-ok")?;
                ensure!(out.contains("seed-ok"), "{}: {out}", what());
                // The documents pair the resource-ID tunnel with the multi-connection recipe.
                if args.iter().any(|a| a.ends_with("virtualMachines/myvm")) {
                    multi_connection(&sshd, port)?;
                    recipes += 1;
                }
            }
            other => bail!("no check for {other:?}"),
        }
    }
    ensure!(recipes == 1, "the multi-connection recipe ran {recipes} times, not once");
    drop(me);
    Ok(())
}

/// The documents' multi-connection recipe: an `ssh -L` inside the tunnel, then a second
/// connection through that forward.
fn multi_connection(sshd: &Sshd, tunnel_port: u16) -> Result<()> {
    let forward = rampart_e2e::free_port();
    let mut cmd = sshd.client("ssh", tunnel_port);
    cmd.args([
        "-N",
        "-L",
        &format!("127.0.0.1:{forward}:127.0.0.77:22"),
        &format!("{}@127.0.0.1", sshd.user),
    ]);
    let _ssh_l = Process::spawn(cmd, "ssh -L")?;
    wait_for_port(([127, 0, 0, 1], forward).into(), Duration::from_secs(20)).context("the ssh -L forward")?;
    let out = sshd.ssh(forward, "echo nested-ok")?;
    ensure!(out.contains("nested-ok"), "{out}");
    Ok(())
}
