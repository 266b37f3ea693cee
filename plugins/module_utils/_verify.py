# -*- coding: utf-8 -*-
# Copyright (c) 2026, netfence.docker contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The blackout module's own check of its result: connect to the published TCP ports.

After a blackout every published TCP port of the service must refuse connections from the host
itself (V(127.0.0.1), V(::1) for ports published on V(::), and the addresses the caller names, such
as the host's address); after a restore it must answer again. One thread per target and round;
the rounds repeat until every target behaves or the deadline passes.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import socket
import threading
import time
import typing as t

from ansible_collections.netfence.docker.plugins.module_utils._planner import host_network

# How long to wait for every target to behave: a blackout lands in one transaction, a restored
# service may need a moment for docker-proxy and the service itself.
TIMEOUT = {'refused': 10.0, 'open': 30.0}
CONNECT_TIMEOUT = 2.0
ROUND_PAUSE = 0.2


@dataclasses.dataclass(frozen=True)
class Target:
    """One address and port to connect to, and the container that publishes it."""

    host: str
    port: int
    container: str
    # Only checked when something listens on the port over IPv6 (the IPv6 loopback address:
    # with dockerd --userland-proxy=false, [::1] never answers, blackout or not).
    if_listening: bool = False

    @property
    def label(self) -> str:
        return '%s:%d' % ('[%s]' % self.host if ':' in self.host else self.host, self.port)


def targets(containers: t.Iterable[t.Any], ports: t.Iterable[tuple[int, str]],
            addresses: t.Iterable[str]) -> list[Target]:
    """Every (address, port) to check for the containers' published TCP ports.

    ``ports`` narrows to these container ports ((11211, 'tcp'); empty: every port). ``addresses``
    are the host's own addresses to check besides the loopback, for ports published on every
    address. A container on the host network publishes nothing: its ``ports`` are the host's own.
    """
    wanted = {port for port, proto in ports if proto == 'tcp'}
    narrowed = bool(tuple(ports))
    extra = [a for a in addresses if a]
    out: list[Target] = []

    def add(host: str, port: int, container: str, if_listening: bool = False) -> None:
        target = Target(host, port, container, if_listening)
        if target not in out:
            out.append(target)

    for container in containers:
        if host_network(container):
            for port in sorted(wanted):
                for host in ['127.0.0.1', '::1'] + extra:
                    add(host, port, container.name, host == '::1')
            continue
        for published in container.ports:
            if published.proto != 'tcp' or not published.host_port:
                continue
            if narrowed and published.container_port not in wanted:
                continue
            host_ip = published.host_ip or ''
            if host_ip in ('', '0.0.0.0'):
                hosts = ['127.0.0.1'] + extra
            elif host_ip == '::':
                hosts = ['::1'] + extra
            else:
                hosts = [host_ip]
            for host in hosts:
                add(host, int(published.host_port), container.name, host == '::1' and host_ip == '::')
    return out


def attempt(host: str, port: int, connect_timeout: float) -> tuple[bool, str]:
    """(connected, detail) for one TCP connection attempt."""
    try:
        sock = socket.create_connection((host, port), connect_timeout)
    except socket.timeout:
        return False, 'timed out'
    except OSError as exc:  # refused, reset, unreachable, no such host
        return False, exc.strerror or str(exc)
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
    sock.close()
    return True, 'connected'


def listening_tcp6(port: int, path: str = '/proc/net/tcp6') -> bool:
    """True when a TCP socket listens on ``port`` over IPv6 on this host (True when unknown)."""
    try:
        with open(path, encoding='ascii') as handle:
            lines = handle.read().splitlines()[1:]
    except OSError:
        return True
    for line in lines:
        fields = line.split()
        if len(fields) > 3 and fields[3] == '0A' and int(fields[1].rsplit(':', 1)[1], 16) == port:
            return True
    return False


def allowed(address: str, networks: t.Iterable[str]) -> bool:
    """True when ``address`` is in one of ``networks`` (CIDRs; names never are)."""
    try:
        addr = ipaddress.ip_address(address)
    except ValueError:
        return False
    for net in networks:
        try:
            if addr in ipaddress.ip_network(net, strict=False):
                return True
        except ValueError:
            continue
    return False


def check(found: list[Target], expect: str, allow_from: t.Iterable[str] = (), timeout: float | None = None,
          connect_timeout: float = CONNECT_TIMEOUT,
          probe: t.Callable[[str, int, float], tuple[bool, str]] | None = None,
          tcp6: t.Callable[[int], bool] | None = None) -> dict[str, t.Any]:
    """Connect to every target until each behaves (``expect``: 'refused' or 'open') or time is up.

    Targets whose address ``allow_from`` covers are not checked after a blackout: from the host
    itself the source address is the target's own, which the blackout lets through by design.
    """
    probe = probe or attempt
    tcp6 = tcp6 or listening_tcp6
    want_open = expect == 'open'
    deadline = time.monotonic() + (TIMEOUT[expect] if timeout is None else timeout)
    results: dict[Target, dict[str, t.Any]] = {}
    allow = list(allow_from)
    pending = []
    for target in found:
        if not want_open and allowed(target.host, allow):
            results[target] = {'ok': True, 'detail': 'not checked: allowed by allow_from'}
        elif want_open and target.if_listening and not tcp6(target.port):
            results[target] = {'ok': True, 'detail': 'not checked: nothing listens on it over IPv6'}
        else:
            pending.append(target)
    while pending:
        outcomes: dict[Target, tuple[bool, str]] = {}

        def run(target: Target) -> None:
            outcomes[target] = probe(target.host, target.port, connect_timeout)

        threads = [threading.Thread(target=run, args=(target,)) for target in pending]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        still = []
        for target in pending:
            connected, detail = outcomes[target]
            good = connected if want_open else not connected
            results[target] = {'ok': good, 'detail': detail}
            if not good:
                still.append(target)
        pending = still
        if not pending or time.monotonic() >= deadline:
            break
        time.sleep(ROUND_PAUSE)
    ordered = [{'label': target.label, 'host': target.host, 'port': target.port, 'container': target.container,
                'ok': res['ok'], 'detail': res['detail']}
               for target, res in sorted(results.items(), key=lambda item: (item[0].label, item[0].container))]
    return {'ok': not pending, 'expect': expect, 'results': ordered}


def summary(outcome: dict[str, t.Any]) -> str:
    """One line: 'refused: 127.0.0.1:11211 10.0.0.2:11211 ([::1]:11211 not checked: ...)'."""
    if not outcome['results']:
        return 'no published TCP port to check'
    checked = [r['label'] for r in outcome['results'] if not r['detail'].startswith('not checked')]
    skipped = ['%s %s' % (r['label'], r['detail']) for r in outcome['results'] if r['detail'].startswith('not checked')]
    word = 'refused' if outcome['expect'] == 'refused' else 'answering'
    if not outcome['ok']:
        word = 'NOT ' + word
        checked = [r['label'] for r in outcome['results'] if not r['ok']]
    return '%s: %s%s' % (word, ' '.join(checked), (' (%s)' % ', '.join(skipped)) if skipped else '')


def failure(outcome: dict[str, t.Any]) -> str:
    """The message for targets that do not behave."""
    bad = [r for r in outcome['results'] if not r['ok']]
    return '%s %s (%s)' % (
        ', '.join('%s (%s)' % (r['label'], r['container']) for r in bad),
        'still accept connections after the blackout' if outcome['expect'] == 'refused'
        else 'do not answer after the restore',
        '; '.join(sorted({r['detail'] for r in bad})))
