# -*- coding: utf-8 -*-
# Copyright (c) 2026, netfence.docker contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""One writer per host: an exclusive flock on ``host.lock`` next to the state record.

The blackout module holds it around read → plan → apply → record, so two runs on one host (two
playbooks, two blackouts of a fleet run with ``strategy: free``…) never plan on a firewall the
other is changing. The wait is bounded (``lock_timeout``); the holder writes its pid, blackout
name and start time into the file, so the error of a run that gave up names it.
"""

from __future__ import annotations

import datetime as dt
import fcntl
import json
import os
import time
import typing as t

from ansible_collections.netfence.docker.plugins.module_utils._state import check_state_dir, open_state_file

LOCK_NAME = 'host.lock'
POLL = 0.05


class LockTimeout(Exception):
    """The host lock was not obtained within the timeout; ``holder``: what the holder wrote."""

    def __init__(self, msg: str, holder: dict[str, t.Any] | None) -> None:
        super().__init__(msg)
        self.holder = holder


def lock_path(state_file: str) -> str:
    """``host.lock`` in the directory of the state record (one per host)."""
    return os.path.join(os.path.dirname(state_file) or '.', LOCK_NAME)


def read_holder(handle: t.IO[str]) -> dict[str, t.Any] | None:
    """What the holder wrote (pid, blackout, started), None when unreadable."""
    try:
        handle.seek(0)
        data = json.loads(handle.read() or 'null')
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def describe_holder(holder: dict[str, t.Any] | None) -> str:
    if not holder:
        return 'a process that did not say who it is'
    return 'pid %s (blackout %s, since %s)' % (holder.get('pid'), holder.get('blackout'), holder.get('started'))


class HostLock:
    """``with HostLock(path, timeout, blackout):`` exclusive, or LockTimeout after ``timeout`` s."""

    def __init__(self, path: str, timeout: float, blackout: str,
                 clock: t.Callable[[], float] = time.monotonic) -> None:
        self.path = path
        self.timeout = max(0.0, float(timeout))
        self.blackout = blackout
        self.clock = clock
        self.deadline = clock() + self.timeout
        self._handle: t.IO[str] | None = None

    def remaining(self) -> float:
        """Seconds left of the budget (for ``iptables-restore -w``); never below 1."""
        return max(1.0, self.deadline - self.clock())

    def acquire(self) -> None:
        # The directory and the file pass the state record's checks (no symlink, owner, mode): a
        # lock in a directory someone else controls is no lock (StateError, an OSError).
        check_state_dir(os.path.dirname(self.path) or '.', create=True)
        fd = open_state_file(self.path, os.O_RDWR | os.O_CREAT | os.O_APPEND, 'host lock')
        handle = os.fdopen(fd, 'a+', encoding='utf-8')
        while True:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if self.clock() >= self.deadline:
                    holder = read_holder(handle)
                    handle.close()
                    raise LockTimeout('another netfence run holds the host lock %s: %s; gave up after %g s '
                                      '(lock_timeout)' % (self.path, describe_holder(holder), self.timeout),
                                      holder) from None
                time.sleep(POLL)
        handle.seek(0)
        handle.truncate()
        handle.write(json.dumps({'pid': os.getpid(), 'blackout': self.blackout,
                                 'started': dt.datetime.now(dt.timezone.utc).strftime('%Y-%m-%dT%H:%M:%SZ')}))
        handle.flush()
        self._handle = handle

    def release(self) -> None:
        handle, self._handle = self._handle, None
        if handle is None:
            return
        try:
            handle.truncate(0)
            fcntl.flock(handle, fcntl.LOCK_UN)
        finally:
            handle.close()

    def __enter__(self) -> 'HostLock':
        if self._handle is None:
            self.acquire()
        return self

    def __exit__(self, *exc: t.Any) -> None:
        self.release()
