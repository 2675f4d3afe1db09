"""The API description (`/openapi.json`, OpenAPI 3.1) and its docs page (`/docs`).

The page is one self-contained HTML file: no CDN, no script from elsewhere, so it works on a
machine without internet access. It reads `/openapi.json`, lists each operation with its
summary and an example body, and sends the request (with a bearer token, if one is typed in)
from the browser, showing the status and the answer.
"""

from __future__ import annotations

from functools import cache

_ERROR = {
    "type": "object",
    "required": ["error"],
    "properties": {
        "error": {
            "type": "object",
            "required": ["code", "message"],
            "properties": {
                "code": {"type": "string", "examples": ["E0602"]},
                "message": {"type": "string"},
            },
        }
    },
}

_READ_EXAMPLE = {"feature_service": "fraud_model", "entities": {"user_id": ["u000042", "u000007"]}}
_FEAST_EXAMPLE = {
    "features": ["user_orders:spend_30d", "user_orders:orders_7d"],
    "entities": {"user_id": ["u000042"]},
    "full_feature_names": True,
}
_PUSH_EXAMPLE = {
    "source": "page_views",
    "rows": [
        {
            "view_id": "v-docs-1",
            "visitor_id": "u000042",
            "product_id": "p7",
            "category": "Shoes",
            "viewed_at": "2024-06-01T12:00:00",
        }
    ],
    "mode": "online_and_offline",
}


def _errors(*codes: int) -> dict:
    text = {
        400: "A caller's mistake: malformed JSON, a bad shape, an unknown name, > 1,000 entities",
        401: "Missing or wrong bearer token",
        403: "Push and reload are off: the server was started without a token",
        413: "Body over the limit (1 MiB by default)",
        422: "Reload refused: the definitions do not check (the old ones keep serving)",
        503: "The online store is unreachable, or has no complete refresh yet; retry",
    }
    return {
        str(c): {
            "description": text[c],
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
        }
        for c in codes
    }


@cache
def document() -> dict:
    from importlib.metadata import PackageNotFoundError, version

    try:
        ver = version("fsdsl")
    except PackageNotFoundError:  # pragma: no cover - a source checkout without metadata
        ver = "0"
    result = {
        "type": "object",
        "properties": {
            "values": {"type": "array", "items": {}},
            "statuses": {
                "type": "array",
                "items": {"enum": ["PRESENT", "NULL_VALUE", "NOT_FOUND"]},
            },
            "event_timestamps": {
                "type": "array",
                "items": {"type": "string", "format": "date-time"},
                "description": "Entity columns: 1970-01-01T00:00:00Z (as Feast); features: "
                "the as-of time of their view's values.",
            },
        },
    }
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "fsc serve",
            "version": ver,
            "description": "Feature values from the online store, with Feast's request and "
            "response shapes. With a token set (--token or $FSC_SERVE_TOKEN), every operation "
            "but /health, /metrics and the docs needs `Authorization: Bearer <token>`; push "
            "and reload always do.",
        },
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
            "schemas": {"Error": _ERROR, "Result": result},
        },
        "paths": {
            "/get-online-features": {
                "post": {
                    "operationId": "getOnlineFeatures",
                    "summary": "Feature values of a service (or a feature list) for a batch of "
                    "entities",
                    "security": [{"bearer": []}, {}],
                    "requestBody": {
                        "required": True,
                        "content": {
                            "application/json": {
                                "schema": {
                                    "type": "object",
                                    "required": ["entities"],
                                    "properties": {
                                        "feature_service": {"type": "string"},
                                        "features": {
                                            "type": "array",
                                            "items": {"type": "string", "pattern": "^[^:]+:.+$"},
                                        },
                                        "entities": {
                                            "type": "object",
                                            "additionalProperties": {
                                                "type": "array",
                                                "maxItems": 1000,
                                            },
                                        },
                                        "full_feature_names": {"type": "boolean", "default": False},
                                    },
                                },
                                "examples": {
                                    "service": {"value": _READ_EXAMPLE},
                                    "features": {"value": _FEAST_EXAMPLE},
                                },
                            }
                        },
                    },
                    "responses": {
                        "200": {
                            "description": "One result per name of metadata.feature_names",
                            "content": {
                                "application/json": {
                                    "schema": {
                                        "type": "object",
                                        "properties": {
                                            "metadata": {
                                                "type": "object",
                                                "properties": {
                                                    "feature_names": {
                                                        "type": "array",
                                                        "items": {"type": "string"},
                                                    },
                                                    "_as_of": {
                                                        "type": "array",
                                                        "items": {
                                                            "type": ["string", "null"],
                                                            "format": "date-time",
                                                        },
                                                    },
                                                },
                                            },
                                            "results": {
                                                "type": "array",
                                                "items": {"$ref": "#/components/schemas/Result"},
                                            },
                                        },
                                    }
                                }
                            },
                        },
                        **_errors(400, 401, 413, 503),
                    },
                }
            },
            "/push": {
                "post": {
                    "operationId": "push",
                    "summary": "Append rows to a source and update the online values they "
                    "change (Feast's push_source_name/df/to are accepted too)",
                    "security": [{"bearer": []}],
                    "requestBody": {
                        "required": True,
                        "content": {
                            "application/json": {
                                "schema": {
                                    "type": "object",
                                    "properties": {
                                        "source": {"type": "string"},
                                        "rows": {"type": "array", "items": {"type": "object"}},
                                        "mode": {
                                            "enum": ["online_and_offline", "online", "offline"]
                                        },
                                        "ids": {"type": "array", "items": {"type": "string"}},
                                    },
                                },
                                "examples": {"push": {"value": _PUSH_EXAMPLE}},
                            }
                        },
                    },
                    "responses": {
                        "200": {"description": "Rows accepted; `_as_of` of the served values"},
                        **_errors(400, 401, 403, 413, 503),
                    },
                }
            },
            "/reload": {
                "post": {
                    "operationId": "reload",
                    "summary": "Load the definitions again (refused if they do not check)",
                    "security": [{"bearer": []}],
                    "responses": {
                        "200": {"description": "Reloaded, or unchanged"},
                        **_errors(401, 403, 422),
                    },
                }
            },
            "/health": {
                "get": {
                    "operationId": "health",
                    "summary": "Online store reachable, definitions loaded, fingerprints served",
                    "responses": {
                        "200": {"description": "Healthy"},
                        "503": {"description": "The online store is unreachable"},
                    },
                }
            },
            "/metrics": {
                "get": {
                    "operationId": "metrics",
                    "summary": "Prometheus text: requests, latencies, errors, freshness lag",
                    "responses": {"200": {"description": "text/plain; version=0.0.4"}},
                }
            },
        },
    }


PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>fsc serve</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>
body{font:15px/1.45 system-ui,sans-serif;margin:2rem auto;max-width:60rem;padding:0 1rem;color:#222}
h1{font-size:1.4rem} code,textarea,pre{font:13px ui-monospace,monospace}
section{border:1px solid #ccc;border-radius:6px;margin:1rem 0;padding:.6rem 1rem}
.m{display:inline-block;min-width:3.5rem;font-weight:bold}
.post{color:#0a5}.get{color:#06c} textarea{width:100%;box-sizing:border-box}
pre{background:#f6f6f6;padding:.6rem;overflow:auto;max-height:24rem} button{margin:.3rem 0}
</style></head><body>
<h1>fsc serve</h1>
<p id="about"></p>
<p><label>Bearer token <input id="token" type="password" size="40" autocomplete="off"></label></p>
<div id="ops">Loading /openapi.json&hellip;</div>
<script>
"use strict";
const el = (tag, attrs, ...kids) => {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, v);
  for (const k of kids) e.append(k);
  return e;
};
async function send(method, path, box, out) {
  const headers = {};
  const token = document.getElementById("token").value;
  if (token) headers["Authorization"] = "Bearer " + token;
  const init = {method, headers};
  if (box) { headers["Content-Type"] = "application/json"; init.body = box.value; }
  out.textContent = "...";
  const started = performance.now();
  try {
    const r = await fetch(path, init);
    const text = await r.text();
    let shown = text;
    try { shown = JSON.stringify(JSON.parse(text), null, 2); } catch (e) {}
    const ms = (performance.now() - started).toFixed(1);
    out.textContent = r.status + " " + r.statusText + " (" + ms + " ms)\\n\\n" + shown;
  } catch (e) { out.textContent = "request failed: " + e; }
}
fetch("openapi.json").then(r => r.json()).then(doc => {
  document.getElementById("about").textContent = doc.info.description;
  const ops = document.getElementById("ops");
  ops.textContent = "";
  for (const [path, item] of Object.entries(doc.paths)) {
    for (const [method, op] of Object.entries(item)) {
      const out = el("pre", {"class": "out"});
      const s = el("section", {"id": op.operationId},
        el("div", {}, el("span", {"class": "m " + method}, method.toUpperCase()), " ",
           el("code", {}, path), " \\u2014 ", op.summary));
      let box = null;
      const content = op.requestBody && op.requestBody.content["application/json"];
      if (content) {
        const first = Object.values(content.examples || {})[0];
        box = el("textarea", {"rows": "8"});
        box.value = JSON.stringify(first ? first.value : {}, null, 2);
        s.append(box);
      }
      const b = el("button", {}, "Send");
      b.addEventListener("click", () => send(method.toUpperCase(), path.slice(1), box, out));
      s.append(el("div", {}, b), out);
      ops.append(s);
    }
  }
}).catch(e => { document.getElementById("ops").textContent = "cannot read openapi.json: " + e; });
</script></body></html>
"""
