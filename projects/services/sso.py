"""OIDC single sign-on per organization (issue 17): the login through an organization's IdP, just-in-time
membership from the IdP's groups, and the "require SSO" rule for password logins.

Authlib (``OAuth2Session``) builds the authorization request (code flow, PKCE S256, state, nonce) and redeems
the code; joserfc checks the ID token's signature against the IdP's JWKS with the algorithms its discovery
document offers (never ``none``), and Authlib's ``CodeIDToken`` checks iss, aud, exp, iat, nonce and at_hash.
What no library knows is checked here: the state and the nonce are single-use, the address must be verified by
the IdP and belong to one of the organization's verified domains. Every refusal is audited (``user.login``,
method ``sso``, result ``refused``, the reason) and says why in plain words.
"""

from __future__ import annotations

import base64
import hashlib
import json
import time
from dataclasses import asdict, dataclass
from typing import Any

import requests
from authlib.common.security import generate_token
from authlib.integrations.requests_client import OAuth2Session
from authlib.oidc.core import CodeIDToken
from django.core.cache import cache
from django.db import IntegrityError, transaction
from joserfc import jwt
from joserfc.errors import BadSignatureError, ClaimError, ExpiredTokenError, JoseError
from joserfc.jwk import KeySet

from controlplane import errors, ratelimit
from projects.audit import audit_record, audit_record_for_person
from projects.models import Membership, Project, SsoConnection, SsoDomain, User
from projects.roles import Role
from projects.selectors import email_domain
from projects.services.logins import login_audit
from projects.tenancy import Principal

SSO_SCOPE = "openid email profile groups"
#: How long the IdP may keep the person before the callback (the session's pending login lapses then).
PENDING_SECONDS = 600
#: Clock skew allowed on exp/iat: the IdP's clock and ours are not the same clock.
LEEWAY_SECONDS = 60
HTTP_TIMEOUT_S = 10
#: Signature algorithms accepted whatever the IdP advertises: asymmetric only (a client-secret HMAC would let
#: anyone holding the secret mint tokens), never "none".
ACCEPTED_ALGORITHMS = frozenset({"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512",
                                 "EdDSA"})


class SsoRefused(errors.NotAuthenticated):
    title = "Single sign-on refused"
    type_slug = "sso-refused"

    def __init__(self, detail: str, *, reason: str, email: str = "") -> None:
        super().__init__(detail)
        self.reason = reason
        self.email = email


@dataclass
class SsoPending:
    """What the session keeps between the redirect to the IdP and the callback."""

    connection_id: str
    state: str
    nonce: str
    code_verifier: str
    at: float
    next_url: str = ""

    def as_session(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_session(cls, data: Any) -> SsoPending | None:
        try:
            return cls(**data)
        except TypeError:
            return None


def _metadata(connection: SsoConnection) -> dict[str, Any]:
    url = connection.issuer.rstrip("/") + "/.well-known/openid-configuration"
    try:
        response = requests.get(url, timeout=HTTP_TIMEOUT_S)
        response.raise_for_status()
        metadata = response.json()
    except (requests.RequestException, ValueError) as exc:
        raise SsoRefused("Your organization's identity provider cannot be reached; try again later.",
                         reason="idp_unreachable") from exc
    # OIDC Discovery §4.3: the document must name the issuer it was fetched for, or tokens could come from another.
    if metadata.get("issuer") != connection.issuer:
        raise SsoRefused("Your organization's identity provider names another issuer than the one configured.",
                         reason="issuer_mismatch")
    return metadata


def _client(connection: SsoConnection, redirect_uri: str) -> OAuth2Session:
    return OAuth2Session(client_id=connection.client_id, client_secret=connection.client_secret, scope=SSO_SCOPE,
                         redirect_uri=redirect_uri, code_challenge_method="S256")


def sso_begin(*, connection: SsoConnection, redirect_uri: str, login_hint: str = "",
              next_url: str = "") -> tuple[str, SsoPending]:
    """The IdP's authorization URL to send the person to, and what the session must keep for the callback."""
    metadata = _metadata(connection)
    pending = SsoPending(connection_id=connection.pk, state=generate_token(32), nonce=generate_token(32),
                         code_verifier=generate_token(64), at=time.time(), next_url=next_url)
    extra = {"login_hint": login_hint} if login_hint else {}
    url, _state = _client(connection, redirect_uri).create_authorization_url(
        metadata["authorization_endpoint"], state=pending.state, nonce=pending.nonce,
        code_verifier=pending.code_verifier, **extra)
    return url, pending


def sso_complete(*, pending: SsoPending | None, params: dict[str, str], redirect_uri: str, ip: str | None,
                 user_agent: str = "") -> User:
    """The callback: checks everything, makes or updates the membership, audits. The caller has already taken
    ``pending`` out of the session, so a second callback with the same state finds nothing (single use)."""
    connection = SsoConnection.objects.select_related("organization").filter(
        pk=pending.connection_id if pending else "").first()
    try:
        if pending is None or connection is None:
            raise SsoRefused("This sign-in is not known here (expired, already used, or started elsewhere); start "
                             "again.", reason="state_unknown")
        user, claims = _complete(connection, pending, params, redirect_uri)
    except SsoRefused as exc:
        _audit_refusal(connection, exc, ip=ip, user_agent=user_agent)
        raise
    with transaction.atomic():
        _join(connection, user, claims, ip=ip, user_agent=user_agent)
    login_audit(email=user.email, user=user, method="sso", result="success", ip=ip, user_agent=user_agent)
    return user


def _complete(connection: SsoConnection, pending: SsoPending, params: dict[str, str],
              redirect_uri: str) -> tuple[User, dict[str, Any]]:
    if time.time() - pending.at > PENDING_SECONDS:
        raise SsoRefused("This sign-in took too long; start again.", reason="state_expired")
    if not params.get("state") or params.get("state") != pending.state:
        raise SsoRefused("The identity provider's answer does not belong to this sign-in (state mismatch); start "
                         "again.", reason="state_mismatch")
    if params.get("error"):
        detail = params.get("error_description") or params["error"]
        raise SsoRefused(f"Your identity provider refused the sign-in: {detail[:200]}", reason="idp_error")
    metadata = _metadata(connection)
    # RFC 9207: an answer naming another issuer is a mix-up attack, whatever its code.
    if params.get("iss") and params["iss"] != connection.issuer:
        raise SsoRefused("The answer came from another identity provider than your organization's.",
                         reason="issuer_mismatch")
    if not params.get("code"):
        raise SsoRefused("The identity provider sent no authorization code.", reason="no_code")
    try:
        token = _client(connection, redirect_uri).fetch_token(
            metadata["token_endpoint"], code=params["code"], code_verifier=pending.code_verifier,
            grant_type="authorization_code", timeout=HTTP_TIMEOUT_S)
    except Exception as exc:  # Authlib raises OAuthError, requests its own; both mean "no token"
        raise SsoRefused("The identity provider did not accept the authorization code.",
                         reason="code_refused") from exc
    claims = _id_token_claims(connection, metadata, token, pending.nonce)
    _nonce_use_once(pending.nonce, claims)
    email = str(claims.get("email") or "").strip().lower()
    if not email:
        raise SsoRefused("Your identity provider sent no email address.", reason="email_missing")
    if claims.get("email_verified") is not True:
        raise SsoRefused(f"Your identity provider has not verified the address {email}.",
                         reason="email_unverified", email=email)
    domains = set(SsoDomain.objects.filter(organization=connection.organization, verified_at__isnull=False)
                  .values_list("domain", flat=True))
    if email_domain(email) not in domains:
        raise SsoRefused(f"The address {email} is not on a verified domain of {connection.organization.name}.",
                         reason="email_outside_domain", email=email)
    user = User.objects.filter(email=email).first()
    if user is not None and not user.is_active:
        raise SsoRefused("This account is deactivated.", reason="user_inactive", email=email)
    if user is None:
        try:
            with transaction.atomic():
                user = User.objects.create_user(email=email, password=None, name=str(claims.get("name") or "")[:100])
        except IntegrityError:  # two first logins raced
            user = User.objects.get(email=email)
    return user, claims


def _unverified_header(id_token: str) -> dict[str, Any]:
    try:
        segment = id_token.split(".")[0]
        header = json.loads(base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4)))
    except (ValueError, IndexError) as exc:
        raise SsoRefused("The identity provider sent a malformed ID token.", reason="token_malformed") from exc
    if not isinstance(header, dict):
        raise SsoRefused("The identity provider sent a malformed ID token.", reason="token_malformed")
    return header


def _id_token_claims(connection: SsoConnection, metadata: dict[str, Any], token: dict[str, Any],
                     nonce: str) -> dict[str, Any]:
    id_token = token.get("id_token")
    if not id_token:
        raise SsoRefused("The identity provider sent no ID token.", reason="token_missing")
    alg = _unverified_header(id_token).get("alg")
    offered = set(metadata.get("id_token_signing_alg_values_supported") or ["RS256"])
    algorithms = sorted(offered & ACCEPTED_ALGORITHMS)
    if alg not in algorithms:
        # "none" lands here too: an unsigned token proves nothing.
        raise SsoRefused(f"The ID token is not signed with an accepted algorithm ({alg}).", reason="token_alg")
    try:
        response = requests.get(metadata["jwks_uri"], timeout=HTTP_TIMEOUT_S)
        response.raise_for_status()
        keys = KeySet.import_key_set(response.json())
    except (requests.RequestException, ValueError, KeyError, JoseError) as exc:
        raise SsoRefused("The identity provider's signing keys cannot be read.", reason="jwks_unreadable") from exc
    try:
        decoded = jwt.decode(id_token, keys, algorithms=algorithms)
    except BadSignatureError as exc:
        raise SsoRefused("The ID token's signature does not verify with the identity provider's keys.",
                         reason="token_signature") from exc
    except JoseError as exc:
        raise SsoRefused("The ID token cannot be verified with the identity provider's keys.",
                         reason="token_signature") from exc
    claims = CodeIDToken(decoded.claims, decoded.header,
                         {"iss": {"essential": True, "values": [connection.issuer]},
                          "aud": {"essential": True, "values": [connection.client_id]},
                          "exp": {"essential": True}},
                         {"nonce": nonce, "client_id": connection.client_id,
                          "access_token": token.get("access_token")})
    try:
        claims.validate(leeway=LEEWAY_SECONDS)
    except ExpiredTokenError as exc:
        raise SsoRefused("The ID token has expired.", reason="token_expired") from exc
    except ClaimError as exc:
        name = {"iss": "issuer", "aud": "audience", "nonce": "nonce", "exp": "expiry"}.get(exc.claim, exc.claim)
        raise SsoRefused(f"The ID token's {name} is not the expected one.", reason=f"token_{exc.claim}") from exc
    return dict(claims)


def _nonce_use_once(nonce: str, claims: dict[str, Any]) -> None:
    """A nonce is spent by the first token that carries it: a token replayed with a copied session is refused."""
    ttl = max(LEEWAY_SECONDS, int(claims.get("exp", 0)) - int(time.time()) + LEEWAY_SECONDS)
    key = f"sso-nonce:{hashlib.sha256(nonce.encode()).hexdigest()}"
    if not cache.add(key, 1, timeout=ttl):
        raise SsoRefused("This ID token was already used (replayed nonce); start again.", reason="nonce_reused")


def group_grant(connection: SsoConnection, groups: list[str]) -> tuple[str, list[str]]:
    """The role and project limit (empty: every project) the IdP groups give: the first mapping that matches."""
    for mapping in connection.group_mappings or []:
        if mapping.get("group") in groups:
            return mapping.get("role") or connection.default_role, list(mapping.get("projects") or [])
    return connection.default_role, []


def _groups(connection: SsoConnection, claims: dict[str, Any]) -> list[str]:
    value = claims.get(connection.groups_claim or "groups") or []
    if isinstance(value, str):
        value = [value]
    return [str(item) for item in value if isinstance(item, (str, int))]


def _join(connection: SsoConnection, user: User, claims: dict[str, Any], *, ip: str | None,
          user_agent: str) -> Membership:
    """Just-in-time membership; each login brings role and project limit up to date with the IdP's groups.
    An owner stays an owner: ownership moves only by hand-over, never by a group change at the IdP."""
    role, project_ids = group_grant(connection, _groups(connection, claims))
    projects = list(Project.objects.filter(organization=connection.organization, pk__in=project_ids))
    membership = (Membership.objects.select_for_update().filter(organization=connection.organization, user=user)
                  .first())
    if membership is not None and membership.role == Role.OWNER:
        return membership
    created = membership is None
    if membership is None:
        membership = Membership.objects.create(organization=connection.organization, user=user, role=role)
    before = (membership.role, sorted(p.pk for p in membership.projects.all()), membership.limited_to_projects)
    membership.role = role
    membership.save(update_fields=["role", "updated_at"])
    membership.set_project_limit(projects)
    after = (role, sorted(p.pk for p in projects), bool(projects))
    if created or before != after:
        principal = Principal.for_membership(membership, ip=ip, user_agent=user_agent)
        audit_record(principal=principal, action="member.join" if created else "member.update", target=membership,
                     changes={"via": "sso", "role": role, "projects": after[1]})
    return membership


def _audit_refusal(connection: SsoConnection | None, exc: SsoRefused, *, ip: str | None, user_agent: str) -> None:
    changes = {"method": "sso", "result": "refused", "reason": exc.reason, "email": exc.email}
    if connection is None:
        # The callback is a public URL: a crawler or a flood of forged answers must not fill the log with
        # organization-less rows, so these are recorded once a minute per client address.
        if not ratelimit.hit(f"sso-refusal-audit:{ip or 'unknown'}", limit=1, window=60).allowed:
            return
        audit_record_for_person(user=None, action="user.login", changes=changes, ip=ip, user_agent=user_agent,
                                actor_label=exc.email or "unknown")
        return
    principal = Principal(organization=connection.organization, role=Role.VIEWER, project_ids=None, user=None,
                          ip=ip, user_agent=user_agent)
    audit_record(principal=principal, action="user.login", changes=changes, actor_label=exc.email or "unknown",
                 organization=connection.organization)
