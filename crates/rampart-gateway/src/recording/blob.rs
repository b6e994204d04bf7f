//! Recordings in an Azure Blob container, reached by the container's SAS URL (`object_store`).
//! A recording is a run of chunk blobs, `recordings/ID/00000000`, `…/00000001`, …, each put
//! while the session runs: a crash loses at most the chunk not yet put (a second or two), and
//! what was put survives any restart. Its bytes are the chunks in name order.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures_util::TryStreamExt;
use object_store::azure::MicrosoftAzureBuilder;
use object_store::path::Path;
use object_store::{ClientOptions, ObjectStore, ObjectStoreExt, PutPayload, RetryConfig};
use url::Url;

#[derive(Debug, thiserror::Error)]
pub enum BlobError {
    #[error("the recording storage URL {0}")]
    BadUrl(String),
    #[error("the recording storage container refused or failed: {0}")]
    Storage(String),
    #[error("the recording is in {0}, which is not the bastion's recording storage any more")]
    Elsewhere(String),
}

/// One container, with the SAS token of the URL it was made from.
pub struct Container {
    store: Arc<dyn ObjectStore>,
    /// The container's URL without its query (safe to show and to store).
    base: String,
}

impl std::fmt::Debug for Container {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.base)
    }
}

/// An `object_store` error's text, without anything that looks like a SAS token.
fn scrub(e: impl std::fmt::Display) -> String {
    e.to_string()
        .split(' ')
        .map(|w| if w.contains("sig=") || w.contains("?sv=") { "<url hidden>" } else { w })
        .collect::<Vec<_>>()
        .join(" ")
}

fn is_loopback(host: &url::Host<&str>) -> bool {
    match host {
        url::Host::Domain(d) => d.eq_ignore_ascii_case("localhost"),
        url::Host::Ipv4(ip) => IpAddr::V4(*ip).is_loopback(),
        url::Host::Ipv6(ip) => IpAddr::V6(*ip).is_loopback(),
    }
}

fn bad(why: &str) -> BlobError {
    BlobError::BadUrl(why.to_string())
}

/// What a container SAS URL names: the account's endpoint, the container, the token.
pub struct SasUrl {
    pub account: String,
    pub container: String,
    pub endpoint: String,
    /// Plain HTTP (to an emulator on loopback only).
    pub http: bool,
    pairs: Vec<(String, String)>,
}

/// Checks the shape of a container SAS URL (`https://ACCOUNT.blob.core.windows.net/CONTAINER?sv=…&sig=…`,
/// or the path-style `http://127.0.0.1:PORT/ACCOUNT/CONTAINER?…` of an emulator on loopback).
pub fn parse_sas_url(text: &str) -> Result<SasUrl, BlobError> {
    let url = Url::parse(text.trim()).map_err(|_| bad("is not a URL"))?;
    let host = url.host().ok_or_else(|| bad("has no host"))?;
    let http = match url.scheme() {
        "https" => false,
        "http" if is_loopback(&host) => true,
        "http" => return Err(bad("must use https: a SAS token must not cross the network in clear")),
        _ => return Err(bad("must be an https URL")),
    };
    let pairs: Vec<(String, String)> =
        url.query_pairs().map(|(k, v)| (k.into_owned(), v.into_owned())).collect();
    if !pairs.iter().any(|(k, _)| k == "sig") {
        return Err(bad(
            "carries no SAS token (…?sv=…&sig=…): make a container SAS with the permissions read, add, create, write, list and delete",
        ));
    }
    let segments: Vec<&str> =
        url.path_segments().map(|s| s.filter(|p| !p.is_empty()).collect()).unwrap_or_default();
    let host_text = url.host_str().unwrap_or_default().to_ascii_lowercase();
    let origin = match url.port() {
        Some(port) => format!("{}://{}:{port}", url.scheme(), host_text),
        None => format!("{}://{}", url.scheme(), host_text),
    };
    // Azure names the account in the host; emulators and Azure Stack in the path.
    let (account, container, endpoint) = match (host_text.split_once(".blob."), segments.as_slice()) {
        (Some((account, _)), [container]) => (account.to_string(), container.to_string(), origin.clone()),
        (None, [account, container]) => {
            (account.to_string(), container.to_string(), format!("{origin}/{account}"))
        }
        _ => return Err(bad("must name one container: https://ACCOUNT.blob.core.windows.net/CONTAINER?SAS")),
    };
    let valid_name = (3..=63).contains(&container.len())
        && container.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
    if !valid_name {
        return Err(BlobError::BadUrl(format!(
            "names the container '{container}'; container names are 3 to 63 lowercase letters, digits and hyphens"
        )));
    }
    Ok(SasUrl { account, container, endpoint, http, pairs })
}

impl Container {
    /// A client for the container of a SAS URL ([`parse_sas_url`]). Nothing is sent yet.
    pub fn from_sas_url(text: &str) -> Result<Container, BlobError> {
        let SasUrl { account, container, endpoint, http, pairs } = parse_sas_url(text)?;
        let options = ClientOptions::new()
            .with_timeout(Duration::from_secs(30))
            .with_connect_timeout(Duration::from_secs(5))
            .with_allow_http(http);
        let retry =
            RetryConfig { max_retries: 3, retry_timeout: Duration::from_secs(30), ..Default::default() };
        let store = MicrosoftAzureBuilder::new()
            .with_account(account)
            .with_container_name(&container)
            .with_endpoint(endpoint.clone())
            .with_client_options(options)
            .with_allow_http(http)
            .with_retry(retry)
            .with_sas_authorization(pairs)
            .build()
            .map_err(|e| BlobError::BadUrl(format!("cannot be used: {}", scrub(e))))?;
        Ok(Container { store: Arc::new(store), base: format!("{endpoint}/{container}") })
    }

    /// The container's URL, without its SAS token.
    pub fn base(&self) -> &str {
        &self.base
    }

    /// Where a recording's chunks go: a location the store keeps (no credential in it).
    pub fn location_of(&self, recording_id: &str) -> String {
        format!("{}/recordings/{recording_id}/", self.base)
    }

    /// The chunks' prefix of a location in this container.
    fn prefix(&self, location: &str) -> Result<Path, BlobError> {
        location
            .strip_prefix(&self.base)
            .and_then(|rest| rest.strip_prefix('/'))
            .map(|rest| Path::from(rest.trim_end_matches('/')))
            .ok_or_else(|| {
                BlobError::Elsewhere(location.split("/recordings/").next().unwrap_or(location).into())
            })
    }

    /// Puts chunk number `n` of the recording at `location`.
    pub async fn put_chunk(&self, location: &str, n: u32, bytes: Bytes) -> Result<(), BlobError> {
        let path = self.prefix(location)?.join(format!("{n:08}").as_str());
        self.store
            .put(&path, PutPayload::from_bytes(bytes))
            .await
            .map_err(|e| BlobError::Storage(scrub(e)))?;
        Ok(())
    }

    /// The chunks of a recording, in order.
    async fn chunks(&self, location: &str) -> Result<Vec<Path>, BlobError> {
        let prefix = self.prefix(location)?;
        let mut paths: Vec<Path> = self
            .store
            .list(Some(&prefix))
            .map_ok(|meta| meta.location)
            .try_collect()
            .await
            .map_err(|e| BlobError::Storage(scrub(e)))?;
        paths.sort_by(|a, b| a.as_ref().cmp(b.as_ref()));
        Ok(paths)
    }

    /// A recording's bytes: its chunks, concatenated.
    pub async fn read(&self, location: &str) -> Result<Vec<u8>, BlobError> {
        let mut out = Vec::new();
        for path in self.chunks(location).await? {
            let got = self.store.get(&path).await.map_err(|e| BlobError::Storage(scrub(e)))?;
            out.extend_from_slice(&got.bytes().await.map_err(|e| BlobError::Storage(scrub(e)))?);
        }
        Ok(out)
    }

    /// Deletes a recording's chunks.
    pub async fn delete(&self, location: &str) -> Result<(), BlobError> {
        for path in self.chunks(location).await? {
            self.store.delete(&path).await.map_err(|e| BlobError::Storage(scrub(e)))?;
        }
        Ok(())
    }

    /// Writes, lists, reads and deletes a small blob: what recording will need, checked before
    /// the URL is accepted, so a wrong token is refused now and not found out mid-session.
    pub async fn check(&self) -> Result<(), BlobError> {
        let probe = self.location_of(".rampart-check");
        let what = Bytes::from_static(b"rampart checks this container can hold recordings\n");
        self.put_chunk(&probe, 0, what.clone()).await?;
        let read = self.read(&probe).await?;
        if read != what {
            return Err(BlobError::Storage("a blob just written reads back differently".into()));
        }
        self.delete(&probe).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn container_urls_of_azure_and_of_an_emulator() {
        let azure = Container::from_sas_url(
            "https://acct.blob.core.windows.net/rec?sv=2022-11-02&sr=c&sp=racwdl&sig=abc",
        )
        .expect("azure");
        assert_eq!(azure.base(), "https://acct.blob.core.windows.net/rec");
        let emulator =
            Container::from_sas_url("http://127.0.0.1:10000/devstoreaccount1/rec?sv=2022-11-02&sig=abc")
                .expect("emulator");
        assert_eq!(emulator.base(), "http://127.0.0.1:10000/devstoreaccount1/rec");
        assert_eq!(emulator.location_of("s1"), "http://127.0.0.1:10000/devstoreaccount1/rec/recordings/s1/");
        assert_eq!(emulator.prefix(&emulator.location_of("s1")).expect("prefix").as_ref(), "recordings/s1");
        assert!(matches!(azure.prefix(&emulator.location_of("s1")), Err(BlobError::Elsewhere(_))));
        assert!(!format!("{azure:?}").contains("sig"));
    }

    #[test]
    fn bad_urls_are_refused_saying_why() {
        for (url, why) in [
            ("not a url", "not a URL"),
            ("http://acct.blob.core.windows.net/rec?sig=x", "https"),
            ("https://acct.blob.core.windows.net/rec", "no SAS token"),
            ("https://acct.blob.core.windows.net/?sig=x", "one container"),
            ("https://acct.blob.core.windows.net/a/b/c?sig=x", "one container"),
            ("https://acct.blob.core.windows.net/Bad_Name?sig=x", "container names"),
            ("ftp://127.0.0.1/a/b?sig=x", "https"),
        ] {
            let err = Container::from_sas_url(url).expect_err(url).to_string();
            assert!(err.contains(why), "{url}: {err}");
            assert!(!err.contains("sig=x"), "{err}");
        }
    }

    #[test]
    fn errors_lose_their_tokens() {
        assert_eq!(scrub("GET http://h/a?sv=1&sig=zz failed"), "GET <url hidden> failed");
    }
}
