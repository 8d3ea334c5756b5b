"""Provide a real OCI engine (Podman 5 + Buildah + runc) and stand-in base images, for the tests
that build and run the generated image (tests/test_image.py, `svcgen rehearse --image`).

No engine runs on a new machine here and no image registry is reachable (facts and traps:
/work/shared/CONTAINERS.md). From Debian's archive alone:

1. engine: `debootstrap` Debian 13 (trixie) with podman, buildah, runc into the cache — the host's
   Debian 12 podman cannot build the Dockerfile and trixie's cannot be installed on the host;
2. namespace: a mount namespace whose `/` is that tree (a plain chroot is not enough: `podman exec`
   and `podman healthcheck run` would land in the host's root), kept by one `sleep infinity`;
   /tmp, /work, /home and /root are bound in at the same paths, so build contexts keep their paths;
3. base images, under the exact FROM names of template/Dockerfile.jinja, so the Dockerfile builds
   unmodified with `--pull=never`: `python:X.Y.Z-slim-bookworm` = Debian 12 minbase with the
   runtime libraries and this machine's own CPython X.Y in /usr/local (only the patch level
   differs), `ghcr.io/astral-sh/uv:V` = the static uv from PyPI's musllinux wheel of uv==V.

Then `.tools/bin/podman` runs podman in that namespace. Cached in ~/.cache/svcgen/engine
($SVCGEN_ENGINE_CACHE), idempotent (a warm run checks stamps: well under a second), safe to run
from several worktrees at once (one lock file). Each part prints its time.
Usage: scripts/install-engine.sh [--python X.Y ...] [--force]   (default: every Python the
Dockerfile knows)
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
BIN = REPO / ".tools" / "bin"
DOCKERFILE = REPO / "template" / "Dockerfile.jinja"
CACHE = Path(os.environ.get("SVCGEN_ENGINE_CACHE") or Path.home() / ".cache" / "svcgen" / "engine")
ROOT = CACHE / "trixie"  # the engine's filesystem, `/` of its namespace
BASE = CACHE / "bookworm"  # the stand-in python image, without Python
PIDFILE = CACHE / "namespace.pid"
#: Host paths bound into the namespace at the same path (build contexts, projects, caches).
SHARED = ("/tmp", "/work", "/home", "/root")

ENGINE_PACKAGES = (
    "podman,buildah,runc,conmon,netavark,aardvark-dns,catatonit,nftables,iptables,passt,"
    "ca-certificates"
)
# What python:X.Y-slim-bookworm holds besides Python (its runtime libraries).
BASE_PACKAGES = (
    "libssl3,libffi8,libsqlite3-0,zlib1g,libexpat1,libbz2-1.0,liblzma5,libreadline8,libncursesw6,"
    "libuuid1,tzdata,ca-certificates,netbase"
)
# Parts of a CPython tree a slim image does not carry.
PYTHON_SKIP = ("test", "idlelib", "tkinter", "turtledemo", "site-packages", "ensurepip")


class InstallError(Exception):
    pass


def log(message: str) -> None:
    print(f"install-engine: {message}", flush=True)


def run(*cmd: str | Path, env: dict[str, str] | None = None, input: bytes | None = None) -> str:
    try:
        result = subprocess.run(
            [str(c) for c in cmd], env=env, input=input, capture_output=True, check=False
        )
    except OSError as error:
        raise InstallError(f"cannot run {cmd[0]}: {error}") from error
    out = result.stdout.decode(errors="replace")
    if result.returncode != 0:
        err = result.stderr.decode(errors="replace")
        raise InstallError(f"`{' '.join(map(str, cmd))}` exited {result.returncode}\n{out}{err}")
    return out


def digest(*parts: str) -> str:
    return hashlib.sha256("\0".join(parts).encode()).hexdigest()[:16]


def timed(name: str, key: str, stamp: Path, force: bool, build: Callable[[], None]) -> None:
    """Run `build` unless `stamp` records `key`; print how long it took either way."""
    started = time.monotonic()
    if not force and stamp.is_file() and stamp.read_text() == key:
        log(f"{name}: cached ({time.monotonic() - started:.1f}s)")
        return
    stamp.unlink(missing_ok=True)
    build()
    stamp.write_text(key)
    log(f"{name}: ready in {time.monotonic() - started:.1f}s")


@contextlib.contextmanager
def locked() -> Iterator[None]:
    CACHE.mkdir(parents=True, exist_ok=True)
    with open(CACHE / ".lock", "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        yield


# --- the FROM names ----------------------------------------------------------------------------


def python_images() -> dict[str, str]:
    """{"3.12": "python:3.12.11-slim-bookworm", ...} as template/Dockerfile.jinja names them."""
    text = DOCKERFILE.read_text(encoding="utf-8")
    patches = re.search(r"set python_image = (\{[^}]*\})\[python_version\] ~ \"([^\"]+)\"", text)
    if not patches:
        raise InstallError(f"cannot read the python image map from {DOCKERFILE}")
    pairs = re.findall(r'"(\d+\.\d+)": "([\d.]+)"', patches.group(1))
    return {minor: qualified(f"python:{patch}{patches.group(2)}") for minor, patch in pairs}


def qualified(name: str) -> str:
    """The full name an engine gives a short one (Docker Hub's library), as `docker pull` would."""
    first = name.split("/", 1)[0]
    if "/" in name and ("." in first or ":" in first or first == "localhost"):
        return name
    return f"docker.io/{name}" if "/" in name else f"docker.io/library/{name}"


def uv_image() -> tuple[str, str]:
    match = re.search(r"^FROM (ghcr\.io/astral-sh/uv:(\S+))", DOCKERFILE.read_text(), re.M)
    if not match:
        raise InstallError(f"no `FROM ghcr.io/astral-sh/uv:...` in {DOCKERFILE}")
    return match.group(1), match.group(2)


# --- Debian ------------------------------------------------------------------------------------


def apt_sources() -> str:
    """The Debian mirror this machine's apt uses (never a name written into the repo)."""
    sources = [Path("/etc/apt/sources.list"), *Path("/etc/apt/sources.list.d").glob("*")]
    for path in sources:
        if not path.is_file():
            continue
        text = path.read_text(errors="replace")
        for match in re.finditer(r"(?:^deb\s+(?:\[[^]]*\]\s+)?|^URIs:\s*)(\S+)", text, re.M):
            uri = match.group(1).rstrip("/")
            if uri.endswith("/debian"):
                return uri
    raise InstallError("no Debian mirror in /etc/apt/sources.list*")


def ensure_debootstrap() -> None:
    if shutil.which("debootstrap"):
        return
    if os.geteuid() != 0:
        raise InstallError("the engine needs root (mount namespaces, debootstrap)")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    try:
        run("apt-get", "install", "-y", "-q", "debootstrap", env=env)
    except InstallError:  # stale package lists
        run("apt-get", "update", "-q", env=env)
        run("apt-get", "install", "-y", "-q", "debootstrap", env=env)


def debootstrap(suite: str, packages: str, dest: Path) -> None:
    """A minbase tree of `suite` at `dest`, built aside and renamed into place (atomic)."""
    staging = Path(tempfile.mkdtemp(prefix=f"{dest.name}.", dir=CACHE))
    try:
        run("debootstrap", "--variant=minbase", f"--include={packages}", suite, staging,
            apt_sources())  # fmt: skip
        if dest.exists():
            shutil.rmtree(dest)
        staging.rename(dest)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def configure_engine() -> None:
    """runc (crun refuses this host's hybrid cgroups); nofile within root's hard limit (root lacks
    CAP_SYS_RESOURCE here, podman's default 1048576 fails)."""
    import resource

    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    hard = 1048576 if hard == resource.RLIM_INFINITY else hard
    conf = ROOT / "etc" / "containers" / "containers.conf"
    conf.parent.mkdir(parents=True, exist_ok=True)
    conf.write_text(
        "# written by svcgen scripts/install_engine.py\n"
        "[containers]\n"
        f'default_ulimits = ["nofile={hard}:{hard}", "nproc=32768:32768"]\n'
        "[engine]\n"
        'runtime = "runc"\n'
        'events_logger = "file"\n'
        'cgroup_manager = "cgroupfs"\n'
    )


# --- the namespace -----------------------------------------------------------------------------


def namespace_pid() -> int | None:
    """The pid keeping the namespace, if it runs and its `/` is the engine's tree."""
    try:
        pid = int(PIDFILE.read_text())
        marker = Path(f"/proc/{pid}/root/etc/containers/containers.conf")
        return pid if marker.is_file() and "svcgen" in marker.read_text() else None
    except (OSError, ValueError):
        return None


NAMESPACE_SCRIPT = """
set -e
R="$1"; shift
mount --make-rprivate /
mount --bind "$R" "$R"
for d in proc sys dev; do mount --rbind "/$d" "$R/$d"; done
mount -t tmpfs -o mode=755 tmpfs "$R/run"
for d in "$@"; do
  if [ -d "$d" ]; then mkdir -p "$R$d"; mount --bind "$d" "$R$d"; fi
done
cp /etc/resolv.conf /etc/hosts "$R/etc/" 2>/dev/null || true
cd "$R"
mount --move . /
exec chroot . sleep infinity
"""


def start_namespace() -> int:
    pid = namespace_pid()
    if pid is not None:
        return pid
    proc = subprocess.Popen(
        ["unshare", "--mount", "--propagation", "private", "sh", "-c", NAMESPACE_SCRIPT, "ns",
         str(ROOT), *SHARED],
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        start_new_session=True,
    )  # fmt: skip
    PIDFILE.write_text(str(proc.pid))
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            err = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
            raise InstallError(f"the engine's namespace did not start: {err}")
        if namespace_pid() == proc.pid:
            clean_leftovers(proc.pid)
            return proc.pid
        time.sleep(0.05)
    raise InstallError("the engine's namespace did not come up within 10 s")


def podman(*args: str | Path, input: bytes | None = None) -> str:
    pid = start_namespace()
    env = {**os.environ, "PODMAN_IGNORE_CGROUPSV1_WARNING": "1"}
    return run(
        "nsenter", "--mount", "--target", str(pid), "/usr/bin/podman", *args, env=env, input=input
    )


def clean_leftovers(pid: int) -> None:
    """An earlier namespace that ended with containers in it leaves them (and conmon) behind, and
    netavark's nftables table in the host's network namespace: clear both."""
    env = {**os.environ, "PODMAN_IGNORE_CGROUPSV1_WARNING": "1"}
    with contextlib.suppress(InstallError):
        run(
            "nsenter",
            "--mount",
            "--target",
            str(pid),
            "/usr/bin/podman",
            "rm",
            "-af",
            "-t",
            "0",
            env=env,
        )
    if shutil.which("nft"):
        with contextlib.suppress(InstallError):
            run("nft", "delete", "table", "inet", "netavark")


WRAPPER = """#!/bin/sh
# podman from svcgen's engine (scripts/install_engine.py): Debian 13 podman in its own mount
# namespace; the current directory is kept when it is shared with the namespace.
pidfile='{pidfile}'
pid=$(cat "$pidfile" 2>/dev/null)
if [ -z "$pid" ] || ! grep -qs svcgen "/proc/$pid/root/etc/containers/containers.conf"; then
  '{python}' '{script}' --namespace >&2 || exit 125
  pid=$(cat "$pidfile")
fi
export PODMAN_IGNORE_CGROUPSV1_WARNING=1
exec nsenter --mount --target "$pid" \
  sh -c 'cd "$0" 2>/dev/null || cd /; exec /usr/bin/podman "$@"' "$PWD" "$@"
"""


def write_wrapper() -> None:
    BIN.mkdir(parents=True, exist_ok=True)
    text = WRAPPER.format(pidfile=PIDFILE, python=sys.executable, script=Path(__file__).resolve())
    staged = BIN / f".podman.{os.getpid()}"
    staged.write_text(text)
    staged.chmod(0o755)
    staged.replace(BIN / "podman")


# --- base images -------------------------------------------------------------------------------


def host_python(minor: str) -> Path:
    """The prefix of this machine's CPython `minor` (pyenv's builds are relocatable)."""
    root = Path(os.environ.get("PYENV_ROOT") or Path.home() / ".pyenv") / "versions"
    for candidate in sorted(root.glob(f"{minor}.*"), reverse=True):
        if (candidate / "bin" / f"python{minor}").is_file():
            return candidate
    if Path(f"/usr/local/bin/python{minor}").is_file():
        return Path("/usr/local")
    raise InstallError(f"no CPython {minor} on this machine (looked in {root})")


def extra_ca_certificates() -> list[Path]:
    """Certificates this machine adds to the system store (an egress that re-signs TLS): uv in
    the build needs them too."""
    return sorted(Path("/usr/local/share/ca-certificates").glob("**/*.crt"))


def image_exists(name: str) -> bool:
    try:
        podman("image", "exists", name)
    except InstallError:
        return False
    return True


def import_python(minor: str, name: str) -> None:
    prefix = host_python(minor)
    with tempfile.TemporaryDirectory(prefix="python-image.", dir=CACHE) as tmp:
        tree = Path(tmp) / "root"
        run("cp", "-a", "--reflink=auto", BASE, tree)
        ignore = shutil.ignore_patterns(*PYTHON_SKIP, "__pycache__", "config-*", "*.a")
        shutil.copytree(prefix, tree / "usr" / "local", symlinks=True, ignore=ignore,
                        dirs_exist_ok=True)  # fmt: skip
        for cert in extra_ca_certificates():
            dest = tree / "usr" / "local" / "share" / "ca-certificates" / cert.name
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(cert, dest)
        run("chroot", tree, "/sbin/ldconfig")
        run("chroot", tree, "/usr/sbin/update-ca-certificates", "--fresh")
        run("chroot", tree, f"/usr/local/bin/python{minor}", "-c", "import ssl, sqlite3, ctypes")
        archive = Path(tmp) / "root.tar"
        with tarfile.open(archive, "w") as tar:
            tar.add(tree, arcname=".")
        podman(
            "import",
            "--change", "ENV PATH=/usr/local/bin:/usr/local/sbin:/usr/sbin:/usr/bin:/sbin:/bin",
            "--change", "ENV LANG=C.UTF-8",
            "--change", "ENV SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt",
            "--change", f'CMD ["python{minor}"]',
            archive, name,
        )  # fmt: skip


def import_uv(name: str, version: str) -> None:
    with tempfile.TemporaryDirectory(prefix="uv-image.", dir=CACHE) as tmp:
        work = Path(tmp)
        wheel_platform = "musllinux_1_1_x86_64"
        run(sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--only-binary",
            ":all:", "--platform", wheel_platform, "-d", work, f"uv=={version}")  # fmt: skip
        wheel = next(work.glob("uv-*.whl"))
        archive = work / "uv.tar"
        with zipfile.ZipFile(wheel) as zipped, tarfile.open(archive, "w") as tar:
            for command in ("uv", "uvx"):
                data = zipped.read(f"uv-{version}.data/scripts/{command}")
                info = tarfile.TarInfo(command)
                info.size, info.mode = len(data), 0o755
                import io

                tar.addfile(info, io.BytesIO(data))
        podman("import", "--change", 'ENTRYPOINT ["/uv"]', archive, name)


# --- main --------------------------------------------------------------------------------------


def install(pythons: list[str], force: bool) -> None:
    ensure_debootstrap()
    timed(
        "engine (Debian 13 podman, buildah, runc)",
        digest("trixie", ENGINE_PACKAGES),
        CACHE / "trixie.stamp",
        force,
        lambda: debootstrap("trixie", ENGINE_PACKAGES, ROOT),
    )
    configure_engine()
    started = time.monotonic()
    start_namespace()
    write_wrapper()
    log(f"namespace and {BIN / 'podman'}: ready in {time.monotonic() - started:.1f}s")
    timed(
        "base tree (Debian 12 minbase + runtime libraries)",
        digest("bookworm", BASE_PACKAGES),
        CACHE / "bookworm.stamp",
        force,
        lambda: debootstrap("bookworm", BASE_PACKAGES, BASE),
    )
    uv_name, uv_version = uv_image()
    ensure_image(uv_name, force, lambda: import_uv(uv_name, uv_version))
    images = python_images()
    for minor in pythons:
        if minor not in images:
            raise InstallError(f"Python {minor}: not in the Dockerfile's map {sorted(images)}")
        name = images[minor]
        ensure_image(name, force, lambda m=minor, n=name: import_python(m, n))  # type: ignore[misc]


def ensure_image(name: str, force: bool, make: Callable[[], None]) -> None:
    started = time.monotonic()
    if not force and image_exists(name):
        log(f"image {name}: cached ({time.monotonic() - started:.1f}s)")
        return
    make()
    log(f"image {name}: ready in {time.monotonic() - started:.1f}s")


def main(argv: list[str]) -> int:
    force = "--force" in argv
    pythons = [argv[i + 1] for i, arg in enumerate(argv[:-1]) if arg == "--python"]
    started = time.monotonic()
    try:
        with locked():
            if "--namespace" in argv:  # what .tools/bin/podman asks for when the namespace ended
                ROOT.joinpath("etc").is_dir() or _raise("engine not installed: make engine")
                start_namespace()
                return 0
            install(pythons or sorted(python_images()), force)
    except InstallError as error:
        print(f"install-engine: FAILED: {error}", file=sys.stderr)
        return 1
    log(f"ready in {time.monotonic() - started:.1f}s: {BIN / 'podman'}")
    return 0


def _raise(message: str) -> bool:
    raise InstallError(message)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
