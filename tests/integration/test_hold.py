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

import os
import signal
import subprocess
import time

import pytest

import netfence_lab  # tests/lab is put on sys.path by conftest.py
from netfence_lab_hold import (MEMCACHED, TAKER, address, aim, client_netns, epoch, expect, first_refused, hold_files,
                               kill_probers, labels_of, pid_file_data, put_back, recreate_with_new_address,
                               probe_until_cut, run_memcached, start_prober, watchers)
from nf_helpers import check_ok, wait_quiet

SERIES = ('20.10', '28')
PROBE_SECONDS = 20.0  # how long the probers and the probe matrix wait for the cut (a bound, not the target)
QUIET = 1.5  # after a recreate that must NOT be cut (no hold): time a watcher would have had to re-apply
FIGURES: list[str] = []


# --------------------------------------------------------------------------- helpers

def table(results: dict) -> str:
    return netfence_lab.render_table(results)


def measure(host, client, name: str, port: int, what: str, action) -> float:
    """Probers ready in the host's and a peer's namespace, ``action()`` starts container ``name``,
    the probers get its address at once; the probe matrix read until every path is cut. The time
    from its start (State.StartedAt) to the cut per path; ``<=`` when a prober only ever saw it
    refused (the cut came before the first attempt)."""
    probers = {'host': start_prober(host.netns_path, PROBE_SECONDS),
               'peer': start_prober(client_netns(client), PROBE_SECONDS),
               'localhost': start_prober(host.netns_path, PROBE_SECONDS)}
    try:
        action()
        cont = client.containers.get(name)
        addr = address(client, name)
        for path, proc in probers.items():
            aim(proc, *(('127.0.0.1', port) if path == 'localhost' else (addr, 11211)))
    except BaseException:
        kill_probers(probers.values())
        raise
    started = epoch(cont.attrs['State']['StartedAt'])
    every = probe_until_cut(host, MEMCACHED + (name,), PROBE_SECONDS)
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


def same_firewall(a: dict, b: dict) -> dict:
    """Tables that differ other than by the order of Docker's own rules (a restarted or recreated
    container's DNAT/ACCEPT rules move to the end of Docker's chains)."""
    return {key: (sorted(set(a[key]) - set(b.get(key, []))), sorted(set(b.get(key, [])) - set(a[key])))
            for key in a if sorted(a[key]) != sorted(b.get(key, []))}


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
    every = probe_until_cut(host, MEMCACHED, PROBE_SECONDS)
    assert not expect(every, MEMCACHED), 'not cut after the engine restart:\n' + table(every)
    assert watchers(host) == [res['hold']['pid']]
    FIGURES.append('engine restart Docker %s: every path refused (probe matrix) %.1f s after the last start; '
                   'watcher: %s' % (host.series, time.time() - started,
                                    pid_file_data(host).get('last', {}).get('message')))
    print(FIGURES[-1])
    # The watcher reconnects after its backoff (at most BACKOFF_MAX, 10 s): wait for it (the rules
    # alone cut the restarted containers, which keep their addresses), then a recreate is cut too.
    bound = time.monotonic() + 30
    while pid_file_data(host).get('connections', 0) < 2 and time.monotonic() < bound:
        time.sleep(0.2)
    assert pid_file_data(host).get('connections', 0) >= 2, 'the watcher did not reconnect within 30 s'
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
