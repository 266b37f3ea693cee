"""Issue 16: ``hold: true`` keeps a blackout on a service whose containers restart, are recreated
or scale up, with no Ansible run, proven with real traffic on Docker 20.10 and 28.

- recreate: lab-memcached-2 removed, its old address taken by another container, a new
  lab-memcached-2 (same compose labels) started with a new address → refused on every path, with
  no Ansible run; the time from its start (``State.StartedAt``) to the cut per path is printed
  (``-s``). The 1 s target is measured by ``make bench`` (section 7), not asserted here.
- scale-up: a new replica lab-memcached-3 (compose labels of the service) → cut the same way.
- engine restart: dockerd stopped and started again (the lab re-binds the new socket into the
  host's mount namespace, as a real host's path simply names the new socket), the deployment
  started again → the watcher reconnected and the service is cut, the bystander served.
- restore: no watcher left; a recreated replica is served.
- expiry (``expires: 20s``): the watcher is gone after the deadline; a recreated replica is
  served (nothing re-applied).

Every test leaves the host as it found it: the deployment put back (the lab's own deploy when
addresses moved), firewall identical, no netfence rule, no watcher process.
"""
from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import signal
import subprocess
import sys
import time

import pytest

import netfence_lab  # tests/lab is put on sys.path by conftest.py
from nf_helpers import check_ok, wait_quiet

SERIES = ('20.10', '28')
MEMCACHED = ('lab-memcached-1', 'lab-memcached-2')
TAKER = 'nf-hold-taker'
PROBE_SECONDS = 20.0  # how long the probers and the probe matrix wait for the cut (a bound, not the target)
QUIET = 1.5  # after a recreate that must NOT be cut (no hold): time a watcher would have had to re-apply
FIGURES: list[str] = []

PROBER = r'''
import socket, sys, time
addr, port = sys.stdin.readline().split()   # started before the container: no start-up delay
port, until = int(port), time.time() + float(sys.argv[1])
refused = 0
while time.time() < until and refused < 5:
    s = socket.socket(socket.AF_INET6 if ':' in addr else socket.AF_INET)
    s.settimeout(0.2)
    t = time.time()
    try:
        s.connect((addr, port)); out = 'ok'; refused = 0
    except ConnectionRefusedError:
        out = 'refused'; refused += 1
    except OSError as exc:
        out = type(exc).__name__; refused = 0
    finally:
        s.close()
    print('%.4f %s' % (t, out), flush=True)
    time.sleep(0.005)
'''


# --------------------------------------------------------------------------- helpers

def watchers(host) -> list[int]:
    """Pids of hold watchers (comm netfence-hold) in the host's network namespace."""
    want = os.stat(host.netns_path).st_ino
    found = []
    for entry in os.listdir('/proc'):
        if not entry.isdigit():
            continue
        try:
            with open(f'/proc/{entry}/comm', encoding='utf-8') as handle:
                if handle.read().strip() != 'netfence-hold':
                    continue
            if os.stat(f'/proc/{entry}/ns/net').st_ino == want:
                found.append(int(entry))
        except OSError:
            continue
    return sorted(found)


def hold_files(host) -> list[str]:
    folder = os.path.join(host.lib_dir, 'netfence-state', 'hold')
    return sorted(os.listdir(folder)) if os.path.isdir(folder) else []


def pid_file_data(host) -> dict:
    (name,) = [f for f in hold_files(host) if f.endswith('.pid')]
    with open(os.path.join(host.lib_dir, 'netfence-state', 'hold', name), encoding='utf-8') as handle:
        return json.load(handle)


def epoch(text: str) -> float:
    """Docker's StartedAt (RFC 3339, nanoseconds) → epoch seconds."""
    main, _dot, frac = text.rstrip('Z').partition('.')
    base = dt.datetime.strptime(main, '%Y-%m-%dT%H:%M:%S').replace(tzinfo=dt.timezone.utc).timestamp()
    return base + float('0.' + (frac or '0'))


def address(client, name: str, network: str = 'lab_front') -> str:
    cont = client.containers.get(name)
    return cont.attrs['NetworkSettings']['Networks'][network]['IPAddress']


def labels_of(client, name: str) -> dict:
    return dict(client.containers.get(name).attrs['Config']['Labels'])


def client_netns(client, name: str = 'lab-client-front') -> str:
    return f'/proc/{client.containers.get(name).attrs["State"]["Pid"]}/ns/net'


def start_prober(netns: str, seconds: float = PROBE_SECONDS) -> subprocess.Popen:
    """A prober in ``netns``, waiting for ``addr port`` on its stdin."""
    return subprocess.Popen(['nsenter', f'--net={netns}', sys.executable, '-I', '-c', PROBER, str(seconds)],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)


def first_refused(proc: subprocess.Popen) -> tuple[float | None, bool]:
    """(time of the first refusal after which every attempt was refused, whether an attempt was
    ever served: the prober may only have started after the cut)."""
    out, _err = proc.communicate(timeout=30)
    rows = [line.split() for line in out.splitlines() if line.strip()]
    first = None
    served = False
    for stamp, outcome in rows:
        if outcome == 'refused':
            first = float(stamp) if first is None else first
        else:
            first = None
            served = served or outcome == 'ok'
    return first, served


def expect(results: dict, cut: tuple[str, ...]) -> dict:
    bad = {}
    for name, cells in results.items():
        for path, outcome in cells.items():
            want = 'refused' if name in cut and path != 'egress' else 'ok'
            if outcome != want:
                bad[f'{name} {path}'] = f'{outcome} (want {want})'
    return bad


def table(results: dict) -> str:
    return netfence_lab.render_table(results)


def run_memcached(client, name: str, number: int, port: int, template: dict):
    labels = dict(template, **{'com.docker.compose.container-number': str(number)})
    return client.containers.run(netfence_lab.IMAGE, netfence_lab.MEMCACHED_CMD, name=name, hostname=name,
                                 network='lab_front', labels=labels, ports={'11211/tcp': port}, detach=True)


def probe_until_cut(host, cut: tuple[str, ...]) -> dict:
    """The lab's probe matrix, read again until every path of ``cut`` is refused and every other
    container served (or PROBE_SECONDS passed): the last matrix read."""
    deadline = time.monotonic() + PROBE_SECONDS
    while True:
        every = netfence_lab.probe(host, service='all')
        if not expect(every, cut) or time.monotonic() > deadline:
            return every
        time.sleep(0.2)


def measure(host, client, name: str, port: int, what: str, action) -> float:
    """Probers ready in the host's and a peer's namespace, ``action()`` starts container ``name``,
    the probers get its address at once; the probe matrix read until every path is cut. The time
    from its start (State.StartedAt) to the cut per path; ``<=`` when a prober only ever saw it
    refused (the cut came before the first attempt)."""
    probers = {'host': start_prober(host.netns_path), 'peer': start_prober(client_netns(client)),
               'localhost': start_prober(host.netns_path)}
    try:
        action()
        cont = client.containers.get(name)
        addr = address(client, name)
        for path, proc in probers.items():
            proc.stdin.write('%s %d\n' % (('127.0.0.1', port) if path == 'localhost' else (addr, 11211)))
            proc.stdin.flush()
    except BaseException:
        for proc in probers.values():
            proc.kill()
            proc.wait()
        raise
    started = epoch(cont.attrs['State']['StartedAt'])
    every = probe_until_cut(host, MEMCACHED + (name,))
    cuts = {}
    for path, proc in probers.items():
        first, served = first_refused(proc)
        assert first is not None, f'{what}: {path} path to {name} ({addr}) never refused in {PROBE_SECONDS} s'
        cuts[path] = (first - started, served)
    lag = pid_file_data(host).get('last', {}).get('lag_ms')
    FIGURES.append('%s Docker %s: %s; watcher: %s ms from the event to the end of its run' % (
        what, host.series, ', '.join('%s %s%.3f s' % (p, '' if s else '<= ', d) for p, (d, s) in cuts.items()),
        lag))
    print(FIGURES[-1])
    with open('/tmp/netfence-hold-figures.txt', 'a', encoding='utf-8') as handle:
        handle.write(FIGURES[-1] + '\n')
    assert not expect(every, MEMCACHED + (name,)), f'{what}: not every path cut {PROBE_SECONDS} s after the start:\n' + \
        table(every)
    # Only a path seen served and then refused measures the cut; otherwise the figure is when the
    # prober first tried (the cut was earlier) and the probe of every path above is the proof.
    # The figures are printed, not asserted: the 1 s target is measured by `make bench` (section 7).
    return max(d for d, _s in cuts.values())


def put_back(host, client, before: dict) -> None:
    """The deployment as the lab made it: same containers on the same addresses (the engine gives
    the lowest free address: the extra containers go, the moved replica is created again); the
    lab's own deploy only when that fails (new networks: the firewall then differs)."""
    for extra in (TAKER, 'lab-memcached-3'):
        with contextlib.suppress(Exception):
            client.containers.get(extra).remove(force=True)
    for name, addr in sorted(before.items()):
        if _exists(client, name) and address(client, name) == addr:
            continue
        labels = labels_of(client, name)
        port = {'lab-memcached-1': 11211, 'lab-memcached-2': 11212}.get(name)
        if port is None or name == 'lab-memcached-1':
            break  # not one this test moves: the lab deploys again below
        client.containers.get(name).remove(force=True)
        run_memcached(client, name, int(labels['com.docker.compose.container-number']), port, labels)
    now = {name: address(client, name) if _exists(client, name) else None for name in before}
    if now != before:
        netfence_lab._deploy(host)  # pylint: disable=protected-access


def same_firewall(a: dict, b: dict) -> dict:
    """Tables that differ other than by the order of Docker's own rules (a restarted or recreated
    container's DNAT/ACCEPT rules move to the end of Docker's chains)."""
    return {key: (sorted(set(a[key]) - set(b.get(key, []))), sorted(set(b.get(key, [])) - set(a[key])))
            for key in a if sorted(a[key]) != sorted(b.get(key, []))}


def _exists(client, name):
    try:
        return client.containers.get(name).attrs['State']['Running']
    except Exception:  # pylint: disable=broad-except
        return False


def recreate_with_new_address(client, name: str = 'lab-memcached-2', port: int = 11212) -> tuple[str, str]:
    """docker rm -f NAME; another container takes its address; NAME again, same compose labels."""
    labels = labels_of(client, name)
    old = address(client, name)
    client.containers.get(name).remove(force=True)
    client.containers.run(netfence_lab.IMAGE, netfence_lab.MEMCACHED_CMD, name=TAKER, hostname=TAKER,
                          network='lab_front', detach=True,
                          labels={'com.docker.compose.project': netfence_lab.PROJECT,
                                  'com.docker.compose.service': 'holdtaker', netfence_lab.ROLE_LABEL: 'service'})
    run_memcached(client, name, int(labels.get('com.docker.compose.container-number', '2')), port, labels)
    new = address(client, name)
    assert new != old, f'{name} got its old address {old} back'
    return old, new


# --------------------------------------------------------------------------- fixtures

@pytest.fixture(scope='module', params=SERIES, ids=lambda s: f'docker{s}')
def host(request, host_of_series, netfence_rules):
    lab_host = host_of_series(request.param)
    wait_quiet(lab_host, netfence_rules)
    yield lab_host


@pytest.fixture()
def clean(host, run_module, netfence_rules, firewall_snapshot):
    """The host as found: no rule of ours, no watcher; afterwards the same, firewall identical."""
    client = host.client()
    before = {name: address(client, name) for name in MEMCACHED + ('lab-bystander-1',)}
    snapshot = firewall_snapshot(host)
    assert not netfence_rules(host) and not watchers(host)
    try:
        yield host, client
    finally:
        for name in ('memcached',):
            run_module(host, 'blackout', service=name, state='absent')
        put_back(host, client, before)
        client.close()
    assert not watchers(host), 'a hold watcher is left'
    assert not hold_files(host), hold_files(host)
    assert not netfence_rules(host)
    differs = same_firewall(firewall_snapshot(host), snapshot)
    assert not differs, f'the firewall differs from before the test (now, before): {differs}'


def blackout(run_module, host, **extra):
    res = run_module(host, 'blackout', service='memcached', hold=True, **extra)
    check_ok(res, 'blackout hold=true')
    assert res['changed'] and res['hold']['running'] and res['hold']['started'], res['hold']
    assert watchers(host) == [res['hold']['pid']]
    return res


# --------------------------------------------------------------------------- tests

def test_recreated_replica_is_cut_without_an_ansible_run(clean, run_module):
    host, client = clean
    res = blackout(run_module, host)
    again = run_module(host, 'blackout', service='memcached', hold=True)
    assert again['changed'] is False and again['hold']['pid'] == res['hold']['pid']  # no second watcher
    assert len(watchers(host)) == 1
    measure(host, client, 'lab-memcached-2', 11212, 'recreate', lambda: recreate_with_new_address(client))
    assert netfence_lab.probe(host, service='holdtaker')[TAKER]['peer:lab_front'] == 'ok'  # the old address: served
    info = run_module(host, 'blackout_info', name='memcached')
    (report,) = info['blackouts']
    assert report['state'] == 'active' and report['hold'] == {'enabled': True, 'running': True,
                                                              'pid': res['hold']['pid']}, report


def test_scale_up_is_cut(clean, run_module):
    host, client = clean
    blackout(run_module, host)
    labels = labels_of(client, 'lab-memcached-2')
    measure(host, client, 'lab-memcached-3', 11213, 'scale-up',
            lambda: run_memcached(client, 'lab-memcached-3', 3, 11213, labels))


def test_dead_watcher_is_restarted_by_the_next_run(clean, run_module):
    host, _client = clean
    res = blackout(run_module, host)
    os.kill(res['hold']['pid'], signal.SIGKILL)
    deadline = time.monotonic() + 10
    while watchers(host) and time.monotonic() < deadline:
        time.sleep(0.05)
    info = run_module(host, 'blackout_info', name='memcached')
    assert info['blackouts'][0]['hold'] == {'enabled': True, 'running': False, 'pid': None}
    again = run_module(host, 'blackout', service='memcached', hold=True)
    check_ok(again, 'second run')
    assert again['changed'] is True and again['hold']['started'] and not again['added']['ipv4']
    assert watchers(host) == [again['hold']['pid']]


def _restart_engine(host, client) -> None:
    """Stop dockerd (its containers stop), start it again, make the host's /var/run/docker.sock
    name the new socket in the sshd's (and the watcher's) mount namespace, start the deployment."""
    with open(os.path.join(host.run_dir, 'dockerd.spawn.pid'), encoding='ascii') as handle:
        pid = int(handle.read().strip())
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + 60
    while os.path.exists(f'/proc/{pid}') and time.monotonic() < deadline:
        time.sleep(0.1)
    time.sleep(1.0)  # the watcher meets a dead socket: refused, backoff
    netfence_lab._start_dockerd(host)  # pylint: disable=protected-access
    netfence_lab._wait_dockerd(host)  # pylint: disable=protected-access
    with open(os.path.join(host.run_dir, 'sshd.pid'), encoding='ascii') as handle:
        sshd = int(handle.read().strip())
    # The old bind mount names the deleted socket: a bind over it fails, unmount it first.
    subprocess.run(['nsenter', f'--mount=/proc/{sshd}/ns/mnt', 'sh', '-c', 'umount "$2" && mount --bind "$1" "$2"',
                    'rebind', host.docker_sock, netfence_lab.DOCKER_SOCK_PLACEHOLDER], check=True)
    fresh = host.client()
    try:
        for spec in netfence_lab.CONTAINERS:
            fresh.containers.get(spec['name']).start()
    finally:
        fresh.close()


def test_engine_restart_watcher_reconnects_and_reapplies(clean, run_module):
    host, client = clean
    res = blackout(run_module, host)
    _restart_engine(host, client)
    started = max(epoch(c.attrs['State']['StartedAt']) for c in (client.containers.get(n) for n in MEMCACHED))
    every = probe_until_cut(host, MEMCACHED)
    assert not expect(every, MEMCACHED), 'not cut after the engine restart:\n' + table(every)
    assert watchers(host) == [res['hold']['pid']]
    FIGURES.append('engine restart Docker %s: every path refused (probe matrix) %.1f s after the last start; '
                   'watcher: %s' % (host.series, time.time() - started,
                                    pid_file_data(host).get('last', {}).get('message')))
    print(FIGURES[-1])
    # A recreate after the restart is cut too.
    assert pid_file_data(host)['connections'] >= 2  # it reconnected
    measure(host, client, 'lab-memcached-2', 11212, 'recreate after engine restart',
            lambda: recreate_with_new_address(client))


def test_restore_stops_the_watcher_and_a_recreated_replica_is_served(clean, run_module):
    host, client = clean
    blackout(run_module, host)
    res = run_module(host, 'blackout', service='memcached', state='absent')
    check_ok(res, 'restore')
    assert res['changed'] and res['hold']['stopped'] is True
    assert not watchers(host) and not hold_files(host)
    recreate_with_new_address(client)
    time.sleep(QUIET)
    every = netfence_lab.probe(host, service='all')
    assert not expect(every, ()), table(every)


def test_expiry_ends_the_watcher_and_nothing_is_reapplied(clean, run_module, netfence_rules):
    host, client = clean
    res = blackout(run_module, host, expires='20s')
    deadline = epoch(res['expires'])
    time.sleep(max(0.0, deadline - time.time()))
    bound = time.monotonic() + 10  # it ends at the deadline (SIGALRM); a bound for a loaded machine
    while (watchers(host) or hold_files(host)) and time.monotonic() < bound:
        time.sleep(0.1)
    FIGURES.append('expiry Docker %s: watcher gone %.2f s after the deadline' % (host.series, time.time() - deadline))
    print(FIGURES[-1])
    assert not watchers(host), 'the watcher outlived the deadline by 10 s'
    assert not hold_files(host)
    inert = netfence_rules(host)
    recreate_with_new_address(client)
    time.sleep(QUIET)
    every = netfence_lab.probe(host, service='all')
    assert not expect(every, ()), table(every)
    assert netfence_rules(host) == inert  # nothing re-applied
    info = run_module(host, 'blackout_info', name='memcached')
    assert info['blackouts'][0]['hold'] == {'enabled': False, 'running': False, 'pid': None}


def test_zz_figures():
    """Print the measured figures together (pytest -s)."""
    print('\n'.join(['', 'time to cut (hold):'] + FIGURES))
