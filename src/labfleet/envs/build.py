"""Build one generation of an environment: a small venv layered on the server environment.

The server stack (JupyterHub, JupyterLab, ipykernel, labfleet itself) is big and
slow to install (~110 s, ~390 MB), and every environment needs exactly the one
the hub runs. So a generation is a venv of the server environment's own
interpreter, made without pip in under a second, whose site-packages holds only
the environment's own packages plus one ``.pth`` line that adds the server
environment's site-packages *after* them. What the environment installs shadows
the stack; nothing else leaks in (no ``--system-site-packages``: Debian's
``/usr/lib/python3/dist-packages`` stays out). The server environment is
content-addressed and never changed in place, so sharing it is safe.

Jupyter's data and config folders (``share/jupyter``, ``etc/jupyter``: the
JupyterLab app, kernel specs, server extension switches) are looked up under
``sys.prefix``, so they are copied in (~20 MB), never linked: a package that
adds a lab extension writes into this generation only.

A new generation starts as a copy of the previous one (its packages, scripts
with their ``#!`` lines rewritten, data files), then pip installs the new specs
into it, so an install changes only what pip would change in a live venv,
without ever touching files a running kernel may be importing.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

from labfleet.envs.layout import (
    GENERATION_FILE,
    MANIFEST,
    Manifest,
    check_spec,
)

Say = Callable[[str], None]
BASE_PTH = "_labfleet_server_stack.pth"
#: what the form shows of the shared stack, next to the environment's own packages
STACK = ("jupyterlab", "jupyterhub")
_PROBE = """
import importlib.metadata as md, json, sys, sysconfig
names = json.loads(sys.argv[1])
out = {"python": "%d.%d" % sys.version_info[:2], "purelib": sysconfig.get_path("purelib"),
       "platlib": sysconfig.get_path("platlib"), "versions": {}}
for name in names:
    try:
        out["versions"][name] = md.version(name)
    except md.PackageNotFoundError:
        pass
print(json.dumps(out))
"""


class BuildError(RuntimeError):
    """A generation could not be built; nothing of it is left behind."""


def probe(python: Path, names: list[str]) -> dict[str, object]:
    """Ask an interpreter for its version, site folders and installed versions of ``names``."""
    proc = subprocess.run(
        [str(python), "-c", _PROBE, json.dumps(names)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    if proc.returncode != 0:
        raise BuildError(f"{python} could not be run: {proc.stderr.strip()[-500:]}")
    result: dict[str, object] = json.loads(proc.stdout)
    return result


def _umask() -> None:
    os.umask(0o022)  # every file readable by every member's account


def _run(argv: list[str], what: str, say: Say) -> None:
    proc = subprocess.Popen(
        argv,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        preexec_fn=_umask,
        env={**os.environ, "PIP_NO_INPUT": "1", "PYTHONNOUSERSITE": "1"},
    )
    assert proc.stdout is not None
    lines: list[str] = []
    for line in proc.stdout:
        line = line.rstrip()
        lines.append(line)
        if line.startswith(("Collecting ", "Successfully installed")):
            say(f"  {line[:150]}")
    if proc.wait() != 0:
        raise BuildError(f"{what} failed:\n" + _pip_reason(lines))


def _pip_reason(lines: list[str]) -> str:
    """pip's own reason (its ERROR lines), else the last lines of its output."""
    errors = [line for line in lines if line.startswith("ERROR:")]
    return "\n".join(f"  {line}" for line in (errors or lines[-15:]))


def _make_venv(base_python: Path, prefix: Path, say: Say) -> None:
    _run([str(base_python), "-m", "venv", "--without-pip", str(prefix)], "creating the venv", say)


def _layer_on_stack(prefix: Path, python_version: str, stack_sites: list[str]) -> Path:
    """The one ``.pth`` that adds the server stack after the environment's own packages."""
    site = prefix / "lib" / f"python{python_version}" / "site-packages"
    site.mkdir(parents=True, exist_ok=True)
    lines = "".join(f"import site; site.addsitedir({path!r})\n" for path in stack_sites)
    (site / BASE_PTH).write_text(lines)
    return site


def _write_singleuser(prefix: Path) -> None:
    script = prefix / "bin" / "jupyterhub-singleuser"
    script.write_text(
        f"#!{prefix / 'bin' / 'python'}\nimport sys\nfrom jupyterhub.singleuser import main\n\n"
        "if __name__ == '__main__':\n    sys.exit(main())\n"
    )
    script.chmod(0o755)


def _copy_tree(source: Path, target: Path) -> None:
    if source.is_dir():
        shutil.copytree(
            source,
            target,
            symlinks=True,
            dirs_exist_ok=True,
            ignore=shutil.ignore_patterns("__pycache__"),
        )


def _copy_scripts(previous: Path, prefix: Path) -> None:
    """The previous generation's own scripts (not the venv's), ``#!`` pointed here."""
    for script in (previous / "bin").iterdir():
        target = prefix / "bin" / script.name
        if target.exists() or target.is_symlink() or script.is_symlink() or not script.is_file():
            continue
        data = script.read_bytes()
        if data.startswith(b"#!"):
            data = data.replace(str(previous).encode(), str(prefix).encode())
        target.write_bytes(data)
        target.chmod(script.stat().st_mode & 0o7777)


def _make_readable(root: Path) -> None:
    for dirpath, _dirnames, filenames in os.walk(root):
        os.chmod(dirpath, 0o755)  # noqa: S103 - run by every member's account
        for name in filenames:
            path = os.path.join(dirpath, name)
            if not os.path.islink(path):
                os.chmod(path, os.stat(path).st_mode | 0o444)


def build_generation(
    *,
    name: str,
    generation: int,
    prefix: Path,
    stack: Path,
    requested: list[str],
    new_specs: list[str],
    previous: Path | None,
    say: Say,
) -> Manifest:
    """Build ``prefix`` completely (or remove it and raise :class:`BuildError`)."""
    for spec in new_specs:
        check_spec(spec)
    stack_python = stack / "bin" / "python"
    try:
        facts = probe(stack_python, list(STACK))
        python_version = str(facts["python"])
        sites = list(dict.fromkeys([str(facts["purelib"]), str(facts["platlib"])]))
        say(f"  building generation {generation} in {prefix}")
        _make_venv(stack_python, prefix, say)
        site = _layer_on_stack(prefix, python_version, sites)
        if previous is None:
            for part in ("share/jupyter", "etc/jupyter"):
                _copy_tree(stack / part, prefix / part)
        else:
            old_site = previous / "lib" / f"python{python_version}" / "site-packages"
            _copy_tree(old_site, site)
            for part in ("share", "etc"):
                _copy_tree(previous / part, prefix / part)
            _copy_scripts(previous, prefix)
        _write_singleuser(prefix)
        python = prefix / "bin" / "python"
        if new_specs:
            say(f"  installing {' '.join(new_specs)}")
            pip = [str(python), "-m", "pip", "--disable-pip-version-check", "install"]
            _run([*pip, "--no-input", "--no-warn-script-location", "--", *new_specs], "pip", say)
        if previous is not None:
            _run([str(python), "-m", "compileall", "-q", str(site)], "compiling", say)
        names = [check_spec(spec).name for spec in requested]
        versions = probe(python, names)["versions"]
        assert isinstance(versions, dict)
        manifest = Manifest(
            name=name,
            generation=generation,
            created=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            python=python_version,
            base=str(stack),
            requested=list(requested),
            packages={n: str(versions[n]) for n in names if n in versions},
            stack={k: str(v) for k, v in dict(facts["versions"]).items()},  # type: ignore[call-overload]
        )
        (prefix / MANIFEST).write_text(json.dumps(manifest.to_json(), indent=2) + "\n")
        (prefix / GENERATION_FILE).write_text(f"{generation}\n")
        _make_readable(prefix)
    except BaseException:
        shutil.rmtree(prefix, ignore_errors=True)
        raise
    return manifest
