"""Forms of the change-control UI. They only validate input; the rules live in ``changes.services``."""

from __future__ import annotations

import re
from typing import cast

from django import forms
from django.contrib.auth import get_user_model

from changes.models import WEEKDAYS, ChangeRequest, UnauthorizedCommit

SHA_RE = re.compile(r"^[0-9a-f]{40}$")
CR_REF_RE = re.compile(r"^(?:CR-?)?(\d+)$", re.I)

TEXT = {"class": "form-control"}
SELECT = {"class": "form-select"}


def _datetime_widget() -> forms.DateTimeInput:
    return forms.DateTimeInput(attrs={"type": "datetime-local", "class": "form-control"}, format="%Y-%m-%dT%H:%M")


def _watchers_field() -> forms.ModelMultipleChoiceField:
    return forms.ModelMultipleChoiceField(
        queryset=get_user_model().objects.filter(is_active=True).order_by("username"),
        required=False,
        widget=forms.SelectMultiple(attrs={"class": "form-select", "size": 5}),
        help_text="They are mailed when the change request is decided or closed.",
    )


class MarkInvalid:
    """Fields with errors get Bootstrap's ``is-invalid`` class (the widgets are per form instance)."""

    def full_clean(self) -> None:
        super().full_clean()  # type: ignore[misc]
        for name in self.errors:  # type: ignore[attr-defined]
            widget = self.fields[name].widget if name in self.fields else None  # type: ignore[attr-defined]
            if widget is not None and "is-invalid" not in widget.attrs.get("class", ""):
                widget.attrs["class"] = f"{widget.attrs.get('class', '')} is-invalid".strip()


class WindowMixin:
    """A planned window: both ends or neither, the end after the start."""

    require_window = False

    def clean(self):
        data = super().clean()
        start, end = data.get("planned_start"), data.get("planned_end")
        if self.require_window or start or end:
            if not start and "planned_start" not in self.errors:
                self.add_error("planned_start", "Give the start of the window.")
            if not end and "planned_end" not in self.errors:
                self.add_error("planned_end", "Give the end of the window.")
        if start and end and end <= start:
            self.add_error("planned_end", "The planned window must end after it starts.")
        return data


class ChangeFieldsForm(MarkInvalid, WindowMixin, forms.Form):
    """The fields a requester writes, on creation and when editing."""

    title = forms.CharField(max_length=200, widget=forms.TextInput(attrs={**TEXT, "autocomplete": "off"}))
    description = forms.CharField(
        required=False,
        widget=forms.Textarea(attrs={**TEXT, "rows": 8, "class": "form-control font-monospace"}),
        help_text="Markdown: what changes, why, and how it was tested.",
    )
    type = forms.ChoiceField(choices=ChangeRequest.Type.choices, initial=ChangeRequest.Type.NORMAL,
                             widget=forms.Select(attrs=SELECT),
                             help_text="Emergency changes may be released before approval (and stay flagged).")
    risk = forms.ChoiceField(choices=ChangeRequest.Risk.choices, initial=ChangeRequest.Risk.MEDIUM,
                             widget=forms.Select(attrs=SELECT))
    planned_start = forms.DateTimeField(required=False, widget=_datetime_widget(), label="Window start")
    planned_end = forms.DateTimeField(required=False, widget=_datetime_widget(), label="Window end")
    rollback_plan = forms.CharField(
        required=False, widget=forms.Textarea(attrs={**TEXT, "rows": 4}),
        help_text="How to undo the change if it goes wrong.",
    )

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["watchers"] = _watchers_field()


class ChangeCreateForm(ChangeFieldsForm):
    """A new change request: the branch is one of origin's (checked again by the service)."""

    field_order = ["branch", "title", "description", "type", "risk", "planned_start", "planned_end",
                   "rollback_plan", "watchers"]

    branch = forms.CharField(max_length=255, help_text="The branch on origin that carries the change.")

    def __init__(self, *args, branches: list[str] = (), **kwargs):  # type: ignore[assignment]
        super().__init__(*args, **kwargs)
        self.set_branches(branches)
        self.order_fields(self.field_order)

    def set_branches(self, branches: list[str]) -> None:
        """A select of origin's branches. The value is not limited to them here: the service answers
        an unknown branch with its own message ("push it to origin first")."""
        self.fields["branch"].widget = forms.Select(
            attrs=SELECT, choices=[("", "Choose a branch…"), *((b, b) for b in branches)]
        )


class ChangeEditForm(ChangeFieldsForm):
    @classmethod
    def for_change(cls, change: ChangeRequest, data=None) -> ChangeEditForm:
        initial = {name: getattr(change, name) for name in
                   ("title", "description", "type", "risk", "planned_start", "planned_end", "rollback_plan")}
        initial["watchers"] = list(change.watchers.values_list("pk", flat=True))
        return cls(data, initial=initial)


class RevertForm(MarkInvalid, forms.Form):
    """Open a change request undoing a release (``changes.reverts``)."""

    type = forms.ChoiceField(
        choices=[(t, ChangeRequest.Type(t).label) for t in (ChangeRequest.Type.NORMAL, ChangeRequest.Type.EMERGENCY)],
        initial=ChangeRequest.Type.NORMAL, widget=forms.Select(attrs={**SELECT, "class": "form-select form-select-sm"}),
        label="Revert as", help_text="An emergency revert may be released before approval; it needs a reason.",
    )
    reason = forms.CharField(required=False, max_length=2000, label="Reason",
                             widget=forms.Textarea(attrs={**TEXT, "rows": 2, "class": "form-control form-control-sm"}))


class ScheduleForm(MarkInvalid, WindowMixin, forms.Form):
    require_window = True

    planned_start = forms.DateTimeField(widget=_datetime_widget(), label="Window start")
    planned_end = forms.DateTimeField(widget=_datetime_widget(), label="Window end")


class VoteForm(MarkInvalid, forms.Form):
    """Approve: the head the approver looked at comes along, so a branch that moved is noticed."""

    comment = forms.CharField(required=False, widget=forms.Textarea(attrs={**TEXT, "rows": 2}))
    head_sha = forms.CharField(required=False, max_length=40, widget=forms.HiddenInput)

    def clean_head_sha(self) -> str:
        value = self.cleaned_data["head_sha"].strip().lower()
        if value and not SHA_RE.match(value):
            raise forms.ValidationError("Not a commit id.")
        return value


class RejectForm(VoteForm):
    comment = forms.CharField(
        label="Reason", widget=forms.Textarea(attrs={**TEXT, "rows": 2}),
        error_messages={"required": "A rejection needs a reason."},
    )

    def clean_comment(self) -> str:
        value = self.cleaned_data["comment"]
        if not value.strip():
            raise forms.ValidationError("A rejection needs a reason.")
        return value


class ImplementForm(MarkInvalid, forms.Form):
    """Release: an emergency released outside its window or in a freeze says why (the service checks)."""

    reason = forms.CharField(required=False, max_length=2000, label="Why it cannot wait",
                             widget=forms.Textarea(attrs={**TEXT, "rows": 2}))


class WindowForm(MarkInvalid, forms.Form):
    """A standing change window of an environment (staff)."""

    environment = forms.CharField(max_length=255, widget=forms.TextInput(
        attrs={**TEXT, "list": "window-environments", "autocomplete": "off", "placeholder": "production"}))
    weekdays = forms.TypedMultipleChoiceField(
        choices=list(enumerate(WEEKDAYS)), coerce=int, label="Days",
        widget=forms.CheckboxSelectMultiple(attrs={"class": "form-check-input"}),
        error_messages={"required": "Choose at least one day of the week."},
    )
    start = forms.TimeField(widget=forms.TimeInput(attrs={**TEXT, "type": "time"}, format="%H:%M"))
    end = forms.TimeField(widget=forms.TimeInput(attrs={**TEXT, "type": "time"}, format="%H:%M"))
    note = forms.CharField(required=False, max_length=200, widget=forms.TextInput(attrs=TEXT))

    def clean(self):
        data = super().clean()
        if data.get("start") and data.get("end") and data["end"] <= data["start"]:
            self.add_error("end", "A window must end after it starts, the same day.")
        return data


class ActionCommentForm(MarkInvalid, forms.Form):
    """Verify, close, withdraw: an optional note for the record."""

    comment = forms.CharField(required=False, max_length=2000,
                              widget=forms.TextInput(attrs={**TEXT, "class": "form-control form-control-sm",
                                                            "placeholder": "Note (optional)"}))


class VerifyForm(ActionCommentForm):
    """Verify: without a passed verification, an explicit override whose note is the reason."""

    override = forms.BooleanField(required=False, label="Override: verified otherwise (the note says how)",
                                  widget=forms.CheckboxInput(attrs={"class": "form-check-input"}))


class CommentForm(MarkInvalid, forms.Form):
    body = forms.CharField(label="Comment", widget=forms.Textarea(attrs={**TEXT, "rows": 3}),
                           error_messages={"required": "A comment cannot be empty."})

    def clean_body(self) -> str:
        value = self.cleaned_data["body"]
        if not value.strip():
            raise forms.ValidationError("A comment cannot be empty.")
        return value


class BaselineForm(MarkInvalid, forms.Form):
    name = forms.CharField(
        max_length=100,
        widget=forms.TextInput(attrs={**TEXT, "class": "form-control font-monospace", "placeholder": "baseline-2026-11",
                                      "autocomplete": "off", "spellcheck": "false"}),
        help_text="Also the name of the Git tag pushed to origin.",
    )
    note = forms.CharField(required=False, widget=forms.Textarea(attrs={**TEXT, "rows": 3}))
    rev = forms.CharField(
        required=False, max_length=200, label="Revision",
        widget=forms.TextInput(attrs={**TEXT, "class": "form-control font-monospace", "placeholder": "main",
                                      "list": "rev-choices", "autocomplete": "off", "spellcheck": "false"}),
        help_text="Empty: the current head of main on origin.",
    )

    def clean_name(self) -> str:
        name = self.cleaned_data["name"].strip()
        if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]*", name) or ".." in name or name.endswith((".", ".lock")):
            raise forms.ValidationError("Use letters, digits, dots, dashes and underscores (a valid tag name).")
        return name


class CompareForm(forms.Form):
    """``?from=&to=``: two baselines (or any revision)."""

    from_rev = forms.CharField(max_length=200, label="From")
    to_rev = forms.CharField(max_length=200, label="To")

    def __init__(self, data=None, **kwargs):
        if data is not None:
            data = {"from_rev": data.get("from", ""), "to_rev": data.get("to", "")}
        super().__init__(data, **kwargs)


class ResolveUnauthorizedForm(MarkInvalid, forms.Form):
    """Staff resolve a flagged commit: acknowledge it with a reason, or link it to a change request."""

    ACKNOWLEDGE, LINK = "acknowledge", "link"

    resolution = forms.ChoiceField(choices=[(ACKNOWLEDGE, "Acknowledge"), (LINK, "Link to a change request")],
                                   widget=forms.RadioSelect(attrs={"class": "form-check-input"}), initial=ACKNOWLEDGE)
    reason = forms.CharField(required=False, widget=forms.TextInput(attrs={
        **TEXT, "class": "form-control form-control-sm", "placeholder": "Reason"}))
    change = forms.CharField(required=False, max_length=20, label="Change request",
                             widget=forms.TextInput(attrs={**TEXT, "class": "form-control form-control-sm",
                                                           "placeholder": "CR-12"}))

    def clean_change(self) -> ChangeRequest | None:
        raw = self.cleaned_data["change"].strip()
        if not raw:
            return None
        match = CR_REF_RE.match(raw)
        change = ChangeRequest.objects.filter(pk=int(match.group(1))).first() if match else None
        if change is None:
            raise forms.ValidationError(f"There is no change request {raw!r}.")
        return change

    def clean(self):
        data = super().clean()
        if data.get("resolution") == self.LINK and not data.get("change") and "change" not in self.errors:
            self.add_error("change", "Name the change request this commit belongs to.")
        if data.get("resolution") == self.ACKNOWLEDGE and not (data.get("reason") or "").strip():
            self.add_error("reason", "Acknowledging an unauthorized change needs a reason.")
        return data


class UnauthorizedFilterForm(forms.Form):
    status = forms.ChoiceField(required=False, choices=[("", "All"), *UnauthorizedCommit.Status.choices],
                               widget=forms.Select(attrs={"class": "form-select form-select-sm"}))


class ChangeFilterForm(forms.Form):
    """The list's filters (GET). Choices that depend on the data are passed in by the view."""

    SORTS = {
        "ref": "pk",
        "title": "title",
        "state": "state",
        "type": "type",
        "risk": "risk",
        "requester": "requester__username",
        "branch": "branch",
        "window": "planned_start",
        "updated": "updated_at",
    }
    DEFAULT_SORT = "-ref"

    state = forms.ChoiceField(required=False, choices=[("", "Any state"), ("open", "Open"), *ChangeRequest.State.choices],
                              widget=forms.Select(attrs={"class": "form-select form-select-sm"}))
    type = forms.ChoiceField(required=False, choices=[("", "Any type"), *ChangeRequest.Type.choices],
                             widget=forms.Select(attrs={"class": "form-select form-select-sm"}))
    environment = forms.ChoiceField(required=False, widget=forms.Select(attrs={"class": "form-select form-select-sm"}))
    requester = forms.ChoiceField(required=False, widget=forms.Select(attrs={"class": "form-select form-select-sm"}))
    branch = forms.CharField(required=False, max_length=255, strip=True,
                             widget=forms.TextInput(attrs={"class": "form-control form-control-sm font-monospace",
                                                           "placeholder": "branch contains…", "spellcheck": "false"}))
    awaiting = forms.BooleanField(required=False, label="Awaiting my approval")
    sort = forms.CharField(required=False, max_length=20, widget=forms.HiddenInput)

    def __init__(self, data=None, *, environments: list[str] = (), requesters: list[str] = (), **kwargs):  # type: ignore[assignment]
        super().__init__(data, **kwargs)
        cast(forms.ChoiceField, self.fields["environment"]).choices = [("", "Any environment"), *((e, e) for e in environments)]
        cast(forms.ChoiceField, self.fields["requester"]).choices = [("", "Anyone"), *((r, r) for r in requesters)]
        self.fields["awaiting"].widget.attrs["class"] = "form-check-input"

    def clean_sort(self) -> str:
        value = self.cleaned_data.get("sort") or self.DEFAULT_SORT
        return value if value.lstrip("-") in self.SORTS else self.DEFAULT_SORT

    def order_by(self) -> list[str]:
        sort = self.cleaned_data.get("sort", self.DEFAULT_SORT) if self.is_valid() else self.DEFAULT_SORT
        field = self.SORTS[sort.lstrip("-")]
        desc = sort.startswith("-")
        return [("-" if desc else "") + field, "-pk"]
