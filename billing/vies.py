"""The EU VIES VAT-number check (REST API ``check-vat-number``), through the guarded outbound client only.

VIES is a front for the member states' own registers, and those are often down, busy or slow: every such
answer is an ``ViesUnavailable`` (retry later), never a verdict. Only an explicit ``valid: true/false``
from VIES decides. VIES answers trouble in two shapes, both handled: ``{"actionSucceed": false,
"errorWrappers": [{"error": "MS_UNAVAILABLE", ...}]}`` (with HTTP 200 or an error status), and a normal
answer whose ``userError`` is an error code instead of ``VALID``/``INVALID``.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

from django.conf import settings
from stdnum.util import clean

from billing import money
from controlplane import outbound

#: VIES error codes that say "not now": the member state's register or VIES itself is down or saturated.
TRANSIENT_CODES = frozenset({
    "MS_UNAVAILABLE", "SERVICE_UNAVAILABLE", "TIMEOUT", "MS_MAX_CONCURRENT_REQ", "GLOBAL_MAX_CONCURRENT_REQ",
    "MS_MAX_CONCURRENT_REQ_TIME", "GLOBAL_MAX_CONCURRENT_REQ_TIME", "SERVER_BUSY",
})
#: VIES says the number itself is not acceptable (our format check passed, but VIES disagrees): a verdict.
INVALID_CODES = frozenset({"INVALID_INPUT"})
MAX_RESPONSE_BYTES = 64 * 1024
ERROR_CODE = re.compile(r"[A-Z][A-Z0-9_]{1,59}")


class ViesError(Exception):
    """VIES gave no verdict. ``transient``: worth retrying soon (down, busy, timeout, garbled answer);
    otherwise a refusal that a retry will not fix quickly (our requester number refused, IP blocked)."""

    def __init__(self, message: str, *, code: str = "", transient: bool = True) -> None:
        super().__init__(message)
        self.message = message
        self.code = code
        self.transient = transient


@dataclass(frozen=True)
class ViesAnswer:
    valid: bool
    consultation_number: str  # VIES's requestIdentifier; only when we identify ourselves as requester
    registered_name: str
    address: str
    request_date: str


def in_vies(vat_number: str) -> bool:
    """Whether VIES knows numbers with this prefix: the EU member states and XI (Northern Ireland, kept in
    VIES under the Windsor Framework). GB numbers left VIES with Brexit, and GB is outside the EU, so no VAT
    treatment depends on them: they simply stay ``unchecked``."""
    prefix = vat_number[:2]
    states = {"EL" if state == "GR" else state for state in money.eu_member_states()}
    return prefix in states or prefix == "XI"


def _split(vat_number: str) -> tuple[str, str]:
    compact = clean(vat_number, " -./,:").upper()
    prefix = compact[:2]
    return ("EL" if prefix == "GR" else prefix), compact[2:]  # VIES knows Greece as EL, never GR


def _code(value: object) -> str:
    """A VIES error code as is (``MS_UNAVAILABLE``); anything else is not repeated: the error is shown to the
    customer, and an answer's free text (an HTML error page, a proxy's message) is not ours to show."""
    text = str(value)
    return text if ERROR_CODE.fullmatch(text) else "UNKNOWN_ERROR"


def _error_code(data: dict) -> str:
    wrappers = data.get("errorWrappers")
    if isinstance(wrappers, list):
        for wrapper in wrappers:
            if isinstance(wrapper, dict) and wrapper.get("error"):
                return _code(wrapper["error"])
    user_error = data.get("userError")
    if isinstance(user_error, str) and user_error not in ("", "VALID", "INVALID"):
        return _code(user_error)
    if data.get("actionSucceed") is False:
        return "UNKNOWN_ERROR"
    return ""


def _text(value: object, limit: int) -> str:
    if not isinstance(value, str) or value.strip() in ("", "---"):  # "---": the member state withholds it
        return ""
    return " ".join(value.split())[:limit]


def check_vat_number(vat_number: str) -> ViesAnswer:
    """Asks VIES about one compact VAT number with its prefix (``DE123456789``, ``EL…``, ``XI…``).

    Raises ViesError when VIES gives no verdict. Callers check ``in_vies`` and that ``VIES_URL`` is set.
    """
    country, number = _split(vat_number)
    body: dict[str, str] = {"countryCode": country, "vatNumber": number}
    if settings.VIES_REQUESTER_VAT:
        requester_country, requester_number = _split(settings.VIES_REQUESTER_VAT)
        body.update({"requesterMemberStateCode": requester_country, "requesterNumber": requester_number})
    try:
        response = outbound.send("POST", settings.VIES_URL, body=json.dumps(body).encode(),
                                 headers={"Content-Type": "application/json", "Accept": "application/json"},
                                 connect_timeout=5.0, timeout=settings.VIES_TIMEOUT_S, max_bytes=MAX_RESPONSE_BYTES)
    except outbound.OutboundBlocked as exc:
        raise ViesError(f"VIES_URL is not allowed: {exc.message}", code="BLOCKED", transient=False) from exc
    except outbound.OutboundError as exc:
        raise ViesError(f"VIES did not answer ({exc.kind}): {exc.message}", code=exc.kind.upper()) from exc
    try:
        data = response.json()
    except (UnicodeDecodeError, ValueError):
        data = None
    if not isinstance(data, dict):
        raise ViesError(f"VIES answered HTTP {response.status} without a JSON object.", code=f"HTTP_{response.status}")
    code = _error_code(data)
    if code in INVALID_CODES:
        return ViesAnswer(valid=False, consultation_number="", registered_name="", address="",
                          request_date=_text(data.get("requestDate"), 40))
    if code:
        raise ViesError(f"VIES could not check the number: {code}.", code=code, transient=code in TRANSIENT_CODES)
    if not 200 <= response.status < 300:
        # 4xx without a code: our request is wrong, and resending it will not help.
        raise ViesError(f"VIES answered HTTP {response.status}.", code=f"HTTP_{response.status}",
                        transient=response.status >= 500 or response.status in (408, 429))
    valid = data.get("valid")
    if not isinstance(valid, bool):
        raise ViesError("VIES answered without a verdict.", code="NO_VERDICT")
    return ViesAnswer(valid=valid, consultation_number=_text(data.get("requestIdentifier"), 64),
                      registered_name=_text(data.get("name"), 300), address=_text(data.get("address"), 500),
                      request_date=_text(data.get("requestDate"), 40))
