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

/// Resource IDs, scopes and target addresses: parse, print, parse again.
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
