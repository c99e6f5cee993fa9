"""Stripe fixtures (localstripe on loopback), loaded for the whole suite by the root conftest.py."""

from __future__ import annotations

import pytest
import requests

from billing.tests.stripe_standins import LocalStripe

WEBHOOK_SECRET = "whsec_mqcloud_tests"


@pytest.fixture(scope="session")
def localstripe():
    server = LocalStripe().start()
    yield server
    server.stop()


@pytest.fixture
def stripe_on(settings, localstripe):
    """Card payments configured, talking to localstripe; its data is wiped first."""
    requests.delete(f"{localstripe.url}/_config/data", timeout=5).raise_for_status()
    settings.STRIPE_SECRET_KEY = "sk_test_mqcloud"
    settings.STRIPE_PUBLISHABLE_KEY = "pk_test_mqcloud"
    settings.STRIPE_WEBHOOK_SECRET = WEBHOOK_SECRET
    settings.STRIPE_API_BASE = localstripe.url
    return localstripe


@pytest.fixture
def stripe_off(settings):
    settings.STRIPE_SECRET_KEY = ""
    settings.STRIPE_PUBLISHABLE_KEY = ""
    settings.STRIPE_WEBHOOK_SECRET = ""
    return settings
