"""Pure checks of a peering request: formats, private CIDR, size, overlaps. No database, no cloud.

Every problem is reported per field, so the API answers 400 with ``errors: {field: [reason]}`` and the
console shows the reason under the field.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable, Mapping

from controlplane import errors

ACCOUNT_ID = re.compile(r"^\d{12}$")
VPC_ID = re.compile(r"^vpc-(?:[0-9a-f]{8}|[0-9a-f]{17})$")
# us-east-1, eu-central-2, ap-southeast-4, us-gov-west-1, cn-north-1, il-central-1, mx-central-1, …
AWS_REGION = re.compile(r"^[a-z]{2}(?:-gov|-iso[a-z]?)?-[a-z]+-\d{1,2}$")
UUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")
# Azure naming rules: resource groups 1-90 of letters, digits, _ . - ( ), not ending in a period;
# virtual networks 2-64, starting with a letter or digit, ending with a letter, digit or underscore.
RESOURCE_GROUP = re.compile(r"^[-\w.()]{0,89}[-\w()]$")
VNET_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}[A-Za-z0-9_]$")

PRIVATE_RANGES = tuple(ipaddress.ip_network(n) for n in ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16"))
MIN_PREFIX = 16  # the largest network AWS lets a VPC CIDR block be
MAX_PREFIX = 28  # the smallest

AWS_FIELDS = ("account_id", "vpc_id", "region")
AZURE_FIELDS = ("tenant_id", "subscription_id", "resource_group", "vnet_name")


def aws_partition(region: str) -> str:
    if region.startswith("cn-"):
        return "aws-cn"
    if "-gov-" in region:
        return "aws-us-gov"
    return "aws"


def parse_cidr(value: str) -> tuple[ipaddress.IPv4Network | None, str | None]:
    """The network, or why ``value`` is not an acceptable customer CIDR."""
    text = (value or "").strip()
    if "/" not in text:
        return None, "Give a network in CIDR notation, e.g. 10.20.0.0/16."
    try:
        network = ipaddress.ip_network(text, strict=False)
    except ValueError:
        return None, f"{text} is not a valid CIDR block."
    if network.version != 4:
        return None, "Only IPv4 CIDR blocks can be peered."
    if str(network) != text:
        return None, f"{text} has host bits set; the network is {network}."
    if not any(network.subnet_of(private) for private in PRIVATE_RANGES):
        return None, (f"{network} is not a private range; use addresses within 10.0.0.0/8, 172.16.0.0/12 or "
                      f"192.168.0.0/16 (RFC 1918).")
    if network.prefixlen < MIN_PREFIX:
        return None, f"{network} is too large; the prefix length must be between /{MIN_PREFIX} and /{MAX_PREFIX}."
    if network.prefixlen > MAX_PREFIX:
        return None, f"{network} is too small; the prefix length must be between /{MIN_PREFIX} and /{MAX_PREFIX}."
    return network, None


def validate_request(*, provider: str, fields: Mapping[str, str], platform_provider: str, platform_region: str,
                     platform_cidr: str | None, other_cidrs: Iterable[str]) -> dict[str, str]:
    """Checks a peering request; returns the cleaned values or raises ValidationFailed with every problem."""
    problems: dict[str, list[str]] = {}

    def bad(field: str, message: str) -> None:
        problems.setdefault(field, []).append(message)

    cleaned: dict[str, str] = {}
    if provider not in ("aws", "azure"):
        bad("provider", 'Use "aws" or "azure".')
    elif provider != platform_provider:
        cloud, network = ("AWS", "an AWS VPC") if platform_provider == "aws" else ("Azure", "an Azure VNet")
        bad("provider", f"This deployment runs on {cloud}; it can only be peered with {network}.")
    wanted = AWS_FIELDS if provider == "aws" else AZURE_FIELDS if provider == "azure" else ()
    unexpected = set(AWS_FIELDS + AZURE_FIELDS) - set(wanted)
    for name in sorted(unexpected):
        if fields.get(name):
            bad(name, f"Not used for {provider} peerings.")
    for name in wanted:
        value = (fields.get(name) or "").strip()
        if not value:
            bad(name, "This field is required.")
            continue
        cleaned[name] = value

    if provider == "aws":
        if "account_id" in cleaned and not ACCOUNT_ID.match(cleaned["account_id"]):
            bad("account_id", "An AWS account id is 12 digits.")
        if "vpc_id" in cleaned and not VPC_ID.match(cleaned["vpc_id"]):
            bad("vpc_id", "A VPC id looks like vpc-0a1b2c3d4e5f67890 (vpc- and 8 or 17 hexadecimal digits).")
        if "region" in cleaned:
            region = cleaned["region"]
            if not AWS_REGION.match(region):
                bad("region", f"{region} is not an AWS region code (e.g. us-east-1).")
            elif aws_partition(region) != aws_partition(platform_region):
                bad("region", f"{region} is in another AWS partition than this deployment's region "
                              f"({platform_region}); peering across partitions is not possible.")
    elif provider == "azure":
        for name in ("tenant_id", "subscription_id"):
            if name in cleaned and not UUID.match(cleaned[name]):
                bad(name, "Give the id as a UUID, e.g. 00000000-0000-0000-0000-000000000000.")
            elif name in cleaned:
                cleaned[name] = cleaned[name].lower()
        if "resource_group" in cleaned and not RESOURCE_GROUP.match(cleaned["resource_group"]):
            bad("resource_group", "A resource group name is 1 to 90 letters, digits, underscores, hyphens, periods "
                                  "or parentheses, not ending with a period.")
        if "vnet_name" in cleaned and not VNET_NAME.match(cleaned["vnet_name"]):
            bad("vnet_name", "A virtual network name is 2 to 64 letters, digits, underscores, periods or hyphens, "
                             "starting with a letter or digit and ending with a letter, digit or underscore.")

    network, reason = parse_cidr(fields.get("cidr") or "")
    if reason:
        bad("cidr", reason)
    else:
        assert network is not None
        cleaned["cidr"] = str(network)
        if platform_cidr and network.overlaps(ipaddress.ip_network(platform_cidr)):
            bad("cidr", f"{network} overlaps the platform network of this region ({platform_cidr}); choose a "
                        f"network that does not.")
        for other in other_cidrs:
            if network.overlaps(ipaddress.ip_network(other)):
                bad("cidr", f"{network} overlaps {other}, already peered with this deployment.")
                break

    if problems:
        first = next(iter(problems.values()))[0]
        raise errors.ValidationFailed(first if len(problems) == 1 else "The peering request is not valid.",
                                      errors=problems)
    return cleaned
