"""Security headers: what every response, and every page, tells the browser.

Pages run no inline script (every script is a file under /assets), so the policy can say
`script-src 'self'` and an injected `<script>` or `onclick=` does nothing. Inline style
attributes stay allowed: the bars and chart labels carry their sizes in `style=` so they
render without JavaScript, and a style attribute cannot run code. The collector's answers
(/api/event, /tracker.js) keep their CORS headers; a policy on them would be ignored.
"""

from __future__ import annotations

from flask import Flask, Response

CONTENT_SECURITY_POLICY = "; ".join(
    (
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        "style-src-attr 'unsafe-inline'",
        "img-src 'self'",
        "connect-src 'self'",
        "object-src 'none'",
        "base-uri 'none'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    )
)
# On every response: JSON, CSV and the beacon are never to be read as another type, and no
# URL of ours (share links carry a secret) goes to another site in a Referer.
EVERY_RESPONSE = {
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
}
# On pages: a page that cannot be framed cannot be clickjacked (X-Frame-Options for
# browsers that predate frame-ancestors).
PAGE_RESPONSE = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Frame-Options": "DENY",
}


def init_security_headers(app: Flask) -> None:
    app.after_request(_security_headers)


def _security_headers(response: Response) -> Response:
    for name, value in EVERY_RESPONSE.items():
        response.headers.setdefault(name, value)
    if response.mimetype == "text/html":
        for name, value in PAGE_RESPONSE.items():
            response.headers.setdefault(name, value)
    return response
