# -*- coding: utf-8 -*-
# Copyright (c) 2026, netfence.docker contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""``hold``: a watcher on the host that keeps a blackout on the service's new containers.

Rules match addresses. A replica that restarts with a new address, is recreated, or a new
replica (scale-up), is served again at once. With ``hold: true`` the blackout module leaves a
watcher on the host that follows the Engine API event stream and re-applies the blackout (the
module's own planner, diff and transaction: :class:`HoldManager` is the module's manager) when a
container of the blackout starts, restarts, joins or leaves a network.

This file is what every module run needs (pid files, start, stop, the module's hooks); the
watcher itself (event stream, re-apply, watch loop, daemon) is _hold_watcher.py, loaded by
``start()`` only. How it runs: after the module applied the blackout, ``start()`` imports
_hold_watcher and forks a fully detached process (double fork, ``setsid``, stdio on /dev/null,
every other descriptor closed) that keeps the module's code already imported in memory (the
AnsiballZ payload is deleted when the module exits, so the watcher imports nothing lazily).
No systemd unit: the lab has no systemd to test one with.

Life cycle, one watcher per blackout and engine (``<state dir>/hold/<name>.<engine>.pid``):
the watcher holds an exclusive flock on its pid file while it lives (the lock, not the pid,
says whether it runs: no stale-pid confusion); a module run starts one only when the lock is
free (a second run does not start a second, a dead one is restarted); the restore (and
``hold: false``) stops it (SIGTERM, checked against the pid's start time) *before* touching the
rules; it exits by itself at the blackout's deadline and when the blackout left the state
record. It logs to syslog (ident ``netfence-hold``).
"""

from __future__ import annotations

import datetime as dt
import errno
import fcntl
import hashlib
import json
import os
import select as _select
import signal
import sys
import time
import typing as t
from urllib.parse import quote

from ansible_collections.netfence.docker.plugins.module_utils import _state
from ansible_collections.netfence.docker.plugins.module_utils._docker_api import DEFAULT_DOCKER_HOST
from ansible_collections.netfence.docker.plugins.module_utils._manager import BlackoutError

STOP_WAIT = 10.0            # seconds a stopping watcher gets before SIGKILL
READY_WAIT = 10.0           # seconds the module waits for the new watcher to say it runs
LOCK_WAIT = 8               # seconds a re-apply waits for the host lock (then: retried after a backoff)


class HoldError(Exception):
    """The watcher could not be started or stopped."""


# ---------------------------------------------------------------------------- naming, pid files

def docker_host_of(params: t.Mapping[str, t.Any]) -> str:
    return params.get('docker_host') or os.environ.get('DOCKER_HOST') or DEFAULT_DOCKER_HOST


def hold_dir() -> str:
    """``hold/`` next to the state record (per host, also in the lab)."""
    return os.path.join(os.path.dirname(_state.state_path()) or '.', 'hold')


def pid_path(name: str, docker_host: str) -> str:
    """The pid file of blackout ``name`` on the engine at ``docker_host``."""
    engine = hashlib.sha1(docker_host.encode('utf-8')).hexdigest()[:8]
    return os.path.join(hold_dir(), '%s.%s.pid' % (quote(name, safe=''), engine))


def proc_starttime(pid: int) -> str | None:
    """Field 22 of /proc/PID/stat (start time in clock ticks since boot): tells a pid's reuse apart."""
    try:
        with open('/proc/%d/stat' % pid, encoding='ascii', errors='replace') as handle:
            return handle.read().rsplit(')', 1)[1].split()[19]
    except (OSError, IndexError):
        return None


def read_pid_file(path: str) -> dict[str, t.Any] | None:
    """What the watcher wrote (tolerates a write in progress: one retry)."""
    for _attempt in range(2):
        try:
            with open(path, encoding='utf-8') as handle:
                data = json.loads(handle.read() or 'null')
            return data if isinstance(data, dict) else None
        except FileNotFoundError:
            return None
        except (OSError, ValueError):
            time.sleep(0.02)
    return {}


def is_locked(path: str) -> bool:
    """True while a watcher holds the pid file's lock (it runs)."""
    try:
        handle = open(path, encoding='utf-8')  # pylint: disable=consider-using-with
    except OSError:
        return False
    try:
        fcntl.flock(handle, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except OSError:
        return True
    finally:
        handle.close()  # also releases the shared lock just taken
    return False


def status(path: str) -> dict[str, t.Any]:
    """``{enabled, running, pid}``: enabled when a watcher was started and did not end by itself
    (its pid file is there), running while it holds the lock."""
    data = read_pid_file(path)
    if data is None:
        return {'enabled': False, 'running': False, 'pid': None}
    running = is_locked(path)
    pid = data.get('pid') if running else None
    result = {'enabled': True, 'running': running, 'pid': pid if isinstance(pid, int) else None}
    for key in ('reapplied', 'last'):
        if key in data:
            result[key] = data[key]
    return result


def stop(path: str, wait: float = STOP_WAIT, clock: t.Callable[[], float] = time.monotonic) -> bool:
    """Stop the watcher of ``path`` and remove its pid file. True when a running one was stopped."""
    data = read_pid_file(path)
    if data is None:
        return False
    stopped = False
    pid = data.get('pid')
    if is_locked(path) and isinstance(pid, int) and pid > 1:
        if proc_starttime(pid) == data.get('starttime'):
            for sig, budget in ((signal.SIGTERM, wait), (signal.SIGKILL, 2.0)):
                try:
                    os.kill(pid, sig)
                except ProcessLookupError:
                    break
                end = clock() + budget
                while is_locked(path) and clock() < end:
                    time.sleep(0.02)
                if not is_locked(path):
                    break
            stopped = True
        if is_locked(path):
            raise HoldError('the hold watcher of %s (pid %s, %s) did not stop' % (data.get('blackout'), pid, path))
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
    return stopped


def watcher_params(params: t.Mapping[str, t.Any], expires: str | None) -> dict[str, t.Any]:
    """The module's parameters as the watcher re-applies them: present, the absolute deadline of
    the blackout (a duration would count again from a new start), no check, missing ignored."""
    out = dict(params)
    out.update(state='present', missing='ignore', expires=expires, verify=False, verify_addresses=[],
               hold=False, rollback=None,
               lock_timeout=LOCK_WAIT)  # below STOP_WAIT: a restore never has to SIGKILL a waiting watcher
    return out


def start(module: t.Any, name: str, expires: str | None) -> int:
    """Start the detached watcher of blackout ``name``; its pid. HoldError when it did not start
    (or another one took the pid file first: then that one's pid)."""
    # Loaded here, before the fork: the watcher runs on this code after the payload is gone.
    from ansible_collections.netfence.docker.plugins.module_utils._hold_watcher import (  # pylint: disable=import-outside-toplevel
        daemon_main)
    params = watcher_params(module.params, expires)
    path = pid_path(name, docker_host_of(params))
    deadline = None
    if expires:
        deadline = dt.datetime.strptime(expires, '%Y-%m-%dT%H:%M:%SZ').replace(tzinfo=dt.timezone.utc).timestamp()
    read_fd, write_fd = os.pipe()
    sys.stdout.flush()
    sys.stderr.flush()
    child = os.fork()
    if child == 0:  # pragma: no cover  (runs in the forked processes)
        try:
            os.close(read_fd)
            os.setsid()
            if os.fork() == 0:
                daemon_main(module, name, params, deadline, path, write_fd)
        except BaseException:  # pylint: disable=broad-except
            pass
        os._exit(0)
    os.close(write_fd)
    os.waitpid(child, 0)
    answer = b''
    end = time.monotonic() + READY_WAIT
    try:
        while not answer.endswith(b'\n') and time.monotonic() < end:
            ready, _w, _x = _select.select([read_fd], [], [], max(0.0, end - time.monotonic()))
            if not ready:
                break
            chunk = os.read(read_fd, 64)
            if not chunk:
                break
            answer += chunk
    finally:
        os.close(read_fd)
    if answer.startswith(b'ok '):
        return int(answer.split()[1])
    if answer.startswith(b'busy'):
        pid = (read_pid_file(path) or {}).get('pid')
        if isinstance(pid, int):
            return pid
    raise HoldError('the hold watcher of %s did not start (%s)' % (name, answer.decode('ascii', 'replace').strip()
                                                                   or 'no answer'))


# ---------------------------------------------------------------------------- module hooks

def before_run(module: t.Any, manager: t.Any) -> bool:
    """A restore (or a rollback of the blackout to no rules) stops the watcher before the rules are
    removed, so that nothing re-applies them. True when a running watcher was stopped."""
    p = module.params
    if module.check_mode:
        return False
    if p.get('all') and p.get('state') == 'absent':
        return stop_engine_watchers(docker_host_of(p))
    rollback = p.get('rollback')
    if rollback is not None:
        name = rollback.get('name') if isinstance(rollback, dict) else None
        if not isinstance(name, str) or rollback.get('rules'):
            return False  # invalid (the module says so), or the blackout stays: so does its watcher
    elif p.get('state') == 'absent':
        name = manager.name()
    else:
        return False
    try:
        return stop(pid_path(name, docker_host_of(p)))
    except (HoldError, ValueError) as exc:
        raise BlackoutError(str(exc), blackout=name) from None
    except OSError as exc:
        raise BlackoutError(_os_error('cannot stop the hold watcher of %s' % name, exc), blackout=name) from None


def _os_error(what: str, exc: OSError) -> str:
    """``what``: the error, with the become hint where the cause is missing privileges."""
    hint = ': the module needs root, run the task with become: true' if exc.errno in (
        errno.EACCES, errno.EPERM) else ''
    return '%s (%s)%s' % (what, exc.strerror or exc, hint)


def stop_engine_watchers(docker_host: str) -> bool:
    """The panic button (``all: true``): stop the watcher of every blackout of the engine at
    ``docker_host`` before its rules are lifted. True when one was running."""
    suffix = '.%s.pid' % hashlib.sha1(docker_host.encode('utf-8')).hexdigest()[:8]
    try:
        names = sorted(n for n in os.listdir(hold_dir()) if n.endswith(suffix))
    except FileNotFoundError:
        return False
    except OSError as exc:
        raise BlackoutError('cannot list the hold watchers in %s: %s' % (hold_dir(), exc)) from None
    stopped = False
    for entry in names:
        try:
            stopped = stop(os.path.join(hold_dir(), entry)) or stopped
        except HoldError as exc:
            raise BlackoutError(str(exc)) from None
        except OSError as exc:
            raise BlackoutError(_os_error('cannot stop the hold watcher %s' % entry, exc)) from None
    return stopped


def after_run(module: t.Any, result: dict[str, t.Any], stopped: bool = False) -> dict[str, t.Any]:
    """Start (or keep) the watcher after a blackout with ``hold``; stop it otherwise. Sets
    ``result['hold']`` and makes ``changed`` true when a watcher had to be started or stopped."""
    p = module.params
    if p.get('all'):  # the panic button stopped every watcher of the engine (before_run)
        result['hold'] = {'enabled': False, 'running': False, 'pid': None, 'started': False, 'stopped': stopped}
        result['changed'] = bool(result.get('changed') or stopped)
        return result
    name = result['blackout']
    path = pid_path(name, docker_host_of(p))
    wanted = (bool(p.get('hold')) and p.get('state') == 'present' and p.get('rollback') is None
              and any(result.get('rules', {}).values()))
    expires = result.get('expires')
    if wanted and expires and dt.datetime.strptime(expires, '%Y-%m-%dT%H:%M:%SZ').replace(
            tzinfo=dt.timezone.utc).timestamp() <= time.time():
        wanted = False
    now = status(path)
    report = {'enabled': wanted, 'running': now['running'], 'pid': now['pid'], 'started': False,
              'stopped': stopped}
    if p.get('rollback') is not None:  # a rollback leaves a kept blackout's watcher as it is
        report['enabled'] = now['enabled']
    elif wanted and not now['running']:
        report['started'] = True
        if not module.check_mode:
            try:
                report['pid'] = start(module, name, expires)
            except (HoldError, OSError) as exc:
                raise BlackoutError(str(exc), **result) from None
            report['running'] = True
    elif not wanted and now['enabled'] and not module.check_mode:
        try:
            report['stopped'] = stop(path) or stopped
        except HoldError as exc:
            raise BlackoutError(str(exc), **result) from None
        report.update(running=False, pid=None)
    elif not wanted and now['running']:
        report['stopped'] = True  # check mode: would stop it
    if report['started'] or report['stopped']:
        result['changed'] = True
    result['hold'] = report
    return result


def info(params: t.Mapping[str, t.Any], name: str) -> dict[str, t.Any]:
    """``{enabled, running, pid}`` of blackout ``name`` for blackout_info."""
    now = status(pid_path(name, docker_host_of(params)))
    return {'enabled': now['enabled'], 'running': now['running'], 'pid': now['pid']}
