"""Forms of the release pages: the deploy button and the jobs list's filters."""

from __future__ import annotations

from django import forms

from deploys.models import Job

SELECT = {"class": "form-select form-select-sm"}
TEXT = {"class": "form-control form-control-sm"}


class DeployForm(forms.Form):
    plan = forms.IntegerField(required=False, min_value=1, max_value=10**18)
    confirm_conflicts = forms.BooleanField(required=False, label="Overwrite conflicting hand edits")


class JobFilterForm(forms.Form):
    kind = forms.ChoiceField(required=False, choices=[("", "Any kind"), *Job.Kind.choices],
                             widget=forms.Select(attrs=SELECT))
    state = forms.ChoiceField(required=False, choices=[("", "Any state"), *Job.State.choices],
                              widget=forms.Select(attrs=SELECT))
    change = forms.IntegerField(required=False, min_value=1, max_value=10**18, label="Change request",
                                widget=forms.NumberInput(attrs={**TEXT, "placeholder": "CR id"}))
    environment = forms.CharField(required=False, max_length=255,
                                  widget=forms.TextInput(attrs={**TEXT, "placeholder": "Environment"}))
    machine = forms.CharField(required=False, max_length=1000,
                              widget=forms.TextInput(attrs={**TEXT, "placeholder": "environment/machine"}))
