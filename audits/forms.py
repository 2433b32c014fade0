"""Forms of the audit pages: start a run, handle a finding, record a manual check."""

from __future__ import annotations

from django import forms

from audits.models import Finding, ManualCheck
from cmdb.converters import is_id


class AuditStartForm(forms.Form):
    scope = forms.CharField(required=False, max_length=1000,
                            help_text="Empty for everything, an environment (production) or a machine (production/web1).")


class FindingFilterForm(forms.Form):
    state = forms.ChoiceField(required=False, choices=[("", "any state"), *Finding.State.choices])
    environment = forms.CharField(required=False, max_length=255)
    kind = forms.ChoiceField(required=False, choices=[("", "any kind"), *Finding.Kind.choices])
    machine = forms.CharField(required=False, max_length=1000)
    application = forms.CharField(required=False, max_length=1000, help_text="environment/machine/application")
    run = forms.CharField(required=False, max_length=20, label="audit")
    history = forms.BooleanField(required=False, label="include earlier audits")

    def clean_run(self) -> int | None:
        """An audit number, or None: anything else is refused here rather than by the database."""
        value = self.cleaned_data["run"].strip().lstrip("#")
        if not value:
            return None
        if not is_id(value):
            raise forms.ValidationError("An audit number.")
        return int(value)


class FindingActionForm(forms.Form):
    ACTIONS = (("acknowledge", "Acknowledge"), ("adopt", "Adopt live"), ("restore", "Restore declared"))

    action = forms.ChoiceField(choices=ACTIONS)
    note = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 2}), max_length=5000)


class ManualCheckForm(forms.Form):
    state = forms.ChoiceField(choices=[(ManualCheck.State.MATCHES, "Matches the README"),
                                       (ManualCheck.State.DISCREPANCY, "Discrepancy")])
    note = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 2}), max_length=5000)


class MachineFilterForm(forms.Form):
    STATUSES = [("", "any status"), ("problem", "needs attention"), ("compliant", "compliant"), ("drifted", "drifted"),
                ("unreachable", "unreachable"), ("error", "error"), ("manual", "manual")]
    environment = forms.CharField(required=False, max_length=255)
    status = forms.ChoiceField(required=False, choices=STATUSES)
    q = forms.CharField(required=False, max_length=200, label="machine")
