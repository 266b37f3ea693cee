# -*- coding: utf-8 -*-
# Copyright (c) 2025, netfence.docker contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import os
import random
import shlex
import sys

import pytest

sys.path.insert(0, os.path.dirname(__file__))

from ansible_collections.netfence.docker.plugins.module_utils._docker_api import (  # noqa: E402
    Container,
    Network,
    PublishedPort,
)
from ansible_collections.netfence.docker.plugins.module_utils._nft import plan_inet  # noqa: E402
from ansible_collections.netfence.docker.plugins.module_utils._planner import (  # noqa: E402
    MAX_NAME_LENGTH,
    Chains,
    Options,
    PlanError,
    Rule,
    Tag,
    _check_single_address,
    blackout_name,
    describe,
    expires_after,
    parse_tag,
    plan,
    quote_arg,
)
import planner_golden as golden  # noqa: E402  pylint: disable=wrong-import-position

GOLDEN_FILE = os.path.join(os.path.dirname(__file__), 'fixtures', 'planner_golden.txt')
SINCE = golden.SINCE
WEB = golden.WEB
CHAINS = golden.CHAINS
TAG = 'netfence bo=web ct=web-1 id=0123456789ab since=20250601T120000Z p=forward h=4b402dd4'


def ct(name, cid, networks, ports=(), state='running'):
    return Container(id=cid * (64 // len(cid)), name=name, state=state, labels={}, network_mode='x',
                     networks=tuple(networks), ports=tuple(ports))


# --- tags and names -------------------------------------------------------------------------

def test_tag_round_trip():
    tag = parse_tag(TAG)
    assert tag == Tag('web', 'web-1', '0123456789ab', SINCE, 'forward', '4b402dd4')
    assert tag.render() == TAG


@pytest.mark.parametrize('comment', [
    '', 'ops: allow monitoring', 'netfence', TAG + ' ', ' ' + TAG, TAG + ' extra', TAG.replace('netfence', 'Netfence'),
    TAG.replace(' h=4b402dd4', ''), TAG.replace('h=4b402dd4', 'h=4B402DD4'), TAG.replace('h=4b402dd4', 'h=4b402dd'),
    TAG.replace('id=0123456789ab', 'id=0123456789'), TAG.replace('p=forward', 'p=sideways'),
    TAG.replace('since=20250601T120000Z', 'since=20251301T120000Z'),
    TAG.replace('since=20250601T120000Z', 'since=2025-06-01T12:00:00Z'),
    TAG.replace('bo=web', 'bo=we b'), TAG.replace('bo=web', 'bo='), TAG.replace('bo=web', 'bo=-web'),
    TAG.replace('ct=web-1', 'ct=/web-1'), TAG.replace(' ', '  ', 1), TAG.replace(' ', '\t'),
    TAG.replace('bo=web', 'bo=' + 'w' * 101), None, 42,
])
def test_foreign_comments_are_not_ours(comment):
    assert parse_tag(comment) is None


@pytest.mark.parametrize('since', [
    '20250601T120000Z', '20240229T235959Z', '20260229T000000Z', '20261127T235960Z', '20261127T235961Z',
    '00001127T000000Z', '00011127T000000Z', '99991231T235959Z', '20261327T000000Z', '20261100T000000Z',
    '20260031T000000Z', '20260431T000000Z', '20261127T240000Z', '20261127T236000Z', '20261127T000099Z',
])
def test_parse_tag_since_reads_as_strptime(since):
    """since is read by hand: the same datetime (or the same rejection) as strptime(SINCE_FORMAT)."""
    try:
        expected = dt.datetime.strptime(since, '%Y%m%dT%H%M%SZ').replace(tzinfo=dt.timezone.utc)
    except ValueError:
        expected = None
    tag = parse_tag(TAG.replace('since=20250601T120000Z', 'since=' + since))
    assert (tag.since if tag else None) == expected


def test_tag_render_is_validated_once_and_cached():
    tag = Tag('web', 'web-1', '0123456789ab', SINCE, 'forward', '4b402dd4')
    assert tag.render() == TAG and tag.render() is tag.render()
    # the cache is not a field: equality, hashing, repr and replace see the fields only
    assert tag == parse_tag(TAG) and hash(tag) == hash(parse_tag(TAG)) and '_rendered' not in repr(tag)
    other = dataclasses.replace(tag, path='host')
    assert other.render() != TAG and other.render().endswith('p=host h=4b402dd4')
    bad = Tag('web', 'web 1', '0123456789ab', SINCE, 'forward', '4b402dd4')
    for dummy in range(2):  # an invalid tag is refused every time (nothing cached)
        with pytest.raises(PlanError, match='cannot render a valid rule tag'):
            bad.render()


@pytest.mark.parametrize('kwargs, expected', [
    ({'service': 'web'}, 'web'),
    ({'service': 'web', 'project': 'shop'}, 'shop/web'),
    ({'names': ['b', 'a', 'b']}, 'a,b'),
    ({'name': 'maintenance.2025-06', 'service': 'web'}, 'maintenance.2025-06'),
    ({'name': 'x', 'labels': None}, 'x'),
])
def test_blackout_name(kwargs, expected):
    kwargs.pop('labels', None)
    assert blackout_name(**kwargs) == expected


@pytest.mark.parametrize('kwargs', [
    {}, {'name': 'bad name'}, {'name': 'x;y'}, {'name': '$(id)'}, {'name': 'a' * 101},
    {'service': 'web', 'project': 'p' * 100}, {'names': ['c%d' % i for i in range(40)]}, {'name': '/x'},
])
def test_blackout_name_rejects(kwargs):
    with pytest.raises(PlanError):
        blackout_name(**kwargs)


def test_quote_arg():
    assert quote_arg('abc-1_2') == 'abc-1_2'
    assert quote_arg('a b') == '"a b"'
    assert quote_arg('say "hi"\\') == '"say \\"hi\\"\\\\"'
    assert shlex.split(quote_arg('team-a "trusted" peers')) == ['team-a "trusted" peers']


# --- options --------------------------------------------------------------------------------

def test_options_build_normalises():
    opts = Options.build(ports=[443, '80', '53/udp', (80, 'tcp'), '80/TCP'],
                         allow_from=['fd00:1::5/64', '10.1.2.3/8', '192.168.1.1', '10.0.0.0/8'],
                         expires=dt.datetime(2025, 6, 1, 16, 30, 0, 123456,
                                             tzinfo=dt.timezone(dt.timedelta(hours=2))))
    assert opts.ports == ((53, 'udp'), (80, 'tcp'), (443, 'tcp'))
    assert opts.allow_from == ('10.0.0.0/8', '192.168.1.1/32', 'fd00:1::/64')
    assert opts.expires == dt.datetime(2025, 6, 1, 14, 30, tzinfo=dt.timezone.utc)
    assert opts.cidrs('ipv6') == ('fd00:1::/64',)


@pytest.mark.parametrize('kwargs', [
    {'direction': 'outbound'}, {'reject_with': 'tcp-reset'}, {'ports': [0]}, {'ports': [70000]},
    {'ports': ['80/sctp']}, {'ports': ['http']}, {'ports': [True]}, {'allow_from': ['10.0.0.0/33']},
    {'allow_from': ['0.0.0.0/0']}, {'allow_from': ['::/0']}, {'allow_from': ['$(id)']},
])
def test_options_reject(kwargs):
    with pytest.raises(PlanError):
        Options.build(**kwargs)


def test_options_direct_construction_must_be_normalised():
    with pytest.raises(PlanError):
        Options(ports=((80, 'tcp'), (53, 'udp')))
    with pytest.raises(PlanError):
        Options(allow_from=('10.1.2.3/8',))


def test_expires_after():
    assert expires_after(SINCE, 9000) == dt.datetime(2025, 6, 1, 14, 30, tzinfo=dt.timezone.utc)


# --- golden rule text -----------------------------------------------------------------------

DEFAULT_GOLDEN = [
    'ipv4 -A DOCKER-USER -s 172.18.0.2/32 -p tcp -m tcp ! --tcp-flags RST RST -m conntrack --ctdir REPLY -m comment --comment '
    '"netfence bo=web ct=web-1 id=0123456789ab since=20250601T120000Z p=reply h=a90eff1b" -j REJECT --reject-with tcp-reset',
    'ipv4 -A DOCKER-USER -d 172.18.0.2/32 -p tcp -m conntrack --ctdir ORIGINAL -m comment --comment '
    '"netfence bo=web ct=web-1 id=0123456789ab since=20250601T120000Z p=forward h=6fd44563" -j REJECT --reject-with tcp-reset',
    'ipv4 -A DOCKER-USER -d 172.18.0.2/32 ! -p tcp -m conntrack --ctdir ORIGINAL -m comment --comment '
    '"netfence bo=web ct=web-1 id=0123456789ab since=20250601T120000Z p=forward h=fcd698d2" -j REJECT --reject-with icmp-port-unreachable',
    'ipv4 -A OUTPUT -d 172.18.0.2/32 -p tcp -m conntrack --ctdir ORIGINAL -m comment --comment '
    '"netfence bo=web ct=web-1 id=0123456789ab since=20250601T120000Z p=host h=fcf66de9" -j REJECT --reject-with tcp-reset',
    'ipv4 -A OUTPUT -d 172.18.0.2/32 ! -p tcp -m conntrack --ctdir ORIGINAL -m comment --comment '
    '"netfence bo=web ct=web-1 id=0123456789ab since=20250601T120000Z p=host h=1eaf8b81" -j REJECT --reject-with icmp-port-unreachable',
    'ipv4 -A INPUT -s 172.18.0.2/32 -p tcp -m tcp ! --tcp-flags RST RST -m conntrack --ctdir REPLY -m comment --comment '
    '"netfence bo=web ct=web-1 id=0123456789ab since=20250601T120000Z p=reply h=bc3b9218" -j REJECT --reject-with tcp-reset',
    'ipv4 -A OUTPUT -d 127.0.0.1/32 -p tcp -m tcp --dport 8080 -m conntrack --ctdir ORIGINAL -m comment --comment '
    '"netfence bo=web ct=web-1 id=0123456789ab since=20250601T120000Z p=loopback h=462922b7" -j REJECT --reject-with tcp-reset',
    'ipv6 -A DOCKER-USER -s fd00::2/128 -p tcp -m tcp ! --tcp-flags RST RST -m conntrack --ctdir REPLY -m comment --comment '
    '"netfence bo=web ct=web-1 id=0123456789ab since=20250601T120000Z p=reply h=ee8ba4b9" -j REJECT --reject-with tcp-reset',
    'ipv6 -A DOCKER-USER -d fd00::2/128 -p tcp -m conntrack --ctdir ORIGINAL -m comment --comment '
    '"netfence bo=web ct=web-1 id=0123456789ab since=20250601T120000Z p=forward h=43cd040e" -j REJECT --reject-with tcp-reset',
    'ipv6 -A DOCKER-USER -d fd00::2/128 ! -p tcp -m conntrack --ctdir ORIGINAL -m comment --comment '
    '"netfence bo=web ct=web-1 id=0123456789ab since=20250601T120000Z p=forward h=53b09ad5" -j REJECT --reject-with icmp6-port-unreachable',
    'ipv6 -A OUTPUT -d fd00::2/128 -p tcp -m conntrack --ctdir ORIGINAL -m comment --comment '
    '"netfence bo=web ct=web-1 id=0123456789ab since=20250601T120000Z p=host h=a55ecc94" -j REJECT --reject-with tcp-reset',
    'ipv6 -A OUTPUT -d fd00::2/128 ! -p tcp -m conntrack --ctdir ORIGINAL -m comment --comment '
    '"netfence bo=web ct=web-1 id=0123456789ab since=20250601T120000Z p=host h=2c74a1f9" -j REJECT --reject-with icmp6-port-unreachable',
    'ipv6 -A INPUT -s fd00::2/128 -p tcp -m tcp ! --tcp-flags RST RST -m conntrack --ctdir REPLY -m comment --comment '
    '"netfence bo=web ct=web-1 id=0123456789ab since=20250601T120000Z p=reply h=b6de68a8" -j REJECT --reject-with tcp-reset',
    'ipv6 -A OUTPUT -d ::1/128 -p tcp -m tcp --dport 8080 -m conntrack --ctdir ORIGINAL -m comment --comment '
    '"netfence bo=web ct=web-1 id=0123456789ab since=20250601T120000Z p=loopback h=8d94495f" -j REJECT --reject-with tcp-reset',
]

ICMP_PORTS_ALLOW_EXPIRES_V4 = [
    '-A DOCKER-USER -s 10.0.0.0/8 -d 172.18.0.2/32 -m conntrack --ctdir ORIGINAL -m time --datestop 2025-06-01T14:30:00 '
    '-m comment --comment "netfence bo=web ct=web-1 id=0123456789ab since=20250601T120000Z p=forward h=d594afab" -j RETURN',
    '-A DOCKER-USER -d 172.18.0.2/32 -p tcp -m tcp --dport 11211 -m conntrack --ctdir ORIGINAL -m time --datestop 2025-06-01T14:30:00 '
    '-m comment --comment "netfence bo=web ct=web-1 id=0123456789ab since=20250601T120000Z p=forward h=46bc1ef3" '
    '-j REJECT --reject-with icmp-port-unreachable',
    '-A OUTPUT ! -s 10.0.0.0/8 -d 172.18.0.2/32 -p tcp -m tcp --dport 11211 -m conntrack --ctdir ORIGINAL -m time --datestop '
    '2025-06-01T14:30:00 -m comment --comment "netfence bo=web ct=web-1 id=0123456789ab since=20250601T120000Z p=host h=0b017264" '
    '-j REJECT --reject-with icmp-port-unreachable',
]


def lines(rules):
    return ['%s %s' % (r.family, r.line) for r in rules]


def test_golden_default():
    assert lines(plan('web', [WEB], Options.build(), SINCE, CHAINS)) == DEFAULT_GOLDEN


def test_golden_icmp_port_allow_expires_ipv4_only():
    opts = Options.build(reject_with='icmp', ports=[11211], allow_from=['10.0.0.0/8'],
                         expires=golden.EXPIRES, loopback=True)
    rules = plan('web', [WEB], opts, SINCE, Chains(families=('ipv4',)))
    # no loopback rule: the published port 8080 maps container port 80, not 11211
    assert [r.line for r in rules] == ICMP_PORTS_ALLOW_EXPIRES_V4


def test_golden_all_combinations():
    text = golden.render_all()
    if os.environ.get('NETFENCE_UPDATE_GOLDEN'):
        with open(GOLDEN_FILE, 'w', encoding='utf-8') as fh:
            fh.write(text)
    with open(GOLDEN_FILE, encoding='utf-8') as fh:
        assert text == fh.read()


@pytest.mark.parametrize('kwargs', list(golden.combinations()), ids=golden.combo_id)
def test_every_combination_invariants(kwargs):
    opts = Options.build(**kwargs)
    rules = plan('web', [WEB], opts, SINCE, CHAINS)
    assert rules == plan('web', [WEB], opts, SINCE, CHAINS)
    assert len({r.identity for r in rules}) == len(rules)
    for rule in rules:
        tokens = shlex.split(rule.spec)
        opt = '-s' if rule.path in ('outbound', 'reply') else '-d'
        idx = tokens.index(opt)
        assert idx == 0 or tokens[idx - 1] != '!'
        assert tokens[idx + 1] == rule.address
        assert rule.address.endswith('/32' if rule.family == 'ipv4' else '/128')
        comment = tokens[tokens.index('--comment') + 1]
        assert len(comment) <= 255 and parse_tag(comment) == rule.tag
        # h = sha1(family|table|chain|spec without comment|bo|id)[:8]
        without = rule.spec.replace(' -m comment --comment "%s"' % comment, '')
        data = '|'.join((rule.family, 'filter', rule.chain, without, 'web', '0123456789ab'))
        assert rule.tag.h == hashlib.sha1(data.encode()).hexdigest()[:8]
        assert ('--datestop' in tokens) == bool(kwargs['expires'])
        inbound = ('forward', 'host', 'loopback') + (('reply',) if kwargs['reject_with'] == 'reset' else ())
        assert rule.path in (inbound if kwargs['direction'] == 'inbound'
                             else ('forward', 'host', 'loopback', 'outbound', 'reply'))
        if rule.path == 'reply' and kwargs['direction'] == 'inbound':  # resets the service's side only
            assert '--ctdir REPLY' in rule.spec and ' -p tcp ' in rule.spec and '-j RETURN' not in rule.spec
        if rule.chain == 'OUTPUT' or rule.chain == 'INPUT':
            assert '-j RETURN' not in rule.spec and '-j ACCEPT' not in rule.spec
    assert any(r.path == 'loopback' for r in rules) == (kwargs['loopback'] and (not kwargs['ports'] or '80/tcp' in kwargs['ports']))


# --- determinism, ordering, dedupe ----------------------------------------------------------

def fleet():
    a = ct('api', '8d1c4b7a0e3f', [Network('front', '172.18.0.3', 'fd00::3'), Network('back', '172.19.0.2', None)],
           [PublishedPort(9000, 'tcp', '127.0.0.1', 9000), PublishedPort(5353, 'udp', '0.0.0.0', 5353)])
    b = ct('web', '3f6a2d9c1b7e', [Network('front', '172.18.0.2', 'fd00::2')],
           [PublishedPort(80, 'tcp', '0.0.0.0', 8080), PublishedPort(80, 'tcp', '::', 8080)])
    c = ct('zeta', 'c2e5a8b1d4f7', [Network('a', '172.20.0.2', None), Network('b', '172.20.0.2', None)])
    return [a, b, c]


@pytest.mark.parametrize('seed', range(5))
def test_shuffled_input_gives_identical_plan(seed):
    opts = Options.build(direction='both', allow_from=['10.0.0.0/8'], expires=golden.EXPIRES)
    expected = plan('svc', fleet(), opts, SINCE, CHAINS)
    rng = random.Random(seed)
    shuffled = []
    for c in fleet():
        nets = list(c.networks)
        rng.shuffle(nets)
        ports = list(c.ports)
        rng.shuffle(ports)
        shuffled.append(dataclasses.replace(c, networks=tuple(nets), ports=tuple(ports)))
    rng.shuffle(shuffled)
    assert plan('svc', shuffled + shuffled[:1], opts, SINCE, CHAINS) == expected


def test_order_family_container_network_path():
    rules = plan('svc', fleet(), Options.build(), SINCE, CHAINS)
    fams = [r.family for r in rules]
    assert fams == sorted(fams)  # ipv4 first, then ipv6
    v4 = [(r.tag.ct, r.address, r.chain) for r in rules if r.family == 'ipv4' and r.path not in ('loopback', 'reply')]
    # containers by name, networks by name (back < front), forward (DOCKER-USER) then host (OUTPUT)
    assert v4[::2] == [
        ('api', '172.19.0.2/32', 'DOCKER-USER'), ('api', '172.19.0.2/32', 'OUTPUT'),
        ('api', '172.18.0.3/32', 'DOCKER-USER'), ('api', '172.18.0.3/32', 'OUTPUT'),
        ('web', '172.18.0.2/32', 'DOCKER-USER'), ('web', '172.18.0.2/32', 'OUTPUT'),
        ('zeta', '172.20.0.2/32', 'DOCKER-USER'), ('zeta', '172.20.0.2/32', 'OUTPUT')]
    # the same address on two networks gives one set of rules
    assert len([r for r in rules if r.address == '172.20.0.2/32']) == 6  # 2 forward, 2 host, 2 reply
    replies = [(r.address, r.chain) for r in rules if r.path == 'reply' and r.family == 'ipv4']
    assert replies[:2] == [('172.19.0.2/32', 'DOCKER-USER'), ('172.19.0.2/32', 'INPUT')]
    loop = [(r.family, r.tag.ct, r.spec.split('--dport ')[1].split()[0]) for r in rules if r.path == 'loopback']
    assert loop == [('ipv4', 'api', '9000'), ('ipv4', 'web', '8080'), ('ipv6', 'web', '8080')]


def test_v6_forward_chain_none_or_forward():
    no_v6_fwd = plan('web', [WEB], Options.build(), SINCE, Chains(forward={'ipv4': 'DOCKER-USER', 'ipv6': None}))
    assert [r.chain for r in no_v6_fwd if r.family == 'ipv6'] == ['OUTPUT', 'OUTPUT', 'INPUT', 'OUTPUT']
    fwd = plan('web', [WEB], Options.build(), SINCE, Chains(forward={'ipv4': 'DOCKER-USER', 'ipv6': 'FORWARD'}))
    assert [r.chain for r in fwd if r.family == 'ipv6'][:2] == ['FORWARD', 'FORWARD']
    v4only = plan('web', [WEB], Options.build(), SINCE, Chains(families=('ipv4',)))
    assert {r.family for r in v4only} == {'ipv4'}


def test_containers_without_addresses_get_no_rules():
    host = ct('node-exporter', '1a2b3c4d5e6f', [Network('host', None, None)])
    other = ct('sidecar', '3c4d5e6f7a8b', [], [PublishedPort(80, 'tcp', '0.0.0.0', 8081)])
    rules = plan('x', [host, other], Options.build(loopback=False), SINCE, CHAINS)
    assert rules == ()


def test_loopback_bindings():
    c = ct('c', 'aaaaaaaaaaaa', [Network('n', '172.18.0.9', None)], [
        PublishedPort(1, 'tcp', '127.0.0.1', 1001), PublishedPort(2, 'tcp', '::1', 1002),
        PublishedPort(3, 'tcp', '192.168.1.5', 1003), PublishedPort(4, 'udp', '0.0.0.0', 1004),
        PublishedPort(5, 'tcp', '', 1005), PublishedPort(6, 'tcp', '::', 1006)])
    rules = [r for r in plan('c', [c], Options.build(), SINCE, CHAINS) if r.path == 'loopback']
    assert [(r.family, r.address, r.spec.split('--dport ')[1].split()[0]) for r in rules] == [
        ('ipv4', '127.0.0.1/32', '1001'), ('ipv4', '127.0.0.1/32', '1005'),
        ('ipv6', '::1/128', '1002'), ('ipv6', '::1/128', '1006')]


def test_long_container_name_is_shortened_in_tag_only():
    long_name = 'n' * 128
    c = ct(long_name, 'abcdefabcdef', [Network('n', '172.18.0.9', None)])
    rules = plan('b' * MAX_NAME_LENGTH, [c], Options.build(direction='both'), SINCE, CHAINS)
    for rule in rules:
        assert len(rule.tag.render()) <= 255
        assert long_name.startswith(rule.tag.ct)
    assert describe(rules, [c])[0]['name'] == long_name
    # the longest name fits the nft comment (127 bytes) on every path, with ct cut to one character
    nft_rules = plan_inet('b' * MAX_NAME_LENGTH, [c], Options.build(direction='both'), SINCE)
    assert {r.path for r in nft_rules} >= {'forward', 'host', 'outbound', 'reply'}
    assert max(len(r.tag.render()) for r in nft_rules) <= 127
    with pytest.raises(PlanError, match='too long'):
        plan('b' * (MAX_NAME_LENGTH + 1), [c], Options.build(), SINCE, CHAINS)


def test_max_name_length_is_derived_from_the_nft_comment_limit():
    assert MAX_NAME_LENGTH == 49
    longest = 'netfence bo=%s ct=c id=%s since=20261127T120000Z p=outbound h=%s' % (
        'b' * MAX_NAME_LENGTH, 'a' * 12, 'f' * 8)
    assert len(longest) == 127


def test_single_address_violation_raises():
    tag = parse_tag(TAG)
    bad = [
        Rule('ipv4', 'filter', 'DOCKER-USER', '-j DROP', tag, 'forward', '172.18.0.2/32'),
        Rule('ipv4', 'filter', 'DOCKER-USER', '', tag, 'forward', '172.18.0.0/16'),
        Rule('ipv4', 'filter', 'DOCKER-USER', '', tag, 'forward', '172.18.0.2/32'),
        Rule('ipv4', 'filter', 'DOCKER-USER', '', tag, 'outbound', '172.18.0.2/32'),
    ]
    matches = [[], ['-d', '172.18.0.0/16'], ['!', '-d', '172.18.0.2/32'], ['-d', '172.18.0.2/32']]
    for rule, tokens in zip(bad, matches):
        with pytest.raises(PlanError, match='single-address'):
            _check_single_address(rule, tokens)


def test_invalid_name_in_plan():
    with pytest.raises(PlanError):
        plan('bad name', [WEB], Options.build(), SINCE, CHAINS)


def test_describe():
    a, b, c = fleet()
    rules = plan('svc', [a, b, c], Options.build(direction='both'), SINCE, CHAINS)
    assert describe(rules, [a, b, c]) == [
        {'name': 'api', 'id': '8d1c4b7a0e3f', 'addresses': ['172.19.0.2', '172.18.0.3', 'fd00::3'],
         'paths': ['forward', 'host', 'loopback', 'outbound', 'reply'], 'loopback_ports': [9000], 'rules': 37},
        {'name': 'web', 'id': '3f6a2d9c1b7e', 'addresses': ['172.18.0.2', 'fd00::2'],
         'paths': ['forward', 'host', 'loopback', 'outbound', 'reply'], 'loopback_ports': [8080], 'rules': 26},
        {'name': 'zeta', 'id': 'c2e5a8b1d4f7', 'addresses': ['172.20.0.2'],
         'paths': ['forward', 'host', 'outbound', 'reply'], 'loopback_ports': [], 'rules': 12},
    ]
