//! The archive endpoints through the Python `docker` SDK (installed by hack/deps.sh)
//! against a private berthd: `put_archive` of a tar built in Python, `get_archive`
//! with its path stat, `export()`, `diff()`, and `commit()` whose image is then run.

use anyhow::Result;
use berth_e2e::{require_root, Berthd};

const SCENARIO: &str = r##"
import io, sys, tarfile, time, docker
c = docker.DockerClient(base_url=sys.argv[1])

def tar_of(files):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as t:
        for name, (data, mode) in files.items():
            if data is None:
                info = tarfile.TarInfo(name)
                info.type = tarfile.DIRTYPE
                info.mode = mode
                t.addfile(info)
                continue
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mode = mode
            info.uid, info.gid = 1234, 4321
            info.mtime = 1_600_000_000
            t.addfile(info, io.BytesIO(data))
    return buf.getvalue()

def untar(chunks):
    data = b"".join(chunks)
    return tarfile.open(fileobj=io.BytesIO(data), mode="r")

box = c.containers.run("busybox", ["sleep", "1000"], detach=True, name="sdk-archive")

# put_archive: a directory, a file in it, a script; then seen from inside.
ok = box.put_archive("/tmp", tar_of({
    "up": (None, 0o750),
    "up/hello.txt": (b"hello from python\n", 0o640),
    "up/run.sh": (b"#!/bin/sh\necho ran-$1\n", 0o755),
}))
assert ok is True, ok
code, out = box.exec_run(["sh", "-c", "cat /tmp/up/hello.txt; /tmp/up/run.sh x; "
                                      "stat -c '%a %u %g %Y' /tmp/up/hello.txt /tmp/up"])
assert code == 0, (code, out)
lines = out.decode().splitlines()
assert lines[0] == "hello from python" and lines[1] == "ran-x", lines
assert lines[2] == "640 1234 4321 1600000000", lines
assert lines[3].split()[0] == "750", lines

# put_archive into a missing directory: the SDK's NotFound.
try:
    box.put_archive("/nosuch/dir", tar_of({"a": (b"a", 0o644)}))
    raise SystemExit("put_archive into a missing directory succeeded")
except docker.errors.NotFound:
    pass

# get_archive: the stat and a tar whose entries start with the base name.
chunks, stat = box.get_archive("/tmp/up")
assert stat["name"] == "up", stat
assert stat["mode"] & (1 << 31), stat          # os.ModeDir
assert stat["mode"] & 0o777 == 0o750, stat
t = untar(chunks)
names = sorted(t.getnames())
assert names == ["up", "up/hello.txt", "up/run.sh"], names
assert t.extractfile("up/hello.txt").read() == b"hello from python\n"
assert t.getmember("up/hello.txt").uid == 1234
chunks, stat = box.get_archive("/tmp/up/hello.txt")
assert stat["name"] == "hello.txt" and stat["size"] == 18, stat
assert untar(chunks).getnames() == ["hello.txt"]
box.exec_run(["ln", "-s", "/tmp/up/hello.txt", "/tmp/link"])
chunks, stat = box.get_archive("/tmp/link")
assert stat["linkTarget"] == "/tmp/up/hello.txt", stat
assert stat["mode"] & (1 << 27), stat          # os.ModeSymlink
t = untar(chunks)
assert t.getmember("link").issym() and t.getmember("link").linkname == "/tmp/up/hello.txt"
try:
    box.get_archive("/nosuch")
    raise SystemExit("get_archive of a missing path succeeded")
except docker.errors.NotFound:
    pass

# diff: what the container changed against its image.
box.exec_run(["sh", "-c", "rm /bin/true; echo x >>/etc/passwd; mkdir /made"])
changes = {(d["Path"], d["Kind"]) for d in box.diff()}
for want in [("/made", 1), ("/bin/true", 2), ("/etc/passwd", 0), ("/tmp/up/hello.txt", 1)]:
    assert want in changes, (want, sorted(changes))
assert not any(p == "/bin/sh" for p, _ in changes), sorted(changes)

# export: the whole root filesystem as a tar.
t = untar(box.export())
names = set(n.lstrip("./") for n in t.getnames())
for want in ["tmp/up/hello.txt", "bin/busybox", "made", "etc/passwd"]:
    assert want in names, want
assert "bin/true" not in names

# commit with a message, author, changes; the new image runs with them.
img = box.commit(repository="sdk-committed", tag="v1", message="from python",
                 author="Py Thon <py@example.org>",
                 changes=["ENV COMMITTED=yes", "WORKDIR /tmp/up",
                          'CMD ["sh", "-c", "cat hello.txt; echo $COMMITTED"]'])
img.reload()
assert "sdk-committed:v1" in img.tags, img.tags
# The message is the new layer's history comment and the image's own Comment.
assert img.history()[0]["Comment"] == "from python", img.history()[0]
assert img.attrs["Comment"] == "from python", img.attrs["Comment"]
assert img.attrs["Author"] == "Py Thon <py@example.org>", img.attrs["Author"]
assert "COMMITTED=yes" in img.attrs["Config"]["Env"], img.attrs["Config"]
assert img.attrs["Config"]["WorkingDir"] == "/tmp/up", img.attrs["Config"]
out = c.containers.run("sdk-committed:v1", remove=True)
assert out == b"hello from python\nyes\n", out
out = c.containers.run("sdk-committed:v1", ["sh", "-c", "test -e /bin/true || echo gone; ls -d /made"],
                       remove=True)
assert out == b"gone\n/made\n", out

box.remove(force=True)
c.images.remove("sdk-committed:v1")
print("sdk archive ok")
"##;

#[test]
fn python_sdk_put_get_archive_export_diff_commit() -> Result<()> {
    require_root();
    let berthd = Berthd::start()?;
    berthd.import_busybox("busybox")?;
    let out = berthd.python_sdk(SCENARIO)?;
    assert_eq!(out.trim(), "sdk archive ok");
    Ok(())
}
