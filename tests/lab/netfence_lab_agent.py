"""Connection probe agent of the netfence test lab (stdlib only).

The lab runs this file with ``python3 -I`` inside a network namespace (through
``nsenter --net=...``) so that connections start from that namespace.  It is
also imported by ``netfence_lab`` for connections from the root namespace.

Two modes, selected by the first command line argument:

``probe``
    Reads a JSON list of targets ``{"key", "host", "port", "timeout"}`` from
    stdin, runs a memcached ``version`` exchange against each of them in
    parallel and writes one JSON object ``{key: {"outcome", "elapsed",
    "detail"}}`` to stdout.

``hold``
    ``hold HOST PORT TIMEOUT``: connects, does one exchange and reports it as
    a JSON line, then keeps the connection open and answers one JSON line per
    command read from stdin: ``{"op": "exchange", "timeout": T}`` sends another
    request, ``{"op": "wait", "timeout": T}`` only waits for an error or EOF
    from the peer, ``{"op": "close"}`` ends.
"""

import errno
import json
import select
import socket
import sys
import threading
import time

OK = 'ok'
REFUSED = 'refused'
RESET = 'reset'
CLOSED = 'closed'
TIMEOUT = 'timeout'
UNREACHABLE = 'unreachable'
ERROR = 'error'

OUTCOMES = (OK, REFUSED, RESET, CLOSED, TIMEOUT, UNREACHABLE)

REQUEST = b'version\r\n'

_UNREACHABLE_ERRNOS = (errno.EHOSTUNREACH, errno.ENETUNREACH, errno.EADDRNOTAVAIL,
                       errno.EACCES, errno.EPERM)


def classify_error(exc):
    """Map a socket exception to an outcome name."""
    if isinstance(exc, (socket.timeout, TimeoutError)):
        return TIMEOUT
    if isinstance(exc, ConnectionRefusedError):
        return REFUSED
    if isinstance(exc, (ConnectionResetError, ConnectionAbortedError, BrokenPipeError)):
        return RESET
    if isinstance(exc, OSError) and exc.errno in _UNREACHABLE_ERRNOS:
        return UNREACHABLE
    if isinstance(exc, OSError) and exc.errno == errno.ETIMEDOUT:
        return TIMEOUT
    return ERROR


def _family(host):
    return socket.AF_INET6 if ':' in host else socket.AF_INET


def _read_line(sock, deadline):
    """Read up to CRLF; return (outcome, data)."""
    data = b''
    while b'\r\n' not in data:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return TIMEOUT, data
        sock.settimeout(remaining)
        chunk = sock.recv(4096)
        if not chunk:
            return CLOSED, data
        data += chunk
    if data.startswith(b'VERSION '):
        return OK, data
    return ERROR, data


def exchange(sock, timeout):
    """Send one version request on a connected socket; return a result dict."""
    start = time.monotonic()
    try:
        sock.settimeout(timeout)
        sock.sendall(REQUEST)
        outcome, data = _read_line(sock, start + timeout)
        detail = data.decode('ascii', 'replace').strip()
    except OSError as exc:
        outcome, detail = classify_error(exc), repr(exc)
    return {'outcome': outcome, 'elapsed': round(time.monotonic() - start, 4),
            'detail': detail}


def wait_for_error(sock, timeout):
    """Wait without sending until the peer closes/resets the connection."""
    start = time.monotonic()
    outcome, detail = TIMEOUT, ''
    try:
        readable, dummy_w, dummy_x = select.select([sock], [], [], timeout)
        if readable:
            sock.settimeout(0.1)
            chunk = sock.recv(4096)
            if chunk:
                outcome, detail = ERROR, chunk.decode('ascii', 'replace').strip()
            else:
                outcome = CLOSED
    except OSError as exc:
        outcome, detail = classify_error(exc), repr(exc)
    return {'outcome': outcome, 'elapsed': round(time.monotonic() - start, 4),
            'detail': detail}


def connect(host, port, timeout):
    """Open a TCP connection; return (socket or None, result dict)."""
    start = time.monotonic()
    sock = socket.socket(_family(host), socket.SOCK_STREAM)
    sock.settimeout(timeout)
    try:
        sock.connect((host, int(port)))
    except OSError as exc:
        sock.close()
        return None, {'outcome': classify_error(exc),
                      'elapsed': round(time.monotonic() - start, 4), 'detail': repr(exc)}
    return sock, {'outcome': OK, 'elapsed': round(time.monotonic() - start, 4), 'detail': ''}


def probe_one(host, port, timeout=1.0):
    """Connect and do one version exchange, all within ``timeout`` seconds each."""
    sock, result = connect(host, port, timeout)
    if sock is None:
        return result
    try:
        return exchange(sock, timeout)
    finally:
        sock.close()


def probe_many(targets):
    """Probe a list of target dicts in parallel; return {key: result}."""
    results = {}
    lock = threading.Lock()

    def run(target):
        res = probe_one(target['host'], target['port'], target.get('timeout', 1.0))
        with lock:
            results[target['key']] = res

    threads = [threading.Thread(target=run, args=(t,), daemon=True) for t in targets]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return results


def _emit(obj):
    sys.stdout.write(json.dumps(obj) + '\n')
    sys.stdout.flush()


def _hold(host, port, timeout):
    sock, result = connect(host, port, timeout)
    if sock is None:
        _emit(result)
        return 1
    _emit(exchange(sock, timeout))
    for line in sys.stdin:
        cmd = json.loads(line)
        if cmd.get('op') == 'exchange':
            _emit(exchange(sock, float(cmd.get('timeout', 1.0))))
        elif cmd.get('op') == 'wait':
            _emit(wait_for_error(sock, float(cmd.get('timeout', 1.0))))
        else:
            break
    sock.close()
    return 0


def main(argv):
    """Entry point when run as a script."""
    if len(argv) >= 2 and argv[1] == 'probe':
        _emit(probe_many(json.load(sys.stdin)))
        return 0
    if len(argv) == 5 and argv[1] == 'hold':
        return _hold(argv[2], int(argv[3]), float(argv[4]))
    sys.stderr.write('usage: netfence_lab_agent.py probe | hold HOST PORT TIMEOUT\n')
    return 2


if __name__ == '__main__':
    sys.exit(main(sys.argv))
