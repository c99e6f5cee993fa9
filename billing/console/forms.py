"""Forms of the billing console pages. Validation of VAT numbers is the service's; these only shape input."""

from __future__ import annotations

from django import forms


class BillingAccountForm(forms.Form):
    legal_name = forms.CharField(label="Legal name", max_length=200, required=False)
    address = forms.CharField(label="Address", max_length=1000, required=False,
                              widget=forms.Textarea(attrs={"rows": 3}))
    country = forms.CharField(label="Country", max_length=2, required=False,
                              help_text="ISO 3166-1 alpha-2 code, such as DE or US.")
    vat_number = forms.CharField(label="VAT number", max_length=20, required=False,
                                 help_text="EU and UK customers only; the country prefix may be left out.")


class SwitchToAnnualForm(forms.Form):
    renew = forms.BooleanField(label="Renew automatically at the end of the term", required=False)
