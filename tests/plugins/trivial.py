"""The cheapest possible token plugin (for bench/plugin_lookup.py): every token -> source."""
from websockify.token_plugins import BasePlugin


class Fixed(BasePlugin):
    def lookup(self, token):
        return self.source.rsplit(":", 1)
