"""CSV for spreadsheets: a UTF-8 byte-order mark on request (`?bom=1`).

Excel on Windows reads a CSV file without a byte-order mark in the machine's legacy code
page, so "Île-de-France" turns into "ÃŽle-de-France". Every CSV answer of the web app
(report, chart, campaigns, funnel, raw export) starts with the mark when the URL says
`bom=1`: the page's download links say so (the `bom` template filter), while the Stats
API, scripts and the CLI get plain UTF-8 unless they ask, as tools reading CSV expect.
"""

from __future__ import annotations

import itertools
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from flask import Flask, Response, request

BOM = "\ufeff"


def init_spreadsheet(app: Flask) -> None:
    app.after_request(_mark_csv)
    app.add_template_filter(with_bom, "bom")


def with_bom(url: str) -> str:
    """`url` asking for the byte-order mark (a download link for spreadsheets)."""
    parts = urlsplit(url)
    query = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if k != "bom"]
    return urlunsplit(parts._replace(query=urlencode([*query, ("bom", "1")])))


def _mark_csv(response: Response) -> Response:
    if response.mimetype != "text/csv" or response.status_code != 200:
        return response
    wanted = request.args.get("bom", "0")
    if wanted not in ("0", "1"):
        message = f"bom: {wanted!r} is not 1 (a byte-order mark first, for Excel) or 0.\n"
        return Response(message, status=400, mimetype="text/plain")
    if wanted == "1":
        if response.is_streamed:
            response.response = itertools.chain([BOM.encode()], response.iter_encoded())
        else:
            response.set_data(BOM.encode() + response.get_data())
    return response
