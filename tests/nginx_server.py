"""nginx from Debian as a test server: its own config, pid, logs and files
under a temporary directory, on free ports of 127.0.0.1, over HTTP and HTTPS
(a self-signed certificate made with the openssl CLI).

Why nginx: it is the server load tests most often meet, and the transports
must read what a real one writes (its keep-alive limits, gzip on the fly,
conditional 304s, TLS), not only what our own scripts send. `.ci/run`
installs it (nginx-light) when missing; without it the tests skip locally
and fail in CI.

The process runs in the foreground (`daemon off`, `master_process off`: one
process as the current user, so files under a 0700 pytest directory are
readable) and is killed at teardown.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

KEEPALIVE_REQUESTS = 3  # nginx closes a connection after this many requests
MTIME = 1_700_000_000  # the static files' mtime: fixed, so Last-Modified and ETag are too


def nginx_binary() -> str | None:
    return shutil.which("nginx") or next(
        (p for p in ("/usr/sbin/nginx",) if os.access(p, os.X_OK)), None)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def make_certificate(directory: Path, names: str = "DNS:localhost,IP:127.0.0.1",
                     stem: str = "") -> tuple[Path, Path]:
    """A self-signed certificate (its own CA) for `names`, a subjectAltName list."""
    cert, key = directory / f"{stem}cert.pem", directory / f"{stem}key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
         "-nodes", "-keyout", str(key), "-out", str(cert), "-days", "2", "-subj", "/CN=localhost",
         "-addext", f"subjectAltName={names}"],
        check=True, capture_output=True, timeout=30)
    return cert, key


@dataclass
class Nginx:
    http_port: int
    https_port: int
    root: Path  # the static files
    cert: Path  # the certificate clients must trust for HTTPS

    def url(self, path: str, *, tls: bool = False, host: str = "127.0.0.1") -> str:
        if tls:
            return f"https://{host}:{self.https_port}{path}"
        return f"http://127.0.0.1:{self.http_port}{path}"


CONFIG = """
daemon off;
master_process off;
worker_processes 1;
error_log {d}/error.log warn;
pid {d}/nginx.pid;
events {{ worker_connections 128; }}
http {{
    access_log off;
    client_body_temp_path {d}/tmp/body;
    proxy_temp_path {d}/tmp/proxy;
    fastcgi_temp_path {d}/tmp/fastcgi;
    uwsgi_temp_path {d}/tmp/uwsgi;
    scgi_temp_path {d}/tmp/scgi;
    types {{ text/plain txt; application/octet-stream bin; }}
    default_type application/octet-stream;
    keepalive_requests {keepalive};
    keepalive_timeout 30s;
    server {{
        listen 127.0.0.1:{http};
        listen 127.0.0.1:{https} ssl;
        ssl_certificate {cert};
        ssl_certificate_key {key};
        root {d}/www;
        # which connection answered, and its how-many-th request: reuse, seen from the server
        add_header X-Conn $connection always;
        add_header X-Conn-Requests $connection_requests always;
        # the TLS client's SNI (nginx leaves the header out when it is empty)
        add_header X-SNI $ssl_server_name always;
        location /gz/ {{
            gzip on;
            gzip_min_length 0;
            gzip_types text/plain;
        }}
        location = /204 {{ return 204; }}
        location = /redirect {{ return 302 /small.txt; }}
    }}
}}
"""

FILES = {
    "empty.txt": b"",
    "small.txt": b"hello from nginx\n",
    "64k.bin": bytes(range(256)) * 256,
    "big.bin": b"z" * (8 << 20),  # 8x the default max_body_bytes: cut, far from all read
    "gz/text.txt": b"a line nginx compresses on the fly\n" * 400,
}


@contextmanager
def serve_nginx(directory: Path) -> Iterator[Nginx]:
    """nginx on free ports until the block ends."""
    binary = nginx_binary()
    if binary is None:
        raise FileNotFoundError("nginx is not installed (apt-get install nginx-light)")
    www = directory / "www"
    for name, data in FILES.items():
        path = www / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        os.utime(path, (MTIME, MTIME))
    (directory / "tmp").mkdir(exist_ok=True)
    cert, key = make_certificate(directory)
    http, https = _free_port(), _free_port()
    conf = directory / "nginx.conf"
    conf.write_text(CONFIG.format(d=directory, http=http, https=https, cert=cert, key=key,
                                  keepalive=KEEPALIVE_REQUESTS))
    proc = subprocess.Popen([binary, "-c", str(conf), "-p", str(directory), "-e",
                             str(directory / "error.log")],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        _wait_listening(proc, (http, https), directory)
        yield Nginx(http, https, www, cert)
    finally:
        proc.kill()
        proc.wait(timeout=10)
        if proc.stderr is not None:
            proc.stderr.close()


def _wait_listening(proc: subprocess.Popen[bytes], ports: tuple[int, ...], directory: Path) -> None:
    """Until every port accepts (nginx binds them before serving), or nginx exits."""
    deadline = time.monotonic() + 20
    pending = list(ports)
    while pending:
        if proc.poll() is not None:
            log = (directory / "error.log")
            raise RuntimeError(f"nginx exited ({proc.returncode}): "
                               f"{log.read_text() if log.exists() else ''}")
        try:
            socket.create_connection(("127.0.0.1", pending[0]), timeout=1).close()
            pending.pop(0)
        except OSError:
            if time.monotonic() > deadline:
                raise RuntimeError(f"nginx did not listen on {pending} within 20 s") from None
            time.sleep(0.02)
