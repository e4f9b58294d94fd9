"""No web page can read the collector or write to it (issue 12, item 1).

Requests with the headers a browser sends: a DNS-rebinding page (its own name in Host),
a cross-site "no-cors" POST with a text/plain JSON body, a page on another localhost
port (Origin, Sec-Fetch-Site: same-site). Every HTTP listener refuses them; the page of
the collector itself, and clients that are not browsers, go on working; no answer
carries a permissive CORS header.
"""

from __future__ import annotations

import http.client
import json

import pytest
from test_http_framing import spans_body

from otel_threads.collector import Collector, Config
from otel_threads.collector.config import ConfigError
from otel_threads.collector.testing import running

ANY = ("127.0.0.1", 0)


@pytest.fixture
def collector(tmp_path):
    with running(tmp_path / "o.duckdb", grpc=None, http=ANY, api=ANY) as c:
        yield c


def request(
    url: str, method: str, path: str, body: bytes | None = None, **headers: str
) -> tuple[int, dict[str, str], bytes]:
    host, port = url.split("://", 1)[1].rsplit(":", 1)
    conn = http.client.HTTPConnection(host, int(port), timeout=30)
    try:
        conn.putrequest(method, path, skip_host="Host" in headers, skip_accept_encoding=True)
        for name, value in headers.items():
            conn.putheader(name.replace("_", "-"), value)
        if body is not None:
            conn.putheader("Content-Length", str(len(body)))
        conn.endheaders(body)
        resp = conn.getresponse()
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read()
    finally:
        conn.close()


SQL = json.dumps({"sql": "SELECT count(*) FROM spans"}).encode()
API_REQUESTS = [
    ("POST", "/sql", SQL),
    ("POST", "/threads/query", b"{}"),
    ("GET", "/ui/threads", None),
    ("GET", "/threads/x", None),
    ("GET", "/metrics", None),
]


@pytest.mark.parametrize(
    ("method", "path", "body"), API_REQUESTS, ids=[p for _, p, _ in API_REQUESTS]
)
def test_a_dns_rebinding_page_is_refused(collector, method, path, body):
    api = collector.endpoints.api
    port = api.rsplit(":", 1)[1]
    headers = {"Content_Type": "application/json"} if body else {}
    status, answer, text = request(api, method, path, body, Host=f"evil.example:{port}", **headers)
    assert status == 403 and b"--allowed-hosts" in text, text
    assert "access-control-allow-origin" not in answer
    status, _, _ = request(api, method, path, body, Host=f"localhost:{port}", **headers)
    assert status in (200, 404)  # the same request to its own name is served


def test_a_rebinding_page_cannot_inject_spans(collector):
    url = collector.endpoints.http
    port = url.rsplit(":", 1)[1]
    body = spans_body(1)
    status, _, _ = request(
        url,
        "POST",
        "/v1/traces",
        body,
        Host=f"evil.example:{port}",
        Content_Type="application/x-protobuf",
    )
    assert status == 403
    status, _, _ = request(
        url,
        "POST",
        "/v1/traces",
        body,
        Content_Type="application/x-protobuf",
        Origin="https://evil.example",
        Sec_Fetch_Site="cross-site",
    )
    assert status == 403
    with collector.store.cursor() as cur:
        assert cur.execute("SELECT count(*) FROM spans_raw").fetchall() == [(0,)]


def test_cross_site_requests_are_refused(collector):
    api = collector.endpoints.api
    # a "no-cors" form-like POST: text/plain JSON, from another site
    status, answer, _ = request(
        api,
        "POST",
        "/sql",
        SQL,
        Content_Type="text/plain",
        Origin="https://evil.example",
        Sec_Fetch_Site="cross-site",
        Sec_Fetch_Mode="no-cors",
    )
    assert status == 403 and "access-control-allow-origin" not in answer
    # the same body without the browser's headers still needs JSON's media type
    status, _, text = request(api, "POST", "/sql", SQL, Content_Type="text/plain")
    assert status == 415 and b"application/json" in text
    # a page on another localhost port is same-site, not same-origin
    status, _, _ = request(
        api, "GET", "/ui/threads", Origin="http://127.0.0.1:3000", Sec_Fetch_Site="same-site"
    )
    assert status == 403
    status, _, _ = request(api, "GET", "/ui/threads", Sec_Fetch_Site="same-site")
    assert status == 403
    # preflight gets no CORS answer
    status, answer, _ = request(
        api, "OPTIONS", "/sql", Origin="https://evil.example", Access_Control_Request_Method="POST"
    )
    assert status in (403, 501) and "access-control-allow-origin" not in answer


def test_the_collectors_own_page_and_plain_clients_work(collector):
    api = collector.endpoints.api
    host = api.split("://", 1)[1]
    # what the browser sends for the page's own calls
    status, _, _ = request(
        api,
        "GET",
        "/ui/threads",
        Origin=f"http://{host}",
        Sec_Fetch_Site="same-origin",
        Sec_Fetch_Mode="cors",
    )
    assert status == 200
    status, _, _ = request(api, "GET", "/", Sec_Fetch_Site="none", Sec_Fetch_Mode="navigate")
    assert status == 200
    status, _, _ = request(api, "POST", "/sql", SQL, Content_Type="application/json")
    assert status == 200


def test_allowed_hosts(tmp_path):
    c = Collector(
        Config(
            parse_workers=0,
            db=str(tmp_path / "a.duckdb"),
            grpc=None,
            http=ANY,
            api=ANY,
            allowed_hosts=("threads.internal",),
        )
    )
    c.start()
    try:
        port = c.endpoints.api.rsplit(":", 1)[1]
        assert (
            request(c.endpoints.api, "GET", "/ui/threads", Host=f"threads.internal:{port}")[0]
            == 200
        )
        assert request(c.endpoints.api, "GET", "/ui/threads", Host=f"other:{port}")[0] == 403
    finally:
        c.stop()
    assert Config.load({"allowed_hosts": "a.example, B.example"}, env={}).allowed_hosts == (
        "a.example",
        "b.example",
    )
    with pytest.raises(ConfigError, match="without ports"):
        Config.load({"allowed_hosts": "a.example:8080"}, env={})


def test_annotations_cannot_be_written_from_another_web_page(tmp_path):
    """POST /threads/{id}/annotations and DELETE /annotations/{id} (issue 16): refused
    with 403 from another origin, or when the browser says the page is cross-site; the
    same requests without a browser's headers are served."""
    from stored_app import App

    from otel_threads import thread
    from otel_threads.collector.testing import sql

    with running(tmp_path / "n.duckdb", http=None, api=ANY) as c:
        app = App()
        with thread("t"), app.tracer.start_as_current_span("turn"):
            pass
        app.send(c)
        assert sql(c, "SELECT count(*) FROM threads") == [(1,)]
        api = c.endpoints.api
        host = api.split("://", 1)[1]
        body = json.dumps({"name": "thumbs", "label": "down", "score": 0}).encode()
        json_type = {"Content_Type": "application/json"}
        status, _, text = request(api, "POST", "/threads/t/annotations", body, **json_type)
        assert status == 201, text
        kept = json.loads(text)["annotation_id"]
        foreign = [
            {"Origin": "https://evil.example"},
            {"Origin": "http://127.0.0.1:3000", "Sec_Fetch_Site": "same-site"},
            {"Sec_Fetch_Site": "cross-site"},
            {"Origin": f"http://{host}", "Sec_Fetch_Site": "cross-site"},
        ]
        for headers in foreign:
            status, answer, text = request(
                api, "POST", "/threads/t/annotations", body, **json_type, **headers
            )
            assert status == 403 and b"refused" in text, (headers, status, text)
            assert "access-control-allow-origin" not in answer
            status, _, text = request(api, "DELETE", f"/annotations/{kept}", **headers)
            assert status == 403 and b"refused" in text, (headers, status, text)
        assert sql(c, "SELECT annotation_id FROM annotations") == [(kept,)]
        # the collector's own page deletes it
        own = {"Origin": f"http://{host}", "Sec_Fetch_Site": "same-origin"}
        assert request(api, "DELETE", f"/annotations/{kept}", **own)[0] == 200
        assert sql(c, "SELECT count(*) FROM annotations") == [(0,)]
