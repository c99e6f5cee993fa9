"""Django settings of the gunicorn that ``load.py`` measures: the product's settings unchanged (the production
profile, from the environment ``load.py`` gives) but for the URLconf, which puts the bare baseline views of
``bare_views.py`` in front of the product's routes (``load_urls.py``) so both are served by the same processes,
and the static files, collected for the run outside the checkout."""

import os

from controlplane.settings import *  # noqa: F403

ROOT_URLCONF = "load_urls"
STATIC_ROOT = os.environ["BENCH_STATIC_ROOT"]
# Pages name static files through the manifest, as in production; production's storage also compresses every
# file at the image's build (gzip and, with brotli installed as it is beside locust, brotli: over a minute here),
# which no measured request reads: the manifest alone is collected in 3 s.
STORAGES = {**STORAGES, "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.ManifestStaticFilesStorage"}}  # noqa: F405
