# -*- coding: utf-8 -*-
# Copyright (c) 2026, netfence.docker contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Issue 12: strict parsers (_validate) and the closed-charset checks of the payload renderers,
by example and by property (hypothesis, bounded: max_examples 200, no deadline)."""

from __future__ import annotations

import datetime as dt
import ipaddress
import re

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ansible_collections.netfence.docker.plugins.module_utils import _nft, _validate
from ansible_collections.netfence.docker.plugins.module_utils._docker_api import (
    Container,
    EngineDataError,
    Network,
    container_from_api,
)
from ansible_collections.netfence.docker.plugins.module_utils._host_addresses import (
    HostAddressError,
    parse_fib_trie,
    parse_ip_json,
)
from ansible_collections.netfence.docker.plugins.module_utils._iptables import restore_payload
from ansible_collections.netfence.docker.plugins.module_utils._planner import (
    Chains,
    Options,
    PlanError,
    Rule,
    make_tag,
    normalise_cidr,
    parse_port,
    parse_tag,
    plan,
)

BOUNDED = settings(max_examples=200, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
SINCE = dt.datetime(2026, 11, 27, 12, 0, 0, tzinfo=dt.timezone.utc)
INJECTION = ' -j RETURN\n-I INPUT 1 -m comment --comment INJECTED -j ACCEPT\n#'
CHAINS = Chains(forward={'ipv4': 'DOCKER-USER', 'ipv6': 'DOCKER-USER'}, families=('ipv4', 'ipv6'))

# Hostile building blocks: separators the payload formats give meaning to, zones, control and
# non-ASCII lookalike characters, and valid values to glue them to.
HOSTILE_BITS = ['\n', '\r', '\t', ' ', '%', '%1', '%eth0', ';', '#', '"', "'", '\\', '\x00', '\x7f', '\u00a0',
                '\u2028', '\u0430', '\uff11', '\u0660', '/', '//', '-', '{', '}', '$(id)', INJECTION, 'comment "x"']
VALID_ADDRESSES = ['10.0.0.1', '172.18.0.2', 'fd00::2', 'fe80::1', '::1', '2001:db8::ff', '0.0.0.0', '::']
VALID_CIDRS = VALID_ADDRESSES + ['10.0.0.0/8', 'fd00:1::/64', '192.168.1.7/24']
VALID_PORTS = ['80', '11211/tcp', '53/udp', '65535', '1/TCP']


def glued(valid: list[str]) -> st.SearchStrategy[str]:
    """Valid values, valid values with hostile bits inserted anywhere, and arbitrary text."""
    bits = st.sampled_from(HOSTILE_BITS)
    return st.one_of(
        st.sampled_from(valid),
        st.builds(lambda v, b, i: v[:i % (len(v) + 1)] + b + v[i % (len(v) + 1):], st.sampled_from(valid), bits,
                  st.integers(0, 50)),
        st.builds(lambda v, bs: v + ''.join(bs), st.sampled_from(valid), st.lists(bits, max_size=3)),
        st.text(max_size=60),
    )


# --------------------------------------------------------------------------- by example

@pytest.mark.parametrize('value, why', [
    ('fe80::1%1' + INJECTION, 'whitespace'),
    ('fe80::1%eth0', 'a zone suffix'),
    ('fd00::1%1/64', 'a zone suffix'),
    ('10.0.0.1\n', 'a newline'),
    ('10.0.0.1\t', 'a tab'),
    ('\uff11\uff10.0.0.1', 'a non-ASCII character'),
    ('10.0.0.1/8/8', 'two /'),
])
def test_cidr_refuses_zones_and_separators(value, why):
    with pytest.raises(_validate.ValidationError, match='allow_from entry .* it contains %s' % re.escape(why)):
        _validate.cidr(value, 'allow_from entry')
    with pytest.raises(PlanError, match='allow_from entry'):
        normalise_cidr(value)


def test_the_issue_payload_is_refused_before_planning():
    with pytest.raises(PlanError, match="allow_from entry 'fe80::1%1 -j RETURN"):
        Options.build(allow_from=['fe80::1%1' + INJECTION])


@pytest.mark.parametrize('value', ['80\n', '80 ', ' 80', '\uff18\uff10', '\u0668\u0660', '80/tcp\n#', '80/t cp',
                                   '11211\n-I INPUT 1 -j ACCEPT', '+80', '0x50', '8_0', True, 80.0, None])
def test_port_is_strict(value):
    with pytest.raises((_validate.ValidationError, PlanError)):
        parse_port(value)


def test_port_accepts_the_documented_forms():
    assert [parse_port(v) for v in (80, '80', '80/tcp', '53/udp', '1/TCP', (53, 'udp'), ['80', 'TCP'])] == [
        (80, 'tcp'), (80, 'tcp'), (80, 'tcp'), (53, 'udp'), (1, 'tcp'), (53, 'udp'), (80, 'tcp')]


@pytest.mark.parametrize('value', ['fe80::1%lo', '127.0.0.1\n-I INPUT', 'host name', 'h\u0430st', 'a' * 254, '',
                                   '10.0.0.0/24', '[::1]', '-oProxyCommand=x'])
def test_host_is_strict(value):
    with pytest.raises(_validate.ValidationError, match='verify_addresses entry'):
        _validate.host(value, 'verify_addresses entry')


def test_host_accepts_addresses_and_names():
    assert _validate.host('FD00::0002', 'x') == 'fd00::2'
    assert _validate.host('docker-1.example.org', 'x') == 'docker-1.example.org'
    assert _validate.host('10.213.1.2', 'x') == '10.213.1.2'


def test_expiry_stops_where_xt_time_does():
    assert _validate.expiry(_validate.XT_TIME_MAX) == _validate.XT_TIME_MAX
    with pytest.raises(_validate.ValidationError, match='2038-01-19T03:14:08Z is too far in the future'):
        _validate.expiry(_validate.XT_TIME_MAX + dt.timedelta(seconds=1))


def test_host_addresses_refuse_zones():
    with pytest.raises(HostAddressError, match='zone suffix'):
        parse_ip_json('[{"addr_info": [{"local": "fd00::1%eth0"}]}]')
    assert parse_ip_json('[{"addr_info": [{"local": "10.0.0.1"}, {}]}]') == ['10.0.0.1']
    trie = '  +-- 10.0.0.0/8\n     |-- 10.0.0.1\n        /32 host LOCAL\n     |-- \u0661.0.0.2\n        /32 host LOCAL\n'
    assert parse_fib_trie(trie) == ['10.0.0.1']


# --------------------------------------------------------------------------- renderers

def _container(name: str = 'web-1', v4: str | None = '172.18.0.2', v6: str | None = 'fd00::2') -> Container:
    return Container(id='0123456789ab' + 'cd' * 26, name=name, state='running', labels={}, network_mode='app',
                     networks=(Network('app', v4, v6),), ports=())


def _rule(spec_tail: str, chain: str = 'DOCKER-USER') -> Rule:
    tag = make_tag('web', _container(), SINCE, 'forward', ('ipv4', 'filter', chain, 'x'))
    spec = '-d 172.18.0.2/32 %s-m comment --comment "%s" -j DROP' % (spec_tail, tag.render())
    return Rule('ipv4', 'filter', chain, spec, tag, 'forward', '172.18.0.2/32')


@pytest.mark.parametrize('tail, chain', [
    ('\n-I INPUT 1 -j ACCEPT ', 'DOCKER-USER'),
    ('-s fe80::1%1 ', 'DOCKER-USER'),
    ('-m comment --comment "x" ', 'DOCKER-USER'),
    ('-s 10.0.0.1\t', 'DOCKER-USER'),
    ('', 'DOCKER-USER\n-F'),
    ('', 'DOCKER USER'),
    ('-m string --string "a;b" ', 'DOCKER-USER'),
])
def test_restore_payload_refuses_a_bad_token(tail, chain):
    with pytest.raises(_validate.RenderError):
        restore_payload([_rule(tail, chain)], [], 'ipv4')


def test_restore_payload_of_a_good_rule_passes():
    text = restore_payload([_rule('')], [], 'ipv4')
    assert text.startswith('*filter\n-I DOCKER-USER 1 -d 172.18.0.2/32 -m comment --comment "netfence bo=web ')
    assert text.endswith('\nCOMMIT\n')


@pytest.mark.parametrize('body', [
    'ip daddr 172.18.0.2 drop; add rule inet netfence input accept',
    'ip daddr 172.18.0.2 drop\nadd rule inet netfence input accept',
    'ip daddr 172.18.0.2 drop # x',
    'ip daddr 172.18.0.2 comment "x" drop',
    'ip daddr 172.18.0.2%1 drop',
])
def test_nft_payload_refuses_a_bad_token(body):
    tag = make_tag('web', _container(), SINCE, 'forward', ('inet', 'netfence', 'forward', body), 127)
    rule = _nft.NftRule(nfamily='inet', chain='forward', body=body, tag=tag, path='forward', address='172.18.0.2/32')
    with pytest.raises(_validate.RenderError):
        _nft.payload('inet', [], [rule], [])


# --------------------------------------------------------------------------- properties

@BOUNDED
@given(glued(VALID_ADDRESSES))
def test_address_is_clean_or_refused(value):
    try:
        out = _validate.address(value, 'x')
    except _validate.ValidationError as exc:
        assert str(exc).startswith('x ')
        return
    assert re.fullmatch(r'[0-9a-f:.]+', out) and out == ipaddress.ip_address(out).compressed


@BOUNDED
@given(glued(VALID_CIDRS))
def test_cidr_is_clean_or_refused(value):
    try:
        out = normalise_cidr(value)
    except PlanError as exc:
        assert 'allow_from entry' in str(exc)
        return
    assert re.fullmatch(r'[0-9a-f:.]+/[0-9]{1,3}', out) and ipaddress.ip_network(out).with_prefixlen


@BOUNDED
@given(glued(VALID_PORTS))
def test_port_is_clean_or_refused(value):
    try:
        port, proto = parse_port(value)
    except PlanError as exc:
        assert 'ports entry' in str(exc)
        return
    assert isinstance(port, int) and 1 <= port <= 65535 and proto in ('tcp', 'udp')


@BOUNDED
@given(glued(['memcached', 'lab-memcached-1', 'a.b_c-d']), st.sampled_from(['service', 'project', 'container']))
def test_docker_name_is_clean_or_refused(value, what):
    try:
        out = _validate.docker_name(value, what)
    except _validate.ValidationError as exc:
        assert str(exc).startswith(what)
        return
    assert re.fullmatch(r'[a-zA-Z0-9][a-zA-Z0-9_.-]{0,127}', out)


@BOUNDED
@given(glued(['com.docker.compose.service', 'a/b']), glued(['memcached', 'a b', '']))
def test_label_is_clean_or_refused(key, value):
    try:
        k, v = _validate.label(key, value)
    except _validate.ValidationError as exc:
        assert str(exc).startswith('labels: label')
        return
    assert re.fullmatch(r'[a-zA-Z0-9][a-zA-Z0-9_./-]*', k) and all(32 <= ord(c) < 127 for c in v)


@BOUNDED
@given(st.text(max_size=200))
def test_payload_lines_with_any_newline_or_zone_are_refused(text):
    line = '-I DOCKER-USER 1 -d 172.18.0.2/32 ' + text + ' -m comment --comment "netfence" -j DROP'
    if any(c in text for c in '\n\r\t%;#\\') or any(ord(c) > 126 or ord(c) < 32 for c in text):
        with pytest.raises(_validate.RenderError):
            _validate.iptables_line(line)
        with pytest.raises(_validate.RenderError):
            _validate.nft_line('add rule inet netfence forward ' + text + ' comment "x"')


def _hostile_container(draw_name: str, v4: str, v6: str, host_ip: str, label: str) -> dict:
    return {'Id': 'ab' * 32, 'Names': ['/' + draw_name], 'State': 'running',
            'Labels': {'com.docker.compose.service': label, 'com.docker.compose.project': 'lab'},
            'HostConfig': {'NetworkMode': 'app'},
            'NetworkSettings': {'Networks': {'app': {'IPAddress': v4, 'GlobalIPv6Address': v6}}},
            'Ports': [{'IP': host_ip, 'PrivatePort': 80, 'PublicPort': 8080, 'Type': 'tcp'}]}


def _check_iptables_payload(text: str) -> None:
    """Every line: *filter, COMMIT, or one tagged rule with a single-address destination (source for
    outbound/reply)."""
    lines = text.split('\n')
    assert lines[-1] == '' and lines[0] == '*filter' and lines[-2] == 'COMMIT'
    for line in lines[1:-2]:
        tokens = re.findall(r'"[^"]*"|[^ ]+', line)
        assert tokens[0] == '-I' and tokens[2] == '1', line
        comments = [tokens[i + 1] for i, tok in enumerate(tokens) if tok == '--comment']
        assert len(comments) == 1, line
        tag = parse_tag(comments[0].strip('"'))
        assert tag is not None, line
        opt = '-s' if tag.path in ('outbound', 'reply') else '-d'
        singles = [tokens[i + 1] for i, tok in enumerate(tokens[:-1])
                   if tok == opt and tokens[i - 1] != '!' and re.fullmatch(r'[0-9a-f:.]+/(32|128)', tokens[i + 1])]
        assert len(singles) == 1, line


def _check_nft_payload(text: str) -> None:
    for line in text.rstrip('\n').split('\n'):
        if not line.startswith('add rule'):
            assert line.startswith(('add table', 'add chain', 'delete table')), line
            continue
        body, comment = line.rsplit(' comment ', 1)
        tag = parse_tag(comment.strip('"'))
        assert tag is not None and len(comment) - 2 <= 127, line
        field = 'saddr' if tag.path in ('outbound', 'reply') else 'daddr'
        assert re.search(r' ip6? %s [0-9a-f:.]+ ' % field, body + ' '), line


@BOUNDED
@given(name=glued(['web-1', 'lab-memcached-1']), v4=glued(['172.18.0.2', '']), v6=glued(['fd00::2', '']),
       host_ip=glued(['0.0.0.0', '::', '']), label=glued(['memcached']),
       allow=st.lists(glued(VALID_CIDRS), max_size=3), ports=st.lists(glued(VALID_PORTS), max_size=3),
       bo=glued(['web', 'lab/web', 'x' * 49]), direction=st.sampled_from(['inbound', 'both']),
       reject_with=st.sampled_from(['reset', 'icmp', 'drop']))
def test_engine_and_options_give_a_clean_error_or_clean_payloads(name, v4, v6, host_ip, label, allow, ports, bo,
                                                                 direction, reject_with):
    """Whatever the engine reports and the user gives: a clear error (ValueError subclass: the module
    turns it into fail_json), or iptables and nft payloads whose every line is one tagged rule with a
    single-address match."""
    try:
        container = container_from_api(_hostile_container(name, v4, v6, host_ip, label))
        options = Options.build(direction=direction, reject_with=reject_with, ports=ports, allow_from=allow)
        rules = plan(bo, [container], options, SINCE, CHAINS)
        nft_rules = _nft.plan_inet(bo, [container], options, SINCE)
    except EngineDataError as exc:
        assert str(exc).startswith('engine answer refused: ')
        return
    except ValueError as exc:  # PlanError, ValidationError
        assert str(exc)
        return
    for family in ('ipv4', 'ipv6'):
        text = restore_payload(rules, [], family)
        if text:
            _check_iptables_payload(text)
    text = _nft.payload('inet', [], nft_rules, [])
    if text:
        _check_nft_payload(text)


@pytest.mark.parametrize('field, value, msg', [
    ('Names', ['/web\n-I INPUT 1 -j ACCEPT'], "name of container ababababab"),
    ('Names', ['/w\u0435b'], 'a non-ASCII character'),
    ('IPAddress', '172.18.0.2\n-I INPUT 1 -j ACCEPT', 'IPAddress on network app of container web'),
    ('GlobalIPv6Address', 'fe80::1%1' + INJECTION, 'GlobalIPv6Address on network app of container web'),
    ('GlobalIPv6Address', 'fd00::2%eth0', 'a zone suffix'),
    ('HostIp', '0.0.0.0\n', 'IP in Ports of container web'),
    ('PublicPort', '8080\n-I', 'PublicPort in Ports of container web'),
    ('Label', 'memcached\n-I INPUT 1 -j ACCEPT', 'label com.docker.compose.service of container web'),
    ('NetworkMode', 'app\n-I', 'NetworkMode of container web'),
    ('Network', 'app\n-I', 'network name of container web'),
])
def test_hostile_engine_values_are_refused_naming_the_container(field, value, msg):
    raw = _hostile_container('web', '172.18.0.2', 'fd00::2', '0.0.0.0', 'memcached')
    if field == 'Names':
        raw['Names'] = value
    elif field in ('IPAddress', 'GlobalIPv6Address'):
        raw['NetworkSettings']['Networks']['app'][field] = value
    elif field == 'HostIp':
        raw['Ports'][0]['IP'] = value
    elif field == 'PublicPort':
        raw['Ports'][0]['PublicPort'] = value
    elif field == 'Label':
        raw['Labels']['com.docker.compose.service'] = value
    elif field == 'NetworkMode':
        raw['HostConfig']['NetworkMode'] = value
    else:
        raw['NetworkSettings']['Networks'] = {value: {'IPAddress': '172.18.0.2'}}
    with pytest.raises(EngineDataError, match=re.escape(msg)):
        container_from_api(raw)


def test_other_hostile_labels_are_left_out_not_matched():
    raw = _hostile_container('web', '172.18.0.2', '', '', 'memcached')
    raw['Labels']['description'] = 'line one\nline two'
    raw['Labels']['ok'] = 'yes'
    labels = container_from_api(raw).labels
    assert 'description' not in labels and labels['ok'] == 'yes'
