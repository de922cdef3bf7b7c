#!/usr/bin/env python3
"""Makes encrypted JWTs (JWE) with jwcrypto, the library upstream websockify's
JWTTokenApi uses, for the JWTTokenApi tests.

Usage: jwe_tool.py ALG ENC KEYFILE CLAIMS_JSON [SIGN_KEYFILE]
The plaintext is a JWT signed with KEYFILE (RS256 for a PEM RSA key, ES256/ES384 for
an EC one, HS256 for a secret), or with SIGN_KEYFILE when given; it is encrypted to
KEYFILE (its public half for RSA and EC) with ALG (RSA-OAEP, RSA-OAEP-256, RSA1_5, dir,
A128KW, ECDH-ES, ECDH-ES+A256KW, ...) and ENC
(A256CBC-HS512, A128GCM, ...), as upstream's own test does. A secret is read the way
upstream reads it: the file's text is a JWK "k" (base64url). Prints the token.
"""
import json
import sys

from jwcrypto import jwk, jwt


def load(path):
    raw = open(path, "rb").read()
    if b"-----BEGIN" in raw:
        key = jwk.JWK.from_pem(raw)
        if key["kty"] == "EC":
            return key, {"P-256": "ES256", "P-384": "ES384"}[key["crv"]]
        return key, "RS256"
    return jwk.JWK(kty="oct", k=raw.decode().strip()), "HS256"


def main():
    alg, enc, keyfile, claims = sys.argv[1], sys.argv[2], sys.argv[3], json.loads(sys.argv[4])
    key, _ = load(keyfile)
    sign_key, sign_alg = load(sys.argv[5] if len(sys.argv) > 5 else keyfile)
    signed = jwt.JWT(header={"alg": sign_alg}, claims=claims)
    signed.make_signed_token(sign_key)
    # RSA1_5 is off by default in jwcrypto (as in the proxy); allow it to make the token
    # the proxy must refuse.
    encrypted = jwt.JWT(header={"alg": alg, "enc": enc}, claims=signed.serialize(), algs=[alg, enc])
    public = jwk.JWK.from_json(key.export_public()) if key.has_private and key["kty"] != "oct" else key
    encrypted.make_encrypted_token(public)
    print(encrypted.serialize())


if __name__ == "__main__":
    main()
