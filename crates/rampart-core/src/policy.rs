//! Whether a tunnel to a target may be opened: one pure function, [`authorize_target`],
//! that returns either a [`TargetAuthorization`] (the only value the relay accepts to dial
//! a target) or a [`Refusal`] naming every reason.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use ipnet::IpNet;

use crate::bastion::BastionSettings;

mod refusal;

pub use refusal::{Refusal, RefusalReason};

/// Ports that every tier allows: SSH and RDP.
pub const STANDARD_PORTS: [u16; 2] = [22, 3389];

/// How the user named the target.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TargetKind {
    /// `--target-ip-address`: needs IP-based connection.
    IpAddress,
    /// `--target-resource-id`: a registered machine, resolved to its private IP.
    Resource,
}

/// Which client asks: the native client's tunnels need the tier's and the bastion's native
/// client support; the browser portal does not (as in Azure, every tier has it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientKind {
    Native,
    /// The native client whose shell the gateway opens and records itself (`rampart ssh` on a
    /// recording bastion): native client support applies, the refusal of raw tunnels does not.
    NativeRecorded,
    Browser,
}

/// A request to reach `ip:port` through a bastion with the given settings.
#[derive(Debug, Clone)]
pub struct TargetRequest<'a> {
    pub settings: &'a BastionSettings,
    pub client: ClientKind,
    pub kind: TargetKind,
    pub ip: IpAddr,
    pub port: u16,
}

/// Where the gateway itself listens, so a tunnel can never point back at it.
#[derive(Debug, Clone, Default)]
pub struct GatewayEndpoints {
    /// The gateway's listening sockets (may be unspecified, e.g. `0.0.0.0:8443`).
    pub listen: Vec<SocketAddr>,
    /// The addresses of the gateway's own interfaces (used when listening on an
    /// unspecified address).
    pub local_ips: Vec<IpAddr>,
}

impl GatewayEndpoints {
    fn is_gateway(&self, ip: IpAddr, port: u16) -> bool {
        self.listen.iter().any(|l| {
            if l.port() != port {
                return false;
            }
            let lip = normalize_ip(l.ip());
            if lip.is_unspecified() {
                ip.is_loopback() || ip.is_unspecified() || self.local_ips.contains(&ip)
            } else {
                lip == ip
            }
        })
    }
}

/// Proof that a target was authorized. Only [`authorize_target`] builds one, so code that
/// dials a target cannot skip the policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TargetAuthorization {
    addr: SocketAddr,
}

impl TargetAuthorization {
    /// The (normalized) address to dial.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }
}

/// Parses a target IP address strictly: only standard dotted-quad IPv4 or IPv6 text. Forms
/// an attacker might use to disguise an address (`127.1`, `0x7f.0.0.1`, `2130706433`, octal,
/// zone IDs) are refused rather than guessed at. IPv4-mapped IPv6 is normalized to IPv4.
pub fn parse_target_ip(input: &str) -> Result<IpAddr, RefusalReason> {
    let bad = || RefusalReason::BadAddress { input: input.to_string() };
    let trimmed = input.trim();
    let unbracketed = trimmed.strip_prefix('[').and_then(|s| s.strip_suffix(']')).unwrap_or(trimmed);
    let ip: IpAddr = unbracketed.parse().map_err(|_| bad())?;
    Ok(normalize_ip(ip))
}

/// IPv4-mapped IPv6 (`::ffff:a.b.c.d`) is the IPv4 address it maps.
pub fn normalize_ip(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6(v6),
        },
        v4 => v4,
    }
}

/// Ranges that are never reachable unless a reachable network names them explicitly (lies
/// within them). Cloud metadata endpoints come first so they are reported as such.
fn special_range(ip: IpAddr) -> Option<(IpNet, &'static str)> {
    const METADATA: [(IpAddr, u8); 4] = [
        (IpAddr::V4(Ipv4Addr::new(169, 254, 169, 254)), 32),
        (IpAddr::V4(Ipv4Addr::new(168, 63, 129, 16)), 32),
        (IpAddr::V4(Ipv4Addr::new(100, 100, 100, 200)), 32),
        (IpAddr::V6(Ipv6Addr::new(0xfd00, 0xec2, 0, 0, 0, 0, 0, 0x254)), 128),
    ];
    let net = |addr: IpAddr, len: u8| IpNet::new(addr, len).ok();
    for (addr, len) in METADATA {
        if addr == ip {
            return net(addr, len).map(|n| (n, "cloud metadata"));
        }
    }
    match ip {
        IpAddr::V4(v4) if v4.is_loopback() => {
            net(IpAddr::V4(Ipv4Addr::new(127, 0, 0, 0)), 8).map(|n| (n, "loopback"))
        }
        IpAddr::V4(v4) if v4.is_link_local() => {
            net(IpAddr::V4(Ipv4Addr::new(169, 254, 0, 0)), 16).map(|n| (n, "link-local"))
        }
        IpAddr::V6(v6) if v6.is_loopback() => net(ip, 128).map(|n| (n, "loopback")),
        IpAddr::V6(v6) if v6.is_unicast_link_local() => {
            net(IpAddr::V6(Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 0)), 10).map(|n| (n, "link-local"))
        }
        _ => None,
    }
}

fn forbidden_kind(ip: IpAddr) -> Option<&'static str> {
    if ip.is_unspecified() {
        return Some("unspecified");
    }
    if ip.is_multicast() {
        return Some("multicast");
    }
    if let IpAddr::V4(v4) = ip
        && v4.is_broadcast()
    {
        return Some("broadcast");
    }
    None
}

/// Decides whether `request` may be dialed. Checks, all reported together: native client
/// (tier and setting), IP-based connection (tier and setting) for IP targets, the port, then
/// the address (never forbidden kinds, never the gateway, inside a reachable network, and
/// special ranges only when a reachable network lies within them).
pub fn authorize_target(
    request: &TargetRequest<'_>,
    gateway: &GatewayEndpoints,
) -> Result<TargetAuthorization, Refusal> {
    let s = request.settings;
    let ip = normalize_ip(request.ip);
    let port = request.port;
    let mut reasons = Vec::new();

    if matches!(request.client, ClientKind::Native | ClientKind::NativeRecorded) {
        if !s.tier.includes_native_client() {
            reasons.push(RefusalReason::TierLacksNativeClient { tier: s.tier });
        } else if !s.enable_tunneling {
            reasons.push(RefusalReason::NativeClientDisabled);
        } else if request.client == ClientKind::Native && s.session_recording && !s.allow_unrecorded_tunnels {
            reasons.push(RefusalReason::RecordingRequired);
        }
    }
    if request.kind == TargetKind::IpAddress {
        if !s.tier.includes_ip_connect() {
            reasons.push(RefusalReason::TierLacksIpConnect { tier: s.tier });
        } else if !s.enable_ip_connect {
            reasons.push(RefusalReason::IpConnectDisabled);
        }
    }
    if !STANDARD_PORTS.contains(&port) && !s.tier.includes_custom_ports() {
        reasons.push(RefusalReason::PortNotAllowed { port, tier: s.tier });
    }

    if let Some(kind) = forbidden_kind(ip) {
        reasons.push(RefusalReason::ForbiddenAddress { ip, kind });
    } else if port == 0 {
        reasons.push(RefusalReason::ForbiddenAddress { ip, kind: "port-0" });
    } else if gateway.is_gateway(ip, port) {
        reasons.push(RefusalReason::GatewayItself { addr: SocketAddr::new(ip, port) });
    } else {
        let covering: Vec<&IpNet> = s.reachable_networks.iter().filter(|n| n.contains(&ip)).collect();
        if covering.is_empty() {
            reasons.push(RefusalReason::OutsideReachableNetworks { ip });
        } else if let Some((range, kind)) = special_range(ip)
            && !covering.iter().any(|n| n.prefix_len() >= range.prefix_len() && range.contains(*n))
        {
            reasons.push(RefusalReason::SpecialAddress { ip, kind });
        }
    }

    match Refusal::from_reasons(reasons) {
        None => Ok(TargetAuthorization { addr: SocketAddr::new(ip, port) }),
        Some(refusal) => Err(refusal),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tier::Tier;

    fn settings(tier: Tier, ip_connect: bool, nets: &[&str]) -> BastionSettings {
        BastionSettings {
            tier,
            enable_tunneling: true,
            enable_ip_connect: ip_connect,
            reachable_networks: nets.iter().map(|n| n.parse().expect("cidr")).collect(),
            idle_timeout_secs: None,
            max_session_secs: None,
            disable_copy_paste: false,
            enable_shareable_link: false,
            file_transfer: crate::files::FileTransfer::NONE,
            file_transfer_max_bytes: None,
            session_recording: false,
            allow_unrecorded_tunnels: false,
            recording_storage_url: None,
            recording_retention_days: None,
        }
    }

    fn check(s: &BastionSettings, ip: &str, port: u16) -> Result<TargetAuthorization, Refusal> {
        let gateway = GatewayEndpoints {
            listen: vec!["0.0.0.0:8443".parse().expect("addr")],
            local_ips: vec!["192.0.2.10".parse().expect("ip")],
        };
        let ip = parse_target_ip(ip).map_err(Refusal::new)?;
        authorize_target(
            &TargetRequest { settings: s, client: ClientKind::Native, kind: TargetKind::IpAddress, ip, port },
            &gateway,
        )
    }

    fn codes(r: Result<TargetAuthorization, Refusal>) -> String {
        match r {
            Ok(a) => format!("ok {}", a.addr()),
            Err(e) => e.code(),
        }
    }

    #[test]
    fn a_recording_bastion_refuses_raw_tunnels_but_not_the_shells_it_records() {
        let gateway = GatewayEndpoints::default();
        let mut s = settings(Tier::Premium, true, &["10.1.0.0/16"]);
        s.session_recording = true;
        let ip = parse_target_ip("10.1.2.3").expect("ip");
        let ask = |s: &BastionSettings, client| {
            codes(authorize_target(
                &TargetRequest { settings: s, client, kind: TargetKind::IpAddress, ip, port: 22 },
                &gateway,
            ))
        };
        assert_eq!(ask(&s, ClientKind::Native), "RecordingRequired");
        assert_eq!(ask(&s, ClientKind::NativeRecorded), "ok 10.1.2.3:22");
        s.enable_tunneling = false;
        assert_eq!(
            ask(&s, ClientKind::NativeRecorded),
            "NativeClientDisabled",
            "native client support still applies"
        );
    }

    #[test]
    fn the_browser_needs_no_native_client_support_but_the_same_network_rules() {
        let gateway = GatewayEndpoints::default();
        let mut s = settings(Tier::Basic, false, &["10.1.0.0/16"]);
        s.enable_tunneling = false;
        let ip = parse_target_ip("10.1.2.3").expect("ip");
        let request = |client, kind, port| TargetRequest { settings: &s, client, kind, ip, port };
        let browser = authorize_target(&request(ClientKind::Browser, TargetKind::Resource, 22), &gateway);
        assert_eq!(codes(browser), "ok 10.1.2.3:22");
        let native = authorize_target(&request(ClientKind::Native, TargetKind::Resource, 22), &gateway);
        assert_eq!(codes(native), "TierLacksNativeClient");
        let by_ip = authorize_target(&request(ClientKind::Browser, TargetKind::IpAddress, 22), &gateway);
        assert_eq!(codes(by_ip), "TierLacksIpConnect");
        let custom_port =
            authorize_target(&request(ClientKind::Browser, TargetKind::Resource, 2222), &gateway);
        assert_eq!(codes(custom_port), "PortNotAllowed");
    }

    #[test]
    fn allows_a_target_in_a_reachable_network() {
        let s = settings(Tier::Standard, true, &["10.1.0.0/16"]);
        assert_eq!(codes(check(&s, "10.1.2.3", 22)), "ok 10.1.2.3:22");
        assert_eq!(codes(check(&s, "10.1.2.3", 2222)), "ok 10.1.2.3:2222");
    }

    #[test]
    fn deny_by_default() {
        let s = settings(Tier::Standard, true, &[]);
        assert_eq!(codes(check(&s, "10.1.2.3", 22)), "OutsideReachableNetworks");
    }

    #[test]
    fn names_each_setting_and_tier() {
        let mut s = settings(Tier::Standard, false, &["10.0.0.0/8"]);
        assert_eq!(codes(check(&s, "10.1.2.3", 22)), "IpConnectDisabled");
        s.enable_tunneling = false;
        assert_eq!(codes(check(&s, "10.1.2.3", 22)), "NativeClientDisabled,IpConnectDisabled");
        let basic = settings(Tier::Basic, true, &["10.0.0.0/8"]);
        let err = check(&basic, "10.1.2.3", 2222).expect_err("basic");
        assert_eq!(err.code(), "TierLacksNativeClient,TierLacksIpConnect,PortNotAllowed");
        assert!(err.to_string().contains("tier Basic"));
        assert!(err.to_string().contains("port 2222"));
    }

    #[test]
    fn special_addresses_need_an_explicit_network() {
        let wide = settings(Tier::Standard, true, &["0.0.0.0/0", "::/0"]);
        assert_eq!(codes(check(&wide, "127.0.0.1", 22)), "SpecialAddress");
        assert_eq!(codes(check(&wide, "169.254.169.254", 80)), "SpecialAddress");
        assert_eq!(codes(check(&wide, "169.254.1.1", 22)), "SpecialAddress");
        assert_eq!(codes(check(&wide, "fe80::1", 22)), "SpecialAddress");
        assert_eq!(codes(check(&wide, "::1", 22)), "SpecialAddress");
        assert_eq!(codes(check(&wide, "::ffff:127.0.0.1", 22)), "SpecialAddress");
        let lo = settings(Tier::Standard, true, &["127.0.0.0/8"]);
        assert_eq!(codes(check(&lo, "127.0.0.1", 22)), "ok 127.0.0.1:22");
        // A link-local network does not unlock the metadata endpoint inside it.
        let ll = settings(Tier::Standard, true, &["169.254.0.0/16"]);
        assert_eq!(codes(check(&ll, "169.254.169.254", 80)), "SpecialAddress");
        let md = settings(Tier::Standard, true, &["169.254.169.254/32"]);
        assert_eq!(codes(check(&md, "169.254.169.254", 80)), "ok 169.254.169.254:80");
    }

    #[test]
    fn never_the_gateway_itself() {
        let s = settings(Tier::Standard, true, &["0.0.0.0/0", "127.0.0.0/8"]);
        assert_eq!(codes(check(&s, "127.0.0.1", 8443)), "GatewayItself");
        assert_eq!(codes(check(&s, "192.0.2.10", 8443)), "GatewayItself");
        assert_eq!(codes(check(&s, "192.0.2.11", 8443)), "ok 192.0.2.11:8443");
    }

    #[test]
    fn forbidden_and_disguised_addresses() {
        let s = settings(Tier::Standard, true, &["0.0.0.0/0", "::/0"]);
        assert_eq!(codes(check(&s, "0.0.0.0", 22)), "ForbiddenAddress");
        assert_eq!(codes(check(&s, "[::]", 22)), "ForbiddenAddress");
        assert_eq!(codes(check(&s, "224.0.0.1", 22)), "ForbiddenAddress");
        assert_eq!(codes(check(&s, "255.255.255.255", 22)), "ForbiddenAddress");
        for disguised in ["127.1", "0x7f.0.0.1", "2130706433", "0177.0.0.1", "fe80::1%eth0", "host"] {
            assert_eq!(codes(check(&s, disguised, 22)), "BadAddress", "{disguised}");
        }
    }
}
