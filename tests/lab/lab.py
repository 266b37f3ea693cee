"""netfence test lab: Docker hosts in network namespaces (see netfence_lab.py).

    lab.py up [--hosts N] [--versions 20.10,28,20.10] [--configs default,ipv6+no-brnf,...]
    lab.py down
    lab.py status
    lab.py probe [--host hN] [--service memcached|bystander|all] [--timeout 1.0] [--detail]
    lab.py inventory
"""

import argparse
import glob
import json
import logging
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import netfence_lab  # noqa: E402  pylint: disable=wrong-import-position


def _out(text):
    try:
        sys.stdout.write(text + '\n')
        sys.stdout.flush()
    except BrokenPipeError:
        # e.g. `lab.py probe | head`: stop quietly.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        sys.exit(0)


def _instances():
    """Names of every lab instance with a state or run directory here ('' = the default lab)."""
    names = {''}
    for pattern in ('/var/lib/netfence-lab-*', '/run/netfence-lab-*'):
        for path in glob.glob(pattern):
            name = os.path.basename(path).split('netfence-lab-', 1)[1]
            if netfence_lab.INSTANCE_RE.match(name) and name != 'lab':
                names.add(name)
    return sorted(names)


def main(argv=None):
    """Command line entry point."""
    parser = argparse.ArgumentParser(prog='lab.py', description=__doc__.split('\n', 1)[0])
    sub = parser.add_subparsers(dest='command', required=True)
    p_up = sub.add_parser('up', help='bring the lab up (idempotent)')
    p_up.add_argument('--hosts', type=int, default=None,
                      help='number of hosts (default: 3, or 5 with Docker 29 available)')
    p_up.add_argument('--versions', default=None,
                      help='comma-separated Docker versions per host, cycled '
                           '(default 20.10,28,20.10 and 29,29 with Docker 29 available)')
    p_up.add_argument('--configs', default=None,
                      help="comma-separated host configurations, cycled; each a '+'-joined "
                           'set of ' + ', '.join(netfence_lab.CONFIGS) + ' (default: default)')
    p_down = sub.add_parser('down', help='remove everything the lab created')
    p_down.add_argument('--all', action='store_true',
                        help='every lab instance on this machine (NETFENCE_LAB=…), the default lab included')
    p_status = sub.add_parser('status', help='show the hosts')
    p_status.add_argument('--json', action='store_true')
    p_probe = sub.add_parser('probe', help='probe every path to a service')
    p_probe.add_argument('--host', default=None, help='hN (default: every host)')
    p_probe.add_argument('--service', default='memcached', help="service, or 'all'")
    p_probe.add_argument('--project', default=netfence_lab.PROJECT)
    p_probe.add_argument('--timeout', type=float, default=1.0)
    p_probe.add_argument('--detail', action='store_true', help='print JSON with timings')
    sub.add_parser('inventory', help='print the path of the Ansible inventory')
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format='%(asctime)s lab: %(message)s',
                        stream=sys.stderr)
    try:
        if args.command == 'up':
            start = time.monotonic()
            versions = args.versions.split(',') if args.versions else None
            configs = args.configs.split(',') if args.configs else None
            hosts = netfence_lab.up(hosts=args.hosts, versions=versions, configs=configs)
            for host in hosts:
                _out(f'{host.name} {host.addr} netns={host.netns} docker={host.series} '
                     f'configs={"+".join(host.configs)} socket={host.docker_sock}')
            _out(f'inventory: {netfence_lab.inventory_path()}  '
                 f'({time.monotonic() - start:.1f} s)'
                 + (f'  [instance {netfence_lab.INSTANCE}]' if netfence_lab.INSTANCE else ''))
        elif args.command == 'down':
            for instance in (_instances() if args.all else [netfence_lab.INSTANCE]):
                netfence_lab.configure(instance)
                netfence_lab.down()
                _out(f'lab {instance or "(default)"} is down')
        elif args.command == 'status':
            rows = netfence_lab.status()
            _out(json.dumps(rows, indent=2) if args.json else netfence_lab.render_status(rows))
        elif args.command == 'probe':
            hosts = ([netfence_lab.get_host(args.host)] if args.host
                     else netfence_lab.lab_hosts())
            for host in hosts:
                start = time.monotonic()
                detail = netfence_lab.probe_detail(host, args.service, args.project,
                                                   args.timeout)
                took = time.monotonic() - start
                if args.detail:
                    _out(json.dumps({host.name: detail}, indent=2))
                else:
                    _out(f'### {host.name} ({host.addr}, Docker {host.series}, '
                         f'{"+".join(host.configs)}) service={args.service}  [{took:.2f} s]')
                    _out(netfence_lab.render_table(detail))
                    _out('')
        elif args.command == 'inventory':
            path = netfence_lab.inventory_path()
            if not os.path.exists(path):
                raise netfence_lab.LabError(f'{path} does not exist: run lab.py up')
            _out(path)
    except netfence_lab.LabError as exc:
        sys.stderr.write(f'lab.py {args.command}: {exc}\n')
        return 1
    return 0


if __name__ == '__main__':
    sys.exit(main())
