//! Every way an id_token can be wrong is refused with its own reason: tokens signed here with
//! a P-256 key whose public half is the provider's published key set.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Utc};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use openidconnect::JsonWebKeySet;
use openidconnect::core::CoreJsonWebKey;
use rampart_oidc::verify::Expected;
use rampart_oidc::verify_id_token;
use serde_json::{Value, json};

const ISSUER: &str = "https://idp.test";
const CLIENT: &str = "rampart";

struct Key {
    kid: String,
    pem: String,
    jwk: Value,
}

fn key(kid: &str) -> Key {
    let pair = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).expect("key");
    let raw = pair.public_key_raw();
    // An uncompressed point: 0x04, then x and y, 32 bytes each.
    assert_eq!(raw.len(), 65);
    let jwk = json!({
        "kty": "EC", "crv": "P-256", "use": "sig", "alg": "ES256", "kid": kid,
        "x": URL_SAFE_NO_PAD.encode(&raw[1..33]), "y": URL_SAFE_NO_PAD.encode(&raw[33..65]),
    });
    Key { kid: kid.into(), pem: pair.serialize_pem(), jwk }
}

fn key_set(keys: &[&Key]) -> JsonWebKeySet<CoreJsonWebKey> {
    serde_json::from_value(json!({"keys": keys.iter().map(|k| k.jwk.clone()).collect::<Vec<_>>()}))
        .expect("jwks")
}

fn now() -> DateTime<Utc> {
    Utc::now()
}

fn claims(overrides: Value) -> Value {
    let t = now().timestamp();
    let mut c = json!({"iss": ISSUER, "aud": CLIENT, "sub": "alice", "iat": t, "exp": t + 300, "nonce": "n-1",
        "preferred_username": "alice", "groups": ["ops"]});
    if let (Some(c), Some(o)) = (c.as_object_mut(), overrides.as_object()) {
        for (k, v) in o {
            c.insert(k.clone(), v.clone());
        }
    }
    c
}

fn sign(key: &Key, claims: &Value) -> String {
    let mut header = Header::new(Algorithm::ES256);
    header.kid = Some(key.kid.clone());
    jsonwebtoken::encode(&header, claims, &EncodingKey::from_ec_pem(key.pem.as_bytes()).expect("pem"))
        .expect("sign")
}

fn expected(nonce: Option<&str>) -> Expected<'_> {
    Expected { issuer: ISSUER, client_id: CLIENT, nonce, now: now() }
}

fn refusal(token: &str, keys: &JsonWebKeySet<CoreJsonWebKey>, nonce: Option<&str>) -> String {
    verify_id_token(token, keys, &expected(nonce)).expect_err("refused").code().to_string()
}

#[test]
fn a_good_token_gives_its_claims() {
    let k = key("k1");
    let token = sign(&k, &claims(json!({})));
    let c = verify_id_token(&token, &key_set(&[&k]), &expected(Some("n-1"))).expect("valid");
    assert_eq!(c.get("sub"), Some(&json!("alice")));
    assert_eq!(c.get("groups"), Some(&json!(["ops"])));
    assert_eq!(c.get("preferred_username"), Some(&json!("alice")));
}

#[test]
fn another_audience_issuer_or_nonce_is_refused() {
    let k = key("k1");
    let keys = key_set(&[&k]);
    assert_eq!(
        refusal(&sign(&k, &claims(json!({"aud": "other-app"}))), &keys, Some("n-1")),
        "IdTokenWrongAudience"
    );
    assert_eq!(
        refusal(&sign(&k, &claims(json!({"iss": "https://evil.test"}))), &keys, Some("n-1")),
        "IdTokenWrongIssuer"
    );
    assert_eq!(refusal(&sign(&k, &claims(json!({}))), &keys, Some("n-2")), "NonceMismatch");
    assert_eq!(refusal(&sign(&k, &claims(json!({"nonce": null}))), &keys, Some("n-1")), "NonceMismatch");
}

#[test]
fn an_expired_token_is_refused() {
    let k = key("k1");
    let t = now().timestamp();
    let token = sign(&k, &claims(json!({"iat": t - 600, "exp": t - 60})));
    assert_eq!(refusal(&token, &key_set(&[&k]), Some("n-1")), "IdTokenExpired");
}

#[test]
fn a_key_the_provider_does_not_publish_is_refused() {
    let published = key("k1");
    let stranger = key("k2");
    let token = sign(&stranger, &claims(json!({})));
    assert_eq!(refusal(&token, &key_set(&[&published]), Some("n-1")), "IdTokenUnknownKey");
    // The same kid as a published key, but another key's signature.
    let impostor = Key { kid: "k1".into(), ..key("k1") };
    let forged = sign(&impostor, &claims(json!({})));
    assert_eq!(refusal(&forged, &key_set(&[&published]), Some("n-1")), "IdTokenBadSignature");
}

#[test]
fn alg_none_and_hmac_are_refused() {
    let k = key("k1");
    let keys = key_set(&[&k]);
    let body = URL_SAFE_NO_PAD.encode(claims(json!({})).to_string());
    let unsigned = format!("{}.{body}.", URL_SAFE_NO_PAD.encode(r#"{"alg":"none","typ":"JWT"}"#));
    assert_eq!(refusal(&unsigned, &keys, Some("n-1")), "IdTokenAlgorithmNotAllowed");
    let mut header = Header::new(Algorithm::HS256);
    header.kid = Some("k1".into());
    let hmac = jsonwebtoken::encode(&header, &claims(json!({})), &EncodingKey::from_secret(b"client-secret"))
        .expect("sign");
    assert_eq!(refusal(&hmac, &keys, Some("n-1")), "IdTokenAlgorithmNotAllowed");
}

#[test]
fn garbage_is_refused_not_a_panic() {
    let keys = key_set(&[&key("k1")]);
    for junk in ["", ".", "a.b.c", "eyJhbGciOiJFUzI1NiJ9..", "\u{0}\u{1}", &"x".repeat(100_000)] {
        assert_eq!(refusal(junk, &keys, None), "IdTokenInvalid", "{junk:.20}");
    }
}
