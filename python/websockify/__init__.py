"""websockify-rs: the Rust websockify, packaged for pip.

The `websockify` command and `python -m websockify` run the bundled binary (upstream's
command line). `websockify.token_plugins` and `websockify.auth_plugins` are compatible
with upstream's (0.13) so that plugins written for it import and subclass them unchanged.
"""

__version__ = "0.1.0"
