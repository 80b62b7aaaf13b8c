"""The admin's start page (unfold's DASHBOARD_CALLBACK): the support desk's person search,
delivery KPIs, a chart of sent and failed per day, messages per channel, and the RQ queue
(depth, throughput, failures, workers: read from RQ, shown read-only to Support and
Marketing; django-rq's own pages stay for superusers)."""

from __future__ import annotations

import json

from django.urls import reverse

from campaigns.outbox.queueing import queue_stats
from campaigns.outbox.selectors import delivery_stats


def dashboard_callback(request, context):
    user = request.user
    if user.has_perm("campaigns.view_message"):
        stats = delivery_stats()
        context["delivery"] = stats
        context["delivery_chart"] = json.dumps(
            {
                "labels": [day.strftime("%b %d") for day in stats.days],
                "datasets": [
                    {"label": "Sent", "data": stats.sent_per_day, "backgroundColor": "#16a34a"},
                    {"label": "Failed", "data": stats.failed_per_day, "backgroundColor": "#dc2626"},
                ],
            }
        )
        context["channel_table"] = {
            "headers": ["Channel", "Sent", "Failed", "Retrying", "Scheduled", "Queued"],
            "rows": [
                [
                    row["channel"],
                    row.get("sent", 0),
                    row.get("failed", 0),
                    row.get("retrying", 0),
                    row.get("scheduled", 0),
                    row.get("queued", 0),
                ]
                for row in stats.by_channel
            ],
        }
        context["messages_url"] = reverse("admin:campaigns_message_changelist")
    if user.is_superuser or any(
        user.has_perm(p) for p in ("campaigns.view_message", "campaigns.view_campaign")
    ):
        context["queue"] = queue_stats()
        context["queue_dashboard"] = "/django-rq/" if user.is_superuser else ""
    return context
