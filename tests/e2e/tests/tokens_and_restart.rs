//! Tunnel tokens (bad, expired, forged, misused), sign-in failures and their rate limit, and
//! what survives a restart.

use std::time::Duration;

use anyhow::{Context, Result, bail, ensure};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rampart_client::tunnel::Connector;
use rampart_client::{ApiClient, Trust, TunnelError};
use rampart_e2e::{ADMIN_PASSWORD, Gateway, Sshd, audit_has};
use rampart_proto::tunnel::TunnelRequest;

fn refusal(r: Result<impl Sized, TunnelError>) -> Result<String> {
    match r {
        Ok(_) => bail!("the gateway accepted a connection it should have refused"),
        Err(TunnelError::Refused { status, code, message }) => {
            ensure!(status == 401, "expected 401, got {status} ({code}: {message})");
            Ok(message)
        }
        Err(other) => bail!("expected a refusal, got {other}"),
    }
}

#[test]
fn bad_expired_forged_and_misused_tokens_are_refused_with_the_reason() -> Result<()> {
    let gw = Gateway::start(&[("RAMPART_TUNNEL_TOKEN_TTL", "4")])?;
    let sshd = Sshd::start()?;
    gw.allow_loopback()?;
    let runtime = tokio::runtime::Runtime::new()?;
    runtime.block_on(async {
        let trust = Trust::Fingerprint(gw.fingerprint.clone());
        let api = ApiClient::new(&gw.url(), trust.clone())?;
        let session = api.login("admin", ADMIN_PASSWORD).await?;
        let subscription = api.subscriptions().await?.remove(0).id;
        let request = TunnelRequest {
            bastion_id: format!(
                "/subscriptions/{subscription}/resourceGroups/default/providers/Microsoft.Network/bastionHosts/default"
            ),
            target_ip_address: Some("127.0.0.1".into()),
            target_resource_id: None,
            resource_port: sshd.port,
        };
        let connector = Connector::new(&gw.url(), &trust)?;

        // A valid grant opens a connection.
        let grant = api.grant_tunnel(&request).await?;
        connector.open(&grant.tunnel_token).await.context("a valid token must connect")?;

        // Garbage.
        let msg = refusal(connector.open("not-a-token").await)?;
        ensure!(msg.contains("malformed"), "{msg}");

        // Forged: the payload altered to point at another port, the signature kept.
        let parts: Vec<&str> = grant.tunnel_token.split('.').collect();
        ensure!(parts.len() == 3, "a tunnel token has three parts");
        let payload = String::from_utf8(URL_SAFE_NO_PAD.decode(parts[1])?)?;
        let altered = payload.replace(&format!("\"port\":{}", sshd.port), "\"port\":22");
        ensure!(altered != payload, "the test failed to alter the payload");
        let forged = format!("{}.{}.{}", parts[0], URL_SAFE_NO_PAD.encode(altered), parts[2]);
        let msg = refusal(connector.open(&forged).await)?;
        ensure!(msg.contains("signature is invalid"), "{msg}");

        // An access token is not a tunnel token.
        let msg = refusal(connector.open(&session.access_token).await)?;
        ensure!(msg.contains("not valid here"), "{msg}");

        // No token at all, on the grant endpoint.
        match api.grant_tunnel_with_token(&request, None).await {
            Err(e) => ensure!(e.code() == Some("Unauthenticated"), "{e}"),
            Ok(_) => bail!("a grant was given without sign-in"),
        }

        // Expired (the gateway runs with 4-second tunnel tokens here).
        tokio::time::sleep(Duration::from_millis(5100)).await;
        let msg = refusal(connector.open(&grant.tunnel_token).await)?;
        ensure!(msg.contains("expired"), "{msg}");
        anyhow::Ok(())
    })?;

    let audit = gw.audit()?;
    ensure!(audit_has(&audit, "connection-open", "refused", Some("Unauthenticated")));
    ensure!(audit_has(&audit, "tunnel-request", "refused", Some("Unauthenticated")));
    Ok(())
}

#[test]
fn a_refresh_token_works_once_and_a_wrong_certificate_pin_is_refused() -> Result<()> {
    let gw = Gateway::start(&[])?;
    let runtime = tokio::runtime::Runtime::new()?;
    runtime.block_on(async {
        let api = ApiClient::new(&gw.url(), Trust::Fingerprint(gw.fingerprint.clone()))?;
        let session = api.login("admin", ADMIN_PASSWORD).await?;
        let body = serde_json::json!({ "refreshToken": session.refresh_token });
        let raw = |api: &ApiClient| {
            let api = api.clone();
            let body = body.clone();
            async move {
                api.request::<_, serde_json::Value>(
                    rampart_client::api::Method::POST,
                    "/api/auth/refresh",
                    Some(&body),
                )
                .await
            }
        };
        // `request` adds the (valid) access token; the refresh token in the body is what counts.
        ensure!(raw(&api).await.is_ok(), "a fresh refresh token was refused");
        let reused = raw(&api).await;
        ensure!(matches!(&reused, Err(rampart_client::ClientError::Api { status: 401, .. })), "{reused:?}");

        // A pin that does not match the gateway's certificate: refused, naming what it saw.
        let wrong = format!("SHA256:{}", "AB".repeat(32));
        let impostor = ApiClient::new(&gw.url(), Trust::Fingerprint(wrong))?;
        let err =
            impostor.login("admin", ADMIN_PASSWORD).await.err().map(|e| e.to_string()).unwrap_or_default();
        ensure!(
            err.contains("does not match the pinned fingerprint") && err.contains(&gw.fingerprint),
            "{err}"
        );
        anyhow::Ok(())
    })?;
    Ok(())
}

#[test]
fn wrong_passwords_are_refused_then_rate_limited() -> Result<()> {
    let gw = Gateway::start(&[("RAMPART_LOGIN_MAX_FAILURES", "3")])?;
    for _ in 0..3 {
        let out = gw.login_with("admin", "wrong-password")?;
        ensure!(!out.status.success());
        let err = String::from_utf8_lossy(&out.stderr);
        ensure!(err.contains("wrong user name or password"), "{err}");
    }
    // Even the right password waits now: the limit is per user name and client address.
    let out = gw.login_with("admin", ADMIN_PASSWORD)?;
    let err = String::from_utf8_lossy(&out.stderr);
    ensure!(!out.status.success() && err.contains("too many failed sign-ins"), "{err}");
    // A user who does not exist gets the same answer as a wrong password.
    let out = gw.login_with("nobody", "x")?;
    let err = String::from_utf8_lossy(&out.stderr);
    ensure!(err.contains("wrong user name or password"), "{err}");
    Ok(())
}

#[test]
fn restart_keeps_users_bastions_settings_audit_and_certificate() -> Result<()> {
    let mut gw = Gateway::start(&[])?;
    gw.ok(&[
        "network",
        "bastion",
        "create",
        "--name",
        "kept",
        "--resource-group",
        "rg-kept",
        "--sku",
        "Premium",
        "--enable-ip-connect",
        "true",
        "--reachable-networks",
        "10.20.0.0/16,fd00:20::/64",
    ])?;
    let refused = gw.refused(&[
        "tunnel",
        "--name",
        "kept",
        "--resource-group",
        "rg-kept",
        "--target-ip-address",
        "10.99.0.1",
        "--resource-port",
        "22",
        "--port",
        "0",
    ])?;
    ensure!(refused.contains("outside the bastion's reachable networks"), "{refused}");
    let before = gw.audit()?.len();
    let fingerprint = gw.fingerprint.clone();

    let status = gw.process.terminate()?;
    ensure!(status.success(), "the gateway did not stop cleanly on SIGTERM: {status}");

    let data_dir = gw.data_dir.clone();
    let config_dir = gw.config_dir.clone();
    let mut again =
        Gateway::start_in(&data_dir, &config_dir, &[("RAMPART_ADMIN_PASSWORD", "a-different-one")])?;
    ensure!(again.fingerprint == fingerprint, "the certificate changed across a restart");
    ensure!(
        !again.process.seen.iter().any(|l| l.contains("bootstrap admin")),
        "the restarted gateway bootstrapped again"
    );
    // The admin keeps the first password (RAMPART_ADMIN_PASSWORD is only for the first start).
    again.login()?;
    let shown: serde_json::Value = serde_json::from_str(&again.ok(&[
        "network",
        "bastion",
        "show",
        "--name",
        "kept",
        "--resource-group",
        "rg-kept",
    ])?)?;
    ensure!(shown["sku"]["name"] == "Premium", "{shown}");
    ensure!(shown["enableIpConnect"] == true, "{shown}");
    ensure!(shown["reachableNetworks"] == serde_json::json!(["10.20.0.0/16", "fd00:20::/64"]), "{shown}");
    let audit = again.audit()?;
    ensure!(audit.len() > before, "audit records were lost: {} then {}", before, audit.len());
    ensure!(audit_has(&audit, "tunnel-request", "refused", Some("OutsideReachableNetworks")));
    ensure!(audit_has(&audit, "bastion-change", "allowed", None));
    again.process.terminate()?;
    drop(gw);
    Ok(())
}
