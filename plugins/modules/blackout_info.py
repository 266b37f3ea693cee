#!/usr/bin/python
# Copyright (c) 2026, netfence.docker contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r'''
module: blackout_info
short_description: Report every netfence blackout on a Docker host, with expiry and drift
version_added: 0.1.0
description:
  - Lists every blackout that M(netfence.docker.blackout) left on the target host, read back from
    the tags of its firewall rules, and compares it with the containers running now.
  - For each blackout it tells the containers and addresses covered, the paths cut, when it
    started, when it expires, and its state.
  - V(active) means every rule is in place and matches the containers. V(expired) means the
    deadline has passed (the kernel no longer applies the rules; the next run of
    M(netfence.docker.blackout) removes them). V(drifted) means the service's containers and the
    rules disagree (a container got a new address, an address now belongs to another
    container, or a container of the service has no rule). V(broken) means rules of the blackout
    are missing on some path (something flushed a chain).
  - Re-running M(netfence.docker.blackout) with O(netfence.docker.blackout#module:state=present)
    repairs V(drifted) and V(broken) blackouts.
  - This module changes nothing and creates nothing on disk (it reads the state record without
    creating its directory or lock file; an unsafe or corrupt record gives a warning and is
    ignored).
author:
  - netfence.docker maintainers (@netfence)
extends_documentation_fragment:
  - netfence.docker.blackout
attributes:
  check_mode:
    support: full
    description: The module never changes anything.
  diff_mode:
    support: none
    description: Nothing to show.
options:
  name:
    description:
      - Report only the blackout with this name. Default is every blackout on the host.
    type: str
  service:
    description:
      - Report only the blackouts of this service (C(service) and every C(project/service), or
        only C(project/service) with O(project)), and return its running containers now in
        RV(service) (no M(netfence.docker.blackout) run needed to look them up).
      - Ignored for the selection when O(name) is given (RV(service) is still returned).
    type: str
  project:
    description:
      - With O(service), only that compose project's containers and blackout C(project/service).
    type: str
seealso:
  - module: netfence.docker.blackout
'''

EXAMPLES = r'''
- name: What is blacked out on this host
  netfence.docker.blackout_info:
  become: true
  register: blackouts

- name: Fail when a blackout drifted
  ansible.builtin.assert:
    that: blackouts.blackouts | selectattr('state', 'eq', 'drifted') | list | length == 0
'''

RETURN = r'''
blackouts:
  description: Every blackout found, sorted by name.
  returned: always
  type: list
  elements: dict
  contains:
    name:
      description: Blackout name (the service, or C(project/service)).
      type: str
    state:
      description: One of V(active), V(expired), V(drifted), V(broken).
      type: str
    since:
      description: When the blackout started (UTC, ISO 8601).
      type: str
    expires:
      description: When it lifts itself (UTC, ISO 8601), or null.
      type: str
    containers:
      description: Per container the rules were made for, its name, short ID and addresses.
      type: list
      elements: dict
    paths:
      description: Paths with at least one rule (forward, host, loopback, outbound, reply, hostnet).
      type: list
      elements: str
    rules:
      description: The blackout's rules per family, as C(iptables -S) lines.
      type: dict
    drift:
      description:
        - C(stale), addresses with rules that the container no longer has;
          C(uncovered), addresses of the service's running containers without rules;
          C(taken), stale addresses now held by another container (named).
        - For a container on the host network, the addresses are the host's own; C(stale) are
          addresses the host no longer has, C(uncovered) host addresses without rules (a bridge
          network created since, for example).
      type: dict
    collateral:
      description:
        - Stale addresses now held by a container outside the blackout, which its rules now cut
          (C(address), C(rule_for) the container the rules were made for, C(taken_by)).
      type: list
      elements: dict
    uncovered_replicas:
      description:
        - Running containers of the service with addresses no rule covers (C(container),
          C(addresses), C(new_replica) true when no rule at all was made for it).
      type: list
      elements: dict
    partial:
      description:
        - Per container covered by rules, its addresses of a whole family without any rule (one
          family's change landed, the other's did not); the blackout is then V(broken).
      type: dict
    members:
      description:
        - The running containers that belong to the blackout now (same keys as the C(containers) of RV(service)),
          null when the engine did not answer.
      type: list
      elements: dict
    drift_checked:
      description:
        - Whether the rules could be compared with the containers. False when the Docker engine
          did not answer (see RV(docker)); the state is then V(active) without proof.
      type: bool
    missing_paths:
      description: Per address, the paths expected but with no rule (lost rules).
      type: dict
    missing_rules:
      description:
        - How many rules of the blackout recorded by M(netfence.docker.blackout) in
          C(/var/lib/netfence/blackouts.json) are not on the host now. A blackout whose rules were
          all flushed (firewall reload, reboot) is still listed, from that record, as V(broken).
      type: int
    recorded:
      description: Whether the blackout is in the state record of the host.
      type: bool
    backend:
      description: V(iptables) or V(nftables) (C(table inet netfence)), as recorded or seen.
      type: str
    hold:
      description:
        - The watcher of M(netfence.docker.blackout) O(netfence.docker.blackout#module:hold=true).
        - C(enabled), one was started and did not end by itself; C(running), it runs now (false
          with C(enabled) means it died, the next blackout run restarts it); C(pid).
      type: dict
      sample: {enabled: true, running: true, pid: 41873}
    reason:
      description: Why the blackout was made (option C(reason) of M(netfence.docker.blackout)), from
        the state record; null when none was given or the blackout is not recorded.
      type: str
    requested_by:
      description: Who asked for it (option C(requested_by)), from the state record; null when unknown.
      type: str
firewall:
  description:
    - What the module found on the host (iptables variant, families, forward chains), the engine's
      firewall backend (C(backend)), C(bridge_nf_call) (the br_netfilter sysctls) and which of our
      nft tables hold rules (C(nft_tables)).
  returned: always
  type: dict
service:
  description:
    - With O(service), C(name), C(project), C(checked) (false when the engine did not answer) and
      C(containers), the service's running containers now (C(name), C(id), C(state),
      C(networks) with C(ipv4)/C(ipv6), C(ports)).
  returned: when O(service) is given
  type: dict
docker:
  description: Whether the engine answered, and its firewall backend.
  returned: always
  type: dict
'''

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.netfence.docker.plugins.module_utils import _hold
from ansible_collections.netfence.docker.plugins.module_utils._manager import (
    INFO_ARGUMENT_SPEC,
    BlackoutError,
    InfoManager,
)


def main() -> None:
    module = AnsibleModule(argument_spec=INFO_ARGUMENT_SPEC, supports_check_mode=True)
    try:
        result = InfoManager(module).run()
        for report in result['blackouts']:
            report['hold'] = _hold.info(module.params, report['name'])
    except BlackoutError as exc:
        module.fail_json(msg=str(exc), **exc.details)
    module.exit_json(changed=False, **result)


if __name__ == '__main__':
    main()
