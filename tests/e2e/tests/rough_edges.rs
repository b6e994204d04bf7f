//! The rough edges a new user found (issue 26, part 4), each with the test that failed before
//! its fix: a user with no roles is told which role is missing; `role assignment delete` takes
//! az's `--assignee --role --scope`; a CA certificate as the server's is refused at start with
//! what to do; a first start that fails after making the admin shows the password again at the
//! next start; and every HTTPS answer carries HSTS.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use rampart_e2e::{Gateway, rampart_bin};

const APPS: &str = "/subscriptions/default/resourceGroups/apps";

#[test]
fn a_user_with_no_roles_is_told_which_role_is_missing() -> Result<()> {
    let gw = Gateway::start(&[])?;
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
        "10.0.0.4",
    ])?;
    let nobody = gw.new_user("no-roles")?;
    let vm = format!("{APPS}/providers/Microsoft.Compute/virtualMachines/web1");
    let refused = nobody.refused(&[
        "network",
        "bastion",
        "tunnel",
        "--name",
        "default",
        "--resource-group",
        "default",
        "--target-resource-id",
        &vm,
        "--resource-port",
        "22",
        "--port",
        "0",
    ])?;
    ensure!(
        !refused.contains("no current subscription"),
        "the subscription comes from the resource ID: {refused}"
    );
    ensure!(
        refused.contains("role") && refused.contains("Reader"),
        "the refusal names the missing role: {refused}"
    );
    let by_ip = nobody.refused(&[
        "network",
        "bastion",
        "tunnel",
        "--name",
        "default",
        "--resource-group",
        "default",
        "--target-ip-address",
        "10.0.0.4",
        "--resource-port",
        "22",
        "--port",
        "0",
    ])?;
    ensure!(
        by_ip.contains("you hold no role"),
        "without a resource ID, it says why there is no subscription: {by_ip}"
    );
    Ok(())
}

#[test]
fn role_assignment_delete_takes_assignee_role_and_scope() -> Result<()> {
    let gw = Gateway::start(&[])?;
    gw.new_user("temp-reader")?;
    gw.ok(&[
        "role",
        "assignment",
        "create",
        "--assignee",
        "temp-reader",
        "--role",
        "Reader",
        "--scope",
        APPS,
    ])?;
    let delete =
        ["role", "assignment", "delete", "--assignee", "temp-reader", "--role", "Reader", "--scope", APPS];
    gw.ok(&delete)?;
    ensure!(
        !gw.ok(&["role", "assignment", "list", "--assignee", "temp-reader"])?.contains("Reader"),
        "deleted"
    );
    let again = gw.refused(&delete)?;
    ensure!(
        again.contains("no role assignment of Reader to temp-reader"),
        "names what it looked for: {again}"
    );
    Ok(())
}

#[test]
fn a_ca_certificate_as_the_servers_is_refused_at_start_with_what_to_do() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let d = dir.path();
    let made = Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-keyout",
            "key.pem",
            "-out",
            "cert.pem",
            "-days",
            "2",
            "-subj",
            "/CN=gw.test",
            "-addext",
            "basicConstraints=critical,CA:TRUE",
        ])
        .current_dir(d)
        .output()?;
    ensure!(made.status.success(), "openssl: {}", String::from_utf8_lossy(&made.stderr));
    let out = Command::new(rampart_bin())
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(d.join("data"))
        .arg("--tls-cert")
        .arg(d.join("cert.pem"))
        .arg("--tls-key")
        .arg(d.join("key.pem"))
        .env("RAMPART_ADMIN_PASSWORD", "rough-edges-Passw0rd")
        .stdin(Stdio::null())
        .output()?;
    let said = String::from_utf8_lossy(&out.stderr);
    ensure!(!out.status.success(), "the gateway must not start with a CA certificate");
    ensure!(said.contains("CaUsedAsEndEntity") && said.contains("CA:FALSE"), "it says what to do: {said}");
    Ok(())
}

/// Starts `rampart serve` on `data` without a given admin password; the stdout lines it printed
/// until it listened (then it is stopped), or its stderr when it failed.
fn start(data: &std::path::Path, listen: &str) -> Result<Result<Vec<String>, String>> {
    let mut child = Command::new(rampart_bin())
        .args(["serve", "--listen", listen, "--data-dir"])
        .arg(data)
        .env_remove("RAMPART_ADMIN_PASSWORD")
        .env("RAMPART_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()?;
    let stdout = child.stdout.take().context("stdout")?;
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut lines = Vec::new();
    let t = Instant::now();
    while t.elapsed() < Duration::from_secs(60) {
        if let Some(status) = child.try_wait()? {
            let mut err = String::new();
            if let Some(mut e) = child.stderr.take() {
                std::io::Read::read_to_string(&mut e, &mut err)?;
            }
            lines.extend(rx.try_iter());
            return Ok(Err(format!("{status}: {err}")));
        }
        if let Ok(line) = rx.recv_timeout(Duration::from_millis(100)) {
            let listening = line.strip_prefix("listening on ").map(str::to_string);
            lines.push(line);
            if let Some(url) = listening {
                // Serving (an answer came) means the start-up report was shown.
                let t = Instant::now();
                while t.elapsed() < Duration::from_secs(20) {
                    let ok = Command::new("curl")
                        .args(["-sk", "-o", "/dev/null", "-w", "%{http_code}"])
                        .arg(format!("{url}/healthz"))
                        .output()?;
                    if String::from_utf8_lossy(&ok.stdout) == "200" {
                        break;
                    }
                    std::thread::sleep(Duration::from_millis(50));
                }
                child.kill().ok();
                child.wait().ok();
                return Ok(Ok(lines));
            }
        }
    }
    child.kill().ok();
    bail!("rampart serve neither listened nor failed: {lines:?}")
}

#[test]
fn a_failed_first_start_shows_the_bootstrap_password_at_the_next() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let data = dir.path().join("data");
    // The port is taken: the first start makes the admin, then cannot listen.
    let taken = std::net::TcpListener::bind("127.0.0.1:0")?;
    let port = taken.local_addr()?.port();
    let first = start(&data, &format!("127.0.0.1:{port}"))?;
    ensure!(first.is_err(), "the first start must fail on a taken port: {first:?}");
    drop(taken);
    let second = start(&data, "127.0.0.1:0")?.map_err(anyhow::Error::msg)?;
    let shown = second.iter().find(|l| l.starts_with("bootstrap admin:")).context("the password is shown")?;
    ensure!(shown.contains("password ") && shown.contains("shown once"), "{shown}");
    let third = start(&data, "127.0.0.1:0")?.map_err(anyhow::Error::msg)?;
    ensure!(!third.iter().any(|l| l.starts_with("bootstrap admin:")), "once shown, not again: {third:?}");
    Ok(())
}

#[test]
fn every_https_answer_carries_hsts() -> Result<()> {
    let gw = Gateway::start(&[])?;
    for path in ["/healthz", "/portal/signin", "/api/openapi.json", "/api/subscriptions"] {
        let out = Command::new("curl")
            .args(["-sk", "-D", "-", "-o", "/dev/null"])
            .arg(format!("{}{path}", gw.url))
            .output()?;
        let headers = String::from_utf8_lossy(&out.stdout).to_lowercase();
        ensure!(headers.contains("strict-transport-security: max-age=31536000"), "{path}: {headers}");
    }
    Ok(())
}
