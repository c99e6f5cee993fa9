"""The certificate functions on their own: SANs by host kind, a chain a client verifies, lifetimes."""

from __future__ import annotations

import ipaddress
from datetime import UTC, datetime, timedelta

import pytest
from cryptography import x509
from cryptography.x509.verification import PolicyBuilder, Store, VerificationError

from deployments.tls.x509 import fingerprint_sha256, issue_server_certificate, load_certificate, make_ca

NOW = datetime(2026, 12, 5, 12, 0, tzinfo=UTC)


@pytest.fixture(scope="module")
def ca():
    return make_ca(common_name="mqcloud aws-us-east-1 CA", now=NOW, lifetime=timedelta(days=3650))


def issue(ca, host: str, days: int = 90):
    return issue_server_certificate(host=host, ca_certificate_pem=ca.certificate_pem,
                                    ca_private_key_pem=ca.private_key_pem, now=NOW, lifetime=timedelta(days=days))


def sans(pem: str) -> x509.SubjectAlternativeName:
    return load_certificate(pem).extensions.get_extension_for_class(x509.SubjectAlternativeName).value


def test_an_ip_host_gets_an_ip_san_and_no_dns_san(ca):
    issued = issue(ca, "127.77.0.5")
    names = sans(issued.certificate_pem)
    assert names.get_values_for_type(x509.IPAddress) == [ipaddress.ip_address("127.77.0.5")]
    assert names.get_values_for_type(x509.DNSName) == []
    assert issued.sans == ("IP:127.77.0.5",)


def test_a_name_gets_a_dns_san(ca):
    issued = issue(ca, "Dep-Abc.aws-us-east-1.mqcloud.example")
    assert sans(issued.certificate_pem).get_values_for_type(x509.DNSName) == ["dep-abc.aws-us-east-1.mqcloud.example"]
    assert issued.sans == ("DNS:dep-abc.aws-us-east-1.mqcloud.example",)


def test_the_chain_verifies_for_its_host_only(ca):
    issued = issue(ca, "127.77.0.5")
    store = Store([load_certificate(ca.certificate_pem)])
    at = NOW + timedelta(days=1)
    verifier = PolicyBuilder().store(store).time(at).build_server_verifier(x509.IPAddress(
        ipaddress.ip_address("127.77.0.5")))
    chain = verifier.verify(load_certificate(issued.certificate_pem), [])
    assert chain[-1] == load_certificate(ca.certificate_pem)
    other = PolicyBuilder().store(store).time(at).build_server_verifier(x509.IPAddress(
        ipaddress.ip_address("127.77.0.6")))
    with pytest.raises(VerificationError):
        other.verify(load_certificate(issued.certificate_pem), [])


def test_another_ca_does_not_verify_it(ca):
    stranger = make_ca(common_name="someone else", now=NOW, lifetime=timedelta(days=365))
    verifier = PolicyBuilder().store(Store([load_certificate(stranger.certificate_pem)])).time(
        NOW + timedelta(days=1)).build_server_verifier(x509.DNSName("a.example"))
    with pytest.raises(VerificationError):
        verifier.verify(load_certificate(issue(ca, "a.example").certificate_pem), [])


def test_lifetime_is_capped_by_the_ca_and_fingerprint_matches(ca):
    short = make_ca(common_name="short", now=NOW, lifetime=timedelta(days=10))
    issued = issue(short, "a.example", days=90)
    assert issued.not_after == short.not_after
    assert issue(ca, "a.example", days=90).not_after == NOW + timedelta(days=90)
    assert fingerprint_sha256(issued.certificate_pem) == issued.fingerprint_sha256
    assert len(issued.fingerprint_sha256) == 64
    assert "PRIVATE KEY" in issued.private_key_pem and "PRIVATE KEY" not in issued.certificate_pem
