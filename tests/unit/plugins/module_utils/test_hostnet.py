# -*- coding: utf-8 -*-
# Copyright (c) 2026, netfence.docker contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Containers on the host network (path ``hostnet``), the host's own addresses, loopback targets."""

from __future__ import annotations

import datetime as dt
import itertools
import json
import os
import re
import shlex

import pytest

from ansible_collections.netfence.docker.plugins.module_utils._docker_api import (
    Container,
    Network,
    PublishedPort,
    container_from_api,
)
from ansible_collections.netfence.docker.plugins.module_utils._host_addresses import (
    HostAddressError,
    host_addresses,
    parse_fib_trie,
    parse_if_inet6,
    parse_ip_json,
)
from ansible_collections.netfence.docker.plugins.module_utils._planner import (
    PATHS,
    Chains,
    Options,
    PlanError,
    describe,
    host_address_cidrs,
    host_network,
    parse_tag,
    plan,
)

GOLDEN_FILE = os.path.join(os.path.dirname(__file__), 'fixtures', 'hostnet_golden.txt')
SINCE = dt.datetime(2026, 1, 2, 3, 4, 5, tzinfo=dt.timezone.utc)
EXPIRES = dt.datetime(2026, 1, 2, 4, 0, 0, tzinfo=dt.timezone.utc)
CHAINS = Chains(forward={'ipv4': 'DOCKER-USER', 'ipv6': 'DOCKER-USER'}, families=('ipv4', 'ipv6'))
HOSTNET = Container(id='f00dfeed0001' * 5 + 'abcd', name='node-cache', state='running', labels={},
                    network_mode='host', networks=(Network('host', None, None),), ports=())
BRIDGED = Container(id='0123456789ab' + 'cd' * 26, name='web-1', state='running', labels={},
                    network_mode='app', networks=(Network('app', '172.18.0.2', None),),
                    ports=(PublishedPort(80, 'tcp', '0.0.0.0', 8080),))
# The host's addresses as the module reads them (unsorted, with loopback, a duplicate and a /prefix).
LOCAL = {'ipv4': ['172.17.0.1', '10.0.0.5', '127.0.0.1', '10.0.0.5/24'], 'ipv6': ['2001:db8::5', '::1']}

AXES = {
    'reject_with': ('reset', 'icmp', 'drop'),
    'ports': (('11411/tcp',), ('11411/tcp', '53/udp')),
    'allow_from': ((), ('10.0.0.0/8',), ('10.0.0.0/8', '192.168.0.0/16', '2001:db8:1::/48')),
    'expires': (None, EXPIRES),
}


def combinations():
    keys = list(AXES)
    for values in itertools.product(*(AXES[k] for k in keys)):
        yield dict(zip(keys, values))


def combo_id(kwargs):
    return 'rw=%s ports=%s allow=%s exp=%s' % (
        kwargs['reject_with'], ','.join(kwargs['ports']), ','.join(kwargs['allow_from']) or '-',
        'y' if kwargs['expires'] else 'n')


def render_all():
    out = []
    for kwargs in combinations():
        out.append('## ' + combo_id(kwargs))
        for rule in plan('node-cache', [HOSTNET], Options.build(**kwargs), SINCE, CHAINS, LOCAL):
            out.append('%s %s' % (rule.family, rule.line))
    return '\n'.join(out) + '\n'


# --- planner --------------------------------------------------------------------------------

def test_hostnet_is_a_path_and_tags_parse():
    assert 'hostnet' in PATHS
    tag = 'netfence bo=x ct=node-cache id=f00dfeed0001 since=20260102T030405Z p=hostnet h=0123abcd'
    assert parse_tag(tag).path == 'hostnet'


def test_host_network_from_the_api():
    raw = {'Id': 'ab' * 32, 'Names': ['/node-cache'], 'State': 'running', 'HostConfig': {'NetworkMode': 'host'},
           'NetworkSettings': {'Networks': {'host': {'IPAddress': '', 'GlobalIPv6Address': ''}}}, 'Ports': []}
    container = container_from_api(raw)
    assert host_network(container)
    assert not host_network(BRIDGED)


def test_host_address_cidrs():
    assert host_address_cidrs(LOCAL['ipv4'], 'ipv4') == ('10.0.0.5/32', '172.17.0.1/32')
    assert host_address_cidrs(LOCAL['ipv6'] + ['2001:0db8:0::5'], 'ipv6') == ('2001:db8::5/128',)
    assert host_address_cidrs(LOCAL['ipv6'], 'ipv4') == ()


def test_golden_default():
    rules = plan('node-cache', [HOSTNET], Options.build(ports=['11411/tcp']), SINCE, CHAINS, LOCAL)
    cut = '-p tcp -m tcp --dport 11411 -m conntrack --ctdir ORIGINAL -m comment --comment TAG -j REJECT ' \
          '--reject-with tcp-reset'
    assert ['%s %s' % (r.family, re.sub(r'"netfence [^"]*"', 'TAG', r.line)) for r in rules] == [
        'ipv4 -A INPUT -d 10.0.0.5/32 ' + cut,
        'ipv4 -A INPUT -d 172.17.0.1/32 ' + cut,
        'ipv4 -A OUTPUT -d 127.0.0.1/32 ' + cut,
        'ipv4 -A OUTPUT -d 10.0.0.5/32 ' + cut,
        'ipv4 -A OUTPUT -d 172.17.0.1/32 ' + cut,
        'ipv6 -A INPUT -d 2001:db8::5/128 ' + cut,
        'ipv6 -A OUTPUT -d ::1/128 ' + cut,
        'ipv6 -A OUTPUT -d 2001:db8::5/128 ' + cut,
    ]
    assert {r.path for r in rules} == {'hostnet'}
    assert {r.tag.render().rsplit(' h=', 1)[0] for r in rules} == {
        'netfence bo=node-cache ct=node-cache id=f00dfeed0001 since=20260102T030405Z p=hostnet'}


def test_golden_all_combinations():
    text = render_all()
    if os.environ.get('NETFENCE_UPDATE_GOLDEN'):
        with open(GOLDEN_FILE, 'w', encoding='utf-8') as fh:
            fh.write(text)
    with open(GOLDEN_FILE, encoding='utf-8') as fh:
        assert text == fh.read()


@pytest.mark.parametrize('kwargs', list(combinations()), ids=combo_id)
def test_every_combination_invariants(kwargs):
    opts = Options.build(**kwargs)
    rules = plan('node-cache', [HOSTNET], opts, SINCE, CHAINS, LOCAL)
    assert rules == plan('node-cache', [HOSTNET], opts, SINCE, CHAINS, dict(reversed(list(LOCAL.items()))))
    assert len({r.identity for r in rules}) == len(rules)
    loopback = {'ipv4': '127.0.0.1/32', 'ipv6': '::1/128'}
    for family in ('ipv4', 'ipv6'):
        own = set(host_address_cidrs(LOCAL[family], family))
        mine = [r for r in rules if r.family == family]
        assert {r.address for r in mine if r.chain == 'INPUT'} == own
        assert {r.address for r in mine if r.chain == 'OUTPUT'} == own | {loopback[family]}
    for rule in rules:
        tokens = shlex.split(rule.spec)
        assert rule.path == 'hostnet' and rule.chain in ('INPUT', 'OUTPUT')
        i = tokens.index('-d')
        assert tokens[i + 1] == rule.address and (i == 0 or tokens[i - 1] != '!')
        assert '--dport' in tokens and tokens[tokens.index('--ctdir') + 1] == 'ORIGINAL'
        assert ('--datestop' in tokens) == bool(kwargs['expires'])
        assert tokens[tokens.index('-j') + 1] in ('REJECT', 'DROP')  # never RETURN in a built-in chain
        cidrs = opts.cidrs(rule.family)
        if len(cidrs) == 1:
            assert tokens[:3] == ['!', '-s', cidrs[0]]
        elif cidrs:
            assert tokens.count('--src-range') == len(cidrs)
        else:
            assert '-s' not in tokens and '--src-range' not in tokens


def test_hostnet_beside_a_bridged_container():
    rules = plan('mixed', [BRIDGED, HOSTNET], Options.build(ports=['80/tcp', '11411/tcp']), SINCE, CHAINS, LOCAL)
    by_ct = {}
    for rule in rules:
        by_ct.setdefault(rule.tag.ct, set()).add(rule.path)
    assert by_ct == {'web-1': {'forward', 'host', 'reply', 'loopback'}, 'node-cache': {'hostnet'}}
    covered = {e['name']: e for e in describe(rules, [BRIDGED, HOSTNET])}
    assert covered['node-cache']['addresses'] == ['10.0.0.5', '172.17.0.1', '2001:db8::5']
    assert covered['node-cache']['loopback_ports'] == [80, 11411]  # ports: are the blackout's
    assert covered['node-cache']['paths'] == ['hostnet']


def test_hostnet_needs_ports_inbound_and_host_addresses():
    with pytest.raises(PlanError, match='node-cache uses the host network: give ports:'):
        plan('x', [HOSTNET], Options.build(), SINCE, CHAINS, LOCAL)
    with pytest.raises(PlanError, match='direction both is not possible'):
        plan('x', [HOSTNET], Options.build(ports=['1/tcp'], direction='both'), SINCE, CHAINS, LOCAL)
    with pytest.raises(PlanError, match="host's addresses are needed"):
        plan('x', [HOSTNET], Options.build(ports=['1/tcp']), SINCE, CHAINS)
    # Bridged containers need no host addresses.
    without = plan('x', [BRIDGED], Options.build(), SINCE, CHAINS)
    assert without == plan('x', [BRIDGED], Options.build(), SINCE, CHAINS, LOCAL)


def test_hostnet_with_no_address_but_loopback():
    rules = plan('x', [HOSTNET], Options.build(ports=['7/tcp']), SINCE, Chains(families=('ipv4',)), {'ipv4': []})
    assert [(r.chain, r.address) for r in rules] == [('OUTPUT', '127.0.0.1/32')]


@pytest.mark.parametrize('reject_with, target', [
    ('reset', '-j REJECT --reject-with tcp-reset'),
    ('icmp', '-j REJECT --reject-with tcp-reset'),
    ('drop', '-j DROP'),
])
def test_loopback_refusal_target(reject_with, target):
    # ICMPv6 port-unreachable for a local SYN only refuses on the retransmit (~1 s): always a reset.
    rules = [r for r in plan('web', [BRIDGED], Options.build(reject_with=reject_with), SINCE, CHAINS)
             if r.path == 'loopback']
    assert rules and all(r.spec.endswith(target) for r in rules)


# --- the host's addresses -------------------------------------------------------------------

FIB_TRIE = '''Main:
  +-- 0.0.0.0/0 3 0 5
     +-- 10.215.1.0/24 2 0 2
        +-- 10.215.1.0/30 2 0 2
           |-- 10.215.1.0
              /24 link UNICAST
           |-- 10.215.1.2
              /32 host LOCAL
        |-- 10.215.1.255
           /32 link BROADCAST
     +-- 127.0.0.0/8 2 0 2
        +-- 127.0.0.0/31 1 0 0
           |-- 127.0.0.0
              /8 host LOCAL
           |-- 127.0.0.1
              /32 host LOCAL
     +-- 172.16.0.0/14 3 0 2
        +-- 172.17.0.0/31 1 0 0
           |-- 172.17.0.0
              /16 link UNICAST
           |-- 172.17.0.1
              /32 host LOCAL
Local:
  +-- 0.0.0.0/0 3 0 5
     |-- 10.215.1.2
        /32 host LOCAL
'''

IF_INET6 = '''00000000000000000000000000000001 01 80 10 80       lo
fe8000000000000000dba9fffe7a82d0 0e 40 20 80 vethd62f66c
fd130215000100000000000000000002 61 40 00 82     eth0
fd130215000100000000000000000003 61 40 00 88     eth0
20010db8000000000000000000000007 62 40 00 80    eth1
ff020000000000000000000000000001 62 40 00 80    eth1
'''

IP_JSON = json.dumps([
    {'ifindex': 1, 'ifname': 'lo', 'addr_info': [{'family': 'inet', 'local': '127.0.0.1', 'prefixlen': 8}]},
    {'ifindex': 2, 'ifname': 'docker0', 'addr_info': [{'family': 'inet', 'local': '172.17.0.1', 'prefixlen': 16}]},
    {'ifindex': 3, 'ifname': 'eth0', 'addr_info': [
        {'family': 'inet', 'local': '10.215.1.2', 'prefixlen': 24},
        {'family': 'inet', 'local': '10.215.1.9', 'prefixlen': 24}]},
    {'ifindex': 4, 'ifname': 'veth0', 'addr_info': []},
    {},
])


def test_parse_fib_trie():
    assert parse_fib_trie(FIB_TRIE) == ['10.215.1.2', '172.17.0.1']


def test_parse_if_inet6():
    # no loopback, no link-local, no multicast, no DAD-failed address (flags 0x88)
    assert parse_if_inet6(IF_INET6) == ['2001:db8::7', 'fd13:215:1::2']


def test_parse_ip_json():
    assert parse_ip_json(IP_JSON) == ['10.215.1.2', '10.215.1.9', '172.17.0.1']
    with pytest.raises(HostAddressError):
        parse_ip_json('{not json')


def _reader(files):
    return files.get


def test_host_addresses_with_ip():
    calls = []

    def run(argv, data):
        calls.append(argv)
        return 0, IP_JSON, ''

    found = host_addresses(run, '/usr/sbin/ip', _reader({'/proc/net/if_inet6': IF_INET6}))
    assert found == {'ipv4': ['10.215.1.2', '10.215.1.9', '172.17.0.1'], 'ipv6': ['2001:db8::7', 'fd13:215:1::2']}
    assert calls == [['/usr/sbin/ip', '-j', '-4', 'addr', 'show']]


@pytest.mark.parametrize('ip_binary, answer', [(None, None), ('/sbin/ip', (1, '', 'Option "-j" is unknown')),
                                               ('/sbin/ip', (0, 'garbage', ''))])
def test_host_addresses_falls_back_to_fib_trie(ip_binary, answer):
    found = host_addresses(lambda argv, data: answer, ip_binary,
                           _reader({'/proc/net/fib_trie': FIB_TRIE}))
    assert found == {'ipv4': ['10.215.1.2', '172.17.0.1'], 'ipv6': []}


def test_host_addresses_unreadable():
    with pytest.raises(HostAddressError, match='IPv4 addresses'):
        host_addresses(lambda argv, data: (1, '', 'boom'), '/sbin/ip', _reader({}))
