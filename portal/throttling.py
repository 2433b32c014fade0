"""API throttling beyond DRF's per-address and per-user rates: callers that present a wrong token.

DRF authenticates before it throttles, so a request with an unknown token is answered 401 before
any throttle sees it, and token guessing would be unlimited. ``ThrottledTokenAuthentication`` counts
those failures per client address (scope ``failed_token``) and answers 429 once the rate is spent,
even for the right token, until the window has passed.
"""

from __future__ import annotations

from rest_framework import exceptions, permissions
from rest_framework.throttling import AnonRateThrottle, SimpleRateThrottle

from accounts.authentication import KEYWORDS, ApiTokenAuthentication


class FailedTokenThrottle(SimpleRateThrottle):
    scope = "failed_token"

    def get_cache_key(self, request, view):
        return self.cache_format % {"scope": self.scope, "ident": self.get_ident(request)}

    def _load(self, request) -> str:
        self.key = self.get_cache_key(request, None)
        self.history = self.cache.get(self.key, [])
        self.now = self.timer()
        while self.history and self.history[-1] <= self.now - self.duration:
            self.history.pop()
        return self.key

    def spent(self, request) -> bool:
        """The address used up its failures: refuse before even looking at the token."""
        self._load(request)
        return len(self.history) >= self.num_requests

    def record(self, request) -> None:
        self._load(request)
        self.history.insert(0, self.now)
        self.cache.set(self.key, self.history, self.duration)


class ThrottledTokenAuthentication(ApiTokenAuthentication):
    def authenticate(self, request):
        if request.META.get("HTTP_AUTHORIZATION", "").split(" ")[0].lower() not in KEYWORDS:
            return None  # no token: anonymous, DRF's anon throttle applies
        throttle = FailedTokenThrottle()
        if throttle.spent(request):
            raise exceptions.Throttled(throttle.wait(), detail="Too many requests with a wrong token.")
        try:
            return super().authenticate(request)
        except exceptions.AuthenticationFailed:
            throttle.record(request)
            raise


class IsAuthenticated(permissions.IsAuthenticated):
    """DRF's IsAuthenticated, with the anonymous rate applied first: DRF checks permissions before
    throttles, so an anonymous caller of a protected endpoint would otherwise get 401s without end."""

    def has_permission(self, request, view):
        if request.user and request.user.is_authenticated:
            return True
        throttle = AnonRateThrottle()
        if not throttle.allow_request(request, view):
            raise exceptions.Throttled(throttle.wait())
        return False
