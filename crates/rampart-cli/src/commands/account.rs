//! `rampart login`, `logout` and `account list|show|set`.

use std::io::{BufRead, IsTerminal, Write};
use std::process::ExitCode;

use anyhow::{Context, Result, anyhow, bail};
use rampart_client::{ApiClient, Trust};
use serde::Serialize;

use crate::cli::{AccountCommand, LoginArgs, OutputFormat};
use crate::output::print;
use crate::profile::{CurrentSubscription, Profile};

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct AccountView {
    id: String,
    name: String,
    state: String,
    is_default: bool,
    user: String,
}

const ACCOUNT_COLUMNS: &[(&str, &str)] =
    &[("Name", "name"), ("SubscriptionId", "id"), ("State", "state"), ("IsDefault", "isDefault")];

pub async fn login(args: LoginArgs) -> Result<ExitCode> {
    let previous = Profile::load().ok().flatten();
    let server = args
        .server
        .or_else(|| previous.as_ref().map(|p| p.server.clone()))
        .ok_or_else(|| anyhow!("which gateway? pass --server https://HOST[:PORT]"))?;
    let trust = match (args.fingerprint, args.ca_file) {
        (Some(fp), _) => Trust::Fingerprint(fp),
        (None, Some(ca)) => Trust::CaFile(ca),
        (None, None) => match &previous {
            Some(p) if p.server == server.trim_end_matches('/') => p.trust.clone(),
            _ => Trust::SystemRoots,
        },
    };
    if let Some(provider) = args.identity_provider.clone() {
        let client = ApiClient::new(&server, trust.clone())?;
        let signed_in = if args.use_device_code {
            client.sign_in_with_device_code(&provider, |start| eprintln!("{}", start.message)).await
        } else {
            client
                .sign_in_with_browser(&provider, |url| {
                    let opened = open_browser(url);
                    let lead = if opened { "A web browser has been opened at" } else { "Open this address in a web browser:" };
                    eprintln!(
                        "{lead} {url}. Please continue the login in the web browser. If no web browser is available or if the web browser fails to open, use device code flow with `rampart login --identity-provider {provider} --use-device-code`."
                    );
                })
                .await
        };
        let session = signed_in.map_err(|e| untrusted_hint(e, &trust))?;
        return finish_login(&client, trust, session).await;
    }
    let username = match args.username {
        Some(u) => u,
        None if std::io::stdin().is_terminal() => prompt("Username: ")?,
        None => bail!("no terminal to ask for the user name: pass --username"),
    };
    let password = if let Some(p) = args.password {
        p
    } else if args.password_stdin {
        let mut line = String::new();
        std::io::stdin()
            .lock()
            .read_line(&mut line)
            .context("cannot read the password from standard input")?;
        line.trim_end_matches(['\n', '\r']).to_string()
    } else if std::io::stdin().is_terminal() {
        rpassword::prompt_password("Password: ").context("cannot read the password")?
    } else {
        bail!("no terminal to ask for the password: pass --password-stdin");
    };
    let client = ApiClient::new(&server, trust.clone())?;
    let signed_in = if args.service_principal {
        client.login_service_principal(&username, &password, args.tenant.as_deref()).await
    } else {
        match client.login_with_mfa(&username, &password, args.mfa_code.as_deref()).await {
            // The account has a second factor and none was given: ask at a terminal.
            Err(e) if e.code() == Some("MfaRequired") && args.mfa_code.is_none() => {
                if !std::io::stdin().is_terminal() {
                    bail!("{e}\nno terminal to ask for the code: pass --mfa-code CODE");
                }
                let code = prompt("Authentication code: ")?;
                client.login_with_mfa(&username, &password, Some(code.trim())).await
            }
            other => other,
        }
    };
    let session = signed_in.map_err(|e| untrusted_hint(e, &trust))?;
    finish_login(&client, trust, session).await
}

fn untrusted_hint(e: rampart_client::ClientError, trust: &Trust) -> anyhow::Error {
    let text = e.to_string();
    if matches!(trust, Trust::SystemRoots) && (text.contains("certificate") || text.contains("UnknownIssuer"))
    {
        anyhow!(
            "{text}\nthe gateway's certificate is not trusted: pass --fingerprint SHA256:… (printed by `rampart serve`) or --ca-file PEM"
        )
    } else {
        anyhow!(e)
    }
}

/// Opens the system browser (`RAMPART_BROWSER`, else xdg-open or open); false when none runs.
fn open_browser(url: &str) -> bool {
    let program = std::env::var("RAMPART_BROWSER").ok().filter(|b| !b.is_empty());
    let candidates: Vec<String> = match program {
        Some(p) if p == "none" => return false,
        Some(p) => vec![p],
        None => vec!["xdg-open".into(), "open".into()],
    };
    candidates.iter().any(|p| {
        std::process::Command::new(p)
            .arg(url)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .is_ok()
    })
}

/// What every sign-in ends with: the subscriptions listed and the profile saved.
async fn finish_login(
    client: &ApiClient,
    trust: Trust,
    session: rampart_client::Session,
) -> Result<ExitCode> {
    let subs = client.subscriptions().await?;
    let current = subs.first().map(|s| CurrentSubscription { id: s.id.clone(), name: s.name.clone() });
    let profile = Profile {
        server: client.server().to_string(),
        trust,
        // The client may have renewed the tokens already (listing the subscriptions with an
        // access token about to expire): the newest ones are saved, not the consumed ones.
        session: client.session().or_else(|| Some(session.clone())),
        subscription: current.clone(),
    };
    profile.save()?;
    let views: Vec<AccountView> = subs
        .into_iter()
        .map(|s| AccountView {
            is_default: current.as_ref().is_some_and(|c| c.id == s.id),
            id: s.id,
            name: s.name,
            state: s.state,
            user: session.username.clone(),
        })
        .collect();
    print(&views, OutputFormat::Json, ACCOUNT_COLUMNS)?;
    Ok(ExitCode::SUCCESS)
}

fn prompt(text: &str) -> Result<String> {
    eprint!("{text}");
    std::io::stderr().flush().ok();
    let mut line = String::new();
    std::io::stdin().lock().read_line(&mut line)?;
    Ok(line.trim().to_string())
}

pub async fn logout() -> Result<ExitCode> {
    let Some(profile) = Profile::load()? else {
        eprintln!("not signed in");
        return Ok(ExitCode::SUCCESS);
    };
    if profile.session.is_some()
        && let Err(e) = profile.client()?.logout().await
    {
        eprintln!("warning: the gateway did not confirm the sign-out ({e}); forgetting the session anyway");
    }
    Profile::delete()?;
    eprintln!("signed out of {}", profile.server);
    Ok(ExitCode::SUCCESS)
}

pub async fn run(cmd: AccountCommand) -> Result<ExitCode> {
    let mut profile = Profile::require()?;
    let client = profile.client()?;
    let user = profile.session.as_ref().map(|s| s.username.clone()).unwrap_or_default();
    let subs = client.subscriptions().await?;
    let view = |s: &rampart_proto::api::Subscription, current: Option<&CurrentSubscription>| AccountView {
        id: s.id.clone(),
        name: s.name.clone(),
        state: s.state.clone(),
        is_default: current.is_some_and(|c| c.id == s.id),
        user: user.clone(),
    };
    match cmd {
        AccountCommand::List { output } => {
            let views: Vec<AccountView> =
                subs.iter().map(|s| view(s, profile.subscription.as_ref())).collect();
            print(&views, output, ACCOUNT_COLUMNS)?;
        }
        AccountCommand::Show { output } => {
            let current =
                profile.subscription.as_ref().and_then(|c| subs.iter().find(|s| s.id == c.id)).ok_or_else(
                    || anyhow!("no current subscription: run `rampart account set --subscription NAME`"),
                )?;
            print(&view(current, profile.subscription.as_ref()), output, ACCOUNT_COLUMNS)?;
        }
        AccountCommand::Set { subscription } => {
            let found = subs
                .iter()
                .find(|s| {
                    s.id.eq_ignore_ascii_case(&subscription) || s.name.eq_ignore_ascii_case(&subscription)
                })
                .ok_or_else(|| {
                    let names: Vec<&str> = subs.iter().map(|s| s.name.as_str()).collect();
                    anyhow!("subscription '{subscription}' was not found; yours: {}", names.join(", "))
                })?;
            profile.subscription =
                Some(CurrentSubscription { id: found.id.clone(), name: found.name.clone() });
            // Keep tokens refreshed by the calls above.
            profile.session = client.session();
            profile.save()?;
            eprintln!("current subscription: {} ({})", found.name, found.id);
        }
    }
    Ok(ExitCode::SUCCESS)
}
