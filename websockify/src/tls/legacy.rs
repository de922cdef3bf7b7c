//! Private keys in OpenSSL's legacy PEM encryption: `Proc-Type: 4,ENCRYPTED` and
//! `DEK-Info: AES-256-CBC,<iv>` headers in a `BEGIN RSA PRIVATE KEY` or `BEGIN EC PRIVATE KEY`
//! block, as `openssl genrsa -aes256`, `openssl rsa -des3` and `openssl ec -aes256` write them.
//! Python's `ssl` (OpenSSL) loads them with the password of `--key-password`, so we do too.
//!
//! The scheme (OpenSSL's `PEM_do_header`): the key is EVP_BytesToKey with MD5, one iteration,
//! and the first 8 bytes of the IV as salt; the body is the DER key in CBC mode with PKCS#7
//! padding.

use aes::cipher::{BlockDecryptMut, KeyIvInit, block_padding::Pkcs7};
use base64::Engine;
use md5::{Digest, Md5};
use rustls::pki_types::{PrivateKeyDer, PrivatePkcs1KeyDer, PrivatePkcs8KeyDer, PrivateSec1KeyDer};

#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub(crate) enum LegacyError {
    #[error("{0}")]
    Malformed(String),
    /// The `DEK-Info` cipher, which we do not implement.
    #[error(
        "the key is encrypted with {0}, which is not supported (DES-EDE3-CBC, DES-CBC and AES-128/192/256-CBC are)"
    )]
    UnsupportedCipher(String),
    /// Bad padding or not a DER key once decrypted: in practice, a wrong password.
    #[error("cannot decrypt the key")]
    Decrypt,
}

/// Whether `pem` holds a block in the legacy encryption.
pub(crate) fn is_encrypted(pem: &str) -> bool {
    pem.contains("Proc-Type: 4,ENCRYPTED")
}

/// Decrypts the first encrypted key block of `pem` with `password`.
pub(crate) fn decrypt(pem: &str, password: &[u8]) -> Result<PrivateKeyDer<'static>, LegacyError> {
    let block = encrypted_block(pem)?;
    let (cipher, iv_hex) = block
        .dek_info
        .split_once(',')
        .ok_or_else(|| LegacyError::Malformed(format!("DEK-Info {:?}: expected CIPHER,IV", block.dek_info)))?;
    let iv = hex(iv_hex.trim()).ok_or_else(|| LegacyError::Malformed(format!("DEK-Info IV {iv_hex:?}")))?;
    let cipher = cipher.trim();
    let (key_len, iv_len) = match cipher {
        "DES-EDE3-CBC" => (24, 8),
        "DES-CBC" => (8, 8),
        "AES-128-CBC" => (16, 16),
        "AES-192-CBC" => (24, 16),
        "AES-256-CBC" => (32, 16),
        other => return Err(LegacyError::UnsupportedCipher(other.to_owned())),
    };
    if iv.len() != iv_len {
        return Err(LegacyError::Malformed(format!("DEK-Info: {cipher} needs a {iv_len}-byte IV")));
    }
    let key = bytes_to_key(password, &iv[..8], key_len);
    let plain = match cipher {
        "DES-EDE3-CBC" => cbc_decrypt::<des::TdesEde3>(&key, &iv, &block.body),
        "DES-CBC" => cbc_decrypt::<des::Des>(&key, &iv, &block.body),
        "AES-128-CBC" => cbc_decrypt::<aes::Aes128>(&key, &iv, &block.body),
        "AES-192-CBC" => cbc_decrypt::<aes::Aes192>(&key, &iv, &block.body),
        _ => cbc_decrypt::<aes::Aes256>(&key, &iv, &block.body),
    }?;
    // A wrong password passes the padding check once in about 256 tries; the DER check
    // catches those.
    if !is_one_der_sequence(&plain) {
        return Err(LegacyError::Decrypt);
    }
    Ok(match block.label {
        "RSA PRIVATE KEY" => PrivateKeyDer::Pkcs1(PrivatePkcs1KeyDer::from(plain)),
        "EC PRIVATE KEY" => PrivateKeyDer::Sec1(PrivateSec1KeyDer::from(plain)),
        _ => PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(plain)),
    })
}

/// The parts of one encrypted PEM block.
struct Block<'a> {
    label: &'a str,
    dek_info: &'a str,
    body: Vec<u8>,
}

fn encrypted_block(pem: &str) -> Result<Block<'_>, LegacyError> {
    let mut lines = pem.lines().map(str::trim_end);
    while let Some(line) = lines.next() {
        let Some(label) = line.strip_prefix("-----BEGIN ").and_then(|l| l.strip_suffix("-----")) else { continue };
        let mut encrypted = false;
        let mut dek_info = None;
        let mut body = String::new();
        let end = format!("-----END {label}-----");
        let mut ended = false;
        for line in lines.by_ref() {
            if line == end {
                ended = true;
                break;
            }
            if line.trim() == "Proc-Type: 4,ENCRYPTED" {
                encrypted = true;
            } else if let Some(info) = line.strip_prefix("DEK-Info:") {
                dek_info = Some(info.trim());
            } else if !line.contains(':') {
                body.push_str(line.trim());
            }
        }
        if !encrypted {
            continue;
        }
        if !ended {
            return Err(LegacyError::Malformed(format!("no {end:?} line")));
        }
        if !matches!(label, "RSA PRIVATE KEY" | "EC PRIVATE KEY" | "PRIVATE KEY") {
            return Err(LegacyError::Malformed(format!("an encrypted {label:?} is not a private key")));
        }
        let dek_info = dek_info.ok_or_else(|| LegacyError::Malformed("Proc-Type ENCRYPTED without DEK-Info".into()))?;
        let body = base64::engine::general_purpose::STANDARD
            .decode(body.as_bytes())
            .map_err(|e| LegacyError::Malformed(format!("base64: {e}")))?;
        return Ok(Block { label, dek_info, body });
    }
    Err(LegacyError::Malformed("no encrypted PEM block".into()))
}

/// OpenSSL's EVP_BytesToKey with MD5 and one iteration: D_i = MD5(D_{i-1} || password || salt),
/// the key the concatenation D_1 || D_2 || ... cut to `len`.
fn bytes_to_key(password: &[u8], salt: &[u8], len: usize) -> Vec<u8> {
    let mut key = Vec::with_capacity(len + 16);
    let mut previous: Vec<u8> = Vec::new();
    while key.len() < len {
        let mut md5 = Md5::new();
        md5.update(&previous);
        md5.update(password);
        md5.update(salt);
        previous = md5.finalize().to_vec();
        key.extend_from_slice(&previous);
    }
    key.truncate(len);
    key
}

fn cbc_decrypt<C>(key: &[u8], iv: &[u8], data: &[u8]) -> Result<Vec<u8>, LegacyError>
where
    C: aes::cipher::BlockCipher + aes::cipher::BlockDecryptMut + aes::cipher::KeyInit,
{
    let decryptor = cbc::Decryptor::<C>::new_from_slices(key, iv).map_err(|_| LegacyError::Decrypt)?;
    decryptor.decrypt_padded_vec_mut::<Pkcs7>(data).map_err(|_| LegacyError::Decrypt)
}

fn hex(text: &str) -> Option<Vec<u8>> {
    if text.len() % 2 != 0 {
        return None;
    }
    (0..text.len()).step_by(2).map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok()).collect()
}

/// Whether `der` is exactly one DER SEQUENCE (the shape of every private key structure).
fn is_one_der_sequence(der: &[u8]) -> bool {
    let [0x30, first, rest @ ..] = der else { return false };
    let (len, header) = match *first {
        n if n < 0x80 => (usize::from(n), 0),
        n @ 0x81..=0x84 => {
            let count = usize::from(n & 0x7f);
            let Some(bytes) = rest.get(..count) else { return false };
            (bytes.iter().fold(0usize, |acc, b| (acc << 8) | usize::from(*b)), count)
        }
        _ => return false,
    };
    rest.len() == header + len
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs the real `openssl` with `args`, returning its standard output.
    fn openssl(args: &[&str], stdin: Option<&[u8]>) -> Vec<u8> {
        use std::io::Write;
        let mut child = std::process::Command::new("openssl")
            .args(args)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("the openssl command (installed by .ci/run)");
        if let Some(input) = stdin {
            child.stdin.take().expect("stdin").write_all(input).expect("write to openssl");
        }
        drop(child.stdin.take());
        let out = child.wait_with_output().expect("openssl");
        assert!(out.status.success(), "openssl {args:?}: {}", String::from_utf8_lossy(&out.stderr));
        out.stdout
    }

    /// The plain DER of a key, as `openssl` decodes it (PKCS#1 for RSA, SEC1 for EC).
    fn plain_der(kind: &str, pem: &[u8]) -> Vec<u8> {
        match kind {
            "rsa" => openssl(&["rsa", "-passin", "pass:secret", "-outform", "DER", "-traditional"], Some(pem)),
            _ => openssl(&["ec", "-passin", "pass:secret", "-outform", "DER"], Some(pem)),
        }
    }

    #[test]
    fn keys_openssl_encrypts() {
        let rsa = openssl(&["genrsa", "-traditional", "-aes256", "-passout", "pass:secret", "2048"], None);
        let ec_plain = openssl(&["ecparam", "-name", "prime256v1", "-genkey", "-noout"], None);
        let cases: Vec<(&str, &str, Vec<u8>)> = vec![
            ("rsa", "AES-256-CBC", rsa.clone()),
            (
                "rsa",
                "DES-EDE3-CBC",
                openssl(
                    &["rsa", "-passin", "pass:secret", "-des3", "-passout", "pass:secret", "-traditional"],
                    Some(&rsa),
                ),
            ),
            (
                "rsa",
                "AES-128-CBC",
                openssl(
                    &["rsa", "-passin", "pass:secret", "-aes128", "-passout", "pass:secret", "-traditional"],
                    Some(&rsa),
                ),
            ),
            (
                "rsa",
                "AES-192-CBC",
                openssl(
                    &["rsa", "-passin", "pass:secret", "-aes192", "-passout", "pass:secret", "-traditional"],
                    Some(&rsa),
                ),
            ),
            ("ec", "AES-256-CBC", openssl(&["ec", "-aes256", "-passout", "pass:secret"], Some(&ec_plain))),
            ("ec", "DES-EDE3-CBC", openssl(&["ec", "-des3", "-passout", "pass:secret"], Some(&ec_plain))),
        ];
        for (kind, cipher, pem) in cases {
            let text = String::from_utf8(pem.clone()).expect("PEM is text");
            assert!(is_encrypted(&text) && text.contains(&format!("DEK-Info: {cipher},")), "{text}");
            let key = decrypt(&text, b"secret").unwrap_or_else(|e| panic!("{kind} {cipher}: {e}"));
            assert_eq!(key.secret_der(), plain_der(kind, &pem), "{kind} {cipher}");
            match kind {
                "rsa" => assert!(matches!(key, PrivateKeyDer::Pkcs1(_))),
                _ => assert!(matches!(key, PrivateKeyDer::Sec1(_))),
            }
            assert_eq!(decrypt(&text, b"wrong").unwrap_err(), LegacyError::Decrypt, "{kind} {cipher}");
        }
    }

    #[test]
    fn refusals() {
        let pem = "-----BEGIN RSA PRIVATE KEY-----\nProc-Type: 4,ENCRYPTED\nDEK-Info: CAMELLIA-256-CBC,00112233445566778899AABBCCDDEEFF\n\nAAAA\n-----END RSA PRIVATE KEY-----\n";
        assert_eq!(decrypt(pem, b"x").unwrap_err(), LegacyError::UnsupportedCipher("CAMELLIA-256-CBC".into()));
        let pem = pem.replace("CAMELLIA-256-CBC,00112233445566778899AABBCCDDEEFF", "AES-128-CBC,0011");
        assert!(matches!(decrypt(&pem, b"x").unwrap_err(), LegacyError::Malformed(_)));
        let pem = pem.replace("AES-128-CBC,0011", "AES-128-CBC,00112233445566778899AABBCCDDEEFF");
        assert_eq!(decrypt(&pem, b"x").unwrap_err(), LegacyError::Decrypt, "3 bytes are not a whole block");
    }

    #[test]
    fn bytes_to_key_matches_openssl() {
        // `openssl enc -aes-256-cbc -md md5 -S 0102030405060708 -pass pass:secret -P -nosalt`
        // prints key and IV from EVP_BytesToKey; our key must be its key.
        let out = openssl(
            &["enc", "-aes-256-cbc", "-md", "md5", "-S", "0102030405060708", "-pass", "pass:secret", "-P"],
            None,
        );
        let text = String::from_utf8_lossy(&out);
        let key_hex = text.lines().find_map(|l| l.strip_prefix("key=")).expect("key= line");
        let ours = bytes_to_key(b"secret", &[1, 2, 3, 4, 5, 6, 7, 8], 32);
        assert_eq!(hex(key_hex.trim()).expect("hex"), ours);
    }
}
