//! Session recording (Premium): a browser terminal in Chromium on a recording bastion is
//! recorded as asciicast v2; `recording list` shows it (and `--search` finds it by a word it
//! printed); `export` writes a `.cast` whose events hold the output; `verify` passes, and fails
//! once a byte of the stored recording is flipped. Raw tunnels are refused while recording is
//! on, unless allowed unrecorded; Basic cannot record; Reader does not see recordings. With a
//! container SAS URL of real azurite, the same goes to blobs.

use std::time::{Duration, Instant};

use anyhow::{Context, Result, ensure};
use rampart_e2e::{ADMIN_PASSWORD, Gateway, LocalUser, Sshd, SshdOptions};

const BASTION: &str =
    "/subscriptions/default/resourceGroups/default/providers/Microsoft.Network/bastionHosts/default";

/// `recording.mjs` in Chromium: the admin's browser terminal to `sshd` as `local`; with
/// `hold`, it stays open until the test writes `killed`.
fn browser_session(
    gw: &Gateway,
    sshd: &Sshd,
    local: &LocalUser,
    out: &std::path::Path,
    hold: bool,
) -> Result<std::process::Child> {
    let mut env = vec![
        ("RAMPART_URL", gw.url()),
        ("ADMIN_PASSWORD", ADMIN_PASSWORD.to_string()),
        ("ARTIFACTS", out.display().to_string()),
        ("BASTION_ID", gw.bastion_id()?),
        ("SSH_PORT", sshd.port.to_string()),
        ("SSH_USER", local.name.clone()),
        ("SSH_PASSWORD", local.password.clone()),
    ];
    if hold {
        env.push(("HOLD", "1".into()));
    }
    rampart_e2e::spawn_browser_script("recording.mjs", &env)
}

#[test]
fn a_browser_terminal_is_recorded_found_exported_and_verified() -> Result<()> {
    let Some(local) = LocalUser::create("rec")? else {
        println!("SKIPPED: password sign-in to sshd needs root (to create a local user)");
        return Ok(());
    };
    let gw = Gateway::start(&[])?;
    gw.allow_loopback()?;
    let sshd = Sshd::start_with(SshdOptions { password_auth: true, ..Default::default() })?;

    // Basic cannot record; Premium can.
    gw.ok(&[
        "network",
        "bastion",
        "create",
        "-n",
        "basic1",
        "-g",
        "default",
        "--sku",
        "Basic",
        "--enable-tunneling",
        "false",
    ])?;
    let basic = gw.refused(&[
        "network",
        "bastion",
        "update",
        "-n",
        "basic1",
        "-g",
        "default",
        "--enable-session-recording",
        "true",
    ])?;
    ensure!(basic.contains("Premium"), "the refusal names the tier: {basic}");
    gw.update_bastion("default", &["--sku", "Premium", "--enable-session-recording", "true"])?;

    // A raw tunnel cannot be recorded: refused with the reason, or let through when allowed.
    let port = sshd.port.to_string();
    let tunnel = [
        "network",
        "bastion",
        "tunnel",
        "--name",
        "default",
        "--resource-group",
        "default",
        "--target-ip-address",
        "127.0.0.1",
        "--resource-port",
        port.as_str(),
        "--port",
        "0",
    ];
    let refused = gw.refused(&tunnel)?;
    ensure!(
        refused.contains("RecordingRequired") && refused.contains("raw tunnels cannot be recorded"),
        "{refused}"
    );
    gw.update_bastion("default", &["--allow-unrecorded-tunnels", "true"])?;
    let open = gw.tunnel("127.0.0.1", sshd.port)?;
    ensure!(sshd.ssh(open.port, "echo unrecorded")?.trim() == "unrecorded", "allowed unrecorded");
    drop(open);

    let out = rampart_e2e::artifacts("recording")?;
    let script = browser_session(&gw, &sshd, &local, &out, false)?;
    rampart_e2e::finish_browser_script(script, Duration::from_secs(90))?;

    let t = Instant::now();
    let listed = loop {
        let list = gw.recordings(&[])?;
        if list.iter().any(|r| r["complete"] == true) {
            break list;
        }
        ensure!(t.elapsed() < Duration::from_secs(10), "no complete recording listed: {list:?}");
        std::thread::sleep(Duration::from_millis(100));
    };
    let rec = &listed[0];
    let id = rec["id"].as_str().context("id")?.to_string();
    ensure!(
        rec["user"] == "admin"
            && rec["protocol"] == "ssh"
            && rec["sha256"].as_str().is_some_and(|s| s.len() == 64),
        "{rec}"
    );
    ensure!(gw.recordings(&["--search", "marmalade"])?.len() == 1, "--search finds it by a word it printed");
    ensure!(gw.recordings(&["--search", "no-such-word-xyzzy"])?.is_empty(), "and not by one it did not");
    ensure!(gw.recordings(&["--since", "PT1H"])?.len() == 1, "--since a duration finds it");
    ensure!(gw.recordings(&["--since", "2099-01-01T00:00:00Z"])?.is_empty(), "--since a later time does not");
    let bad = gw.refused(&[
        "network",
        "bastion",
        "recording",
        "list",
        "-n",
        "default",
        "-g",
        "default",
        "--since",
        "soon",
    ])?;
    ensure!(bad.contains("InvalidSince"), "a bad --since says why: {bad}");
    let shown: serde_json::Value = serde_json::from_str(&gw.ok(&[
        "network",
        "bastion",
        "recording",
        "show",
        "-n",
        "default",
        "-g",
        "default",
        "--ids",
        &id,
    ])?)?;
    ensure!(shown["sha256"] == rec["sha256"] && shown["complete"] == true, "show: {shown}");

    let cast = out.join("session.cast");
    gw.export_recording(&id, &cast)?;
    let text = std::fs::read_to_string(&cast)?;
    let header: serde_json::Value = serde_json::from_str(text.lines().next().context("header")?)?;
    ensure!(header["version"] == 2, "an asciicast v2 header: {header}");
    let output: String = text
        .lines()
        .skip(1)
        .filter_map(|l| serde_json::from_str::<(f64, String, String)>(l).ok())
        .map(|(_, _, s)| s)
        .collect();
    ensure!(output.contains("rec-42 marmalade"), "the output is in the recording");
    let typed: String = text
        .lines()
        .skip(1)
        .filter_map(|l| serde_json::from_str::<(f64, String, String)>(l).ok())
        .filter(|(_, kind, _)| kind == "i")
        .map(|(_, _, s)| s)
        .collect();
    ensure!(typed.contains("echo rec-$((6*7)) marmalade"), "what was typed is recorded as input: {typed:?}");
    ensure!(!text.contains("hunter2-xyzzy"), "a secret typed at a password prompt is not recorded");
    ensure!(output.contains("got-13"), "the session went on after the secret");

    let (valid, verified) = gw.verify_recording(&id)?;
    ensure!(valid && verified.contains("\"valid\": true"), "{verified}");
    let stored = gw.data_dir.join("recordings").join(format!("{id}.cast"));
    let mut bytes = std::fs::read(&stored)?;
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x01;
    std::fs::write(&stored, bytes)?;
    let (valid, said) = gw.verify_recording(&id)?;
    ensure!(!valid && said.contains("modified"), "a flipped byte is reported: {said}");

    // Reader sees the bastion, not its recordings.
    let reader = gw.new_user("rec-reader")?;
    gw.ok(&[
        "role",
        "assignment",
        "create",
        "--assignee",
        "rec-reader",
        "--role",
        "Reader",
        "--scope",
        BASTION,
    ])?;
    let denied =
        reader.refused(&["network", "bastion", "recording", "list", "-n", "default", "-g", "default"])?;
    ensure!(denied.contains("sessionRecordings"), "{denied}");
    let audit = gw.audit()?;
    ensure!(
        audit
            .iter()
            .any(|r| r["event"] == "recording" && r["reason"].as_str().is_some_and(|x| x.contains(&id))),
        "the recording's digest is audited"
    );

    // Retention: a week. The recording is made to have ended eight days ago (in the store,
    // with the gateway stopped); the sweep at the next start deletes its bytes and its listing.
    gw.update_bastion("default", &["--recording-retention-days", "7"])?;
    let mut gw = gw;
    gw.process.terminate()?;
    let db = gw.data_dir.join("rampart.db");
    tokio::runtime::Runtime::new()?.block_on(async {
        let pool = sqlx::SqlitePool::connect(&format!("sqlite://{}", db.display())).await?;
        let old = (chrono::Utc::now() - chrono::Duration::days(8))
            .to_rfc3339_opts(chrono::SecondsFormat::Micros, true);
        sqlx::query("UPDATE recordings SET started_at = ?1, ended_at = ?1 WHERE id = ?2")
            .bind(&old)
            .bind(&id)
            .execute(&pool)
            .await?;
        pool.close().await;
        anyhow::Ok(())
    })?;
    let again = Gateway::start_in(&gw.data_dir, &gw.admin.config_dir, &[])?;
    again.login()?;
    let t = Instant::now();
    while !again.recordings(&[])?.is_empty() {
        ensure!(t.elapsed() < Duration::from_secs(10), "a recording past its retention is deleted at start");
        std::thread::sleep(Duration::from_millis(100));
    }
    ensure!(!stored.exists(), "its bytes are deleted too");
    ensure!(
        again.audit()?.iter().any(|r| r["event"] == "recording"
            && r["reason"].as_str().is_some_and(|x| x.contains(&id) && x.contains("retention of 7 days"))),
        "the deletion is audited"
    );
    drop(again);
    Ok(())
}

/// `kill -9` of the gateway under a recorded session: after a restart the recording is listed
/// as incomplete, holds what was shown up to the last second or so, and `verify` says why it
/// cannot vouch for it.
#[test]
fn a_recording_survives_a_killed_gateway_as_incomplete() -> Result<()> {
    let Some(local) = LocalUser::create("reck")? else {
        println!("SKIPPED: password sign-in to sshd needs root (to create a local user)");
        return Ok(());
    };
    let mut gw = Gateway::start(&[])?;
    gw.allow_loopback()?;
    gw.update_bastion("default", &["--sku", "Premium", "--enable-session-recording", "true"])?;
    let sshd = Sshd::start_with(SshdOptions { password_auth: true, ..Default::default() })?;
    let out = rampart_e2e::artifacts("recording-killed")?;
    let script = browser_session(&gw, &sshd, &local, &out, true)?;
    let t = Instant::now();
    while !out.join("holding").exists() {
        ensure!(t.elapsed() < Duration::from_secs(60), "the browser session never got going");
        std::thread::sleep(Duration::from_millis(100));
    }
    // Once the recorder's once-a-second sync has put the output in the file, SIGKILL: no clean
    // end of anything.
    let recordings = gw.data_dir.join("recordings");
    rampart_e2e::wait_until(Duration::from_secs(10), || {
        let synced =
            std::fs::read_dir(&recordings).into_iter().flatten().flatten().any(|f| {
                std::fs::read_to_string(f.path()).is_ok_and(|text| text.contains("rec-42 marmalade"))
            });
        Ok(synced.then_some(()))
    })
    .context("the output never reached the recording's file")?;
    gw.process.child.kill()?;
    gw.process.child.wait()?;
    std::fs::write(out.join("killed"), "yes")?;
    rampart_e2e::finish_browser_script(script, Duration::from_secs(60))?;

    let again = Gateway::start_in(&gw.data_dir, &gw.admin.config_dir, &[])?;
    again.login()?;
    let listed = again.recordings(&[])?;
    let rec = listed.first().context("the recording is listed after the restart")?;
    ensure!(rec["complete"] == false && rec.get("sha256").is_none(), "listed as incomplete: {rec}");
    let id = rec["id"].as_str().context("id")?;
    let kept = std::fs::read_to_string(gw.data_dir.join("recordings").join(format!("{id}.cast")))?;
    ensure!(kept.contains("rec-42 marmalade"), "what was shown before the kill is kept");
    let (valid, text) = again.verify_recording(id)?;
    ensure!(!valid && text.contains("incomplete"), "{text}");
    // `gw` keeps the directories the restarted gateway runs on.
    drop(again);
    drop(gw);
    Ok(())
}

/// With `--session-recording-storage-url` (a container SAS URL of real azurite), the recording
/// is put as chunk blobs in that container while the session runs; `verify` passes from the
/// container, the close record carries the digest, a killed and restarted gateway still reads
/// it, and a byte flipped in a stored blob makes `verify` fail. A read-only token is refused
/// when set, saying why, and the token is never shown back.
#[test]
fn recordings_go_to_an_azure_blob_container() -> Result<()> {
    let Some(local) = LocalUser::create("recb")? else {
        println!("SKIPPED: password sign-in to sshd needs root (to create a local user)");
        return Ok(());
    };
    let azurite = rampart_e2e::azurite::Azurite::start()?;
    azurite.create_container("recordings")?;
    let mut gw = Gateway::start(&[])?;
    gw.allow_loopback()?;
    let sshd = Sshd::start_with(SshdOptions { password_auth: true, ..Default::default() })?;

    let read_only = azurite.container_sas_url("recordings", "rl")?;
    let refused = gw.refused(&[
        "network",
        "bastion",
        "update",
        "-n",
        "default",
        "-g",
        "default",
        "--sku",
        "Premium",
        "--enable-session-recording",
        "true",
        "--session-recording-storage-url",
        &read_only,
    ])?;
    ensure!(
        refused.contains("InvalidRecordingStorage") && !refused.contains("sig="),
        "a token that cannot write is refused, without showing it: {refused}"
    );
    let url = azurite.container_sas_url("recordings", "racwdl")?;
    let shown = gw.update_bastion(
        "default",
        &["--sku", "Premium", "--enable-session-recording", "true", "--session-recording-storage-url", &url],
    )?;
    ensure!(
        shown.contains(&format!("127.0.0.1:{}/devstoreaccount1/recordings", azurite.port))
            && !shown.contains("sig="),
        "the container is shown, its token is not: {shown}"
    );

    let out = rampart_e2e::artifacts("recording-blob")?;
    let script = browser_session(&gw, &sshd, &local, &out, false)?;
    rampart_e2e::finish_browser_script(script, Duration::from_secs(90))?;
    let t = Instant::now();
    let rec = loop {
        let list = gw.recordings(&[])?;
        if let Some(r) = list.into_iter().find(|r| r["complete"] == true) {
            break r;
        }
        ensure!(t.elapsed() < Duration::from_secs(10), "no complete recording listed");
        std::thread::sleep(Duration::from_millis(100));
    };
    let id = rec["id"].as_str().context("id")?.to_string();
    let sha = rec["sha256"].as_str().context("sha256")?.to_string();
    ensure!(
        !gw.data_dir.join("recordings").join(format!("{id}.cast")).exists(),
        "nothing in the data directory"
    );
    let blobs = azurite.list("recordings", &format!("recordings/{id}/"))?;
    ensure!(!blobs.is_empty(), "the recording's blobs are in the container");
    let mut stored = Vec::new();
    for b in &blobs {
        stored.extend(azurite.get("recordings", b)?);
    }
    ensure!(String::from_utf8_lossy(&stored).contains("rec-42 marmalade"), "the blobs hold the session");
    ensure!(gw.recordings(&["--search", "marmalade"])?.len() == 1, "--search reads the container");
    let (valid, said) = gw.verify_recording(&id)?;
    ensure!(valid && said.contains("\"valid\": true"), "{said}");
    let close = gw
        .audit()?
        .into_iter()
        .find(|r| r["event"] == "connection-close" && r["reason"].as_str().is_some_and(|x| x.contains(&sha)));
    ensure!(close.is_some(), "the session's close record carries the recording's digest");

    // The container outlives the gateway: killed and started again, it still vouches for it.
    gw.process.child.kill()?;
    gw.process.child.wait()?;
    let again = Gateway::start_in(&gw.data_dir, &gw.admin.config_dir, &[])?;
    again.login()?;
    let (valid, said) = again.verify_recording(&id)?;
    ensure!(valid, "after a restart: {said}");

    let first = blobs.first().context("a blob")?;
    let mut bytes = azurite.get("recordings", first)?;
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x01;
    azurite.put("recordings", first, &bytes)?;
    let (valid, said) = again.verify_recording(&id)?;
    ensure!(!valid && said.contains("modified"), "a flipped byte in a blob is reported: {said}");
    drop(again);
    drop(gw);
    Ok(())
}

/// `rampart ssh --auth-type AAD` on a recording bastion: the gateway signs in to the VM with a
/// certificate of its own CA (under the user's login role) and relays the shell to the client,
/// so the native session is recorded like a browser one; a remote command after `--` is refused
/// there, saying why.
#[test]
fn a_native_identity_session_is_recorded() -> Result<()> {
    use std::io::Write;
    let gw = Gateway::start(&[])?;
    let ca = gw.ok(&["ssh-ca", "show"])?;
    let sshd = Sshd::start_with(SshdOptions { trusted_ca: Some(ca), ..Default::default() })?;
    gw.allow_loopback()?;
    let vm = "/subscriptions/default/resourceGroups/apps/providers/Microsoft.Compute/virtualMachines/web1";
    let port = sshd.port.to_string();
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
        "127.0.0.1",
        "--port-ssh",
        &port,
    ])?;
    gw.ok(&[
        "role",
        "assignment",
        "create",
        "--assignee",
        "admin",
        "--role",
        "Virtual Machine Administrator Login",
        "--scope",
        vm,
    ])?;
    gw.update_bastion("default", &["--sku", "Premium", "--enable-session-recording", "true"])?;

    let ssh = |extra: &[&str]| {
        let mut cmd = gw.cli();
        cmd.args(["ssh", "-n", "default", "-g", "default", "--target-resource-id", vm])
            .args(["--auth-type", "AAD", "--username", &sshd.user])
            .args(extra)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped());
        cmd
    };
    let refused = ssh(&["--", "whoami"]).output()?;
    let said = String::from_utf8_lossy(&refused.stderr);
    ensure!(!refused.status.success() && said.contains("cannot be passed"), "{said}");

    let mut child = ssh(&[]).spawn()?;
    let mut stdin = child.stdin.take().context("stdin")?;
    stdin.write_all(b"echo native-$((5+5)) recorded\nexit\n")?;
    let t = Instant::now();
    let out = loop {
        if child.try_wait()?.is_some() {
            break child.wait_with_output()?;
        }
        if t.elapsed() > Duration::from_secs(60) {
            let _ = child.kill();
            anyhow::bail!("the recorded native session did not end");
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let shown = String::from_utf8_lossy(&out.stdout);
    ensure!(
        out.status.success() && shown.contains("native-10 recorded"),
        "{shown} {}",
        String::from_utf8_lossy(&out.stderr)
    );

    let t = Instant::now();
    let rec = loop {
        let list = gw.recordings(&["--search", "native-10"])?;
        if let Some(r) = list.into_iter().find(|r| r["complete"] == true) {
            break r;
        }
        ensure!(t.elapsed() < Duration::from_secs(10), "the native session's recording is not listed");
        std::thread::sleep(Duration::from_millis(100));
    };
    let web1 = |v: &serde_json::Value| v.as_str().is_some_and(|t| t.ends_with("/virtualMachines/web1"));
    ensure!(rec["user"] == "admin" && rec["protocol"] == "ssh" && web1(&rec["target"]), "{rec}");
    let opened = gw.audit()?.into_iter().find(|r| {
        r["event"] == "connection-open" && r["result"] == "allowed" && web1(&r["targetResourceId"])
    });
    ensure!(opened.is_some(), "the session's open record names the VM");
    Ok(())
}
