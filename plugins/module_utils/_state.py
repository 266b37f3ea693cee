# -*- coding: utf-8 -*-
# Copyright (c) 2026, netfence.docker contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The state store: ``/var/lib/netfence/blackouts.json`` (``NETFENCE_STATE_FILE`` elsewhere).

Written atomically by the blackout module (temporary file + rename, under a lock), read by
blackout_info and the hold watcher. Per Docker engine (``host_key``) and blackout: the identities
of its planned rules, since, expires and backend, so that blackout_info reports a blackout whose
rules were all flushed (no tag left to read) as ``broken``; and the iptables-nft base
chains/tables the module created, so that the restore deletes them once empty (see
``_nft.cleanup_created``). The directory and the files are checked before use (no symlink, owned
by root or the user, not group/world-writable); an unreadable record is kept aside, never
silently replaced.
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

STATE_FILE = '/var/lib/netfence/blackouts.json'


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
