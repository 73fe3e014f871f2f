"""The OpenAPI 3.1 document of the Stats API, served at /api/v1/openapi.json.

Lists of names (metrics, properties, periods, intervals) come from the registries the
endpoints use, so the document cannot drift from them; tests validate real responses
against it.
"""

from __future__ import annotations

from importlib.metadata import version
from typing import Any

from tracker.api.params import INTERVALS, MAX_BREAKDOWN_LIMIT, PERIOD_ALIASES
from tracker.stats import COMPARISONS, DIMENSIONS, METRICS, PERIODS

NULLABLE_NUMBER = {"type": ["number", "null"]}


def _param(name: str, description: str, schema: dict[str, Any], required: bool = False) -> dict:
    return {
        "name": name,
        "in": "query",
        "required": required,
        "description": description,
        "schema": schema,
    }


def _parameters() -> dict[str, Any]:
    properties = [n for n, d in DIMENSIONS.items() if not d.is_time]
    return {
        "site_id": _param(
            "site_id", "The site's domain, as registered.", {"type": "string"}, required=True
        ),
        "period": _param(
            "period",
            "Date range in the site's time zone (default 30d). `day` is today, or the day in "
            "`date`; `custom` takes `date=FROM,TO`.",
            {"type": "string", "enum": [*PERIODS, *PERIOD_ALIASES]},
        ),
        "date": _param(
            "date",
            "YYYY-MM-DD the period ends around (default today); with period=custom, "
            "YYYY-MM-DD,YYYY-MM-DD.",
            {"type": "string"},
        ),
        "metrics": _param(
            "metrics",
            f"Comma-separated metrics (default visitors): {', '.join(METRICS)}.",
            {"type": "string"},
        ),
        "filters": _param(
            "filters",
            "Filters joined by `;`, all of which must hold: `dimension==a|b` (is a or b), "
            "`dimension!=a|b` (is neither), `dimension~text` (contains, ignoring case). In "
            "`==` and `!=` values `*` stands for any characters, case-sensitively: "
            "`event:page==/blog*` starts with /blog, `visit:source==*oo*` contains oo, "
            "`event:page!=/admin*` does not start with /admin; `%` and `_` are literal. "
            "`\\|`, `\\;`, `\\*` and `\\\\` are a literal `|`, `;`, `*` and `\\`. Dimensions: "
            + ", ".join(properties)
            + ".",
            {"type": "string"},
        ),
        "compare": _param(
            "compare",
            "Also compute each metric's change against this period.",
            {"type": "string", "enum": list(COMPARISONS)},
        ),
        "interval": _param(
            "interval",
            "Time bucket (default hour for a day, month for 12mo and year, else date).",
            {"type": "string", "enum": list(INTERVALS)},
        ),
        "property": _param(
            "property",
            "Dimension to break down by.",
            {"type": "string", "enum": properties},
            required=True,
        ),
        "limit": _param(
            "limit",
            "Rows per page (default 100).",
            {"type": "integer", "minimum": 1, "maximum": MAX_BREAKDOWN_LIMIT},
        ),
        "page": _param("page", "Page number, from 1.", {"type": "integer", "minimum": 1}),
    }


def _ok(description: str, schema: dict[str, Any]) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _errors() -> dict[str, Any]:
    error = {"$ref": "#/components/schemas/Error"}
    return {
        "400": _ok("A parameter is wrong; the message names it.", error),
        "401": _ok("No valid API key.", error),
        "404": _ok("No such site that this key can read.", error),
        "429": {
            **_ok("Too many requests for this key.", error),
            "headers": {
                "Retry-After": {
                    "description": "Seconds to wait.",
                    "schema": {"type": "integer"},
                }
            },
        },
    }


def _operation(summary: str, params: list[str], ok: dict[str, Any]) -> dict[str, Any]:
    return {
        "get": {
            "summary": summary,
            "parameters": [{"$ref": f"#/components/parameters/{p}"} for p in params],
            "responses": {"200": ok, **_errors()},
        }
    }


def _schemas() -> dict[str, Any]:
    value = {
        "type": "object",
        "required": ["value"],
        "properties": {"value": NULLABLE_NUMBER, "change": NULLABLE_NUMBER},
        "additionalProperties": False,
    }
    return {
        "Error": {
            "type": "object",
            "required": ["error"],
            "properties": {"error": {"type": "string"}},
            "additionalProperties": False,
        },
        "Aggregate": {
            "type": "object",
            "required": ["results"],
            "properties": {
                "results": {
                    "type": "object",
                    "propertyNames": {"enum": list(METRICS)},
                    "additionalProperties": value,
                }
            },
        },
        "Rows": {
            "type": "object",
            "required": ["results"],
            "properties": {
                "results": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "additionalProperties": {"type": ["string", "number", "null"]},
                    },
                }
            },
        },
    }


def openapi_document() -> dict[str, Any]:
    rows = _ok(
        "One object per row: the bucket (`date`) or property value, then each metric.",
        {"$ref": "#/components/schemas/Rows"},
    )
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "tracker Stats API",
            "version": version("tracker"),
            "description": "Read-only statistics of the sites an API key's owner can see, "
            "in the shape of Plausible's Stats API v1.",
        },
        "servers": [{"url": "/"}],
        "security": [{"bearer": []}],
        "paths": {
            "/api/v1/stats/aggregate": _operation(
                "Totals of the period, optionally with their change.",
                ["site_id", "period", "date", "metrics", "filters", "compare"],
                _ok(
                    "Each metric's value (and change).", {"$ref": "#/components/schemas/Aggregate"}
                ),
            ),
            "/api/v1/stats/timeseries": _operation(
                "Metrics per time bucket; empty buckets are zeros.",
                ["site_id", "period", "date", "metrics", "filters", "interval"],
                rows,
            ),
            "/api/v1/stats/breakdown": _operation(
                "Metrics per value of a property, largest first, paginated.",
                ["site_id", "period", "date", "metrics", "filters", "property", "limit", "page"],
                rows,
            ),
            "/api/v1/stats/realtime/visitors": _operation(
                "Distinct visitors with an event in the last 5 minutes.",
                ["site_id"],
                _ok("The number of current visitors.", {"type": "integer", "minimum": 0}),
            ),
        },
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
            "parameters": _parameters(),
            "schemas": _schemas(),
        },
    }
