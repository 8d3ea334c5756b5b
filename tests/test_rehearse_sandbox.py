"""The rehearsal's sandbox: bubblewrap arguments (svcgen/sandbox.py)."""

from __future__ import annotations

from pathlib import Path

from svcgen.rehearse.sandbox import SandboxSpec, bwrap_argv


def test_bwrap_mounts_emptydirs_and_keeps_the_project_visible(tmp_path: Path) -> None:
    spec = SandboxSpec(
        argv=["python", "-m", "svc"],
        env={"PATH": "/usr/bin"},
        cwd=str(tmp_path),
        uid=10001,
        gid=10001,
        tmpfs={"/tmp": 64 * 2**20},
        workdir=str(tmp_path),
        image_paths=[str(tmp_path / ".venv")],
        keep=[str(tmp_path / ".venv")],
    )
    argv = bwrap_argv(spec, "bwrap", 3)
    joined = " ".join(argv)
    assert "--uid 10001 --gid 10001" in joined
    assert "--cap-drop ALL" in joined
    assert f"--size {64 * 2**20} --tmpfs /tmp" in joined
    # /tmp first, then the workdir tmpfs, then the venv bound into it; read-only at the end
    order = [argv.index("/tmp"), argv.index(str(tmp_path)), argv.index(str(tmp_path / ".venv"))]
    assert order == sorted(order)
    assert argv[argv.index("--remount-ro") + 1] == str(tmp_path)
    assert argv[-3:] == ["python", "-m", "svc"]
