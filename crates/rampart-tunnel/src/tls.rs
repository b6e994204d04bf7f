//! The TLS primitives of a tunnel's connection, shared by both ends (the gateway's server
//! configuration and the client's), since each end encrypts what it sends.

use rustls::crypto::CryptoProvider;

/// aws-lc-rs for everything (key exchange, the post-quantum hybrid X25519MLKEM768 among it,
/// signatures, randomness), with AES-128-GCM preferred: the cheapest suite on CPUs with AES
/// instructions, and tunnels move a lot of bytes.
///
/// On x86-64 CPUs with VAES and VPCLMULQDQ but no AVX-512 (AMD Zen 3, and Zen 4 and Intel in
/// virtual machines that hide AVX-512, as on the benchmark host), the TLS 1.3 AES-GCM suites
/// (what tunnels negotiate) come from *ring*: its VAES-AVX2 code processes two blocks per instruction,
/// while aws-lc 0.47 has a VAES path only for AVX-512 and falls back to AES-NI
/// (BENCHMARKS.md, session 7). Everything else stays aws-lc-rs.
pub fn provider() -> CryptoProvider {
    let mut provider = rustls::crypto::aws_lc_rs::default_provider();
    if vaes_without_avx512() {
        use rustls::crypto::ring::cipher_suite as ring;
        for suite in &mut provider.cipher_suites {
            *suite = match suite.suite() {
                rustls::CipherSuite::TLS13_AES_128_GCM_SHA256 => ring::TLS13_AES_128_GCM_SHA256,
                rustls::CipherSuite::TLS13_AES_256_GCM_SHA384 => ring::TLS13_AES_256_GCM_SHA384,
                _ => *suite,
            };
        }
    }
    provider.cipher_suites.sort_by_key(|s| match s.suite() {
        rustls::CipherSuite::TLS13_AES_128_GCM_SHA256 => 0,
        rustls::CipherSuite::TLS13_AES_256_GCM_SHA384 => 1,
        _ => 2,
    });
    provider
}

#[cfg(target_arch = "x86_64")]
fn vaes_without_avx512() -> bool {
    std::arch::is_x86_feature_detected!("vaes")
        && std::arch::is_x86_feature_detected!("vpclmulqdq")
        && std::arch::is_x86_feature_detected!("avx2")
        && !std::arch::is_x86_feature_detected!("avx512f")
}

#[cfg(not(target_arch = "x86_64"))]
fn vaes_without_avx512() -> bool {
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefers_aes_128_gcm_and_keeps_aws_lc_key_exchange() {
        let provider = provider();
        assert_eq!(provider.cipher_suites[0].suite(), rustls::CipherSuite::TLS13_AES_128_GCM_SHA256);
        let names = |p: &CryptoProvider| p.kx_groups.iter().map(|g| g.name()).collect::<Vec<_>>();
        let ours = names(&provider);
        assert_eq!(ours, names(&rustls::crypto::aws_lc_rs::default_provider()));
        assert!(ours.contains(&rustls::NamedGroup::X25519MLKEM768));
    }

    /// ring's AES-GCM exactly where the CPU has VAES without AVX-512, aws-lc's elsewhere.
    #[test]
    fn aes_gcm_comes_from_ring_exactly_on_vaes_without_avx512() {
        use rustls::SupportedCipherSuite::Tls13;
        let (Tls13(ring), Tls13(aws_lc)) = (
            rustls::crypto::ring::cipher_suite::TLS13_AES_128_GCM_SHA256,
            rustls::crypto::aws_lc_rs::cipher_suite::TLS13_AES_128_GCM_SHA256,
        ) else {
            panic!("TLS13_AES_128_GCM_SHA256 is a TLS 1.3 suite");
        };
        let Some(Tls13(ours)) = provider().cipher_suites.first().copied() else {
            panic!("the first suite is not TLS 1.3");
        };
        let expected = if vaes_without_avx512() { ring } else { aws_lc };
        assert!(std::ptr::eq(ours, expected), "AES-128-GCM from the wrong provider");
    }
}
