# -*- coding: utf-8 -*-
# Copyright (c) 2026, netfence.docker contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""_verify: which addresses and ports are checked, and the check itself against real loopback sockets."""

from __future__ import annotations

import socket

import pytest

from ansible_collections.netfence.docker.plugins.module_utils import _verify
from ansible_collections.netfence.docker.plugins.module_utils._docker_api import containers_from_api


def published(name, ports, mode=None, host_ip=None):
    """A running container (as the engine lists it) publishing ``ports`` [(container, host)] on
    0.0.0.0 and :: (Docker's default), or on ``host_ip`` only."""
    entries = []
    for cport, hport in ports:
        for ip in ([host_ip] if host_ip else ['0.0.0.0', '::']):
            entries.append({'IP': ip, 'PrivatePort': cport, 'PublicPort': hport, 'Type': 'tcp'})
    raw = {'Id': 'a1' * 32, 'Names': ['/' + name], 'State': 'running', 'Labels': {},
           'HostConfig': {'NetworkMode': mode or 'lab_front'},
           'NetworkSettings': {'Networks': {} if mode == 'host' else
                               {'lab_front': {'IPAddress': '172.18.0.2', 'GlobalIPv6Address': '', 'IPPrefixLen': 16}}},
           'Ports': entries}
    return containers_from_api([raw])[0]


@pytest.mark.parametrize('container, ports, addresses, expected', [
    # 0.0.0.0 and :: (Docker's default): loopback v4, v6 (if listening) and the host's address
    (published('c', [(11211, 11211)]), (), ['10.0.0.2'],
     [('127.0.0.1', 11211, False), ('10.0.0.2', 11211, False), ('::1', 11211, True)]),
    # no host address given: the loopback only
    (published('c', [(11211, 11211)]), (), [], [('127.0.0.1', 11211, False), ('::1', 11211, True)]),
    # published on one address: only that address
    (published('c', [(11211, 11300)], host_ip='10.0.0.7'), (), ['10.0.0.2'], [('10.0.0.7', 11300, False)]),
    # ports narrows by container port; a UDP-only filter checks no TCP port
    (published('c', [(11211, 11211), (80, 8080)]), ((80, 'tcp'),), [],
     [('127.0.0.1', 8080, False), ('::1', 8080, True)]),
    (published('c', [(11211, 11211)]), ((11211, 'udp'),), [], []),
    # nothing published
    (published('c', []), (), ['10.0.0.2'], []),
    # host network: the ports given are the host's own
    (published('c', [], mode='host'), ((11411, 'tcp'), (53, 'udp')), ['10.0.0.2'],
     [('127.0.0.1', 11411, False), ('::1', 11411, True), ('10.0.0.2', 11411, False)]),
])
def test_targets(container, ports, addresses, expected):
    found = _verify.targets([container], ports, addresses)
    assert [(x.host, x.port, x.if_listening) for x in found] == expected
    assert all(x.container == 'c' for x in found)


def test_targets_are_unique_across_replicas_on_one_port():
    one = published('a', [(11211, 11211)])
    found = _verify.targets([one, one], (), ['127.0.0.1'])
    assert len(found) == 2  # 127.0.0.1 once (also given as an address), ::1 once


@pytest.fixture
def listener():
    """A TCP port that accepts connections on 127.0.0.1, and one that refuses."""
    server = socket.socket()
    server.bind(('127.0.0.1', 0))
    server.listen(16)
    closed = socket.socket()
    closed.bind(('127.0.0.1', 0))  # bound, never listening: connections are refused
    yield server.getsockname()[1], closed.getsockname()[1]
    server.close()
    closed.close()


def target(port, host='127.0.0.1', **kw):
    return _verify.Target(host, port, 'c', **kw)


def test_check_open_and_refused_against_real_sockets(listener):
    open_port, closed_port = listener
    out = _verify.check([target(closed_port)], 'refused', timeout=0)
    assert out['ok'] and out['results'][0]['detail'] == 'Connection refused'
    out = _verify.check([target(open_port)], 'open', timeout=0)
    assert out['ok'] and out['results'][0]['detail'] == 'connected'
    out = _verify.check([target(open_port), target(closed_port)], 'refused', timeout=0.3)
    assert not out['ok']
    assert {r['port']: r['ok'] for r in out['results']} == {open_port: False, closed_port: True}
    assert _verify.summary(out) == 'NOT refused: 127.0.0.1:%d' % open_port
    assert _verify.failure(out) == ('127.0.0.1:%d (c) still accept connections after the blackout (connected)'
                                    % open_port)


def test_check_retries_until_the_port_behaves():
    answers = iter([(True, 'connected'), (True, 'connected'), (False, 'Connection refused')])
    calls = []

    def probe(host, port, connect_timeout):
        calls.append((host, port))
        return next(answers)

    out = _verify.check([target(1)], 'refused', timeout=5, probe=probe)
    assert out['ok'] and len(calls) == 3


def test_allow_from_and_ipv6_listening_are_not_checked():
    probed = []

    def probe(host, port, connect_timeout):
        probed.append(host)
        return False, 'Connection refused'

    out = _verify.check([target(1), target(1, host='10.0.0.2')], 'refused', allow_from=['10.0.0.0/24'],
                        timeout=0, probe=probe)
    assert out['ok'] and probed == ['127.0.0.1']
    assert _verify.summary(out) == 'refused: 127.0.0.1:1 (10.0.0.2:1 not checked: allowed by allow_from)'
    out = _verify.check([target(1, host='::1', if_listening=True)], 'open', timeout=0, probe=probe,
                        tcp6=lambda port: False)
    assert out['ok'] and out['results'][0]['detail'] == 'not checked: nothing listens on it over IPv6'


def test_listening_tcp6_reads_proc(tmp_path):
    proc = tmp_path / 'tcp6'
    proc.write_text('  sl  local_address rem_address   st\n'
                    '   0: 00000000000000000000000000000000:2BCB 00000000000000000000000000000000:0000 0A\n'
                    '   1: 00000000000000000000000000000000:0050 00000000000000000000000000000000:0000 01\n')
    assert _verify.listening_tcp6(11211, str(proc))
    assert not _verify.listening_tcp6(80, str(proc))  # state 01: established, not listening
    assert _verify.listening_tcp6(80, str(tmp_path / 'missing'))  # cannot tell: check it


def test_summary_without_targets():
    assert _verify.summary(_verify.check([], 'open')) == 'no published TCP port to check'
