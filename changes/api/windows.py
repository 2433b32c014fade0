"""``/api/change-windows/``: the standing change windows, read by every signed-in user, written by staff.

Thin like the other change-control endpoints: the body is validated here, ``changes.windows`` decides
and records; its refusals keep their status (403 for non-staff, checked before the body is read).
"""

from __future__ import annotations

from django.urls import reverse
from django.utils import timezone
from drf_spectacular.utils import extend_schema, extend_schema_view
from rest_framework import serializers, status, viewsets
from rest_framework.response import Response

from changes import permissions, services, windows
from changes.models import WEEKDAYS, ChangeWindow
from cmdb.api.items import ApiPagination
from cmdb.converters import ID_REGEX
from portal.api import created, error_responses


class ChangeWindowSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    environment = serializers.CharField()
    weekdays = serializers.ListField(child=serializers.IntegerField(), help_text="0 = Monday … 6 = Sunday.")
    days = serializers.CharField(help_text='e.g. "Tue, Thu".')
    start = serializers.CharField(help_text='"07:00": hours and minutes in the portal\'s time zone.')
    end = serializers.CharField(help_text='"09:00": hours and minutes in the portal\'s time zone.')
    time_zone = serializers.CharField(help_text="The portal's time zone (TIME_ZONE).")
    note = serializers.CharField(allow_blank=True)
    open_now = serializers.BooleanField()


class ChangeWindowInputSerializer(serializers.Serializer):
    environment = serializers.CharField(max_length=255)
    weekdays = serializers.ListField(
        child=serializers.IntegerField(min_value=0, max_value=len(WEEKDAYS) - 1), allow_empty=False,
        help_text="Days of the week, 0 = Monday … 6 = Sunday.",
        error_messages={"empty": "Choose at least one day of the week."},
    )
    start = serializers.TimeField(input_formats=["%H:%M"], help_text='"07:00", in the portal\'s time zone.')
    end = serializers.TimeField(input_formats=["%H:%M"], help_text='"09:00", after the start, the same day.')
    note = serializers.CharField(max_length=200, required=False, allow_blank=True, default="")

    def validate(self, attrs):
        if attrs["end"] <= attrs["start"]:
            raise serializers.ValidationError({"end": "A window must end after it starts, the same day."})
        return attrs


def _window(window: ChangeWindow, now) -> dict:
    return {
        "id": window.pk, "environment": window.environment, "weekdays": window.weekdays, "days": window.days(),
        "start": f"{window.start:%H:%M}", "end": f"{window.end:%H:%M}", "time_zone": timezone.get_default_timezone_name(),
        "note": window.note, "open_now": window.contains(now),
    }


@extend_schema_view(
    list=extend_schema(summary="Standing change windows",
                       description="By environment. An environment without windows is unconstrained.",
                       responses={200: ChangeWindowSerializer(many=True)}),
    retrieve=extend_schema(summary="One standing change window",
                           responses={200: ChangeWindowSerializer, **error_responses(404)}),
    create=extend_schema(summary="Add a standing change window (staff)",
                         description="Recorded as a window-created event.",
                         request=ChangeWindowInputSerializer,
                         responses={201: ChangeWindowSerializer, **error_responses(400, 403)}),
    destroy=extend_schema(summary="Remove a standing change window (staff)",
                          description="Recorded as a window-deleted event.",
                          responses={204: None, **error_responses(403, 404, 409)}),
)
class ChangeWindowViewSet(viewsets.GenericViewSet):
    """Weekly hours in which an environment's changes may be scheduled and released."""

    queryset = ChangeWindow.objects.order_by("environment", "start", "pk")
    serializer_class = ChangeWindowSerializer
    pagination_class = ApiPagination
    lookup_value_regex = ID_REGEX

    def list(self, request):
        now = timezone.now()
        page = self.paginate_queryset(self.get_queryset())
        return self.get_paginated_response(ChangeWindowSerializer([_window(w, now) for w in page], many=True).data)

    def retrieve(self, request, pk=None):
        return Response(ChangeWindowSerializer(_window(self.get_object(), timezone.now())).data)

    def create(self, request):
        if not permissions.is_staff(request.user):
            raise services.ChangeForbidden(windows.STAFF_ONLY)
        serializer = ChangeWindowInputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        window = windows.window_create(acting_user=request.user, **serializer.validated_data)
        return created(request, ChangeWindowSerializer(_window(window, timezone.now())).data,
                       location=reverse("change-window-detail", kwargs={"pk": window.pk}))

    def destroy(self, request, pk=None):
        window = self.get_object()
        windows.window_delete(window=window, acting_user=request.user)
        return Response(status=status.HTTP_204_NO_CONTENT)
