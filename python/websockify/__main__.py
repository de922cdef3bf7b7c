"""`python -m websockify ARGS`: runs the websockify-rs binary installed beside this package."""

import os
import shutil
import sys
import sysconfig


def binary():
    """The binary pip put in this environment's scripts directory (user or system scheme)."""
    name = "websockify.exe" if os.name == "nt" else "websockify"
    dirs = [sysconfig.get_path("scripts")]
    try:
        dirs.append(sysconfig.get_path("scripts", sysconfig.get_preferred_scheme("user")))
    except (AttributeError, KeyError):
        pass
    for d in dirs:
        path = os.path.join(d, name)
        if os.path.isfile(path) and os.access(path, os.X_OK):
            return path
    return shutil.which(name)


def main():
    path = binary()
    if path is None:
        sys.exit("websockify: the websockify-rs binary is not installed beside this package")
    args = sys.argv[1:]
    # Plugins run under the interpreter that ran us (its venv has their dependencies).
    if not any(a == "--plugin-python" or a.startswith("--plugin-python=") for a in args):
        args = ["--plugin-python", sys.executable] + args
    os.execv(path, [path] + args)


if __name__ == "__main__":
    main()
