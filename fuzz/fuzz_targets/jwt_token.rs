//! `JWTTokenApi` on untrusted tokens: signed JWTs and encrypted ones (JWE), with an RSA
//! private key (RSA-OAEP unwrapping, RS*/PS* signatures), an EC P-256 private key (ECDH-ES,
//! ES256) and a secret (`dir`, AES key wrap, HS* signatures).
//!
//! Checked: no input panics; every token is refused with 403 or carries the claims of the
//! seeds, which were signed with these keys (`127.0.0.1:5900`): a fuzzer cannot forge a
//! signature or an authentication tag, so any other target getting through would be a
//! forgery. (A mutation of a seed may still pass, e.g. in the unused low bits of a
//! base64url tail, which decodes to the same bytes.)
#![no_main]

use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll, Waker};

use libfuzzer_sys::fuzz_target;
use websockify::Target;
use websockify::admission::token::{TokenResolver, plugin};

/// A throwaway key for this target only.
const RSA_KEY: &str = "\
-----BEGIN PRIVATE KEY-----
MIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcwggSjAgEAAoIBAQDoge5Kd6TX+qCB
FRzqBFhyFkLDGm8e29BBHGe/Q5PyPTak681tai0YtkJ+D3YJ8FcY123EmtHsib2J
iV4JMqbxSND5p0Ijat8fUPmMdz7wvZpcgWdLzyKLu7I2TbZ9D9LW5AJWrGpp/CUJ
9Jmz0HmDzCtbhyOEC+1tw8uanM5d4hhE3THgXwBTcJ6j+eC4ETjBhE4SkqVNDeM2
SkDb8uYrlshd8STaKVK3Dv4OA/ILnZz18j2kxJ7gsCBgmw8yMMZ8suJ0dlggRgOT
+PgdBnpVLgnVR39EebsoIy2QczuATXQZzX+WJbQ9KXRhDvYT3TOXX7psJfIpRvoH
rVy23aU5AgMBAAECggEAHNJec6S5LnzHALlZSDkZrarMw9q3A6BEBI483hzGbjTg
XTlN0c5joLiXLYFFJJ5CbbXmyYRXmXbJpA7/NSyuPSLFpOzy6ekJl5w2Ew+FIdqf
E/CGmYMnySKPSOQBRyd6/2BsWcotts2m2cEUfJHPPmNEzKfH40qHOCAZUSU2/7QW
ySt3cwo0CfVxg/sOthQ8GD06ZowTqIPAgCc7rPt0Hu9h/jEV0foq+GsNBBH5e7Ns
XmT9hencWkBhYggvDpJgaG+mmEXkyXz0O9M1RPNGxvDRaq0k6o1gpXk/D7FdrEzb
DVF/GzUrkKyuHoWX/XK9AqI+oU9J9Pw14ZRBL4rqwQKBgQD1opRu5RWnfnlgbjIq
MpxLWH/uIMctr7lMQOxquH45IWt5dOqv3BDc5iSwrMA5z2H02w5T5JM9iP8Fi/uo
o/6GrGyAoUheAak7ARTirOQz7kEXKdwFVWDedgxtdrvSk4CK7U9e3dxf3rbIp1do
Htr68FEqjgPCTTxW67snne0LLQKBgQDyUYsrJJPej9iBGITzHR+mzzLtwO/TO0j2
IFtSKUgFUqlTRbLDC3TyxcJtK9pLyF4w7xwBm6istvWvfTkki+HdKCCZSaXQSqx8
KkpF1bXB+8yK8w85J98ofFVg5+op2W+H7HGixwZwCn5OGSShpoWcL5am8r6iLMTX
3bztwvkZvQKBgErJz4vcMDWpKmeT5a43bqL6NSlZzYs5f5+Z/OGZfsUCSejXEkWt
KW04nV81memAHQEiWUBtze7kcVFNB7iXBf4XLYoUkSYeN1qBv8wse+bb2fGlixoM
nsvdAXequREqW+7wxkPKJTkDZH+/g7tt+ZqB5RSh3L8iKQcGCxvK18uZAoGAW5As
gjTkGylHqiBVvHe4yhNpLyXEeZDhVP+NAlLPABPoH6sqjUD7A/FuMkprxk8EKIFx
l7n11q2b0KAEw6aHxkWva7zEhxxwaMqiHhlPAOngtHB7xCEo1eeFa4S2mvGqjzXt
CpEiAZw1ddVSXjLKMeZZiuQW3LkF+Hu1NDKEZhECgYEA2S8XOj/DnmUXVBk7Oi7R
hFz+kORsuj34Hxtv7JFs640IwDHDZKkpXUSbgLbMi9W5OVShFxmz6hrLHqZsUMIa
9+BZIlmplOfir1o8XvJiL9xSD7EH1/67sfIx/Y1hiXlWqKJMCrQZaA+S5kQaXrnB
9HGmQ0BmU34AUwVnCeNENgQ=
-----END PRIVATE KEY-----
";

/// The same, for P-256.
const EC_KEY: &str = "\
-----BEGIN PRIVATE KEY-----
MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgAwQlYnzEnD/aL7QY
y6b/VR3H9503TIVyPhQGgra2fyihRANCAARRDTW6hTVUFfwnc5zxxbBKutiA9MFL
fES04OcCAnajNzlLzRRNQ0VSrKRusWOOozP+2TEpr1lU3ayACzOvBuib
-----END PRIVATE KEY-----
";

fn resolvers() -> &'static [Arc<dyn TokenResolver>; 3] {
    static RESOLVERS: OnceLock<[Arc<dyn TokenResolver>; 3]> = OnceLock::new();
    RESOLVERS.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("websockify-fuzz-jwt-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("rsa.key"), RSA_KEY).unwrap();
        std::fs::write(dir.join("ec.key"), EC_KEY).unwrap();
        // 32 bytes as base64url, the way upstream reads a secret.
        std::fs::write(dir.join("secret"), "c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0LTMyYnk").unwrap();
        let open = |name: &str| plugin("JWTTokenApi", dir.join(name).to_str().unwrap()).unwrap();
        [open("rsa.key"), open("ec.key"), open("secret")]
    })
}

fuzz_target!(|data: &[u8]| {
    let token = String::from_utf8_lossy(data);
    for resolver in resolvers() {
        // JWTTokenApi answers without waiting: one poll completes the lookup.
        let mut lookup = resolver.lookup(&token);
        let Poll::Ready(result) = lookup.as_mut().poll(&mut Context::from_waker(Waker::noop())) else {
            panic!("JWTTokenApi lookup did not complete in one poll");
        };
        match result {
            Err(e) => assert_eq!(e.status(), 403, "{e}"),
            Ok(Some(Target::Tcp { host, port: 5900 })) if host == "127.0.0.1" => {}
            Ok(target) => panic!("a token with claims nobody signed was accepted: {target:?}"),
        }
    }
});
