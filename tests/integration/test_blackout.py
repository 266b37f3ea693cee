"""netfence.docker.blackout against real Docker 20.10 and 28 engines, asserted with real traffic.

Issue 3. Every test runs on one lab host of each Docker series (the first of the inventory's
``netfence_lab_docker_series``), in the lab the environment selects (NETFENCE_LAB). The
expensive part runs once per host (module-scoped fixtures): one blackout of ``memcached`` with
its check-mode prediction, held connections, a second run, a check-mode restore and the restore,
each followed by a probe of every path and a snapshot of the host's whole firewall
(iptables-save and ip6tables-save, nft and legacy variants, counters stripped). The tests
assert on what was recorded. Every blackout is restored in a ``finally`` and the host is left
without any netfence rule.

A readable report of the probe matrices, the established-connection cut times and the module's
own run time is written to tests/output/integration/blackout-<host>.md.
"""
from __future__ import annotations

import concurrent.futures
import dataclasses
import json
import re
import subprocess
import sysconfig
import time
import typing as t
from pathlib import Path

import pytest

import netfence_lab  # tests/lab is put on sys.path by conftest.py
from nf_helpers import blackout_of, check_ok, held_host, snapshot_diff, wait_quiet

# Docker 29 (both firewall backends) when the lab has it (the default lab with ../shared/docker29
# beside the checkout): skipped, saying why, elsewhere.
SERIES = ('20.10', '28', '29', '29+nft-backend')
SERVICE = 'memcached'
MEMCACHED = ('lab-memcached-1', 'lab-memcached-2')
BYSTANDER = 'lab-bystander-1'
MINE = ('memcached', 'bystander')  # the blackouts these tests create
CUT_PATHS = ('external', 'localhost4', 'localhost6', 'own_addr', 'peer:lab_front')
HELD = (  # (container, path) kept open across the blackout
    ('lab-memcached-1', 'external'), ('lab-memcached-1', 'localhost4'), ('lab-memcached-1', 'localhost6'),
    ('lab-memcached-1', 'own_addr'), ('lab-memcached-1', 'peer:lab_front'), ('lab-memcached-1', 'peer:lab_back'),
    ('lab-memcached-2', 'external'), ('lab-memcached-2', 'peer:lab_front'),
    ('lab-memcached-1', 'egress'), ('lab-memcached-2', 'egress'),
    ('lab-bystander-1', 'external'), ('lab-bystander-1', 'peer:lab_front'),
)
SINCE_RE = re.compile(r'since=\d{8}T\d{6}Z')
REPORT_DIR = Path(__file__).resolve().parents[1] / 'output' / 'integration'


# --------------------------------------------------------------------------- helpers

def restore_mine(host, run_module, netfence_rules) -> None:
    """Remove every rule of the blackouts these tests create (teardown safety net)."""
    names = sorted({blackout_of(line) for _key, line in netfence_rules(host)} & set(MINE))
    for name in names:
        run_module(host, 'blackout', service=name, state='absent')


def fw_diff(before: dict, after: dict) -> str:
    """Human-readable difference of two firewall snapshots."""
    return snapshot_diff(before, after)


def no_since(value: t.Any) -> t.Any:
    """The same structure with every tag's since=... replaced (check mode cannot know the time of
    the run that follows)."""
    return json.loads(SINCE_RE.sub('since=*', json.dumps(value)))


def outcomes(detail: dict) -> dict[str, dict[str, str]]:
    return {name: {path: cell['outcome'] for path, cell in cells.items()} for name, cells in detail.items()}


def baseline_problems(host, probe: dict[str, dict[str, str]]) -> dict[str, dict[str, str]]:
    """Paths not ok before any blackout, beyond what the host's configuration explains."""
    configs = getattr(host, 'configs', ()) or ()
    tolerated = {'localhost6'} if 'no-userland-proxy' in configs else set()
    return {name: bad for name, cells in probe.items()
            if (bad := {p: o for p, o in cells.items() if o != 'ok' and p not in tolerated})}


def exchange_all(held: dict, timeout: float = 2.0) -> dict:
    """One exchange on every held connection at once; adds 'after_run' (s since the call)."""
    start = time.monotonic()

    def one(item):
        key, conn = item
        res = dict(conn.exchange(timeout=timeout))
        res['after_run'] = round(time.monotonic() - start, 4)
        return key, res

    with concurrent.futures.ThreadPoolExecutor(max_workers=max(1, len(held))) as pool:
        return dict(pool.map(one, held.items()))


# --------------------------------------------------------------------------- fixtures

def _fw(firewall_snapshot):
    """firewall_snapshot plus our own nft tables ('nft/netfence': the nftables backend's rules)."""

    def snap(host) -> dict:
        out = firewall_snapshot(host)
        lines = []
        for family in ('inet', 'bridge'):
            res = netfence_lab.host_exec(host, ['nft', '-s', 'list', 'table', family, 'netfence'], check=False)
            lines += [line.strip() for line in res.stdout.splitlines() if line.strip()] if res.returncode == 0 else []
        out['nft/netfence'] = lines
        return out

    return snap


@pytest.fixture(scope='module', params=SERIES, ids=lambda s: f'docker{s}')
def host(request, host_of_series, run_module, netfence_rules):
    """A lab host of each Docker series, quiet before, left without any rule of ours after."""
    yield from held_host(host_of_series(request.param), netfence_rules,
                         lambda lab_host: restore_mine(lab_host, run_module, netfence_rules))


@dataclasses.dataclass
class Scenario:  # pylint: disable=too-many-instance-attributes
    """What one blackout/restore cycle of memcached on one host looked like."""

    host: t.Any
    fw_before: dict = None
    probe_before: dict = None
    held_initial: dict = None
    check: dict = None
    fw_after_check: dict = None
    real: dict = None
    held_after: dict = None
    fw_blacked: dict = None
    probe_blacked: dict = None
    second: dict = None
    fw_second: dict = None
    check_second: dict = None
    info: dict = None
    check_restore: dict = None
    fw_after_check_restore: dict = None
    restore: dict = None
    fw_restored: dict = None
    probe_restored: dict = None
    restore_again: dict = None
    info_after: dict = None


@pytest.fixture(scope='module')
def scenario(host, run_module, firewall_snapshot):
    """Blackout of memcached (check mode first), second run, check-mode restore, restore."""
    firewall_snapshot = _fw(firewall_snapshot)
    sc = Scenario(host=host)
    sc.fw_before = firewall_snapshot(host)
    sc.probe_before = netfence_lab.probe_detail(host, service='all')
    held: dict = {}
    try:
        for container, path in HELD:
            if sc.probe_before.get(container, {}).get(path, {}).get('outcome') == 'ok':
                held[(container, path)] = netfence_lab.hold_connection(host, container, path)
        sc.held_initial = {key: conn.initial for key, conn in held.items()}
        sc.check = run_module(host, 'blackout', service=SERVICE, check=True, diff=True)
        sc.fw_after_check = firewall_snapshot(host)
        sc.real = run_module(host, 'blackout', service=SERVICE, diff=True)
        sc.held_after = exchange_all(held)
        sc.fw_blacked = firewall_snapshot(host)
        sc.probe_blacked = netfence_lab.probe_detail(host, service='all')
        sc.second = run_module(host, 'blackout', service=SERVICE, diff=True)
        sc.fw_second = firewall_snapshot(host)
        sc.check_second = run_module(host, 'blackout', service=SERVICE, check=True)
        sc.info = run_module(host, 'blackout_info')
        sc.check_restore = run_module(host, 'blackout', service=SERVICE, state='absent', check=True, diff=True)
        sc.fw_after_check_restore = firewall_snapshot(host)
    finally:
        for conn in held.values():
            conn.close()
        sc.restore = run_module(host, 'blackout', service=SERVICE, state='absent', diff=True)
    sc.fw_restored = firewall_snapshot(host)
    sc.probe_restored = netfence_lab.probe_detail(host, service='all')
    sc.restore_again = run_module(host, 'blackout', service=SERVICE, state='absent')
    sc.info_after = run_module(host, 'blackout_info')
    write_report(host, sc)
    return sc


def write_report(host, sc: Scenario, extra: str = '') -> None:
    """tests/output/integration/blackout-<host>.md: matrices, cut times (best effort)."""
    try:
        REPORT_DIR.mkdir(parents=True, exist_ok=True)
        lines = [f'# {host.name}: Docker {host.series}', '']
        for title, probe in (('before', sc.probe_before), ('blacked out', sc.probe_blacked),
                             ('restored', sc.probe_restored)):
            lines += [f'## {title}', '', netfence_lab.render_table(probe), '']
        lines += ['## held connections, next exchange after the blackout', '',
                  '| container | path | outcome | elapsed s | after run s |', '|---|---|---|---|---|']
        for (container, path), res in sorted((sc.held_after or {}).items()):
            lines.append(f'| {container} | {path} | {res["outcome"]} | {res["elapsed"]} | {res["after_run"]} |')
        (REPORT_DIR / f'blackout-{host.name}.md').write_text('\n'.join(lines) + '\n' + extra, encoding='utf-8')
    except OSError:
        pass


# --------------------------------------------------------------------------- one blackout cycle

def test_lab_open_before_the_blackout(scenario):
    bad = baseline_problems(scenario.host, outcomes(scenario.probe_before))
    assert not bad, f'paths not ok before any blackout: {bad}\n{netfence_lab.render_table(scenario.probe_before)}'
    assert set(MEMCACHED) | {BYSTANDER} <= set(scenario.probe_before)
    not_held = {k: v for k, v in scenario.held_initial.items() if v['outcome'] != 'ok'}
    assert not not_held, f'connections could not be established: {not_held}'


def test_blackout_cuts_every_path_of_both_replicas(scenario):
    real, blacked = scenario.real, outcomes(scenario.probe_blacked)
    check_ok(real, 'blackout')
    assert real['changed'] is True
    assert sorted(c['name'] for c in real['containers']) == list(MEMCACHED)
    table = netfence_lab.render_table(scenario.probe_blacked)
    for name in MEMCACHED:
        expected = set(CUT_PATHS) | ({'peer:lab_back'} if name == 'lab-memcached-1' else set())
        cut = {p for p in blacked[name] if p != 'egress'}
        assert expected <= cut, f'{name}: paths not probed: {expected - cut}'
        before = outcomes(scenario.probe_before)[name]
        # Every path that was open is now refused at SYN time (localhost too: the loopback rules
        # refuse before docker-proxy accepts); a path that was not open stays as it was.
        wrong = {p: blacked[name][p] for p in cut
                 if blacked[name][p] != ('refused' if before[p] == 'ok' else before[p])}
        assert not wrong, f'{name} not refused on {wrong}\n{table}'
        slow = {p: c['elapsed'] for p, c in scenario.probe_blacked[name].items() if c['elapsed'] > 0.5}
        assert not slow, f'{name}: refusals took long: {slow}'


def test_bystander_untouched(scenario):
    before = outcomes(scenario.probe_before)[BYSTANDER]
    assert outcomes(scenario.probe_blacked)[BYSTANDER] == before, netfence_lab.render_table(scenario.probe_blacked)
    for key in [k for k in scenario.held_after if k[0] == BYSTANDER]:
        assert scenario.held_after[key]['outcome'] == 'ok', (key, scenario.held_after[key])


def test_service_own_outbound_still_works(scenario):
    blacked = outcomes(scenario.probe_blacked)
    for name in MEMCACHED:
        assert blacked[name]['egress'] == 'ok', f'{name} cannot reach out any more\n' + \
            netfence_lab.render_table(scenario.probe_blacked)
        held = scenario.held_after.get((name, 'egress'))
        assert held is not None and held['outcome'] == 'ok', (name, held)


def test_established_connections_error_within_a_second(scenario):
    cut = {k: v for k, v in scenario.held_after.items() if k[0] in MEMCACHED and k[1] != 'egress'}
    assert {('lab-memcached-1', 'external'), ('lab-memcached-1', 'localhost4'),
            ('lab-memcached-1', 'peer:lab_back')} <= set(cut), sorted(cut)
    wrong = {k: v for k, v in cut.items() if v['outcome'] not in ('reset', 'closed') or v['elapsed'] >= 1.0}
    assert not wrong, f'held connections not cut within 1 s: {wrong}'


def _tag_hash(line: str) -> str:
    m = re.search(r' h=([0-9a-f]+)"', line)
    return m.group(1) if m else line


def test_firewall_change_is_exactly_the_added_rules(scenario):
    real, before, after = scenario.real, scenario.fw_before, scenario.fw_blacked
    if real['firewall']['backend'] == 'nftables':
        # Docker 29 with its nftables backend: every rule in our table inet netfence, nothing else touched.
        added = real['added']['ipv4'] + real['added']['ipv6']
        assert added and all(line.startswith('nft inet netfence ') for line in added), added
        new = [line for line in after['nft/netfence'] if '"netfence bo=' in line]
        assert not before['nft/netfence'], before['nft/netfence']
        assert sorted(_tag_hash(line) for line in new) == sorted(_tag_hash(line) for line in added), \
            fw_diff(before, after)
        others = [k for k in before if k != 'nft/netfence']
        assert {k: after[k] for k in others} == {k: before[k] for k in others}, fw_diff(before, after)
        assert real['removed'] == {'ipv4': [], 'ipv6': []}
        return
    variant = real['firewall']['variant']
    for family in ('ipv4', 'ipv6'):
        key = f'{family}/{variant}'
        new = [line for line in after[key] if line not in before[key]]
        gone = [line for line in before[key] if line not in after[key]]
        assert not gone, f'{key}: lines removed by the blackout: {gone}'
        new_rules = [line for line in new if line.startswith('-A ')]
        assert sorted(new_rules) == sorted(real['added'][family]), f'{key}:\n' + fw_diff(before, after)
        # The first rule of a family on a host without its filter table (nft: Docker 20.10 has no
        # ip6tables) creates the table with its base chains; the restore removes it again.
        scaffold = [line for line in new if not line.startswith('-A ')]
        if scaffold:
            assert '*filter' not in before[key], f'{key}: {scaffold}'
            assert set(scaffold) <= {'*filter', ':INPUT ACCEPT', ':FORWARD ACCEPT', ':OUTPUT ACCEPT', 'COMMIT'}, \
                f'{key}: {scaffold}'
        assert real['rules'][family] == real['added'][family]
    others = [k for k in before if not k.endswith('/' + variant)]
    assert {k: after[k] for k in others} == {k: before[k] for k in others}, fw_diff(before, after)
    assert real['removed'] == {'ipv4': [], 'ipv6': []}
    for family in ('ipv4', 'ipv6'):
        for line in real['added'][family]:
            assert re.search(r' -[ds] (\d+\.\d+\.\d+\.\d+/32|[0-9a-f:]+/128) ', line), line


def test_second_run_changes_nothing(scenario):
    second = scenario.second
    check_ok(second, 'second run')
    assert second['changed'] is False
    assert second['added'] == {'ipv4': [], 'ipv6': []} and second['removed'] == {'ipv4': [], 'ipv6': []}
    assert second['rules'] == scenario.real['rules']
    assert second['since'] == scenario.real['since']
    assert scenario.fw_second == scenario.fw_blacked, fw_diff(scenario.fw_blacked, scenario.fw_second)
    check_ok(scenario.check_second, 'check-mode second run')
    assert scenario.check_second['changed'] is False
    assert scenario.check_second['added'] == {'ipv4': [], 'ipv6': []}


def test_check_mode_changes_nothing_and_predicts_the_run(scenario):
    check, real = scenario.check, scenario.real
    check_ok(check, 'check-mode blackout')
    assert scenario.fw_after_check == scenario.fw_before, fw_diff(scenario.fw_before, scenario.fw_after_check)
    assert check['changed'] is True and real['changed'] is True
    # Same rules; only the tags' since= can differ (the real run starts later).
    assert no_since(check['added']) == no_since(real['added'])
    assert check['removed'] == real['removed']
    assert no_since(check['rules']) == no_since(real['rules'])


def tags_of(text):
    """The netfence tags in diff text, sorted."""
    return sorted(re.findall(r'netfence bo=[^"]*', text))


def chain_of_line(line):
    """The chain of a rule line: '-A CHAIN ...' → CHAIN, 'nft FAMILY TABLE CHAIN: ...' → its first four words."""
    return ' '.join(line.split()[:4]) if line.startswith('nft ') else line.split()[1]


def test_diff_mode_shows_rule_lists(scenario):
    real = scenario.real
    # Shown chain by chain (each chain's rules in their order), the same for saved and planned rules.
    expected = ''.join(f'{f}: {line}\n' for f in ('ipv4', 'ipv6')
                       for line in sorted(real['rules'][f], key=chain_of_line))
    assert real['diff']['before'] == ''
    assert real['diff']['after'] == expected
    assert no_since(scenario.check['diff']) == no_since(real['diff'])
    assert scenario.second['diff']['before'] == scenario.second['diff']['after'] == expected
    if real['firewall']['backend'] == 'nftables':
        # A restore has no plan: nft lists its rules in its own normalised text; same rules = same tags.
        assert tags_of(scenario.restore['diff']['before']) == tags_of(expected) != []
    else:
        assert scenario.restore['diff']['before'] == expected
    assert scenario.restore['diff']['after'] == ''


def test_check_mode_restore_predicts_exactly(scenario):
    check, restore = scenario.check_restore, scenario.restore
    check_ok(check, 'check-mode restore')
    assert scenario.fw_after_check_restore == scenario.fw_blacked, \
        fw_diff(scenario.fw_blacked, scenario.fw_after_check_restore)
    assert check['changed'] is True and restore['changed'] is True
    assert check['removed'] == restore['removed']
    assert check['diff'] == restore['diff']


def test_restore_is_exact(scenario):
    restore = scenario.restore
    check_ok(restore, 'restore')
    assert restore['changed'] is True
    assert sorted(restore['removed']['ipv4']) == sorted(scenario.real['added']['ipv4'])
    assert sorted(restore['removed']['ipv6']) == sorted(scenario.real['added']['ipv6'])
    assert restore['rules'] == {'ipv4': [], 'ipv6': []}
    assert scenario.fw_restored == scenario.fw_before, fw_diff(scenario.fw_before, scenario.fw_restored)
    assert outcomes(scenario.probe_restored) == outcomes(scenario.probe_before), \
        netfence_lab.render_table(scenario.probe_restored)
    check_ok(scenario.restore_again, 'second restore')
    assert scenario.restore_again['changed'] is False


def test_info_reports_the_blackout_then_nothing(scenario):
    check_ok(scenario.info, 'blackout_info')
    check_ok(scenario.info_after, 'blackout_info after the restore')
    found = {b['name']: b for b in scenario.info['blackouts']}
    assert found[SERVICE]['state'] == 'active', found[SERVICE]
    assert found[SERVICE]['since'] == scenario.real['since']
    assert SERVICE not in {b['name'] for b in scenario.info_after['blackouts']}


# --------------------------------------------------------------------------- concurrency

def test_two_concurrent_runs_for_different_services_both_land(host, run_module, firewall_snapshot):
    firewall_snapshot = _fw(firewall_snapshot)
    fw_before = firewall_snapshot(host)
    probe_before = outcomes(netfence_lab.probe_detail(host, service='all'))
    try:
        pending = [run_module.start(host, 'blackout', service=s) for s in ('memcached', 'bystander')]
        results = [p.result() for p in pending]
        for res in results:
            check_ok(res, 'concurrent blackout')
            assert res['changed'] is True
        fw = firewall_snapshot(host)
        variant = results[0]['firewall']['variant']
        nft = results[0]['firewall']['backend'] == 'nftables'
        in_place = {_tag_hash(line) for line in fw['nft/netfence']}
        for res in results:
            for family in ('ipv4', 'ipv6'):
                missing = [line for line in res['rules'][family]
                           if (_tag_hash(line) not in in_place if nft else line not in fw[f'{family}/{variant}'])]
                assert not missing, f'{res["blackout"]}: rules not in place: {missing}'
        probe = outcomes(netfence_lab.probe_detail(host, service='all'))
        for name in MEMCACHED + (BYSTANDER,):
            assert probe[name]['egress'] == 'ok'
            wrong = {p: o for p, o in probe[name].items()
                     if p != 'egress' and o != ('refused' if probe_before[name][p] == 'ok' else probe_before[name][p])}
            assert not wrong, f'{name}: {wrong}'
    finally:
        pending = [run_module.start(host, 'blackout', service=s, state='absent') for s in ('memcached', 'bystander')]
        restored = [p.result() for p in pending]
    for res in restored:
        check_ok(res, 'concurrent restore')
        assert res['changed'] is True
    fw_after = firewall_snapshot(host)
    assert fw_after == fw_before, fw_diff(fw_before, fw_after)
    assert outcomes(netfence_lab.probe_detail(host, service='all')) == probe_before


# --------------------------------------------------------------------------- bad input

FW_HASH = ('{ iptables-nft-save; ip6tables-nft-save; iptables-legacy-save; ip6tables-legacy-save; nft -s list ruleset; } 2>/dev/null'
           " | grep -v '^#' | sed -E 's/\\[[0-9]+:[0-9]+\\]//g' | sha256sum")
EXTRA_CONTAINERS = {  # name: (docker run/create keyword arguments, start it?)
    'nftest-stopped': ({}, False),
    'nftest-net-host': ({'network_mode': 'host'}, True),
    'nftest-net-none': ({'network_mode': 'none'}, True),
    'nftest-net-shared': ({'network_mode': 'container:lab-client-front'}, True),
}
NOBODY = 'nobody'  # marker: run the module as uid 65534 (see bad_inputs)


@dataclasses.dataclass(frozen=True)
class Bad:
    """One bad input: module args, the message it must fail with (None: must succeed unchanged)."""

    id: str
    args: dict
    msg: str | None
    as_user: str | None = None


# The bad inputs of issue 3, end to end through Ansible on real engines. More argument errors
# (and the same ones) are in tests/unit/plugins/modules/test_blackout_module.py.
BAD_INPUTS = (
    Bad('unknown-service', {'service': 'nosuchservice'},
        'no running container matches service nosuchservice on this host (set missing=ignore'),
    Bad('unknown-service-missing-ignore', {'service': 'nosuchservice', 'missing': 'ignore'}, None),
    Bad('name-semicolon', {'service': 'mem;cached'}, "service 'mem;cached' is invalid: it contains forbidden"),
    Bad('name-command-substitution', {'service': '$(id)'}, "service '$(id)' is invalid: it contains forbidden"),
    Bad('name-double-quotes', {'service': '"memcached"'}, 'is invalid: it contains forbidden character(s) "'),
    Bad('name-single-quotes', {'service': "'memcached'"}, "is invalid: it contains forbidden character(s) '"),
    Bad('name-space', {'service': 'mem cached'}, "service 'mem cached' is invalid: it contains whitespace"),
    Bad('name-newline', {'service': 'mem\ncached'}, 'is invalid: it contains a newline'),
    Bad('name-empty', {'service': ''}, 'service must be a non-empty string'),
    Bad('containers-empty', {'containers': []}, 'containers must name at least one container'),
    Bad('containers-unknown', {'containers': ['nftest-no-such-container']},
        'no such container: nftest-no-such-container'),
    Bad('labels-without-name', {'labels': {'com.docker.compose.service': 'memcached'}},
        'name is required with labels'),
    Bad('project-without-service', {'project': 'lab'}, 'one of the following is required: service, containers, labels'),
    Bad('engine-socket-missing', {'service': 'memcached', 'docker_host': 'unix:///nonexistent.sock'},
        'Docker engine unreachable at unix:///nonexistent.sock: socket /nonexistent.sock does not exist'),
    Bad('engine-refused', {'service': 'memcached', 'docker_host': 'tcp://127.0.0.1:1'},
        'Docker engine unreachable at tcp://127.0.0.1:1: connection refused'),
    Bad('engine-permission-denied', {'service': 'memcached'},
        'permission denied on the Docker socket /var/run/docker.sock: run the task with become: true', NOBODY),
    Bad('firewall-permission-denied', {'service': 'memcached', 'state': 'absent'},
        'run the task with become: true', NOBODY),
    Bad('container-not-running', {'containers': ['nftest-stopped']},
        'container nftest-stopped is not running (state: created): start it, or leave it out'),
    Bad('service-not-running', {'service': 'nftest-stopped'}, 'no running container matches service nftest-stopped'),
    Bad('network-mode-host', {'service': 'nftest-net-host'},
        'container nftest-net-host uses the host network: give ports: to say which of its ports to cut'),
    Bad('network-mode-host-both', {'service': 'nftest-net-host', 'ports': ['11211/tcp'], 'direction': 'both'},
        'container nftest-net-host uses the host network: its own connections are the host'),
    Bad('network-mode-none', {'service': 'nftest-net-none'},
        "container nftest-net-none uses network mode 'none' and has no address of its own"),
    Bad('network-mode-container', {'containers': ['nftest-net-shared']},
        "container nftest-net-shared uses network mode 'container:"),
    Bad('expires-in-the-past', {'service': 'memcached', 'expires': '2020-01-01T00:00:00Z'},
        'expires 2020-01-01T00:00:00Z is in the past'),
    Bad('expires-garbage', {'service': 'memcached', 'expires': 'soon'}, "expires 'soon' is neither a duration"),
    Bad('expires-no-timezone', {'service': 'memcached', 'expires': '2030-01-01T00:00:00'}, 'has no time zone'),
    Bad('ports-protocol', {'service': 'memcached', 'ports': ['11211/icmp']}, "port protocol 'icmp' is not supported"),
    Bad('ports-garbage', {'service': 'memcached', 'ports': ['abc']}, "ports entry 'abc' is invalid"),
    Bad('allow-from-prefix', {'service': 'memcached', 'allow_from': ['10.0.0.0/33']},
        "allow_from entry '10.0.0.0/33' is not an IP address or CIDR"),
    Bad('allow-from-garbage', {'service': 'memcached', 'allow_from': ['not-an-ip']},
        "allow_from entry 'not-an-ip' is not an IP address or CIDR"),
    Bad('reject-with', {'service': 'memcached', 'reject_with': 'bogus'},
        'value of reject_with must be one of: reset, icmp, drop, got: bogus'),
)


def fw_hash(result: dict) -> str | None:
    """The sha256 a FW_HASH task printed (the raw output may carry noise of the host's login shell)."""
    found = re.findall(r'\b[0-9a-f]{64}\b', result.get('stdout', ''))
    return found[-1] if found else None


@pytest.fixture(scope='module')
def nobody_python(tmp_path_factory):
    """An interpreter wrapper that runs the module as uid/gid 65534 without groups (no docker
    group, no root): the real permission-denied paths. Needs pipelining (the module comes on
    stdin; the lab hosts share this machine's filesystem)."""
    path = tmp_path_factory.mktemp('nobody') / 'python3-as-nobody'
    path.write_text('#!/bin/sh\nexec /usr/bin/setpriv --reuid=65534 --regid=65534 --clear-groups '
                    '/usr/bin/python3 "$@"\n', encoding='utf-8')
    path.chmod(0o755)
    return str(path)


def _extra_containers(client, create: bool) -> None:
    for name, (kwargs, start) in EXTRA_CONTAINERS.items():
        for old in client.containers.list(all=True, filters={'name': f'^/{name}$'}):
            old.remove(force=True)
        if create and start:
            client.containers.run(netfence_lab.IMAGE, netfence_lab.SLEEP_CMD, name=name, detach=True, **kwargs)
        elif create:
            client.containers.create(netfence_lab.IMAGE, netfence_lab.SLEEP_CMD, name=name, **kwargs)


@pytest.fixture(scope='module')
def bad_inputs_all(host_of_series, run_play, nobody_python, netfence_rules):
    """Every bad input as a task of one play on one host of each series at once, each task
    followed by a hash of the host's whole firewall (raw: no module, cheap)."""
    hosts = []
    for series in SERIES:
        try:
            hosts.append(host_of_series(series))
        except pytest.skip.Exception:
            continue
    for lab_host in hosts:
        wait_quiet(lab_host, netfence_rules)
    # Each case gets its own baseline, taken right before it: a case compared with a baseline taken
    # before an earlier case would inherit whatever happened in between.
    tasks = []
    for bad in BAD_INPUTS:
        task = {'name': f'bad {bad.id}', 'netfence.docker.blackout': bad.args, 'ignore_errors': True}
        if bad.as_user == NOBODY:
            task['vars'] = {'ansible_python_interpreter': nobody_python}
        tasks += [{'name': f'fw before {bad.id}', 'ansible.builtin.raw': FW_HASH, 'changed_when': False}, task,
                  {'name': f'fw after {bad.id}', 'ansible.builtin.raw': FW_HASH, 'changed_when': False}]
    clients = [lab_host.client(timeout=30) for lab_host in hosts]
    try:
        for client in clients:
            _extra_containers(client, create=True)
        results = run_play(hosts, tasks)
    finally:
        for client in clients:
            _extra_containers(client, create=False)
            client.close()
    return {lab_host.name: {r['name']: r['hosts'].get(lab_host.name, {}) for r in results} for lab_host in hosts}


@pytest.fixture(scope='module')
def bad_inputs(host, bad_inputs_all):
    """{task name: result} of the bad-input play on ``host``."""
    return bad_inputs_all[host.name]


@pytest.mark.parametrize('bad', BAD_INPUTS, ids=lambda b: b.id)
def test_bad_input_fails_clearly_and_changes_nothing(host, bad_inputs, bad):
    baseline = fw_hash(bad_inputs[f'fw before {bad.id}'])
    assert baseline, bad_inputs[f'fw before {bad.id}']
    result = bad_inputs.get(f'bad {bad.id}')
    assert result is not None, f'task did not run: {sorted(bad_inputs)}'
    if bad.msg is None:
        assert not result.get('failed'), result.get('msg')
        assert result['changed'] is False
        assert result['added'] == {'ipv4': [], 'ipv6': []} and result['removed'] == {'ipv4': [], 'ipv6': []}
    else:
        assert result.get('failed') is True, f'did not fail: {result}'
        assert bad.msg in result.get('msg', ''), result.get('msg')
        assert result.get('changed') is False
        assert 'Traceback' not in json.dumps(result)
    after = fw_hash(bad_inputs[f'fw after {bad.id}'])
    assert after == baseline, f'{bad.id} changed the firewall of {host.name}'


# --------------------------------------------------------------------------- run time

RUNTIME_HARNESS = r'''
import contextlib, io, json, statistics, sys, time
sys.path[:0] = PATHS
from ansible.module_utils.testing import patch_module_args
from ansible_collections.netfence.docker.plugins.modules import blackout

def once(args):
    out = io.StringIO()
    with patch_module_args(args), contextlib.redirect_stdout(out):
        start = time.perf_counter()
        try:
            blackout.main()
        except SystemExit:
            pass
        elapsed = time.perf_counter() - start
    result = json.loads(out.getvalue())
    if result.get('failed'):
        raise SystemExit('module failed: %s' % result.get('msg'))
    return elapsed, result['changed']

runs = {'blackout': [], 'again': [], 'restore': []}
try:
    for _ in range(RUNS):
        for kind, args, changed in (('blackout', {'service': 'memcached'}, True),
                                    ('again', {'service': 'memcached'}, False),
                                    ('restore', {'service': 'memcached', 'state': 'absent'}, True)):
            elapsed, got = once(args)
            assert got is changed, (kind, got)
            runs[kind].append(elapsed)
finally:
    once({'service': 'memcached', 'state': 'absent'})
print(json.dumps({k: {'median': statistics.median(v), 'min': min(v), 'max': max(v), 'n': len(v)}
                  for k, v in runs.items()}))
'''


def test_module_run_time_on_the_host(host, collections_path, firewall_snapshot):
    """The module's own run time (main(), on the host's python3 over SSH, no Ansible transport):
    reported, not asserted (tests/output/integration/runtime-<host>.json)."""
    firewall_snapshot = _fw(firewall_snapshot)
    before = firewall_snapshot(host)
    paths = [collections_path, sysconfig.get_paths()['purelib']]
    code = RUNTIME_HARNESS.replace('PATHS', json.dumps(paths)).replace('RUNS', '10')
    res = subprocess.run(
        ['ssh', '-i', netfence_lab.SSH_KEY, '-o', 'StrictHostKeyChecking=no', '-o', 'UserKnownHostsFile=/dev/null',
         '-o', 'LogLevel=ERROR', '-o', 'BatchMode=yes', '-o', 'ConnectTimeout=5', f'root@{host.addr}',
         '/usr/bin/python3', '-'], input=code, capture_output=True, text=True, timeout=180, check=False)
    assert res.returncode == 0, res.stderr[-3000:]
    timings = json.loads(res.stdout.strip().splitlines()[-1])
    after = firewall_snapshot(host)
    assert after == before, fw_diff(before, after)
    try:
        REPORT_DIR.mkdir(parents=True, exist_ok=True)
        (REPORT_DIR / f'runtime-{host.name}.json').write_text(
            json.dumps({'host': host.name, 'series': host.series, 'seconds': timings}, indent=1) + '\n',
            encoding='utf-8')
    except OSError:
        pass
    print(f'{host.name} (Docker {host.series}) module main() seconds: {timings}')
