# Copyright (c) 2026, netfence.docker contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Check from a host that TCP ports refuse connections, or answer (netfence.docker.blackout role).

Run by the role with ansible.builtin.script (one run for every port of the service, instead of
one wait_for per address and port). Standard library only; Python 2.7 and 3.x.

    python3 netfence_port_check.py '{"expect": "refused", "timeout": 10,
                                     "targets": [{"host": "127.0.0.1", "port": 11211, "label": "..."}]}'

expect=refused: every target must fail to connect (refused, reset, timed out). A target that
still connects is retried until the deadline. expect=open: every target must accept a connection
before the deadline, except a target marked "if_listening" (the IPv6 loopback address) when
nothing on the host listens on its port over IPv6 (e.g. dockerd --userland-proxy=false: [::1]
never answers, with or without a blackout). With expect=refused, a target whose address is in
"allow_from" is not checked (from the host itself, its source address is the target's address,
which the blackout lets through). Prints one JSON object {"ok": bool, "results": [...]}
and exits 0 either way.
"""
import json
import socket
import sys
import threading
import time


def attempt(host, port, connect_timeout):
    """Return (connected, detail) for one TCP connection attempt."""
    try:
        sock = socket.create_connection((host, port), connect_timeout)
    except socket.timeout:
        return False, 'timed out'
    except (OSError, socket.error) as exc:  # refused, reset, unreachable
        return False, getattr(exc, 'strerror', None) or str(exc)
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except (OSError, socket.error):
        pass
    sock.close()
    return True, 'connected'


def listening_tcp6(port):
    """True when a TCP socket listens on ``port`` over IPv6 on this host (/proc/net/tcp6)."""
    try:
        with open('/proc/net/tcp6') as handle:
            lines = handle.read().splitlines()[1:]
    except (IOError, OSError):
        return True  # cannot tell: check the target
    for line in lines:
        fields = line.split()
        if len(fields) > 3 and fields[3] == '0A' and int(fields[1].rsplit(':', 1)[1], 16) == port:
            return True
    return False


def allowed(address, networks):
    """True when ``address`` is in one of ``networks`` (CIDR strings)."""
    try:
        import ipaddress  # pylint: disable=import-outside-toplevel
    except ImportError:  # Python 2 without the backport: check the target
        return False
    try:
        addr = ipaddress.ip_address(u'%s' % address)
    except ValueError:
        return False
    for net in networks:
        try:
            if addr in ipaddress.ip_network(u'%s' % net, strict=False):
                return True
        except ValueError:
            continue
    return False


def check(spec):
    """Check every target of spec; return the JSON-able result."""
    want_open = spec.get('expect') == 'open'
    connect_timeout = float(spec.get('connect_timeout', 2))
    deadline = time.time() + float(spec.get('timeout', 10))
    pending = list(spec.get('targets', []))
    results = {}
    if not want_open:
        # A connection from the host to itself has the target's address as source: when
        # allow_from covers it, the blackout lets it through by design.
        for target in [t for t in pending if allowed(t['host'], spec.get('allow_from') or [])]:
            pending.remove(target)
            results[target.get('label') or '%s:%s' % (target['host'], target['port'])] = {
                'target': target, 'ok': True, 'detail': 'not checked: allowed by allow_from'}
    if want_open:
        for target in [t for t in pending if t.get('if_listening') and not listening_tcp6(int(t['port']))]:
            pending.remove(target)
            results[target.get('label') or '%s:%s' % (target['host'], target['port'])] = {
                'target': target, 'ok': True, 'detail': 'not checked: nothing listens on it over IPv6'}
    while True:
        # One thread per target: with reject_with=drop every refused attempt lasts connect_timeout.
        outcomes = {}

        def probe(target, into):
            into[id(target)] = attempt(target['host'], int(target['port']), connect_timeout)

        threads = [threading.Thread(target=probe, args=(target, outcomes)) for target in pending]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        still = []
        for target in pending:
            connected, detail = outcomes[id(target)]
            good = connected if want_open else not connected
            results[target.get('label') or '%s:%s' % (target['host'], target['port'])] = {
                'target': target, 'ok': good, 'detail': detail}
            if not good:
                still.append(target)
        pending = still
        if not pending or time.time() >= deadline:
            break
        time.sleep(0.5)
    ordered = [dict(label=label, **results[label]) for label in sorted(results)]
    return {'ok': not pending, 'expect': 'open' if want_open else 'refused', 'results': ordered,
            'failed': [r['label'] for r in ordered if not r['ok']]}


def main():
    """Entry point."""
    spec = json.loads(sys.argv[1])
    sys.stdout.write(json.dumps(check(spec)) + '\n')
    return 0


if __name__ == '__main__':
    sys.exit(main())
