//! Decryption of JWE compact tokens (RFC 7516) for `JWTTokenApi`, as upstream takes them:
//! the JWE's plaintext is a signed JWT, checked with the same key afterwards.
//!
//! Written here from RustCrypto primitives (RSA-OAEP, AES key wrap, AES-CBC + HMAC,
//! AES-GCM): the Rust JWE crates either need OpenSSL (josekit) or are unmaintained. What
//! is accepted follows the key, as for signatures:
//! - an RSA private key: `alg` `RSA-OAEP` or `RSA-OAEP-256` (`RSA1_5` is refused: its
//!   padding check is an oracle, RFC 8725 §3.2);
//! - a secret (the HMAC key file): `dir` (the secret is the content key) or `A128KW`,
//!   `A192KW`, `A256KW`;
//! - `enc` `A128CBC-HS256`, `A192CBC-HS384`, `A256CBC-HS512`, `A128GCM`, `A192GCM`,
//!   `A256GCM`; compressed (`zip`) tokens are refused.

use aes::cipher::{BlockDecryptMut, KeyIvInit, block_padding::Pkcs7};
use aes_gcm::aead::{Aead, KeyInit, Payload};
use base64::Engine as _;

/// The key that can decrypt, when the key file holds one.
pub enum DecryptKey {
    Rsa(Box<rsa::RsaPrivateKey>),
    Secret(Vec<u8>),
}

#[derive(serde::Deserialize)]
struct Header {
    alg: String,
    enc: String,
    zip: Option<String>,
}

fn b64(part: &str, what: &str) -> Result<Vec<u8>, String> {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(part).map_err(|_| format!("JWE {what} is not base64url"))
}

/// Decrypts a compact JWE; returns its plaintext.
pub fn decrypt(token: &str, key: Option<&DecryptKey>) -> Result<Vec<u8>, String> {
    let parts: Vec<&str> = token.split('.').collect();
    let [protected, encrypted_key, iv, ciphertext, tag] = parts[..] else {
        return Err(format!("a JWE has 5 parts, this token has {}", parts.len()));
    };
    let header: Header = serde_json::from_slice(&b64(protected, "header")?)
        .map_err(|e| format!("JWE header: {e} (alg and enc are required)"))?;
    if let Some(zip) = &header.zip {
        return Err(format!("compressed JWE (zip {zip:?}) is not accepted"));
    }
    let key = key.ok_or("an encrypted JWT needs a private RSA key or a secret in the key file to decrypt")?;
    let (encrypted_key, iv, ciphertext, tag) =
        (b64(encrypted_key, "key")?, b64(iv, "iv")?, b64(ciphertext, "ciphertext")?, b64(tag, "tag")?);
    let cek_len = match header.enc.as_str() {
        "A128CBC-HS256" => 32,
        "A192CBC-HS384" => 48,
        "A256CBC-HS512" => 64,
        "A128GCM" => 16,
        "A192GCM" => 24,
        "A256GCM" => 32,
        other => return Err(format!("JWE enc {other:?} is not supported")),
    };
    let cek = content_key(&header.alg, &encrypted_key, key)?;
    if cek.len() != cek_len {
        return Err(format!("JWE content key is {} bytes, {} needs {cek_len}", cek.len(), header.enc));
    }
    // The additional authenticated data is the protected header as sent (RFC 7516 §5.2).
    let aad = protected.as_bytes();
    match header.enc.as_str() {
        "A128CBC-HS256" => {
            cbc_hmac::<hmac::Hmac<sha2::Sha256>, cbc::Decryptor<aes::Aes128>>(&cek, aad, &iv, &ciphertext, &tag)
        }
        "A192CBC-HS384" => {
            cbc_hmac::<hmac::Hmac<sha2::Sha384>, cbc::Decryptor<aes::Aes192>>(&cek, aad, &iv, &ciphertext, &tag)
        }
        "A256CBC-HS512" => {
            cbc_hmac::<hmac::Hmac<sha2::Sha512>, cbc::Decryptor<aes::Aes256>>(&cek, aad, &iv, &ciphertext, &tag)
        }
        "A128GCM" => gcm::<aes_gcm::Aes128Gcm>(&cek, aad, &iv, &ciphertext, &tag),
        "A192GCM" => gcm::<aes_gcm::AesGcm<aes::Aes192, aes_gcm::aead::consts::U12>>(&cek, aad, &iv, &ciphertext, &tag),
        _ => gcm::<aes_gcm::Aes256Gcm>(&cek, aad, &iv, &ciphertext, &tag),
    }
}

/// The content encryption key, from the token's encrypted key and ours.
fn content_key(alg: &str, encrypted_key: &[u8], key: &DecryptKey) -> Result<Vec<u8>, String> {
    let refused = || "JWE content key could not be decrypted with this key".to_owned();
    match (alg, key) {
        ("RSA-OAEP", DecryptKey::Rsa(private)) => {
            private.decrypt(rsa::Oaep::new::<sha1::Sha1>(), encrypted_key).map_err(|_| refused())
        }
        ("RSA-OAEP-256", DecryptKey::Rsa(private)) => {
            private.decrypt(rsa::Oaep::new::<sha2::Sha256>(), encrypted_key).map_err(|_| refused())
        }
        ("RSA1_5", _) => Err("JWE alg RSA1_5 is refused (padding oracle, RFC 8725 §3.2)".into()),
        ("dir", DecryptKey::Secret(secret)) if encrypted_key.is_empty() => Ok(secret.clone()),
        ("dir", DecryptKey::Secret(_)) => Err("JWE alg dir with an encrypted key".into()),
        ("A128KW" | "A192KW" | "A256KW", DecryptKey::Secret(secret)) => {
            let want = match alg {
                "A128KW" => 16,
                "A192KW" => 24,
                _ => 32,
            };
            if secret.len() != want {
                return Err(format!("JWE alg {alg} needs a {want}-byte secret, the key file holds {}", secret.len()));
            }
            let unwrapped = match want {
                16 => aes_kw::KekAes128::new(secret[..].into()).unwrap_vec(encrypted_key),
                24 => aes_kw::KekAes192::new(secret[..].into()).unwrap_vec(encrypted_key),
                _ => aes_kw::KekAes256::new(secret[..].into()).unwrap_vec(encrypted_key),
            };
            unwrapped.map_err(|_| refused())
        }
        (alg, DecryptKey::Rsa(_)) => Err(format!("JWE alg {alg:?} does not match the RSA private key")),
        (alg, DecryptKey::Secret(_)) => Err(format!("JWE alg {alg:?} does not match the secret")),
    }
}

/// AES-CBC with HMAC-SHA2 (RFC 7518 §5.2.2.2): the first half of the key authenticates,
/// the second decrypts; the tag is checked (in constant time) before anything is decrypted.
fn cbc_hmac<M, D>(cek: &[u8], aad: &[u8], iv: &[u8], ciphertext: &[u8], tag: &[u8]) -> Result<Vec<u8>, String>
where
    M: hmac::Mac + hmac::digest::KeyInit,
    D: KeyIvInit + BlockDecryptMut,
{
    let (mac_key, enc_key) = cek.split_at(cek.len() / 2);
    if tag.len() != mac_key.len() {
        return Err("JWE authentication tag has the wrong length".into());
    }
    let mut mac = <M as hmac::Mac>::new_from_slice(mac_key).map_err(|_| "JWE MAC key".to_owned())?;
    mac.update(aad);
    mac.update(iv);
    mac.update(ciphertext);
    mac.update(&((aad.len() as u64) * 8).to_be_bytes());
    mac.verify_truncated_left(tag).map_err(|_| "JWE authentication tag does not match".to_owned())?;
    let decryptor = D::new_from_slices(enc_key, iv).map_err(|_| "JWE iv has the wrong length".to_owned())?;
    decryptor.decrypt_padded_vec_mut::<Pkcs7>(ciphertext).map_err(|_| "JWE padding is invalid".to_owned())
}

fn gcm<C: KeyInit + Aead>(cek: &[u8], aad: &[u8], iv: &[u8], ciphertext: &[u8], tag: &[u8]) -> Result<Vec<u8>, String> {
    if iv.len() != 12 || tag.len() != 16 {
        return Err("JWE AES-GCM needs a 96-bit iv and a 128-bit tag".into());
    }
    let cipher = C::new_from_slice(cek).map_err(|_| "JWE content key".to_owned())?;
    let mut sealed = ciphertext.to_vec();
    sealed.extend_from_slice(tag);
    cipher
        .decrypt(iv.into(), Payload { msg: &sealed, aad })
        .map_err(|_| "JWE authentication tag does not match".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn part(json: &str) -> String {
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(json)
    }

    #[test]
    fn malformed_tokens_say_what_is_wrong() {
        let secret = DecryptKey::Secret(vec![7; 32]);
        let err = |token: &str| decrypt(token, Some(&secret)).unwrap_err();
        assert_eq!(err("a.b.c"), "a JWE has 5 parts, this token has 3");
        assert_eq!(err("!.a.b.c.d"), "JWE header is not base64url");
        let zip = part(r#"{"alg":"dir","enc":"A256GCM","zip":"DEF"}"#);
        assert_eq!(err(&format!("{zip}..AAAA.AAAA.AAAA")), r#"compressed JWE (zip "DEF") is not accepted"#);
        let kw = part(r#"{"alg":"A128KW","enc":"A128GCM"}"#);
        assert_eq!(
            err(&format!("{kw}.AAAA.AAAA.AAAA.AAAA")),
            "JWE alg A128KW needs a 16-byte secret, the key file holds 32"
        );
        let dir = part(r#"{"alg":"dir","enc":"A128GCM"}"#);
        assert_eq!(err(&format!("{dir}..AAAA.AAAA.AAAA")), "JWE content key is 32 bytes, A128GCM needs 16");
        let rsa = part(r#"{"alg":"RSA-OAEP","enc":"A256GCM"}"#);
        assert_eq!(err(&format!("{rsa}.AAAA.AAAA.AAAA.AAAA")), r#"JWE alg "RSA-OAEP" does not match the secret"#);
        let cbc = part(r#"{"alg":"dir","enc":"A128CBC-HS256"}"#);
        // A one-byte tag must not pass as a truncated HMAC.
        assert_eq!(
            err(&format!("{cbc}..AAAAAAAAAAAAAAAAAAAAAA.AAAA.AA")),
            "JWE authentication tag has the wrong length"
        );
        assert_eq!(
            decrypt(&format!("{cbc}..AAAA.AAAA.AAAA"), None).unwrap_err(),
            "an encrypted JWT needs a private RSA key or a secret in the key file to decrypt"
        );
    }
}
