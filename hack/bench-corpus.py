#!/usr/bin/env python3
"""Corpus helper for hack/bench: writes tar layers and OCI image layouts.

Subcommands (all output is deterministic for the same input):

  debian-base ROOTFS OUT.tar     the whole debootstrap tree as one layer
  debian-delta ROOTFS OUT.tar    a second layer: whiteouts (files and directories),
                                 additions, a replaced file, symlinks, hardlinks
                                 (to entries of this layer and of the base layer)
  files N OUT.tar                N small files (sizes ~ exponential, mean 2 KiB, max 64 KiB),
                                 100 per directory
  bytes MIB OUT.tar              MIB MiB of file data in 1 MiB files
  layout LAYOUT TAG CMD TAR:BLOB:COMPRESSION ...
                                 adds an image (config, manifest, blobs) to the OCI layout
                                 LAYOUT under TAG; COMPRESSION is gzip, zstd or none. Blobs are
                                 hard-linked (or copied) into blobs/sha256. Also records the
                                 layers in LAYOUT.json (read by `blobs` and the report).
  blobs LAYOUT TAG               prints "COMPRESSION<TAB>BLOB-PATH" per layer, in order
  retar IN.tar OUT.tar           the same entries in another order (another diff_id, same tree)
  trim TAR                       cuts the record padding after the end-of-archive marker
  layer-blobs LAYOUT             prints "COMPRESSION<TAB>BLOB-PATH" per distinct layer blob of
                                 every manifest index.json lists
  split IN.tar PREFIX COUNT      IN.tar as COUNT layers of mixed sizes, PREFIX0.tar ... (a
                                 multi-layer image)
"""

import hashlib
import io
import json
import os
import random
import shutil
import stat
import sys
import tarfile

MEDIA = {
    "gzip": "application/vnd.oci.image.layer.v1.tar+gzip",
    "zstd": "application/vnd.oci.image.layer.v1.tar+zstd",
    "none": "application/vnd.oci.image.layer.v1.tar",
}
EPOCH = 1700000000  # mtime of synthetic entries
CREATED = "2023-11-14T22:13:20Z"

# ---------------------------------------------------------------- content pool


def make_pool(seed, size=8 << 20):
    """A pool of bytes that compresses like ordinary files (about 2-3x with gzip):
    three quarters pseudo-text from a small vocabulary, one quarter random bytes."""
    rng = random.Random(seed)
    letters = "abcdefghijklmnopqrstuvwxyz"
    vocab = ["".join(rng.choice(letters) for _ in range(rng.randint(2, 10))) for _ in range(2000)]
    vocab += ["\n", "\n", "{", "}", "=", "0", "1", "/usr/lib", "the", "and", "return"]
    chunks = []
    total = 0
    block = 64 << 10
    while total < size:
        if rng.random() < 0.25:
            b = rng.randbytes(block)
        else:
            words = rng.choices(vocab, k=block // 5)
            b = " ".join(words).encode()[:block]
        chunks.append(b)
        total += len(b)
    return b"".join(chunks)[:size]


class PoolReader:
    """File object handing out `n` bytes of the pool starting at `off` (wrapping)."""

    def __init__(self, pool, off, n):
        self.pool, self.off, self.left = pool, off % len(pool), n

    def read(self, size=-1):
        if size is None or size < 0 or size > self.left:
            size = self.left
        out = bytearray()
        while size > 0:
            take = min(size, len(self.pool) - self.off)
            out += self.pool[self.off : self.off + take]
            self.off = (self.off + take) % len(self.pool)
            size -= take
            self.left -= take
        return bytes(out)


# ---------------------------------------------------------------- tar helpers


def open_tar(path):
    return tarfile.open(path, "w", format=tarfile.PAX_FORMAT)


def tidy(ti):
    # Numeric ownership only (tar -x then restores uids as stored) and whole-second mtimes,
    # so tarfile does not add a pax header to every entry.
    ti.uname = ti.gname = ""
    ti.mtime = int(ti.mtime)
    return ti


def synth_dir(name, mode=0o755):
    ti = tarfile.TarInfo(name)
    ti.type = tarfile.DIRTYPE
    ti.mode = mode
    ti.mtime = EPOCH
    return ti


def synth_file(name, size, mode=0o644):
    ti = tarfile.TarInfo(name)
    ti.size = size
    ti.mode = mode
    ti.mtime = EPOCH
    return ti


def walk_sorted(root):
    """Yields (relative path, absolute path) for everything under root, parents first."""
    stack = [""]
    while stack:
        rel = stack.pop()
        absdir = os.path.join(root, rel) if rel else root
        names = sorted(os.listdir(absdir))
        subdirs = []
        for n in names:
            r = f"{rel}/{n}" if rel else n
            a = os.path.join(root, r)
            yield r, a
            if stat.S_ISDIR(os.lstat(a).st_mode):
                subdirs.append(r)
        stack.extend(reversed(subdirs))


# Paths left out of the base layer, as a Dockerfile's `apt-get clean` would.
EXCLUDE_PREFIXES = ("var/cache/apt/archives/", "var/cache/apt/pkgcache.bin", "var/cache/apt/srcpkgcache.bin")


def excluded(rel):
    return rel.startswith(EXCLUDE_PREFIXES) and not rel.endswith(("/partial", "/lock"))


def cmd_debian_base(rootfs, out):
    with open_tar(out) as tf:
        for rel, a in walk_sorted(rootfs):
            if excluded(rel):
                continue
            ti = tf.gettarinfo(a, rel)  # records hardlinks by inode
            if ti is None:  # socket
                continue
            tidy(ti)
            if ti.isreg():
                with open(a, "rb") as f:
                    tf.addfile(ti, f)
            else:
                tf.addfile(ti)


def cmd_debian_delta(rootfs, out):
    regular = []
    for rel, a in walk_sorted(rootfs):
        if excluded(rel):
            continue
        st = os.lstat(a)
        if stat.S_ISREG(st.st_mode):
            regular.append(rel)

    # Directories to delete whole (those that exist), files to delete one by one.
    dir_candidates = ["usr/share/doc", "usr/share/info", "usr/share/lintian", "var/log/apt"]
    dir_whiteouts = [d for d in dir_candidates if os.path.isdir(os.path.join(rootfs, d))]
    if not dir_whiteouts:
        sys.exit("bench-corpus: no directory to white out in " + rootfs)

    def under(p, dirs):
        return any(p == d or p.startswith(d + "/") for d in dirs)

    kept = [p for p in regular if not under(p, dir_whiteouts)]
    file_whiteouts = [p for p in kept if p.startswith(("usr/share/", "usr/lib/"))][::40]
    lower_link_targets = [p for p in kept if p.startswith(("usr/bin/", "usr/sbin/")) and p not in file_whiteouts][:25]

    entries = {}  # path -> (TarInfo, payload: None | bytes | PoolReader factory)

    def parent_dirs(p):
        parts = p.split("/")[:-1]
        for i in range(1, len(parts) + 1):
            d = "/".join(parts[:i])
            if d in entries:
                continue
            a = os.path.join(rootfs, d)
            if os.path.isdir(a) and not os.path.islink(a):
                st = os.lstat(a)
                ti = synth_dir(d, stat.S_IMODE(st.st_mode))
                ti.uid, ti.gid, ti.mtime = st.st_uid, st.st_gid, int(st.st_mtime)
            else:
                ti = synth_dir(d)
            entries[d] = (ti, None)

    def put(ti, payload=None):
        parent_dirs(ti.name)
        entries[ti.name] = (ti, payload)

    for p in dir_whiteouts + file_whiteouts:
        head, _, name = p.rpartition("/")
        put(synth_file(f"{head}/.wh.{name}" if head else f".wh.{name}", 0), b"")

    pool = make_pool(7)
    rng = random.Random(11)
    added = []
    off = 0
    for d in range(20):
        for f in range(50):
            size = min(int(rng.expovariate(1 / 16384)), 1 << 20)
            name = f"opt/bench/d{d:02d}/f{f:03d}.dat"
            put(synth_file(name, size, 0o755 if f % 7 == 0 else 0o644), PoolReader(pool, off, size))
            added.append(name)
            off += size + 4093
    big = 8 << 20
    put(synth_file("opt/bench/big.bin", big), PoolReader(pool, 12345, big))
    for i, target in enumerate(added[::10]):
        ti = synth_file(f"opt/bench/links/l{i:03d}", 0)
        ti.type, ti.linkname = tarfile.LNKTYPE, target
        put(ti)
    for target in lower_link_targets:
        ti = synth_file("opt/bench/lower-links/" + target.replace("/", "_"), 0)
        ti.type, ti.linkname = tarfile.LNKTYPE, target
        put(ti)
    for name, target in (("opt/bench/current", "d00"), ("usr/local/bin/bench-sh", "/usr/bin/dash")):
        ti = synth_file(name, 0, 0o777)
        ti.type, ti.linkname = tarfile.SYMTYPE, target
        put(ti)
    # replaces files of the base layer
    for name, text in (("etc/hostname", b"bench\n"), ("etc/motd", b"oci-unpack benchmark image\n")):
        put(synth_file(name, len(text)), text)

    with open_tar(out) as tf:
        for name in sorted(entries):
            ti, payload = entries[name]
            if isinstance(payload, bytes):
                tf.addfile(ti, io.BytesIO(payload))
            elif payload is not None:
                tf.addfile(ti, payload)
            else:
                tf.addfile(ti)


def cmd_files(n, out):
    n = int(n)
    pool = make_pool(3)
    rng = random.Random(n)
    off = 0
    with open_tar(out) as tf:
        tf.addfile(synth_dir("data"))
        for i in range(n):
            top, sub, f = i // 10000, (i // 100) % 100, i % 100
            if i % 10000 == 0:
                tf.addfile(synth_dir(f"data/t{top:02d}"))
            if i % 100 == 0:
                tf.addfile(synth_dir(f"data/t{top:02d}/s{sub:02d}"))
            size = min(int(rng.expovariate(1 / 2048)), 64 << 10)
            tf.addfile(synth_file(f"data/t{top:02d}/s{sub:02d}/f{f:02d}.txt", size), PoolReader(pool, off, size))
            off += size + 1021


def cmd_bytes(mib, out):
    mib = int(mib)
    pool = make_pool(5)
    with open_tar(out) as tf:
        tf.addfile(synth_dir("data"))
        for i in range(mib):
            if i % 100 == 0:
                tf.addfile(synth_dir(f"data/d{i // 100:03d}"))
            tf.addfile(synth_file(f"data/d{i // 100:03d}/f{i:05d}.bin", 1 << 20), PoolReader(pool, i * 1048573, 1 << 20))


# ---------------------------------------------------------------- OCI layout


def sha256_file(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while True:
            b = f.read(1 << 20)
            if not b:
                break
            h.update(b)
    return h.hexdigest()


def write_atomic(path, data):
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(data)
    os.replace(tmp, path)


def put_blob(layout, data=None, path=None):
    """Stores bytes or a file in blobs/sha256; returns (digest, size)."""
    d = os.path.join(layout, "blobs", "sha256")
    os.makedirs(d, exist_ok=True)
    if data is not None:
        hexd = hashlib.sha256(data).hexdigest()
        target = os.path.join(d, hexd)
        if not os.path.exists(target):
            write_atomic(target, data)
        return "sha256:" + hexd, len(data)
    hexd = sha256_file(path)
    target = os.path.join(d, hexd)
    if not os.path.exists(target):
        try:
            os.link(path, target)
        except OSError:
            shutil.copyfile(path, target + ".tmp")
            os.replace(target + ".tmp", target)
    return "sha256:" + hexd, os.path.getsize(path)


def tar_stats(path):
    """(diff_id, uncompressed size, entry count) of a tar file; cached beside it."""
    cache = path + ".stats.json"
    st = os.stat(path)
    if os.path.exists(cache):
        c = json.load(open(cache))
        if c.get("size") == st.st_size and c.get("mtime") == st.st_mtime:
            return c["diff_id"], c["size"], c["entries"]
    with tarfile.open(path, "r:") as tf:
        entries = sum(1 for _ in tf)
    c = {"diff_id": "sha256:" + sha256_file(path), "size": st.st_size, "mtime": st.st_mtime, "entries": entries}
    json.dump(c, open(cache, "w"))
    return c["diff_id"], c["size"], c["entries"]


def cmd_layout(layout, tag, cmd, *layer_specs):
    os.makedirs(layout, exist_ok=True)
    write_atomic(os.path.join(layout, "oci-layout"), b'{"imageLayoutVersion":"1.0.0"}')
    layers, diff_ids, info = [], [], []
    for spec in layer_specs:
        tar, blob, comp = spec.rsplit(":", 2)
        if comp not in MEDIA:
            sys.exit(f"bench-corpus: unknown compression {comp!r}")
        diff_id, usize, entries = tar_stats(tar)
        digest, size = put_blob(layout, path=blob)
        layers.append({"mediaType": MEDIA[comp], "digest": digest, "size": size})
        diff_ids.append(diff_id)
        info.append(
            {
                "compression": comp,
                "blob": os.path.join(layout, "blobs", "sha256", digest.split(":")[1]),
                "size": size,
                "tar_size": usize,
                "entries": entries,
            }
        )
    config = {
        "created": CREATED,
        "architecture": "amd64",
        "os": "linux",
        "config": {"Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"], "Cmd": [cmd]},
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
        "history": [{"created": CREATED, "created_by": f"hack/bench layer {i}"} for i in range(len(layers))],
    }
    cdigest, csize = put_blob(layout, data=json.dumps(config, sort_keys=True).encode())
    manifest = {
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": cdigest, "size": csize},
        "layers": layers,
    }
    mdigest, msize = put_blob(layout, data=json.dumps(manifest, sort_keys=True).encode())
    index_path = os.path.join(layout, "index.json")
    index = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json", "manifests": []}
    if os.path.exists(index_path):
        index = json.load(open(index_path))
    index["manifests"] = [
        m for m in index["manifests"] if m.get("annotations", {}).get("org.opencontainers.image.ref.name") != tag
    ]
    index["manifests"].append(
        {
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "digest": mdigest,
            "size": msize,
            "platform": {"architecture": "amd64", "os": "linux"},
            "annotations": {"org.opencontainers.image.ref.name": tag},
        }
    )
    write_atomic(index_path, json.dumps(index, indent=1, sort_keys=True).encode())
    meta_path = layout.rstrip("/") + ".json"
    meta = json.load(open(meta_path)) if os.path.exists(meta_path) else {}
    meta[tag] = info
    write_atomic(meta_path, json.dumps(meta, indent=1, sort_keys=True).encode())


def cmd_blobs(layout, tag):
    meta = json.load(open(layout.rstrip("/") + ".json"))
    if tag not in meta:
        sys.exit(f"bench-corpus: no tag {tag} in {layout}")
    for layer in meta[tag]:
        print(f"{layer['compression']}\t{layer['blob']}")


def cmd_retar(src, out):
    """The same entries in another order (directories first, then the other entries reversed,
    hardlinks last): the same tree under another diff_id, as a publisher that re-tarred makes."""
    with tarfile.open(src) as t:
        members = t.getmembers()
        dirs = [m for m in members if m.isdir()]
        links = [m for m in members if m.islnk()]
        rest = [m for m in members if not m.isdir() and not m.islnk()]
        with tarfile.open(out, "w", format=tarfile.PAX_FORMAT) as o:
            for m in dirs + rest[::-1] + links:
                o.addfile(m, t.extractfile(m) if m.isreg() else None)


def cmd_trim(path):
    """Cuts the record padding after the end-of-archive marker (Python's tarfile and GNU tar pad
    to 10 KiB records; Go's archive/tar does not): skopeo's zstd:chunked writer re-serialises the
    tar without it but keeps the diff_ids, so a padded layer's chunked copy would not verify."""
    with tarfile.open(path) as t:
        t.getmembers()
        end = t.offset + 1024
    with open(path, "r+b") as f:
        f.truncate(end)


def cmd_layer_blobs(layout):
    """Every distinct layer blob of every manifest index.json lists: compression and path."""
    index = json.load(open(os.path.join(layout, "index.json")))
    seen = set()
    for entry in index["manifests"]:
        manifest = json.load(open(os.path.join(layout, "blobs", *entry["digest"].split(":"))))
        for layer in manifest["layers"]:
            if layer["digest"] in seen:
                continue
            seen.add(layer["digest"])
            comp = "zstd" if layer["mediaType"].endswith("zstd") else "gzip" if "gzip" in layer["mediaType"] else "none"
            print(f"{comp}\t{os.path.join(layout, 'blobs', *layer['digest'].split(':'))}")


def cmd_split(tar_in, prefix, count):
    """Splits a layer into COUNT layers of mixed sizes (PREFIX0.tar ...): directories, symlinks and
    other non-regular entries in the first, regular files grouped by their first two path
    components, the groups dealt round-robin to the others (a hardlink goes with its target)."""
    count = int(count)
    with tarfile.open(tar_in, "r:") as src:
        members = src.getmembers()
        groups = sorted({"/".join(m.name.split("/")[:2]) for m in members if m.isreg()})
        bucket_of = {g: 1 + i % (count - 1) for i, g in enumerate(groups)}
        where = {}
        outs = [open_tar(f"{prefix}{i}.tar") for i in range(count)]
        try:
            for m in members:
                if m.isreg():
                    b = bucket_of["/".join(m.name.split("/")[:2])]
                    where[m.name] = b
                    outs[b].addfile(m, src.extractfile(m))
                elif m.islnk():
                    outs[where.get(m.linkname, 0)].addfile(m)
                else:
                    outs[0].addfile(m)
        finally:
            for t in outs:
                t.close()


def main():
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    cmds = {
        "debian-base": cmd_debian_base,
        "debian-delta": cmd_debian_delta,
        "files": cmd_files,
        "bytes": cmd_bytes,
        "layout": cmd_layout,
        "blobs": cmd_blobs,
        "retar": cmd_retar,
        "trim": cmd_trim,
        "layer-blobs": cmd_layer_blobs,
        "split": cmd_split,
    }
    fn = cmds.get(sys.argv[1])
    if fn is None:
        sys.exit(__doc__)
    fn(*sys.argv[2:])


if __name__ == "__main__":
    main()
