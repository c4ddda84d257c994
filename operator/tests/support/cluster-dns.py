#!/usr/bin/env python3
"""Cluster DNS records for dnsmasq (node.sh): every second, a hosts file with
NAME.NS.svc.cluster.local for each Service's ClusterIP, and for headless Services their
endpoints (and HOSTNAME.NAME.NS.svc.cluster.local for StatefulSet pods).

  cluster-dns.py KUBECONFIG HOSTS_FILE
"""
import json
import os
import subprocess
import sys
import time

kubeconfig, hosts = sys.argv[1], sys.argv[2]


def records():
    out = subprocess.run(
        ["kubectl", "--kubeconfig", kubeconfig, "get", "services,endpoints", "-A", "-o", "json"],
        check=True, capture_output=True, text=True,
    ).stdout
    items = json.loads(out)["items"]
    headless = set()
    lines = []
    for o in items:
        if o["kind"] != "Service":
            continue
        m, ip = o["metadata"], o["spec"].get("clusterIP")
        fqdn = f"{m['name']}.{m['namespace']}.svc.cluster.local"
        if ip and ip != "None":
            lines.append(f"{ip} {fqdn}")
        else:
            headless.add((m["namespace"], m["name"]))
    for o in items:
        m = o["metadata"]
        if o["kind"] != "Endpoints" or (m["namespace"], m["name"]) not in headless:
            continue
        fqdn = f"{m['name']}.{m['namespace']}.svc.cluster.local"
        for subset in o.get("subsets") or []:
            for a in (subset.get("addresses") or []) + (subset.get("notReadyAddresses") or []):
                lines.append(f"{a['ip']} {fqdn}")
                if a.get("hostname"):
                    lines.append(f"{a['ip']} {a['hostname']}.{fqdn}")
    return "\n".join(sorted(set(lines))) + "\n"


last = None
while True:
    try:
        text = records()
        if text != last:
            with open(hosts + ".tmp", "w") as f:
                f.write(text)
            os.replace(hosts + ".tmp", hosts)
            last = text
    except (subprocess.CalledProcessError, ValueError) as e:
        print(f"cluster-dns: {e}", file=sys.stderr, flush=True)
    time.sleep(1)
