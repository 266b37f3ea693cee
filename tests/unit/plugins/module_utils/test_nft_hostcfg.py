# -*- coding: utf-8 -*-
# Copyright (c) 2026, netfence.docker contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Backend choice from recorded /info payloads, nft planning/diff/payload, state record."""

from __future__ import annotations

import datetime as dt
import json
import os

import pytest

from ansible_collections.netfence.docker.plugins.module_utils import _hostcfg, _nft, _state
from ansible_collections.netfence.docker.plugins.module_utils._docker_api import (
    Container,
    Network,
    PublishedPort,
    firewall_backend,
)
from ansible_collections.netfence.docker.plugins.module_utils._manager import chain_of, diff_text
from ansible_collections.netfence.docker.plugins.module_utils._planner import Options, parse_tag

FIXTURES = os.path.join(os.path.dirname(__file__), 'fixtures')
SINCE = dt.datetime(2026, 11, 27, 12, 0, 0, tzinfo=dt.timezone.utc)
NOW = dt.datetime(2026, 11, 27, 12, 30, 0, tzinfo=dt.timezone.utc)
WEB = Container(id='0123456789ab' + 'cd' * 26, name='web-1', state='running', labels={}, network_mode='app',
                networks=(Network('app', '172.18.0.2', 'fd00::2'),),
                ports=(PublishedPort(80, 'tcp', '0.0.0.0', 8080), PublishedPort(80, 'tcp', '::', 8080)))


def info(name):
    with open(os.path.join(FIXTURES, name), encoding='utf-8') as handle:
        return json.load(handle)


@pytest.mark.parametrize('fixture, engine, option, chosen', [
    ('info_docker_20.10.json', 'iptables', 'auto', 'iptables'),
    ('info_docker_28_iptables.json', 'iptables', 'auto', 'iptables'),
    ('info_docker_28_firewalld.json', 'iptables', 'auto', 'iptables'),
    ('info_docker_29_nftables.json', 'nftables', 'auto', 'nftables'),
    ('info_docker_29_nftables.json', 'nftables', 'iptables', 'iptables'),
    ('info_docker_20.10.json', 'iptables', 'nftables', 'nftables'),
])
def test_backend_from_recorded_info(fixture, engine, option, chosen):
    reported = firewall_backend(info(fixture))
    assert reported == engine
    backend, why = _hostcfg.choose_backend(option, reported)
    assert backend == chosen
    assert ('option' in why) == (option != 'auto')


def test_backend_engine_unreachable_is_iptables():
    assert _hostcfg.choose_backend('auto', None)[0] == 'iptables'


@pytest.mark.parametrize('values, families', [
    ({'ipv4': '1', 'ipv6': '1'}, []),
    ({'ipv4': '0', 'ipv6': '1'}, ['ipv4']),
    ({'ipv4': '0', 'ipv6': '0'}, ['ipv4', 'ipv6']),
    ({'ipv4': None, 'ipv6': None}, ['ipv4', 'ipv6']),  # br_netfilter not loaded: bridged frames bypass too
])
def test_bridge_families(values, families):
    assert _hostcfg.bridge_families(values) == families


def test_inet_plan_paths_tags_and_single_address():
    rules = _nft.plan_inet('web', [WEB], Options.build(), SINCE)
    assert rules == _nft.plan_inet('web', [WEB], Options.build(), SINCE)
    texts = [(r.chain, r.path, r.body) for r in rules]
    assert ('forward', 'forward', 'ip daddr 172.18.0.2 ct direction original meta l4proto tcp reject with tcp reset') in texts
    assert ('forward', 'reply', 'ip saddr 172.18.0.2 ct direction reply meta l4proto tcp reject with tcp reset') in texts
    assert ('input', 'reply', 'ip6 saddr fd00::2 ct direction reply meta l4proto tcp reject with tcp reset') in texts
    assert ('output', 'host', 'ip6 daddr fd00::2 ct direction original meta l4proto != tcp '
            'reject with icmpx port-unreachable') in texts
    assert ('output', 'loopback', 'ip daddr 127.0.0.1 tcp dport 8080 ct direction original reject with tcp reset') in texts
    for rule in rules:
        assert parse_tag(rule.tag.render()) == rule.tag and len(rule.tag.render()) <= _nft.NFT_MAX_COMMENT
        assert rule.text.endswith('comment "%s"' % rule.tag.render())


def test_inet_plan_options():
    opts = Options.build(reject_with='drop', ports=['80/tcp'], allow_from=['10.0.0.0/8'],
                         expires=dt.datetime(2026, 11, 27, 18, 0, tzinfo=dt.timezone.utc))
    bodies = [r.body for r in _nft.plan_inet('web', [WEB], opts, SINCE, families=('ipv4',))]
    assert bodies[0] == ('ip saddr 10.0.0.0/8 ip daddr 172.18.0.2 ct direction original '
                         'meta time < "2026-11-27 18:00:00" accept')
    assert 'ip daddr 172.18.0.2 ct direction original tcp dport 80 meta time < "2026-11-27 18:00:00" drop' in bodies
    assert not any('reply' in b for b in bodies)  # resets of the service's side only with reject_with=reset


def test_bridge_plan_follows_kernel_caps():
    stateless = _nft.plan_bridge('web', [WEB], Options.build(), SINCE, ['ipv4'], _nft.BridgeCaps())
    assert [r.body for r in stateless] == ['ip daddr 172.18.0.2 drop']
    full = _nft.plan_bridge('web', [WEB], Options.build(), SINCE, ['ipv4', 'ipv6'], _nft.BridgeCaps(True, True))
    assert [r.body for r in full] == [
        'ip daddr 172.18.0.2 ct direction original meta l4proto tcp reject with tcp reset',
        'ip daddr 172.18.0.2 ct direction original meta l4proto != tcp reject with icmpx port-unreachable',
        'ip6 daddr fd00::2 ct direction original meta l4proto tcp reject with tcp reset',
        'ip6 daddr fd00::2 ct direction original meta l4proto != tcp reject with icmpx port-unreachable']
    assert {r.nfamily for r in full} == {'bridge'} and {r.chain for r in full} == {'forward'}


def listing(rules, family='inet', extra=()):
    """nft -j list table output holding ``rules`` (planned rules), handles from 10."""
    objs = [{'table': {'family': family, 'name': 'netfence'}}]
    objs += [{'chain': {'family': family, 'table': 'netfence', 'name': c}} for c in ('forward', 'input', 'output')]
    for i, rule in enumerate(list(rules) + list(extra)):
        expr = [{'match': {'op': '==', 'left': {'payload': {'protocol': 'ip6' if ':' in rule.address else 'ip',
                                                            'field': 'saddr' if rule.path in ('reply', 'outbound')
                                                            else 'daddr'}},
                           'right': rule.address.split('/')[0]}}, {'drop': None}]
        objs.append({'rule': {'family': family, 'table': 'netfence', 'chain': rule.chain, 'handle': 10 + i,
                              'comment': rule.tag.render(), 'expr': expr}})
    return json.dumps({'nftables': [{'metainfo': {'json_schema_version': 1}}] + objs})


def test_parse_table_round_trip_and_idempotent_diff():
    rules = _nft.plan_inet('web', [WEB], Options.build(), SINCE)
    existing, chains = _nft.parse_table(listing(rules), 'inet')
    assert chains == ['forward', 'input', 'output']
    assert [e.identity for e in existing] == [r.identity for r in rules]
    assert all(e.address == r.address for e, r in zip(existing, rules))
    assert _nft.diff(existing, rules, 'web', NOW) == ([], [])
    assert _nft.parse_table('', 'inet') == ([], [])


def test_diff_absent_deletes_the_table_in_one_transaction():
    rules = _nft.plan_inet('web', [WEB], Options.build(), SINCE)
    existing, _chains = _nft.parse_table(listing(rules), 'inet')
    to_add, to_remove = _nft.diff(existing, (), 'web', NOW)
    assert to_add == [] and len(to_remove) == len(rules)
    assert _nft.payload('inet', existing, to_add, to_remove) == 'delete table inet netfence\n'
    assert _nft.payload('bridge', existing, to_add, to_remove) == ''


def test_diff_other_blackout_kept_and_lost_rule_readded_in_order():
    web = _nft.plan_inet('web', [WEB], Options.build(), SINCE, families=('ipv4',))
    other = _nft.plan_inet('other', [WEB], Options.build(reject_with='drop'), SINCE, families=('ipv4',))
    existing, _c = _nft.parse_table(listing(web[1:], extra=other), 'inet')  # web's first rule was lost
    to_add, to_remove = _nft.diff(existing, web, 'web', NOW)
    lost_chain = web[0].chain
    assert to_add[0].identity == web[0].identity
    assert {r.chain for r in to_add} == {lost_chain}  # that chain is rewritten in planned order
    assert all(r.tag.bo == 'web' for r in to_remove)
    text = _nft.payload('inet', existing, to_add, to_remove)
    assert text.startswith('add table inet netfence\n')
    assert 'add chain inet netfence forward { type filter hook forward priority filter - 10; policy accept; }' in text
    assert 'delete table' not in text


def test_state_record_is_keyed_per_engine_and_atomic(tmp_path):
    path = str(tmp_path / 'lib' / 'blackouts.json')
    with _state.StateRecord('root:/var/lib/docker', path) as record:
        sec = record.section()
        sec['blackouts']['web'] = _state.record_entry(
            _nft.plan_inet('web', [WEB], Options.build(), SINCE), '2026-11-27T12:00:00Z', None, 'nftables')
        record.save()
    with _state.StateRecord('root:/srv/docker', path) as record:
        assert record.section()['blackouts'] == {}  # another engine on the same machine
    with _state.StateRecord('root:/var/lib/docker', path) as record:
        entry = record.section()['blackouts']['web']
    assert entry['backend'] == 'nftables' and len(entry['rules']) == 14
    assert [f for f in os.listdir(str(tmp_path / 'lib')) if f.endswith('.tmp')] == []
    ids = [(r['family'], r['table'], r['chain'], r['tag']) for r in entry['rules']]
    assert _state.missing_rules(entry, ids) == []
    assert len(_state.missing_rules(entry, ids[1:])) == 1
    assert len(_state.missing_rules(entry, [])) == 14  # a full flush leaves no tag to read


def test_cleanup_created_deletes_only_empty_recorded_chains():
    tables = {('ip', 'filter'): {'OUTPUT': [], 'DOCKER-USER': [{'chain': 'DOCKER-USER'}]},
              ('ip6', 'filter'): {'OUTPUT': []}}
    calls = []

    def run(argv, data):
        calls.append(argv[1:])
        if argv[1:3] == ['-j', 'list']:
            chains = tables.get((argv[4], argv[5]))
            if chains is None:
                return 1, '', 'Error: No such file or directory'
            objs = [{'chain': {'name': c}} for c in chains] + [
                {'rule': r} for rules in chains.values() for r in rules]
            return 0, json.dumps({'nftables': objs}), ''
        if argv[1:3] == ['delete', 'chain']:
            del tables[(argv[3], argv[4])][argv[5]]
            return 0, '', ''
        if argv[1:3] == ['delete', 'table']:
            del tables[(argv[3], argv[4])]
            return 0, '', ''
        return 1, '', 'unexpected'

    created = [['ip6', 'filter', None], ['ip6', 'filter', 'OUTPUT'], ['ip', 'filter', 'OUTPUT'],
               ['ip', 'filter', 'DOCKER-USER']]
    keep, done = _nft.cleanup_created(run, 'nft', created)
    assert done == ['ip filter OUTPUT', 'ip6 filter OUTPUT', 'ip6 filter']
    assert keep == [['ip', 'filter', 'DOCKER-USER']]  # still holds a rule: kept, watched
    assert ('ip6', 'filter') not in tables and 'DOCKER-USER' in tables[('ip', 'filter')]


class FakeNftTables:
    """nft -j list chains / list table over {(family, name): nft -j list table output}."""

    def __init__(self, tables, tables_error=None):
        self.tables = tables
        self.tables_error = tables_error  # (rc, stderr) of a failing ``list chains``
        self.calls = []

    def run(self, argv, data):
        self.calls.append(argv[1:])
        if argv[1:] == ['-j', 'list', 'chains']:
            if self.tables_error:
                return self.tables_error[0], '', self.tables_error[1]
            objs = [{'chain': dict(o['chain'], family=fam, table=name)}
                    for (fam, name), text in sorted(self.tables.items())
                    for o in json.loads(text)['nftables'] if 'chain' in o]
            return 0, json.dumps({'nftables': [{'metainfo': {'json_schema_version': 1}}] + objs}), ''
        if argv[1:4] == ['-j', 'list', 'table']:
            key = (argv[4], argv[5])
            if key not in self.tables:
                return 1, '', 'Error: No such file or directory\nlist table %s %s' % key
            return 0, self.tables[key], ''
        if argv[1:3] == ['-f', '-']:
            return 0, '', ''
        raise AssertionError(argv)


def read_both(nft):
    return nft.list_table('inet'), nft.list_table('bridge')


@pytest.mark.parametrize('present, listed', [
    ((), []),
    (('bridge',), [['-j', 'list', 'table', 'bridge', 'netfence']]),
    (('inet',), [['-j', 'list', 'table', 'inet', 'netfence']]),
    (('inet', 'bridge'), [['-j', 'list', 'table', 'inet', 'netfence'], ['-j', 'list', 'table', 'bridge', 'netfence']]),
])
def test_list_table_lists_only_tables_that_exist(present, listed):
    rules = _nft.plan_inet('web', [WEB], Options.build(), SINCE)
    tables = {(fam, 'netfence'): listing(rules, fam) for fam in present}
    tables[('ip', 'filter')] = '{"nftables": []}'  # foreign tables are never listed
    fast = FakeNftTables(tables)
    # what listing both tables directly gives (the chain list failing: each table is listed)
    direct = FakeNftTables(tables, tables_error=(1, 'Error: something'))
    assert read_both(_nft.Nft(fast.run, 'nft')) == read_both(_nft.Nft(direct.run, 'nft'))
    assert fast.calls == [['-j', 'list', 'chains']] + listed
    assert direct.calls[1::2] == [['-j', 'list', 'table', f, 'netfence'] for f in ('inet', 'bridge')]


def test_list_table_reads_a_table_of_ours_without_chains_as_absent():
    fake = FakeNftTables({('inet', 'netfence'): '{"nftables": [{"table": {"family": "inet", "name": "netfence"}}]}'})
    assert _nft.Nft(fake.run, 'nft').list_table('inet') == ([], [])
    assert fake.calls == [['-j', 'list', 'chains']]


def test_list_table_lists_tables_afresh_for_each_read_and_after_a_change():
    tables = {}
    fake = FakeNftTables(tables)
    nft = _nft.Nft(fake.run, 'nft')
    assert read_both(nft) == (([], []), ([], []))
    rules = _nft.plan_inet('web', [WEB], Options.build(), SINCE)
    tables[('inet', 'netfence')] = listing(rules)   # appears between two reads
    inet, bridge = read_both(nft)
    assert len(inet[0]) == len(rules) and bridge == ([], [])
    assert fake.calls == [['-j', 'list', 'chains']] * 2 + [['-j', 'list', 'table', 'inet', 'netfence']]
    nft.list_table('inet')
    nft.apply('delete table inet netfence\n')
    del tables[('inet', 'netfence')]
    assert nft.list_table('bridge') == ([], []) and nft.list_table('inet') == ([], [])
    # the change drops the listing the bridge read would have used: listed again, then used by inet
    assert fake.calls[3:] == [['-j', 'list', 'chains'], ['-j', 'list', 'table', 'inet', 'netfence'], ['-f', '-'],
                              ['-j', 'list', 'chains']]


@pytest.mark.parametrize('error, raised', [
    ((1, 'Error: Could not process rule: Operation not permitted'), 'nft list table inet netfence failed (rc=1)'),
    ((127, 'nft: not found'), None),
])
def test_list_table_errors_as_before_when_tables_cannot_be_listed(error, raised):
    def run(argv, data):
        calls.append(argv[1:])
        return error[0], '', error[1]
    calls = []
    nft = _nft.Nft(run, 'nft')
    if raised:
        with pytest.raises(_nft.NftError, match=raised.replace('(', r'\(').replace(')', r'\)')):
            nft.list_table('inet')
    else:
        assert nft.list_table('inet') == ([], [])
    assert calls == [['-j', 'list', 'chains'], ['-j', 'list', 'table', 'inet', 'netfence']]


class FakeFilterTables:
    """nft list table/chain, delete chain/table and ``nft -f`` deletion batches (all or nothing)
    over {(nfam, table): {chain: [rule dicts]}}."""

    def __init__(self, tables, batch_fails=False):
        self.tables = tables
        self.batch_fails = batch_fails
        self.calls = []

    @staticmethod
    def _delete(tables, words):
        if words[0] == 'chain':
            chains = tables.get((words[1], words[2]))
            if chains is None or words[3] not in chains:
                return 'Error: No such file or directory'
            if chains[words[3]]:
                return 'Error: Could not process rule: Device or resource busy'
            del chains[words[3]]
        else:
            if (words[1], words[2]) not in tables:
                return 'Error: No such file or directory'
            del tables[(words[1], words[2])]
        return None

    def run(self, argv, data):
        self.calls.append(argv[1:])
        args = argv[1:]
        if args[:2] == ['-j', 'list']:
            chains = self.tables.get((args[3], args[4]))
            if chains is None or (args[2] == 'chain' and args[5] not in chains):
                return 1, '', 'Error: No such file or directory'
            names = [args[5]] if args[2] == 'chain' else list(chains)
            objs = [{'chain': {'name': c}} for c in names] + [
                {'rule': dict(r, chain=c)} for c in names for r in chains[c]]
            return 0, json.dumps({'nftables': objs}), ''
        if args[0] == 'delete':
            err = self._delete(self.tables, args[1:])
            return (1, '', err) if err else (0, '', '')
        if args == ['-f', '-']:
            if self.batch_fails:
                return 1, '', 'Error: Could not process rule: Device or resource busy'
            trial = {k: {c: list(r) for c, r in v.items()} for k, v in self.tables.items()}
            for line in data.splitlines():
                words = line.split()
                assert words[0] == 'delete', line
                if self._delete(trial, words[1:]):
                    return 1, '', 'Error: batch failed'
            self.tables.clear()
            self.tables.update(trial)
            return 0, '', ''
        raise AssertionError(argv)


def reference_cleanup(run, nft, created):
    """cleanup_created as it was: every entry listed and deleted on its own."""
    keep, done = [], []
    for nfam, table, chain in sorted(created, key=lambda e: (e[2] is None, e[0], e[1], e[2] or '')):
        info = (_nft.nft_table(run, nft, nfam, table) if chain is None
                else _nft.nft_chain(run, nft, nfam, table, chain))
        if info is None:
            continue
        if chain is not None:
            if chain not in info['chains']:
                continue
            if any(r.get('chain') == chain for r in info['rules']):
                keep.append([nfam, table, chain])
                continue
            rc, _out, _err = run([nft, 'delete', 'chain', nfam, table, chain], None)
            (done.append('%s %s %s' % (nfam, table, chain)) if rc == 0 else keep.append([nfam, table, chain]))
        else:
            if info['chains']:
                keep.append([nfam, table, None])
                continue
            rc, _out, _err = run([nft, 'delete', 'table', nfam, table], None)
            (done.append('%s %s' % (nfam, table)) if rc == 0 else keep.append([nfam, table, None]))
    return keep, done


RULE = {'family': 'ip', 'table': 'filter', 'handle': 5, 'expr': []}
CREATED = [['ip', 'filter', 'INPUT'], ['ip', 'filter', 'OUTPUT'], ['ip6', 'filter', 'OUTPUT'], ['ip6', 'filter', None]]
CLEANUP_CASES = {
    # a blackout in place: every recorded chain holds its rules
    'in-place': ({('ip', 'filter'): {'INPUT': [RULE], 'OUTPUT': [RULE], 'FORWARD': [], 'DOCKER-USER': []},
                  ('ip6', 'filter'): {'OUTPUT': [RULE]}}, CREATED, 3),
    # restored: every recorded chain is empty, the ip6 table has no other chain
    'restored': ({('ip', 'filter'): {'INPUT': [], 'OUTPUT': [], 'FORWARD': [], 'DOCKER-USER': []},
                  ('ip6', 'filter'): {'OUTPUT': []}}, CREATED, 4),
    # Docker (IPv6 on since) added chains to the ip6 table: its chain goes, the table stays
    'table-in-use': ({('ip', 'filter'): {'INPUT': [RULE], 'OUTPUT': []},
                      ('ip6', 'filter'): {'OUTPUT': [], 'FORWARD': [RULE]}}, CREATED, 4),
    'all-gone': ({('ip', 'filter'): {'FORWARD': []}}, CREATED, 3),
    'one-deletion': ({('ip', 'filter'): {'INPUT': [RULE], 'OUTPUT': []}}, CREATED[:2], 3),
    'empty-table-only': ({('ip6', 'filter'): {}}, [['ip6', 'filter', None]], 2),
    'nothing': ({}, [], 0),
}


@pytest.mark.parametrize('name', sorted(CLEANUP_CASES))
@pytest.mark.parametrize('batch_fails', [False, True])
def test_cleanup_created_same_as_one_by_one(name, batch_fails):
    tables, created, calls = CLEANUP_CASES[name]

    def copy():
        return {k: {c: list(r) for c, r in v.items()} for k, v in tables.items()}

    ref, fast = FakeFilterTables(copy()), FakeFilterTables(copy(), batch_fails=batch_fails)
    expected = reference_cleanup(ref.run, 'nft', [list(e) for e in created])
    assert _nft.cleanup_created(fast.run, 'nft', [list(e) for e in created]) == expected
    assert fast.tables == ref.tables
    if not batch_fails:
        assert len(fast.calls) == calls
    assert len(fast.calls) <= len(ref.calls) + 2   # a failed batch costs it and one listing


def test_cleanup_created_one_transaction_for_every_deletion():
    tables = {('ip', 'filter'): {'INPUT': [], 'OUTPUT': [], 'FORWARD': []}, ('ip6', 'filter'): {'OUTPUT': []}}
    fake = FakeFilterTables(tables)
    keep, done = _nft.cleanup_created(fake.run, 'nft', [list(e) for e in CREATED])
    assert keep == [] and done == ['ip filter INPUT', 'ip filter OUTPUT', 'ip6 filter OUTPUT', 'ip6 filter']
    assert fake.calls == [['-j', 'list', 'chain', 'ip', 'filter', 'INPUT'],
                          ['-j', 'list', 'chain', 'ip', 'filter', 'OUTPUT'],
                          ['-j', 'list', 'table', 'ip6', 'filter'], ['-f', '-']]
    assert tables == {('ip', 'filter'): {'FORWARD': []}}


def test_the_chain_listing_is_kept_for_missing_base_chains_until_a_change():
    rules = _nft.plan_inet('web', [WEB], Options.build(), SINCE)
    fake = FakeNftTables({('inet', 'netfence'): listing(rules)})
    nft = _nft.Nft(fake.run, 'nft')
    assert nft.last_chains is None
    nft.list_table('inet')
    assert set(nft.last_chains) == {('inet', 'netfence')}
    calls = len(fake.calls)
    # missing_base_chains uses it instead of listing the chains again
    created = _nft.missing_base_chains(fake.run, 'nft', [('ipv4', 'INPUT')], nft.last_chains)
    assert created == [['ip', 'filter', None], ['ip', 'filter', 'INPUT']]
    assert fake.calls[calls:] == [['-j', 'list', 'table', 'ip', 'filter']]  # no second chain listing
    nft.apply('delete table inet netfence\n')
    assert nft.last_chains is None


def test_diff_text_prints_rules_read_back_chain_by_chain_as_planned():
    """The diff of a second run: nft lists our rules chain by chain, the plan has them container by
    container; both print alike (the diff groups by family, table and chain, keeping each chain's order)."""
    db = Container(id='fedcba987654' + 'ef' * 26, name='db-1', state='running', labels={}, network_mode='app',
                   networks=(Network('app', '172.18.0.3', 'fd00::3'),), ports=())
    planned = (_nft.plan_inet('web', [WEB, db], Options.build(), SINCE)
               + _nft.plan_bridge('web', [WEB, db], Options.build(), SINCE, ['ipv4'], _nft.BridgeCaps(True, True)))
    listed = sorted(planned, key=lambda r: (r.nfamily, r.chain))  # what nft lists: chain by chain, in order
    assert [r.line for r in listed] != [r.line for r in planned]
    assert diff_text(listed) == diff_text(planned)
    assert {chain_of(r.line) for r in planned} == {
        'nft inet netfence forward:', 'nft inet netfence input:', 'nft inet netfence output:',
        'nft bridge netfence forward:'}
    assert chain_of('-A DOCKER-USER -d 172.18.0.2/32 -j REJECT') == 'DOCKER-USER'
