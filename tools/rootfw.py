"""Snapshot / compare the firewall of the machine's own (root) network namespace.

Every rule the tests or the demo create must live inside a lab namespace; this tool proves
it: `snapshot FILE` before, `diff FILE` after (exit 1 and the difference when it changed).
Counters are stripped, so only rules and chains count.
"""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys

COMMANDS = (
    ('iptables-nft', ['iptables-nft-save']),
    ('ip6tables-nft', ['ip6tables-nft-save']),
    ('iptables-legacy', ['iptables-legacy-save']),
    ('ip6tables-legacy', ['ip6tables-legacy-save']),
    ('nft', ['nft', 'list', 'ruleset']),
)
_COUNTERS = re.compile(r'\[\d+:\d+\]')
_NFT_COUNTER = re.compile(r'counter packets \d+ bytes \d+')


def in_root_netns() -> bool:
    """True when this process shares PID 1's network namespace (assumed when PID 1 is hidden)."""
    try:
        return os.readlink('/proc/self/ns/net') == os.readlink('/proc/1/ns/net')
    except PermissionError:
        return True


def snapshot() -> str:
    """The root namespace's firewall as text, counters and comment lines stripped."""
    if not in_root_netns():
        raise SystemExit('rootfw: not in the root network namespace')
    parts = []
    env = dict(os.environ, LANG='C', LC_ALL='C')
    for label, argv in COMMANDS:
        if shutil.which(argv[0]) is None:
            continue
        proc = subprocess.run(argv, capture_output=True, text=True, env=env, check=False)
        lines = []
        for line in proc.stdout.splitlines():
            if line.startswith('#'):
                continue
            line = _NFT_COUNTER.sub('counter', _COUNTERS.sub('', line)).rstrip()
            lines.append(line)
        parts.append(f'== {label} (rc={proc.returncode})\n' + '\n'.join(lines))
    return '\n'.join(parts) + '\n'


def main(argv: list[str]) -> int:
    if len(argv) != 2 or argv[0] not in ('snapshot', 'diff'):
        print('usage: rootfw.py snapshot|diff FILE', file=sys.stderr)
        return 2
    action, path = argv
    now = snapshot()
    if action == 'snapshot':
        with open(path, 'w', encoding='utf-8') as fh:
            fh.write(now)
        return 0
    with open(path, encoding='utf-8') as fh:
        before = fh.read()
    if before == now:
        print('root namespace firewall unchanged')
        return 0
    import difflib  # pylint: disable=import-outside-toplevel
    sys.stdout.writelines(difflib.unified_diff(before.splitlines(True), now.splitlines(True),
                                               'before', 'after'))
    return 1


if __name__ == '__main__':
    sys.exit(main(sys.argv[1:]))
