"""Tokens in Redis through the `redis` package (source: host:port); values `host:port`
under the key `vnc:TOKEN`."""
import redis

from websockify.token_plugins import BasePlugin


class RedisTokens(BasePlugin):
    def __init__(self, src):
        super().__init__(src)
        host, port = src.rsplit(":", 1)
        self.client = redis.Redis(host=host, port=int(port))

    def lookup(self, token):
        value = self.client.get("vnc:" + token)
        if value is None:
            return None
        host, port = value.decode().rsplit(":", 1)
        return host, int(port)
