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

mod ciphers;
mod client_cert;
mod legacy;

/// The TLS settings of the command line.
#[derive(Clone, Debug)]
pub struct TlsOptions {
    /// PEM certificate chain; may hold the key too (`--cert`, default `self.pem`).
    pub cert: PathBuf,
    /// PEM private key, if not in `cert` (`--key`).
    pub key: Option<PathBuf>,
    /// Password of an encrypted key (PKCS#8, or OpenSSL's legacy PEM encryption).
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
    #[error("{}: {}; convert it with `openssl pkcs8 -topk8`", .0.display(), .1)]
    KeyEncryption(PathBuf, String),
    #[error("{0}")]
    CipherSyntax(String),
    #[error("{0:?} selects no cipher suite (OpenSSL: \"no cipher match\")")]
    NoCipherMatch(String),
    #[error("selects only suites rustls does not implement: {0}")]
    OnlyUnimplemented(String),
    #[error("selects only suites that security level {0} refuses: {1}")]
    BelowSecurityLevel(u8, String),
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
        let (roots, cas) = match &options.cafile {
            Some(path) => {
                let cas = load_certs(path).map_err(|e| match e {
                    TlsError::NoCertificate(p) => TlsError::NoCa(p),
                    e => e,
                })?;
                let mut roots = RootCertStore::empty();
                for cert in &cas {
                    roots.add(cert.clone())?;
                }
                (roots, cas)
            }
            None => system_roots(),
        };
        let algorithms = provider.signature_verification_algorithms;
        let webpki = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
            .build()
            .map_err(|e| TlsError::Verifier(e.to_string()))?;
        builder.with_client_cert_verifier(Arc::new(client_cert::ClientVerifier::new(webpki, cas, algorithms)))
    } else {
        builder.with_no_client_auth()
    };
    let mut config = builder.with_single_cert(certs, key)?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(config)
}

/// The client side for `--ssl-target`: system roots plus an optional extra CA file.
pub fn connector(cafile: Option<&Path>) -> Result<TlsConnector, TlsError> {
    let (mut roots, _) = system_roots();
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

/// Loads a PKCS#1, SEC1 or PKCS#8 key, decrypting an encrypted PKCS#8 key, or one in
/// OpenSSL's legacy PEM encryption ([`legacy`]), with `password`.
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
    if legacy::is_encrypted(&text) {
        let Some(password) = password else { return Err(TlsError::KeyPasswordNeeded(path.to_owned())) };
        return legacy::decrypt(&text, password.as_bytes()).map_err(|e| match e {
            legacy::LegacyError::Decrypt => TlsError::KeyDecrypt(path.to_owned()),
            e => TlsError::KeyEncryption(path.to_owned(), e.to_string()),
        });
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

/// The system's CA certificates, as a store and as DER (for the v1 client certificate check).
fn system_roots() -> (RootCertStore, Vec<CertificateDer<'static>>) {
    let mut roots = RootCertStore::empty();
    let found = rustls_native_certs::load_native_certs();
    for err in &found.errors {
        tracing::debug!("system CA certificates: {err}");
    }
    roots.add_parsable_certificates(found.certs.iter().cloned());
    (roots, found.certs)
}

/// Checks a `--ssl-ciphers` list without loading any certificate (for the command line).
pub fn check_ciphers(list: &str) -> Result<(), TlsError> {
    provider(Some(list)).map(drop)
}

/// The ring provider, restricted to what the `--ssl-ciphers` string selects (OpenSSL's
/// cipher-list language, [`ciphers`]), in its order. As with OpenSSL, the string governs the
/// TLS 1.2 suites and the TLS 1.3 suites stay enabled, unless it names TLS 1.3 suites: then
/// only those.
fn provider(ciphers: Option<&str>) -> Result<CryptoProvider, TlsError> {
    let mut provider = rustls::crypto::ring::default_provider();
    let Some(expr) = ciphers else { return Ok(provider) };
    let selection = ciphers::evaluate(expr).map_err(|e| match e {
        ciphers::CipherError::NoMatch => TlsError::NoCipherMatch(expr.to_owned()),
        e => TlsError::CipherSyntax(e.to_string()),
    })?;
    let all = provider.cipher_suites.clone();
    let iana = |s: &SupportedCipherSuite| format!("{:?}", s.suite());
    let usable: Vec<&ciphers::Suite> = selection.usable().collect();
    let (implemented, lacking): (Vec<&ciphers::Suite>, Vec<&ciphers::Suite>) =
        usable.iter().partition(|s| all.iter().any(|r| iana(r) == s.iana));
    let mut chosen: Vec<SupportedCipherSuite> =
        implemented.iter().filter_map(|s| all.iter().find(|r| iana(r) == s.iana).copied()).collect();
    let named13: Vec<SupportedCipherSuite> = selection
        .tls13
        .iter()
        .filter_map(|name| {
            let (_, rustls_name) = ciphers::TLS13.iter().find(|(openssl, _)| openssl == name)?;
            all.iter().find(|r| iana(r) == *rustls_name).copied()
        })
        .collect();
    if chosen.is_empty() && named13.is_empty() {
        let names: Vec<&str> = usable.iter().map(|s| s.name).collect();
        if names.is_empty() {
            let all: Vec<&str> = selection.suites.iter().map(|s| s.name).collect();
            return Err(TlsError::BelowSecurityLevel(selection.level, name_list(&all)));
        }
        return Err(TlsError::OnlyUnimplemented(name_list(&names)));
    }
    // Upstream (OpenSSL) would not offer PSK or SRP suites either: no key database.
    let lacking: Vec<&str> = lacking.iter().filter(|s| !s.needs_psk_or_srp()).map(|s| s.name).collect();
    warn_once(expr, &selection.unknown, &lacking);
    if named13.is_empty() {
        chosen.extend(all.iter().filter(|s| matches!(s, SupportedCipherSuite::Tls13(_))).copied());
    } else {
        chosen.extend(named13);
    }
    provider.cipher_suites = chosen;
    Ok(provider)
}

/// Up to eight names, then how many more.
fn name_list(names: &[&str]) -> String {
    const SHOWN: usize = 8;
    let mut text = names.iter().take(SHOWN).copied().collect::<Vec<_>>().join(", ");
    if names.len() > SHOWN {
        text.push_str(&format!(" and {} more", names.len() - SHOWN));
    }
    text
}

/// The notices of a cipher string, once per process and string: the configuration is built
/// again on every certificate reload, the string does not change.
fn warn_once(expr: &str, unknown: &[String], lacking: &[&str]) {
    static WARNED: Mutex<Vec<String>> = Mutex::new(Vec::new());
    let mut warned = WARNED.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    if warned.iter().any(|e| e == expr) {
        return;
    }
    warned.push(expr.to_owned());
    for word in unknown {
        tracing::warn!(
            "--ssl-ciphers: {word:?} is not a cipher suite or keyword OpenSSL knows; ignored, as OpenSSL does"
        );
    }
    if !lacking.is_empty() {
        tracing::warn!(
            "--ssl-ciphers: {} of the suites selected are not implemented by rustls and are not offered: {}",
            lacking.len(),
            name_list(lacking)
        );
    }
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
        // Unknown words are skipped as OpenSSL does (RC4 is not in OpenSSL 3.0's default
        // build), with a warning; before the OpenSSL language they were an error.
        let p = provider(Some("ECDHE-RSA-AES128-GCM-SHA256:RC4-MD5")).unwrap();
        assert_eq!(p.cipher_suites.len(), 4);
        let err = provider(Some("RC4-MD5")).unwrap_err();
        assert!(matches!(err, TlsError::NoCipherMatch(_)), "{err}");
    }

    #[test]
    fn cipher_strings() {
        let names = |e: &str| -> Vec<String> {
            provider(Some(e)).unwrap().cipher_suites.iter().map(|s| format!("{:?}", s.suite())).collect()
        };
        assert_eq!(
            names("HIGH:!aNULL:!MD5"),
            [
                "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384",
                "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384",
                "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256",
                "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256",
                "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256",
                "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256",
                "TLS13_AES_256_GCM_SHA384",
                "TLS13_AES_128_GCM_SHA256",
                "TLS13_CHACHA20_POLY1305_SHA256",
            ]
        );
        assert_eq!(names("DEFAULT:@SECLEVEL=4").len(), 4 + 3, "only the 256-bit suites at level 4");
        assert_eq!(names("kEECDH+aRSA+AES:kRSA+AES:+AES256:RC4-SHA:!kEDH:!LOW:!EXP:!MD5:!aNULL:!eNULL").len(), 2 + 3);
        let err = provider(Some("AES128-GCM-SHA256:DHE-RSA-AES128-GCM-SHA256")).unwrap_err();
        assert_eq!(
            err.to_string(),
            "selects only suites rustls does not implement: AES128-GCM-SHA256, DHE-RSA-AES128-GCM-SHA256"
        );
        let err = provider(Some("RSA")).unwrap_err().to_string();
        assert!(err.ends_with("and 8 more"), "{err}");
        let err = provider(Some("aNULL")).unwrap_err().to_string();
        assert!(err.starts_with("selects only suites that security level 1 refuses: ADH-"), "{err}");
        assert!(matches!(provider(Some("HIGH:(")).unwrap_err(), TlsError::CipherSyntax(_)));
        // TLS 1.3 names with suites rustls lacks: the TLS 1.3 ones are used.
        assert_eq!(names("TLS_AES_256_GCM_SHA384:RSA"), ["TLS13_AES_256_GCM_SHA384"]);
    }

    #[test]
    fn ssl_versions() {
        assert_eq!(TlsVersion::parse("tlsv1_2"), Some(TlsVersion::Tls12));
        assert_eq!(TlsVersion::parse("sslv3"), None);
    }
}
