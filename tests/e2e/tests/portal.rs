//! The portal against a hostile page and a stolen or stale cookie, over real HTTPS: forged
//! forms (no or wrong CSRF token), requests from another origin, the cookie's attributes,
//! sign-out and a password change ending the browser session, redirects that stay on the
//! gateway, and the headers that keep pages from being framed or loading foreign code.

use anyhow::{Context, Result, ensure};
use rampart_client::trust::{Trust, client_config};
use rampart_e2e::{ADMIN_PASSWORD, Gateway, form_body, url_encode};
use reqwest::StatusCode;

struct Browser {
    http: reqwest::Client,
    base: String,
    cookie: Option<String>,
}

impl Browser {
    fn new(gw: &Gateway) -> Result<Browser> {
        let tls = client_config(&Trust::Fingerprint(gw.fingerprint.clone()), &[b"h2", b"http/1.1"])?;
        let http = reqwest::Client::builder()
            .tls_backend_preconfigured(tls)
            .redirect(reqwest::redirect::Policy::none())
            .build()?;
        Ok(Browser { http, base: gw.url(), cookie: None })
    }

    async fn get(&self, path: &str) -> Result<reqwest::Response> {
        let mut req = self.http.get(format!("{}{path}", self.base));
        if let Some(c) = &self.cookie {
            req = req.header("cookie", c);
        }
        Ok(req.send().await?)
    }

    async fn post(&self, path: &str, origin: Option<&str>, body: String) -> Result<reqwest::Response> {
        let mut req = self
            .http
            .post(format!("{}{path}", self.base))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body);
        if let Some(c) = &self.cookie {
            req = req.header("cookie", c);
        }
        if let Some(o) = origin {
            req = req.header("origin", o);
        }
        Ok(req.send().await?)
    }

    /// Signs in; returns the Set-Cookie header as sent.
    async fn sign_in(&mut self, user: &str, password: &str) -> Result<String> {
        let origin = self.base.clone();
        let r = self
            .post("/portal/signin", Some(&origin), form_body(&[("username", user), ("password", password)]))
            .await?;
        ensure!(r.status() == StatusCode::SEE_OTHER || r.status().is_redirection(), "{}", r.status());
        let set = r.headers().get("set-cookie").context("no cookie")?.to_str()?.to_string();
        self.cookie = set.split(';').next().map(str::to_string);
        Ok(set)
    }

    async fn csrf(&self) -> Result<String> {
        let page = self.get("/portal/bastion?id=/subscriptions/default/resourceGroups/default/providers/Microsoft.Network/bastionHosts/default").await?.text().await?;
        Ok(page
            .split("name=\"csrf\" value=\"")
            .nth(1)
            .and_then(|r| r.split('"').next())
            .context("no CSRF token on the page")?
            .to_string())
    }
}

const BASTION: &str =
    "/subscriptions/default/resourceGroups/default/providers/Microsoft.Network/bastionHosts/default";

#[tokio::test(flavor = "multi_thread")]
async fn forged_and_cross_origin_forms_are_refused_and_sessions_end() -> Result<()> {
    let gw = tokio::task::block_in_place(|| Gateway::start(&[]))?;
    let mut browser = Browser::new(&gw)?;

    // Anonymous: sent to sign in, and back to where they were going, never off the gateway.
    let r = browser.get("/portal/connect?bastion=x").await?;
    let to = r.headers().get("location").context("redirect")?.to_str()?.to_string();
    ensure!(to.starts_with("/portal/signin?next=%2Fportal%2Fconnect"), "{to}");
    let page = browser.get("/portal/signin?next=https://evil.example/").await?.text().await?;
    ensure!(page.contains("name=\"next\" value=\"/portal\""), "an outside `next` is replaced by home");

    // The cookie: host-only, Secure, HttpOnly, SameSite=Strict.
    let set = browser.sign_in("admin", ADMIN_PASSWORD).await?;
    for attr in ["__Host-rampart-session=", "Path=/", "Secure", "HttpOnly", "SameSite=Strict"] {
        ensure!(set.contains(attr), "cookie lacks {attr}: {set}");
    }
    ensure!(!set.contains("Domain="), "{set}");

    // Pages may not be framed and load nothing from elsewhere.
    let home = browser.get("/portal").await?;
    ensure!(home.status() == StatusCode::OK);
    let csp = home.headers().get("content-security-policy").context("CSP")?.to_str()?.to_string();
    ensure!(csp.contains("default-src 'self'") && csp.contains("frame-ancestors 'none'"), "{csp}");
    ensure!(home.headers().get("x-frame-options").is_some_and(|v| v == "DENY"));

    let csrf = browser.csrf().await?;
    let change = |token: &str| {
        // As the page sends it: the copy-and-paste box is checked (on) unless the operator
        // unticks it; Basic could not turn it off.
        form_body(&[
            ("csrf", token),
            ("id", BASTION),
            ("sku", "Basic"),
            ("copy_paste", "true"),
            ("reachable_networks", "10.0.0.0/8"),
        ])
    };
    // A form without the session's token (a hostile page cannot read it) is refused.
    let own = browser.base.clone();
    for bad in ["", "0000", &csrf[..csrf.len() - 1]] {
        let r = browser.post("/portal/bastion", Some(&own), change(bad)).await?;
        ensure!(r.status() == StatusCode::FORBIDDEN, "{}", r.status());
        ensure!(r.text().await?.contains("CsrfTokenMismatch"));
    }
    // Even with the token, a request from another origin is refused.
    let r = browser.post("/portal/bastion", Some("https://evil.example"), change(&csrf)).await?;
    ensure!(r.status() == StatusCode::FORBIDDEN);
    ensure!(r.text().await?.contains("CrossOrigin"));
    let shown: serde_json::Value =
        serde_json::from_str(&gw.ok(&["network", "bastion", "show", "-n", "default", "-g", "default"])?)?;
    ensure!(shown["sku"]["name"] != "Basic", "no refused form changed the bastion: {shown}");
    // The genuine form works.
    let r = browser.post("/portal/bastion", Some(&own), change(&csrf)).await?;
    ensure!(r.status().is_redirection(), "{}", r.status());
    let shown: serde_json::Value =
        serde_json::from_str(&gw.ok(&["network", "bastion", "show", "-n", "default", "-g", "default"])?)?;
    ensure!(shown["sku"]["name"] == "Basic", "{shown}");
    ensure!(
        gw.audit()?.iter().any(|r| r["event"] == "bastion-change" && r["user"] == "admin"),
        "the portal's change is audited like the API's"
    );

    // Sign-out ends the session on the server: the old cookie is worthless.
    let r = browser.post("/portal/signout", Some(&own), form_body(&[("csrf", &csrf)])).await?;
    ensure!(r.status().is_redirection());
    let r = browser.get("/portal").await?;
    ensure!(r.status().is_redirection(), "a signed-out cookie still works: {}", r.status());

    // A password change ends every browser session of the user.
    tokio::task::block_in_place(|| gw.new_user("carol@example.com"))?;
    let mut carol = Browser::new(&gw)?;
    carol.sign_in("carol@example.com", "carol@example.com-Passw0rd-long").await?;
    ensure!(carol.get("/portal").await?.status() == StatusCode::OK);
    let mut child = gw
        .cli()
        .args(["ad", "user", "update", "--id", "carol@example.com", "--password-stdin"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .spawn()?;
    if let Some(mut stdin) = child.stdin.take() {
        use std::io::Write;
        writeln!(stdin, "a-brand-new-Passw0rd")?;
    }
    ensure!(child.wait()?.success(), "password change");
    ensure!(
        carol.get("/portal").await?.status().is_redirection(),
        "the old session survived a password change"
    );
    Ok(())
}

/// Posts the Connect form for an SSH session by IP with `sshd`'s key; returns the response.
async fn connect_with_key(browser: &Browser, sshd: &rampart_e2e::Sshd) -> Result<reqwest::Response> {
    let page = browser.get(&format!("/portal/connect?bastion={}", url_encode(BASTION))).await?.text().await?;
    let csrf = page
        .split("name=\"csrf\" value=\"")
        .nth(1)
        .and_then(|r| r.split('"').next())
        .context("no CSRF token on the Connect page")?
        .to_string();
    let key = std::fs::read_to_string(sshd.dir.path().join("userkey"))?;
    let port = sshd.port.to_string();
    let body = form_body(&[
        ("csrf", &csrf),
        ("bastion", BASTION),
        ("target", "ip"),
        ("ip", "127.0.0.1"),
        ("protocol", "ssh"),
        ("port", &port),
        ("username", &sshd.user),
        ("auth", "key"),
        ("private_key", &key),
    ]);
    browser.post("/portal/connect", Some(&browser.base.clone()), body).await
}

#[tokio::test(flavor = "multi_thread")]
async fn a_changed_host_key_is_refused_naming_both_fingerprints() -> Result<()> {
    let gw = tokio::task::block_in_place(|| Gateway::start(&[]))?;
    gw.allow_loopback()?;
    let mut sshd = tokio::task::block_in_place(rampart_e2e::Sshd::start)?;
    let mut browser = Browser::new(&gw)?;
    browser.sign_in("admin", ADMIN_PASSWORD).await?;

    // First use pins the key; the same key is accepted again.
    for _ in 0..2 {
        let r = connect_with_key(&browser, &sshd).await?;
        let to = r.headers().get("location").and_then(|v| v.to_str().ok()).unwrap_or_default().to_string();
        ensure!(to.starts_with("/portal/terminal/"), "{} {}", r.status(), r.text().await?);
    }
    // The same address now answers with another key: an impostor, as far as anyone knows.
    tokio::task::block_in_place(|| sshd.restart_with_new_host_key())?;
    let r = connect_with_key(&browser, &sshd).await?;
    ensure!(r.status() == StatusCode::BAD_GATEWAY, "{}", r.status());
    let page = r.text().await?;
    ensure!(page.contains("HostKeyChanged") && page.contains("host key has changed"), "{page}");
    ensure!(page.matches("SHA256:").count() >= 2, "both fingerprints are named: {page}");
    let audit = gw.audit()?;
    ensure!(
        audit.iter().any(|r| r["event"] == "connection-open"
            && r["result"] == "failed"
            && r["reasonCode"] == "HostKeyChanged"),
        "the refusal is audited"
    );

    // An operator who knows the machine was rebuilt sees the pin and forgets it; the next
    // session pins the new key (and is audited as a change).
    let target = format!("127.0.0.1:{}", sshd.port);
    let bastion = ["network", "bastion", "host-key"];
    let at = ["--name", "default", "--resource-group", "default"];
    let listed = gw.ok(&[&bastion[..], &["list"], &at[..]].concat())?;
    ensure!(listed.contains(&target) && listed.contains("\"kind\": \"ssh\""), "{listed}");
    let err = gw.refused(&[&bastion[..], &["forget"], &at[..], &["--target", "127.0.0.1:1"]].concat())?;
    ensure!(err.contains("HostKeyNotFound") || err.contains("no key is pinned"), "{err}");
    gw.ok(&[&bastion[..], &["forget"], &at[..], &["--target", &target]].concat())?;
    let listed = gw.ok(&[&bastion[..], &["list"], &at[..]].concat())?;
    ensure!(!listed.contains(&target), "{listed}");
    let r = connect_with_key(&browser, &sshd).await?;
    let to = r.headers().get("location").and_then(|v| v.to_str().ok()).unwrap_or_default().to_string();
    ensure!(to.starts_with("/portal/terminal/"), "after forgetting: {} {}", r.status(), r.text().await?);
    ensure!(
        gw.audit()?.iter().any(|r| r["event"] == "bastion-change"
            && r["reason"].as_str().is_some_and(|w| w.contains("forgot the pinned ssh key"))),
        "forgetting is audited"
    );
    Ok(())
}
