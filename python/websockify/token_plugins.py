"""Token plugins, compatible with upstream websockify 0.13's `websockify.token_plugins`:
subclass `BasePlugin` (`lookup(token)` -> `(host, port)` or None) or `BaseTokenAPI`
(override `process_result(resp)`).

The built-in names (TokenFile, BaseTokenAPI, TokenRedis, ...) run as Rust code in the
proxy; these classes are here for plugins that import or subclass them. `BaseTokenAPI`
uses `requests` when it is installed, as upstream does, and `urllib` otherwise.
"""

import json
import logging
import os
import re
import sys
import time

logger = logging.getLogger(__name__)

_SOURCE_SPLIT_REGEX = re.compile(
    r'(?<=^)"([^"]+)"(?=:|$)'
    r'|(?<=:)"([^"]+)"(?=:|$)'
    r'|(?<=^)([^:]*)(?=:|$)'
    r'|(?<=:)([^:]*)(?=:|$)',
)


def parse_source_args(src):
    """src.split(":"), but a word in quotation marks may hold a colon: a:"b:c":d."""
    matches = _SOURCE_SPLIT_REGEX.findall(src)
    return [m[0] or m[1] or m[2] or m[3] for m in matches]


class BasePlugin():
    def __init__(self, src):
        self.source = src

    def lookup(self, token):
        return None


class ReadOnlyTokenFile(BasePlugin):
    # source is a token file with lines like `token: host:port`, or a directory of them
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._targets = None

    def _load_targets(self):
        if os.path.isdir(self.source):
            cfg_files = [os.path.join(self.source, f) for f in os.listdir(self.source)]
        else:
            cfg_files = [self.source]

        self._targets = {}
        index = 1
        for f in cfg_files:
            with open(f) as fh:
                lines = [l.strip() for l in fh.readlines()]
            for line in lines:
                if line and not line.startswith('#'):
                    try:
                        tok, target = re.split(r':\s', line)
                        self._targets[tok] = target.strip().rsplit(':', 1)
                    except ValueError:
                        logger.error("Syntax error in %s on line %d" % (self.source, index))
                index += 1

    def lookup(self, token):
        if self._targets is None:
            self._load_targets()
        return self._targets.get(token)


class TokenFile(ReadOnlyTokenFile):
    # as ReadOnlyTokenFile, re-read on every lookup
    def lookup(self, token):
        self._load_targets()
        return super().lookup(token)


class TokenFileName(BasePlugin):
    # source is a directory, token is a file name in it, its contents host:port
    def __init__(self, src):
        super().__init__(src)
        if not os.path.isdir(src):
            raise Exception("TokenFileName plugin requires a directory")

    def lookup(self, token):
        path = os.path.join(self.source, os.path.basename(token))
        if not os.path.exists(path):
            return None
        with open(path) as fh:
            return fh.read().strip().split(':')


class _Response():
    """The part of a `requests.Response` that process_result() methods use."""

    def __init__(self, status, content, headers):
        self.status_code = status
        self.ok = status < 400
        self.content = content
        self.headers = headers
        self.encoding = headers.get_content_charset() or 'utf-8'
        self.text = content.decode(self.encoding, 'replace')

    def json(self):
        return json.loads(self.text)


def _get(url):
    try:
        import requests
    except ImportError:
        requests = None
    if requests is not None:
        return requests.get(url)
    import urllib.error
    import urllib.request
    try:
        with urllib.request.urlopen(url) as r:
            return _Response(r.status, r.read(), r.headers)
    except urllib.error.HTTPError as e:
        return _Response(e.code, e.read(), e.headers)


class BaseTokenAPI(BasePlugin):
    # source is a url with a '%s' in it where the token should go

    def process_result(self, resp):
        host, port = resp.text.split(':')
        port = port.encode('ascii', 'ignore')
        return [host, port]

    def lookup(self, token):
        resp = _get(self.source % token)
        if resp.ok:
            return self.process_result(resp)
        return None


class JSONTokenApi(BaseTokenAPI):
    # source is a url with a '%s' in it where the token should go

    def process_result(self, resp):
        resp_json = resp.json()
        return (resp_json['host'], resp_json['port'])


class JWTTokenApi(BasePlugin):
    # source is a key file; the token is a JWS or JWE (jwcrypto) with host and port
    def lookup(self, token):
        try:
            from jwcrypto import jwk, jwt
        except ImportError:
            logger.error("package jwcrypto not found, are you sure you've installed it correctly?")
            return None
        key = jwk.JWK()
        try:
            with open(self.source, 'rb') as key_file:
                key_data = key_file.read()
        except Exception as e:
            logger.error("Error loading key file: %s" % str(e))
            return None
        try:
            key.import_from_pem(key_data)
        except Exception:
            try:
                key.import_key(k=key_data.decode('utf-8'), kty='oct')
            except Exception:
                logger.error('Failed to correctly parse key data!')
                return None
        try:
            token = jwt.JWT(key=key, jwt=token)
            if 'enc' in json.loads(token.header):
                token = jwt.JWT(key=key, jwt=token.claims)
            parsed = json.loads(token.claims)
            if 'nbf' in parsed and time.time() < parsed['nbf']:
                logger.warning('Token can not be used yet!')
                return None
            if 'exp' in parsed and time.time() > parsed['exp']:
                logger.warning('Token has expired!')
                return None
            return (parsed['host'], parsed['port'])
        except Exception as e:
            logger.error("Failed to parse token: %s" % str(e))
            return None


class TokenRedis(BasePlugin):
    """Tokens in Redis; source host[:port[:db[:password[:namespace]]]] (needs `redis`).
    Values are `host:port` or {"host": "host:port"}."""

    def __init__(self, src):
        try:
            import redis  # noqa: F401
        except ImportError:
            logger.error("Unable to load redis module")
            sys.exit()
        fields = parse_source_args(src)
        if not 1 <= len(fields) <= 5:
            logger.error("The provided --token-source='%s' is not in the expected format "
                         "<host>[:<port>[:<db>[:<password>[:<namespace>]]]]" % src)
            sys.exit()
        fields += [''] * (5 - len(fields))
        self._server = fields[0]
        try:
            self._port = int(fields[1] or 6379)
            self._db = int(fields[2] or 0)
        except ValueError:
            logger.error("The provided --token-source='%s' is not in the expected format "
                         "<host>[:<port>[:<db>[:<password>[:<namespace>]]]]" % src)
            sys.exit()
        self._password = fields[3] or None
        self._namespace = fields[4] + ':' if fields[4] else ''

    def lookup(self, token):
        import redis
        client = redis.Redis(host=self._server, port=self._port, db=self._db, password=self._password)
        stuff = client.get(self._namespace + token)
        if stuff is None:
            return None
        response = stuff.decode('utf-8').strip()
        if response.startswith('{'):
            try:
                host, port = json.loads(response)['host'].split(':')
            except (ValueError, KeyError):
                logger.error("Unable to decode JSON token: %s" % response)
                return None
        elif re.match(r'\S+:\S+', response):
            host, port = response.split(':')
        else:
            logger.error("Unable to parse token: %s" % response)
            return None
        return [host, port]


class UnixDomainSocketDirectory(BasePlugin):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._dir_path = os.path.abspath(self.source)

    def lookup(self, token):
        import stat
        try:
            if not os.path.isdir(self._dir_path):
                return None
            uds_path = os.path.abspath(os.path.join(self._dir_path, token))
            if not uds_path.startswith(self._dir_path):
                return None
            if not os.path.exists(uds_path) or not stat.S_ISSOCK(os.stat(uds_path).st_mode):
                return None
            return ['unix_socket', uds_path]
        except Exception as e:
            logger.error("Error finding unix domain socket: %s" % str(e))
            return None
