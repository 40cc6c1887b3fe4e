"""``python3 -m engines ...`` and the isolated launcher ``python3 -I BUNDLE/engines/__main__.py ...``.

Python puts the current folder on ``sys.path`` for ``-m``, so a ``numpy.py`` dropped in a bundle root would
shadow numpy: the package's ``__init__`` takes the bundle root off ``sys.path`` before it imports anything
(the package imports its own modules relatively). But for ``-m`` Python imports ``runpy`` (and ``pkgutil``)
from the current folder before any of this code runs, so the bundle's scripts use the launcher form: with
``-I`` Python adds no folder at all and runs this file directly, so nothing in the bundle is importable
before the package has checked it; the user's site-packages and PYTHONPATH (which ``-I`` drops) are put
back, minus the bundle root.
"""

import os
import sys


def _outside(entries, banned):
    return [p for p in entries if os.path.realpath(p or os.curdir) not in banned]


def _isolate(package_dir, launcher):
    banned = {os.path.realpath(os.path.dirname(package_dir))}
    sys.path[:] = _outside(sys.path, banned)
    if launcher:
        import site

        extra = _outside([p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p], banned)
        sys.path[0:0] = extra
        user_site = site.getusersitepackages()
        if os.path.isdir(user_site) and os.path.realpath(user_site) not in banned:
            site.addsitedir(user_site)


if __package__:  # python3 -m engines
    _isolate(os.path.dirname(os.path.abspath(__file__)), launcher=False)
    from .cli import main
else:  # python3 -I BUNDLE/engines/__main__.py: load the package from this folder, by path
    import importlib
    import importlib.util

    _here = os.path.dirname(os.path.abspath(__file__))
    _isolate(_here, launcher=True)
    _spec = importlib.util.spec_from_file_location("engines", os.path.join(_here, "__init__.py"),
                                                   submodule_search_locations=[_here])
    _package = importlib.util.module_from_spec(_spec)
    sys.modules["engines"] = _package
    _spec.loader.exec_module(_package)
    main = importlib.import_module("engines.cli").main

sys.exit(main())
