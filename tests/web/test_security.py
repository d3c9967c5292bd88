"""What the viewer refuses: writes without the CSRF header or in read-only mode, requests
without the token off loopback, a foreign Host header, files outside its static folder."""

from __future__ import annotations

from pathlib import Path

import pytest
from starlette.testclient import TestClient

from tether.web.app import create_app
from web.conftest import client_for


def csrf_of(client: TestClient) -> str:
    token: str = client.get("/api/session").json()["csrf"]
    return token


def test_a_write_needs_the_csrf_header(client: TestClient) -> None:
    refused = client.post("/api/queue/abc/kill")
    assert refused.status_code == 403 and "X-Tether-CSRF" in refused.json()["error"]["message"]
    wrong = client.post("/api/queue/abc/kill", headers={"X-Tether-CSRF": "guess"})
    assert wrong.status_code == 403
    # the right token reaches the queue, which knows no entry abc
    passed = client.post("/api/queue/abc/kill", headers={"X-Tether-CSRF": csrf_of(client)})
    assert passed.status_code == 409 and "no queue entry" in passed.json()["error"]["message"]


def test_read_only_refuses_every_write(project: Path) -> None:
    with client_for(project, read_only=True) as client:
        assert client.get("/api/session").json()["read_only"] is True
        response = client.post("/api/queue/abc/kill", headers={"X-Tether-CSRF": csrf_of(client)})
        assert response.status_code == 403 and "read-only" in response.json()["error"]["message"]
        assert client.get("/api/experiments").status_code == 200


def test_off_loopback_a_token_is_required_then_kept_in_a_cookie(project: Path) -> None:
    app = create_app(project, host="0.0.0.0", token="s3cret-token")
    with TestClient(app, base_url="http://192.0.2.7:8765") as client:
        refused = client.get("/api/session")
        assert refused.status_code == 403 and "token" in refused.json()["error"]["message"]
        assert client.get("/api/session?token=wrong").status_code == 403
        first = client.get("/?token=s3cret-token")
        assert first.status_code == 200
        assert "HttpOnly" in first.headers["set-cookie"]
        assert client.cookies["tether_token"] == "s3cret-token"
        assert client.get("/api/experiments").status_code == 200  # the cookie is enough


@pytest.mark.parametrize("host", ["evil.example", "evil.example:8765", "127.0.0.1.evil.example",
                                  "192.0.2.7:8765", ""])
def test_a_foreign_host_header_is_refused(client: TestClient, host: str) -> None:
    # a page whose DNS name was rebound to 127.0.0.1 still sends its own name
    response = client.get("/api/session", headers={"host": host})
    assert response.status_code == 403 and "Host" in response.json()["error"]["message"]


@pytest.mark.parametrize("host", ["127.0.0.1:8765", "localhost:8765", "[::1]:8765",
                                  "LOCALHOST"])
def test_loopback_names_are_welcome(client: TestClient, host: str) -> None:
    assert client.get("/api/session", headers={"host": host}).status_code == 200


def test_a_named_host_accepts_its_name_only(project: Path) -> None:
    app = create_app(project, host="192.0.2.7", token="t")
    with TestClient(app, base_url="http://192.0.2.7:8765") as client:
        assert client.get("/api/session?token=t").status_code == 200
        assert client.get("/api/session?token=t", headers={"host": "evil.example"}
                          ).status_code == 403


def test_static_files_come_only_from_the_static_folder(project: Path, tmp_path: Path) -> None:
    static = tmp_path / "static"
    (static / "assets").mkdir(parents=True)
    (static / "index.html").write_text("<!doctype html><title>app</title>")
    (static / "assets" / "app.js").write_text("console.log(1)")
    (tmp_path / "secret.txt").write_text("secret")
    (static / "assets" / "link.txt").symlink_to(tmp_path / "secret.txt")
    with client_for(project, static_dir=static) as client:
        script = client.get("/assets/app.js")
        assert script.status_code == 200 and script.text == "console.log(1)"
        assert "javascript" in script.headers["content-type"]
        assert script.headers["x-content-type-options"] == "nosniff"
        for path in ("/../secret.txt", "/assets/../../secret.txt", "/%2e%2e/secret.txt",
                     "/assets/link.txt"):
            response = client.get(path)
            assert "secret" not in response.text, path
        assert "<title>app</title>" in client.get("/exp/slow").text  # the SPA's own routes


def test_without_a_build_a_page_says_how_to_make_one(project: Path, tmp_path: Path) -> None:
    with client_for(project, static_dir=tmp_path / "none") as client:
        page = client.get("/")
        assert page.status_code == 200 and "npm --prefix web run build" in page.text
        assert page.headers["content-security-policy"].startswith("default-src 'self'")
