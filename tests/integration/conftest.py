"""Shared fixtures of the integration tests: the lab, its inventory and running Ansible on it.

Fixtures (all generic, use them from any test module here):

- ``lab`` (session): ``netfence_lab.up()`` (idempotent; the lab the environment selects, an
  existing lab keeps its shape) → list of ``netfence_lab.LabHost``. Skips when not root.
- ``inventory`` (session): path of the lab's Ansible inventory.
- ``hosts_by_series`` (session): ``{'20.10': ['h1', 'h3'], '28': ['h2']}`` from the inventory's
  ``netfence_lab_docker_series``.
- ``host_of_series`` (session): ``host_of_series('20.10')`` → first LabHost of that series (skips
  when the lab has none); ``'29'`` prefers Docker's iptables backend, ``'29+nft-backend'`` is the
  first Docker 29 host with ``--firewall-backend=nftables``.
- ``SERIES_29`` (in nf_helpers.py): ``('29', '29+nft-backend')``, the Docker 29 flavours.
- ``collections_path`` (session): a temporary ``ansible_collections/netfence/docker`` symlink to
  this checkout (the directory to put in ANSIBLE_COLLECTIONS_PATH).
- ``ansible_env`` (session): the environment the helpers run ansible with.
- ``run_module`` (session): ``run_module(host, module, check=False, diff=False, **args)`` runs
  ``ansible -i INV HOST -m netfence.docker.MODULE -a '<json args>'`` and returns the host's
  result (a dict, with ``.rc``, ``.stdout``, ``.stderr``, ``.elapsed``).
- ``run_play`` (session): ``run_play(hosts, tasks)`` runs one play with ansible-playbook and
  returns, per task, ``{'name', 'hosts': {host: result}}``.
- ``firewall_snapshot`` (session): ``firewall_snapshot(host)`` → every table of iptables and
  ip6tables (both the nft and the legacy variant) inside the host's namespace, counters and
  comment lines stripped, rule order kept: compare two snapshots with ``==``.
- ``netfence_rules`` (session): ``netfence_rules(host)`` → the netfence-tagged rules on the host
  as ``(family, line)``.

Isolation (autouse, every test here): each lab host's firewall (iptables nft/legacy v4/v6, ``nft -s list
ruleset``) and netfence state record are snapshotted right before the test and compared right after it.
A difference fails THAT test (at teardown) naming it and the difference, after a repair (netfence-tagged
rules, our nft tables, tables that appeared empty and the state record put back) so the next test starts
clean. When an engine was restarted or the lab rebuilt during the test (its dockerd or deployment
containers changed), only what is ours is compared. A test marked ``firewall_carries_over`` may leave
its change for the next test of its module (a sequence such as blackout → status → restore): the
comparison is then made after the next unmarked test, against the snapshot before the sequence.

Also: when ``NETFENCE_ROOT_FW_BEFORE`` is not set (pytest run without make), the root namespace's
firewall is snapshotted when this conftest is loaded (before any test runs), for tests/integration/test_zz_root_firewall.py.
"""
from __future__ import annotations

import concurrent.futures
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
LAB_DIR = ROOT / 'tests' / 'lab'
if str(LAB_DIR) not in sys.path:
    sys.path.insert(0, str(LAB_DIR))

import netfence_lab  # noqa: E402  pylint: disable=wrong-import-position
import nf_helpers  # noqa: E402  pylint: disable=wrong-import-position,import-error

NAMESPACE, COLLECTION = 'netfence', 'docker'
_COUNTERS = re.compile(r'\[\d+:\d+\]')
_SAVE_COMMANDS = (
    ('ipv4', 'nft', 'iptables-nft-save'),
    ('ipv6', 'nft', 'ip6tables-nft-save'),
    ('ipv4', 'legacy', 'iptables-legacy-save'),
    ('ipv6', 'legacy', 'ip6tables-legacy-save'),
)


def _run_flags(check: bool, diff: bool, extra_vars: dict | None) -> list[str]:
    """--check, --diff and -e JSON, as asked (ansible and ansible-playbook alike)."""
    return ((['--check'] if check else []) + (['--diff'] if diff else [])
            + (['-e', json.dumps(extra_vars)] if extra_vars else []))


def _tool(name: str) -> str:
    """An Ansible CLI next to the running Python (the toolchain venv), else on PATH."""
    candidate = Path(sys.executable).parent / name
    if candidate.exists():
        return str(candidate)
    found = shutil.which(name) or shutil.which(name, path='/opt/netfence/venv/bin')
    if not found:
        raise RuntimeError(f'{name} not found next to {sys.executable} nor on PATH')
    return found


# --------------------------------------------------------------------------- root firewall

def _snapshot_root_firewall() -> None:
    """Snapshot the root namespace's firewall before any test runs, unless make already did.

    Runs when pytest loads this conftest (collection), i.e. before the first test.
    """
    if os.environ.get('NETFENCE_ROOT_FW_BEFORE') or os.geteuid() != 0:
        return
    rootfw = ROOT / 'tools' / 'rootfw.py'
    if not rootfw.exists():
        return
    snap = os.path.join(tempfile.mkdtemp(prefix='netfence-rootfw-'), 'before')
    res = subprocess.run([sys.executable, str(rootfw), 'snapshot', snap], capture_output=True,
                         text=True, check=False, timeout=60)
    if res.returncode == 0:
        os.environ['NETFENCE_ROOT_FW_BEFORE'] = snap


_snapshot_root_firewall()

# playbooks/*.yml run from the checkout (test_fleet.py) find the collection through the link
# tools/link-checkout generates (not committed); make does it too, a bare pytest run needs it.
subprocess.run(['sh', str(ROOT / 'tools' / 'link-checkout')], check=True, timeout=30)


# --------------------------------------------------------------------------- the lab

def lab_up():
    """``netfence_lab.up()`` keeping the shape of a lab that exists (hosts, versions, configs), so
    that an instance brought up with other options is healed, never rebuilt to the default."""
    try:
        existing = netfence_lab.lab_hosts()
    except netfence_lab.LabError:
        existing = []
    if not existing:
        return netfence_lab.up()
    return netfence_lab.up(hosts=len(existing), versions=[h.series for h in existing],
                           configs=['+'.join(getattr(h, 'configs', ()) or ('default',)) for h in existing])


@pytest.fixture(scope='session')
def lab():
    """Bring the lab the environment selects up (a no-op when healthy); its hosts."""
    if os.geteuid() != 0:
        pytest.skip('the lab needs root')
    return lab_up()


@pytest.fixture(scope='session')
def inventory(lab):  # pylint: disable=redefined-outer-name,unused-argument
    """Path of the lab's Ansible inventory."""
    return netfence_lab.inventory_path()


def parse_inventory(path: str) -> dict[str, dict[str, str]]:
    """{host: {var: value}} of the host lines of an INI inventory written by the lab."""
    hosts: dict[str, dict[str, str]] = {}
    section = None
    for raw in Path(path).read_text(encoding='utf-8').splitlines():
        line = raw.strip()
        if not line or line.startswith(('#', ';')):
            continue
        if line.startswith('['):
            section = line.strip('[]')
            continue
        if section is None or ':' in section:
            continue
        name, *pairs = line.split()
        hosts[name] = dict(p.split('=', 1) for p in pairs if '=' in p)
    return hosts


@pytest.fixture(scope='session')
def hosts_by_series(inventory):  # pylint: disable=redefined-outer-name
    """{docker series: [host names in inventory order]}."""
    out: dict[str, list[str]] = {}
    for name, hostvars in parse_inventory(inventory).items():
        out.setdefault(hostvars.get('netfence_lab_docker_series', ''), []).append(name)
    return out


@pytest.fixture(scope='session')
def host_of_series(lab, hosts_by_series):  # pylint: disable=redefined-outer-name,unused-argument
    """``host_of_series('28')`` → the first lab host (LabHost) running that Docker series; skips
    the test when the lab has none."""

    def pick(series: str):
        series, _plus, config = series.partition('+')
        names = hosts_by_series.get(series)
        if not names:
            if series == '29' and not netfence_lab.docker29_available():
                pytest.skip('Docker 29 is not available here (no ../shared/docker29 beside the checkout)')
            pytest.skip(f'the lab has no Docker {series} host (series: {sorted(hosts_by_series)})')
        hosts = [netfence_lab.get_host(name) for name in names]
        if config:  # '29+nft-backend': the first host of the series with that configuration
            hosts = [h for h in hosts if h.has(config)]
            if not hosts:
                pytest.skip(f'the lab has no Docker {series} host with {config}')
        else:  # plain '29': prefer a host with Docker's default (iptables) firewall backend
            hosts.sort(key=lambda h: h.has('nft-backend'))
        return hosts[0]

    return pick


# --------------------------------------------------------------------------- running ansible

@pytest.fixture(scope='session')
def collections_path(tmp_path_factory):
    """A directory with ansible_collections/netfence/docker -> this checkout."""
    base = tmp_path_factory.mktemp('collections')
    (base / 'ansible_collections' / NAMESPACE).mkdir(parents=True)
    (base / 'ansible_collections' / NAMESPACE / COLLECTION).symlink_to(ROOT)
    return str(base)


@pytest.fixture(scope='session')
def ansible_env(collections_path, tmp_path_factory):  # pylint: disable=redefined-outer-name
    """Environment for ansible / ansible-playbook runs against the lab."""
    local_tmp = tmp_path_factory.mktemp('ansible-local')
    env = dict(os.environ)
    env.update({
        'ANSIBLE_COLLECTIONS_PATH': collections_path,
        'ANSIBLE_LOAD_CALLBACK_PLUGINS': '1',
        'ANSIBLE_STDOUT_CALLBACK': 'json',
        'ANSIBLE_HOST_KEY_CHECKING': 'False',
        'ANSIBLE_PIPELINING': 'True',
        'ANSIBLE_NOCOLOR': '1',
        'ANSIBLE_FORCE_COLOR': '0',
        'ANSIBLE_RETRY_FILES_ENABLED': 'False',
        'ANSIBLE_LOCAL_TEMP': str(local_tmp),
        'ANSIBLE_DEPRECATION_WARNINGS': 'False',
        'LANG': 'C.UTF-8',
    })
    # An ansible.cfg of the caller's working directory or home must not change the runs.
    env.pop('ANSIBLE_CONFIG', None)
    return env


class AnsibleRunError(AssertionError):
    """ansible produced no result for the host (crashed, bad command line...)."""


class ModuleResult(dict):
    """A host's result of one ansible run, plus how the run went."""

    rc: int = 0
    stdout: str = ''
    stderr: str = ''
    elapsed: float = 0.0
    argv: list = []

    @property
    def failed(self) -> bool:
        return bool(self.get('failed') or self.get('unreachable'))


def _host_name(host) -> str:
    return getattr(host, 'name', host)


def _module_fqcn(module: str) -> str:
    return module if '.' in module else f'{NAMESPACE}.{COLLECTION}.{module}'


def _parse_json_output(stdout: str, stderr: str, argv) -> dict:
    start = stdout.find('{')
    try:
        return json.loads(stdout[start:]) if start >= 0 else {}
    except ValueError as exc:
        raise AnsibleRunError(f'{" ".join(argv)}: output is not JSON ({exc})\nstdout:\n{stdout[-3000:]}\n'
                              f'stderr:\n{stderr[-3000:]}') from None


def _start(argv, env, cwd):
    return subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
                            cwd=cwd, stdin=subprocess.DEVNULL)  # pylint: disable=consider-using-with


class _PendingModule:
    """A started ``ansible`` ad-hoc run; ``result()`` waits for it."""

    def __init__(self, host, module, argv, env, cwd, timeout):
        self.host = _host_name(host)
        self.module = module
        self.argv = argv
        self.timeout = timeout
        self.started = time.monotonic()
        self.proc = _start(argv, env, cwd)

    def result(self) -> ModuleResult:
        try:
            stdout, stderr = self.proc.communicate(timeout=self.timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            stdout, stderr = self.proc.communicate()
            raise AnsibleRunError(f'{" ".join(self.argv)} did not finish in {self.timeout} s\n'
                                  f'{stdout[-2000:]}\n{stderr[-2000:]}') from None
        elapsed = time.monotonic() - self.started
        data = _parse_json_output(stdout, stderr, self.argv)
        try:
            raw = data['plays'][0]['tasks'][0]['hosts'][self.host]
        except (KeyError, IndexError, TypeError):
            raise AnsibleRunError(f'{" ".join(self.argv)}: no result for {self.host} (rc={self.proc.returncode})\n'
                                  f'stdout:\n{stdout[-3000:]}\nstderr:\n{stderr[-3000:]}') from None
        result = ModuleResult(raw)
        result.rc, result.stdout, result.stderr = self.proc.returncode, stdout, stderr
        result.elapsed, result.argv = elapsed, list(self.argv)
        return result


@pytest.fixture(scope='session')
def run_module(inventory, ansible_env, tmp_path_factory):  # pylint: disable=redefined-outer-name
    """Run one module on one lab host with ``ansible`` (ad hoc); return the host's result.

    ``run_module(host, 'blackout', service='memcached')``; keyword-only controls: ``check``,
    ``diff``, ``extra_vars`` (dict, passed as JSON with -e), ``env`` (extra environment),
    ``timeout`` (s), ``args`` (module args as a dict, for option names that clash with the
    controls). ``run_module.start(...)`` takes the same arguments and returns a pending run
    (``.result()``), to run several ansible processes at once.
    """
    cwd = str(tmp_path_factory.mktemp('ansible-cwd'))

    def start(host, module, *, check=False, diff=False, extra_vars=None, env=None, timeout=180,
              args=None, **kwargs) -> _PendingModule:
        module_args = dict(args or {}, **kwargs)
        argv = [_tool('ansible'), '-i', inventory, _host_name(host), '-m', _module_fqcn(module)]
        if module_args:  # '-a {}' would be taken as raw params
            argv += ['-a', json.dumps(module_args)]
        argv += _run_flags(check, diff, extra_vars)
        run_env = dict(ansible_env, **(env or {}))
        return _PendingModule(host, module, argv, run_env, cwd, timeout)

    def run(host, module, **kwargs) -> ModuleResult:
        return start(host, module, **kwargs).result()

    run.start = start
    return run


@pytest.fixture(scope='session')
def run_play(inventory, ansible_env, tmp_path_factory):  # pylint: disable=redefined-outer-name
    """Run one play (``tasks``: list of task dicts) with ansible-playbook on ``hosts``.

    Returns ``[{'name': task name, 'hosts': {host: result}}]`` in task order (the play's
    ``gather_facts`` is off). Keyword-only: ``check``, ``diff``, ``extra_vars``, ``env``,
    ``timeout``, ``play`` (extra play keys). Tasks that are meant to fail need
    ``ignore_errors: true`` or the play stops on that host.
    """
    workdir = tmp_path_factory.mktemp('ansible-play')
    counter = [0]

    def run(hosts, tasks, *, check=False, diff=False, extra_vars=None, env=None, timeout=600,
            play=None) -> list[dict]:
        names = hosts if isinstance(hosts, (list, tuple)) else [hosts]
        pattern = ':'.join(_host_name(h) for h in names)
        counter[0] += 1
        path = workdir / f'play{counter[0]}.yml'
        path.write_text(json.dumps([dict({'name': 'netfence integration', 'hosts': pattern,
                                          'gather_facts': False, 'tasks': tasks}, **(play or {}))],
                                   indent=1), encoding='utf-8')
        argv = [_tool('ansible-playbook'), '-i', inventory, str(path)] + _run_flags(check, diff, extra_vars)
        proc = _start(argv, dict(ansible_env, **(env or {})), str(workdir))
        try:
            stdout, stderr = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            stdout, stderr = proc.communicate()
            raise AnsibleRunError(f'{" ".join(argv)} did not finish in {timeout} s\n{stderr[-2000:]}') from None
        data = _parse_json_output(stdout, stderr, argv)
        try:
            return [{'name': task['task']['name'], 'hosts': task['hosts']} for task in data['plays'][0]['tasks']]
        except (KeyError, IndexError, TypeError):
            raise AnsibleRunError(f'{" ".join(argv)}: no task results (rc={proc.returncode})\n'
                                  f'stdout:\n{stdout[-3000:]}\nstderr:\n{stderr[-3000:]}') from None

    return run


# --------------------------------------------------------------------------- the hosts' firewalls

def _save_lines(text: str) -> list[str]:
    return [_COUNTERS.sub('', line).rstrip() for line in text.splitlines()
            if line.strip() and not line.startswith('#')]


@pytest.fixture(scope='session')
def firewall_snapshot(lab):  # pylint: disable=redefined-outer-name,unused-argument
    """``firewall_snapshot(host)`` → {'ipv4/nft': [lines], ...}: all tables, order kept, no counters."""

    def snapshot(host) -> dict[str, list[str]]:
        out = {}
        for family, variant, command in _SAVE_COMMANDS:
            res = netfence_lab.host_exec(host, [command], check=False)
            out[f'{family}/{variant}'] = (_save_lines(res.stdout) if res.returncode == 0
                                          else [f'! {command} failed: {res.stderr.strip()}'])
        return out

    return snapshot


@pytest.fixture(scope='session')
def netfence_rules(firewall_snapshot):  # pylint: disable=redefined-outer-name
    """``netfence_rules(host)`` → [(family/variant, rule line)] of every rule tagged by netfence."""

    def rules(host) -> list[tuple[str, str]]:
        return [(key, line) for key, lines in firewall_snapshot(host).items()
                for line in lines if line.startswith('-A ') and '"netfence bo=' in line]

    return rules


# --------------------------------------------------------------------------- isolation between tests

_NFT_TABLE_RE = re.compile(r'^table (\S+) (\S+) \{')
OUR_NFT_TABLES = (('inet', 'netfence'), ('bridge', 'netfence'))
_TAG = '"netfence bo='
_SAVE_TOOL = {'ipv4/nft': 'iptables-nft', 'ipv6/nft': 'ip6tables-nft',
              'ipv4/legacy': 'iptables-legacy', 'ipv6/legacy': 'ip6tables-legacy'}


def pytest_configure(config):
    config.addinivalue_line('markers', 'firewall_carries_over: this test may leave its firewall change for the next '
                                       'test of its module (checked after the next unmarked test)')


def _drop_empty_legacy_tables(lines: list[str]) -> list[str]:
    """A legacy table without any rule and only ACCEPT policies is left out: loading a legacy table in a
    namespace cannot be undone (known residue, e.g. the first ip6tables-legacy rule loads the filter table)."""
    out, table = [], []
    for line in lines + ['*end']:
        if line.startswith('*'):
            keep = any(x.startswith('-A ') or (x.startswith(':') and ' ACCEPT' not in x) for x in table)
            out += table if keep else []
            table = [line] if line != '*end' else []
        else:
            table.append(line)
    return out


def _nft_tables(lines: list[str]) -> dict[str, list[str]]:
    """{'family name': [lines]} of an ``nft -s list ruleset`` listing."""
    tables: dict[str, list[str]] = {}
    current = None
    for line in lines:
        m = _NFT_TABLE_RE.match(line)
        if m:
            current = f'{m.group(1)} {m.group(2)}'
            tables[current] = []
        if current:
            tables[current].append(line)
    return tables


def _engine_identity(host) -> tuple:
    """dockerd's pid and the deployment's containers (id, state, address): they change when the engine
    restarts, the lab is rebuilt or a test restarts a container (and with them Docker's own rules: bridge
    names, addresses, the order of its per-container rules)."""
    pid = netfence_lab._read_pid(os.path.join(host.run_dir, 'dockerd.spawn.pid'))  # pylint: disable=protected-access
    names = {spec['name'] for spec in netfence_lab.CONTAINERS}
    try:
        client = host.client(timeout=10)
        try:
            ids = []
            for cont in client.containers.list(all=True, sparse=True, ignore_removed=True):
                if cont.attrs.get('Names', [''])[0].lstrip('/') in names:
                    state = client.api.inspect_container(cont.id)['State']
                    ids.append((cont.id, state.get('Status'), state.get('StartedAt')))
            ids.sort()
        finally:
            client.close()
    except Exception:  # pylint: disable=broad-except
        ids = ['engine down']
    return (pid, tuple(ids))


def host_snapshot(host) -> dict:
    """Everything of a lab host a test must leave as it found it."""
    out: dict = {}
    # One process in the namespace for the five listings (this runs twice per test and host).
    commands = [c for _f, _v, c in _SAVE_COMMANDS] + ['nft -s list ruleset']
    script = '; '.join(f'echo "@@@ {c}"; {c} 2>&1 || echo "! {c} failed"' for c in commands)
    res = netfence_lab.host_exec(host, ['sh', '-c', script], check=False)
    parts = {}
    for chunk in res.stdout.split('@@@ ')[1:]:
        name, _nl, text = chunk.partition('\n')
        parts[name.strip()] = text
    for family, variant, command in _SAVE_COMMANDS:
        lines = _save_lines(parts.get(command, f'! {command} gave no output'))
        out[f'{family}/{variant}'] = _drop_empty_legacy_tables(lines) if variant == 'legacy' else lines
    out['nft'] = nf_helpers.nft_canonical([line.rstrip() for line in
                                           parts.get(commands[-1], '! nft gave no output').splitlines()])
    state = Path(host.lib_dir) / 'netfence-state' / 'blackouts.json'
    try:
        raw = state.read_text(encoding='utf-8')
    except OSError:
        raw = None
    out['state'] = _state_lines(raw)
    out['engine'] = [repr(_engine_identity(host))]
    out['_state_raw'] = raw  # what a repair puts back; not compared
    return out


def _state_lines(raw: str | None) -> list[str]:
    """The netfence state record as comparable lines: its blackouts and created objects per engine (a record
    without any is the same as none: the module may write an empty one)."""
    if raw is None:
        return []
    try:
        data = json.loads(raw)
    except ValueError:
        return [f'! unreadable: {raw[:200]}']
    out = []
    for key, rec in sorted((data.get('hosts') or {}).items()):
        for name, blackout in sorted((rec.get('blackouts') or {}).items()):
            out.append(f'{key} blackout {name}: {json.dumps(blackout, sort_keys=True)}')
        out += [f'{key} created: {json.dumps(c, sort_keys=True)}' for c in rec.get('created') or []]
    return out


def ours(snap: dict) -> dict:
    """The part of a snapshot that is netfence's: tagged rules, our nft tables, the table names, the state."""
    tables = _nft_tables(snap.get('nft', []))
    out = {key: [line for line in lines if _TAG in line] for key, lines in snap.items() if '/' in key}
    out['_state_raw'] = snap.get('_state_raw')
    out['nft tables'] = sorted(tables)
    for family, name in OUR_NFT_TABLES:
        out[f'nft {family} {name}'] = tables.get(f'{family} {name}', [])
    out['state'] = snap.get('state', [])
    return out


def snapshot_diff(before: dict, after: dict) -> str:
    """Human-readable difference of two snapshots ('' when equal)."""
    return nf_helpers.snapshot_diff(before, after, indent='  ', shown=15)


def repair_host(host, before: dict) -> list[str]:
    """Remove what netfence (or a test) left: tagged rules, our nft tables, nft tables that appeared, the state
    record put back as it was. Returns what was done."""
    done = []
    now = host_snapshot(host)
    for key, tool in _SAVE_TOOL.items():
        table = 'filter'
        for line in now.get(key, []):
            if line.startswith('*'):
                table = line[1:]
            elif line.startswith('-A ') and _TAG in line:
                argv = [tool, '-w', '-t', table, '-D'] + shlex.split(line[3:])
                res = netfence_lab.host_exec(host, argv, check=False)
                done.append(f'{" ".join(argv[:5])} {line[3:]}' + ('' if res.returncode == 0 else f' FAILED: {res.stderr.strip()}'))
    before_tables = _nft_tables(before.get('nft', []))
    for name, lines in _nft_tables(now.get('nft', [])).items():
        family, table = name.split()
        ours_table = (family, table) in OUR_NFT_TABLES
        empty_new = name not in before_tables and not any(
            line.strip() and not line.strip().startswith(('table ', 'chain ', 'type ', 'policy ', '}'))
            for line in lines[1:])
        if ours_table or empty_new:
            res = netfence_lab.host_exec(host, ['nft', 'delete', 'table', family, table], check=False)
            done.append(f'nft delete table {name}' + ('' if res.returncode == 0 else f' FAILED: {res.stderr.strip()}'))
    state = Path(host.lib_dir) / 'netfence-state' / 'blackouts.json'
    if now.get('state') != before.get('state') and now.get('engine') == before.get('engine'):
        if before.get('_state_raw') is not None:
            state.write_text(before['_state_raw'], encoding='utf-8')
        else:
            state.unlink(missing_ok=True)
        done.append(f'state record {state} put back')
    return done


def _watched_hosts() -> list:
    """The hosts of the lab instance currently selected, if it is up (never brings a lab up)."""
    if os.geteuid() != 0:
        return []
    try:
        return [h for h in netfence_lab.lab_hosts() if os.path.exists(h.netns_path)]
    except netfence_lab.LabError:
        return []


def _snap_all(hosts) -> dict:
    with concurrent.futures.ThreadPoolExecutor(max_workers=max(1, len(hosts))) as pool:
        return dict(zip([h.name for h in hosts], pool.map(host_snapshot, hosts)))


_CARRY: dict = {}  # {'module': nodeid's module, 'baseline': {host: snap}, 'from': nodeid} of a carried change


_NEXT = pytest.StashKey()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item, nextitem):
    """Remember the next test (a carried firewall change is only carried within a module)."""
    item.stash[_NEXT] = nextitem
    yield


@pytest.fixture(autouse=True)
def isolated_firewalls(request):
    """Snapshot every lab host before the test; after it, the same or: repair and fail this test."""
    hosts = _watched_hosts()
    if not hosts:
        yield
        return
    carry = dict(_CARRY)
    _CARRY.clear()
    if carry.get('module') == request.node.module.__name__:
        before = {h.name: carry['baseline'].get(h.name) or host_snapshot(h) for h in hosts}
    else:
        before = _snap_all(hosts)
    yield
    nextitem = request.node.stash.get(_NEXT, None)
    if request.node.get_closest_marker('firewall_carries_over') and nextitem is not None and \
            nextitem.module is request.node.module:
        _CARRY.update(module=request.node.module.__name__, baseline=before)
        return
    problems, repairs = [], []
    after = _snap_all(hosts)
    for host in hosts:
        old, new = before.get(host.name), after[host.name]
        if old is None or {k: v for k, v in new.items() if k != '_state_raw'} == \
                {k: v for k, v in old.items() if k != '_state_raw'}:
            continue
        same_engine = new['engine'] == old['engine']
        a, b = (old, new) if same_engine else (ours(old), ours(new))
        # A rebuilt lab starts without a state record: the record is compared on the same engine only.
        skip = {'engine', '_state_raw'} | (set() if same_engine else {'state'})
        a = {k: v for k, v in a.items() if k not in skip}
        b = {k: v for k, v in b.items() if k not in skip}
        diff = snapshot_diff(a, b)
        if not diff:
            continue
        problems.append(f'{host.name} ({"" if same_engine else "engine restarted or lab rebuilt: only ours compared; "}'
                        f'{host.series}, {"+".join(host.configs)}):\n{diff}')
        repairs += [f'{host.name}: {r}' for r in repair_host(host, old)]
    if problems:
        pytest.fail(f'{request.node.nodeid} left the lab hosts\' firewall or netfence state changed:\n'
                    + '\n'.join(problems) + ('\nrepaired:\n  ' + '\n  '.join(repairs) if repairs else ''),
                    pytrace=False)
