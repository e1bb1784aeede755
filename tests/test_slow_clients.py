"""Slow clients against real gunicorn on loopback (gunicorn.conf.py as deployed, 2 workers), and
the reverse proxy of docs/deploy/nginx.conf in front of it (issue 11, item 2).

Health probes (a new connection each, 2 s timeout) must keep answering while idle connections,
slow-header connections and slow request bodies occupy the server: attackers reconnect as soon
as they are cut, as a real one would. Bounded: about 25 s with the proxy.

`python -m tests.test_slow_clients URL [SECONDS]` replays the floods against a running server
and prints the figures (issue 11's before/after numbers).
"""

from __future__ import annotations

import contextlib
import http.client
import json
import re
import shutil
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import pytest

from analytics.config import DEMO_DATA, PROJ_ROOT, ServeSettings, Settings
from tests.support import (
    Server,
    accounts_cli,
    free_port,
    gunicorn_env,
    save_demo_model,
    start_gunicorn,
    stop,
    wait_ready,
)

CLIENT_TIMEOUT = 4  # RETENTION_CLIENT_TIMEOUT for these tests: attackers are cut, and come back
PROBE_TIMEOUT = 2.0
HEALTH = "/api/v1/health"
NGINX_SITE = PROJ_ROOT / "docs" / "deploy" / "nginx.conf"


# -- attackers and probes --------------------------------------------------------------------


class Flood:
    """`n` connections to 127.0.0.1:port, each running `behave(sock, stop)`; one the server
    cuts is opened again until the flood ends. `cuts` holds (opened, cut) times."""

    def __init__(self, port: int, n: int, behave) -> None:
        self.port, self.n, self.behave = port, n, behave
        self.stop = threading.Event()
        self.cuts: list[tuple[float, float]] = []
        self.opened = threading.Semaphore(0)
        self.threads = [threading.Thread(target=self._run, daemon=True) for _ in range(n)]

    def _run(self) -> None:
        first = True
        while not self.stop.is_set():
            try:
                sock = socket.create_connection(("127.0.0.1", self.port), timeout=5)
            except OSError:
                time.sleep(0.1)
                continue
            if first:
                self.opened.release()
                first = False
            opened = time.monotonic()
            with sock, contextlib.suppress(OSError):
                self.behave(sock, self.stop)
            if not self.stop.is_set():
                self.cuts.append((opened, time.monotonic()))

    def __enter__(self) -> Flood:
        for thread in self.threads:
            thread.start()
        for _ in range(self.n):
            self.opened.acquire(timeout=10)
        return self

    def __exit__(self, *exc) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join(10)


def _until_cut(sock: socket.socket, stop: threading.Event, every: float, send=None) -> None:
    """Send `send()` every `every` seconds (nothing if None) until the server closes the
    connection or the flood stops."""
    sock.settimeout(every)
    while not stop.is_set():
        try:
            if not sock.recv(65536):
                return  # closed by the server
        except TimeoutError:
            pass
        if send is not None:
            sock.sendall(send())


def idle(sock, stop) -> None:
    """Connect and send nothing."""
    _until_cut(sock, stop, 0.2)


def slow_header(sock, stop) -> None:
    """A request head one header line every 0.5 s, never finished."""
    sock.sendall(b"GET " + HEALTH.encode() + b" HTTP/1.1\r\nHost: 127.0.0.1\r\n")
    lines = iter(range(10**6))
    _until_cut(sock, stop, 0.5, lambda: b"X-Slow-%d: 1\r\n" % next(lines))


def slow_body(token: str):
    """POST /api/v1/predict announcing a 2 MB body (more than the worker buffers), sent 1 KB
    every 0.5 s: the app reads it, so it holds a request thread while it lasts."""

    def behave(sock, stop) -> None:
        sock.sendall(
            b"POST /api/v1/predict HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            b"Content-Type: application/json\r\nContent-Length: 2000000\r\n"
            b"Authorization: Bearer " + token.encode() + b"\r\n\r\n" + b'{"customers": ['
        )
        _until_cut(sock, stop, 0.5, lambda: b" " * 1024)

    return behave


def probe_health(port: int, seconds: float, every: float = 0.25) -> list[float | None]:
    """Health probes for `seconds`: each one's duration, or None when it failed or took longer
    than PROBE_TIMEOUT."""
    results: list[float | None] = []
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        started = time.monotonic()
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=PROBE_TIMEOUT)
            conn.request("GET", HEALTH)
            response = conn.getresponse()
            response.read()
            conn.close()
            took = time.monotonic() - started
            results.append(took if response.status == 200 and took <= PROBE_TIMEOUT else None)
        except (OSError, http.client.HTTPException):
            results.append(None)
        time.sleep(max(0.0, every - (time.monotonic() - started)))
    return results


def summary(results: list[float | None]) -> str:
    answered = [r for r in results if r is not None]
    slowest = f", slowest {max(answered):.2f} s" if answered else ""
    return f"{len(answered)} of {len(results)} health probes within {PROBE_TIMEOUT:g} s{slowest}"


# -- gunicorn as deployed --------------------------------------------------------------------


@pytest.fixture(scope="module")
def trained_models(tmp_path_factory, demo_workspace) -> Path:
    return save_demo_model(tmp_path_factory.mktemp("slow-models"), demo_workspace)


@pytest.fixture(scope="module")
def server(tmp_path_factory, trained_models):
    port = free_port()
    log = tmp_path_factory.mktemp("slow-gunicorn") / "gunicorn.log"
    env = gunicorn_env(
        trained_models,
        port,
        RETENTION_CLIENT_TIMEOUT=str(CLIENT_TIMEOUT),
        RETENTION_TRUSTED_PROXIES="127.0.0.1",
        RETENTION_LOG_LEVL=None,
    )
    proc = start_gunicorn(env, log)
    server = Server(proc, port, log)
    try:
        wait_ready(server)
        accounts_cli(env, "users", "add", "flood", "--role", "admin", password="flood-password-1")
        server.token = accounts_cli(env, "tokens", "create", "flood").strip().splitlines()[-1]
        yield server
    finally:
        stop(proc)


def test_idle_and_slow_header_connections_leave_health_answering(server):
    """Issue 11's check (50 idle connections: at least 90% of health probes within 2 s), with 8
    slow-header connections on top; each slow head is cut at RETENTION_CLIENT_TIMEOUT."""
    with Flood(server.port, 50, idle), Flood(server.port, 8, slow_header) as slow:
        results = probe_health(server.port, seconds=2 * CLIENT_TIMEOUT)
    assert len(results) >= 20, summary(results)  # a probe that times out takes 2 s
    answered = [r for r in results if r is not None]
    assert len(answered) >= 0.9 * len(results), summary(results)
    assert slow.cuts, "no slow-header connection was cut"
    assert max(cut - opened for opened, cut in slow.cuts) < CLIENT_TIMEOUT + 2.0
    assert server.proc.poll() is None


def test_health_does_not_queue_behind_busy_request_threads(server):
    """16 slow bodies occupy every request thread of both workers (2 x 4), as eight heavy
    dashboard callbacks did: health has threads of its own."""
    with Flood(server.port, 16, slow_body(server.token)):
        time.sleep(0.5)
        results = probe_health(server.port, seconds=CLIENT_TIMEOUT + 1)
    answered = [r for r in results if r is not None]
    assert len(answered) >= 0.9 * len(results), summary(results)


def _exchange(port: int, data: bytes) -> list[tuple[int, bytes]]:
    """Raw bytes in (the last request saying Connection: close), every (status, body) out."""
    with socket.create_connection(("127.0.0.1", port), timeout=20) as sock:
        sock.sendall(data)
        raw = b""
        while chunk := sock.recv(65536):
            raw += chunk
    out = []
    while raw:
        head, _, raw = raw.partition(b"\r\n\r\n")
        length = int(re.search(rb"(?i)\r\ncontent-length: *(\d+)", head).group(1))
        out.append((int(head.split()[1]), raw[:length]))
        raw = raw[length:]
    return out


def test_requests_read_ahead_by_the_worker_arrive_intact(server, trained_models):
    """Pipelined requests, a chunked body and bodies below and above what the worker buffers
    reach the app whole."""
    get = f"GET {HEALTH} HTTP/1.1\r\nHost: x\r\n".encode()
    pipelined = (get + b"\r\n") * 2 + get + b"Connection: close\r\n\r\n"
    assert [status for status, _ in _exchange(server.port, pipelined)] == [200, 200, 200]

    import pandas as pd

    (meta,) = trained_models.glob("*/model.json")
    row = pd.read_csv(DEMO_DATA, nrows=1)[json.loads(meta.read_text())["features"]]
    customer = json.loads(row.to_json(orient="records"))[0]
    auth = (
        f"Authorization: Bearer {server.token}\r\nContent-Type: application/json\r\n"
        "Connection: close\r\n"
    )
    for count in (1, 5000):  # about 1 KB, and 2 MB (> BODY_BUFFER: read by the thread)
        body = json.dumps({"customers": [customer] * count}).encode()
        head = f"POST /api/v1/predict HTTP/1.1\r\nHost: x\r\n{auth}Content-Length: {len(body)}\r\n"
        head += "\r\n"
        ((status, answer),) = _exchange(server.port, head.encode() + body)
        assert status == 200, answer[:300]
        assert json.loads(answer)["count"] == count
    body = json.dumps({"customers": [customer] * 3}).encode()
    chunked = b"".join(b"%x\r\n%s\r\n" % (len(part), part) for part in (body[:10], body[10:]))
    head = f"POST /api/v1/predict HTTP/1.1\r\nHost: x\r\n{auth}Transfer-Encoding: chunked\r\n\r\n"
    ((status, answer),) = _exchange(server.port, head.encode() + chunked + b"0\r\n\r\n")
    assert status == 200, answer[:300]
    assert json.loads(answer)["count"] == 3


# -- replaying the floods by hand -------------------------------------------------------------


def heavy_callback_body(size: int = 600_000) -> bytes:
    """The at-risk grid's rows callback with an OR filter of ~15,000 conditions (issue 11's
    600 KB callback; the callback input checks now refuse it with 400)."""
    conditions = [
        {"filterType": "text", "type": "contains", "filter": f"zz{i:06d}"}
        for i in range(size // 66)
    ]
    model = {"customer_id": {"filterType": "text", "operator": "OR", "conditions": conditions}}
    request = {"startRow": 0, "endRow": 100, "sortModel": [], "filterModel": model}
    body = {
        "output": "at-risk-grid.getRowsResponse",
        "outputs": {"id": "at-risk-grid", "property": "getRowsResponse"},
        "inputs": [{"id": "at-risk-grid", "property": "getRowsRequest", "value": request}],
        "state": [{"id": "filter-query", "property": "data", "value": ""}],
        "changedPropIds": ["at-risk-grid.getRowsRequest"],
    }
    return json.dumps(body).encode()


def heavy_callbacks(token: str):
    """Post the heavy callback once per connection, wait for its answer, then post again."""
    body = heavy_callback_body()
    head = (
        "POST /_dash-update-component HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n"
        f"Content-Type: application/json\r\nAuthorization: Bearer {token}\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    ).encode()

    def behave(sock, stop) -> None:
        sock.sendall(head + body)
        _until_cut(sock, stop, 0.5)

    return behave


def main(argv: list[str]) -> None:
    """python -m tests.test_slow_clients PORT [TOKEN] [SECONDS]: each flood in turn against
    gunicorn on 127.0.0.1:PORT while probing health; with an API token, slow bodies and heavy
    callbacks too."""
    port = int(argv[0])
    token = argv[1] if len(argv) > 1 else ""
    seconds = float(argv[2]) if len(argv) > 2 else 20.0
    floods = {
        "50 idle connections": [(50, idle)],
        "8 slow-header connections": [(8, slow_header)],
        "50 idle + 8 slow-header": [(50, idle), (8, slow_header)],
    }
    if token:
        floods["16 slow 2 MB bodies"] = [(16, slow_body(token))]
        floods["8 x 600 KB callbacks"] = [(8, heavy_callbacks(token))]
    for name, parts in floods.items():
        with contextlib.ExitStack() as stack:
            for n, behave in parts:
                stack.enter_context(Flood(port, n, behave))
            results = probe_health(port, seconds)
        print(f"{name}: {summary(results)}", flush=True)
        time.sleep(2)


if __name__ == "__main__":
    main(sys.argv[1:])


# -- the reverse proxy (docs/deploy/nginx.conf) in front ------------------------------------


def _nginx() -> str:
    found = shutil.which("nginx") or shutil.which("nginx", path="/usr/sbin:/usr/local/sbin")
    if not found:
        pytest.skip("nginx is not installed (.ci/run installs Debian's nginx)")
    return found


def _self_signed(folder: Path) -> tuple[Path, Path]:
    """A certificate for localhost and 127.0.0.1, valid for a day, and its key: made with the
    `cryptography` package, or the openssl command."""
    crt, pem = folder / "site.crt", folder / "site.key"
    try:
        import cryptography  # noqa: F401
    except ImportError:
        if not shutil.which("openssl"):
            pytest.skip("neither the cryptography package nor openssl to make a certificate")
        command = "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 1"
        command += " -subj /CN=localhost -addext subjectAltName=DNS:localhost,IP:127.0.0.1"
        subprocess.run(
            [*command.split(), "-keyout", str(pem), "-out", str(crt)],
            check=True,
            capture_output=True,
            timeout=30,
        )
        return crt, pem
    import datetime
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    crt.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    pem.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return crt, pem


def _site(text: str, replacements: dict[str, str]) -> str:
    """The shipped site file with its deployment-specific lines replaced (each exactly once)."""
    for old, new in replacements.items():
        assert text.count(old) == 1, f"docs/deploy/nginx.conf no longer has {old!r} once"
        text = text.replace(old, new)
    return text


def _settings(text: str, directive: str) -> list[str]:
    """Every value the directive takes in the file, in order."""
    return re.findall(rf"^\s*{directive}\s+([^;]+);", text, flags=re.M)


def test_the_proxy_config_matches_the_app():
    text = NGINX_SITE.read_text(encoding="utf-8")
    # The server takes the app's body limit, the two upload routes (after it) a table.
    other, upload = _settings(text, "client_max_body_size")
    assert upload == f"{Settings().max_file_mb:g}m"
    assert other == f"{ServeSettings().max_body_mb:g}m"
    # longer than gunicorn's worker timeout (gunicorn.conf.py)
    assert all(int(v.removesuffix("s")) > 60 for v in _settings(text, "proxy_read_timeout"))
    for directive in ("proxy_request_buffering", "proxy_buffering", "reset_timedout_connection"):
        assert set(_settings(text, directive)) == {"on"}


@pytest.fixture(scope="module")
def nginx(server):
    """docs/deploy/nginx.conf on loopback in front of the module's gunicorn, with a
    self-signed certificate: (https port, http port, certificate)."""
    binary = _nginx()
    folder = Path(tempfile.mkdtemp(prefix="nginx-"))
    folder.chmod(0o755)  # nginx's workers (nobody, when started as root) use its temp folders
    crt, key = _self_signed(folder)
    https, plain = free_port(), free_port()
    site = _site(
        NGINX_SITE.read_text(encoding="utf-8"),
        {
            "listen 443 ssl http2;": f"listen 127.0.0.1:{https} ssl http2;",
            "listen [::]:443 ssl http2;": "",
            "listen 80;": f"listen 127.0.0.1:{plain};",
            "listen [::]:80;": "",
            "server 127.0.0.1:8050;": f"server 127.0.0.1:{server.port};",
            "/etc/ssl/certs/retention.crt": str(crt),
            "/etc/ssl/private/retention.key": str(key),
        },
    )
    (folder / "site.conf").write_text(site, encoding="utf-8")
    temp = "\n".join(
        f"  {kind}_temp_path {folder}/{kind};" for kind in ("proxy", "fastcgi", "uwsgi", "scgi")
    )
    (folder / "nginx.conf").write_text(
        f"daemon off;\npid {folder}/nginx.pid;\nerror_log {folder}/error.log info;\n"
        "events { worker_connections 512; }\n"
        f"http {{\n  access_log {folder}/access.log;\n  client_body_temp_path {folder}/body;\n"
        f"{temp}\n  include {folder}/site.conf;\n}}\n",
        encoding="utf-8",
    )
    command = [binary, "-p", str(folder), "-e", str(folder / "error.log"), "-c"]
    command.append(str(folder / "nginx.conf"))
    checked = subprocess.run([*command, "-t"], capture_output=True, text=True, timeout=30)
    assert checked.returncode == 0, checked.stderr
    proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", https), timeout=1).close()
                break
            except OSError:
                time.sleep(0.1)
        else:
            pytest.fail((folder / "error.log").read_text())
        yield https, plain, crt
    finally:
        proc.terminate()
        proc.wait(10)
        shutil.rmtree(folder, ignore_errors=True)


def _tls(crt: Path) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=str(crt))


def test_the_proxy_serves_health_over_tls_with_hsts(nginx):
    https, plain, crt = nginx
    conn = http.client.HTTPSConnection("localhost", https, timeout=10, context=_tls(crt))
    conn.request("GET", HEALTH)
    response = conn.getresponse()
    assert response.status == 200
    assert json.loads(response.read())["status"] == "ready"
    hsts = response.getheader("Strict-Transport-Security")
    max_age = re.fullmatch(r"max-age=(\d+); includeSubDomains", hsts)
    assert max_age, hsts
    assert int(max_age.group(1)) >= 365 * 86400
    assert response.getheader("X-Content-Type-Options") == "nosniff"  # the app's, passed on
    assert response.getheader("Server") == "nginx"  # no version
    conn.close()

    conn = http.client.HTTPConnection("127.0.0.1", plain, timeout=10)
    conn.request("GET", HEALTH, headers={"Host": "retention.example.com"})
    response = conn.getresponse()
    assert response.status == 301
    assert response.getheader("Location") == f"https://retention.example.com{HEALTH}"

    # a body over the app's limit is refused by nginx from its Content-Length, unread
    conn = http.client.HTTPSConnection("localhost", https, timeout=10, context=_tls(crt))
    conn.putrequest("POST", "/api/v1/predict")
    conn.putheader("Content-Length", str(64 * 2**20))
    conn.endheaders()
    assert conn.getresponse().status == 413


def test_the_proxy_cuts_a_slow_header_client(nginx):
    https, _, crt = nginx
    (timeout,) = _settings(NGINX_SITE.read_text(encoding="utf-8"), "client_header_timeout")
    limit = float(timeout.removesuffix("s"))
    raw = socket.create_connection(("127.0.0.1", https), timeout=5)
    with _tls(crt).wrap_socket(raw, server_hostname="localhost") as sock:
        started = time.monotonic()
        sock.sendall(f"GET {HEALTH} HTTP/1.1\r\nHost: localhost\r\n".encode())
        cut = None
        for i in range(int(limit) * 4):
            try:
                sock.settimeout(0.5)
                if not sock.recv(65536):
                    cut = time.monotonic() - started
                    break
            except TimeoutError:
                pass
            except OSError:
                cut = time.monotonic() - started
                break
            try:
                sock.sendall(b"X-Slow-%d: 1\r\n" % i)
            except OSError:
                cut = time.monotonic() - started
                break
    assert cut is not None, f"still connected after {2 * limit:g} s"
    assert limit - 1 < cut < limit + 3
