"""Serializers of the change-control API.

Output serializers shape (and, in the OpenAPI schema, describe) the plain dicts the views build;
input serializers validate request bodies before ``changes.services`` applies the rules. Nothing
here decides a permission or a state: the services do.
"""

from __future__ import annotations

import re

from django.contrib.auth import get_user_model
from rest_framework import serializers

from changes.models import Approval, ChangeRequest, ImpactedCI, UnauthorizedCommit
from changes.services import TRANSITIONS

SHA_PATTERN = r"^[0-9a-f]{40}$"
TAG_NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
WINDOW_ORDER = "The planned window must end after it starts."

# Everything ``services.available_actions`` may answer.
ACTIONS = [*TRANSITIONS, "comment"]


# ====================================================================================================
# Output
# ====================================================================================================


class FlagsSerializer(serializers.Serializer):
    needs_after_the_fact_approval = serializers.BooleanField(
        help_text="An emergency change released before approval and still not approved."
    )
    implemented_without_approval = serializers.BooleanField()
    approved_after_the_fact = serializers.BooleanField()
    released_outside_window = serializers.CharField(
        allow_blank=True, help_text="The reason an emergency change was released outside its window or in a freeze."
    )


class ChangeSummarySerializer(serializers.Serializer):
    id = serializers.IntegerField()
    reference = serializers.CharField(help_text='"CR-<id>".')
    title = serializers.CharField()
    state = serializers.ChoiceField(choices=ChangeRequest.State.choices)
    type = serializers.ChoiceField(choices=ChangeRequest.Type.choices)
    risk = serializers.ChoiceField(choices=ChangeRequest.Risk.choices)
    branch = serializers.CharField(max_length=255, help_text="The branch on origin that carries the change.")
    requester = serializers.CharField(help_text="Username.")
    planned_start = serializers.DateTimeField(allow_null=True, help_text="Start of the planned window.")
    planned_end = serializers.DateTimeField(allow_null=True, help_text="End of the planned window.")
    head_sha = serializers.CharField(allow_blank=True, help_text="Branch head the impact and the votes are for.")
    required_approvals = serializers.IntegerField()
    live_approvals = serializers.IntegerField(
        help_text="Approvals that count: for the current head, not dismissed, one per approver."
    )
    environments = serializers.ListField(child=serializers.CharField(), help_text="Environments the change touches.")
    flags = FlagsSerializer()
    created_at = serializers.DateTimeField()
    updated_at = serializers.DateTimeField()
    url = serializers.URLField(help_text="The portal page of the change request.")


class ImpactFileSerializer(serializers.Serializer):
    path = serializers.CharField()
    status = serializers.CharField(help_text="Git status letter: A, M, D, R, T…")
    ci = serializers.CharField(allow_null=True, help_text="Path of the CI the file belongs to (null: tooling).")
    documentation = serializers.BooleanField(help_text="README, picture or other Markdown that no manifest sources.")


class ImpactCISerializer(serializers.Serializer):
    path = serializers.CharField()
    kind = serializers.CharField(help_text="root, environment, machine, application or common.")
    environment = serializers.CharField(allow_blank=True)
    machine_path = serializers.CharField(allow_blank=True)
    reason = serializers.ChoiceField(
        choices=ImpactedCI.Reason.values,
        help_text="direct: a file of the CI changed; source: its manifest sources a changed file (via); "
                  "common: it depends on a changed _common folder (via); "
                  "redeploy: the change asks to re-deploy what the repository declares.",
    )
    via = serializers.CharField(allow_blank=True, help_text="The changed file (source) or _common folder (common).")
    deploy = serializers.BooleanField(
        help_text="The CI needs a deploy; false: what changed for it is documentation, shown for review only."
    )
    url = serializers.URLField(help_text="The portal page of the CI.")


class ImpactSerializer(serializers.Serializer):
    files = ImpactFileSerializer(many=True)
    cis = ImpactCISerializer(many=True)
    documentation_only = serializers.BooleanField(
        help_text="Every changed file is documentation: no machine needs a deploy or a dry run."
    )
    machines = serializers.ListField(
        child=serializers.CharField(), help_text="The machines that need a deploy (what a dry run looks at)."
    )


class ApprovalSerializer(serializers.Serializer):
    user = serializers.CharField(help_text="Username.")
    decision = serializers.ChoiceField(choices=Approval.Decision.choices)
    comment = serializers.CharField(allow_blank=True)
    head_sha = serializers.CharField(help_text="The branch head the vote was given on.")
    created_at = serializers.DateTimeField()
    dismissed_at = serializers.DateTimeField(allow_null=True)
    dismissed_reason = serializers.CharField(allow_blank=True)
    live = serializers.BooleanField(help_text="Not dismissed.")


class EventSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    change = serializers.IntegerField(allow_null=True, help_text="Id of the change request (null: repository-wide).")
    actor = serializers.CharField(allow_null=True, help_text="Username; null for the portal itself.")
    at = serializers.DateTimeField()
    action = serializers.CharField(help_text='"created", "submitted", "vote-approve", "merged", "branch-moved"…')
    message = serializers.CharField(allow_blank=True)
    commit_sha = serializers.CharField(allow_blank=True)
    data = serializers.JSONField(help_text="Details of the action (released commits, edited fields…).")


class CommentSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    author = serializers.CharField(help_text="Username.")
    body = serializers.CharField()
    created_at = serializers.DateTimeField()


class FreezeSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    reason = serializers.CharField()
    start = serializers.DateTimeField()
    end = serializers.DateTimeField()
    environment = serializers.CharField(allow_blank=True, help_text="Empty: every environment.")


class ConflictsSerializer(serializers.Serializer):
    same_ci = serializers.ListField(child=serializers.IntegerField(),
                                    help_text="Ids of other open change requests touching the same CIs.")
    overlapping_windows = serializers.ListField(
        child=serializers.IntegerField(),
        help_text="Ids of other open change requests planned on the same machines at overlapping times.",
    )
    freezes = FreezeSerializer(many=True, help_text="Freeze periods the planned window falls in.")


class ChangeDetailSerializer(ChangeSummarySerializer):
    description = serializers.CharField(allow_blank=True, help_text="Markdown.")
    description_html = serializers.CharField(allow_blank=True, help_text="Rendered and sanitized.")
    rollback_plan = serializers.CharField(allow_blank=True)
    watchers = serializers.ListField(child=serializers.CharField(), help_text="Usernames.")
    base_sha = serializers.CharField(allow_blank=True, help_text="Merge base of the branch with main.")
    branch_missing = serializers.BooleanField(help_text="The branch is gone from origin.")
    merged_sha = serializers.CharField(allow_blank=True, help_text="The commit of main that released the change.")
    released_from = serializers.CharField(allow_blank=True, help_text="main before the release.")
    verification = serializers.DictField(help_text='Did the release land? {"state": "pending" | "passed" | '
                                                   '"failed", "audit": id, "findings": [...], "manual": [...]}; '
                                                   "{} before the release")
    reverts = serializers.IntegerField(allow_null=True, help_text="Id of the change request whose release this one reverts.")
    reverted_by = serializers.ListField(child=serializers.IntegerField(),
                                        help_text="Ids of the change requests reverting this one's release, oldest first.")
    impact = ImpactSerializer()
    approvals = ApprovalSerializer(many=True, help_text="Every vote, dismissed ones included, oldest first.")
    timeline = EventSerializer(many=True, help_text="The change's record, oldest first.")
    comments = CommentSerializer(many=True)
    conflicts = ConflictsSerializer()
    actions = serializers.ListField(
        child=serializers.ChoiceField(choices=ACTIONS), help_text="What the caller may do now."
    )


class FileDiffSerializer(serializers.Serializer):
    path = serializers.CharField()
    old_path = serializers.CharField(allow_blank=True)
    status = serializers.CharField(help_text="Git status letter.")
    is_binary = serializers.BooleanField()
    masked = serializers.BooleanField(help_text="Secret content was replaced by the mask.")
    patch = serializers.CharField(allow_blank=True, help_text="Unified diff.")


class CIDiffSerializer(serializers.Serializer):
    path = serializers.CharField(help_text='The CI ("" for files outside every CI).')
    url = serializers.URLField()
    files = FileDiffSerializer(many=True)


class ChangeDiffSerializer(serializers.Serializer):
    change = serializers.IntegerField()
    base_sha = serializers.CharField(allow_blank=True)
    head_sha = serializers.CharField(allow_blank=True)
    secrets_masked = serializers.BooleanField(
        help_text="True when the caller lacks cmdb.view_secret: secret files and private keys are masked."
    )
    cis = CIDiffSerializer(many=True)


class BaselineSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    name = serializers.CharField(help_text="Also the annotated tag on origin.")
    sha = serializers.CharField()
    note = serializers.CharField(allow_blank=True)
    created_by = serializers.CharField(help_text="Username.")
    created_at = serializers.DateTimeField()


class UnauthorizedCommitSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    sha = serializers.CharField()
    summary = serializers.CharField()
    author = serializers.CharField()
    committed_at = serializers.DateTimeField()
    detected_at = serializers.DateTimeField()
    status = serializers.ChoiceField(choices=UnauthorizedCommit.Status.choices)
    change = serializers.IntegerField(allow_null=True, help_text="The change request it was linked to.")
    resolved_by = serializers.CharField(allow_null=True, help_text="Username.")
    resolved_at = serializers.DateTimeField(allow_null=True)
    reason = serializers.CharField(allow_blank=True)
    url = serializers.URLField(help_text="The portal page of the commit.")


# ====================================================================================================
# Input
# ====================================================================================================


class UserByName(serializers.SlugRelatedField):
    default_error_messages = {
        "does_not_exist": "There is no active user named {value}.",
        "invalid": "Give usernames.",
    }

    def __init__(self, **kwargs):
        kwargs.setdefault("slug_field", "username")
        kwargs.setdefault("queryset", get_user_model().objects.filter(is_active=True))
        super().__init__(**kwargs)


def _window_errors(start, end) -> dict:
    if start is None and end is None:
        return {}
    if start is None:
        return {"planned_start": "Give the start of the window."}
    if end is None:
        return {"planned_end": "Give the end of the window."}
    if end <= start:
        return {"planned_end": WINDOW_ORDER}
    return {}


class ChangeFieldsSerializer(serializers.Serializer):
    """What a requester writes; a planned window has both ends or neither, the end after the start."""

    title = serializers.CharField(max_length=200)
    description = serializers.CharField(required=False, allow_blank=True, trim_whitespace=False, help_text="Markdown.")
    type = serializers.ChoiceField(choices=ChangeRequest.Type.choices, required=False,
                                   help_text="Emergency changes may be released before approval (and stay flagged).")
    risk = serializers.ChoiceField(choices=ChangeRequest.Risk.choices, required=False)
    planned_start = serializers.DateTimeField(required=False, allow_null=True)
    planned_end = serializers.DateTimeField(required=False, allow_null=True)
    rollback_plan = serializers.CharField(required=False, allow_blank=True, trim_whitespace=False)
    watchers = UserByName(many=True, required=False, help_text="Usernames, mailed on each decision.")

    def validate(self, attrs):
        instance = self.instance
        start = attrs.get("planned_start", getattr(instance, "planned_start", None))
        end = attrs.get("planned_end", getattr(instance, "planned_end", None))
        errors = _window_errors(start, end)
        if errors:
            raise serializers.ValidationError(errors)
        return attrs


class ChangeCreateSerializer(ChangeFieldsSerializer):
    branch = serializers.CharField(max_length=255, help_text="A branch pushed to origin, other than main.")


class ChangeUpdateSerializer(ChangeFieldsSerializer):
    """PATCH: any subset of the fields (the window is checked together with the stored one)."""

    def validate(self, attrs):
        if not attrs:
            raise serializers.ValidationError("Nothing to change: give at least one field.")
        return super().validate(attrs)


class ApproveSerializer(serializers.Serializer):
    comment = serializers.CharField(required=False, allow_blank=True, default="")
    head_sha = serializers.RegexField(
        SHA_PATTERN, required=False, allow_blank=True, default="",
        error_messages={"invalid": "Not a full commit id."},
        help_text="The branch head you reviewed: the vote is refused (409) if the branch moved since.",
    )


class RejectSerializer(ApproveSerializer):
    comment = serializers.CharField(
        help_text="The reason (required).",
        error_messages={"required": "A rejection needs a reason.", "blank": "A rejection needs a reason."},
    )


class ScheduleSerializer(serializers.Serializer):
    planned_start = serializers.DateTimeField()
    planned_end = serializers.DateTimeField()

    def validate(self, attrs):
        if attrs["planned_end"] <= attrs["planned_start"]:
            raise serializers.ValidationError({"planned_end": WINDOW_ORDER})
        return attrs


class ImplementSerializer(serializers.Serializer):
    reason = serializers.CharField(
        required=False, allow_blank=True, default="", max_length=2000,
        help_text="Required for an emergency change released outside its window or inside a freeze.",
    )


class NoteSerializer(serializers.Serializer):
    """Verify, close, withdraw: an optional note for the record."""

    comment = serializers.CharField(required=False, allow_blank=True, default="", max_length=2000)


class VerifySerializer(NoteSerializer):
    override = serializers.BooleanField(default=False, help_text="Verify without a passed verification; "
                                                                 "the comment is the reason (recorded)")


class RevertSerializer(serializers.Serializer):
    """Open a change request reverting a release."""

    type = serializers.ChoiceField(choices=[ChangeRequest.Type.NORMAL, ChangeRequest.Type.EMERGENCY],
                                   default=ChangeRequest.Type.NORMAL,
                                   help_text="emergency may be released before approval, and needs a reason.")
    reason = serializers.CharField(required=False, allow_blank=True, default="", max_length=2000)


class CommentInputSerializer(serializers.Serializer):
    body = serializers.CharField(
        trim_whitespace=False,
        error_messages={"required": "A comment cannot be empty.", "blank": "A comment cannot be empty."},
    )

    def validate_body(self, value: str) -> str:
        if not value.strip():
            raise serializers.ValidationError("A comment cannot be empty.")
        return value


class BaselineInputSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=100, help_text="Also the name of the Git tag pushed to origin.")
    note = serializers.CharField(required=False, allow_blank=True, default="")
    rev = serializers.CharField(required=False, allow_blank=True, default="", max_length=200,
                                help_text="Commit, branch or tag to tag; default the head of main on origin.")

    def validate_name(self, value: str) -> str:
        if not TAG_NAME_RE.fullmatch(value) or ".." in value or value.endswith((".", ".lock")):
            raise serializers.ValidationError("Use letters, digits, dots, dashes and underscores (a valid tag name).")
        return value


class AcknowledgeSerializer(serializers.Serializer):
    reason = serializers.CharField(error_messages={
        "required": "Acknowledging an unauthorized change needs a reason.",
        "blank": "Acknowledging an unauthorized change needs a reason.",
    })


class LinkSerializer(serializers.Serializer):
    change = serializers.PrimaryKeyRelatedField(
        queryset=ChangeRequest.objects.all(), help_text="Id of the change request the commit belongs to.",
        error_messages={"does_not_exist": "There is no change request {pk_value}.",
                        "required": "Name the change request this commit belongs to."},
    )
    reason = serializers.CharField(required=False, allow_blank=True, default="")
