# -*- coding: utf-8 -*-
# Copyright (c) 2026, netfence.docker contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The hold watcher itself (see _hold.py for its life cycle): the Engine API event stream, the
re-apply through :class:`HoldManager` (the blackout module's manager), the watch loop and the
detached daemon's signals.

Loaded only by ``_hold.start()``, in the module process, *before* it forks the watcher: the
watcher keeps this code in memory (the AnsiballZ payload is deleted when the module exits), so
every import is at the top of this file or of the files it imports. A module run that starts no
watcher never compiles this file.
"""

from __future__ import annotations

import datetime as dt
import fcntl
import json
import os
import signal
import syslog
import time
import typing as t
from urllib.parse import quote, urlencode

from ansible_collections.netfence.docker.plugins.module_utils import _state
from ansible_collections.netfence.docker.plugins.module_utils._docker_api import (
    Container,
    DockerApiError,
    EngineClient,
    select,
)
from ansible_collections.netfence.docker.plugins.module_utils._hold import docker_host_of, proc_starttime
from ansible_collections.netfence.docker.plugins.module_utils._manager import (
    BlackoutError,
    BlackoutManager,
)

IDENT = 'netfence-hold'
# 'restart' is not needed: a restart emits 'start' first, and the address comes with the start.
CONTAINER_ACTIONS = ('start',)
NETWORK_ACTIONS = ('connect', 'disconnect')
MAX_LINE = 1 << 16          # one event; longer lines are skipped, never buffered whole
TICK = 30.0                 # seconds between checks that the blackout is still recorded
BACKOFF_MIN, BACKOFF_MAX = 0.2, 10.0


class Released(Exception):
    """The blackout is no longer in the state record (restored, rolled back): the watcher ends."""


class NothingRunning(Exception):
    """No container of the blackout runs now: keep the rules, wait for the next start."""


# ---------------------------------------------------------------------------- events

def selector_of(params: t.Mapping[str, t.Any]) -> dict[str, t.Any]:
    """The module's selector (what ``select`` takes) from its parameters."""
    return {'service': params.get('service'), 'project': params.get('project'),
            'names': params.get('containers'), 'labels': params.get('labels')}


def events_query() -> dict[str, str]:
    """Only the event kinds that can change what a blackout must cover (server-side filter)."""
    return {'filters': json.dumps({'type': ['container', 'network'],
                                   'event': list(CONTAINER_ACTIONS + NETWORK_ACTIONS)})}


def trigger(event: t.Any, selector: t.Mapping[str, t.Any],
            known: t.Mapping[str, str]) -> tuple[str, str, str] | None:
    """``(action, container id, container name)`` when ``event`` may change the blackout's cover.

    Container events carry the container's name and labels: they are matched like the module
    matches containers. Network connect/disconnect events only name the container's id: they
    count for the containers of the blackout seen at the last re-apply (``known``: id → name);
    a container new to the blackout is caught by its start event.
    """
    if not isinstance(event, dict):
        return None
    kind = event.get('Type')
    action = event.get('Action') or event.get('status')
    actor = event.get('Actor') if isinstance(event.get('Actor'), dict) else {}
    attrs = actor.get('Attributes') if isinstance(actor.get('Attributes'), dict) else {}
    if kind == 'container' and action in CONTAINER_ACTIONS:
        cid = str(actor.get('ID') or event.get('id') or '')
        name = str(attrs.get('name') or cid[:12])
        if not cid:
            return None
        labels = {str(k): str(v) for k, v in attrs.items()}
        probe = Container(id=cid, name=name, state='running', labels=labels, network_mode='default',
                          networks=(), ports=())
        return (action, cid, name) if select([probe], **selector) else None
    if kind == 'network' and action in NETWORK_ACTIONS:
        cid = str(attrs.get('container') or '')
        if cid in known:
            return action, cid, known[cid]
    return None


def event_lines(read: t.Callable[[int], bytes]) -> t.Iterator[t.Any]:
    """Decoded JSON events from a stream of lines (``read(limit)`` is readline). Lines longer
    than MAX_LINE are skipped piecewise (bounded memory); undecodable ones are skipped."""
    while True:
        line = read(MAX_LINE)
        if not line:
            return
        if not line.endswith(b'\n') and len(line) >= MAX_LINE:
            while line and not line.endswith(b'\n'):
                line = read(MAX_LINE)
            continue
        try:
            yield json.loads(line.decode('utf-8'))
        except ValueError:
            continue


def open_events(client: EngineClient) -> t.Iterator[t.Any]:
    """``GET /events?filters=…`` on the engine, streamed (chunked JSON lines), as an iterator."""
    conn = client._connection()  # pylint: disable=protected-access
    try:
        conn.request('GET', '/events?' + urlencode(events_query()), headers={'Accept': 'application/json'})
        resp = conn.getresponse()
    except BaseException:
        conn.close()
        raise
    if resp.status != 200:
        conn.close()
        raise DockerApiError('GET /events answered HTTP %s' % resp.status)
    if conn.sock is not None:
        conn.sock.settimeout(None)  # events come when they come; signals end the wait

    def lines() -> t.Iterator[t.Any]:
        try:
            yield from event_lines(resp.readline)
        finally:
            conn.close()
    return lines()


def container_running(client: EngineClient, cid: str) -> bool:
    """GET /containers/ID/json → State.Running (True when unsure: re-applying is always safe)."""
    try:
        state = (client.get('/containers/%s/json' % quote(cid, safe='')) or {}).get('State') or {}
    except (DockerApiError, ValueError):
        return True
    return bool(state.get('Running', True))


# ---------------------------------------------------------------------------- re-apply

class QuietModule:
    """What BlackoutManager needs of the AnsibleModule, in the watcher: the real module's binary
    lookup, the blackout's parameters, warnings to syslog (nothing accumulates in memory)."""

    check_mode = False
    _diff = False

    def __init__(self, module: t.Any, params: dict[str, t.Any], log: t.Callable[[int, str], None]) -> None:
        self._module = module
        self.params = params
        self._log = log

    def get_bin_path(self, *args: t.Any, **kwargs: t.Any) -> t.Any:
        return self._module.get_bin_path(*args, **kwargs)

    def warn(self, msg: str) -> None:
        self._log(syslog.LOG_NOTICE, msg)


class HoldManager(BlackoutManager):
    """The blackout module's manager, for the watcher: the same run (validate, host lock, read,
    plan, changes, all-or-nothing apply, record), but only while the blackout is recorded (checked
    under the host lock, so a restore that got the lock first is never undone), and never with no
    container running (a crash-restart must not lift the blackout between its die and its start)."""

    seen: dict[str, str]

    def selected(self, name: str) -> list[Container]:
        running = super().selected(name)
        self.seen = {c.id: c.name for c in select(self.containers(), **selector_of(self.params))}
        if not running:
            raise NothingRunning(name)
        return running

    def read(self, name: str, need_docker_user: bool) -> t.Any:
        view = super().read(name, need_docker_user)  # pylint: disable=no-member
        if view.record is None:
            raise Released(name)
        return view


def addresses_of(result: dict[str, t.Any], cid: str) -> list[str]:
    for cont in result.get('containers') or ():
        if cont.get('id') == cid:
            return sorted({a for net in (cont.get('networks') or {}).values()
                           for a in (net.get('ipv4'), net.get('ipv6')) if a})
    return []


def describe_apply(name: str, result: dict[str, t.Any], why: tuple[str, str, str] | None) -> str:
    """'re-applied lab/memcached for lab-memcached-2 (172.18.0.7) after start: +6 -6 rules'."""
    added = sum(len(v) for v in (result.get('added') or {}).values())
    removed = sum(len(v) for v in (result.get('removed') or {}).values())
    if why is None:
        cause = 'after (re)connecting to the engine'
    else:
        action, cid, cname = why
        addrs = addresses_of(result, cid)
        cause = 'for %s%s after %s' % (cname, ' (%s)' % ', '.join(addrs) if addrs else '', action)
    return 're-applied %s %s: +%d -%d rules' % (name, cause, added, removed)


# ---------------------------------------------------------------------------- the watcher

class Watcher:
    """The watch loop; engine, re-apply, clock and log are injected (unit tests use fakes)."""

    def __init__(self, name: str, selector: dict[str, t.Any], deadline: float | None,
                 reapply: t.Callable[[], tuple[dict[str, t.Any], dict[str, str]]],
                 open_stream: t.Callable[[], t.Iterator[t.Any]],
                 log: t.Callable[[int, str], None],
                 note: t.Callable[[dict[str, t.Any]], None] = lambda _info: None,
                 clock: t.Callable[[], float] = time.time,
                 sleep: t.Callable[[float], None] = time.sleep,
                 running: t.Callable[[str], bool] = lambda _cid: True) -> None:
        self.name = name
        self.selector = selector
        self.deadline = deadline
        self.reapply = reapply
        self.open_stream = open_stream
        self.log = log
        self.note = note
        self.clock = clock
        self.sleep = sleep
        self.running = running
        self.known: dict[str, str] = {}
        self.applied_ns = 0          # when the last re-apply started (its listing is newer)
        self.reapplied = 0
        self.errors = 0
        self.connections = 0

    def expired(self) -> bool:
        return self.deadline is not None and self.clock() >= self.deadline

    def apply(self, why: tuple[str, str, str] | None, event_ns: int | None = None) -> bool:
        """One re-apply; False when the watcher must end (blackout released)."""
        started = int(self.clock() * 1e9)
        try:
            result, seen = self.reapply()
        except Released:
            self.log(syslog.LOG_INFO, 'blackout %s is no longer recorded on this host: hold ends' % self.name)
            return False
        except NothingRunning:
            self.log(syslog.LOG_INFO, 'no container of %s runs now; its rules are kept' % self.name)
            self.applied_ns = started
            return True
        self.applied_ns = started
        self.known = dict(seen)
        if result.get('changed'):
            self.reapplied += 1
            message = describe_apply(self.name, result, why)
            lag = None if event_ns is None else round((self.clock() * 1e9 - event_ns) / 1e6, 1)
            if lag is not None:
                message += ' (%s ms after the event)' % lag
            self.log(syslog.LOG_NOTICE, message)
            self.note({'reapplied': self.reapplied, 'last': {
                'at': dt.datetime.now(dt.timezone.utc).strftime('%Y-%m-%dT%H:%M:%S.%fZ'),
                'message': message, 'lag_ms': lag}})
        return True

    def run(self) -> str:
        """Until the deadline or the blackout's release; returns why it ended."""
        backoff = BACKOFF_MIN
        outage = False
        while not self.expired():
            stream: t.Any = None
            try:
                stream = self.open_stream()
                # Events may have been missed before (re)connecting: reconcile once.
                if not self.apply(None):
                    return 'released'
            except (OSError, DockerApiError, BlackoutError) as exc:
                if stream is not None and hasattr(stream, 'close'):
                    stream.close()
                self.errors += 1
                if not outage:
                    self.log(syslog.LOG_WARNING, 'hold of %s: %s; retrying' % (self.name, exc))
                outage = True
                self.sleep(min(backoff, max(0.0, (self.deadline or 1e18) - self.clock())))
                backoff = min(backoff * 2, BACKOFF_MAX)
                continue
            self.connections += 1
            if self.connections > 1:
                self.note({'connections': self.connections})
            if outage:
                self.log(syslog.LOG_NOTICE, 'hold of %s: engine reachable again' % self.name)
            outage, backoff = False, BACKOFF_MIN
            try:
                for event in stream:
                    if self.expired():
                        break
                    why = trigger(event, self.selector, self.known)
                    if why is None:
                        continue
                    event_ns = event.get('timeNano') if isinstance(event.get('timeNano'), int) else None
                    if event_ns is not None and event_ns < self.applied_ns:
                        continue  # the last re-apply listed the containers after this event
                    if why[0] in NETWORK_ACTIONS and not self.running(why[1]):
                        continue  # a starting container connects first: its start event follows
                    if not self.apply(why, event_ns):
                        return 'released'
            except (OSError, DockerApiError, BlackoutError) as exc:
                self.errors += 1
                self.log(syslog.LOG_WARNING, 'hold of %s: %s; reconnecting' % (self.name, exc))
                self.sleep(backoff)
                backoff = min(backoff * 2, BACKOFF_MAX)
            finally:
                close = getattr(stream, 'close', None)
                if close is not None:
                    close()
        return 'expired'


# ---------------------------------------------------------------------------- the daemon

def _syslog(priority: int, message: str) -> None:
    try:
        syslog.syslog(priority, message)
    except OSError:
        pass


class _Daemon:
    """Signals of the detached watcher: SIGTERM (stop) and SIGALRM (deadline, record check) end it
    at once while it waits on the engine, after the current re-apply otherwise."""

    def __init__(self, path: str, lock_fd: int, name: str, deadline: float | None,
                 recorded: t.Callable[[], bool]) -> None:
        self.path = path
        self.lock_fd = lock_fd
        self.name = name
        self.deadline = deadline
        self.recorded = recorded
        self.busy = False
        self.pending: str | None = None
        self.info: dict[str, t.Any] = {}

    def write(self, extra: dict[str, t.Any]) -> None:
        self.info.update(extra)
        data = json.dumps(self.info, sort_keys=True).encode('utf-8')
        os.lseek(self.lock_fd, 0, os.SEEK_SET)
        os.ftruncate(self.lock_fd, 0)
        os.write(self.lock_fd, data)

    def end(self, why: str) -> t.NoReturn:
        _syslog(syslog.LOG_NOTICE, 'hold of %s ends: %s' % (self.name, why))
        if why != 'error':
            try:
                os.unlink(self.path)
            except OSError:
                pass
        os._exit(0 if why != 'error' else 1)  # never the module's atexit handlers

    def arm(self) -> None:
        delay = TICK if self.deadline is None else max(0.01, min(TICK, self.deadline - time.time()))
        signal.setitimer(signal.ITIMER_REAL, delay)

    def on_signal(self, signum: int, _frame: t.Any) -> None:
        if signum == signal.SIGTERM:
            why: str | None = 'stopped (SIGTERM)'
        elif self.deadline is not None and time.time() >= self.deadline:
            why = 'the blackout expired'
        elif not self.busy and not self.recorded():
            why = 'the blackout is no longer recorded'
        else:
            why = None
            self.arm()
        if why is not None:
            if self.busy:
                self.pending = why
            else:
                self.end(why)

    def guard(self, func: t.Callable[[], t.Any]) -> t.Any:
        self.busy = True
        try:
            return func()
        finally:
            self.busy = False
            if self.pending:
                self.end(self.pending)


def _recorded(module: t.Any, name: str) -> bool:
    try:
        manager = HoldManager(QuietModule(module, dict(module.params), _syslog))
        manager.engine_info()  # the engine does not answer: the record's section is unsure, keep holding
        with manager.state_record() as record:
            return name in record.find(_state.netns_id())['blackouts']
    except Exception:  # pylint: disable=broad-except
        return True  # unsure: keep holding; the deadline and the restore still end it


def daemon_main(module: t.Any, name: str, params: dict[str, t.Any], deadline: float | None,
                path: str, ready: int) -> t.NoReturn:
    """In the detached grandchild: take the pid file's lock, tell the module, watch."""
    os.chdir('/')
    os.umask(0o022)
    try:  # `pgrep -x netfence-hold` finds it (its arguments stay the module's)
        with open('/proc/self/comm', 'w', encoding='ascii') as comm:
            comm.write(IDENT)
    except OSError:
        pass
    null = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(null, fd)
    os.makedirs(os.path.dirname(path), mode=0o700, exist_ok=True)
    lock_fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.write(ready, b'busy\n')
        os._exit(0)
    pid = os.getpid()
    daemon = _Daemon(path, lock_fd, name, deadline, lambda: _recorded(module, name))
    daemon.write({'pid': pid, 'starttime': proc_starttime(pid), 'blackout': name,
                  'docker_host': docker_host_of(params), 'reapplied': 0,
                  'deadline': None if deadline is None else dt.datetime.fromtimestamp(
                      deadline, dt.timezone.utc).strftime('%Y-%m-%dT%H:%M:%SZ'),
                  'started': dt.datetime.now(dt.timezone.utc).strftime('%Y-%m-%dT%H:%M:%SZ')})
    os.write(ready, b'ok %d\n' % pid)
    keep = sorted({lock_fd, 0, 1, 2})
    low = 0
    for fd in keep + [65536]:
        if fd > low:
            os.closerange(low, fd)
        low = fd + 1
    syslog.openlog(IDENT, syslog.LOG_PID, syslog.LOG_DAEMON)
    for sig in (signal.SIGHUP, signal.SIGINT, signal.SIGPIPE):
        signal.signal(sig, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, daemon.on_signal)
    signal.signal(signal.SIGALRM, daemon.on_signal)
    daemon.arm()
    client = EngineClient(params.get('docker_host') or os.environ.get('DOCKER_HOST') or None)
    selector = selector_of(params)

    def reapply() -> tuple[dict[str, t.Any], dict[str, str]]:
        def once() -> tuple[dict[str, t.Any], dict[str, str]]:
            manager = HoldManager(QuietModule(module, dict(params), _syslog))
            manager.seen = {}
            return manager.run(), manager.seen
        return daemon.guard(once)

    watcher = Watcher(name, selector, deadline, reapply, lambda: open_events(client), _syslog,
                      note=daemon.write, running=lambda cid: container_running(client, cid))
    _syslog(syslog.LOG_NOTICE, 'holding %s (deadline %s)' % (name, daemon.info.get('deadline') or 'none'))
    try:
        why = watcher.run()
    except Exception as exc:  # pylint: disable=broad-except
        _syslog(syslog.LOG_ERR, 'hold of %s failed: %s: %s' % (name, exc.__class__.__name__, exc))
        daemon.end('error')
    daemon.end('the blackout expired' if why == 'expired' else 'the blackout is no longer recorded')
