"""hold (issue 16): event filtering, the watch loop and the watcher's life-cycle bookkeeping, with fakes."""
from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
import time

import pytest

from ansible_collections.netfence.docker.plugins.module_utils import _hold, _hold_watcher
from ansible_collections.netfence.docker.plugins.module_utils._docker_api import DockerApiError

CID = 'a' * 64
OTHER = 'b' * 64
SERVICE = {'service': 'memcached', 'project': None, 'names': None, 'labels': None}


def container_event(action='start', cid=CID, name='lab-memcached-2', service='memcached', project='lab',
                    extra=None, ns=1000):
    attrs = {'name': name, 'image': 'memcached:1', 'com.docker.compose.service': service,
             'com.docker.compose.project': project}
    attrs.update(extra or {})
    return {'Type': 'container', 'Action': action, 'Actor': {'ID': cid, 'Attributes': attrs}, 'timeNano': ns,
            'status': action, 'id': cid}


def network_event(action='connect', cid=CID, ns=1000):
    return {'Type': 'network', 'Action': action, 'Actor': {'ID': 'n' * 64, 'Attributes': {
        'container': cid, 'name': 'lab_front', 'type': 'bridge'}}, 'timeNano': ns}


# ---------------------------------------------------------------------------- filtering

def test_start_of_a_replica_of_the_service_triggers():
    assert _hold_watcher.trigger(container_event(), SERVICE, {}) == ('start', CID, 'lab-memcached-2')


def test_container_named_like_the_service_triggers():
    event = container_event(name='memcached', service='other')
    assert _hold_watcher.trigger(event, SERVICE, {}) == ('start', CID, 'memcached')


@pytest.mark.parametrize('event', [
    container_event(service='bystander', name='lab-bystander-1'),
    container_event(action='die'),
    container_event(action='restart'),   # its start came first
    container_event(action='exec_start: sh'),
    network_event(cid=OTHER),            # not a container of the blackout
    {'Type': 'image', 'Action': 'pull'},
    'garbage', None, {'Type': 'container', 'Action': 'start', 'Actor': None},
])
def test_other_events_do_not_trigger(event):
    assert _hold_watcher.trigger(event, SERVICE, {CID: 'lab-memcached-2'}) is None


def test_project_narrows():
    sel = dict(SERVICE, project='shop')
    assert _hold_watcher.trigger(container_event(project='lab'), sel, {}) is None
    assert _hold_watcher.trigger(container_event(project='shop'), sel, {}) == ('start', CID, 'lab-memcached-2')


def test_labels_and_names_selectors():
    labels = {'service': None, 'project': None, 'names': None, 'labels': {'tier': 'cache'}}
    assert _hold_watcher.trigger(container_event(extra={'tier': 'cache'}), labels, {})
    assert _hold_watcher.trigger(container_event(extra={'tier': 'web'}), labels, {}) is None
    names = {'service': None, 'project': None, 'names': ['lab-memcached-2'], 'labels': None}
    assert _hold_watcher.trigger(container_event(), names, {})  # recreated: same name, new id
    assert _hold_watcher.trigger(container_event(name='lab-memcached-3'), names, {}) is None


def test_network_events_count_for_known_containers():
    known = {CID: 'lab-memcached-2'}
    assert _hold_watcher.trigger(network_event('connect'), SERVICE, known) == ('connect', CID, 'lab-memcached-2')
    assert _hold_watcher.trigger(network_event('disconnect'), SERVICE, known) == ('disconnect', CID, 'lab-memcached-2')
    assert _hold_watcher.trigger(network_event('connect'), SERVICE, {}) is None


def test_events_query_filters_server_side():
    filters = json.loads(_hold_watcher.events_query()['filters'])
    assert filters == {'type': ['container', 'network'], 'event': ['start', 'connect', 'disconnect']}


def test_event_lines_bounded_and_tolerant(monkeypatch):
    monkeypatch.setattr(_hold_watcher, 'MAX_LINE', 64)
    data = (json.dumps({'a': 1}) + '\n' + 'x' * 200 + '\n' + 'not json\n' + json.dumps({'b': 2}) + '\n').encode()
    buf = io.BytesIO(data)
    seen_limits = []

    def read(limit):
        seen_limits.append(limit)
        return buf.readline(limit)
    assert list(_hold_watcher.event_lines(read)) == [{'a': 1}, {'b': 2}]
    assert set(seen_limits) == {64}


# ---------------------------------------------------------------------------- the watch loop

class Fakes:
    """A scripted engine: each connection yields the given events or raises."""

    def __init__(self, connections, results=None, now=100.0):
        self.connections = list(connections)
        self.results = list(results or [])
        self.applied = []
        self.logs = []
        self.slept = []
        self.now = now
        self.notes = []

    def open_stream(self):
        if not self.connections:
            self.now = 1e12  # the deadline passes: the loop ends
            raise ConnectionRefusedError('no more')
        item = self.connections.pop(0)
        if isinstance(item, Exception):
            raise item
        return iter(item)

    def reapply(self):
        self.applied.append(self.now)
        self.now += 0.1
        if self.results:
            item = self.results.pop(0)
            if isinstance(item, Exception):
                raise item
            return item
        return {'changed': False}, {CID: 'lab-memcached-2'}

    def watcher(self, deadline=1e9, running=lambda _cid: True):
        return _hold_watcher.Watcher('memcached', SERVICE, deadline, self.reapply, self.open_stream,
                                     lambda prio, msg: self.logs.append((prio, msg)), note=self.notes.append,
                                     clock=lambda: self.now, sleep=self.slept.append, running=running)


def changed(cid=CID, addr='172.18.0.7'):
    return ({'changed': True, 'added': {'ipv4': ['x'] * 6}, 'removed': {'ipv4': ['y'] * 6},
             'containers': [{'id': cid, 'name': 'lab-memcached-2',
                             'networks': {'lab_front': {'ipv4': addr, 'ipv6': None}}}]},
            {cid: 'lab-memcached-2'})


def test_reconciles_on_connect_then_applies_per_relevant_event():
    ns = int(200e9)
    fakes = Fakes([[container_event(service='bystander', ns=ns), container_event(ns=ns)]],
                  results=[({'changed': False}, {}), changed()])
    assert fakes.watcher().run() == 'expired'
    assert len(fakes.applied) == 2  # the reconcile, then the replica's start
    (note,) = fakes.notes
    assert note['reapplied'] == 1
    assert note['last']['message'].startswith(
        're-applied memcached for lab-memcached-2 (172.18.0.7) after start: +6 -6 rules')


def test_events_older_than_the_last_listing_are_skipped():
    fakes = Fakes([[container_event(ns=int(50e9)), container_event(ns=int(101e9))]])
    fakes.watcher().run()
    assert len(fakes.applied) == 2  # reconcile at t=100 covers the event of t=50, not the one of t=101


def test_network_connect_of_a_container_not_running_waits_for_its_start():
    fakes = Fakes([[network_event(ns=int(200e9)), container_event(ns=int(201e9))]])
    fakes.watcher(running=lambda _cid: False).run()
    assert len(fakes.applied) == 2  # reconcile + the start; not the connect


def test_nothing_running_keeps_watching_and_released_ends():
    fakes = Fakes([[container_event(ns=int(200e9)), container_event(ns=int(300e9))]],
                  results=[({'changed': False}, {}), _hold_watcher.NothingRunning('memcached'), _hold_watcher.Released('memcached')])
    assert fakes.watcher().run() == 'released'
    assert any('rules are kept' in msg for _p, msg in fakes.logs)
    assert any('no longer recorded' in msg for _p, msg in fakes.logs)


def test_engine_restart_reconnects_with_backoff_and_reconciles():
    fakes = Fakes([[], FileNotFoundError('socket gone'), ConnectionRefusedError('refused'),
                   DockerApiError('HTTP 500'), [container_event(ns=int(500e9))]],
                  results=[({'changed': False}, {}), ({'changed': False}, {}), changed()])
    assert fakes.watcher().run() == 'expired'
    assert fakes.slept[:3] == [0.2, 0.4, 0.8]  # the outage; the last entry: the final refused connection
    assert len(fakes.applied) == 3  # reconcile, reconcile after reconnecting, the start
    warnings = [m for _p, m in fakes.logs if 'retrying' in m]
    assert len(warnings) == 2  # once per outage, not per attempt
    assert any('reachable again' in m for _p, m in fakes.logs)
    assert {'connections': 2} in fakes.notes


def test_backoff_is_capped_and_stops_at_the_deadline():
    fakes = Fakes([ConnectionRefusedError('x')] * 12)
    watcher = fakes.watcher(deadline=1e11)
    assert watcher.run() == 'expired'
    assert max(fakes.slept) == _hold_watcher.BACKOFF_MAX
    assert not fakes.applied


def test_expired_watcher_does_not_apply():
    fakes = Fakes([[container_event(ns=int(200e9))]])
    assert fakes.watcher(deadline=50.0).run() == 'expired'
    assert not fakes.applied


def test_watcher_params_pin_the_deadline():
    params = {'service': 'memcached', 'state': 'present', 'missing': 'fail', 'expires': '30m', 'verify': True,
              'verify_addresses': ['10.0.0.1'], 'hold': True}
    out = _hold.watcher_params(params, '2026-12-02T12:00:00Z')
    assert out['expires'] == '2026-12-02T12:00:00Z' and out['missing'] == 'ignore'
    assert out['verify'] is False and out['hold'] is False and params['expires'] == '30m'
    assert out['lock_timeout'] < _hold.STOP_WAIT and out['rollback'] is None


# ---------------------------------------------------------------------------- pid file life cycle

HOLDER = r'''
import fcntl, json, os, sys, time
path = sys.argv[1]
fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
fcntl.flock(fd, fcntl.LOCK_EX)
st = open('/proc/self/stat').read().rsplit(')', 1)[1].split()[19]
os.write(fd, json.dumps({'pid': os.getpid(), 'starttime': sys.argv[2] if len(sys.argv) > 2 else st,
                         'blackout': 'memcached'}).encode())
print('ready', flush=True)
time.sleep(60)
'''


@pytest.fixture()
def state_dir(tmp_path, monkeypatch):
    monkeypatch.setenv('NETFENCE_STATE_FILE', str(tmp_path / 'blackouts.json'))
    return tmp_path


def holder(path, starttime=None):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    proc = subprocess.Popen([sys.executable, '-c', HOLDER, path] + ([starttime] if starttime else []),
                            stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == 'ready'
    return proc


def test_pid_path_per_blackout_and_engine(state_dir):
    a = _hold.pid_path('lab/memcached', 'unix:///var/run/docker.sock')
    assert os.path.dirname(a) == str(state_dir / 'hold')
    assert os.path.basename(a).startswith('lab%2Fmemcached.') and a.endswith('.pid')
    assert a != _hold.pid_path('lab/memcached', 'unix:///run/other.sock')
    assert a != _hold.pid_path('memcached', 'unix:///var/run/docker.sock')


def test_status_and_stop_of_a_running_watcher(state_dir):
    path = _hold.pid_path('memcached', 'unix:///var/run/docker.sock')
    assert _hold.status(path) == {'enabled': False, 'running': False, 'pid': None}
    proc = holder(path)
    try:
        assert _hold.status(path) == {'enabled': True, 'running': True, 'pid': proc.pid}
        assert _hold.stop(path, wait=5) is True
        assert proc.wait(timeout=5) == -signal.SIGTERM
        assert not os.path.exists(path)
    finally:
        proc.kill()
        proc.wait()


def test_stale_pid_file_is_enabled_not_running_and_removed_without_killing(state_dir):
    path = _hold.pid_path('memcached', 'unix:///var/run/docker.sock')
    os.makedirs(os.path.dirname(path))
    with open(path, 'w', encoding='utf-8') as handle:  # a watcher that died: no lock; its pid reused by us
        json.dump({'pid': os.getpid(), 'starttime': _hold.proc_starttime(os.getpid())}, handle)
    assert _hold.status(path) == {'enabled': True, 'running': False, 'pid': None}
    assert _hold.stop(path) is False  # nothing killed (we are alive), the file removed
    assert not os.path.exists(path)


def test_reused_pid_is_never_signalled(state_dir):
    path = _hold.pid_path('memcached', 'unix:///var/run/docker.sock')
    proc = holder(path, starttime='1')  # the recorded start time is not the process's
    try:
        with pytest.raises(_hold.HoldError, match='did not stop'):
            _hold.stop(path, wait=0.2)
        assert proc.poll() is None
    finally:
        proc.kill()
        proc.wait()


class Named:
    @staticmethod
    def name():
        return 'memcached'


class FakeModule:
    def __init__(self, **params):
        self.params = dict({'service': 'memcached', 'state': 'present', 'hold': True, 'docker_host': None}, **params)
        self.check_mode = False


def result(**extra):
    return dict({'changed': False, 'blackout': 'memcached', 'rules': {'ipv4': ['-A DOCKER-USER …'], 'ipv6': []},
                 'expires': None}, **extra)


def test_after_run_starts_a_missing_watcher_once(state_dir, monkeypatch):
    started = []
    monkeypatch.setattr(_hold, 'start', lambda module, name, expires: started.append((name, expires)) or 4242)
    res = _hold.after_run(FakeModule(), result())
    assert res['changed'] is True and started == [('memcached', None)]
    assert res['hold'] == {'enabled': True, 'running': True, 'pid': 4242, 'started': True, 'stopped': False}
    path = _hold.pid_path('memcached', 'unix:///var/run/docker.sock')
    proc = holder(path)
    try:
        res = _hold.after_run(FakeModule(), result())
        assert res['changed'] is False and len(started) == 1
        assert res['hold']['running'] is True and res['hold']['pid'] == proc.pid
    finally:
        proc.kill()
        proc.wait()


def test_after_run_check_mode_and_expired_and_no_rules(state_dir, monkeypatch):
    monkeypatch.setattr(_hold, 'start', lambda *a: pytest.fail('started'))
    module = FakeModule()
    module.check_mode = True
    res = _hold.after_run(module, result())
    assert res['changed'] is True and res['hold']['started'] is True and res['hold']['running'] is False
    res = _hold.after_run(FakeModule(), result(expires='2000-01-01T00:00:00Z'))
    assert res['changed'] is False and res['hold']['enabled'] is False
    res = _hold.after_run(FakeModule(), result(rules={'ipv4': [], 'ipv6': []}))
    assert res['changed'] is False and res['hold']['enabled'] is False


def test_restore_and_hold_false_stop_the_watcher(state_dir):
    path = _hold.pid_path('memcached', 'unix:///var/run/docker.sock')
    proc = holder(path)
    try:
        assert _hold.before_run(FakeModule(state='absent'), Named()) is True
        assert proc.wait(timeout=5) == -signal.SIGTERM
        res = _hold.after_run(FakeModule(state='absent'), result(rules={'ipv4': [], 'ipv6': []}), True)
        assert res['changed'] is True and res['hold']['stopped'] is True
    finally:
        proc.kill()
        proc.wait()
    proc = holder(path)
    try:
        res = _hold.after_run(FakeModule(hold=False), result())
        assert res['changed'] is True and res['hold']['stopped'] is True and not os.path.exists(path)
    finally:
        proc.kill()
        proc.wait()
    assert _hold.before_run(FakeModule(state='present'), Named()) is False


def test_rollback_to_nothing_stops_the_watcher_a_kept_blackout_keeps_it(state_dir, monkeypatch):
    path = _hold.pid_path('memcached', 'unix:///var/run/docker.sock')
    proc = holder(path)
    try:
        kept = FakeModule(service=None, rollback={'name': 'memcached', 'rules': [{'spec': 'x'}], 'record': {}})
        assert _hold.before_run(kept, Named()) is False and proc.poll() is None
        res = _hold.after_run(kept, result())
        assert res['changed'] is False and res['hold']['running'] is True and proc.poll() is None
        gone = FakeModule(service=None, rollback={'name': 'memcached', 'rules': [], 'record': None})
        assert _hold.before_run(gone, Named()) is True
        assert proc.wait(timeout=5) == -signal.SIGTERM
    finally:
        proc.kill()
        proc.wait()


def test_info_reports_the_hold(state_dir):
    assert _hold.info({}, 'memcached') == {'enabled': False, 'running': False, 'pid': None}


def test_daemon_signal_handling_defers_while_busy(tmp_path, monkeypatch):
    ended = []
    daemon = _hold_watcher._Daemon(str(tmp_path / 'x.pid'), os.open(str(tmp_path / 'x.pid'), os.O_RDWR | os.O_CREAT),
                                   'memcached', time.time() - 1, lambda: True)
    monkeypatch.setattr(daemon, 'end', ended.append)
    daemon.busy = True
    daemon.on_signal(signal.SIGALRM, None)
    assert daemon.pending == 'the blackout expired' and not ended
    daemon.busy = False
    daemon.on_signal(signal.SIGTERM, None)
    assert ended == ['stopped (SIGTERM)']
    gone = _hold_watcher._Daemon(daemon.path, daemon.lock_fd, 'memcached', None, lambda: False)
    monkeypatch.setattr(gone, 'end', ended.append)
    gone.on_signal(signal.SIGALRM, None)
    assert ended[-1] == 'the blackout is no longer recorded'
    signal.setitimer(signal.ITIMER_REAL, 0)


def test_hold_manager_checks_the_record_under_the_lock_and_needs_a_running_container(monkeypatch):
    from types import SimpleNamespace  # pylint: disable=import-outside-toplevel
    from ansible_collections.netfence.docker.plugins.module_utils import _manager  # pylint: disable=import-outside-toplevel
    manager = _hold_watcher.HoldManager.__new__(_hold_watcher.HoldManager)
    manager.params = {'service': 'memcached', 'project': None, 'containers': None, 'labels': None}
    monkeypatch.setattr(_manager.BlackoutManager, 'read', lambda self, name, need: SimpleNamespace(record=None))
    with pytest.raises(_hold_watcher.Released):
        manager.read('memcached', True)
    monkeypatch.setattr(_manager.BlackoutManager, 'read', lambda self, name, need: SimpleNamespace(record={}))
    assert manager.read('memcached', True).record == {}
    monkeypatch.setattr(_manager.BlackoutManager, 'selected', lambda self, name: [])
    monkeypatch.setattr(_hold_watcher.HoldManager, 'containers', lambda self: [])
    with pytest.raises(_hold_watcher.NothingRunning):
        manager.selected('memcached')


class _Module:
    check_mode = False

    def __init__(self, params):
        self.params = params


def test_the_panic_button_stops_every_watcher_of_its_engine_and_no_other(tmp_path, monkeypatch):
    """all: true lifts every blackout: each watcher of that engine is stopped first (it would put
    the rules back), watchers of another engine on the same machine are left alone."""
    monkeypatch.setenv('NETFENCE_STATE_FILE', str(tmp_path / 'blackouts.json'))
    os.makedirs(_hold.hold_dir())
    mine = [_hold.pid_path(n, 'unix:///var/run/docker.sock') for n in ('memcached', 'lab/web')]
    other = _hold.pid_path('memcached', 'unix:///run/other.sock')
    for path in mine + [other]:
        open(path, 'w', encoding='ascii').close()
    stopped = []
    monkeypatch.setattr(_hold, 'stop', lambda path: stopped.append(path) or True)
    module = _Module({'state': 'absent', 'all': True, 'docker_host': None, 'rollback': None})
    assert _hold.before_run(module, manager=None) is True
    assert sorted(stopped) == sorted(mine)
    result = _hold.after_run(module, {'changed': False}, True)
    assert result['changed'] is True and result['hold']['stopped'] is True and result['hold']['running'] is False


def test_the_panic_button_without_any_watcher_stops_nothing(tmp_path, monkeypatch):
    monkeypatch.setenv('NETFENCE_STATE_FILE', str(tmp_path / 'blackouts.json'))
    module = _Module({'state': 'absent', 'all': True, 'docker_host': None, 'rollback': None})
    assert _hold.before_run(module, manager=None) is False
    assert _hold.after_run(module, {'changed': False}, False)['changed'] is False


def test_a_restore_without_root_says_become_when_the_watcher_cannot_be_stopped(tmp_path, monkeypatch):
    """A watcher's pid file the user cannot read (not root): the become hint, not a raw traceback."""
    monkeypatch.setenv('NETFENCE_STATE_FILE', str(tmp_path / 'blackouts.json'))

    def denied(path):
        raise PermissionError(13, 'Permission denied', path)

    monkeypatch.setattr(_hold, 'stop', denied)

    class Manager:
        @staticmethod
        def name():
            return 'memcached'

    module = _Module({'state': 'absent', 'all': False, 'docker_host': None, 'rollback': None})
    with pytest.raises(_hold.BlackoutError) as caught:
        _hold.before_run(module, Manager())
    assert 'run the task with become: true' in str(caught.value), caught.value
