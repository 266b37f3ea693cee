"""Issue 5: the finer controls of netfence.docker.blackout, each proven with real traffic.

On one lab host of each Docker series (20.10, 28) of the lab the environment selects:
``direction: both`` (the service can no longer open connections, to other machines or to the
host), ``ports`` (only the listed container ports are cut), ``allow_from`` (the listed sources
keep access), every ``reject_with`` (new connections and established ones), the localhost
*refused* behaviour (the SYN is refused, no accept-then-reset by docker-proxy) and a container on
the host network (cut by its port on every address of the host). Each blackout is restored and
the probe shows every path open again; no netfence rule is left behind.
"""
from __future__ import annotations

import contextlib
import json
import os
import re
import shlex
import subprocess
import sys
import time

import pytest

import netfence_lab  # tests/lab is put on sys.path by conftest.py
import netfence_lab_agent as agent
from nf_helpers import blackout_of, check_ok, held_host

SERIES = ('20.10', '28')
MEMCACHED = ('lab-memcached-1', 'lab-memcached-2')
BYSTANDER = 'lab-bystander-1'
HOSTNET = 'nf-hostnet-mc'
HOSTNET_PORT = 11411
EXTRA_PORT = 11299
MINE = ('memcached', 'bystander', HOSTNET)

# A TCP listener answering memcached's `version`, dual-stack, in whatever namespace it runs in.
LISTENER = r'''
import socket, sys, threading
s = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
s.bind(('::', 0)); s.listen(64)
print(s.getsockname()[1], flush=True)
def answer(c):
    with c:
        while c.recv(4096):
            c.sendall(b'VERSION netfence-test-listener\r\n')
while True:
    c, _ = s.accept()
    threading.Thread(target=answer, args=(c,), daemon=True).start()
'''


# --------------------------------------------------------------------------- helpers

def table(results: dict) -> str:
    return netfence_lab.render_table(results)


def diff_from(results: dict, want: dict[tuple[str, str], str], default_cut: tuple[str, ...] = (),
              cut_as: str = 'refused') -> dict:
    """Cells that differ from the expectation: ``want[(container, path)]``, else ``cut_as`` for
    every path but egress of the ``default_cut`` containers, else ok."""
    bad = {}
    for name, cells in results.items():
        for path, outcome in cells.items():
            expected = want.get((name, path), cut_as if name in default_cut and path != 'egress' else 'ok')
            if outcome != expected:
                bad[f'{name} {path}'] = f'{outcome} (want {expected})'
    return bad


def all_paths(host, timeout: float = 1.0) -> dict:
    return netfence_lab.probe(host, service='all', timeout=timeout)


def probe_in(netns: str | None, targets: dict[str, tuple[str, int]], timeout: float = 1.0) -> dict[str, dict]:
    """{key: {'outcome', 'elapsed', 'detail'}} of a memcached `version` exchange to each (addr, port),
    from the network namespace ``netns`` (a path; None = the root namespace)."""
    items = [{'key': k, 'host': a, 'port': p, 'timeout': timeout} for k, (a, p) in targets.items()]
    if netns is None:
        return agent.probe_many(items)
    res = subprocess.run(['nsenter', f'--net={netns}', sys.executable, '-I', netfence_lab.AGENT, 'probe'],
                         input=json.dumps(items), capture_output=True, text=True, timeout=timeout * 3 + 20,
                         check=False)
    return json.loads(res.stdout)


def direct_from_host(host, names=MEMCACHED + (BYSTANDER,), timeout: float = 1.0) -> dict[str, dict]:
    """From the host itself straight to every address of each container (no NAT, no proxy):
    {'container address': {'outcome', 'elapsed', 'detail'}}."""
    client = host.client()
    try:
        targets = {f'{name} {info["IPAddress"]}': (info['IPAddress'], 11211)
                   for name in names
                   for info in attrs(client, name)['NetworkSettings']['Networks'].values() if info['IPAddress']}
    finally:
        client.close()
    return probe_in(host.netns_path, targets, timeout)


def attrs(client, name: str) -> dict:
    cont = client.containers.get(name)
    cont.reload()
    return cont.attrs


def netns_of(client, name: str) -> str:
    return f'/proc/{attrs(client, name)["State"]["Pid"]}/ns/net'


@contextlib.contextmanager
def listener_in(netns: str):
    """A LISTENER in network namespace ``netns``; yields its port. Stopped by its pid."""
    proc = subprocess.Popen(['nsenter', f'--net={netns}', sys.executable, '-I', '-c', LISTENER],  # pylint: disable=consider-using-with
                            stdout=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True)
    try:
        port = int(proc.stdout.readline())
        yield port
    finally:
        proc.kill()
        proc.wait()
        proc.stdout.close()


def restore_mine(host, run_module, netfence_rules) -> None:
    for name in sorted({blackout_of(line) for _key, line in netfence_rules(host)} & set(MINE)):
        if name == HOSTNET:
            run_module(host, 'blackout', containers=[HOSTNET], state='absent', missing='ignore')
        else:
            run_module(host, 'blackout', service=name, state='absent')


@pytest.fixture(scope='module', params=SERIES, ids=lambda s: f'docker{s}')
def host(request, host_of_series, run_module, netfence_rules):
    yield from held_host(host_of_series(request.param), netfence_rules,
                         lambda lab_host: restore_mine(lab_host, run_module, netfence_rules))


@pytest.fixture()
def clean(host, run_module, netfence_rules):
    """Every path open and no netfence rule before; the same after (the blackout restored)."""
    assert not netfence_rules(host)
    assert not diff_from(before := all_paths(host), {}), table(before)
    yield host
    restore_mine(host, run_module, netfence_rules)
    assert not netfence_rules(host)
    assert not diff_from(after := all_paths(host), {}), f'not all open after the restore:\n{table(after)}'


def blackout(run_module, host, **args) -> dict:
    res = run_module(host, 'blackout', **args)
    check_ok(res, f'blackout {args}')
    return res


def restore(run_module, host, service='memcached') -> None:
    res = run_module(host, 'blackout', service=service, state='absent')
    check_ok(res, 'restore')
    assert res['changed']


# --------------------------------------------------------------------------- direction

def test_direction_both_cuts_the_service_own_connections(clean, run_module):
    host = clean
    client = host.client()
    try:
        gateway = attrs(client, 'lab-memcached-1')['NetworkSettings']['Networks']['lab_front']['Gateway']
        with listener_in(host.netns_path) as port, \
                netfence_lab.hold_connection(host, 'lab-memcached-1', 'egress') as held:
            assert held.established, held.initial

            def to_host() -> dict[str, str]:  # the containers -> the host itself (INPUT)
                return {name: probe_in(netns_of(client, name), {'h': (gateway, port)})['h']['outcome']
                        for name in MEMCACHED + (BYSTANDER,)}

            assert to_host() == dict.fromkeys(MEMCACHED + (BYSTANDER,), 'ok')
            blackout(run_module, host, service='memcached', direction='both')
            cut = all_paths(host)
            assert not diff_from(cut, {(n, 'egress'): 'refused' for n in MEMCACHED}, MEMCACHED), table(cut)
            assert to_host() == {'lab-memcached-1': 'refused', 'lab-memcached-2': 'refused', BYSTANDER: 'ok'}
            cut_held = held.exchange(timeout=2.0)
            assert cut_held['outcome'] in ('reset', 'closed') and cut_held['elapsed'] < 1.0, cut_held
            restore(run_module, host)
            assert to_host() == dict.fromkeys(MEMCACHED + (BYSTANDER,), 'ok')
    finally:
        client.close()


# --------------------------------------------------------------------------- ports

def test_ports_only_the_listed_ones_are_cut(clean, run_module):
    host = clean
    res = blackout(run_module, host, service='memcached', ports=['11212/tcp'])  # no container port 11212
    assert res['changed']
    opened = all_paths(host)
    assert not diff_from(opened, {}), f'11212/tcp is not served, yet:\n{table(opened)}'
    restore(run_module, host)

    client = host.client()
    try:
        m1 = client.containers.get('lab-memcached-1')
        started = m1.exec_run(['/usr/bin/memcached', '-p', str(EXTRA_PORT), '-U', '0', '-u', 'nobody', '-d',
                               '-P', '/tmp/nf-extra.pid'])
        assert started.exit_code == 0, started.output
        try:
            addr = attrs(client, 'lab-memcached-1')['NetworkSettings']['Networks']['lab_front']['IPAddress']
            peer = netns_of(client, 'lab-client-front')
            extra = {'11211': (addr, 11211), str(EXTRA_PORT): (addr, EXTRA_PORT)}
            assert {k: v['outcome'] for k, v in probe_in(peer, extra).items()} == {'11211': 'ok', str(EXTRA_PORT): 'ok'}
            blackout(run_module, host, service='memcached', ports=['11211/tcp'])
            cut = all_paths(host)
            assert not diff_from(cut, {}, MEMCACHED), table(cut)  # 11211 everywhere, published 11212 too
            assert {k: v['outcome'] for k, v in probe_in(peer, extra).items()} == {
                '11211': 'refused', str(EXTRA_PORT): 'ok'}
            restore(run_module, host)
        finally:
            m1.exec_run(['/bin/sh', '-c', 'kill "$(cat /tmp/nf-extra.pid)"; rm -f /tmp/nf-extra.pid'])
    finally:
        client.close()


# --------------------------------------------------------------------------- allow_from

def test_allow_from_keeps_the_listed_sources(clean, run_module):
    host = clean
    # The controller's side (root namespace, the host's gateway) keeps its access.
    blackout(run_module, host, service='memcached', allow_from=[f'{host.gateway}/32'])
    cut = all_paths(host)
    assert not diff_from(cut, {(n, 'external'): 'ok' for n in MEMCACHED}, MEMCACHED), table(cut)
    restore(run_module, host)

    # A CIDR covering the host's own address: the host keeps access through it.
    blackout(run_module, host, service='memcached', allow_from=[f'{host.addr}/32', '192.0.2.0/24'])
    cut = all_paths(host)
    assert not diff_from(cut, {(n, 'own_addr'): 'ok' for n in MEMCACHED}, MEMCACHED), table(cut)
    restore(run_module, host)

    # A peer container keeps access on its network; the other network stays cut.
    client = host.client()
    try:
        peer = attrs(client, 'lab-client-front')['NetworkSettings']['Networks']['lab_front']['IPAddress']
    finally:
        client.close()
    blackout(run_module, host, service='memcached', allow_from=[peer])
    cut = all_paths(host)
    assert not diff_from(cut, {(n, 'peer:lab_front'): 'ok' for n in MEMCACHED}, MEMCACHED), table(cut)
    restore(run_module, host)


# --------------------------------------------------------------------------- reject_with

# New connections, then established ones (a held connection, one exchange after the blackout).
# icmp: ICMP port-unreachable is only a soft error for an established TCP connection: it stalls
# (timeout), except through localhost, whose loopback rule is a TCP reset with icmp too.
REJECT_WITH = {
    'reset': ('refused', {}, ('reset', 'closed')),
    'icmp': ('refused', {'localhost4': ('reset', 'closed')}, ('timeout',)),
    'drop': ('timeout', {}, ('timeout',)),
}
HELD_PATHS = ('external', 'peer:lab_front', 'localhost4', 'own_addr')


@pytest.mark.parametrize('reject_with', list(REJECT_WITH))
def test_reject_with(clean, run_module, reject_with):
    host = clean
    new_outcome, held_by_path, held_outcomes = REJECT_WITH[reject_with]
    held = {path: netfence_lab.hold_connection(host, 'lab-memcached-2', path) for path in HELD_PATHS}
    try:
        assert all(conn.established for conn in held.values()), {p: c.initial for p, c in held.items()}
        blackout(run_module, host, service='memcached', reject_with=reject_with)
        after = {path: conn.exchange(timeout=2.0) for path, conn in held.items()}
        detail = netfence_lab.probe_detail(host, service='all', timeout=1.5)
        direct = direct_from_host(host, timeout=1.5)
    finally:
        for conn in held.values():
            conn.close()
    cut = {n: {p: c['outcome'] for p, c in cells.items()} for n, cells in detail.items()}
    assert not diff_from(cut, {}, MEMCACHED, cut_as=new_outcome), table(cut)
    # The host straight to the containers' addresses (the host path without NAT).
    assert {k: v['outcome'] for k, v in direct.items()} == {
        k: new_outcome if k.split()[0] in MEMCACHED else 'ok' for k in direct}, direct
    if new_outcome == 'refused':  # at once, on every path (localhost6 and the direct one included)
        slow = {f'{n} {p}': c['elapsed'] for n, cells in detail.items() if n in MEMCACHED
                for p, c in cells.items() if p != 'egress' and c['elapsed'] > 0.5}
        slow.update({k: c['elapsed'] for k, c in direct.items() if c['elapsed'] > 0.5})
        assert not slow, slow
    assert {p: r['outcome'] for p, r in after.items()
            if r['outcome'] not in held_by_path.get(p, held_outcomes)} == {}, after
    if reject_with == 'reset':
        assert all(r['elapsed'] < 1.0 for r in after.values()), after
    restore(run_module, host)


# --------------------------------------------------------------------------- localhost

def test_localhost_is_refused_not_accepted_then_reset(clean, run_module, netfence_rules):
    host = clean
    blackout(run_module, host, service='memcached')
    detail = netfence_lab.probe_detail(host, service='memcached', paths=['localhost4', 'localhost6'])
    for name in MEMCACHED:
        for path in ('localhost4', 'localhost6'):
            cell = detail[name][path]
            # refused = connect() failed with ECONNREFUSED: no docker-proxy accept before the reset
            assert cell['outcome'] == 'refused' and 'ConnectionRefusedError' in cell['detail'], (name, path, cell)
            assert cell['elapsed'] < 0.5, (name, path, cell)
    # Without the loopback rules (deleted by hand), docker-proxy accepts and then drops the client.
    for key, line in netfence_rules(host):
        if 'p=loopback' in line:
            tool = 'iptables' if key.startswith('ipv4') else 'ip6tables'
            tool += '-legacy' if key.endswith('legacy') else ''
            netfence_lab.host_exec(host, [tool, '-w', '-D'] + shlex.split(line)[1:])
    bare = netfence_lab.probe_detail(host, service='memcached', paths=['localhost4', 'localhost6'])
    for name in MEMCACHED:
        for path in ('localhost4', 'localhost6'):
            assert bare[name][path]['outcome'] in ('reset', 'closed'), (name, path, bare[name][path])
    repair = blackout(run_module, host, service='memcached')
    readded = [line for lines in repair['added'].values() for line in lines if 'p=loopback' in line]
    assert repair['changed'] and len(readded) == 4, repair['added']  # 2 ports x IPv4/IPv6
    again = netfence_lab.probe(host, service='memcached', paths=['localhost4', 'localhost6'])
    assert again == {name: {'localhost4': 'refused', 'localhost6': 'refused'} for name in MEMCACHED}, again
    restore(run_module, host)


# --------------------------------------------------------------------------- host network

def hostnet_paths(host, client) -> dict[str, tuple[str | None, str, int]]:
    """Paths to a service on the host network: {path: (netns or None, address, port)}."""
    paths = {'external': (None, host.addr, HOSTNET_PORT),
             'localhost4': (host.netns_path, '127.0.0.1', HOSTNET_PORT),
             'localhost6': (host.netns_path, '::1', HOSTNET_PORT),
             'own_addr': (host.netns_path, host.addr, HOSTNET_PORT)}
    if host.ipv6:
        paths['external6'] = (None, host.addr6, HOSTNET_PORT)
        paths['own_addr6'] = (host.netns_path, host.addr6, HOSTNET_PORT)
    for name, net in (('lab-client-front', 'lab_front'), ('lab-client-back', 'lab_back')):
        gateway = attrs(client, name)['NetworkSettings']['Networks'][net]['Gateway']
        paths[f'peer:{net}'] = (netns_of(client, name), gateway, HOSTNET_PORT)
    return paths


def probe_hostnet(paths: dict) -> dict[str, str]:
    out = {}
    for netns in {ns for ns, _a, _p in paths.values()}:
        targets = {k: (a, p) for k, (ns, a, p) in paths.items() if ns == netns}
        out.update({k: v['outcome'] for k, v in probe_in(netns, targets).items()})
    return dict(sorted(out.items()))


def same_netns(path_a: str, path_b: str) -> bool:
    a, b = os.stat(path_a), os.stat(path_b)
    return (a.st_dev, a.st_ino) == (b.st_dev, b.st_ino)


@contextlib.contextmanager
def hostnet_service(host, client):
    """A container on the host network, and memcached listening on HOSTNET_PORT in the host.

    Where the engine puts the container in the lab host's namespace (Docker 20.10 in the lab:
    libnetwork's host sandbox is the daemon's namespace), memcached runs in the container. Docker
    28 leaves a host-network container in the namespace of containerd's shim, which in the lab
    is the machine's root namespace (one containerd per lab, outside the hosts): there the
    container only sleeps (nothing may listen in the root namespace) and the same memcached
    binary listens in the lab host's namespace as its stand-in. The module only sees the
    container (network mode host) and the host's addresses; the rules are the same.
    """
    with contextlib.suppress(Exception):
        client.containers.get(HOSTNET).remove(force=True)
    cont = client.containers.run(netfence_lab.IMAGE, netfence_lab.SLEEP_CMD, name=HOSTNET, network_mode='host',
                                 detach=True, stop_signal='SIGKILL')
    stand_in = None
    try:
        inside = same_netns(netns_of(client, HOSTNET), host.netns_path)
        memcached = ['/usr/bin/memcached', '-p', str(HOSTNET_PORT), '-U', '0', '-u', 'nobody']
        if inside:
            started = cont.exec_run(memcached + ['-d'])
            assert started.exit_code == 0, started.output
        else:
            stand_in = subprocess.Popen(['nsenter', f'--net={host.netns_path}'] + memcached,  # pylint: disable=consider-using-with
                                        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        yield 'container' if inside else 'stand-in in the host namespace'
    finally:
        with contextlib.suppress(Exception):
            cont.remove(force=True)
        if stand_in is not None:
            stand_in.kill()
            stand_in.wait()


def test_host_network_container(clean, run_module):
    host = clean
    client = host.client()
    with hostnet_service(host, client) as listener:
        paths = hostnet_paths(host, client)
        deadline = time.monotonic() + 10
        while set((opened := probe_hostnet(paths)).values()) != {'ok'}:  # memcached starting
            assert time.monotonic() < deadline, opened
            time.sleep(0.2)

        nope = run_module(host, 'blackout', containers=[HOSTNET])
        assert nope.get('failed') and f'container {HOSTNET} uses the host network: give ports:' in nope['msg'], nope
        nope = run_module(host, 'blackout', containers=[HOSTNET], ports=[f'{HOSTNET_PORT}/tcp'], direction='both')
        assert nope.get('failed') and 'direction both is not possible' in nope['msg'], nope

        res = blackout(run_module, host, containers=[HOSTNET], ports=[f'{HOSTNET_PORT}/tcp'])
        assert res['changed'] and res['covered'][0]['paths'] == ['hostnet']
        lines = [line for v in res['rules'].values() for line in v]
        assert lines and all(re.search(r' -d [0-9a-f.:]+/(32|128) ', line) for line in lines)
        cut = probe_hostnet(paths)
        assert set(cut.values()) == {'refused'}, cut
        others = all_paths(host)
        assert not diff_from(others, {}), f'other services touched:\n{table(others)}'
        info = run_module(host, 'blackout_info', name=HOSTNET)
        check_ok(info, 'blackout_info')
        assert [(b['state'], b['paths'], b['drift']) for b in info['blackouts']] == [
            ('active', ['hostnet'], {'stale': {}, 'uncovered': {}, 'taken': {}})], info['blackouts']
        again = blackout(run_module, host, containers=[HOSTNET], ports=[f'{HOSTNET_PORT}/tcp'])
        assert again['changed'] is False

        # A new bridge network gives the host a new address: uncovered until a run adds it.
        net = client.networks.create('nf-hostnet-extra', driver='bridge')
        try:
            net.reload()
            gateway = net.attrs['IPAM']['Config'][0]['Gateway'].split('/')[0]
            drift = run_module(host, 'blackout_info', name=HOSTNET)['blackouts'][0]
            assert (drift['state'], drift['drift']['uncovered']) == ('drifted', {HOSTNET: [gateway]}), drift
            grown = blackout(run_module, host, containers=[HOSTNET], ports=[f'{HOSTNET_PORT}/tcp'])
            assert grown['changed'] and {line.split()[1] for line in grown['added']['ipv4']
                                         if f'-d {gateway}/32 ' in line} == {'INPUT', 'OUTPUT'}, grown['added']
        finally:
            net.remove()
        drift = run_module(host, 'blackout_info', name=HOSTNET)['blackouts'][0]
        assert (drift['state'], drift['drift']['stale']) == ('drifted', {HOSTNET: [gateway]}), drift
        shrunk = blackout(run_module, host, containers=[HOSTNET], ports=[f'{HOSTNET_PORT}/tcp'])
        assert shrunk['changed'] and all(f'-d {gateway}/32 ' in line for line in shrunk['removed']['ipv4'])
        assert run_module(host, 'blackout_info', name=HOSTNET)['blackouts'][0]['state'] == 'active'
        assert set(probe_hostnet(paths).values()) == {'refused'}

        gone = run_module(host, 'blackout', containers=[HOSTNET], state='absent')
        check_ok(gone, 'restore')
        assert gone['changed']
        assert set(probe_hostnet(paths).values()) == {'ok'}, listener
    client.close()
