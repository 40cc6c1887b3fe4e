"""``python3 -I -B BUNDLE/engines/__main__.py ...`` (the launcher the bundle scripts use) and ``python3 -m engines``.

The launcher runs as a script, so Python compiles it from source (never from a ``__pycache__`` file); it
reads nothing from the bundle before it has loaded ``_bootstrap.py`` from source, and the bootstrap checks
the whole bundle (every listed file's sha256, nothing unlisted, no links, no byte code) before anything else
of the bundle is imported; every later import of ``engines.*`` is compiled from source too. With ``-I``
Python adds no folder to ``sys.path`` (no current folder, no script folder), so nothing in the bundle can
shadow a standard module; the user's site-packages and PYTHONPATH (which ``-I`` drops) are put back, minus
anything inside the bundle. ``-B`` (and the bootstrap) write no byte code.

``python3 -m engines`` is weaker: Python itself imports ``runpy`` (from the current folder) and
``engines/__init__`` (from byte code where it finds a matching ``__pycache__`` file) before any code of this
package runs; ``engines/__init__`` then runs the same bootstrap first. Scripts use the launcher.

Also usable without running a command: ``runpy.run_path("BUNDLE/engines/__main__.py", run_name="engines_loader")``
returns the checked package as ``["package"]`` (the safest way for an application to import the bundle's API).
"""

import sys

sys.dont_write_bytecode = True

import os  # noqa: E402  (already loaded by Python's startup: never taken from the bundle)

if not __package__:  # run as a script without -I: its folder (engines/) and the bundle root off sys.path first
    _folders = {os.path.realpath(os.path.dirname(os.path.abspath(__file__)))}
    _folders.add(os.path.dirname(next(iter(_folders))))
    sys.path[:] = [p for p in sys.path if os.path.realpath(p or os.curdir) not in _folders]


def _bootstrap(here):
    """engines/_bootstrap.py, compiled from its source (never from byte code)."""
    module = sys.modules.get("engines._bootstrap")
    if module is None:
        import types

        path = os.path.join(here, "_bootstrap.py")
        module = types.ModuleType("engines._bootstrap")
        module.__file__ = path
        with open(path, "rb") as f:
            exec(compile(f.read(), path, "exec", dont_inherit=True), module.__dict__)
        sys.modules["engines._bootstrap"] = module
    return module


def _restore_user_paths(here, boot):
    """The user's PYTHONPATH and site-packages that ``-I`` dropped, minus the bundle."""
    import site

    outer = os.path.realpath(os.path.dirname(here))
    in_bundle = boot.bundle_root_of(here) is not None
    extra = [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep)
             if p and not boot.banned_path(p, outer, in_bundle)]
    sys.path[0:0] = extra
    user_site = site.getusersitepackages()
    if os.path.isdir(user_site) and not boot.banned_path(user_site, outer, in_bundle):
        site.addsitedir(user_site)


def _load_package(here):
    """Check the bundle (when ``here`` is in one) and import the package ``engines`` from ``here``."""
    import importlib

    boot = _bootstrap(here)
    boot.enter(here)
    if sys.flags.isolated:
        _restore_user_paths(here, boot)
    return importlib.import_module("engines")


if __package__:  # python3 -m engines: engines/__init__ has run the bootstrap already
    from .cli import main

    sys.exit(main())
else:
    _here = os.path.dirname(os.path.abspath(__file__))
    try:
        package = _load_package(_here)
    except Exception as _exc:  # the bootstrap's refusal (or an unreadable bundle): one line, status 2
        if __name__ != "__main__":
            raise
        _text = str(_exc).strip().splitlines()
        _message = _text[0] if _text else type(_exc).__name__
        print("error: " + _message, file=sys.stderr)
        _boot = sys.modules.get("engines._bootstrap")
        if _boot is not None:  # deploy's status file, written by the bootstrap (none of the bundle's code runs)
            _boot.deploy_refusal_status(sys.argv[1:], _message, getattr(_exc, "exit_status", 2))
        sys.exit(getattr(_exc, "exit_status", 2))
    if __name__ == "__main__":
        import importlib

        sys.exit(importlib.import_module("engines.cli").main())
