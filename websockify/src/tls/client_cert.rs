//! `--verify-client`: webpki's client certificate verifier, plus X.509 v1 client certificates.
//!
//! `openssl x509 -req -CA ca.pem -CAkey ca.key` without an extensions file writes a version 1
//! certificate, and OpenSSL (so the Python websockify) accepts it as a client certificate;
//! webpki refuses every v1 certificate (`UnsupportedCertVersion`). [`ClientVerifier`] asks
//! webpki first and, only for a v1 end-entity certificate webpki refused, checks it as
//! OpenSSL would for a certificate a configured CA issued directly: the issuer is one of the
//! CA certificates (by name, and its key verifies the signature, with the algorithms rustls'
//! provider verifies certificates with), and now is within the validity period. A v1
//! certificate has no extensions, so there is no key usage, purpose or constraint to check.
//! A v1 certificate issued by an intermediate is refused (webpki cannot check the rest of
//! such a chain). Every refusal is logged with its reason.
//!
//! webpki cannot parse a v1 certificate for the handshake signature either, so for those the
//! signature is checked here with the certificate's public key.

use std::sync::Arc;

use rustls::client::danger::HandshakeSignatureValid;
use rustls::crypto::WebPkiSupportedAlgorithms;
use rustls::pki_types::{CertificateDer, SubjectPublicKeyInfoDer, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{CertificateError, DigitallySignedStruct, DistinguishedName, Error, PeerMisbehaved, SignatureScheme};
use x509_parser::prelude::{ASN1Time, FromDer, X509Certificate, X509Version};

/// webpki's verifier with the v1 fallback (see the module doc).
#[derive(Debug)]
pub(crate) struct ClientVerifier {
    inner: Arc<dyn ClientCertVerifier>,
    /// The CA certificates (DER) the v1 check looks issuers up in.
    cas: Vec<CertificateDer<'static>>,
    algorithms: WebPkiSupportedAlgorithms,
}

impl ClientVerifier {
    pub(crate) fn new(
        inner: Arc<dyn ClientCertVerifier>,
        cas: Vec<CertificateDer<'static>>,
        algorithms: WebPkiSupportedAlgorithms,
    ) -> Self {
        Self { inner, cas, algorithms }
    }
}

impl ClientCertVerifier for ClientVerifier {
    fn offer_client_auth(&self) -> bool {
        self.inner.offer_client_auth()
    }

    fn client_auth_mandatory(&self) -> bool {
        self.inner.client_auth_mandatory()
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        self.inner.root_hint_subjects()
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, Error> {
        let refused = match self.inner.verify_client_cert(end_entity, intermediates, now) {
            Ok(verified) => return Ok(verified),
            Err(e) => e,
        };
        if !is_v1(end_entity) {
            return Err(refused);
        }
        match verify_v1(end_entity, &self.cas, &self.algorithms, now) {
            Ok(()) => Ok(ClientCertVerified::assertion()),
            Err(why) => {
                tracing::info!("client certificate refused (X.509 v1): {why}");
                Err(Error::InvalidCertificate(why.into()))
            }
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        if !is_v1(cert) {
            return self.inner.verify_tls12_signature(message, cert, dss);
        }
        let (key_alg, key) = public_key(cert).ok_or(Error::InvalidCertificate(CertificateError::BadEncoding))?;
        let algs = self
            .algorithms
            .mapping
            .iter()
            .find(|(scheme, _)| *scheme == dss.scheme)
            .map(|(_, algs)| *algs)
            .ok_or(PeerMisbehaved::SignedHandshakeWithUnadvertisedSigScheme)?;
        // As rustls for TLS 1.2: any algorithm of the scheme that takes this kind of key.
        let alg = algs
            .iter()
            .find(|alg| alg.public_key_alg_id().as_ref() == key_alg)
            .ok_or(Error::InvalidCertificate(CertificateError::BadSignature))?;
        alg.verify_signature(key, message, dss.signature())
            .map(|()| HandshakeSignatureValid::assertion())
            .map_err(|_| Error::InvalidCertificate(CertificateError::BadSignature))
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        if !is_v1(cert) {
            return self.inner.verify_tls13_signature(message, cert, dss);
        }
        let (_, parsed) =
            X509Certificate::from_der(cert).map_err(|_| Error::InvalidCertificate(CertificateError::BadEncoding))?;
        let spki = SubjectPublicKeyInfoDer::from(parsed.public_key().raw);
        rustls::crypto::verify_tls13_signature_with_raw_key(message, &spki, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

/// Why a v1 certificate is refused.
#[derive(Debug, thiserror::Error)]
enum V1Refusal {
    #[error("cannot parse it")]
    BadEncoding,
    #[error("outside its validity period ({0})")]
    Expired(String),
    #[error("not issued by a CA of --cafile (issuer {0})")]
    UnknownIssuer(String),
    #[error("its signature does not verify with the key of its issuer {0}")]
    BadSignature(String),
}

impl From<V1Refusal> for CertificateError {
    fn from(why: V1Refusal) -> Self {
        match why {
            V1Refusal::BadEncoding => Self::BadEncoding,
            V1Refusal::Expired(_) => Self::Expired,
            V1Refusal::UnknownIssuer(_) => Self::UnknownIssuer,
            V1Refusal::BadSignature(_) => Self::BadSignature,
        }
    }
}

fn is_v1(der: &[u8]) -> bool {
    X509Certificate::from_der(der).is_ok_and(|(_, cert)| cert.version() == X509Version::V1)
}

fn verify_v1(
    der: &[u8],
    cas: &[CertificateDer<'static>],
    algorithms: &WebPkiSupportedAlgorithms,
    now: UnixTime,
) -> Result<(), V1Refusal> {
    let (_, cert) = X509Certificate::from_der(der).map_err(|_| V1Refusal::BadEncoding)?;
    let now_asn1 = i64::try_from(now.as_secs())
        .ok()
        .and_then(|s| ASN1Time::from_timestamp(s).ok())
        .ok_or(V1Refusal::BadEncoding)?;
    let validity = cert.validity();
    if !validity.is_valid_at(now_asn1) {
        return Err(V1Refusal::Expired(format!("{} to {}", validity.not_before, validity.not_after)));
    }
    let (tbs, signature_alg, signature) = signed_parts(der).ok_or(V1Refusal::BadEncoding)?;
    let issuer = cert.issuer();
    let mut named = false;
    for ca_der in cas {
        let Ok((_, ca)) = X509Certificate::from_der(ca_der) else { continue };
        if ca.subject().as_raw() != issuer.as_raw() {
            continue;
        }
        named = true;
        let Some((key_alg, key)) = public_key(ca_der) else { continue };
        let verifies = algorithms.all.iter().any(|alg| {
            alg.signature_alg_id().as_ref() == signature_alg
                && alg.public_key_alg_id().as_ref() == key_alg
                && alg.verify_signature(key, tbs, signature).is_ok()
        });
        if verifies {
            return Ok(());
        }
    }
    if named {
        Err(V1Refusal::BadSignature(issuer.to_string()))
    } else {
        Err(V1Refusal::UnknownIssuer(issuer.to_string()))
    }
}

/// The signed bytes (the whole `tbsCertificate`), the contents of `signatureAlgorithm` and
/// the signature bits of a DER certificate.
fn signed_parts(der: &[u8]) -> Option<(&[u8], &[u8], &[u8])> {
    let (0x30, cert, _) = tlv(der)? else { return None };
    let (0x30, _, after_tbs) = tlv(cert)? else { return None };
    let tbs = &cert[..cert.len() - after_tbs.len()];
    let (0x30, alg, after_alg) = tlv(after_tbs)? else { return None };
    let (0x03, bits, _) = tlv(after_alg)? else { return None };
    let [0, signature @ ..] = bits else { return None };
    Some((tbs, alg, signature))
}

/// The contents of the public key's `AlgorithmIdentifier` and the key bits of a DER
/// certificate (what webpki's algorithms take).
fn public_key(der: &[u8]) -> Option<(&[u8], &[u8])> {
    let (_, cert) = X509Certificate::from_der(der).ok()?;
    let spki: &[u8] = cert.tbs_certificate.subject_pki.raw;
    let (0x30, contents, _) = tlv(spki)? else { return None };
    let (0x30, alg, rest) = tlv(contents)? else { return None };
    let (0x03, bits, _) = tlv(rest)? else { return None };
    let [0, key @ ..] = bits else { return None };
    Some((alg, key))
}

/// One DER element: its tag, its contents and what follows it.
fn tlv(input: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&tag, rest) = input.split_first()?;
    let (&first, rest) = rest.split_first()?;
    let (len, rest) = match first {
        n if n < 0x80 => (usize::from(n), rest),
        n @ 0x81..=0x84 => {
            let count = usize::from(n & 0x7f);
            let bytes = rest.get(..count)?;
            (bytes.iter().fold(0usize, |acc, b| (acc << 8) | usize::from(*b)), &rest[count..])
        }
        _ => return None,
    };
    let contents = rest.get(..len)?;
    Some((tag, contents, &rest[len..]))
}
