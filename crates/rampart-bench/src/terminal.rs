//! Keystroke-to-echo of the browser terminal: what the browser does (sign in to the portal,
//! post the Connect form, open the terminal's WebSocket), then one key at a time, timing
//! each until its echo comes back. Beside it, the same SSH client library (russh, through
//! `rampart-ssh`) straight to the same sshd: the gateway's share is the difference.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use futures_util::{SinkExt, StreamExt};
use rampart_client::trust::{Trust, client_config};
use rampart_e2e::{ADMIN_PASSWORD, Gateway, Sshd, form_body, url_encode};
use rampart_ssh::terminal::{ShellEvent, SshTerminal, TerminalAuth};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

/// How long the shell must be quiet before the first keystroke.
const QUIET: Duration = Duration::from_millis(300);

pub struct EchoResult {
    pub through_gateway: Vec<Duration>,
    pub direct_ssh: Vec<Duration>,
}

/// Alternates a letter and a backspace so the command line never grows.
fn keystroke(i: usize) -> &'static [u8] {
    if i.is_multiple_of(2) { b"x" } else { b"\x7f" }
}

pub async fn measure(gateway: &Gateway, sshd: &Sshd, keystrokes: usize) -> Result<EchoResult> {
    let key = std::fs::read_to_string(sshd.dir.path().join("userkey"))?;
    let through_gateway = through_gateway(gateway, sshd, keystrokes).await?;
    let direct_ssh = direct(sshd, &key, keystrokes).await?;
    Ok(EchoResult { through_gateway, direct_ssh })
}

async fn direct(sshd: &Sshd, key: &str, keystrokes: usize) -> Result<Vec<Duration>> {
    let tcp = TcpStream::connect(("127.0.0.1", sshd.port)).await?;
    let auth = TerminalAuth::PrivateKey { key: key.to_string(), passphrase: None };
    let terminal = SshTerminal::connect(tcp, None, &sshd.user, auth).await?;
    let (mut output, input) = terminal.open_shell(80, 24).await?;
    // The login banner and prompt: read until quiet for 300 ms (at most 10 s).
    let end = Instant::now() + Duration::from_secs(10);
    while Instant::now() < end {
        let Ok(ShellEvent::Output(_)) = tokio::time::timeout(QUIET, output.next()).await else { break };
    }
    let mut samples = Vec::with_capacity(keystrokes);
    for i in 0..keystrokes {
        let t = Instant::now();
        input.send(keystroke(i).to_vec().into()).await?;
        match tokio::time::timeout(Duration::from_secs(5), output.next()).await {
            Ok(ShellEvent::Output(_)) => samples.push(t.elapsed()),
            Ok(ShellEvent::Ended { .. }) => bail!("the shell ended"),
            Err(_) => bail!("no echo within 5 s (direct)"),
        }
        // Let a multi-packet echo (backspace is three bytes) arrive before the next key.
        drain_briefly(&mut output).await;
    }
    input.close().await;
    Ok(samples)
}

async fn drain_briefly(output: &mut rampart_ssh::terminal::ShellOutput) {
    while let Ok(ShellEvent::Output(_)) = tokio::time::timeout(Duration::from_millis(2), output.next()).await
    {
    }
}

/// The portal's WebSocket as a browser gets it: the WebSocket stream type.
pub type PortalSocket = tokio_tungstenite::WebSocketStream<tokio_rustls::client::TlsStream<TcpStream>>;

/// Signs in to the portal as admin, posts the Connect form (through bastion `default`) with
/// `fields`, and opens the resulting page's WebSocket, as a browser does.
pub async fn open_portal_session(gateway: &Gateway, fields: &[(&str, &str)]) -> Result<PortalSocket> {
    Portal::sign_in(gateway).await?.open(fields).await
}

/// A browser signed in to the portal as admin: it opens as many terminals as asked, each as
/// the Connect form and the terminal page's WebSocket do.
pub struct Portal {
    http: reqwest::Client,
    trust: Trust,
    base: String,
    cookie: String,
    csrf: String,
}

const BASTION: &str =
    "/subscriptions/default/resourceGroups/default/providers/Microsoft.Network/bastionHosts/default";

impl Portal {
    pub async fn sign_in(gateway: &Gateway) -> Result<Portal> {
        let trust = Trust::Fingerprint(gateway.fingerprint.clone());
        let tls = client_config(&trust, &[b"h2", b"http/1.1"])?;
        let http = reqwest::Client::builder()
            .tls_backend_preconfigured(tls)
            .redirect(reqwest::redirect::Policy::none())
            .build()?;
        let base = gateway.url();
        // Sign in as a browser does; keep the session cookie.
        let signed_in = http
            .post(format!("{base}/portal/signin"))
            .header("origin", &base)
            .header("content-type", "application/x-www-form-urlencoded")
            .body(form_body(&[("username", "admin"), ("password", ADMIN_PASSWORD), ("next", "/portal")]))
            .send()
            .await?;
        let cookie = signed_in
            .headers()
            .get("set-cookie")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(';').next())
            .context("the sign-in set no cookie")?
            .to_string();
        let page = http
            .get(format!("{base}/portal/connect?bastion={}", url_encode(BASTION)))
            .header("cookie", &cookie)
            .send()
            .await?
            .text()
            .await?;
        let csrf = page
            .split("name=\"csrf\" value=\"")
            .nth(1)
            .and_then(|rest| rest.split('"').next())
            .context("no CSRF token on the Connect page")?
            .to_string();
        Ok(Portal { http, trust, base, cookie, csrf })
    }

    /// Posts the Connect form with `fields` and opens the terminal page's WebSocket.
    pub async fn open(&self, fields: &[(&str, &str)]) -> Result<PortalSocket> {
        let base = &self.base;
        let mut all = vec![("csrf", self.csrf.as_str()), ("bastion", BASTION)];
        all.extend_from_slice(fields);
        let posted = self
            .http
            .post(format!("{base}/portal/connect"))
            .header("cookie", &self.cookie)
            .header("origin", base)
            .header("content-type", "application/x-www-form-urlencoded")
            .body(form_body(&all))
            .send()
            .await?;
        let location = match posted.headers().get("location").and_then(|v| v.to_str().ok()) {
            Some(l) => l.to_string(),
            None => {
                bail!(
                    "connect was not redirected to a session ({}): {}",
                    posted.status(),
                    posted.text().await?
                )
            }
        };
        // The page's WebSocket, over its own TLS connection as a browser opens it (HTTP/1.1).
        let addr: SocketAddr = base.trim_start_matches("https://").parse()?;
        let tcp = TcpStream::connect(addr).await?;
        tcp.set_nodelay(true)?;
        let connector =
            tokio_rustls::TlsConnector::from(Arc::new(client_config(&self.trust, &[b"http/1.1"])?));
        let name = rustls::pki_types::ServerName::from(addr.ip());
        let stream = connector.connect(name, tcp).await?;
        let mut request = format!("wss://{addr}{location}/ws?cols=80&rows=24").into_client_request()?;
        request.headers_mut().insert("cookie", self.cookie.parse()?);
        request.headers_mut().insert("origin", base.parse()?);
        let (ws, _) = tokio_tungstenite::client_async(request, stream).await?;
        Ok(ws)
    }
}

/// The Connect form's fields for a terminal to `sshd` signed in with its key.
pub fn key_fields<'a>(sshd: &'a Sshd, port: &'a str, key: &'a str) -> [(&'static str, &'a str); 7] {
    [
        ("target", "ip"),
        ("ip", "127.0.0.1"),
        ("protocol", "ssh"),
        ("port", port),
        ("username", sshd.user.as_str()),
        ("auth", "key"),
        ("private_key", key),
    ]
}

/// Reads until the terminal says it is ready (its first output may come before).
pub async fn until_ready(ws: &mut PortalSocket) -> Result<()> {
    let end = Instant::now() + Duration::from_secs(30);
    loop {
        ensure!(Instant::now() < end, "the terminal did not become ready");
        match tokio::time::timeout(Duration::from_secs(30), ws.next()).await {
            Ok(Some(Ok(Message::Text(t)))) if t.contains("ready") => return Ok(()),
            Ok(Some(Ok(Message::Text(t)))) => bail!("terminal: {t}"),
            Ok(Some(Ok(_))) => {}
            other => bail!("terminal WebSocket: {other:?}"),
        }
    }
}

/// A browser terminal to `sshd` through the gateway, signed in with sshd's key, once its
/// prompt has arrived and it has been quiet for [`QUIET`].
pub async fn open_shell(gateway: &Gateway, sshd: &Sshd) -> Result<PortalSocket> {
    let key = std::fs::read_to_string(sshd.dir.path().join("userkey"))?;
    let port = sshd.port.to_string();
    let mut ws = open_portal_session(gateway, &key_fields(sshd, &port, &key)).await?;
    until_ready(&mut ws).await?;
    let end = Instant::now() + Duration::from_secs(10);
    while Instant::now() < end {
        let Ok(Some(Ok(Message::Binary(_)))) = tokio::time::timeout(QUIET, ws.next()).await else { break };
    }
    Ok(ws)
}

async fn through_gateway(gateway: &Gateway, sshd: &Sshd, keystrokes: usize) -> Result<Vec<Duration>> {
    let mut ws = open_shell(gateway, sshd).await?;
    let mut samples = Vec::with_capacity(keystrokes);
    for i in 0..keystrokes {
        let t = Instant::now();
        ws.send(Message::Binary(keystroke(i).to_vec().into())).await?;
        loop {
            match tokio::time::timeout(Duration::from_secs(5), ws.next()).await {
                Ok(Some(Ok(Message::Binary(_)))) => break,
                Ok(Some(Ok(Message::Text(t)))) => bail!("terminal ended: {t}"),
                Ok(Some(Ok(_))) => {}
                other => bail!("no echo through the gateway: {other:?}"),
            }
        }
        samples.push(t.elapsed());
        while let Ok(Some(Ok(Message::Binary(_)))) =
            tokio::time::timeout(Duration::from_millis(2), ws.next()).await
        {}
    }
    let _ = ws.close(None).await;
    Ok(samples)
}
