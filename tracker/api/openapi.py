"""The OpenAPI 3.1 document of the Stats API, served at /api/v1/openapi.json.

Lists of names (metrics, properties, periods, intervals) come from the registries the
endpoints use, so the document cannot drift from them; tests validate real responses
against it.
"""

from __future__ import annotations

from importlib.metadata import version
from typing import Any

from tracker.annotations import MAX_TEXT
from tracker.api.params import INTERVALS, MAX_BREAKDOWN_LIMIT, PERIOD_ALIASES
from tracker.costs import MAX_API_ROWS
from tracker.costs import MAX_TEXT as MAX_COST_TEXT
from tracker.goals import KINDS, MAX_EVENT_NAME, MAX_NAME, MAX_PATTERN
from tracker.stats import COMPARISONS, DIMENSIONS, PERIODS
from tracker.stats.metrics import PUBLIC_METRICS

NULLABLE_NUMBER = {"type": ["number", "null"]}
# Revenue: a decimal string per ISO 4217 currency, the goal's own first; never converted.
MONEY = {
    "type": "object",
    "propertyNames": {"pattern": "^[A-Z]{3}$"},
    "additionalProperties": {"type": "string", "pattern": "^[0-9]+(\\.[0-9]+)?$"},
}


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
            f"Comma-separated metrics (default visitors): {', '.join(PUBLIC_METRICS)}. "
            "conversions, conversion_rate (percent of the row's visits), total_revenue and "
            "average_revenue (each an object of decimal strings per currency, e.g. "
            '{"EUR": "42.50"}) need a goal: filter `event:goal==Name` or break down by '
            "`event:goal`. With a goal filter, visitors and visits are those that converted "
            "and events counts the goal's matching events. Ad spend: cost and cpc (cost per "
            "visit), and with a goal filter cpa (cost per conversion), each an object of "
            "decimal strings per currency, and roas (revenue / cost, a number), with no "
            "breakdown or one by visit:utm_source, utm_medium, utm_campaign, utm_term or "
            "utm_content, and only tag or goal filters. exit_rate (percent of the exit "
            "page's pageviews that ended a visit) needs a breakdown by visit:exit_page. "
            "scroll_depth (the average, in whole percent, of the deepest scroll each "
            "pageview reached, over the pageviews that reported one; null when none did) "
            "needs a breakdown by event:page or a filter on it.",
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
        "funnel": _param(
            "funnel", "The funnel's name (see /api/v1/funnels).", {"type": "string"}, required=True
        ),
    }


def _ok(description: str, schema: dict[str, Any]) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _errors(method: str = "get") -> dict[str, Any]:
    error = {"$ref": "#/components/schemas/Error"}
    changes = {
        "403": _ok(
            "The key's scope is read (changes need a write key), or its user is a viewer of "
            "the site (changes need admin or owner).",
            error,
        )
    }
    return {
        "400": _ok("A parameter is wrong; the message names it.", error),
        "401": _ok("No valid API key.", error),
        **(changes if method != "get" else {}),
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


def _operation(
    summary: str, params: list[str], ok: dict[str, Any], method: str = "get", status: str = "200"
) -> dict[str, Any]:
    return {
        method: {
            "summary": summary,
            "parameters": [{"$ref": f"#/components/parameters/{p}"} for p in params],
            "responses": {status: ok, **_errors(method)},
        }
    }


def _goal_paths() -> dict[str, Any]:
    goal = {"$ref": "#/components/schemas/Goal"}
    listing = _operation(
        "The site's goals in their display order.",
        ["site_id"],
        _ok("The goals.", {"$ref": "#/components/schemas/Goals"}),
    )
    create = _operation(
        "Add a goal at the end of the list; it counts past data too. 400 names the field "
        "at fault and nothing is saved.",
        ["site_id"],
        _ok("The goal as stored.", goal),
        method="post",
        status="201",
    )
    create["post"]["requestBody"] = {
        "required": True,
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/GoalInput"}}},
    }
    delete = _operation(
        "Delete a goal (stored events stay). Funnels using it become broken.",
        ["site_id"],
        _ok(
            "The deleted goal's id and the funnels it left broken.",
            {
                "type": "object",
                "required": ["deleted", "broken_funnels"],
                "properties": {
                    "deleted": {"type": "integer"},
                    "broken_funnels": {"type": "array", "items": {"type": "string"}},
                },
                "additionalProperties": False,
            },
        ),
        method="delete",
    )
    delete["delete"]["parameters"].append(
        {"name": "goal_id", "in": "path", "required": True, "schema": {"type": "integer"}}
    )
    return {
        "/api/v1/goals": {**listing, **create},
        "/api/v1/goals/{goal_id}": delete,
        "/api/v1/funnels": _operation(
            "The site's funnels; a step whose goal was deleted is null and the funnel broken.",
            ["site_id"],
            _ok("The funnels.", {"$ref": "#/components/schemas/Funnels"}),
        ),
    }


def _annotation_paths() -> dict[str, Any]:
    note = {"$ref": "#/components/schemas/Annotation"}
    listing = _operation(
        "The site's chart annotations in the period, by day.",
        ["site_id", "period", "date"],
        _ok("The annotations.", {"$ref": "#/components/schemas/Annotations"}),
    )
    create = _operation(
        "Add a note on a day of the site's chart. 400 names the field at fault and nothing "
        "is saved.",
        ["site_id"],
        _ok("The note as stored.", note),
        method="post",
        status="201",
    )
    create["post"]["requestBody"] = {
        "required": True,
        "content": {
            "application/json": {"schema": {"$ref": "#/components/schemas/AnnotationInput"}}
        },
    }
    delete = _operation(
        "Delete a note.",
        ["site_id"],
        _ok(
            "The deleted note's id.",
            {
                "type": "object",
                "required": ["deleted"],
                "properties": {"deleted": {"type": "integer"}},
                "additionalProperties": False,
            },
        ),
        method="delete",
    )
    delete["delete"]["parameters"].append(
        {"name": "annotation_id", "in": "path", "required": True, "schema": {"type": "integer"}}
    )
    return {
        "/api/v1/annotations": {**listing, **create},
        "/api/v1/annotations/{annotation_id}": delete,
    }


def _annotation_schemas() -> dict[str, Any]:
    day = {"type": "string", "format": "date", "description": "A day of the site's time zone."}
    note = {
        "type": "object",
        "required": ["id", "date", "text"],
        "properties": {"id": {"type": "integer"}, "date": day, "text": {"type": "string"}},
        "additionalProperties": False,
    }
    note_input = {
        "type": "object",
        "required": ["text"],
        "properties": {
            "site_id": {"type": "string", "description": "The site's domain (or site_id=)."},
            "date": {**day, "description": "YYYY-MM-DD (default: today in the site's time zone)."},
            "text": {
                "type": "string",
                "minLength": 1,
                "maxLength": MAX_TEXT,
                "description": "Trimmed; no control characters.",
            },
        },
    }
    listing = {
        "type": "object",
        "required": ["annotations"],
        "properties": {
            "annotations": {"type": "array", "items": {"$ref": "#/components/schemas/Annotation"}}
        },
        "additionalProperties": False,
    }
    return {"Annotation": note, "AnnotationInput": note_input, "Annotations": listing}


def _cost_paths() -> dict[str, Any]:
    listing = _operation(
        "The site's stored ad spend rows from `from` to `to` (both included), by day.",
        ["site_id"],
        _ok("The cost rows.", {"$ref": "#/components/schemas/CostRows"}),
    )
    for name in ("from", "to"):
        listing["get"]["parameters"].append(
            _param(name, "A day, YYYY-MM-DD.", {"type": "string", "format": "date"}, True)
        )
    create = _operation(
        "Store ad spend rows, all or none: a row of a day and tags already stored replaces "
        "it. 400 lists every problem by row and field, and nothing is stored.",
        ["site_id"],
        _ok(
            "How many rows were stored, and how many of them replaced stored rows.",
            {"$ref": "#/components/schemas/CostsImported"},
        ),
        method="post",
    )
    create["post"]["requestBody"] = {
        "required": True,
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/CostImport"}}},
    }
    problems = {"$ref": "#/components/schemas/CostProblems"}
    create["post"]["responses"]["400"] = _ok(
        "Rows with problems (each by row and field), or a malformed body; nothing stored.",
        {"oneOf": [problems, {"$ref": "#/components/schemas/Error"}]},
    )
    create["post"]["responses"]["413"] = _ok(
        "The body is too large.", {"$ref": "#/components/schemas/Error"}
    )
    return {"/api/v1/costs": {**listing, **create}}


def _cost_schemas() -> dict[str, Any]:
    text = {"type": "string", "maxLength": MAX_COST_TEXT}
    count = {"type": ["integer", "null"], "minimum": 0}
    day = {"type": "string", "format": "date"}
    currency = {"type": "string", "pattern": "^[A-Za-z]{3}$", "description": "ISO 4217 code."}
    required = ["date", "utm_source", "utm_medium", "utm_campaign", "cost", "currency"]
    fields: dict[str, Any] = {
        "date": {**day, "description": "The day the cost is for, YYYY-MM-DD."},
        "utm_source": text,
        "utm_medium": text,
        "utm_campaign": {
            **text,
            "description": "Matched to visits' utm_campaign trimmed and ignoring case.",
        },
        "utm_term": text,
        "utm_content": text,
        "cost": {
            "oneOf": [
                {"type": "string", "pattern": "^[0-9]+(\\.[0-9]+)?$"},
                {"type": "number", "minimum": 0},
            ],
            "description": 'A decimal string ("12.30") or a JSON number; no more decimals '
            "than the currency has.",
        },
        "currency": currency,
        "impressions": count,
        "clicks": count,
    }
    row = {
        "type": "object",
        "required": required,
        "properties": fields,
        "additionalProperties": False,
    }
    stored_row = {
        "type": "object",
        "required": [
            *required,
            "utm_term",
            "utm_content",
            "campaign_label",
            "impressions",
            "clicks",
            "imported_at",
        ],
        "properties": {
            **fields,
            "utm_campaign": {**text, "description": "Trimmed and case-folded."},
            "cost": {"type": "string", "description": 'A decimal string, e.g. "12.30".'},
            "currency": {"type": "string", "pattern": "^[A-Z]{3}$"},
            "campaign_label": {**text, "description": "The campaign as last imported."},
            "imported_at": {"type": "string", "format": "date-time"},
        },
        "additionalProperties": False,
    }
    problem = {
        "type": "object",
        "required": ["row", "field", "message"],
        "properties": {
            "row": {"type": "integer", "description": "1 is the first of `rows`; 0 the body."},
            "field": {"type": "string"},
            "message": {"type": "string"},
        },
        "additionalProperties": False,
    }
    return {
        "CostRows": {
            "type": "object",
            "required": ["results"],
            "properties": {"results": {"type": "array", "items": stored_row}},
            "additionalProperties": False,
        },
        "CostImport": {
            "type": "object",
            "required": ["rows"],
            "properties": {
                "site_id": {"type": "string", "description": "The site's domain (or site_id=)."},
                "rows": {"type": "array", "items": row, "minItems": 1, "maxItems": MAX_API_ROWS},
            },
        },
        "CostsImported": {
            "type": "object",
            "required": ["imported", "replaced"],
            "properties": {
                "imported": {"type": "integer", "description": "Rows stored."},
                "replaced": {
                    "type": "integer",
                    "description": "How many of them replaced rows of the same day and tags.",
                },
            },
            "additionalProperties": False,
        },
        "CostProblems": {
            "type": "object",
            "required": ["error", "problems"],
            "properties": {
                "error": {"type": "string"},
                "problems": {"type": "array", "items": problem},
            },
            "additionalProperties": False,
        },
    }


def _goal_schemas() -> dict[str, Any]:
    text = {"type": "string"}
    kind = {"type": "string", "enum": list(KINDS)}
    prop = {
        "type": ["object", "null"],
        "required": ["key", "value"],
        "properties": {"key": text, "value": text},
        "additionalProperties": False,
    }
    goal = {
        "type": "object",
        "required": [
            "id", "name", "kind", "pattern", "event_name", "property", "currency", "position"
        ],
        "properties": {
            "id": {"type": "integer"},
            "name": text,
            "kind": kind,
            "pattern": {**text, "description": "Page path or link target; * = any characters."},
            "event_name": text,
            "property": {**prop, "description": "Event goals: the one property they require."},
            "currency": {**text, "description": "ISO 4217 code revenue is reported in, or ''."},
            "position": {"type": "integer"},
        },
        "additionalProperties": False,
    }  # fmt: skip
    goal_input = {
        "type": "object",
        "required": ["name", "kind"],
        "properties": {
            "site_id": {**text, "description": "The site's domain (or the site_id parameter)."},
            "name": {**text, "maxLength": MAX_NAME},
            "kind": kind,
            "pattern": {
                **text,
                "maxLength": MAX_PATTERN,
                "description": "Page goals: a path starting with /. Click goals: a link target.",
            },
            "event_name": {**text, "maxLength": MAX_EVENT_NAME},
            "property": prop,
            "currency": {**text, "description": "ISO 4217 code (any case), or ''."},
        },
    }
    funnel = {
        "type": "object",
        "required": ["id", "name", "steps", "broken"],
        "properties": {
            "id": {"type": "integer"},
            "name": text,
            "steps": {
                "type": "array",
                "items": {"type": ["string", "null"]},
                "description": "Each step's goal name, in order; null for a deleted goal.",
            },
            "broken": {"type": "boolean"},
        },
        "additionalProperties": False,
    }

    def wrap(key: str, item: dict[str, Any]) -> dict[str, Any]:
        return {
            "type": "object",
            "required": [key],
            "properties": {key: {"type": "array", "items": item}},
            "additionalProperties": False,
        }

    return {
        "Goal": goal,
        "GoalInput": goal_input,
        "Goals": wrap("goals", {"$ref": "#/components/schemas/Goal"}),
        "Funnel": funnel,
        "Funnels": wrap("funnels", {"$ref": "#/components/schemas/Funnel"}),
    }


def _schemas() -> dict[str, Any]:
    value = {
        "type": "object",
        "required": ["value"],
        "properties": {"value": {"oneOf": [NULLABLE_NUMBER, MONEY]}, "change": NULLABLE_NUMBER},
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
                    "propertyNames": {"enum": list(PUBLIC_METRICS)},
                    "additionalProperties": value,
                }
            },
        },
        **_goal_schemas(),
        **_annotation_schemas(),
        **_cost_schemas(),
        "FunnelSteps": {
            "type": "object",
            "required": ["funnel", "steps"],
            "properties": {
                "funnel": {"type": "string"},
                "conversion_rate": NULLABLE_NUMBER,
                "steps": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "required": ["goal", "visitors", "from_previous", "from_start", "dropped"],
                        "properties": {
                            "goal": {"type": "string"},
                            "visitors": {"type": "integer"},
                            "from_previous": NULLABLE_NUMBER,
                            "from_start": NULLABLE_NUMBER,
                            "dropped": {"type": "integer"},
                        },
                        "additionalProperties": False,
                    },
                },
            },
            "additionalProperties": False,
        },
        "Rows": {
            "type": "object",
            "required": ["results"],
            "properties": {
                "results": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "additionalProperties": {
                            "oneOf": [{"type": ["string", "number", "null"]}, MONEY]
                        },
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
            "description": "Statistics of the sites an API key's owner can see, in the shape "
            "of Plausible's Stats API v1, and the sites' goals, funnels, chart annotations and ad "
            "spend.",
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
            "/api/v1/stats/funnel": _operation(
                "A funnel's steps: visitors (per day) whose visit reached each goal in order, "
                "within one visit; every filter applies. 400 for a broken funnel.",
                ["site_id", "period", "date", "filters", "funnel"],
                _ok("The funnel's steps.", {"$ref": "#/components/schemas/FunnelSteps"}),
            ),
            **_goal_paths(),
            **_annotation_paths(),
            **_cost_paths(),
        },
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
            "parameters": _parameters(),
            "schemas": _schemas(),
        },
    }
