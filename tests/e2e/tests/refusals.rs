//! Every refusal names its reason, is audited, and settings apply to the next connection.

use std::net::TcpListener;
use std::time::Duration;

use anyhow::{Result, ensure};
use rampart_e2e::{Gateway, Sshd, audit_has};

fn tunnel_refused(gw: &Gateway, bastion: &str, ip: &str, port: u16) -> Result<String> {
    gw.refused(&[
        "tunnel",
        "--name",
        bastion,
        "--resource-group",
        "default",
        "--target-ip-address",
        ip,
        "--resource-port",
        &port.to_string(),
        "--port",
        "0",
    ])
}

fn expect(text: &str, needle: &str) -> Result<()> {
    ensure!(text.contains(needle), "expected the message to name '{needle}', got: {text}");
    Ok(())
}

#[test]
fn each_refusal_names_its_reason_and_is_audited() -> Result<()> {
    let gw = Gateway::start(&[])?;
    let sshd = Sshd::start()?;

    // A fresh bastion reaches nothing and has IP-based connection off.
    let err = tunnel_refused(&gw, "default", "127.0.0.1", sshd.port)?;
    expect(&err, "IP-based connection is turned off")?;
    expect(&err, "outside the bastion's reachable networks")?;

    gw.update_bastion("default", &["--enable-ip-connect", "true", "--reachable-networks", "127.0.0.0/8"])?;

    // Native client off.
    gw.update_bastion("default", &["--enable-tunneling", "false"])?;
    let err = tunnel_refused(&gw, "default", "127.0.0.1", sshd.port)?;
    expect(&err, "native client support is turned off")?;
    gw.update_bastion("default", &["--enable-tunneling", "true"])?;

    // IP-based connection off.
    gw.update_bastion("default", &["--enable-ip-connect", "false"])?;
    let err = tunnel_refused(&gw, "default", "127.0.0.1", sshd.port)?;
    expect(&err, "IP-based connection is turned off")?;
    gw.update_bastion("default", &["--enable-ip-connect", "true"])?;

    // Tier Basic: the update itself is refused while native client is on…
    let err = gw.refused(&[
        "network",
        "bastion",
        "update",
        "--name",
        "default",
        "--resource-group",
        "default",
        "--sku",
        "Basic",
    ])?;
    expect(&err, "tier Basic")?;
    // …and a Basic bastion refuses tunnels, and custom ports, naming the tier and the port.
    gw.ok(&[
        "network",
        "bastion",
        "create",
        "--name",
        "basic1",
        "--resource-group",
        "default",
        "--sku",
        "Basic",
        "--enable-tunneling",
        "false",
        "--reachable-networks",
        "127.0.0.0/8",
    ])?;
    let err = tunnel_refused(&gw, "basic1", "127.0.0.1", 22)?;
    expect(&err, "tier Basic does not include native client support")?;
    // Turning copy and paste off is a Standard feature too; on Standard it is shown as set.
    let basic1 = ["network", "bastion", "update", "--name", "basic1", "--resource-group", "default"];
    let err = gw.refused(&[&basic1[..], &["--disable-copy-paste", "true"]].concat())?;
    expect(&err, "tier Basic does not include turning copy and paste off")?;
    let shown = gw.update_bastion("default", &["--disable-copy-paste", "true"])?;
    ensure!(shown.contains("\"disableCopyPaste\": true"), "{shown}");
    gw.update_bastion("default", &["--disable-copy-paste", "false"])?;
    let err = tunnel_refused(&gw, "basic1", "127.0.0.1", 2222)?;
    expect(&err, "port 2222 is a custom port")?;
    expect(&err, "tier Basic does not include custom ports")?;

    // Outside the reachable networks.
    let err = tunnel_refused(&gw, "default", "198.18.5.5", 22)?;
    expect(&err, "target 198.18.5.5 is outside the bastion's reachable networks")?;

    // The gateway's own listening socket.
    let err = tunnel_refused(&gw, "default", "127.0.0.1", gw.addr.port())?;
    expect(&err, "gateway's own listening socket")?;

    // Loopback and metadata need a network that names them explicitly: 0.0.0.0/0 is not enough.
    gw.update_bastion("default", &["--reachable-networks", "0.0.0.0/0"])?;
    let err = tunnel_refused(&gw, "default", "127.0.0.1", sshd.port)?;
    expect(&err, "loopback address")?;
    let err = tunnel_refused(&gw, "default", "169.254.169.254", 80)?;
    expect(&err, "cloud metadata address")?;
    let err = tunnel_refused(&gw, "default", "127.1", 22)?;
    expect(&err, "not an IP address in standard notation")?;
    gw.update_bastion("default", &["--reachable-networks", "127.0.0.0/8"])?;

    // Unknown bastion.
    let err = tunnel_refused(&gw, "nosuch", "127.0.0.1", sshd.port)?;
    expect(&err, "was not found")?;

    let audit = gw.audit()?;
    for code in [
        "NativeClientDisabled",
        "IpConnectDisabled",
        "TierLacksNativeClient",
        "PortNotAllowed",
        "OutsideReachableNetworks",
        "GatewayItself",
        "SpecialAddress",
        "BadAddress",
        "BastionNotFound",
    ] {
        ensure!(
            audit_has(&audit, "tunnel-request", "refused", Some(code)),
            "no refused tunnel-request audit record with reason {code}"
        );
    }
    Ok(())
}

#[test]
fn settings_apply_to_the_next_connection_of_an_open_tunnel() -> Result<()> {
    let gw = Gateway::start(&[])?;
    let sshd = Sshd::start()?;
    gw.update_bastion("default", &["--enable-ip-connect", "true", "--reachable-networks", "127.0.0.0/8"])?;
    let tunnel = gw.tunnel("127.0.0.1", sshd.port)?;
    ensure!(sshd.ssh(tunnel.port, "echo one")?.trim() == "one");

    // Turn native client off: the open tunnel's next connection is refused with the reason.
    gw.update_bastion("default", &["--enable-tunneling", "false"])?;
    let refused = sshd.ssh(tunnel.port, "echo two");
    ensure!(refused.is_err(), "a connection went through after native client was turned off");
    tunnel.said("native client support is turned off")?;

    // Narrow the reachable networks: refused for the network.
    gw.update_bastion("default", &["--enable-tunneling", "true", "--reachable-networks", "10.0.0.0/8"])?;
    ensure!(sshd.ssh(tunnel.port, "echo three").is_err());
    tunnel.said("outside the bastion's reachable networks")?;

    // Restore: the same tunnel works again, no restart anywhere.
    gw.update_bastion("default", &["--reachable-networks", "127.0.0.0/8"])?;
    ensure!(sshd.ssh(tunnel.port, "echo four")?.trim() == "four");

    let audit = gw.audit()?;
    ensure!(audit_has(&audit, "connection-open", "refused", Some("NativeClientDisabled")));
    ensure!(audit_has(&audit, "connection-open", "refused", Some("OutsideReachableNetworks")));
    Ok(())
}

#[test]
fn an_unreachable_target_is_a_clear_error_not_a_hang() -> Result<()> {
    let gw = Gateway::start(&[])?;
    gw.update_bastion("default", &["--enable-ip-connect", "true", "--reachable-networks", "127.0.0.0/8"])?;
    // A port with nothing listening on it.
    let closed = TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
    let tunnel = gw.tunnel("127.0.0.1", closed)?;
    let mut socket = std::net::TcpStream::connect(("127.0.0.1", tunnel.port))?;
    socket.set_read_timeout(Some(Duration::from_secs(15)))?;
    let mut buf = [0u8; 16];
    let n = std::io::Read::read(&mut socket, &mut buf).unwrap_or(0);
    ensure!(n == 0, "expected the local connection to be closed");
    tunnel.said("is not reachable")?;
    let audit = gw.audit()?;
    ensure!(audit_has(&audit, "connection-open", "failed", Some("TargetUnreachable")));
    Ok(())
}
