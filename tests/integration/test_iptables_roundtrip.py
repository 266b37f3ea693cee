# -*- coding: utf-8 -*-
# Copyright (c) 2025, netfence.docker contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Real iptables round trip of planned rules, inside a scratch network namespace only.

For each variant (nft, legacy) and family: create DOCKER-USER, apply restore_payload() with
``<variant>-restore --noflush -w``, read back with ``-save`` and check netfence_rules() finds every
planned rule by identity and in planned order, a second diff is empty, and the delete payload
restores the exact original (normalised) table. Skipped unless root. Never touches the root netns.
"""

from __future__ import annotations

import datetime as dt
import os
import shutil
import subprocess
import sys
import tempfile
import uuid

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _importable() -> None:
    try:
        import ansible_collections.netfence.docker.plugins.module_utils._iptables  # noqa: F401  pylint: disable=unused-import
        return
    except ImportError:
        pass
    base = tempfile.mkdtemp(prefix='netfence-coll-')
    os.makedirs(os.path.join(base, 'ansible_collections', 'netfence'))
    os.symlink(ROOT, os.path.join(base, 'ansible_collections', 'netfence', 'docker'))
    sys.path.insert(0, base)
    for name in list(sys.modules):
        if name == 'ansible_collections' or name.startswith('ansible_collections.netfence'):
            del sys.modules[name]


_importable()

# pylint: disable=wrong-import-position
from ansible_collections.netfence.docker.plugins.module_utils._docker_api import (  # noqa: E402
    Container,
    Network,
    PublishedPort,
)
from ansible_collections.netfence.docker.plugins.module_utils._iptables import (  # noqa: E402
    BINARY_NAMES,
    Firewall,
    diff,
    netfence_rules,
    normalise,
    parse_save,
    restore_payload,
)
from ansible_collections.netfence.docker.plugins.module_utils._planner import (  # noqa: E402
    Chains,
    Options,
    plan,
)

VARIANTS = ('nft', 'legacy')
UTC = dt.timezone.utc
SINCE = dt.datetime(2025, 6, 1, 12, 0, tzinfo=UTC)
NOW = dt.datetime.now(UTC).replace(microsecond=0)
FUTURE = NOW + dt.timedelta(days=1)

pytestmark = [
    pytest.mark.skipif(os.geteuid() != 0, reason='needs root (creates a scratch network namespace)'),
    pytest.mark.skipif(shutil.which('ip') is None, reason='needs iproute2'),
]

CONTAINERS = [
    Container(id='0123456789ab' + 'cd' * 26, name='web-1', state='running', labels={}, network_mode='app',
              networks=(Network('app', '172.18.0.2', 'fd00:dead:beef::2'), Network('back', '172.19.0.2', None)),
              ports=(PublishedPort(80, 'tcp', '0.0.0.0', 8080), PublishedPort(80, 'tcp', '::', 8080))),
    Container(id='8d1c4b7a0e3f' + 'ef' * 26, name='web-2', state='running', labels={}, network_mode='app',
              networks=(Network('app', '172.18.0.3', 'fd00:dead:beef::3'),),
              ports=(PublishedPort(53, 'udp', '0.0.0.0', 5353), PublishedPort(443, 'tcp', '127.0.0.1', 8443))),
]

OPTION_SETS = {
    'default': Options.build(),
    'both-allow1-expires': Options.build(direction='both', allow_from=['10.0.0.0/8', 'fd00:1::/64'], expires=FUTURE),
    'both-allow2-ports-icmp': Options.build(direction='both', reject_with='icmp', ports=['80/tcp', '53/udp', 443],
                                            allow_from=['10.0.0.0/8', '192.168.0.0/16', 'fd00:1::/64', 'fd00:2::/64']),
    'drop-ports-noloop': Options.build(reject_with='drop', ports=[80], loopback=False, expires=FUTURE),
}


class Netns:
    def __init__(self) -> None:
        self.name = 'nftest-%d-%s' % (os.getpid(), uuid.uuid4().hex[:6])
        subprocess.run(['ip', 'netns', 'add', self.name], check=True)

    def run(self, argv, data=None):
        proc = subprocess.run(['ip', 'netns', 'exec', self.name] + list(argv), input=data, capture_output=True,
                              text=True, env=dict(os.environ, LANG='C', LC_ALL='C'), check=False)
        return proc.returncode, proc.stdout, proc.stderr

    def must(self, argv):
        rc, out, err = self.run(argv)
        assert rc == 0, (argv, err)
        return out

    def delete(self) -> None:
        subprocess.run(['ip', 'netns', 'delete', self.name], check=False)


@pytest.fixture
def netns():
    ns = Netns()
    try:
        yield ns
    finally:
        ns.delete()


def binaries():
    return {name: shutil.which(name) for name in BINARY_NAMES}


def prepare(ns: Netns, variant: str, v6_docker_user: bool = True) -> None:
    """Docker-like skeleton (DOCKER-USER jumped from FORWARD) plus foreign rules with comments."""
    for prog in ('iptables', 'ip6tables'):
        binary = '%s-%s' % (prog, variant)
        if shutil.which(binary) is None:
            pytest.skip('%s not installed' % binary)
        if prog == 'iptables' or v6_docker_user:
            ns.must([binary, '-w', '-N', 'DOCKER-USER'])
            ns.must([binary, '-w', '-A', 'FORWARD', '-j', 'DOCKER-USER'])
            ns.must([binary, '-w', '-A', 'DOCKER-USER', '-m', 'comment', '--comment', 'ops: "keep" me', '-j', 'RETURN'])
        ns.must([binary, '-w', '-A', 'OUTPUT', '-o', 'lo', '-m', 'comment', '--comment', 'netfence bo=x', '-j', 'ACCEPT'])


def by_chain(rules):
    out = {}
    for rule in rules:
        out.setdefault((rule.family, rule.chain), []).append(rule.identity)
    return out


@pytest.mark.parametrize('variant', VARIANTS)
@pytest.mark.parametrize('options', list(OPTION_SETS), ids=list(OPTION_SETS))
def test_roundtrip(netns, variant, options):
    prepare(netns, variant)
    fw = Firewall(netns.run, binaries())
    det = fw.detect()
    assert det.variant == variant
    assert det.chains == Chains(forward={'ipv4': 'DOCKER-USER', 'ipv6': 'DOCKER-USER'}, families=('ipv4', 'ipv6'))
    desired = plan('web', CONTAINERS, OPTION_SETS[options], SINCE, det.chains)
    assert {r.family for r in desired} == {'ipv4', 'ipv6'}
    for family in ('ipv4', 'ipv6'):
        before = fw.save(family)
        mine = [r for r in desired if r.family == family]
        existing = netfence_rules(parse_save(before), family)
        assert existing == []
        to_add, to_remove = diff(existing, mine, 'web', NOW)
        assert to_add == mine and to_remove == []
        fw.apply(family, restore_payload(to_add, to_remove, family))

        after = fw.save(family)
        found = netfence_rules(parse_save(after), family)
        assert by_chain(found) == by_chain(mine), 'planned order must be the chain order'
        # both variants print our rules exactly as planned
        assert sorted(r.line for r in found) == sorted(r.line for r in mine)
        assert diff(found, mine, 'web', NOW) == ([], [])

        to_add, to_remove = diff(found, (), 'web', NOW)
        assert to_add == [] and len(to_remove) == len(mine)
        fw.apply(family, restore_payload(to_add, to_remove, family))
        assert normalise(fw.save(family)) == normalise(before)


@pytest.mark.parametrize('variant', VARIANTS)
def test_update_expiry_and_v6_forward(netns, variant):
    prepare(netns, variant, v6_docker_user=False)
    fw = Firewall(netns.run, binaries())
    det = fw.detect()
    assert det.v6_forward == 'FORWARD'
    pristine = {f: fw.save(f) for f in ('ipv4', 'ipv6')}

    def converge(name, rules, now=NOW):
        for family in ('ipv4', 'ipv6'):
            existing = netfence_rules(parse_save(fw.save(family)), family)
            to_add, to_remove = diff(existing, [r for r in rules if r.family == family], name, now)
            fw.apply(family, restore_payload(to_add, to_remove, family))

    # an already-expired blackout of another name (kernel accepts a past datestop)
    stale = plan('old', CONTAINERS[1:], Options.build(expires=NOW - dt.timedelta(hours=1)), SINCE, det.chains)
    for family in ('ipv4', 'ipv6'):
        fw.apply(family, restore_payload([r for r in stale if r.family == family], [], family))
    first = plan('web', CONTAINERS[:1], Options.build(ports=[80], allow_from=['10.0.0.0/8']), SINCE, det.chains)
    converge('web', first)
    for family in ('ipv4', 'ipv6'):
        found = netfence_rules(parse_save(fw.save(family)), family)
        assert {r.tag.bo for r in found} == {'web'}, 'expired rules of any blackout are removed'
    # No DOCKER-USER for IPv6 here: forward-path rules (and the service-side resets) go to FORWARD.
    assert {r.chain for r in first if r.family == 'ipv6' and r.path == 'forward'} == {'FORWARD'}
    assert {r.chain for r in first if r.family == 'ipv6'} == {'FORWARD', 'OUTPUT', 'INPUT'}

    # re-plan with one more port: order must still be the planned order (RETURN above rejects)
    second = plan('web', CONTAINERS[:1], Options.build(ports=[80, 443], allow_from=['10.0.0.0/8']), SINCE, det.chains)
    converge('web', second)
    for family in ('ipv4', 'ipv6'):
        found = netfence_rules(parse_save(fw.save(family)), family)
        assert by_chain(found) == by_chain(r for r in second if r.family == family)

    converge('web', ())
    for family in ('ipv4', 'ipv6'):
        assert normalise(fw.save(family)) == normalise(pristine[family])


def test_detect_prefers_variant_holding_docker_user(netns):
    if not all(shutil.which(b) for b in ('iptables-legacy', 'iptables-nft')):
        pytest.skip('needs both iptables variants')
    prepare(netns, 'legacy')
    fw = Firewall(netns.run, binaries())
    det = fw.detect()
    assert det.variant == 'legacy'
    rc, out, dummy = netns.run([shutil.which('iptables-save'), '--version'])
    if rc == 0 and 'nf_tables' in out:
        assert det.notes and 'using legacy' in det.notes[0]
