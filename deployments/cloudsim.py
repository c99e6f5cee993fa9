"""Simulated clouds for VPC peering on loopback: moto's server (AWS) and our Azure Resource Manager stand-in.

``python -m deployments.cloudsim`` (started by ``make run``) serves AWS on 127.0.0.1:8791 and Azure on
127.0.0.1:8792, creates each AWS region's platform network (VPC, route tables, security group) in the
platform account and a demo customer VPC, and writes the ids moto gave them to
``settings.PEERING_PLATFORM_NETWORKS_FILE`` (moto cannot create a VPC with the catalog's id).
The tests use :func:`bootstrap_aws` the same way.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import sys
import threading
from pathlib import Path
from typing import Any

import boto3

from deployments.peering.azure_sim import AzureSim
from deployments.peering.demo import DEMO_CUSTOMER_KEY

#: The simulated customer of the embedded default: its account, region and VPC CIDR.
DEMO_CUSTOMER = {"account_id": "111122223333", "region": "us-east-1", "cidr": "10.20.0.0/16"}


def bootstrap_aws(*, endpoint_url: str, regions: list[dict]) -> dict[str, dict]:
    """Creates the platform network of each AWS region; returns ``{region_id: {vpc_id, route_table_ids, …}}``."""
    overrides: dict[str, dict] = {}
    for region in regions:
        if region["provider"] != "aws" or not region.get("network"):
            continue
        ec2 = boto3.session.Session().client("ec2", region_name=region["code"], endpoint_url=endpoint_url,
                                             aws_access_key_id="testing", aws_secret_access_key="testing")
        network = region["network"]
        vpc_id = ec2.create_vpc(CidrBlock=network["cidr"])["Vpc"]["VpcId"]
        route_table_ids = [ec2.create_route_table(VpcId=vpc_id)["RouteTable"]["RouteTableId"]
                           for _ in network.get("route_table_ids", [])]
        group_id = ec2.create_security_group(GroupName="mqcloud-brokers", Description="MQTT brokers",
                                             VpcId=vpc_id)["GroupId"]
        overrides[region["id"]] = {"vpc_id": vpc_id, "route_table_ids": route_table_ids,
                                   "security_group_id": group_id}
    return overrides


def _catalog_regions() -> list[dict]:
    path = Path(__file__).resolve().parent / "data" / "catalog.json"
    return json.loads(path.read_text())["regions"]


def main() -> int:
    parser = argparse.ArgumentParser(description="Simulated AWS (moto) and Azure for VPC peering")
    parser.add_argument("--aws-port", type=int, default=8791)
    parser.add_argument("--azure-port", type=int, default=8792)
    parser.add_argument("--networks-file", default=os.environ.get("PEERING_PLATFORM_NETWORKS_FILE", ""))
    args = parser.parse_args()

    # imported here: moto's server pulls in Flask and every mocked service; the tests only need bootstrap_aws.
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # moto's server logs every request otherwise
    moto_server = ThreadedMotoServer(ip_address="127.0.0.1", port=args.aws_port, verbose=False)
    moto_server.start()
    azure = AzureSim("127.0.0.1", args.azure_port).start()
    aws_url = f"http://127.0.0.1:{args.aws_port}"
    overrides: dict[str, Any] = bootstrap_aws(endpoint_url=aws_url, regions=_catalog_regions())
    customer_vpc = _demo_customer_vpc(aws_url)
    if args.networks_file:
        Path(args.networks_file).parent.mkdir(parents=True, exist_ok=True)
        Path(args.networks_file).write_text(json.dumps({**overrides, DEMO_CUSTOMER_KEY: customer_vpc}, indent=2))
    print(f"simulated AWS (moto) on {aws_url}, simulated Azure on {azure.url}; demo customer: "
          f"account {customer_vpc['account_id']}, {customer_vpc['vpc_id']} ({customer_vpc['cidr']}, "
          f"{customer_vpc['region']})", flush=True)

    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    stop.wait()
    azure.stop()
    moto_server.stop()
    return 0


def _demo_customer_vpc(aws_url: str) -> dict:
    sts = boto3.session.Session().client("sts", region_name="us-east-1", endpoint_url=aws_url,
                                         aws_access_key_id="testing", aws_secret_access_key="testing")
    credentials = sts.assume_role(RoleArn=f"arn:aws:iam::{DEMO_CUSTOMER['account_id']}:role/mqcloud-simulated-customer",
                                  RoleSessionName="demo-customer")["Credentials"]
    ec2 = boto3.session.Session().client(
        "ec2", region_name=DEMO_CUSTOMER["region"], endpoint_url=aws_url,
        aws_access_key_id=credentials["AccessKeyId"], aws_secret_access_key=credentials["SecretAccessKey"],
        aws_session_token=credentials["SessionToken"])
    vpc_id = ec2.create_vpc(CidrBlock=DEMO_CUSTOMER["cidr"])["Vpc"]["VpcId"]
    return {**DEMO_CUSTOMER, "vpc_id": vpc_id}


if __name__ == "__main__":
    sys.exit(main())
