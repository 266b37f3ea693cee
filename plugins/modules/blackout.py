#!/usr/bin/python
# Copyright (c) 2026, netfence.docker contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r'''
module: blackout
short_description: Cut every path traffic can take to a Docker service, and restore it exactly
version_added: 0.1.0
description:
  - Blacks out the running containers of a Docker service on the target host, or restores them.
  - Every address of every matched container, on every network, IPv4 and IPv6, is cut on each
    path that reaches it. Traffic crossing FORWARD (other machines, other containers) is
    rejected in C(DOCKER-USER); the host's own traffic (the host's own address through nat
    OUTPUT, V(127.0.0.1) and V([::1]) through docker-proxy) is rejected in filter C(OUTPUT);
    SYNs to the service's published ports on the loopback address are refused outright.
  - Only connections towards the service are cut. Connections the containers open themselves,
    and their replies, keep working, unless O(direction=both).
  - TCP is refused with a TCP reset, so clients fail at once and established connections are
    cut on their next packet; the service's side of those connections is reset too. Other
    protocols get ICMP port-unreachable.
  - Every rule carries a comment tag naming the blackout, the container it was made for and the
    time the blackout started. The module only ever removes rules it created, and
    O(state=absent) removes every rule of the blackout even when the container is gone or its
    address changed.
  - One change is one C(iptables-restore --noflush --wait) transaction per iptables variant and
    address family, and one C(nft -f) per table of ours. A run changes the host all or nothing;
    when a later transaction fails, the ones already applied are undone (from the firewall as read
    before the run) before the module fails, and RV(compensated) says what was undone.
    Running again with the same inputs changes nothing.
  - Rules past their O(expires) deadline are inert (the kernel stops matching them) and are
    removed by the next run of this module on the host, whatever blackout they belong to.
author:
  - netfence.docker maintainers (@netfence)
extends_documentation_fragment:
  - netfence.docker.blackout
attributes:
  check_mode:
    support: full
    description: Computes the exact change and writes nothing.
  diff_mode:
    support: full
    description: Shows the rules of the blackout before and after, as C(iptables -S) lines.
options:
  service:
    description:
      - The service to black out. Matches every container whose name equals it or whose
        C(com.docker.compose.service) label equals it (all replicas).
      - Exactly one of O(service), O(containers) and O(labels) is required.
      - ASCII letters, digits and C(_.-), starting with a letter or digit, at most 128
        characters (and the blackout name it gives at most 49).
    type: str
  project:
    description:
      - Narrows O(service) to containers whose C(com.docker.compose.project) label equals this.
      - Same characters and limit as O(service).
      - The blackout is then named C(project/service).
    type: str
  containers:
    description:
      - Explicit containers to black out, by name or ID (at least 12 hex digits).
      - Each entry like O(service), with ASCII letters, digits and C(_.-), at most 128 characters.
    type: list
    elements: str
  labels:
    description:
      - Black out the running containers carrying all these labels. Requires O(name).
      - Keys are ASCII letters, digits and C(_./-); values printable ASCII without quotes,
        backslash, C(;), C($) or backtick (spaces allowed, no tab or newline); each at most 255
        characters.
    type: dict
  name:
    description:
      - Name of the blackout, recorded in every rule's tag. Defaults to O(service) (or
        C(project/service)); with O(containers), to the sorted names joined by commas.
      - Characters allowed are letters, digits and C(_.,/-) (ASCII, starting with a letter or
        digit), at most 49. The limit is derived from the tightest backend. An nft rule comment
        holds 127 bytes, and the longest tag (C(netfence bo=NAME ct=C id=<12 hex>
        since=<16> p=outbound h=<8 hex>), container name shortened to one character) takes 78
        of them besides the name. A name that passes works on iptables, nftables and in the
        bridge table alike. The derived name (C(project/service), or the joined container names)
        is held to the same limit.
      - With O(state=absent) names of up to 100 characters are accepted, to remove blackouts
        made by earlier versions.
    type: str
  state:
    description:
      - V(present) puts the blackout in place (and repairs it when rules went missing or the
        containers' addresses changed).
      - V(absent) removes every rule of the blackout. It does not need the Docker engine.
    type: str
    choices: [present, absent]
    default: present
  missing:
    description:
      - What to do when no container matches with O(state=present).
      - V(fail) fails the task, V(ignore) removes any rules of the blackout and reports no change
        beyond that.
    type: str
    choices: [fail, ignore]
    default: fail
  expires:
    description:
      - Lift the blackout automatically. A duration (V(90s), V(30m), V(2h), V(1d), or combined
        as V(1h30m)) counted from the blackout's start, or an absolute UTC time
        (V(2026-11-27T18:00:00Z)).
      - Enforced by the kernel (iptables C(time) match, C(--datestop), UTC) so the blackout
        lifts itself even if the controller dies or the host becomes unreachable.
      - A run after the deadline removes the inert rules and, with O(state=present), starts a
        fresh blackout.
      - At most a year (V(366d)), and never after V(2038-01-19T03:14:07Z), the last time the
        kernel's C(time) match (C(xt_time)) can hold; a later deadline is refused up front.
    type: str
  direction:
    description:
      - V(inbound) cuts connections towards the service only.
      - V(both) also cuts every connection the containers open (a full partition).
    type: str
    choices: [inbound, both]
    default: inbound
  ports:
    description:
      - Only these container ports are cut, as V(PORT/PROTO) (V(11211/tcp), V(53/udp)); other
        ports stay open. Default is every port and protocol.
      - Strictly V(PORT) or V(PORT/PROTO) with PORT in 1-65535 (ASCII digits) and PROTO V(tcp)
        or V(udp); no spaces.
      - Required for a container on the host network (network mode V(host)); its ports are then
        cut on every address of the host (C(INPUT), for other machines and containers) and on the
        loopback address and the host's addresses (C(OUTPUT), for the host itself).
    type: list
    elements: str
  allow_from:
    description:
      - Source addresses or networks (CIDR) that keep access to the service, for example a
        monitoring host or a bastion.
      - Strictly an IPv4 or IPv6 address or CIDR (at most 49 characters), with no IPv6 zone suffix
        (V(fe80::1%eth0) is refused), no whitespace; V(/0) is refused.
    type: list
    elements: str
  reject_with:
    description:
      - V(reset) refuses TCP with a reset (clients fail at once) and other protocols with ICMP
        port-unreachable.
      - V(icmp) uses ICMP port-unreachable for everything (the classic recipe).
      - V(drop) silently drops (clients time out, as if the host were gone).
    type: str
    choices: [reset, icmp, drop]
    default: reset
  backend:
    description:
      - Where the rules go. V(auto) follows the engine (C(GET /info), C(FirewallBackend.Driver));
        Docker's nftables firewall backend (no C(DOCKER-USER) chain) gets V(nftables), anything
        else V(iptables).
      - V(iptables) puts the rules in C(DOCKER-USER)/C(FORWARD), C(OUTPUT) and C(INPUT) of the
        iptables variant (nft or legacy) that holds Docker's chains.
      - V(nftables) puts them in a table of our own, C(table inet netfence), whose C(forward),
        C(output) and C(input) base chains are hooked at priority C(filter - 10), before Docker's
        chains; one C(nft -f) transaction per change, the table deleted when it is left empty.
      - Independently of the backend, when C(net.bridge.bridge-nf-call-iptables) (or
        C(-ip6tables)) is not 1 on the host, traffic between containers of one bridge network
        never reaches those chains; the module then also fills C(table bridge netfence) (filtering
        on the service's addresses) and reports the decision under RV(firewall.bridge). No sysctl
        is changed.
      - O(state=absent) removes the blackout's rules from every backend.
    type: str
    choices: [auto, iptables, nftables]
    default: auto
  hold:
    description:
      - Keep the blackout on the service's new containers while it is in place. A watcher on the
        host follows the Docker Engine's event stream (C(GET /events), over the same socket) and
        re-applies the blackout (the same lookup, plan, diff and transaction as this module) when a
        container of the blackout starts, restarts, is recreated, joins or leaves a network, or a
        new replica appears, within a second and without any Ansible run.
      - The watcher is a detached process started by this module (no systemd unit), one per
        blackout and engine, with its pid file and lock in C(hold/) next to the state record
        (C(/var/lib/netfence/hold/)). It logs to syslog (ident C(netfence-hold)), reconnects with
        a backoff when the engine restarts, ends by itself at the O(expires) deadline and when the
        blackout is no longer recorded, and is stopped by O(state=absent) before the rules are
        removed, and by a run with O(hold=false).
      - A run with O(hold=true) starts the watcher when none runs (also one that died) and then
        reports V(changed); with one running it changes nothing. RV(hold) reports it.
      - While no container of the blackout runs (between a crash and the restart) the watcher keeps
        the rules as they are.
    type: bool
    default: false
  verify:
    description:
      - After the change, check from the host itself that every published TCP port of the
        containers refuses connections (O(state=present)) or answers again (O(state=absent)), on
        V(127.0.0.1), on V(::1) for ports published on V(::) (when something listens there over
        IPv6), and on each of O(verify_addresses). For containers on the host network, the TCP
        ports of O(ports) are checked the same way. Only container ports in O(ports) are checked
        when it is given.
      - The ports are tried until they behave, for up to 10 seconds after a blackout and 30
        seconds after a restore (a restored service may need a moment). The module fails,
        naming the address, port and container, when one does not; the change stays made.
      - Addresses that O(allow_from) covers are not checked after a blackout (a connection from
        the host to its own address comes from that address, which the blackout lets through).
      - After O(state=absent) the containers are looked up on the engine for their ports; when the
        engine does not answer the check is skipped and says why (the rules are removed all the
        same). When another blackout of the same containers keeps the ports closed, the check is
        skipped and names it.
      - Skipped in check mode. The outcome is in RV(verify).
    type: bool
    default: false
  verify_addresses:
    description:
      - The host's own addresses (or host names) to check besides the loopback addresses, for
        ports published on every address, with O(verify=true). The netfence.docker.blackout role
        passes the host's C(ansible_host).
      - Each an IP address (no zone suffix) or a DNS host name (ASCII letters, digits, C(-) and
        dots), at most 253 characters.
    type: list
    elements: str
    default: []
  lock_timeout:
    description:
      - Seconds to wait for the host lock. One run at a time changes a host's firewall; the module
        holds an exclusive lock (C(host.lock) next to the state record, C(/var/lib/netfence)) from
        reading the firewall to recording the result. A run that does not get it within this time
        fails naming the holder (pid, blackout, start time) and changes nothing.
      - What is left of this budget also bounds C(iptables-restore -w) and, through coreutils
        C(timeout) when the target has it, every command the module runs.
    type: int
    default: 60
  rollback:
    description:
      - Set blackout C(rollback.name) on this host to exactly a snapshot, as returned in RV(prior)
        by an earlier run, C(rules) (the rules, in chain order) and C(record) (its state record
        entry, or null).
      - Every rule tagged with that name and not in the snapshot is removed, every rule of the
        snapshot missing is inserted (iptables rules in their chain at their snapshot position
        relative to each other, nft rules in our tables), all or nothing, under the host lock.
        With an empty C(rules) list the blackout is removed.
      - Each rule must parse as a netfence rule of that name with a single-address destination
        (source for the outbound and reply paths); else the module fails before writing anything.
      - Mutually exclusive with the options that describe a blackout (O(service), O(containers),
        O(labels), O(name), O(project), O(expires), O(ports), O(allow_from)). RV(outcome) is
        V(rolled_back), or V(unchanged) when the host already matched.
    type: dict
  reason:
    description:
      - Why the blackout is made (or renewed, or lifted), as free text, for the people who find it.
      - Recorded with the blackout in the host's state record (C(/var/lib/netfence/blackouts.json)),
        returned by M(netfence.docker.blackout_info) and shown by the status playbook, and written to
        the host's log (syslog, ident C(netfence)) on blackout, renewal, repair and restore.
      - One line of printable text (no control characters, newlines or tabs), at most 200
        characters. A run without it keeps the recorded reason; a new reason is a renewal
        (logged, C(changed)).
    type: str
  requested_by:
    description:
      - Who asked for the change (the controller-side user). The collection's playbooks pass
        C(awx_user_name) / C(tower_user_name) when defined, else the controller's C($USER).
      - Recorded, returned and logged like O(reason). A user name of letters, digits and
        C(_.@+-), starting with a letter or digit, at most 64 characters.
    type: str
  all:
    description:
      - The panic button. With O(state=absent), lift every netfence blackout on the host whatever
        its name; mutually exclusive with O(service), O(project), O(containers), O(labels) and
        O(name).
      - Removes every rule whose comment is a netfence tag, in every iptables variant (nft and
        legacy) and family, the tagged rules of C(table inet netfence) and C(table bridge
        netfence) (a table left empty goes too), and every blackout of the host's state record.
        A rule without a netfence tag is never removed.
      - The result's RV(lifted) says per blackout how many rules went. With O(verify=true), the
        published TCP ports of the containers named in the removed rules are checked to answer.
    type: bool
seealso:
  - module: netfence.docker.blackout_info
  - name: Docker and iptables
    description: Where Docker's chains are and why DOCKER-USER exists.
    link: https://docs.docker.com/engine/network/packet-filtering-firewalls/
notes:
  - Every input is parsed strictly before anything runs, and so is everything the Docker engine
    reports (container names, addresses, published ports, network names and modes, compose
    labels). A container with a value outside these limits (for example an address with a zone
    suffix or a newline, possible with a tampered engine behind O(docker_host)) makes the task
    fail naming it; it is never planned. Other labels of a container that could never match a
    valid O(labels) selector are ignored. The firewall payloads are checked token by token
    against closed character sets before the first one is written.
  - The state record C(/var/lib/netfence/blackouts.json) is only used when its directory and
    files are not symbolic links, are owned by root (or the user running the module) and are not
    group- or world-writable; otherwise the module warns and does not use it. A record that
    cannot be read is renamed C(blackouts.json.corrupt-<UTC time>), with a warning, before a new
    one is written. Check mode writes nothing there.
  - Containers on the host network are blacked out by the ports given in O(ports) (there is no
    address of their own to cut, and the API lists no published port for them); without
    O(ports), or with O(direction=both), the module fails and says so. IPv6 link-local
    addresses of the host and loopback addresses other than V(127.0.0.1) and V(::1) are not
    covered.
  - Containers with no address of their own and not on the host network (network mode V(none)
    or V(container:NAME)) cannot be blacked out by address; the module fails and says so.
  - The loopback refusal is a TCP reset also with O(reject_with=icmp) (an ICMPv6 error for a
    local connection only refuses it on the SYN retransmit, after about a second).
'''

EXAMPLES = r'''
- name: Black out every replica of memcached for a maintenance window
  netfence.docker.blackout:
    service: memcached
  become: true

- name: Black out one compose project's web service for 30 minutes, then it lifts by itself
  netfence.docker.blackout:
    service: web
    project: shop
    expires: 30m
  become: true

- name: Failure drill, a full partition of the cache but the monitoring host keeps access
  netfence.docker.blackout:
    service: memcached
    direction: both
    allow_from:
      - 10.0.9.15/32
  become: true

- name: Black out memcached and keep it out when a replica restarts, is recreated or scales up
  netfence.docker.blackout:
    service: memcached
    expires: 2h
    hold: true

- name: Black out memcached for a deploy, saying who and why (logged on the host, shown by status)
  netfence.docker.blackout:
    service: memcached
    expires: 1h
    reason: deploy 2026.12.02 (CHANGE-1234)
    requested_by: "{{ awx_user_name | default(lookup('env', 'USER')) }}"
  become: true

- name: Panic button, lift every netfence blackout on the host whatever its name
  netfence.docker.blackout:
    state: absent
    all: true
    reason: incident 77, everything back
  become: true

- name: Restore, and check that every published port answers again, also on the host's address
  netfence.docker.blackout:
    service: memcached
    state: absent
    verify: true
    verify_addresses:
      - "{{ ansible_host }}"
  become: true
'''

RETURN = r'''
blackout:
  description: The name of the blackout, as recorded in the rules' tags.
  returned: always
  type: str
  sample: memcached
containers:
  description:
    - The containers the blackout covers. With O(state=absent), empty, or with O(verify=true) the
      running containers of the service that were checked.
  returned: always
  type: list
  elements: dict
  contains:
    name:
      description: Container name.
      type: str
    id:
      description: Full container ID.
      type: str
    networks:
      description: Per network, the container's addresses.
      type: dict
  sample:
    - name: lab-memcached-1
      id: 4f3c0d0a0b1c2d3e4f5a6b7c8d9e0f1a2b3c4d5e6f708192a3b4c5d6e7f80910
      networks:
        lab_front: {ipv4: 172.18.0.2, ipv6: null}
rules:
  description: The rules of this blackout in place after the run, as C(iptables -S) lines.
  returned: always
  type: dict
  contains:
    ipv4:
      description: IPv4 rules.
      type: list
      elements: str
    ipv6:
      description: IPv6 rules.
      type: list
      elements: str
added:
  description: Rules added by this run (would be, in check mode).
  returned: always
  type: dict
removed:
  description: Rules removed by this run, expired rules of other blackouts included.
  returned: always
  type: dict
since:
  description: When the blackout started (UTC, ISO 8601); null when absent.
  returned: always
  type: str
expires:
  description: When the blackout lifts itself (UTC, ISO 8601); null when it does not.
  returned: always
  type: str
verify:
  description: The check of the published ports after the change, with O(verify=true).
  returned: when O(verify=true)
  type: dict
  contains:
    state:
      description: V(ok), V(failed) (the module then fails) or V(skipped) (check mode, the engine did
        not answer after a restore, or another blackout keeps the containers closed).
      type: str
    expect:
      description: V(refused) after a blackout, V(open) after a restore.
      type: str
    summary:
      description: One line, as the role prints it.
      type: str
    results:
      description: Per address and port, C(label), C(host), C(port), C(container), C(ok) and
        C(detail) (such as V(Connection refused)).
      type: list
      elements: dict
  sample:
    state: ok
    expect: refused
    summary: 'refused: 10.213.1.2:11211 127.0.0.1:11211'
    results:
      - {label: '127.0.0.1:11211', host: 127.0.0.1, port: 11211, container: lab-memcached-1, ok: true,
         detail: Connection refused}
outcome:
  description:
    - What the run did to the blackout. V(applied) (rules added or removed for a blackout),
      V(unchanged) (already as asked), V(restored) (O(state=absent) found rules or a record of the
      blackout and removed them), V(nothing_to_restore) (O(state=absent) found none),
      V(rolled_back) (O(rollback) changed the host; also in a failure result when the applied
      transactions were undone).
  returned: always, and in a failure result once the firewall was read
  type: str
  sample: applied
prior:
  description:
    - 'The blackout on this host before this run, for O(rollback). C(name); C(rules), in chain
      order, each either C({backend: iptables, family: ipv4|ipv6, variant: nft|legacy, table:
      filter, chain, spec}) (C(spec) as C(iptables-save) prints it, without C(-A CHAIN)) or
      C({backend: nft, nfamily: inet|bridge, chain, text}) (the rule as C(nft list table) prints
      it); C(record), its state record entry or null.'
  returned: always, and in a failure result once the firewall was read
  type: dict
  sample:
    name: memcached
    rules:
      - {backend: iptables, family: ipv4, variant: nft, table: filter, chain: DOCKER-USER,
         spec: '-d 172.18.0.2/32 -p tcp -m conntrack --ctdir ORIGINAL -m comment --comment
                "netfence bo=memcached ..." -j REJECT --reject-with tcp-reset'}
    record: {since: '2026-11-27T12:00:00Z', expires: null, backend: iptables, rules: []}
changes:
  description: Per backend changed (C(iptables nft ipv4), C(nft inet), ...), the rules C(added) and C(removed).
  returned: always
  type: list
  elements: dict
still_blacked_out_by:
  description: With O(state=absent), other blackouts whose live rules still cover the containers of the removed rules.
  returned: when O(state=absent)
  type: list
  elements: str
compensated:
  description:
    - In a failure result, the changes (as in RV(changes)) that had been applied and were undone
      before the module failed; C(not_compensated) lists any whose undoing failed too (with
      C(error)); C(failed_backend) names the change that failed.
  returned: on failure of a transaction
  type: list
  elements: dict
holder:
  description: In a failure result after O(lock_timeout), what the holder of the host lock wrote (C(pid),
    C(blackout), C(started)).
  returned: when the host lock was not obtained
  type: dict
hold:
  description: The watcher that keeps the blackout on new containers (O(hold)).
  returned: always
  type: dict
  contains:
    enabled:
      description: Whether a watcher is wanted (O(hold=true), O(state=present), rules in place, not expired).
      type: bool
    running:
      description: Whether it runs after this run (would, in check mode).
      type: bool
    pid:
      description: Its process id on the host, null when none runs.
      type: int
    started:
      description: This run started it (none ran, or the previous one had died).
      type: bool
    stopped:
      description: This run stopped it (O(state=absent), O(hold=false), a O(rollback) to no rules).
      type: bool
  sample: {enabled: true, running: true, pid: 41873, started: true, stopped: false}

reason:
  description: The blackout's recorded reason (the one given, else the one recorded before); for a
    restore, the one given. Null when none.
  returned: always
  type: str
  sample: deploy 2026.12.02 (CHANGE-1234)
requested_by:
  description: Who asked for it, recorded like RV(reason).
  returned: always
  type: str
  sample: alice
audit:
  description:
    - What this run did to the blackout, as logged on the host (syslog, ident C(netfence)).
    - C(event) is V(blackout), V(renewal) (expiry, reason or requester changed), V(repair) (rules
      put back), V(restore), or null when nothing changed; C(logged) is the line written (a list
      of lines with O(all=true)).
  returned: always
  type: dict
  sample:
    event: renewal
    logged: >-
      renewal memcached by=alice reason="deploy" expires=2026-12-02T14:00:00Z added=12 removed=12
      previous_expires=2026-12-02T13:00:00Z
lifted:
  description:
    - With O(all=true), per blackout name, the rules removed (C(rules), C(ipv4), C(ipv6)), the
      containers named in them, and what the state record held (C(recorded), C(since),
      C(expires), C(reason), C(requested_by)).
  returned: when O(all=true)
  type: dict
  sample: {memcached: {rules: 14, ipv4: 10, ipv6: 4, containers: [lab-memcached-1], recorded: true,
                       since: '2026-12-02T12:00:00Z', expires: null, reason: deploy, requested_by: alice}}
firewall:
  description: What the module found on the host and used.
  returned: always
  type: dict
  contains:
    backend:
      description: Where the rules went, V(iptables) or V(nftables).
      type: str
    backend_reason:
      description: Why that backend was chosen.
      type: str
    variant:
      description: The iptables variant that holds Docker's chains (V(nft) or V(legacy)).
      type: str
    families:
      description: Address families with rules (V(ipv4), V(ipv6)).
      type: list
      elements: str
    forward_chain:
      description: Per family, the chain used for traffic crossing FORWARD.
      type: dict
    bridge:
      description:
        - Set when br_netfilter does not pass bridged traffic to iptables; the sysctls read, the
          families filtered in C(table bridge netfence) and how (V(stateful-reject) or
          V(stateless-drop)).
      type: dict
    notes:
      description: Anything worth knowing about the host's firewall, such as a variant mismatch.
      type: list
      elements: str
    cleaned:
      description: Empty base chains and tables the module had created and removed again.
      type: list
      elements: str
  sample:
    variant: nft
    families: [ipv4, ipv6]
    forward_chain: {ipv4: DOCKER-USER, ipv6: FORWARD}
    backend: iptables
    backend_reason: the engine reports FirewallBackend.Driver iptables
    bridge: {bridge_nf_call: {ipv4: '0', ipv6: '0'}, families: [ipv4], table: bridge netfence, mode: stateless-drop}
    cleaned: []
'''

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.netfence.docker.plugins.module_utils import _hold
from ansible_collections.netfence.docker.plugins.module_utils._manager import (
    BLACKOUT_ARGUMENT_SPEC,
    BlackoutError,
    BlackoutManager,
)


def main() -> None:
    module = AnsibleModule(
        argument_spec=BLACKOUT_ARGUMENT_SPEC,
        mutually_exclusive=[('service', 'containers', 'labels', 'rollback')]
        + [('rollback', other) for other in ('name', 'project', 'expires', 'ports', 'allow_from', 'all')],
        required_one_of=[('service', 'containers', 'labels', 'rollback', 'all')],
        required_by={'project': 'service'},
        supports_check_mode=True,
    )
    try:
        manager = BlackoutManager(module)
        stopped = _hold.before_run(module, manager)  # a restore (or rollback to nothing) stops the watcher first
        result = _hold.after_run(module, manager.run(), stopped)
    except BlackoutError as exc:
        module.fail_json(msg=str(exc), **exc.details)
    module.exit_json(**result)


if __name__ == '__main__':
    main()
