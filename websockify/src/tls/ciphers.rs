//! The OpenSSL cipher-list language of `--ssl-ciphers` (`HIGH:!aNULL:!MD5`,
//! `kEECDH+aRSA+AES:+AES256`, `DEFAULT:@SECLEVEL=2`, ...), evaluated as OpenSSL 3.0's
//! `SSL_CTX_set_cipher_list` does, so that a hardening guide's string selects the same suites
//! (in the same order) as it does for the Python websockify.
//!
//! The evaluation runs over OpenSSL's whole TLS 1.2-and-lower table ([`SUITES`]), not only over
//! what rustls implements: `RSA` or `DHE-RSA-AES128-GCM-SHA256` are then known suites that
//! rustls lacks (a notice), not unknown words, and the order of what remains is OpenSSL's.
//!
//! How OpenSSL evaluates (ssl/ssl_ciph.c): every suite sits in one ordered list, active or
//! not, starting inactive in OpenSSL's default preference order. Each element of the string
//! (separated by `:`, `,`, `;` or spaces) names a set (an alias, a suite, or aliases joined by
//! `+`, meaning all of them) and applies to it:
//! - no prefix: activate the inactive members, moving them to the end (in list order);
//! - `+`: move the active members to the end;
//! - `-`: deactivate the active members, moving them to the front (so that a later addition
//!   brings them back first);
//! - `!`: remove the members for good;
//! - `@STRENGTH`: order the active suites by cipher strength, stable; `@SECLEVEL=n`: the
//!   security level the handshake enforces (see [`Suite::allowed_at`]).
//!
//! A string starting with `DEFAULT` first applies `ALL:!COMPLEMENTOFDEFAULT:!eNULL`; one
//! starting with `SUITEB128`, `SUITEB128ONLY`, `SUITEB128C2` or `SUITEB192` is replaced by
//! RFC 6460's suites (OpenSSL also restricts curves and signature algorithms then, which
//! rustls' defaults already meet for P-256/P-384 ECDSA certificates). Words OpenSSL does not
//! know are skipped, as OpenSSL does. TLS 1.3 suites are not governed by this string in
//! OpenSSL (they stay on); our one extension is that naming TLS 1.3 suites by name keeps only
//! those.

/// A protocol version, as the minimum one of a suite or an alias (`SSLv3`, `TLSv1`, ...).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Version {
    Ssl3,
    Tls1,
    Tls12,
}

/// Key exchange.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kx {
    Rsa,
    Dhe,
    Ecdhe,
    Psk,
    RsaPsk,
    DhePsk,
    EcdhePsk,
    Srp,
}

/// Server authentication.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Au {
    Rsa,
    Ecdsa,
    Dss,
    Null,
    Psk,
    Srp,
}

/// Bulk encryption; the key size is in [`Suite::bits`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Enc {
    Aes,
    AesGcm,
    AesCcm,
    AesCcm8,
    Camellia,
    AriaGcm,
    Chacha20,
    Null,
}

/// Record MAC (`Aead` for the AEAD ciphers).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Mac {
    Aead,
    Sha1,
    Sha256,
    Sha384,
    Md5,
}

/// One TLS 1.2-and-lower suite of OpenSSL's table.
#[derive(Debug)]
pub(crate) struct Suite {
    /// OpenSSL's name (`ECDHE-RSA-AES128-GCM-SHA256`).
    pub name: &'static str,
    /// The IANA name (`TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256`), as rustls spells it too.
    pub iana: &'static str,
    pub version: Version,
    pub kx: Kx,
    pub au: Au,
    pub enc: Enc,
    /// Strength of the cipher in bits (OpenSSL's `strength_bits`; 0 without encryption).
    pub bits: u16,
    pub mac: Mac,
    /// In OpenSSL's `HIGH` class.
    pub high: bool,
    /// In `COMPLEMENTOFDEFAULT` (OpenSSL's `SSL_NOT_DEFAULT`).
    pub not_default: bool,
    /// In OpenSSL's `FIPS` class.
    pub fips: bool,
}

impl Suite {
    /// Whether OpenSSL's default security callback lets this suite be used at `level`
    /// (`ssl_security_default_callback` in ssl/t1_lib.c): level 0 allows everything; from 1
    /// on, no suite weaker than the level's bits (80, 112, 128, 192, 256), no anonymous
    /// suite, no MD5, no SHA-1 MAC above 160 bits; from 3 on only forward-secret exchanges.
    pub fn allowed_at(&self, level: u8) -> bool {
        const BITS: [u16; 6] = [0, 80, 112, 128, 192, 256];
        let Some(&min) = BITS.get(usize::from(level)) else { return false };
        if level == 0 {
            return true;
        }
        let forward_secret = matches!(self.kx, Kx::Dhe | Kx::Ecdhe | Kx::DhePsk | Kx::EcdhePsk);
        self.bits >= min
            && self.au != Au::Null
            && self.mac != Mac::Md5
            && !(min > 160 && self.mac == Mac::Sha1)
            && (level < 3 || forward_secret)
    }

    /// PSK and SRP suites need a pre-shared key or SRP database a TLS server of ours (or
    /// upstream's) never has, so OpenSSL does not offer them either.
    pub fn needs_psk_or_srp(&self) -> bool {
        matches!(self.kx, Kx::Psk | Kx::RsaPsk | Kx::DhePsk | Kx::EcdhePsk | Kx::Srp)
            || matches!(self.au, Au::Psk | Au::Srp)
    }
}

/// OpenSSL's security level when the string sets none (its compiled-in default).
pub(crate) const DEFAULT_SECLEVEL: u8 = 1;

/// The TLS 1.3 suites, by OpenSSL's (= IANA's) name and by the name rustls prints.
pub(crate) const TLS13: &[(&str, &str)] = &[
    ("TLS_AES_256_GCM_SHA384", "TLS13_AES_256_GCM_SHA384"),
    ("TLS_CHACHA20_POLY1305_SHA256", "TLS13_CHACHA20_POLY1305_SHA256"),
    ("TLS_AES_128_GCM_SHA256", "TLS13_AES_128_GCM_SHA256"),
    ("TLS_AES_128_CCM_SHA256", "TLS13_AES_128_CCM_SHA256"),
    ("TLS_AES_128_CCM_8_SHA256", "TLS13_AES_128_CCM_8_SHA256"),
];

/// What a cipher string selects.
#[derive(Debug)]
pub(crate) struct Selection {
    /// The TLS 1.2-and-lower suites, in preference order, before the security level.
    pub suites: Vec<&'static Suite>,
    /// The TLS 1.3 suites named (OpenSSL names), in order; empty: the string names none.
    pub tls13: Vec<&'static str>,
    /// The security level (`@SECLEVEL=n`, else [`DEFAULT_SECLEVEL`]).
    pub level: u8,
    /// Words that are neither a suite nor a keyword; skipped, as OpenSSL does.
    pub unknown: Vec<String>,
}

impl Selection {
    /// The TLS 1.2-and-lower suites a handshake may use: those the security level allows.
    pub fn usable(&self) -> impl Iterator<Item = &'static Suite> + '_ {
        self.suites.iter().copied().filter(|s| s.allowed_at(self.level))
    }
}

#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub(crate) enum CipherError {
    /// OpenSSL's "invalid command": a character outside the language, or an unknown `@` command.
    #[error("invalid cipher string at {0:?}")]
    Invalid(String),
    /// OpenSSL's "no cipher match".
    #[error("selects no cipher suite")]
    NoMatch,
}

/// Evaluates a cipher string as OpenSSL 3.0 does (see the module doc).
pub(crate) fn evaluate(expr: &str) -> Result<Selection, CipherError> {
    let mut state = State {
        list: (0..SUITES.len()).map(|i| (i, false)).collect(),
        tls13: Vec::new(),
        level: DEFAULT_SECLEVEL,
        unknown: Vec::new(),
    };
    let mut rules = expr;
    // Suite B replaces the whole string (check_suiteb_cipher_list), longest prefix first.
    const SUITE_B: &[(&str, &str)] = &[
        ("SUITEB128ONLY", "ECDHE-ECDSA-AES128-GCM-SHA256"),
        ("SUITEB128C2", "ECDHE-ECDSA-AES256-GCM-SHA384"),
        ("SUITEB128", "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES256-GCM-SHA384"),
        ("SUITEB192", "ECDHE-ECDSA-AES256-GCM-SHA384"),
    ];
    if let Some((_, replacement)) = SUITE_B.iter().find(|(prefix, _)| expr.starts_with(prefix)) {
        rules = replacement;
    }
    if let Some(rest) = rules.strip_prefix("DEFAULT") {
        state.apply("ALL:!COMPLEMENTOFDEFAULT:!eNULL")?;
        rules = rest.strip_prefix(':').unwrap_or(rest);
    }
    state.apply(rules)?;
    let suites: Vec<&'static Suite> =
        state.list.iter().filter(|(_, active)| *active).map(|&(i, _)| &SUITES[i]).collect();
    // As SSL_CTX_set_cipher_list: no TLS 1.2 suite at all is "no cipher match" (our TLS 1.3
    // names are the exception, since they are how a TLS 1.3-only list is written).
    if suites.is_empty() && state.tls13.is_empty() {
        return Err(CipherError::NoMatch);
    }
    Ok(Selection { suites, tls13: state.tls13, level: state.level, unknown: state.unknown })
}

/// What an element does to the set it names.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Op {
    Add,
    Order,
    Delete,
    Kill,
    Special,
}

/// A place in the list: a table index, and whether the suite is active.
type Entry = (usize, bool);

/// A set of table suites, as a predicate.
type SuiteSet = Box<dyn Fn(&Suite) -> bool>;

/// The list being built: table indices in order, each active or not.
struct State {
    list: Vec<Entry>,
    tls13: Vec<&'static str>,
    level: u8,
    unknown: Vec<String>,
}

/// What a word of the string names.
enum Word {
    /// A set of table suites (a keyword or a suite name).
    Set(SuiteSet),
    /// A TLS 1.3 suite by name (our extension), as its OpenSSL name.
    Tls13(&'static str),
    /// Neither: skipped.
    Unknown,
}

impl State {
    /// `ssl_cipher_process_rulestr`: one pass over the string.
    fn apply(&mut self, rules: &str) -> Result<(), CipherError> {
        let bytes = rules.as_bytes();
        let is_sep = |c: u8| matches!(c, b':' | b' ' | b';' | b',');
        let is_word = |c: u8| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.' | b'=');
        let mut at = 0;
        while at < bytes.len() {
            let op = match bytes[at] {
                b'-' => Op::Delete,
                b'+' => Op::Order,
                b'!' => Op::Kill,
                b'@' => Op::Special,
                _ => Op::Add,
            };
            if op != Op::Add {
                at += 1;
            }
            if at < bytes.len() && is_sep(bytes[at]) {
                at += 1;
                continue;
            }
            // The element: words joined by '+', all of which must hold.
            let mut parts: Vec<&str> = Vec::new();
            loop {
                let start = at;
                while at < bytes.len() && is_word(bytes[at]) {
                    at += 1;
                }
                if at == start {
                    return Err(CipherError::Invalid(rules[start..].to_owned()));
                }
                parts.push(&rules[start..at]);
                if op == Op::Special || at >= bytes.len() || bytes[at] != b'+' {
                    break;
                }
                at += 1;
            }
            if op == Op::Special {
                self.special(parts[0])?;
                // OpenSSL takes nothing else in an '@' element: skip to the next separator.
                while at < bytes.len() && !is_sep(bytes[at]) {
                    at += 1;
                }
                continue;
            }
            self.element(op, &parts);
        }
        Ok(())
    }

    fn special(&mut self, command: &str) -> Result<(), CipherError> {
        if command == "STRENGTH" {
            self.strength_sort();
            return Ok(());
        }
        match command.strip_prefix("SECLEVEL=").map(str::as_bytes) {
            Some(&[digit @ b'0'..=b'5']) => {
                self.level = digit - b'0';
                Ok(())
            }
            _ => Err(CipherError::Invalid(format!("@{command}"))),
        }
    }

    fn element(&mut self, op: Op, parts: &[&str]) {
        if let [single] = parts {
            if let Word::Tls13(name) = word(single) {
                self.tls13_rule(op, name);
                return;
            }
        }
        let mut sets = Vec::new();
        for part in parts {
            match word(part) {
                Word::Set(set) => sets.push(set),
                // OpenSSL does not know TLS 1.3 names in this string: inside '+' they are
                // unknown words, and an unknown word voids its element.
                Word::Tls13(_) | Word::Unknown => {
                    self.unknown.push((*part).to_owned());
                    return;
                }
            }
        }
        let matches = |i: usize| sets.iter().all(|set| set(&SUITES[i]));
        let (hit, rest): (Vec<Entry>, Vec<Entry>) = match op {
            Op::Add => self.list.iter().partition(|&&(i, active)| !active && matches(i)),
            Op::Order | Op::Delete => self.list.iter().partition(|&&(i, active)| active && matches(i)),
            Op::Kill => {
                self.list.retain(|&(i, _)| !matches(i));
                return;
            }
            Op::Special => return,
        };
        self.list = match op {
            Op::Delete => hit.into_iter().map(|(i, _)| (i, false)).chain(rest).collect(),
            _ => rest.into_iter().chain(hit.into_iter().map(|(i, _)| (i, true))).collect(),
        };
    }

    /// `ssl_cipher_strength_sort`: the active suites to the end, strongest first, keeping
    /// their order within one strength.
    fn strength_sort(&mut self) {
        let (mut active, inactive): (Vec<Entry>, Vec<Entry>) = self.list.iter().partition(|&&(_, active)| active);
        active.sort_by_key(|&(i, _)| std::cmp::Reverse(SUITES[i].bits));
        self.list = inactive.into_iter().chain(active).collect();
    }

    fn tls13_rule(&mut self, op: Op, name: &'static str) {
        match op {
            Op::Add if !self.tls13.contains(&name) => self.tls13.push(name),
            Op::Order if self.tls13.contains(&name) => {
                self.tls13.retain(|n| *n != name);
                self.tls13.push(name);
            }
            Op::Delete | Op::Kill => self.tls13.retain(|n| *n != name),
            _ => {}
        }
    }
}

/// Looks a word up: OpenSSL's keywords (case-sensitive, as OpenSSL), then suite names
/// (OpenSSL's or IANA's; also in another case, which earlier versions of ours accepted).
fn word(w: &str) -> Word {
    if let Some(set) = keyword(w) {
        return Word::Set(set);
    }
    let exact = SUITES.iter().position(|s| s.name == w || s.iana == w);
    let index =
        exact.or_else(|| SUITES.iter().position(|s| s.name.eq_ignore_ascii_case(w) || s.iana.eq_ignore_ascii_case(w)));
    if let Some(i) = index {
        let name = SUITES[i].name;
        return Word::Set(Box::new(move |s| s.name == name));
    }
    if let Some((name, _)) =
        TLS13.iter().find(|(openssl, rustls)| openssl.eq_ignore_ascii_case(w) || rustls.eq_ignore_ascii_case(w))
    {
        return Word::Tls13(name);
    }
    Word::Unknown
}

/// OpenSSL 3.0's aliases (`cipher_aliases` in ssl/ssl_ciph.c) as predicates on the table.
fn keyword(w: &str) -> Option<SuiteSet> {
    fn set(f: impl Fn(&Suite) -> bool + 'static) -> Option<SuiteSet> {
        Some(Box::new(f))
    }
    let psk = |s: &Suite| matches!(s.kx, Kx::Psk | Kx::RsaPsk | Kx::DhePsk | Kx::EcdhePsk);
    match w {
        "ALL" => set(|s| s.enc != Enc::Null),
        "COMPLEMENTOFALL" | "eNULL" | "NULL" => set(|s| s.enc == Enc::Null),
        "COMPLEMENTOFDEFAULT" => set(|s| s.not_default),
        "kRSA" => set(|s| s.kx == Kx::Rsa),
        "RSA" => set(|s| s.kx == Kx::Rsa && s.au == Au::Rsa),
        "kEDH" | "kDHE" | "DH" => set(|s| s.kx == Kx::Dhe),
        "EDH" | "DHE" => set(|s| s.kx == Kx::Dhe && s.au != Au::Null),
        "ADH" => set(|s| s.kx == Kx::Dhe && s.au == Au::Null),
        "kEECDH" | "kECDHE" | "ECDH" => set(|s| s.kx == Kx::Ecdhe),
        "EECDH" | "ECDHE" => set(|s| s.kx == Kx::Ecdhe && s.au != Au::Null),
        "AECDH" => set(|s| s.kx == Kx::Ecdhe && s.au == Au::Null),
        "kPSK" => set(|s| s.kx == Kx::Psk),
        "kRSAPSK" => set(|s| s.kx == Kx::RsaPsk),
        "kDHEPSK" => set(|s| s.kx == Kx::DhePsk),
        "kECDHEPSK" => set(|s| s.kx == Kx::EcdhePsk),
        "PSK" => set(psk),
        "kSRP" | "SRP" => set(|s| s.kx == Kx::Srp),
        "aRSA" => set(|s| s.au == Au::Rsa),
        "aDSS" | "DSS" => set(|s| s.au == Au::Dss),
        "aNULL" => set(|s| s.au == Au::Null),
        "aECDSA" | "ECDSA" => set(|s| s.au == Au::Ecdsa),
        "aPSK" => set(|s| s.au == Au::Psk),
        "aSRP" => set(|s| s.au == Au::Srp),
        "AES" => set(|s| matches!(s.enc, Enc::Aes | Enc::AesGcm | Enc::AesCcm | Enc::AesCcm8)),
        "AES128" => set(|s| matches!(s.enc, Enc::Aes | Enc::AesGcm | Enc::AesCcm | Enc::AesCcm8) && s.bits == 128),
        "AES256" => set(|s| matches!(s.enc, Enc::Aes | Enc::AesGcm | Enc::AesCcm | Enc::AesCcm8) && s.bits == 256),
        "AESGCM" => set(|s| s.enc == Enc::AesGcm),
        "AESCCM" => set(|s| matches!(s.enc, Enc::AesCcm | Enc::AesCcm8)),
        "AESCCM8" => set(|s| s.enc == Enc::AesCcm8),
        "CAMELLIA" => set(|s| s.enc == Enc::Camellia),
        "CAMELLIA128" => set(|s| s.enc == Enc::Camellia && s.bits == 128),
        "CAMELLIA256" => set(|s| s.enc == Enc::Camellia && s.bits == 256),
        "CHACHA20" => set(|s| s.enc == Enc::Chacha20),
        "ARIA" | "ARIAGCM" => set(|s| s.enc == Enc::AriaGcm),
        "ARIA128" => set(|s| s.enc == Enc::AriaGcm && s.bits == 128),
        "ARIA256" => set(|s| s.enc == Enc::AriaGcm && s.bits == 256),
        "CBC" => set(|s| matches!(s.enc, Enc::Aes | Enc::Camellia)),
        "MD5" => set(|s| s.mac == Mac::Md5),
        "SHA1" | "SHA" => set(|s| s.mac == Mac::Sha1),
        "SHA256" => set(|s| s.mac == Mac::Sha256),
        "SHA384" => set(|s| s.mac == Mac::Sha384),
        "SSLv3" => set(|s| s.version == Version::Ssl3),
        "TLSv1" | "TLSv1.0" => set(|s| s.version == Version::Tls1),
        "TLSv1.2" => set(|s| s.version == Version::Tls12),
        "HIGH" => set(|s| s.high),
        "FIPS" => set(|s| s.fips && s.enc != Enc::Null),
        // Classes and ciphers OpenSSL 3.0 still names but no longer builds (RC4, 3DES, ...
        // live in its legacy provider); and words of older versions (export grades, fixed
        // DH). They select nothing, silently, as in OpenSSL.
        "MEDIUM" | "LOW" | "3DES" | "DES" | "RC4" | "RC2" | "IDEA" | "SEED" | "GOST" | "GOST94" | "GOST89MAC"
        | "GOST12" | "kGOST" | "kGOST18" | "aGOST" | "aGOST01" | "aGOST12" | "EXP" | "EXPORT" | "EXPORT40"
        | "EXPORT56" | "EXPORT1024" | "kDHr" | "kDHd" | "kDH" | "kECDHr" | "kECDHe" | "aDH" | "aECDH" | "kFZA"
        | "aFZA" | "eFZA" | "FZA" | "SSLv2" | "KRB5" | "kKRB5" | "aKRB5" | "TLSv1.1" => set(|_| false),
        _ => None,
    }
}

/// OpenSSL's TLS 1.2-and-lower suites, in the order OpenSSL arranges them before reading
/// the string (the order additions append in).
///
/// Made with OpenSSL 3.0.19 (Debian 12) from `openssl ciphers -stdname -v 'ALL:COMPLEMENTOFALL'`
/// (names, minimum version, Kx, Au, Enc(bits), Mac), the flags from `openssl ciphers -v HIGH`,
/// `COMPLEMENTOFDEFAULT` and `FIPS`. That listing puts the eNULL suites last, where OpenSSL's
/// internal order has them among the others; their places come from `openssl ciphers -v KEYWORD`
/// for every keyword of [`keyword`] (each lists its suites in the internal order), merged into
/// one order. `tests::matches_openssl` checks the result against the live `openssl`.
pub(crate) static SUITES: &[Suite] = &{
    use Au::{Dss, Ecdsa, Null as NoAu, Psk as APsk, Rsa as ARsa, Srp as ASrp};
    use Enc::{Aes, AesCcm, AesCcm8, AesGcm, AriaGcm, Camellia, Chacha20, Null};
    use Kx::{Dhe, DhePsk, Ecdhe, EcdhePsk, Psk, Rsa, RsaPsk, Srp};
    use Mac::{Aead, Md5, Sha1, Sha256, Sha384};
    use Version::{Ssl3, Tls1, Tls12};
    #[allow(clippy::too_many_arguments)]
    const fn s(
        name: &'static str,
        iana: &'static str,
        version: Version,
        kx: Kx,
        au: Au,
        enc: Enc,
        bits: u16,
        mac: Mac,
        high: bool,
        not_default: bool,
        fips: bool,
    ) -> Suite {
        Suite { name, iana, version, kx, au, enc, bits, mac, high, not_default, fips }
    }
    [
        s(
            "ECDHE-ECDSA-AES256-GCM-SHA384",
            "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384",
            Tls12,
            Ecdhe,
            Ecdsa,
            AesGcm,
            256,
            Aead,
            true,
            false,
            true,
        ),
        s(
            "ECDHE-RSA-AES256-GCM-SHA384",
            "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384",
            Tls12,
            Ecdhe,
            ARsa,
            AesGcm,
            256,
            Aead,
            true,
            false,
            true,
        ),
        s(
            "DHE-DSS-AES256-GCM-SHA384",
            "TLS_DHE_DSS_WITH_AES_256_GCM_SHA384",
            Tls12,
            Dhe,
            Dss,
            AesGcm,
            256,
            Aead,
            true,
            true,
            true,
        ),
        s(
            "DHE-RSA-AES256-GCM-SHA384",
            "TLS_DHE_RSA_WITH_AES_256_GCM_SHA384",
            Tls12,
            Dhe,
            ARsa,
            AesGcm,
            256,
            Aead,
            true,
            false,
            true,
        ),
        s(
            "ECDHE-ECDSA-CHACHA20-POLY1305",
            "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256",
            Tls12,
            Ecdhe,
            Ecdsa,
            Chacha20,
            256,
            Aead,
            true,
            false,
            false,
        ),
        s(
            "ECDHE-RSA-CHACHA20-POLY1305",
            "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256",
            Tls12,
            Ecdhe,
            ARsa,
            Chacha20,
            256,
            Aead,
            true,
            false,
            false,
        ),
        s(
            "DHE-RSA-CHACHA20-POLY1305",
            "TLS_DHE_RSA_WITH_CHACHA20_POLY1305_SHA256",
            Tls12,
            Dhe,
            ARsa,
            Chacha20,
            256,
            Aead,
            true,
            false,
            false,
        ),
        s(
            "ECDHE-ECDSA-AES256-CCM8",
            "TLS_ECDHE_ECDSA_WITH_AES_256_CCM_8",
            Tls12,
            Ecdhe,
            Ecdsa,
            AesCcm8,
            256,
            Aead,
            true,
            true,
            false,
        ),
        s(
            "ECDHE-ECDSA-AES256-CCM",
            "TLS_ECDHE_ECDSA_WITH_AES_256_CCM",
            Tls12,
            Ecdhe,
            Ecdsa,
            AesCcm,
            256,
            Aead,
            true,
            true,
            false,
        ),
        s(
            "DHE-RSA-AES256-CCM8",
            "TLS_DHE_RSA_WITH_AES_256_CCM_8",
            Tls12,
            Dhe,
            ARsa,
            AesCcm8,
            256,
            Aead,
            true,
            true,
            false,
        ),
        s("DHE-RSA-AES256-CCM", "TLS_DHE_RSA_WITH_AES_256_CCM", Tls12, Dhe, ARsa, AesCcm, 256, Aead, true, true, false),
        s(
            "ECDHE-ECDSA-ARIA256-GCM-SHA384",
            "TLS_ECDHE_ECDSA_WITH_ARIA_256_GCM_SHA384",
            Tls12,
            Ecdhe,
            Ecdsa,
            AriaGcm,
            256,
            Aead,
            true,
            true,
            false,
        ),
        s(
            "ECDHE-ARIA256-GCM-SHA384",
            "TLS_ECDHE_RSA_WITH_ARIA_256_GCM_SHA384",
            Tls12,
            Ecdhe,
            ARsa,
            AriaGcm,
            256,
            Aead,
            true,
            true,
            false,
        ),
        s(
            "DHE-DSS-ARIA256-GCM-SHA384",
            "TLS_DHE_DSS_WITH_ARIA_256_GCM_SHA384",
            Tls12,
            Dhe,
            Dss,
            AriaGcm,
            256,
            Aead,
            true,
            true,
            false,
        ),
        s(
            "DHE-RSA-ARIA256-GCM-SHA384",
            "TLS_DHE_RSA_WITH_ARIA_256_GCM_SHA384",
            Tls12,
            Dhe,
            ARsa,
            AriaGcm,
            256,
            Aead,
            true,
            true,
            false,
        ),
        s(
            "ADH-AES256-GCM-SHA384",
            "TLS_DH_anon_WITH_AES_256_GCM_SHA384",
            Tls12,
            Dhe,
            NoAu,
            AesGcm,
            256,
            Aead,
            true,
            true,
            true,
        ),
        s(
            "ECDHE-ECDSA-AES128-GCM-SHA256",
            "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256",
            Tls12,
            Ecdhe,
            Ecdsa,
            AesGcm,
            128,
            Aead,
            true,
            false,
            true,
        ),
        s(
            "ECDHE-RSA-AES128-GCM-SHA256",
            "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256",
            Tls12,
            Ecdhe,
            ARsa,
            AesGcm,
            128,
            Aead,
            true,
            false,
            true,
        ),
        s(
            "DHE-DSS-AES128-GCM-SHA256",
            "TLS_DHE_DSS_WITH_AES_128_GCM_SHA256",
            Tls12,
            Dhe,
            Dss,
            AesGcm,
            128,
            Aead,
            true,
            true,
            true,
        ),
        s(
            "DHE-RSA-AES128-GCM-SHA256",
            "TLS_DHE_RSA_WITH_AES_128_GCM_SHA256",
            Tls12,
            Dhe,
            ARsa,
            AesGcm,
            128,
            Aead,
            true,
            false,
            true,
        ),
        s(
            "ECDHE-ECDSA-AES128-CCM8",
            "TLS_ECDHE_ECDSA_WITH_AES_128_CCM_8",
            Tls12,
            Ecdhe,
            Ecdsa,
            AesCcm8,
            128,
            Aead,
            true,
            true,
            false,
        ),
        s(
            "ECDHE-ECDSA-AES128-CCM",
            "TLS_ECDHE_ECDSA_WITH_AES_128_CCM",
            Tls12,
            Ecdhe,
            Ecdsa,
            AesCcm,
            128,
            Aead,
            true,
            true,
            false,
        ),
        s(
            "DHE-RSA-AES128-CCM8",
            "TLS_DHE_RSA_WITH_AES_128_CCM_8",
            Tls12,
            Dhe,
            ARsa,
            AesCcm8,
            128,
            Aead,
            true,
            true,
            false,
        ),
        s("DHE-RSA-AES128-CCM", "TLS_DHE_RSA_WITH_AES_128_CCM", Tls12, Dhe, ARsa, AesCcm, 128, Aead, true, true, false),
        s(
            "ECDHE-ECDSA-ARIA128-GCM-SHA256",
            "TLS_ECDHE_ECDSA_WITH_ARIA_128_GCM_SHA256",
            Tls12,
            Ecdhe,
            Ecdsa,
            AriaGcm,
            128,
            Aead,
            true,
            true,
            false,
        ),
        s(
            "ECDHE-ARIA128-GCM-SHA256",
            "TLS_ECDHE_RSA_WITH_ARIA_128_GCM_SHA256",
            Tls12,
            Ecdhe,
            ARsa,
            AriaGcm,
            128,
            Aead,
            true,
            true,
            false,
        ),
        s(
            "DHE-DSS-ARIA128-GCM-SHA256",
            "TLS_DHE_DSS_WITH_ARIA_128_GCM_SHA256",
            Tls12,
            Dhe,
            Dss,
            AriaGcm,
            128,
            Aead,
            true,
            true,
            false,
        ),
        s(
            "DHE-RSA-ARIA128-GCM-SHA256",
            "TLS_DHE_RSA_WITH_ARIA_128_GCM_SHA256",
            Tls12,
            Dhe,
            ARsa,
            AriaGcm,
            128,
            Aead,
            true,
            true,
            false,
        ),
        s(
            "ADH-AES128-GCM-SHA256",
            "TLS_DH_anon_WITH_AES_128_GCM_SHA256",
            Tls12,
            Dhe,
            NoAu,
            AesGcm,
            128,
            Aead,
            true,
            true,
            true,
        ),
        s(
            "ECDHE-ECDSA-AES256-SHA384",
            "TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA384",
            Tls12,
            Ecdhe,
            Ecdsa,
            Aes,
            256,
            Sha384,
            true,
            false,
            true,
        ),
        s(
            "ECDHE-RSA-AES256-SHA384",
            "TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA384",
            Tls12,
            Ecdhe,
            ARsa,
            Aes,
            256,
            Sha384,
            true,
            false,
            true,
        ),
        s(
            "DHE-RSA-AES256-SHA256",
            "TLS_DHE_RSA_WITH_AES_256_CBC_SHA256",
            Tls12,
            Dhe,
            ARsa,
            Aes,
            256,
            Sha256,
            true,
            false,
            true,
        ),
        s(
            "DHE-DSS-AES256-SHA256",
            "TLS_DHE_DSS_WITH_AES_256_CBC_SHA256",
            Tls12,
            Dhe,
            Dss,
            Aes,
            256,
            Sha256,
            true,
            true,
            true,
        ),
        s(
            "ECDHE-ECDSA-CAMELLIA256-SHA384",
            "TLS_ECDHE_ECDSA_WITH_CAMELLIA_256_CBC_SHA384",
            Tls12,
            Ecdhe,
            Ecdsa,
            Camellia,
            256,
            Sha384,
            true,
            true,
            false,
        ),
        s(
            "ECDHE-RSA-CAMELLIA256-SHA384",
            "TLS_ECDHE_RSA_WITH_CAMELLIA_256_CBC_SHA384",
            Tls12,
            Ecdhe,
            ARsa,
            Camellia,
            256,
            Sha384,
            true,
            true,
            false,
        ),
        s(
            "DHE-RSA-CAMELLIA256-SHA256",
            "TLS_DHE_RSA_WITH_CAMELLIA_256_CBC_SHA256",
            Tls12,
            Dhe,
            ARsa,
            Camellia,
            256,
            Sha256,
            true,
            true,
            false,
        ),
        s(
            "DHE-DSS-CAMELLIA256-SHA256",
            "TLS_DHE_DSS_WITH_CAMELLIA_256_CBC_SHA256",
            Tls12,
            Dhe,
            Dss,
            Camellia,
            256,
            Sha256,
            true,
            true,
            false,
        ),
        s(
            "ADH-AES256-SHA256",
            "TLS_DH_anon_WITH_AES_256_CBC_SHA256",
            Tls12,
            Dhe,
            NoAu,
            Aes,
            256,
            Sha256,
            true,
            true,
            true,
        ),
        s(
            "ADH-CAMELLIA256-SHA256",
            "TLS_DH_anon_WITH_CAMELLIA_256_CBC_SHA256",
            Tls12,
            Dhe,
            NoAu,
            Camellia,
            256,
            Sha256,
            true,
            true,
            false,
        ),
        s(
            "ECDHE-ECDSA-AES128-SHA256",
            "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA256",
            Tls12,
            Ecdhe,
            Ecdsa,
            Aes,
            128,
            Sha256,
            true,
            false,
            true,
        ),
        s(
            "ECDHE-RSA-AES128-SHA256",
            "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA256",
            Tls12,
            Ecdhe,
            ARsa,
            Aes,
            128,
            Sha256,
            true,
            false,
            true,
        ),
        s(
            "DHE-RSA-AES128-SHA256",
            "TLS_DHE_RSA_WITH_AES_128_CBC_SHA256",
            Tls12,
            Dhe,
            ARsa,
            Aes,
            128,
            Sha256,
            true,
            false,
            true,
        ),
        s(
            "DHE-DSS-AES128-SHA256",
            "TLS_DHE_DSS_WITH_AES_128_CBC_SHA256",
            Tls12,
            Dhe,
            Dss,
            Aes,
            128,
            Sha256,
            true,
            true,
            true,
        ),
        s(
            "ECDHE-ECDSA-CAMELLIA128-SHA256",
            "TLS_ECDHE_ECDSA_WITH_CAMELLIA_128_CBC_SHA256",
            Tls12,
            Ecdhe,
            Ecdsa,
            Camellia,
            128,
            Sha256,
            true,
            true,
            false,
        ),
        s(
            "ECDHE-RSA-CAMELLIA128-SHA256",
            "TLS_ECDHE_RSA_WITH_CAMELLIA_128_CBC_SHA256",
            Tls12,
            Ecdhe,
            ARsa,
            Camellia,
            128,
            Sha256,
            true,
            true,
            false,
        ),
        s(
            "DHE-RSA-CAMELLIA128-SHA256",
            "TLS_DHE_RSA_WITH_CAMELLIA_128_CBC_SHA256",
            Tls12,
            Dhe,
            ARsa,
            Camellia,
            128,
            Sha256,
            true,
            true,
            false,
        ),
        s(
            "DHE-DSS-CAMELLIA128-SHA256",
            "TLS_DHE_DSS_WITH_CAMELLIA_128_CBC_SHA256",
            Tls12,
            Dhe,
            Dss,
            Camellia,
            128,
            Sha256,
            true,
            true,
            false,
        ),
        s(
            "ADH-AES128-SHA256",
            "TLS_DH_anon_WITH_AES_128_CBC_SHA256",
            Tls12,
            Dhe,
            NoAu,
            Aes,
            128,
            Sha256,
            true,
            true,
            true,
        ),
        s(
            "ADH-CAMELLIA128-SHA256",
            "TLS_DH_anon_WITH_CAMELLIA_128_CBC_SHA256",
            Tls12,
            Dhe,
            NoAu,
            Camellia,
            128,
            Sha256,
            true,
            true,
            false,
        ),
        s(
            "ECDHE-ECDSA-AES256-SHA",
            "TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA",
            Tls1,
            Ecdhe,
            Ecdsa,
            Aes,
            256,
            Sha1,
            true,
            false,
            true,
        ),
        s(
            "ECDHE-RSA-AES256-SHA",
            "TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA",
            Tls1,
            Ecdhe,
            ARsa,
            Aes,
            256,
            Sha1,
            true,
            false,
            true,
        ),
        s("DHE-RSA-AES256-SHA", "TLS_DHE_RSA_WITH_AES_256_CBC_SHA", Ssl3, Dhe, ARsa, Aes, 256, Sha1, true, false, true),
        s("DHE-DSS-AES256-SHA", "TLS_DHE_DSS_WITH_AES_256_CBC_SHA", Ssl3, Dhe, Dss, Aes, 256, Sha1, true, true, true),
        s(
            "DHE-RSA-CAMELLIA256-SHA",
            "TLS_DHE_RSA_WITH_CAMELLIA_256_CBC_SHA",
            Ssl3,
            Dhe,
            ARsa,
            Camellia,
            256,
            Sha1,
            true,
            true,
            false,
        ),
        s(
            "DHE-DSS-CAMELLIA256-SHA",
            "TLS_DHE_DSS_WITH_CAMELLIA_256_CBC_SHA",
            Ssl3,
            Dhe,
            Dss,
            Camellia,
            256,
            Sha1,
            true,
            true,
            false,
        ),
        s(
            "AECDH-AES256-SHA",
            "TLS_ECDH_anon_WITH_AES_256_CBC_SHA",
            Tls1,
            Ecdhe,
            NoAu,
            Aes,
            256,
            Sha1,
            true,
            true,
            true,
        ),
        s("ADH-AES256-SHA", "TLS_DH_anon_WITH_AES_256_CBC_SHA", Ssl3, Dhe, NoAu, Aes, 256, Sha1, true, true, true),
        s(
            "ADH-CAMELLIA256-SHA",
            "TLS_DH_anon_WITH_CAMELLIA_256_CBC_SHA",
            Ssl3,
            Dhe,
            NoAu,
            Camellia,
            256,
            Sha1,
            true,
            true,
            false,
        ),
        s(
            "ECDHE-ECDSA-AES128-SHA",
            "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA",
            Tls1,
            Ecdhe,
            Ecdsa,
            Aes,
            128,
            Sha1,
            true,
            false,
            true,
        ),
        s(
            "ECDHE-RSA-AES128-SHA",
            "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA",
            Tls1,
            Ecdhe,
            ARsa,
            Aes,
            128,
            Sha1,
            true,
            false,
            true,
        ),
        s("DHE-RSA-AES128-SHA", "TLS_DHE_RSA_WITH_AES_128_CBC_SHA", Ssl3, Dhe, ARsa, Aes, 128, Sha1, true, false, true),
        s("DHE-DSS-AES128-SHA", "TLS_DHE_DSS_WITH_AES_128_CBC_SHA", Ssl3, Dhe, Dss, Aes, 128, Sha1, true, true, true),
        s(
            "DHE-RSA-CAMELLIA128-SHA",
            "TLS_DHE_RSA_WITH_CAMELLIA_128_CBC_SHA",
            Ssl3,
            Dhe,
            ARsa,
            Camellia,
            128,
            Sha1,
            true,
            true,
            false,
        ),
        s(
            "DHE-DSS-CAMELLIA128-SHA",
            "TLS_DHE_DSS_WITH_CAMELLIA_128_CBC_SHA",
            Ssl3,
            Dhe,
            Dss,
            Camellia,
            128,
            Sha1,
            true,
            true,
            false,
        ),
        s(
            "AECDH-AES128-SHA",
            "TLS_ECDH_anon_WITH_AES_128_CBC_SHA",
            Tls1,
            Ecdhe,
            NoAu,
            Aes,
            128,
            Sha1,
            true,
            true,
            true,
        ),
        s("ADH-AES128-SHA", "TLS_DH_anon_WITH_AES_128_CBC_SHA", Ssl3, Dhe, NoAu, Aes, 128, Sha1, true, true, true),
        s(
            "ADH-CAMELLIA128-SHA",
            "TLS_DH_anon_WITH_CAMELLIA_128_CBC_SHA",
            Ssl3,
            Dhe,
            NoAu,
            Camellia,
            128,
            Sha1,
            true,
            true,
            false,
        ),
        s(
            "ECDHE-ECDSA-NULL-SHA",
            "TLS_ECDHE_ECDSA_WITH_NULL_SHA",
            Tls1,
            Ecdhe,
            Ecdsa,
            Null,
            0,
            Sha1,
            false,
            false,
            false,
        ),
        s("ECDHE-RSA-NULL-SHA", "TLS_ECDHE_RSA_WITH_NULL_SHA", Tls1, Ecdhe, ARsa, Null, 0, Sha1, false, false, false),
        s(
            "RSA-PSK-AES256-GCM-SHA384",
            "TLS_RSA_PSK_WITH_AES_256_GCM_SHA384",
            Tls12,
            RsaPsk,
            ARsa,
            AesGcm,
            256,
            Aead,
            true,
            false,
            true,
        ),
        s(
            "DHE-PSK-AES256-GCM-SHA384",
            "TLS_DHE_PSK_WITH_AES_256_GCM_SHA384",
            Tls12,
            DhePsk,
            APsk,
            AesGcm,
            256,
            Aead,
            true,
            false,
            true,
        ),
        s(
            "RSA-PSK-CHACHA20-POLY1305",
            "TLS_RSA_PSK_WITH_CHACHA20_POLY1305_SHA256",
            Tls12,
            RsaPsk,
            ARsa,
            Chacha20,
            256,
            Aead,
            true,
            false,
            false,
        ),
        s(
            "DHE-PSK-CHACHA20-POLY1305",
            "TLS_DHE_PSK_WITH_CHACHA20_POLY1305_SHA256",
            Tls12,
            DhePsk,
            APsk,
            Chacha20,
            256,
            Aead,
            true,
            false,
            false,
        ),
        s(
            "ECDHE-PSK-CHACHA20-POLY1305",
            "TLS_ECDHE_PSK_WITH_CHACHA20_POLY1305_SHA256",
            Tls12,
            EcdhePsk,
            APsk,
            Chacha20,
            256,
            Aead,
            true,
            false,
            false,
        ),
        s(
            "DHE-PSK-AES256-CCM8",
            "TLS_PSK_DHE_WITH_AES_256_CCM_8",
            Tls12,
            DhePsk,
            APsk,
            AesCcm8,
            256,
            Aead,
            true,
            true,
            false,
        ),
        s(
            "DHE-PSK-AES256-CCM",
            "TLS_DHE_PSK_WITH_AES_256_CCM",
            Tls12,
            DhePsk,
            APsk,
            AesCcm,
            256,
            Aead,
            true,
            true,
            false,
        ),
        s(
            "RSA-PSK-ARIA256-GCM-SHA384",
            "TLS_RSA_PSK_WITH_ARIA_256_GCM_SHA384",
            Tls12,
            RsaPsk,
            ARsa,
            AriaGcm,
            256,
            Aead,
            true,
            true,
            false,
        ),
        s(
            "DHE-PSK-ARIA256-GCM-SHA384",
            "TLS_DHE_PSK_WITH_ARIA_256_GCM_SHA384",
            Tls12,
            DhePsk,
            APsk,
            AriaGcm,
            256,
            Aead,
            true,
            true,
            false,
        ),
        s(
            "AES256-GCM-SHA384",
            "TLS_RSA_WITH_AES_256_GCM_SHA384",
            Tls12,
            Rsa,
            ARsa,
            AesGcm,
            256,
            Aead,
            true,
            false,
            true,
        ),
        s("AES256-CCM8", "TLS_RSA_WITH_AES_256_CCM_8", Tls12, Rsa, ARsa, AesCcm8, 256, Aead, true, true, false),
        s("AES256-CCM", "TLS_RSA_WITH_AES_256_CCM", Tls12, Rsa, ARsa, AesCcm, 256, Aead, true, true, false),
        s(
            "ARIA256-GCM-SHA384",
            "TLS_RSA_WITH_ARIA_256_GCM_SHA384",
            Tls12,
            Rsa,
            ARsa,
            AriaGcm,
            256,
            Aead,
            true,
            true,
            false,
        ),
        s(
            "PSK-AES256-GCM-SHA384",
            "TLS_PSK_WITH_AES_256_GCM_SHA384",
            Tls12,
            Psk,
            APsk,
            AesGcm,
            256,
            Aead,
            true,
            false,
            true,
        ),
        s(
            "PSK-CHACHA20-POLY1305",
            "TLS_PSK_WITH_CHACHA20_POLY1305_SHA256",
            Tls12,
            Psk,
            APsk,
            Chacha20,
            256,
            Aead,
            true,
            false,
            false,
        ),
        s("PSK-AES256-CCM8", "TLS_PSK_WITH_AES_256_CCM_8", Tls12, Psk, APsk, AesCcm8, 256, Aead, true, true, false),
        s("PSK-AES256-CCM", "TLS_PSK_WITH_AES_256_CCM", Tls12, Psk, APsk, AesCcm, 256, Aead, true, true, false),
        s(
            "PSK-ARIA256-GCM-SHA384",
            "TLS_PSK_WITH_ARIA_256_GCM_SHA384",
            Tls12,
            Psk,
            APsk,
            AriaGcm,
            256,
            Aead,
            true,
            true,
            false,
        ),
        s(
            "RSA-PSK-AES128-GCM-SHA256",
            "TLS_RSA_PSK_WITH_AES_128_GCM_SHA256",
            Tls12,
            RsaPsk,
            ARsa,
            AesGcm,
            128,
            Aead,
            true,
            false,
            true,
        ),
        s(
            "DHE-PSK-AES128-GCM-SHA256",
            "TLS_DHE_PSK_WITH_AES_128_GCM_SHA256",
            Tls12,
            DhePsk,
            APsk,
            AesGcm,
            128,
            Aead,
            true,
            false,
            true,
        ),
        s(
            "DHE-PSK-AES128-CCM8",
            "TLS_PSK_DHE_WITH_AES_128_CCM_8",
            Tls12,
            DhePsk,
            APsk,
            AesCcm8,
            128,
            Aead,
            true,
            true,
            false,
        ),
        s(
            "DHE-PSK-AES128-CCM",
            "TLS_DHE_PSK_WITH_AES_128_CCM",
            Tls12,
            DhePsk,
            APsk,
            AesCcm,
            128,
            Aead,
            true,
            true,
            false,
        ),
        s(
            "RSA-PSK-ARIA128-GCM-SHA256",
            "TLS_RSA_PSK_WITH_ARIA_128_GCM_SHA256",
            Tls12,
            RsaPsk,
            ARsa,
            AriaGcm,
            128,
            Aead,
            true,
            true,
            false,
        ),
        s(
            "DHE-PSK-ARIA128-GCM-SHA256",
            "TLS_DHE_PSK_WITH_ARIA_128_GCM_SHA256",
            Tls12,
            DhePsk,
            APsk,
            AriaGcm,
            128,
            Aead,
            true,
            true,
            false,
        ),
        s(
            "AES128-GCM-SHA256",
            "TLS_RSA_WITH_AES_128_GCM_SHA256",
            Tls12,
            Rsa,
            ARsa,
            AesGcm,
            128,
            Aead,
            true,
            false,
            true,
        ),
        s("AES128-CCM8", "TLS_RSA_WITH_AES_128_CCM_8", Tls12, Rsa, ARsa, AesCcm8, 128, Aead, true, true, false),
        s("AES128-CCM", "TLS_RSA_WITH_AES_128_CCM", Tls12, Rsa, ARsa, AesCcm, 128, Aead, true, true, false),
        s(
            "ARIA128-GCM-SHA256",
            "TLS_RSA_WITH_ARIA_128_GCM_SHA256",
            Tls12,
            Rsa,
            ARsa,
            AriaGcm,
            128,
            Aead,
            true,
            true,
            false,
        ),
        s(
            "PSK-AES128-GCM-SHA256",
            "TLS_PSK_WITH_AES_128_GCM_SHA256",
            Tls12,
            Psk,
            APsk,
            AesGcm,
            128,
            Aead,
            true,
            false,
            true,
        ),
        s("PSK-AES128-CCM8", "TLS_PSK_WITH_AES_128_CCM_8", Tls12, Psk, APsk, AesCcm8, 128, Aead, true, true, false),
        s("PSK-AES128-CCM", "TLS_PSK_WITH_AES_128_CCM", Tls12, Psk, APsk, AesCcm, 128, Aead, true, true, false),
        s(
            "PSK-ARIA128-GCM-SHA256",
            "TLS_PSK_WITH_ARIA_128_GCM_SHA256",
            Tls12,
            Psk,
            APsk,
            AriaGcm,
            128,
            Aead,
            true,
            true,
            false,
        ),
        s("AES256-SHA256", "TLS_RSA_WITH_AES_256_CBC_SHA256", Tls12, Rsa, ARsa, Aes, 256, Sha256, true, false, true),
        s(
            "CAMELLIA256-SHA256",
            "TLS_RSA_WITH_CAMELLIA_256_CBC_SHA256",
            Tls12,
            Rsa,
            ARsa,
            Camellia,
            256,
            Sha256,
            true,
            true,
            false,
        ),
        s("AES128-SHA256", "TLS_RSA_WITH_AES_128_CBC_SHA256", Tls12, Rsa, ARsa, Aes, 128, Sha256, true, false, true),
        s(
            "CAMELLIA128-SHA256",
            "TLS_RSA_WITH_CAMELLIA_128_CBC_SHA256",
            Tls12,
            Rsa,
            ARsa,
            Camellia,
            128,
            Sha256,
            true,
            true,
            false,
        ),
        s("AECDH-NULL-SHA", "TLS_ECDH_anon_WITH_NULL_SHA", Tls1, Ecdhe, NoAu, Null, 0, Sha1, false, false, false),
        s(
            "ECDHE-PSK-AES256-CBC-SHA384",
            "TLS_ECDHE_PSK_WITH_AES_256_CBC_SHA384",
            Tls1,
            EcdhePsk,
            APsk,
            Aes,
            256,
            Sha384,
            true,
            false,
            true,
        ),
        s(
            "ECDHE-PSK-AES256-CBC-SHA",
            "TLS_ECDHE_PSK_WITH_AES_256_CBC_SHA",
            Tls1,
            EcdhePsk,
            APsk,
            Aes,
            256,
            Sha1,
            true,
            false,
            true,
        ),
        s(
            "SRP-DSS-AES-256-CBC-SHA",
            "TLS_SRP_SHA_DSS_WITH_AES_256_CBC_SHA",
            Ssl3,
            Srp,
            Dss,
            Aes,
            256,
            Sha1,
            true,
            true,
            false,
        ),
        s("NULL-SHA256", "TLS_RSA_WITH_NULL_SHA256", Tls12, Rsa, ARsa, Null, 0, Sha256, false, false, false),
        s(
            "SRP-RSA-AES-256-CBC-SHA",
            "TLS_SRP_SHA_RSA_WITH_AES_256_CBC_SHA",
            Ssl3,
            Srp,
            ARsa,
            Aes,
            256,
            Sha1,
            true,
            false,
            false,
        ),
        s(
            "SRP-AES-256-CBC-SHA",
            "TLS_SRP_SHA_WITH_AES_256_CBC_SHA",
            Ssl3,
            Srp,
            ASrp,
            Aes,
            256,
            Sha1,
            true,
            false,
            false,
        ),
        s(
            "RSA-PSK-AES256-CBC-SHA384",
            "TLS_RSA_PSK_WITH_AES_256_CBC_SHA384",
            Tls1,
            RsaPsk,
            ARsa,
            Aes,
            256,
            Sha384,
            true,
            false,
            true,
        ),
        s(
            "DHE-PSK-AES256-CBC-SHA384",
            "TLS_DHE_PSK_WITH_AES_256_CBC_SHA384",
            Tls1,
            DhePsk,
            APsk,
            Aes,
            256,
            Sha384,
            true,
            false,
            true,
        ),
        s(
            "RSA-PSK-AES256-CBC-SHA",
            "TLS_RSA_PSK_WITH_AES_256_CBC_SHA",
            Ssl3,
            RsaPsk,
            ARsa,
            Aes,
            256,
            Sha1,
            true,
            false,
            true,
        ),
        s(
            "DHE-PSK-AES256-CBC-SHA",
            "TLS_DHE_PSK_WITH_AES_256_CBC_SHA",
            Ssl3,
            DhePsk,
            APsk,
            Aes,
            256,
            Sha1,
            true,
            false,
            true,
        ),
        s(
            "ECDHE-PSK-CAMELLIA256-SHA384",
            "TLS_ECDHE_PSK_WITH_CAMELLIA_256_CBC_SHA384",
            Tls1,
            EcdhePsk,
            APsk,
            Camellia,
            256,
            Sha384,
            true,
            true,
            false,
        ),
        s(
            "RSA-PSK-CAMELLIA256-SHA384",
            "TLS_RSA_PSK_WITH_CAMELLIA_256_CBC_SHA384",
            Tls1,
            RsaPsk,
            ARsa,
            Camellia,
            256,
            Sha384,
            true,
            true,
            false,
        ),
        s(
            "DHE-PSK-CAMELLIA256-SHA384",
            "TLS_DHE_PSK_WITH_CAMELLIA_256_CBC_SHA384",
            Tls1,
            DhePsk,
            APsk,
            Camellia,
            256,
            Sha384,
            true,
            true,
            false,
        ),
        s("AES256-SHA", "TLS_RSA_WITH_AES_256_CBC_SHA", Ssl3, Rsa, ARsa, Aes, 256, Sha1, true, false, true),
        s(
            "CAMELLIA256-SHA",
            "TLS_RSA_WITH_CAMELLIA_256_CBC_SHA",
            Ssl3,
            Rsa,
            ARsa,
            Camellia,
            256,
            Sha1,
            true,
            true,
            false,
        ),
        s(
            "PSK-AES256-CBC-SHA384",
            "TLS_PSK_WITH_AES_256_CBC_SHA384",
            Tls1,
            Psk,
            APsk,
            Aes,
            256,
            Sha384,
            true,
            false,
            true,
        ),
        s("PSK-AES256-CBC-SHA", "TLS_PSK_WITH_AES_256_CBC_SHA", Ssl3, Psk, APsk, Aes, 256, Sha1, true, false, true),
        s(
            "PSK-CAMELLIA256-SHA384",
            "TLS_PSK_WITH_CAMELLIA_256_CBC_SHA384",
            Tls1,
            Psk,
            APsk,
            Camellia,
            256,
            Sha384,
            true,
            true,
            false,
        ),
        s(
            "ECDHE-PSK-AES128-CBC-SHA256",
            "TLS_ECDHE_PSK_WITH_AES_128_CBC_SHA256",
            Tls1,
            EcdhePsk,
            APsk,
            Aes,
            128,
            Sha256,
            true,
            false,
            true,
        ),
        s(
            "ECDHE-PSK-AES128-CBC-SHA",
            "TLS_ECDHE_PSK_WITH_AES_128_CBC_SHA",
            Tls1,
            EcdhePsk,
            APsk,
            Aes,
            128,
            Sha1,
            true,
            false,
            true,
        ),
        s(
            "SRP-DSS-AES-128-CBC-SHA",
            "TLS_SRP_SHA_DSS_WITH_AES_128_CBC_SHA",
            Ssl3,
            Srp,
            Dss,
            Aes,
            128,
            Sha1,
            true,
            true,
            false,
        ),
        s(
            "SRP-RSA-AES-128-CBC-SHA",
            "TLS_SRP_SHA_RSA_WITH_AES_128_CBC_SHA",
            Ssl3,
            Srp,
            ARsa,
            Aes,
            128,
            Sha1,
            true,
            false,
            false,
        ),
        s(
            "SRP-AES-128-CBC-SHA",
            "TLS_SRP_SHA_WITH_AES_128_CBC_SHA",
            Ssl3,
            Srp,
            ASrp,
            Aes,
            128,
            Sha1,
            true,
            false,
            false,
        ),
        s(
            "RSA-PSK-AES128-CBC-SHA256",
            "TLS_RSA_PSK_WITH_AES_128_CBC_SHA256",
            Tls1,
            RsaPsk,
            ARsa,
            Aes,
            128,
            Sha256,
            true,
            false,
            true,
        ),
        s(
            "DHE-PSK-AES128-CBC-SHA256",
            "TLS_DHE_PSK_WITH_AES_128_CBC_SHA256",
            Tls1,
            DhePsk,
            APsk,
            Aes,
            128,
            Sha256,
            true,
            false,
            true,
        ),
        s(
            "RSA-PSK-AES128-CBC-SHA",
            "TLS_RSA_PSK_WITH_AES_128_CBC_SHA",
            Ssl3,
            RsaPsk,
            ARsa,
            Aes,
            128,
            Sha1,
            true,
            false,
            true,
        ),
        s(
            "DHE-PSK-AES128-CBC-SHA",
            "TLS_DHE_PSK_WITH_AES_128_CBC_SHA",
            Ssl3,
            DhePsk,
            APsk,
            Aes,
            128,
            Sha1,
            true,
            false,
            true,
        ),
        s(
            "ECDHE-PSK-CAMELLIA128-SHA256",
            "TLS_ECDHE_PSK_WITH_CAMELLIA_128_CBC_SHA256",
            Tls1,
            EcdhePsk,
            APsk,
            Camellia,
            128,
            Sha256,
            true,
            true,
            false,
        ),
        s(
            "RSA-PSK-CAMELLIA128-SHA256",
            "TLS_RSA_PSK_WITH_CAMELLIA_128_CBC_SHA256",
            Tls1,
            RsaPsk,
            ARsa,
            Camellia,
            128,
            Sha256,
            true,
            true,
            false,
        ),
        s(
            "DHE-PSK-CAMELLIA128-SHA256",
            "TLS_DHE_PSK_WITH_CAMELLIA_128_CBC_SHA256",
            Tls1,
            DhePsk,
            APsk,
            Camellia,
            128,
            Sha256,
            true,
            true,
            false,
        ),
        s("AES128-SHA", "TLS_RSA_WITH_AES_128_CBC_SHA", Ssl3, Rsa, ARsa, Aes, 128, Sha1, true, false, true),
        s(
            "CAMELLIA128-SHA",
            "TLS_RSA_WITH_CAMELLIA_128_CBC_SHA",
            Ssl3,
            Rsa,
            ARsa,
            Camellia,
            128,
            Sha1,
            true,
            true,
            false,
        ),
        s(
            "PSK-AES128-CBC-SHA256",
            "TLS_PSK_WITH_AES_128_CBC_SHA256",
            Tls1,
            Psk,
            APsk,
            Aes,
            128,
            Sha256,
            true,
            false,
            true,
        ),
        s("PSK-AES128-CBC-SHA", "TLS_PSK_WITH_AES_128_CBC_SHA", Ssl3, Psk, APsk, Aes, 128, Sha1, true, false, true),
        s(
            "PSK-CAMELLIA128-SHA256",
            "TLS_PSK_WITH_CAMELLIA_128_CBC_SHA256",
            Tls1,
            Psk,
            APsk,
            Camellia,
            128,
            Sha256,
            true,
            true,
            false,
        ),
        s(
            "ECDHE-PSK-NULL-SHA384",
            "TLS_ECDHE_PSK_WITH_NULL_SHA384",
            Tls1,
            EcdhePsk,
            APsk,
            Null,
            0,
            Sha384,
            false,
            false,
            false,
        ),
        s(
            "ECDHE-PSK-NULL-SHA256",
            "TLS_ECDHE_PSK_WITH_NULL_SHA256",
            Tls1,
            EcdhePsk,
            APsk,
            Null,
            0,
            Sha256,
            false,
            false,
            false,
        ),
        s(
            "ECDHE-PSK-NULL-SHA",
            "TLS_ECDHE_PSK_WITH_NULL_SHA",
            Tls1,
            EcdhePsk,
            APsk,
            Null,
            0,
            Sha1,
            false,
            false,
            false,
        ),
        s(
            "RSA-PSK-NULL-SHA384",
            "TLS_RSA_PSK_WITH_NULL_SHA384",
            Tls1,
            RsaPsk,
            ARsa,
            Null,
            0,
            Sha384,
            false,
            false,
            false,
        ),
        s(
            "RSA-PSK-NULL-SHA256",
            "TLS_RSA_PSK_WITH_NULL_SHA256",
            Tls1,
            RsaPsk,
            ARsa,
            Null,
            0,
            Sha256,
            false,
            false,
            false,
        ),
        s(
            "DHE-PSK-NULL-SHA384",
            "TLS_DHE_PSK_WITH_NULL_SHA384",
            Tls1,
            DhePsk,
            APsk,
            Null,
            0,
            Sha384,
            false,
            false,
            false,
        ),
        s(
            "DHE-PSK-NULL-SHA256",
            "TLS_DHE_PSK_WITH_NULL_SHA256",
            Tls1,
            DhePsk,
            APsk,
            Null,
            0,
            Sha256,
            false,
            false,
            false,
        ),
        s("RSA-PSK-NULL-SHA", "TLS_RSA_PSK_WITH_NULL_SHA", Ssl3, RsaPsk, ARsa, Null, 0, Sha1, false, false, false),
        s("DHE-PSK-NULL-SHA", "TLS_DHE_PSK_WITH_NULL_SHA", Ssl3, DhePsk, APsk, Null, 0, Sha1, false, false, false),
        s("NULL-SHA", "TLS_RSA_WITH_NULL_SHA", Ssl3, Rsa, ARsa, Null, 0, Sha1, false, false, false),
        s("NULL-MD5", "TLS_RSA_WITH_NULL_MD5", Ssl3, Rsa, ARsa, Null, 0, Md5, false, false, false),
        s("PSK-NULL-SHA384", "TLS_PSK_WITH_NULL_SHA384", Tls1, Psk, APsk, Null, 0, Sha384, false, false, false),
        s("PSK-NULL-SHA256", "TLS_PSK_WITH_NULL_SHA256", Tls1, Psk, APsk, Null, 0, Sha256, false, false, false),
        s("PSK-NULL-SHA", "TLS_PSK_WITH_NULL_SHA", Ssl3, Psk, APsk, Null, 0, Sha1, false, false, false),
    ]
};

#[cfg(test)]
mod tests {
    use super::*;

    /// The IANA names of the TLS 1.2 suites rustls' ring provider implements.
    fn rustls_suites() -> Vec<String> {
        rustls::crypto::ring::default_provider()
            .cipher_suites
            .iter()
            .map(|s| format!("{:?}", s.suite()))
            .filter(|n| !n.starts_with("TLS13_"))
            .collect()
    }

    /// What the real `openssl` selects, as `openssl ciphers -s` shows it (the suites a server
    /// may use: after the security level); `None` when it refuses the string. `-psk -srp`
    /// keep the PSK and SRP suites that `-s` would otherwise drop for want of a key database.
    fn openssl(expr: &str) -> Option<Vec<String>> {
        let out = std::process::Command::new("openssl")
            .args(["ciphers", "-s", "-psk", "-srp", "-tls1_2", "-v", expr])
            // The compiled-in defaults (security level 1), whatever the machine's openssl.cnf says.
            .env("OPENSSL_CONF", "/dev/null")
            .output()
            .expect("the openssl command (installed by .ci/run)");
        if !out.status.success() {
            return None;
        }
        let text = String::from_utf8_lossy(&out.stdout);
        Some(
            text.lines()
                .filter_map(|l| {
                    let mut f = l.split_whitespace();
                    let name = f.next()?;
                    (f.next()? != "TLSv1.3").then(|| name.to_owned())
                })
                .collect(),
        )
    }

    fn ours(expr: &str) -> Option<Vec<String>> {
        let selection = evaluate(expr).ok()?;
        Some(selection.usable().map(|s| s.name.to_owned()).collect())
    }

    /// The table was made with OpenSSL 3.0; another version orders or names some suites
    /// differently, and comparing with it would test the version, not the evaluator.
    fn openssl_3_0() -> bool {
        let out = std::process::Command::new("openssl").arg("version").output().expect("the openssl command");
        let version = String::from_utf8_lossy(&out.stdout);
        if version.starts_with("OpenSSL 3.0.") {
            return true;
        }
        eprintln!("skipped: the table is OpenSSL 3.0's, this is {}", version.trim());
        false
    }

    const MOZILLA_INTERMEDIATE: &str = "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:\
        ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:ECDHE-ECDSA-CHACHA20-POLY1305:\
        ECDHE-RSA-CHACHA20-POLY1305:DHE-RSA-AES128-GCM-SHA256:DHE-RSA-AES256-GCM-SHA384:\
        DHE-RSA-CHACHA20-POLY1305";

    /// Hardening-guide strings, OpenStack's, the examples of `man ciphers`, and every keyword.
    const EXPRESSIONS: &[&str] = &[
        MOZILLA_INTERMEDIATE,
        "ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:ECDHE-ECDSA-CHACHA20-POLY1305:\
         ECDHE-RSA-CHACHA20-POLY1305:ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:\
         ECDHE-ECDSA-AES256-SHA384:ECDHE-RSA-AES256-SHA384:ECDHE-ECDSA-AES128-SHA256:ECDHE-RSA-AES128-SHA256",
        "HIGH:!aNULL:!MD5",
        "HIGH:!aNULL:!eNULL:!EXPORT:!DES:!RC4:!MD5:!PSK:!SRP:!CAMELLIA",
        "kEECDH+aRSA+AES:kRSA+AES:+AES256:RC4-SHA:!kEDH:!LOW:!EXP:!MD5:!aNULL:!eNULL",
        "DEFAULT",
        "DEFAULT:@SECLEVEL=2",
        "DEFAULT:@SECLEVEL=3",
        "DEFAULT:@SECLEVEL=4",
        "DEFAULT:@SECLEVEL=5",
        "DEFAULT:@SECLEVEL=0",
        "ALL:@SECLEVEL=0",
        "ALL:COMPLEMENTOFALL:@SECLEVEL=0",
        "ECDHE+AESGCM",
        "EECDH+AESGCM:EDH+AESGCM",
        "EECDH+AESGCM:EDH+AESGCM:AES256+EECDH:AES256+EDH",
        "EECDH+CHACHA20:EECDH+AES128:RSA+AES128:EECDH+AES256:RSA+AES256:EECDH+3DES:RSA+3DES:!MD5",
        "ECDH+AESGCM:DH+AESGCM:ECDH+AES256:DH+AES256:ECDH+AES128:DH+AES:RSA+AESGCM:RSA+AES:!aNULL:!MD5:!DSS",
        "ALL:-aRSA:aRSA",
        "AES:!aRSA:aRSA",
        "CHACHA20:AES:+AES128",
        "ALL:@STRENGTH",
        "ALL:+SHA1:@STRENGTH",
        "ALL:!ADH:@STRENGTH",
        "AES+kRSA:-AES256:AES",
        "RSA:+AES256:-SHA1:SHA",
        "SUITEB128",
        "SUITEB128ONLY",
        "SUITEB192",
        "SUITEB128C2",
        "ECDHE-RSA-AES128-GCM-SHA256,ECDHE-RSA-AES256-GCM-SHA384 ECDHE-RSA-CHACHA20-POLY1305",
        "AESGCM+ECDHE+aECDSA:AESGCM+ECDHE+aRSA:!SHA1",
        "ALL!aNULL!eNULL",
        "HIGH:MEDIUM:!aNULL",
        "HIGH:DEFAULT",
        "3DES:ECDHE-RSA-AES128-SHA",
        "COMPLEMENTOFDEFAULT",
        "ALL:!COMPLEMENTOFDEFAULT",
        "FIPS",
        "FIPS:@SECLEVEL=0",
        "eNULL:@SECLEVEL=0",
        "NULL:aRSA:@SECLEVEL=0",
        "aRSA:@SECLEVEL=0",
        "SHA256:@SECLEVEL=0",
        "SHA256:NULL:@SECLEVEL=0",
        "TLSv1.2+aRSA:SSLv3:TLSv1",
        "TLSv1.2+SSLv3",
        "kEECDH+kRSA",
        "ECDHE-RSA-AES128-GCM-SHA256+aECDSA:ECDHE-ECDSA-AES128-GCM-SHA256+aECDSA",
        "ECDHE-RSA-AES128-SHA:-ALL:ECDHE-RSA-AES128-SHA",
        "ALL:-ECDHE:ECDHE-RSA-AES128-SHA:ECDHE",
        "ALL:!ECDHE:ECDHE",
        "AES:@STRENGTH:-AES128:+SHA:AES128",
        "PSK:SRP",
        "NOSUCHWORD:HIGH",
        "NOSUCH+AES:CHACHA20",
        "@SECLEVEL=9:HIGH",
        "@STRENGTHS:HIGH",
        "HIGH:(AES)",
        "NOSUCHWORD",
        "aNULL",
        "",
    ];

    const KEYWORDS: &[&str] = &[
        "ALL",
        "COMPLEMENTOFALL",
        "COMPLEMENTOFDEFAULT",
        "kRSA",
        "RSA",
        "kEDH",
        "kDHE",
        "DH",
        "EDH",
        "DHE",
        "ADH",
        "kEECDH",
        "kECDHE",
        "ECDH",
        "EECDH",
        "ECDHE",
        "AECDH",
        "kPSK",
        "kRSAPSK",
        "kDHEPSK",
        "kECDHEPSK",
        "PSK",
        "kSRP",
        "SRP",
        "aRSA",
        "aDSS",
        "DSS",
        "aNULL",
        "aECDSA",
        "ECDSA",
        "aPSK",
        "aSRP",
        "AES",
        "AES128",
        "AES256",
        "AESGCM",
        "AESCCM",
        "AESCCM8",
        "CAMELLIA",
        "CAMELLIA128",
        "CAMELLIA256",
        "CHACHA20",
        "ARIA",
        "ARIAGCM",
        "ARIA128",
        "ARIA256",
        "CBC",
        "eNULL",
        "NULL",
        "MD5",
        "SHA1",
        "SHA",
        "SHA256",
        "SHA384",
        "SSLv3",
        "TLSv1",
        "TLSv1.0",
        "TLSv1.2",
        "HIGH",
        "MEDIUM",
        "LOW",
        "FIPS",
        "3DES",
        "DES",
        "RC4",
        "EXP",
    ];

    #[test]
    fn matches_openssl() {
        if !openssl_3_0() {
            return;
        }
        let rustls = rustls_suites();
        let in_rustls = |names: &Vec<String>| -> Vec<String> {
            names
                .iter()
                .filter(|n| SUITES.iter().any(|s| s.name == n.as_str() && rustls.iter().any(|r| r == s.iana)))
                .cloned()
                .collect()
        };
        // Each keyword alone, at level 0 too (so that aNULL and MD5 suites show), and after
        // `-ALL` (so that their order among inactive suites is what shows).
        let keywords = KEYWORDS.iter().flat_map(|k| [k.to_string(), format!("{k}:@SECLEVEL=0")]);
        let mut compared = 0;
        let mut failures = Vec::new();
        for expr in EXPRESSIONS.iter().map(|e| e.to_string()).chain(keywords) {
            let (theirs, ours) = (openssl(&expr), ours(&expr));
            compared += 1;
            if theirs.as_ref().map(in_rustls) != ours.as_ref().map(in_rustls) {
                failures.push(format!("{expr:?} (rustls subset)\n  openssl: {theirs:?}\n  ours:    {ours:?}"));
            } else if theirs != ours {
                failures.push(format!("{expr:?}\n  openssl: {theirs:?}\n  ours:    {ours:?}"));
            }
        }
        assert!(failures.is_empty(), "{} of {compared} differ:\n{}", failures.len(), failures.join("\n"));
        eprintln!("{compared} cipher strings evaluated as openssl does");
    }

    #[test]
    fn table_is_openssls() {
        if !openssl_3_0() {
            return;
        }
        let out = std::process::Command::new("openssl")
            .args(["ciphers", "-stdname", "-v", "ALL:COMPLEMENTOFALL"])
            .output()
            .expect("the openssl command");
        let text = String::from_utf8_lossy(&out.stdout);
        let mut listed: Vec<(String, String)> = text
            .lines()
            .filter_map(|l| {
                let f: Vec<&str> = l.split_whitespace().collect();
                (f.len() > 4 && f[3] != "TLSv1.3").then(|| (f[2].to_owned(), f[0].to_owned()))
            })
            .collect();
        let mut ours: Vec<(String, String)> = SUITES.iter().map(|s| (s.name.to_owned(), s.iana.to_owned())).collect();
        listed.sort();
        ours.sort();
        assert_eq!(listed, ours);
    }

    #[test]
    fn language() {
        let names = |e: &str| evaluate(e).unwrap().suites.iter().map(|s| s.name).collect::<Vec<_>>();
        assert_eq!(
            names("ECDHE-RSA-AES128-GCM-SHA256:AES128-GCM-SHA256"),
            ["ECDHE-RSA-AES128-GCM-SHA256", "AES128-GCM-SHA256"]
        );
        // '+' moves to the end, '-' takes out for a later addition, '!' for good.
        assert_eq!(
            names("ECDHE-RSA-AES128-GCM-SHA256:AES128-GCM-SHA256:+ECDHE"),
            ["AES128-GCM-SHA256", "ECDHE-RSA-AES128-GCM-SHA256"]
        );
        assert_eq!(names("AES128-GCM-SHA256:-AES128-GCM-SHA256:AES128-GCM-SHA256"), ["AES128-GCM-SHA256"]);
        assert!(evaluate("AES128-GCM-SHA256:!AES128-GCM-SHA256:AES128-GCM-SHA256").is_err());
        // IANA names, and (as before) names in another case.
        assert_eq!(names("tls_rsa_with_aes_128_gcm_sha256"), ["AES128-GCM-SHA256"]);
        // TLS 1.3 names: our extension.
        let s = evaluate("TLS_AES_128_GCM_SHA256:TLS13_AES_256_GCM_SHA384").unwrap();
        assert_eq!(s.tls13, ["TLS_AES_128_GCM_SHA256", "TLS_AES_256_GCM_SHA384"]);
        assert!(s.suites.is_empty());
        let s = evaluate("NOSUCH:HIGH+NOSUCH2:AES128-SHA").unwrap();
        assert_eq!(s.unknown, ["NOSUCH", "NOSUCH2"]);
        assert_eq!(evaluate("@SECLEVEL=4:HIGH").unwrap().level, 4);
        // DEFAULT means something only at the start, as in OpenSSL.
        assert_eq!(evaluate("AES128-SHA:DEFAULT").unwrap().unknown, ["DEFAULT"]);
        assert_eq!(evaluate("NOSUCH").unwrap_err(), CipherError::NoMatch);
        assert!(matches!(evaluate("HIGH:AES(256)").unwrap_err(), CipherError::Invalid(_)));
        assert!(matches!(evaluate("@SECLEVEL=6").unwrap_err(), CipherError::Invalid(_)));
    }
}
