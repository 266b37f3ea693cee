"""The netfence test lab: Docker hosts in network namespaces on one machine.

Each lab host ``hN`` is a network namespace ``nflab-hN`` joined to the root
namespace by a veth pair (root side ``nflab-hN`` = 10.213.N.1, host side
``eth0`` = 10.213.N.2), with its own dockerd (Docker 20.10 from Debian 12 or
Docker 28 from Debian forky), its own sshd on 10.213.N.2:22 and a
compose-shaped deployment of memcached containers.  One containerd serves all
engines.  Nothing here changes the root namespace's firewall.

Instances: ``NETFENCE_LAB=X`` (or ``configure('X')`` before anything else) selects an
independent lab instance ``X`` (namespaces ``nfX-hN``, 10.(214+k).N.0/24, see configure());
unset/empty is the default lab described above.

Public API (for tests; put ``tests/lab`` on ``sys.path``)::

    configure(instance=None) -> name      select the instance ($NETFENCE_LAB by default)
    up(hosts=None, versions=None, configs=None) -> list[LabHost]
        configs: per host (cycled) a '+'-joined set of default, no-userland-proxy, legacy,
        ipv6, no-brnf, nft-backend (Docker 29 only).  Without versions/configs: the default
        shape (default_shape(): 3 hosts, 5 with the Docker 29 tarball)
    down()
    lab_hosts() -> list[LabHost]          get_host('h1') -> LabHost
    status() -> list[dict]                render_status(rows) -> str
    probe(host, service='memcached', project='lab', timeout=1.0, paths=None)
        -> {container_name: {path: outcome}}
    probe_detail(...) -> {container_name: {path: {'outcome', 'elapsed', 'detail'}}}
    render_table(results) -> str
    hold_connection(host, container, path, timeout=1.0) -> HeldConnection
        .initial / .established / .exchange(timeout) / .wait_error(timeout) / .close()
    service_containers(host, service='memcached') -> (service attrs, client attrs)
    host_exec(host, argv) -> subprocess.CompletedProcess   (inside the host's netns)
    restart_engine(host) -> pid           dockerd stopped and started again, deployment restarted
    wait_ready(hosts, full=True)          what up() waits for (IPv6 DAD, engines, open paths)
    docker29_available() / default_shape()
    inventory_path() -> str               leftovers() -> dict (what of the lab exists)
"""

import contextlib
import dataclasses
import fcntl
import glob
import json
import logging
import os
import re
import select
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import zlib

import netfence_lab_agent as agent

LOG = logging.getLogger('netfence_lab')

CACHE_DIR = '/var/cache/netfence-lab'
DOCKER28_DIR = os.path.join(CACHE_DIR, 'docker28')
DOCKER28_LOCK = os.path.join(CACHE_DIR, 'docker28.lock')
DOCKER29_DIR = os.path.join(CACHE_DIR, 'docker29')
DOCKER29_LOCK = os.path.join(CACHE_DIR, 'docker29.lock')
DOCKER29_TARBALL = 'docker29-bin.tar.xz'
REPO_DIR = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DOCKER_SOCK_PLACEHOLDER = '/run/docker.sock'
HOST_STATE_DIR = '/var/lib/netfence'  # bind-mounted per lab host in its sshd's mount namespace
AGENT = os.path.join(os.path.dirname(os.path.abspath(__file__)), 'netfence_lab_agent.py')
REAPER = os.path.join(os.path.dirname(os.path.abspath(__file__)), 'netfence_lab_reaper.py')

# Lab instances.  NETFENCE_LAB='' (unset) is the default lab; NETFENCE_LAB=X (lowercase letters
# and digits, at most 8, not 'lab') is an independent instance with its own namespaces
# ('nfX-hN'), veth pairs, containerd, engines, directories (/var/lib/netfence-lab-X,
# /run/netfence-lab-X), ssh key, inventory and lock.  Addresses: the default lab uses
# 10.213.N.0/24 and fd13:213:N::/64; instance X uses 10.(214+k).N.0/24 and fd13:(214+k):N::/64
# with k = crc32(X) mod 41 (0..40, so 10.214..10.254), or k = NETFENCE_LAB_INDEX when set.
# An instance whose k is already used by another existing instance is refused.
INSTANCE_RE = re.compile(r'^[a-z0-9]{1,8}$')
INSTANCE_SLOTS = 41


def instance_index(name, override=True):
    """The address index k of instance ``name`` (see above); None for the default lab.

    ``override=False``: ignore NETFENCE_LAB_INDEX (it is ours, not another instance's).
    """
    if not name:
        return None
    override = os.environ.get('NETFENCE_LAB_INDEX', '').strip() if override else ''
    if override:
        k = int(override)
        if not 0 <= k < INSTANCE_SLOTS:
            raise LabError(f'NETFENCE_LAB_INDEX must be 0..{INSTANCE_SLOTS - 1}')
        return k
    return zlib.crc32(name.encode('ascii')) % INSTANCE_SLOTS


def configure(instance=None):
    """Select the lab instance this module acts on (default: $NETFENCE_LAB, '' = default lab)."""
    # pylint: disable=global-statement
    global INSTANCE, INDEX, PREFIX, NET4, NET6, LIB_DIR, RUN_DIR, STATE_FILE, LOCK_FILE
    global INVENTORY, SSH_KEY, AUTHORIZED_KEYS, CONTAINERD_SOCK, CONTAINERD_PID
    global PLACEHOLDER_MARKER, REAPER_FIFO, REAPER_PID
    if instance is None:
        instance = os.environ.get('NETFENCE_LAB', '')
    instance = instance.strip()
    if instance and (not INSTANCE_RE.match(instance) or instance == 'lab'):
        raise LabError(f'bad lab instance name {instance!r} (NETFENCE_LAB: 1-8 lowercase '
                       "letters/digits, not 'lab')")
    INSTANCE = instance
    INDEX = instance_index(instance)
    suffix = f'-{instance}' if instance else ''
    PREFIX = f'nf{instance}' if instance else 'nflab'
    NET4 = f'10.{214 + INDEX}' if instance else '10.213'
    NET6 = f'fd13:{214 + INDEX}' if instance else 'fd13:213'
    LIB_DIR = f'/var/lib/netfence-lab{suffix}'
    RUN_DIR = f'/run/netfence-lab{suffix}'
    STATE_FILE = os.path.join(LIB_DIR, 'lab.json')
    LOCK_FILE = os.path.join(CACHE_DIR, f'lab{suffix}.lock')
    INVENTORY = os.path.join(LIB_DIR, 'inventory.ini')
    SSH_KEY = os.path.join(LIB_DIR, 'ssh', 'id_ed25519')
    AUTHORIZED_KEYS = os.path.join(LIB_DIR, 'ssh', 'authorized_keys')
    CONTAINERD_SOCK = os.path.join(RUN_DIR, 'containerd', 'containerd.sock')
    CONTAINERD_PID = os.path.join(RUN_DIR, 'containerd', 'containerd.pid')
    PLACEHOLDER_MARKER = os.path.join(RUN_DIR, 'created-run-docker.sock')
    REAPER_FIFO = os.path.join(RUN_DIR, 'reaper.fifo')
    REAPER_PID = os.path.join(RUN_DIR, 'reaper.pid')
    return instance


def _other_instances():
    """{instance name: state dict} of the other lab instances that exist on this machine."""
    found = {}
    for lib in glob.glob('/var/lib/netfence-lab*'):
        base = os.path.basename(lib)
        name = base[len('netfence-lab-'):] if base.startswith('netfence-lab-') else ''
        if lib == LIB_DIR or (base != 'netfence-lab' and not name):
            continue
        try:
            with open(os.path.join(lib, 'lab.json'), encoding='utf-8') as handle:
                found[name] = json.load(handle)
        except (OSError, ValueError):
            found[name] = {}
    return found


def _check_collisions():
    """Refuse an instance whose address index is used by another existing instance."""
    if not INSTANCE:
        return
    for name, state in _other_instances().items():
        if not name:
            continue
        other = state.get('index') if state else None
        if other is None:
            try:
                other = instance_index(name, override=False)
            except LabError:
                continue
        if other == INDEX:
            raise LabError(f'lab instance {INSTANCE!r} would use {NET4}.N.0/24, as instance '
                           f'{name!r} does (index {INDEX}): choose another name or set '
                           'NETFENCE_LAB_INDEX')
    routes = _run(['ip', '-4', 'route', 'show'], check=False).stdout
    for line in routes.splitlines():
        dev = line.split(' dev ', 1)[1].split()[0] if ' dev ' in line else ''
        if line.startswith(NET4 + '.') and not dev.startswith(PREFIX + '-'):
            raise LabError(f'{NET4}.0.0/16 is already routed on this machine ({line.strip()})')


PROJECT = 'lab'
IMAGE = 'netfence-lab/memcached:1'
ROLE_LABEL = 'netfence.lab.role'
DEFAULT_VERSIONS = ('20.10', '28', '20.10')
# With the Docker 29 tarball beside the checkout, the default lab adds h4 = Docker 29 (iptables
# backend) and h5 = Docker 29 with --firewall-backend=nftables.
DEFAULT_VERSIONS_29 = DEFAULT_VERSIONS + ('29', '29')
DEFAULT_CONFIGS_29 = ('default', 'default', 'default', 'default', 'nft-backend')
FORKY_SOURCE = ('deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] '
                'http://deb.debian.org/debian forky main\n')
SYS_PATH = '/usr/sbin:/usr/bin:/sbin:/bin'
ENGINES = {
    '20.10': {'dockerd': '/usr/sbin/dockerd', 'path': SYS_PATH},
    '28': {'dockerd': os.path.join(DOCKER28_DIR, 'usr/sbin/dockerd'),
           'path': os.path.join(DOCKER28_DIR, 'usr/sbin') + ':' + SYS_PATH},
    # Static dockerd/docker-proxy 29.7.2 and runc 1.4.3 (../shared/docker29, see its README):
    # bookworm's runc cannot create the time namespace Docker 29 gives containers.
    '29': {'dockerd': os.path.join(DOCKER29_DIR, 'dockerd'),
           'path': DOCKER29_DIR + ':' + SYS_PATH,
           'args': ['--add-runtime', 'runc29=' + os.path.join(DOCKER29_DIR, 'runc'),
                    '--default-runtime', 'runc29',
                    '--userland-proxy-path', os.path.join(DOCKER29_DIR, 'docker-proxy')]},
}
MEMCACHED_CMD = ['/usr/bin/memcached', '-p', '11211', '-U', '0', '-u', 'nobody']
SLEEP_CMD = ['/bin/sleep', '2147483647']
BUSYBOX_LINKS = ('sh', 'nc', 'sleep', 'wget', 'cat', 'ls', 'ps', 'echo', 'env', 'true',
                 'ip', 'netstat', 'kill', 'id')
COMPOSE_VERSION = '2.29.7'

# The compose-shaped deployment on every host.
NETWORKS = ('lab_front', 'lab_back')
CONTAINERS = (
    {'name': 'lab-memcached-1', 'service': 'memcached', 'number': 1, 'role': 'service',
     'networks': ('lab_front', 'lab_back'), 'port': 11211},
    {'name': 'lab-memcached-2', 'service': 'memcached', 'number': 2, 'role': 'service',
     'networks': ('lab_front',), 'port': 11212},
    {'name': 'lab-bystander-1', 'service': 'bystander', 'number': 1, 'role': 'service',
     'networks': ('lab_front',), 'port': 11311},
    {'name': 'lab-client-front', 'service': 'client-front', 'number': 1, 'role': 'client',
     'networks': ('lab_front',), 'port': None},
    {'name': 'lab-client-back', 'service': 'client-back', 'number': 1, 'role': 'client',
     'networks': ('lab_back',), 'port': None},
)

NA = 'n/a'


class LabError(Exception):
    """The lab cannot do what was asked; the message says why."""


configure()

# Host configurations (lab.py up --configs): each host gets a '+'-joined set of these.
CONFIGS = ('default', 'no-userland-proxy', 'legacy', 'ipv6', 'no-brnf', 'nft-backend')
NFT_BACKEND_SERIES = ('29',)  # dockerd --firewall-backend=nftables
LEGACY_TOOLS = ('iptables', 'iptables-save', 'iptables-restore', 'ip6tables', 'ip6tables-save',
                'ip6tables-restore')


@dataclasses.dataclass(frozen=True)
class LabHost:
    """One Docker host of the lab."""

    name: str
    index: int
    series: str
    ipv6: bool = True
    configs: tuple = ('default',)

    def has(self, config):
        """True if the host runs with host configuration ``config``."""
        return config in self.configs

    @property
    def docker_ipv6(self):
        """True if the engine runs with --ipv6 and the lab networks have IPv6 subnets."""
        return self.ipv6 and self.has('ipv6')

    @property
    def netns(self):
        """Name of the network namespace."""
        return f'{PREFIX}-{self.name}'

    @property
    def netns_path(self):
        """Path of the namespace's bind mount."""
        return f'/run/netns/{self.netns}'

    @property
    def addr(self):
        """The host's address (inside its namespace)."""
        return f'{NET4}.{self.index}.2'

    @property
    def gateway(self):
        """The root namespace's address on the host's link."""
        return f'{NET4}.{self.index}.1'

    @property
    def addr6(self):
        """The host's IPv6 ULA address."""
        return f'{NET6}:{self.index}::2'

    @property
    def gateway6(self):
        """The root namespace's IPv6 address on the host's link."""
        return f'{NET6}:{self.index}::1'

    @property
    def veth(self):
        """Name of the root side of the veth pair."""
        return f'{PREFIX}-{self.name}'

    @property
    def run_dir(self):
        """Runtime directory of this host."""
        return os.path.join(RUN_DIR, self.name)

    @property
    def lib_dir(self):
        """Persistent directory of this host."""
        return os.path.join(LIB_DIR, self.name)

    @property
    def docker_sock(self):
        """Path of the engine's API socket."""
        return os.path.join(self.run_dir, 'docker.sock')

    @property
    def docker_url(self):
        """Docker SDK base URL of the engine."""
        return 'unix://' + self.docker_sock

    def client(self, timeout=30):
        """A Docker SDK client for this host's engine."""
        import docker  # pylint: disable=import-outside-toplevel
        return docker.DockerClient(base_url=self.docker_url, timeout=timeout)

    def to_dict(self):
        """Plain-dict description (also used for the state file)."""
        return {'name': self.name, 'index': self.index, 'series': self.series,
                'ipv6': self.ipv6, 'netns': self.netns, 'addr': self.addr,
                'gateway': self.gateway, 'addr6': self.addr6 if self.ipv6 else None,
                'gateway6': self.gateway6 if self.ipv6 else None,
                'docker_sock': self.docker_sock, 'configs': list(self.configs)}


# --------------------------------------------------------------------------- helpers

def _run(argv, check=True, timeout=120, **kwargs):
    """Run a command, capturing text output; raise LabError on failure."""
    try:
        res = subprocess.run(argv, capture_output=True, text=True, timeout=timeout,
                             check=False, **kwargs)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise LabError(f'{" ".join(argv)}: {exc}') from exc
    if check and res.returncode != 0:
        raise LabError(f'{" ".join(argv)} failed ({res.returncode}): '
                       f'{(res.stderr or res.stdout).strip()}')
    return res


def host_exec(host, argv, check=True, timeout=60, **kwargs):
    """Run a command inside ``host``'s network namespace (root mount namespace)."""
    host = _as_host(host)
    return _run(['nsenter', f'--net={host.netns_path}'] + list(argv), check=check,
                timeout=timeout, **kwargs)


def require_root():
    """Raise LabError unless running as root."""
    if os.geteuid() != 0:
        raise LabError('the netfence lab must be run as root (it creates network '
                       'namespaces, veth pairs and Docker engines)')


def _write(path, text, mode=0o644):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, 'w', encoding='utf-8') as handle:
        handle.write(text)
    os.chmod(path, mode)


def _read_pid(path):
    try:
        with open(path, encoding='ascii') as handle:
            return int(handle.read().strip() or 0) or None
    except (OSError, ValueError):
        return None


def _cmdline(pid):
    try:
        with open(f'/proc/{pid}/cmdline', 'rb') as handle:
            return handle.read().replace(b'\0', b' ').decode('utf-8', 'replace')
    except OSError:
        return ''


def _pid_alive(pid, needle=None):
    """True if ``pid`` runs (not a zombie) and its command line contains ``needle``."""
    if not pid:
        return False
    try:
        with open(f'/proc/{pid}/stat', encoding='utf-8') as handle:
            state = handle.read().rsplit(')', 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    if state in ('Z', 'X'):
        return False
    return needle is None or needle in _cmdline(pid)


def _start_reaper():
    """Start the lab's launcher/subreaper (see netfence_lab_reaper.py) unless running."""
    if _pid_alive(_read_pid(REAPER_PID), 'netfence_lab_reaper'):
        return
    os.makedirs(RUN_DIR, exist_ok=True)
    os.makedirs(LIB_DIR, exist_ok=True)
    for path in (REAPER_PID, REAPER_FIFO):
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)
    with open(os.path.join(LIB_DIR, 'reaper.log'), 'ab') as log, \
            open(os.devnull, 'rb') as null:
        subprocess.run(['setsid', '-f', sys.executable, '-I', REAPER, REAPER_FIFO, REAPER_PID],
                       stdin=null, stdout=log, stderr=log, check=True, close_fds=True,
                       timeout=30)
    if not _wait(lambda: _read_pid(REAPER_PID) and os.path.exists(REAPER_FIFO), 10):
        raise LabError('the lab reaper did not start: ' +
                       _tail(os.path.join(LIB_DIR, 'reaper.log')))


def _spawn_detached(argv, log_path, pid_path, env=None):
    """Start ``argv`` fully detached (own session, stdin /dev/null, output to log).

    The lab reaper launches it (so its zombies get reaped); the pid of the
    final process is written to ``pid_path`` by a tiny shell wrapper that then
    execs ``argv``.
    """
    _start_reaper()
    os.makedirs(os.path.dirname(pid_path), exist_ok=True)
    with contextlib.suppress(FileNotFoundError):
        os.unlink(pid_path)
    wrapper = ['sh', '-c', 'echo $$ > "$0"; exec "$@"', pid_path] + list(argv)
    request = json.dumps({'argv': wrapper, 'env': env, 'log': log_path}).encode() + b'\n'
    if len(request) > 4000:
        raise LabError('launch request too long')
    fd = os.open(REAPER_FIFO, os.O_WRONLY | os.O_NONBLOCK)
    try:
        os.write(fd, request)
    finally:
        os.close(fd)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        pid = _read_pid(pid_path)
        if pid:
            return pid
        time.sleep(0.02)
    raise LabError(f'{argv[0]} did not start (no pid in {pid_path})')


def _tail(path, lines=15):
    try:
        with open(path, encoding='utf-8', errors='replace') as handle:
            return ''.join(handle.readlines()[-lines:])
    except OSError:
        return ''


def _wait(predicate, timeout, interval=0.05):
    deadline = time.monotonic() + timeout
    while True:
        if predicate():
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(interval)


def _unix_connectable(path):
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(1)
    try:
        sock.connect(path)
        return True
    except OSError:
        return False
    finally:
        sock.close()


def _docker_ping(host):
    """Return the engine's version string, or None if it does not answer."""
    if not _unix_connectable(host.docker_sock):
        return None
    import docker  # pylint: disable=import-outside-toplevel
    try:
        # API version negotiated: Docker 29 refuses anything below 1.44, 20.10 above 1.41.
        client = docker.DockerClient(base_url=host.docker_url, timeout=5, version='auto')
        try:
            return client.version().get('Version')
        finally:
            client.close()
    except (docker.errors.DockerException, OSError):
        return None


def _ssh_banner(addr, timeout=2.0):
    try:
        with socket.create_connection((addr, 22), timeout=timeout) as sock:
            sock.settimeout(timeout)
            return sock.recv(64).startswith(b'SSH-')
    except OSError:
        return False


def _parallel(func, items):
    """Run func(item) in threads; re-raise the first exception."""
    errors = []
    results = {}

    def run(item):
        try:
            results[item] = func(item)
        except Exception as exc:  # pylint: disable=broad-except
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(item,), daemon=True) for item in items]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if errors:
        raise errors[0]
    return results


@contextlib.contextmanager
def _locked(path=None):
    """Serialise up/down between processes (e.g. parallel pytest workers)."""
    os.makedirs(CACHE_DIR, exist_ok=True)
    with open(path or LOCK_FILE, 'a', encoding='ascii') as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _as_host(host):
    if isinstance(host, LabHost):
        return host
    return get_host(host)


# --------------------------------------------------------------------------- state

def parse_configs(configs):
    """['ipv6+no-brnf', 'default'] -> [('ipv6', 'no-brnf'), ('default',)] (validated)."""
    out = []
    for item in configs or ['default']:
        parts = {p.strip() for p in item.split('+') if p.strip()}
        if not parts or parts - set(CONFIGS):
            raise LabError(f'unknown host configuration {item!r} (each host: a \'+\'-joined '
                           f'set of {", ".join(CONFIGS)})')
        if len(parts) > 1:
            parts.discard('default')
        out.append(tuple(sorted(parts, key=CONFIGS.index)))
    return out


def default_shape():
    """(versions, configs) of the default lab: 20.10, 28, 20.10, plus h4 = 29 and
    h5 = 29 + nft-backend when the Docker 29 tarball is beside the checkout."""
    if docker29_available():
        return list(DEFAULT_VERSIONS_29), list(DEFAULT_CONFIGS_29)
    return list(DEFAULT_VERSIONS), ['default']


def _plan(hosts, versions, configs=None):
    if not versions and not configs:
        versions, configs = default_shape()
        if hosts is None:
            hosts = len(versions)
    if hosts is None:
        hosts = len(versions) if versions else len(DEFAULT_VERSIONS)
    configs = parse_configs(configs)
    versions = list(versions) if versions else list(DEFAULT_VERSIONS)
    for series in versions:
        if series not in ENGINES:
            raise LabError(f'unsupported Docker version {series!r} '
                           f'(supported: {", ".join(sorted(ENGINES))})')
    if not versions:
        raise LabError('no Docker versions given')
    if hosts < 1 or hosts > 9:
        raise LabError('--hosts must be between 1 and 9')
    ipv6 = os.path.exists('/proc/net/if_inet6')
    if any('legacy' in c for c in configs) and not shutil.which('iptables-legacy'):
        raise LabError('the legacy configuration needs iptables-legacy (apt-get install iptables)')
    planned = [LabHost(f'h{i}', i, versions[(i - 1) % len(versions)], ipv6,
                       configs[(i - 1) % len(configs)])
               for i in range(1, hosts + 1)]
    for host in planned:
        if host.has('nft-backend') and host.series not in NFT_BACKEND_SERIES:
            raise LabError(f'{host.name}: nft-backend needs Docker '
                           f'{" or ".join(NFT_BACKEND_SERIES)} (got {host.series})')
    return planned


def _load_state():
    try:
        with open(STATE_FILE, encoding='utf-8') as handle:
            return json.load(handle)
    except (OSError, ValueError):
        return None


def lab_hosts():
    """The hosts of the running lab (from its state file)."""
    state = _load_state()
    if not state:
        raise LabError(f'the lab is not up (no {STATE_FILE}); run: lab.py up')
    return [LabHost(h['name'], h['index'], h['series'], h.get('ipv6', True),
                    tuple(h.get('configs') or ('default',)))
            for h in state['hosts']]


def get_host(name):
    """The lab host called ``name`` (e.g. 'h1')."""
    for host in lab_hosts():
        if name in (host.name, host.netns):
            return host
    raise LabError(f'no lab host {name!r}')


def inventory_path():
    """Path of the Ansible inventory of the lab."""
    return INVENTORY


# --------------------------------------------------------------------------- checks

def check_kernel():
    """Check the kernel features the lab needs, inside a scratch namespace."""
    missing = []
    for tool in ('ip', 'nsenter', 'setsid', 'unshare', 'iptables', 'ip6tables',
                 'iptables-save', 'dpkg', 'apt-get', 'ssh-keygen', 'ldd', 'mount', 'umount'):
        if not shutil.which(tool):
            missing.append(f'command {tool}')
    for path in ('/usr/sbin/dockerd', '/usr/bin/containerd', '/usr/sbin/sshd',
                 '/usr/bin/memcached', '/bin/busybox'):
        if not os.access(path, os.X_OK):
            missing.append(path)
    if missing:
        raise LabError('missing: ' + ', '.join(missing) + ' (apt-get install docker.io '
                       'containerd runc iptables memcached busybox-static openssh-server '
                       'iproute2 util-linux)')
    if not os.path.exists('/proc/self/ns/net'):
        raise LabError('kernel without network namespaces')
    name = f'{PREFIX}-check'
    _run(['ip', 'netns', 'del', name], check=False)
    try:
        _run(['ip', 'netns', 'add', name])
    except LabError as exc:
        raise LabError(f'cannot create a network namespace: {exc}') from exc
    try:
        steps = [
            ('veth', ['ip', '-n', name, 'link', 'add', 'chk0', 'type', 'veth', 'peer',
                      'name', 'chk1']),
            ('bridge', ['ip', '-n', name, 'link', 'add', 'chkbr0', 'type', 'bridge']),
            ('iptables conntrack/comment/time matches and REJECT tcp-reset',
             ['nsenter', f'--net=/run/netns/{name}', 'iptables', '-w', '-A', 'OUTPUT',
              '-d', '127.0.0.9/32', '-p', 'tcp', '-m', 'conntrack', '--ctdir', 'ORIGINAL',
              '--ctstate', 'NEW', '-m', 'time', '--datestop', '2038-01-01T00:00:00',
              '-m', 'comment', '--comment', 'netfence lab check',
              '-j', 'REJECT', '--reject-with', 'tcp-reset']),
            ('iptables addrtype match and nat table',
             ['nsenter', f'--net=/run/netns/{name}', 'iptables', '-w', '-t', 'nat', '-A',
              'OUTPUT', '-m', 'addrtype', '--dst-type', 'LOCAL', '-j', 'RETURN']),
            ('ip6tables conntrack/comment/time matches',
             ['nsenter', f'--net=/run/netns/{name}', 'ip6tables', '-w', '-A', 'OUTPUT',
              '-d', '::9/128', '-m', 'conntrack', '--ctdir', 'ORIGINAL', '-m', 'time',
              '--datestop', '2038-01-01T00:00:00', '-m', 'comment', '--comment', 'x',
              '-j', 'REJECT', '--reject-with', 'icmp6-port-unreachable']),
        ]
        for feature, argv in steps:
            res = _run(argv, check=False)
            if res.returncode != 0:
                raise LabError(f'kernel feature missing: {feature}: {res.stderr.strip()}')
    finally:
        _run(['ip', 'netns', 'del', name], check=False)


# --------------------------------------------------------------------------- docker 28

def ensure_docker28():
    """Download and unpack Debian forky's docker.io once; return its version."""
    marker = os.path.join(DOCKER28_DIR, '.netfence-lab-version')
    dockerd = ENGINES['28']['dockerd']
    if os.path.exists(marker) and os.access(dockerd, os.X_OK):
        with open(marker, encoding='utf-8') as handle:
            return handle.read().strip()
    LOG.info('fetching Docker 28 (docker.io from Debian forky) into %s', DOCKER28_DIR)
    apt_dir = os.path.join(CACHE_DIR, 'apt')
    debs = os.path.join(CACHE_DIR, 'debs')
    for sub in ('lists/partial', 'cache/archives/partial'):
        os.makedirs(os.path.join(apt_dir, sub), exist_ok=True)
    os.makedirs(debs, exist_ok=True)
    source_list = os.path.join(apt_dir, 'sources.list')
    _write(source_list, FORKY_SOURCE)
    opts = [f'-oDir::State::Lists={apt_dir}/lists', f'-oDir::Etc::SourceList={source_list}',
            '-oDir::Etc::SourceParts=/dev/null', f'-oDir::Cache={apt_dir}/cache',
            '-oAPT::Sandbox::User=root', '-q']
    _run(['apt-get'] + opts + ['update'], timeout=600)
    for old in glob.glob(os.path.join(debs, 'docker.io_*.deb')):
        os.unlink(old)
    _run(['apt-get'] + opts + ['download', 'docker.io'], cwd=debs, timeout=600)
    found = glob.glob(os.path.join(debs, 'docker.io_*.deb'))
    if not found:
        raise LabError('apt-get download docker.io produced no .deb')
    tmp = DOCKER28_DIR + '.tmp'
    shutil.rmtree(tmp, ignore_errors=True)
    _run(['dpkg', '-x', found[0], tmp])
    shutil.rmtree(DOCKER28_DIR, ignore_errors=True)
    os.rename(tmp, DOCKER28_DIR)
    version = _run([dockerd, '--version']).stdout.strip()
    if 'version 28.' not in version:
        raise LabError(f'forky docker.io is not Docker 28: {version}')
    _write(marker, version + '\n')
    return version


# --------------------------------------------------------------------------- docker 29

_SAID_NO_29 = []


def docker29_tarball():
    """Path of ``docker29-bin.tar.xz`` beside the checkout, or None.

    Looked for in ``$NETFENCE_LAB_DOCKER29`` (a file or its folder), then
    ``<repo>/../shared/docker29/`` and, for a git worktree one level deeper,
    ``<repo>/../../shared/docker29/``.
    """
    override = os.environ.get('NETFENCE_LAB_DOCKER29', '').strip()
    candidates = []
    if override:
        candidates.append(override if override.endswith('.tar.xz')
                          else os.path.join(override, DOCKER29_TARBALL))
    parent = REPO_DIR
    for _level in range(2):
        parent = os.path.dirname(parent)
        candidates.append(os.path.join(parent, 'shared', 'docker29', DOCKER29_TARBALL))
    for path in candidates:
        if os.path.isfile(path):
            return path
    return None


def docker29_available(say=True):
    """True if the Docker 29 tarball is beside the checkout; says once (log) when it is not."""
    if docker29_tarball():
        return True
    if say and not _SAID_NO_29:
        _SAID_NO_29.append(True)
        LOG.warning('Docker 29 not available (no ../shared/docker29/%s beside the checkout '
                    '%s): the lab runs without Docker 29 hosts', DOCKER29_TARBALL, REPO_DIR)
    return False


def ensure_docker29():
    """Unpack the Docker 29 tarball into the lab's cache once; return dockerd's version."""
    marker = os.path.join(DOCKER29_DIR, '.netfence-lab-version')
    tarball = docker29_tarball()
    stamp = ''
    if tarball:
        stat = os.stat(tarball)
        stamp = f'{stat.st_size}:{int(stat.st_mtime)}'
    if os.path.exists(marker) and all(os.access(os.path.join(DOCKER29_DIR, b), os.X_OK)
                                      for b in ('dockerd', 'docker-proxy', 'runc')):
        with open(marker, encoding='utf-8') as handle:
            version, _nl, old_stamp = handle.read().strip().partition('\n')
        if not tarball or old_stamp == stamp:
            return version
    if not tarball:
        raise LabError(f'Docker 29 is not available: no ../shared/docker29/{DOCKER29_TARBALL} '
                       f'beside the checkout {REPO_DIR} (or $NETFENCE_LAB_DOCKER29)')
    LOG.info('unpacking Docker 29 from %s into %s', tarball, DOCKER29_DIR)
    tmp = DOCKER29_DIR + '.tmp'
    shutil.rmtree(tmp, ignore_errors=True)
    os.makedirs(tmp)
    _run(['tar', '-xJf', tarball, '-C', tmp, '--no-same-owner'], timeout=300)
    for binary in ('dockerd', 'docker-proxy', 'runc'):
        if not os.access(os.path.join(tmp, binary), os.X_OK):
            raise LabError(f'{tarball} has no executable {binary}')
    version = _run([os.path.join(tmp, 'dockerd'), '--version']).stdout.strip()
    if 'version 29.' not in version:
        raise LabError(f'{tarball}: dockerd is not Docker 29: {version}')
    shutil.rmtree(DOCKER29_DIR, ignore_errors=True)
    os.rename(tmp, DOCKER29_DIR)
    _write(marker, version + '\n' + stamp + '\n')
    return version


# --------------------------------------------------------------------------- teardown

def _netns_inodes():
    inodes = set()
    for path in glob.glob(f'/run/netns/{PREFIX}-*'):
        with contextlib.suppress(OSError):
            stat = os.stat(path)
            inodes.add((stat.st_dev, stat.st_ino))
    return inodes


def _protected_pids():
    """Our own pid and its ancestors: never killed."""
    pids = set()
    pid = os.getpid()
    while pid > 1:
        pids.add(pid)
        try:
            with open(f'/proc/{pid}/stat', encoding='utf-8') as handle:
                pid = int(handle.read().rsplit(')', 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            break
    return pids


# Daemons recognised by a lab path on their command line (never clients such as
# ansible-playbook or ssh, which may name the lab's inventory or key).
_LAB_EXES = ('dockerd', 'containerd', 'containerd-shim', 'containerd-shim-runc-v2',
             'docker-proxy', 'sshd', 'runc', 'docker-init')


def _lab_processes():
    """Classify lab processes: {'sshd', 'container', 'dockerd', 'containerd', 'other'} -> pids.

    A process belongs to the lab if it runs in a lab network namespace, in a
    lab cgroup (containers, via dockerd --cgroup-parent), or is one of the lab
    daemons/shims (executable name in _LAB_EXES and a lab path on its command
    line).
    """
    netns = _netns_inodes()
    protected = _protected_pids()
    found = {'sshd': set(), 'container': set(), 'dockerd': set(), 'containerd': set(),
             'reaper': set(), 'other': set()}
    # Directory markers end in '/': '/run/netfence-lab' must not match '/run/netfence-lab-t1'.
    # (The shared Docker 28 cache is no marker: its dockerd runs in a lab namespace.)
    markers = (LIB_DIR + '/', RUN_DIR + '/')
    for entry in os.listdir('/proc'):
        if not entry.isdigit():
            continue
        pid = int(entry)
        if pid in protected:
            continue
        cmd = _cmdline(pid)
        if not cmd:
            continue
        exe = os.path.basename(cmd.split(' ', 1)[0])
        in_lab = False
        with contextlib.suppress(OSError):
            stat = os.stat(f'/proc/{pid}/ns/net')
            in_lab = (stat.st_dev, stat.st_ino) in netns
        in_cgroup = False
        with contextlib.suppress(OSError):
            with open(f'/proc/{pid}/cgroup', encoding='utf-8') as handle:
                in_cgroup = any(line.split(':', 2)[-1].startswith(f'/{PREFIX}-')
                                for line in handle)
        by_cmd = exe in _LAB_EXES and any(m in cmd for m in markers)
        if 'netfence_lab_reaper.py' in cmd and RUN_DIR + '/' in cmd:
            found['reaper'].add(pid)
            continue
        if not (in_lab or in_cgroup or by_cmd):
            continue
        if in_cgroup:
            found['container'].add(pid)
        elif exe == 'dockerd':
            found['dockerd'].add(pid)
        elif exe == 'containerd':
            found['containerd'].add(pid)
        elif exe == 'sshd' or 'sshd_config' in cmd:
            found['sshd'].add(pid)
        else:
            found['other'].add(pid)
    return found


def _kill(pids, sig):
    for pid in pids:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, sig)


def _kill_and_wait(pids, timeout, first=signal.SIGTERM):
    pids = set(pids)
    if not pids:
        return
    _kill(pids, first)
    if not _wait(lambda: not any(_pid_alive(p) for p in pids), timeout):
        _kill(pids, signal.SIGKILL)
        _wait(lambda: not any(_pid_alive(p) for p in pids), 5)


def _lab_mounts():
    roots = (LIB_DIR, RUN_DIR, f'/run/netns/{PREFIX}-')
    mounts = []
    with open('/proc/mounts', encoding='utf-8') as handle:
        for line in handle:
            target = line.split()[1].replace('\\040', ' ').replace('\\011', '\t')
            target = target.replace('\\012', '\n').replace('\\134', '\\')
            if any(target == r.rstrip('-') or target.startswith(r.rstrip('/') + '/')
                   or (r.endswith('-') and target.startswith(r)) for r in roots):
                mounts.append(target)
    return mounts


def _unmount_all():
    for _round in range(4):
        mounts = _lab_mounts()
        if not mounts:
            return
        for target in sorted(set(mounts), key=lambda t: (-t.count('/'), t)):
            if _run(['umount', target], check=False).returncode != 0:
                _run(['umount', '-l', target], check=False)
    left = _lab_mounts()
    if left:
        raise LabError(f'could not unmount: {left}')


def _lab_links():
    res = _run(['ip', '-j', 'link', 'show'], check=False)
    try:
        links = json.loads(res.stdout or '[]')
    except ValueError:
        links = []
    return [link['ifname'] for link in links if link.get('ifname', '').startswith(PREFIX + '-')]


def _lab_netns():
    return sorted(os.path.basename(p) for p in glob.glob(f'/run/netns/{PREFIX}-*'))


def _lab_cgroups():
    found = []
    for path in glob.glob(f'/sys/fs/cgroup/*/{PREFIX}-*') + glob.glob(
            f'/sys/fs/cgroup/{PREFIX}-*'):
        if os.path.isdir(path):
            found.append(path)
    return found


def leftovers():
    """What of the lab exists on this machine (for checks after down)."""
    procs = _lab_processes()
    return {'netns': _lab_netns(), 'links': _lab_links(), 'mounts': _lab_mounts(),
            'processes': sorted(set().union(*procs.values())),
            'cgroups': _lab_cgroups(),
            'dirs': [d for d in (LIB_DIR, RUN_DIR) if os.path.exists(d)]}


def down():
    """Remove everything the lab created (keeps the Docker 28 download cache)."""
    require_root()
    with _locked():
        _down()


def _down():
    LOG.info('tearing the lab down')
    procs = _lab_processes()
    _kill(procs['sshd'], signal.SIGKILL)
    _kill(procs['container'], signal.SIGKILL)
    # dockerd first (it cleans its own sandboxes), then the rest, then containerd.
    _kill_and_wait(procs['dockerd'], 10)
    procs = _lab_processes()
    _kill_and_wait(procs['sshd'] | procs['container'] | procs['other'] | procs['dockerd'], 3,
                   first=signal.SIGKILL)
    _kill_and_wait(procs['containerd'], 5)
    procs = _lab_processes()
    remaining = set().union(*procs.values()) - procs['reaper']
    _kill_and_wait(remaining, 3, first=signal.SIGKILL)
    _kill_and_wait(procs['reaper'], 3)
    _unmount_all()
    for name in _lab_netns():
        if _run(['ip', 'netns', 'del', name], check=False).returncode != 0:
            with contextlib.suppress(OSError):
                os.unlink(f'/run/netns/{name}')
    for link in _lab_links():
        _run(['ip', 'link', 'del', link], check=False)
    for path in sorted(_lab_cgroups(), key=lambda p: -p.count('/')):
        for sub in sorted((d for d, _s, _f in os.walk(path)), key=lambda d: -d.count('/')):
            with contextlib.suppress(OSError):
                os.rmdir(sub)
    others_up = [os.path.dirname(p) for p in glob.glob('/run/netfence-lab*/reaper.pid')
                 if os.path.dirname(p) != RUN_DIR]
    if os.path.exists(PLACEHOLDER_MARKER) and others_up:
        # Another instance still bind-mounts /run/docker.sock: hand the placeholder over.
        _write(os.path.join(others_up[0], os.path.basename(PLACEHOLDER_MARKER)),
               'created by netfence lab\n')
    elif os.path.exists(PLACEHOLDER_MARKER):
        with contextlib.suppress(OSError):
            stat = os.lstat(DOCKER_SOCK_PLACEHOLDER)
            if stat.st_size == 0 and not os.path.islink(DOCKER_SOCK_PLACEHOLDER) and \
                    os.path.isfile(DOCKER_SOCK_PLACEHOLDER):
                os.unlink(DOCKER_SOCK_PLACEHOLDER)
    for path in (RUN_DIR, LIB_DIR):
        shutil.rmtree(path, ignore_errors=True)
    left = leftovers()
    left = {k: v for k, v in left.items() if v}
    if left:
        raise LabError(f'down left something behind: {left}')


# --------------------------------------------------------------------------- bring-up

def _setup_network(host):
    ns = host.netns
    peer = f'{host.veth}p'
    _run(['ip', 'netns', 'add', ns])
    _run(['ip', 'link', 'add', host.veth, 'type', 'veth', 'peer', 'name', peer])
    _run(['ip', 'link', 'set', peer, 'netns', ns])
    _run(['ip', '-n', ns, 'link', 'set', peer, 'name', 'eth0'])
    _run(['ip', 'addr', 'add', f'{host.gateway}/24', 'dev', host.veth])
    _run(['ip', '-n', ns, 'addr', 'add', f'{host.addr}/24', 'dev', 'eth0'])
    if host.ipv6:
        _run(['ip', '-6', 'addr', 'add', f'{host.gateway6}/64', 'dev', host.veth, 'nodad'])
        _run(['ip', '-n', ns, '-6', 'addr', 'add', f'{host.addr6}/64', 'dev', 'eth0',
              'nodad'])
    _run(['ip', 'link', 'set', host.veth, 'up'])
    _run(['ip', '-n', ns, 'link', 'set', 'lo', 'up'])
    _run(['ip', '-n', ns, 'link', 'set', 'eth0', 'up'])
    _run(['ip', '-n', ns, 'route', 'add', 'default', 'via', host.gateway])
    if host.ipv6:
        _run(['ip', '-n', ns, '-6', 'route', 'add', 'default', 'via', host.gateway6])


def _start_containerd():
    lib = os.path.join(LIB_DIR, 'containerd')
    run = os.path.dirname(CONTAINERD_SOCK)
    os.makedirs(lib, exist_ok=True)
    os.makedirs(run, exist_ok=True)
    config = os.path.join(lib, 'config.toml')
    _write(config, '\n'.join([
        'version = 2',
        f'root = "{lib}/root"',
        f'state = "{run}/state"',
        'disabled_plugins = ["io.containerd.grpc.v1.cri"]',
        '[grpc]',
        f'  address = "{CONTAINERD_SOCK}"',
        '[ttrpc]',
        f'  address = "{CONTAINERD_SOCK}.ttrpc"',
        '[debug]',
        '  address = ""',
        '',
    ]))
    _spawn_detached(['/usr/bin/containerd', '--config', config],
                    os.path.join(lib, 'containerd.log'), CONTAINERD_PID,
                    env={'PATH': SYS_PATH, 'HOME': '/root'})
    if not _wait(lambda: _unix_connectable(CONTAINERD_SOCK), 20):
        raise LabError('containerd did not start: ' +
                       _tail(os.path.join(lib, 'containerd.log')))


def _start_dockerd(host):
    engine = ENGINES[host.series]
    os.makedirs(host.run_dir, exist_ok=True)
    os.makedirs(host.lib_dir, exist_ok=True)
    config = os.path.join(host.lib_dir, 'daemon.json')
    _write(config, '{}\n')
    argv = ['nsenter', f'--net={host.netns_path}', engine['dockerd'],
            '--config-file', config,
            '--containerd', CONTAINERD_SOCK,
            '--containerd-namespace', host.netns,
            '--containerd-plugins-namespace', f'{host.netns}p',
            '--data-root', os.path.join(host.lib_dir, 'docker'),
            '--exec-root', os.path.join(host.run_dir, 'exec'),
            '--pidfile', os.path.join(host.run_dir, 'dockerd.pid'),
            '--cgroup-parent', host.netns,
            '-H', host.docker_url] + engine.get('args', []) + _config_args(host)
    if host.has('nft-backend'):
        # dockerd's nftables backend refuses to start unless forwarding is on (it does not
        # set it itself with that backend).
        host_exec(host, ['sysctl', '-q', '-w', 'net.ipv4.ip_forward=1'])
        if host.ipv6:
            host_exec(host, ['sysctl', '-q', '-w', 'net.ipv6.conf.all.forwarding=1'])
    path = engine['path']
    if host.has('legacy'):
        path = _legacy_bin(host) + ':' + path
    _spawn_detached(argv, os.path.join(host.lib_dir, 'dockerd.log'),
                    os.path.join(host.run_dir, 'dockerd.spawn.pid'),
                    env={'PATH': path, 'HOME': '/root'})


def _config_args(host):
    """dockerd arguments of the host's configurations."""
    args = []
    if host.has('no-userland-proxy'):
        args.append('--userland-proxy=false')
    if host.has('nft-backend'):
        args.append('--firewall-backend=nftables')
    if host.docker_ipv6:
        args += ['--ipv6', '--ip6tables', '--fixed-cidr-v6', f'fd00:{host.index}:ff::/64']
        if host.series == '20.10':
            args.append('--experimental')  # ip6tables is experimental in 20.10
    return args


def _legacy_bin(host):
    """A directory whose iptables* commands are the legacy variant (first on dockerd's PATH)."""
    bindir = os.path.join(host.lib_dir, 'legacy-bin')
    os.makedirs(bindir, exist_ok=True)
    for tool in LEGACY_TOOLS:
        family, _dash, rest = tool.partition('-')
        target = shutil.which(f'{family}-legacy' + (f'-{rest}' if rest else ''))
        if not target:
            raise LabError(f'{family}-legacy{"-" + rest if rest else ""} not found')
        link = os.path.join(bindir, tool)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(link)
        os.symlink(target, link)
    return bindir


def _brnf(host):
    """{'iptables': '0'|'1'|None, 'ip6tables': ...}: the br_netfilter sysctls in the namespace."""
    out = {}
    for fam in ('iptables', 'ip6tables'):
        res = host_exec(host, ['cat', f'/proc/sys/net/bridge/bridge-nf-call-{fam}'], check=False)
        out[fam] = res.stdout.strip() if res.returncode == 0 else None
    return out


def _apply_brnf(host):
    """no-brnf: bridge-nf-call-ip(6)tables=0 inside the host's namespace, verified."""
    if not host.has('no-brnf'):
        return
    for fam in ('iptables', 'ip6tables'):
        host_exec(host, ['sysctl', '-q', '-w', f'net.bridge.bridge-nf-call-{fam}=0'])
    now = _brnf(host)
    if now != {'iptables': '0', 'ip6tables': '0'}:
        raise LabError(f'{host.name}: could not set bridge-nf-call-* to 0 in {host.netns}: {now}')


def _wait_dockerd(host):
    log = os.path.join(host.lib_dir, 'dockerd.log')
    pid_file = os.path.join(host.run_dir, 'dockerd.spawn.pid')
    version = [None]

    def ready():
        if not _pid_alive(_read_pid(pid_file)):
            raise LabError(f'dockerd of {host.name} died:\n{_tail(log)}')
        version[0] = _docker_ping(host)
        return version[0] is not None

    if not _wait(ready, 60, 0.1):
        raise LabError(f'dockerd of {host.name} did not answer:\n{_tail(log)}')
    if not version[0].startswith(host.series + '.'):
        raise LabError(f'{host.name}: expected Docker {host.series}, got {version[0]}')
    return version[0]


def _prepare_image_context():
    ctx = os.path.join(LIB_DIR, 'image')
    rootfs = os.path.join(ctx, 'rootfs')
    if os.path.exists(os.path.join(ctx, 'Dockerfile')):
        return ctx
    shutil.rmtree(ctx, ignore_errors=True)
    for sub in ('bin', 'usr/bin', 'etc', 'tmp'):
        os.makedirs(os.path.join(rootfs, sub), exist_ok=True)
    os.chmod(os.path.join(rootfs, 'tmp'), 0o1777)
    shutil.copy('/usr/bin/memcached', os.path.join(rootfs, 'usr/bin/memcached'))
    libs = []
    for line in _run(['ldd', '/usr/bin/memcached']).stdout.splitlines():
        for word in line.split():
            if word.startswith('/'):
                libs.append(word)
    if not any('ld-linux' in lib for lib in libs):
        raise LabError('ldd /usr/bin/memcached named no dynamic loader')
    for lib in libs:
        dest = os.path.join(rootfs, lib.lstrip('/'))
        os.makedirs(os.path.dirname(dest), exist_ok=True)
        shutil.copy(os.path.realpath(lib), dest)  # like cp -L: content of the target
    shutil.copy('/bin/busybox', os.path.join(rootfs, 'bin/busybox'))
    for applet in BUSYBOX_LINKS:
        os.symlink('busybox', os.path.join(rootfs, 'bin', applet))
    _write(os.path.join(rootfs, 'etc/passwd'),
           'root:x:0:0:root:/:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/sh\n')
    _write(os.path.join(rootfs, 'etc/group'), 'root:x:0:\nnogroup:x:65534:\n')
    _write(os.path.join(ctx, 'Dockerfile'),
           'FROM scratch\nCOPY rootfs/ /\nUSER 0\nCMD ["/usr/bin/memcached", "-p", "11211", '
           '"-U", "0", "-u", "nobody"]\n')
    return ctx


def _compose_labels(spec, workdir):
    return {
        'com.docker.compose.project': PROJECT,
        'com.docker.compose.service': spec['service'],
        'com.docker.compose.container-number': str(spec['number']),
        'com.docker.compose.oneoff': 'False',
        'com.docker.compose.version': COMPOSE_VERSION,
        'com.docker.compose.project.working_dir': workdir,
        'com.docker.compose.project.config_files': os.path.join(workdir, 'compose.yaml'),
        'com.docker.compose.image': IMAGE,
        'com.docker.compose.depends_on': '',
        ROLE_LABEL: spec['role'],
    }


def _remove_deployment(client):
    import docker  # pylint: disable=import-outside-toplevel
    names = {spec['name'] for spec in CONTAINERS}
    for cont in client.containers.list(all=True):
        if cont.name in names:
            cont.remove(force=True)
    for net in client.networks.list(names=list(NETWORKS)):
        if net.name in NETWORKS:
            net.reload()
            for cid in (net.attrs.get('Containers') or {}):
                with contextlib.suppress(docker.errors.APIError):
                    net.disconnect(cid, force=True)
            net.remove()


def _deploy(host):
    """Build the image (if missing) and (re)create the deployment on ``host``."""
    import docker  # pylint: disable=import-outside-toplevel
    client = host.client(timeout=120)
    try:
        try:
            client.images.get(IMAGE)
        except docker.errors.ImageNotFound:
            client.images.build(path=_prepare_image_context(), tag=IMAGE, rm=True,
                                forcerm=True)
        _remove_deployment(client)
        workdir = os.path.join(host.lib_dir, 'compose')
        os.makedirs(workdir, exist_ok=True)
        for number, name in enumerate(NETWORKS, 1):
            kwargs = {}
            if host.docker_ipv6:
                kwargs = {'enable_ipv6': True, 'ipam': docker.types.IPAMConfig(pool_configs=[
                    docker.types.IPAMPool(subnet=f'fd00:{host.index}:{number}::/64')])}
            client.networks.create(name, driver='bridge', labels={
                'com.docker.compose.project': PROJECT,
                'com.docker.compose.network': name.split('_', 1)[1],
                'com.docker.compose.version': COMPOSE_VERSION}, **kwargs)
        for spec in CONTAINERS:
            first, *others = spec['networks']
            kwargs = {}
            if spec['port']:
                kwargs['ports'] = {'11211/tcp': spec['port']}
            cont = client.containers.create(
                IMAGE, MEMCACHED_CMD if spec['role'] == 'service' else SLEEP_CMD,
                name=spec['name'], hostname=spec['name'], labels=_compose_labels(spec, workdir),
                network=first, stop_signal='SIGKILL' if spec['role'] == 'client' else None,
                **kwargs)
            for net in others:
                client.networks.get(net).connect(cont, aliases=[spec['service']])
            cont.start()
    finally:
        client.close()


def _write_sshd(host):
    key = os.path.join(host.lib_dir, 'ssh_host_ed25519_key')
    if not os.path.exists(key):
        _run(['ssh-keygen', '-q', '-t', 'ed25519', '-N', '', '-C', f'netfence-lab {host.name}',
              '-f', key])
    config = os.path.join(host.lib_dir, 'sshd_config')
    listen = [f'ListenAddress {host.addr}']
    if host.ipv6:
        listen.append(f'ListenAddress {host.addr6}')
    _write(config, '\n'.join(listen + [
        'Port 22',
        f'HostKey {key}',
        f'PidFile {os.path.join(host.run_dir, "sshd.pid")}',
        f'AuthorizedKeysFile {AUTHORIZED_KEYS}',
        'PermitRootLogin prohibit-password',
        'PasswordAuthentication no',
        'KbdInteractiveAuthentication no',
        'UsePAM no',
        'StrictModes no',
        'UseDNS no',
        'PrintMotd no',
        'MaxStartups 50:30:200',
        'MaxSessions 50',
        'AcceptEnv LANG LC_*',
        'Subsystem sftp /usr/lib/openssh/sftp-server',
        '',
    ]))
    state_dir = os.path.join(host.lib_dir, 'netfence-state')
    script = os.path.join(host.lib_dir, 'sshd.sh')
    _write(script, '\n'.join([
        '#!/bin/sh',
        f'# sshd of netfence lab host {host.name}: sees {host.name}\'s engine as the host\'s.',
        'set -e',
        'mount --make-rprivate /',
        f'mount --bind {host.docker_sock} {DOCKER_SOCK_PLACEHOLDER}',
        # Each lab host keeps its own /var/lib/netfence (the module's state record), as a real
        # host would: the lab hosts share this machine's filesystem otherwise.
        f'mkdir -p {state_dir} {HOST_STATE_DIR}',
        f'mount --bind {state_dir} {HOST_STATE_DIR}',
        'mkdir -p /run/sshd',
        f'exec /usr/sbin/sshd -D -f {config} -E {os.path.join(host.lib_dir, "sshd.log")}',
        '',
    ]), mode=0o755)
    return script


def _start_sshd(host):
    script = _write_sshd(host)
    _spawn_detached(['ip', 'netns', 'exec', host.netns, 'unshare', '-m', script],
                    os.path.join(host.lib_dir, 'sshd.out'),
                    os.path.join(host.run_dir, 'sshd.spawn.pid'),
                    env={'PATH': SYS_PATH, 'HOME': '/root'})


def _wait_sshd(host):
    if not _wait(lambda: _ssh_banner(host.addr, 0.5), 15, 0.1):
        raise LabError(f'sshd of {host.name} did not come up:\n'
                       f'{_tail(os.path.join(host.lib_dir, "sshd.out"))}'
                       f'{_tail(os.path.join(host.lib_dir, "sshd.log"))}')


def _ensure_ssh_key():
    if not os.path.exists(SSH_KEY):
        os.makedirs(os.path.dirname(SSH_KEY), exist_ok=True)
        _run(['ssh-keygen', '-q', '-t', 'ed25519', '-N', '', '-C', 'netfence-lab', '-f',
              SSH_KEY])
    with open(SSH_KEY + '.pub', encoding='utf-8') as handle:
        _write(AUTHORIZED_KEYS, handle.read(), mode=0o600)


def _ensure_placeholder():
    if not os.path.lexists(DOCKER_SOCK_PLACEHOLDER):
        _write(DOCKER_SOCK_PLACEHOLDER, '', mode=0o600)
        _write(PLACEHOLDER_MARKER, 'created by netfence lab\n')


def _write_inventory(hosts, versions):
    lines = ['# netfence lab inventory (written by tests/lab/lab.py up'
             + (f', instance {INSTANCE}' if INSTANCE else '') + ')', '[lab]']
    for host in hosts:
        lines.append(f'{host.name} ansible_host={host.addr} '
                     f'netfence_lab_docker_version={versions[host.name]} '
                     f'netfence_lab_docker_series={host.series} '
                     f'netfence_lab_netns={host.netns} netfence_lab_addr6='
                     f'{host.addr6 if host.ipv6 else ""} '
                     f'netfence_lab_configs={"+".join(host.configs)}')
    lines += [
        '',
        '[lab:vars]',
        'ansible_user=root',
        f'ansible_ssh_private_key_file={SSH_KEY}',
        "ansible_ssh_common_args='-o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null "
        "-o ControlMaster=auto -o ControlPersist=60s'",
        'ansible_python_interpreter=/usr/bin/python3',
        '',
    ]
    _write(INVENTORY, '\n'.join(lines))


# --------------------------------------------------------------------------- health

def _deployment_problems(host):
    import docker  # pylint: disable=import-outside-toplevel
    problems = []
    try:
        client = host.client(timeout=10)
    except (docker.errors.DockerException, OSError) as exc:
        return [f'{host.name}: no engine: {exc}']
    try:
        try:
            client.images.get(IMAGE)
        except docker.errors.ImageNotFound:
            problems.append(f'{host.name}: image {IMAGE} missing')
        by_name = {c.name: c for c in client.containers.list(all=True)}
        for spec in CONTAINERS:
            cont = by_name.get(spec['name'])
            if cont is None:
                problems.append(f'{host.name}: container {spec["name"]} missing')
                continue
            attrs = cont.attrs
            if not attrs['State'].get('Running'):
                problems.append(f'{host.name}: {spec["name"]} not running')
            networks = attrs['NetworkSettings'].get('Networks') or {}
            nets = set(networks.keys())
            if nets != set(spec['networks']):
                problems.append(f'{host.name}: {spec["name"]} on {sorted(nets)}')
            if host.docker_ipv6 and not all(n.get('GlobalIPv6Address')
                                            for n in networks.values()):
                problems.append(f'{host.name}: {spec["name"]} has no IPv6 address')
            if spec['port']:
                bound = (attrs['NetworkSettings'].get('Ports') or {}).get('11211/tcp') or []
                if str(spec['port']) not in {b.get('HostPort') for b in bound}:
                    problems.append(f'{host.name}: {spec["name"]} does not publish '
                                    f'{spec["port"]}')
    except (docker.errors.DockerException, OSError) as exc:
        problems.append(f'{host.name}: engine error: {exc}')
    finally:
        client.close()
    if host.has('no-brnf') and _brnf(host) != {'iptables': '0', 'ip6tables': '0'}:
        problems.append(f'{host.name}: bridge-nf-call-* not 0 ({_brnf(host)})')
    return problems


def _infra_problems(host):
    problems = []
    if not os.path.exists(host.netns_path):
        return [f'{host.name}: namespace {host.netns} missing']
    res = _run(['ip', '-j', 'addr', 'show', 'dev', host.veth], check=False)
    if res.returncode != 0 or host.gateway not in res.stdout:
        problems.append(f'{host.name}: link {host.veth} missing or without address')
    res = host_exec(host, ['ip', '-j', 'addr', 'show', 'dev', 'eth0'], check=False)
    if res.returncode != 0 or host.addr not in res.stdout:
        problems.append(f'{host.name}: eth0 in {host.netns} missing or without address')
    if not _pid_alive(_read_pid(os.path.join(host.run_dir, 'dockerd.spawn.pid')), 'dockerd'):
        problems.append(f'{host.name}: dockerd not running')
    else:
        version = _docker_ping(host)
        if version is None:
            problems.append(f'{host.name}: dockerd does not answer')
        elif not version.startswith(host.series + '.'):
            problems.append(f'{host.name}: Docker {version}, expected {host.series}')
    if not _pid_alive(_read_pid(os.path.join(host.run_dir, 'sshd.pid')), 'sshd'):
        problems.append(f'{host.name}: sshd not running')
    elif not _ssh_banner(host.addr, 1.0):
        problems.append(f'{host.name}: sshd does not answer on {host.addr}:22')
    return problems


def _global_problems():
    problems = []
    if not _pid_alive(_read_pid(REAPER_PID), 'netfence_lab_reaper'):
        problems.append('lab reaper not running')
    if not _pid_alive(_read_pid(CONTAINERD_PID), 'containerd'):
        problems.append('containerd not running')
    elif not _unix_connectable(CONTAINERD_SOCK):
        problems.append('containerd socket does not answer')
    for path in (SSH_KEY, AUTHORIZED_KEYS, INVENTORY):
        if not os.path.exists(path):
            problems.append(f'{path} missing')
    return problems


READY_TIMEOUT = 90.0  # s: bound on waiting for a fresh lab to become usable on every path


def _tentative(host):
    """IPv6 addresses of ``host`` still in duplicate address detection (or failed it).

    Looks at the root side of its link, every interface in its namespace and every
    interface in its running containers' namespaces (the probes' peer/egress paths start
    there).  Returns ['<where>: <ifname> <address> tentative', ...].
    """
    if not host.ipv6:
        return []
    where = [('root', None, ['ip', '-j', '-6', 'addr', 'show', 'dev', host.veth])]
    where.append((host.netns, host.netns_path, ['ip', '-j', '-6', 'addr', 'show']))
    with contextlib.suppress(Exception):
        services, clients = service_containers(host, service='all')
        for attrs in services + clients:
            netns = _pid_netns(attrs) if attrs['State'].get('Running') else None
            if netns:
                where.append((attrs['Name'].lstrip('/'), netns, ['ip', '-j', '-6', 'addr', 'show']))
    found = []
    for label, netns, argv in where:
        if netns:
            argv = ['nsenter', f'--net={netns}'] + argv
        res = _run(argv, check=False, timeout=10)
        try:
            links = json.loads(res.stdout or '[]')
        except ValueError:
            links = []
        for link in links:
            # A link without carrier (e.g. a bridge without ports) runs no DAD and carries no
            # probe: its addresses stay tentative and do not matter.
            if 'LOWER_UP' not in (link.get('flags') or []):
                continue
            for addr in link.get('addr_info') or []:
                for state in ('tentative', 'dadfailed'):
                    if addr.get(state):
                        found.append(f'{host.name} {label}: {link.get("ifname")} '
                                     f'{addr.get("local")} {state}')
    return found


def expected_open(host, probe_result):
    """Paths of a fresh deployment that are not ok, beyond what the host's configuration
    explains (no-userland-proxy: localhost6 is refused without any rule)."""
    tolerated = {'localhost6'} if host.has('no-userland-proxy') else set()
    return {name: bad for name, cells in probe_result.items()
            if (bad := {p: o for p, o in cells.items() if o != 'ok' and p not in tolerated})}


def _readiness_problems(host, full=True):
    """What keeps ``host`` from being usable on every path the tests probe ([] = ready).

    full: also two consecutive probe reads of every path of every service, both all open and
    identical (else only engine, sshd and IPv6 DAD).
    """
    problems = []
    if _docker_ping(host) is None:
        return [f'{host.name}: engine does not answer']
    if not _ssh_banner(host.addr, 1.0):
        problems.append(f'{host.name}: sshd does not answer on {host.addr}:22')
    problems += _tentative(host)
    if problems or not full:
        return problems
    reads = []
    for _read in range(2):
        reads.append(probe(host, service='all', timeout=1.0))
        bad = expected_open(host, reads[-1])
        if bad:
            return [f'{host.name}: not open yet: {bad}']
    if reads[0] != reads[1]:
        return [f'{host.name}: probe matrix not stable across two reads: '
                f'{reads[0]} then {reads[1]}']
    return []


def wait_ready(hosts, full=True, timeout=READY_TIMEOUT):
    """Wait until every host is usable (see _readiness_problems); LabError naming what is not
    ready after ``timeout`` seconds.  Returns the seconds waited."""
    start = time.monotonic()
    deadline = start + timeout
    said = False
    while True:
        found = _parallel(lambda h: _readiness_problems(h, full), list(hosts))
        problems = [p for h in hosts for p in found[h]]
        if problems and not said:
            said = True
            LOG.info('waiting for readiness: %s', '; '.join(problems)[:600])
        if not problems:
            took = time.monotonic() - start
            LOG.info('lab ready (%s) after %.1f s', 'every path open, stable' if full
                     else 'engines, sshd, no tentative IPv6', took)
            return took
        if time.monotonic() >= deadline:
            raise LabError(f'lab not ready after {timeout:.0f} s: ' + '; '.join(problems))
        time.sleep(0.25)


def _anything_left():
    if os.path.exists(LIB_DIR) or os.path.exists(RUN_DIR):
        return True
    if _lab_netns() or _lab_links() or _lab_mounts():
        return True
    return bool(set().union(*_lab_processes().values()))


def up(hosts=None, versions=None, configs=None):  # pylint: disable=invalid-name
    """Bring the lab up (idempotent); return its hosts.

    A healthy lab with the same shape is left alone.  A lab whose engines,
    namespaces or daemons are broken (or leftovers of a killed run) is torn
    down and recreated.  A healthy lab whose deployment was changed gets its
    deployment recreated.
    """
    require_root()
    wanted = _plan(hosts, versions, configs)
    with _locked():
        return _up(wanted)


def _up(wanted):
    state = _load_state()
    if state and [(h['name'], h['series'], tuple(h.get('configs') or ('default',)))
                  for h in state['hosts']] == [(h.name, h.series, h.configs) for h in wanted]:
        problems = _global_problems()
        for host in wanted:
            problems += _infra_problems(host)
        if not problems:
            broken = [h for h in wanted if _deployment_problems(h)]
            if not broken:
                LOG.info('lab is up and healthy: nothing to do')
                wait_ready(wanted, full=False)
                return wanted
            LOG.info('recreating the deployment on %s', ', '.join(h.name for h in broken))
            _parallel(_deploy, broken)
            for host in broken:
                _apply_brnf(host)
            wait_ready(broken)
            wait_ready(wanted, full=False)
            return wanted
        LOG.info('lab is unhealthy (%s): recreating it', '; '.join(problems))
    elif state:
        LOG.info('lab has a different shape: recreating it')
    if _anything_left():
        _down()
    start = time.monotonic()
    _check_collisions()
    check_kernel()
    versions_by_host = {}
    if any(h.series == '28' for h in wanted):
        with _locked(DOCKER28_LOCK):
            ensure_docker28()
    if any(h.series == '29' for h in wanted):
        with _locked(DOCKER29_LOCK):
            ensure_docker29()
    os.makedirs(LIB_DIR, exist_ok=True)
    os.makedirs(RUN_DIR, exist_ok=True)
    _ensure_ssh_key()
    _ensure_placeholder()
    LOG.info('starting containerd')
    _start_containerd()
    for host in wanted:
        LOG.info('creating %s (Docker %s) at %s in namespace %s', host.name, host.series,
                 host.addr, host.netns)
        _setup_network(host)
        _start_dockerd(host)
    versions_by_host = _parallel(_wait_dockerd, wanted)
    versions_by_host = {h.name: versions_by_host[h] for h in wanted}
    LOG.info('engines up: %s', ', '.join(f'{k}={v}' for k, v in versions_by_host.items()))
    _prepare_image_context()
    for host in wanted:
        _start_sshd(host)
    _parallel(_deploy, wanted)
    for host in wanted:
        _apply_brnf(host)  # after the deployment: creating networks may set it back to 1
    _parallel(_wait_sshd, wanted)
    _write_inventory(wanted, versions_by_host)
    _write(STATE_FILE, json.dumps({'instance': INSTANCE, 'index': INDEX, 'prefix': PREFIX,
                                   'hosts': [h.to_dict() for h in wanted],
                                   'versions': versions_by_host,
                                   'created': time.strftime('%Y-%m-%dT%H:%M:%SZ',
                                                            time.gmtime())}, indent=2) + '\n')
    problems = _global_problems()
    for host in wanted:
        problems += _infra_problems(host) + _deployment_problems(host)
    if problems:
        raise LabError('lab came up unhealthy: ' + '; '.join(problems))
    wait_ready(wanted)
    LOG.info('lab up in %.1f s; inventory: %s', time.monotonic() - start, INVENTORY)
    return wanted


def _restart_sshd(host):
    """Restart the host's sshd, its open sessions (and so Ansible's persisted connections) too."""
    stat = os.stat(host.netns_path)
    pids = set()
    for entry in os.listdir('/proc'):
        if entry.isdigit() and os.path.basename(_cmdline(int(entry)).split(' ', 1)[0]).startswith('sshd'):
            with contextlib.suppress(OSError):
                ns = os.stat(f'/proc/{entry}/ns/net')
                if (ns.st_dev, ns.st_ino) == (stat.st_dev, stat.st_ino):
                    pids.add(int(entry))
    pids |= {_read_pid(os.path.join(host.run_dir, name)) for name in ('sshd.pid', 'sshd.spawn.pid')}
    _kill_and_wait({p for p in pids if _pid_alive(p)}, 10)
    _start_sshd(host)
    _wait_sshd(host)


def restart_engine(host, timeout=60):
    """Stop ``host``'s dockerd (SIGTERM, as a service manager would), start it again with the
    same arguments and start the deployment's containers again (no live-restore: dockerd stops
    them).  Waits for engine, sshd and IPv6; not for open paths (a blackout may be active).
    Returns dockerd's new pid."""
    host = _as_host(host)
    require_root()
    with _locked():
        pid_file = os.path.join(host.run_dir, 'dockerd.spawn.pid')
        pid = _read_pid(pid_file)
        if _pid_alive(pid, 'dockerd'):
            _kill_and_wait({pid}, timeout)
        _start_dockerd(host)
        _wait_dockerd(host)
        # sshd's mount namespace bind-mounts the engine's socket file: the new dockerd made a new
        # one, so sshd is restarted to show SSH sessions the new engine.
        _restart_sshd(host)
        client = host.client(timeout=60)
        try:
            for spec in CONTAINERS:
                cont = client.containers.get(spec['name'])
                if cont.status != 'running':
                    cont.start()
        finally:
            client.close()
        _apply_brnf(host)
        wait_ready([host], full=False)
        return _read_pid(pid_file)


# --------------------------------------------------------------------------- status

def status():
    """Per-host status rows (plain dicts)."""
    rows = []
    try:
        hosts = lab_hosts()
    except LabError:
        return rows
    for host in hosts:
        row = {'host': host.name, 'netns': host.netns if os.path.exists(host.netns_path)
               else 'MISSING', 'addr': host.addr, 'series': host.series,
               'configs': '+'.join(host.configs),
               'docker': _docker_ping(host) or 'DOWN',
               'sshd': 'up' if _ssh_banner(host.addr, 1.0) else 'DOWN', 'containers': {}}
        if row['docker'] != 'DOWN':
            client = host.client(timeout=10)
            try:
                for cont in client.containers.list(all=True):
                    row['containers'][cont.name] = cont.status
            finally:
                client.close()
        row['problems'] = (_infra_problems(host) + _deployment_problems(host)
                           if row['docker'] != 'DOWN' else _infra_problems(host))
        rows.append(row)
    return rows


def render_status(rows):
    """Human-readable status."""
    if not rows:
        return 'lab is not up'
    out = []
    for row in rows:
        out.append(f'{row["host"]}: netns={row["netns"]} addr={row["addr"]} '
                   f'docker={row["docker"]} sshd={row["sshd"]} configs={row["configs"]}')
        for name, state in sorted(row['containers'].items()):
            out.append(f'    {name:<20} {state}')
        for problem in row['problems']:
            out.append(f'    PROBLEM: {problem}')
    return '\n'.join(out)


# --------------------------------------------------------------------------- probe

class EgressListener:
    """A TCP listener in the root namespace on a host's gateway address.

    Answers every ``version`` line with ``VERSION netfence-lab-egress``.
    """

    def __init__(self, host):
        host = _as_host(host)
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind((host.gateway, 0))
        self.sock.listen(64)
        self.addr, self.port = self.sock.getsockname()[:2]
        self._closed = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self):
        while not self._closed.is_set():
            try:
                conn, _peer = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._answer, args=(conn,), daemon=True).start()

    def _answer(self, conn):
        with conn:
            buf = b''
            while not self._closed.is_set():
                try:
                    chunk = conn.recv(4096)
                except OSError:
                    return
                if not chunk:
                    return
                buf += chunk
                while b'\r\n' in buf:
                    _line, buf = buf.split(b'\r\n', 1)
                    with contextlib.suppress(OSError):
                        conn.sendall(b'VERSION netfence-lab-egress\r\n')

    def close(self):
        """Stop listening."""
        self._closed.set()
        with contextlib.suppress(OSError):
            self.sock.shutdown(socket.SHUT_RDWR)
        self.sock.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def service_containers(host, service='memcached', project=PROJECT):
    """Inspect data of the (service) containers of ``project``/``service`` on ``host``.

    ``service=None`` (or 'all') gives every non-client container of the project.
    """
    host = _as_host(host)
    filters = {'label': [f'com.docker.compose.project={project}']}
    if service and service != 'all':
        filters['label'].append(f'com.docker.compose.service={service}')
    client = host.client(timeout=10)
    try:
        found = [c.attrs for c in client.containers.list(all=True, filters=filters)]
        clients = [c.attrs for c in client.containers.list(
            all=True, filters={'label': [f'{ROLE_LABEL}=client']})]
    finally:
        client.close()
    found = [a for a in found if a['Config']['Labels'].get(ROLE_LABEL) != 'client']
    return sorted(found, key=lambda a: a['Name']), clients


def _published_port(attrs, container_port='11211/tcp'):
    for binding in (attrs['NetworkSettings'].get('Ports') or {}).get(container_port) or []:
        if binding.get('HostIp') in ('0.0.0.0', '', '::'):
            return int(binding['HostPort'])
    return None


def _pid_netns(attrs):
    pid = attrs['State'].get('Pid')
    return f'/proc/{pid}/ns/net' if pid else None


def _client_for(clients, network):
    for attrs in clients:
        if network in (attrs['NetworkSettings'].get('Networks') or {}) and \
                attrs['State'].get('Running'):
            return attrs
    return None


def _targets(host, attrs, clients, listener_port):
    """{path: (netns path or None for the root namespace, address, port)}."""
    port = _published_port(attrs)
    out = {}
    if port:
        out['external'] = (None, host.addr, port)
        out['localhost4'] = (host.netns_path, '127.0.0.1', port)
        out['localhost6'] = (host.netns_path, '::1', port)
        out['own_addr'] = (host.netns_path, host.addr, port)
        if host.docker_ipv6:
            out['external6'] = (None, host.addr6, port)
    for net, info in sorted((attrs['NetworkSettings'].get('Networks') or {}).items()):
        client = _client_for(clients, net)
        if client and info.get('IPAddress') and _pid_netns(client):
            out[f'peer:{net}'] = (_pid_netns(client), info['IPAddress'], 11211)
        else:
            out[f'peer:{net}'] = None
        if host.docker_ipv6:
            if client and info.get('GlobalIPv6Address') and _pid_netns(client):
                out[f'peer6:{net}'] = (_pid_netns(client), info['GlobalIPv6Address'], 11211)
            else:
                out[f'peer6:{net}'] = None
    if listener_port and _pid_netns(attrs):
        out['egress'] = (_pid_netns(attrs), host.gateway, listener_port)
    elif listener_port:
        out['egress'] = None
    return out


def _agent_argv(netns_path, mode_args):
    argv = [sys.executable, '-I', AGENT] + list(mode_args)
    if netns_path:
        argv = ['nsenter', f'--net={netns_path}'] + argv
    return argv


def _run_agent(netns_path, targets, timeout):
    """Run the probe agent in a namespace on [{key, host, port, timeout}]."""
    try:
        res = subprocess.run(_agent_argv(netns_path, ['probe']), input=json.dumps(targets),
                             capture_output=True, text=True, timeout=timeout * 3 + 10,
                             check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return {t['key']: {'outcome': agent.ERROR, 'detail': repr(exc)} for t in targets}
    try:
        return json.loads(res.stdout)
    except ValueError:
        detail = (res.stderr or res.stdout).strip()[-300:]
        return {t['key']: {'outcome': agent.ERROR, 'detail': detail} for t in targets}


def probe_detail(host, service='memcached', project=PROJECT, timeout=1.0, paths=None):
    """Like probe() but each cell is {'outcome', 'elapsed', 'detail'}."""
    host = _as_host(host)
    services, clients = service_containers(host, service, project)
    want_egress = paths is None or 'egress' in paths
    listener = EgressListener(host) if want_egress else None
    try:
        groups = {}   # netns path (None = root) -> list of targets
        results = {}
        for attrs in services:
            name = attrs['Name'].lstrip('/')
            results[name] = {}
            targets = _targets(host, attrs, clients, listener.port if listener else None)
            if not attrs['State'].get('Running'):
                targets = {p: None for p in targets}
            for path, target in targets.items():
                if paths is not None and path not in paths:
                    continue
                if target is None:
                    results[name][path] = {'outcome': NA, 'elapsed': 0, 'detail': ''}
                    continue
                netns, addr, port = target
                groups.setdefault(netns, []).append(
                    {'key': f'{name}|{path}', 'host': addr, 'port': port, 'timeout': timeout})
        merged = {}
        lock = threading.Lock()

        def run_group(netns):
            if netns is None:
                res = agent.probe_many(groups[netns])
            else:
                res = _run_agent(netns, groups[netns], timeout)
            with lock:
                merged.update(res)

        _parallel(run_group, list(groups))
        for key, res in merged.items():
            name, path = key.split('|', 1)
            results[name][path] = res
        return results
    finally:
        if listener:
            listener.close()


def probe(host, service='memcached', project=PROJECT, timeout=1.0, paths=None):
    """Outcome of every path to every container of ``service`` on ``host``.

    Returns ``{container_name: {path: outcome}}`` where path is one of
    external, localhost4, localhost6, own_addr, peer:<network>, egress (and on
    hosts with the ``ipv6`` configuration external6 and peer6:<network>) and
    outcome one of ok, refused, reset, closed, timeout, unreachable (error /
    n/a for surprises).  ``paths`` limits the paths probed.
    """
    detail = probe_detail(host, service, project, timeout, paths)
    return {name: {path: cell['outcome'] for path, cell in cells.items()}
            for name, cells in detail.items()}


def _path_order(path):
    order = ['external', 'external6', 'localhost4', 'localhost6', 'own_addr']
    if path in order:
        return (order.index(path), path)
    if path.startswith('peer:'):
        return (10, path)
    if path.startswith('peer6:'):
        return (11, path)
    return (20, path)


def render_table(results):
    """Markdown table of probe() results (cells may be outcomes or detail dicts)."""
    paths = sorted({p for cells in results.values() for p in cells}, key=_path_order)
    lines = ['| container | ' + ' | '.join(paths) + ' |',
             '|---|' + '---|' * len(paths)]
    for name in sorted(results):
        cells = []
        for path in paths:
            cell = results[name].get(path, '-')
            cells.append(cell['outcome'] if isinstance(cell, dict) else cell)
        lines.append(f'| {name} | ' + ' | '.join(cells) + ' |')
    return '\n'.join(lines)


# --------------------------------------------------------------------------- held connections

class HeldConnection:
    """An established connection along one probe path, kept open for later checks.

    ``initial`` is the result of the first version exchange (``established``
    tells whether it succeeded).  ``exchange(timeout)`` sends another request
    and returns ``{'outcome', 'elapsed', 'detail'}`` — e.g. after a firewall
    change, ``outcome != 'ok' and elapsed < 1`` means the connection errored
    within a second.  ``wait_error(timeout)`` waits without sending.
    """

    def __init__(self, host, container, path, timeout=1.0):
        self.host = _as_host(host)
        self.container = container
        self.path = path
        self.listener = None
        services, clients = service_containers(self.host, service='all')
        attrs = next((a for a in services if a['Name'].lstrip('/') == container), None)
        if attrs is None:
            raise LabError(f'no service container {container} on {self.host.name}')
        if path == 'egress':
            self.listener = EgressListener(self.host)
        targets = _targets(self.host, attrs, clients,
                           self.listener.port if self.listener else None)
        target = targets.get(path)
        if target is None:
            self.close()
            raise LabError(f'path {path} not available for {container} on {self.host.name}')
        netns, addr, port = target
        self.proc = subprocess.Popen(  # pylint: disable=consider-using-with
            _agent_argv(netns, ['hold', addr, str(port), str(timeout)]),
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
            text=True, bufsize=1)
        self.initial = self._read(timeout + 10)

    @property
    def established(self):
        """True if the first exchange got an answer."""
        return self.initial.get('outcome') == agent.OK

    def _read(self, timeout):
        ready, _w, _x = select.select([self.proc.stdout], [], [], timeout)
        line = self.proc.stdout.readline() if ready else ''
        if not line:
            return {'outcome': agent.ERROR, 'elapsed': None, 'detail': 'agent gave no answer'}
        return json.loads(line)

    def _command(self, cmd, timeout):
        if self.proc.poll() is not None:
            return {'outcome': agent.ERROR, 'elapsed': None, 'detail': 'connection not held'}
        try:
            self.proc.stdin.write(json.dumps(cmd) + '\n')
            self.proc.stdin.flush()
        except OSError as exc:
            return {'outcome': agent.ERROR, 'elapsed': None, 'detail': repr(exc)}
        return self._read(timeout + 10)

    def exchange(self, timeout=1.0):
        """Send another version request; time how long until answer/error/EOF."""
        return self._command({'op': 'exchange', 'timeout': timeout}, timeout)

    def wait_error(self, timeout=1.0):
        """Without sending, wait up to ``timeout`` s for an error/EOF from the peer."""
        return self._command({'op': 'wait', 'timeout': timeout}, timeout)

    def close(self):
        """Close the connection and stop the agent."""
        proc = getattr(self, 'proc', None)
        if proc is not None and proc.poll() is None:
            with contextlib.suppress(OSError):
                proc.stdin.write('{"op": "close"}\n')
                proc.stdin.flush()
            try:
                proc.wait(timeout=3)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        if proc is not None:
            for stream in (proc.stdin, proc.stdout):
                with contextlib.suppress(OSError):
                    stream.close()
        if self.listener:
            self.listener.close()
            self.listener = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def hold_connection(host, container, path, timeout=1.0):
    """Open and keep a connection to ``container`` along ``path`` (see HeldConnection)."""
    return HeldConnection(host, container, path, timeout)
