"""The layers of DESIGN.md's data flow, as imports: what each command loads."""

import subprocess
import sys

import pytest


def loaded_after(command: list[str]) -> set[str]:
    """The top-level modules loaded by `ovbench COMMAND` run in a fresh interpreter."""
    script = ("import sys\nfrom ovbench.cli import main\ntry:\n    code = main(%r)\n"
              "except SystemExit as exc:\n    code = exc.code or 0\n"
              "print()\nprint(code)\nprint(' '.join(sorted(sys.modules)))" % (command,))
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    lines = result.stdout.strip().splitlines()
    assert lines[-2] == "0", result.stderr[-2000:]
    return set(lines[-1].split())


@pytest.mark.parametrize("command", [["--version"], ["validate", "DATA"], ["leaderboard", "--help"]])
def test_light_commands_do_not_load_torch(command, small_ovd):
    modules = loaded_after([str(small_ovd) if word == "DATA" else word for word in command])
    assert "torch" not in modules and "ovbench.cli" in modules


def test_evaluating_a_reference_loads_no_renderer_or_mesh_code(small_ovd, small_pool, tmp_path):
    modules = loaded_after(["evaluate", "--model", "pool-nn", "--data", str(small_ovd), "--pool", str(small_pool),
                            "--quiet", "--out", str(tmp_path / "result.json")])
    loaded = {m for m in modules if m.split(".")[0] in ("trimesh", "pyrender", "OpenGL")
              or m.startswith(("ovbench.generate", "ovbench.renderers", "ovbench.assets"))}
    assert loaded == set()
