"""/docs and /redoc: pages that load only this server's files, which it serves."""

from __future__ import annotations

import re

from tests.api.client import ApiClient


def _asset_urls(html: str) -> list[str]:
    return re.findall(r'(?:src|href)="([^"]+)"', html) + re.findall(r"url: '([^']+)'", html)


def test_docs_pages_load_only_local_files(client: ApiClient) -> None:
    for page in ("/docs", "/redoc"):
        response = client.get(page)
        assert response.status_code == 200
        urls = _asset_urls(response.text)
        assert urls, page
        for url in urls:
            assert url.startswith("/"), f"{page} loads {url} from another host"
            asset = client.get(url)
            assert asset.status_code == 200, (page, url)
        policy = response.headers["content-security-policy"]
        assert "default-src 'self'" in policy and "img-src 'self' data:" in policy
        assert "http" not in policy  # no outside host allowed


def test_docs_assets_are_swagger_ui_5_and_redoc_2(client: ApiClient) -> None:
    swagger = client.get("/docs-assets/swagger-ui-bundle.js")
    assert swagger.headers["content-type"].startswith(("text/javascript", "application/js"))
    assert 'PACKAGE_VERSION:"5.' in swagger.text  # OpenAPI 3.1 needs Swagger UI 5
    redoc = client.get("/docs-assets/redoc.standalone.js")
    assert 'ReDoc Version: ","2.' in redoc.text
