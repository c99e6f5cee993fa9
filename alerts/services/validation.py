"""What the alerts services' field errors share: the problem's detail the API has always answered with."""

from __future__ import annotations

#: The detail of a one-field error of a channel or rule (``controlplane.errors.field_invalid(field, message,
#: detail=INVALID_FIELDS)``); the field's own message is in the problem's ``errors``.
INVALID_FIELDS = "The request has invalid fields."
