"""Launcher and zombie reaper of the netfence test lab (stdlib only).

``python3 -I netfence_lab_reaper.py FIFO PIDFILE`` becomes a child subreaper,
reads one JSON request per line from FIFO ``{"argv", "env", "log"}`` and starts
each command in its own session with stdin from /dev/null and output to
``log``.  Every descendant that exits (including daemons that double-fork,
such as containerd shims) is reaped here, so a PID 1 that does not reap
orphans does not collect the lab's zombies.  Exits on SIGTERM.
"""

import ctypes
import json
import os
import select
import signal
import subprocess
import sys

PR_SET_CHILD_SUBREAPER = 36


def _reap():
    while True:
        try:
            pid, _status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return


def _launch(request):
    with open(request['log'], 'ab') as log, open(os.devnull, 'rb') as null:
        # Popen objects are dropped on purpose: _reap() collects every child.
        subprocess.Popen(  # pylint: disable=consider-using-with
            request['argv'], stdin=null, stdout=log, stderr=log, env=request.get('env'),
            start_new_session=True, close_fds=True)


def main(argv):
    """Serve launch requests until SIGTERM."""
    if len(argv) != 3:
        sys.stderr.write('usage: netfence_lab_reaper.py FIFO PIDFILE\n')
        return 2
    fifo, pidfile = argv[1], argv[2]
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0:
        sys.stderr.write('prctl(PR_SET_CHILD_SUBREAPER) failed\n')
    running = [True]

    def stop(_signum, _frame):
        running[0] = False

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    if not os.path.exists(fifo):
        os.mkfifo(fifo, 0o600)
    fd = os.open(fifo, os.O_RDWR | os.O_NONBLOCK)
    with open(pidfile, 'w', encoding='ascii') as handle:
        handle.write(f'{os.getpid()}\n')
    buf = b''
    while running[0]:
        try:
            readable, _w, _x = select.select([fd], [], [], 0.5)
        except InterruptedError:
            readable = []
        if readable:
            try:
                buf += os.read(fd, 65536)
            except BlockingIOError:
                pass
            while b'\n' in buf:
                line, buf = buf.split(b'\n', 1)
                try:
                    _launch(json.loads(line))
                except (OSError, ValueError, KeyError) as exc:
                    sys.stderr.write(f'launch failed: {exc!r}\n')
        _reap()
    os.close(fd)
    _reap()
    return 0


if __name__ == '__main__':
    sys.exit(main(sys.argv))
