"""Every error under /api/v1 is problem+json, whatever raised it and whether DEBUG is on; the console gets its
own error pages, never Django's debug or plain pages."""

from __future__ import annotations

import pytest
from django.http import HttpResponse
from django.test import Client, override_settings
from django.urls import include, path

from projects.roles import Role
from projects.tests.factories import AuditEventFactory, MembershipFactory, OrganizationFactory, make_api_key
from tests.test_problems import assert_problem

pytestmark = pytest.mark.django_db


def _boom(request):
    raise RuntimeError("a bug")


def _console_boom(request):
    raise RuntimeError("a bug in a page")


def _ok(request):
    return HttpResponse("ok")


# The real URLs plus views that crash, under /api/v1 and in the console.
urlpatterns = [
    path("api/v1/test-boom", _boom),
    path("console/test-boom", _console_boom),
    path("test-form", _ok),
    path("", include("controlplane.urls")),
]
handler400 = "controlplane.urls.handler400"
handler403 = "controlplane.urls.handler403"
handler404 = "controlplane.urls.handler404"
handler500 = "controlplane.urls.handler500"


@pytest.fixture(params=[False, True], ids=["debug-off", "debug-on"])
def debug(request, settings):
    settings.DEBUG = request.param
    return request.param


@pytest.fixture
def api(make_client):
    _, secret = make_api_key(OrganizationFactory(), role=Role.OWNER)
    client = make_client(secret)
    client.raise_request_exception = False
    return client


def test_deeply_nested_json_is_a_400_problem(api, debug):
    for body in ("[" * 2048 + "]" * 2048, '{"name": ' + "[" * 100 + "]" * 100 + "}"):
        for url in ("/api/v1/projects", "/api/v1/signup"):
            assert_problem(api.post(url, data=body, content_type="application/json"), 400)


def test_newline_and_control_characters_in_api_paths_are_404_problems(api, debug):
    for url in ("/api/v1/projects%0A", "/api/v1/projects%0D", "/api/v1/%0D%0Aprojects", "/api/v1/projects%00",
                "/api/v1/projects/%0Aprj_x"):
        body = assert_problem(api.get(url), 404)
        assert "console" not in body["detail"]  # not a listing of the URL patterns


def test_a_body_over_the_limit_is_a_413_problem(api, debug, settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 10_000
    big = '{"name": "' + "x" * 20_000 + '"}'
    for url in ("/api/v1/projects", "/api/v1/signup", "/api/v1/nowhere"):
        assert_problem(api.post(url, data=big, content_type="application/json"), 413)


@override_settings(ROOT_URLCONF=__name__)
def test_an_unhandled_exception_is_a_500_problem(api, debug):
    body = assert_problem(api.get("/api/v1/test-boom"), 500)
    assert "a bug" not in body["detail"]


def test_405_and_unknown_method_are_problems(api, debug):
    response = api.put("/api/v1/projects", {}, format="json")
    assert_problem(response, 405)
    assert "GET" in response["Allow"]
    assert_problem(api.generic("FROB", "/api/v1/projects"), 405)


def test_csrf_failure_under_the_api_is_a_403_problem(debug):
    member = MembershipFactory()
    client = Client(enforce_csrf_checks=True, raise_request_exception=False)
    client.force_login(member.user)
    assert_problem(client.post("/api/v1/projects", {"name": "x"}, content_type="application/json"), 403)
    # Where there is no endpoint, nothing could be forged: the answer says so, as a GET's does.
    assert_problem(client.post("/api/v1/nowhere", {"name": "x"}, content_type="application/json"), 404)


# --- the console --------------------------------------------------------------------------------------------
def _console_error(response, status: int) -> str:
    assert response.status_code == status, response.content[:300]
    assert response["Content-Type"].startswith("text/html")
    html = response.content.decode()
    assert 'class="card error-card"' in html and f'<p class="error-code">{status}</p>' in html, html[:2000]
    assert "Traceback" not in html and "URLconf" not in html
    return html


@override_settings(ROOT_URLCONF=__name__)
def test_console_error_pages_use_the_console_template(settings):
    settings.DEBUG = False
    client = Client(raise_request_exception=False)
    client.force_login(MembershipFactory().user)
    _console_error(client.get("/console/no-such-page"), 404)
    _console_error(client.get("/console/test-boom"), 500)
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1000
    _console_error(client.post("/console/projects/new", {"name": "x" * 5000}), 413)


def test_console_csrf_failure_is_the_console_403_page(settings):
    settings.DEBUG = False
    client = Client(enforce_csrf_checks=True)
    client.force_login(MembershipFactory().user)
    html = _console_error(client.post("/console/projects/new", {"name": "x"}), 403)
    assert "reload" in html.lower()


def test_console_page_numbers_out_of_range_or_garbage_do_not_fail():
    member = MembershipFactory(role=Role.OWNER)
    AuditEventFactory(organization=member.organization)
    client = Client()
    client.force_login(member.user)
    for page in ("99999999999999999999999", "-5", "1e9", "abc", "9223372036854775807", "nan", "", "%00"):
        for url in ("/console/audit", "/console/alerts", "/console/alerts/deliveries"):
            response = client.get(url, {"page": page})
            assert response.status_code == 200, (url, page, response.content[:300])


def test_a_console_action_opened_with_get_is_the_console_405_page(settings):
    # A POST-only action typed into the address bar got Django's empty 405, which Chromium shows as its own
    # error screen.
    settings.DEBUG = False
    client = Client()
    client.force_login(MembershipFactory().user)
    response = client.get("/console/switch-organization")
    html = _console_error(response, 405)
    assert response["Allow"] and "POST" in response["Allow"]
    assert "address bar" in html or "button" in html


def test_an_audit_page_past_the_last_says_so_and_leads_back():
    member = MembershipFactory(role=Role.OWNER)
    AuditEventFactory(organization=member.organization)
    client = Client()
    client.force_login(member.user)
    html = client.get("/console/audit", {"page": "40", "action": ""}).content.decode()
    assert "No events this far back" in html and 'href="?page=1&amp;action="' in html
    assert "Actions in this organization will show up here" not in html
