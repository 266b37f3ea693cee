# -*- coding: utf-8 -*-
# Copyright (c) 2025, netfence.docker contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""iptables-save parsing, diffing by tag identity, restore payloads and the host firewall."""

from __future__ import annotations

import datetime as dt
import re
import shlex
import typing as t
from dataclasses import dataclass, field

from ansible_collections.netfence.docker.plugins.module_utils import _validate
from ansible_collections.netfence.docker.plugins.module_utils._planner import (
    DATESTOP_FORMAT,
    FAMILIES,
    Chains,
    IptablesRuleText,
    Rule,
    Tag,
    parse_tag,
    utc,
)

Runner = t.Callable[[t.List[str], t.Optional[str]], t.Tuple[int, str, str]]
VARIANTS = ('nft', 'legacy')
BINARY_NAMES = tuple(
    '%s%s-%s' % (prog, variant, action)
    for prog in ('iptables', 'ip6tables')
    for variant in ('', '-nft', '-legacy')
    for action in ('save', 'restore')
)
_COUNTERS_RE = re.compile(r'^\[\d+:\d+\]\s+')
_CHAIN_RE = re.compile(r'^:(\S+)\s+(\S+)(?:\s+\[\d+:\d+\])?\s*$')
_RULE_RE = re.compile(r'^-A\s+(\S+)(?:\s+(.*?))?\s*$')
_TAG_COMMENT_RE = re.compile(r'(?:^|\s)--comment "(netfence bo=[^"\\]*)"(?:\s|$)')


class FirewallError(Exception):
    """The host firewall could not be read, understood or changed."""


class DockerUserMissing(FirewallError):
    """No iptables variant holds Docker's DOCKER-USER chain (no Docker iptables rules here)."""


# ---------------------------------------------------------------------------
# Parsing
# ---------------------------------------------------------------------------

def parse_save(text: str) -> dict[str, dict[str, t.Any]]:
    """{table: {'chains': {name: policy or '-'}, 'rules': [(chain, spec)]}} from iptables-save output."""
    tables: dict[str, dict[str, t.Any]] = {}
    current: dict[str, t.Any] | None = None
    for lineno, raw in enumerate(text.splitlines(), 1):
        line = _COUNTERS_RE.sub('', raw.strip())
        if not line or line.startswith('#'):
            continue
        if line.startswith('*'):
            current = tables.setdefault(line[1:].strip(), {'chains': {}, 'rules': []})
        elif line == 'COMMIT':
            current = None
        elif current is None:
            raise FirewallError('iptables-save output line %d outside a table: %r' % (lineno, raw))
        elif line.startswith(':'):
            m = _CHAIN_RE.match(line)
            if not m:
                raise FirewallError('cannot parse chain line %d: %r' % (lineno, raw))
            current['chains'][m.group(1)] = m.group(2)
        elif line.startswith('-A'):
            m = _RULE_RE.match(line)
            if not m:
                raise FirewallError('cannot parse rule line %d: %r' % (lineno, raw))
            current['rules'].append((m.group(1), m.group(2) or ''))
        else:
            raise FirewallError('unexpected iptables-save line %d: %r' % (lineno, raw))
    return tables


def normalise(text: str) -> list[str]:
    """Comparable lines: no comments/counters, chains and rules sorted within each table."""
    out: list[str] = []
    for table, content in sorted(parse_save(text).items()):
        out.append('*' + table)
        out.extend(sorted(':%s %s' % item for item in content['chains'].items()))
        out.extend(sorted('-A %s %s' % rule for rule in content['rules']))
        out.append('COMMIT')
    return out


def _datestop(tokens: list[str]) -> dt.datetime | None:
    for i, tok in enumerate(tokens[:-1]):
        if tok == '--datestop':
            try:
                return dt.datetime.strptime(tokens[i + 1], DATESTOP_FORMAT).replace(tzinfo=dt.timezone.utc)
            except ValueError:
                return None
    return None


@dataclass(frozen=True)
class ExistingRule(IptablesRuleText):
    """A netfence rule found in iptables-save output (spec exactly as saved)."""

    family: str
    table: str
    chain: str
    spec: str
    tag: Tag
    datestop: dt.datetime | None

    @property
    def path(self) -> str:
        return self.tag.path

    def expired(self, now: dt.datetime) -> bool:
        return self.datestop is not None and self.datestop <= utc(now)


def tag_of(spec: str) -> Tag | None:
    """The netfence tag of a saved rule spec, or None (foreign / unparsable)."""
    if 'netfence bo=' not in spec:  # every tag has it: skip shlex on foreign rules (10k of them: 2 s)
        return None
    if spec.count('--comment') == 1:  # the usual case, without shlex (300 rules: 70 ms)
        m = _TAG_COMMENT_RE.search(spec)
        if m:
            return parse_tag(m.group(1))
    try:
        tokens = shlex.split(spec)
    except ValueError:
        return None
    comments = [tokens[i + 1] for i, tok in enumerate(tokens[:-1]) if tok == '--comment']
    if len(comments) != 1:
        return None
    return parse_tag(comments[0])


def netfence_rules(parsed: dict[str, dict[str, t.Any]], family: str) -> list[ExistingRule]:
    """Rules whose single comment parses as a netfence tag, in saved order."""
    found = []
    for table, content in parsed.items():
        for chain, spec in content['rules']:
            tag = tag_of(spec)
            if tag is None:
                continue
            found.append(ExistingRule(family=family, table=table, chain=chain, spec=spec, tag=tag,
                                      datestop=_datestop(shlex.split(spec)) if '--datestop' in spec else None))
    return found


def netfence_rules_in_save(text: str, family: str) -> list[ExistingRule]:
    """netfence_rules(parse_save(text)) parsing only the lines that can hold a tag (table, chain and
    COMMIT lines, rules with 'netfence bo='): foreign rules are skipped unparsed, however many."""
    keep = [line for line in text.splitlines()
            if 'netfence bo=' in line or not line.startswith('-A') and not line.startswith('[')]
    return netfence_rules(parse_save('\n'.join(keep) + '\n'), family)


def filter_section(text: str) -> str:
    """The *filter table of iptables-save output of every table ('' when it has none)."""
    out: list[str] = []
    inside = False
    for line in text.splitlines(True):
        stripped = line.strip()
        if stripped.startswith('*'):
            inside = stripped == '*filter'
        if inside:
            out.append(line)
            if stripped == 'COMMIT':
                inside = False
    return ''.join(out)


def oldest_since(existing: t.Iterable[ExistingRule], name: str) -> dt.datetime | None:
    """The ``since`` to reuse when re-planning blackout ``name`` (oldest on its live rules)."""
    values = [r.tag.since for r in existing if r.tag.bo == name]
    return min(values) if values else None


# ---------------------------------------------------------------------------
# Diff and payload
# ---------------------------------------------------------------------------

AnyRule = t.Union[Rule, ExistingRule]


def diff(
    existing: t.Sequence[ExistingRule],
    desired: t.Sequence[Rule],
    name: str,
    now: dt.datetime,
) -> tuple[list[Rule], list[ExistingRule]]:
    """(to_add, to_remove) by identity.

    to_remove: rules of blackout ``name`` not desired, expired rules of any blackout, duplicates.
    to_add: desired rules not present (expired ones are never added). When inserting at the top
    would not give the planned order in a chain, that chain's desired rules are all re-inserted.
    """
    now = utc(now)
    # A rule's identity renders (and re-validates) its tag: compute each one once (300 rules: 0.1 s).
    idents: dict[int, tuple[str, str, str, str]] = {id(r): r.identity for r in list(existing) + list(desired)}

    def ident(rule: AnyRule) -> tuple[str, str, str, str]:
        return idents[id(rule)]

    wanted = {ident(r) for r in desired}
    to_remove: list[ExistingRule] = []
    kept: dict[tuple[str, str, str, str], ExistingRule] = {}
    kept_order: list[ExistingRule] = []
    for rule in existing:
        if (rule.tag.bo == name and ident(rule) not in wanted) or rule.expired(now) or ident(rule) in kept:
            to_remove.append(rule)
        else:
            kept[ident(rule)] = rule
            kept_order.append(rule)
    live = [r for r in desired if not _rule_expired(r, now)]
    to_add = [r for r in live if ident(r) not in kept]
    # Per chain, inserting additions at the top gives [added..., kept...]; check that equals the plan.
    for key in sorted({(r.family, r.table, r.chain) for r in to_add}):
        planned = [r for r in live if (r.family, r.table, r.chain) == key]
        adding = {ident(r) for r in to_add}
        result = [ident(r) for r in planned if ident(r) in adding]
        result += [ident(r) for r in kept_order
                   if (r.family, r.table, r.chain) == key and ident(r) in wanted]
        if result != [ident(r) for r in planned]:
            for rule in kept_order:
                if (rule.family, rule.table, rule.chain) == key and ident(rule) in wanted and rule not in to_remove:
                    to_remove.append(rule)
                    to_add.append(next(r for r in planned if ident(r) == ident(rule)))
    order = {id(r): i for i, r in enumerate(desired)}
    to_add.sort(key=lambda r: order[id(r)])
    return to_add, to_remove


def _rule_expired(rule: Rule, now: dt.datetime) -> bool:
    if '--datestop' not in rule.spec:  # no expiry: no need to tokenise the rule
        return False
    stop = _datestop(shlex.split(rule.spec))
    return stop is not None and stop <= now


def restore_payload(to_add: t.Sequence[Rule], to_remove: t.Sequence[AnyRule], family: str) -> str:
    """iptables-restore --noflush input: deletions, then insertions at 1 in reverse planned order.

    Returns '' when there is nothing to do for ``family``. Raises ``RenderError`` (nothing
    written) when a line is not one tagged rule made of allowed tokens.
    """
    tables: dict[str, list[str]] = {}
    for rule in to_remove:
        if rule.family == family:
            tables.setdefault(rule.table, []).append('-D %s %s' % (rule.chain, rule.spec))
    for rule in reversed(list(to_add)):
        if rule.family == family:
            tables.setdefault(rule.table, []).append('-I %s 1 %s' % (rule.chain, rule.spec))
    out = []
    for table, lines in tables.items():
        out.append('*%s\n%sCOMMIT\n' % (table, ''.join(line + '\n' for line in lines)))
    text = ''.join(out)
    # Defence in depth: every line checked against closed character sets (RenderError otherwise);
    # the only newline in the payload is the line separator.
    for line in text[:-1].split('\n') if text else ():
        _validate.iptables_line(line)
    return text


# ---------------------------------------------------------------------------
# Host firewall
# ---------------------------------------------------------------------------

@dataclass(frozen=True)
class Detection:
    """Which iptables variant holds Docker's chains, and what IPv6 offers."""

    variant: str
    commands: dict[str, tuple[str, str]] = field(hash=False)  # family -> (save, restore)
    v6_forward: str | None
    notes: tuple[str, ...] = ()

    @property
    def chains(self) -> Chains:
        return Chains(forward={'ipv4': 'DOCKER-USER', 'ipv6': self.v6_forward},
                      families=tuple(f for f in FAMILIES if f in self.commands))


def _filter_has_docker_user(text: str) -> bool:
    """True when the filter table of iptables-save output (any tables) has a DOCKER-USER chain."""
    in_filter = False
    for line in text.splitlines():
        line = line.strip()
        if line.startswith('*'):
            in_filter = line == '*filter'
        elif in_filter and re.match(r':DOCKER-USER\s', line):
            return True
    return False


def _variant_of_version(text: str) -> str:
    if '(nf_tables)' in text:
        return 'nft'
    return 'legacy'  # '(legacy)', or iptables < 1.8 which has no nft variant


LEGACY_WARNING = '# Warning: iptables-legacy tables present'


def variant_of_save(text: str) -> str | None:
    """The variant that printed iptables-save output, when the output says so; None when unsure.

    iptables-nft-save (1.8.8 and later) writes ``# Generated by iptables-nft-save v1.8.9 (nf_tables)``,
    also when called as iptables-save; older ones name themselves ``iptables-nft-save`` only when
    called so. With no nft table it prints nothing, or ``# Warning: iptables-legacy tables present``
    (on stderr: give stdout, then stderr).
    iptables-legacy-save writes ``# Generated by iptables-save v1.8.9 on ...``, which is also what
    an older iptables-nft-save called as iptables-save writes: unsure, so is empty output.
    """
    for line in text.splitlines():
        line = line.strip()
        if not line.startswith('#'):
            if line:
                break  # the header comes first
            continue
        if line.startswith('# Generated by '):
            words = line.split()
            prog = words[3] if len(words) > 3 else ''
            if '(nf_tables)' in words or prog.endswith('-nft-save'):
                return 'nft'
            if '(legacy)' in words or prog.endswith('-legacy-save'):
                return 'legacy'
            return None
        if line.startswith(LEGACY_WARNING):
            return 'nft'  # only iptables-nft warns about the other variant
    return None


PROC_TABLES = {'iptables': '/proc/net/ip_tables_names', 'ip6tables': '/proc/net/ip6_tables_names'}


def read_proc_tables(path: str) -> list[str] | None:
    """Table names listed in /proc/net/ip(6)_tables_names of this network namespace: the tables
    iptables-legacy has here. None when the file cannot be read (module not loaded, not root)."""
    try:
        with open(path, encoding='ascii') as handle:
            return handle.read().split()
    except (OSError, ValueError):
        return None


class Firewall:
    """Reads and changes the filter table through injected ``run`` and binary paths.

    ``read_proc``: reads /proc/net/ip(6)_tables_names (list of names, None if unreadable). The
    legacy variant is not run to list its (no) rules when that lists no table and iptables-nft,
    run through ``run``, did not warn that legacy tables are present (the file is of this
    process's network namespace, ``run`` may run elsewhere; old iptables-nft do not warn).
    """

    def __init__(self, run: Runner, binaries: t.Mapping[str, str | None],
                 read_proc: t.Callable[[str], list[str] | None] | None = None) -> None:
        self.run = run
        self.binaries = {k: v for k, v in binaries.items() if v}
        self.read_proc = read_proc or read_proc_tables
        self.detection: Detection | None = None
        # What detect() already read, per family: the next save() returns it instead of reading again.
        self._read: dict[str, str] = {}

    def _default_variant(self, prog: str) -> str | None:
        path = self.binaries.get('%s-save' % prog)
        if not path:
            return None
        rc, out, err = self.run([path, '--version'], None)
        return _variant_of_version(out + err) if rc == 0 else None

    def _default_save(self, prog: str) -> tuple[str | None, dict[str, tuple[int, str, str]]]:
        """(default variant of ``prog``, {variant: (rc, out, err) of its save already run}).

        Runs the plain ``<prog>-save`` (the default variant): its output names its variant in most
        cases, and is then that variant's listing; else ``<prog>-save --version`` tells.
        """
        path = self.binaries.get('%s-save' % prog)
        if not path:
            return None, {}
        rc, out, err = self.run([path], None)
        # stdout's header first; an nft variant without tables warns about legacy ones on stderr
        variant = variant_of_save(out + '\n' + err) if rc == 0 else None
        if variant is None:
            variant = self._default_variant(prog)
        # Only a successful listing is kept: a failure is run again under the variant's own name,
        # so that the error names the same binary as ever.
        return variant, ({variant: (rc, out, err)} if variant is not None and rc == 0 else {})

    def _legacy_is_empty(self, prog: str, nft_save: tuple[int, str, str] | None) -> bool:
        """True when iptables-legacy has no table (its save would print nothing): ``nft_save``, what
        iptables-nft-save printed, does not warn of legacy tables, and /proc lists none."""
        if nft_save is None or nft_save[0] != 0 or LEGACY_WARNING in nft_save[1] or LEGACY_WARNING in nft_save[2]:
            return False
        return self.read_proc(PROC_TABLES[prog]) == []

    def _binary(self, prog: str, variant: str, action: str, default_variant: str | None) -> str | None:
        explicit = self.binaries.get('%s-%s-%s' % (prog, variant, action))
        if explicit:
            return explicit
        return self.binaries.get('%s-%s' % (prog, action)) if default_variant == variant else None

    def detect(self) -> Detection:
        """Pick the variant whose filter table has :DOCKER-USER; probe IPv6."""
        default, holders, outputs = self._holders()
        notes: list[str] = []
        if len(holders) == 1:
            variant = holders[0]
            if default is not None and variant != default:
                notes.append('DOCKER-USER is in iptables-%s while iptables defaults to %s: using %s'
                             % (variant, default, variant))
        else:
            variant = default or 'nft'
            notes.append('both iptables-nft and iptables-legacy hold DOCKER-USER: using %s (the default)' % variant)
        save4 = self._binary('iptables', variant, 'save', default)
        restore4 = self._binary('iptables', variant, 'restore', default)
        if not (save4 and restore4):
            raise FirewallError('iptables-%s-restore not found next to iptables-%s-save' % (variant, variant))
        commands = {'ipv4': (save4, restore4)}
        self._read = {'ipv4': filter_section(outputs[variant])} if variant in outputs else {}
        v6_forward = self._probe_ipv6(variant, commands, notes)
        self.detection = Detection(variant=variant, commands=commands, v6_forward=v6_forward, notes=tuple(notes))
        return self.detection

    def _holders(self) -> tuple[str | None, list[str], dict[str, str]]:
        """(default variant, variants whose filter table holds DOCKER-USER, their save output);
        DockerUserMissing when none does."""
        # No '-t filter' in these reads: with it, iptables-legacy-save instantiates the legacy
        # filter table in the network namespace when it is not there (a read that changes the firewall).
        default, already = self._default_save('iptables')
        holders: list[str] = []
        problems: list[str] = []
        outputs: dict[str, str] = {}
        for variant in VARIANTS:
            save = self._binary('iptables', variant, 'save', default)
            if not save:
                continue
            if variant in already:
                rc, out, err = already[variant]
            elif variant == 'legacy' and self._legacy_is_empty('iptables', already.get('nft')):
                continue  # no legacy table at all: nothing to read (and no DOCKER-USER)
            else:
                rc, out, err = self.run([save], None)
            if rc != 0:
                problems.append('%s failed (rc=%s): %s' % (save, rc, err.strip()))
            elif _filter_has_docker_user(out):
                holders.append(variant)
                outputs[variant] = out
        if not holders:
            hint = ' (%s)' % '; '.join(problems) if problems else ''
            if problems and all('Permission denied' in p or 'must be root' in p for p in problems):
                raise FirewallError('permission denied reading the firewall: iptables needs root, run the task '
                                    'with become: true' + hint)
            raise DockerUserMissing('DOCKER-USER chain not found: is Docker running with iptables enabled? '
                                    '(Docker\'s nftables firewall backend is not supported)' + hint)
        return default, holders, outputs

    def _probe_ipv6(self, variant: str, commands: dict[str, tuple[str, str]], notes: list[str]) -> str | None:
        """Add ip6tables of ``variant`` to ``commands`` when it works; its forward chain (None without)."""
        # ip6tables' default variant only matters when a variant's own binaries are missing.
        if self.binaries.get('ip6tables-%s-save' % variant) and self.binaries.get('ip6tables-%s-restore' % variant):
            default6 = None
        else:
            default6 = self._default_variant('ip6tables')
        save6 = self._binary('ip6tables', variant, 'save', default6)
        restore6 = self._binary('ip6tables', variant, 'restore', default6)
        if not (save6 and restore6):
            notes.append('IPv6 disabled: no ip6tables-%s save/restore binaries' % variant)
            return None
        rc, out, err = self.run([save6, '-t', 'filter'], None)
        if rc != 0:
            notes.append('IPv6 disabled: %s -t filter failed: %s' % (save6, err.strip()))
            return None
        commands['ipv6'] = (save6, restore6)
        self._read['ipv6'] = out
        return 'DOCKER-USER' if re.search(r'^:DOCKER-USER\s', out, re.M) else 'FORWARD'

    def _commands(self, family: str) -> tuple[str, str]:
        detection = self.detection or self.detect()
        if family not in detection.commands:
            raise FirewallError('%s is not available on this host' % family)
        return detection.commands[family]

    def save(self, family: str) -> str:
        """``<variant>-save -t filter`` output (the first time after detect(): what detect() read)."""
        save = self._commands(family)[0]
        if family in self._read:
            return self._read.pop(family)
        rc, out, err = self.run([save, '-t', 'filter'], None)
        if rc != 0:
            raise FirewallError('%s -t filter failed (rc=%s): %s' % (save, rc, err.strip() or out.strip()))
        return out

    def apply(self, family: str, payload: str, wait: int | None = None) -> None:
        """Feed ``payload`` to ``<variant>-restore --noflush -w`` (``-w N`` when ``wait`` is given)."""
        self.restore(self._commands(family)[1], payload, wait)

    def restore(self, restore: str, payload: str, wait: int | None = None) -> None:
        """``restore --noflush -w [N]`` of ``payload`` (nothing when it is empty)."""
        if not payload:
            return
        flags = ['--noflush', '-w'] + ([str(int(wait))] if wait is not None else [])
        rc, out, err = self.run([restore] + flags, payload)
        if rc != 0:
            raise FirewallError('%s %s failed (rc=%s): %s' % (restore, ' '.join(flags), rc, err.strip() or out.strip()))

    def variant_commands(self, variant: str, family: str) -> tuple[str, str] | None:
        """(save, restore) of ``variant`` for ``family``, None when this host has not both."""
        det = self.detection
        if det is not None and det.variant == variant and family in det.commands:
            return det.commands[family]
        prog = 'iptables' if family == 'ipv4' else 'ip6tables'
        explicit = [self.binaries.get('%s-%s-%s' % (prog, variant, a)) for a in ('save', 'restore')]
        if all(explicit):
            return t.cast(t.Tuple[str, str], tuple(explicit))
        if self._default_variant(prog) != variant:
            return None
        plain = [self.binaries.get('%s-%s' % (prog, a)) for a in ('save', 'restore')]
        return t.cast(t.Tuple[str, str], tuple(plain)) if all(plain) else None

    def read_all(self) -> tuple[dict[tuple[str, str], str], list[str]]:
        """({(variant, family): filter table as saved}, notes) for every variant and family here.

        The detected variant is read as ever (save() after detect()); the other variants without
        ``-t`` (that would instantiate a legacy table), legacy only when /proc lists a table.
        """
        found: dict[tuple[str, str], str] = {}
        notes: list[str] = []
        det = self.detection
        for family, prog in (('ipv4', 'iptables'), ('ipv6', 'ip6tables')):
            for variant in VARIANTS:
                if det is not None and det.variant == variant and family in det.commands:
                    found[(variant, family)] = self.save(family)
                    continue
                commands = self.variant_commands(variant, family)
                if commands is None or (variant == 'legacy' and self.read_proc(PROC_TABLES[prog]) == []):
                    continue
                rc, out, err = self.run([commands[0]], None)
                if rc != 0:
                    notes.append('%s failed (rc=%s): %s' % (commands[0], rc, err.strip()))
                    continue
                found[(variant, family)] = filter_section(out)
        return found, notes


def compensation_payload(before: str, added: t.Sequence[AnyRule], removed: t.Sequence[ExistingRule]) -> str:
    """iptables-restore --noflush input undoing a restore_payload(added, removed) applied to the
    filter table saved as ``before``: delete what was added, re-insert what was removed at its
    saved position (ascending, so every earlier rule is back in place when a rule goes in)."""
    lines = ['-D %s %s' % (r.chain, r.spec) for r in added]
    saved = parse_save(before).get('filter', {'rules': []})['rules'] if removed else []
    taken: set[int] = set()
    placed: list[tuple[int, str, str]] = []
    for rule in removed:
        index = next((i for i, item in enumerate(saved) if item == (rule.chain, rule.spec) and i not in taken), None)
        if index is None:
            raise FirewallError('cannot find the removed rule in the saved table: -A %s %s' % (rule.chain, rule.spec))
        taken.add(index)
        position = sum(1 for chain, _spec in saved[:index] if chain == rule.chain) + 1
        placed.append((index, rule.chain, '-I %s %d %s' % (rule.chain, position, rule.spec)))
    lines += [line for _i, _chain, line in sorted(placed)]
    return '*filter\n%sCOMMIT\n' % ''.join(line + '\n' for line in lines) if lines else ''
