"""Plugins that go wrong: raise, hang, kill their process, or fail at construction.
The token plugins answer other tokens with their source (host:port)."""
import os
import signal
import time

from websockify.auth_plugins import BasePlugin as AuthBase
from websockify.token_plugins import BasePlugin


class Moody(BasePlugin):
    def lookup(self, token):
        if token.startswith("raise"):
            raise ValueError("no database for %r" % token)
        if token == "slow":
            time.sleep(30)
        if token == "die":
            os.kill(os.getpid(), signal.SIGKILL)
        if token == "print":
            print("a plugin that prints\x1b[31m")
        host, port = self.source.rsplit(":", 1)
        return host, port


class BrokenAuth(AuthBase):
    def authenticate(self, headers, target_host, target_port):
        raise RuntimeError("auth backend down")


class SlowAuth(AuthBase):
    """Hangs on requests that carry X-Slow; admits the others."""
    def authenticate(self, headers, target_host, target_port):
        if headers.get("X-Slow"):
            time.sleep(30)


class TargetAuth(AuthBase):
    """Admits only sessions to the target named in its source (upstream passes it)."""
    def authenticate(self, headers, target_host, target_port):
        from websockify.auth_plugins import AuthenticationError
        if "%s:%s" % (target_host, target_port) != self.source:
            raise AuthenticationError(response_code=403, response_msg="wrong target %s:%s" % (target_host, target_port))


class BadConstructor(BasePlugin):
    def __init__(self, src):
        raise RuntimeError("cannot open %s" % src)
