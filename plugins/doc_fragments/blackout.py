# Copyright (c) 2026, netfence.docker contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations


class ModuleDocFragment:
    """Options shared by the blackout modules: where the engine is."""

    DOCUMENTATION = r'''
options:
  docker_host:
    description:
      - The Docker Engine API endpoint on the target, as V(unix:///path/to/docker.sock) or
        V(tcp://host:port) (plain HTTP).
      - Falls back to the E(DOCKER_HOST) environment variable of the target, then to
        V(unix:///var/run/docker.sock).
      - The engine is queried read-only (C(GET /containers/json) and C(GET /info)) with the
        Python standard library alone; neither the Docker SDK nor C(requests) is needed on the
        target.
    type: str
requirements:
  - C(iptables-save) and C(iptables-restore) on the target, nft or legacy variant (the one
    that holds Docker's chains is used); C(ip6tables-save) and C(ip6tables-restore) for IPv6.
  - Root on the target (run the task with become).
'''
