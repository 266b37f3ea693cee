# -*- coding: utf-8 -*-
# Copyright (c) 2026, netfence.docker contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The fleet playbooks (playbooks/blackout.yml, restore.yml, status.yml) against the lab.

Runs ansible-playbook from the checkout, the way a user of a fresh clone does (the collection is
found through playbooks/collections/, the link tools/link-checkout generates), against the lab's inventory (3 hosts, Docker 20.10 and 28).
The drills stop one host's engine (SIGKILL to its dockerd) and heal the lab afterwards with
``netfence_lab.up()``, which recreates a broken lab. The tests of this module run in order and
each leaves the lab without any netfence rule, except the sequence blackout → second run → status
(marked ``firewall_carries_over``), which the restore test ends. Skipped unless root. NETFENCE_LAB selects the
lab instance.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / 'tests' / 'lab'))

import netfence_lab  # noqa: E402  pylint: disable=wrong-import-position,import-error

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason='the lab needs root')

PLAYBOOK = str(Path(sys.executable).parent / 'ansible-playbook')
SERVICE = 'memcached'
REPLICAS = ('lab-memcached-1', 'lab-memcached-2')
BYSTANDER = 'lab-bystander-1'
SAVE_TOOLS = ('iptables-save', 'ip6tables-save', 'iptables-legacy-save', 'ip6tables-legacy-save')
TIMINGS = {}


class Run:
    """One ansible-playbook run with the json stdout callback."""

    def __init__(self, proc, elapsed):
        self.rc = proc.returncode
        self.elapsed = elapsed
        self.stderr = proc.stderr
        self.raw = proc.stdout
        try:
            self.data = json.loads(proc.stdout[proc.stdout.index('{'):])
        except ValueError:
            self.data = {'plays': [], 'stats': {}}

    @property
    def stats(self):
        """Per host: ok, changed, failures, unreachable, skipped, rescued, ignored."""
        return self.data.get('stats', {})

    def results(self, task_name):
        """Per host, the result of the task called ``task_name`` (last one wins)."""
        found = {}
        for play in self.data.get('plays', []):
            for task in play.get('tasks', []):
                if task['task']['name'] == task_name:
                    found.update(task['hosts'])
        return found

    def failure_messages(self):
        """The msg of every failed task result."""
        return [res.get('msg', '') for play in self.data.get('plays', [])
                for task in play.get('tasks', []) for res in task['hosts'].values()
                if res.get('failed') and not res.get('skipped')]

    def __repr__(self):
        return (f'rc={self.rc} in {self.elapsed:.1f} s\nstats={json.dumps(self.stats)}\n'
                f'failures={json.dumps(self.failure_messages(), indent=1)}\n'
                f'stderr={self.stderr[-3000:]}')


def playbook(name, *args, inventory=None, limit=None):
    """Run playbooks/<name>.yml from the checkout against the lab; return a Run."""
    argv = [PLAYBOOK, '-i', inventory or netfence_lab.inventory_path(), str(ROOT / 'playbooks' / f'{name}.yml')]
    argv += ['--limit', limit] if limit else []
    argv += list(args)
    env = dict(os.environ, ANSIBLE_STDOUT_CALLBACK='json', ANSIBLE_NOCOLOR='1',
               ANSIBLE_RETRY_FILES_ENABLED='0')
    env.pop('ANSIBLE_COLLECTIONS_PATH', None)  # the checkout must be found by itself
    start = time.monotonic()
    proc = subprocess.run(argv, cwd=str(ROOT), env=env, capture_output=True, text=True,
                          timeout=600, check=False)
    return Run(proc, time.monotonic() - start)


def netfence_rule_count(host):
    """Rules tagged netfence in every table of the host, IPv4 and IPv6, nft and legacy."""
    total = 0
    for tool in SAVE_TOOLS:
        res = netfence_lab.host_exec(host, [tool], check=False)
        if res.returncode == 0:
            total += sum(1 for line in res.stdout.splitlines() if 'netfence' in line)
    # Docker 29 with its nftables backend: the rules are in our own table inet netfence.
    res = netfence_lab.host_exec(host, ['nft', 'list', 'table', 'inet', 'netfence'], check=False)
    if res.returncode == 0:
        total += sum(1 for line in res.stdout.splitlines() if '"netfence bo=' in line)
    return total


def probe_problems(host, expect):
    """Mismatches between the probe and what is expected ('cut' or 'open') on one host."""
    results = netfence_lab.probe(host, service='all')
    problems = [f'{host.name}: {name} not found' for name in REPLICAS + (BYSTANDER,)
                if name not in results]
    for name, cells in sorted(results.items()):
        for path, outcome in sorted(cells.items()):
            if outcome in ('n/a', '-'):
                continue
            # direction=inbound: the replicas' own outbound connections (egress) stay open.
            want_cut = expect == 'cut' and name in REPLICAS and path != 'egress'
            if want_cut != (outcome != 'ok'):
                problems.append(f'{host.name} {name} {path}: {outcome}')
    return problems, netfence_lab.render_table(results)


def assert_probe(hosts, expect):
    """Every host probes as expected."""
    problems, tables = [], []
    for host in hosts:
        found, table = probe_problems(host, expect)
        problems += found
        tables.append(f'{host.name}:\n{table}')
    assert not problems, '\n'.join(problems + tables)


def assert_no_rule(hosts):
    """No host has a netfence rule left."""
    counts = {host.name: netfence_rule_count(host) for host in hosts}
    assert not any(counts.values()), f'netfence rules left: {counts}'


def restore_quietly():
    """Lift any blackout of the service left by an earlier failure (best effort)."""
    playbook('restore', '-e', f'service={SERVICE}', '-e', 'verify=false')


def heal():
    """Recreate the lab after a drill broke it; return its hosts."""
    return netfence_lab.up()


def stop_engine(host):
    """SIGKILL the host's dockerd (a failure drill); wait until its API refuses."""
    pid = int(Path(host.run_dir, 'dockerd.pid').read_text(encoding='ascii').strip())
    cmdline = Path(f'/proc/{pid}/cmdline').read_bytes().split(b'\0')[0]
    assert cmdline.endswith(b'dockerd'), (pid, cmdline)
    os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            with socket.socket(socket.AF_UNIX) as sock:
                sock.settimeout(1)
                sock.connect(host.docker_sock)
        except OSError:
            return
        time.sleep(0.1)
    raise AssertionError(f'the engine of {host.name} still answers')


def status_of(run):
    """The netfence_status fact set by status.yml."""
    res = next(iter(run.results('Record the fleet status').values()))
    return res['ansible_facts']['netfence_status']


@pytest.fixture(scope='module')
def lab():
    """The lab, up and without any blackout of the service."""
    hosts = netfence_lab.up()
    assert len(hosts) >= 3
    assert {h.series for h in hosts} >= {'20.10', '28'}, [h.series for h in hosts]
    if any(netfence_rule_count(h) for h in hosts):
        restore_quietly()
    if any(netfence_rule_count(h) for h in hosts):
        # Rules of other blackouts (an earlier test's leftovers): start from a fresh lab.
        netfence_lab.down()
        hosts = netfence_lab.up()
    assert_no_rule(hosts)
    yield hosts
    restore_quietly()


def test_missing_service_fails_clearly(lab):
    run = playbook('blackout')
    assert run.rc != 0, run
    assert any('-e service=NAME' in msg for msg in run.failure_messages()), run
    assert_no_rule(lab)


def test_invalid_input_changes_nothing(lab):
    run = playbook('blackout', '-e', f'service={SERVICE}', '-e', 'direction=sideways')
    assert run.rc != 0, run
    # The module rejects the input on every host before it changes anything; one reason for all.
    # Checked once on the controller, before any host runs the module: one message, no host changed.
    assert any(msg == (f'Blackout of {SERVICE} not started, no host was changed: Invalid input: value of '
                       'direction must be one of: inbound, both, got: sideways')
               for msg in run.failure_messages()), run
    assert not any(s['changed'] for s in run.stats.values()), run
    assert_no_rule(lab)


def test_status_before(lab):
    run = playbook('status', '-e', f'service={SERVICE}')
    assert run.rc == 0, run
    status = status_of(run)
    assert sorted(status['hosts']) == sorted(h.name for h in lab)
    for name, row in status['hosts'].items():
        assert row['state'] == 'none', (name, row)
        assert row['rules'] == 0, (name, row)
        assert sorted(row['containers']) == list(REPLICAS), (name, row)


@pytest.mark.firewall_carries_over  # the sequence blackout → second run → status → restore
def test_blackout_cuts_every_path_on_every_host(lab):
    run = playbook('blackout', '-e', f'service={SERVICE}')
    TIMINGS['blackout, 3 hosts, first run'] = run.elapsed
    assert run.rc == 0, run
    for host in lab:
        assert run.stats[host.name]['changed'] > 0, run
        assert run.stats[host.name]['failures'] == 0, run
        assert netfence_rule_count(host) > 0, host.name
    assert_probe(lab, 'cut')


@pytest.mark.firewall_carries_over  # the sequence blackout → second run → status → restore
def test_second_run_changes_nothing(lab):
    run = playbook('blackout', '-e', f'service={SERVICE}')
    TIMINGS['blackout, 3 hosts, second run (no change)'] = run.elapsed
    assert run.rc == 0, run
    assert {h: s['changed'] for h, s in run.stats.items()} == {h.name: 0 for h in lab}, run
    assert_probe(lab, 'cut')


@pytest.mark.firewall_carries_over  # the sequence blackout → second run → status → restore
def test_status_during(lab):
    run = playbook('status', '-e', f'service={SERVICE}')
    assert run.rc == 0, run
    status = status_of(run)
    assert status['summary'] == {'active': sorted(h.name for h in lab)} or \
        sorted(status['summary'].get('active', [])) == sorted(h.name for h in lab), status
    for name, row in status['hosts'].items():
        assert row['state'] == 'active', (name, row)
        assert row['rules'] > 0 and row['since'], (name, row)
        assert sorted(row['blacked_out']) == list(REPLICAS), (name, row)
    table = next(iter(run.results('Show the fleet status').values()))['msg']
    assert table[1].split()[:3] == ['HOST', 'SERVICE', 'STATE'], table
    assert all(any(line.startswith(h.name + ' ') and ' active ' in line for line in table) for h in lab), table


def test_restore_brings_everything_back(lab):
    run = playbook('restore', '-e', f'service={SERVICE}')
    TIMINGS['restore, 3 hosts'] = run.elapsed
    assert run.rc == 0, run
    for host in lab:
        assert run.stats[host.name]['changed'] > 0, run
    assert_no_rule(lab)
    assert_probe(lab, 'open')


def test_status_after(lab):
    run = playbook('status', '-e', f'service={SERVICE}')
    assert run.rc == 0, run
    assert {name: row['state'] for name, row in status_of(run)['hosts'].items()} == \
        {h.name: 'none' for h in lab}


def test_unreachable_host_rolls_back_every_other_host(lab, tmp_path):
    inventory = tmp_path / 'inventory.ini'
    text = Path(netfence_lab.inventory_path()).read_text(encoding='utf-8')
    # 192.0.2.0/24 (TEST-NET-1) is never routed: the host cannot be reached.
    text = text.replace('[lab]\n', '[lab]\nh9 ansible_host=192.0.2.9 ansible_ssh_timeout=3\n', 1)
    inventory.write_text(text, encoding='utf-8')
    run = playbook('blackout', '-e', f'service={SERVICE}', inventory=str(inventory))
    assert run.rc != 0, run
    final = [m for m in run.failure_messages() if m.startswith('Blackout of')]
    assert final and 'failed on 1 host(s): h9 (unreachable, ' in final[0], run
    assert 'put back as before this run: ' + ', '.join(f'{h.name} (no blackout, as before)' for h in lab) \
        in final[0], run
    assert_no_rule(lab)
    assert_probe(lab, 'open')


def test_engine_down_rolls_back_every_host(lab):
    victim = next(h for h in lab if h.series == '28')
    stop_engine(victim)
    try:
        run = playbook('blackout', '-e', f'service={SERVICE}')
        assert run.rc != 0, run
        final = [m for m in run.failure_messages() if m.startswith('Blackout of')]
        assert final and f'failed on 1 host(s): {victim.name} (' in final[0], run
        assert 'No host is left changed by this run' in final[0], run
        # Checked before healing: healing recreates the hosts, which would hide residue.
        assert_no_rule(lab)
        assert_probe([h for h in lab if h is not victim], 'open')
    finally:
        hosts = heal()
    assert_no_rule(hosts)


def test_engine_down_in_a_later_batch_rolls_back_earlier_batches(lab):
    victim = lab[-1]
    stop_engine(victim)
    try:
        run = playbook('blackout', '-e', f'service={SERVICE}', '-e', 'batch=1')
        assert run.rc != 0, run
        final = [m for m in run.failure_messages() if m.startswith('Blackout of')]
        assert final and f'failed on 1 host(s): {victim.name} (' in final[0], run
        earlier = [h.name for h in lab if h is not victim]
        assert 'put back as before this run: ' + ', '.join(f'{h} (no blackout, as before)' for h in earlier) \
            in final[0], run
        for name in earlier:  # they were blacked out in their own batches, then rolled back
            assert run.stats[name]['changed'] >= 2, run
        assert_no_rule(lab)
        assert_probe([h for h in lab if h is not victim], 'open')
    finally:
        hosts = heal()
    assert_no_rule(hosts)


def test_partial_ok_keeps_the_partial_blackout_and_says_so(lab):
    victim = lab[0]
    stop_engine(victim)
    try:
        run = playbook('blackout', '-e', f'service={SERVICE}', '-e', 'partial_ok=true')
        assert run.rc == 0, run
        report = next(iter(run.results('Report the blackout across the fleet').values()))['msg']
        assert report[0].startswith('PARTIAL blackout'), report
        assert any(line.startswith(f'FAILED {victim.name}:') for line in report), report
        others = [h for h in lab if h is not victim]
        assert_probe(others, 'cut')
        run = playbook('restore', '-e', f'service={SERVICE}')
        assert run.rc == 0, run
        assert_no_rule(lab)
    finally:
        hosts = heal()
    assert_no_rule(hosts)


ROLE_PLAY = """
- name: The role on its own, as a user's playbook includes it
  hosts: all
  become: true
  gather_facts: false
  tasks:
    - name: Include the role
      ansible.builtin.include_role:
        name: netfence.docker.blackout
      vars:
        netfence_service: memcached
        netfence_state: "{{ state }}"
"""


def test_role_on_its_own_checks_the_ports_and_summarises_the_host(lab, tmp_path):
    play = tmp_path / 'role.yml'
    play.write_text(ROLE_PLAY, encoding='utf-8')
    host = lab[0]
    env_path = str(ROOT / 'playbooks' / 'collections')
    for state, cut in (('present', True), ('absent', False)):
        proc = subprocess.run([PLAYBOOK, '-i', netfence_lab.inventory_path(), str(play), '--limit', host.name,
                               '-e', f'state={state}'], cwd=str(tmp_path), capture_output=True, text=True,
                              timeout=300, check=False,
                              env=dict(os.environ, ANSIBLE_STDOUT_CALLBACK='json', ANSIBLE_NOCOLOR='1',
                                       ANSIBLE_COLLECTIONS_PATH=env_path))
        run = Run(proc, 0.0)
        assert run.rc == 0, run
        summary = run.results('netfence.docker.blackout : Summarise the blackout on this host')[host.name]['msg']
        word = 'blacked out' if cut else 'restored'
        # The fleet report's host line (filter host_report), labelled with the blackout's name.
        assert summary[0].startswith(f'memcached: {word} (lab-memcached-1, lab-memcached-2); rules: '), summary
        verify = 'refused' if cut else 'answering'
        assert summary[0].endswith(f'verify: {verify}: {host.addr}:11211 {host.addr}:11212 127.0.0.1:11211 '
                                   '127.0.0.1:11212 [::1]:11211 [::1]:11212'), summary
        module = run.results('netfence.docker.blackout : Set the blackout of the service to ' + state)[host.name]
        assert module['verify']['state'] == 'ok', module['verify']
        assert_probe([host], 'cut' if cut else 'open')
    assert_no_rule(lab)


def test_wall_time_one_host_vs_three(lab, record_property):
    one = playbook('blackout', '-e', f'service={SERVICE}', limit=lab[0].name)
    assert one.rc == 0, one
    assert playbook('restore', '-e', f'service={SERVICE}', '-e', 'verify=false').rc == 0
    three = playbook('blackout', '-e', f'service={SERVICE}')
    assert three.rc == 0, three
    assert playbook('restore', '-e', f'service={SERVICE}', '-e', 'verify=false').rc == 0
    TIMINGS['blackout, 1 host'] = one.elapsed
    TIMINGS['blackout, 3 hosts'] = three.elapsed
    for key, value in TIMINGS.items():
        record_property(key, round(value, 2))
    sys.stderr.write('\nfleet wall times: ' + json.dumps({k: round(v, 1) for k, v in TIMINGS.items()}) + '\n')
    assert_no_rule(lab)
