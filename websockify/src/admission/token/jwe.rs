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
//! - an EC P-256 or P-384 private key: `ECDH-ES` (the derived key is the content key) or
//!   `ECDH-ES+A128KW`, `+A192KW`, `+A256KW` (RFC 7518 §4.6, Concat KDF with SHA-256; the
//!   sender's `epk` must be a point on the key's curve);
//! - `enc` `A128CBC-HS256`, `A192CBC-HS384`, `A256CBC-HS512`, `A128GCM`, `A192GCM`,
//!   `A256GCM`; compressed (`zip`) tokens are refused.

use aes::cipher::{BlockDecryptMut, KeyIvInit, block_padding::Pkcs7};
use aes_gcm::aead::{Aead, KeyInit, Payload};
use base64::Engine as _;

/// The key that can decrypt, when the key file holds one.
pub enum DecryptKey {
    Rsa(Box<rsa::RsaPrivateKey>),
    Secret(Vec<u8>),
    P256(p256::SecretKey),
    P384(p384::SecretKey),
}

#[derive(serde::Deserialize)]
struct Header {
    alg: String,
    enc: String,
    zip: Option<String>,
    /// Extensions the token says must be understood: none is (RFC 7516 §4.1.13).
    crit: Option<serde_json::Value>,
    /// ECDH-ES: the sender's ephemeral public key, and the optional party infos.
    epk: Option<Epk>,
    apu: Option<String>,
    apv: Option<String>,
}

#[derive(serde::Deserialize)]
struct Epk {
    kty: String,
    crv: String,
    x: String,
    y: String,
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
    if let Some(crit) = &header.crit {
        return Err(format!("JWE header names critical extensions this server does not know: {crit}"));
    }
    let key = key.ok_or("an encrypted JWT needs a private RSA or EC key or a secret in the key file to decrypt")?;
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
    let cek = match key {
        DecryptKey::P256(_) | DecryptKey::P384(_) => agreed_key(&header, cek_len, &encrypted_key, key)?,
        _ => content_key(&header.alg, &encrypted_key, key)?,
    };
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
        // Blinded: the ciphertext is the client's choice, and unblinded RSA leaks timing
        // (RUSTSEC-2023-0071).
        ("RSA-OAEP", DecryptKey::Rsa(private)) => private
            .decrypt_blinded(&mut rsa::rand_core::OsRng, rsa::Oaep::new::<sha1::Sha1>(), encrypted_key)
            .map_err(|_| refused()),
        ("RSA-OAEP-256", DecryptKey::Rsa(private)) => private
            .decrypt_blinded(&mut rsa::rand_core::OsRng, rsa::Oaep::new::<sha2::Sha256>(), encrypted_key)
            .map_err(|_| refused()),
        ("RSA1_5", _) => Err("JWE alg RSA1_5 is refused (padding oracle, RFC 8725 §3.2)".into()),
        ("dir", DecryptKey::Secret(secret)) if encrypted_key.is_empty() => Ok(secret.clone()),
        ("dir", DecryptKey::Secret(_)) => Err("JWE alg dir with an encrypted key".into()),
        ("A128KW" | "A192KW" | "A256KW", DecryptKey::Secret(secret)) => {
            let want = kw_len(alg);
            if secret.len() != want {
                return Err(format!("JWE alg {alg} needs a {want}-byte secret, the key file holds {}", secret.len()));
            }
            unwrap(secret, encrypted_key)
        }
        (alg, DecryptKey::Rsa(_)) => Err(format!("JWE alg {alg:?} does not match the RSA private key")),
        (alg, _) => Err(format!("JWE alg {alg:?} does not match the secret")),
    }
}

fn kw_len(alg: &str) -> usize {
    if alg.ends_with("128KW") {
        16
    } else if alg.ends_with("192KW") {
        24
    } else {
        32
    }
}

/// AES key unwrap (RFC 3394) with a 16, 24 or 32-byte key.
fn unwrap(kek: &[u8], wrapped: &[u8]) -> Result<Vec<u8>, String> {
    let unwrapped = match kek.len() {
        16 => aes_kw::KekAes128::new(kek.into()).unwrap_vec(wrapped),
        24 => aes_kw::KekAes192::new(kek.into()).unwrap_vec(wrapped),
        _ => aes_kw::KekAes256::new(kek.into()).unwrap_vec(wrapped),
    };
    unwrapped.map_err(|_| "JWE content key could not be decrypted with this key".to_owned())
}

/// ECDH-ES (RFC 7518 §4.6): agree with the sender's ephemeral key, derive with the Concat
/// KDF; the result is the content key (`ECDH-ES`) or unwraps it (`ECDH-ES+A*KW`).
fn agreed_key(header: &Header, cek_len: usize, encrypted_key: &[u8], key: &DecryptKey) -> Result<Vec<u8>, String> {
    let (alg, wrapped) = match header.alg.as_str() {
        "ECDH-ES" => (&header.enc, false),
        "ECDH-ES+A128KW" | "ECDH-ES+A192KW" | "ECDH-ES+A256KW" => (&header.alg, true),
        other => return Err(format!("JWE alg {other:?} does not match the EC private key")),
    };
    let epk = header.epk.as_ref().ok_or("JWE ECDH-ES without an epk header")?;
    if epk.kty != "EC" {
        return Err(format!("JWE epk kty {:?}, EC expected", epk.kty));
    }
    let mut point = vec![4u8];
    point.extend(b64(&epk.x, "epk x")?);
    point.extend(b64(&epk.y, "epk y")?);
    let bad_point = || format!("JWE epk is not a point on {}", epk.crv);
    // `from_sec1_bytes` checks that the point is on the curve (invalid-curve attacks).
    let shared = match (key, epk.crv.as_str()) {
        (DecryptKey::P256(secret), "P-256") => {
            let public = p256::PublicKey::from_sec1_bytes(&point).map_err(|_| bad_point())?;
            p256::ecdh::diffie_hellman(secret.to_nonzero_scalar(), public.as_affine()).raw_secret_bytes().to_vec()
        }
        (DecryptKey::P384(secret), "P-384") => {
            let public = p384::PublicKey::from_sec1_bytes(&point).map_err(|_| bad_point())?;
            p384::ecdh::diffie_hellman(secret.to_nonzero_scalar(), public.as_affine()).raw_secret_bytes().to_vec()
        }
        _ => return Err(format!("JWE epk curve {:?} does not match the EC private key", epk.crv)),
    };
    let party = |info: &Option<String>, what: &str| info.as_deref().map_or(Ok(Vec::new()), |v| b64(v, what));
    let (apu, apv) = (party(&header.apu, "apu")?, party(&header.apv, "apv")?);
    let key_len = if wrapped { kw_len(alg) } else { cek_len };
    let derived = concat_kdf(&shared, alg.as_bytes(), &apu, &apv, key_len);
    if wrapped {
        unwrap(&derived, encrypted_key)
    } else if encrypted_key.is_empty() {
        Ok(derived)
    } else {
        Err("JWE alg ECDH-ES with an encrypted key".into())
    }
}

/// The Concat KDF of NIST SP 800-56A §5.8.1 with SHA-256, as RFC 7518 §4.6.2 fills it in.
fn concat_kdf(z: &[u8], algorithm: &[u8], apu: &[u8], apv: &[u8], len: usize) -> Vec<u8> {
    use sha2::Digest as _;
    let with_len = |data: &[u8]| [&(data.len() as u32).to_be_bytes()[..], data].concat();
    let mut out = Vec::with_capacity(len + 32);
    let mut counter = 1u32;
    while out.len() < len {
        let mut h = sha2::Sha256::new();
        h.update(counter.to_be_bytes());
        h.update(z);
        h.update(with_len(algorithm));
        h.update(with_len(apu));
        h.update(with_len(apv));
        h.update(((len * 8) as u32).to_be_bytes());
        out.extend_from_slice(&h.finalize());
        counter += 1;
    }
    out.truncate(len);
    out
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
        // An ephemeral key off the curve (x = y = 1) is refused before any agreement.
        let ec = DecryptKey::P256(p256::SecretKey::from_slice(&[9; 32]).unwrap());
        let one = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode([[0u8; 31].as_slice(), &[1]].concat());
        let off = part(&format!(
            r#"{{"alg":"ECDH-ES","enc":"A128GCM","epk":{{"kty":"EC","crv":"P-256","x":"{one}","y":"{one}"}}}}"#
        ));
        assert_eq!(
            decrypt(&format!("{off}..AAAA.AAAA.AAAA"), Some(&ec)).unwrap_err(),
            "JWE epk is not a point on P-256"
        );
        let crit = part(r#"{"alg":"dir","enc":"A256GCM","crit":["exp"],"exp":1}"#);
        assert_eq!(
            err(&format!("{crit}..AAAA.AAAA.AAAA")),
            r#"JWE header names critical extensions this server does not know: ["exp"]"#
        );
        let no_epk = part(r#"{"alg":"ECDH-ES","enc":"A128GCM"}"#);
        assert_eq!(
            decrypt(&format!("{no_epk}..AAAA.AAAA.AAAA"), Some(&ec)).unwrap_err(),
            "JWE ECDH-ES without an epk header"
        );
        assert_eq!(
            decrypt(&format!("{cbc}..AAAA.AAAA.AAAA"), None).unwrap_err(),
            "an encrypted JWT needs a private RSA or EC key or a secret in the key file to decrypt"
        );
    }
}
