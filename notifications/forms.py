"""The target form: events and environments as checkboxes; the secret is never rendered back."""

from __future__ import annotations

from django import forms
from django.core.validators import validate_email

from cmdb.models import ConfigItem
from notifications.models import Event, Target


def environment_choices(extra=()) -> list[tuple[str, str]]:
    names = set(ConfigItem.objects.filter(kind=ConfigItem.Kind.ENVIRONMENT).values_list("name", flat=True))
    return [(n, n) for n in sorted(names | set(extra))]


class TargetForm(forms.Form):
    name = forms.CharField(max_length=100)
    kind = forms.ChoiceField(choices=Target.Kind.choices)
    url = forms.CharField(max_length=2000, required=False, label="URL",
                          help_text="Webhook URL (Slack, Mattermost, Teams, generic), or the Matrix homeserver.")
    addresses = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 2}),
                                help_text="E-mail: one address per line or comma-separated.")
    secret = forms.CharField(max_length=500, required=False, widget=forms.PasswordInput(render_value=False),
                             help_text="Generic webhook: the HMAC key (empty: generated). Matrix: the access token. "
                                       "Leave empty to keep the stored one.")
    regenerate_secret = forms.BooleanField(required=False, label="Generate a new webhook secret")
    room = forms.CharField(max_length=255, required=False, help_text="Matrix: the room id, e.g. !abc:example.org")
    events = forms.MultipleChoiceField(choices=Event.choices, widget=forms.CheckboxSelectMultiple, required=False)
    environments = forms.MultipleChoiceField(choices=(), widget=forms.CheckboxSelectMultiple, required=False,
                                             help_text="None ticked: every environment.")
    enabled = forms.BooleanField(required=False, initial=True)

    def __init__(self, *args, target: Target | None = None, **kwargs):
        if target is not None and "initial" not in kwargs:
            # Neither the URL (incoming-webhook URLs hold their token) nor the secret is shown back.
            kwargs["initial"] = {"name": target.name, "kind": target.kind,
                                 "addresses": "\n".join(target.addresses), "room": target.room,
                                 "events": target.events, "environments": target.environments,
                                 "enabled": target.enabled}
        super().__init__(*args, **kwargs)
        envs = self.fields["environments"]
        assert isinstance(envs, forms.MultipleChoiceField)
        envs.choices = environment_choices(target.environments if target else ())
        for field in self.fields.values():
            if isinstance(field.widget, forms.Select):
                field.widget.attrs.setdefault("class", "form-select")
            elif isinstance(field.widget, (forms.TextInput, forms.Textarea, forms.PasswordInput)):
                field.widget.attrs.setdefault("class", "form-control")
            elif isinstance(field.widget, forms.CheckboxInput):
                field.widget.attrs.setdefault("class", "form-check-input")
        if target is None:
            del self.fields["regenerate_secret"]
        elif target.url:
            self.fields["url"].help_text = f"Stored: {target.url_masked} — leave empty to keep it."

    def clean_addresses(self) -> list[str]:
        raw = self.cleaned_data.get("addresses", "")
        addresses = [a.strip() for a in raw.replace(",", "\n").splitlines() if a.strip()]
        for address in addresses:
            try:
                validate_email(address)
            except forms.ValidationError:
                raise forms.ValidationError(f"{address[:100]!r} is not an e-mail address.") from None
        return addresses
