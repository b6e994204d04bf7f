//! Target addresses an attacker would try, through the real CLI and gateway: disguised
//! forms are refused as such, mapped forms are normalised and then judged by the policy,
//! and the gateway's own port is refused on every local address when it listens on all.

use anyhow::{Result, ensure};
use rampart_e2e::Gateway;

#[test]
fn disguised_mapped_and_self_addresses_are_refused_with_the_reason() -> Result<()> {
    // Listening on every address (traffic in this test stays on loopback).
    let gw = Gateway::start(&[("RAMPART_LISTEN", "0.0.0.0:0")])?;
    let own_port = gw.addr.port().to_string();
    gw.update_bastion("default", &["--enable-ip-connect", "true", "--reachable-networks", "0.0.0.0/0,::/0"])?;
    let refused = |ip: &str, port: &str| -> Result<String> {
        gw.refused(&[
            "tunnel",
            "-n",
            "default",
            "-g",
            "default",
            "--target-ip-address",
            ip,
            "--resource-port",
            port,
            "--port",
            "0",
        ])
    };
    for disguised in
        ["2130706433", "0177.0.0.1", "0x7f.1", "127.1", "fe80::1%eth0", "localhost", "[127.0.0.1]:22"]
    {
        let err = refused(disguised, "22")?;
        ensure!(err.contains("not an IP address in standard notation"), "{disguised}: {err}");
    }
    for (ip, kind) in [
        ("::ffff:127.0.0.1", "loopback"),
        ("127.0.0.1", "loopback"),
        ("::1", "loopback"),
        ("169.254.169.254", "cloud metadata"),
        ("168.63.129.16", "cloud metadata"),
        ("fe80::1", "link-local"),
        ("0.0.0.0", "unspecified"),
        ("::", "unspecified"),
        ("224.0.0.1", "multicast"),
    ] {
        let err = refused(ip, "22")?;
        ensure!(err.contains(kind), "{ip} should be refused as {kind}: {err}");
    }
    // The gateway's own port on loopback addresses other than the one used to reach it.
    let loopback = gw.update_bastion("default", &["--reachable-networks", "127.0.0.0/8"]);
    ensure!(loopback.is_ok());
    for ip in ["127.0.0.1", "127.0.0.53", "::ffff:127.0.0.9"] {
        let err = refused(ip, &own_port)?;
        ensure!(err.contains("gateway's own listening socket"), "{ip}:{own_port}: {err}");
    }
    let audit = gw.audit()?;
    for code in ["BadAddress", "SpecialAddress", "ForbiddenAddress", "GatewayItself"] {
        ensure!(
            audit
                .iter()
                .any(|r| r["result"] == "refused"
                    && r["reasonCode"].as_str().is_some_and(|c| c.contains(code))),
            "no audited refusal with {code}"
        );
    }
    Ok(())
}
