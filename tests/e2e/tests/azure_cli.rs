//! The real Azure CLI against Rampart: `az` 2.91 from PyPI with its `bastion` and `ssh`
//! extensions, the gateway registered as a custom cloud. A service principal made by `rampart
//! ad sp create-for-rbac` signs in with `az login`, reads and changes bastions as ARM
//! resources, lists VMs, and reaches a real sshd through `az network bastion tunnel|ssh`, each
//! connection a session the operator sees and can end.

use std::io::Write;
use std::net::Ipv4Addr;
use std::process::{Command, Stdio};
use std::time::Duration;

use anyhow::{Context, Result, ensure};
use rampart_e2e::az::Az;
use rampart_e2e::{Gateway, LocalUser, Process, Sshd, SshdOptions, wait_until};
use sha2::{Digest, Sha256};

const BASTION: &str =
    "/subscriptions/default/resourceGroups/default/providers/Microsoft.Network/bastionHosts/default";

/// `az`, or why the test is skipped.
fn az_for(gw: &Gateway) -> Result<Option<Az>> {
    match Az::new(gw)? {
        Ok(az) => Ok(Some(az)),
        Err(why) => {
            println!("SKIPPED: the real Azure CLI is not installed here: {why}");
            Ok(None)
        }
    }
}

fn json(text: &str) -> Result<serde_json::Value> {
    serde_json::from_str(text).with_context(|| format!("not JSON: {text}"))
}

fn service_principal(gw: &Gateway, name: &str, role: &str, scope: &str) -> Result<serde_json::Value> {
    json(&gw.ok(&["ad", "sp", "create-for-rbac", "--name", name, "--role", role, "--scopes", scope])?)
}

#[test]
fn az_signs_in_reads_and_updates_bastions_and_lists_vms() -> Result<()> {
    let gw = Gateway::start(&[])?;
    let Some(az) = az_for(&gw)? else { return Ok(()) };
    gw.allow_loopback()?;
    gw.ok(&[
        "vm",
        "register",
        "-n",
        "web1",
        "-g",
        "apps",
        "--os-type",
        "linux",
        "--private-ip-address",
        "127.0.0.9",
    ])?;
    let vm_id = json(&gw.ok(&["vm", "show", "-n", "web1", "-g", "apps"])?)?["id"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let subscription = gw.subscription_scope()?;
    let reader = service_principal(&gw, "az-reader", "Reader", &subscription)?;
    let app = reader["appId"].as_str().unwrap_or_default();

    // `rampart az-setup` prints the commands used here, and writes the pinned self-signed
    // certificate where az can trust it.
    let setup = gw.ok(&["az-setup"])?;
    ensure!(
        setup.contains(&format!("az cloud register -n Rampart --endpoint-resource-manager {}/\n", gw.url())),
        "{setup}"
    );
    ensure!(setup.contains("az config set core.instance_discovery=false"), "{setup}");
    let bundle = setup
        .lines()
        .find_map(|l| l.strip_prefix("export REQUESTS_CA_BUNDLE="))
        .with_context(|| format!("no CA bundle in {setup}"))?;
    let body = |pem: &str| pem.lines().filter(|l| !l.starts_with("-----")).collect::<String>();
    let served = std::fs::read_to_string(gw.data_dir.join("tls/cert.pem"))?;
    ensure!(body(&std::fs::read_to_string(bundle)?) == body(&served), "az-setup wrote another certificate");

    // Signed in, az lists exactly the subscription where the principal holds a role.
    let accounts = json(&az.login_service_principal(&reader)?)?;
    let accounts = accounts.as_array().context("az login prints accounts")?;
    ensure!(accounts.len() == 1, "{accounts:?}");
    ensure!(
        format!("/subscriptions/{}", accounts[0]["id"].as_str().unwrap_or_default()) == subscription,
        "{accounts:?}"
    );
    ensure!(
        accounts[0]["user"]["name"] == app && accounts[0]["user"]["type"] == "servicePrincipal",
        "{accounts:?}"
    );
    ensure!(json(&az.ok(&["account", "list"])?)?.as_array().map(Vec::len) == Some(1));

    // A principal with no role anywhere sees no subscription; a wrong secret is refused, named.
    let nobody = service_principal(&gw, "az-nobody", "Reader", BASTION)?;
    let nobody_app = nobody["appId"].as_str().unwrap_or_default();
    gw.ok(&[
        "role",
        "assignment",
        "delete",
        "--assignee",
        nobody_app,
        "--role",
        "Reader",
        "--scope",
        BASTION,
    ])?;
    let second = az_for(&gw)?.context("az")?;
    let none = second.refused(&[
        "login",
        "--service-principal",
        "-u",
        nobody_app,
        "-p",
        nobody["password"].as_str().unwrap_or_default(),
        "--tenant",
        nobody["tenant"].as_str().unwrap_or_default(),
    ])?;
    ensure!(none.contains("No subscriptions found"), "{none}");
    let wrong = second.refused(&[
        "login",
        "--service-principal",
        "-u",
        app,
        "-p",
        "not-the-secret",
        "--tenant",
        reader["tenant"].as_str().unwrap_or_default(),
    ])?;
    ensure!(wrong.contains("wrong user name or password"), "{wrong}");

    // Bastions as ARM resources: show, list.
    let shown = json(&az.ok(&["network", "bastion", "show", "-n", "default", "-g", "default"])?)?;
    ensure!(shown["sku"]["name"] == "Standard" && shown["enableTunneling"] == true, "{shown}");
    ensure!(shown["dnsName"] == gw.addr.to_string() && shown["enableIpConnect"] == true, "{shown}");
    let listed = json(&az.ok(&["network", "bastion", "list"])?)?;
    ensure!(listed.as_array().is_some_and(|l| l.len() == 1 && l[0]["name"] == "default"), "{listed}");

    // Update: refused without the right, az printing Rampart's reason; allowed with it.
    gw.update_bastion("default", &["--enable-ip-connect", "false"])?;
    let update =
        ["network", "bastion", "update", "-n", "default", "-g", "default", "--enable-ip-connect", "true"];
    let refused = az.refused(&update)?;
    ensure!(refused.contains("MissingPermission") && refused.contains("bastionHosts/write"), "{refused}");
    gw.ok(&["role", "assignment", "create", "--assignee", app, "--role", "Contributor", "--scope", BASTION])?;
    let updated = json(&az.ok(&update)?)?;
    ensure!(updated["enableIpConnect"] == true, "{updated}");
    let now = json(&gw.ok(&["network", "bastion", "show", "-n", "default", "-g", "default"])?)?;
    ensure!(now["enableIpConnect"] == true, "{now}");
    let create = az.refused(&[
        "network",
        "bastion",
        "create",
        "-n",
        "other",
        "-g",
        "default",
        "--public-ip-address",
        "x",
        "--vnet-name",
        "v",
    ])?;
    ensure!(create.contains("rampart network bastion create"), "{create}");
    // Delete: refused without the right, done with it.
    gw.ok(&["network", "bastion", "create", "-n", "spare", "-g", "default", "--sku", "Standard"])?;
    let delete = ["network", "bastion", "delete", "-n", "spare", "-g", "default", "--yes"];
    let refused = az.refused(&delete)?;
    ensure!(refused.contains("MissingPermission") && refused.contains("bastionHosts/delete"), "{refused}");
    let spare = format!("{}/spare", BASTION.rsplit_once('/').map_or(BASTION, |(group, _)| group));
    gw.ok(&["role", "assignment", "create", "--assignee", app, "--role", "Contributor", "--scope", &spare])?;
    az.ok(&delete)?;
    let left = json(&az.ok(&["network", "bastion", "list"])?)?;
    ensure!(left.as_array().is_some_and(|l| l.len() == 1), "{left}");

    // The inventory's VM IDs, as the reference documents have users copy them.
    let ids = az.ok(&["vm", "list", "--query", "[].id", "-o", "tsv"])?;
    ensure!(ids.trim() == vm_id, "az vm list gave {ids:?}, the inventory has {vm_id}");

    // What `az network bastion rdp` fetches on Windows: an .rdp file through the RD Gateway.
    let token = az.ok(&["account", "get-access-token", "--query", "accessToken", "-o", "tsv"])?;
    let rdp_file = |bearer: &str| -> Result<String> {
        let url =
            format!("{}/api/rdpfile?resourceId={vm_id}&format=rdp&rdpport=3389&enablerdsaad=False", gw.url());
        let out = Command::new("curl")
            .args(["-sS", "--cacert"])
            .arg(gw.data_dir.join("tls/cert.pem"))
            .args(["-H", &format!("Authorization: Bearer {bearer}"), &url])
            .output()?;
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    };
    let file = rdp_file(token.trim())?;
    ensure!(file.contains(&format!("gatewayhostname:s:{}", gw.addr)), "{file}");
    ensure!(file.contains("gatewayaccesstoken:s:") && file.contains("127.0.0.9:3389"), "{file}");
    let refused = rdp_file("not-a-token")?;
    ensure!(json(&refused)?["message"].as_str().is_some_and(|m| !m.is_empty()), "{refused}");

    let audit = gw.audit()?;
    ensure!(
        rampart_e2e::audit_has(&audit, "bastion-change", "refused", Some("MissingPermission")),
        "{audit:?}"
    );
    Ok(())
}

/// An sshd at port 22 of an address of its own (az allows only ports 22 and 3389 by IP).
fn sshd_at_22(password_auth: bool) -> Result<(Sshd, Ipv4Addr)> {
    let pid = std::process::id();
    let ip = Ipv4Addr::new(127, 0, 40 + (pid % 100) as u8, 2 + ((pid / 100) % 200) as u8);
    let sshd = Sshd::start_with(SshdOptions { password_auth, listen: Some((ip, 22)), ..Default::default() })?;
    Ok((sshd, ip))
}

#[test]
fn az_tunnel_and_ssh_reach_a_real_sshd_as_sessions() -> Result<()> {
    if !rampart_e2e::is_root() {
        println!("SKIPPED: an sshd at port 22 (az's only SSH port by IP) needs root");
        return Ok(());
    }
    let gw = Gateway::start(&[])?;
    let Some(az) = az_for(&gw)? else { return Ok(()) };
    let (sshd, ip) = sshd_at_22(true)?;
    let ip_text = ip.to_string();
    gw.allow_loopback()?;
    gw.ok(&[
        "vm",
        "register",
        "-n",
        "web1",
        "-g",
        "apps",
        "--os-type",
        "linux",
        "--private-ip-address",
        &ip_text,
        "--port-ssh",
        "22",
    ])?;
    let vm_id = json(&gw.ok(&["vm", "show", "-n", "web1", "-g", "apps"])?)?["id"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let ops = service_principal(&gw, "az-ops", "Reader", &gw.subscription_scope()?)?;
    let app = ops["appId"].as_str().unwrap_or_default().to_string();
    az.login_service_principal(&ops)?;
    let key = sshd.dir.path().join("userkey");
    let key = key.to_str().unwrap_or_default();
    let on = ["-n", "default", "-g", "default"];

    // `az network bastion ssh` by resource ID with a key, by IP address with a password.
    let out = az.ok(&[
        &["network", "bastion", "ssh"][..],
        &on,
        &[
            "--target-resource-id",
            &vm_id,
            "--auth-type",
            "ssh-key",
            "--username",
            &sshd.user,
            "--ssh-key",
            key,
            "--",
            "echo",
            "through-az",
        ],
    ]
    .concat())?;
    ensure!(out.trim() == "through-az", "{out}");
    if let Some(local) = LocalUser::create("az")? {
        let out = Command::new("sshpass")
            .arg("-e")
            .arg(az.command().get_program())
            .envs(az.command().get_envs().filter_map(|(k, v)| Some((k.to_owned(), v?.to_owned()))))
            .env("SSHPASS", &local.password)
            .args(
                [
                    &["network", "bastion", "ssh"][..],
                    &on,
                    &[
                        "--target-ip-address",
                        &ip_text,
                        "--auth-type",
                        "password",
                        "--username",
                        &local.name,
                        "--",
                        "whoami",
                    ],
                ]
                .concat(),
            )
            .stdin(Stdio::null())
            .output()?;
        ensure!(String::from_utf8_lossy(&out.stdout).trim() == local.name, "{out:?}");
    }

    // `az network bastion tunnel` by IP: scp moves a file intact while another connection
    // of the same tunnel is open; both are sessions of the principal.
    let port = rampart_e2e::free_port();
    let mut tunnel = az.command();
    tunnel.args(
        [
            &["network", "bastion", "tunnel", "--verbose"][..],
            &on,
            &["--target-ip-address", &ip_text, "--resource-port", "22", "--port", &port.to_string()],
        ]
        .concat(),
    );
    let az_log = tempfile::NamedTempFile::new()?;
    tunnel.stderr(az_log.reopen()?);
    let mut tunnel = Process::spawn(tunnel, "az network bastion tunnel")?;
    rampart_e2e::wait_for_port(([127, 0, 0, 1], port).into(), Duration::from_secs(30))?;
    // az closes its side of a connection the gateway ended only when the client next sends
    // (its thread reading the client is blocked in recv): ssh's keepalives make it send.
    let mut held = sshd
        .client("ssh", port)
        .args(["-o", "ServerAliveInterval=1"])
        .arg(format!("{}@127.0.0.1", sshd.user))
        .arg("sleep 60")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()?;
    let dir = tempfile::tempdir()?;
    let (sent, received) = (dir.path().join("sent.bin"), dir.path().join("received.bin"));
    let mut data = vec![0u8; 4 << 20];
    rand::Rng::fill(&mut rand::rng(), &mut data[..]);
    std::fs::File::create(&sent)?.write_all(&data)?;
    let remote = format!("{}@127.0.0.1:{}", sshd.user, received.display());
    let scp = sshd.client("scp", port).arg(&sent).arg(&remote).output()?;
    ensure!(
        scp.status.success(),
        "scp through az's tunnel: {}; az's log: {}",
        String::from_utf8_lossy(&scp.stderr),
        std::fs::read_to_string(az_log.path())?
    );
    ensure!(
        Sha256::digest(std::fs::read(&received)?) == Sha256::digest(&data),
        "the file changed on its way"
    );

    // The operator sees the held connection as the principal's session and ends it.
    let live = wait_until(Duration::from_secs(10), || {
        let sessions = gw.sessions()?;
        Ok(sessions
            .into_iter()
            .find(|s| s["userName"] == app.as_str() && s["targetIpAddress"] == ip_text.as_str()))
    })
    .with_context(|| {
        format!("no live session of {app}: {:?}, held ssh {:?}", gw.sessions(), held.try_wait())
    })?;
    let id = live["sessionId"].as_str().context("session id")?;
    gw.ok(&["network", "bastion", "session", "delete", "-n", "default", "-g", "default", "--ids", id])?;
    let ended = wait_until(Duration::from_secs(10), || Ok(held.try_wait()?))?;
    ensure!(!ended.success(), "the held ssh ended cleanly after its session was deleted");
    tunnel.terminate()?;

    // A principal who may read the bastion but not the VM is refused at /api/tokens, the
    // missing role named in az's log, and the refusal is audited.
    let outsider = service_principal(&gw, "az-outsider", "Reader", BASTION)?;
    let other = az_for(&gw)?.context("az")?;
    other.login_service_principal(&outsider)?;
    let port = rampart_e2e::free_port();
    let mut refused = other.command();
    refused.args(
        [
            &["network", "bastion", "tunnel", "--verbose"][..],
            &on,
            &["--target-resource-id", &vm_id, "--resource-port", "22", "--port", &port.to_string()],
        ]
        .concat(),
    );
    let refused = refused.stdout(Stdio::null()).stderr(Stdio::piped()).spawn()?;
    rampart_e2e::wait_for_port(([127, 0, 0, 1], port).into(), Duration::from_secs(30))?;
    let probe = sshd.client("ssh", port).arg(format!("{}@127.0.0.1", sshd.user)).arg("true").output()?;
    ensure!(!probe.status.success(), "the outsider reached the VM");
    let _ = Command::new("kill").arg(refused.id().to_string()).status();
    let log = String::from_utf8_lossy(&rampart_e2e::output_within(refused, Duration::from_secs(20))?.stderr)
        .into_owned();
    ensure!(log.contains("Reader") && log.contains(&vm_id), "az's log does not name the missing role: {log}");
    let audit = gw.audit()?;
    ensure!(rampart_e2e::audit_has(&audit, "tunnel-request", "refused", None), "{audit:?}");
    Ok(())
}

#[test]
fn az_device_code_sign_in_and_aad_ssh_with_a_gateway_certificate() -> Result<()> {
    let gw = Gateway::start(&[])?;
    // `AzureCloud` pointed at the gateway: `--auth-type AAD` works only so.
    let az = match Az::as_azure_cloud(&gw)? {
        Ok(az) => az,
        Err(why) => {
            println!("SKIPPED: the real Azure CLI is not installed here: {why}");
            return Ok(());
        }
    };
    // The certificate's login is the user name before '@': a local account of that name.
    let local = LocalUser::create("az")?;
    let upn = match &local {
        Some(l) => format!("{}@example.com", l.name),
        None => "ada@example.com".to_string(),
    };
    gw.reader(&upn)?;
    gw.allow_loopback()?;

    // az prints where to go and the code, then polls until the code is approved.
    let mut login = az
        .command()
        .args(["login", "--use-device-code"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()?;
    let stderr = login.stderr.take().context("az's stderr")?;
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufRead::lines(std::io::BufReader::new(stderr)).map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let message = rx.recv_timeout(Duration::from_secs(60)).context("az printed no device code message")?;
    let code = message
        .split_whitespace()
        .find(|w| w.len() == 11 && w.as_bytes()[5] == b'-')
        .with_context(|| format!("no code in {message:?}"))?
        .to_string();
    ensure!(message.contains(&format!("{}/portal/device", gw.url())), "{message}");

    let out = rampart_e2e::artifacts("az-device-code")?;
    let env = [
        ("RAMPART_URL", gw.url()),
        ("ARTIFACTS", out.display().to_string()),
        ("USER_CODE", code),
        ("USER_NAME", upn.clone()),
        ("USER_PASSWORD", format!("{upn}-Passw0rd-long")),
    ];
    let script = rampart_e2e::spawn_browser_script("device-code.mjs", &env)?;
    let steps = rampart_e2e::finish_browser_script(script, Duration::from_secs(120))?;
    ensure!(steps.contains("ok - the code az showed is approved"), "{steps}");

    let out = rampart_e2e::output_within(login, Duration::from_secs(60))?;
    ensure!(out.status.success(), "az login: {}", String::from_utf8_lossy(&out.stdout));
    let account = json(&az.ok(&["account", "show"])?)?;
    ensure!(account["user"]["name"] == upn.as_str() && account["user"]["type"] == "user", "{account}");
    // The user's token reads what the user may read.
    let shown = json(&az.ok(&["network", "bastion", "show", "-n", "default", "-g", "default"])?)?;
    ensure!(shown["name"] == "default", "{shown}");
    let audit = gw.audit()?;
    ensure!(
        audit.iter().any(|r| r["reason"].as_str().is_some_and(|t| t.contains("device code"))),
        "{audit:?}"
    );

    let Some(local) = local else {
        println!("SKIPPED (AAD part): a local account for the certificate's login needs root");
        return Ok(());
    };
    // Without a login role there is no certificate, and az says why.
    let (sshd, ip) = sshd_with_ca(&gw)?;
    let ip_text = ip.to_string();
    let aad =
        ["network", "bastion", "ssh", "-n", "default", "-g", "default", "--target-ip-address", &ip_text];
    let aad = [&aad[..], &["--auth-type", "AAD", "--", "whoami"]].concat();
    // az prints the refusal, then falls back to a browser sign-in (none here): stopped there.
    let mut refused = az.command().args(&aad).stdout(Stdio::null()).stderr(Stdio::piped()).spawn()?;
    let stderr = refused.stderr.take().context("az's stderr")?;
    let seen = std::io::BufRead::lines(std::io::BufReader::new(stderr))
        .map_while(Result::ok)
        .find(|line| line.contains("Virtual Machine User Login") || line.contains("Interactively"));
    let _ = refused.kill();
    let _ = refused.wait();
    ensure!(seen.as_deref().is_some_and(|l| l.contains("Virtual Machine User Login")), "az printed {seen:?}");
    let scope = gw.subscription_scope()?;
    gw.ok(&[
        "role",
        "assignment",
        "create",
        "--assignee",
        &upn,
        "--role",
        "Virtual Machine User Login",
        "--scope",
        &scope,
    ])?;
    let out = az.ok(&aad)?;
    ensure!(out.trim() == local.name, "az ssh --auth-type AAD logged in as {out:?}");
    let log = std::fs::read_to_string(sshd.dir.path().join("sshd.log"))?;
    ensure!(log.contains("rampart:") && log.contains(":az"), "sshd saw no gateway certificate: {log}");
    Ok(())
}

/// An sshd at port 22 of its own address trusting the gateway's SSH CA.
fn sshd_with_ca(gw: &Gateway) -> Result<(Sshd, Ipv4Addr)> {
    let ca = gw.ok(&["ssh-ca", "show"])?;
    let pid = std::process::id();
    let ip = Ipv4Addr::new(127, 0, 140 + (pid % 100) as u8, 2 + ((pid / 100) % 200) as u8);
    let options = SshdOptions { trusted_ca: Some(ca), listen: Some((ip, 22)), ..Default::default() };
    Ok((Sshd::start_with(options)?, ip))
}

#[test]
fn plain_az_login_signs_in_through_the_portal_in_a_browser() -> Result<()> {
    let gw = Gateway::start(&[])?;
    let Some(az) = az_for(&gw)? else { return Ok(()) };
    let upn = "grace@example.com";
    gw.reader(upn)?;
    // az starts "the browser" through $BROWSER with the authorize URL and waits for the code
    // on its listener; the browser here is Chromium driven by az-login.mjs, started in the
    // background as a desktop's browser would be.
    let out = rampart_e2e::artifacts("az-login")?;
    let log = out.join("browser.log");
    let script = rampart_e2e::repo_root().join("web/tests/az-login.mjs");
    let browser = format!("sh -c 'node {} \"$0\" >{} 2>&1 &' %s", script.display(), log.display());
    let login = az
        .command()
        .arg("login")
        .env("BROWSER", browser)
        .env("ARTIFACTS", &out)
        .env("USER_NAME", upn)
        .env("USER_PASSWORD", format!("{upn}-Passw0rd-long"))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()?;
    let done = rampart_e2e::output_within(login, Duration::from_secs(90))?;
    let steps = std::fs::read_to_string(&log).unwrap_or_default();
    ensure!(
        done.status.success(),
        "az login: {}; the browser: {steps}",
        String::from_utf8_lossy(&done.stderr)
    );
    ensure!(steps.contains("ok - az login: approved"), "{steps}");
    let account = json(&az.ok(&["account", "show"])?)?;
    ensure!(account["user"]["name"] == upn && account["user"]["type"] == "user", "{account}");
    let audit = gw.audit()?;
    ensure!(
        audit.iter().any(|r| r["reason"].as_str().is_some_and(|t| t.contains("browser sign-in"))),
        "{audit:?}"
    );
    Ok(())
}
