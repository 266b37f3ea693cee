"""Stand-in for the get-pip script ansible-test downloads (this machine cannot reach that host).

ansible-test runs it as ``python get_pip.py <pip requirement> [--no-setuptools] [--no-wheel]``
inside a fresh virtualenv: bootstrap pip with ensurepip, then let pip install what was asked.
"""
from __future__ import annotations

import ensurepip
import os
import subprocess
import sys


def main() -> int:
    ensurepip.bootstrap(upgrade=True)
    args = [a for a in sys.argv[1:] if a not in ('--no-setuptools', '--no-wheel')]
    if not args:
        return 0
    cmd = [sys.executable, '-m', 'pip', 'install', '--disable-pip-version-check']
    cert = '/etc/ssl/certs/ca-certificates.crt'
    if os.path.exists(cert):
        cmd += ['--cert', cert]
    return subprocess.call(cmd + args)


if __name__ == '__main__':
    sys.exit(main())
