"""Admits requests whose X-Api-Key header is the source; others get a 403 with a header."""
from websockify.auth_plugins import AuthenticationError, BasePlugin


class ApiKeyAuth(BasePlugin):
    def authenticate(self, headers, target_host, target_port):
        # Upstream's headers: an http.client.HTTPMessage (case-insensitive).
        if "x-api-key" in headers and headers.get("X-API-KEY") == self.source:
            return
        raise AuthenticationError(
            log_msg="bad or missing key",
            response_code=403,
            response_headers={"X-Denied-By": "ApiKeyAuth"},
            response_msg="Bad key",
        )
