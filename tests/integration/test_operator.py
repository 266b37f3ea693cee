# -*- coding: utf-8 -*-
# Copyright (c) 2026, netfence.docker contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Issue #17 against the lab with real traffic: who and why, the panic button, renewal, drain.yml.

Runs the playbooks from the checkout (see test_fleet.py) against the lab NETFENCE_LAB selects
(2 hosts suffice: h1 Docker 20.10, h2 Docker 28). Clients connect from the root namespace to the
hosts' addresses (published port 11211 of lab-memcached-1); nothing touches the root namespace's
firewall. Each test leaves the lab without any netfence rule. Skipped unless root.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / 'tests' / 'lab'))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import netfence_lab  # noqa: E402  pylint: disable=wrong-import-position,import-error
from test_fleet import (  # noqa: E402  pylint: disable=wrong-import-position,import-error
    netfence_rule_count, status_of)
from test_fleet import playbook as fleet_playbook  # noqa: E402  pylint: disable=wrong-import-position,import-error

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason='the lab needs root')

SERVICE = 'memcached'
PORT = 11211


def connect(addr, port=PORT, timeout=1.0):
    """'ok' (connected), 'refused', 'reset', 'timeout' or the error, from the root namespace."""
    try:
        with socket.create_connection((addr, port), timeout=timeout):
            return 'ok'
    except ConnectionRefusedError:
        return 'refused'
    except ConnectionResetError:
        return 'reset'
    except socket.timeout:
        return 'timeout'
    except OSError as exc:
        return str(exc)


# The hosts these tests watch (the first two of the lab, set by the ``hosts`` fixture): every
# playbook run is limited to them, so that a lab with more hosts gives the same reports.
WATCHED: list[str] = []


def playbook(*args, limit=None, **kwargs):
    """test_fleet's playbook runner, limited to the watched hosts unless told otherwise."""
    return fleet_playbook(*args, limit=limit or ','.join(WATCHED), **kwargs)


class Clients(threading.Thread):
    """A bounded client loop: connects to each host's published port in turn until stopped or
    ``limit`` attempts; records (monotonic time, host, outcome)."""

    def __init__(self, hosts, limit, pause):
        super().__init__(daemon=True)
        self.hosts = list(hosts)
        self.limit = limit
        self.pause = pause
        self.seen = []
        self.stop = threading.Event()

    def run(self):
        while not self.stop.is_set() and len(self.seen) < self.limit:
            for host in self.hosts:
                self.seen.append((time.time(), host.name, connect(host.addr, timeout=0.5)))
            time.sleep(self.pause)

    def finish(self):
        self.stop.set()
        self.join(timeout=30)
        return self.seen


MAX_GAP = 0.5  # seconds: the client loop must try each host at least this often during a renewal


def sampling_gaps(seen, names, started, ended) -> dict:
    """Per host: the longest time between two consecutive attempts from the last one before
    ``started`` to the first one after ``ended`` (infinite when the loop did not reach past both
    ends): how densely the client loop sampled the run. A count of attempts would depend on how
    long the run takes; this does not."""
    gaps = {}
    for name in names:
        times = sorted(t for t, h, _o in seen if h == name)
        before = [t for t in times if t < started]
        after = [t for t in times if t > ended]
        if not before or not after:
            gaps[name] = float('inf')
            continue
        window = [before[-1]] + [t for t in times if started <= t <= ended] + [after[0]]
        gaps[name] = round(max(b - a for a, b in zip(window, window[1:])), 3)
    return gaps


def json_extra(**values):
    return ['-e', json.dumps(values)]


def lift_everything():
    playbook('restore', '-e', 'all=true', '-e', 'verify=false')


@pytest.fixture(scope='module')
def hosts():
    """The lab (2 hosts at least), without any netfence rule; lifted again afterwards."""
    found = netfence_lab.lab_hosts() or netfence_lab.up(hosts=2, versions=['20.10', '28'])
    assert len(found) >= 2
    if any(netfence_rule_count(h) for h in found):
        lift_everything()
    assert not any(netfence_rule_count(h) for h in found)
    WATCHED[:] = [h.name for h in found[:2]]
    yield found[:2]
    lift_everything()


def answers(hosts_, expect):
    """Every host's published port gives ``expect`` ('ok' or 'refused') from the root namespace."""
    got = {h.name: connect(h.addr) for h in hosts_}
    return got == {h.name: expect for h in hosts_}, got


# --- who and why -------------------------------------------------------------------------------

def test_audit_fields_recorded_and_shown_in_status(hosts, firewall_snapshot):
    run = playbook('blackout', *json_extra(service=SERVICE, reason='deploy 2026.12.02 (CHANGE-1234)',
                                           requested_by='alice', duration='30m'))
    assert run.rc == 0, run
    result = run.results('netfence.docker.blackout : Set the blackout of the service to present')
    for h in hosts:
        res = result[h.name]
        assert res['audit']['event'] == 'blackout', res['audit']
        assert res['audit']['logged'].startswith(
            f'blackout {SERVICE} by=alice reason="deploy 2026.12.02 (CHANGE-1234)" expires='), res['audit']
    status = playbook('status', '-e', f'service={SERVICE}')
    assert status.rc == 0, status
    st = status_of(status)
    for h in hosts:
        (bo,) = st['hosts'][h.name]['blackouts']
        assert bo['requested_by'] == 'alice' and bo['reason'] == 'deploy 2026.12.02 (CHANGE-1234)', bo
    table = next(iter(status.results('Show the fleet status').values()))['msg']
    assert table[1].split()[-3:] == ['WHO', 'WHY', 'DRIFT'], table
    for h in hosts:
        line = next(line for line in table if line.startswith(h.name + ' '))
        assert ' alice  deploy 2026.12.02 (CHANGE-1234) ' in line, table
    restore = playbook('restore', *json_extra(service=SERVICE, requested_by='alice', reason='window over'))
    assert restore.rc == 0, restore
    for h, res in restore.results('netfence.docker.blackout : Set the blackout of the service to absent').items():
        assert res['audit']['logged'].startswith(f'restore {SERVICE} by=alice reason="window over"'), (h, res)
    assert not any(netfence_rule_count(h) for h in hosts)


def test_a_bad_reason_changes_nothing(hosts):
    run = playbook('blackout', *json_extra(service=SERVICE, reason='two\nlines'))
    assert run.rc != 0, run
    assert any('reason must be one line of printable text' in m for m in run.failure_messages()), run
    assert not any(netfence_rule_count(h) for h in hosts)


# --- renewal -----------------------------------------------------------------------------------

def test_renewal_never_lets_a_connection_through(hosts):
    first = playbook('blackout', '-e', f'service={SERVICE}', '-e', 'duration=30m', '-e', 'verify=false')
    assert first.rc == 0, first
    ok, got = answers(hosts, 'refused')
    assert ok, got
    before = {h: r['expires'] for h, r in first.results('netfence.docker.blackout : Set the blackout of the service to present').items()}
    # Bounded (at most 2000 attempts, 20 a second), and running from before the renewal starts until
    # after it ended: the loop must not have stopped early.
    clients = Clients(hosts, limit=2000, pause=0.05)
    clients.start()
    time.sleep(0.5)
    started = time.time()
    renewal = playbook('blackout', '-e', f'service={SERVICE}', '-e', 'duration=2h', '-e', 'reason=overrun')
    ended = time.time()
    time.sleep(0.5)
    seen = clients.finish()
    assert renewal.rc == 0, renewal
    assert seen[0][0] < started and seen[-1][0] > ended, 'the client loop did not cover the renewal run'
    during = [(t, h, o) for t, h, o in seen if started <= t <= ended]
    through = [s for s in seen if s[2] != 'refused']
    print(f'renewal: {len(during)} connection attempts during the {renewal.elapsed:.1f} s renewal run '
          f'({len(seen)} in all), {len(through)} not refused')
    gaps = sampling_gaps(seen, [h.name for h in hosts], started, ended)
    print(f'renewal: longest time between two attempts per host (s): {gaps}')
    assert max(gaps.values()) <= MAX_GAP, f'the client loop left gaps (s) during the renewal: {gaps}'
    assert through == [], through[:10]
    task = 'netfence.docker.blackout : Set the blackout of the service to present'
    results = renewal.results(task)
    for h in hosts:
        res = results[h.name]
        assert res['audit']['event'] == 'renewal', res['audit']
        assert res['since'] == first.results(task)[h.name]['since'], res
        assert res['expires'] != before[h.name]
    st = status_of(playbook('status', '-e', f'service={SERVICE}'))
    for h in hosts:
        (bo,) = st['hosts'][h.name]['blackouts']
        assert bo['expires'] == results[h.name]['expires'] and bo['reason'] == 'overrun', bo
        assert bo['state'] == 'active', bo
    restore = playbook('restore', '-e', f'service={SERVICE}')
    assert restore.rc == 0, restore


def test_renewal_on_the_nftables_backend_never_lets_a_connection_through(hosts, run_module):
    """The same with backend nftables (table inet netfence): the swap is one nft -f transaction."""
    host = hosts[1]
    first = run_module(host, 'blackout', service=SERVICE, backend='nftables', expires='30m')
    assert not first.failed and first['firewall']['backend'] == 'nftables', first
    assert connect(host.addr) == 'refused'
    clients = Clients([host], limit=2000, pause=0.01)
    clients.start()
    time.sleep(0.3)
    started = time.time()
    renewed = run_module(host, 'blackout', service=SERVICE, backend='nftables', expires='2h', reason='overrun')
    ended = time.time()
    time.sleep(0.3)
    seen = clients.finish()
    assert not renewed.failed, renewed
    assert seen[0][0] < started and seen[-1][0] > ended, 'the client loop did not cover the renewal'
    during = [o for t, h, o in seen if started <= t <= ended]
    print(f'nft renewal: {len(during)} connection attempts during the {ended - started:.1f} s module run, '
          f'{sum(o != "refused" for t, h, o in seen)} not refused')
    gaps = sampling_gaps(seen, [host.name], started, ended)
    print(f'nft renewal: longest time between two attempts (s): {gaps}')
    assert max(gaps.values()) <= MAX_GAP, f'the client loop left gaps (s) during the renewal: {gaps}'
    assert all(o == 'refused' for t, h, o in seen), [o for t, h, o in seen if o != 'refused']
    assert renewed['audit']['event'] == 'renewal' and renewed['expires'] != first['expires']
    assert renewed['since'] == first['since']
    info = run_module(host, 'blackout_info')
    (bo,) = [b for b in info['blackouts'] if b['name'] == SERVICE]
    assert bo['expires'] == renewed['expires'] and bo['backend'] == 'nftables' and bo['reason'] == 'overrun', bo
    gone = run_module(host, 'blackout', service=SERVICE, state='absent', verify=True)
    assert not gone.failed and connect(host.addr) == 'ok', gone


# --- the panic button --------------------------------------------------------------------------

def test_panic_button_lifts_every_blackout_whatever_its_name(hosts, firewall_snapshot):
    h1, h2 = hosts
    before = {h.name: firewall_snapshot(h) for h in hosts}
    a = playbook('blackout', '-e', f'service={SERVICE}', '-e', 'project=lab', limit=h1.name)
    b = playbook('blackout', '-e', 'service=bystander', '-e', 'duration=1h', limit=h2.name)
    c = playbook('blackout', '-e', f'service={SERVICE}', limit=h2.name)
    assert a.rc == 0 and b.rc == 0 and c.rc == 0, (a, b, c)
    counts = {h.name: netfence_rule_count(h) for h in hosts}
    assert all(counts.values()), counts
    assert connect(h1.addr) == 'refused' and connect(h2.addr) == 'refused'
    assert connect(h2.addr, 11311) == 'refused'  # the bystander
    run = playbook('restore', '-e', 'all=true', *json_extra(reason='incident 77', requested_by='oncall'))
    assert run.rc == 0, run
    report = next(iter(run.results('Report the restore across the fleet').values()))['msg']
    print('\n'.join(report))
    assert report[0] == 'Every netfence blackout lifted on every host (2).', report
    results = run.results('netfence.docker.blackout : Set the blackout of the service to absent')
    lifted = {h: {n: v['rules'] for n, v in r['lifted'].items()} for h, r in results.items()}
    assert set(lifted[h1.name]) == {'lab/memcached'} and set(lifted[h2.name]) == {'bystander', 'memcached'}, lifted
    assert {h: sum(v.values()) for h, v in lifted.items()} == counts
    assert f'  lifted: lab/memcached ({lifted[h1.name]["lab/memcached"]} rules)' in report, report
    assert not any(netfence_rule_count(h) for h in hosts)
    for h in hosts:
        assert connect(h.addr) == 'ok' and connect(h.addr, 11311) == 'ok', h.name
        assert firewall_snapshot(h) == before[h.name], h.name


# --- drain.yml ---------------------------------------------------------------------------------

DRAIN_TASKS = """\
- name: Record the start of the deploy
  ansible.builtin.shell: echo "{{{{ inventory_hostname }}}} start $(date +%s.%N)" >> {log}
  delegate_to: localhost
  become: false
  changed_when: false

- name: Deploy (takes a while)
  ansible.builtin.command: sleep 3
  changed_when: false

- name: Run the migration
  ansible.builtin.command:
    argv: ["{{{{ 'false' if inventory_hostname in fail_on else 'true' }}}}"]
  vars:
    fail_on: {fail_on}
  changed_when: false

- name: Record the end of the deploy
  ansible.builtin.shell: echo "{{{{ inventory_hostname }}}} end $(date +%s.%N)" >> {log}
  delegate_to: localhost
  become: false
  changed_when: false
"""


def drain_files(tmp_path, fail_on=()):
    log = tmp_path / 'deploy.log'
    tasks = tmp_path / 'tasks.yml'
    tasks.write_text(DRAIN_TASKS.format(log=log, fail_on=json.dumps(list(fail_on))), encoding='utf-8')
    return tasks, log


def windows(log):
    """{host: [start, end]} from the tasks file's records (end missing when it failed)."""
    out = {}
    for line in log.read_text(encoding='utf-8').splitlines():
        host, what, stamp = line.split()
        out.setdefault(host, {})[what] = float(stamp)
    return out


def test_drain_blacks_out_each_host_only_during_its_own_batch(hosts, tmp_path):
    h1, h2 = hosts
    tasks, log = drain_files(tmp_path)
    clients = Clients(hosts, limit=4000, pause=0.05)
    clients.start()
    run = playbook('drain', '-e', f'service={SERVICE}', '-e', 'batch=1', '-e', f'drain_tasks={tasks}')
    seen = clients.finish()
    assert run.rc == 0, run
    win = windows(log)
    assert sorted(win) == [h1.name, h2.name] and all('end' in w for w in win.values()), win
    assert win[h1.name]['end'] < win[h2.name]['start'], win  # one batch after the other
    for host, other in ((h1, h2), (h2, h1)):
        start, end = win[host.name]['start'], win[host.name]['end']
        mine = [o for t, h, o in seen if h == host.name and start <= t <= end]
        theirs = [o for t, h, o in seen if h == other.name and start <= t <= end]
        print(f'{host.name} deploy {end - start:.1f} s: itself {len(mine)} attempts {set(mine)}, '
              f'{other.name} {len(theirs)} attempts {set(theirs)}')
        assert mine and set(mine) == {'refused'}, (host.name, mine)
        assert theirs and set(theirs) == {'ok'}, (other.name, theirs)
    assert set(o for t, h, o in seen) <= {'ok', 'refused'}, set(o for t, h, o in seen)
    refused = {h.name: [t for t, n, o in seen if n == h.name and o == 'refused'] for h in hosts}
    # h1 is refused only around its batch, h2 only around its own: the refused stretches do not
    # overlap, h1's ends before h2's deploy starts and h2's starts after h1's deploy ended.
    assert max(refused[h1.name]) < min(refused[h2.name]), (max(refused[h1.name]), min(refused[h2.name]))
    assert max(refused[h1.name]) < win[h2.name]['start'] and min(refused[h2.name]) > win[h1.name]['end']
    ok, got = answers(hosts, 'ok')
    assert ok, got
    assert not any(netfence_rule_count(h) for h in hosts)


def test_drain_failing_batch_stays_blacked_out_and_stops(hosts, tmp_path):
    h1, h2 = hosts
    tasks, log = drain_files(tmp_path, fail_on=[h1.name])
    run = playbook('drain', '-e', f'service={SERVICE}', '-e', 'batch=1', '-e', f'drain_tasks={tasks}')
    assert run.rc != 0, run
    messages = run.failure_messages()
    assert any(m.startswith(f'Drain of {SERVICE} stopped at batch {h1.name}: {h1.name} failed in the tasks step, '
                            "task 'Run the migration'") and f'Not attempted: {h2.name}.' in m
               and 'Left blacked out (lifts itself at ' in m for m in messages), messages
    assert sorted(windows(log)) == [h1.name], windows(log)  # h2's tasks never ran
    assert connect(h1.addr) == 'refused' and connect(h2.addr) == 'ok'
    assert netfence_rule_count(h1) > 0 and netfence_rule_count(h2) == 0
    st = status_of(playbook('status', '-e', f'service={SERVICE}'))
    assert st['hosts'][h1.name]['state'] == 'active' and st['hosts'][h1.name]['expires'], st['hosts'][h1.name]
    assert st['hosts'][h2.name]['state'] == 'none', st['hosts'][h2.name]
    restore = playbook('restore', '-e', f'service={SERVICE}', limit=h1.name)
    assert restore.rc == 0, restore
    assert connect(h1.addr) == 'ok'


# --- the host's log ----------------------------------------------------------------------------

SYSLOG_PROBE = """\
import socket, sys
sys.path.insert(0, {path!r})
from ansible_collections.netfence.docker.plugins.module_utils import _audit
sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
sock.bind('/dev/log')
sock.settimeout(5)
_audit.log_line('renewal', 'memcached', {{'requested_by': 'alice', 'reason': 'over "run"',
                                         'expires': '2026-12-02T14:00:00Z'}})
print(sock.recv(4096).decode())
"""


def test_audit_line_reaches_the_syslog_socket(tmp_path):
    """The stdlib syslog call writes to /dev/log with ident netfence, facility user, notice (<13>).

    In a private mount namespace with a tmpfs on /dev (this machine has no syslog daemon; nothing
    outside the namespace sees the socket)."""
    coll = tmp_path / 'ansible_collections' / 'netfence'
    coll.mkdir(parents=True)
    (coll / 'docker').symlink_to(ROOT)
    script = tmp_path / 'probe.py'
    script.write_text(SYSLOG_PROBE.format(path=str(tmp_path)), encoding='utf-8')
    res = subprocess.run(['unshare', '--mount', '--propagation', 'private', 'sh', '-c',
                          f'mount -t tmpfs none /dev && exec {sys.executable} {script}'],
                         capture_output=True, text=True, timeout=60, check=False)
    assert res.returncode == 0, res.stderr
    line = res.stdout.strip()
    assert line.startswith('<13>') and ' netfence[' in line, line
    assert line.endswith('renewal memcached by=alice reason="over \\"run\\"" expires=2026-12-02T14:00:00Z'), line
