"""Rule metrics in words and units in the console (issue 14, item 15); the API keeps the identifiers."""

from __future__ import annotations

import html

import pytest

from alerts.console.forms import RuleForm
from alerts.console.metric_names import METRIC_NAMES, metric_choices, metric_name
from alerts.models import RULE_METRICS, AlertRule
from alerts.templatetags.alert_metrics import with_threshold
from projects.tests.factories import ProjectFactory
from tests.support import console_login as logged_in
from tests.support import console_page as page


def test_every_rule_metric_has_a_name_and_the_choices_keep_the_identifiers():
    assert set(METRIC_NAMES) == set(RULE_METRICS)
    assert [value for value, _label in metric_choices()] == list(RULE_METRICS)
    labels = dict(RuleForm(projects=[], deployments=[], channels=[]).fields["metric"].choices)
    assert labels["connections_pct"] == "Connections used (% of the spec's limit)"
    assert labels["messages_in_rate"] == "Messages in (messages/s)"
    assert labels["certificate_expiry_days"] == "TLS certificate expires in (days)"
    assert labels["deployment_failed"] == "Deployment failed (1 while it holds, else 0)"


def test_values_carry_the_unit_without_trailing_zeros():
    assert with_threshold(metric_name("connections_pct"), "85.0000") == "85 % of the spec's limit"
    assert with_threshold(metric_name("auth_failures_rate"), 2.5) == "2.5 failures/s"
    assert with_threshold(metric_name("peering_failed"), 1) == "1"  # a condition has no unit
    assert metric_name("a_future_metric").label == "a_future_metric"


@pytest.mark.django_db
def test_the_rules_page_says_the_condition_in_words_and_keeps_the_identifier_in_reach():
    client, member = logged_in()
    project = ProjectFactory(organization=member.organization)
    AlertRule.objects.create(organization=member.organization, project=project, name="busy",
                             metric="connections_pct", operator=">", threshold=80, duration_s=300)
    body = html.unescape(page(client, "alert-rules"))
    assert "Connections used > 80 % of the spec's limit</span> for 300 s" in body
    assert 'title="API: connections_pct > 80"' in body
