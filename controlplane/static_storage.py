"""The production profile's static files storage: WhiteNoise's hashed manifest, compressed with gzip only."""

from __future__ import annotations

from typing import Any

from whitenoise.compress import Compressor
from whitenoise.storage import CompressedManifestStaticFilesStorage


class GzipManifestStaticFilesStorage(CompressedManifestStaticFilesStorage):
    """What the image builds: it installs requirements.txt only, which has no brotli, so WhiteNoise writes (and
    serves) gzip files alone there. A machine with brotli installed (locust brings it with the dev requirements)
    would also write a .br of each of the ~1,000 files at brotli's highest quality: minutes of CPU on a loaded
    machine for `make run-production` and the production-run tests, and files the image never has."""

    def create_compressor(self, **kwargs: Any) -> Compressor:
        return super().create_compressor(**{**kwargs, "use_brotli": False})
