#!/usr/bin/env python3
"""Signs JWTs with PyJWT (an independent implementation) for the JWTTokenApi tests.

Usage: jwt_tool.py ALG KEYFILE CLAIMS_JSON
ALG is any PyJWT algorithm (HS256, RS256, PS256, ES256, ES384, EdDSA, ...) or "none", or
"HS256-RAWKEY": an HS256 token whose HMAC key is KEYFILE's raw bytes, made by hand with
the standard library (PyJWT refuses to use a PEM public key as an HMAC secret, which is
exactly the algorithm-confusion attack the proxy must refuse).
For HS*, KEYFILE holds the secret as upstream websockify reads it: base64url text
(a JWK "k"); for the others a PEM private key. Prints the token.
"ES256-TWIN" signs with ES256 and prints two lines: the token, and the same token with
the twin signature (r, n - s), which verifies too (ECDSA signatures are malleable).
JWT_HEADERS (JSON in the environment) adds header members, e.g. {"crit": ["exp"]}.
"""
import base64
import json
import os
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
    headers = json.loads(os.environ.get("JWT_HEADERS", "null"))
    if alg == "ES256-TWIN":
        token = jwt.encode(claims, raw, algorithm="ES256")
        head, sig = token.rsplit(".", 1)
        raw_sig = base64.urlsafe_b64decode(sig + "=" * (-len(sig) % 4))
        r, s = raw_sig[:32], int.from_bytes(raw_sig[32:], "big")
        n = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551
        twin = base64.urlsafe_b64encode(r + (n - s).to_bytes(32, "big")).rstrip(b"=").decode()
        print(token)
        print(head + "." + twin)
        return
    if alg == "none":
        key = None
    elif alg.startswith("HS"):
        text = raw.decode().strip()
        key = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    else:
        key = raw
    print(jwt.encode(claims, key, algorithm=alg, headers=headers))


if __name__ == "__main__":
    main()
