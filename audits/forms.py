"""Forms of the audit pages: start a run, handle a finding, record a manual check."""

from __future__ import annotations

from django import forms

from audits.models import Finding, ManualCheck


class AuditStartForm(forms.Form):
    scope = forms.CharField(required=False, max_length=1000,
                            help_text="Empty for everything, an environment (production) or a machine (production/web1).")


class FindingFilterForm(forms.Form):
    state = forms.ChoiceField(required=False, choices=[("", "any state"), *Finding.State.choices])
    environment = forms.CharField(required=False, max_length=255)
    kind = forms.ChoiceField(required=False, choices=[("", "any kind"), *Finding.Kind.choices])
    machine = forms.CharField(required=False, max_length=1000)
    history = forms.BooleanField(required=False, label="include earlier audits")


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
