"""HTTPS behind a reverse proxy: which scheme a request came in, and the Secure cookie flag.

TLS ends at the proxy, so the server sees plain HTTP; only the proxy's X-Forwarded-Proto
says the browser used HTTPS. It is believed from `proxy_count` proxies (werkzeug's
ProxyFix) and from nobody by default, since any client can send the header. Only the
scheme is taken from it: client addresses keep their own rule (`trusted_proxies`,
tracker/ingest/client.py).
"""

from __future__ import annotations

from flask import Flask, has_request_context, request
from flask.sessions import SecureCookieSessionInterface
from werkzeug.middleware.proxy_fix import ProxyFix

from tracker.config import Settings


class _SessionOverHttps(SecureCookieSessionInterface):
    """Marks the session cookie Secure on a request that reached us over HTTPS.

    A fixed SESSION_COOKIE_SECURE would either let the cookie travel over plain HTTP or,
    when set, break logins on a server used over plain HTTP (the browser never sends it back).
    """

    def get_cookie_secure(self, app: Flask) -> bool:
        over_https = has_request_context() and request.is_secure
        return over_https or super().get_cookie_secure(app)


def init_https(app: Flask, settings: Settings) -> None:
    app.session_interface = _SessionOverHttps()
    if settings.proxy_count > 0:
        app.wsgi_app = ProxyFix(  # type: ignore[method-assign]
            app.wsgi_app, x_for=0, x_proto=settings.proxy_count, x_host=0, x_port=0, x_prefix=0
        )
