"""``/api/notification-targets/`` (CRUD, *send test*) and ``/api/notification-deliveries/`` (the
delivery log), staff only. Secrets and webhook URLs are write-only: answers show them masked."""

from __future__ import annotations

from django.urls import reverse
from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_view
from rest_framework import serializers, viewsets
from rest_framework.decorators import action

from cmdb.converters import ID_REGEX
from notifications import permissions, services
from notifications.models import Delivery, Event, Target
from portal.api import absolute, accepted, error_responses
from portal.errors import Forbidden


class TargetSerializer(serializers.ModelSerializer):
    url = serializers.CharField(write_only=True, required=False, allow_blank=True, max_length=2000,
                                help_text="Webhook URL or Matrix homeserver (write-only: it may hold a token)")
    url_masked = serializers.CharField(read_only=True, help_text="The URL without its path and query")
    secret = serializers.CharField(write_only=True, required=False, allow_blank=True, max_length=500,
                                   help_text="Webhook HMAC key (generated when empty) or Matrix access token; "
                                             "write-only. On update, empty keeps the stored one.")
    secret_masked = serializers.CharField(read_only=True)
    events = serializers.ListField(child=serializers.ChoiceField(choices=Event.choices), required=False)
    environments = serializers.ListField(child=serializers.CharField(max_length=255), required=False)
    addresses = serializers.ListField(child=serializers.EmailField(), required=False)
    created_by = serializers.CharField(source="created_by.get_username", read_only=True, default=None)

    class Meta:
        model = Target
        fields = ["id", "name", "kind", "url", "url_masked", "addresses", "secret", "secret_masked", "room",
                  "events", "environments", "enabled", "created_by", "created_at"]
        read_only_fields = ["created_at"]
        # Uniqueness is the service's to say (409-free 400 with its message), not the serializer's.
        extra_kwargs: dict[str, dict] = {"name": {"validators": []}}


class DeliverySerializer(serializers.ModelSerializer):
    target = serializers.IntegerField(source="target_id", read_only=True)

    class Meta:
        model = Delivery
        fields = ["id", "target", "event", "dedupe_key", "environments", "payload", "state", "attempts",
                  "last_error", "http_status", "created_at", "sent_at"]


def _check(view) -> None:
    if getattr(view, "swagger_fake_view", False):  # the schema generator has no user
        return
    if not permissions.can_manage(view.request.user):
        raise Forbidden(permissions.DENIAL)


@extend_schema_view(
    list=extend_schema(responses={200: TargetSerializer(many=True), **error_responses(401, 403)}),
    retrieve=extend_schema(responses={200: TargetSerializer, **error_responses(401, 403, 404)}),
    create=extend_schema(responses={201: TargetSerializer, **error_responses(400, 401, 403)}),
    update=extend_schema(responses={200: TargetSerializer, **error_responses(400, 401, 403, 404)}),
    partial_update=extend_schema(responses={200: TargetSerializer, **error_responses(400, 401, 403, 404)}),
    destroy=extend_schema(responses={204: None, **error_responses(401, 403, 404)}),
)
class TargetViewSet(viewsets.ModelViewSet):
    """Notification targets (staff only)."""

    serializer_class = TargetSerializer
    lookup_value_regex = ID_REGEX

    def get_queryset(self):
        _check(self)
        return Target.objects.select_related("created_by").order_by("name")

    def get_success_headers(self, data):
        # DRF would look for a "url" field, which here is the target's own (write-only) webhook URL.
        return {"Location": absolute(self.request, reverse("notification-target-detail", args=[data["id"]]))}

    def perform_create(self, serializer):
        serializer.instance = services.target_create(acting_user=self.request.user, **serializer.validated_data)

    def perform_update(self, serializer):
        serializer.instance = services.target_update(acting_user=self.request.user, target=serializer.instance,
                                                     **serializer.validated_data)

    def perform_destroy(self, instance):
        services.target_delete(acting_user=self.request.user, target=instance)

    @extend_schema(request=None, responses={202: DeliverySerializer, **error_responses(401, 403, 404)},
                   description="Queue a test delivery to this target; poll the delivery log for its outcome.")
    @action(detail=True, methods=["post"])
    def test(self, request, pk=None):
        delivery = services.delivery_send_test(acting_user=request.user, target=self.get_object())
        return accepted(request, DeliverySerializer(delivery).data,
                        location=reverse("notification-delivery-detail", args=[delivery.pk]))


@extend_schema_view(
    list=extend_schema(parameters=[OpenApiParameter("target", int), OpenApiParameter("state", str),
                                   OpenApiParameter("event", str)],
                       responses={200: DeliverySerializer(many=True), **error_responses(401, 403)}),
    retrieve=extend_schema(responses={200: DeliverySerializer, **error_responses(401, 403, 404)}),
)
class DeliveryViewSet(viewsets.ReadOnlyModelViewSet):
    """The delivery log, newest first (staff only)."""

    serializer_class = DeliverySerializer
    lookup_value_regex = ID_REGEX

    def get_queryset(self):
        _check(self)
        rows = Delivery.objects.order_by("-created_at", "-id")
        target = self.request.query_params.get("target", "")
        if target:
            rows = rows.filter(target_id=int(target)) if target.isdigit() and len(target) <= 18 else rows.none()
        for field in ("state", "event"):
            value = self.request.query_params.get(field)
            if value:
                rows = rows.filter(**{field: value})
        return rows


def register(router) -> list:
    router.register("notification-targets", TargetViewSet, basename="notification-target")
    router.register("notification-deliveries", DeliveryViewSet, basename="notification-delivery")
    return []

