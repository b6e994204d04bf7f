//! Audit entries: what happened, to whom, with what result and why. Pure data; the store
//! appends them and the gateway writes one before any byte of a connection flows.

use std::collections::BTreeMap;
use std::fmt;

use chrono::{DateTime, SecondsFormat, Utc};
use sha2::{Digest, Sha256};

/// What kind of event an audit entry records.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuditEvent {
    SignIn,
    TunnelRequest,
    ConnectionOpen,
    ConnectionClose,
    BastionChange,
    InventoryChange,
    UserChange,
    RoleChange,
    /// A read that was refused (reads that succeed are not audited).
    Read,
    /// An SSH certificate for identity sign-in, issued or refused.
    Certificate,
    /// An operator ended someone's live session.
    SessionDisconnect,
    /// Just-in-time access: an activation requested, approved, denied, revoked or expired.
    Activation,
    /// A session's recording, finished (its size and SHA-256).
    Recording,
    /// An operator joined someone's live session (to watch, or to type too).
    SessionJoin,
    /// A shareable link made or deleted (its uses are `connection-open` records whose user
    /// names the link).
    ShareableLink,
    /// A file moved between the browser and the target (its path, size and SHA-256), or
    /// refused.
    FileTransfer,
}

impl AuditEvent {
    pub fn as_str(self) -> &'static str {
        match self {
            AuditEvent::SignIn => "sign-in",
            AuditEvent::TunnelRequest => "tunnel-request",
            AuditEvent::ConnectionOpen => "connection-open",
            AuditEvent::ConnectionClose => "connection-close",
            AuditEvent::BastionChange => "bastion-change",
            AuditEvent::InventoryChange => "inventory-change",
            AuditEvent::UserChange => "user-change",
            AuditEvent::RoleChange => "role-change",
            AuditEvent::Read => "read",
            AuditEvent::Certificate => "ssh-certificate",
            AuditEvent::SessionDisconnect => "session-disconnect",
            AuditEvent::Activation => "activation",
            AuditEvent::Recording => "recording",
            AuditEvent::SessionJoin => "session-join",
            AuditEvent::ShareableLink => "shareable-link",
            AuditEvent::FileTransfer => "file-transfer",
        }
    }

    pub fn parse(s: &str) -> Option<AuditEvent> {
        [
            AuditEvent::SignIn,
            AuditEvent::TunnelRequest,
            AuditEvent::ConnectionOpen,
            AuditEvent::ConnectionClose,
            AuditEvent::BastionChange,
            AuditEvent::InventoryChange,
            AuditEvent::UserChange,
            AuditEvent::RoleChange,
            AuditEvent::Read,
            AuditEvent::Certificate,
            AuditEvent::SessionDisconnect,
            AuditEvent::Activation,
            AuditEvent::Recording,
            AuditEvent::SessionJoin,
            AuditEvent::ShareableLink,
            AuditEvent::FileTransfer,
        ]
        .into_iter()
        .find(|e| e.as_str() == s)
    }
}

/// The outcome an audit entry records.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuditResult {
    Allowed,
    Refused,
    /// Allowed, but the target could not be reached or the connection broke.
    Failed,
    /// A connection that ended; bytes and duration are filled in.
    Closed,
}

impl AuditResult {
    pub fn as_str(self) -> &'static str {
        match self {
            AuditResult::Allowed => "allowed",
            AuditResult::Refused => "refused",
            AuditResult::Failed => "failed",
            AuditResult::Closed => "closed",
        }
    }

    pub fn parse(s: &str) -> Option<AuditResult> {
        [AuditResult::Allowed, AuditResult::Refused, AuditResult::Failed, AuditResult::Closed]
            .into_iter()
            .find(|e| e.as_str() == s)
    }
}

/// One audit entry. `id` is assigned by the store when it is appended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditEntry {
    pub id: Option<i64>,
    pub time: DateTime<Utc>,
    pub event: AuditEvent,
    pub user: Option<String>,
    pub client_address: Option<String>,
    pub bastion_id: Option<String>,
    pub target_ip: Option<String>,
    pub target_port: Option<u16>,
    pub tunnel_id: Option<String>,
    pub connection_id: Option<String>,
    pub result: AuditResult,
    pub reason_code: Option<String>,
    pub reason: Option<String>,
    pub bytes_to_target: Option<u64>,
    pub bytes_from_target: Option<u64>,
    pub duration_ms: Option<u64>,
    pub user_agent: Option<String>,
    /// `tcptunnel` for tunnels (and later `ssh`, `rdp` for browser sessions).
    pub protocol: Option<String>,
    pub target_resource_id: Option<String>,
    /// The chain it is in: the name of the node that appended it on a store several nodes
    /// share (each node has its own, so nodes never wait on each other to append); `None`
    /// for the one chain of a single node. Set by the store when appending.
    pub chain: Option<String>,
    /// Its number in its chain, from 1 with no gaps; set by the store when appending.
    pub seq: Option<i64>,
    /// Hash of the previous entry (the chain); set by the store when appending.
    pub prev_hash: Option<String>,
    /// This entry's hash, over `prev_hash` and every field above.
    pub hash: Option<String>,
}

/// The hash of the chain's start.
pub const GENESIS_HASH: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// SHA-256 over the chain's name (when it has one), the previous hash, the entry's number in
/// its chain and every field of `entry`, each field length-prefixed so no two different
/// entries serialize alike. Editing, deleting or reordering any entry breaks its chain from
/// there on. (The one chain of a single node, unnamed, hashes as it did before chains had
/// names, with the record's id as its number.)
pub fn chain_hash(prev_hash: &str, seq: i64, entry: &AuditEntry) -> String {
    let mut h = Sha256::new();
    let mut field = |v: &str| {
        h.update((v.len() as u64).to_be_bytes());
        h.update(v.as_bytes());
    };
    let num = |v: Option<u64>| v.map(|n| n.to_string()).unwrap_or_default();
    let opt = |v: &Option<String>| v.clone().unwrap_or_else(|| "\u{0}".to_string());
    if let Some(chain) = entry.chain.as_deref().filter(|c| !c.is_empty()) {
        field(chain);
    }
    field(prev_hash);
    field(&seq.to_string());
    field(&entry.time.to_rfc3339_opts(SecondsFormat::Micros, true));
    field(entry.event.as_str());
    field(&opt(&entry.user));
    field(&opt(&entry.client_address));
    field(&opt(&entry.bastion_id));
    field(&opt(&entry.target_ip));
    field(&num(entry.target_port.map(u64::from)));
    field(&opt(&entry.tunnel_id));
    field(&opt(&entry.connection_id));
    field(entry.result.as_str());
    field(&opt(&entry.reason_code));
    field(&opt(&entry.reason));
    field(&num(entry.bytes_to_target));
    field(&num(entry.bytes_from_target));
    field(&num(entry.duration_ms));
    field(&opt(&entry.user_agent));
    field(&opt(&entry.protocol));
    field(&opt(&entry.target_resource_id));
    let digest = h.finalize();
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

/// Where a chain breaks, if it does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainBreak {
    /// The record's id.
    pub id: i64,
    /// Its chain (`None`: the unnamed one) and number there.
    pub chain: Option<String>,
    pub seq: i64,
    pub why: &'static str,
}

impl fmt::Display for ChainBreak {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.chain {
            Some(chain) => write!(
                f,
                "record {} (number {} of node {chain}'s chain) fails verification ({})",
                self.id, self.seq, self.why
            ),
            None => write!(f, "record {} fails verification ({})", self.id, self.why),
        }
    }
}

/// One verified chain: its name, length and last hash (an anchor to keep elsewhere: only it
/// reveals records cut from the end).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainHead {
    pub chain: Option<String>,
    pub records: usize,
    pub last_hash: Option<String>,
}

/// Checks one chain's entries (in order) against their stored hashes; names the first bad one.
pub fn verify_chain(entries: &[AuditEntry]) -> Result<usize, ChainBreak> {
    let mut prev = GENESIS_HASH.to_string();
    let mut prev_seq = 0i64;
    for e in entries {
        let id = e.id.unwrap_or_default();
        let seq = e.seq.unwrap_or(id);
        let broken = |why| ChainBreak { id, chain: e.chain.clone(), seq, why };
        if seq != prev_seq + 1 {
            return Err(broken("an entry before it is missing or out of order"));
        }
        if e.prev_hash.as_deref() != Some(prev.as_str()) {
            return Err(broken("it does not follow the entry before it"));
        }
        let expected = chain_hash(&prev, seq, e);
        if e.hash.as_deref() != Some(expected.as_str()) {
            return Err(broken("its content was altered"));
        }
        prev = expected;
        prev_seq = seq;
    }
    Ok(entries.len())
}

/// Checks every chain in `entries` (any order: each chain is taken in its own order); names
/// the first bad record of a broken one.
pub fn verify_chains(entries: &[AuditEntry]) -> Result<Vec<ChainHead>, ChainBreak> {
    let mut chains: BTreeMap<Option<&str>, Vec<&AuditEntry>> = BTreeMap::new();
    for e in entries {
        chains.entry(e.chain.as_deref().filter(|c| !c.is_empty())).or_default().push(e);
    }
    let mut heads = Vec::with_capacity(chains.len());
    for (chain, mut records) in chains {
        records.sort_by_key(|e| e.seq.or(e.id));
        let owned: Vec<AuditEntry> = records.into_iter().cloned().collect();
        let n = verify_chain(&owned)?;
        heads.push(ChainHead {
            chain: chain.map(str::to_string),
            records: n,
            last_hash: owned.last().and_then(|e| e.hash.clone()),
        });
    }
    Ok(heads)
}

impl AuditEntry {
    /// The close record of the connection this open record began, written by someone other
    /// than its session (a restart, the reaper of a lost node): the same who/what/where, at
    /// `time`, `Failed` when a `code` names a failure, `Closed` otherwise.
    pub fn closing(&self, time: DateTime<Utc>, reason: &str, code: Option<&str>) -> AuditEntry {
        AuditEntry {
            id: None,
            time,
            event: AuditEvent::ConnectionClose,
            result: if code.is_some() { AuditResult::Failed } else { AuditResult::Closed },
            reason: Some(reason.to_string()),
            reason_code: code.map(str::to_string),
            chain: None,
            seq: None,
            prev_hash: None,
            hash: None,
            ..self.clone()
        }
    }

    /// An entry with only the required fields; the rest are set by the caller.
    pub fn new(time: DateTime<Utc>, event: AuditEvent, result: AuditResult) -> Self {
        AuditEntry {
            id: None,
            time,
            event,
            user: None,
            client_address: None,
            bastion_id: None,
            target_ip: None,
            target_port: None,
            tunnel_id: None,
            connection_id: None,
            result,
            reason_code: None,
            reason: None,
            bytes_to_target: None,
            bytes_from_target: None,
            duration_ms: None,
            user_agent: None,
            protocol: None,
            target_resource_id: None,
            chain: None,
            seq: None,
            prev_hash: None,
            hash: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chain(n: usize) -> Vec<AuditEntry> {
        let mut prev = GENESIS_HASH.to_string();
        (1..=n as i64)
            .map(|id| {
                let mut e = AuditEntry::new(Utc::now(), AuditEvent::TunnelRequest, AuditResult::Allowed);
                e.user = Some(format!("user{id}"));
                e.id = Some(id);
                e.prev_hash = Some(prev.clone());
                let h = chain_hash(&prev, id, &e);
                e.hash = Some(h.clone());
                prev = h;
                e
            })
            .collect()
    }

    #[test]
    fn an_intact_chain_verifies() {
        assert_eq!(verify_chain(&chain(5)), Ok(5));
    }

    /// A chain named after `node`, records numbered from 1, ids from `first_id` in steps of 2
    /// (another node's records in between).
    fn node_chain(node: &str, n: i64, first_id: i64) -> Vec<AuditEntry> {
        let mut prev = GENESIS_HASH.to_string();
        (1..=n)
            .map(|seq| {
                let mut e = AuditEntry::new(Utc::now(), AuditEvent::ConnectionOpen, AuditResult::Allowed);
                e.chain = Some(node.into());
                e.seq = Some(seq);
                e.id = Some(first_id + 2 * (seq - 1));
                e.prev_hash = Some(prev.clone());
                let h = chain_hash(&prev, seq, &e);
                e.hash = Some(h.clone());
                prev = h;
                e
            })
            .collect()
    }

    #[test]
    fn every_chain_verifies_and_a_broken_one_is_named() {
        let mut all = chain(3);
        all.extend(node_chain("gw-1", 4, 4));
        all.extend(node_chain("gw-2", 4, 5));
        all.reverse();
        let heads = verify_chains(&all).map_err(|b| b.to_string());
        let heads = heads.as_deref().unwrap_or_default();
        let names: Vec<_> = heads.iter().map(|h| (h.chain.as_deref(), h.records)).collect();
        assert_eq!(names, [(None, 3), (Some("gw-1"), 4), (Some("gw-2"), 4)]);

        // A record moved to another node's chain no longer verifies there.
        let mut moved = all.clone();
        if let Some(e) = moved.iter_mut().find(|e| e.chain.as_deref() == Some("gw-2") && e.seq == Some(2)) {
            e.chain = Some("gw-1".into());
        }
        assert!(verify_chains(&moved).is_err());

        let mut edited = all.clone();
        if let Some(e) = edited.iter_mut().find(|e| e.chain.as_deref() == Some("gw-2") && e.seq == Some(3)) {
            e.reason = Some("nothing to see".into());
        }
        let broken = verify_chains(&edited).err().map(|b| b.to_string()).unwrap_or_default();
        assert_eq!(
            broken,
            "record 9 (number 3 of node gw-2's chain) fails verification (its content was altered)"
        );
    }

    #[test]
    fn edits_deletions_and_reordering_are_found() {
        let mut edited = chain(5);
        edited[2].user = Some("mallory".into());
        assert_eq!(verify_chain(&edited).map_err(|b| b.id), Err(3));
        let mut deleted = chain(5);
        deleted.remove(1);
        assert_eq!(verify_chain(&deleted).map_err(|b| b.id), Err(3));
        let mut swapped = chain(5);
        swapped.swap(1, 2);
        assert!(verify_chain(&swapped).is_err());
    }
}
