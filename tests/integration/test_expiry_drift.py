"""Issue 5: blackouts that lift themselves (``expires``) and repair drift, proven with real traffic.

On one lab host of each Docker series (20.10, 28) of the lab the environment selects:

- ``expires: 20s``: every path cut, every path open again after the deadline with nothing run
  in between (the kernel's ``-m time --datestop``), then the next run of the module (another
  blackout) removes the inert rules.
- the controller dies mid-play (``ansible-playbook`` killed by pid after the blackout task, while
  the play pauses): the expiry still lifts the blackout.
- drift: lab-memcached-2 is stopped, another container (nf-drift-taker) is started and gets its
  address, lab-memcached-2 is started again with a new one. blackout_info names the stale and
  uncovered addresses and the container that took the old one; a new run repairs (changed,
  every path of memcached cut, the other container reachable), a further run changes nothing.
  The deployment is put back as the lab made it (same addresses).

Every test leaves the host without any netfence rule.
"""
from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

import netfence_lab  # tests/lab is put on sys.path by conftest.py
from nf_helpers import blackout_of, check_ok, wait_quiet

SERIES = ('20.10', '28')
MEMCACHED = ('lab-memcached-1', 'lab-memcached-2')
BYSTANDER = 'lab-bystander-1'
TAKER = 'nf-drift-taker'
MINE = ('memcached', 'bystander')
DATESTOP_RE = re.compile(r'--datestop (\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)')


# --------------------------------------------------------------------------- helpers

def utc_epoch(text: str) -> float:
    """'2026-11-27T02:40:39Z' or '2026-11-27T02:40:39' (UTC) → epoch seconds."""
    return time.mktime(time.strptime(text.rstrip('Z'), '%Y-%m-%dT%H:%M:%S')) - time.timezone


def ansible_playbook() -> str:
    """ansible-playbook of the toolchain running the tests, else from PATH."""
    candidate = Path(sys.executable).parent / 'ansible-playbook'
    return str(candidate) if candidate.exists() else (shutil.which('ansible-playbook') or 'ansible-playbook')


def sleep_until(epoch: float) -> None:
    delay = epoch - time.time()
    if delay > 0:
        time.sleep(delay)


def table(results: dict) -> str:
    return netfence_lab.render_table(results)


def expect(results: dict, cut: tuple[str, ...], cut_as: str = 'refused') -> dict:
    """The cells that differ from: every path of the ``cut`` containers (egress aside) ``cut_as``,
    everything else ok."""
    bad = {}
    for name, cells in results.items():
        for path, outcome in cells.items():
            want = cut_as if name in cut and path != 'egress' else 'ok'
            if outcome != want:
                bad[f'{name} {path}'] = f'{outcome} (want {want})'
    return bad


def all_paths(host) -> dict:
    return netfence_lab.probe(host, service='all')


@pytest.fixture(scope='module', params=SERIES, ids=lambda s: f'docker{s}')
def host(request, host_of_series, run_module, netfence_rules):
    """A lab host of each Docker series, quiet before, left without any netfence rule after."""
    lab_host = host_of_series(request.param)
    wait_quiet(lab_host, netfence_rules)
    yield lab_host
    names = sorted({blackout_of(line) for _key, line in netfence_rules(lab_host)} & set(MINE))
    for name in names:
        run_module(lab_host, 'blackout', service=name, state='absent')
    leftovers = netfence_rules(lab_host)
    assert not leftovers, f'netfence rules left on {lab_host.name}: {leftovers}'


@pytest.fixture()
def clean(host, run_module, netfence_rules):
    """Each test starts and ends with no netfence rule on the host."""
    assert not netfence_rules(host)
    yield host
    names = {blackout_of(line) for _key, line in netfence_rules(host)}
    # An expired blackout whose inert rules are gone is still in the host's state record: lift it too, so
    # that the next test finds the host as this one did (record included).
    info = run_module(host, 'blackout_info')
    names |= {b['name'] for b in info.get('blackouts') or []}
    for name in sorted(names & set(MINE)):
        run_module(host, 'blackout', service=name, state='absent')
    assert not netfence_rules(host)


# --------------------------------------------------------------------------- expires

def test_expires_lifts_the_blackout_without_any_run(clean, run_module, netfence_rules):
    host = clean
    assert not expect(before := all_paths(host), ()), table(before)
    res = run_module(host, 'blackout', service='memcached', expires='20s')
    check_ok(res, 'blackout expires=20s')
    assert res['changed'] and res['expires'] and res['since']
    deadline = utc_epoch(res['expires'])
    assert deadline - utc_epoch(res['since']) == 20
    added = sorted(line for lines in res['added'].values() for line in lines)
    assert added and all('--datestop %s' % res['expires'].rstrip('Z') in line for line in added)

    during = all_paths(host)
    assert not expect(during, MEMCACHED), table(during)
    sleep_until(deadline - 3)
    late = all_paths(host)  # 3 s before the deadline: still cut
    assert not expect(late, MEMCACHED), table(late)

    # The kernel stops matching once the clock is past --datestop (same machine, same clock).
    sleep_until(deadline + 1.5)
    after = all_paths(host)
    assert not expect(after, ()), f'not open after the deadline:\n{table(after)}'
    inert = netfence_rules(host)
    assert len(inert) == len(added), 'nothing ran: the inert rules are still there'
    info = run_module(host, 'blackout_info', name='memcached')
    check_ok(info, 'blackout_info')
    assert [(b['name'], b['state'], b['expires']) for b in info['blackouts']] == [
        ('memcached', 'expired', res['expires'])]

    # The next run of the module, for another blackout, removes them.
    other = run_module(host, 'blackout', service='bystander', state='absent')
    check_ok(other, 'another blackout')
    assert other['changed'] is True
    assert sorted(line for lines in other['removed'].values() for line in lines) == added
    assert not netfence_rules(host)
    assert not expect(final := all_paths(host), ()), table(final)
    again = run_module(host, 'blackout', service='bystander', state='absent')
    assert again['changed'] is False


# --------------------------------------------------------------------------- controller dies

def _descendants(pid: int) -> list[int]:
    """Every process below ``pid`` (from /proc), children first found first."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir('/proc'):
        if not entry.isdigit():
            continue
        try:
            with open(f'/proc/{entry}/stat', encoding='utf-8') as handle:
                ppid = int(handle.read().rsplit(')', 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        children.setdefault(ppid, []).append(int(entry))
    found, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def test_controller_killed_mid_play_expiry_still_lifts(clean, inventory, ansible_env, netfence_rules,
                                                       tmp_path, run_module):
    host = clean
    play = [{'name': 'blackout then wait', 'hosts': host.name, 'gather_facts': False, 'tasks': [
        {'name': 'blackout memcached for 15s', 'netfence.docker.blackout': {'service': 'memcached', 'expires': '15s'}},
        {'name': 'long pause', 'ansible.builtin.pause': {'seconds': 600}},
    ]}]
    playbook = tmp_path / 'killed.yml'
    playbook.write_text(json.dumps(play), encoding='utf-8')
    log = tmp_path / 'killed.log'
    env = dict(ansible_env, ANSIBLE_STDOUT_CALLBACK='default', PYTHONUNBUFFERED='1')
    with open(log, 'w', encoding='utf-8') as out:
        proc = subprocess.Popen(  # pylint: disable=consider-using-with
            [ansible_playbook(), '-i', inventory, str(playbook)],
            stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env, cwd=str(tmp_path))
    killed = []
    try:
        deadline = time.monotonic() + 120
        while 'TASK [long pause]' not in log.read_text(encoding='utf-8'):
            assert proc.poll() is None, f'ansible-playbook ended early:\n{log.read_text(encoding="utf-8")}'
            assert time.monotonic() < deadline, f'the play did not reach the pause:\n{log.read_text()}'
            time.sleep(0.2)
        assert 'changed: [%s]' % host.name in log.read_text(encoding='utf-8'), log.read_text(encoding='utf-8')
        # The controller dies: SIGKILL to ansible-playbook, then to what it left (by pid).
        workers = _descendants(proc.pid)
        os.kill(proc.pid, signal.SIGKILL)
        killed.append(proc.pid)
        proc.wait(timeout=10)
        for pid in workers:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
                killed.append(pid)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    rules = netfence_rules(host)
    stops = {m.group(1) for _key, line in rules for m in [DATESTOP_RE.search(line)] if m}
    assert rules and len(stops) == 1, rules
    stop = utc_epoch(stops.pop())
    during = all_paths(host)
    assert not expect(during, MEMCACHED), f'not cut after the controller died:\n{table(during)}'
    sleep_until(stop + 1.5)
    after = all_paths(host)
    assert not expect(after, ()), f'not lifted by the expiry:\n{table(after)}'
    cleanup = run_module(host, 'blackout', service='bystander', state='absent')
    assert cleanup['changed'] and len([x for v in cleanup['removed'].values() for x in v]) == len(rules)


# --------------------------------------------------------------------------- drift

def _addresses(client, name: str) -> dict[str, str]:
    cont = client.containers.get(name)
    cont.reload()
    return {net: info['IPAddress'] for net, info in cont.attrs['NetworkSettings']['Networks'].items()}


def _take_address(client) -> tuple[str, str, str]:
    """Stop lab-memcached-2, start nf-drift-taker (gets its address), start lab-memcached-2 again.

    Returns (old address, taker's address, new address of lab-memcached-2).
    """
    old = _addresses(client, 'lab-memcached-2')['lab_front']
    client.containers.get('lab-memcached-2').stop(timeout=2)
    client.containers.run(
        netfence_lab.IMAGE, netfence_lab.MEMCACHED_CMD, name=TAKER, hostname=TAKER, network='lab_front',
        detach=True, labels={'com.docker.compose.project': netfence_lab.PROJECT,
                             'com.docker.compose.service': 'drifttaker', netfence_lab.ROLE_LABEL: 'service'})
    client.containers.get('lab-memcached-2').start()
    return old, _addresses(client, TAKER)['lab_front'], _addresses(client, 'lab-memcached-2')['lab_front']


def _put_back(host, client, old: str) -> None:
    """Remove the taker; restart lab-memcached-2 so that it gets its old address back (the
    lab's deployment as `up` made it), else have the lab recreate the deployment."""
    with contextlib.suppress(Exception):
        client.containers.get(TAKER).remove(force=True)
    m2 = client.containers.get('lab-memcached-2')
    m2.stop(timeout=2)
    m2.start()
    if _addresses(client, 'lab-memcached-2').get('lab_front') != old:
        m2.remove(force=True)
        # up() with the lab's own shape recreates the deployment of a host that lacks a container.
        hosts = netfence_lab.lab_hosts()
        netfence_lab.up(hosts=len(hosts), versions=[h.series for h in hosts],
                        configs=['+'.join(h.configs) for h in hosts])


def test_drift_reported_and_repaired(clean, run_module):
    host = clean
    res = run_module(host, 'blackout', service='memcached')
    check_ok(res, 'blackout')
    assert res['changed']
    client = host.client()
    old = None
    try:
        old, taker, new = _take_address(client)
        assert taker == old and new != old, f'engine gave {TAKER} {taker}, lab-memcached-2 {old} -> {new}'

        drifted = all_paths(host)
        # The rules now block the wrong container, and the service's new address is open.
        assert drifted[TAKER]['peer:lab_front'] == 'refused', table(drifted)
        assert drifted['lab-memcached-2']['peer:lab_front'] == 'ok', table(drifted)

        info = run_module(host, 'blackout_info', name='memcached')
        check_ok(info, 'blackout_info')
        (report,) = info['blackouts']
        assert report['state'] == 'drifted', report
        assert report['drift'] == {'stale': {'lab-memcached-2': [old]}, 'uncovered': {'lab-memcached-2': [new]},
                                   'taken': {old: TAKER}}, report

        repair = run_module(host, 'blackout', service='memcached')
        check_ok(repair, 'repair')
        assert repair['changed'] is True
        removed = [line for lines in repair['removed'].values() for line in lines]
        added = [line for lines in repair['added'].values() for line in lines]
        assert any(f'-d {old}/32' in line for line in removed)
        assert not any(f'-d {old}/32' in line or f'-s {old}/32' in line for line in added)
        assert any(f'-d {new}/32' in line for line in added)
        repaired = all_paths(host)
        assert not expect(repaired, MEMCACHED), table(repaired)  # the taker (and bystander) reachable

        info = run_module(host, 'blackout_info', name='memcached')
        assert [(b['state'], b['drift']) for b in info['blackouts']] == [
            ('active', {'stale': {}, 'uncovered': {}, 'taken': {}})], info['blackouts']
        again = run_module(host, 'blackout', service='memcached')
        check_ok(again, 'third run')
        assert again['changed'] is False
    finally:
        run_module(host, 'blackout', service='memcached', state='absent')
        if old is not None:
            _put_back(host, client, old)
        client.close()
    restored = all_paths(host)
    assert TAKER not in restored and not expect(restored, ()), table(restored)
