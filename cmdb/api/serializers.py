"""Serializers of the API. Output only: the views build plain dicts (or pass model rows), and these
classes both shape the JSON and describe it in the OpenAPI schema."""

from __future__ import annotations

from rest_framework import serializers

from cmdb import services
from cmdb.models import ConfigItem, LintWarning, SyncRun


def commit_dict(sha: str, author: str, date, summary: str) -> dict:
    """A commit in the ``CommitSerializer`` shape."""
    return {"sha": sha, "author": author, "date": date, "summary": summary}


class CommitSerializer(serializers.Serializer):
    sha = serializers.CharField()
    author = serializers.CharField()
    date = serializers.DateTimeField()
    summary = serializers.CharField()


class ArtifactSerializer(serializers.Serializer):
    path = serializers.CharField(help_text="Repository path of the file.")
    name = serializers.CharField()
    size = serializers.IntegerField(help_text="Bytes.")
    blob_sha = serializers.CharField()
    mode = serializers.CharField(help_text="Git file mode: 100644, 100755, 120000 (symlink), 160000 (submodule).")
    is_binary = serializers.BooleanField(allow_null=True, help_text="Null when not known at that revision.")
    is_secret = serializers.BooleanField()
    is_image = serializers.BooleanField()
    is_symlink = serializers.BooleanField()
    masked = serializers.BooleanField(
        help_text="True for a secret the caller may not see unmasked (no cmdb.view_secret permission)."
    )
    url = serializers.URLField(help_text="The portal page of the file.")


class WarningSerializer(serializers.Serializer):
    code = serializers.ChoiceField(choices=LintWarning.Code.choices)
    severity = serializers.ChoiceField(choices=LintWarning.Severity.choices)
    path = serializers.CharField()
    message = serializers.CharField()


class ConfigItemSerializer(serializers.Serializer):
    path = serializers.CharField(help_text='Repository path, e.g. "production/web1/nginx".')
    name = serializers.CharField()
    kind = serializers.ChoiceField(choices=ConfigItem.Kind.choices)
    parent = serializers.CharField(allow_null=True, help_text='Path of the parent CI ("" is the root).')
    revision = serializers.CharField(allow_null=True, help_text="Sha of the commit this object describes.")
    readme_markdown = serializers.CharField(allow_blank=True)
    readme_html = serializers.CharField(allow_blank=True, help_text="Rendered and sanitized README.")
    artifacts = ArtifactSerializer(many=True)
    last_commit = CommitSerializer(allow_null=True, help_text="Newest commit that changed this CI.")
    warnings = WarningSerializer(
        many=True, allow_null=True, help_text="Lint warnings; null at a revision other than the indexed commit."
    )
    url = serializers.URLField(help_text="The portal page of this CI (at the same revision).")


class LintWarningSerializer(serializers.ModelSerializer):
    ci = serializers.CharField(source="ci.path", allow_null=True, read_only=True, help_text="Path of the CI.")
    url = serializers.SerializerMethodField()

    class Meta:
        model = LintWarning
        fields = ["code", "severity", "path", "message", "ci", "url"]

    def get_url(self, obj: LintWarning) -> str:
        kind = "page" if obj.ci is not None and obj.path == obj.ci.path else "file"
        return self.context["request"].build_absolute_uri(services.portal_url(kind, obj.path))


class SearchHitSerializer(serializers.Serializer):
    path = serializers.CharField()
    name = serializers.CharField()
    kind = serializers.ChoiceField(choices=ConfigItem.Kind.choices)
    rank = serializers.FloatField(help_text="Higher is better.")
    snippet = serializers.CharField(help_text="HTML-escaped excerpt with the matches in <mark>…</mark>.")
    snippet_text = serializers.CharField(help_text="The same excerpt as plain text.")
    url = serializers.URLField()


class SearchResponseSerializer(serializers.Serializer):
    query = serializers.CharField()
    count = serializers.IntegerField()
    results = SearchHitSerializer(many=True)


class SyncRunSerializer(serializers.ModelSerializer):
    requested_by = serializers.CharField(source="requested_by.username", allow_null=True, read_only=True)

    class Meta:
        model = SyncRun
        fields = [
            "id", "trigger", "requested_by", "started_at", "finished_at", "status", "mode",
            "from_sha", "to_sha", "paths_changed", "duration_ms", "error",
        ]


class SyncStateSerializer(serializers.Serializer):
    branch = serializers.CharField()
    indexed_commit = CommitSerializer(allow_null=True)
    indexed_at = serializers.DateTimeField(allow_null=True)
    running = serializers.BooleanField()
    running_since = serializers.DateTimeField(allow_null=True)
    pending = serializers.BooleanField(help_text="Another pass was asked for while a sync runs.")
    last_error = serializers.CharField(allow_blank=True)
    last_error_at = serializers.DateTimeField(allow_null=True)
    runs = SyncRunSerializer(many=True, help_text="The last 10 syncs, newest first.")


class StatusSerializer(serializers.Serializer):
    status = serializers.CharField()


class WebhookResponseSerializer(serializers.Serializer):
    status = serializers.ChoiceField(choices=["queued", "pong", "duplicate"],
                                     help_text='"queued" (a sync was asked for), "pong", or "duplicate" (a replay: nothing done).')
    detail = serializers.CharField(required=False)
    event = serializers.CharField(allow_null=True, required=False)
    ref = serializers.CharField(allow_null=True, required=False, help_text="The pushed ref, as the payload says.")
    branch = serializers.CharField(allow_null=True, required=False, help_text="The pushed branch, if a branch.")
    indexed_branch = serializers.CharField(required=False, help_text="The branch the portal indexes.")
