"""Set-based metering (PostgreSQL): a range's usage rows from lifecycle intervals in one SQL statement.

The same rows :func:`billing.metering.metered_seconds` gives hour by hour (it stays the oracle, see
``billing/tests/test_interval_metering.py``): each deployment's events become intervals with ``LEAD()``, each
interval is cut at the hours it spans, and each piece counts its whole seconds less the whole seconds it
shares with each (merged) annual term, sub-seconds truncated per piece as the Python function truncates them.
Metering 10,000 deployments for a month is then one statement over tens of thousands of events instead of
millions of rows built in Python and copied in.

Most pieces are whole hours that no annual term touches (of an interval without a term, or of a gap between an
interval's terms): those are 3,600 seconds, alone in their hour, and skip the aggregate; only the hours such a
stretch starts or ends in are summed per (deployment, hour, spec, rate), less what they share with a term.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from billing.metering import RATE_OF_STATUS, RUNNING, STOPPED
from projects.models import SITE_CURRENCY

# Terms are merged per deployment first (overlapping or touching terms are one), as ``metering._merged`` does.
_INTERVALS_SQL = """
WITH currencies AS (
    SELECT * FROM unnest(%(sites)s::text[], %(currencies)s::text[]) AS c(site, currency)
), deps AS (
    SELECT d.id, d.organization_id, c.currency
    FROM deployments_deployment AS d
    JOIN projects_organization AS o ON o.id = d.organization_id
    JOIN currencies AS c ON c.site = o.site
    WHERE d.created_at < %(end)s AND (d.deleted_at IS NULL OR d.deleted_at >= %(start)s)
        AND (%(deployments)s::text[] IS NULL OR d.id = ANY(%(deployments)s::text[]))
), events AS (
    SELECT s.* FROM deps CROSS JOIN LATERAL (
        SELECT e.deployment_id, e.created_at, e.id, e.to_status, e.spec_id FROM deployments_deploymentevent AS e
        WHERE e.deployment_id = deps.id AND e.created_at <= %(start)s
        ORDER BY e.created_at DESC, e.id DESC LIMIT 1) AS s
    UNION ALL
    SELECT e.deployment_id, e.created_at, e.id, e.to_status, e.spec_id
    FROM deployments_deploymentevent AS e JOIN deps ON deps.id = e.deployment_id
    WHERE e.created_at > %(start)s AND e.created_at < %(end)s
), spans AS (
    SELECT deployment_id, spec_id, to_status, greatest(created_at, %(start)s::timestamptz) AS since,
           coalesce(lead(created_at) OVER (PARTITION BY deployment_id ORDER BY created_at, id),
                    %(end)s::timestamptz) AS until
    FROM events
), term_rows AS (
    SELECT deployment_id, term_start, term_end,
           max(term_end) OVER (PARTITION BY deployment_id ORDER BY term_start, term_end
                               ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING) AS reach
    FROM billing_annualcharge WHERE kind = 'term' AND term_start < %(end)s AND term_end > %(start)s
), term_islands AS (
    SELECT deployment_id, term_start, term_end,
           count(*) FILTER (WHERE reach IS NULL OR term_start > reach)
               OVER (PARTITION BY deployment_id ORDER BY term_start, term_end) AS island
    FROM term_rows
), terms AS (
    SELECT deployment_id, min(term_start) AS term_start, max(term_end) AS term_end
    FROM term_islands GROUP BY deployment_id, island
), intervals AS (
    SELECT s.deployment_id, s.spec_id, s.since, s.until,
           CASE WHEN s.to_status = ANY(%(running)s) THEN 'running' ELSE 'stopped' END AS rate,
           -- Joined on the deployment (hashed), not asked per span: a subquery per span scanned every term
           -- (or, as the planner chose for the table, every term started before the span): quadratic in the fleet.
           coalesce(bool_or(t.term_start < s.until AND t.term_end > s.since), false) AS termed
    FROM spans AS s LEFT JOIN terms AS t ON t.deployment_id = s.deployment_id
    WHERE s.until > s.since AND (s.to_status = ANY(%(running)s) OR s.to_status = ANY(%(stopped)s))
    -- A deployment's spans of positive length start at different instants: this is one row per span.
    GROUP BY s.deployment_id, s.spec_id, s.since, s.until, s.to_status
), term_gaps AS (
    -- What lies between a deployment's merged terms, before the first and after the last.
    SELECT deployment_id, coalesce(lag(term_end) OVER (PARTITION BY deployment_id ORDER BY term_start),
                                   '-infinity'::timestamptz) AS after, term_start AS before
    FROM terms
    UNION ALL
    SELECT deployment_id, max(term_end), 'infinity'::timestamptz FROM terms GROUP BY deployment_id
), gaps AS (
    -- The stretches of an interval that touches a term outside every merged term. Hours of it that no gap
    -- touches lie in one merged term (merged terms neither overlap nor touch): each piece there counts its
    -- whole seconds less the same whole seconds, 0, and is not made (an annual deployment's month is otherwise
    -- a piece per hour). A join, not a subquery per interval (that scanned every term per interval).
    SELECT i.deployment_id, i.spec_id, i.rate, i.since, i.until,
           greatest(i.since, g.after) AS gap_start, least(i.until, g.before) AS gap_end
    FROM intervals AS i JOIN term_gaps AS g ON g.deployment_id = i.deployment_id
    WHERE i.termed AND least(i.until, g.before) > greatest(i.since, g.after)
), free_spans AS (
    -- What no term touches: intervals without a term whole, and the gaps of the rest. An hour inside one of
    -- them is a whole 3,600 s, alone in its hour (a deployment's intervals do not overlap, nor do its gaps):
    -- only the first and last hour of each are cut into pieces. A gap's month was otherwise a piece per hour
    -- (a deployment switched to annual mid-month: hundreds of pieces, each joined to its terms).
    SELECT deployment_id, spec_id, rate, false AS termed, since, until, since AS span_start, until AS span_end
    FROM intervals WHERE NOT termed
    UNION ALL
    SELECT deployment_id, spec_id, rate, true, since, until, gap_start, gap_end FROM gaps
), pieces AS (
    -- A span's first and last hours, unless it covers them whole: the interval's part of that hour (an hour a
    -- gap starts or ends in may hold part of a term, subtracted below). Two gaps of an interval may cut the
    -- same hour: one piece.
    SELECT DISTINCT f.deployment_id, f.spec_id, f.rate, f.termed, h AS hour_start,
           greatest(f.since, h) AS since, least(f.until, h + interval '1 hour') AS until
    FROM free_spans AS f CROSS JOIN LATERAL (
        SELECT DISTINCT h FROM (VALUES (date_trunc('hour', f.span_start, 'UTC')),
                                       (date_trunc('hour', f.span_end - interval '1 microsecond', 'UTC'))) AS v(h)) AS x
    WHERE h < f.span_start OR h + interval '1 hour' > f.span_end
), contributions AS (
    SELECT deployment_id, hour_start, spec_id, rate, floor(extract(epoch FROM until - since))::int AS seconds
    FROM pieces
    UNION ALL
    SELECT p.deployment_id, p.hour_start, p.spec_id, p.rate,
           -floor(extract(epoch FROM least(p.until, t.term_end) - greatest(p.since, t.term_start)))::int
    FROM pieces AS p JOIN terms AS t ON t.deployment_id = p.deployment_id
        AND t.term_start < p.until AND t.term_end > p.since
    WHERE p.termed
"""
_USAGE_ROWS_SQL = _INTERVALS_SQL + """), whole_hours AS (
    -- Hours a span no term touches covers whole: one row each, no other piece in that hour.
    SELECT f.deployment_id, h AS hour_start, f.spec_id, f.rate, 3600 AS seconds
    FROM free_spans AS f CROSS JOIN LATERAL generate_series(
        date_trunc('hour', f.span_start - interval '1 microsecond', 'UTC') + interval '1 hour',
        f.span_end - interval '1 hour', interval '1 hour') AS h
), usage AS (
    SELECT * FROM whole_hours
    UNION ALL
    SELECT deployment_id, hour_start, spec_id, rate, sum(seconds)::int FROM contributions
    GROUP BY deployment_id, hour_start, spec_id, rate HAVING sum(seconds) > 0
)
SELECT u.deployment_id, u.hour_start, u.spec_id, u.rate, deps.organization_id, u.seconds, deps.currency,
       CASE WHEN u.rate = 'stopped' THEN p.stopped_hourly ELSE p.hourly END AS hourly_price
FROM usage AS u JOIN deps ON deps.id = u.deployment_id
JOIN deployments_specprice AS p ON p.spec_id = u.spec_id AND p.currency = deps.currency
"""  # noqa: S608 (constants joined; values are parameters)
# A month's seconds per (deployment, spec, rate) without a row per hour: the whole hours of a span no term
# touches are counted, not generated. Every hour's sum is at least 0, so the month's sum is positive exactly when
# some hour has a row.
_MONTH_TOTALS_SQL = _INTERVALS_SQL + """), whole AS (
    SELECT deployment_id, spec_id, rate, 3600 * greatest(0, floor(extract(epoch FROM span_end - (
        date_trunc('hour', span_start - interval '1 microsecond', 'UTC') + interval '1 hour')) / 3600))::bigint
        AS seconds
    FROM free_spans
)
SELECT deployment_id, spec_id, rate, sum(seconds)::bigint AS seconds
FROM (SELECT * FROM whole UNION ALL SELECT deployment_id, spec_id, rate, seconds FROM contributions) AS c
GROUP BY deployment_id, spec_id, rate HAVING sum(seconds) > 0
"""  # noqa: S608
# Deployments whose usage rows of the range do not add up to what their lifecycle meters there.
_DIFFERING_SQL = """
SELECT DISTINCT coalesce(m.deployment_id, u.deployment_id) FROM (""" + _MONTH_TOTALS_SQL + """) AS m
FULL JOIN (SELECT deployment_id, spec_id, rate, sum(seconds)::bigint AS seconds FROM {usage}
           GROUP BY deployment_id, spec_id, rate) AS u
    ON u.deployment_id = m.deployment_id AND u.spec_id = m.spec_id AND u.rate = m.rate
WHERE m.seconds IS DISTINCT FROM u.seconds
"""  # noqa: S608
_USAGE_OF_RANGE = "billing_usagerecord WHERE hour_start >= %(start)s AND hour_start < %(end)s"


def _params(start: datetime, end: datetime, deployment_ids: list[str] | None) -> dict[str, Any]:
    sites = list(SITE_CURRENCY)
    return {"start": start, "end": end, "deployments": deployment_ids, "sites": [str(site) for site in sites],
            "currencies": [SITE_CURRENCY[site] for site in sites],
            "running": sorted(s for s, rate in RATE_OF_STATUS.items() if rate == RUNNING),
            "stopped": sorted(s for s, rate in RATE_OF_STATUS.items() if rate == STOPPED)}


def usage_rows_sql(*, start: datetime, end: datetime,
                   deployment_ids: list[str] | None = None) -> tuple[str, dict[str, Any]]:
    """The query (and its parameters) whose rows are ``(deployment, hour, spec, rate, organization, seconds,
    currency, per-hour price of the rate)``: every usage row of ``[start, end)``, whose bounds are on the hour;
    of ``deployment_ids`` only when given."""
    return _USAGE_ROWS_SQL, _params(start, end, deployment_ids)


def differing_deployments_sql(*, start: datetime, end: datetime,
                              sums_table: str | None = None) -> tuple[str, dict[str, Any]]:
    """The query (and its parameters) whose rows are the deployments whose usage rows of ``[start, end)`` do not
    add up, per spec and rate, to what their lifecycle meters there (hours never metered, or metered before a
    late event). One pass over the range's rows and the lifecycle's intervals, no row per hour built.

    ``sums_table``: a table already holding the range's rows summed (``deployment_id, spec_id, rate, seconds``,
    finer groups allowed), read instead of the rows themselves: the month close sums them once for its check
    and its invoices."""
    return _DIFFERING_SQL.format(usage=sums_table or _USAGE_OF_RANGE), _params(start, end, None)
