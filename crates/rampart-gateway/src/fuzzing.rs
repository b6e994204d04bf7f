//! Entry points for the fuzzers in `fuzz/` and for the corpus replay test: each takes raw
//! bytes from outside and must never panic, whatever they are.

use std::sync::OnceLock;

use rampart_core::{ResourceId, Scope, parse_target_ip};
use rampart_proto::api::{
    BastionChange, LoginRequest, RoleAssignmentCreate, RoleDefinitionView, SshCertificateRequest, UserCreate,
    VmRegistration,
};
use rampart_proto::tunnel::{Control, TunnelRequest};

use crate::auth::TokenKeys;

/// Resource IDs, scopes, target addresses, activation durations, file transfer settings and
/// shareable links as pasted: parse, print, parse again.
pub fn identifiers(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else { return };
    if let Ok(id) = text.parse::<ResourceId>() {
        let again: Result<ResourceId, _> = id.to_string().parse();
        assert!(again.is_ok_and(|a| a == id), "a printed resource ID must parse to itself");
        let _ = (id.kind(), id.read_action(), id.parent());
    }
    if let Ok(scope) = text.parse::<Scope>() {
        let _ = scope.contains(&scope);
    }
    let _ = parse_target_ip(text);
    // A bastion's file transfer setting: whatever parses prints to itself.
    if let Ok(t) = text.parse::<rampart_core::FileTransfer>() {
        assert_eq!(
            t.to_string().parse::<rampart_core::FileTransfer>(),
            Ok(t),
            "a printed setting parses back"
        );
    }
    // A shareable link as pasted: the token found is one path segment of it.
    let token = crate::shareable::token_of(text);
    assert!(text.contains(token) && !token.contains(['/', '?', '#']), "a token is one segment");
    let _ = rampart_core::shareable::lifetime_secs(Some(text));
    // Activation durations (`PT1H30M`): whatever parses prints back to the same length.
    if let Ok(secs) = rampart_core::activation::parse_duration(text) {
        let printed = rampart_core::activation::format_duration(secs);
        assert_eq!(
            rampart_core::activation::parse_duration(&printed),
            Ok(secs),
            "a printed duration parses back"
        );
    }
}

/// Tunnel control messages, v3 frames and every JSON body the API accepts.
pub fn messages(data: &[u8]) {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = Control::decode(text);
    }
    // Protocol v3 frames: whatever decodes must encode to something that decodes again.
    let mut wire = bytes::BytesMut::from(data);
    while let Ok(Some(frame)) = rampart_proto::mux::decode(&mut wire) {
        let mut again = bytes::BytesMut::new();
        frame.encode(&mut again);
        assert!(
            matches!(rampart_proto::mux::decode(&mut again), Ok(Some(_))),
            "an encoded frame must decode"
        );
    }
    let _ = serde_json::from_slice::<TunnelRequest>(data);
    let _ = serde_json::from_slice::<BastionChange>(data);
    let _ = serde_json::from_slice::<LoginRequest>(data);
    let _ = serde_json::from_slice::<UserCreate>(data);
    let _ = serde_json::from_slice::<Vec<VmRegistration>>(data);
    let _ = serde_json::from_slice::<RoleAssignmentCreate>(data);
    let _ = serde_json::from_slice::<RoleDefinitionView>(data);
    let _ = serde_json::from_slice::<SshCertificateRequest>(data);
    let _ = serde_json::from_slice::<rampart_proto::api::VmChange>(data);
    let _ = serde_json::from_slice::<rampart_proto::shareable::ShareableLinkRequest>(data);
    let _ = serde_json::from_slice::<rampart_proto::shareable::ShareableLinkDelete>(data);
    let _ = serde_json::from_slice::<rampart_proto::shareable::ShareableLinkTokens>(data);
}

/// Token verification with a fixed key: any bytes are refused or accepted, never a panic.
pub fn tokens(data: &[u8]) {
    static KEYS: OnceLock<TokenKeys> = OnceLock::new();
    let keys = KEYS.get_or_init(|| TokenKeys::from_secret(&[42u8; 32]));
    let Ok(text) = std::str::from_utf8(data) else { return };
    let _ = keys.verify_access(text);
    let _ = keys.verify_tunnel(text);
}

/// PROXY protocol headers (what a balancer, or anyone, sends before TLS): a v2 length is
/// bounded, and whatever parses names an address or none, never a panic.
pub fn proxy_header(data: &[u8]) {
    if let Ok(total) = crate::proxy_protocol::header_len(data) {
        assert!(total >= 16, "a v2 header is at least its fixed part");
    }
    let _ = crate::proxy_protocol::parse(data);
}

/// Sign-in's new inputs: an identity provider's claims (as JSON), authentication codes, the
/// id_token itself against an empty key set, the flow cookie, and the bodies of the federated
/// and MFA routes. Refused or accepted, never a panic.
pub fn sign_in(data: &[u8]) {
    use rampart_proto::directory::{FederatedTokenRequest, GroupCreate, IdentityProviderCreate};
    use rampart_proto::mfa::MfaCode;

    static KEYS: OnceLock<TokenKeys> = OnceLock::new();
    let keys = KEYS.get_or_init(|| TokenKeys::from_secret(&[7u8; 32]));
    if let Ok(serde_json::Value::Object(claims)) = serde_json::from_slice::<serde_json::Value>(data) {
        let rules = rampart_oidc::ClaimRules {
            provider: "corp".into(),
            username_claim: "preferred_username".into(),
            groups_claim: "groups".into(),
            allowed_domains: vec!["example.com".into()],
        };
        if let Ok(read) = rules.read(&claims) {
            assert!(read.principal_name.ends_with("@corp"), "a federated name carries its provider");
        }
    }
    let _ = serde_json::from_slice::<IdentityProviderCreate>(data);
    let _ = serde_json::from_slice::<FederatedTokenRequest>(data);
    let _ = serde_json::from_slice::<GroupCreate>(data);
    let _ = serde_json::from_slice::<MfaCode>(data);
    let Ok(text) = std::str::from_utf8(data) else { return };
    let _ = crate::mfa::check("JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP", text, 1_800_000_000);
    let _ = crate::mfa::is_recovery_code(text);
    let _ = text.parse::<crate::mfa::Requirement>();
    let _ = keys.verify::<serde_json::Value>(text, "rampart-oidc-flow");
    let no_keys = openidconnect_keys();
    let expected = rampart_oidc::verify::Expected {
        issuer: "https://idp.example.com",
        client_id: "rampart",
        nonce: Some("n"),
        now: chrono::DateTime::from_timestamp(1_800_000_000, 0).unwrap_or_default(),
    };
    assert!(rampart_oidc::verify_id_token(text, no_keys, &expected).is_err(), "no key, no valid token");
}

fn openidconnect_keys() -> &'static rampart_oidc::verify::KeySet {
    static EMPTY: OnceLock<rampart_oidc::verify::KeySet> = OnceLock::new();
    EMPTY.get_or_init(rampart_oidc::verify::KeySet::default)
}

/// What a recording setting and a recording take from outside: a storage URL (whatever parses
/// names a valid container and carries a token), a desktop recording's bytes (records never
/// run past the end), and a terminal's input through the paste filter (what passes on never
/// holds a paste's start mark), fed in two pieces split anywhere.
pub fn recording_inputs(data: &[u8]) {
    if let Ok(text) = std::str::from_utf8(data)
        && let Ok(url) = crate::recording::parse_sas_url(text)
    {
        assert!((3..=63).contains(&url.container.len()), "a parsed container name is valid");
    }
    if let Ok(records) = crate::recording::desktop::records(data) {
        let total: usize = records.iter().map(|(_, _, p)| 9 + p.len()).sum();
        assert!(total <= data.len(), "records stay within the bytes");
    }
    let cut = data.first().map_or(0, |b| usize::from(*b)).min(data.len());
    let mut filter = crate::portal::paste::PasteFilter::default();
    let (mut out, _) = filter.filter(&data[..cut]);
    out.extend(filter.filter(&data[cut..]).0);
    assert!(!out.windows(6).any(|w| w == b"\x1b[200~"), "no paste start passes the filter");
}

/// What an RD Gateway client sends (MS-TSGU packets), split anywhere the first byte says:
/// every packet decodes or is refused, a decoded packet never claims more bytes than there
/// are, and a connection stops at its first error.
pub fn rd_gateway(data: &[u8]) {
    let Some((&split, rest)) = data.split_first() else { return };
    let mut at = rest;
    while let Ok(Some((_, used))) = rampart_rdg::packet::decode(at) {
        assert!(used >= rampart_rdg::packet::HEADER_LEN && used <= at.len(), "a packet takes what it has");
        at = &at[used..];
    }
    let cut = usize::from(split).min(rest.len());
    let mut conn = rampart_rdg::Connection::new();
    for part in [&rest[..cut], &rest[cut..]] {
        conn.receive(part);
        loop {
            match conn.next_event() {
                Ok(Some(_)) => {}
                Ok(None) => break,
                Err(_) => return,
            }
        }
    }
}

/// What the real Azure CLI sends (ARM paths, `/api/tokens` forms, token request fields,
/// request paths with repeated slashes): never a panic, segments stay segments.
pub fn azure_requests(data: &[u8]) {
    if let Ok(text) = std::str::from_utf8(data) {
        crate::azure::fuzz(text);
    }
}

/// What an RDP server sends through the graphics pipeline (MS-RDPEGFX), as one decompressed
/// batch (first byte even) or ZGFX-compressed segments (odd), as a browser's desktop page
/// takes it: never a panic; every message the page gets starts with its rectangle.
pub fn graphics_pipeline(data: &[u8]) {
    let Some((&mode, rest)) = data.split_first() else { return };
    let mut gfx = rampart_rdp::GfxPassthrough::default();
    let _ = if mode % 2 == 0 { gfx.handle_batch(rest).map(|_| ()) } else { gfx.process_segment(rest) };
    for update in gfx.drain() {
        let (message, _) = crate::portal::video::message(&update);
        assert!(message.len() >= 8, "a message starts with its rectangle");
    }
}
