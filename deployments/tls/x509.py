"""Certificates as pure functions over ``cryptography``: make a CA, issue a server certificate for a host,
fingerprint. No database, no settings: the services decide lifetimes and keep the results.

Keys are ECDSA P-256: every TLS client in use (OpenSSL, Erlang's ssl, browsers) takes them, and generating
one costs microseconds rather than an RSA key's tens of milliseconds on every renewal.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from datetime import datetime, timedelta

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

#: Tolerated clock skew between us and the clients: certificates are valid from a little before issuance.
BACKDATE = timedelta(minutes=5)


@dataclass(frozen=True)
class Issued:
    certificate_pem: str
    private_key_pem: str
    fingerprint_sha256: str
    serial_number: str
    not_before: datetime
    not_after: datetime
    sans: tuple[str, ...] = ()


def _new_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _key_pem(key: ec.EllipticCurvePrivateKey) -> str:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption()).decode()


def load_certificate(pem: str) -> x509.Certificate:
    return x509.load_pem_x509_certificate(pem.encode())


def fingerprint_sha256(certificate_pem: str) -> str:
    """Lower-case hex SHA-256 of the DER certificate (what ``openssl x509 -fingerprint -sha256`` shows)."""
    return load_certificate(certificate_pem).fingerprint(hashes.SHA256()).hex()


def _issued(certificate: x509.Certificate, key: ec.EllipticCurvePrivateKey, sans: tuple[str, ...] = ()) -> Issued:
    pem = certificate.public_bytes(serialization.Encoding.PEM).decode()
    return Issued(certificate_pem=pem, private_key_pem=_key_pem(key),
                  fingerprint_sha256=certificate.fingerprint(hashes.SHA256()).hex(),
                  serial_number=format(certificate.serial_number, "x"),
                  not_before=certificate.not_valid_before_utc, not_after=certificate.not_valid_after_utc, sans=sans)


def make_ca(*, common_name: str, now: datetime, lifetime: timedelta) -> Issued:
    """A self-signed CA that may sign server certificates only (path length 0)."""
    key = _new_key()
    name = x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "mqcloud"),
                      x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    public = key.public_key()
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name).issuer_name(name).public_key(public)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - BACKDATE).not_valid_after(now + lifetime)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                     content_commitment=False, key_encipherment=False, data_encipherment=False,
                                     key_agreement=False, encipher_only=False, decipher_only=False), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), critical=False)
        .sign(key, hashes.SHA256())
    )
    return _issued(certificate, key)


def san_for(host: str) -> x509.GeneralName:
    """An IP address SAN for an address (clients check IPs only against those), a DNS SAN for a name."""
    try:
        return x509.IPAddress(ipaddress.ip_address(host))
    except ValueError:
        return x509.DNSName(host.lower())


def _san_label(name: x509.GeneralName) -> str:
    return f"IP:{name.value}" if isinstance(name, x509.IPAddress) else f"DNS:{name.value}"


def issue_server_certificate(*, host: str, ca_certificate_pem: str, ca_private_key_pem: str, now: datetime,
                             lifetime: timedelta) -> Issued:
    """A TLS server certificate for ``host`` signed by the CA; never valid beyond the CA itself (a client
    would refuse the chain anyway), so it comes due for renewal before its CA expires."""
    ca_certificate = load_certificate(ca_certificate_pem)
    ca_key = serialization.load_pem_private_key(ca_private_key_pem.encode(), password=None)
    assert isinstance(ca_key, ec.EllipticCurvePrivateKey)
    key = _new_key()
    san = san_for(host)
    not_after = min(now + lifetime, ca_certificate.not_valid_after_utc)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, host[:64])]))
        .issuer_name(ca_certificate.subject).public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - BACKDATE).not_valid_after(not_after)
        .add_extension(x509.SubjectAlternativeName([san]), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.KeyUsage(digital_signature=True, key_encipherment=False, key_cert_sign=False,
                                     crl_sign=False, content_commitment=False, data_encipherment=False,
                                     key_agreement=False, encipher_only=False, decipher_only=False), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    return _issued(certificate, key, sans=(_san_label(san),))
