//! TLS with rustls: the server side for `https://`/`wss://` clients (found by sniffing the
//! first byte, on the same port as plain connections), certificate reload without a
//! restart, client certificates, and the client side for `--ssl-target`.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use arc_swap::ArcSwap;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use rustls::server::WebPkiClientVerifier;
use rustls::{ClientConfig, RootCertStore, ServerConfig, SupportedCipherSuite};
use tokio_rustls::{TlsAcceptor, TlsConnector};

/// The TLS settings of the command line.
#[derive(Clone, Debug)]
pub struct TlsOptions {
    /// PEM certificate chain; may hold the key too (`--cert`, default `self.pem`).
    pub cert: PathBuf,
    /// PEM private key, if not in `cert` (`--key`).
    pub key: Option<PathBuf>,
    /// Password of an encrypted PKCS#8 key.
    pub key_password: Option<String>,
    /// Lowest protocol version offered (`--ssl-version`).
    pub min_version: TlsVersion,
    /// Cipher suites allowed (`--ssl-ciphers`), OpenSSL or IANA names.
    pub ciphers: Option<String>,
    /// Require a client certificate signed by `cafile` (or the system roots).
    pub verify_client: bool,
    pub cafile: Option<PathBuf>,
}

impl TlsOptions {
    pub fn new(cert: PathBuf) -> Self {
        Self {
            cert,
            key: None,
            key_password: None,
            min_version: TlsVersion::Default,
            ciphers: None,
            verify_client: false,
            cafile: None,
        }
    }
}

/// `--ssl-version`: the minimum protocol version.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TlsVersion {
    /// rustls' default: TLS 1.2 and 1.3.
    Default,
    /// Accepted for compatibility; rustls does not implement TLS 1.1, so this is TLS 1.2.
    Tls11,
    Tls12,
    Tls13,
}

impl TlsVersion {
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "default" => Self::Default,
            "tlsv1_1" => Self::Tls11,
            "tlsv1_2" => Self::Tls12,
            "tlsv1_3" => Self::Tls13,
            _ => return None,
        })
    }
}

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot read {}: {source}", path.display())]
    Read { path: PathBuf, source: std::io::Error },
    #[error("{}: no PEM certificate found", .0.display())]
    NoCertificate(PathBuf),
    #[error("{}: invalid PEM: {}", .0.display(), .1)]
    BadPem(PathBuf, String),
    #[error("{}: no private key found (give it with --key)", .0.display())]
    NoKey(PathBuf),
    #[error("{}: the key is encrypted; give --key-password (or --key-password-file, WEBSOCKIFY_KEY_PASSWORD)", .0.display())]
    KeyPasswordNeeded(PathBuf),
    #[error("{}: cannot decrypt the key (wrong password?)", .0.display())]
    KeyDecrypt(PathBuf),
    #[error("{}: legacy OpenSSL key encryption is not supported; convert with `openssl pkcs8 -topk8`", .0.display())]
    LegacyEncryption(PathBuf),
    #[error("unknown TLS cipher {0:?}; known: {1}")]
    UnknownCipher(String, String),
    #[error("--ssl-ciphers leaves no cipher suite usable with --ssl-version")]
    NoCiphers,
    #[error("{}: no CA certificate found", .0.display())]
    NoCa(PathBuf),
    #[error("TLS configuration: {0}")]
    Rustls(#[from] rustls::Error),
    #[error("client certificate verifier: {0}")]
    Verifier(String),
}

/// The server side: the current configuration, swapped atomically on reload so that new
/// handshakes use the new certificate while live sessions keep theirs.
pub struct TlsServer {
    options: TlsOptions,
    current: ArcSwap<ServerConfig>,
    /// Modification times of the files the configuration was built from.
    stamps: Mutex<Vec<Option<SystemTime>>>,
}

impl TlsServer {
    pub fn load(options: TlsOptions) -> Result<Self, TlsError> {
        let stamps = file_stamps(&options);
        let config = build_server_config(&options)?;
        Ok(Self { options, current: ArcSwap::from_pointee(config), stamps: Mutex::new(stamps) })
    }

    pub fn acceptor(&self) -> TlsAcceptor {
        TlsAcceptor::from(self.current.load_full())
    }

    pub fn options(&self) -> &TlsOptions {
        &self.options
    }

    /// Rebuilds the configuration from the files. On error the old one stays in use.
    pub fn reload(&self) -> Result<(), TlsError> {
        let stamps = file_stamps(&self.options);
        let config = build_server_config(&self.options)?;
        self.current.store(Arc::new(config));
        *self.stamps.lock().expect("stamps lock") = stamps;
        Ok(())
    }

    /// Reloads if any of the files changed since the last load; says whether it did.
    pub fn reload_if_changed(&self) -> Result<bool, TlsError> {
        let now = file_stamps(&self.options);
        if *self.stamps.lock().expect("stamps lock") == now {
            return Ok(false);
        }
        self.reload().map(|()| true)
    }
}

fn file_stamps(options: &TlsOptions) -> Vec<Option<SystemTime>> {
    [Some(&options.cert), options.key.as_ref(), options.cafile.as_ref()]
        .into_iter()
        .flatten()
        .map(|p| std::fs::metadata(p).and_then(|m| m.modified()).ok())
        .collect()
}

fn build_server_config(options: &TlsOptions) -> Result<ServerConfig, TlsError> {
    let certs = load_certs(&options.cert)?;
    let key_path = options.key.as_ref().unwrap_or(&options.cert);
    let key = load_key(key_path, options.key_password.as_deref())?;
    let provider = Arc::new(provider(options.ciphers.as_deref())?);
    let versions: &[&rustls::SupportedProtocolVersion] = match options.min_version {
        TlsVersion::Tls13 => &[&rustls::version::TLS13],
        _ => &[&rustls::version::TLS13, &rustls::version::TLS12],
    };
    let builder = ServerConfig::builder_with_provider(provider.clone()).with_protocol_versions(versions)?;
    let builder = if options.verify_client {
        let roots = match &options.cafile {
            Some(path) => load_roots(path)?,
            None => system_roots(),
        };
        let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
            .build()
            .map_err(|e| TlsError::Verifier(e.to_string()))?;
        builder.with_client_cert_verifier(verifier)
    } else {
        builder.with_no_client_auth()
    };
    let mut config = builder.with_single_cert(certs, key)?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(config)
}

/// The client side for `--ssl-target`: system roots plus an optional extra CA file.
pub fn connector(cafile: Option<&Path>) -> Result<TlsConnector, TlsError> {
    let mut roots = system_roots();
    if let Some(path) = cafile {
        for cert in load_roots(path)?.roots {
            roots.roots.push(cert);
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(TlsConnector::from(Arc::new(config)))
}

fn read(path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|source| TlsError::Read { path: path.to_owned(), source })
}

fn load_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let pem = read(path)?;
    let certs = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| TlsError::BadPem(path.to_owned(), e.to_string()))?;
    if certs.is_empty() {
        return Err(TlsError::NoCertificate(path.to_owned()));
    }
    Ok(certs)
}

/// Loads a PKCS#1, SEC1 or PKCS#8 key, decrypting an encrypted PKCS#8 key with `password`.
fn load_key(path: &Path, password: Option<&str>) -> Result<PrivateKeyDer<'static>, TlsError> {
    let pem = read(path)?;
    let text = String::from_utf8_lossy(&pem);
    if let Some(start) = text.find("-----BEGIN ENCRYPTED PRIVATE KEY-----") {
        let Some(password) = password else { return Err(TlsError::KeyPasswordNeeded(path.to_owned())) };
        let end_marker = "-----END ENCRYPTED PRIVATE KEY-----";
        let end = text[start..].find(end_marker).map(|e| start + e + end_marker.len());
        let block = &text[start..end.ok_or_else(|| TlsError::BadPem(path.to_owned(), "unterminated key".into()))?];
        let (_, doc) =
            pkcs8::Document::from_pem(block).map_err(|e| TlsError::BadPem(path.to_owned(), e.to_string()))?;
        let info = pkcs8::EncryptedPrivateKeyInfo::try_from(doc.as_bytes())
            .map_err(|e| TlsError::BadPem(path.to_owned(), e.to_string()))?;
        let plain = info.decrypt(password).map_err(|_| TlsError::KeyDecrypt(path.to_owned()))?;
        return Ok(PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(plain.as_bytes().to_vec())));
    }
    if text.contains("Proc-Type: 4,ENCRYPTED") {
        return Err(TlsError::LegacyEncryption(path.to_owned()));
    }
    PrivateKeyDer::from_pem_slice(&pem).map_err(|e| match e {
        rustls::pki_types::pem::Error::NoItemsFound => TlsError::NoKey(path.to_owned()),
        e => TlsError::BadPem(path.to_owned(), e.to_string()),
    })
}

fn load_roots(path: &Path) -> Result<RootCertStore, TlsError> {
    let mut roots = RootCertStore::empty();
    for cert in load_certs(path).map_err(|e| match e {
        TlsError::NoCertificate(p) => TlsError::NoCa(p),
        e => e,
    })? {
        roots.add(cert)?;
    }
    Ok(roots)
}

fn system_roots() -> RootCertStore {
    let mut roots = RootCertStore::empty();
    let found = rustls_native_certs::load_native_certs();
    for err in &found.errors {
        tracing::debug!("system CA certificates: {err}");
    }
    roots.add_parsable_certificates(found.certs);
    roots
}

/// OpenSSL names of the suites rustls implements, next to their IANA names.
const OPENSSL_NAMES: &[(&str, &str)] = &[
    ("ECDHE-ECDSA-AES256-GCM-SHA384", "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384"),
    ("ECDHE-ECDSA-AES128-GCM-SHA256", "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256"),
    ("ECDHE-ECDSA-CHACHA20-POLY1305", "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256"),
    ("ECDHE-RSA-AES256-GCM-SHA384", "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384"),
    ("ECDHE-RSA-AES128-GCM-SHA256", "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256"),
    ("ECDHE-RSA-CHACHA20-POLY1305", "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256"),
    ("TLS_AES_256_GCM_SHA384", "TLS13_AES_256_GCM_SHA384"),
    ("TLS_AES_128_GCM_SHA256", "TLS13_AES_128_GCM_SHA256"),
    ("TLS_CHACHA20_POLY1305_SHA256", "TLS13_CHACHA20_POLY1305_SHA256"),
];

/// Checks a `--ssl-ciphers` list without loading any certificate (for the command line).
pub fn check_ciphers(list: &str) -> Result<(), TlsError> {
    provider(Some(list)).map(drop)
}

/// The ring provider, restricted to the `--ssl-ciphers` list (separated by `:`, `,` or
/// spaces). As with OpenSSL's cipher list, naming only TLS 1.2 suites leaves the TLS 1.3
/// suites enabled.
fn provider(ciphers: Option<&str>) -> Result<CryptoProvider, TlsError> {
    let mut provider = rustls::crypto::ring::default_provider();
    let Some(list) = ciphers else { return Ok(provider) };
    let all = provider.cipher_suites.clone();
    let iana = |s: &SupportedCipherSuite| format!("{:?}", s.suite());
    let mut chosen: Vec<SupportedCipherSuite> = Vec::new();
    for name in list.split([':', ',', ' ']).map(str::trim).filter(|n| !n.is_empty()) {
        let wanted = OPENSSL_NAMES.iter().find(|(o, _)| o.eq_ignore_ascii_case(name)).map_or(name, |(_, i)| i);
        let Some(suite) = all.iter().find(|s| iana(s).eq_ignore_ascii_case(wanted)) else {
            let known: Vec<&str> = OPENSSL_NAMES.iter().map(|(o, _)| *o).collect();
            return Err(TlsError::UnknownCipher(name.to_owned(), known.join(":")));
        };
        if !chosen.iter().any(|c| c.suite() == suite.suite()) {
            chosen.push(*suite);
        }
    }
    if !chosen.iter().any(|s| matches!(s, SupportedCipherSuite::Tls13(_))) {
        chosen.extend(all.iter().filter(|s| matches!(s, SupportedCipherSuite::Tls13(_))).copied());
    }
    if chosen.is_empty() {
        return Err(TlsError::NoCiphers);
    }
    provider.cipher_suites = chosen;
    Ok(provider)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cipher_names_openssl_and_iana() {
        let p = provider(Some("ECDHE-RSA-AES128-GCM-SHA256:TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384")).unwrap();
        let names: Vec<String> = p.cipher_suites.iter().map(|s| format!("{:?}", s.suite())).collect();
        assert!(names.contains(&"TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256".to_owned()));
        assert!(names.contains(&"TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384".to_owned()));
        assert!(names.iter().any(|n| n.starts_with("TLS13_")), "TLS 1.3 suites stay: {names:?}");
        assert!(!names.contains(&"TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384".to_owned()));
        let only13 = provider(Some("TLS_AES_128_GCM_SHA256")).unwrap();
        assert_eq!(only13.cipher_suites.len(), 1);
        let err = provider(Some("ECDHE-RSA-AES128-GCM-SHA256:RC4-MD5")).unwrap_err();
        assert!(err.to_string().contains("\"RC4-MD5\""), "{err}");
    }

    #[test]
    fn ssl_versions() {
        assert_eq!(TlsVersion::parse("tlsv1_2"), Some(TlsVersion::Tls12));
        assert_eq!(TlsVersion::parse("sslv3"), None);
    }
}
