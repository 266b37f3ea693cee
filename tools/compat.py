"""make compat: the collection on every ansible-core it supports, each in a venv of its own.

For each core line given (``2.20 2.21``; meta/runtime.yml's requires_ansible names the oldest):

1. a venv ``<root>/compat-<line>`` from this Python (3.13) with that line's newest ansible-core
   (pinned below) and the test runners of requirements-dev.txt (pytest, hypothesis); rebuilt
   when what it should hold changes (stamp file);
2. ``sanity``: ``ansible-test sanity --venv --python 3.13`` on a snapshot of the checkout under
   ``build/compat-<line>/ansible_collections/netfence/docker`` (with ansible-test's offline pip
   bootstrap stand-in for that core's pip version, as tools/setup installs it);
3. ``unit``: ``pytest tests/unit`` with the venv's python;
4. ``smoke``: playbooks/blackout.yml, status.yml and restore.yml with the venv's
   ansible-playbook from this checkout against the first host of the lab (NETFENCE_LAB selects
   the instance; one is brought up with one host if none exists): memcached refused on every
   path during the blackout, answering on every path after the restore, status reporting it.

Prints one line per core and step with its duration, then a summary table; exits non-zero when
any step failed. ``--steps sanity,unit`` narrows it (CI runs the oldest line's sanity + unit).
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# The newest release of each supported ansible-core line (PyPI, 2026-12-02). The current line's
# pin must be the one of requirements-dev.txt (checked below).
CORES = {'2.20': '2.20.10', '2.21': '2.21.5'}
# Taken with their pins from requirements-dev.txt: what the unit tests import besides ansible.
RUNNERS = ('pytest', 'hypothesis')
SERVICE = 'memcached'
PIP_CERT = '/etc/ssl/certs/ca-certificates.crt'


def log(msg: str) -> None:
    print(f'compat: {msg}', flush=True)


def dev_pins() -> dict[str, str]:
    pins = {}
    for line in (ROOT / 'requirements-dev.txt').read_text(encoding='utf-8').splitlines():
        match = re.match(r'^([A-Za-z0-9_.-]+)==(\S+)', line.strip())
        if match:
            pins[match.group(1).lower()] = match.group(2)
    return pins


def requirements(line: str) -> list[str]:
    pins = dev_pins()
    core = CORES[line]
    dev_core = pins.get('ansible-core', '')
    if dev_core.startswith(line + '.') and dev_core != core:
        raise SystemExit(f'compat: CORES[{line!r}] = {core} but requirements-dev.txt pins ansible-core=={dev_core}')
    return [f'ansible-core=={core}'] + [f'{name}=={pins[name]}' for name in RUNNERS if name in pins]


def run(argv, *, cwd=None, env=None, timeout=3600, capture=False):
    argv = [str(a) for a in argv]
    proc = subprocess.run(argv, cwd=cwd, env=env, timeout=timeout, check=False, text=True,
                          stdin=subprocess.DEVNULL,
                          stdout=subprocess.PIPE if capture else None,
                          stderr=subprocess.STDOUT if capture else None)
    return proc


def ensure_venv(root: Path, line: str) -> Path:
    venv = root / f'compat-{line}'
    reqs = requirements(line)
    want = json.dumps({'requirements': reqs, 'python': [platform.python_version(), sys.base_prefix]})
    stamp = venv / '.compat-stamp'
    if (venv / 'bin' / 'python').exists() and stamp.exists() and stamp.read_text(encoding='utf-8') == want:
        return venv
    log(f'{line}: creating {venv} ({" ".join(reqs)})')
    shutil.rmtree(venv, ignore_errors=True)
    venv.parent.mkdir(parents=True, exist_ok=True)
    # A venv's python makes venvs of its base interpreter.
    for argv in ([sys.executable, '-m', 'venv', venv],
                 [venv / 'bin' / 'pip', 'install', '-q', '--disable-pip-version-check', *reqs]):
        if run(argv).returncode != 0:
            raise SystemExit(f'compat: {line}: {" ".join(map(str, argv))} failed')
    stamp.write_text(want, encoding='utf-8')
    return venv


def venv_env(venv: Path) -> dict[str, str]:
    env = dict(os.environ, PATH=f'{venv / "bin"}:{os.environ.get("PATH", "")}', ANSIBLE_NOCOLOR='1')
    env['VIRTUAL_ENV'] = str(venv)
    for name in ('ANSIBLE_COLLECTIONS_PATH', 'ANSIBLE_CONFIG', 'PYTHONPATH'):
        env.pop(name, None)
    return env


def install_pip_standin(venv: Path) -> None:
    """ansible-test's cached get-pip script for this core's pip (see tools/setup)."""
    code = ('import sys\n'
            'from ansible_test._internal.python_requirements import get_venv_packages\n'
            'from ansible_test._internal.host_configs import NativePythonConfig\n'
            "print(get_venv_packages(NativePythonConfig(version='%d.%d' % sys.version_info[:2]))['pip'])\n")
    proc = run([venv / 'bin' / 'python', '-c', code], capture=True)
    if proc.returncode != 0:
        raise SystemExit(f'compat: cannot read the pip version of ansible-test in {venv}:\n{proc.stdout}')
    pipver = proc.stdout.strip().splitlines()[-1].replace('.', '_')
    cache = Path.home() / '.ansible' / 'test' / 'cache'
    cache.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(ROOT / 'tools' / 'get_pip_standin.py', cache / f'get_pip_{pipver}.py')


def snapshot(line: str) -> Path:
    """The checkout as ansible-test wants it: ansible_collections/netfence/docker in a git repo."""
    coll = ROOT / 'build' / f'compat-{line}' / 'ansible_collections' / 'netfence' / 'docker'
    shutil.rmtree(coll.parents[2], ignore_errors=True)
    coll.mkdir(parents=True)
    steps = [['rsync', '-a', '--delete', '--exclude', '.git', '--exclude', 'build', '--exclude', '.venv',
              '--exclude', '__pycache__', '--exclude', '.pytest_cache', '--exclude', '/playbooks/collections',
              f'{ROOT}/', f'{coll}/'],
             ['git', 'init', '-q'], ['git', 'add', '-A'],
             ['git', '-c', 'user.name=ci', '-c', 'user.email=ci@localhost', 'commit', '-qm', 'snapshot']]
    for argv in steps:
        if run(argv, cwd=coll).returncode != 0:
            raise SystemExit(f'compat: {" ".join(argv)} failed')
    return coll


def step_sanity(line: str, venv: Path) -> tuple[bool, str]:
    install_pip_standin(venv)
    coll = snapshot(line)
    pyver = '%d.%d' % sys.version_info[:2]
    proc = run([venv / 'bin' / 'ansible-test', 'sanity', '--venv', '--python', pyver, '--color', 'no'],
               cwd=coll, env=venv_env(venv), capture=True)
    print(proc.stdout[-6000:], flush=True)
    ignores = sorted(p.name for p in (coll / 'tests' / 'sanity').glob('ignore-*.txt')
                     if p.read_text(encoding='utf-8').strip())
    note = 'ignore files: ' + (', '.join(ignores) if ignores else 'none')
    return proc.returncode == 0, note


def step_unit(_line: str, venv: Path) -> tuple[bool, str]:
    proc = run([venv / 'bin' / 'python', '-m', 'pytest', '-q', '-p', 'no:cacheprovider', 'tests/unit'],
               cwd=ROOT, env=venv_env(venv), capture=True)
    tail = proc.stdout.strip().splitlines()
    print('\n'.join(tail[-15:]), flush=True)
    return proc.returncode == 0, (tail[-1] if tail else '')


def _lab():
    sys.path.insert(0, str(ROOT / 'tests' / 'lab'))
    import netfence_lab  # pylint: disable=import-outside-toplevel,import-error
    netfence_lab.configure()
    try:
        hosts = netfence_lab.lab_hosts()
    except netfence_lab.LabError:
        hosts = []
    if hosts:  # keep the shape of an existing instance (heals it when broken)
        hosts = netfence_lab.up(hosts=len(hosts), versions=[h.series for h in hosts],
                                configs=['+'.join(getattr(h, 'configs', ()) or ('default',)) for h in hosts])
    else:
        hosts = netfence_lab.up(hosts=1)
    return netfence_lab, hosts[0]


def _cut_problems(netfence_lab, host, expect_cut: bool) -> list[str]:
    results = netfence_lab.probe(host, service=SERVICE)
    problems = [] if results else [f'{host.name}: no {SERVICE} container found']
    for name, cells in sorted(results.items()):
        for path, outcome in sorted(cells.items()):
            if outcome in ('n/a', '-') or path == 'egress':  # the service's own connections stay open
                continue
            if expect_cut != (outcome != 'ok'):
                problems.append(f'{host.name} {name} {path}: {outcome}')
    if problems:
        problems.append(netfence_lab.render_table(results))
    return problems


def step_smoke(_line: str, venv: Path) -> tuple[bool, str]:
    netfence_lab, host = _lab()
    # The playbooks find the checkout's collection through the link tools/link-checkout makes.
    if run(['sh', ROOT / 'tools' / 'link-checkout']).returncode != 0:
        raise SystemExit('compat: tools/link-checkout failed')
    env = venv_env(venv)
    # The default stdout callback: a bare ansible-core has no json callback (2.20 redirects it to
    # ansible.posix, which only the `ansible` package brings).
    env.update(ANSIBLE_HOST_KEY_CHECKING='False', ANSIBLE_RETRY_FILES_ENABLED='0', ANSIBLE_NOCOLOR='1')

    def playbook(name, *extra):
        argv = [venv / 'bin' / 'ansible-playbook', '-i', netfence_lab.inventory_path(), '--limit', host.name,
                ROOT / 'playbooks' / f'{name}.yml', '-e', f'service={SERVICE}', *extra]
        proc = run(argv, cwd=ROOT, env=env, capture=True, timeout=600)
        if proc.returncode != 0:
            raise AssertionError(f'{name}.yml failed (rc={proc.returncode}):\n{proc.stdout[-4000:]}')
        return proc.stdout

    def fleet_state(want):
        """status.yml's summary line: '<service> on 1 host(s): <state>=1'."""
        out = playbook('status')
        line = f'"{SERVICE} on 1 host(s): {want}=1"'
        return [] if line in out else [f'status.yml: no {line} in\n{out[-2000:]}']

    problems = []
    try:
        if _cut_problems(netfence_lab, host, expect_cut=False):
            playbook('restore', '-e', 'verify=false')  # an earlier run's leftover
        started = time.monotonic()
        out = playbook('blackout')
        if f'Blackout of {SERVICE} in place' not in out:
            problems.append(f'blackout.yml: no fleet report in\n{out[-2000:]}')
        problems += _cut_problems(netfence_lab, host, expect_cut=True)
        problems += fleet_state('active')
        out = playbook('restore')
        if f'Blackout of {SERVICE} lifted' not in out:
            problems.append(f'restore.yml: no fleet report in\n{out[-2000:]}')
        problems += _cut_problems(netfence_lab, host, expect_cut=False)
        problems += fleet_state('none')
        note = (f'{host.name} (Docker {host.series}): refused during, answering after, '
                f'status active/none ({time.monotonic() - started:.0f} s)')
    except AssertionError as exc:
        problems.append(str(exc))
        try:
            playbook('restore', '-e', 'verify=false')
        except AssertionError:
            pass
        note = 'failed'
    for problem in problems:
        print(problem, flush=True)
    return not problems, note


STEPS = {'sanity': step_sanity, 'unit': step_unit, 'smoke': step_smoke}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split('\n', 1)[0])
    parser.add_argument('cores', nargs='*', default=sorted(CORES), help='ansible-core lines (default: all)')
    parser.add_argument('--root', default='/opt/netfence', help='where the compat-<line> venvs live')
    parser.add_argument('--steps', default='sanity,unit,smoke', help='comma-separated: sanity,unit,smoke')
    args = parser.parse_args()
    steps = [s for s in args.steps.split(',') if s]
    unknown = [s for s in steps if s not in STEPS] + [c for c in args.cores if c not in CORES]
    if unknown:
        parser.error(f'unknown step or core line: {", ".join(unknown)} (cores: {", ".join(CORES)})')
    rows, failed = [], False
    for line in args.cores:
        started = time.monotonic()
        venv = ensure_venv(Path(args.root), line)
        rows.append((line, 'venv', True, time.monotonic() - started, str(venv)))
        for step in steps:
            log(f'{line} (ansible-core {CORES[line]}): {step} ...')
            started = time.monotonic()
            try:
                ok, note = STEPS[step](line, venv)
            except Exception as exc:  # pylint: disable=broad-exception-caught
                ok, note = False, f'{type(exc).__name__}: {exc}'
            elapsed = time.monotonic() - started
            failed |= not ok
            rows.append((line, step, ok, elapsed, note))
            log(f'{line}: {step} {"passed" if ok else "FAILED"} in {elapsed:.0f} s: {note}')
    print('\n| ansible-core | step | result | seconds | note |\n|---|---|---|---|---|')
    for line, step, ok, elapsed, note in rows:
        print(f'| {CORES[line]} | {step} | {"ok" if ok else "FAILED"} | {elapsed:.0f} | {note} |')
    return 1 if failed else 0


if __name__ == '__main__':
    sys.exit(main())
