"""Swagger UI (``/docs``) and ReDoc (``/redoc``) from this server's own files, never a CDN.

FastAPI's default pages load their JavaScript and CSS from a CDN, so on a machine without
internet they render nothing. The assets come from the ``fastapi-offline`` package
(pinned in pyproject.toml: 1.7.7 carries Swagger UI 5.32.6, Apache-2.0, and ReDoc 2.5.3,
MIT) and are served under :data:`ASSETS_URL`. The pages ask no other host for anything
(no web fonts, no online validator badge), and their Content-Security-Policy keeps it so:
ReDoc's sidebar would fetch its maker's logo from a CDN; the browser refuses that before
any request (ReDoc then hides the image).
"""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path

from fastapi import FastAPI
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

ASSETS_URL = "/docs-assets"
ASSETS_DIR = Path(str(files("fastapi_offline") / "static"))
FAVICON_URL = "/ui/favicon.svg"

# FastAPI's defaults, plus: no badge fetched from validator.swagger.io, and the key
# pasted in "Authorize" survives a reload of the page.
SWAGGER_UI_PARAMETERS = {
    "dom_id": "#swagger-ui",
    "layout": "BaseLayout",
    "deepLinking": True,
    "showExtensions": True,
    "showCommonExtensions": True,
    "validatorUrl": None,
    "persistAuthorization": True,
}


# Only this server: scripts and styles (inline ones too: both pages start from an inline
# script and style themselves inline), images, XHR ("Try it out"), and ReDoc's search
# worker, which it starts from a blob: URL.
CONTENT_SECURITY_POLICY = "; ".join(
    [
        "default-src 'self'",
        "script-src 'self' 'unsafe-inline'",
        "style-src 'self' 'unsafe-inline'",
        "img-src 'self' data:",
        "font-src 'self' data:",
        "connect-src 'self'",
        "worker-src 'self' blob:",
    ]
)


def _self_only(page: HTMLResponse) -> HTMLResponse:
    page.headers["Content-Security-Policy"] = CONTENT_SECURITY_POLICY
    return page


def mount_docs(app: FastAPI) -> None:
    """Add ``/docs``, ``/redoc`` and their assets to ``app`` (made with docs_url=None,
    redoc_url=None)."""
    openapi_url = app.openapi_url or "/openapi.json"
    app.mount(ASSETS_URL, StaticFiles(directory=ASSETS_DIR), name="docs-assets")

    @app.get("/docs", include_in_schema=False)
    async def swagger_ui() -> HTMLResponse:
        return _self_only(
            get_swagger_ui_html(
                openapi_url=openapi_url,
                title=f"{app.title} - Swagger UI",
                swagger_js_url=f"{ASSETS_URL}/swagger-ui-bundle.js",
                swagger_css_url=f"{ASSETS_URL}/swagger-ui.css",
                swagger_favicon_url=FAVICON_URL,
                swagger_ui_parameters=SWAGGER_UI_PARAMETERS,
            )
        )

    @app.get("/redoc", include_in_schema=False)
    async def redoc() -> HTMLResponse:
        return _self_only(
            get_redoc_html(
                openapi_url=openapi_url,
                title=f"{app.title} - ReDoc",
                redoc_js_url=f"{ASSETS_URL}/redoc.standalone.js",
                redoc_favicon_url=FAVICON_URL,
                with_google_fonts=False,
            )
        )
