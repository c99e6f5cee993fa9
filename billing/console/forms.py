"""Forms of the billing console pages. Validation of VAT numbers is the service's; these only shape input."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from django import forms

from controlplane.countries import CountryField


class BillingAccountForm(forms.Form):
    legal_name = forms.CharField(label="Legal name", max_length=200, required=False)
    address = forms.CharField(label="Address", max_length=1000, required=False,
                              widget=forms.Textarea(attrs={"rows": 3}))
    country = CountryField(required=False, help_text="Printed on invoices; it decides the VAT rate.")
    vat_number = forms.CharField(label="VAT number", max_length=20, required=False,
                                 help_text="EU and UK customers only; the country prefix may be left out.")


class SwitchToAnnualForm(forms.Form):
    renew = forms.BooleanField(label="Renew automatically at the end of the term", required=False)


class BudgetForm(forms.Form):
    project = forms.ChoiceField(required=False, label="Scope")
    amount = forms.DecimalField(label="Monthly amount", max_digits=14, decimal_places=2, min_value=Decimal("0.01"),
                                help_text="Per calendar month, before VAT.")
    channels = forms.MultipleChoiceField(required=False, widget=forms.CheckboxSelectMultiple,
                                         label="Channels to notify",
                                         help_text="None: the owners and billing members are emailed.")
    enabled = forms.BooleanField(required=False, initial=True)

    def __init__(self, *args: Any, projects: list, channels: list, currency: str, editing: bool = False,
                 allow_organization: bool = True, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        scopes = [("", "The whole organization")] if allow_organization else []
        self.fields["project"].choices = scopes + [(p.id, f"Project {p.name}") for p in projects]
        self.fields["channels"].choices = [(c.id, f"{c.name} ({c.get_type_display()})") for c in channels]
        self.fields["amount"].label = f"Monthly amount ({currency})"
        if editing:
            self.fields["project"].disabled = True
            self.fields["project"].help_text = "The scope cannot change: delete the budget and create another."
