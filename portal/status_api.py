"""``GET /api/status/``: the home page's verdict and figures, for people and for monitoring systems.

The audit figures keep the fields ``audits.api`` described before the verdict existed (clients of
the old endpoint keep working); the verdict and its reasons come from :mod:`portal.status`.
"""

from __future__ import annotations

from django.urls import path
from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.response import Response
from rest_framework.views import APIView

from audits.api import AuditStatusSerializer, EnvironmentAuditStatusSerializer
from portal.api import error_responses
from portal.status import ATTENTION, FAILING, OK, status_verdict

VERDICTS = [OK, ATTENTION, FAILING]


class ReasonSerializer(serializers.Serializer):
    code = serializers.CharField(help_text="What kind of problem, e.g. machines-unreachable, open-findings, deploy-failed")
    severity = serializers.ChoiceField(choices=[ATTENTION, FAILING])
    environment = serializers.CharField(allow_null=True, help_text="null: the whole portal (sync, audits, main)")
    count = serializers.IntegerField()
    text = serializers.CharField()
    url = serializers.CharField(help_text="The portal page listing what this reason counts")


class EnvironmentStatusSerializer(EnvironmentAuditStatusSerializer):
    verdict = serializers.ChoiceField(choices=VERDICTS, help_text="The worst severity of this environment's reasons")
    verdict_label = serializers.CharField()
    reasons = ReasonSerializer(many=True)


class PortalStatusSerializer(AuditStatusSerializer):
    verdict = serializers.ChoiceField(choices=VERDICTS, help_text="The worst severity of all reasons")
    verdict_label = serializers.CharField(help_text="All good, Needs attention or Failing")
    environments = EnvironmentStatusSerializer(many=True)
    reasons = ReasonSerializer(many=True, help_text="Every reason, worst first; those of the whole portal have "
                                                    "environment null")


class StatusView(APIView):
    @extend_schema(responses={200: PortalStatusSerializer, **error_responses(401, 403)},
                   description='The verdict overall and per environment ("ok", "attention", "failing") with the '
                               "reasons behind it, and the status-accounting figures of the home page.")
    def get(self, request):
        return Response(PortalStatusSerializer(status_verdict()).data)


def urlpatterns() -> list:
    return [path("status/", StatusView.as_view(), name="api-status")]
