//! `.rdp` files that connect through Rampart's RD Gateway endpoint, as the CLI
//! (`--output-rdp-file`) and the portal's download write them: any RDP client opens one.

/// An .rdp file for `target` (`address:port`) through the RD Gateway at `gateway`
/// (`host[:port]`), signed in with `token` as the gateway access token (cookie
/// authentication: the client asks for no gateway password).
pub fn through_gateway(gateway: &str, target: &str, token: &str, username: Option<&str>) -> String {
    let mut lines = vec![
        format!("full address:s:{target}"),
        format!("gatewayhostname:s:{gateway}"),
        "gatewayusagemethod:i:1".to_string(),
        "gatewayprofileusagemethod:i:1".to_string(),
        "gatewaycredentialssource:i:5".to_string(),
        format!("gatewayaccesstoken:s:{token}"),
        "use multimon:i:0".to_string(),
        "prompt for credentials:i:1".to_string(),
    ];
    if let Some(user) = username {
        lines.push(format!("username:s:{user}"));
    }
    // A value cannot end a line early: an .rdp file is one setting per line.
    lines.iter().map(|l| l.replace(['\r', '\n'], "")).collect::<Vec<_>>().join("\r\n") + "\r\n"
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_gateway_rdp_file_names_the_gateway_the_target_and_the_token() {
        let text = super::through_gateway("gw.example:8443", "10.1.0.4:3389", "tok.en", Some("a\r\nb"));
        for line in [
            "full address:s:10.1.0.4:3389\r\n",
            "gatewayhostname:s:gw.example:8443\r\n",
            "gatewayusagemethod:i:1\r\n",
            "gatewayaccesstoken:s:tok.en\r\n",
            "username:s:ab\r\n",
        ] {
            assert!(text.contains(line), "{line} in {text}");
        }
    }
}
