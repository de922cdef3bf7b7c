//! `JWTTokenApi`: the token is a signed JWT whose claims `host` and `port` name the target.
//!
//! The source is a key file: a PEM RSA, EC (P-256, P-384) or Ed25519 key, public or
//! private (a private key is used through its public half), or, for HMAC, a secret read the
//! way upstream reads it: the file's text is a JWK `k` value, i.e. base64url of the secret.
//! The key decides the algorithms accepted, so `alg: none` and algorithm confusion (an RSA
//! public key used as an HMAC secret) are refused. `nbf` and `exp` are enforced when
//! present. Encrypted tokens (JWE) are taken as upstream takes them: decrypted with the
//! same key file (an RSA or EC private key, or the secret), their plaintext is a signed JWT
//! checked as above (see `jwe.rs` for the algorithms).

use std::path::PathBuf;
use std::sync::Arc;

use arc_swap::ArcSwap;
use base64::Engine as _;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};

use super::jwe::{self, DecryptKey};
use super::{BoxFuture, Found, TokenError, TokenResolver};
use crate::outbound::Target;

pub struct JwtTokenApi {
    path: PathBuf,
    key: ArcSwap<Key>,
}

struct Key {
    decoding: DecodingKey,
    algorithms: Vec<Algorithm>,
    kind: &'static str,
    /// For JWE: an RSA private key or the secret (none for public keys and EC keys).
    decrypt: Option<DecryptKey>,
}

impl JwtTokenApi {
    pub fn new(source: &str) -> Result<Self, TokenError> {
        let path = PathBuf::from(source);
        let key = load_key(&path)?;
        Ok(Self { path, key: ArcSwap::from_pointee(key) })
    }
}

fn load_key(path: &PathBuf) -> Result<Key, TokenError> {
    let bytes = std::fs::read(path).map_err(|e| TokenError::Config(format!("JWT key file {}: {e}", path.display())))?;
    let text = String::from_utf8_lossy(&bytes);
    let bad = |what: &str| TokenError::Config(format!("JWT key file {}: {what}", path.display()));
    if !text.contains("-----BEGIN") {
        // HMAC: the text is the base64url of the secret (a JWK "k"), as upstream reads it.
        let secret = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(text.trim().trim_end_matches('='))
            .map_err(|_| bad("neither a PEM key nor a base64url HMAC secret"))?;
        if secret.is_empty() {
            return Err(bad("empty HMAC secret"));
        }
        return Ok(Key {
            decoding: DecodingKey::from_secret(&secret),
            algorithms: vec![Algorithm::HS256, Algorithm::HS384, Algorithm::HS512],
            kind: "HMAC secret",
            decrypt: Some(DecryptKey::Secret(secret)),
        });
    }
    let rsa_algs = vec![
        Algorithm::RS256,
        Algorithm::RS384,
        Algorithm::RS512,
        Algorithm::PS256,
        Algorithm::PS384,
        Algorithm::PS512,
    ];
    if let Ok(decoding) = DecodingKey::from_rsa_pem(&bytes) {
        if !text.contains("PRIVATE KEY") {
            return Ok(Key { decoding, algorithms: rsa_algs, kind: "RSA public key", decrypt: None });
        }
    }
    if let Ok(decoding) = DecodingKey::from_ec_pem(&bytes)
        && !text.contains("PRIVATE KEY")
    {
        let alg = if p384::PublicKey::from_public_key_pem(&text).is_ok() { Algorithm::ES384 } else { Algorithm::ES256 };
        return Ok(Key { decoding, algorithms: vec![alg], kind: "EC public key", decrypt: None });
    }
    if let Ok(decoding) = DecodingKey::from_ed_pem(&bytes) {
        return Ok(Key { decoding, algorithms: vec![Algorithm::EdDSA], kind: "Ed25519 public key", decrypt: None });
    }
    public_from_private(&text, rsa_algs)
        .ok_or_else(|| bad("unsupported PEM key (RSA, EC P-256/P-384 or Ed25519 expected)"))
}

use p256::pkcs8::{DecodePrivateKey, DecodePublicKey};

/// A private key file: verification needs only its public half.
fn public_from_private(pem: &str, rsa_algs: Vec<Algorithm>) -> Option<Key> {
    use rsa::pkcs1::{DecodeRsaPrivateKey, EncodeRsaPublicKey};
    let rsa = rsa::RsaPrivateKey::from_pkcs1_pem(pem).or_else(|_| rsa::RsaPrivateKey::from_pkcs8_pem(pem));
    if let Ok(private) = rsa {
        let der = private.to_public_key().to_pkcs1_der().ok()?;
        return Some(Key {
            decoding: DecodingKey::from_rsa_der(der.as_bytes()),
            algorithms: rsa_algs,
            kind: "RSA private key",
            decrypt: Some(DecryptKey::Rsa(Box::new(private))),
        });
    }
    let p256 = p256::SecretKey::from_sec1_pem(pem).or_else(|_| p256::SecretKey::from_pkcs8_pem(pem));
    if let Ok(secret) = p256 {
        let point = secret.public_key().to_sec1_bytes();
        return Some(Key {
            decoding: DecodingKey::from_ec_der(&point),
            algorithms: vec![Algorithm::ES256],
            kind: "EC P-256 private key",
            decrypt: Some(DecryptKey::P256(secret)),
        });
    }
    let p384 = p384::SecretKey::from_sec1_pem(pem).or_else(|_| p384::SecretKey::from_pkcs8_pem(pem));
    if let Ok(secret) = p384 {
        let point = secret.public_key().to_sec1_bytes();
        return Some(Key {
            decoding: DecodingKey::from_ec_der(&point),
            algorithms: vec![Algorithm::ES384],
            kind: "EC P-384 private key",
            decrypt: Some(DecryptKey::P384(secret)),
        });
    }
    if let Ok(signing) = ed25519_dalek::SigningKey::from_pkcs8_pem(pem) {
        let public = signing.verifying_key().to_bytes();
        return Some(Key {
            decoding: DecodingKey::from_ed_der(&public),
            algorithms: vec![Algorithm::EdDSA],
            kind: "Ed25519 private key",
            decrypt: None,
        });
    }
    None
}

#[derive(serde::Deserialize)]
struct Claims {
    host: String,
    port: serde_json::Value,
    /// Seconds since the epoch; checked by the validation, kept for session expiry.
    #[serde(default)]
    exp: Option<u64>,
}

fn is_jwe(token: &str) -> bool {
    token.split('.').count() == 5
}

impl JwtTokenApi {
    /// The target a token names, and what it counts as for the per-token cap: the SHA-256
    /// of the signed JWT's header and payload (the bytes the signature covers), so that
    /// one grant is one token however it is wrapped (a new JWE around it each time) or
    /// signed (an ECDSA signature's twin `(r, n-s)` verifies too).
    fn verify(key: &Key, token: &str) -> Result<Found, TokenError> {
        if is_jwe(token) {
            // A JWE: its plaintext is the signed JWT (upstream re-uses the key for both).
            let inner = jwe::decrypt(token, key.decrypt.as_ref()).map_err(TokenError::Refused)?;
            let inner =
                String::from_utf8(inner).map_err(|_| TokenError::Refused("JWE plaintext is not text".into()))?;
            if inner.split('.').count() != 3 {
                return Err(TokenError::Refused("JWE plaintext is not a signed JWT".into()));
            }
            return Self::verify_signed(key, &inner);
        }
        Self::verify_signed(key, token)
    }

    fn verify_signed(key: &Key, token: &str) -> Result<Found, TokenError> {
        let header =
            jsonwebtoken::decode_header(token).map_err(|e| TokenError::Refused(format!("malformed JWT: {e}")))?;
        // RFC 7515 4.1.11: a token whose "crit" names an extension we do not process must
        // be refused; we process none.
        if let Some(crit) = raw_header(token).and_then(|h| h.get("crit").cloned()) {
            return Err(TokenError::Refused(format!(
                "JWT header names critical extensions this server does not process: {crit}"
            )));
        }
        if !key.algorithms.contains(&header.alg) {
            return Err(TokenError::Refused(format!("algorithm {:?} does not match the {}", header.alg, key.kind)));
        }
        let mut validation = Validation::new(header.alg);
        validation.algorithms = key.algorithms.clone();
        validation.required_spec_claims.clear();
        validation.validate_exp = true;
        validation.validate_nbf = true;
        validation.validate_aud = false;
        validation.leeway = 0;
        let data = jsonwebtoken::decode::<Claims>(token, &key.decoding, &validation)
            .map_err(|e| TokenError::Refused(format!("JWT rejected: {e}")))?;
        let claims = data.claims;
        let port = match &claims.port {
            serde_json::Value::Number(n) => n.as_u64(),
            serde_json::Value::String(s) => s.trim().parse().ok(),
            _ => None,
        };
        let port = port.and_then(|p| u16::try_from(p).ok()).filter(|p| *p > 0);
        let port = port.ok_or_else(|| TokenError::BadTarget(format!("JWT port claim {}", claims.port)))?;
        let target = Target::Tcp { host: claims.host.trim_matches(['[', ']']).to_owned(), port };
        let signed = token.rsplit_once('.').map_or(token, |(signed, _)| signed);
        let digest = {
            use sha2::Digest as _;
            sha2::Sha256::digest(signed.as_bytes())
        };
        let counted_as = digest.iter().map(|b| format!("{b:02x}")).collect::<String>();
        let expires = claims.exp.map(|secs| std::time::UNIX_EPOCH + std::time::Duration::from_secs(secs));
        Ok(Found { target, counted_as: Some(format!("jwt:{counted_as}")), expires })
    }
}

/// The JOSE header of a compact JWS as JSON, for the members `jsonwebtoken` does not keep.
fn raw_header(token: &str) -> Option<serde_json::Value> {
    let encoded = token.split('.').next()?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(encoded.trim_end_matches('=')).ok()?;
    serde_json::from_slice(&bytes).ok()
}

impl TokenResolver for JwtTokenApi {
    fn lookup<'a>(&'a self, token: &'a str) -> BoxFuture<'a, Result<Option<Target>, TokenError>> {
        Box::pin(async move { Ok(self.lookup_counted(token).await?.map(|found| found.target)) })
    }

    fn lookup_counted<'a>(&'a self, token: &'a str) -> BoxFuture<'a, Result<Option<Found>, TokenError>> {
        let key = self.key.load_full();
        // Decrypting a JWE is a private-key operation (about a millisecond with RSA-2048)
        // on input anyone can send: off the runtime's workers, so that other sessions do
        // not wait behind it. Signed tokens verify inline.
        if is_jwe(token)
            && let Ok(runtime) = tokio::runtime::Handle::try_current()
        {
            let token = token.to_owned();
            let task = runtime.spawn_blocking(move || Self::verify(&key, &token));
            return Box::pin(async move {
                task.await.map_err(|e| TokenError::Unavailable(format!("JWE decryption task: {e}")))?.map(Some)
            });
        }
        let result = Self::verify(&key, token).map(Some);
        Box::pin(async move { result })
    }

    fn reload(&self) -> Result<(), TokenError> {
        self.key.store(Arc::new(load_key(&self.path)?));
        Ok(())
    }

    fn describe(&self) -> String {
        format!("JWTTokenApi {} ({})", self.path.display(), self.key.load().kind)
    }
}
