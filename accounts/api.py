"""``/api/tokens/``: list, create and revoke personal API tokens.

A token may list and revoke tokens, but only a signed-in session makes new ones: a leaked key must not
be able to mint keys that outlive its own revocation.
"""

from __future__ import annotations

from django.shortcuts import get_object_or_404
from django.urls import path, reverse
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers, status
from rest_framework.generics import ListAPIView
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts import services
from accounts.authentication import ApiTokenAuthentication
from accounts.models import ApiToken
from cmdb import converters  # noqa: F401 (registers the id converter)
from cmdb.api.items import ApiPagination
from portal.api import error_responses
from portal.errors import Forbidden


class TokenSerializer(serializers.ModelSerializer):
    user = serializers.CharField(source="user.username", read_only=True)
    state = serializers.SerializerMethodField()
    url = serializers.SerializerMethodField()

    class Meta:
        model = ApiToken
        fields = ["id", "url", "name", "user", "prefix", "state", "created_at", "expires_at", "last_used_at",
                  "revoked_at"]

    def get_state(self, obj) -> str:
        return obj.state()

    def get_url(self, obj) -> str:
        return self.context["request"].build_absolute_uri(reverse("api-token-detail", args=[obj.pk]))


class TokenCreateSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=100)
    expires_at = serializers.DateTimeField(required=False, allow_null=True,
                                           help_text="When it stops working; none: never (unless the portal "
                                                     "caps token lifetimes, CMDB_API_TOKEN_MAX_DAYS)")
    user = serializers.CharField(required=False, max_length=150,
                                 help_text="Staff only: make the token for another user (e.g. a CI account)")


class NewTokenSerializer(TokenSerializer):
    key = serializers.CharField(read_only=True, help_text="The secret: shown in this answer only")

    class Meta(TokenSerializer.Meta):
        fields = [*TokenSerializer.Meta.fields, "key"]


class TokenListView(ListAPIView):
    """Your tokens, newest first (staff: everyone's; ``?user=`` narrows). The key is never listed."""

    serializer_class = TokenSerializer
    pagination_class = ApiPagination

    @extend_schema(operation_id="tokens_list", tags=["tokens"],
                   parameters=[OpenApiParameter("user", str, description="Staff: one user's tokens")])
    def get(self, request, *args, **kwargs):
        return super().get(request, *args, **kwargs)

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):  # the schema generator has no user
            return ApiToken.objects.none()
        tokens = services.tokens_visible_to(self.request.user)
        if username := self.request.query_params.get("user"):
            tokens = tokens.filter(user__username=username)
        return tokens

    @extend_schema(operation_id="tokens_create", tags=["tokens"], request=TokenCreateSerializer,
                   responses={201: NewTokenSerializer, **error_responses(400, 403)})
    def post(self, request):
        """Make a token (from a signed-in session only). The answer holds the key, once."""
        if isinstance(request.successful_authenticator, ApiTokenAuthentication):
            raise Forbidden("Tokens are made from a signed-in session (the profile page), not with a token.")
        body = TokenCreateSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        owner = services.token_owner(acting_user=request.user, username=body.validated_data.get("user"))
        made = services.token_create(acting_user=request.user, owner=owner, name=body.validated_data["name"],
                                     expires_at=body.validated_data.get("expires_at"))
        data = NewTokenSerializer(made.token, context={"request": request}).data
        data["key"] = made.key
        return Response(data, status=status.HTTP_201_CREATED, headers={"Location": data["url"]})


def _token(request, pk: int) -> ApiToken:
    return get_object_or_404(services.tokens_visible_to(request.user), pk=pk)


class TokenDetailView(APIView):
    @extend_schema(operation_id="tokens_read", tags=["tokens"], responses={200: TokenSerializer, **error_responses(404)})
    def get(self, request, pk: int):
        return Response(TokenSerializer(_token(request, pk), context={"request": request}).data)


class TokenRevokeView(APIView):
    @extend_schema(operation_id="tokens_revoke", tags=["tokens"], request=None,
                   responses={200: TokenSerializer, **error_responses(400, 404)})
    def post(self, request, pk: int):
        """Revoke a token (your own; staff any): requests with it get 401 from now on."""
        token = services.token_revoke(acting_user=request.user, token=_token(request, pk))
        return Response(TokenSerializer(token, context={"request": request}).data)


def urlpatterns() -> list:
    return [
        path("tokens/", TokenListView.as_view(), name="api-token-list"),
        path("tokens/<id:pk>/", TokenDetailView.as_view(), name="api-token-detail"),
        path("tokens/<id:pk>/revoke/", TokenRevokeView.as_view(), name="api-token-revoke"),
    ]
