"""Import what every API process needs once, in gunicorn's master, before it forks them.

Without ``--preload`` each gunicorn worker imports Flask, SQLAlchemy, numpy, faiss, Pillow and
every plugin itself: ~85 MiB of private memory per process. Imported in the master instead,
those pages are shared copy-on-write by all workers. Only modules are loaded here: the app,
its connections and its indexes are still made in each worker after the fork (sharing a
database connection or a Redis socket across processes would corrupt both).
"""

from __future__ import annotations

import gc
import logging

log = logging.getLogger(__name__)


def import_shared_modules() -> None:
    from hma_framework.registry import make_registry
    from hma_framework.settings import load_settings
    from hma_framework.web import app  # noqa: F401  (imported for its side of the fork)

    try:
        make_registry(load_settings())  # imports every plugin's modules; the registry is dropped
    except Exception:  # a broken plugin fails in the worker too, with its full message there
        log.warning("preloading plugins in the gunicorn master failed", exc_info=True)
    # Objects that exist now live as long as the process: keep the collector from touching
    # (and so un-sharing) their pages in every worker.
    gc.freeze()
