# -*- coding: utf-8 -*-
# Copyright (c) 2026, netfence.docker contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Changes of the backends: compensation undoes exactly what apply did."""

from __future__ import annotations

import pytest

from ansible_collections.netfence.docker.plugins.module_utils import _backends, _iptables, _nft

TAG = 'netfence bo=svc ct=c1 id=aaaaaaaaaaaa since=20261127T120000Z p=host h=%s'
SAVED = '''*filter
:INPUT ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
-A OUTPUT -d 10.9.9.9/32 -j DROP
-A OUTPUT -d 172.18.0.2/32 -m comment --comment "{a}" -j REJECT
-A OUTPUT -d 10.9.9.8/32 -j DROP
-A OUTPUT -d 172.18.0.3/32 -m comment --comment "{b}" -j REJECT
-A INPUT -s 172.18.0.3/32 -m comment --comment "{c}" -j REJECT
COMMIT
'''.format(a=TAG % '00000001', b=TAG % '00000002', c=TAG % '00000003')


def test_compensation_reinserts_removed_rules_at_their_saved_positions():
    rules = _iptables.netfence_rules_in_save(SAVED, 'ipv4')
    added = [rules[0]]  # stands for a rule the change inserted (deleted again first)
    payload = _iptables.compensation_payload(SAVED, added, [rules[2], rules[1]])
    assert payload.splitlines() == [
        '*filter',
        '-D OUTPUT -d 172.18.0.2/32 -m comment --comment "%s" -j REJECT' % (TAG % '00000001'),
        '-I OUTPUT 4 -d 172.18.0.3/32 -m comment --comment "%s" -j REJECT' % (TAG % '00000002'),
        '-I INPUT 1 -s 172.18.0.3/32 -m comment --comment "%s" -j REJECT' % (TAG % '00000003'),
        'COMMIT',
    ]
    assert _iptables.compensation_payload(SAVED, [], []) == ''


def test_compensation_refuses_a_rule_it_cannot_place():
    rules = _iptables.netfence_rules_in_save(SAVED, 'ipv4')
    with pytest.raises(_iptables.FirewallError, match='cannot find the removed rule'):
        _iptables.compensation_payload('*filter\nCOMMIT\n', [], [rules[0]])


class FakeNft:
    def __init__(self, listing):
        self.listing = listing
        self.applied = []

    def list_text(self, nfamily):
        return self.listing

    def apply(self, text):
        self.applied.append(text)


class Rule:
    line = 'nft inet netfence forward: ip daddr 172.18.0.2 drop'
    tag = object()


@pytest.mark.parametrize('listing', ['', 'table inet netfence {\n\tchain forward {\n\t}\n}\n'])
def test_nft_change_compensates_with_the_table_as_listed_before(listing, monkeypatch):
    nft = FakeNft(listing)
    monkeypatch.setattr(_nft, 'payload', lambda *args: 'add rule inet netfence forward ...\n')
    change = _backends.NftChange(nft, 'inet', [], [], [Rule()], [])
    change.apply()
    change.compensate()
    assert nft.applied == ['add rule inet netfence forward ...\n',
                           'add table inet netfence\ndelete table inet netfence\n' + listing]
    assert change.describe() == {'backend': 'nft inet', 'added': [Rule.line], 'removed': []}


def test_nft_listing_and_snapshot_rules():
    text = ('table inet netfence {\n\tchain forward {\n\t\ttype filter hook forward priority filter - 10; '
            'policy accept;\n\t\tip daddr 172.18.0.2 ct direction original meta l4proto tcp reject with tcp reset '
            'comment "%s"\n\t}\n}\n' % (TAG.replace('p=host', 'p=forward') % '0000000a'))
    (chain, rule), = _nft.parse_listing(text)
    assert chain == 'forward' and rule.startswith('ip daddr 172.18.0.2 ')
    snap = _nft.snapshot_rule('inet', chain, rule, 'svc')
    assert snap.address == '172.18.0.2/32' and snap.identity[3] == TAG.replace('p=host', 'p=forward') % '0000000a'
    for bad, msg in ((rule.replace('172.18.0.2', '172.18.0.0/16'), 'single-address'),
                     (rule.replace('bo=svc', 'bo=other'), 'not a netfence rule')):
        with pytest.raises(_nft.PlanError, match=msg):
            _nft.snapshot_rule('inet', chain, bad, 'svc')
    with pytest.raises(_nft.PlanError, match='not a chain of ours'):
        _nft.snapshot_rule('inet', 'prerouting', rule, 'svc')


def test_a_listed_bare_reject_is_put_back_as_written():
    tag = TAG.replace('p=host', 'p=forward') % '0000000b'
    listed = 'ip daddr 172.18.0.2 ct direction original meta l4proto != tcp reject comment "%s"' % tag
    snap = _nft.snapshot_rule('inet', 'forward', listed, 'svc')
    assert snap.text == listed.replace(' reject ', ' reject with icmpx port-unreachable ')
    kept = listed.replace(' reject ', ' reject with tcp reset ')
    assert _nft.snapshot_rule('inet', 'forward', kept, 'svc').text == kept
