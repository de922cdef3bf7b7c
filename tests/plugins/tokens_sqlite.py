"""Tokens in an SQLite database (source: its path), table tokens(token, host, port)."""
import sqlite3

from websockify.token_plugins import BasePlugin


class SqliteTokens(BasePlugin):
    def lookup(self, token):
        db = sqlite3.connect(self.source)
        try:
            row = db.execute("SELECT host, port FROM tokens WHERE token = ?", (token,)).fetchone()
        finally:
            db.close()
        return None if row is None else (row[0], row[1])
