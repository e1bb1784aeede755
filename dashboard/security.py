"""Security headers on every response (pages, Dash's JSON routes, assets, the API, errors).

The Content-Security-Policy allows what the Dash page was checked to need in headless Chromium
(tests/test_serving.py) and nothing more:

- scripts: only this origin, plus the sha256 hashes of Dash's inline scripts (the renderer
  start-up line and the clientside callbacks), from `Dash.csp_hashes()`; no 'unsafe-inline', so
  an injected <script> does not run. Dash's `_dash-config` block is JSON, not script. Scripts
  of our own are files in assets/ (this origin), never inline: assets/training.js follows a
  training model through GET /api/v1/health, which connect-src 'self' allows.
  No 'unsafe-eval' either: that would only be needed for plotly.js WebGL traces (regl compiles
  its draw calls with `Function(...)`), so every chart is SVG (the value x risk scatter shows a
  sample of at most 5,000 points, which SVG draws well). ALLOW_EVAL is the switch if a WebGL
  trace is ever needed.
- styles: this origin and 'unsafe-inline', because plotly.js, AG Grid and React set style
  attributes and inject <style> elements at run time.
- images and fonts: this origin and data: URIs (plotly's mode bar icons, Bootstrap's inline
  SVGs); blob: for images (plotly's "download plot as png").
- frame-ancestors 'none' and X-Frame-Options: DENY (no clickjacking), object-src 'none',
  base-uri 'self', form-action 'self'.

Headers a view sets itself are kept (setdefault). HSTS is left to the TLS-terminating proxy.
"""

from __future__ import annotations

ALLOW_EVAL = False  # True only for plotly.js WebGL traces (regl); see above

CSP_BASE = {
    "default-src": ["'self'"],
    "script-src": ["'self'"],
    "style-src": ["'self'", "'unsafe-inline'"],
    "img-src": ["'self'", "data:", "blob:"],
    "font-src": ["'self'", "data:"],
    "connect-src": ["'self'"],
    "object-src": ["'none'"],
    "base-uri": ["'self'"],
    "form-action": ["'self'"],
    "frame-ancestors": ["'none'"],
}

STATIC_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    # same-origin, not no-referrer: over HTTPS the CSRF check (Flask-WTF) wants this site's own
    # Referer on every form and callback POST; other sites still get none.
    "Referrer-Policy": "same-origin",
    "Cross-Origin-Opener-Policy": "same-origin",
}


def content_security_policy(script_hashes=()) -> str:
    policy = {k: list(v) for k, v in CSP_BASE.items()}
    if ALLOW_EVAL:
        policy["script-src"].append("'unsafe-eval'")
    policy["script-src"] += list(script_hashes)
    return "; ".join(f"{name} {' '.join(values)}" for name, values in policy.items())


def error_page_headers() -> dict[str, str]:
    """The same headers for a response the app does not write itself (gunicorn's own 400, 414
    or 431, added by dashboard.worker): the policy of a page without scripts."""
    return {**STATIC_HEADERS, "Content-Security-Policy": content_security_policy()}


def install(app) -> None:
    """An after_request hook on the Dash app's Flask server. The script hashes are computed at
    the first response, after every clientside callback has been registered."""
    server = app.server
    if server.extensions.get("retention_security_headers"):
        return
    server.extensions["retention_security_headers"] = True
    policy: list[str] = []  # computed once, at the first response

    @server.after_request
    def _security_headers(response):
        if not policy:
            policy.append(content_security_policy(app.csp_hashes()))
        for name, value in STATIC_HEADERS.items():
            response.headers.setdefault(name, value)
        response.headers.setdefault("Content-Security-Policy", policy[0])
        return response
