"""Runs you can trust (#11), the module side, on real Docker 20.10 and 28 hosts of the lab (and a
host whose Docker uses iptables-legacy, when the lab has one: `lab.py up --configs ...,ipv6+legacy`).

- a later transaction failing (a read-only ``ip6tables-restore`` stand-in, bind-mounted over
  ``xtables-nft-multi`` in the lab host's sshd mount namespace only) undoes the earlier one: the
  module fails, every firewall is byte-identical to before, memcached still answers;
- 8 concurrent blackouts of one host, then their 8 concurrent restores: every firewall
  byte-identical to before (iptables nft/legacy v4/v6 and ``nft list ruleset``, its chains compared
  by name: nft lists a chain created again last);
- a run blocked by a held host lock fails after ``lock_timeout`` naming the holder, changing nothing;
- a restore with DOCKER-USER deleted removes the OUTPUT/INPUT rules;
- ``prior`` + ``rollback``: back to the rules of the first run, traffic still refused.
"""
from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
import shutil
import subprocess
import time

import pytest

import netfence_lab  # tests/lab is put on sys.path by conftest.py
from nf_helpers import blackout_of, check_ok, held_host, nft_canonical

HOSTS = ('20.10', '28', 'legacy')  # a Docker series (its first host), or the first host with that config
CUT = ('external', 'localhost4', 'peer:lab_front')
REFUSED = ('refused', 'reset')
COUNTER = re.compile(r'counter packets \d+ bytes \d+')
STANDIN = '''#!/bin/bash
# netfence integration test: a read-only ip6tables-restore; every other xtables tool as usual.
case "$(basename "$0")" in
  ip6tables-restore|ip6tables-nft-restore|ip6tables-legacy-restore) cat >/dev/null; echo "ip6tables-restore: read-only stand-in" >&2; exit 4;;
esac
exec -a "$0" {real} "$@"
'''
CONCURRENT = (  # 8 blackouts of one host, each with its own name and selector
    {'service': 'memcached'},
    {'service': 'memcached', 'project': 'lab'},
    {'service': 'bystander'},
    {'containers': ['lab-memcached-1'], 'name': 'trust-m1'},
    {'containers': ['lab-memcached-2'], 'name': 'trust-m2', 'reject_with': 'icmp'},
    {'containers': ['lab-memcached-1', 'lab-memcached-2']},
    {'labels': {'com.docker.compose.service': 'bystander'}, 'name': 'trust-by-label', 'expires': '1h'},
    {'containers': ['lab-bystander-1'], 'name': 'trust-b1', 'direction': 'both'},
)


def remove_all(host, run_module, netfence_rules) -> None:
    """Teardown: every blackout with a rule on the host (iptables or our nft tables) rolled back to nothing."""
    ruleset = netfence_lab.host_exec(host, ['nft', 'list', 'ruleset'], check=False).stdout.splitlines()
    lines = [line for _key, line in netfence_rules(host)] + ruleset
    for name in sorted({blackout_of(line) for line in lines} - {None}):
        run_module(host, 'blackout', rollback={'name': name, 'rules': [], 'record': None})


@pytest.fixture(scope='module', params=HOSTS, ids=lambda s: s if s == 'legacy' else f'docker{s}')
def host(request, lab, host_of_series, run_module, netfence_rules):
    if request.param == 'legacy':
        found = [h for h in lab if h.has('legacy')]
        if not found:
            pytest.skip('the lab has no host with the legacy config')
        lab_host = found[0]
    else:
        lab_host = host_of_series(request.param)
    yield from held_host(lab_host, netfence_rules, lambda h: remove_all(h, run_module, netfence_rules))


def variant(host) -> str:
    """The iptables variant that holds Docker's chains on ``host``."""
    return 'legacy' if host.has('legacy') else 'nft'


@pytest.fixture()
def whole(firewall_snapshot):
    """``whole(host)``: every iptables table (both variants, both families) and ``nft list ruleset``."""

    def snap(host):
        ruleset = netfence_lab.host_exec(host, ['nft', 'list', 'ruleset'], check=False)
        return dict(firewall_snapshot(host),
                    nft=nft_canonical([COUNTER.sub('counter', line) for line in ruleset.stdout.splitlines()])
                    if ruleset.returncode == 0 else ['! ' + ruleset.stderr.strip()])

    return snap


def cut(host):
    return {name: {p: o for p, o in paths.items() if p in CUT}
            for name, paths in netfence_lab.probe(host, service='memcached', paths=CUT).items()}


@contextlib.contextmanager
def readonly_ip6tables_restore(host):
    """ip6tables(-nft)-restore fails in the SSH sessions of ``host`` (its sshd's mount namespace)."""
    multi = '/usr/sbin/xtables-%s-multi' % variant(host)
    real = os.path.join(host.lib_dir, 'xtables-multi.real')
    wrapper = os.path.join(host.lib_dir, 'xtables-standin.sh')
    shutil.copy2(multi, real)
    with open(wrapper, 'w', encoding='utf-8') as handle:
        handle.write(STANDIN.replace('{real}', real))
    os.chmod(wrapper, 0o755)
    with open(os.path.join(host.run_dir, 'sshd.pid'), encoding='ascii') as handle:
        pid = handle.read().strip()
    assert os.readlink(f'/proc/{pid}/ns/mnt') != os.readlink('/proc/self/ns/mnt'), 'sshd shares our mounts'
    enter = ['nsenter', '-t', pid, '-m', '--']
    subprocess.run(enter + ['mount', '--bind', wrapper, multi], check=True)
    try:
        yield
    finally:
        subprocess.run(enter + ['umount', multi], check=True)


@contextlib.contextmanager
def held_lock(host, blackout):
    """Hold the host lock of ``host`` (its /var/lib/netfence is host.lib_dir/netfence-state) as a
    run would: flock, then pid / blackout / started written into it."""
    path = os.path.join(host.lib_dir, 'netfence-state', 'host.lock')
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, 'a+', encoding='utf-8') as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        handle.truncate(0)
        handle.write(json.dumps({'pid': os.getpid(), 'blackout': blackout, 'started': '2026-12-02T00:00:00Z'}))
        handle.flush()
        try:
            yield
        finally:
            handle.truncate(0)
            fcntl.flock(handle, fcntl.LOCK_UN)


def test_v6_failing_after_v4_leaves_every_firewall_as_it_was(host, run_module, whole):
    before, answers = whole(host), cut(host)
    assert all(o == 'ok' for paths in answers.values() for o in paths.values()), answers
    with readonly_ip6tables_restore(host):
        result = run_module(host, 'blackout', service='memcached')
    assert result.failed and 'read-only stand-in' in result['msg'], result.get('msg')
    assert result['failed_backend'] == 'iptables %s ipv6' % variant(host)
    assert [c['backend'] for c in result['compensated']] == ['iptables %s ipv4' % variant(host)]
    assert result['not_compensated'] == []
    assert result['outcome'] == 'rolled_back' and result['changed'] is False
    assert whole(host) == before
    assert cut(host) == answers


def test_eight_concurrent_blackouts_and_restores_leave_no_trace(host, run_module, whole, netfence_rules):
    before = whole(host)
    started = [run_module.start(host, 'blackout', args=dict(sel, lock_timeout=300), timeout=900) for sel in CONCURRENT]
    results = [p.result() for p in started]
    for sel, result in zip(CONCURRENT, results):
        check_ok(result, 'blackout %s' % sel)
        assert result['outcome'] == 'applied', (sel, result['outcome'])
    names = {r['blackout'] for r in results}
    assert len(names) == 8 and {blackout_of(line) for _k, line in netfence_rules(host)} == names
    assert all(any('bo=%s ' % r['blackout'] in line for line in r['rules']['ipv4']) for r in results)
    restores = [run_module.start(host, 'blackout', args=dict(sel, state='absent', lock_timeout=300), timeout=900)
                for sel in CONCURRENT]
    for sel, pending in zip(CONCURRENT, restores):
        result = pending.result()
        check_ok(result, 'restore %s' % sel)
        assert result['outcome'] == 'restored', (sel, result['outcome'])
    assert whole(host) == before


def test_a_held_host_lock_fails_the_run_after_lock_timeout_naming_the_holder(host, run_module, whole):
    before = whole(host)
    with held_lock(host, 'trust-holder'):
        started = time.monotonic()
        result = run_module(host, 'blackout', service='memcached', lock_timeout=3)
        waited = time.monotonic() - started
    assert result.failed and 'holds the host lock' in result['msg'], result.get('msg')
    assert 'pid %d (blackout trust-holder, since 2026-12-02T00:00:00Z)' % os.getpid() in result['msg']
    assert result['holder']['blackout'] == 'trust-holder' and waited >= 3
    assert whole(host) == before


def test_restore_with_docker_user_deleted_removes_output_and_input_rules(host, run_module, whole, netfence_rules):
    before = whole(host)
    saved = before['ipv4/%s' % variant(host)]
    forward = [line for line in saved if line.startswith('-A FORWARD ')]
    position = forward.index('-A FORWARD -j DOCKER-USER') + 1
    user_rules = [line[len('-A DOCKER-USER '):] for line in saved if line.startswith('-A DOCKER-USER ')]
    check_ok(run_module(host, 'blackout', service='memcached'), 'blackout')
    chains = {line.split()[1] for _k, line in netfence_rules(host)}
    assert {'DOCKER-USER', 'OUTPUT', 'INPUT'} <= chains, chains
    ipt = ['iptables-%s' % variant(host)]
    for argv in (['-D', 'FORWARD', '-j', 'DOCKER-USER'], ['-F', 'DOCKER-USER'], ['-X', 'DOCKER-USER']):
        netfence_lab.host_exec(host, ipt + argv)
    try:
        result = run_module(host, 'blackout', service='memcached', state='absent')
        check_ok(result, 'restore')
        assert result['outcome'] == 'restored' and result['changed'] is True
        assert 'DOCKER-USER chain not found' in ' '.join(result['firewall']['notes'])
        assert [line for _k, line in netfence_rules(host) if blackout_of(line) == 'memcached'] == []
    finally:
        netfence_lab.host_exec(host, ipt + ['-N', 'DOCKER-USER'])
        for spec in user_rules:
            netfence_lab.host_exec(host, ipt + ['-A', 'DOCKER-USER'] + spec.split())
        netfence_lab.host_exec(host, ipt + ['-I', 'FORWARD', str(position), '-j', 'DOCKER-USER'])
    assert whole(host) == before


@pytest.mark.parametrize('backend', ['iptables', 'nftables'])
def test_prior_and_rollback_round_trip(host, run_module, whole, backend):
    before = whole(host)
    first = run_module(host, 'blackout', service='memcached', expires='1h', backend=backend)
    check_ok(first, 'first blackout')
    assert first['outcome'] == 'applied' and first['prior']['rules'] == []
    after_first, refused = whole(host), cut(host)
    assert all(o in REFUSED for paths in refused.values() for o in paths.values()), refused
    second = run_module(host, 'blackout', service='memcached', reject_with='icmp', direction='both', backend=backend)
    check_ok(second, 'second blackout')
    assert second['outcome'] == 'applied' and whole(host) != after_first
    assert second['prior']['record']['expires'] == first['expires']
    rolled = run_module(host, 'blackout', rollback=second['prior'])
    check_ok(rolled, 'rollback')
    assert rolled['outcome'] == 'rolled_back' and rolled['changed'] is True
    assert whole(host) == after_first
    assert cut(host) == refused
    again = run_module(host, 'blackout', rollback=second['prior'])
    assert again['outcome'] == 'unchanged' and again['changed'] is False
    gone = run_module(host, 'blackout', rollback=first['prior'])
    assert gone['outcome'] == 'rolled_back' and whole(host) == before
