use super::*;
use crate::{RelayEnd, RelayReport};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

async fn pair() -> (TcpStream, TcpStream) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let (a, b) = tokio::join!(TcpStream::connect(addr), listener.accept());
    (a.expect("connect"), b.expect("accept").0)
}

/// A gateway in miniature: refuses the token "bad", and relays every other stream to a
/// fresh socket whose far end the test gets. Stops a stream when `stop` says so.
async fn setup(
    keepalive: Duration,
) -> (
    MuxClient,
    mpsc::UnboundedReceiver<TcpStream>,
    watch::Sender<Option<String>>,
    mpsc::UnboundedReceiver<RelayReport>,
) {
    let (client_io, server_io) = pair().await;
    let client = MuxClient::start(client_io, Bytes::new(), keepalive);
    let mut server = MuxServer::start(server_io, Bytes::new(), keepalive);
    let (targets_tx, targets) = mpsc::unbounded_channel();
    let (reports_tx, reports) = mpsc::unbounded_channel();
    let (stop_tx, stop) = watch::channel(None);
    tokio::spawn(async move {
        while let Some(open) = server.next().await {
            if open.token == "bad" {
                open.refuse(403, Bytes::from_static(b"{\"error\":{\"code\":\"Denied\",\"message\":\"no\"}}"))
                    .await;
                continue;
            }
            let (target_end, far_end) = pair().await;
            let _ = targets_tx.send(far_end);
            let stream = open.accept().await.expect("accept");
            let stop = stop.clone();
            let reports_tx = reports_tx.clone();
            tokio::spawn(async move {
                let report = stream.relay(target_end, Arc::default(), Some(stop)).await;
                let _ = reports_tx.send(report);
            });
        }
    });
    (client, targets, stop_tx, reports)
}

/// Opens a stream and relays a local socket over it; the test gets the app's end.
async fn connect(client: &MuxClient) -> (TcpStream, tokio::task::JoinHandle<RelayReport>) {
    let stream = client.open("good").await.expect("asked");
    let (app, ours) = pair().await;
    let relay = tokio::spawn(stream.relay(ours, Arc::default(), None));
    (app, relay)
}

fn pattern(len: usize, seed: u8) -> Vec<u8> {
    (0..len).map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed)).collect()
}

#[tokio::test]
async fn megabytes_cross_both_ways_intact_and_a_half_close_still_gets_the_reply() {
    let (client, mut targets, _stop, mut reports) = setup(Duration::from_secs(30)).await;
    let (mut app, relay) = connect(&client).await;
    let mut target = targets.recv().await.expect("target");
    // More than two windows each way, so credit must come back for it to finish.
    let upload = pattern(5 * 1024 * 1024 + 17, 1);
    let download = pattern(6 * 1024 * 1024 + 3, 2);
    let target_side = tokio::spawn(async move {
        let mut got = Vec::new();
        target.read_to_end(&mut got).await.expect("read to the client's half-close");
        target.write_all(&download).await.expect("reply after the half-close");
        target.shutdown().await.expect("shutdown");
        (got, download)
    });
    let (mut app_read, mut app_write) = app.split();
    let sending = async {
        app_write.write_all(&upload).await.expect("send");
        app_write.shutdown().await.expect("half-close");
    };
    let mut reply = Vec::new();
    let receiving = app_read.read_to_end(&mut reply);
    let ((), received) = tokio::join!(sending, receiving);
    received.expect("reply");
    let (got, download) = target_side.await.expect("target");
    assert!(got == upload, "the upload arrived changed ({} of {} bytes)", got.len(), upload.len());
    assert!(reply == download, "the reply arrived changed ({} of {} bytes)", reply.len(), download.len());
    let report = relay.await.expect("relay");
    assert_eq!(report.end, RelayEnd::Completed);
    assert_eq!(
        (report.socket_to_tunnel, report.tunnel_to_socket),
        (upload.len() as u64, download.len() as u64)
    );
    let gateway = reports.recv().await.expect("gateway report");
    assert_eq!(gateway.end, RelayEnd::Completed);
}

async fn echo_once(app: &mut TcpStream, target: &mut TcpStream, msg: &[u8]) {
    app.write_all(msg).await.expect("write");
    let mut buf = vec![0u8; msg.len()];
    target.read_exact(&mut buf).await.expect("target reads");
    target.write_all(&buf).await.expect("target answers");
    let mut back = vec![0u8; msg.len()];
    app.read_exact(&mut back).await.expect("app reads the answer");
    assert_eq!(back, msg);
}

#[tokio::test]
async fn a_refusal_comes_back_with_its_status_and_body_and_the_connection_goes_on() {
    let (client, mut targets, _stop, _reports) = setup(Duration::from_secs(30)).await;
    let refused = client.open("bad").await.expect("asked");
    // The app's bytes go at once; they wait at the gateway, which throws them away.
    let (mut app, ours) = pair().await;
    app.write_all(b"sent before the answer").await.expect("write");
    let end = tokio::time::timeout(Duration::from_secs(5), refused.relay(ours, Arc::default(), None))
        .await
        .expect("ends")
        .end;
    let RelayEnd::Refused { status, body } = end else {
        panic!("a bad token was admitted: {end:?}");
    };
    assert_eq!(status, 403);
    assert!(String::from_utf8_lossy(&body).contains("Denied"));
    let (mut app, _relay) = connect(&client).await;
    let mut target = targets.recv().await.expect("target");
    echo_once(&mut app, &mut target, b"still carrying").await;
}

#[tokio::test]
async fn a_stream_whose_target_reads_nothing_does_not_hold_up_the_others() {
    let (client, mut targets, _stop, _reports) = setup(Duration::from_secs(30)).await;
    let (mut stuck_app, _stuck_relay) = connect(&client).await;
    let _stuck_target = targets.recv().await.expect("target");
    // Far more than the window and the sockets' buffers: the stuck stream must stop at
    // its window, not fill the connection.
    let flood = tokio::spawn(async move {
        let chunk = vec![7u8; 64 * 1024];
        for _ in 0..256 {
            if stuck_app.write_all(&chunk).await.is_err() {
                break;
            }
        }
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (mut app, _relay) = connect(&client).await;
    let mut target = targets.recv().await.expect("target");
    for i in 0..20u8 {
        tokio::time::timeout(Duration::from_secs(5), echo_once(&mut app, &mut target, &[i; 100]))
            .await
            .expect("the second stream answers while the first is stuck");
    }
    assert!(!flood.is_finished(), "the whole flood went through although its target read nothing");
    flood.abort();
}

#[tokio::test]
async fn a_stop_reaches_the_client_with_its_reason() {
    let (client, mut targets, stop, mut reports) = setup(Duration::from_secs(30)).await;
    let (mut app, relay) = connect(&client).await;
    let mut target = targets.recv().await.expect("target");
    echo_once(&mut app, &mut target, b"hello").await;
    stop.send(Some("disconnected by admin".into())).expect("stop");
    let end = tokio::time::timeout(Duration::from_secs(5), relay).await.expect("ends").expect("relay").end;
    assert_eq!(
        end,
        RelayEnd::PeerClosed {
            code: Some(rampart_proto::tunnel::close_code::ENDED_BY_GATEWAY),
            reason: "disconnected by admin".into()
        }
    );
    assert_eq!(reports.recv().await.expect("report").end, RelayEnd::Stopped("disconnected by admin".into()));
}

#[tokio::test]
async fn an_error_after_a_half_close_still_ends_the_stream() {
    let (client, mut targets, _stop, mut reports) = setup(Duration::from_secs(30)).await;
    let (mut app, relay) = connect(&client).await;
    let mut target = targets.recv().await.expect("target");
    target.shutdown().await.expect("the target half-closes");
    let mut byte = [0u8; 1];
    assert_eq!(app.read(&mut byte).await.expect("read"), 0, "the half-close did not arrive");
    // Then the target goes away entirely; the app goes on sending, so the gateway's writes
    // to the target fail and the client must hear of it although the peer had half-closed.
    drop(target);
    for _ in 0..100 {
        if app.write_all(&[1u8; 4096]).await.is_err() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let end = tokio::time::timeout(Duration::from_secs(5), relay)
        .await
        .expect("the stream hung after an error that followed a half-close")
        .expect("relay")
        .end;
    assert!(matches!(end, RelayEnd::PeerClosed { .. } | RelayEnd::SocketError(_)), "{end:?}");
    let gateway = reports.recv().await.expect("gateway report").end;
    assert!(matches!(gateway, RelayEnd::SocketError(_)), "{gateway:?}");
}

#[tokio::test]
async fn a_peer_that_breaks_the_protocol_loses_its_connection_with_the_reason() {
    let (mut client_io, server_io) = pair().await;
    let mut server = MuxServer::start(server_io, Bytes::new(), Duration::from_secs(30));
    // A frame header announcing 4 GiB.
    client_io.write_all(&[0, 0, 0, 0, 1, 0xff, 0xff, 0xff, 0xff]).await.expect("write");
    let next = tokio::time::timeout(Duration::from_secs(5), server.next()).await.expect("ends");
    assert!(next.is_none());
    let reason = server.lost_reason().unwrap_or_default();
    assert!(reason.contains("broke the tunnel protocol") && reason.contains("larger than"), "{reason}");
    let mut rest = Vec::new();
    let eof = tokio::time::timeout(Duration::from_secs(5), client_io.read_to_end(&mut rest)).await;
    assert!(eof.is_ok(), "the gateway kept the connection open");
}

#[tokio::test]
async fn a_lost_connection_ends_its_streams_as_lost_never_as_a_half_close() {
    // A peer that completes the upgrade and then says nothing: the client's pings go
    // unanswered and its streams end with the reason.
    let (client_io, mut silent_peer) = pair().await;
    let client = MuxClient::start(client_io, Bytes::new(), Duration::from_millis(100));
    let stream = client.open("good").await.expect("asked");
    let (_app, ours) = pair().await;
    let relay = tokio::spawn(stream.relay(ours, Arc::default(), None));
    let mut sink = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(2), silent_peer.read_to_end(&mut sink)).await;
    let end = tokio::time::timeout(Duration::from_secs(3), relay).await.expect("ends").expect("relay").end;
    let RelayEnd::TunnelError(reason) = end else {
        panic!("the stream did not end as lost: {end:?}");
    };
    assert!(reason.contains("keep-alive"), "{reason}");
    assert!(client.is_closed());
    assert!(client.open("good").await.is_err(), "a stream opened on a lost connection");

    // A stream already running when its connection closes ends as a tunnel error.
    let (client, mut targets, _stop, _reports) = setup(Duration::from_secs(30)).await;
    let (_app, relay) = connect(&client).await;
    let _target = targets.recv().await.expect("target");
    client.conn.fail("test: the connection closed".into());
    let end = tokio::time::timeout(Duration::from_secs(5), relay).await.expect("ends").expect("relay").end;
    assert_eq!(end, RelayEnd::TunnelError("test: the connection closed".into()));
}
