#!/usr/bin/env python3
"""Signs JWTs with PyJWT (an independent implementation) for the JWTTokenApi tests.

Usage: jwt_tool.py ALG KEYFILE CLAIMS_JSON
ALG is any PyJWT algorithm (HS256, RS256, PS256, ES256, ES384, EdDSA, ...) or "none", or
"HS256-RAWKEY": an HS256 token whose HMAC key is KEYFILE's raw bytes, made by hand with
the standard library (PyJWT refuses to use a PEM public key as an HMAC secret, which is
exactly the algorithm-confusion attack the proxy must refuse).
For HS*, KEYFILE holds the secret as upstream websockify reads it: base64url text
(a JWK "k"); for the others a PEM private key. Prints the token.
"""
import base64
import json
import sys

import jwt


def main():
    alg, keyfile, claims = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
    raw = open(keyfile, "rb").read()
    if alg == "HS256-RAWKEY":
        import hashlib
        import hmac

        def b64(data):
            return base64.urlsafe_b64encode(data).rstrip(b"=").decode()

        signing_input = b64(json.dumps({"alg": "HS256", "typ": "JWT"}).encode()) + "." + b64(json.dumps(claims).encode())
        signature = hmac.new(raw, signing_input.encode(), hashlib.sha256).digest()
        print(signing_input + "." + b64(signature))
        return
    if alg == "none":
        key = None
    elif alg.startswith("HS"):
        text = raw.decode().strip()
        key = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    else:
        key = raw
    print(jwt.encode(claims, key, algorithm=alg))


if __name__ == "__main__":
    main()
