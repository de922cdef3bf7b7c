"""Upstream's own TokenFile under another dotted name, so it runs in the Python host."""
from websockify.token_plugins import TokenFile  # noqa: F401
