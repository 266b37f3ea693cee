"""Every path cut and fully restored on every host configuration (issue 7).

One lab instance of its own (hostcfg, or hc<X> when the suite runs on instance X; four hosts, brought up here and taken down at
the end unless NETFENCE_KEEP_LAB=1):

    h1 Docker 20.10  no-brnf+ipv6              h2 Docker 28  no-brnf+ipv6
    h3 Docker 20.10  no-userland-proxy+legacy  h4 Docker 28  no-userland-proxy+legacy

Per host and backend (iptables everywhere; nftables = table inet netfence on h1 and h4): the
probe of every path before, blacked out and restored, and every firewall rule set (iptables-nft,
iptables-legacy, ip6tables-nft, ip6tables-legacy, nft -s list ruleset, the br_netfilter
sysctls) identical before and after the restore. Then: blackout_info's backend report, lost
rules (DOCKER-USER flushed, OUTPUT flushed, every rule gone) reported broken and repaired, and
the service's side of a cut connection reset. Runs the module with ansible against the
instance's inventory, as a user would.
"""
from __future__ import annotations

import concurrent.futures
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
LAB_DIR = ROOT / 'tests' / 'lab'
sys.path.insert(0, str(LAB_DIR))

import netfence_lab  # noqa: E402  pylint: disable=wrong-import-position

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason='the lab needs root')

INSTANCE = 'hostcfg'
VERSIONS = ['20.10', '28', '20.10', '28']
CONFIGS = ['no-brnf+ipv6', 'no-brnf+ipv6', 'no-userland-proxy+legacy', 'no-userland-proxy+legacy']
ANSIBLE = str(Path(sys.executable).parent / 'ansible')
SERVICE = ('lab-memcached-1', 'lab-memcached-2')
CUT_PATHS = re.compile(r'^(external6?|localhost[46]|own_addr|peer6?:.*)$')


def _instance_for(parent: str) -> tuple[str, int]:
    """The instance of this module: 'hostcfg' beside the default lab, 'hc<X>' beside instance X (two
    suites on one machine never share it), at the first address index no other instance uses from
    its crc32 (NETFENCE_LAB_INDEX belongs to the parent instance)."""
    name = INSTANCE if not parent else f'hc{parent[:6]}'
    used = {st.get('index') if st else netfence_lab.instance_index(other, override=False)
            for other, st in netfence_lab._other_instances().items() if other and other != name}  # pylint: disable=protected-access
    if parent:
        used.add(netfence_lab.INDEX)
    index = netfence_lab.instance_index(name, override=False)
    while index in used:
        index = (index + 1) % netfence_lab.INSTANCE_SLOTS
    return name, index


@pytest.fixture(scope='module')
def lab(tmp_path_factory):
    """The hostcfg instance, up; the default lab selection is restored afterwards."""
    previous = netfence_lab.INSTANCE
    name, index = _instance_for(previous)
    saved_index = os.environ.get('NETFENCE_LAB_INDEX')
    os.environ['NETFENCE_LAB_INDEX'] = str(index)
    try:
        netfence_lab.configure(name)
    finally:
        if saved_index is None:
            os.environ.pop('NETFENCE_LAB_INDEX', None)
        else:
            os.environ['NETFENCE_LAB_INDEX'] = saved_index
    brought_up = False
    try:
        hosts = netfence_lab.up(hosts=4, versions=VERSIONS, configs=CONFIGS)
        brought_up = True
        coll = tmp_path_factory.mktemp('coll') / 'ansible_collections' / 'netfence'
        coll.mkdir(parents=True)
        (coll / 'docker').symlink_to(ROOT)
        yield {'hosts': {h.name: h for h in hosts}, 'collections': str(coll.parent.parent)}
    finally:
        try:
            # Only an instance this fixture brought up: when up() refused (e.g. its addresses
            # collide with another instance's), the 'hostcfg' that exists may be someone else's.
            if brought_up and os.environ.get('NETFENCE_KEEP_LAB') != '1':
                netfence_lab.down()
        finally:
            netfence_lab.configure(previous)


def run_module(lab, host, module, args):
    """Run netfence.docker.<module> on a lab host with ansible; return its result dict."""
    env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=lab['collections'], ANSIBLE_STDOUT_CALLBACK='json',
               ANSIBLE_LOAD_CALLBACK_PLUGINS='1', ANSIBLE_HOST_KEY_CHECKING='False', ANSIBLE_PIPELINING='1',
               NETFENCE_LAB=netfence_lab.INSTANCE)
    proc = subprocess.run([ANSIBLE, '-i', netfence_lab.inventory_path(), host.name, '-m',
                           'netfence.docker.%s' % module, '-a', args],
                          capture_output=True, text=True, env=env, timeout=180, check=False)
    try:
        return json.loads(proc.stdout)['plays'][0]['tasks'][0]['hosts'][host.name]
    except (ValueError, KeyError, IndexError):
        raise AssertionError('ansible gave no result:\n%s\n%s' % (proc.stdout[-3000:], proc.stderr[-3000:]))


def ok(result):
    assert not result.get('failed'), result.get('msg')
    return result


def snapshot(host):
    """Every rule set of the host, counters and comments lines aside."""
    out = {}
    for tool in ('iptables-nft-save', 'iptables-legacy-save', 'ip6tables-nft-save', 'ip6tables-legacy-save'):
        res = netfence_lab.host_exec(host, [tool], check=False)
        out[tool] = [line for line in (re.sub(r'\[\d+:\d+\]', '', x).rstrip() for x in res.stdout.splitlines())
                     if line and not line.startswith('#')]
    out['nft'] = netfence_lab.host_exec(host, ['nft', '-s', 'list', 'ruleset']).stdout.splitlines()
    out['bridge-nf-call'] = netfence_lab._brnf(host)  # pylint: disable=protected-access
    return out


def matrix(host):
    return netfence_lab.probe(host, service='all')


def assert_cut(host, before, during):
    table = '\n' + netfence_lab.render_table(during)
    for name, cells in during.items():
        for path, outcome in cells.items():
            if name in SERVICE and CUT_PATHS.match(path):
                assert outcome not in ('ok', 'error', netfence_lab.NA), (host.name, name, path, table)
            elif name in SERVICE and path == 'egress':
                assert outcome == 'ok', (host.name, name, path, table)  # inbound only: its own connections work
            else:
                assert outcome == before[name][path], (host.name, name, path, table)  # the bystander


def cycle(lab, host, args):
    """Blackout, probe, restore: returns (before, during, after, blackout result)."""
    snap0 = snapshot(host)
    before = matrix(host)
    assert all(before[n]['external'] == 'ok' and before[n]['egress'] == 'ok' for n in SERVICE), before
    res = ok(run_module(lab, host, 'blackout', args))
    assert res['changed'] is True
    during = matrix(host)
    again = ok(run_module(lab, host, 'blackout', args))
    assert again['changed'] is False, again  # idempotent
    info = ok(run_module(lab, host, 'blackout_info', 'name=memcached'))
    assert [b['state'] for b in info['blackouts']] == ['active'], info['blackouts']
    restore = ok(run_module(lab, host, 'blackout', args + ' state=absent'))
    assert restore['changed'] is True
    after = matrix(host)
    snap1 = snapshot(host)
    print('\n## %s (Docker %s, %s) %s\n' % (host.name, host.series, '+'.join(host.configs), args) + '\n'.join(
        '### %s\n%s' % (title, netfence_lab.render_table(probe))
        for title, probe in (('before', before), ('blacked out', during), ('restored', after))))
    assert_cut(host, before, during)
    assert after == before, netfence_lab.render_table(after)
    for key in snap0:
        if key == 'ip6tables-legacy-save' and not snap0[key] and host.has('legacy'):
            # Known residue, documented: the first IPv6 rule (the [::1] loopback rule) loads the
            # ip6tables-legacy filter table, which stays, empty (legacy tables cannot be unloaded
            # from a namespace).
            assert [line for line in snap1[key] if line.startswith('-A')] == [], snap1[key]
            continue
        assert snap1[key] == snap0[key], '%s: %s not restored exactly' % (host.name, key)
    return before, during, after, res, info


def test_every_path_cut_and_restored(lab):
    """The six cycles, hosts in parallel (each host has its own firewall)."""
    rounds = [[('h1', 'iptables'), ('h2', 'iptables'), ('h3', 'iptables'), ('h4', 'iptables')],
              [('h1', 'nftables'), ('h4', 'nftables')]]
    failures = []
    for batch in rounds:
        with concurrent.futures.ThreadPoolExecutor(len(batch)) as pool:
            futures = {pool.submit(check_host, lab, h, b): (h, b) for h, b in batch}
            for future in concurrent.futures.as_completed(futures):
                try:
                    future.result()
                except AssertionError as exc:
                    failures.append('%s %s: %s' % (futures[future] + (exc,)))
    assert not failures, '\n\n'.join(failures)


def check_host(lab, hostname, backend):
    host = lab['hosts'][hostname]
    _before, during, _after, res, info = cycle(lab, host, 'service=memcached backend=%s' % backend)
    fw = res['firewall']
    assert fw['backend'] == backend
    assert info['blackouts'][0]['backend'] == backend
    assert info['firewall']['backend'] == 'iptables'  # what the engine reports (Docker < 29)
    bridge = fw['bridge']
    if host.has('no-brnf'):
        # same-network peers bypass iptables here: they are cut in table bridge netfence
        assert bridge['table'] == 'bridge netfence' and bridge['bridge_nf_call'] == {'ipv4': '0', 'ipv6': '0'}
        assert set(bridge['families']) == ({'ipv4', 'ipv6'} if host.docker_ipv6 else {'ipv4'})
        assert 'bridge netfence' in info['firewall']['nft_tables']
        assert during['lab-memcached-1']['peer:lab_front'] in ('timeout', 'refused', 'reset')
    else:
        assert bridge['table'] is None and bridge['families'] == []
    if backend == 'nftables':
        assert 'inet netfence' in info['firewall']['nft_tables']
        assert not any('netfence bo=' in line for family in res['rules'] for line in res['rules'][family]
                       if not line.startswith('nft '))  # nothing in iptables
    if host.has('legacy') and backend == 'iptables':
        # Docker's chains are in iptables-legacy while `iptables` is the nft variant: the rules
        # follow Docker's chains, and the result says so.
        assert fw['variant'] == 'legacy'
        assert any('DOCKER-USER is in iptables-legacy while iptables defaults to nft' in n for n in fw['notes'])
    if host.docker_ipv6:
        assert during['lab-memcached-1']['external6'] == 'refused'
        assert during['lab-memcached-1']['peer6:lab_back'] != 'ok'
    if host.has('no-userland-proxy'):
        assert during['lab-memcached-1']['localhost4'] == 'refused'  # route_localnet DNAT, cut in OUTPUT


def netfence_lines(host, tool, chain=None):
    res = netfence_lab.host_exec(host, [tool] + (['-S', chain] if chain else ['-S']))
    return [line for line in res.stdout.splitlines() if 'netfence bo=' in line]


def test_legacy_rules_in_the_variant_holding_docker_user(lab):
    host = lab['hosts']['h3']
    ok(run_module(lab, host, 'blackout', 'service=memcached'))
    try:
        assert netfence_lines(host, 'iptables-legacy', 'DOCKER-USER')
        assert not netfence_lines(host, 'iptables-nft')  # never silently in the other variant
    finally:
        ok(run_module(lab, host, 'blackout', 'service=memcached state=absent'))


def info_state(lab, host):
    found = ok(run_module(lab, host, 'blackout_info', 'name=memcached'))['blackouts']
    assert len(found) == 1, found
    return found[0]


def test_lost_rules_reported_broken_and_repaired(lab):
    host = lab['hosts']['h2']  # Docker 28, iptables-nft, IPv6, no br_netfilter: every table in play
    first = ok(run_module(lab, host, 'blackout', 'service=memcached'))
    try:
        assert info_state(lab, host)['state'] == 'active'
        # 1. DOCKER-USER flushed (Docker 28 keeps no rule of its own there)
        netfence_lab.host_exec(host, ['iptables', '-F', 'DOCKER-USER'])
        lost = info_state(lab, host)
        assert lost['state'] == 'broken' and lost['missing_rules'] > 0
        assert any('forward' in paths for paths in lost['missing_paths'].values()), lost['missing_paths']
        repair = ok(run_module(lab, host, 'blackout', 'service=memcached'))
        assert repair['changed'] is True and repair['since'] == first['since']
        assert info_state(lab, host)['state'] == 'active'
        # 2. OUTPUT flushed (only netfence rules live there on this host)
        out = netfence_lab.host_exec(host, ['iptables', '-S', 'OUTPUT']).stdout.splitlines()
        assert all(line.startswith('-P') or 'netfence bo=' in line for line in out), out
        netfence_lab.host_exec(host, ['iptables', '-F', 'OUTPUT'])
        lost = info_state(lab, host)
        assert lost['state'] == 'broken'
        assert any('host' in paths for paths in lost['missing_paths'].values()), lost['missing_paths']
        assert ok(run_module(lab, host, 'blackout', 'service=memcached'))['changed'] is True
        assert info_state(lab, host)['state'] == 'active'
        # 3. Every rule gone (a firewall reload, a reboot): no tag left to read, the record remains
        for tool in ('iptables', 'ip6tables'):
            for line in netfence_lines(host, tool):
                netfence_lab.host_exec(host, [tool, '-D'] + _split(line[3:]))
        netfence_lab.host_exec(host, ['nft', 'delete', 'table', 'bridge', 'netfence'])
        gone = info_state(lab, host)
        assert gone['state'] == 'broken' and gone['rules'] == {'ipv4': [], 'ipv6': []}
        assert gone['missing_rules'] == sum(len(v) for v in first['rules'].values())
        assert gone['since'] == first['since']
        during = matrix(host)
        assert during['lab-memcached-1']['external'] == 'ok'  # really open again
        assert ok(run_module(lab, host, 'blackout', 'service=memcached'))['changed'] is True
        assert info_state(lab, host)['state'] == 'active'
        assert matrix(host)['lab-memcached-1']['external'] == 'refused'
    finally:
        ok(run_module(lab, host, 'blackout', 'service=memcached state=absent'))
    assert ok(run_module(lab, host, 'blackout_info', 'name=memcached'))['blackouts'] == []


def _split(text):
    import shlex  # pylint: disable=import-outside-toplevel
    return shlex.split(text)


STUFF_CLIENT = r'''
import json, socket, sys
host, port = sys.argv[1], int(sys.argv[2])
s = socket.socket(socket.AF_INET6 if ':' in host else socket.AF_INET, socket.SOCK_STREAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
s.connect((host, port))
value = b'x' * 800000
s.sendall(b'set nfbig 0 0 %d\r\n' % len(value) + value + b'\r\n')
buf = b''
while b'\r\n' not in buf:
    buf += s.recv(100)
s.sendall(b'get nfbig\r\n' * 8)  # never read: the service's send queue stays full, it keeps sending
print(json.dumps({'port': s.getsockname()[1], 'stored': buf.strip().decode()}), flush=True)
sys.stdin.readline()
s.close()
'''


def test_service_side_of_cut_connection_is_reset(lab, tmp_path):
    """An established connection whose service side keeps sending: gone from the container's ss.

    h3 (20.10, iptables-legacy) with the iptables backend and h4 (28) with nftables, in parallel.
    """
    script = tmp_path / 'stuff.py'
    script.write_text(STUFF_CLIENT)
    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        results = list(pool.map(lambda args: reset_check(lab, script, *args), [('h3', 'iptables'), ('h4', 'nftables')]))
    for took in results:
        assert took < 10


def reset_check(lab, script, hostname, backend):
    host = lab['hosts'][hostname]
    services, clients = netfence_lab.service_containers(host, 'memcached')
    svc = next(a for a in services if a['Name'] == '/lab-memcached-1')
    client = next(c for c in clients if 'lab_front' in c['NetworkSettings']['Networks'])
    addr = svc['NetworkSettings']['Networks']['lab_front']['IPAddress']
    service_ns = '/proc/%d/ns/net' % svc['State']['Pid']

    def service_side(port):
        res = subprocess.run(['nsenter', '--net=%s' % service_ns, 'ss', '-Htn', 'sport = :11211'],
                             capture_output=True, text=True, check=True)
        return [line for line in res.stdout.splitlines() if ':%d ' % port in line + ' ']

    proc = subprocess.Popen(['nsenter', '--net=/proc/%d/ns/net' % client['State']['Pid'], sys.executable, '-I',
                             str(script), addr, '11211'], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        hello = json.loads(proc.stdout.readline())
        assert hello['stored'] == 'STORED'
        time.sleep(0.3)
        assert service_side(hello['port']), 'no established connection on the service side'
        ok(run_module(lab, host, 'blackout', 'service=memcached backend=%s' % backend))
        start = time.monotonic()
        while service_side(hello['port']) and time.monotonic() - start < 10:
            time.sleep(0.05)
        took = time.monotonic() - start
        print('\n%s %s: service side of the cut connection gone %.2f s after the blackout returned'
              % (hostname, backend, took))
        assert not service_side(hello['port']), 'the service still holds the cut connection'
        return took
    finally:
        proc.stdin.write('\n')
        proc.stdin.flush()
        proc.wait(timeout=10)
        ok(run_module(lab, host, 'blackout', 'service=memcached state=absent'))
