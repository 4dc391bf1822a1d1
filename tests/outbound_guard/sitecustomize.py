"""The outbound-connection guard of tests/test_offline.py, loaded by every Python process that has
this folder on PYTHONPATH (Python imports `sitecustomize` at start-up): dbt, the Dagster webserver
and daemon, their run workers, and whatever they start.

With VALUETIER_OUTBOUND_LOG set, every attempt to reach a host other than this machine is written
to that file, one JSON line each, and refused: a name lookup of a remote host (with no network here
the lookup is where a connection starts, and fails) and a connect to a non-loopback address. Nothing
is sent, whatever network the machine has."""

import json
import os
import socket
import sys
import traceback

_LOG = os.environ.get("VALUETIER_OUTBOUND_LOG")
_LOCAL_NAMES = {"localhost", "localhost.localdomain", "ip6-localhost", "ip6-loopback", ""}


def _is_local(host) -> bool:
    if host is None:
        return True
    if isinstance(host, bytes):
        host = host.decode(errors="replace")
    host = str(host).strip("[]").lower()
    if host in _LOCAL_NAMES or host == socket.gethostname().lower():
        return True
    return host.startswith("127.") or host in ("::1", "0.0.0.0", "::") or host.startswith("::ffff:127.")


def _record(kind: str, target: str) -> None:
    stack = [f"{f.filename}:{f.lineno}" for f in traceback.extract_stack()[-8:-2]]
    line = json.dumps({"pid": os.getpid(), "argv": sys.argv[:3], "kind": kind, "target": target, "stack": stack})
    with open(_LOG, "a", encoding="utf-8") as f:
        f.write(line + "\n")
    raise OSError(f"outbound {kind} to {target} refused by the test's outbound guard")


if _LOG:
    _getaddrinfo = socket.getaddrinfo
    _connect = socket.socket.connect
    _connect_ex = socket.socket.connect_ex

    def getaddrinfo(host, port, *args, **kwargs):
        if not _is_local(host):
            _record("lookup", f"{host}:{port}")
        return _getaddrinfo(host, port, *args, **kwargs)

    def _remote(sock, address) -> str | None:
        if sock.family in (socket.AF_INET, socket.AF_INET6) and not _is_local(address[0]):
            return f"{address[0]}:{address[1]}"
        return None

    def connect(self, address):
        target = _remote(self, address)
        if target:
            _record("connect", target)
        return _connect(self, address)

    def connect_ex(self, address):
        target = _remote(self, address)
        if target:
            _record("connect", target)
        return _connect_ex(self, address)

    socket.getaddrinfo = getaddrinfo
    socket.socket.connect = connect
    socket.socket.connect_ex = connect_ex
