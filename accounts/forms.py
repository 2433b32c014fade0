from __future__ import annotations

from datetime import datetime, time

from django import forms
from django.utils import timezone


class TokenForm(forms.Form):
    name = forms.CharField(max_length=100, help_text="What will use it, e.g. “GitLab pipeline of infra-repo”.")
    expires_on = forms.DateField(required=False, label="Expires on",
                                 widget=forms.DateInput(attrs={"type": "date"}),
                                 help_text="Optional: the token stops working at the end of this day.")

    def expires_at(self) -> datetime | None:
        day = self.cleaned_data.get("expires_on")
        if day is None:
            return None
        # The end of the chosen day in the portal's time zone, as a person reads "expires on".
        return timezone.make_aware(datetime.combine(day, time(23, 59, 59)))
