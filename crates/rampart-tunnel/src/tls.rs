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
    provider_for(CpuFeatures::detect())
}

/// The CPU features the choice of AES-GCM code depends on. A value, so that the choice can be
/// tested for every kind of CPU on any one.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CpuFeatures {
    pub vaes: bool,
    pub vpclmulqdq: bool,
    pub avx2: bool,
    pub avx512f: bool,
}

impl CpuFeatures {
    /// This CPU's features (all false off x86-64).
    pub fn detect() -> CpuFeatures {
        #[cfg(target_arch = "x86_64")]
        {
            CpuFeatures {
                vaes: std::arch::is_x86_feature_detected!("vaes"),
                vpclmulqdq: std::arch::is_x86_feature_detected!("vpclmulqdq"),
                avx2: std::arch::is_x86_feature_detected!("avx2"),
                avx512f: std::arch::is_x86_feature_detected!("avx512f"),
            }
        }
        #[cfg(not(target_arch = "x86_64"))]
        {
            CpuFeatures::default()
        }
    }

    /// Whether ring's AES-GCM is the faster one here: VAES-AVX2 without AVX-512.
    pub fn prefers_ring_aes_gcm(self) -> bool {
        self.vaes && self.vpclmulqdq && self.avx2 && !self.avx512f
    }
}

/// The provider for a CPU with `features` (see [`provider`]).
pub fn provider_for(features: CpuFeatures) -> CryptoProvider {
    let mut provider = rustls::crypto::aws_lc_rs::default_provider();
    if features.prefers_ring_aes_gcm() {
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

#[cfg(test)]
mod tests {
    use rustls::CipherSuite::{TLS13_AES_128_GCM_SHA256, TLS13_AES_256_GCM_SHA384};
    use rustls::SupportedCipherSuite;

    use super::*;

    const VAES_WITHOUT_AVX512: CpuFeatures =
        CpuFeatures { vaes: true, vpclmulqdq: true, avx2: true, avx512f: false };
    const AVX512: CpuFeatures = CpuFeatures { vaes: true, vpclmulqdq: true, avx2: true, avx512f: true };
    const AES_NI_ONLY: CpuFeatures =
        CpuFeatures { vaes: false, vpclmulqdq: false, avx2: true, avx512f: false };

    #[test]
    fn prefers_aes_128_gcm_and_keeps_aws_lc_key_exchange() {
        let provider = provider();
        assert_eq!(provider.cipher_suites[0].suite(), TLS13_AES_128_GCM_SHA256);
        let names = |p: &CryptoProvider| p.kx_groups.iter().map(|g| g.name()).collect::<Vec<_>>();
        let ours = names(&provider);
        assert_eq!(ours, names(&rustls::crypto::aws_lc_rs::default_provider()));
        assert!(ours.contains(&rustls::NamedGroup::X25519MLKEM768));
    }

    #[test]
    fn ring_aes_gcm_only_for_vaes_without_avx512() {
        assert!(VAES_WITHOUT_AVX512.prefers_ring_aes_gcm());
        assert!(!AVX512.prefers_ring_aes_gcm());
        assert!(!AES_NI_ONLY.prefers_ring_aes_gcm());
        assert!(!CpuFeatures { avx2: false, ..VAES_WITHOUT_AVX512 }.prefers_ring_aes_gcm());
        assert!(!CpuFeatures::default().prefers_ring_aes_gcm());
    }

    /// Which library's code a suite runs: told apart by which provider's list of suites holds
    /// it, each list taken exactly as `provider_for` takes its suites (rustls' statics hold
    /// one `&'static` each, and reading a static twice yields the same reference; comparing
    /// references reached through *different* statics promises nothing, which is what made
    /// the old test fail on some CPUs).
    #[derive(Debug, PartialEq, Eq)]
    enum From {
        Ring,
        AwsLc,
    }

    fn origin(suite: SupportedCipherSuite) -> From {
        use rustls::crypto::ring::cipher_suite as ring;
        let same = |a: SupportedCipherSuite, b: SupportedCipherSuite| match (a, b) {
            (SupportedCipherSuite::Tls13(a), SupportedCipherSuite::Tls13(b)) => std::ptr::eq(a, b),
            (SupportedCipherSuite::Tls12(a), SupportedCipherSuite::Tls12(b)) => std::ptr::eq(a, b),
            _ => false,
        };
        let ring_suites = [ring::TLS13_AES_128_GCM_SHA256, ring::TLS13_AES_256_GCM_SHA384];
        let aws_lc_suites = rustls::crypto::aws_lc_rs::default_provider().cipher_suites;
        let in_ring = ring_suites.iter().any(|s| same(*s, suite));
        let in_aws_lc = aws_lc_suites.iter().any(|s| same(*s, suite));
        match (in_ring, in_aws_lc) {
            (true, false) => From::Ring,
            (false, true) => From::AwsLc,
            other => panic!("{suite:?} is in ring's list / aws-lc's list: {other:?}"),
        }
    }

    fn aes_gcm_origins(features: CpuFeatures) -> Vec<(rustls::CipherSuite, From)> {
        provider_for(features)
            .cipher_suites
            .into_iter()
            .filter(|s| matches!(s.suite(), TLS13_AES_128_GCM_SHA256 | TLS13_AES_256_GCM_SHA384))
            .map(|s| (s.suite(), origin(s)))
            .collect()
    }

    /// ring's AES-GCM exactly where the CPU has VAES without AVX-512, aws-lc's elsewhere;
    /// every kind of CPU is checked on any machine, so an inverted or missing swap fails here.
    #[test]
    fn aes_gcm_comes_from_ring_exactly_on_vaes_without_avx512() {
        assert_eq!(
            aes_gcm_origins(VAES_WITHOUT_AVX512),
            [(TLS13_AES_128_GCM_SHA256, From::Ring), (TLS13_AES_256_GCM_SHA384, From::Ring)]
        );
        for features in [AVX512, AES_NI_ONLY, CpuFeatures::default()] {
            assert_eq!(
                aes_gcm_origins(features),
                [(TLS13_AES_128_GCM_SHA256, From::AwsLc), (TLS13_AES_256_GCM_SHA384, From::AwsLc)],
                "{features:?}"
            );
        }
    }

    /// Every suite other than AES-GCM stays aws-lc's, and `provider()` is `provider_for` this CPU.
    #[test]
    fn the_rest_stays_aws_lc_and_provider_follows_this_cpu() {
        let swapped = provider_for(VAES_WITHOUT_AVX512);
        for s in swapped.cipher_suites.iter().skip(2) {
            assert_eq!(origin(*s), From::AwsLc, "{:?}", s.suite());
        }
        let here = provider();
        let expected = provider_for(CpuFeatures::detect());
        let origins = |p: &CryptoProvider| p.cipher_suites.iter().map(|s| origin(*s)).collect::<Vec<_>>();
        assert_eq!(origins(&here), origins(&expected));
    }
}
