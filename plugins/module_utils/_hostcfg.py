# -*- coding: utf-8 -*-
# Copyright (c) 2026, netfence.docker contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Host configurations: firewall backend choice, bridged peers without br_netfilter, the state record.

- Backend: ``auto`` follows the engine (GET /info → FirewallBackend.Driver: Docker 29's
  ``nftables`` has no DOCKER-USER chain), else iptables; ``nftables`` / ``iptables`` by choice.
- Bridged peers: where ``net.bridge.bridge-nf-call-iptables`` (``…-ip6tables`` for IPv6) is not
  1 in the target's network namespace, frames between containers of one bridge never reach
  iptables or the inet hooks; ``table bridge netfence`` (see _nft.py) cuts them. No sysctl is
  changed.
- State record (``/var/lib/netfence/blackouts.json``, written atomically by the blackout module):
  per blackout, the identities of its planned rules, since, expires and backend, so that
  blackout_info reports a blackout whose rules were all flushed (no tag left to read) as
  ``broken``; and the iptables-nft base chains/tables the module created, so that the restore
  deletes them once empty (iptables-nft leaves an emptied ``OUTPUT`` base chain behind).
"""

from __future__ import annotations

import datetime as dt
import errno
import fcntl
import json
import os
import stat
import tempfile
import typing as t

from ansible_collections.netfence.docker.plugins.module_utils._nft import parse_chains
from ansible_collections.netfence.docker.plugins.module_utils._planner import FAMILIES

STATE_FILE = '/var/lib/netfence/blackouts.json'
BRNF_SYSCTL = {'ipv4': '/proc/sys/net/bridge/bridge-nf-call-iptables',
               'ipv6': '/proc/sys/net/bridge/bridge-nf-call-ip6tables'}
NFT_FAMILY = {'ipv4': 'ip', 'ipv6': 'ip6'}

Runner = t.Callable[[t.List[str], t.Optional[str]], t.Tuple[int, str, str]]


def read_text(path: str) -> str | None:
    try:
        with open(path, encoding='ascii') as handle:
            return handle.read().strip()
    except (OSError, ValueError):
        return None


def brnf() -> dict[str, str | None]:
    """bridge-nf-call-ip(6)tables of this network namespace: '1', '0', or None (br_netfilter not loaded)."""
    return {family: read_text(path) for family, path in BRNF_SYSCTL.items()}


def bridge_families(values: t.Mapping[str, str | None]) -> list[str]:
    """Families whose bridged traffic bypasses iptables (sysctl not 1, or absent)."""
    return [f for f in FAMILIES if values.get(f) != '1']


def choose_backend(option: str, engine_backend: str | None) -> tuple[str, str]:
    """(backend, why) from the module option and the engine's report."""
    if option in ('iptables', 'nftables'):
        return option, 'option backend=%s' % option
    if engine_backend == 'nftables':
        return 'nftables', 'the engine reports FirewallBackend.Driver nftables'
    return 'iptables', 'the engine reports FirewallBackend.Driver %s' % (engine_backend or 'iptables (not reported)')


# ---------------------------------------------------------------------------
# State record
# ---------------------------------------------------------------------------

def state_path() -> str:
    return os.environ.get('NETFENCE_STATE_FILE') or STATE_FILE


def netns_id() -> str | None:
    """Identity of this network namespace (device:inode of /proc/self/ns/net)."""
    try:
        st = os.stat('/proc/self/ns/net')
    except OSError:
        return None
    return '%d:%d' % (st.st_dev, st.st_ino)


def host_key(docker_root: str | None) -> str:
    """Section of the record for this Docker host.

    One machine can run several engines (and the test lab runs many hosts on one filesystem),
    so the record is kept per engine: its DockerRootDir (stable across reboots, unlike the
    network namespace), else the network namespace.
    """
    if docker_root:
        return 'root:%s' % docker_root
    return 'netns:%s' % (netns_id() or '?')


class StateError(OSError):
    """The state directory or a state file is not safe to use (symlink, owner, mode, file type)."""


_MAX_STATE_BYTES = 64 * 1024 * 1024


def _check_owner_mode(st: os.stat_result, what: str, path: str) -> None:
    if st.st_uid not in (0, os.geteuid()):
        raise StateError('%s %s is owned by uid %d (expected root or uid %d): refusing to use it'
                         % (what, path, st.st_uid, os.geteuid()))
    if st.st_mode & 0o022:
        raise StateError('%s %s is group- or world-writable (mode %04o): refusing to use it'
                         % (what, path, stat.S_IMODE(st.st_mode)))


def check_state_dir(folder: str, create: bool) -> bool:
    """True when ``folder`` exists and is safe: a real directory (not a symlink) owned by root or
    us, not group/world-writable. Created (0700) only with ``create``; False when absent."""
    try:
        st = os.lstat(folder)
    except FileNotFoundError:
        if not create:
            return False
        os.makedirs(folder, mode=0o700, exist_ok=True)
        st = os.lstat(folder)
    if stat.S_ISLNK(st.st_mode):
        raise StateError('state directory %s is a symbolic link: refusing to follow it' % folder)
    if not stat.S_ISDIR(st.st_mode):
        raise StateError('state directory %s is not a directory: refusing to use it' % folder)
    _check_owner_mode(st, 'state directory', folder)
    return True


def open_state_file(path: str, flags: int, what: str = 'state file') -> int:
    """os.open without following a symlink; the file must be a regular file owned by root or us and
    not group/world-writable (StateError otherwise)."""
    try:
        fd = os.open(path, flags | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise StateError('%s %s is a symbolic link: refusing to follow it' % (what, path)) from None
        raise
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise StateError('%s %s is not a regular file: refusing to use it' % (what, path))
        _check_owner_mode(st, what, path)
    except BaseException:
        os.close(fd)
        raise
    return fd


def _empty_state() -> dict[str, t.Any]:
    return {'version': 2, 'hosts': {}}


def read_state(path: str | None = None) -> tuple[dict[str, t.Any], str | None]:
    """(record, why it is corrupt or None). Nothing is created; a missing directory or file is an
    empty record. StateError when the directory or the file is unsafe to use."""
    path = path or state_path()
    if not check_state_dir(os.path.dirname(path) or '.', create=False):
        return _empty_state(), None
    try:
        fd = open_state_file(path, os.O_RDONLY)
    except FileNotFoundError:
        return _empty_state(), None
    with os.fdopen(fd, 'rb') as handle:
        raw = handle.read(_MAX_STATE_BYTES + 1)
    if len(raw) > _MAX_STATE_BYTES:
        return _empty_state(), 'larger than %d bytes' % _MAX_STATE_BYTES
    try:
        data = json.loads(raw.decode('utf-8'))
    except ValueError as exc:
        return _empty_state(), 'not valid JSON: %s' % exc
    if not isinstance(data, dict) or data.get('version') != 2:
        return _empty_state(), 'not a version 2 record'
    if not isinstance(data.get('hosts'), dict):
        return _empty_state(), 'no hosts object'
    return data, None


def load_state(path: str | None = None) -> dict[str, t.Any]:
    """The whole record ({'version': 2, 'hosts': {key: section}}); empty when missing or corrupt
    (read_state says which); StateError when unsafe to use."""
    return read_state(path)[0]


class StateRecord:
    """Load-modify-save of the record under an exclusive lock (several runs may write it at once).

    ``readonly`` (blackout_info, check mode): nothing is created on disk (no directory, no lock
    file); an existing lock file is taken shared. A corrupt record is kept aside when writable
    (``blackouts.json.corrupt-<UTC time>``) and reported in ``warnings``, never silently replaced.
    """

    def __init__(self, key: str, path: str | None = None, readonly: bool = False) -> None:
        self.key = key
        self.path = path or state_path()
        self.readonly = readonly
        self._lock: int | None = None
        self.data: dict[str, t.Any] = {}
        self.warnings: list[str] = []

    def section(self, key: str | None = None) -> dict[str, t.Any]:
        hosts = self.data.setdefault('hosts', {})
        sec = hosts.get(key or self.key)
        if not isinstance(sec, dict):
            sec = hosts[key or self.key] = {}
        if not isinstance(sec.get('blackouts'), dict):
            sec['blackouts'] = {}
        if not isinstance(sec.get('created'), list):
            sec['created'] = []
        return sec

    def find(self, netns: str | None) -> dict[str, t.Any]:
        """Our section; without an engine answer (netns key), the section last written from this netns."""
        if self.key.startswith('netns:') and netns:
            for key, sec in sorted((self.data.get('hosts') or {}).items()):
                if isinstance(sec, dict) and sec.get('netns') == netns:
                    return self.section(key)
        return self.section()

    def _take_lock(self) -> None:
        folder = os.path.dirname(self.path) or '.'
        lock = self.path + '.lock'
        if not check_state_dir(folder, create=not self.readonly):
            return
        try:
            self._lock = open_state_file(lock, os.O_RDONLY if self.readonly else os.O_RDWR | os.O_CREAT, 'lock file')
        except StateError:
            raise
        except OSError:  # absent (read-only), read-only file system: go on without the lock
            self._lock = None
            return
        fcntl.flock(self._lock, fcntl.LOCK_SH if self.readonly else fcntl.LOCK_EX)

    def __enter__(self) -> 'StateRecord':
        try:
            self._take_lock()
            self.data, corrupt = read_state(self.path)
            if corrupt is not None:
                aside = '%s.corrupt-%s' % (self.path, dt.datetime.now(dt.timezone.utc).strftime('%Y%m%dT%H%M%SZ'))
                if self.readonly:
                    self.warnings.append('state record %s is corrupt (%s): ignored; the next blackout run keeps it '
                                         'aside as %s.corrupt-<UTC time>' % (self.path, corrupt, self.path))
                else:
                    os.rename(self.path, aside)
                    self.warnings.append('state record %s was corrupt (%s): kept aside as %s; a new record is '
                                         'started' % (self.path, corrupt, aside))
        except BaseException:
            self._unlock()
            raise
        return self

    def save(self) -> None:
        if self.readonly:
            raise StateError('internal error: the state record was opened read-only')
        save_state(self.data, self.path)

    def _unlock(self) -> None:
        if self._lock is not None:
            try:
                fcntl.flock(self._lock, fcntl.LOCK_UN)
            finally:
                os.close(self._lock)
                self._lock = None

    def __exit__(self, *exc: t.Any) -> None:
        self._unlock()


def save_state(data: dict[str, t.Any], path: str | None = None) -> None:
    """Write the record atomically: a temporary file (O_EXCL, 0600) in the checked directory, fsync,
    rename (which replaces a symlink at ``path`` instead of following it)."""
    path = path or state_path()
    folder = os.path.dirname(path) or '.'
    check_state_dir(folder, create=True)
    fd, tmp = tempfile.mkstemp(prefix='.blackouts.', suffix='.tmp', dir=folder)
    try:
        with os.fdopen(fd, 'w', encoding='utf-8') as handle:
            json.dump(data, handle, indent=1, sort_keys=True)
            handle.write('\n')
            handle.flush()
            os.fchmod(handle.fileno(), 0o600)
            os.fsync(handle.fileno())
        os.rename(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def rule_record(rule: t.Any) -> dict[str, str]:
    """What the record keeps of a planned rule: identity, address, path."""
    family, table, chain, tag = rule.identity
    return {'family': family, 'table': table, 'chain': chain, 'tag': tag,
            'address': rule.address, 'path': rule.path}


def record_entry(rules: t.Sequence[t.Any], since: str | None, expires: str | None, backend: str) -> dict[str, t.Any]:
    return {'since': since, 'expires': expires, 'backend': backend,
            'rules': [rule_record(r) for r in rules]}


def missing_rules(entry: t.Mapping[str, t.Any], present: t.Iterable[tuple[str, str, str, str]]) -> list[dict[str, str]]:
    """Recorded rules whose identity is not on the host now."""
    have = set(present)
    return [r for r in entry.get('rules', [])
            if (r.get('family'), r.get('table'), r.get('chain'), r.get('tag')) not in have]


# ---------------------------------------------------------------------------
# iptables-nft leftovers
# ---------------------------------------------------------------------------

def _nft_listing(run: Runner, argv: list[str]) -> dict[str, t.Any] | None:
    """{'chains': set, 'rules': [rule dicts]} of an ``nft -j list …`` command, or None when it fails."""
    rc, out, _err = run(argv, None)
    if rc != 0:
        return None
    try:
        data = json.loads(out or '{}').get('nftables', [])
    except ValueError:
        return None
    return {'chains': {o['chain']['name'] for o in data if 'chain' in o},
            'rules': [o['rule'] for o in data if 'rule' in o]}


def nft_table(run: Runner, nft: str, nfam: str, table: str) -> dict[str, t.Any] | None:
    """{'chains': set, 'rules': [rule dicts]} of an nft table, or None when it does not exist."""
    return _nft_listing(run, [nft, '-j', 'list', 'table', nfam, table])


def nft_chain(run: Runner, nft: str, nfam: str, table: str, chain: str) -> dict[str, t.Any] | None:
    """Like nft_table() for one chain of the table: None when the chain (or the table) does not exist."""
    return _nft_listing(run, [nft, '-j', 'list', 'chain', nfam, table, chain])


def nft_all_chains(run: Runner, nft: str) -> dict[tuple[str, str], set[str]]:
    """{(nft family, table): chain names} of every table that has a chain, without listing rules."""
    rc, out, _err = run([nft, '-j', 'list', 'chains'], None)
    return (parse_chains(out) if rc == 0 else None) or {}


def nft_chains(run: Runner, nft: str, nfam: str, table: str,
               listed: dict[tuple[str, str], set[str]] | None = None) -> set[str] | None:
    """Chain names of an nft table, without listing its rules; None when the table does not exist.

    ``listed``: nft_all_chains() already at hand.
    """
    chains = (nft_all_chains(run, nft) if listed is None else listed).get((nfam, table))
    if chains:
        return chains
    # No chain listed: tell a missing table from an empty one (cheap, the table holds no rule).
    info = nft_table(run, nft, nfam, table)
    return None if info is None else info['chains']


def missing_base_chains(run: Runner, nft: str, keys: t.Iterable[tuple[str, str]],
                        known: dict[tuple[str, str], set[str]] | None = None) -> list[list[t.Any]]:
    """[[nfam, 'filter', chain or None], ...] for the iptables-nft tables/chains that do not exist yet.

    ``keys``: (family, chain) of the rules about to be inserted. One listing of the chains (not of the
    tables: with 10,000 rules in DOCKER-USER a JSON listing of the table takes seconds).
    ``known``: that listing, when the caller has it already (nft_all_chains()).
    """
    created: list[list[t.Any]] = []
    keys = sorted(set(keys))
    every = (nft_all_chains(run, nft) if known is None else known) if keys else {}
    listed: dict[str, set[str] | None] = {}
    for family, chain in keys:
        nfam = NFT_FAMILY[family]
        if nfam not in listed:
            listed[nfam] = nft_chains(run, nft, nfam, 'filter', every)
        chains = listed[nfam]
        if chains is None:
            if [nfam, 'filter', None] not in created:
                created.append([nfam, 'filter', None])
            created.append([nfam, 'filter', chain])
        elif chain not in chains:
            created.append([nfam, 'filter', chain])
    return created


def cleanup_created(run: Runner, nft: str, created: list[list[t.Any]]) -> tuple[list[list[t.Any]], list[str]]:
    """Delete recorded base chains that hold no rule, then recorded tables without chains.

    Returns (entries still to watch, what was deleted).

    A table with an entry of its own is listed once (its chains and rules answer for its recorded
    chains too); other recorded chains are listed one by one (the table may hold 10,000 rules in
    DOCKER-USER). The deletions go in one ``nft -f`` transaction; should it fail, one by one.
    """
    entries = sorted(created, key=lambda e: (e[2] is None, e[0], e[1], e[2] or ''))
    whole = {(nfam, table) for nfam, table, chain in entries if chain is None}
    listed: dict[tuple[str, str], dict[str, t.Any] | None] = {}

    def info_of(nfam: str, table: str, chain: str | None) -> dict[str, t.Any] | None:
        if (nfam, table) in whole:
            if (nfam, table) not in listed:
                listed[(nfam, table)] = nft_table(run, nft, nfam, table)
            return listed[(nfam, table)]
        return nft_table(run, nft, nfam, table) if chain is None else nft_chain(run, nft, nfam, table, chain)

    outcome: dict[int, str] = {}       # entry index -> 'keep', 'gone' or 'delete'
    emptied: dict[tuple[str, str], set[str]] = {}
    for i, (nfam, table, chain) in enumerate(entries):
        if chain is None:
            continue
        info = info_of(nfam, table, chain)
        if info is None or chain not in info['chains']:
            outcome[i] = 'gone'
        elif any(r.get('chain') == chain for r in info['rules']):
            outcome[i] = 'keep'
        else:
            outcome[i] = 'delete'
            emptied.setdefault((nfam, table), set()).add(chain)
    for i, (nfam, table, chain) in enumerate(entries):
        if chain is None:
            info = info_of(nfam, table, None)
            if info is None:
                outcome[i] = 'gone'
            else:  # its chains once the emptied ones are deleted
                outcome[i] = 'keep' if set(info['chains']) - emptied.get((nfam, table), set()) else 'delete'
    ops = [(i, 'delete %s %s' % ('table' if e[2] is None else 'chain', ' '.join(x for x in e if x is not None)))
           for i, e in enumerate(entries) if outcome[i] == 'delete']
    if len(ops) > 1:
        rc, _out, _err = run([nft, '-f', '-'], ''.join(op + '\n' for dummy, op in ops))
        if rc == 0:
            for i, dummy in ops:
                outcome[i] = 'done'
        else:
            _delete_one_by_one(run, nft, entries, outcome)
    elif ops:  # one deletion, decided on a fresh listing
        i = ops[0][0]
        rc, _out, _err = run([nft] + ops[0][1].split(), None)
        outcome[i] = 'done' if rc == 0 else 'keep'
    keep = [list(e) for i, e in enumerate(entries) if outcome[i] == 'keep']
    done = ['%s %s' % (e[0], e[1]) + ('' if e[2] is None else ' %s' % e[2])
            for i, e in enumerate(entries) if outcome[i] == 'done']
    return keep, done


def _delete_one_by_one(run: Runner, nft: str, entries: list[list[t.Any]], outcome: dict[int, str]) -> None:
    """Chains first, then tables (listed again: a chain deletion may have failed): outcome 'done' or 'keep'."""
    for i, (nfam, table, chain) in enumerate(entries):
        if chain is None and outcome[i] == 'delete':
            info = nft_table(run, nft, nfam, table)
            if info is None:
                outcome[i] = 'gone'
                continue
            if info['chains']:
                outcome[i] = 'keep'
                continue
        if outcome[i] != 'delete':
            continue
        argv = [nft, 'delete', 'table', nfam, table] if chain is None else [nft, 'delete', 'chain', nfam, table, chain]
        rc, _out, _err = run(argv, None)
        outcome[i] = 'done' if rc == 0 else 'keep'
