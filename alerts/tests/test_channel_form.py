"""The channel form (issue 14, item 9): each type's fields are marked so the page shows only the chosen type's,
and a generated signing secret comes with a Copy button. The browser half is in tests/test_console_browser_forms."""

from __future__ import annotations

import re

import pytest
from django.test import override_settings

from alerts.models import AlertChannel
from tests.support import console_login as logged_in
from tests.support import console_page as page
from tests.support import console_url as url

pytestmark = pytest.mark.django_db


def test_each_types_fields_are_marked_for_the_type_and_all_render_without_javascript():
    client, _member = logged_in()
    body = page(client, "alert-channel-create")
    for kind, field in (("email", "recipients"), ("pagerduty", "routing_key"), ("webhook", "secret")):
        fieldset = re.search(rf'<fieldset data-shown-for="type:{kind}">(.*?)</fieldset>', body, re.S)
        assert fieldset and f'name="{field}"' in fieldset.group(1)
    assert "hidden" not in re.findall(r"<fieldset[^>]*>", body)[0]  # hiding is the script's job
    assert "mqcloud/js/form_helpers" in body


@override_settings(OUTBOUND_HTTP_ALLOW_LOOPBACK=True)
def test_a_generated_secret_is_shown_once_with_a_copy_button():
    client, _member = logged_in()
    response = client.post(url("alert-channel-create"), {"name": "hook <b>", "type": "webhook",
                                                         "url": "http://127.0.0.1:9/hook"}, follow=True)
    body = response.content.decode()
    secret = AlertChannel.objects.get().secret
    assert secret.startswith("whsec_")
    assert f'<code id="new-channel-secret">{secret}</code>' in body
    assert 'data-copy-from="new-channel-secret">Copy</button>' in body
    assert "Channel hook &lt;b&gt; created." in body  # the name is still escaped
    assert secret not in page(client, "alert-channels")  # shown only once
