"""Small assertions shared by the integration tests (importable: pytest puts this folder on sys.path)."""
from __future__ import annotations

import re
import time

import pytest

SERIES_29 = ('29', '29+nft-backend')  # Docker 29 with its iptables (default) and nftables backends
QUIET_WAIT = 120.0  # seconds to wait for a lab host without netfence rules
_BO_RE = re.compile(r'"netfence bo=(\S+) ')


def blackout_of(line: str) -> str | None:
    """The blackout name in a saved rule line's netfence tag, or None for a foreign rule."""
    m = _BO_RE.search(line)
    return m.group(1) if m else None


def check_ok(result: dict, what: str) -> None:
    """Fail with the module's message (and the tail of ansible's stderr) unless the run succeeded."""
    assert not result.get('failed') and not result.get('unreachable'), \
        f'{what} failed: {result.get("msg")}\n{getattr(result, "stderr", "")[-2000:]}'


def wait_quiet(host, netfence_rules, timeout: float = QUIET_WAIT) -> None:
    """Wait until the host has no netfence rule (someone else may be using the same lab)."""
    deadline = time.monotonic() + timeout
    while True:
        rules = netfence_rules(host)
        if not rules:
            return
        if time.monotonic() > deadline:
            names = sorted({blackout_of(line) for _key, line in rules})
            pytest.fail(f'{host.name} still has netfence rules of blackouts {names} after {timeout:.0f} s: another '
                        'run (or a killed earlier run) uses this lab. Use an own lab instance '
                        '(NETFENCE_LAB=x) or remove them with state=absent.')
        time.sleep(2)


def held_host(lab_host, netfence_rules, restore):
    """The body of a module-scoped ``host`` fixture: wait until the host has no rule of ours,
    yield it, then ``restore(host)`` and check that no rule of ours is left."""
    wait_quiet(lab_host, netfence_rules)
    yield lab_host
    restore(lab_host)
    leftovers = netfence_rules(lab_host)
    assert not leftovers, f'netfence rules left on {lab_host.name}: {leftovers}'


def nft_canonical(lines: list[str]) -> list[str]:
    """An ``nft list ruleset`` listing with the order that means nothing taken out: tables sorted, and
    each table's chains (sets, maps, ...) sorted by name. The order of the rules in a chain is kept.
    (A chain deleted and created again, e.g. DOCKER-USER by a test, is listed last by nft.)"""
    tables: list[tuple[str, list[str]]] = []  # (header, lines)
    loose: list[str] = []
    blocks: list[list[str]] = []
    header = None
    for line in lines:
        if not line.strip():
            continue
        if header is None:
            if line.startswith('table ') and line.rstrip().endswith('{'):
                header, blocks = line, []
            else:
                loose.append(line)
        elif line == '}':
            tables.append((header, [ln for block in sorted(blocks, key=lambda b: b[0]) for ln in block]))
            header = None
        elif line.startswith('\t') and not line.startswith('\t\t') and line.rstrip().endswith('{'):
            blocks.append([line])
        elif blocks:
            blocks[-1].append(line)
        else:
            blocks.append([line])
    if header is not None:  # cut short: keep what was read as it came
        tables.append((header, [ln for block in blocks for ln in block]))
    return loose + [ln for head, body in sorted(tables) for ln in [head] + body + ['}']]


def snapshot_diff(before: dict, after: dict, indent: str = '', shown: int = 20) -> str:
    """Human-readable difference of two firewall snapshots ({key: lines}; '' when equal): per key the
    lines gone and new (at most ``shown`` of each), or that only their order changed."""
    out = []
    for key in sorted(set(before) | set(after)):
        b, a = before.get(key, []), after.get(key, [])
        if a != b:
            gone = [line for line in b if line not in a]
            new = [line for line in a if line not in b]
            out.append(f'{indent}{key}: -{len(gone)} +{len(new)} lines' + (' (order changed)' if not gone and not new else ''))
            out += [f'{indent}  - {line}' for line in gone[:shown]] + [f'{indent}  + {line}' for line in new[:shown]]
    return '\n'.join(out)
