"""netfence.docker benchmarks (`make bench`): netfence against the floor and the hand-written way.

    /opt/netfence/venv/bin/python bench/run.py [--rounds 5] [--sections 1,2,3,4,5,6,7] [--keep-lab]

Runs on its own lab instance (NETFENCE_BENCH_LAB, default 'bench': namespaces nfbench-hN, see
tests/lab/README.md), never on the default lab. Prints a markdown table and writes it, the raw
numbers and a plot to bench/results/ (results.md, results.json, bench.png; NETFENCE_BENCH_RESULTS=dir
writes them elsewhere). What is measured, and
how, is in bench/RESULTS.md. Every variant is interleaved with the others, round by round.

Sections:
  1 single   one service, one host: blackout.yml / restore.yml vs the floor (ping) and the
             hand-written playbook (bench/floor.yml, bench/handwritten.yml)
  2 replicas k = 1, 10, 50 containers of one service: the module's time on the host
  3 foreign  10,000 unrelated rules in DOCKER-USER vs an empty chain: the module's time
  4 fleet    1, 3, 6 hosts: blackout.yml / restore.yml wall time (forks >= hosts)
  5 cut      time from the blackout task's start until a probe from outside sees a refusal
  6 module   the module's own cost on the host: its AnsiballZ payload run in the host's netns, as a
             whole process, and the time inside the module alone (bench/inmodule_timer.py)
  7 hold     a blackout with `hold: true`, then a replica recreated with a new address, or a new
             replica: time from the new container's start (State.StartedAt) until it is refused on
             every path (external, localhost, the host's namespace, a peer container), with no
             Ansible run: the on-host watcher re-applies the blackout

Safety: every firewall command runs inside a lab namespace of this instance (nsenter --net=
/run/netns/nf<instance>-hN, checked not to be the root namespace); traffic goes only to lab
addresses. Processes are ended by their pid only; every wait is bounded. Section 7 moves containers
of the deployment on h1 and puts them back (the lab's own deploy if an address cannot be had again).
"""

from __future__ import annotations

import argparse
import ast
import concurrent.futures
import contextlib
import datetime as dt
import json
import os
import platform
import re
import resource
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
RESULTS = os.environ.get('NETFENCE_BENCH_RESULTS') or os.path.join(HERE, 'results')
INMODULE_TIMER = os.path.join(HERE, 'inmodule_timer.py')   # run on the host: time inside the module
INSTANCE = os.environ.get('NETFENCE_BENCH_LAB', 'bench')
os.environ['NETFENCE_LAB'] = INSTANCE          # for every lab call and subprocess
sys.path.insert(0, os.path.join(ROOT, 'tests', 'lab'))

import netfence_lab as lab  # noqa: E402  pylint: disable=wrong-import-position
import netfence_lab_hold as hold  # noqa: E402  pylint: disable=wrong-import-position

lab.configure(INSTANCE)

VENV = os.environ.get('NETFENCE_VENV', '/opt/netfence/venv')
ANSIBLE_PLAYBOOK = os.path.join(VENV, 'bin', 'ansible-playbook')
ANSIBLE = os.path.join(VENV, 'bin', 'ansible')
TARGET_PYTHON = '/usr/bin/python3'             # the lab targets' interpreter (inventory)
BENCH_TARGET_VENV = os.environ.get('NETFENCE_BENCH_TARGET_VENV', '/opt/netfence/bench-target-venv')
TARGET_VENV_REQUIREMENTS = ('docker==7.1.0', 'requests==2.34.2')   # as in requirements-dev.txt
SERVICE = 'memcached'
HOST = 'h1'                                    # the single bench host
FLEET = ((1, 'h1'), (3, 'h1:h2:h3'), (6, 'all'))
FORKS = 10
REPLICAS = (1, 10, 50)
REPLICA_PROJECT = 'benchrep'
REPLICA_NETWORK = 'benchrep_net'
FOREIGN_RULES = 10000
ROOT_NETNS = '/proc/self/ns/net'           # the bench runs in the root namespace
CUT_TIMEOUT = 30.0
REPEAT = 3                                     # module runs per variant and round (sections 2, 3)
HOLD_PROBE_SECONDS = 20.0                      # section 7: how long a prober waits for the cut (a bound)
HOLD_VARIANTS = {   # variant: (new container, its published port, what starts it, description)
    'recreate': ('lab-memcached-2', 11212, hold.recreate_with_new_address, 'recreated replica, new address'),
    'scale_up': ('lab-memcached-3', 11213, hold.scale_up, 'scale-up: a new replica'),
}
HOLD_PATHS = {   # path: description (section 7's probers)
    'external': 'external (root namespace → host address, published port)',
    'localhost': 'localhost (127.0.0.1, published port, in the host)',
    'host': "the host's namespace → container address",
    'peer': 'peer container (lab-client-front) → container address',
}
HOLD_DEPLOYMENT: dict[str, str] = {}           # section 7: {container: address} on HOST, as the lab made it

TARGETS = {   # name: (description, limit, comparison)
    'floor': ('blackout.yml ≤ 1.3× the floor', 1.3, '<='),
    'handwritten': ('hand-written ≥ 2.7× blackout.yml', 2.7, '>='),
    'replicas': ('module, k=50 ≤ 1.2× k=1', 1.2, '<='),
    'foreign': ('module, 10k foreign rules ≤ 1.3× empty chain', 1.3, '<='),
    'fleet': ('blackout.yml, 6 hosts ≤ 1.5× one host', 1.5, '<='),
    'module': ("module's own time on the host (inside the module: its import + main() → exit_json) "
               "≤ 150 ms (median)", 0.150, '<='),
    'hold': ('hold: new container refused on every path ≤ 1 s after its start (median of the slowest path)', 1.0, '<='),
}


class BenchError(Exception):
    """The benchmark cannot go on; the message says why."""


def log(msg: str) -> None:
    sys.stderr.write('%s bench: %s\n' % (time.strftime('%H:%M:%S'), msg))
    sys.stderr.flush()


# --------------------------------------------------------------------------- statistics

def summary(values: list[float]) -> dict[str, float]:
    vals = sorted(values)
    out = {'n': len(vals), 'median': statistics.median(vals), 'min': vals[0], 'max': vals[-1]}
    if len(vals) >= 4:
        q = statistics.quantiles(vals, n=4, method='inclusive')
        out['q1'], out['q3'] = q[0], q[2]
    else:
        out['q1'], out['q3'] = vals[0], vals[-1]
    return out


def fmt_s(value: float) -> str:
    return '%.0f ms' % (value * 1000) if value < 1 else '%.2f s' % value


def fmt_summary(s: dict[str, float]) -> tuple[str, str]:
    return fmt_s(s['median']), '%s – %s (IQR %s – %s)' % (fmt_s(s['min']), fmt_s(s['max']),
                                                          fmt_s(s['q1']), fmt_s(s['q3']))


def rotated(items: list, r: int) -> list:
    k = r % len(items)
    return items[k:] + items[:k]


# --------------------------------------------------------------------------- lab helpers

def netns_of(host: lab.LabHost) -> str:
    """The host's netns path, refusing anything that is not a namespace of this lab instance."""
    path = host.netns_path
    if not os.path.basename(path).startswith(lab.PREFIX + '-') or lab.PREFIX == 'nflab':
        raise BenchError('refusing netns %s: not a namespace of lab instance %r' % (path, INSTANCE))
    if not os.path.exists(path):
        raise BenchError('netns %s does not exist: is the bench lab up?' % path)
    if os.stat(path).st_ino == os.stat(ROOT_NETNS).st_ino:
        raise BenchError('netns %s is the root network namespace: refusing' % path)
    return path


def in_ns(host: lab.LabHost, argv: list[str], session: bool = False, **kwargs) -> subprocess.CompletedProcess:
    """Run argv inside the host's network namespace (never the root namespace).

    session=True: also in the mount namespace of the host's sshd, so argv sees the host as an SSH
    session does (its /var/run/docker.sock, its /var/lib/netfence state record).
    """
    kwargs.setdefault('capture_output', True)
    kwargs.setdefault('text', True)
    kwargs.setdefault('timeout', 120)
    prefix = ['nsenter', '--net=' + netns_of(host)]
    if session:
        prefix.append('--mount=' + sshd_mount_ns(host))
    return subprocess.run(prefix + argv, check=False, **kwargs)


def sshd_mount_ns(host: lab.LabHost) -> str:
    """/proc/<pid>/ns/mnt of the host's sshd (checked to be sshd, and not our own namespace)."""
    pid_file = os.path.join(host.run_dir, 'sshd.pid')
    with open(pid_file, encoding='ascii') as handle:
        pid = int(handle.read().strip())
    with open('/proc/%d/comm' % pid, encoding='ascii') as handle:
        if handle.read().strip() != 'sshd':
            raise BenchError('%s: pid %d of %s is not sshd' % (host.name, pid, pid_file))
    mnt = '/proc/%d/ns/mnt' % pid
    if os.stat(mnt).st_ino == os.stat('/proc/self/ns/mnt').st_ino:
        raise BenchError('%s: sshd shares our mount namespace' % host.name)
    return mnt


def netfence_rule_count(host: lab.LabHost) -> int:
    count = 0
    for prog in ('iptables-save', 'ip6tables-save'):
        res = in_ns(host, [prog, '-t', 'filter'])
        count += sum(1 for line in res.stdout.splitlines() if 'netfence bo=' in line)
    return count


def chain_rules(host: lab.LabHost, chain: str) -> list[str]:
    res = in_ns(host, ['iptables-save', '-t', 'filter'])
    if res.returncode != 0:
        raise BenchError('%s: iptables-save failed: %s' % (host.name, res.stderr.strip()))
    if not re.search(r'^:%s\s' % re.escape(chain), res.stdout, re.M):
        raise BenchError('%s: no %s chain in iptables-save (nft variant)' % (host.name, chain))
    return [line for line in res.stdout.splitlines() if line.startswith('-A %s ' % chain)]


def quiet_bashrc(hosts: list[lab.LabHost]) -> bool:
    """Make the bench hosts' SSH commands skip /root/.bashrc, as on an ordinary host.

    The lab hosts share this machine's /root, whose ~/.bashrc runs `pyenv init` for every
    non-interactive SSH command (bash sources ~/.bashrc when run by sshd): 0.1-0.4 s of CPU per SSH
    operation, 5 per module run, on every variant. Each lab host's sshd runs in a mount namespace
    of its own (tests/lab: unshare -m, mounts private), so an empty file is bind-mounted over
    /root/.bashrc there, and only there. NETFENCE_BENCH_BASHRC=keep leaves it alone.
    """
    if os.environ.get('NETFENCE_BENCH_BASHRC', '') == 'keep':
        return False
    if not os.path.exists('/root/.bashrc'):
        return False
    empty = os.path.join(lab.LIB_DIR, 'bench-empty-bashrc')
    with open(empty, 'w', encoding='ascii') as handle:
        handle.write('# netfence bench: SSH commands on the bench lab hosts run without ~/.bashrc\n')
    for host in hosts:
        mnt = sshd_mount_ns(host)
        pid = int(mnt.split('/')[2])
        with open('/proc/%d/mountinfo' % pid, encoding='ascii') as handle:
            if any(line.split()[4] == '/root/.bashrc' for line in handle):
                continue
        res = subprocess.run(['nsenter', '--mount=' + mnt, 'mount', '--bind', empty, '/root/.bashrc'],
                             capture_output=True, text=True, check=False, timeout=30)
        if res.returncode != 0:
            raise BenchError('%s: bind-mounting over /root/.bashrc failed: %s' % (host.name, res.stderr.strip()))
    return True


def lab_daemons(hosts: list[lab.LabHost]) -> dict[int, str]:
    """{pid: name} of this lab instance's containerd, dockerds and sshds (from their pid files)."""
    files = [(lab.CONTAINERD_PID, 'containerd')]
    for host in hosts:
        files += [(os.path.join(host.run_dir, 'dockerd.pid'), 'dockerd'), (os.path.join(host.run_dir, 'sshd.pid'), 'sshd')]
    found = {}
    for path, comm in files:
        with contextlib.suppress(OSError, ValueError):
            with open(path, encoding='ascii') as handle:
                pid = int(handle.read().strip())
            with open('/proc/%d/comm' % pid, encoding='ascii') as handle:
                if handle.read().strip() == comm:
                    found[pid] = comm
    return found


def set_priority(hosts: list[lab.LabHost], nice: int) -> None:
    """Run the bench (and, through inheritance, ansible, ssh) and the bench lab's daemons (and so the
    modules their SSH sessions start) at `nice`: this machine is shared, and other work competing for
    its CPUs makes every number noisier. Only this process and this lab instance's daemons, by pid."""
    os.setpriority(os.PRIO_PROCESS, 0, nice)
    for pid in lab_daemons(hosts):
        with contextlib.suppress(OSError):
            os.setpriority(os.PRIO_PROCESS, pid, nice)


def ssh_op_seconds(host: lab.LabHost, runs: int = 10) -> dict[str, float]:
    """Median wall time of one SSH command (`true`) over the inventory's ControlPersist master."""
    argv = ['ssh', '-o', 'StrictHostKeyChecking=no', '-o', 'UserKnownHostsFile=/dev/null', '-o', 'LogLevel=ERROR',
            '-o', 'ControlMaster=auto', '-o', 'ControlPersist=60s', '-o', 'ControlPath=/tmp/netfence-bench-ssh-%C',
            '-i', lab.SSH_KEY, 'root@' + host.addr, 'true']
    subprocess.run(argv, capture_output=True, check=False, timeout=30)
    times = []
    for dummy in range(runs):
        start = time.perf_counter()
        subprocess.run(argv, capture_output=True, check=False, timeout=30)
        times.append(time.perf_counter() - start)
    subprocess.run(argv[:-2] + ['-O', 'exit', 'root@' + host.addr], capture_output=True, check=False, timeout=30)
    return summary(times)


# --------------------------------------------------------------------------- ansible runs

def ansible_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    env = dict(os.environ)
    env['PATH'] = os.path.join(VENV, 'bin') + ':' + env.get('PATH', '')
    env['ANSIBLE_NOCOLOR'] = '1'
    env['ANSIBLE_FORCE_COLOR'] = '0'
    for key in ('ANSIBLE_CALLBACKS_ENABLED', 'ANSIBLE_CALLBACK_PLUGINS', 'ANSIBLE_KEEP_REMOTE_FILES',
                'ANSIBLE_COLLECTIONS_PATH', 'ANSIBLE_CONFIG'):
        env.pop(key, None)
    env.update(extra or {})
    return env


def playbook(path: str, limit: str, extra_vars: dict[str, str], env: dict[str, str] | None = None,
             timeout: float = 300) -> float:
    """Run ansible-playbook; return its wall time. Raise BenchError if it fails."""
    argv = [ANSIBLE_PLAYBOOK, '-i', lab.inventory_path(), path, '--limit', limit, '--forks', str(FORKS)]
    for key, value in extra_vars.items():
        argv += ['-e', '%s=%s' % (key, value)]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    res = subprocess.run(argv, cwd=ROOT, env=env or ansible_env(), capture_output=True, text=True,
                         timeout=timeout, check=False)
    took = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    CONTROLLER_CPU.append(after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime)
    if res.returncode != 0:
        raise BenchError('%s failed (rc=%s):\n%s' % (' '.join(argv[2:]), res.returncode,
                                                     (res.stdout + res.stderr)[-3000:]))
    return took


CONTROLLER_CPU: list[float] = []   # CPU time of each playbook() run on the controller (ansible, its workers, ssh)


def blackout(limit: str, env=None) -> float:
    return playbook('playbooks/blackout.yml', limit, {'service': SERVICE}, env)


def restore(limit: str, env=None) -> float:
    return playbook('playbooks/restore.yml', limit, {'service': SERVICE}, env)


def module_only(limit: str, state: str) -> float:
    """The module alone (bench/module_only.yml): what the role and playbook add is the rest."""
    env = ansible_env({'ANSIBLE_COLLECTIONS_PATH': os.path.join(ROOT, 'playbooks', 'collections')})
    return playbook('bench/module_only.yml', limit, {'service': SERVICE, 'state': state}, env)


def floor(limit: str) -> float:
    return playbook('bench/floor.yml', limit, {})


def handwritten(limit: str, state: str) -> float:
    return playbook('bench/handwritten.yml', limit, {'state': state,
                                                     'bench_target_python': BENCH_TARGET_VENV + '/bin/python'})


# --------------------------------------------------------------------------- module payloads

class Payloads:
    """The module's real AnsiballZ payloads, run directly in a host's network namespace.

    One payload is captured from an ad-hoc run (ANSIBLE_KEEP_REMOTE_FILES=1, state=absent of a
    blackout that does not exist: changes nothing); variants get other module arguments by
    rewriting the payload's embedded parameters. Same code, same zip, same wrapper as Ansible runs.

    run(..., timer=payloads.timer) runs the payload under bench/inmodule_timer.py (copied next to
    the payloads), which also reports the time inside the module: see that file's docstring.
    """

    def __init__(self, workdir: str) -> None:
        self.workdir = workdir
        self.templates: dict[str, str] = {}
        # next to the payloads: the wrapper strips the script's directory from sys.path
        self.timer = os.path.join(workdir, os.path.basename(INMODULE_TIMER))
        shutil.copyfile(INMODULE_TIMER, self.timer)

    def capture(self, module: str, args: dict) -> str:
        env = ansible_env({'ANSIBLE_KEEP_REMOTE_FILES': '1',
                           'ANSIBLE_COLLECTIONS_PATH': os.path.join(ROOT, 'playbooks', 'collections')})
        argv = [ANSIBLE, '-i', lab.inventory_path(), HOST, '-b', '-m', module, '-vvv']
        if args:
            argv += ['-a', json.dumps(args)]
        res = subprocess.run(argv, cwd=ROOT, env=env, capture_output=True, text=True, timeout=120, check=False)
        m = re.search(r'PUT \S+ TO (/\S+/(ansible-tmp-[^/\s]+)/AnsiballZ_\w+\.py)', res.stdout)
        if res.returncode != 0 or not m:
            raise BenchError('could not capture the %s payload:\n%s' % (module, (res.stdout + res.stderr)[-2000:]))
        remote, tmpname = m.group(1), m.group(2)
        local = os.path.join(self.workdir, 'AnsiballZ_%s.py' % module.rsplit('.', 1)[-1])
        shutil.copyfile(remote, local)   # the lab hosts share this machine's filesystem
        tmpdir = os.path.dirname(remote)
        if os.path.basename(tmpdir) == tmpname and tmpname.startswith('ansible-tmp-'):
            shutil.rmtree(tmpdir, ignore_errors=True)
        self.templates[module] = local
        return local

    def variant(self, module: str, tag: str, args: dict) -> str:
        with open(self.templates[module], encoding='utf-8') as handle:
            text = handle.read()
        m = re.search(r'^params=(.*),$', text, re.M)
        if not m:
            raise BenchError('no params= line in the %s payload' % module)
        params = json.loads(ast.literal_eval(m.group(1)))
        meta = {k: v for k, v in params['ANSIBLE_MODULE_ARGS'].items() if k.startswith('_ansible_')}
        meta.update({'_ansible_verbosity': 0, '_ansible_keep_remote_files': False, '_ansible_tmpdir': None})
        params['ANSIBLE_MODULE_ARGS'] = dict(args, **meta)
        text = text[:m.start(1)] + repr(json.dumps(params)) + text[m.end(1):]
        path = os.path.join(self.workdir, 'AnsiballZ_%s.py' % tag)
        with open(path, 'w', encoding='utf-8') as handle:
            handle.write(text)
        return path

    cpu: list[float] = []   # CPU time (user+sys, the module and its iptables children) of every run()
    inside: list[dict] = []  # what inmodule_timer.py reported, for every run(timer=...)

    @staticmethod
    def run(host: lab.LabHost, path: str, timer: str | None = None) -> tuple[float, dict]:
        """Run a payload in the host's netns with the host's engine; (wall time, result).

        Also appends the run's CPU time to Payloads.cpu (children's rusage: call from one thread only).
        timer: run it as `python3 <timer> <payload>` (bench/inmodule_timer.py) and append the time
        inside the module it reports to Payloads.inside.
        """
        argv = ['/usr/bin/env', '-i', 'PATH=/usr/sbin:/usr/bin:/sbin:/bin', 'LANG=C.UTF-8', 'HOME=/root',
                TARGET_PYTHON] + ([timer] if timer else []) + [path]
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        start = time.perf_counter()
        res = in_ns(host, argv, session=True)
        took = time.perf_counter() - start
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        Payloads.cpu.append(after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime)
        try:
            result = json.loads(res.stdout.strip().splitlines()[-1])
        except (ValueError, IndexError):
            detail = (res.stderr or res.stdout)[-2000:]
            raise BenchError('payload %s gave no JSON (rc=%s): %s' % (path, res.returncode, detail)) from None
        if result.get('failed'):
            raise BenchError('payload %s failed: %s' % (path, result.get('msg')))
        if timer:
            marked = [line for line in res.stderr.splitlines() if line.startswith('NETFENCE_INMODULE ')]
            if not marked:
                raise BenchError('payload %s under %s reported no time inside the module: %s'
                                 % (path, timer, res.stderr[-2000:]))
            Payloads.inside.append(json.loads(marked[-1].split(' ', 1)[1]))
        return took, result


def rule_total(result: dict, key: str) -> int:
    return sum(len(v) for v in (result.get(key) or {}).values())


# --------------------------------------------------------------------------- sections

def section_single(rounds: int, res: dict) -> None:
    """1: one service, one host: floor, netfence, hand-written; interleaved."""
    log('section 1: one service, one host (%s), %d rounds' % (HOST, rounds))
    data = {k: [] for k in ('floor', 'blackout', 'restore', 'handwritten_blackout', 'handwritten_restore',
                            'module_only_blackout', 'module_only_restore')}

    def unit_floor():
        data['floor'].append(floor(HOST))

    def unit_netfence():
        data['blackout'].append(blackout(HOST))
        data['restore'].append(restore(HOST))

    def unit_handwritten():
        data['handwritten_blackout'].append(handwritten(HOST, 'present'))
        data['handwritten_restore'].append(handwritten(HOST, 'absent'))

    def unit_module_only():
        data['module_only_blackout'].append(module_only(HOST, 'present'))
        data['module_only_restore'].append(module_only(HOST, 'absent'))

    units = [unit_floor, unit_netfence, unit_handwritten, unit_module_only]
    for unit in units:                      # warm-up (SSH master, caches), not counted
        unit()
    for values in data.values():
        values.clear()
    host = lab.get_host(HOST)
    for r in range(rounds):
        for unit in rotated(units, r):
            unit()
        if netfence_rule_count(host) or any('blackout memcached' in l for l in chain_rules(host, 'DOCKER-USER')):
            raise BenchError('%s: rules left after round %d' % (HOST, r + 1))
        log('  round %d/%d: floor %.2f  blackout %.2f  restore %.2f  hand-written %.2f / %.2f  module only %.2f / %.2f'
            % (r + 1, rounds, data['floor'][-1], data['blackout'][-1], data['restore'][-1],
               data['handwritten_blackout'][-1], data['handwritten_restore'][-1],
               data['module_only_blackout'][-1], data['module_only_restore'][-1]))
    res['single'] = {k: {'values': v, **summary(v)} for k, v in data.items()}


def section_breakdown(res: dict) -> None:
    """Where the time of one blackout.yml / restore.yml goes, per task (one extra run each)."""
    out = {}
    for name, fn in (('blackout', blackout), ('restore', restore)):
        records = timed_run(fn, HOST)
        starts = [r for r in records if r['event'] == 'task_start']
        begin, end = records[0]['t'], records[-1]['t']
        tasks = []
        for i, rec in enumerate(starts):
            nxt = starts[i + 1]['t'] if i + 1 < len(starts) else end
            tasks.append({'task': rec['task'], 'action': rec.get('action'), 'seconds': nxt - rec['t']})
        out[name] = {'tasks': tasks, 'first_task_to_end': end - begin}
    res['breakdown'] = out


def timed_run(fn, limit: str) -> list[dict]:
    """Run fn(limit, env) with the bench_timing callback; return its records."""
    fd, path = tempfile.mkstemp(prefix='netfence-bench-timing-', suffix='.jsonl')
    os.close(fd)
    env = ansible_env({'ANSIBLE_CALLBACKS_ENABLED': 'bench_timing',
                       'ANSIBLE_CALLBACK_PLUGINS': os.path.join(HERE, 'callback_plugins'),
                       'NETFENCE_BENCH_TIMING': path})
    try:
        fn(limit, env)
        with open(path, encoding='utf-8') as handle:
            return [json.loads(line) for line in handle if line.strip()]
    finally:
        os.unlink(path)


@contextlib.contextmanager
def replicas(host: lab.LabHost):
    """k = 1, 10, 50 running containers of services rep1, rep10, rep50 (compose-shaped)."""
    client = host.client(timeout=120)
    try:
        remove_replicas(client, network=False)
        workdir = os.path.join(host.lib_dir, 'benchrep')
        nets = [n for n in client.networks.list(names=[REPLICA_NETWORK]) if n.name == REPLICA_NETWORK]
        net = nets[0] if nets else client.networks.create(REPLICA_NETWORK, driver='bridge', labels={
            'com.docker.compose.project': REPLICA_PROJECT, 'com.docker.compose.network': 'net'})
        specs = [(k, n) for k in REPLICAS for n in range(1, k + 1)]

        def create(spec):
            k, n = spec
            name = '%s-rep%d-%d' % (REPLICA_PROJECT, k, n)
            labels = lab._compose_labels({'service': 'rep%d' % k, 'number': n, 'role': 'service'},  # pylint: disable=protected-access
                                         workdir)
            labels['com.docker.compose.project'] = REPLICA_PROJECT
            cont = client.containers.create(lab.IMAGE, lab.MEMCACHED_CMD, name=name, hostname=name,
                                            labels=labels, network=net.name)
            cont.start()

        start = time.perf_counter()
        with concurrent.futures.ThreadPoolExecutor(8) as pool:
            list(pool.map(create, specs))
        log('  created %d replica containers on %s in %.1f s' % (len(specs), host.name, time.perf_counter() - start))
        yield
    finally:
        start = time.perf_counter()
        remove_replicas(client)
        log('  removed the replica containers in %.1f s' % (time.perf_counter() - start))
        client.close()


def remove_replicas(client, network: bool = True) -> None:
    conts = client.containers.list(all=True, filters={'label': 'com.docker.compose.project=%s' % REPLICA_PROJECT})
    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        list(pool.map(lambda c: c.remove(force=True), conts))
    for net in client.networks.list(names=[REPLICA_NETWORK]) if network else []:
        if net.name != REPLICA_NETWORK:
            continue
        for attempt in range(10):           # the engine may still be releasing the endpoints
            try:
                net.remove()
                break
            except docker_errors().APIError as exc:
                if attempt == 9:            # Docker 20.10 can keep a stale endpoint: the network stays
                    # (empty, in the bench lab only; `lab.py down` removes it with everything else)
                    log('  WARNING: network %s not removed (%s); the next run reuses it'
                        % (REPLICA_NETWORK, getattr(exc, 'explanation', exc)))
                    break
                net.reload()
                for cid in (net.attrs.get('Containers') or {}):
                    with contextlib.suppress(docker_errors().APIError):
                        net.disconnect(cid, force=True)
                time.sleep(0.5)


def docker_errors():
    import docker.errors  # pylint: disable=import-outside-toplevel
    return docker.errors


def section_replicas(rounds: int, payloads: Payloads, res: dict) -> None:
    """2: k replicas of one service on one host: module time (payload in the host's netns)."""
    log('section 2: replicas k=%s on %s, %d rounds' % (','.join(map(str, REPLICAS)), HOST, rounds))
    host = lab.get_host(HOST)
    paths = {(k, st): payloads.variant('netfence.docker.blackout', 'rep%d_%s' % (k, st),
                                       {'service': 'rep%d' % k, 'project': REPLICA_PROJECT, 'state': st})
             for k in REPLICAS for st in ('present', 'absent')}
    data = {k: {'present': [], 'absent': [], 'present_cpu': [], 'rules': 0} for k in REPLICAS}
    with replicas(host):
        for k in REPLICAS:                  # warm-up
            for st in ('present', 'absent'):
                payloads.run(host, paths[(k, st)])
        for r in range(rounds * REPEAT):
            for k in rotated(list(REPLICAS), r):
                took, result = payloads.run(host, paths[(k, 'present')])
                if not result.get('changed') or len(result.get('containers', [])) != k:
                    raise BenchError('rep%d: blackout covered %d containers' % (k, len(result.get('containers', []))))
                data[k]['present'].append(took)
                data[k]['present_cpu'].append(Payloads.cpu[-1])
                data[k]['rules'] = rule_total(result, 'added')
                took, result = payloads.run(host, paths[(k, 'absent')])
                data[k]['absent'].append(took)
            log('  round %d/%d: ' % (r + 1, rounds * REPEAT) + '  '.join(
                'k=%d %.3f/%.3f' % (k, data[k]['present'][-1], data[k]['absent'][-1]) for k in REPLICAS))
    if netfence_rule_count(host):
        raise BenchError('%s: netfence rules left after the replicas section' % HOST)
    res['replicas'] = {str(k): {'rules': v['rules'],
                                **{st: {'values': v[st], **summary(v[st])} for st in ('present', 'absent', 'present_cpu')}}
                       for k, v in data.items()}


def foreign_payload(n: int) -> str:
    """n unrelated rules at the top of DOCKER-USER, half of them with a (foreign) comment."""
    lines = ['*filter']
    for i in range(n):
        src = '198.18.%d.%d/32' % (i // 250, i % 250 + 1)
        dst = '203.0.113.%d/32' % (i % 200 + 1)
        comment = ' -m comment --comment "bench foreign rule %d"' % i if i % 2 else ''
        lines.append('-I DOCKER-USER 1 -s %s -d %s -p tcp -m tcp --dport %d%s -j RETURN'
                     % (src, dst, 1024 + i % 50000, comment))
    lines.append('COMMIT')
    return '\n'.join(lines) + '\n'


@contextlib.contextmanager
def foreign_rules(host: lab.LabHost, n: int, original: list[str]):
    """Load n unrelated rules into DOCKER-USER with one iptables-restore; put the chain back after."""
    start = time.perf_counter()
    res = in_ns(host, ['iptables-restore', '--noflush', '-w'], input=foreign_payload(n), timeout=300)
    if res.returncode != 0:
        raise BenchError('%s: loading %d rules failed: %s' % (host.name, n, res.stderr.strip()[-500:]))
    loaded = time.perf_counter() - start
    try:
        count = len(chain_rules(host, 'DOCKER-USER'))
        if count != n + len(original):
            raise BenchError('%s: DOCKER-USER has %d rules, expected %d' % (host.name, count, n + len(original)))
        yield loaded
    finally:
        payload = '*filter\n-F DOCKER-USER\n' + ''.join(line + '\n' for line in original) + 'COMMIT\n'
        res = in_ns(host, ['iptables-restore', '--noflush', '-w'], input=payload, timeout=300)
        if res.returncode != 0 or chain_rules(host, 'DOCKER-USER') != original:
            raise BenchError('%s: could not put DOCKER-USER back: %s' % (host.name, res.stderr.strip()))


def section_foreign(rounds: int, payloads: Payloads, res: dict) -> None:
    """3: 10,000 foreign rules in DOCKER-USER vs an empty chain: module time."""
    log('section 3: %d foreign rules in DOCKER-USER vs empty, on %s, %d rounds' % (FOREIGN_RULES, HOST, rounds))
    host = lab.get_host(HOST)
    present = payloads.variant('netfence.docker.blackout', 'svc_present', {'service': SERVICE})
    absent = payloads.variant('netfence.docker.blackout', 'svc_absent', {'service': SERVICE, 'state': 'absent'})
    if netfence_rule_count(host):
        raise BenchError('%s: netfence rules present before the foreign-rules section' % HOST)
    original = chain_rules(host, 'DOCKER-USER')
    if any('netfence' in line or 'bench foreign' in line for line in original):
        raise BenchError('%s: DOCKER-USER is not in its pristine state: %s' % (HOST, original))
    data = {kind: {'present': [], 'absent': [], 'present_cpu': [], 'save': [], 'fetch': []}
            for kind in ('empty', 'foreign')}
    loads = []

    def tool_seconds(argv):
        start = time.perf_counter()
        done = in_ns(host, argv)
        took = time.perf_counter() - start
        if done.returncode != 0:
            raise BenchError('%s: %s failed: %s' % (HOST, ' '.join(argv), done.stderr.strip()))
        return took

    def measure(kind):
        took, result = payloads.run(host, present)
        if not result.get('changed'):
            raise BenchError('the blackout changed nothing (%s)' % kind)
        data[kind]['present'].append(took)
        data[kind]['present_cpu'].append(Payloads.cpu[-1])
        took, dummy = payloads.run(host, absent)
        data[kind]['absent'].append(took)
        # What reading the chain costs by itself, outside the module (the same nsenter start-up
        # for both kinds): the whole filter table, and the kernel fetch of DOCKER-USER alone (one
        # rule printed: iptables-nft fetches the whole chain all the same).
        data[kind]['save'].append(tool_seconds(['iptables-nft-save', '-t', 'filter']))
        data[kind]['fetch'].append(tool_seconds(['iptables-nft', '-w', '-S', 'DOCKER-USER', '1']))

    payloads.run(host, present)             # warm-up
    payloads.run(host, absent)
    for r in range(rounds):
        for kind in rotated(['empty', 'foreign'], r):
            if kind == 'empty':
                measure('empty')
            else:
                with foreign_rules(host, FOREIGN_RULES, original) as loaded:
                    loads.append(loaded)
                    for dummy in range(REPEAT):
                        measure('foreign')
                continue
            for dummy in range(REPEAT - 1):
                measure('empty')
        log('  round %d/%d: empty %.3f/%.3f  10k %.3f/%.3f' % (
            r + 1, rounds, data['empty']['present'][-1], data['empty']['absent'][-1],
            data['foreign']['present'][-1], data['foreign']['absent'][-1]))
    res['foreign'] = {kind: {st: {'values': v, **summary(v)} for st, v in d.items()} for kind, d in data.items()}
    res['foreign']['load_seconds'] = summary(loads)


def section_fleet(rounds: int, res: dict) -> None:
    """4: 1, 3, 6 hosts: playbook wall time, forks >= hosts."""
    log('section 4: fleet of %s hosts, forks %d, %d rounds' % (','.join(str(n) for n, dummy in FLEET), FORKS, rounds))
    data = {n: {'blackout': [], 'restore': [], 'blackout_controller_cpu': [], 'floor': []} for n, dummy in FLEET}

    def unit(n, limit):
        data[n]['floor'].append(floor(limit))
        data[n]['blackout'].append(blackout(limit))
        data[n]['blackout_controller_cpu'].append(CONTROLLER_CPU[-1])
        data[n]['restore'].append(restore(limit))

    unit(*FLEET[-1])                        # warm-up: every host's SSH master
    for values in data.values():
        for series in values.values():
            series.clear()
    for r in range(rounds):
        for n, limit in rotated(list(FLEET), r):
            unit(n, limit)
        log('  round %d/%d: ' % (r + 1, rounds) + '  '.join(
            '%d hosts %.2f/%.2f' % (n, data[n]['blackout'][-1], data[n]['restore'][-1]) for n, dummy in FLEET))
    res['fleet'] = {str(n): {st: {'values': v, **summary(v)} for st, v in d.items()} for n, d in data.items()}


class Probe:
    """A tight TCP connect loop from the root namespace to a lab host's published port (external path)."""

    def __init__(self, addr: str, port: int, want: str) -> None:
        self.addr, self.port, self.want = addr, port, want   # want: 'refused' or 'open'
        self.first: float | None = None
        self.attempts = 0
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._loop, daemon=True)

    def _attempt(self) -> str:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.settimeout(0.5)
        try:
            sock.connect((self.addr, self.port))
            return 'open'
        except (ConnectionRefusedError, ConnectionResetError):
            return 'refused'
        except OSError:
            return 'other'
        finally:
            sock.close()

    def _loop(self) -> None:
        deadline = time.monotonic() + CUT_TIMEOUT + 60
        while not self.stop.is_set() and time.monotonic() < deadline:
            outcome = self._attempt()
            self.attempts += 1
            if outcome == self.want:
                self.first = time.time()
                return
            time.sleep(0.002)

    def __enter__(self) -> 'Probe':
        if self._attempt() == self.want:
            raise BenchError('probe %s:%d is already %s before the run' % (self.addr, self.port, self.want))
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.thread.join(CUT_TIMEOUT)
        self.stop.set()
        self.thread.join(5)


def section_cut(rounds: int, res: dict) -> None:
    """5: time from the blackout task's start until the probe sees the first refusal."""
    host = lab.get_host(HOST)
    port = 11211
    log('section 5: time to cut, probe %s:%d (external path), %d rounds' % (host.addr, port, rounds))
    data = {'cut_from_task_start': [], 'cut_from_runner_start': [], 'task_result_from_task_start': [],
            'reopen_from_task_start': [], 'probe_attempts': []}

    def module_task(records, state):
        for i, rec in enumerate(records):
            if rec['event'] == 'task_start' and rec.get('action') == 'netfence.docker.blackout' \
                    and not rec.get('check_mode'):
                runner = next((x for x in records[i + 1:] if x['event'] == 'runner_start'), None)
                done = next((x for x in records[i + 1:] if x['event'] in ('ok', 'failed')), None)
                return rec['t'], runner['t'] if runner else None, done['t'] if done else None
        raise BenchError('no netfence.docker.blackout task in the %s run' % state)

    timed_run(blackout, HOST)               # warm-up
    timed_run(restore, HOST)
    for r in range(rounds):
        with Probe(host.addr, port, 'refused') as probe:
            records = timed_run(blackout, HOST)
        if probe.first is None:
            raise BenchError('round %d: the probe never saw a refusal' % (r + 1))
        t_task, t_runner, t_done = module_task(records, 'blackout')
        data['cut_from_task_start'].append(probe.first - t_task)
        if t_runner is not None:
            data['cut_from_runner_start'].append(probe.first - t_runner)
        if t_done is not None:
            data['task_result_from_task_start'].append(t_done - t_task)
        data['probe_attempts'].append(probe.attempts)
        with Probe(host.addr, port, 'open') as probe:
            records = timed_run(restore, HOST)
        if probe.first is not None:
            data['reopen_from_task_start'].append(probe.first - module_task(records, 'restore')[0])
        log('  round %d/%d: cut %.3f s after the task start (task result at %.3f s)' % (
            r + 1, rounds, data['cut_from_task_start'][-1], data['task_result_from_task_start'][-1]))
    res['cut'] = {k: {'values': v, **summary(v)} for k, v in data.items() if v and k != 'probe_attempts'}
    res['cut']['probe_attempts'] = data['probe_attempts']


def hold_blackout() -> float:
    """blackout.yml with `hold: true` (playbooks/vars/inputs.yml's default, given explicitly)."""
    return playbook('playbooks/blackout.yml', HOST, {'service': SERVICE, 'hold': 'true'})


def hold_cut(host: lab.LabHost, client, variant: str) -> tuple[dict[str, tuple[float, bool]], float | None]:
    """One new container of the blacked-out service (HOLD_VARIANTS[variant]); its cut per path.

    The probers (netfence_lab_hold.PROBER) start and say they are ready before the container
    starts, and get its address as soon as it runs. Returns ({path: (first refusal after which
    every attempt was refused - State.StartedAt, whether the prober was served first)}, the
    watcher's own lag in seconds from its pid file, or None if its last re-apply is older).
    """
    name, port, action, dummy = HOLD_VARIANTS[variant]
    netns = netns_of(host)
    peer = hold.client_netns(client)
    if os.stat(peer).st_ino in (os.stat(ROOT_NETNS).st_ino, os.stat(netns).st_ino):
        raise BenchError('%s: the peer namespace %s is not a container\'s' % (HOST, peer))
    spaces = {'external': None, 'localhost': netns, 'host': netns, 'peer': peer}
    probers = {}
    try:
        for path, space in spaces.items():
            probers[path] = hold.start_prober(space, HOLD_PROBE_SECONDS)
        action(client)
        cont = client.containers.get(name)
        addr = hold.address(client, name)
        targets = {'external': (host.addr, port), 'localhost': ('127.0.0.1', port), 'host': (addr, 11211),
                   'peer': (addr, 11211)}
        for path, proc in probers.items():
            hold.aim(proc, *targets[path])
    except BaseException:
        hold.kill_probers(probers.values())
        raise
    started = hold.epoch(cont.attrs['State']['StartedAt'])
    cuts = {}
    for path, proc in probers.items():
        first, served = hold.first_refused(proc)
        if first is None:
            raise BenchError('%s: %s path to the new %s (%s) never refused in %.0f s'
                             % (variant, path, name, addr, HOLD_PROBE_SECONDS))
        cuts[path] = (first - started, served)
    # Every path of the lab's probe matrix (localhost6, own_addr too): every memcached container
    # refused, the bystander (and the taker on the old address) served. Read until so (bounded).
    cut = hold.MEMCACHED + (name,)
    bad = hold.expect(hold.probe_until_cut(host, cut, HOLD_PROBE_SECONDS), cut)
    if bad:
        raise BenchError('%s: not every path as expected %.0f s after the start: %s' % (variant, HOLD_PROBE_SECONDS, bad))
    last = hold.pid_file_data(host).get('last') or {}
    lag = last.get('lag_ms')
    if lag is None or not last.get('at') or hold.epoch(last['at']) < started:
        return cuts, None
    return cuts, lag / 1000


def section_hold(rounds: int, res: dict) -> None:
    """7: hold: a new container of a blackout with `hold: true` is cut by the watcher, no Ansible run.

    Per round, each variant (interleaved): blackout.yml -e hold=true; probers ready on every path;
    the new container started (a replica recreated with a new address: lab-memcached-2 removed,
    its address taken by another container, started again; or a new replica lab-memcached-3);
    the time from its State.StartedAt to the first refusal per path; restore.yml (the watcher
    stops); the deployment put back (netfence_lab_hold.put_back: the lab's own deploy if an
    address cannot be had again). Checked after each: no netfence rule, no watcher, no pid file.
    """
    host = lab.get_host(HOST)
    log('section 7: hold on %s: %s; %d rounds' % (HOST, ', '.join(HOLD_VARIANTS), rounds))
    client = host.client(timeout=60)
    try:
        hold.put_back(host, client, {})     # containers a killed earlier run left
        if hold.watchers(host) or hold.hold_files(host) or netfence_rule_count(host):
            raise BenchError('%s: a hold watcher, pid file or netfence rule before section 7' % HOST)
        HOLD_DEPLOYMENT.clear()
        HOLD_DEPLOYMENT.update({n: hold.address(client, n) for n in hold.MEMCACHED + ('lab-bystander-1',)})
        data = {v: {'paths': {p: [] for p in HOLD_PATHS}, 'served': {p: 0 for p in HOLD_PATHS}, 'slowest': [],
                    'watcher_lag': []} for v in HOLD_VARIANTS}

        def unit(variant):
            hold_blackout()
            pids = hold.watchers(host)
            if len(pids) != 1:
                raise BenchError('%s: %d hold watchers after blackout.yml -e hold=true' % (variant, len(pids)))
            try:
                cuts, lag = hold_cut(host, client, variant)
            finally:
                restore(HOST)
                hold.put_back(host, client, HOLD_DEPLOYMENT)
            if hold.watchers(host) or hold.hold_files(host) or netfence_rule_count(host):
                raise BenchError('%s: a watcher, pid file or netfence rule left after restore.yml' % variant)
            return cuts, lag

        unit('recreate')                    # warm-up, not counted
        for r in range(rounds):
            for variant in rotated(list(HOLD_VARIANTS), r):
                cuts, lag = unit(variant)
                d = data[variant]
                for path, (took, served) in cuts.items():
                    d['paths'][path].append(took)
                    d['served'][path] += served
                d['slowest'].append(max(took for took, dummy in cuts.values()))
                if lag is not None:
                    d['watcher_lag'].append(lag)
                log('  round %d/%d: %s: %s; slowest %s; watcher %s' % (
                    r + 1, rounds, variant, '  '.join('%s %s%s' % (p, '' if s else '≤ ', fmt_s(t))
                                                      for p, (t, s) in cuts.items()),
                    fmt_s(d['slowest'][-1]), fmt_s(lag) if lag is not None else '?'))
    finally:
        client.close()
    res['hold'] = {v: {'paths': {p: {'values': vals, **summary(vals)} for p, vals in d['paths'].items()},
                       'served': d['served'],
                       'slowest': {'values': d['slowest'], **summary(d['slowest'])},
                       **({'watcher_lag': {'values': d['watcher_lag'], **summary(d['watcher_lag'])}}
                          if d['watcher_lag'] else {})}
                   for v, d in data.items()}


def section_module(rounds: int, payloads: Payloads, res: dict) -> None:
    """6: the module's own cost on the host: its payload, run in the host's netns, many times.

    Two measurements of the same payloads, interleaved round by round (which comes first alternates):

    * whole process: `python3 AnsiballZ_x.py`, wall time from outside (Python's start, the
      AnsiballZ wrapper and its zip, `ansible.module_utils.basic`, the module), CPU time from
      getrusage of the children (with the module's iptables/nft subprocesses);
    * inside the module: the same payload under bench/inmodule_timer.py, which times only
      `runpy.run_module(<module fqn>)` as called by ansible's `_ansiballz._loader`: the import of
      the module's code (with its own module_utils) and main() until exit_json()'s SystemExit.
      Everything before it (interpreter, wrapper, zip, `basic`) is what the ping module pays too.
    """
    runs = max(20, rounds * 4)
    host = lab.get_host(HOST)
    log('section 6: module payload on %s, %d runs each of present, absent and ping, '
        'as a whole process and timed inside the module' % (HOST, runs))
    variants = {
        'present': payloads.variant('netfence.docker.blackout', 'mod_present', {'service': SERVICE}),
        'absent': payloads.variant('netfence.docker.blackout', 'mod_absent', {'service': SERVICE, 'state': 'absent'}),
        'unchanged': payloads.variant('netfence.docker.blackout', 'mod_present2', {'service': SERVICE}),
        'ping': payloads.templates['ansible.builtin.ping'],
    }
    fqns = {'present': 'ansible_collections.netfence.docker.plugins.modules.blackout',
            'unchanged': 'ansible_collections.netfence.docker.plugins.modules.blackout',
            'absent': 'ansible_collections.netfence.docker.plugins.modules.blackout',
            'ping': 'ansible.modules.ping'}
    data = {k: [] for k in variants}
    cpu = {k: [] for k in variants}
    inside = {k: [] for k in variants}
    inside_cpu = {k: [] for k in variants}
    before = {k: [] for k in variants}
    timed_whole = {k: [] for k in variants}
    data['python_startup'] = []

    def one_pass(r, timer):
        # present (changes) then present again (no change) then absent (changes), ping in between
        for name in rotated(['ping', 'present'], r) + ['unchanged', 'absent']:
            took, result = payloads.run(host, variants[name], timer=timer)
            if name in ('present', 'absent') and not result.get('changed'):
                raise BenchError('module %s run %d did not change anything' % (name, r + 1))
            if name == 'unchanged' and result.get('changed'):
                raise BenchError('module run %d: a second blackout changed something' % (r + 1))
            if not timer:
                data[name].append(took)
                cpu[name].append(Payloads.cpu[-1])
                continue
            rec = Payloads.inside[-1]
            if rec.get('fqn') != fqns[name]:
                raise BenchError('%s: the timer saw module %r, not %r' % (name, rec.get('fqn'), fqns[name]))
            inside[name].append(rec['wall'])
            inside_cpu[name].append(rec['cpu'] + rec['cpu_children'])
            before[name].append(rec['before'])
            timed_whole[name].append(took)

    for dummy in range(2):                  # warm-up
        for name in ('present', 'unchanged', 'absent', 'ping'):
            payloads.run(host, variants[name])
            payloads.run(host, variants[name], timer=payloads.timer)
    for r in range(runs):
        for timer in rotated([None, payloads.timer], r):
            one_pass(r, timer)
        start = time.perf_counter()
        in_ns(host, [TARGET_PYTHON, '-c', 'pass'])
        data['python_startup'].append(time.perf_counter() - start)
    res['module'] = {k: {'values': v, **summary(v)} for k, v in data.items()}
    res['module_cpu'] = {k: {'values': v, **summary(v)} for k, v in cpu.items()}
    res['module_inside'] = {k: {'values': v, **summary(v)} for k, v in inside.items()}
    res['module_inside_cpu'] = {k: {'values': v, **summary(v)} for k, v in inside_cpu.items()}
    # context, from the timed runs: the payload before the module (wrapper, zip, basic; after
    # Python's start) and the whole process under the timer (for comparison with the plain run)
    res['module_inside_before'] = {k: {'values': v, **summary(v)} for k, v in before.items()}
    res['module_inside_whole'] = {k: {'values': v, **summary(v)} for k, v in timed_whole.items()}
    log('section 6: inside the module (medians): %s' % ', '.join(
        '%s %s' % (k, fmt_s(v['median'])) for k, v in res['module_inside'].items()))


def profile_module(res: dict) -> None:
    """pyinstrument on the module (controller venv's Python, the host's netns), text to results/."""
    host = lab.get_host(HOST)
    os.makedirs(RESULTS, exist_ok=True)
    pp = tempfile.mkdtemp(prefix='netfence-bench-pp-')
    try:
        os.makedirs(os.path.join(pp, 'ansible_collections', 'netfence'))
        os.symlink(ROOT, os.path.join(pp, 'ansible_collections', 'netfence', 'docker'))
        for state in ('present', 'absent'):
            args = json.dumps({'ANSIBLE_MODULE_ARGS': {'service': SERVICE, 'state': state}})
            argv = ['/usr/bin/env', 'PYTHONPATH=' + pp,
                    os.path.join(VENV, 'bin', 'python'), '-m', 'pyinstrument', '--show', '*/netfence/*',
                    '-m', 'ansible_collections.netfence.docker.plugins.modules.blackout', args]
            out = in_ns(host, argv, session=True)
            text = '\n'.join(line for line in out.stdout.splitlines() if not line.startswith('{'))
            with open(os.path.join(RESULTS, 'profile-module-%s.txt' % state), 'w', encoding='utf-8') as handle:
                handle.write(text + '\n')
        res['profile'] = ['results/profile-module-present.txt', 'results/profile-module-absent.txt']
    finally:
        shutil.rmtree(pp, ignore_errors=True)


# --------------------------------------------------------------------------- setup

def ensure_target_venv() -> None:
    """A separate venv with the Docker SDK and requests for the hand-written playbook's targets."""
    py = os.path.join(BENCH_TARGET_VENV, 'bin', 'python')
    check = [py, '-c', 'import docker, requests; print(docker.__version__, requests.__version__)']
    if os.path.exists(py) and subprocess.run(check, capture_output=True, check=False).returncode == 0:
        return
    log('creating %s (%s) for the hand-written playbook' % (BENCH_TARGET_VENV, ', '.join(TARGET_VENV_REQUIREMENTS)))
    subprocess.run([TARGET_PYTHON, '-m', 'venv', '--clear', BENCH_TARGET_VENV], check=True)
    subprocess.run([os.path.join(BENCH_TARGET_VENV, 'bin', 'pip'), 'install', '-q', '--disable-pip-version-check']
                   + list(TARGET_VENV_REQUIREMENTS), check=True)
    subprocess.run(check, check=True, capture_output=True)


def target_python_is_clean() -> bool:
    """The targets' interpreter must not have docker/requests (netfence needs neither)."""
    res = subprocess.run([TARGET_PYTHON, '-c', 'import docker'], capture_output=True, check=False)
    res2 = subprocess.run([TARGET_PYTHON, '-c', 'import requests'], capture_output=True, check=False)
    return res.returncode != 0 and res2.returncode != 0


def versions() -> dict[str, str]:
    def out(argv):
        try:
            return subprocess.run(argv, capture_output=True, text=True, check=False, timeout=30).stdout.strip()
        except OSError:
            return '?'
    pyver = out([os.path.join(VENV, 'bin', 'python'), '-c',
                 'import ansible.release as a, importlib.metadata as m; '
                 'print(a.__version__, m.version("ansible"))']).split()
    cdocker = out([os.path.join(VENV, 'bin', 'python'), '-c',
                   'import json; print(json.load(open(__import__("os").path.join(__import__("ansible_collections").__path__[0],'
                   '"community","docker","MANIFEST.json")))["collection_info"]["version"])'])
    state = lab._load_state() or {}  # pylint: disable=protected-access
    return {
        'ansible-core': pyver[0] if pyver else '?',
        'ansible': pyver[1] if len(pyver) > 1 else '?',
        'community.docker': cdocker,
        'controller python': out([os.path.join(VENV, 'bin', 'python'), '--version']).replace('Python ', ''),
        'target python': out([TARGET_PYTHON, '--version']).replace('Python ', ''),
        'iptables': out(['iptables', '--version']),
        'docker engines': ', '.join('%s=%s' % kv for kv in sorted((state.get('versions') or {}).items())),
        'openssh': subprocess.run(['ssh', '-V'], capture_output=True, text=True, check=False).stderr.strip(),
    }


def machine() -> dict[str, str]:
    cpu = '?'
    with contextlib.suppress(OSError):
        with open('/proc/cpuinfo', encoding='utf-8') as handle:
            for line in handle:
                if line.startswith('model name'):
                    cpu = line.split(':', 1)[1].strip()
                    break
    mem = '?'
    with contextlib.suppress(OSError, IndexError, ValueError):
        with open('/proc/meminfo', encoding='utf-8') as handle:
            mem = '%.1f GiB' % (int(handle.readline().split()[1]) / 1024 / 1024)
    osname = '?'
    with contextlib.suppress(OSError):
        with open('/etc/os-release', encoding='utf-8') as handle:
            osname = dict(line.strip().split('=', 1) for line in handle if '=' in line).get('PRETTY_NAME', '?').strip('"')
    return {'cpu': cpu, 'cpus': str(os.cpu_count()), 'memory': mem, 'os': osname,
            'kernel': platform.release(), 'hostname': socket.gethostname()}


def git_state() -> str:
    def git(*args):
        return subprocess.run(['git', '-C', ROOT] + list(args), capture_output=True, text=True,
                              check=False).stdout
    dirty = [line[3:] for line in git('status', '--porcelain', '--', 'plugins', 'roles', 'playbooks').splitlines()]
    return git('rev-parse', '--short', 'HEAD').strip() + (' + uncommitted changes in %s' % ', '.join(dirty) if dirty else '')


def loadavg() -> str:
    with open('/proc/loadavg', encoding='ascii') as handle:
        return ' '.join(handle.read().split()[:3])


# --------------------------------------------------------------------------- report

def ratio(res: dict, key: str) -> float | None:
    try:
        if key == 'floor':
            return res['single']['blackout']['median'] / res['single']['floor']['median']
        if key == 'handwritten':
            return res['single']['handwritten_blackout']['median'] / res['single']['blackout']['median']
        if key == 'replicas':
            return res['replicas']['50']['present']['median'] / res['replicas']['1']['present']['median']
        if key == 'foreign':
            return res['foreign']['foreign']['present']['median'] / res['foreign']['empty']['present']['median']
        if key == 'fleet':
            return res['fleet']['6']['blackout']['median'] / res['fleet']['1']['blackout']['median']
        if key == 'fleet_floor':
            return res['fleet']['6']['floor']['median'] / res['fleet']['1']['floor']['median']
        if key == 'module':
            return res['module_inside']['present']['median']
        if key == 'hold':   # the slower variant
            return max(v['slowest']['median'] for v in res['hold'].values())
    except (KeyError, ValueError):
        return None
    return None


def cpu_ratio(res: dict, key: str) -> float | None:
    """The module targets on CPU time (less sensitive to other work on the machine)."""
    try:
        if key == 'replicas':
            return res['replicas']['50']['present_cpu']['median'] / res['replicas']['1']['present_cpu']['median']
        if key == 'foreign':
            return (res['foreign']['foreign']['present_cpu']['median']
                    / res['foreign']['empty']['present_cpu']['median'])
        if key == 'module':
            return res['module_inside_cpu']['present']['median']
    except KeyError:
        return None
    return None


def table(res: dict) -> str:
    rows = []

    def add(section, what, s):
        median, spread = fmt_summary(s)
        rows.append('| %s | %s | %s | %s | %d |' % (section, what, median, spread, s['n']))

    single = res.get('single')
    if single:
        add('1 one host', 'floor: `floor.yml` (ping)', single['floor'])
        add('1 one host', '**`blackout.yml`** (verify included)', single['blackout'])
        add('1 one host', '**`restore.yml`** (verify included)', single['restore'])
        add('1 one host', 'hand-written blackout', single['handwritten_blackout'])
        add('1 one host', 'hand-written restore', single['handwritten_restore'])
        add('1 one host', 'reference: the module alone, blackout (`module_only.yml`)', single['module_only_blackout'])
        add('1 one host', 'reference: the module alone, restore', single['module_only_restore'])
    for k, v in (res.get('replicas') or {}).items():
        add('2 replicas', 'module, k=%s (%d rules)' % (k, v['rules']), v['present'])
    for k, v in (res.get('replicas') or {}).items():
        add('2 replicas', 'CPU time, k=%s' % k, v['present_cpu'])
    foreign = res.get('foreign')
    if foreign:
        add('3 foreign rules', 'module, empty DOCKER-USER', foreign['empty']['present'])
        add('3 foreign rules', 'module, 10,000 foreign rules', foreign['foreign']['present'])
        add('3 foreign rules', 'CPU time, empty', foreign['empty']['present_cpu'])
        add('3 foreign rules', 'CPU time, 10,000 foreign rules', foreign['foreign']['present_cpu'])
        if foreign['empty'].get('save'):
            add('3 foreign rules', 'reference: `iptables-nft-save -t filter` alone, empty', foreign['empty']['save'])
            add('3 foreign rules', 'reference: `iptables-nft-save -t filter` alone, 10,000 foreign rules',
                foreign['foreign']['save'])
            add('3 foreign rules', 'reference: `iptables-nft -S DOCKER-USER 1` alone (the kernel fetch of the '
                'chain), empty', foreign['empty']['fetch'])
            add('3 foreign rules', 'reference: `iptables-nft -S DOCKER-USER 1` alone, 10,000 foreign rules',
                foreign['foreign']['fetch'])
    for n, v in (res.get('fleet') or {}).items():
        add('4 fleet', '`blackout.yml`, %s host%s' % (n, 's' if n != '1' else ''), v['blackout'])
    for n, v in (res.get('fleet') or {}).items():
        add('4 fleet', '`restore.yml`, %s host%s' % (n, 's' if n != '1' else ''), v['restore'])
    for n, v in (res.get('fleet') or {}).items():
        add('4 fleet', 'controller CPU time of `blackout.yml`, %s host%s' % (n, 's' if n != '1' else ''),
            v['blackout_controller_cpu'])
    for n, v in (res.get('fleet') or {}).items():
        if v.get('floor'):
            add('4 fleet', 'reference: the floor (`floor.yml`), %s host%s' % (n, 's' if n != '1' else ''), v['floor'])
    cut = res.get('cut')
    if cut:
        add('5 time to cut', 'blackout task start → first refusal (external path)', cut['cut_from_task_start'])
        if 'task_result_from_task_start' in cut:
            add('5 time to cut', 'blackout task start → task result on the controller',
                cut['task_result_from_task_start'])
        if 'reopen_from_task_start' in cut:
            add('5 time to cut', 'restore task start → first answer again', cut['reopen_from_task_start'])
    inside = res.get('module_inside')
    if inside:
        how = ('inside the module (`bench/inmodule_timer.py`: its `runpy.run_module` from '
               'ansible\'s `_ansiballz` loader, i.e. import of its code + `main()` → `exit_json`)')
        add('6 module', '**%s: module (changing)**' % how, inside['present'])
        add('6 module', 'inside the module: nothing to change', inside['unchanged'])
        add('6 module', 'inside the module: state=absent', inside['absent'])
        add('6 module', 'reference: inside the `ping` module', inside['ping'])
        icpu = res.get('module_inside_cpu') or {}
        if icpu:
            add('6 module', 'CPU time inside the module (user+sys, with iptables/nft children): module (changing)',
                icpu['present'])
            add('6 module', 'CPU time inside the `ping` module', icpu['ping'])
        pre = res.get('module_inside_before') or {}
        if pre:
            add('6 module', 'context: the payload before the module (AnsiballZ wrapper, zip, '
                '`module_utils.basic`; after Python\'s start), module (changing)', pre['present'])
            add('6 module', 'context: the payload before the module, `ping`', pre['ping'])
    module = res.get('module')
    if module:
        add('6 module', 'whole process (`python3 AnsiballZ_blackout.py`): module (changing)', module['present'])
        add('6 module', 'whole process: module, nothing to change', module['unchanged'])
        add('6 module', 'whole process: module, state=absent', module['absent'])
        add('6 module', 'reference: whole process, `ping` module', module['ping'])
        add('6 module', 'reference: `python3 -c pass`', module['python_startup'])
        cpu = res.get('module_cpu') or {}
        if cpu:
            add('6 module', 'CPU time, whole process (user+sys, with iptables children): module (changing)',
                cpu['present'])
            add('6 module', 'CPU time, whole process: `ping` module', cpu['ping'])
    for variant, v in (res.get('hold') or {}).items():
        desc = HOLD_VARIANTS[variant][3]
        add('7 hold', '**%s: State.StartedAt → refused on every path** (the slowest path of each round)' % desc,
            v['slowest'])
        for path, what in HOLD_PATHS.items():
            add('7 hold', '%s: %s (served before the cut in %d of %d)' % (desc, what, v['served'][path], v['paths'][path]['n']),
                v['paths'][path])
        if v.get('watcher_lag'):
            add('7 hold', "%s: the watcher's own lag, event → its re-apply done (pid file `lag_ms`)" % desc, v['watcher_lag'])
    lines = ['| section | measurement | median | spread: min – max (IQR) | n |', '|---|---|---|---|---|'] + rows
    lines += ['', '| target | measured (medians) | met | same on CPU time |', '|---|---|---|---|']
    for key, (desc, limit, op) in TARGETS.items():
        value = ratio(res, key)
        if value is None:
            continue
        met = value <= limit if op == '<=' else value >= limit
        shown = fmt_s(value) if key in ('module', 'hold') else '%.2f×' % value
        cpu = cpu_ratio(res, key)
        cpu_shown = '' if cpu is None else (fmt_s(cpu) if key in ('module', 'hold') else '%.2f×' % cpu)
        lines.append('| %s | %s | %s | %s |' % (desc, shown, 'yes' if met else '**no**', cpu_shown))
    refs = []
    with contextlib.suppress(KeyError, ZeroDivisionError):
        refs.append(('reference: the module alone ÷ the floor', '%.2f×' % (
            res['single']['module_only_blackout']['median'] / res['single']['floor']['median'])))
    with contextlib.suppress(KeyError, ZeroDivisionError):
        refs.append(('reference: hand-written ÷ the module alone', '%.2f×' % (
            res['single']['handwritten_blackout']['median'] / res['single']['module_only_blackout']['median'])))
    with contextlib.suppress(KeyError, ZeroDivisionError, TypeError):
        refs.append(('reference: the floor, 6 hosts ÷ one host (same lab)', '%.2f×' % ratio(res, 'fleet_floor')))
    with contextlib.suppress(KeyError):
        refs.append(("reference: inside the `ping` module on the host", fmt_s(res['module_inside']['ping']['median'])))
    with contextlib.suppress(KeyError):
        refs.append(('reference: whole payload process on the host, module (changing) / `ping`', '%s / %s' % (
            fmt_s(res['module']['present']['median']), fmt_s(res['module']['ping']['median']))))
    for desc, shown in refs:
        lines.append('| %s | %s | – | |' % (desc, shown))
    return '\n'.join(lines)


def plot(res: dict, path: str) -> None:
    import matplotlib  # pylint: disable=import-outside-toplevel
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt  # pylint: disable=import-outside-toplevel

    fig, axes = plt.subplots(2, 4, figsize=(21, 9))
    fig.suptitle('netfence.docker benchmarks (%s, %s; medians, bars min-max)'
                 % (res['meta']['date'], res['meta']['git'].split(' ')[0]), fontsize=11)

    def bars(ax, labels, sums, title, unit='s', colors=None):
        med = [s['median'] for s in sums]
        err = [[s['median'] - s['min'] for s in sums], [s['max'] - s['median'] for s in sums]]
        scale = 1000 if unit == 'ms' else 1
        ax.bar(range(len(labels)), [m * scale for m in med], yerr=[[e * scale for e in err[0]], [e * scale for e in err[1]]],
               capsize=4, color=colors or 'tab:blue')
        ax.set_xticks(range(len(labels)))
        ax.set_xticklabels(labels, fontsize=8)
        ax.set_ylabel(unit)
        ax.set_title(title, fontsize=10)
        for i, m in enumerate(med):
            ax.annotate(fmt_s(m), (i, m * scale), textcoords='offset points', xytext=(0, 3), ha='center', fontsize=7)

    for ax in axes.flat:                    # switched back on for the sections that ran
        ax.set_axis_off()
    if 'single' in res:
        ax = axes[0][0]
        ax.set_axis_on()
        s = res['single']
        bars(ax, ['floor\n(ping)', 'module\nalone', 'blackout\n.yml', 'restore\n.yml', 'hand-written\nblackout',
                  'hand-written\nrestore'],
             [s['floor'], s['module_only_blackout'], s['blackout'], s['restore'], s['handwritten_blackout'],
              s['handwritten_restore']],
             '1. one service, one host: playbook wall time',
             colors=['tab:gray', 'tab:gray', 'tab:blue', 'tab:cyan', 'tab:red', 'tab:orange'])
    if 'replicas' in res:
        ax = axes[0][1]
        ax.set_axis_on()
        ks = list(res['replicas'])
        bars(ax, ['k=%s' % k for k in ks], [res['replicas'][k]['present'] for k in ks],
             '2. replicas: module time on the host', unit='ms')
    if 'foreign' in res:
        ax = axes[0][2]
        ax.set_axis_on()
        bars(ax, ['empty DOCKER-USER', '10,000 foreign rules'],
             [res['foreign']['empty']['present'], res['foreign']['foreign']['present']],
             '3. foreign rules: module time on the host', unit='ms')
    if 'fleet' in res:
        ax = axes[1][0]
        ax.set_axis_on()
        ns = list(res['fleet'])
        bars(ax, ['%s host%s' % (n, 's' if n != '1' else '') for n in ns], [res['fleet'][n]['blackout'] for n in ns],
             '4. fleet: blackout.yml wall time (forks %d)' % FORKS)
    if 'cut' in res:
        ax = axes[1][1]
        ax.set_axis_on()
        c = res['cut']
        keys = [k for k in ('cut_from_task_start', 'task_result_from_task_start', 'reopen_from_task_start') if k in c]
        names = {'cut_from_task_start': 'blackout task start\n→ first refusal',
                 'task_result_from_task_start': 'blackout task start\n→ task result',
                 'reopen_from_task_start': 'restore task start\n→ answers again'}
        bars(ax, [names[k] for k in keys], [c[k] for k in keys], '5. time to cut (probe from outside)')
    if 'module' in res:
        ax = axes[1][2]
        ax.set_axis_on()
        m = res['module']
        bars(ax, ['python3\n-c pass', 'ping\nmodule', 'blackout\n(changing)', 'blackout\n(no change)', 'restore\n(absent)'],
             [m['python_startup'], m['ping'], m['present'], m['unchanged'], m['absent']],
             "6. module on the host: whole process (light), inside the module (dark)", unit='ms',
             colors=['tab:gray', 'lightgray', 'lightsteelblue', 'lightsteelblue', 'lightcyan'])
        inside = res.get('module_inside')
        if inside:
            keys = ['ping', 'present', 'unchanged', 'absent']
            med = [inside[k]['median'] * 1000 for k in keys]
            err = [[(inside[k]['median'] - inside[k]['min']) * 1000 for k in keys],
                   [(inside[k]['max'] - inside[k]['median']) * 1000 for k in keys]]
            ax.bar(range(1, 5), med, width=0.5, yerr=err, capsize=3,
                   color=['tab:gray', 'tab:blue', 'tab:blue', 'tab:cyan'])
            for i, v in enumerate(med, start=1):
                ax.annotate('%.0f ms' % v, (i, v), textcoords='offset points', xytext=(12, 3), ha='left', fontsize=7)
        ax.axhline(150, color='tab:red', linestyle='--', linewidth=1)
    if 'hold' in res:
        ax = axes[0][3]
        ax.set_axis_on()
        short = {'external': 'ext', 'localhost': 'lo', 'host': 'host', 'peer': 'peer'}
        labels, sums, colors = [], [], []
        for variant, v in res['hold'].items():
            name = {'recreate': 'recreate', 'scale_up': 'scale-up'}.get(variant, variant)
            for way in HOLD_PATHS:
                labels.append('%s\n%s' % (name, short[way]))
                sums.append(v['paths'][way])
                colors.append('tab:blue' if variant == 'recreate' else 'tab:green')
            if v.get('watcher_lag'):
                labels.append('%s\nwatcher' % name)
                sums.append(v['watcher_lag'])
                colors.append('tab:gray')
        bars(ax, labels, sums, '7. hold: new container start → refused, per path', unit='ms', colors=colors)
        ax.tick_params(axis='x', labelsize=6)
        ax.axhline(1000, color='tab:red', linestyle='--', linewidth=1)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write_results(res: dict) -> str:
    os.makedirs(RESULTS, exist_ok=True)
    meta = res['meta']
    text = ['# netfence.docker benchmark results', '',
            '%s; %s; lab instance `%s`; %d rounds (interleaved); bench and bench-lab daemons at nice %s; '
            'load average %s → %s; %.0f s in all.' % (
                meta['date'], meta['git'], INSTANCE, meta['rounds'], meta.get('nice', 0), meta['load_before'],
                meta.get('load_after', '?'), meta.get('seconds', 0)),
            '', table(res), '',
            'One SSH command over the ControlPersist master: %s%s.' % (
                fmt_s(meta['ssh_op']['median']),
                (" (root's ~/.bashrc skipped on the bench hosts; %s with it)" % fmt_s(meta['ssh_op_with_bashrc']['median']))
                if meta.get('bashrc_skipped') else ''),
            '',
            'Machine: ' + ', '.join('%s %s' % (k, v) for k, v in meta['machine'].items()) + '.',
            '', 'Versions: ' + '; '.join('%s %s' % (k, v) for k, v in meta['versions'].items()) + '.',
            '', '![plot](bench.png)', '']
    md = '\n'.join(text)
    with open(os.path.join(RESULTS, 'results.md'), 'w', encoding='utf-8') as handle:
        handle.write(md)
    with open(os.path.join(RESULTS, 'results.json'), 'w', encoding='utf-8') as handle:
        json.dump(res, handle, indent=1, sort_keys=True)
    plot(res, os.path.join(RESULTS, 'bench.png'))
    return md


# --------------------------------------------------------------------------- main

def cleanup(hosts: list[lab.LabHost]) -> None:
    """Leave no netfence or foreign rule, no replica and no hold watcher behind, the deployment as the
    lab made it (best effort, bounded)."""
    with contextlib.suppress(Exception):
        client = lab.get_host(HOST).client(timeout=60)
        try:
            remove_replicas(client, network=False)
        finally:
            client.close()
    with contextlib.suppress(Exception):
        restore('all')                      # also stops every hold watcher (section 7)
    if HOLD_DEPLOYMENT:                     # section 7 ran: its deployment as the lab made it
        with contextlib.suppress(Exception):
            client = lab.get_host(HOST).client(timeout=60)
            try:
                hold.put_back(lab.get_host(HOST), client, HOLD_DEPLOYMENT)
            finally:
                client.close()
    for host in hosts:
        with contextlib.suppress(Exception):
            if netfence_rule_count(host):
                log('WARNING: netfence rules left on %s' % host.name)
        with contextlib.suppress(Exception):
            if hold.watchers(host) or hold.hold_files(host):
                log('WARNING: a hold watcher or its pid file left on %s: %s' % (host.name, hold.hold_files(host)))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split('\n', 1)[0])
    parser.add_argument('--rounds', type=int, default=int(os.environ.get('NETFENCE_BENCH_ROUNDS', '5')))
    parser.add_argument('--sections', default=os.environ.get('NETFENCE_BENCH_SECTIONS', '1,2,3,4,5,6,7'))
    parser.add_argument('--keep-lab', action='store_true', default=bool(os.environ.get('NETFENCE_BENCH_KEEP_LAB')),
                        help='leave the bench lab up at the end (default: take it down if this run brought it up)')
    args = parser.parse_args(argv)
    sections = {int(s) for s in args.sections.split(',') if s.strip()}
    if args.rounds < 1:
        parser.error('--rounds must be at least 1')
    started = time.monotonic()
    if os.geteuid() != 0:
        raise BenchError('run as root (the lab needs it)')
    if not target_python_is_clean():
        raise BenchError('%s can import docker or requests: the targets must not have them' % TARGET_PYTHON)
    existed = os.path.exists(lab.STATE_FILE)
    log('lab instance %r: bringing up 6 hosts' % INSTANCE)
    hosts = lab.up(hosts=6)
    log('lab up after %.0f s' % (time.monotonic() - started))
    nice = int(os.environ.get('NETFENCE_BENCH_NICE', '-10'))
    set_priority(hosts, nice)
    ssh_before = ssh_op_seconds(lab.get_host(HOST))
    quieted = quiet_bashrc(hosts)
    ssh_after = ssh_op_seconds(lab.get_host(HOST))
    log('one SSH command over ControlPersist: %s%s' % (
        fmt_s(ssh_before['median']), (' (with ~/.bashrc), %s without' % fmt_s(ssh_after['median'])) if quieted else ''))
    ensure_target_venv()
    res: dict = {'meta': {'date': dt.datetime.now(dt.timezone.utc).strftime('%Y-%m-%d %H:%M UTC'),
                          'git': git_state(), 'rounds': args.rounds, 'load_before': loadavg(),
                          'machine': machine(), 'versions': versions(), 'instance': INSTANCE,
                          'bashrc_skipped': quieted, 'nice': nice, 'ssh_op_with_bashrc': ssh_before, 'ssh_op': ssh_after}}
    workdir = tempfile.mkdtemp(prefix='netfence-bench-')
    try:
        log('restore.yml on every host: a clean start, and every SSH master up (%.1f s)' % restore('all'))
        for host in hosts:
            if netfence_rule_count(host):
                raise BenchError('%s has netfence rules before the bench' % host.name)
        payloads = Payloads(workdir)
        if sections & {2, 3, 6}:
            payloads.capture('netfence.docker.blackout', {'service': 'netfence-bench-nothing', 'state': 'absent'})
            payloads.capture('ansible.builtin.ping', {})
        if 1 in sections:
            section_single(args.rounds, res)
            section_breakdown(res)
        if 2 in sections:
            section_replicas(args.rounds, payloads, res)
        if 3 in sections:
            section_foreign(args.rounds, payloads, res)
        if 4 in sections:
            section_fleet(args.rounds, res)
        if 5 in sections:
            section_cut(args.rounds, res)
        if 6 in sections:
            section_module(args.rounds, payloads, res)
            profile_module(res)
        if 7 in sections:
            section_hold(args.rounds, res)
    finally:
        cleanup(hosts)
        shutil.rmtree(workdir, ignore_errors=True)
    res['meta']['load_after'] = loadavg()
    res['meta']['seconds'] = round(time.monotonic() - started, 1)
    md = write_results(res)
    sys.stdout.write(md + '\n')
    log('done in %.0f s; results in %s' % (time.monotonic() - started, RESULTS))
    if not existed and not args.keep_lab:
        log('taking the bench lab down (it was not up before; --keep-lab to keep it)')
        lab.down()
    else:
        for pid in lab_daemons(hosts):      # the lab stays: back to the default priority
            with contextlib.suppress(OSError):
                os.setpriority(os.PRIO_PROCESS, pid, 0)
    return 0


if __name__ == '__main__':
    try:
        sys.exit(main())
    except BenchError as exc:
        sys.stderr.write('bench: %s\n' % exc)
        sys.exit(1)
