"""The invitation form explains itself (issue 14, item 13): Developer by default, what each role may do, how
long the link works, and when the password on the accept page is needed."""

from __future__ import annotations

import pytest
from django.test import override_settings

from projects.console.forms import InvitationAcceptForm, InvitationForm, MemberForm
from projects.console.views.members import duration_in_words
from projects.roles import ROLE_DESCRIPTIONS, Role
from projects.tenancy import Principal
from projects.tests.factories import MembershipFactory
from tests.support import console_login as logged_in
from tests.support import console_page as page

pytestmark = pytest.mark.django_db


def _principal(role: str) -> Principal:
    membership = MembershipFactory(role=role)
    return Principal.for_membership(membership)


def test_every_role_has_a_one_line_description():
    assert set(ROLE_DESCRIPTIONS) == {role.value for role in Role}
    assert all("\n" not in line and line.endswith(".") for line in ROLE_DESCRIPTIONS.values())


@pytest.mark.parametrize("role", [Role.OWNER, Role.ADMIN])
def test_the_role_defaults_to_developer_and_each_grantable_role_is_explained(role):
    form = InvitationForm(principal=_principal(role))
    assert form["role"].value() == Role.DEVELOPER
    help_text = str(form.fields["role"].help_text)
    for value, _label in form.fields["role"].choices:
        assert ROLE_DESCRIPTIONS[value] in help_text
    if role == Role.ADMIN:  # an admin cannot make owners: owner is neither offered nor described
        assert ROLE_DESCRIPTIONS[Role.OWNER] not in help_text


def test_editing_a_member_keeps_their_role_rather_than_the_invitation_default():
    form = MemberForm(principal=_principal(Role.OWNER), initial={"role": Role.VIEWER})
    assert form["role"].value() == Role.VIEWER


@pytest.mark.parametrize(("seconds", "words"), [(7 * 86_400, "7 days"), (86_400, "1 day"), (36 * 3_600, "36 hours"),
                                                (90 * 60, "90 minutes"), (45, "45 seconds")])
def test_durations_are_said_in_the_largest_exact_unit(seconds, words):
    assert duration_in_words(seconds) == words


@override_settings(INVITATION_TTL_SECONDS=3 * 86_400)
def test_the_invitation_page_says_how_long_the_link_works_from_the_setting():
    client, _owner = logged_in()
    body = page(client, "invitation-create")
    assert "it expires after 3 days." in body and "after a while" not in body


def test_the_accept_password_says_when_it_is_needed():
    existing = InvitationAcceptForm(new_account=False, signed_in=False)
    assert existing.fields["password"].required
    assert "not needed once you are logged in" in existing.fields["password"].help_text
    new = InvitationAcceptForm(new_account=True, signed_in=False)
    assert new.fields["password"].required and "creates your account" in new.fields["password"].help_text
    assert "password" not in InvitationAcceptForm(new_account=False, signed_in=True).fields
