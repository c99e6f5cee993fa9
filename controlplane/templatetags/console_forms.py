"""Form fields that point at their own help and errors, so a screen reader reads the error with the field."""

from __future__ import annotations

from django import template
from django.forms import BoundField
from django.utils.safestring import SafeString

register = template.Library()


@register.filter
def described_widget(field: BoundField) -> SafeString:
    """The field's widget with ``aria-describedby`` naming its help (``<id>_helptext``) and its errors
    (``<id>_error``), as ``console/_form.html`` renders them; Django adds ``aria-invalid`` itself."""
    ids = []
    if field.help_text:
        ids.append(f"{field.auto_id}_helptext")
    if field.errors:
        ids.append(f"{field.auto_id}_error")
    attrs: dict[str, str | bool] = {"aria-describedby": " ".join(ids)} if ids and field.auto_id else {}
    return field.as_widget(attrs=attrs)
