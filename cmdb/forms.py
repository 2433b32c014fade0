"""GET forms of the browser UI: they validate query parameters, the views never read them raw."""

from __future__ import annotations

from django import forms

from cmdb.models import LintWarning

REV_MAX = 200


class SearchForm(forms.Form):
    q = forms.CharField(
        required=False,
        max_length=200,
        strip=True,
        widget=forms.SearchInput(attrs={"class": "form-control", "placeholder": "Name, path or README text",
                                        "autofocus": True, "aria-label": "Search"}),
    )


class RevisionForm(forms.Form):
    """The revision picker on every CI page (a branch, a tag or a commit)."""

    rev = forms.CharField(
        required=False,
        max_length=REV_MAX,
        strip=True,
        widget=forms.TextInput(attrs={"class": "form-control form-control-sm font-monospace", "list": "rev-choices",
                                      "placeholder": "branch, tag or commit", "aria-label": "Revision",
                                      "autocomplete": "off", "spellcheck": "false"}),
    )


class CompareForm(forms.Form):
    from_rev = forms.CharField(
        required=False, max_length=REV_MAX, strip=True, label="From",
        widget=forms.TextInput(attrs={"class": "form-control font-monospace", "list": "rev-choices",
                                      "autocomplete": "off", "spellcheck": "false"}),
    )
    to_rev = forms.CharField(
        required=False, max_length=REV_MAX, strip=True, label="To",
        widget=forms.TextInput(attrs={"class": "form-control font-monospace", "list": "rev-choices",
                                      "autocomplete": "off", "spellcheck": "false"}),
    )

    def __init__(self, data=None, **kwargs):
        # The query string says ?from=…&to=… ("from" is a Python keyword, hence the field names).
        if data is not None:
            data = {"from_rev": data.get("from", ""), "to_rev": data.get("to", "")}
        super().__init__(data, **kwargs)


class LintFilterForm(forms.Form):
    SORTS = {
        "path": "path",
        "code": "code",
        "severity": "severity_rank",
        "ci": "ci__path",
        "message": "message",
    }

    code = forms.ChoiceField(
        required=False,
        choices=[("", "All codes"), *LintWarning.Code.choices],
        widget=forms.Select(attrs={"class": "form-select form-select-sm"}),
    )
    severity = forms.ChoiceField(
        required=False,
        choices=[("", "All severities"), *LintWarning.Severity.choices],
        widget=forms.Select(attrs={"class": "form-select form-select-sm"}),
    )
    path = forms.CharField(
        required=False,
        max_length=1000,
        strip=True,
        label="Path starts with",
        widget=forms.TextInput(attrs={"class": "form-control form-control-sm", "placeholder": "e.g. production/web1"}),
    )
    sort = forms.CharField(required=False, max_length=20, widget=forms.HiddenInput)

    def clean_sort(self) -> str:
        value = self.cleaned_data.get("sort") or "severity"
        return value if value.lstrip("-") in self.SORTS else "severity"

    def order_by(self) -> list[str]:
        sort = self.cleaned_data.get("sort", "severity") if self.is_valid() else "severity"
        field = self.SORTS[sort.lstrip("-")]
        desc = sort.startswith("-")
        return [("-" if desc else "") + field, "path", "code"]
