# -*- coding: utf-8 -*-
# Copyright (c) 2026, netfence.docker contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Backends of a run: each turns the firewall as read and the planned rules into one Change.

A Change holds its planned rules and diff (``to_add`` / ``to_remove``), ``apply()`` (one
transaction), ``compensate()`` (undo exactly what ``apply()`` did, from the snapshot taken before
it) and ``describe()``. BlackoutManager applies the changes in order and, when one fails,
compensates the applied ones in reverse order: a run changes a host whole or not at all.

- iptables, per (variant, family): ``iptables-restore --noflush -w N``; compensated by deleting
  what was added and re-inserting what was removed at its saved position, then deleting the
  iptables-nft base chains/tables the change created.
- nft, per table (``inet netfence``, ``bridge netfence``): ``nft -f``; compensated by replacing
  the table with its listing taken just before (or deleting it when there was none).
"""

from __future__ import annotations

import datetime as dt
import typing as t

from ansible_collections.netfence.docker.plugins.module_utils import _iptables, _nft


def _lines(rules: t.Iterable[t.Any]) -> list[str]:
    return [r.line for r in rules]


class Change:
    """One backend's part of a run (see the module docstring)."""

    key = ''

    def __init__(self, planned: t.Sequence[t.Any], to_add: t.Sequence[t.Any], to_remove: t.Sequence[t.Any]) -> None:
        self.planned = tuple(planned)
        self.to_add = list(to_add)
        self.to_remove = list(to_remove)
        self.applied = False

    @property
    def changed(self) -> bool:
        return bool(self.to_add or self.to_remove)

    def payload(self) -> str:
        """The text apply() writes; rendering it checks every token (_validate.RenderError)."""
        raise NotImplementedError

    def apply(self) -> None:
        raise NotImplementedError

    def compensate(self) -> None:
        raise NotImplementedError

    def describe(self) -> dict[str, t.Any]:
        return {'backend': self.key, 'added': _lines(self.to_add),
                'removed': _lines(r for r in self.to_remove if getattr(r, 'tag', None) is not None)}


class IptablesChange(Change):
    """The filter table of one iptables variant and family."""

    def __init__(self, firewall: _iptables.Firewall, variant: str, family: str, before: str,
                 existing: t.Sequence[t.Any], planned: t.Sequence[t.Any], to_add: t.Sequence[t.Any],
                 to_remove: t.Sequence[t.Any],
                 wait: t.Callable[[], int], created: t.Callable[[t.Sequence[t.Any]], list[list[t.Any]]],
                 cleanup: t.Callable[[list[list[t.Any]]], list[str]]) -> None:
        super().__init__(planned, to_add, to_remove)
        self.key = 'iptables %s %s' % (variant, family)
        self.firewall = firewall
        self.variant = variant
        self.family = family
        self.before = before
        self.existing = list(existing)
        self.wait = wait
        self._created = created
        self._cleanup = cleanup
        self.created: list[list[t.Any]] = []

    def commands(self) -> tuple[str, str]:
        commands = self.firewall.variant_commands(self.variant, self.family)
        if commands is None:
            raise _iptables.FirewallError('iptables-%s save/restore for %s are not on this host'
                                          % (self.variant, self.family))
        return commands

    def payload(self) -> str:
        return _iptables.restore_payload(self.to_add, self.to_remove, self.family)

    def apply(self) -> None:
        restore = self.commands()[1]
        self.created = self._created(self.to_add) if self.variant == 'nft' and self.to_add else []
        self.firewall.restore(restore, self.payload(), self.wait())
        self.applied = True

    def compensate(self) -> None:
        payload = _iptables.compensation_payload(self.before, self.to_add, self.to_remove)
        self.firewall.restore(self.commands()[1], payload, self.wait())
        if self.created:
            self._cleanup(self.created)
        self.applied = False


class NftChange(Change):
    """One of our nft tables (``inet netfence`` or ``bridge netfence``)."""

    def __init__(self, nft: _nft.Nft, nfamily: str, existing: t.Sequence[t.Any], planned: t.Sequence[t.Any],
                 to_add: t.Sequence[t.Any], to_remove: t.Sequence[t.Any]) -> None:
        super().__init__(planned, to_add, to_remove)
        self.key = 'nft %s' % nfamily
        self.nft = nft
        self.nfamily = nfamily
        self.existing = list(existing)
        self.snapshot: str | None = None

    def payload(self) -> str:
        return _nft.payload(self.nfamily, self.existing, self.to_add, self.to_remove)

    def apply(self) -> None:
        self.snapshot = self.nft.list_text(self.nfamily)
        self.nft.apply(self.payload())
        self.applied = True

    def compensate(self) -> None:
        name = '%s %s' % (self.nfamily, _nft.TABLE)
        self.nft.apply('add table %s\ndelete table %s\n%s' % (name, name, self.snapshot or ''))
        self.applied = False


def iptables_changes(firewall: _iptables.Firewall, tables: t.Mapping[tuple[str, str], tuple[str, list[t.Any]]],
                     desired: t.Mapping[tuple[str, str], t.Sequence[t.Any]], name: str, now: dt.datetime,
                     **hooks: t.Any) -> list[IptablesChange]:
    """One change per (variant, family) read or wanted: ``tables`` as read (save text, netfence
    rules), ``desired`` the rules blackout ``name`` should have there."""
    changes = []
    for key in sorted(set(tables) | set(desired), key=lambda k: (k[1], k[0])):
        before, existing = tables.get(key, ('', []))
        planned = list(desired.get(key, ()))
        to_add, to_remove = _iptables.diff(existing, planned, name, now)
        changes.append(IptablesChange(firewall, key[0], key[1], before, existing, planned, to_add, to_remove,
                                      **hooks))
    return changes


def nft_changes(nft: _nft.Nft, existing: t.Sequence[t.Any], desired: t.Sequence[t.Any], name: str,
                now: dt.datetime) -> list[NftChange]:
    """One change per table of ours: ``existing`` every rule read from them (tagged or not)."""
    changes = []
    for nfamily in ('inet', 'bridge'):
        mine = [r for r in existing if r.nfamily == nfamily]
        planned = [r for r in desired if r.nfamily == nfamily]
        to_add, to_remove = _nft.diff(mine, planned, name, now)
        changes.append(NftChange(nft, nfamily, mine, planned, to_add, to_remove))
    return changes


def holding_chains(changes: t.Sequence[Change]) -> set[tuple[str, str, str]]:
    """(nft family, table, chain) of iptables-nft chains holding a rule of ours after the changes."""
    held = set()
    for change in changes:
        if isinstance(change, IptablesChange) and change.variant == 'nft':
            gone = {id(r) for r in change.to_remove} if change.applied else set()
            rules = [r for r in change.existing if id(r) not in gone] + (change.to_add if change.applied else [])
            held |= {(_nft.NFT_FAMILY[r.family], r.table, r.chain) for r in rules}
    return held
