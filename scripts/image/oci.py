#!/usr/bin/env python3
"""OCI image tarballs without Docker or a registry, for `ctr images import`.

  oci.py dockerfile DOCKERFILE BINARY NAME OUT.tar
      The image a Dockerfile of this project describes, from an already built BINARY: the
      rootfs from the `scripts/image/rootfs.sh` line of its build stage (the same script, the
      same arguments), USER/EXPOSE/ENV/WORKDIR/ENTRYPOINT/CMD from its final stage. One
      description for both ways of building, so they cannot drift.
  oci.py rootfs ROOTFS CONFIG.json NAME OUT.tar
      An image of a prepared ROOTFS with the given image config (User, Env, Entrypoint, ...).

The tarball is an OCI image layout with one layer (files owned as on disk, times zeroed so the
same inputs give the same digest) and `io.containerd.image.name` = NAME on its manifest.
"""

import gzip
import hashlib
import io
import json
import os
import shlex
import subprocess
import sys
import tarfile
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))


def stages(dockerfile):
    """The Dockerfile's instructions, grouped by stage: [[(INSTRUCTION, args), ...], ...]."""
    lines, cur = [], ""
    for raw in open(dockerfile).read().splitlines():
        if raw.lstrip().startswith("#") and not cur:
            continue
        if raw.endswith("\\"):
            cur += raw[:-1] + " "
            continue
        cur += raw
        if cur.strip():
            lines.append(cur.strip())
        cur = ""
    out = []
    for line in lines:
        word, _, rest = line.partition(" ")
        word = word.upper()
        if word == "FROM":
            out.append([])
        if out:
            out[-1].append((word, rest.strip()))
    return out


def exec_form(args):
    return json.loads(args) if args.startswith("[") else ["/bin/sh", "-c", args]


def image_config(final):
    """Docker-style image config from the final stage's instructions."""
    cfg = {"Env": [], "ExposedPorts": {}}
    for word, args in final:
        if word == "USER":
            cfg["User"] = args
        elif word == "EXPOSE":
            for p in args.split():
                cfg["ExposedPorts"][p if "/" in p else p + "/tcp"] = {}
        elif word == "ENV":
            if "=" in args.split()[0]:
                cfg["Env"] += shlex.split(args)
            else:
                k, _, v = args.partition(" ")
                cfg["Env"].append(f"{k}={v.strip()}")
        elif word == "WORKDIR":
            cfg["WorkingDir"] = args
        elif word == "ENTRYPOINT":
            cfg["Entrypoint"] = exec_form(args)
        elif word == "CMD":
            cfg["Cmd"] = exec_form(args)
    return cfg


def rootfs_args(dockerfile):
    """The arguments of the build stage's `scripts/image/rootfs.sh ROOTFS BINARY DEST`."""
    for stage in stages(dockerfile):
        for word, args in stage:
            words = shlex.split(args)
            if word == "RUN" and words and words[0].endswith("scripts/image/rootfs.sh"):
                return words[1:]
    sys.exit(f"{dockerfile}: no `RUN scripts/image/rootfs.sh ...` in its build stage")


def blob(layout, data):
    digest = hashlib.sha256(data).hexdigest()
    with open(os.path.join(layout, "blobs", "sha256", digest), "wb") as f:
        f.write(data)
    return {"digest": "sha256:" + digest, "size": len(data)}


def layer_tar(rootfs):
    """The rootfs as one uncompressed tar: sorted, times zeroed, owners as on disk."""
    paths = []
    for dirpath, dirnames, filenames in os.walk(rootfs):
        dirnames.sort()
        # Symlinks to directories are listed in dirnames and not followed: entries of their own.
        paths += [os.path.join(dirpath, n) for n in dirnames + filenames]
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for path in sorted(paths):
            info = tar.gettarinfo(path, arcname=os.path.relpath(path, rootfs))
            info.mtime, info.uname, info.gname = 0, "", ""
            if info.isfile():
                with open(path, "rb") as f:
                    tar.addfile(info, f)
            else:
                tar.addfile(info)
    return buf.getvalue()


def write(rootfs, config, name, out):
    raw = layer_tar(rootfs)
    diff_id = "sha256:" + hashlib.sha256(raw).hexdigest()
    layer = gzip.compress(raw, mtime=0)
    with tempfile.TemporaryDirectory() as layout:
        os.makedirs(os.path.join(layout, "blobs", "sha256"))
        layer_desc = blob(layout, layer)
        layer_desc["mediaType"] = "application/vnd.oci.image.layer.v1.tar+gzip"
        cfg = {
            "architecture": "amd64" if os.uname().machine == "x86_64" else "arm64",
            "os": "linux",
            "config": config,
            "rootfs": {"type": "layers", "diff_ids": [diff_id]},
        }
        cfg_desc = blob(layout, json.dumps(cfg, sort_keys=True).encode())
        cfg_desc["mediaType"] = "application/vnd.oci.image.config.v1+json"
        manifest = {
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": cfg_desc,
            "layers": [layer_desc],
        }
        man_desc = blob(layout, json.dumps(manifest, sort_keys=True).encode())
        man_desc["mediaType"] = "application/vnd.oci.image.manifest.v1+json"
        man_desc["annotations"] = {
            "io.containerd.image.name": name,
            "org.opencontainers.image.ref.name": name.rsplit(":", 1)[-1],
        }
        index = {"schemaVersion": 2, "manifests": [man_desc]}
        with open(os.path.join(layout, "index.json"), "w") as f:
            json.dump(index, f)
        with open(os.path.join(layout, "oci-layout"), "w") as f:
            json.dump({"imageLayoutVersion": "1.0.0"}, f)
        with tarfile.open(out, "w") as tar:
            for entry in sorted(os.listdir(layout)):
                tar.add(os.path.join(layout, entry), arcname=entry)
    print(f"{name}: {out} ({len(layer) // 1024} KiB layer)")


def main(argv):
    if len(argv) == 6 and argv[1] == "dockerfile":
        _, _, dockerfile, binary, name, out = argv
        root_in_build, _, dest = rootfs_args(dockerfile)
        with tempfile.TemporaryDirectory() as tmp:
            rootfs = os.path.join(tmp, root_in_build.lstrip("/"))
            subprocess.run([os.path.join(HERE, "rootfs.sh"), rootfs, binary, dest], check=True)
            write(rootfs, image_config(stages(dockerfile)[-1]), name, out)
    elif len(argv) == 6 and argv[1] == "rootfs":
        _, _, rootfs, config, name, out = argv
        write(rootfs, json.load(open(config)), name, out)
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main(sys.argv)
