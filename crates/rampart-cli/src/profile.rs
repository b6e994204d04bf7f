//! The client's saved state: which gateway, how its certificate is trusted, the session
//! tokens and the current subscription. One JSON file, mode 0600, in `$RAMPART_CONFIG_DIR`
//! (default `~/.config/rampart`).

use std::fs;
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::PathBuf;

use anyhow::{Context, Result, anyhow};
use rampart_client::{ApiClient, Session, Trust};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CurrentSubscription {
    pub id: String,
    pub name: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Profile {
    pub server: String,
    pub trust: Trust,
    pub session: Option<Session>,
    pub subscription: Option<CurrentSubscription>,
}

pub fn config_dir() -> Result<PathBuf> {
    if let Some(dir) = std::env::var_os("RAMPART_CONFIG_DIR") {
        return Ok(PathBuf::from(dir));
    }
    let home =
        std::env::var_os("HOME").ok_or_else(|| anyhow!("neither RAMPART_CONFIG_DIR nor HOME is set"))?;
    Ok(PathBuf::from(home).join(".config").join("rampart"))
}

fn profile_path() -> Result<PathBuf> {
    Ok(config_dir()?.join("profile.json"))
}

impl Profile {
    pub fn load() -> Result<Option<Profile>> {
        let path = profile_path()?;
        match fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes).map(Some).with_context(|| {
                format!("{} is not a valid profile; `rampart login` writes a new one", path.display())
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e).with_context(|| format!("cannot read {}", path.display())),
        }
    }

    /// The saved profile, or an error telling the user to sign in.
    pub fn require() -> Result<Profile> {
        Profile::load()?.ok_or_else(|| anyhow!("not signed in: run `rampart login --server URL` first"))
    }

    pub fn save(&self) -> Result<()> {
        let path = profile_path()?;
        let dir = path.parent().ok_or_else(|| anyhow!("bad profile path"))?;
        fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
        fs::set_permissions(dir, fs::Permissions::from_mode(0o700)).ok();
        // Write a temporary file and rename it, so a crash never leaves half a profile.
        let tmp = path.with_extension("json.tmp");
        let mut f = fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)
            .with_context(|| format!("cannot write {}", tmp.display()))?;
        f.write_all(&serde_json::to_vec_pretty(self)?)?;
        f.sync_all()?;
        fs::rename(&tmp, &path).with_context(|| format!("cannot write {}", path.display()))?;
        Ok(())
    }

    pub fn delete() -> Result<()> {
        let path = profile_path()?;
        match fs::remove_file(&path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                Err(e).with_context(|| format!("cannot remove {}", path.display()))
            }
            _ => Ok(()),
        }
    }

    /// An API client for this profile whose refreshed tokens are saved back.
    pub fn client(&self) -> Result<ApiClient> {
        let saved = self.clone();
        Ok(ApiClient::new(&self.server, self.trust.clone())?
            .with_session(self.session.clone())
            .on_session_change(move |s| {
                let mut p = saved.clone();
                p.session = Some(s.clone());
                if let Err(e) = p.save() {
                    eprintln!("warning: cannot save the refreshed session: {e:#}");
                }
            }))
    }

    /// With no current subscription saved (the user had no roles when signing in), asks the
    /// gateway again and makes the only visible subscription current.
    pub async fn ensure_subscription(&mut self, client: &ApiClient) -> Result<()> {
        if self.subscription.is_some() {
            return Ok(());
        }
        if let [only] = client.subscriptions().await?.as_slice() {
            self.subscription = Some(CurrentSubscription { id: only.id.clone(), name: only.name.clone() });
            self.session = client.session();
            self.save()?;
        }
        Ok(())
    }

    /// The subscription to use: the one given, or the current one.
    pub fn subscription(&self, given: Option<&str>) -> Result<String> {
        match (given, &self.subscription) {
            (Some(s), _) => Ok(s.to_string()),
            (None, Some(s)) => Ok(s.id.clone()),
            (None, None) => Err(anyhow!(
                "no current subscription: you hold no role in any subscription of this gateway yet \
                 (an administrator can give you one, e.g. Reader on the bastion); pass --subscription NAME, \
                 or name the target by --target-resource-id"
            )),
        }
    }
}
