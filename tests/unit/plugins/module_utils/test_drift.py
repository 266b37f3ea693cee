# -*- coding: utf-8 -*-
# Copyright (c) 2026, netfence.docker contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The drift assessment (module_utils/_drift.py) without a host: rules + containers -> verdict."""

from __future__ import annotations

import datetime as dt

from ansible_collections.netfence.docker.plugins.module_utils._docker_api import Container, Network
from ansible_collections.netfence.docker.plugins.module_utils._drift import HostView, RuleFact, assess

NOW = dt.datetime(2026, 11, 27, 12, 0, tzinfo=dt.timezone.utc)
HOST = HostView(families=('ipv4', 'ipv6'), forward={'ipv4': 'DOCKER-USER', 'ipv6': 'DOCKER-USER'})
LABELS = {'com.docker.compose.service': 'memcached', 'com.docker.compose.project': 'lab'}


def container(name, cid, *addrs, labels=None, state='running', mode='lab_front'):
    nets = tuple(Network('net%d' % i, a if ':' not in a else None, a if ':' in a else None)
                 for i, a in enumerate(addrs))
    return Container(id=cid * 32, name=name, state=state, labels=dict(LABELS if labels is None else labels),
                     network_mode=mode, networks=nets, ports=())


def rules_for(name, cid, *addrs, paths=('forward', 'host'), datestop=None):
    return [RuleFact(cid=(cid * 32)[:12], container=name, path=path,
                     address=a + ('/128' if ':' in a else '/32'),
                     chain='DOCKER-USER' if path == 'forward' else 'OUTPUT', datestop=datestop)
            for a in addrs for path in paths]


M1 = container('lab-memcached-1', 'a1', '172.18.0.2')
M2 = container('lab-memcached-2', 'b2', '172.18.0.3')


def test_every_replica_covered_is_active():
    rules = rules_for(M1.name, 'a1', '172.18.0.2') + rules_for(M2.name, 'b2', '172.18.0.3')
    found = assess('memcached', rules, [M1, M2], HOST, NOW)
    assert found.state == 'active'
    assert found.drift() == {'stale': {}, 'uncovered': {}, 'taken': {}}
    assert found.collateral() == [] and found.uncovered_replicas() == []


def test_moved_replica_address_taken_by_another_container_is_collateral():
    # lab-memcached-2 was recreated (new id, new address); the bystander got its old address.
    new_m2 = container('lab-memcached-2', 'c3', '172.18.0.9')
    bystander = container('lab-bystander-1', 'd4', '172.18.0.3', labels={'com.docker.compose.service': 'bystander'})
    rules = rules_for(M1.name, 'a1', '172.18.0.2') + rules_for(M2.name, 'b2', '172.18.0.3')
    found = assess('memcached', rules, [M1, new_m2, bystander], HOST, NOW)
    assert found.state == 'drifted'
    assert found.collateral() == [{'address': '172.18.0.3', 'rule_for': 'lab-memcached-2',
                                   'taken_by': 'lab-bystander-1'}]
    assert found.uncovered_replicas() == [{'container': 'lab-memcached-2', 'addresses': ['172.18.0.9'],
                                           'new_replica': True}]
    assert found.drift() == {'stale': {'lab-memcached-2': ['172.18.0.3']},
                             'uncovered': {'lab-memcached-2': ['172.18.0.9']},
                             'taken': {'172.18.0.3': 'lab-bystander-1'}}


def test_stale_address_nobody_holds_is_not_collateral():
    moved = container('lab-memcached-2', 'b2', '172.18.0.33')
    rules = rules_for(M1.name, 'a1', '172.18.0.2') + rules_for(M2.name, 'b2', '172.18.0.3')
    found = assess('memcached', rules, [M1, moved], HOST, NOW)
    assert found.state == 'drifted'
    assert found.collateral() == []
    assert found.uncovered_replicas() == [{'container': 'lab-memcached-2', 'addresses': ['172.18.0.33'],
                                           'new_replica': False}]


def test_missing_path_is_broken():
    rules = rules_for(M1.name, 'a1', '172.18.0.2') + rules_for(M2.name, 'b2', '172.18.0.3', paths=('host',))
    found = assess('memcached', rules, [M1, M2], HOST, NOW)
    assert found.state == 'broken'
    assert found.missing_paths == {'172.18.0.3': ['forward']}


def test_one_family_landed_is_partial_so_broken_never_active():
    dual = container('lab-memcached-1', 'a1', '172.18.0.2', 'fd00:1:1::2')
    found = assess('memcached', rules_for(dual.name, 'a1', '172.18.0.2'), [dual], HOST, NOW)
    assert found.state == 'broken'
    assert found.partial == {'lab-memcached-1': ['fd00:1:1::2']}


def test_family_without_docker_chains_is_not_partial():
    dual = container('lab-memcached-1', 'a1', '172.18.0.2', 'fd00:1:1::2')
    v4 = HostView(families=('ipv4',), forward={'ipv4': 'DOCKER-USER'})
    assert assess('memcached', rules_for(dual.name, 'a1', '172.18.0.2'), [dual], v4, NOW).state == 'active'


def test_expired_outranks_everything():
    rules = rules_for(M1.name, 'a1', '172.18.0.2', paths=('host',), datestop=NOW - dt.timedelta(seconds=1))
    found = assess('memcached', rules, [M1], HOST, NOW)
    assert found.state == 'expired' and found.expires == NOW - dt.timedelta(seconds=1)


def test_engine_down_sees_no_drift():
    rules = rules_for(M1.name, 'a1', '172.18.0.2')
    found = assess('memcached', rules, [], HOST, NOW, docker_ok=False)
    assert found.state == 'active' and found.checked is False and found.stale == []


def test_stopped_replica_is_stale_not_uncovered():
    stopped = container('lab-memcached-2', 'b2', state='exited')
    rules = rules_for(M1.name, 'a1', '172.18.0.2') + rules_for(M2.name, 'b2', '172.18.0.3')
    found = assess('memcached', rules, [M1, stopped], HOST, NOW)
    assert found.state == 'drifted'
    assert found.drift()['stale'] == {'lab-memcached-2': ['172.18.0.3']} and found.uncovered == []


def test_host_network_container_new_host_address_is_uncovered():
    hostnet = container('node-exporter', 'e5', labels={'com.docker.compose.service': 'node-exporter'}, mode='host')
    view = HostView(families=('ipv4',), forward={'ipv4': 'DOCKER-USER'},
                    local=frozenset({'10.0.0.2/32', '172.17.0.1/32'}))
    rules = [RuleFact(cid=('e5' * 32)[:12], container='node-exporter', path='hostnet', address='10.0.0.2/32',
                      chain=chain) for chain in ('INPUT', 'OUTPUT')]
    found = assess('node-exporter', rules, [hostnet], view, NOW)
    assert found.state == 'drifted'
    assert found.uncovered_replicas() == [{'container': 'node-exporter', 'addresses': ['172.17.0.1'],
                                           'new_replica': False}]
