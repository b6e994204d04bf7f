use super::*;
use crate::packet::kind;
use crate::packet::tests::{freerdp_channel_create, freerdp_tunnel_create, raw};

fn freerdp_opening() -> Vec<u8> {
    let mut bytes = raw(kind::HANDSHAKE_REQUEST, &[1, 0, 0, 0, 2, 0]);
    bytes.extend(freerdp_tunnel_create("the-token"));
    let mut auth = 0u16.to_le_bytes().to_vec();
    let name: Vec<u8> = "laptop".encode_utf16().chain([0]).flat_map(u16::to_le_bytes).collect();
    auth.extend_from_slice(&(name.len() as u16).to_le_bytes());
    auth.extend_from_slice(&name);
    bytes.extend(raw(kind::TUNNEL_AUTH, &auth));
    bytes.extend(freerdp_channel_create("10.1.0.4", 3389));
    let mut data = 5u16.to_le_bytes().to_vec();
    data.extend_from_slice(b"hello");
    bytes.extend(raw(kind::DATA, &data));
    bytes.extend(raw(kind::CLOSE_CHANNEL, &[0, 0, 0, 0]));
    bytes
}

fn events(conn: &mut Connection) -> Vec<Event> {
    let mut out = Vec::new();
    while let Some(e) = conn.next_event().expect("a valid stream") {
        out.push(e);
    }
    out
}

#[test]
fn a_client_goes_from_handshake_to_data_to_close_whatever_the_split() {
    let bytes = freerdp_opening();
    for step in [1, 3, 7, 64, bytes.len()] {
        let mut conn = Connection::new();
        let mut seen = Vec::new();
        for chunk in bytes.chunks(step) {
            conn.receive(chunk);
            seen.extend(events(&mut conn));
        }
        assert_eq!(
            seen,
            vec![
                Event::Handshake { extended_auth: 2 },
                Event::TunnelCreate { paa_cookie: Some("the-token".into()) },
                Event::TunnelAuth { client_name: "laptop".into() },
                Event::ChannelCreate { resources: vec!["10.1.0.4".into()], port: 3389 },
                Event::Data(b"hello".to_vec()),
                Event::Close { status: 0 },
            ],
            "split every {step} bytes"
        );
        assert_eq!(conn.phase(), Phase::Closed);
    }
}

#[test]
fn data_before_the_channel_is_open_ends_the_connection() {
    let mut conn = Connection::new();
    conn.receive(&raw(kind::HANDSHAKE_REQUEST, &[1, 0, 0, 0, 2, 0]));
    assert!(conn.next_event().is_ok());
    let mut data = 1u16.to_le_bytes().to_vec();
    data.push(0);
    conn.receive(&raw(kind::DATA, &data));
    let err = conn.next_event().expect_err("out of order");
    assert_eq!(err.to_string(), "a data packet is out of order during the tunnel request");
}

#[test]
fn only_version_one_is_spoken() {
    let mut conn = Connection::new();
    conn.receive(&raw(kind::HANDSHAKE_REQUEST, &[2, 0, 0, 0, 2, 0]));
    assert_eq!(conn.next_event(), Err(ProtocolError::Version { major: 2, minor: 0 }));
}

#[test]
fn a_channel_request_without_a_name_is_refused() {
    // Handshake, tunnel and tunnel authorization, then a channel request naming "".
    let mut conn2 = Connection::new();
    let mut bytes = raw(kind::HANDSHAKE_REQUEST, &[1, 0, 0, 0, 0, 0]);
    bytes.extend(freerdp_tunnel_create("t"));
    bytes.extend(raw(kind::TUNNEL_AUTH, &[0, 0, 2, 0, 0, 0]));
    bytes.extend(freerdp_channel_create("", 3389));
    conn2.receive(&bytes);
    let mut last = Ok(None);
    for _ in 0..4 {
        last = conn2.next_event();
    }
    assert_eq!(last, Err(ProtocolError::NoResource));
}

#[test]
fn a_header_announcing_too_much_is_refused_before_its_body_arrives() {
    let mut conn = Connection::new();
    let mut head = kind::DATA.to_le_bytes().to_vec();
    head.extend_from_slice(&[0, 0]);
    head.extend_from_slice(&(crate::packet::MAX_PACKET_LEN as u32 + 1).to_le_bytes());
    conn.receive(&head);
    assert!(matches!(conn.next_event(), Err(ProtocolError::Decode(DecodeError::BadLength { .. }))));
}
