"""Time inside an Ansible module: run a real AnsiballZ payload, timing only the module's own part.

    /usr/bin/python3 inmodule_timer.py /path/to/AnsiballZ_blackout.py

Used by bench/run.py (section 6) on a lab host, inside the host's network namespace, with the
host's interpreter. The payload runs unchanged, as `python3 AnsiballZ_x.py` would run it: its
wrapper (`_ansiballz_main`) extracts the embedded zip, puts it first on sys.path, imports
`ansible.module_utils._internal._ansiballz._loader` (and with it `ansible.module_utils.basic`,
from the payload's zip), and `_loader._run_module` sets the module's arguments and calls
`runpy.run_module(<module fqn>, run_name='__main__')`. That call imports the module's code (its
own module_utils too) and runs it as a script: `main()` until `exit_json()` / `fail_json()`
prints the result and raises SystemExit.

This driver wraps `runpy.run_module` (before the payload runs; `_loader` looks the function up on
the shared `runpy` module at call time) and times that one call for the module's fqn:

* start: the call begins. Python's start, the wrapper, the zip, `ansible.module_utils.basic`
  and the arguments are done, which every module pays (ping too);
* end: the SystemExit of `exit_json()` leaves it, after the result was printed.

It writes one line to stderr, after the module's own output:

    NETFENCE_INMODULE {"fqn": ..., "wall": s, "cpu": s, "cpu_children": s, "before": s}

`wall` is the time inside the module (perf_counter); `cpu` its user+sys time, `cpu_children`
that of the subprocesses it waited for (iptables-*, nft); `before` the time from this driver's
first line to the start (the wrapper, the zip and the imports, without Python's own start).
The module's stdout (its JSON result) and exit code are passed through unchanged.
"""

import json
import resource
import runpy
import sys
import time

_T_DRIVER = time.perf_counter()
MARKER = 'NETFENCE_INMODULE '


def _cpu_self() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _cpu_children() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def main() -> None:
    if len(sys.argv) != 2:
        sys.exit('usage: inmodule_timer.py AnsiballZ_x.py')
    payload = sys.argv[1]
    record: dict = {}
    original = runpy.run_module

    def timed_run_module(mod_name, *args, **kwargs):
        if record:                       # only the first (outermost) call: the module itself
            return original(mod_name, *args, **kwargs)
        record['fqn'] = mod_name
        start, cpu0, child0 = time.perf_counter(), _cpu_self(), _cpu_children()
        record['before'] = start - _T_DRIVER
        try:
            return original(mod_name, *args, **kwargs)
        finally:
            end, cpu1, child1 = time.perf_counter(), _cpu_self(), _cpu_children()
            record.update(wall=end - start, cpu=cpu1 - cpu0, cpu_children=child1 - child0)

    runpy.run_module = timed_run_module
    # As `python3 AnsiballZ_x.py`: argv of length 1 (2 would be the wrapper's debug mode),
    # __main__.__file__ the payload (the wrapper strips its directory from sys.path).
    sys.argv = [payload]
    try:
        runpy.run_path(payload, run_name='__main__')
    finally:
        sys.stdout.flush()
        if record.get('wall') is not None:
            sys.stderr.write('\n' + MARKER + json.dumps(record) + '\n')
            sys.stderr.flush()


if __name__ == '__main__':
    main()
