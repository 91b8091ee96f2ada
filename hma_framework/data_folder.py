"""The data folder is private to the account that runs hma: owner-only folders and files.

It holds the database (handler secrets, secret headers), queued media, the Redis append-only
file and the upload-URL signing key. Every process that writes there (``hma serve`` and its
children, workers, the scheduler, the CLI, the WSGI factory) tightens its umask first, so
files it creates are ``0600`` and folders ``0700`` whatever umask the operator's shell had;
``hma serve`` also tightens what an older version left behind.
"""

from __future__ import annotations

import os
from pathlib import Path

#: Group and other bits stripped from everything a process creates.
PRIVATE_UMASK = 0o077
DIR_MODE = 0o700
FILE_MODE = 0o600


def restrict_umask() -> int:
    """Strip group/other permission bits from files this process creates; return the old mask.

    The mask is process-wide, which is the point: SQLite, redis-server and gunicorn create
    files through their own code, and inherit it.
    """
    old = os.umask(PRIVATE_UMASK)
    os.umask(old | PRIVATE_UMASK)
    return old


def make_private_dir(path: Path) -> Path:
    """Create ``path`` (and parents) if needed, and make ``path`` itself owner-only."""
    path.mkdir(parents=True, exist_ok=True, mode=DIR_MODE)
    if path.stat().st_mode & 0o777 != DIR_MODE:
        path.chmod(DIR_MODE)
    return path


def secure_tree(root: Path) -> int:
    """Make ``root`` and everything under it owner-only; return how many modes changed.

    Run once at ``hma serve`` start, for folders created by an older version or by hand.
    Symlinks are left alone (chmod would follow them out of the folder).
    """
    changed = 0
    make_private_dir(root)
    for folder, dirnames, filenames in os.walk(root):
        for name, wanted in [(d, DIR_MODE) for d in dirnames] + [(f, FILE_MODE) for f in filenames]:
            path = Path(folder) / name
            try:
                info = path.lstat()
                if path.is_symlink() or info.st_mode & 0o777 & ~wanted == 0:
                    continue
                path.chmod(info.st_mode & 0o777 & wanted)
                changed += 1
            except FileNotFoundError:
                continue  # removed while we walked (a finished upload, a rotated file)
    return changed
