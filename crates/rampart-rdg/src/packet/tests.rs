use super::*;

/// UTF-16LE with its terminating NUL, as clients write names and cookies.
pub(crate) fn wide(s: &str) -> Vec<u8> {
    s.encode_utf16().chain(std::iter::once(0)).flat_map(u16::to_le_bytes).collect()
}

pub(crate) fn raw(ty: u16, body: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    out.extend_from_slice(&ty.to_le_bytes());
    out.extend_from_slice(&[0, 0]);
    out.extend_from_slice(&((body.len() + 8) as u32).to_le_bytes());
    out.extend_from_slice(body);
    out
}

/// The tunnel request FreeRDP 2.11 sends with `/gat:TOKEN`: its three capabilities, the
/// PAA cookie field, the cookie as UTF-16 with its NUL.
pub(crate) fn freerdp_tunnel_create(cookie: &str) -> Vec<u8> {
    let mut body = Vec::new();
    body.extend_from_slice(&(0x1u32 | 0x4 | 0x8).to_le_bytes());
    body.extend_from_slice(&1u16.to_le_bytes());
    body.extend_from_slice(&0u16.to_le_bytes());
    let cookie = wide(cookie);
    body.extend_from_slice(&(cookie.len() as u16).to_le_bytes());
    body.extend_from_slice(&cookie);
    raw(kind::TUNNEL_CREATE, &body)
}

/// FreeRDP's channel request: one resource, no alternatives, the port, protocol 3.
pub(crate) fn freerdp_channel_create(host: &str, port: u16) -> Vec<u8> {
    let name = wide(host);
    let mut body = vec![1, 0];
    body.extend_from_slice(&port.to_le_bytes());
    body.extend_from_slice(&3u16.to_le_bytes());
    body.extend_from_slice(&(name.len() as u16).to_le_bytes());
    body.extend_from_slice(&name);
    raw(kind::CHANNEL_CREATE, &body)
}

#[test]
fn freerdps_requests_decode_to_what_they_ask() {
    let handshake = raw(kind::HANDSHAKE_REQUEST, &[1, 0, 0, 0, 2, 0]);
    assert_eq!(
        decode(&handshake),
        Ok(Some((ClientPacket::Handshake { version_major: 1, version_minor: 0, extended_auth: 2 }, 14)))
    );
    let tunnel = freerdp_tunnel_create("eyJ0eXAi.abc.def");
    let Ok(Some((ClientPacket::TunnelCreate { paa_cookie, reauth_context, .. }, n))) = decode(&tunnel) else {
        panic!("not a tunnel request")
    };
    assert_eq!((paa_cookie.as_deref(), reauth_context, n), (Some("eyJ0eXAi.abc.def"), None, tunnel.len()));
    let channel = freerdp_channel_create("10.1.0.4", 3389);
    assert_eq!(
        decode(&channel).ok().flatten().map(|(p, _)| p),
        Some(ClientPacket::ChannelCreate {
            resources: vec!["10.1.0.4".into()],
            alternatives: vec![],
            port: 3389,
            protocol: 3
        })
    );
}

#[test]
fn a_partial_packet_waits_and_a_bad_length_is_refused() {
    let channel = freerdp_channel_create("win1", 3389);
    for cut in 0..channel.len() {
        assert_eq!(decode(&channel[..cut]), Ok(None), "cut at {cut}");
    }
    let mut huge = raw(kind::DATA, &[0, 0]);
    huge[4..8].copy_from_slice(&0x0100_0000u32.to_le_bytes());
    assert!(matches!(decode(&huge), Err(DecodeError::BadLength { .. })));
    let mut tiny = raw(kind::KEEPALIVE, &[]);
    tiny[4..8].copy_from_slice(&3u32.to_le_bytes());
    assert!(matches!(decode(&tiny), Err(DecodeError::BadLength { .. })));
}

#[test]
fn lengths_inside_a_packet_cannot_reach_past_it() {
    // A data packet claiming 1,000 bytes but carrying 4.
    let mut body = 1000u16.to_le_bytes().to_vec();
    body.extend_from_slice(b"abcd");
    assert_eq!(
        decode(&raw(kind::DATA, &body)),
        Err(DecodeError::Truncated { packet: "data", field: "data" })
    );
    // A channel request promising three names and holding one.
    let mut channel = freerdp_channel_create("win1", 3389);
    channel[8] = 3;
    assert!(matches!(decode(&channel), Err(DecodeError::Truncated { field: "resourceName", .. })));
    // A cookie of odd length is not UTF-16.
    let mut body = vec![0u8; 8];
    body[4] = 1;
    body.extend_from_slice(&3u16.to_le_bytes());
    body.extend_from_slice(b"abc");
    assert!(matches!(decode(&raw(kind::TUNNEL_CREATE, &body)), Err(DecodeError::BadString { .. })));
    assert_eq!(decode(&raw(0x02, &[0; 10])), Err(DecodeError::UnknownType(0x02)));
}

#[test]
fn every_cut_and_flipped_byte_of_real_requests_is_an_answer_not_a_panic() {
    let samples = [
        raw(kind::HANDSHAKE_REQUEST, &[1, 0, 0, 0, 2, 0]),
        freerdp_tunnel_create("token"),
        freerdp_channel_create("10.0.0.1", 3389),
        raw(kind::CLOSE_CHANNEL, &[0, 0, 0, 0]),
    ];
    for sample in &samples {
        for i in 0..sample.len() {
            for flip in [0x01u8, 0x80, 0xff] {
                let mut bad = sample.clone();
                bad[i] ^= flip;
                let _ = decode(&bad);
                let _ = decode(&bad[..i]);
            }
        }
    }
}

#[test]
fn answers_have_the_layout_freerdp_reads() {
    let h = handshake_response(0, EXTENDED_AUTH_PAA);
    assert_eq!(h.len(), 18);
    assert_eq!(&h[0..2], &kind::HANDSHAKE_RESPONSE.to_le_bytes());
    assert_eq!(u32::from_le_bytes([h[4], h[5], h[6], h[7]]), 18);
    assert_eq!(&h[12..14], &[1, 0]);
    let t = tunnel_response(0, Some(7), CAPABILITY_IDLE_TIMEOUT);
    // server version, status, fields (id | caps), reserved, id, caps
    assert_eq!(&t[8..], &[0, 0, 0, 0, 0, 0, 3, 0, 0, 0, 7, 0, 0, 0, 2, 0, 0, 0]);
    let refused = channel_response(crate::status::RAP_ACCESS_DENIED, None);
    assert_eq!(&refused[8..12], &0x8007_59DAu32.to_le_bytes());
    let mut data = Vec::new();
    data_into(&mut data, &vec![7u8; MAX_DATA_LEN + 10]);
    assert_eq!(data.len(), 2 * 10 + MAX_DATA_LEN + 10, "split in two packets, each with its header");
    assert_eq!(u32::from_le_bytes([data[4], data[5], data[6], data[7]]) as usize, 10 + MAX_DATA_LEN);
    let m = service_message("bye");
    assert_eq!(&m[8..10], &8u16.to_le_bytes());
}
