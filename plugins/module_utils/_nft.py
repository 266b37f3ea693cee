# -*- coding: utf-8 -*-
# Copyright (c) 2026, netfence.docker contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""nftables tables of our own: ``inet netfence`` (nftables backend) and ``bridge netfence``.

``table inet netfence`` carries the blackout when the engine uses Docker's nftables firewall
backend (no DOCKER-USER), or by choice (``backend: nftables``): base chains ``forward``,
``output`` and ``input`` hooked at priority ``filter - 10``, before Docker's chains and
iptables-nft's (a reject in any base chain is final; an ``accept`` only ends our own chain).

``table bridge netfence`` cuts same-network container-to-container traffic on hosts where
bridged frames do not traverse iptables (``net.bridge.bridge-nf-call-iptables=0`` or
br_netfilter not loaded): a ``forward`` base chain filtering on the service's addresses. It
uses ``ct direction original`` and ``reject`` when the kernel offers them in the bridge family
(nf_conntrack_bridge, nft_reject_bridge), else drops every bridged packet to the address.

Rules carry the netfence tag as their nft ``comment`` (same text as the iptables comment, see
docs/design.md; ``h`` hashes ``family|table|chain|rule text|bo|id``). Every change is one
``nft -f`` transaction; a table left without rules is deleted in that same transaction.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import json
import re
import typing as t
from dataclasses import dataclass

from ansible_collections.netfence.docker.plugins.module_utils import _validate
from ansible_collections.netfence.docker.plugins.module_utils._docker_api import Container
from ansible_collections.netfence.docker.plugins.module_utils._planner import (
    FAMILIES,
    LOOPBACK,
    Options,
    PlanError,
    PlannerBase,
    Tag,
    _LOOPBACK_BINDS,
    container_addresses,
    describe as planner_describe,
    make_tag,
    ordered_containers,
    parse_tag,
    utc,
)

TABLE = 'netfence'
NFT_MAX_COMMENT = 127  # nft rejects comments of 128 bytes and more
PRIORITY = 'filter - 10'
INET_CHAINS = {'forward': 'forward', 'output': 'output', 'input': 'input'}
TIME_FORMAT = '%Y-%m-%d %H:%M:%S'
Runner = t.Callable[[t.List[str], t.Optional[str]], t.Tuple[int, str, str]]


class NftError(Exception):
    """nft could not be read, understood or changed."""


@dataclass(frozen=True)
class BridgeCaps:
    """What the kernel offers in the bridge family."""

    ct: bool = False
    reject: bool = False

    @property
    def mode(self) -> str:
        return 'stateful' if self.ct else 'stateless-drop'


class _NftRuleView:
    """What planned and found rules of our tables answer alike (from ``nfamily``, ``chain``,
    ``address`` and ``text``)."""

    nfamily: str
    chain: str
    address: str | None
    text: str

    @property
    def table(self) -> str:
        return TABLE

    @property
    def family(self) -> str:
        """The identity family: 'inet' / 'bridge' (never collides with ipv4/ipv6)."""
        return self.nfamily

    @property
    def addr_family(self) -> str:
        return 'ipv6' if self.address and ':' in self.address else 'ipv4'

    @property
    def line(self) -> str:
        return 'nft %s %s %s: %s' % (self.nfamily, TABLE, self.chain, self.text)


@dataclass(frozen=True)
class NftRule(_NftRuleView):
    """One planned nft rule of our tables."""

    nfamily: str   # 'inet' or 'bridge'
    chain: str
    body: str      # rule text without the comment
    tag: Tag
    path: str
    address: str   # single address CIDR (for grouping and reports)

    @property
    def identity(self) -> tuple[str, str, str, str]:
        return (self.nfamily, TABLE, self.chain, self.tag.render())

    @property
    def text(self) -> str:  # type: ignore[override]
        return '%s comment "%s"' % (self.body, self.tag.render())


@dataclass(frozen=True)
class ExistingNftRule(_NftRuleView):
    """A rule found in one of our tables (``nft -j list table``)."""

    nfamily: str
    chain: str
    handle: int
    tag: Tag | None
    comment: str | None
    address: str | None
    datestop: dt.datetime | None
    text: str

    @property
    def identity(self) -> tuple[str, str, str, str]:
        return (self.nfamily, TABLE, self.chain, self.tag.render() if self.tag else '#%d' % self.handle)

    @property
    def path(self) -> str | None:
        return self.tag.path if self.tag else None

    @property
    def spec(self) -> str:
        return self.text

    def expired(self, now: dt.datetime) -> bool:
        return self.datestop is not None and self.datestop <= utc(now)


# ---------------------------------------------------------------------------
# Planning
# ---------------------------------------------------------------------------

def _ip(addr: str) -> str:
    return 'ip6' if ':' in addr else 'ip'


def _bare(cidr: str) -> str:
    return cidr.split('/')[0] if cidr.endswith(('/32', '/128')) else cidr


class _NftPlanner(PlannerBase):

    def time(self) -> list[str]:
        if self.options.expires is None:
            return []
        return ['meta time < "%s"' % utc(self.options.expires).strftime(TIME_FORMAT)]

    def add(self, nfamily: str, chain: str, path: str, container: Container, address: str, body: str) -> None:
        tag = make_tag(self.name, container, self.since, path, (nfamily, TABLE, chain, body), NFT_MAX_COMMENT)
        if ' %s %s' % (_ip(address) + (' saddr' if path in ('outbound', 'reply') else ' daddr'),
                       _bare(address)) not in ' ' + body:
            raise PlanError('internal error: nft rule without a single-address match: %s' % body)
        self.keep(NftRule(nfamily=nfamily, chain=chain, body=body, tag=tag, path=path, address=address))

    def verdicts(self, proto: str | None, bridge_reject: bool = True) -> str:
        rw = self.options.reject_with
        if rw == 'drop' or not bridge_reject:
            return 'drop'
        if rw == 'reset' and proto == 'tcp':
            return 'reject with tcp reset'
        return 'reject with icmpx port-unreachable'

    def rejects(self, nfamily: str, chain: str, path: str, container: Container, address: str,
                match: list[str], port_kw: str | None, bridge_reject: bool = True) -> None:
        """Per port, or tcp reset + the rest, or one rule: like the iptables planner."""
        tail = self.time()
        if self.options.ports and port_kw:
            for port, proto in self.options.ports:
                self.add(nfamily, chain, path, container, address,
                         ' '.join(match + ['%s %s %d' % (proto, port_kw, port)] + tail +
                                  [self.verdicts(proto, bridge_reject)]))
        elif self.options.reject_with == 'reset' and bridge_reject:
            self.add(nfamily, chain, path, container, address,
                     ' '.join(match + ['meta l4proto tcp'] + tail + [self.verdicts('tcp')]))
            self.add(nfamily, chain, path, container, address,
                     ' '.join(match + ['meta l4proto != tcp'] + tail + [self.verdicts(None)]))
        else:
            self.add(nfamily, chain, path, container, address,
                     ' '.join(match + tail + [self.verdicts(None, bridge_reject)]))

    def inet_address(self, container: Container, addr: str) -> None:
        ip, a = _ip(addr), _bare(addr)
        opts = self.options
        fam = 'ipv6' if ip == 'ip6' else 'ipv4'
        cidrs = [_bare(c) for c in opts.cidrs(fam)]
        orig = ['ct direction original']
        allow = ['%s saddr %s %s daddr %s ct direction original' % (ip, c, ip, a) for c in cidrs]
        reply_allow = ['%s saddr %s %s daddr %s ct direction reply' % (ip, a, ip, c) for c in cidrs]
        resets = opts.direction != 'both' and opts.reject_with == 'reset'
        for chain, path in (('forward', 'forward'), ('output', 'host')):
            for text in allow:
                self.add('inet', chain, path, container, addr, ' '.join([text] + self.time() + ['accept']))
            if resets and chain == 'forward':
                self.reply_resets(chain, container, addr, reply_allow)
            self.rejects('inet', chain, path, container, addr, ['%s daddr %s' % (ip, a)] + orig, 'dport')
        if resets:
            self.reply_resets('input', container, addr, reply_allow)
        if opts.direction != 'both':
            return
        out_allow = ['%s saddr %s %s daddr %s' % (ip, a, ip, c) for c in cidrs]
        for chain in ('forward', 'input'):
            for text in out_allow:
                self.add('inet', chain, 'outbound', container, addr, ' '.join([text] + self.time() + ['accept']))
            self.rejects('inet', chain, 'outbound', container, addr, ['%s saddr %s' % (ip, a)] + orig, None)
            self.rejects('inet', chain, 'reply', container, addr,
                         ['%s saddr %s' % (ip, a), 'ct direction reply'], 'sport')

    def reply_resets(self, chain: str, container: Container, addr: str, allow: list[str]) -> None:
        ip, a = _ip(addr), _bare(addr)
        tcp_ports = [p for p, proto in self.options.ports if proto == 'tcp']
        if self.options.ports and not tcp_ports:
            return
        for text in allow:
            self.add('inet', chain, 'reply', container, addr, ' '.join([text] + self.time() + ['accept']))
        for port in tcp_ports or [None]:
            match = ['%s saddr %s' % (ip, a), 'ct direction reply']
            match.append('tcp sport %d' % port if port else 'meta l4proto tcp')
            self.add('inet', chain, 'reply', container, addr,
                     ' '.join(match + self.time() + ['reject with tcp reset']))

    def loopback(self, family: str, containers: list[Container]) -> None:
        addr = LOOPBACK[family]
        ip, a = _ip(addr), _bare(addr)
        cidrs = [_bare(c) for c in self.options.cidrs(family)]
        done: set[int] = set()
        for container in containers:
            for port in sorted(container.ports, key=lambda p: (p.host_port, p.container_port, p.host_ip)):
                if port.proto != 'tcp' or port.host_ip not in _LOOPBACK_BINDS[family] or port.host_port in done:
                    continue
                if self.options.ports and (port.container_port, 'tcp') not in self.options.ports:
                    continue
                done.add(port.host_port)
                for c in cidrs:
                    self.add('inet', 'output', 'loopback', container, addr,
                             ' '.join(['%s saddr %s %s daddr %s tcp dport %d ct direction original'
                                       % (ip, c, ip, a, port.host_port)] + self.time() + ['accept']))
                self.add('inet', 'output', 'loopback', container, addr,
                         ' '.join(['%s daddr %s tcp dport %d ct direction original' % (ip, a, port.host_port)]
                                  + self.time() + ['reject with tcp reset']))

    def bridge_address(self, container: Container, addr: str, caps: BridgeCaps) -> None:
        ip, a = _ip(addr), _bare(addr)
        fam = 'ipv6' if ip == 'ip6' else 'ipv4'
        ct = ['ct direction original'] if caps.ct else []
        for c in self.options.cidrs(fam):
            self.add('bridge', 'forward', 'forward', container, addr,
                     ' '.join(['%s saddr %s %s daddr %s' % (ip, _bare(c), ip, a)] + ct + self.time() + ['accept']))
        self.rejects('bridge', 'forward', 'forward', container, addr, ['%s daddr %s' % (ip, a)] + ct,
                     'dport' if caps.ct else None, bridge_reject=caps.reject)


def plan_inet(name: str, containers: t.Iterable[Container], options: Options, since: dt.datetime,
              families: t.Sequence[str] = FAMILIES) -> tuple[NftRule, ...]:
    """The ``table inet netfence`` rules of a blackout (the nftables backend)."""
    planner = _NftPlanner(name, options, since)
    ordered = ordered_containers(containers)
    for family in FAMILIES:
        if family not in families:
            continue
        for container in ordered:
            for addr in container_addresses(container, family):
                planner.inet_address(container, addr)
        if options.loopback:
            planner.loopback(family, ordered)
    return tuple(planner.rules)


def plan_bridge(name: str, containers: t.Iterable[Container], options: Options, since: dt.datetime,
                families: t.Sequence[str], caps: BridgeCaps) -> tuple[NftRule, ...]:
    """The ``table bridge netfence`` rules: bridged peers to the service's addresses."""
    planner = _NftPlanner(name, options, since)
    for family in FAMILIES:
        if family not in families:
            continue
        for container in ordered_containers(containers):
            for addr in container_addresses(container, family):
                planner.bridge_address(container, addr, caps)
    return tuple(planner.rules)


# ---------------------------------------------------------------------------
# Reading back (nft -j list table)
# ---------------------------------------------------------------------------

def _render_value(value: t.Any) -> str:
    if isinstance(value, dict):
        if 'prefix' in value:
            return '%s/%s' % (value['prefix'].get('addr'), value['prefix'].get('len'))
        if 'set' in value:
            return '{ %s }' % ', '.join(_render_value(v) for v in value['set'])
        return json.dumps(value, sort_keys=True)
    return str(value)


def _render_left(left: t.Any) -> str:
    if isinstance(left, dict):
        if 'payload' in left:
            return '%s %s' % (left['payload'].get('protocol'), left['payload'].get('field'))
        if 'meta' in left:
            return 'meta %s' % left['meta'].get('key')
        if 'ct' in left:
            return 'ct %s' % left['ct'].get('key')
    return json.dumps(left, sort_keys=True)


def render_expr(expr: list[dict[str, t.Any]]) -> str:
    """Approximate nft text of a rule's JSON expressions (for reports; identity is the comment)."""
    out = []
    for item in expr or []:
        if 'match' in item:
            m = item['match']
            op = m.get('op', '==')
            out.append('%s %s%s' % (_render_left(m.get('left')), '' if op in ('==', 'in') else op + ' ',
                                    _render_value(m.get('right'))))
        elif 'reject' in item:
            rej = item['reject'] or {}
            kind = rej.get('type')
            out.append('reject' + (' with %s' % kind if kind == 'tcp reset' else
                                   ' with %s %s' % (kind, rej.get('expr')) if kind else ''))
        elif len(item) == 1:
            key = next(iter(item))
            out.append(key if item[key] is None else '%s %s' % (key, json.dumps(item[key], sort_keys=True)))
    return ' '.join(out)


def _rule_address(expr: list[dict[str, t.Any]], path: str | None) -> str | None:
    field = 'saddr' if path in ('outbound', 'reply') else 'daddr'
    for item in expr or []:
        m = item.get('match') if isinstance(item, dict) else None
        if not m or m.get('op', '==') != '==':
            continue
        left = m.get('left') or {}
        payload = left.get('payload') if isinstance(left, dict) else None
        if payload and payload.get('field') == field and payload.get('protocol') in ('ip', 'ip6') \
                and isinstance(m.get('right'), str):
            return m['right'] + ('/128' if payload['protocol'] == 'ip6' else '/32')
    return None


def _rule_datestop(expr: list[dict[str, t.Any]]) -> dt.datetime | None:
    for item in expr or []:
        m = item.get('match') if isinstance(item, dict) else None
        if m and m.get('op') == '<' and (m.get('left') or {}).get('meta', {}).get('key') == 'time':
            right = m.get('right')
            try:
                if isinstance(right, (int, float)):  # nanoseconds since the epoch
                    return dt.datetime.fromtimestamp(right / 1e9, dt.timezone.utc).replace(microsecond=0)
                return dt.datetime.strptime(str(right), TIME_FORMAT).replace(tzinfo=dt.timezone.utc)
            except (ValueError, OverflowError, OSError):
                return None
    return None


def parse_table(text: str, nfamily: str) -> tuple[list[ExistingNftRule], list[str]]:
    """(rules, chain names) of ``nft -j list table <nfamily> netfence`` output ('' = no table)."""
    if not text.strip():
        return [], []
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise NftError('cannot parse nft -j output: %s' % exc) from None
    rules: list[ExistingNftRule] = []
    chains: list[str] = []
    for obj in data.get('nftables', []) if isinstance(data, dict) else []:
        if 'chain' in obj:
            chains.append(obj['chain'].get('name'))
        rule = obj.get('rule')
        if not rule or rule.get('table') != TABLE or rule.get('family') != nfamily:
            continue
        comment = rule.get('comment')
        tag = parse_tag(comment) if comment else None
        expr = rule.get('expr') or []
        rules.append(ExistingNftRule(
            nfamily=nfamily, chain=rule.get('chain'), handle=int(rule.get('handle', 0)), tag=tag, comment=comment,
            address=_rule_address(expr, tag.path if tag else None), datestop=_rule_datestop(expr),
            text=render_expr(expr) + (' comment "%s"' % comment if comment else '')))
    return rules, chains


# ---------------------------------------------------------------------------
# Diff and transaction
# ---------------------------------------------------------------------------

def diff(existing: t.Sequence[ExistingNftRule], desired: t.Sequence[NftRule], name: str,
         now: dt.datetime) -> tuple[list[NftRule], list[ExistingNftRule]]:
    """(to_add, to_remove) by identity, per chain all-or-nothing for blackout ``name``.

    Removes rules of ``name`` not desired, expired netfence rules of any blackout and duplicates.
    When a chain's rules of ``name`` change at all, its kept rules of ``name`` are re-added too so
    the chain holds them in planned order (additions are appended).
    """
    now = utc(now)
    wanted = {r.identity for r in desired}
    to_remove: list[ExistingNftRule] = []
    kept: dict[tuple[str, str, str, str], ExistingNftRule] = {}
    for rule in existing:
        if rule.tag is None:
            continue
        if (rule.tag.bo == name and rule.identity not in wanted) or rule.expired(now) or rule.identity in kept:
            to_remove.append(rule)
        else:
            kept[rule.identity] = rule
    live = [r for r in desired if not _expired(r, now)]
    to_add = [r for r in live if r.identity not in kept]
    for key in sorted({(r.nfamily, r.chain) for r in to_add}):
        planned = [r for r in live if (r.nfamily, r.chain) == key]
        mine = [r for r in existing if r.tag is not None and r.tag.bo == name
                and (r.nfamily, r.chain) == key and r not in to_remove]
        adding = [r.identity for r in to_add if (r.nfamily, r.chain) == key]
        if [r.identity for r in mine] + adding != [r.identity for r in planned]:
            to_remove.extend(mine)  # appending would break the planned order: re-add them all
            to_add = [r for r in to_add if (r.nfamily, r.chain) != key] + planned
    order = {r.identity: i for i, r in enumerate(desired)}
    to_add.sort(key=lambda r: order[r.identity])
    return to_add, to_remove


def _expired(rule: NftRule, now: dt.datetime) -> bool:
    marker = 'meta time < "'
    if marker not in rule.body:
        return False
    try:
        stop = dt.datetime.strptime(rule.body.split(marker, 1)[1][:19], TIME_FORMAT).replace(tzinfo=dt.timezone.utc)
    except ValueError:
        return False
    return stop <= now


def chain_definitions(nfamily: str) -> list[str]:
    if nfamily == 'bridge':
        return ['add chain bridge %s forward { type filter hook forward priority %s; policy accept; }'
                % (TABLE, PRIORITY)]
    return ['add chain inet %s %s { type filter hook %s priority %s; policy accept; }' % (TABLE, chain, hook, PRIORITY)
            for chain, hook in sorted(INET_CHAINS.items())]


def payload(nfamily: str, existing: t.Sequence[ExistingNftRule], to_add: t.Sequence[NftRule],
            to_remove: t.Sequence[ExistingNftRule]) -> str:
    """``nft -f`` input for one of our tables; '' when nothing changes.

    The table goes away in the same transaction when no rule would be left in it.
    """
    adds = [r for r in to_add if r.nfamily == nfamily]
    removes = [r for r in to_remove if r.nfamily == nfamily]
    if not adds and not removes:
        return ''
    removed = {r.handle for r in removes}
    remaining = [r for r in existing if r.nfamily == nfamily and r.handle not in removed]
    if not adds and not remaining:
        return _validate.nft_line('delete table %s %s' % (nfamily, TABLE)) + '\n'
    lines = ['add table %s %s' % (nfamily, TABLE)] + chain_definitions(nfamily)
    lines += ['delete rule %s %s %s handle %d' % (nfamily, TABLE, r.chain, r.handle) for r in removes]
    lines += ['add rule %s %s %s %s' % (nfamily, TABLE, r.chain, r.text) for r in adds]
    # Defence in depth: each line checked against closed character sets (RenderError otherwise).
    fixed = frozenset(chain_definitions(nfamily))
    for line in lines:
        _validate.nft_line(line, fixed)
    return '\n'.join(lines) + '\n'


_LISTED_CHAIN = re.compile(r'^\s*chain (\S+) \{\s*$')
_LISTED_COMMENT = re.compile(r' comment "(netfence bo=[^"\\]*)"$')
_LISTED_ADDRESS = re.compile(r'(?:^| )ip6? ([sd])addr (\S+)(?= |$)')
_BARE_REJECT = re.compile(r'(^| )reject( comment "|$)')
CHAINS_OF = {'inet': tuple(sorted(INET_CHAINS)), 'bridge': ('forward',)}


def parse_listing(text: str) -> list[tuple[str, str]]:
    """(chain, rule text) of every rule of ``nft list table`` output, in listed order."""
    found: list[tuple[str, str]] = []
    chain = None
    for line in text.splitlines():
        m = _LISTED_CHAIN.match(line)
        stripped = line.strip()
        if m:
            chain = m.group(1)
        elif stripped == '}':
            chain = None
        elif chain and stripped and not stripped.startswith(('type ', 'policy ')):
            found.append((chain, stripped))
    return found


@dataclass(frozen=True)
class SnapshotNftRule(_NftRuleView):
    """A rule of a ``prior`` snapshot (nft text as listed): what a rollback puts back."""

    nfamily: str
    chain: str
    text: str
    tag: Tag
    address: str

    @property
    def identity(self) -> tuple[str, str, str, str]:
        return (self.nfamily, TABLE, self.chain, self.tag.render())

    @property
    def body(self) -> str:
        return self.text.rsplit(' comment "', 1)[0]

    @property
    def path(self) -> str:
        return self.tag.path


def snapshot_rule(nfamily: str, chain: str, text: str, name: str) -> SnapshotNftRule:
    """A ``prior`` nft rule, validated: tagged with blackout ``name``, one address. PlanError if not."""
    if nfamily not in CHAINS_OF or chain not in CHAINS_OF[nfamily]:
        raise PlanError('nft rule of %s %s %s: not a chain of ours' % (nfamily, TABLE, chain))
    # nft lists ``reject with icmpx port-unreachable`` (the default) as a bare ``reject``, which it
    # would load back, next to an ip/ip6 match, as ``reject with icmp(v6) port-unreachable``.
    text = _BARE_REJECT.sub(r'\1reject with icmpx port-unreachable\2', text)
    m = _LISTED_COMMENT.search(text)
    tag = parse_tag(m.group(1)) if m and '\n' not in text and ';' not in text else None
    if tag is None or tag.bo != name:
        raise PlanError('nft rule is not a netfence rule of blackout %s: %s' % (name, text))
    wanted = 's' if tag.path in ('outbound', 'reply') else 'd'
    addrs = [a for side, a in _LISTED_ADDRESS.findall(text.rsplit(' comment "', 1)[0]) if side == wanted]
    if not addrs or not all(_single(a) for a in addrs):
        raise PlanError('nft rule without a single-address %saddr: %s' % (wanted, text))
    return SnapshotNftRule(nfamily=nfamily, chain=chain, text=text, tag=tag,
                           address=addrs[-1] + ('/128' if ':' in addrs[-1] else '/32'))


def _single(addr: str) -> bool:
    try:
        ipaddress.ip_address(addr)
    except ValueError:
        return False
    return True


def parse_chains(text: str) -> dict[tuple[str, str], set[str]] | None:
    """``nft -j list chains`` → {(nft family, table): chain names}; None when it cannot be read."""
    try:
        data = json.loads(text or '{}').get('nftables', [])
        chains: dict[tuple[str, str], set[str]] = {}
        for obj in data:
            if 'chain' in obj:
                chain = obj['chain']
                chains.setdefault((chain['family'], chain['table']), set()).add(chain['name'])
    except (ValueError, AttributeError, TypeError, KeyError):
        return None
    return chains


class Nft:
    """Reads and changes our nft tables through an injected ``run`` (as the iptables Firewall)."""

    def __init__(self, run: Runner, nft: str | None) -> None:
        self.run = run
        self.nft = nft
        # One ``nft -j list chains`` answers whether our inet and bridge tables exist (usually
        # neither does): the reads of the two tables that follow it use it, once each. Not
        # ``list tables``: nft fetches every rule of the ruleset for it (160 ms with 10,000 rules in
        # DOCKER-USER), while ``list chains`` lists no rule (5 ms). Our tables always hold chains;
        # one without any holds no rule either, so it reads as absent.
        self._unread: set[str] = set()
        # The last chain listing, {(family, table): chain names}, for callers that need it before
        # any change (None until listed, and after a change).
        self.last_chains: dict[tuple[str, str], set[str]] | None = None

    @property
    def available(self) -> bool:
        return bool(self.nft)

    def _require(self) -> str:
        if not self.nft:
            raise NftError('nft was not found on the target: install the nftables package')
        return self.nft

    def _listed(self, nfamily: str) -> bool | None:
        """Whether our table of ``nfamily`` holds a chain, from ``nft -j list chains`` (run again once
        each of our families has used the last listing); None when that listing failed."""
        if nfamily not in self._unread:
            rc, out, _err = self.run([t.cast(str, self.nft), '-j', 'list', 'chains'], None)
            self.last_chains = parse_chains(out) if rc == 0 else None
            if self.last_chains is None:
                self._unread = set()
                return None
            self._unread = {'inet', 'bridge'}
        self._unread.discard(nfamily)
        return (nfamily, TABLE) in t.cast(dict, self.last_chains)

    def list_table(self, nfamily: str) -> tuple[list[ExistingNftRule], list[str]]:
        """Our table's rules and chains; ([], []) when it does not exist."""
        if not self.nft:
            return [], []
        if self._listed(nfamily) is False:
            return [], []
        rc, out, err = self.run([self.nft, '-j', 'list', 'table', nfamily, TABLE], None)
        if rc != 0:
            if rc in (126, 127) or 'No such file or directory' in err or 'does not exist' in err:
                return [], []  # no such table (or nft cannot run: then there is none of ours either)
            raise NftError('nft list table %s %s failed (rc=%s): %s' % (nfamily, TABLE, rc, err.strip()))
        return parse_table(out, nfamily)

    def list_text(self, nfamily: str) -> str:
        """``nft list table <nfamily> netfence`` as nft prints it (loadable by ``nft -f``); '' when absent."""
        if not self.nft:
            return ''
        rc, out, err = self.run([self.nft, 'list', 'table', nfamily, TABLE], None)
        if rc != 0:
            if rc in (126, 127) or 'No such file or directory' in err or 'does not exist' in err:
                return ''
            raise NftError('nft list table %s %s failed (rc=%s): %s' % (nfamily, TABLE, rc, err.strip()))
        return out

    def apply(self, text: str) -> None:
        """One ``nft -f -`` transaction."""
        if not text:
            return
        self._unread = set()  # our tables change: the next read lists them afresh
        self.last_chains = None
        rc, out, err = self.run([self._require(), '-f', '-'], text)
        if rc != 0:
            raise NftError('nft -f failed (rc=%s): %s\n%s' % (rc, err.strip() or out.strip(), text))

    def check(self, text: str) -> bool:
        """True if the kernel accepts ``text`` (``nft -c``: nothing is applied)."""
        if not self.nft:
            return False
        rc, _out, _err = self.run([self.nft, '-c', '-f', '-'], text)
        return rc == 0

    def bridge_caps(self) -> BridgeCaps:
        """Probe (nft -c) whether the bridge family has conntrack and reject on this kernel."""
        def probe(rule: str) -> bool:
            return self.check('table bridge netfence_probe {\n chain forward {\n'
                              '  type filter hook forward priority %s; policy accept;\n  %s\n }\n}\n'
                              % (PRIORITY, rule))
        return BridgeCaps(ct=probe('ip daddr 127.0.0.2 ct direction original drop'),
                          reject=probe('ip daddr 127.0.0.2 meta l4proto tcp reject with tcp reset'))


def _loopback_port(rule: NftRule) -> int | None:
    if rule.path == 'loopback':
        return int(rule.body.split('tcp dport ', 1)[1].split(' ', 1)[0])
    return None


def describe(rules: t.Iterable[NftRule], containers: t.Iterable[Container] = ()) -> list[dict[str, t.Any]]:
    """Per container: addresses, paths and loopback ports covered by the inet table's rules (as
    _planner.describe does for iptables rules)."""
    return planner_describe([r for r in rules if r.nfamily == 'inet'], containers, loopback_port=_loopback_port)


# ---------------------------------------------------------------------------
# Cleanup of what iptables-nft created for us (base chains, tables; see _state.py)
# ---------------------------------------------------------------------------

NFT_FAMILY = {'ipv4': 'ip', 'ipv6': 'ip6'}


def _nft_listing(run: Runner, argv: list[str]) -> dict[str, t.Any] | None:
    """{'chains': set, 'rules': [rule dicts]} of an ``nft -j list …`` command, or None when it fails."""
    rc, out, _err = run(argv, None)
    if rc != 0:
        return None
    try:
        data = json.loads(out or '{}').get('nftables', [])
    except ValueError:
        return None
    return {'chains': {o['chain']['name'] for o in data if 'chain' in o},
            'rules': [o['rule'] for o in data if 'rule' in o]}


def nft_table(run: Runner, nft: str, nfam: str, table: str) -> dict[str, t.Any] | None:
    """{'chains': set, 'rules': [rule dicts]} of an nft table, or None when it does not exist."""
    return _nft_listing(run, [nft, '-j', 'list', 'table', nfam, table])


def nft_chain(run: Runner, nft: str, nfam: str, table: str, chain: str) -> dict[str, t.Any] | None:
    """Like nft_table() for one chain of the table: None when the chain (or the table) does not exist."""
    return _nft_listing(run, [nft, '-j', 'list', 'chain', nfam, table, chain])


def nft_all_chains(run: Runner, nft: str) -> dict[tuple[str, str], set[str]]:
    """{(nft family, table): chain names} of every table that has a chain, without listing rules."""
    rc, out, _err = run([nft, '-j', 'list', 'chains'], None)
    return (parse_chains(out) if rc == 0 else None) or {}


def nft_chains(run: Runner, nft: str, nfam: str, table: str,
               listed: dict[tuple[str, str], set[str]] | None = None) -> set[str] | None:
    """Chain names of an nft table, without listing its rules; None when the table does not exist.

    ``listed``: nft_all_chains() already at hand.
    """
    chains = (nft_all_chains(run, nft) if listed is None else listed).get((nfam, table))
    if chains:
        return chains
    # No chain listed: tell a missing table from an empty one (cheap, the table holds no rule).
    info = nft_table(run, nft, nfam, table)
    return None if info is None else info['chains']


def missing_base_chains(run: Runner, nft: str, keys: t.Iterable[tuple[str, str]],
                        known: dict[tuple[str, str], set[str]] | None = None) -> list[list[t.Any]]:
    """[[nfam, 'filter', chain or None], ...] for the iptables-nft tables/chains that do not exist yet.

    ``keys``: (family, chain) of the rules about to be inserted. One listing of the chains (not of the
    tables: with 10,000 rules in DOCKER-USER a JSON listing of the table takes seconds).
    ``known``: that listing, when the caller has it already (nft_all_chains()).
    """
    created: list[list[t.Any]] = []
    keys = sorted(set(keys))
    every = (nft_all_chains(run, nft) if known is None else known) if keys else {}
    listed: dict[str, set[str] | None] = {}
    for family, chain in keys:
        nfam = NFT_FAMILY[family]
        if nfam not in listed:
            listed[nfam] = nft_chains(run, nft, nfam, 'filter', every)
        chains = listed[nfam]
        if chains is None:
            if [nfam, 'filter', None] not in created:
                created.append([nfam, 'filter', None])
            created.append([nfam, 'filter', chain])
        elif chain not in chains:
            created.append([nfam, 'filter', chain])
    return created


def cleanup_created(run: Runner, nft: str, created: list[list[t.Any]]) -> tuple[list[list[t.Any]], list[str]]:
    """Delete recorded base chains that hold no rule, then recorded tables without chains.

    Returns (entries still to watch, what was deleted).

    A table with an entry of its own is listed once (its chains and rules answer for its recorded
    chains too); other recorded chains are listed one by one (the table may hold 10,000 rules in
    DOCKER-USER). The deletions go in one ``nft -f`` transaction; should it fail, one by one.
    """
    entries = sorted(created, key=lambda e: (e[2] is None, e[0], e[1], e[2] or ''))
    whole = {(nfam, table) for nfam, table, chain in entries if chain is None}
    listed: dict[tuple[str, str], dict[str, t.Any] | None] = {}

    def info_of(nfam: str, table: str, chain: str | None) -> dict[str, t.Any] | None:
        if (nfam, table) in whole:
            if (nfam, table) not in listed:
                listed[(nfam, table)] = nft_table(run, nft, nfam, table)
            return listed[(nfam, table)]
        return nft_table(run, nft, nfam, table) if chain is None else nft_chain(run, nft, nfam, table, chain)

    outcome: dict[int, str] = {}       # entry index -> 'keep', 'gone' or 'delete'
    emptied: dict[tuple[str, str], set[str]] = {}
    for i, (nfam, table, chain) in enumerate(entries):
        if chain is None:
            continue
        info = info_of(nfam, table, chain)
        if info is None or chain not in info['chains']:
            outcome[i] = 'gone'
        elif any(r.get('chain') == chain for r in info['rules']):
            outcome[i] = 'keep'
        else:
            outcome[i] = 'delete'
            emptied.setdefault((nfam, table), set()).add(chain)
    for i, (nfam, table, chain) in enumerate(entries):
        if chain is None:
            info = info_of(nfam, table, None)
            if info is None:
                outcome[i] = 'gone'
            else:  # its chains once the emptied ones are deleted
                outcome[i] = 'keep' if set(info['chains']) - emptied.get((nfam, table), set()) else 'delete'
    ops = [(i, 'delete %s %s' % ('table' if e[2] is None else 'chain', ' '.join(x for x in e if x is not None)))
           for i, e in enumerate(entries) if outcome[i] == 'delete']
    if len(ops) > 1:
        rc, _out, _err = run([nft, '-f', '-'], ''.join(op + '\n' for dummy, op in ops))
        if rc == 0:
            for i, dummy in ops:
                outcome[i] = 'done'
        else:
            _delete_one_by_one(run, nft, entries, outcome)
    elif ops:  # one deletion, decided on a fresh listing
        i = ops[0][0]
        rc, _out, _err = run([nft] + ops[0][1].split(), None)
        outcome[i] = 'done' if rc == 0 else 'keep'
    keep = [list(e) for i, e in enumerate(entries) if outcome[i] == 'keep']
    done = ['%s %s' % (e[0], e[1]) + ('' if e[2] is None else ' %s' % e[2])
            for i, e in enumerate(entries) if outcome[i] == 'done']
    return keep, done


def _delete_one_by_one(run: Runner, nft: str, entries: list[list[t.Any]], outcome: dict[int, str]) -> None:
    """Chains first, then tables (listed again: a chain deletion may have failed): outcome 'done' or 'keep'."""
    for i, (nfam, table, chain) in enumerate(entries):
        if chain is None and outcome[i] == 'delete':
            info = nft_table(run, nft, nfam, table)
            if info is None:
                outcome[i] = 'gone'
                continue
            if info['chains']:
                outcome[i] = 'keep'
                continue
        if outcome[i] != 'delete':
            continue
        argv = [nft, 'delete', 'table', nfam, table] if chain is None else [nft, 'delete', 'chain', nfam, table, chain]
        rc, _out, _err = run(argv, None)
        outcome[i] = 'done' if rc == 0 else 'keep'
