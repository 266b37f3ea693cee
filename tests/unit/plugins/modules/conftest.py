# -*- coding: utf-8 -*-
# Copyright (c) 2026, netfence.docker contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Fakes for the module unit tests: a host firewall behind the module's command runner and a Docker engine.

``fake_host`` replaces ``_manager.run_argv`` (every command of the module) and ``get_bin_path`` with an in-memory
iptables (nft variant holding Docker's chains; legacy variant without tables) that applies
``iptables-restore --noflush`` payloads the way the kernel does (all or nothing, -D needs an
exact match), and ``EngineClient.list_containers`` with a list of containers. ``run_module``
runs a module's ``main()`` with ``patch_module_args`` and returns its JSON result.
"""

from __future__ import annotations

import copy
import datetime as dt
import json
import os
import types

import pytest

from ansible.module_utils import basic
from ansible.module_utils.testing import patch_module_args

from ansible_collections.netfence.docker.plugins.module_utils import _docker_api, _iptables, _manager
from ansible_collections.netfence.docker.plugins.module_utils._iptables import BINARY_NAMES

NOW = dt.datetime(2026, 11, 27, 12, 0, 0, tzinfo=dt.timezone.utc)
BASE_CHAINS = ('INPUT', 'FORWARD', 'OUTPUT')
DOCKER_CHAINS = ('DOCKER', 'DOCKER-ISOLATION-STAGE-1', 'DOCKER-USER')


def raw_container(name, cid, service=None, networks=None, ports=(), state='running', mode=None,
                  project='lab'):
    """One GET /containers/json entry. ``networks``: {net: ipv4 or (ipv4, ipv6)};
    ``ports``: [(container port, host port)] published on 0.0.0.0 and ::."""
    networks = networks if networks is not None else {'lab_front': '172.18.0.9'}
    labels = {}
    if service:
        labels = {'com.docker.compose.service': service, 'com.docker.compose.project': project}
    nets = {}
    for net, addr in networks.items():
        v4, v6 = addr if isinstance(addr, tuple) else (addr, '')
        nets[net] = {'IPAddress': v4 or '', 'GlobalIPv6Address': v6 or '', 'IPPrefixLen': 16}
    published = []
    for cport, hport in ports:
        published += [{'IP': '0.0.0.0', 'PrivatePort': cport, 'PublicPort': hport, 'Type': 'tcp'},
                      {'IP': '::', 'PrivatePort': cport, 'PublicPort': hport, 'Type': 'tcp'}]
    return {
        'Id': (cid * 64)[:64], 'Names': ['/' + name], 'State': state, 'Labels': labels,
        'HostConfig': {'NetworkMode': mode or (sorted(networks)[0] if networks else 'default')},
        'NetworkSettings': {'Networks': nets}, 'Ports': published,
    }


def lab_containers():
    """The lab's deployment: two memcached replicas (one on two networks) and a bystander."""
    return [
        raw_container('lab-memcached-1', 'a1', 'memcached', {'lab_front': '172.18.0.2', 'lab_back': '172.19.0.2'},
                      [(11211, 11211)]),
        raw_container('lab-memcached-2', 'b2', 'memcached', {'lab_front': '172.18.0.3'}, [(11211, 11212)]),
        raw_container('lab-bystander-1', 'c3', 'bystander', {'lab_front': '172.18.0.4'}, [(11211, 11311)]),
        raw_container('lab-client-front', 'd4', 'client-front', {'lab_front': '172.18.0.5'}),
    ]


class FakeFirewall:
    """iptables-nft holding Docker's chains (IPv4 and IPv6); the legacy variant has no tables."""

    def __init__(self):
        self.tables = {family: {'chains': {c: 'ACCEPT' for c in BASE_CHAINS}, 'rules': []}
                       for family in ('ipv4', 'ipv6')}
        for chain in DOCKER_CHAINS:
            self.tables['ipv4']['chains'][chain] = '-'
        self.tables['ipv4']['rules'] = [('FORWARD', '-j DOCKER-USER'), ('DOCKER-USER', '-j RETURN')]
        self.calls = []          # every argv run
        self.restores = []       # (argv, payload) of every restore
        self.deny = False        # every command fails with a permission error
        self.fail_restore = None  # stderr of a failing restore

    # -- what run_command sees
    def run(self, argv, data=None):
        argv = [str(a) for a in argv]
        self.calls.append(argv)
        base = os.path.basename(argv[0])
        family = 'ipv6' if base.startswith('ip6tables') else 'ipv4'
        legacy = '-legacy-' in base
        if argv[1:] == ['--version']:
            return 0, '%s v1.8.9 (%s)\n' % (base, 'legacy' if legacy else 'nf_tables'), ''
        if self.deny:
            return 4, '', '%s v1.8.9 (nf_tables): Could not fetch rule set generation id: Permission denied ' \
                          '(you must be root)\n' % base
        if base.endswith('-save'):
            if legacy:
                return 0, '', ''
            return 0, self.save(family), ''
        if base.endswith('-restore'):
            self.restores.append((argv, data))
            if self.fail_restore:
                return 2, '', self.fail_restore
            if legacy:
                return 1, '', 'legacy restore not expected'
            return self.restore(family, data)
        return 127, '', 'unexpected command %r' % argv

    def save(self, family):
        table = self.tables[family]
        lines = ['# Generated by fake', '*filter']
        lines += [':%s %s [0:0]' % (chain, policy) for chain, policy in table['chains'].items()]
        for chain in table['chains']:
            lines += ['-A %s %s' % (c, spec) for c, spec in table['rules'] if c == chain]
        return '\n'.join(lines + ['COMMIT', '# Completed']) + '\n'

    def restore(self, family, payload):
        rules = [r for chain in self.tables[family]['chains'] for r in self.tables[family]['rules'] if r[0] == chain]
        for number, line in enumerate(payload.splitlines(), 1):
            if line in ('*filter', 'COMMIT', ''):
                continue
            op, chain, rest = line.split(' ', 2)
            if chain not in self.tables[family]['chains']:
                return 1, '', 'iptables-restore: line %d failed: chain %s does not exist' % (number, chain)
            if op == '-D':
                if (chain, rest) not in rules:
                    return 1, '', 'iptables-restore: line %d failed: Bad rule (does a matching rule exist?)' % number
                rules.remove((chain, rest))
            elif op == '-I':
                position, spec = rest.split(' ', 1)
                at = [i for i, r in enumerate(rules) if r[0] == chain]
                if int(position) > len(at) + 1:
                    return 1, '', 'iptables-restore: line %d failed: Index of insertion too big' % number
                index = at[int(position) - 1] if int(position) <= len(at) else (at[-1] + 1 if at else len(rules))
                rules.insert(index, (chain, spec))
            else:
                return 1, '', 'iptables-restore: line %d failed: unexpected %s' % (number, op)
        self.tables[family]['rules'] = rules
        return 0, '', ''

    # -- helpers for tests
    def rules(self, family='ipv4', netfence_only=True):
        return ['-A %s %s' % r for r in self.tables[family]['rules']
                if not netfence_only or '"netfence bo=' in r[1]]

    def snapshot(self):
        """Comparable state: what iptables-save prints, per family."""
        return {family: self.save(family) for family in self.tables}

    def legacy_reads_with_table(self):
        return [argv for argv in self.calls if '-legacy-save' in argv[0] and '-t' in argv]


REAL_LIST_CONTAINERS = _docker_api.EngineClient.list_containers


class FakeEngine:
    """What EngineClient.list_containers answers (or raises)."""

    def __init__(self):
        self.containers = lab_containers()
        self.error = None
        self.hosts = []

        self.real = False  # True: the real EngineClient talks to docker_host

    def list_containers(self, client):
        if self.real:
            return REAL_LIST_CONTAINERS(client)
        self.hosts.append(client.docker_host)
        if self.error is not None:
            raise self.error
        return copy.deepcopy(self.containers)


CLOCK = [NOW]  # what now() answers inside _manager; the ``clock`` fixture moves it


class FrozenDateTime(dt.datetime):
    """datetime whose now() is CLOCK[0] (only inside _manager)."""

    @classmethod
    def now(cls, tz=None):
        return CLOCK[0] if tz is not None else CLOCK[0].replace(tzinfo=None)


@pytest.fixture
def fake_host(monkeypatch, tmp_path):
    """(firewall, engine) behind every AnsibleModule of the test; time frozen at NOW; the
    module's state file (if it keeps one) in a temporary directory."""
    monkeypatch.setenv('NETFENCE_STATE_FILE', str(tmp_path / 'netfence-state.json'))
    firewall = FakeFirewall()
    engine = FakeEngine()

    def run_argv(argv, data, env_update):
        assert isinstance(argv, list), 'commands must be argv lists, never shell strings: %r' % (argv,)
        assert env_update.get('LANG') == 'C' and env_update.get('LC_ALL') == 'C', env_update
        return firewall.run(argv, data)

    def get_bin_path(self, arg, required=False, opt_dirs=None):
        # iptables only: a host without the nft CLI (the nftables paths have their own tests)
        return '/usr/sbin/' + arg if arg in BINARY_NAMES else None

    monkeypatch.setattr(_manager, 'run_argv', run_argv)
    # /proc/net/ip_tables_names of the machine running the tests must not matter: unreadable, so
    # the legacy variant is always read (as on a host without ip_tables loaded).
    monkeypatch.setattr(_iptables, 'read_proc_tables', lambda path: None)
    monkeypatch.setattr(basic.AnsibleModule, 'get_bin_path', get_bin_path)
    monkeypatch.setattr(_docker_api.EngineClient, 'list_containers', lambda client: engine.list_containers(client))  # pylint: disable=unnecessary-lambda
    monkeypatch.setattr(_manager, 'dt', types.SimpleNamespace(datetime=FrozenDateTime, timedelta=dt.timedelta,
                                                              timezone=dt.timezone))
    return firewall, engine


@pytest.fixture
def clock():
    """``clock(datetime)`` sets the time the modules see (reset to NOW after the test)."""

    def set_time(value):
        CLOCK[0] = value

    yield set_time
    CLOCK[0] = NOW


@pytest.fixture
def make_container():
    """raw_container(name, cid, service=None, networks=None, ports=(), state='running', mode=None)."""
    return raw_container


@pytest.fixture
def run_module(capsys):
    """run_module(main, args, check=False, diff=False) -> the module's JSON result."""

    def run(main, args, check=False, diff=False):
        args = dict(args)
        if check:
            args['_ansible_check_mode'] = True
        if diff:
            args['_ansible_diff'] = True
        with patch_module_args(args):
            with pytest.raises(SystemExit):
                main()
        out = capsys.readouterr().out
        return json.loads(out)

    return run
